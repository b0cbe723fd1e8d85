/*
 * timer.c - the timer service: a small pool of threads that call
 * functions at their deadlines.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Timers live in 4-ary heaps (heap.c; insert and cancel O(log n), ties in
 * the order they were added): one for deadlines on the real
 * CLOCK_MONOTONIC (waits of the "thread" Waiter), and one for deadlines
 * on the library's clock (watchers), which is the same clock unless the
 * virtual clock is on; that one sits behind a timing wheel (wheel.c), so
 * that it holds only the next millisecond or so of a million deadlines.
 *
 * The pool.  Up to one thread per online CPU, at most POOL_MAX (the
 * environment variable STM_TIMER_THREADS, 1 to POOL_MAX, sets the most):
 * one starts with the first timer, another each time a thread takes its
 * firings and finds more due that no thread is free to take, or a
 * hand-off (stm__timer_soon) comes while every thread runs firings it
 * took, and all stop at stm_shutdown().  They are alike (leader and
 * followers).  One of them, the leader, serves the deadlines: it sleeps
 * on a CLOCK_MONOTONIC condition variable until the earliest (timer slack
 * 1 ns, and the wake-up spin of wakespin.c), takes under the lock the
 * earliest and those due with it, up to BATCH, calls their callbacks one
 * by one without the lock held, and comes back: it keeps the lead while
 * it runs firings, so that one thread that keeps up serves a stream of
 * deadlines alone, with no hand-off between threads per firing.  The
 * others (followers) help only when it falls behind: they wait until the
 * earliest deadline is JOIN_LATE past (woken early when a thread takes a
 * batch and finds the next firing that late, or when a new earliest
 * deadline comes while the leader is not asleep), and then take firings
 * too; a follower that has run firings and finds none due takes the lead
 * from a leader still busy with its own (its callback may run long).  A
 * stm__timer_soon() hand-off is taken by any free thread at once.  So:
 *
 *  - timers are taken in (deadline, arming) order, and each thread calls
 *    the callbacks it took in that order; callbacks on different threads
 *    run concurrently and end in any order (one of a later deadline may
 *    start first when both were due, taken by another thread in the
 *    same moment);
 *  - one timer's callbacks never overlap: a thread that takes a timer
 *    whose earlier firing another thread is still running (or has taken
 *    and not started) waits for that one first;
 *  - stm__timer_cancel() waits while the timer's callback runs on another
 *    thread, and revokes a firing that a thread has taken but not started
 *    (so that a callback that cancels its own timer does not wait for a
 *    thread that waits for it), so that once it returns the owner may free
 *    the timer.
 *
 * On the virtual clock the pool leaves the library-clock heap alone:
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
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "stm-internal.h"

/* hnode.tag: which heap; WALL: see stm__timer_wall_changed(); KEEP: a
 * fork's child keeps it (stm__timer_soon) */
enum { REAL = 1, LIBCLOCK = 2, WALL = 4, KEEP = 8 };

#define POOL_MAX 4

/* A thread of the pool, and the firings it has taken: b[0, n), run in
 * that order; b[i] NULL once run or revoked. */
#define BATCH 8
/* How late the earliest due firing may be before a follower takes firings
 * too (the leader alone keeps up with a dense stream of deadlines at half
 * the cost of two threads passing the lock and the lead back and forth;
 * issue 13's burst: doc/benchmarks.md, "watch") */
#define JOIN_LATE STM_MSEC(1)
struct worker {
    pthread_t thread;
    struct stm__timer *b[BATCH];
    uint64_t seq[BATCH]; /* the arming of each firing taken */
    int64_t key[BATCH];  /* and its deadline (a fork's child puts it back) */
    unsigned n;
    int cur; /* the index whose callback runs, or -1 */
};

#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
/* (spins a little before it sleeps: the pool's threads take it for short
 * moments, one after the other) */
