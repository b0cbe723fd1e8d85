/*
 * reactor.c - readiness of file descriptors for waiting transactions and
 * watchers: one epoll instance and one thread for the whole process.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * stm_fd_ready() (fd_ready.c) answers from poll(); when the answer is no,
 * the attempt keeps an interest (fd, events).  A retry (tx.c) links its
 * interests into the lists of their fds here, after its waiter is armed
 * and its TVars registered, and arms each fd in epoll (EPOLLONESHOT, the
 * union of the events its nodes want; level-triggered, so an fd that is
 * ready already reports at once: no lost wake-up).  The thread takes each
 * event under the lock, notifies the waiters and queues the watchers of
 * the nodes it satisfies (an error or hang-up satisfies all), unlinks
 * them, and re-arms the fd for the nodes left.  Watchers queued are run
 * by the timer service's pool of threads (timer.c), each in a transaction
 * of its own, as deadline runs are (watch.c: stm__watch_run_now): the
 * thread hands the queue to up to DRAINERS timers of the pool
 * (stm__timer_soon), whose callbacks take watchers from it until it is
 * empty, so that many fds ready at once are served by every thread of
 * the pool; it runs them itself only when the pool cannot take them (no
 * memory, no thread).
 *
 * A watcher's interests belong to the reactor, at most one node per
 * watcher and fd, each a small heap block that is also chained, by its
 * watcher, in a table of the reactor's (so that a watcher that never
 * waits on an fd pays nothing, and one that does pays one block per fd:
 * the retries of failed runs are kept apart, in watch_retry.c); a commit
 * whose watcher runs asked about fds adds them (stm__reactor_watch), an
 * event moves the node to the run queue, the run frees it, and the
 * watcher's stop drops them all (stm__reactor_forget).  A node whose
 * watcher no longer asks stays until the fd is ready once more (one extra
 * run of fn, which then asks for nothing) or the watcher stops.
 *
 * Closed fds.  epoll forgets an fd when its file is closed, without an
 * event, so a wait in progress on an fd that another thread closes with
 * close(2) is not ended by the close (as with poll() in another thread);
 * stm_fd_close() (fd_close.c) ends them (stm__reactor_closed).  An fd
 * closed before the wait begins cannot be armed (EBADF), and the retry
 * then runs the body again at once, whose stm_fd_ready() sees POLLNVAL.
 * An fd number that is closed and reused is armed afresh (EPOLL_CTL_MOD
 * fails with ENOENT, then ADD); the nodes that were armed for the closed
 * file are stale then, and fire (N_ARMED: arm()).  A stale event, for a
 * file that a dup kept open, only wakes a waiter spuriously.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "stm-internal.h"
#include "watch.h" /* stm__watch_runs_ok(): the runs of a commit */

#define WAKE_KEY UINT64_MAX /* epoll data of the eventfd that wakes the thread */

/* stm__fdnode.flags */
#define N_LINKED 1u /* in its fd's list */
#define N_QUEUED 2u /* a watcher's, whose fd was ready: in the run queue */
#define N_ARMED 4u  /* counted in a successful arming of its fd */
#define N_WATCH 8u  /* a watcher's (in the watchers' table), else a thread's */

static pthread_mutex_t r_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t r_done = PTHREAD_COND_INITIALIZER; /* a watcher run ended */
static int r_ep = -1, r_ev = -1;
static struct stm__fdnode **r_tab; /* fd -> its list */
static uint32_t r_cap;
static pthread_t r_thread;
static bool r_started, r_stop;
static _Thread_local bool r_self; /* this thread is the reactor's */
/* Watchers queued are run by the drainers (timers of the pool whose
 * callbacks empty the queue), or by this thread when the pool cannot;
 * r_running[i]: the watcher drainer i runs now, [DRAINERS]: this
 * thread's.  A watcher's runs never overlap (watch.c), so one watcher is
 * in at most one slot. */
#define DRAINERS 4
static struct stm__timer r_drain[DRAINERS];
static void drain_fire(struct stm__timer *t, uint64_t seq);
static struct stm_watch *r_running[DRAINERS + 1];
static _Thread_local struct stm_watch *r_mine; /* the one this thread runs */
static uint32_t q_n;                           /* nodes in the run queue */
/* watcher nodes whose fd was ready, in order: their watchers to run */
static struct stm__fdnode *q_head, *q_tail;
/* every watcher node, chained by watcher (hnext, hprev) */
static struct stm__fdnode **w_b;
static uint32_t w_nb, r_wnodes;

