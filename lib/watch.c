/*
 * watch.c - watchers: stm_watch_new, stm_atomically_watch, stm_unwatch,
 * and their deadline runs.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A watcher is registered on every TVar its function read on its last run
 * (a node in the TVar's `watchers` list).  A commit that finds a watcher on
 * a TVar it wrote runs the watcher phase (watch_phase.c) before it commits.
 *
 * A watcher has a TVar of its own, `self`, that every run reads, and that
 * a run that changes the watcher (its registrations, its timer, or, with
 * STM_WATCH_CHANGES_ONLY, the last value given to the callback, which is
 * self's value) writes, as does the stop.  So two such runs, or a run and
 * the stop, never commit concurrently: the TL2 locks serialise them, and
 * the watcher's other fields change only in a commit that holds self's
 * lock.
 *
 * Stopping: the stopping commit sets `dead` and unlinks the watcher from
 * its TVars while it holds their locks; afterwards (locks released) it
 * waits until no thread is inside its fn or cb (each thread publishes the
 * watcher it runs in stm_tx.watch_cur, then checks `dead`: a Dekker pair
 * whose expensive side, a process-wide barrier, is the stopper's), cancels
 * the timer (waiting for a deadline run in progress), then hands the
 * memory to epoch reclamation, stamped with a clock tick taken after the
 * unlinking: a transaction that could still have found the watcher in a
 * list started before that tick.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stm-internal.h"
#include "watch.h"

/* ---- per-thread bookkeeping ------------------------------------------- */

struct stm__watchtx *stm__wx_make(struct stm_tx *tx)
{
    tx->wx = stm__calloc(1, sizeof *tx->wx);
    if (tx->wx == NULL)
        stm__nomem(tx);
    return tx->wx;
}

void stm__wx_free_fresh(struct stm__watchtx *x)
{
    for (uint32_t i = 0; i < x->fresh.n; i++)
        free(x->fresh.v[i]);
    x->fresh.n = 0;
}

void stm__watch_reset(struct stm_tx *tx)
{
    stm__watch_reset_inline(tx);
}

void stm__watchtx_free(struct stm_tx *tx)
{
    struct stm__watchtx *x = tx->wx;
    if (x == NULL)
        return;
    stm__watch_reset(tx);
    free(x->made.v);
    free(x->stopped.v);
    free(x->seeds.v);
    free(x->runs.v);
    free(x->deps.v);
    free(x->meta.v);
    free(x->fresh.v);
    free(x->retired.v);
    for (uint32_t i = 0; i < x->spare.n; i++)
        stm__tvx_free(x->spare.v[i]);
    free(x->spare.v);
    free(x->next.v);
    free(x->rewrites.v);
    free(x->tmp.v);
    free(x->ents.v);
    free(x->map);
    free(x);
    tx->wx = NULL;
}

void stm__watch_branch_mark(struct stm_tx *tx, struct stm__branch *br)
{
    br->wnew_n = tx->wx ? tx->wx->made.n : 0;
    br->wstop_n = tx->wx ? tx->wx->stopped.n : 0;
}

void stm__watch_branch_rollback(struct stm_tx *tx, struct stm__branch *br)
{
    struct stm__watchtx *x = tx->wx;
    if (x) {
        /* the branch's new watchers were stm_alloc()ed: freed with it */
        x->made.n = br->wnew_n;
        while (x->stopped.n > br->wstop_n)
            stm__wx_unstop(x, x->stopped.v[--x->stopped.n]);
    }
}

/* ---- the public functions -------------------------------------------- */

static void fire(struct stm__timer *t, uint64_t armed);

