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
 * them, and re-arms the fd for the nodes left.  Watchers queued are
 * handed, in order, to the timer service's pool of threads (timer.c:
 * stm__timer_soon, a timer in the watcher's side record), which runs each
 * in a transaction of its own, as deadline runs are (watch.c:
 * stm__watch_run_now); this thread runs one itself only when the pool
 * cannot take it (no memory, no thread).
 *
 * A watcher's failed runs of its own (watch_error.c) are retried by a
 * library-clock timer in the same side record.
 *
 * A watcher's interests belong to the reactor, at most one node per
 * watcher and fd, kept in the watcher's side record (a small table keyed
 * by the watcher, so that a watcher that never waits on an fd pays
 * nothing); a commit whose watcher runs asked about fds adds them
 * (stm__reactor_watch), a run caused by the fd consumes them, and the
 * watcher's stop drops them (stm__reactor_forget).  A node whose watcher
 * no longer asks stays until the fd is ready once more (one extra run of
 * fn, which then asks for nothing) or the watcher stops.
 *
 * Closed fds.  epoll forgets an fd when its file is closed, without an
 * event, so a wait in progress on an fd that another thread closes is not
 * ended by the close (as with poll() in another thread); an fd closed
 * before the wait begins cannot be armed (EBADF), and the retry then runs
 * the body again at once, whose stm_fd_ready() sees POLLNVAL.  An fd
 * number that is closed and reused is armed afresh (EPOLL_CTL_MOD fails
 * with ENOENT, then ADD).  A stale event, for a file that a dup kept
 * open, only wakes a waiter spuriously.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stddef.h>
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

/* A watcher's side record: its fd interests, and the retry of its failed
 * runs (watch_error.c: the schedule). */
struct wside {
    struct stm__timer retry; /* first: the timer hands back this address */
    struct stm__timer soon;  /* a run the fd caused, handed to the timer pool */
    struct wside *hnext;     /* bucket chain */
    struct stm_watch *w;
    struct stm__fdnode *fds; /* via wnext */
    uint32_t fails;          /* failed runs in a row */
    int pending;             /* an interest that could not be registered: its error */
    bool slot;               /* holds a reserved timer-heap slot */
};

static pthread_mutex_t r_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t r_done = PTHREAD_COND_INITIALIZER; /* a watcher run ended */
static int r_ep = -1, r_ev = -1;
static struct stm__fdnode **r_tab; /* fd -> its list */
static uint32_t r_cap;
static pthread_t r_thread;
static bool r_started, r_stop;
static struct stm_watch *r_running; /* the watcher the thread runs now */
/* watchers to run, in order; room for one per watcher node, so that
 * queueing never fails */
static struct stm_watch **r_due;
static uint32_t r_due_n, r_due_cap, r_wnodes;
/* side records by watcher */
static struct wside **m_b;
static uint32_t m_nb, m_n;
static _Atomic uint32_t m_failing; /* records with fails != 0 */

static void retry_fire(struct stm__timer *t, uint64_t seq);
static void soon_fire(struct stm__timer *t, uint64_t seq);

static struct wside **side_slot(struct stm_watch *w)
{
    struct wside **p = &m_b[stm__ptr_hash(w, m_nb - 1)];
    while (*p && (*p)->w != w)
        p = &(*p)->hnext;
    return p;
}

static struct wside *side_find(struct stm_watch *w)
{
    return m_nb ? *side_slot(w) : NULL;
}

/* w's record, made if it has none: NULL on ENOMEM */
static struct wside *side_get(struct stm_watch *w)
{
    struct wside *s = side_find(w);
    if (s)
        return s;
    if (m_n + 1 > m_nb) {
        uint32_t nb = m_nb ? 2 * m_nb : 64;
        struct wside **b = stm__calloc(nb, sizeof *b);
        if (b == NULL)
            return NULL;
        for (uint32_t i = 0; i < m_nb; i++)
            for (struct wside *e = m_b[i], *next; e; e = next) {
                next = e->hnext;
                uint32_t k = stm__ptr_hash(e->w, nb - 1);
                e->hnext = b[k];
                b[k] = e;
            }
        free(m_b);
        m_b = b;
        m_nb = nb;
    }
    s = stm__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->w = w;
    s->retry.fn = retry_fire;
    s->soon.fn = soon_fire;
    struct wside **p = &m_b[stm__ptr_hash(w, m_nb - 1)];
    s->hnext = *p;
    *p = s;
    m_n++;
    return s;
}

static void side_remove(struct wside *s)
{
    struct wside **p = side_slot(s->w);
    *p = s->hnext;
    m_n--;
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
    n->linked = true;
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
    n->linked = false;
}

