/*
 * fd_wait.c - a retry that waits on fds, slept in ppoll() by the waiting
 * thread itself.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Waking a thread through the reactor (reactor.c) takes two hops: the fd
 * thread wakes from epoll_wait(), then notifies the waiter.  When the
 * thread uses a built-in Waiter and the clock is real, a retry that has fd
 * interests sleeps instead on a waiter of its own whose wait() is a
 * ppoll() on those fds and on an eventfd that notify() writes (the TVars'
 * wait nodes and the wall-clock list point at it for the wait): an fd
 * wakes it in one hop, as it would wake a thread blocked in poll().  The
 * fds are polled level-triggered, so an fd that became ready before the
 * sleep ends it at once; a notify before the sleep stays in the eventfd.
 * A program's own Waiter (stm_set_waiter_ops) and the virtual clock keep
 * the reactor, so that their waits stay theirs.
 *
 * Closing an fd does not end a ppoll() on it (the sleeping thread holds
 * the file), so the waiters are listed (dw_head, under dw_lock, the fds
 * written under it too) for stm_fd_close() to notify those that wait on
 * the fd it closed; a waiter stays listed from its first wait to its
 * thread's end, and `waiting` says whether its fds are current.
 *
 * The wake path is kept as short as a thread's own poll():
 *  - the eventfd is drained before a wait only if a notify() may have
 *    written it since the last drain (`dirty`; notify() runs under the
 *    lock of the list that holds the waiter, which the waiting thread takes
 *    to leave it, so the flag is seen); a count left over can only end a
 *    later wait early, a spurious wake-up, never lose one;
 *  - when ppoll() returned because an fd was ready, the attempt that runs
 *    right after it takes the revents as its stm_fd_ready() answer for that
 *    fd (stm__fd_hinted) instead of asking poll() again: the fd was ready
 *    an instant before, as poll() would have said an instant later.  The
 *    hint lives for that one attempt only (tx->fdhint, see tx.c's
 *    stm__reset_extras and stm__finish_commit_slow).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "stm-internal.h"

/* Past this many fds a retry registers them in the reactor instead. */
#define DIRECT_MAX 1024

struct fd_waiter {
    struct stm__waiter base;
    int efd;
    struct pollfd *pfd; /* [0]: efd; then the attempt's fds */
    uint32_t n, cap;
    bool fdwoke;         /* the last wait ended with an fd ready */
    atomic_bool dirty;   /* notify() may have written the eventfd */
    atomic_bool waiting; /* in a wait on pfd (set under dw_lock) */
    bool listed;
    struct fd_waiter *dnext, *dprev; /* dw_head's list */
};

static pthread_mutex_t dw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fd_waiter *dw_head;

static void drain(struct fd_waiter *w)
{
    uint64_t x;
    ssize_t r = read(w->efd, &x, sizeof x);
    (void)r; /* EAGAIN: nothing to take */
}

static void fw_prepare(struct stm__waiter *base)
{
    struct fd_waiter *w = (struct fd_waiter *)base;
    if (atomic_load_explicit(&w->dirty, memory_order_relaxed)) {
        atomic_store_explicit(&w->dirty, false, memory_order_relaxed);
        drain(w);
    }
}

