/*
 * dispatch.c - stm_defer and the dispatcher: callbacks that run after
 * their transaction has committed, one at a time, in commit order, on a
 * library thread or on the application's own event loop.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A callback's node is allocated when stm_defer() is called (so that the
 * commit cannot fail for want of memory) and linked into one global FIFO
 * while the committing transaction still holds its write locks: a
 * transaction that read its writes commits, and queues, after it.
 *
 * By default one library thread, started with the first queued callback,
 * runs the queue.  stm_dispatch_fd() stops that thread and hands the
 * queue to the application: an eventfd that is readable while anything is
 * queued (one write per empty-to-non-empty change, so wake-ups coalesce),
 * drained by stm_dispatch().
 *
 * One at a time, in commit order, whoever runs them: a callback is taken
 * from the queue and run only by the holder of the baton (q_busy), which
 * the library thread and every stm_dispatch() caller take for each
 * callback and give back after it; a caller that finds it taken waits
 * (q_idle).  A stm_dispatch() from inside a callback returns 0 at once: the
 * callbacks behind the running one wait for it to return.
 *
 * Stopping the library thread (stm_dispatch_fd(), stm_shutdown()) is done
 * by one caller, which joins it; any other that comes meanwhile waits for
 * that join to finish (q_joining) instead of joining the thread again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include "stm-internal.h"

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER; /* the library thread waits */
static pthread_cond_t q_idle = PTHREAD_COND_INITIALIZER; /* q_busy or q_joining cleared */
static struct stm__deferred *q_head, **q_tail = &q_head;
static pthread_t q_thread;
static bool q_thread_on, q_stop, q_fd_mode;
static bool q_busy;    /* the baton: a callback is running */
static bool q_joining; /* a caller is joining the library thread */
static int q_fd = -1;
/* the calling thread runs a callback (it holds the baton) */
static _Thread_local bool in_callback;

STM_API void stm_defer(stm_tx *tx, void (*fn)(void *arg), void *arg)
{
    stm__check_tx_ro(tx, "stm_defer");
    if (fn == NULL)
        stm__misuse("stm_defer", "the callback is NULL");
    if (!STM__VEC_RESERVE(tx->defers, tx->defers.n + 1))
        stm__nomem(tx);
    struct stm__deferred *d = stm__malloc(sizeof *d);
    if (d == NULL)
        stm__nomem(tx);
    d->next = NULL;
    d->fn = fn;
    d->arg = arg;
    tx->defers.v[tx->defers.n++] = d;
    tx->extras = 1;
}

void stm__defers_discard(struct stm_tx *tx, uint32_t from)
{
    while (tx->defers.n > from)
        free(tx->defers.v[--tx->defers.n]);
}

/* Take the first queued callback; q_lock held. */
static struct stm__deferred *pop_locked(void)
{
    struct stm__deferred *d = q_head;
    if (d != NULL) {
        q_head = d->next;
        if (q_head == NULL)
            q_tail = &q_head;
    }
    return d;
}

/* Give the baton back; q_lock held. */
static void release_locked(void)
{
    q_busy = false;
    pthread_cond_broadcast(&q_idle);
    pthread_cond_signal(&q_cond); /* the library thread may wait for the baton */
}

/* A callback's thread was cancelled inside it (the callback's code may
 * have cancellation points): give the baton back, or every dispatcher
 * would wait for it for good. */
static void callback_cancelled(void *d)
{
    in_callback = false;
    free(d);
    pthread_mutex_lock(&q_lock);
    release_locked();
    pthread_mutex_unlock(&q_lock);
}

/* Run d, holding the baton (taken by the caller); q_lock held, and held
 * again on return. */
static void run_locked(struct stm__deferred *d)
{
    pthread_mutex_unlock(&q_lock);
    in_callback = true;
    pthread_cleanup_push(callback_cancelled, d);
    d->fn(d->arg);
    pthread_cleanup_pop(0);
    in_callback = false;
    free(d);
    pthread_mutex_lock(&q_lock);
    release_locked();
}

static void *dispatcher_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&q_lock);
    for (;;) {
        while (!q_stop && (q_head == NULL || q_busy))
            pthread_cond_wait(&q_cond, &q_lock);
        if (q_head == NULL || q_fd_mode)
            break; /* stopping: the queue is empty, or the application's */
        if (q_busy) { /* stopping, and a stm_dispatch() caller runs one */
            pthread_cond_wait(&q_cond, &q_lock);
            continue;
        }
        q_busy = true;
        run_locked(pop_locked());
    }
    pthread_mutex_unlock(&q_lock);
    return NULL;
}