static inline uint32_t wbucket(const struct stm_watch *w)
{
    return stm__ptr_hash(w, w_nb - 1);
}

static void wtab_add(struct stm__fdnode *n)
{
    struct stm__fdnode **b = &w_b[wbucket(n->w)];
    n->hprev = NULL;
    n->hnext = *b;
    if (*b)
        (*b)->hprev = n;
    *b = n;
    r_wnodes++;
}

static void wtab_del(struct stm__fdnode *n)
{
    if (n->hnext)
        n->hnext->hprev = n->hprev;
    if (n->hprev)
        n->hprev->hnext = n->hnext;
    else
        w_b[wbucket(n->w)] = n->hnext;
    r_wnodes--;
}

/* room in the table for one more node (at most two per bucket) */
static bool wtab_reserve(void)
{
    if (r_wnodes + 1 <= 2 * w_nb)
        return true;
    uint32_t nb = w_nb ? 2 * w_nb : 64;
    struct stm__fdnode **b = stm__calloc(nb, sizeof *b);
    if (b == NULL)
        return false;
    struct stm__fdnode **old = w_b;
    uint32_t onb = w_nb;
    w_b = b;
    w_nb = nb;
    r_wnodes = 0;
    for (uint32_t i = 0; i < onb; i++)
        for (struct stm__fdnode *n = old[i], *next; n; n = next) {
            next = n->hnext;
            wtab_add(n);
        }
    free(old);
    return true;
}

static bool tab_reserve(int fd)
{
    if ((uint32_t)fd < r_cap)
        return true;
    uint32_t cap = r_cap ? r_cap : 64;
    while (cap <= (uint32_t)fd)
        cap *= 2;
    struct stm__fdnode **t = stm__realloc(r_tab, (size_t)cap * sizeof *t);
    if (t == NULL)
        return false;
    memset(t + r_cap, 0, (size_t)(cap - r_cap) * sizeof *t);
    r_tab = t;
    r_cap = cap;
    return true;
}

static void link_node(struct stm__fdnode *n)
{
    n->prev = NULL;
    n->next = r_tab[n->fd];
    if (n->next)
        n->next->prev = n;
    r_tab[n->fd] = n;
    n->flags = (uint8_t)((n->flags | N_LINKED) & ~N_ARMED);
}

static void unlink_node(struct stm__fdnode *n)
{
    if (n->next)
        n->next->prev = n->prev;
    if (n->prev)
        n->prev->next = n->next;
    else
        r_tab[n->fd] = n->next;
    n->next = n->prev = NULL;
    n->flags &= (uint8_t) ~(N_LINKED | N_ARMED);
}