static pthread_mutex_t t_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
#else
static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
#endif
static pthread_cond_t t_wake; /* the leader: a new earliest timer, or stop */
static pthread_cond_t t_idle; /* followers: work, no leader, or stop */
static pthread_cond_t t_done; /* a callback finished, or a claim was revoked */
static struct stm__heap t_real;
static struct stm__wheel t_wheel; /* library-clock timers (wheel.c) */
#define t_lib (t_wheel.near)
static uint32_t t_reserved; /* room promised in t_lib */
static struct worker t_w[POOL_MAX];
static unsigned t_nw;     /* threads started */
static unsigned t_max;    /* the most there may be */
static unsigned t_idle_n; /* followers waiting on t_idle */
static unsigned t_idle_never; /* of those, waiting with no time-out */
static unsigned t_busy;       /* threads running the firings they took */
/* the thread that serves the next deadline (NULL: none), and whether it
 * sleeps until it (else it runs firings it took and will look again) */
static struct worker *t_leader;
static bool t_lead_sleeps;
/* the callback running on a thread in stm_clock_advance() */
static struct stm__timer *t_vrunning;
static pthread_t t_vthread;
static bool t_started, t_stop, t_conds;
static _Atomic uint64_t t_newtop; /* counts new earliest timers (for the spin) */
_Atomic uint8_t stm__fork_gen;

static void ts_of(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / INT64_C(1000000000));
    ts->tv_nsec = (long)(ns % INT64_C(1000000000));
}

/* the owner's flags of a tag (the wheel keeps its own above them) */
#define TAG_FLAGS ((UINT32_C(1) << STM__WHEEL_TAG) - 1)

static int64_t key_of(const struct stm__timer *t)
{
    return (t->h.tag & LIBCLOCK) ? stm__wheel_key(&t_wheel, &t->h) : stm__heap_key(&t_real, &t->h);
}

static void remove_locked(struct stm__timer *t)
{
    if (t->h.tag & LIBCLOCK)
        stm__wheel_remove(&t_wheel, &t->h);
    else
        stm__heap_remove(&t_real, &t->h);
}

/* The earliest timer the pool serves (library-clock ones only while the
 * clock is real), and its key; moves the wheel's buckets that start by
 * `upto` into its heap.  NULL: none is due by upto, and *key is at most
 * the earliest deadline (STM_NEVER: none at all). */
static struct stm__hnode *next_locked(int64_t upto, int64_t *key)
{
    struct stm__hnode *r = stm__heap_top(&t_real);
    int64_t k = r ? t_real.v[0].key : STM_NEVER;
    if (!atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)) {
        int64_t lk;
        struct stm__hnode *l = stm__wheel_peek(&t_wheel, upto, &lk);
        if (l != NULL ? r == NULL || stm__hnode_before(lk, l, k, r) : lk <= k) {
            r = l;
            k = lk;
        }
    }
    *key = k;
    return r;
}

/* The earliest timer changed, or work came: wake whom it concerns (the
 * sleeping leader; the followers when nobody sleeps until the new
 * earliest, or when one waits with no time-out: each then waits until
 * that deadline is JOIN_LATE past, in case the leader is held up in a
 * callback). */
static void wake_locked(void)
{
    atomic_fetch_add_explicit(&t_newtop, 1, memory_order_relaxed);
    if (t_lead_sleeps)
        pthread_cond_signal(&t_wake);
    if (t_idle_n > 0 && (!t_lead_sleeps || t_idle_never > 0))
        pthread_cond_broadcast(&t_idle);
}

/* A follower's wait: until the earliest deadline, `key`, is JOIN_LATE
 * past (STM_NEVER: until woken). */
static void follow(int64_t key)
{
    t_idle_n++;
    if (key >= STM_NEVER) {
        t_idle_never++;
        pthread_cond_wait(&t_idle, &t_lock);
        t_idle_never--;
    } else {
        struct timespec ts;
        ts_of(stm__sat_add(key, JOIN_LATE), &ts);
        pthread_cond_timedwait(&t_idle, &t_lock, &ts);
    }
    t_idle_n--;
}