/* write() and read() are cancellation points: not with q_lock held. */
static void fd_signal_locked(void)
{
#if defined(__linux__)
    uint64_t one = 1;
    int cs = stm__cancel_off();
    if (q_fd >= 0 && write(q_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is already non-zero, so it is readable */
    }
    stm__cancel_restore(cs);
#endif
}

static void fd_drain_locked(void)
{
#if defined(__linux__)
    uint64_t n;
    int cs = stm__cancel_off();
    if (q_fd >= 0 && read(q_fd, &n, sizeof n) < 0) {
        /* EAGAIN: nothing to drain */
    }
    stm__cancel_restore(cs);
#endif
}

void stm__defers_queue(struct stm_tx *tx)
{
    pthread_mutex_lock(&q_lock);
    bool was_empty = q_head == NULL;
    for (uint32_t i = 0; i < tx->defers.n; i++) {
        *q_tail = tx->defers.v[i];
        q_tail = &tx->defers.v[i]->next;
    }
    tx->defers.n = 0;
    if (q_fd_mode) {
        if (was_empty)
            fd_signal_locked();
    } else {
        if (!q_thread_on) {
            q_stop = false;
            /* If no thread can be had, the queue waits for stm_dispatch()
             * or stm_shutdown(), which run it. */
            q_thread_on = pthread_create(&q_thread, NULL, dispatcher_main, NULL) == 0;
        }
        pthread_cond_signal(&q_cond);
    }
    pthread_mutex_unlock(&q_lock);
}

/* Stop the library's dispatcher thread; called with q_lock held, returns
 * with it held, once the thread has ended.  One caller joins; the others
 * wait for it. */
static void stop_thread_locked(void)
{
    int cs = stm__cancel_off(); /* (q_lock or q_joining must not stay taken) */
    while (q_thread_on) {
        if (q_joining) {
            pthread_cond_wait(&q_idle, &q_lock);
            continue;
        }
        q_joining = true;
        q_stop = true;
        pthread_cond_broadcast(&q_cond);
        pthread_t t = q_thread;
        pthread_mutex_unlock(&q_lock);
        pthread_join(t, NULL);
        pthread_mutex_lock(&q_lock);
        q_thread_on = false;
        q_stop = false;
        q_joining = false;
        pthread_cond_broadcast(&q_idle);
    }
    stm__cancel_restore(cs);
}

STM_API int stm_dispatch_fd(void)
{
#if defined(__linux__)
    pthread_mutex_lock(&q_lock);
    if (q_fd < 0) {
        q_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q_fd < 0) {
            int e = errno;
            pthread_mutex_unlock(&q_lock);
            return -e;
        }
    }
    q_fd_mode = true;
    stop_thread_locked();
    if (q_head != NULL)
        fd_signal_locked();
    int fd = q_fd;
    pthread_mutex_unlock(&q_lock);
    return fd;
#else
    return -ENOSYS;
#endif
}

STM_API int stm_dispatch(void)
{
    struct stm_tx *tx = stm__self;
    if (tx != NULL && stm__in_body(tx))
        stm__misuse("stm_dispatch", "called inside a transaction");
    if (in_callback)
        return 0; /* from a callback: the ones behind it wait for it */
    int ran = 0;
    pthread_mutex_lock(&q_lock);
    for (;;) {
        if (q_busy) {
            int cs = stm__cancel_off(); /* (q_lock or q_joining must not stay taken) */
            while (q_busy)
                pthread_cond_wait(&q_idle, &q_lock);
            stm__cancel_restore(cs);
        }
        struct stm__deferred *d = pop_locked();
        if (d == NULL) {
            fd_drain_locked();
            pthread_mutex_unlock(&q_lock);
            return ran;
        }
        q_busy = true;
        run_locked(d);
        if (ran < INT32_MAX)
            ran++;
    }
}

void stm__dispatch_shutdown(void)
{
    pthread_mutex_lock(&q_lock);
    stop_thread_locked(); /* it runs what is queued before it stops */
    pthread_mutex_unlock(&q_lock);
    stm_dispatch(); /* what the application had not run yet */
    pthread_mutex_lock(&q_lock);
    if (q_fd >= 0)
        close(q_fd);
    q_fd = -1;
    q_fd_mode = false;
    pthread_mutex_unlock(&q_lock);
}