STM_API stm_watch *stm_watch_new(stm_tx *tx, stm_watch_fn *fn, stm_watch_cb *cb, void *arg,
                                 unsigned flags)
{
    stm__check_tx(tx, "stm_watch_new");
    if (fn == NULL)
        stm__misuse("stm_watch_new", "the watcher function is NULL");
    if (flags & ~(unsigned)STM_WATCH_CHANGES_ONLY)
        stm__misuse("stm_watch_new", "unknown flags");
    struct stm__watchtx *x = stm__wx_get(tx);
    if (!STM__VEC_RESERVE(x->made, x->made.n + 1))
        stm__nomem(tx);
    struct stm_watch *w = stm_alloc(tx, sizeof *w); /* freed if discarded */
    memset(w, 0, sizeof *w);
    stm_tvar_init(&w->self, 0);
    w->timer.fn = fire;
    w->fn = fn;
    w->cb = cb;
    w->arg = arg;
    atomic_init(&w->deps, NULL);
    atomic_init(&w->ndeps, 0);
    w->flags = (uint8_t)(flags | STM__WATCH_FRESH);
    atomic_init(&w->dead, 0);
    atomic_init(&w->alone, 0);
    atomic_init(&w->slot, 0);
    atomic_init(&w->armed, 0);
    atomic_init(&w->dep0.var, NULL);
    w->dep0.w = w;
    x->made.v[x->made.n++] = w;
    stm_write(tx, &w->self, 0);
    return w;
}

struct make {
    stm_watch_fn *fn;
    stm_watch_cb *cb;
    void *arg;
    unsigned flags;
    stm_watch *w;
    bool committed;
};

static void made_ok(void *arg)
{
    ((struct make *)arg)->committed = true;
}

static int make_body(stm_tx *tx, void *arg)
{
    struct make *m = arg;
    m->w = stm_watch_new(tx, m->fn, m->cb, m->arg, m->flags);
    stm_after_commit(tx, made_ok, m);
    return 0;
}

STM_API stm_watch *stm_atomically_watch(stm_watch_fn *fn, stm_watch_cb *cb, void *arg,
                                        unsigned flags)
{
    /* (a published epoch: a body of either kind is running) */
    if (stm__self != NULL && atomic_load_explicit(&stm__self->epoch, memory_order_relaxed) != 0)
        stm__misuse("stm_atomically_watch", "called inside a transaction (use stm_watch_new)");
    if (fn == NULL)
        stm__misuse("stm_atomically_watch", "the watcher function is NULL");
    if (flags & ~(unsigned)STM_WATCH_CHANGES_ONLY)
        stm__misuse("stm_atomically_watch", "unknown flags");
    struct make m = {fn, cb, arg, flags, NULL, false};
    int r = stm_atomically(make_body, &m);
    if (m.committed)
        return m.w;
    errno = r < 0 && r != INT_MIN ? -r : ECANCELED;
    return NULL;
}

STM_API void stm_unwatch(stm_tx *tx, stm_watch *w)
{
    stm__check_tx(tx, "stm_unwatch");
    if (w == NULL)
        return;
    if (atomic_load_explicit(&w->dead, memory_order_relaxed))
        stm__misuse("stm_unwatch", "the watcher was stopped already");
    struct stm__watchtx *x = stm__wx_get(tx);
    if (!STM__VEC_RESERVE(x->stopped, x->stopped.n + 1))
        stm__nomem(tx);
    if (!stm__wx_stop(tx, x, w))
        return;
    x->stopped.v[x->stopped.n++] = w;
    /* read and write its TVar: conflicts with any run of it that commits
     * concurrently */
    stm_write(tx, &w->self, stm_read(tx, &w->self));
}

/* ---- deadline runs ------------------------------------------------------ */

struct firing {
    struct stm_watch *w;
    uint64_t armed;
    bool committed;
};

static void fired_ok(void *arg)
{
    ((struct firing *)arg)->committed = true;
}

static int fire_body(stm_tx *tx, void *arg)
{
    struct firing *f = arg;
    struct stm__watchtx *x = stm__wx_get(tx);
    if (!STM__VEC_RESERVE(x->seeds, x->seeds.n + 1))
        stm__nomem(tx);
    x->seeds.v[x->seeds.n].w = f->w;
    x->seeds.v[x->seeds.n].armed = f->armed;
    x->seeds.n++;
    /* takes the commit path even if the run turns out stale */
    stm_write(tx, &f->w->self, stm_read(tx, &f->w->self));
    stm_after_commit(tx, fired_ok, f);
    return 0;
}

static void run_alone_locked(struct stm_watch *w, uint64_t armed, bool timer);

/* A run of w of its own, for the timer's arming `armed` (or
 * STM__ARMED_ANY).  The watcher is alive: stopping it waits for this. */