/* The leader's sleep until `key` (STM_NEVER: until woken). */
static void lead_sleep(int64_t key, int64_t now)
{
    if (key >= STM_NEVER) {
        pthread_cond_wait(&t_wake, &t_lock);
        return;
    }
    /* stm_set_wake_spin() (wakespin.c): sleep until the window before
     * the deadline, then poll the clock (unless a new earliest timer
     * comes) */
    int64_t spin = stm__spin_window();
    if (spin > 0 && key - now <= spin) {
        if (stm__spin_start(now, key - now)) {
            uint64_t gen = atomic_load_explicit(&t_newtop, memory_order_relaxed);
            pthread_mutex_unlock(&t_lock);
            while (stm__mono_ns() < key &&
                   atomic_load_explicit(&t_newtop, memory_order_relaxed) == gen)
                stm__cpu_relax();
            pthread_mutex_lock(&t_lock);
            return;
        }
        spin = 0; /* over the budget: sleep to the deadline */
    }
    int64_t until = spin > 0 ? key - spin : key;
    struct timespec ts;
    ts_of(until, &ts);
    if (pthread_cond_timedwait(&t_wake, &t_lock, &ts) == ETIMEDOUT)
        stm__spin_sample(until, stm__mono_ns());
}

/* Another thread runs t, or took an earlier firing of it (seq: the
 * arming of the firing the caller took). */
static bool before_me(const struct worker *me, const struct stm__timer *t, uint64_t seq)
{
    for (unsigned i = 0; i < t_nw; i++) {
        const struct worker *o = &t_w[i];
        if (o == me)
            continue;
        for (unsigned j = 0; j < o->n; j++)
            if (o->b[j] == t && ((int)j == o->cur || o->seq[j] < seq))
                return true;
    }
    return false;
}

/* Take the firings due by `now`, up to BATCH, in (deadline, arming)
 * order (the first is `top`, due).  A stm__timer_soon() firing ends the
 * batch: such a callback may run long (the fd thread's hand-offs drain a
 * queue), and what is due after it is better taken by another thread. */
static void take_locked(struct worker *me, struct stm__hnode *top, int64_t now)
{
    unsigned n = 0;
    bool alone;
    int64_t key, key0 = key_of((struct stm__timer *)top);
    do {
        struct stm__timer *t = (struct stm__timer *)top;
        alone = (t->h.tag & KEEP) != 0;
        remove_locked(t);
        me->b[n] = t;
        me->seq[n] = top->seq;
        me->key[n] = key0;
        stm__prefetch_owner(top); /* read by its callback soon */
        n++;
    } while (!alone && n < BATCH && (top = next_locked(now, &key)) != NULL && (key0 = key) <= now);
    me->n = n;
    me->cur = -1;
}

static void *timer_main(void *arg);

/* One more thread (if it cannot be had, the pool stays as it is). */
static int grow_locked(void)
{
    struct worker *w = &t_w[t_nw];
    w->n = 0;
    w->cur = -1;
    int e = pthread_create(&w->thread, NULL, timer_main, w);
    if (e == 0)
        t_nw++;
    return -e;
}

