/*
 * stm-fd.h - file descriptors: stm_fd_ready, the reactor and the direct
 * wait, and the retries of failed watcher runs they share (fd_*.c,
 * reactor.c, watch_retry.c, watch_error.c; never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_FD_H
#define STM_FD_H

#include "stm-base.h"

struct stm_tx;
struct stm_watch;
struct stm__waiter;

/* ---- file descriptors: stm_fd_ready and the reactor (reactor.c) --------
 * One epoll instance and one thread for the process.  An interest is a
 * node in its fd's list (a table indexed by fd, under the reactor's lock):
 * a retrying thread's (its waiter is notified when the fd is ready, the
 * node is then unlinked; the thread's descriptor owns it), or a watcher's
 * (the watcher is run again; the reactor owns it, at most one per watcher
 * and fd, chained by watcher in a table of the reactor's).  The fd is
 * registered EPOLLONESHOT with the union of its nodes' events, re-armed
 * after each event while nodes remain: an idle fd costs no CPU, and
 * nothing is armed for an fd nobody waits on any more but, at most, one
 * last arming that finds no node. */
struct stm__fdnode {
    struct stm__fdnode *next, *prev;   /* the fd's list (or the run queue) */
    struct stm__fdnode *hnext, *hprev; /* a watcher's: the reactor's table */
    union {
        struct stm__waiter *waiter; /* a retrying thread's */
        struct stm_watch *w;        /* a watcher's */
    };
    int fd;
    short events;
    uint8_t flags; /* reactor.c: N_* */
};
/* a watcher's fn asked about fd and it was not ready */
struct stm__fdwant {
    struct stm_watch *w;
    int fd;
    short events;
};
/* Before a retry sleeps (tx->waiter prepared, TVars registered): put
 * tx's fd interests (tx->fdn) in the reactor.  1: sleep; 0: an fd cannot
 * be waited on (closed, a regular file): run again now; -ENOMEM, -ENOSPC
 * (the epoll limit) or the thread's creation error. */
int stm__reactor_wait_begin(struct stm_tx *tx);
void stm__reactor_wait_end(struct stm_tx *tx); /* after the sleep */
/* fd_wait.c: or, with a built-in Waiter on the real clock, sleep in
 * ppoll() on the fds: begin swaps tx->waiter for the thread's fd waiter
 * (false: not possible, use the reactor); end swaps it back. */
bool stm__fd_direct_begin(struct stm_tx *tx);
void stm__fd_direct_end(struct stm_tx *tx);
/* The attempt right after a direct wait that an fd ended (tx->fdhint ==
 * 1): did that ppoll() report fd ready for events (or an error)? */
bool stm__fd_hinted(struct stm_tx *tx, int fd, short events);
/* stm_fd_close: notify the threads whose direct wait includes fd */
void stm__fd_direct_closed(int fd);
void stm__fd_direct_fork(int phase);
/* A commit that ran watchers, committed, epoch still published: register
 * the fds their fns asked about (tx->fdw), then empty it. */
void stm__reactor_watch(struct stm_tx *tx);
/* The watcher has stopped (its `dead` is set): drop its interests and its
 * pending retry, and wait while the reactor runs it (unless the caller is
 * that run). */
void stm__reactor_forget(struct stm_watch *w);
void stm__reactor_shutdown(void);
/* stm_fd_close (fd_close.c): before fd is closed, take it out of the
 * epoll set; after, end every wait on it (threads run again, watchers are
 * queued to run) */
void stm__reactor_closing(int fd);
void stm__reactor_closed(int fd);
/* fd is closed: end every wait on it, direct and in the reactor */
void stm__fd_closed(int fd);
/* the watchers' fd nodes, plus the threads' nodes linked (for tests) */
uint32_t stm__reactor_nodes(void);
/* A run of w of its own failed: arm its retry at now + delay(failures in
 * a row, this one counted); returns when (STM_NEVER: it could not be
 * armed, for want of memory, or w is stopped).  A run that committed
 * resets the count and drops a pending retry (stm__watch_retry_ok). */
int64_t stm__watch_retry_arm(struct stm_watch *w);
void stm__watch_retry_ok(struct stm_watch *w);
/* (watch_retry.c) w's fd interest could not be registered (err, < 0):
 * retry its run on the schedule and report err when the retry comes */
void stm__watch_retry_lost(struct stm_watch *w, int err);
void stm__watch_retry_forget(struct stm_watch *w); /* w stopped: drop its record */
void stm__watch_retry_shutdown(void);
void stm__watch_retry_fork(int phase);
struct stm__watchtx;
/* a commit ran these watchers successfully: stm__watch_retry_ok() each
 * (cheap when no watcher is failing) */
void stm__watch_runs_ok(struct stm__watchtx *x);
/* watch_error.c: report a failed run of w of its own (err: the veto's
 * code, -EAGAIN for a retry, -ENOMEM, -ELOOP) and schedule its retry */
void stm__watch_failed(struct stm_watch *w, int err);
/* call the handler (outside any transaction; w alive) */
void stm__watch_report(struct stm_watch *w, int err, int64_t retry_at);
/* the schedule: the delay before the retry after `fails` failures in a row */
int64_t stm__watch_retry_delay(uint32_t fails);

#endif