static void fw_notify(struct stm__waiter *base)
{
    uint64_t one = 1;
    atomic_store_explicit(&((struct fd_waiter *)base)->dirty, true, memory_order_relaxed);
    ssize_t r = write(((struct fd_waiter *)base)->efd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

static bool fw_wait(struct stm__waiter *base, int64_t deadline)
{
    struct fd_waiter *w = (struct fd_waiter *)base;
    struct timespec ts, *tp = NULL;
    if (deadline < STM_NEVER) {
        int64_t d = deadline - stm__mono_ns();
        if (d < 0)
            d = 0;
        ts.tv_sec = (time_t)(d / INT64_C(1000000000));
        ts.tv_nsec = (long)(d % INT64_C(1000000000));
        tp = &ts;
    }
    int r = ppoll(w->pfd, w->n, tp, NULL);
    if (r < 0)
        return errno == EINTR; /* (a signal: a spurious wake-up) */
    if (r == 0)
        return false;
    if (w->pfd[0].revents)
        drain(w);
    w->fdwoke = r > (w->pfd[0].revents != 0);
    return true; /* notified, or an fd is ready: run again */
}

static void fw_destroy(struct stm__waiter *base)
{
    struct fd_waiter *w = (struct fd_waiter *)base;
    pthread_mutex_lock(&dw_lock);
    if (w->listed) {
        if (w->dnext)
            w->dnext->dprev = w->dprev;
        if (w->dprev)
            w->dprev->dnext = w->dnext;
        else
            dw_head = w->dnext;
    }
    pthread_mutex_unlock(&dw_lock);
    close(w->efd);
    free(w->pfd);
    free(w);
}

static const struct stm__waiter_ops fd_waiter_ops = {
    "fd", NULL, fw_destroy, fw_prepare, fw_wait, fw_notify, NULL,
};

static struct fd_waiter *get(struct stm_tx *tx)
{
    if (tx->fdwaiter)
        return (struct fd_waiter *)tx->fdwaiter;
    struct fd_waiter *w = stm__calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->base.ops = &fd_waiter_ops;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        free(w);
        return NULL;
    }
    tx->fdwaiter = &w->base;
    return w;
}

bool stm__fd_direct_begin(struct stm_tx *tx)
{
    if (tx->fdn.n > DIRECT_MAX || atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire))
        return false;
    /* the thread's backend: a built-in one? */
    if (stm__waiter_get(tx) < 0 || tx->waiter->ops->user != NULL)
        return false;
    struct fd_waiter *w = get(tx);
    if (w == NULL)
        return false;
    pthread_mutex_lock(&dw_lock);
    if (tx->fdn.n + 1 > w->cap &&
        !stm__grow((void **)&w->pfd, &w->cap, sizeof *w->pfd, tx->fdn.n + 1)) {
        pthread_mutex_unlock(&dw_lock);
        return false;
    }
    w->pfd[0].fd = w->efd;
    w->pfd[0].events = POLLIN;
    for (uint32_t i = 0; i < tx->fdn.n; i++) {
        w->pfd[i + 1].fd = tx->fdn.v[i].fd;
        w->pfd[i + 1].events = tx->fdn.v[i].events;
    }
    w->n = tx->fdn.n + 1;
    if (!w->listed) {
        w->dprev = NULL;
        w->dnext = dw_head;
        if (dw_head)
            dw_head->dprev = w;
        dw_head = w;
        w->listed = true;
    }
    atomic_store_explicit(&w->waiting, true, memory_order_relaxed);
    pthread_mutex_unlock(&dw_lock);
    w->fdwoke = false;
    tx->fdsaved = tx->waiter;
    tx->waiter = &w->base;
    return true;
}

void stm__fd_direct_end(struct stm_tx *tx)
{
    struct fd_waiter *w = (struct fd_waiter *)tx->fdwaiter;
    /* 2: the next begin (stm__reset_extras) makes it 1 for that attempt */
    tx->fdhint = w->fdwoke ? 2 : 0;
    w->fdwoke = false;
    atomic_store_explicit(&w->waiting, false, memory_order_relaxed);
    tx->waiter = tx->fdsaved;
    tx->fdsaved = NULL;
}

bool stm__fd_hinted(struct stm_tx *tx, int fd, short events)
{
    /* (not POLLNVAL: stm_fd_ready's own poll() then ends the other waits
     * on the closed fd) */
    struct fd_waiter *w = (struct fd_waiter *)tx->fdwaiter;
    for (uint32_t i = 1; i < w->n; i++)
        if (w->pfd[i].fd == fd && (w->pfd[i].revents & (events | POLLERR | POLLHUP)))
            return true;
    return false;
}

void stm__fd_direct_closed(int fd)
{
    pthread_mutex_lock(&dw_lock);
    for (struct fd_waiter *w = dw_head; w; w = w->dnext) {
        if (!atomic_load_explicit(&w->waiting, memory_order_relaxed))
            continue;
        for (uint32_t i = 1; i < w->n; i++)
            if (w->pfd[i].fd == fd) {
                fw_notify(&w->base);
                break;
            }
    }
    pthread_mutex_unlock(&dw_lock);
}

void stm__fd_direct_fork(int phase)
{
    if (phase == STM__FORK_PREPARE)
        pthread_mutex_lock(&dw_lock);
    else
        pthread_mutex_unlock(&dw_lock);
}