static void kick(void)
{
    uint64_t one = 1;
    ssize_t n = write(r_ev, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

static void dequeue(struct stm__fdnode *n)
{
    if (n->next)
        n->next->prev = n->prev;
    else
        q_tail = n->prev;
    if (n->prev)
        n->prev->next = n->next;
    else
        q_head = n->next;
    n->next = n->prev = NULL;
    n->flags &= (uint8_t)~N_QUEUED;
    q_n--;
}

/* n is unlinked: wake its thread, or queue its watcher to run */
static void fire(struct stm__fdnode *n)
{
    if (!(n->flags & N_WATCH)) {
        n->waiter->ops->notify(n->waiter);
        return;
    }
    n->next = NULL;
    n->prev = q_tail;
    if (q_tail)
        q_tail->next = n;
    else
        q_head = n;
    q_tail = n;
    n->flags |= N_QUEUED;
    q_n++;
    if (!r_self && r_ev >= 0)
        kick();
}

/* a watcher's node, neither linked nor queued */
static void free_watch_node(struct stm__fdnode *n)
{
    wtab_del(n);
    free(n);
}

/* fire every node of fd (it is closed): none is left */
static void fire_all(int fd)
{
    for (struct stm__fdnode *n = r_tab[fd], *next; n; n = next) {
        next = n->next;
        unlink_node(n);
        fire(n);
    }
}

/* Arm fd for the events its nodes want (if any): 0 or -errno.  If fd is
 * not in the epoll set although nodes were armed for it, the file they
 * were armed for was closed (epoll forgets it) and the number now names
 * another: those nodes are stale and fire (their waiters run again and
 * find out), then fd is armed for the rest.  If fd is closed (EBADF),
 * they fire too, and the nodes not armed yet (the caller's) are left to
 * the caller. */
static int arm(int fd)
{
    for (;;) {
        if (r_tab[fd] == NULL)
            return 0;
        uint32_t want = 0; /* (0 still reports errors and hang-ups) */
        for (struct stm__fdnode *n = r_tab[fd]; n; n = n->next)
            want |= (uint16_t)n->events;
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = want | EPOLLONESHOT;
        ev.data.u64 = (uint64_t)fd;
        if (epoll_ctl(r_ep, EPOLL_CTL_MOD, fd, &ev) != 0) {
            int e = errno;
            if (e != ENOENT && e != EBADF)
                return -e;
            bool stale = false;
            for (struct stm__fdnode *n = r_tab[fd], *next; n; n = next) {
                next = n->next;
                if (n->flags & N_ARMED) {
                    unlink_node(n);
                    fire(n);
                    stale = true;
                }
            }
            if (e == EBADF)
                return -e; /* (the caller's new nodes: the caller's to end) */
            if (stale)
                continue;
            if (epoll_ctl(r_ep, EPOLL_CTL_ADD, fd, &ev) != 0)
                return -errno;
        }
        for (struct stm__fdnode *n = r_tab[fd]; n; n = n->next)
            n->flags |= N_ARMED;
        return 0;
    }
}

static void *reactor_main(void *unused);

static int start(void)
{
    if (r_started)
        return 0;
    if (r_ep < 0) {
        r_ep = epoll_create1(EPOLL_CLOEXEC);
        if (r_ep < 0)
            return -errno;
        r_ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u64 = WAKE_KEY;
        if (r_ev < 0 || epoll_ctl(r_ep, EPOLL_CTL_ADD, r_ev, &ev) != 0) {
            int e = errno;
            if (r_ev >= 0)
                close(r_ev);
            close(r_ep);
            r_ev = r_ep = -1;
            return -e;
        }
    }
    if (r_drain[0].fn == NULL) /* (set once, before any is handed over) */
        for (unsigned i = 0; i < DRAINERS; i++)
            r_drain[i].fn = drain_fire;
    r_stop = false;
    int e = pthread_create(&r_thread, NULL, reactor_main, NULL);
    if (e != 0)
        return -e;
    r_started = true;
    return 0;
}

/* An event on fd: wake or queue what it satisfies, re-arm for the rest. */
static void fd_event(int fd, uint32_t got)
{
    bool all = (got & (EPOLLERR | EPOLLHUP)) != 0;
    for (struct stm__fdnode *n = r_tab[fd], *next; n; n = next) {
        next = n->next;
        if (!all && !(got & (uint16_t)n->events))
            continue;
        unlink_node(n);
        fire(n);
    }
    if (r_tab[fd] != NULL && arm(fd) != 0)
        fire_all(fd); /* cannot be re-armed: let them all find out */
}

/* Run the first queued watcher in slot `slot` (under r_lock, which is let
 * go during the run). */
static void run_due(unsigned slot)
{
    struct stm__fdnode *n = q_head;
    dequeue(n);
    struct stm_watch *w = n->w;
    free_watch_node(n);
    r_running[slot] = w;
    r_mine = w;
    pthread_mutex_unlock(&r_lock);
    stm__watch_run_now(w);
    pthread_mutex_lock(&r_lock);
    r_mine = NULL;
    r_running[slot] = NULL;
    pthread_cond_broadcast(&r_done);
}

/* Drainer i, on a thread of the pool: run queued watchers until none is
 * left. */
static void drain_fire(struct stm__timer *t, uint64_t seq)
{
    (void)seq;
    unsigned slot = (unsigned)(t - r_drain);
    pthread_mutex_lock(&r_lock);
    while (q_head != NULL && !r_stop)
        run_due(slot);
    pthread_mutex_unlock(&r_lock);
}

/* Under r_lock, with watchers queued: have the pool run them, one drainer
 * per queued watcher up to DRAINERS (a drainer already waiting or running
 * takes what comes).  false: the pool could take none. */
static bool hand_off(void)
{
    uint32_t want = q_n < DRAINERS ? q_n : DRAINERS;
    uint32_t took = 0;
    for (uint32_t i = 0; i < want; i++)
        if (stm__timer_soon(&r_drain[i]) == 0)
            took++;
    return took != 0;
}

/* w is being run for the reactor by a thread other than the caller */
static bool running_elsewhere(struct stm_watch *w)
{
    if (r_mine == w)
        return false; /* the caller's own run (it stops w) */
    for (unsigned i = 0; i <= DRAINERS; i++)
        if (r_running[i] == w)
            return true;
    return false;
}

static void *reactor_main(void *unused)
{
    (void)unused;
#if defined(__linux__) && defined(PR_SET_NAME)
    prctl(PR_SET_NAME, "stm-reactor", 0, 0, 0);
#endif
    r_self = true;
    struct epoll_event ev[64];
    pthread_mutex_lock(&r_lock);
    while (!r_stop) {
        /* (a drainer empties the queue; it is handed over again when
         * more comes, which is what spreads a burst over the pool) */
        if (q_head && !hand_off()) {
            run_due(DRAINERS);
            continue;
        }
        pthread_mutex_unlock(&r_lock);
        int n = epoll_wait(r_ep, ev, 64, -1);
        pthread_mutex_lock(&r_lock);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == WAKE_KEY) {
                uint64_t x;
                ssize_t k = read(r_ev, &x, sizeof x);
                (void)k;
                continue;
            }
            int fd = (int)ev[i].data.u64;
            if ((uint32_t)fd < r_cap)
                fd_event(fd, ev[i].events);
        }
    }
    pthread_mutex_unlock(&r_lock);
    return NULL;
}

