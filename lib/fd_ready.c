/*
 * fd_ready.c - stm_fd_ready: the readiness of a file descriptor as a
 * transactional read.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The answer comes from poll() with no time-out, now.  A "no" is kept in
 * the attempt, as stm_elapsed() keeps a deadline that has not come: a
 * retry of the attempt also waits for the fd (reactor.c), and a watcher's
 * fn that got it is run again when the fd is ready.  Like the reads and
 * deadlines of a discarded stm_or_else() branch, a "no" stays.
 *
 * A "closed" (POLLNVAL) also ends the waits that other threads and
 * watchers may still have on that fd number (fd_close.c): its file is
 * gone, so they would wait for nothing (close(2) tells the library
 * nothing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>

#include "stm-internal.h"

#define STM__FD_EVENTS                                                                             \
    (POLLIN | POLLPRI | POLLOUT | POLLRDNORM | POLLRDBAND | POLLWRNORM | POLLWRBAND | POLLRDHUP)

STM_API bool stm_fd_ready(stm_tx *tx, int fd, short events)
{
    stm__check_tx_ro(tx, "stm_fd_ready");
    if (fd < 0)
        return true; /* as POLLNVAL: the caller finds out */
    if (tx->fdhint == 1 && stm__fd_hinted(tx, fd, events))
        return true; /* the ppoll() that woke this attempt said so */
    struct pollfd p = {fd, events, 0};
    int r;
    do
        r = poll(&p, 1, 0);
    while (r < 0 && errno == EINTR);
    if (r > 0 && (p.revents & POLLNVAL))
        stm__fd_closed(fd); /* closed: so are the waits on it (fd_close.c) */
    if (r != 0)
        return true;                 /* ready, an error or hang-up, or poll() failed */
    events &= (short)STM__FD_EVENTS; /* (0: errors and hang-ups only) */
    if (!STM__VEC_RESERVE(tx->fdn, tx->fdn.n + 1))
        stm__nomem(tx);
    struct stm__fdnode *n = &tx->fdn.v[tx->fdn.n++];
    n->next = n->prev = n->hnext = n->hprev = NULL;
    n->waiter = NULL;
    n->fd = fd;
    n->events = events;
    n->flags = 0;
    tx->extras = 1;
    struct stm_watch *w = atomic_load_explicit(&tx->watch_cur, memory_order_relaxed);
    if (tx->watch_dep && w != NULL) {
        /* a watcher's fn: run it again when the fd is ready */
        if (!STM__VEC_RESERVE(tx->fdw, tx->fdw.n + 1))
            stm__nomem(tx);
        tx->fdw.v[tx->fdw.n].w = w;
        tx->fdw.v[tx->fdw.n].fd = fd;
        tx->fdw.v[tx->fdw.n].events = events;
        tx->fdw.n++;
    }
    return false;
}
