/*
 * vclock.c - the virtual clock: deterministic time for tests.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * While the virtual clock is on, a timed wait does not sleep by real time:
 * it puts a node in a heap ordered by (deadline, order of arrival) and
 * waits on its Waiter with no time-out.  stm_clock_advance() takes the due
 * nodes one at a time, sets the clock to the node's deadline, wakes its
 * thread and waits until that thread has settled (committed, returned from
 * stm_atomically, or waited again) before it takes the next.  A woken
 * thread holds a "settle token" (stm_tx.vtoken) until then.
 *
 * Watcher deadlines (the timer service's library-clock heap) take part in
 * the same order: when the earliest due entry is a watcher's, advance
 * runs it on its own thread, with the clock at its deadline.  Ties
 * between the two heaps go to the entry made first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "stm-internal.h"

struct vwait {
    struct stm__hnode h;
    struct stm__waiter *w;
    bool fired;
    int64_t rebased; /* real deadline after stm_clock_real(), else 0 */
};

static pthread_mutex_t vc_advance = PTHREAD_MUTEX_INITIALIZER; /* one advance at a time */
static pthread_mutex_t vc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vc_settled = PTHREAD_COND_INITIALIZER;
static struct stm__heap vc_heap;
static unsigned vc_pending; /* woken by advance, not yet settled */
/* the last stm_clock_real(): virtual and real now at the switch */
static int64_t vc_left_v, vc_left_r;

STM_API int stm_clock_virtual(int64_t start)
{
    if (start < 0)
        return -EINVAL;
    pthread_mutex_lock(&vc_lock);
    int r = 0;
    if (atomic_load(&stm__g.virtual_on)) {
        r = -EALREADY;
    } else {
        int64_t rnow = stm__mono_ns();
        atomic_store(&stm__g.virtual_now, start);
        atomic_store(&stm__g.virtual_on, true);
        stm__timer_rebase(rnow, start);
    }
    pthread_mutex_unlock(&vc_lock);
    return r;
}

STM_API bool stm_clock_is_virtual(void)
{
    return atomic_load(&stm__g.virtual_on);
}

STM_API void stm_clock_advance(int64_t ns)
{
    if (ns < 0)
        return;
    /* not a cancellation point: it waits for woken threads with vc_lock
     * held, and a thread cancelled in its wait settles (vwait_cancelled) */
    int cs = stm__cancel_off();
    pthread_mutex_lock(&vc_advance);
    pthread_mutex_lock(&vc_lock);
    if (!atomic_load(&stm__g.virtual_on)) {
        pthread_mutex_unlock(&vc_lock);
        pthread_mutex_unlock(&vc_advance);
        stm__cancel_restore(cs);
        return;
    }
    int64_t target = stm__sat_add(atomic_load(&stm__g.virtual_now), ns);
    if (target >= STM_NEVER)
        target = STM_NEVER - 1;
    for (;;) {
        struct stm__hnode *top = stm__heap_top(&vc_heap);
        int64_t tkey = top ? stm__heap_key(&vc_heap, top) : 0;
        if (top != NULL && tkey > target)
            top = NULL;
        /* a watcher's deadline first, if it comes before `top` */
        int64_t key;
        uint64_t seq;
        struct stm__timer *t = stm__timer_take_due(target, tkey, top, &key, &seq);
        if (t != NULL) {
            if (key > atomic_load(&stm__g.virtual_now))
                atomic_store(&stm__g.virtual_now, key);
            pthread_mutex_unlock(&vc_lock);
            t->fn(t, seq);
            stm__timer_done(t);
            pthread_mutex_lock(&vc_lock);
            continue;
        }
        if (top == NULL)
            break;
        struct vwait *vw = (struct vwait *)top;
        stm__heap_remove(&vc_heap, top);
        if (tkey > atomic_load(&stm__g.virtual_now))
            atomic_store(&stm__g.virtual_now, tkey);
        vw->fired = true;
        vc_pending++;
        vw->w->ops->notify(vw->w);
        while (vc_pending > 0)
            pthread_cond_wait(&vc_settled, &vc_lock);
    }
    atomic_store(&stm__g.virtual_now, target);
    pthread_mutex_unlock(&vc_lock);
    pthread_mutex_unlock(&vc_advance);
    stm__cancel_restore(cs);
}