int stm__reactor_wait_begin(struct stm_tx *tx)
{
    int r = 1;
    pthread_mutex_lock(&r_lock);
    int e = start();
    if (e < 0) {
        pthread_mutex_unlock(&r_lock);
        return e;
    }
    for (uint32_t i = 0; i < tx->fdn.n && r == 1; i++) {
        struct stm__fdnode *n = &tx->fdn.v[i];
        n->waiter = tx->waiter;
        n->flags = 0;
        if (!tab_reserve(n->fd)) {
            r = -ENOMEM;
            break;
        }
        link_node(n);
        e = arm(n->fd);
        if (e == -ENOMEM || e == -ENOSPC)
            r = e;
        else if (e < 0)
            r = 0; /* EBADF (closed), EPERM (a regular file): ready */
    }
    pthread_mutex_unlock(&r_lock);
    return r;
}

void stm__reactor_wait_end(struct stm_tx *tx)
{
    pthread_mutex_lock(&r_lock);
    for (uint32_t i = 0; i < tx->fdn.n; i++)
        if (tx->fdn.v[i].flags & N_LINKED)
            unlink_node(&tx->fdn.v[i]);
    pthread_mutex_unlock(&r_lock);
}

/* Add w's interest in (fd, events): 0, -ENOMEM or -ENOSPC. */
static int watch_one(struct stm_watch *w, int fd, short events)
{
    if (!tab_reserve(fd))
        return -ENOMEM;
    struct stm__fdnode *n = r_tab[fd];
    while (n && !((n->flags & N_WATCH) && n->w == w))
        n = n->next;
    if (n == NULL) {
        if (!wtab_reserve() || (n = stm__calloc(1, sizeof *n)) == NULL)
            return -ENOMEM;
        n->w = w;
        n->fd = fd;
        n->flags = N_WATCH;
        wtab_add(n);
        link_node(n);
    }
    n->events |= events;
    int e = arm(fd);
    if (!(n->flags & N_LINKED))
        return 0; /* stale (its file was closed): queued to run */
    if (e == -ENOMEM || e == -ENOSPC) {
        unlink_node(n);
        free_watch_node(n);
        return e;
    }
    if (e < 0) {
        unlink_node(n); /* closed, or a regular file: ready now */
        fire(n);
    }
    return 0;
}

void stm__reactor_watch(struct stm_tx *tx)
{
    pthread_mutex_lock(&r_lock);
    int e = start(); /* (-EMFILE, -EAGAIN...: no thread to serve the fds) */
    for (uint32_t i = 0; i < tx->fdw.n; i++) {
        struct stm__fdwant *f = &tx->fdw.v[i];
        /* (a watcher that this commit stopped: its stop drops nothing) */
        if (atomic_load_explicit(&f->w->dead, memory_order_seq_cst))
            continue;
        int r = e < 0 ? e : watch_one(f->w, f->fd, f->events);
        if (r < 0) {
            /* retry its run on the schedule, and report r when the retry
             * comes (not from inside the commit) */
            stm__count(&tx->st.watch_failures);
            stm__watch_retry_lost(f->w, r);
        }
    }
    tx->fdw.n = 0;
    pthread_mutex_unlock(&r_lock);
}

