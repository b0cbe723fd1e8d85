/*
 * timer.c - the timer service: one thread that calls functions at their
 * deadlines.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Timers live in binary heaps (insert and cancel O(log n), ties in the
 * order they were added): one for deadlines on the real CLOCK_MONOTONIC
 * (waits of the "thread" Waiter), one for deadlines on the library's clock
 * (watchers), which is the same clock unless the virtual clock is on.  The
 * thread sleeps on a CLOCK_MONOTONIC condition variable until the earliest
 * deadline, with its timer slack set to 1 ns, and fires everything that
 * is due before it sleeps again.  Callbacks run on the timer thread
 * without the lock held.  stm__timer_cancel() waits while the timer's
 * callback is running, so that once it returns the owner may free the
 * timer.  The thread starts with the first timer and stops at
 * stm_shutdown().
 *
 * On the virtual clock the thread leaves the library-clock heap alone:
 * stm_clock_advance() takes its entries in deadline order and runs them on
 * its own thread (stm__timer_take_due / stm__timer_done).
 *
 * Library-clock timers cannot fail to arm: their owners reserve room in
 * the heap first (stm__timer_reserve), so arming, which happens inside a
 * commit with its locks held, never allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "stm-internal.h"

enum { REAL = 1, LIBCLOCK = 2, WALL = 4 }; /* hnode.tag: which heap; WALL: see below */

static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_wake; /* the thread: a new earliest timer, or stop */
static pthread_cond_t t_done; /* cancellers: a callback finished */
static struct stm__heap t_real, t_lib;
static uint32_t t_reserved; /* room promised in t_lib */
/* callbacks running now: on the timer thread, and on a thread in
 * stm_clock_advance() */
static struct stm__timer *t_running, *t_vrunning;
static pthread_t t_thread, t_vthread;
static bool t_started, t_stop, t_conds;
static _Atomic uint64_t t_newtop; /* counts new earliest timers (for the spin) */

static void ts_of(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / INT64_C(1000000000));
    ts->tv_nsec = (long)(ns % INT64_C(1000000000));
}

static struct stm__heap *heap_of(const struct stm__timer *t)
{
    return (t->h.tag & LIBCLOCK) ? &t_lib : &t_real;
}

/* The earliest timer the thread serves (library-clock ones only while
 * the clock is real). */
static struct stm__hnode *next_locked(void)
{
    struct stm__hnode *r = stm__heap_top(&t_real);
    if (!atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)) {
        struct stm__hnode *l = stm__heap_top(&t_lib);
        if (l && (r == NULL || stm__hnode_before(l, r)))
            r = l;
    }
    return r;
}

static void *timer_main(void *unused)
{
    (void)unused;
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
#endif
    pthread_mutex_lock(&t_lock);
    while (!t_stop) {
        struct stm__hnode *top = next_locked();
        if (top == NULL) {
            pthread_cond_wait(&t_wake, &t_lock);
            continue;
        }
        int64_t now = stm__mono_ns();
        if (top->key > now) {
            /* stm_set_wake_spin() (wakespin.c): sleep until the window
             * before the deadline, then poll the clock (unless a new
             * earliest timer comes) */
            int64_t key = top->key;
            int64_t spin = stm__spin_window();
            if (spin > 0 && key - now <= spin) {
                if (stm__spin_start(now, key - now)) {
                    uint64_t gen = atomic_load_explicit(&t_newtop, memory_order_relaxed);
                    pthread_mutex_unlock(&t_lock);
                    while (stm__mono_ns() < key &&
                           atomic_load_explicit(&t_newtop, memory_order_relaxed) == gen)
                        stm__cpu_relax();
                    pthread_mutex_lock(&t_lock);
                    continue;
                }
                spin = 0; /* over the budget: sleep to the deadline */
            }
            int64_t until = spin > 0 ? key - spin : key;
            struct timespec ts;
            ts_of(until, &ts);
            if (pthread_cond_timedwait(&t_wake, &t_lock, &ts) == ETIMEDOUT)
                stm__spin_sample(until, stm__mono_ns());
            continue;
        }
        struct stm__timer *t = (struct stm__timer *)top;
        uint64_t seq = top->seq;
        stm__heap_remove(heap_of(t), top);
        t_running = t;
        pthread_mutex_unlock(&t_lock);
        t->fn(t, seq);
        pthread_mutex_lock(&t_lock);
        t_running = NULL;
        pthread_cond_broadcast(&t_done);
    }
    pthread_mutex_unlock(&t_lock);
    return NULL;
}