static void run_alone(struct stm_watch *w, uint64_t armed, bool timer)
{
    /* One run of its own at a time, whatever started it (its deadline,
     * an fd, a retry: on any thread of the timer pool or the fd thread).
     * A run that finds another in progress waits for it, unless the
     * watcher is stopped meanwhile (that run may be the stop, waiting in
     * stm__timer_cancel() for this one).  The mark names the process (a
     * fork's child does not wait for a run of its parent's threads). */
    uint8_t mine = (uint8_t)(atomic_load_explicit(&stm__fork_gen, memory_order_relaxed) % 255 + 1);
    for (unsigned spins = 0;; spins++) {
        if (atomic_load_explicit(&w->dead, memory_order_acquire))
            return;
        uint8_t cur = atomic_load_explicit(&w->alone, memory_order_relaxed);
        if (cur != mine && atomic_compare_exchange_weak_explicit(
                               &w->alone, &cur, mine, memory_order_acquire, memory_order_relaxed))
            break;
        if (spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, 50 * 1000}; /* a slow callback: no busy wait */
            nanosleep(&ts, NULL);
        }
    }
    run_alone_locked(w, armed, timer);
    atomic_store_explicit(&w->alone, 0, memory_order_release);
}

static void run_alone_locked(struct stm_watch *w, uint64_t armed, bool timer)
{
    /* what fn will read first, fetched while the transaction starts: the
     * argument, the TVar it read last time (when one, held in the
     * watcher) */
    __builtin_prefetch(w->arg);
    if (atomic_load_explicit(&w->deps, memory_order_relaxed) == &w->dep0)
        __builtin_prefetch(atomic_load_explicit(&w->dep0.var, memory_order_relaxed));
    struct firing f = {w, armed, false};
    /* A run that retries must not block the thread that runs it: give up
     * at once (a deadline that has come on either clock). */
    int r = stm_atomically_until(fire_body, &f, 0);
    struct stm_tx *tx = stm__self;
    if (tx != NULL) {
        if (timer)
            stm__count(&tx->st.timer_fires);
        if (!f.committed)
            stm__count(&tx->st.watch_failures);
    }
    if (f.committed)
        stm__watch_retry_ok(w);
    else
        stm__watch_failed(w, r == -ETIMEDOUT ? -EAGAIN : r); /* reported, retried */
}

/* The timer service (or stm_clock_advance) calls this at the deadline. */
static void fire(struct stm__timer *t, uint64_t armed)
{
    run_alone((struct stm_watch *)((char *)t - offsetof(struct stm_watch, timer)), armed, true);
}

void stm__watch_run_now(struct stm_watch *w)
{
    run_alone(w, STM__ARMED_ANY, false);
}

/* ---- the end of a watcher --------------------------------------------- */

/* Whether some thread other than tx's is inside w's fn or cb. */
static bool running_elsewhere(struct stm_tx *tx, struct stm_watch *w)
{
    bool r = false;
    pthread_mutex_lock(&stm__reg_lock);
    for (struct stm_tx *t = stm__reg_head; t && !r; t = t->reg_next)
        r = t != tx && atomic_load_explicit(&t->watch_cur, memory_order_acquire) == w;
    pthread_mutex_unlock(&stm__reg_lock);
    return r;
}

void stm__watch_stopped(struct stm_tx *tx, struct stm_watch *w)
{
    /* after the commit, before its stops are done: not a cancellation
     * point (nanosleep below is one) */
    int cs = stm__cancel_off();
    /* `dead` was set in the commit: after this barrier every thread that
     * published w before it is seen, and any later one sees `dead` */
    if (!stm__heavy_barrier()) {
        /* membarrier() failed after registering (a seccomp filter): the
         * publications are fenced from now on; give a run that published
         * without a fence time to end */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    while (running_elsewhere(tx, w))
        sched_yield(); /* inside fn or cb: not for long */
    stm__reactor_forget(w);
    stm__timer_cancel(&w->timer);
    /* a transaction that found w in a list began before this tick */
    uint64_t stamp = atomic_fetch_add_explicit(&stm__g.clock, 1, memory_order_acq_rel) + 1;
    stm__limbo_push(tx, w, STM__FREE_WATCH, stamp);
    stm__cancel_restore(cs);
}

void stm__watch_reclaim(struct stm_watch *w)
{
    stm__tvx_free(stm__tvar_retire(&w->self, "stm_unwatch"));
    struct stm__wdep *d = atomic_load_explicit(&w->deps, memory_order_relaxed);
    if (d != NULL && d != &w->dep0)
        free(d);
    free(w);
}