static void *timer_main(void *arg)
{
    struct worker *me = arg;
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
#endif
#if defined(__linux__) && defined(PR_SET_NAME)
    prctl(PR_SET_NAME, "stm-timer", 0, 0, 0);
#endif
    int64_t now = 0; /* the clock, as last read */
    bool ran = false; /* the last turn ran firings */
    pthread_mutex_lock(&t_lock);
    while (!t_stop) {
        int64_t key;
        struct stm__hnode *top = next_locked(now, &key);
        /* (due by the last reading: no need to read the clock again) */
        if (key > now && key < STM_NEVER) {
            now = stm__mono_ns();
            if (key <= now)
                top = next_locked(now, &key);
        }
        if (top == NULL || key > now) {
            /* nothing due: lead, unless another thread does (one that has
             * run firings takes the lead from a leader busy with its own) */
            if (t_leader == NULL || t_leader == me || (ran && !t_lead_sleeps)) {
                t_leader = me;
                t_lead_sleeps = true;
                lead_sleep(key, now);
                t_lead_sleeps = false;
            } else {
                follow(key);
            }
            ran = false;
            continue;
        }
        /* due: the leader's (and a hand-off is anyone's); a follower
         * takes it too once it waits JOIN_LATE */
        if (t_leader != NULL && t_leader != me && !(top->tag & KEEP) && now - key < JOIN_LATE &&
            (now = stm__mono_ns()) - key < JOIN_LATE) {
            follow(key);
            ran = false;
            continue;
        }
        if (t_leader == NULL)
            t_leader = me;
        take_locked(me, top, now);
        t_busy++;
        struct stm__hnode *next = next_locked(now, &key);
        if (next != NULL && key <= now) {
            /* more due than this thread took: a follower takes them once
             * they wait JOIN_LATE (it times its wait so; wake it now if
             * they do already, or for a hand-off), and there should be
             * one */
            if (t_idle_n > 0) {
                if (now - key >= JOIN_LATE || (next->tag & KEEP))
                    pthread_cond_signal(&t_idle);
            } else if (t_nw < t_max) {
                grow_locked();
            }
        }
        for (unsigned j = 0; j < me->n; j++) {
            struct stm__timer *t = me->b[j];
            uint64_t seq = me->seq[j];
            while (me->b[j] == t && t != NULL && before_me(me, t, seq))
                pthread_cond_wait(&t_done, &t_lock);
            if (me->b[j] == NULL)
                continue; /* cancelled meanwhile */
            me->cur = (int)j;
            pthread_mutex_unlock(&t_lock);
            t->fn(t, seq);
            pthread_mutex_lock(&t_lock);
            me->b[j] = NULL;
            me->cur = -1;
            pthread_cond_broadcast(&t_done);
        }
        me->n = 0;
        t_busy--;
        ran = true;
    }
    pthread_mutex_unlock(&t_lock);
    return NULL;
}

/* The most threads the pool may have: STM_TIMER_THREADS (1 to POOL_MAX),
 * else one per online CPU, at most POOL_MAX. */
static unsigned pool_size(void)
{
    const char *e = getenv("STM_TIMER_THREADS");
    if (e != NULL && e[0] >= '1' && e[0] <= '0' + POOL_MAX && e[1] == '\0')
        return (unsigned)(e[0] - '0');
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX ? POOL_MAX : (unsigned)n;
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
        pthread_cond_init(&t_idle, &a);
        pthread_condattr_destroy(&a);
        pthread_cond_init(&t_done, NULL);
        t_conds = true;
    }
    t_stop = false;
    t_leader = NULL;
    t_lead_sleeps = false;
    t_idle_n = 0;
    t_idle_never = 0;
    t_busy = 0;
    /* one thread to begin with; more when runs come due faster than the
     * pool takes them */
    t_max = pool_size();
    t_nw = 0;
    int e = grow_locked();
    if (e != 0)
        return e;
    t_started = true;
    return 0;
}

/* t is now in a heap: wake the pool if it is the new earliest (or may
 * be: the pool's threads wait until at most the earliest deadline). */
static void pushed_locked(struct stm__timer *t)
{
    if ((t->h.tag & LIBCLOCK) && atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire))
        return; /* the pool leaves those alone (next_locked) */
    int64_t key;
    struct stm__hnode *top = next_locked(INT64_MIN, &key);
    if (top == &t->h || (top == NULL && key >= key_of(t)))
        wake_locked();
}

int stm__timer_add(struct stm__timer *t, int64_t deadline)
{
    pthread_mutex_lock(&t_lock);
    int r = start_locked();
    if (r == 0) {
        t->h.tag = REAL;
        if (!stm__heap_push(&t_real, &t->h, deadline))
            r = -ENOMEM;
        else
            pushed_locked(t);
    }
    pthread_mutex_unlock(&t_lock);
    return r;
}