static int start_locked(void)
{
    if (t_started)
        return 0;
    if (!t_conds) {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&t_wake, &a);
        pthread_condattr_destroy(&a);
        pthread_cond_init(&t_done, NULL);
        t_conds = true;
    }
    t_stop = false;
    int e = pthread_create(&t_thread, NULL, timer_main, NULL);
    if (e != 0)
        return -e;
    t_started = true;
    return 0;
}

/* t is now in a heap: wake the thread if it is the new earliest. */
static void pushed_locked(struct stm__timer *t)
{
    if (next_locked() == &t->h) {
        atomic_fetch_add_explicit(&t_newtop, 1, memory_order_relaxed);
        pthread_cond_signal(&t_wake);
    }
}

int stm__timer_add(struct stm__timer *t, int64_t deadline)
{
    pthread_mutex_lock(&t_lock);
    int r = start_locked();
    if (r == 0) {
        t->h.key = deadline;
        t->h.tag = REAL;
        if (!stm__heap_push(&t_real, &t->h))
            r = -ENOMEM;
        else
            pushed_locked(t);
    }
    pthread_mutex_unlock(&t_lock);
    return r;
}

static bool running_elsewhere(struct stm__timer *t)
{
    if (t_running == t && !pthread_equal(t_thread, pthread_self()))
        return true;
    return t_vrunning == t && !pthread_equal(t_vthread, pthread_self());
}

bool stm__timer_cancel(struct stm__timer *t)
{
    int cs = stm__cancel_off(); /* waits with t_lock held */
    pthread_mutex_lock(&t_lock);
    bool pending = t->h.idx != 0;
    if (pending)
        stm__heap_remove(heap_of(t), &t->h);
    while (running_elsewhere(t))
        pthread_cond_wait(&t_done, &t_lock);
    pthread_mutex_unlock(&t_lock);
    stm__cancel_restore(cs);
    return pending;
}

int stm__timer_reserve(uint32_t n)
{
    pthread_mutex_lock(&t_lock);
    int r = start_locked();
    if (r == 0) {
        uint32_t want = t_reserved + n;
        if (want < t_reserved)
            r = -ENOMEM;
        else if (want > t_lib.cap &&
                 !stm__grow((void **)&t_lib.v, &t_lib.cap, sizeof *t_lib.v, want))
            r = -ENOMEM;
        else
            t_reserved = want;
    }
    pthread_mutex_unlock(&t_lock);
    return r;
}

void stm__timer_unreserve(uint32_t n)
{
    pthread_mutex_lock(&t_lock);
    t_reserved -= n;
    pthread_mutex_unlock(&t_lock);
}

uint64_t stm__timer_set(struct stm__timer *t, int64_t deadline, bool wall)
{
    uint32_t tag = LIBCLOCK | (wall ? WALL : 0);
    pthread_mutex_lock(&t_lock);
    (void)start_locked(); /* only after stm_shutdown(); reserve started it */
    if (t->h.idx == 0 || t->h.tag != tag || t->h.key != deadline) {
        if (t->h.idx != 0)
            stm__heap_remove(heap_of(t), &t->h);
        t->h.key = deadline;
        t->h.tag = tag;
        /* cannot fail: the owner holds a reserved slot */
        bool ok = stm__heap_push(&t_lib, &t->h);
        (void)ok;
        pushed_locked(t);
    }
    uint64_t seq = t->h.seq;
    pthread_mutex_unlock(&t_lock);
    return seq;
}