/* Arm fd for the events its nodes want (if any): 0 or -errno. */
static int arm(int fd)
{
    if (r_tab[fd] == NULL)
        return 0;
    uint32_t want = 0; /* (0 still reports errors and hang-ups) */
    for (struct stm__fdnode *n = r_tab[fd]; n; n = n->next)
        want |= (uint16_t)n->events;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = want | EPOLLONESHOT;
    ev.data.u64 = (uint64_t)fd;
    if (epoll_ctl(r_ep, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (errno == ENOENT && epoll_ctl(r_ep, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    return -errno;
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
    r_stop = false;
    int e = pthread_create(&r_thread, NULL, reactor_main, NULL);
    if (e != 0)
        return -e;
    r_started = true;
    return 0;
}

static void kick(void)
{
    uint64_t one = 1;
    ssize_t n = write(r_ev, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

static void queue_run(struct stm_watch *w)
{
    r_due[r_due_n++] = w; /* (room: one per watcher node) */
}

/* n is a watcher's node, unlinked: free it */
static void free_watch_node(struct stm__fdnode *n)
{
    struct wside *s = side_find(n->w);
    if (s) {
        struct stm__fdnode **p = &s->fds;
        while (*p && *p != n)
            p = &(*p)->wnext;
        if (*p)
            *p = n->wnext;
    }
    r_wnodes--;
    free(n);
}

/* ... and queue its watcher to run */
static void drop_watch_node(struct stm__fdnode *n)
{
    queue_run(n->w);
    free_watch_node(n);
}

/* An event on fd: wake or queue what it satisfies, re-arm for the rest. */
static void fd_event(int fd, uint32_t got)
{
    bool all = (got & (EPOLLERR | EPOLLHUP)) != 0;
    for (int pass = 0; pass < 2; pass++) {
        for (struct stm__fdnode *n = r_tab[fd], *next; n; n = next) {
            next = n->next;
            if (!all && !(got & (uint16_t)n->events))
                continue;
            unlink_node(n);
            if (n->waiter)
                n->waiter->ops->notify(n->waiter);
            else
                drop_watch_node(n);
        }
        if (r_tab[fd] == NULL || arm(fd) == 0)
            return;
        all = true; /* cannot be re-armed: let them all find out */
    }
}

static void run_due(void)
{
    struct stm_watch *w = r_due[0];
    memmove(r_due, r_due + 1, (size_t)(--r_due_n) * sizeof *r_due);
    /* the timer pool runs it (this thread only when it cannot) */
    struct wside *s = side_find(w);
    if (s != NULL && stm__timer_soon(&s->soon) == 0)
        return;
    r_running = w;
    pthread_mutex_unlock(&r_lock);
    stm__watch_run_now(w);
    pthread_mutex_lock(&r_lock);
    r_running = NULL;
    pthread_cond_broadcast(&r_done);
}

static void *reactor_main(void *unused)
{
    (void)unused;
#if defined(__linux__) && defined(PR_SET_NAME)
    prctl(PR_SET_NAME, "stm-reactor", 0, 0, 0);
#endif
    struct epoll_event ev[64];
    pthread_mutex_lock(&r_lock);
    while (!r_stop) {
        if (r_due_n) {
            run_due();
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
        n->w = NULL;
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
        if (tx->fdn.v[i].linked)
            unlink_node(&tx->fdn.v[i]);
    pthread_mutex_unlock(&r_lock);
}

/* Add w's interest in (fd, events): 0, -ENOMEM or -ENOSPC. */
static int watch_one(struct stm_watch *w, int fd, short events)
{
    struct wside *s = side_get(w);
    if (s == NULL || !tab_reserve(fd))
        return -ENOMEM;
    struct stm__fdnode *n = s->fds;
    while (n && n->fd != fd)
        n = n->wnext;
    if (n == NULL) {
        /* room to queue what is queued and every node, this one too */
        uint32_t need = r_due_n + r_wnodes + 1;
        if (need > r_due_cap && !stm__grow((void **)&r_due, &r_due_cap, sizeof *r_due, need))
            return -ENOMEM;
        n = stm__calloc(1, sizeof *n);
        if (n == NULL)
            return -ENOMEM;
        n->w = w;
        n->fd = fd;
        n->wnext = s->fds;
        s->fds = n;
        r_wnodes++;
    }
    n->events |= events;
    if (!n->linked)
        link_node(n);
    int e = arm(fd);
    if (e == -ENOMEM || e == -ENOSPC) {
        unlink_node(n);
        free_watch_node(n);
        return e;
    }
    if (e < 0) {
        unlink_node(n); /* closed, or a regular file: ready now */
        drop_watch_node(n);
        kick();
    }
    return 0;
}

static int64_t arm_retry(struct wside *s);

/* w's interest could not be registered (err): retry its run on the
 * schedule, and report err when the retry comes (not from inside the
 * commit). */
static void watch_failed(struct stm_tx *tx, struct stm_watch *w, int err)
{
    stm__count(&tx->st.watch_failures);
    struct wside *s = side_get(w);
    if (s == NULL)
        return; /* no memory even for that: a change of what it read runs it */
    if (s->pending == 0)
        s->pending = err;
    arm_retry(s);
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
        if (r < 0)
            watch_failed(tx, f->w, r);
    }
    tx->fdw.n = 0;
    pthread_mutex_unlock(&r_lock);
}

void stm__reactor_forget(struct stm_watch *w)
{
    pthread_mutex_lock(&r_lock);
    struct wside *s = side_find(w);
    if (s) {
        for (struct stm__fdnode *n = s->fds, *next; n; n = next) {
            next = n->wnext;
            if (n->linked)
                unlink_node(n);
            r_wnodes--;
            free(n);
        }
        side_remove(s);
        if (s->fails)
            atomic_fetch_sub(&m_failing, 1);
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < r_due_n; i++)
        if (r_due[i] != w)
            r_due[k++] = r_due[i];
    r_due_n = k;
    while (r_running == w && !pthread_equal(r_thread, pthread_self()))
        pthread_cond_wait(&r_done, &r_lock);
    pthread_mutex_unlock(&r_lock);
    if (s) {
        /* (without the lock: a retry run in progress takes it) */
        stm__timer_cancel(&s->retry);
        stm__timer_cancel(&s->soon);
        if (s->slot)
            stm__timer_unreserve(1);
        free(s);
    }
}

/* ---- retries of failed runs ---------------------------------------------- */

static void retry_fire(struct stm__timer *t, uint64_t seq)
{
    (void)seq;
    /* w is alive: its stop cancels this timer, waiting for this run */
    struct wside *s = (struct wside *)t;
    struct stm_watch *w = s->w;
    pthread_mutex_lock(&r_lock);
    int err = s->pending;
    s->pending = 0;
    pthread_mutex_unlock(&r_lock);
    if (err)
        stm__watch_report(w, err, stm__now()); /* an interest it lost */
    stm__watch_run_now(w);
}

/* A run an fd caused, on a thread of the timer pool. */
static void soon_fire(struct stm__timer *t, uint64_t seq)
{
    (void)seq;
    /* w is alive: its stop cancels this timer, waiting for this run */
    struct wside *s = (struct wside *)((char *)t - offsetof(struct wside, soon));
    stm__watch_run_now(s->w);
}

/* Arm s's retry on the schedule: when, or STM_NEVER (no memory). */
static int64_t arm_retry(struct wside *s)
{
    if (!s->slot && stm__timer_reserve(1) == 0)
        s->slot = true;
    if (!s->slot)
        return STM_NEVER;
    if (s->fails++ == 0)
        atomic_fetch_add(&m_failing, 1);
    int64_t at = stm__sat_add(stm__now(), stm__watch_retry_delay(s->fails));
    stm__timer_set(&s->retry, at, false);
    return at;
}

int64_t stm__watch_retry_arm(struct stm_watch *w)
{
    int64_t at = STM_NEVER;
    pthread_mutex_lock(&r_lock);
    struct wside *s = atomic_load_explicit(&w->dead, memory_order_seq_cst) ? NULL : side_get(w);
    if (s)
        at = arm_retry(s);
    pthread_mutex_unlock(&r_lock);
    return at;
}

void stm__watch_retry_ok(struct stm_watch *w)
{
    if (atomic_load_explicit(&m_failing, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&r_lock);
    struct wside *s = side_find(w);
    if (s && s->fails && s->pending == 0) { /* (pending: this run lost an fd) */
        s->fails = 0;
        atomic_fetch_sub(&m_failing, 1);
        stm__timer_unset(&s->retry); /* (a pending retry is not needed) */
    }
    pthread_mutex_unlock(&r_lock);
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
    pthread_mutex_lock(&r_lock);
    r_started = false;
    if (m_n == 0 && r_wnodes == 0) {
        /* nothing left to serve: give everything back */
        bool empty = true;
        for (uint32_t i = 0; i < r_cap && empty; i++)
            empty = r_tab[i] == NULL;
        if (empty) {
            free(r_tab);
            r_tab = NULL;
            r_cap = 0;
            free(r_due);
            r_due = NULL;
            r_due_cap = 0;
            free(m_b);
            m_b = NULL;
            m_nb = 0;
            if (r_ep >= 0) {
                close(r_ev);
                close(r_ep);
                r_ev = r_ep = -1;
            }
        }
    }
    pthread_mutex_unlock(&r_lock);
}

void stm__watch_runs_ok(struct stm__watchtx *x)
{
    if (atomic_load_explicit(&m_failing, memory_order_relaxed) == 0)
        return;
    for (uint32_t k = 0; k < x->runs.n; k++)
        stm__watch_retry_ok(x->runs.v[k].w);
}

/* fork(): see fork.c.  The child must not use the parent's epoll set (the
 * two would share it): it closes its copies of the descriptors, makes a
 * set of its own and arms every fd of interest in it again. */
void stm__reactor_fork(int phase)
{
    if (phase == STM__FORK_PREPARE) {
        pthread_mutex_lock(&r_lock);
        return;
    }
    if (phase == STM__FORK_CHILD) {
        if (r_ep >= 0) {
            close(r_ev);
            close(r_ep);
            r_ev = r_ep = -1;
        }
        r_started = r_stop = false;
        r_running = NULL;
        bool any = false;
        for (uint32_t i = 0; i < r_cap && !any; i++)
            any = r_tab[i] != NULL;
        if (any && start() == 0) /* (if it fails, the next interest tries) */
            for (uint32_t i = 0; i < r_cap; i++)
                (void)arm((int)i);
    }
    pthread_mutex_unlock(&r_lock);
}