int stm__timer_soon(struct stm__timer *t)
{
    pthread_mutex_lock(&t_lock);
    int r = start_locked();
    if (r == 0 && stm__hnode_idx(&t->h) == 0) {
        t->h.tag = REAL | KEEP;
        if (!stm__heap_push(&t_real, &t->h, stm__mono_ns())) {
            r = -ENOMEM;
        } else {
            pushed_locked(t);
            /* due now: a free thread takes it (not only the leader), or
             * if every thread there is runs firings it took (a hand-off
             * may run long), one more */
            if (t_idle_n > 0)
                pthread_cond_signal(&t_idle);
            else if (t_busy == t_nw && t_nw < t_max)
                grow_locked();
        }
    }
    pthread_mutex_unlock(&t_lock);
    return r;
}

/* t runs on a thread other than the caller */
static bool running_elsewhere(struct stm__timer *t)
{
    pthread_t self = pthread_self();
    for (unsigned i = 0; i < t_nw; i++) {
        const struct worker *o = &t_w[i];
        if (o->cur >= 0 && o->b[o->cur] == t && !pthread_equal(o->thread, self))
            return true;
    }
    return t_vrunning == t && !pthread_equal(t_vthread, self);
}

bool stm__timer_cancel(struct stm__timer *t)
{
    int cs = stm__cancel_off(); /* waits with t_lock held */
    pthread_mutex_lock(&t_lock);
    bool pending = stm__hnode_idx(&t->h) != 0;
    if (pending)
        remove_locked(t);
    /* a firing taken and not started will not start */
    bool revoked = false;
    for (unsigned i = 0; i < t_nw; i++) {
        struct worker *o = &t_w[i];
        for (unsigned j = 0; j < o->n; j++)
            if (o->b[j] == t && (int)j != o->cur) {
                o->b[j] = NULL;
                revoked = true;
            }
    }
    if (revoked) {
        pthread_cond_broadcast(&t_done);
        pending = true;
    }
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
    if (t_reserved == 0)
        stm__wheel_free(&t_wheel); /* the buckets' room: no deadline left */
    pthread_mutex_unlock(&t_lock);
}

uint64_t stm__timer_set(struct stm__timer *t, int64_t deadline, bool wall)
{
    uint32_t tag = LIBCLOCK | (wall ? WALL : 0);
    pthread_mutex_lock(&t_lock);
    (void)start_locked(); /* only after stm_shutdown(); reserve started it */
    if (stm__hnode_idx(&t->h) == 0 || (t->h.tag & TAG_FLAGS) != tag || key_of(t) != deadline) {
        if (stm__hnode_idx(&t->h) != 0)
            remove_locked(t);
        t->h.tag = tag;
        /* cannot fail: the owner holds a reserved slot in t_lib */
        stm__wheel_add(&t_wheel, &t->h, deadline);
        pushed_locked(t);
    }
    uint64_t seq = t->h.seq;
    pthread_mutex_unlock(&t_lock);
    return seq;
}

void stm__timer_unset(struct stm__timer *t)
{
    /* commonly a deadline run's commit, after its timer fired: in no heap
     * (only its owner puts it in one, and the owner is serialised with
     * this call; what a pool thread does meanwhile only takes it out) */
    if (stm__hnode_idx(&t->h) == 0)
        return;
    pthread_mutex_lock(&t_lock);
    if (stm__hnode_idx(&t->h) != 0)
        remove_locked(t);
    pthread_mutex_unlock(&t_lock);
}