void stm__timer_unset(struct stm__timer *t)
{
    pthread_mutex_lock(&t_lock);
    if (t->h.idx != 0)
        stm__heap_remove(heap_of(t), &t->h);
    pthread_mutex_unlock(&t_lock);
}

struct stm__timer *stm__timer_take_due(int64_t target, const struct stm__hnode *limit, int64_t *key,
                                       uint64_t *seq)
{
    pthread_mutex_lock(&t_lock);
    struct stm__hnode *top = stm__heap_top(&t_lib);
    struct stm__timer *t = NULL;
    if (top && top->key <= target && (limit == NULL || stm__hnode_before(top, limit))) {
        t = (struct stm__timer *)top;
        *key = top->key;
        *seq = top->seq;
        stm__heap_remove(&t_lib, top);
        t_vrunning = t;
        t_vthread = pthread_self();
    }
    pthread_mutex_unlock(&t_lock);
    return t;
}

void stm__timer_done(struct stm__timer *t)
{
    pthread_mutex_lock(&t_lock);
    if (t_vrunning == t)
        t_vrunning = NULL;
    pthread_cond_broadcast(&t_done);
    pthread_mutex_unlock(&t_lock);
}

void stm__timer_kick(void)
{
    pthread_mutex_lock(&t_lock);
    atomic_fetch_add_explicit(&t_newtop, 1, memory_order_relaxed);
    if (t_started)
        pthread_cond_signal(&t_wake);
    pthread_mutex_unlock(&t_lock);
}

void stm__timer_rebase(int64_t from, int64_t to)
{
    pthread_mutex_lock(&t_lock);
    /* the same shift for every key keeps the heap ordered (saturation
     * only merges keys into ties, which seq still orders) */
    for (uint32_t i = 0; i < t_lib.n; i++) {
        struct stm__hnode *n = t_lib.v[i];
        n->key = n->key >= STM_NEVER ? STM_NEVER : stm__sat_add(to, n->key - from);
    }
    atomic_fetch_add_explicit(&t_newtop, 1, memory_order_relaxed);
    if (t_started)
        pthread_cond_signal(&t_wake);
    pthread_mutex_unlock(&t_lock);
}

/* The system time was set: a deadline that stands for a wall-clock one
 * may be due now (or later than it was).  Fire them all now; each run
 * reads the wall clock again and arms what it finds. */
void stm__timer_wall_changed(void)
{
    pthread_mutex_lock(&t_lock);
    int64_t now = stm__now();
    bool any = false;
    for (uint32_t i = 0; i < t_lib.n; i++) {
        if (t_lib.v[i]->tag & WALL) {
            t_lib.v[i]->key = now;
            any = true;
        }
    }
    if (any) {
        stm__heap_fix(&t_lib);
        atomic_fetch_add_explicit(&t_newtop, 1, memory_order_relaxed);
        if (t_started)
            pthread_cond_signal(&t_wake);
    }
    pthread_mutex_unlock(&t_lock);
}

void stm__timer_shutdown(void)
{
    pthread_mutex_lock(&t_lock);
    bool join = t_started;
    if (join) {
        t_stop = true;
        pthread_cond_signal(&t_wake);
    }
    pthread_mutex_unlock(&t_lock);
    if (join)
        pthread_join(t_thread, NULL);
    pthread_mutex_lock(&t_lock);
    t_started = false;
    if (t_real.n == 0) {
        free(t_real.v);
        t_real.v = NULL;
        t_real.cap = 0;
    }
    /* room reserved by watchers that are still active stays theirs */
    if (t_lib.n == 0 && t_reserved == 0) {
        free(t_lib.v);
        t_lib.v = NULL;
        t_lib.cap = 0;
    }
    pthread_mutex_unlock(&t_lock);
}