void stm__reactor_forget(struct stm_watch *w)
{
    pthread_mutex_lock(&r_lock);
    if (w_nb) {
        for (struct stm__fdnode *n = w_b[wbucket(w)], *next; n; n = next) {
            next = n->hnext;
            if (n->w != w)
                continue;
            if (n->flags & N_LINKED)
                unlink_node(n);
            else if (n->flags & N_QUEUED)
                dequeue(n);
            free_watch_node(n);
        }
    }
    while (running_elsewhere(w))
        pthread_cond_wait(&r_done, &r_lock);
    pthread_mutex_unlock(&r_lock);
    stm__watch_retry_forget(w);
}

void stm__reactor_closing(int fd)
{
    pthread_mutex_lock(&r_lock);
    if (r_ep >= 0 && fd >= 0 && fd != r_ep && fd != r_ev)
        (void)epoll_ctl(r_ep, EPOLL_CTL_DEL, fd, NULL); /* (a dup may keep the file) */
    pthread_mutex_unlock(&r_lock);
}

void stm__reactor_closed(int fd)
{
    pthread_mutex_lock(&r_lock);
    if (fd >= 0 && (uint32_t)fd < r_cap)
        fire_all(fd);
    pthread_mutex_unlock(&r_lock);
}

uint32_t stm__reactor_nodes(void)
{
    pthread_mutex_lock(&r_lock);
    uint32_t n = r_wnodes;
    for (uint32_t i = 0; i < r_cap; i++)
        for (struct stm__fdnode *e = r_tab[i]; e; e = e->next)
            n += !(e->flags & N_WATCH);
    pthread_mutex_unlock(&r_lock);
    return n;
}

void stm__reactor_shutdown(void)
{
    pthread_mutex_lock(&r_lock);
    bool join = r_started;
    if (join) {
        r_stop = true;
        kick();
    }
    pthread_mutex_unlock(&r_lock);
    if (join)
        pthread_join(r_thread, NULL);
    /* drainers stop at r_stop; what they leave queued runs once the
     * reactor starts again */
    for (unsigned i = 0; i < DRAINERS; i++)
        stm__timer_cancel(&r_drain[i]);
    pthread_mutex_lock(&r_lock);
    r_started = false;
    if (r_wnodes == 0) {
        /* nothing left to serve: give everything back */
        bool empty = true;
        for (uint32_t i = 0; i < r_cap && empty; i++)
            empty = r_tab[i] == NULL;
        if (empty) {
            free(r_tab);
            r_tab = NULL;
            r_cap = 0;
            free(w_b);
            w_b = NULL;
            w_nb = 0;
            if (r_ep >= 0) {
                close(r_ev);
                close(r_ep);
                r_ev = r_ep = -1;
            }
        }
    }
    pthread_mutex_unlock(&r_lock);
    stm__watch_retry_shutdown();
}

/* fork(): see fork.c.  The child must not use the parent's epoll set (the
 * two would share it): it closes its copies of the descriptors, makes a
 * set of its own and arms every fd of interest in it again. */
void stm__reactor_fork(int phase)
{
    if (phase == STM__FORK_PREPARE) {
        pthread_mutex_lock(&r_lock);
        stm__watch_retry_fork(phase);
        stm__fd_direct_fork(phase);
        return;
    }
    stm__fd_direct_fork(phase);
    stm__watch_retry_fork(phase);
    if (phase == STM__FORK_CHILD) {
        if (r_ep >= 0) {
            close(r_ev);
            close(r_ep);
            r_ev = r_ep = -1;
        }
        r_started = r_stop = false;
        for (unsigned i = 0; i <= DRAINERS; i++)
            r_running[i] = NULL;
        bool any = false;
        for (uint32_t i = 0; i < r_cap; i++)
            for (struct stm__fdnode *n = r_tab[i]; n; n = n->next) {
                n->flags &= (uint8_t)~N_ARMED; /* (a new set: none is stale) */
                any = true;
            }
        any = any || q_head != NULL;
        if (any && start() == 0) /* (if it fails, the next interest tries) */
            for (uint32_t i = 0; i < r_cap; i++)
                (void)arm((int)i);
    }
    pthread_mutex_unlock(&r_lock);
}