struct stm__timer *stm__timer_take_due(int64_t target, int64_t lkey, const struct stm__hnode *limit,
                                       int64_t *key, uint64_t *seq)
{
    pthread_mutex_lock(&t_lock);
    int64_t k;
    struct stm__hnode *top = stm__wheel_peek(&t_wheel, target, &k);
    struct stm__timer *t = NULL;
    if (top && k <= target && (limit == NULL || stm__hnode_before(k, top, lkey, limit))) {
        t = (struct stm__timer *)top;
        *key = k;
        *seq = top->seq;
        stm__wheel_remove(&t_wheel, top);
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
    wake_locked();
    pthread_mutex_unlock(&t_lock);
}

void stm__timer_rebase(int64_t from, int64_t to)
{
    pthread_mutex_lock(&t_lock);
    /* the same shift for every key keeps the heap ordered (saturation
     * only merges keys into ties, which seq still orders); the wheel's
     * buckets are for one clock: all in the heap first */
    stm__wheel_flatten(&t_wheel);
    for (uint32_t i = 0; i < t_lib.n; i++) {
        int64_t k = t_lib.v[i].key;
        t_lib.v[i].key = k >= STM_NEVER ? STM_NEVER : stm__sat_add(to, k - from);
    }
    wake_locked();
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
    stm__wheel_flatten(&t_wheel); /* (keys change in place: all in the heap) */
    for (uint32_t i = 0; i < t_lib.n; i++) {
        if (t_lib.v[i].n->tag & WALL) {
            t_lib.v[i].key = now;
            any = true;
        }
    }
    if (any) {
        stm__heap_fix(&t_lib);
        wake_locked();
    }
    pthread_mutex_unlock(&t_lock);
}

void stm__timer_shutdown(void)
{
    pthread_mutex_lock(&t_lock);
    bool join = t_started;
    unsigned n = t_nw;
    if (join) {
        t_stop = true;
        pthread_cond_broadcast(&t_wake);
        pthread_cond_broadcast(&t_idle);
    }
    pthread_mutex_unlock(&t_lock);
    for (unsigned i = 0; join && i < n; i++)
        pthread_join(t_w[i].thread, NULL);
    pthread_mutex_lock(&t_lock);
    t_started = false;
    t_nw = 0;
    if (t_real.n == 0) {
        free(t_real.v);
        t_real.v = NULL;
        t_real.cap = 0;
    }
    /* room reserved by watchers that are still active stays theirs */
    stm__wheel_free(&t_wheel);
    if (t_lib.n == 0 && t_wheel.nb == 0 && t_reserved == 0) {
        free(t_lib.v);
        t_lib.v = NULL;
        t_lib.cap = 0;
    }
    pthread_mutex_unlock(&t_lock);
}

/* fork(): see fork.c.  The child has no timer threads: it starts its pool
 * at once if watchers have deadlines armed or runs waiting (the "thread"
 * Waiter's timers belong to threads the child does not have, and are
 * dropped, as are firings the parent's pool had taken). */
void stm__timer_fork(int phase)
{
    if (phase == STM__FORK_PREPARE) {
        pthread_mutex_lock(&t_lock);
        return;
    }
    if (phase == STM__FORK_CHILD) {
        atomic_fetch_add_explicit(&stm__fork_gen, 1, memory_order_relaxed);
        bool was = t_started;
        t_started = t_stop = t_conds = false;
        t_idle_n = 0;
        t_idle_never = 0;
        t_busy = 0;
        t_leader = NULL;
        t_lead_sleeps = false;
        t_vrunning = NULL;
        /* firings the parent's threads had taken: back in their heaps, as
         * they were (one whose run was over in the parent is stale in the
         * child, and its run does nothing: watch.c); a library-clock one
         * into the wheel's heap, which has room reserved for it (a bucket
         * might have to allocate) */
        for (unsigned i = 0; i < t_nw; i++) {
            struct worker *o = &t_w[i];
            for (unsigned j = 0; j < o->n; j++) {
                struct stm__timer *t = o->b[j];
                if (t != NULL && stm__hnode_idx(&t->h) == 0)
                    (void)stm__heap_readd((t->h.tag & LIBCLOCK) ? &t_lib : &t_real, &t->h,
                                          o->key[j]);
            }
            o->n = 0;
            o->cur = -1;
        }
        t_nw = 0;
        uint32_t k = 0;
        for (uint32_t i = 0; i < t_real.n; i++) {
            struct stm__hent e = t_real.v[i];
            if (e.n->tag & KEEP) {
                t_real.v[k] = e;
                atomic_store_explicit(&e.n->idx, ++k, memory_order_relaxed);
            } else {
                atomic_store_explicit(&e.n->idx, 0, memory_order_relaxed);
            }
        }
        t_real.n = k;
        stm__heap_fix(&t_real);
        if (was && t_lib.n + t_wheel.nb + t_real.n > 0)
            (void)start_locked(); /* if it fails, the next timer tries */
    }
    pthread_mutex_unlock(&t_lock);
}