STM_API int stm_clock_real(void)
{
    int cs = stm__cancel_off(); /* notifies with vc_lock held */
    pthread_mutex_lock(&vc_lock);
    if (atomic_load(&stm__g.virtual_on)) {
        int64_t vnow = atomic_load(&stm__g.virtual_now), rnow = stm__mono_ns();
        vc_left_v = vnow;
        vc_left_r = rnow;
        /* re-based first: the timer thread serves them once the clock
         * is real */
        stm__timer_rebase(vnow, rnow);
        atomic_store(&stm__g.virtual_on, false);
        stm__timer_kick(); /* it may have looked in between */
        struct stm__hnode *top;
        while ((top = stm__heap_top(&vc_heap)) != NULL) {
            struct vwait *vw = (struct vwait *)top;
            int64_t key = stm__heap_key(&vc_heap, top);
            stm__heap_remove(&vc_heap, top);
            vw->rebased = stm__sat_add(rnow, key - vnow);
            vw->w->ops->notify(vw->w);
        }
    }
    pthread_mutex_unlock(&vc_lock);
    stm__cancel_restore(cs);
    return 0;
}

void stm__vclock_settle(struct stm_tx *tx)
{
    tx->vtoken = false;
    pthread_mutex_lock(&vc_lock);
    if (vc_pending > 0 && --vc_pending == 0)
        pthread_cond_broadcast(&vc_settled);
    pthread_mutex_unlock(&vc_lock);
}

/* The thread is cancelled in its wait (stm__wait_cancellable): take its
 * node out of the heap, or, if stm_clock_advance() has fired it already,
 * settle for it (that advance waits for it). */
static void vwait_cancelled(void *arg)
{
    struct vwait *vw = arg;
    pthread_mutex_lock(&vc_lock);
    if (vw->fired) {
        if (vc_pending > 0 && --vc_pending == 0)
            pthread_cond_broadcast(&vc_settled);
    } else if (!vw->rebased) {
        stm__heap_remove(&vc_heap, &vw->h);
    }
    pthread_mutex_unlock(&vc_lock);
}

int stm__vclock_wait(struct stm_tx *tx, struct stm__waiter *w, int64_t deadline, int64_t real,
                     int64_t *rebased)
{
    struct vwait vw = {.w = w};
    pthread_mutex_lock(&vc_lock);
    if (!atomic_load(&stm__g.virtual_on)) {
        /* the clock went real since the caller looked: re-base as the
         * switch did the waits it found */
        *rebased = stm__sat_add(vc_left_r, deadline - vc_left_v);
        pthread_mutex_unlock(&vc_lock);
        return STM__VWAIT_REAL;
    }
    if (deadline <= atomic_load(&stm__g.virtual_now)) {
        pthread_mutex_unlock(&vc_lock);
        return STM__VWAIT_FIRED;
    }
    if (!stm__heap_push(&vc_heap, &vw.h, deadline)) {
        pthread_mutex_unlock(&vc_lock);
        return -ENOMEM;
    }
    if (tx->vtoken) { /* about to block: this thread has settled */
        tx->vtoken = false;
        if (vc_pending > 0 && --vc_pending == 0)
            pthread_cond_broadcast(&vc_settled);
    }
    pthread_mutex_unlock(&vc_lock);
    /* a wall-clock deadline still counts in real time */
    bool notified = true;
    pthread_cleanup_push(vwait_cancelled, &vw);
    while (!(notified = stm__wait_cancellable(tx, w, real)) && stm__mono_ns() < real)
        ;
    pthread_cleanup_pop(0);
    pthread_mutex_lock(&vc_lock);
    int r;
    if (vw.fired) {
        tx->vtoken = true;
        r = STM__VWAIT_FIRED;
    } else if (vw.rebased) {
        *rebased = vw.rebased;
        r = STM__VWAIT_REAL;
    } else {
        stm__heap_remove(&vc_heap, &vw.h);
        r = notified ? STM__VWAIT_NOTIFIED : STM__VWAIT_TIMEOUT;
    }
    pthread_mutex_unlock(&vc_lock);
    return r;
}

void stm__vclock_shutdown(void)
{
    stm_clock_real();
    pthread_mutex_lock(&vc_lock);
    free(vc_heap.v);
    vc_heap.v = NULL;
    vc_heap.n = vc_heap.cap = 0;
    pthread_mutex_unlock(&vc_lock);
}

/* fork(): see fork.c.  STM__FORK_PREPARE_OUTER waits for an advance in
 * progress (before transactions are stopped: an advance waits for them);
 * the child has none of the parent's waits. */
void stm__vclock_fork(int phase)
{
    switch (phase) {
    case STM__FORK_PREPARE_OUTER:
        pthread_mutex_lock(&vc_advance);
        break;
    case STM__FORK_PREPARE:
        pthread_mutex_lock(&vc_lock);
        break;
    case STM__FORK_CHILD:
        pthread_cond_init(&vc_settled, NULL);
        vc_heap.n = 0;
        vc_pending = 0;
        /* fall through */
    default:
        pthread_mutex_unlock(&vc_lock);
        pthread_mutex_unlock(&vc_advance);
        break;
    }
}
