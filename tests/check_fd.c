/*
 * check_fd.c - stm_fd_ready: readiness as a transactional read.  A retry
 * wakes when the fd becomes ready (socketpairs, loopback TCP: accept,
 * connect, data, hang-up), with every Waiter backend; a TVar change or a
 * deadline that comes first wins; watchers run again when an fd they
 * asked about is ready; closed fds answer at once.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "stm-internal.h"
#include "testutil.h"

static int ld(atomic_int *p)
{
    return atomic_load(p);
}

static void wait_blocked(atomic_int *attempts, int min, atomic_int *tid)
{
    ck_assert_msg(tu_wait_atleast(attempts, min, TU_HANDSHAKE_MS), "attempt %d never ran", min);
    ck_assert(tu_wait_atleast(tid, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(tid), TU_HANDSHAKE_MS),
                  "the thread did not go to sleep");
}

static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void put(int fd, char c)
{
    ck_assert_int_eq(write(fd, &c, 1), 1);
}

/* ==== answers now ======================================================= */

struct now_arg {
    int fd;
    short ev;
    bool ready;
};

static int body_ask(stm_tx *tx, void *arg)
{
    struct now_arg *a = arg;
    a->ready = stm_fd_ready(tx, a->fd, a->ev);
    return 0;
}

static bool ask(int fd, short ev)
{
    struct now_arg a = {fd, ev, false};
    ck_assert_int_eq(stm_atomically(body_ask, &a), 0);
    return a.ready;
}

START_TEST(test_ready_now)
{
    int sv[2];
    pair(sv);
    ck_assert(!ask(sv[0], POLLIN));
    ck_assert(ask(sv[0], POLLOUT)); /* room to write */
    put(sv[1], 'x');
    ck_assert(ask(sv[0], POLLIN));
    ck_assert(ask(sv[0], POLLIN | POLLOUT));
    close(sv[1]);
    ck_assert(ask(sv[0], POLLPRI)); /* hang-up: true whatever was asked */
    close(sv[0]);
    /* closed: POLLNVAL, true at once; the caller's read says EBADF */
    ck_assert(ask(sv[0], POLLIN));
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert(ask(-1, POLLIN));
}
END_TEST

static int body_ro_ask(stm_tx *tx, void *arg)
{
    struct now_arg *a = arg;
    a->ready = stm_fd_ready(tx, a->fd, a->ev);
    return 0;
}

START_TEST(test_ready_ro)
{
    int sv[2];
    pair(sv);
    struct now_arg a = {sv[0], POLLOUT, false};
    ck_assert_int_eq(stm_atomically_ro(body_ro_ask, &a), 0);
    ck_assert(a.ready);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* ==== a retry wakes when the fd is ready ================================== */

enum { WHY_FD = 1, WHY_TVAR, WHY_DEADLINE };

struct waiter {
    int fd;
    short ev;
    stm_tvar *var;    /* also waited on, if not NULL */
    int64_t deadline; /* also waited for */
    atomic_int attempts;
    atomic_int tid;
    int rc;
    int64_t woke; /* real time the body saw the fd ready */
};

static int body_wait(stm_tx *tx, void *arg)
{
    struct waiter *w = arg;
    atomic_fetch_add(&w->attempts, 1);
    if (w->var && stm_read(tx, w->var) != 0)
        return WHY_TVAR;
    if (stm_fd_ready(tx, w->fd, w->ev)) {
        w->woke = tu_now_ns();
        return WHY_FD;
    }
    if (stm_elapsed(tx, w->deadline))
        return WHY_DEADLINE;
    stm_retry(tx);
}

static void *thr_wait(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, tu_gettid());
    w->rc = stm_atomically(body_wait, w);
    return NULL;
}

static void waiter_init(struct waiter *w, int fd, short ev)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->ev = ev;
    w->deadline = STM_NEVER;
}

/* the waiter sleeps; the peer writes; it wakes within the bound */
static void run_wake(const char *backend)
{
    ck_assert_int_eq(stm_set_waiter(backend), 0);
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    int64_t sent = tu_now_ns();
    put(sv[1], 'x');
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    ck_assert_int_eq(ld(&w.attempts), 2);
    ck_assert_msg(w.woke - sent < STM_SEC(5), "%s: woke after %lld ns", backend,
                  (long long)(w.woke - sent));
    /* and again: the fd is re-armed for the next wait */
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    waiter_init(&w, sv[0], POLLIN);
    t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    put(sv[1], 'y');
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
}

START_TEST(test_wake_condvar)
{
    run_wake("condvar");
}
END_TEST

START_TEST(test_wake_pipe)
{
    run_wake("pipe");
}
END_TEST

START_TEST(test_wake_thread)
{
    run_wake("thread");
}
END_TEST

/* a Waiter of the program's own (a condvar, by its ops) */
struct my_waiter {
    pthread_mutex_t m;
    pthread_cond_t c;
    bool sig;
};
static atomic_int my_notifies;

static void *my_create(void *ctx)
{
    (void)ctx;
    struct my_waiter *w = calloc(1, sizeof *w);
    if (w) {
        pthread_mutex_init(&w->m, NULL);
        pthread_cond_init(&w->c, NULL);
    }
    return w;
}
static void my_destroy(void *p)
{
    struct my_waiter *w = p;
    pthread_mutex_destroy(&w->m);
    pthread_cond_destroy(&w->c);
    free(w);
}
static int my_wait(void *p, int64_t deadline)
{
    struct my_waiter *w = p;
    int r = 0;
    pthread_mutex_lock(&w->m);
    while (!w->sig) {
        if (deadline == STM_NEVER) {
            pthread_cond_wait(&w->c, &w->m);
            continue;
        }
        if (tu_now_ns() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000; /* look at the deadline every ms */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->c, &w->m, &ts);
    }
    w->sig = false;
    pthread_mutex_unlock(&w->m);
    return r;
}
static void my_notify(void *p)
{
    struct my_waiter *w = p;
    atomic_fetch_add(&my_notifies, 1);
    pthread_mutex_lock(&w->m);
    w->sig = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

START_TEST(test_wake_user_ops)
{
    static const struct stm_waiter_ops ops = {
        .name = "mine",
        .create = my_create,
        .destroy = my_destroy,
        .wait = my_wait,
        .notify = my_notify,
    };
    ck_assert_int_eq(stm_set_waiter_ops(&ops), 0);
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    int before = ld(&my_notifies);
    put(sv[1], 'x');
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    ck_assert_int_eq(ld(&w.attempts), 2);
    ck_assert_int_gt(ld(&my_notifies), before); /* the fd thread notified it */
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
}
END_TEST

/* A TVar change that comes first wins; so does a deadline (virtual). */
START_TEST(test_tvar_first)
{
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    w.var = stm_tvar_new(0);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    ck_assert_int_eq(stm_tvar_poke(w.var, 1), 0);
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_TVAR);
    ck_assert_int_eq(ld(&w.attempts), 2);
    /* the fd's interest left with the wait: a later write wakes nobody */
    put(sv[1], 'x');
    close(sv[0]);
    close(sv[1]);
    stm_tvar_free(w.var);
}
END_TEST

START_TEST(test_deadline_first_virtual)
{
    const int64_t S = STM_SEC(1000);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    w.deadline = S + STM_MSEC(100);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    stm_clock_advance(STM_MSEC(99));
    ck_assert_int_eq(ld(&w.attempts), 1);
    stm_clock_advance(STM_MSEC(1));
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_DEADLINE);
    ck_assert_int_eq(ld(&w.attempts), 2);
    /* and on the virtual clock an fd still wakes it (in real time) */
    waiter_init(&w, sv[0], POLLIN);
    w.deadline = S + STM_SEC(1);
    t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    put(sv[1], 'x');
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    ck_assert_int_eq(stm_now(), S + STM_MSEC(100)); /* no virtual time passed */
    ck_assert_int_eq(stm_clock_real(), 0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* On the real clock (the thread sleeps in ppoll() itself): a deadline
 * that comes first ends the wait, never early. */
START_TEST(test_deadline_first_real)
{
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    int64_t t0 = stm_now();
    w.deadline = t0 + STM_MSEC(20);
    ck_assert_int_eq(stm_atomically(body_wait, &w), WHY_DEADLINE);
    ck_assert_int_ge(stm_now() - t0, STM_MSEC(20));
    ck_assert_int_ge(ld(&w.attempts), 2);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Waiting on an fd alone is not -EDEADLK; a hang-up wakes a POLLIN wait. */
START_TEST(test_hangup_wakes)
{
    int sv[2];
    pair(sv);
    struct waiter w;
    waiter_init(&w, sv[0], POLLIN);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    close(sv[1]);
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 0); /* end of file */
    close(sv[0]);
}
END_TEST

/* Two threads wait on the same fd for different events. */
START_TEST(test_two_waiters_one_fd)
{
    int sv[2];
    pair(sv);
    /* fill sv[0]'s send buffer so that POLLOUT is false */
    char buf[4096];
    memset(buf, 'z', sizeof buf);
    while (write(sv[0], buf, sizeof buf) > 0) {
    }
    struct waiter a, b;
    waiter_init(&a, sv[0], POLLIN);
    waiter_init(&b, sv[0], POLLOUT);
    pthread_t ta = tu_run_thread(thr_wait, &a);
    pthread_t tb = tu_run_thread(thr_wait, &b);
    wait_blocked(&a.attempts, 1, &a.tid);
    wait_blocked(&b.attempts, 1, &b.tid);
    put(sv[1], 'x'); /* sv[0] readable: a wakes, b sleeps on */
    tu_join(ta);
    ck_assert_int_eq(a.rc, WHY_FD);
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&b.tid), TU_HANDSHAKE_MS));
    /* drain sv[1]: room in sv[0]'s buffer, b wakes */
    while (read(sv[1], buf, sizeof buf) > 0) {
    }
    tu_join(tb);
    ck_assert_int_eq(b.rc, WHY_FD);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* The attempt that a ready fd woke answers from the ppoll() that woke it
 * (no second poll(): tx->fdhint), and only that attempt: the one after
 * asks poll() again, and sees that the byte has gone. */
enum { HINT_MAX = 16 };
struct hint_arg {
    int fd;
    stm_tvar *var;
    atomic_int attempts;
    atomic_int tid;
    uint32_t hint[HINT_MAX];
    bool ready[HINT_MAX], again2;
    uint32_t after; /* the thread's hint once the call returned */
};

static int body_hint(stm_tx *tx, void *arg)
{
    struct hint_arg *h = arg;
    int k = atomic_fetch_add(&h->attempts, 1) + 1;
    ck_assert_int_lt(k, HINT_MAX);
    h->hint[k] = ((struct stm_tx *)tx)->fdhint;
    intptr_t v = stm_read(tx, h->var);
    h->ready[k] = stm_fd_ready(tx, h->fd, POLLIN);
    if (k == 2) {
        char c;
        ck_assert_int_eq(read(h->fd, &c, 1), 1); /* (a side effect: a test) */
        h->again2 = stm_fd_ready(tx, h->fd, POLLIN);
    }
    if (v != 0)
        return 0;
    stm_retry(tx); /* 1: on the fd and the TVar; 2: on the TVar */
}

static void *thr_hint(void *arg)
{
    struct hint_arg *h = arg;
    atomic_store(&h->tid, tu_gettid());
    ck_assert_int_eq(stm_atomically(body_hint, h), 0);
    h->after = stm__self->fdhint;
    return NULL;
}

START_TEST(test_wake_hint_one_attempt)
{
    int sv[2];
    pair(sv);
    struct hint_arg h;
    memset(&h, 0, sizeof h);
    h.fd = sv[0];
    h.var = stm_tvar_new(0);
    pthread_t t = tu_run_thread(thr_hint, &h);
    wait_blocked(&h.attempts, 1, &h.tid);
    put(sv[1], 'x');
    wait_blocked(&h.attempts, 2, &h.tid);
    ck_assert_int_eq(stm_tvar_poke(h.var, 1), 0);
    tu_join(t);
    int n = ld(&h.attempts);
    ck_assert_int_ge(n, 3);
    ck_assert(!h.ready[1]);
    ck_assert_uint_eq(h.hint[1], 0);
    ck_assert(h.ready[2]);
    ck_assert_uint_eq(h.hint[2], 1); /* answered from the wake-up */
    ck_assert(h.again2);             /* the same answer within the attempt */
    for (int k = 3; k <= n; k++) {
        ck_assert_uint_eq(h.hint[k], 0);
        ck_assert(!h.ready[k]); /* poll() again: the byte was read */
    }
    /* a committed call leaves no hint for the thread's next transaction */
    ck_assert_uint_eq(h.after, 0);
    close(sv[0]);
    close(sv[1]);
    stm_tvar_free(h.var);
}
END_TEST

/* ==== loopback TCP: accept, a non-blocking connect, data =================== */

static int tcp_listener(uint16_t *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 16), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return l;
}

START_TEST(test_tcp_loopback)
{
    uint16_t port;
    int l = tcp_listener(&port);
    struct waiter w;
    waiter_init(&w, l, POLLIN);
    pthread_t t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    ck_assert(r == 0 || errno == EINPROGRESS);
    tu_join(t); /* the listener became readable */
    ck_assert_int_eq(w.rc, WHY_FD);
    int s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(s, 0);
    /* the connect completes: writable */
    waiter_init(&w, c, POLLOUT);
    ck_assert_int_eq(stm_atomically(body_wait, &w), WHY_FD);
    int err = -1;
    socklen_t el = sizeof err;
    ck_assert_int_eq(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el), 0);
    ck_assert_int_eq(err, 0);
    /* data from the server wakes the client */
    waiter_init(&w, c, POLLIN);
    t = tu_run_thread(thr_wait, &w);
    wait_blocked(&w.attempts, 1, &w.tid);
    put(s, 'h');
    tu_join(t);
    ck_assert_int_eq(w.rc, WHY_FD);
    close(s);
    close(c);
    close(l);
}
END_TEST

/* ==== watchers ========================================================= */

struct fw {
    int fd;
    stm_tvar *gen; /* cb_drain bumps it: fn runs again, and asks again */
    atomic_int runs;
    atomic_int ones; /* cb calls with "ready" */
};

static intptr_t fn_fd(stm_tx *tx, void *arg)
{
    struct fw *f = arg;
    atomic_fetch_add(&f->runs, 1);
    return stm_fd_ready(tx, f->fd, POLLIN) ? 1 : 0;
}

static void cb_fd(stm_tx *tx, intptr_t v, void *arg)
{
    (void)tx;
    if (v == 1)
        atomic_fetch_add(&((struct fw *)arg)->ones, 1);
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

START_TEST(test_watcher_runs_on_ready)
{
    int sv[2];
    pair(sv);
    struct fw f = {.fd = sv[0]};
    stm_watch *w = stm_atomically_watch(fn_fd, cb_fd, &f, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(ld(&f.runs), 1);
    ck_assert_int_eq(ld(&f.ones), 0);
    put(sv[1], 'x');
    ck_assert_msg(tu_wait_atleast(&f.ones, 1, TU_HANDSHAKE_MS), "the watcher did not run");
    ck_assert_int_eq(ld(&f.runs), 2);
    /* ready now: fn asks for nothing, so nothing more runs it */
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    put(sv[1], 'y');
    tu_sleep_ms(20); /* (a run that should not come: nothing to wait for) */
    ck_assert_int_eq(ld(&f.runs), 2);
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* A watcher that waits again after each run, many times; then stopped
 * while it waits: no run after the stop. */
static intptr_t fn_fd_drain(stm_tx *tx, void *arg)
{
    struct fw *f = arg;
    atomic_fetch_add(&f->runs, 1);
    (void)stm_read(tx, f->gen);
    return stm_fd_ready(tx, f->fd, POLLIN) ? 1 : 0;
}

static void cb_drain(stm_tx *tx, intptr_t v, void *arg)
{
    struct fw *f = arg;
    if (v == 1) {
        char c;
        while (read(f->fd, &c, 1) == 1) {
        }
        atomic_fetch_add(&f->ones, 1);
        stm_write(tx, f->gen, stm_read(tx, f->gen) + 1);
    }
}

START_TEST(test_watcher_repeats_and_stops)
{
    int sv[2];
    pair(sv);
    struct fw f = {.fd = sv[0], .gen = stm_tvar_new(0)};
    stm_watch *w = stm_atomically_watch(fn_fd_drain, cb_drain, &f, 0);
    ck_assert_ptr_nonnull(w);
    for (int i = 1; i <= 20; i++) {
        put(sv[1], 'x');
        ck_assert_msg(tu_wait_atleast(&f.ones, i, TU_HANDSHAKE_MS), "round %d", i);
    }
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    int runs = ld(&f.runs);
    put(sv[1], 'x');
    tu_sleep_ms(20);
    ck_assert_int_eq(ld(&f.runs), runs);
    ck_assert_int_eq(stm_tvar_peek(f.gen), 20);
    close(sv[0]);
    close(sv[1]);
    stm_tvar_free(f.gen);
}
END_TEST

/* n socket pairs, each waited on (its end 0) by a watcher of its own
 * (fn_fd, cb_fd): the arrays are the caller's to free. */
static void watchers_make(int n, int (**sv)[2], struct fw **f, stm_watch ***w)
{
    *sv = calloc((size_t)n, sizeof **sv);
    *f = calloc((size_t)n, sizeof **f);
    *w = calloc((size_t)n, sizeof **w);
    ck_assert(*sv != NULL && *f != NULL && *w != NULL);
    for (int i = 0; i < n; i++) {
        pair((*sv)[i]);
        (*f)[i].fd = (*sv)[i][0];
        (*w)[i] = stm_atomically_watch(fn_fd, cb_fd, &(*f)[i], 0);
        ck_assert_ptr_nonnull((*w)[i]);
    }
}

/* Many fds, each waited on by a watcher: only the one whose fd is ready
 * runs. */
START_TEST(test_many_watchers)
{
    enum { N = 200 };
    int(*sv)[2];
    struct fw *f;
    stm_watch **w;
    watchers_make(N, &sv, &f, &w);
    for (int k = 0; k < 5; k++) {
        int i = (k * 37) % N;
        put(sv[i][1], 'x');
        ck_assert(tu_wait_atleast(&f[i].ones, 1, TU_HANDSHAKE_MS));
    }
    int total = 0;
    for (int i = 0; i < N; i++)
        total += ld(&f[i].runs);
    ck_assert_int_eq(total, N + 5);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(stm_atomically(body_unwatch, w[i]), 0);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    free(sv);
    free(f);
    free(w);
}
END_TEST

/* ==== closed fds ======================================================== */

/* A waiter on sv[0] whose peer stays open (so no hang-up comes): only
 * stm_fd_close(sv[0]) can end its wait. */
struct closer {
    struct waiter w;
    atomic_int done;
};

static void *thr_wait_done(void *arg)
{
    struct closer *c = arg;
    thr_wait(&c->w);
    atomic_store(&c->done, 1);
    return NULL;
}

static void run_close_while_waiting(void)
{
    int sv[2];
    pair(sv);
    struct closer c;
    memset(&c, 0, sizeof c);
    waiter_init(&c.w, sv[0], POLLIN);
    pthread_t t = tu_run_thread(thr_wait_done, &c);
    wait_blocked(&c.w.attempts, 1, &c.w.tid);
    ck_assert_int_eq(stm_fd_close(sv[0]), 0);
    ck_assert_msg(tu_wait_atleast(&c.done, 1, TU_HANDSHAKE_MS), "the close did not end the wait");
    tu_join(t);
    ck_assert_int_eq(c.w.rc, WHY_FD); /* stm_fd_ready: true (POLLNVAL) */
    ck_assert_int_ge(ld(&c.w.attempts), 2);
    char ch;
    ck_assert_int_eq(read(sv[0], &ch, 1), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_uint_eq(stm__reactor_nodes(), 0); /* nothing left behind */
    close(sv[1]);
}

START_TEST(test_close_waiting_condvar)
{
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
    run_close_while_waiting();
}
END_TEST

START_TEST(test_close_waiting_pipe)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    run_close_while_waiting();
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
}
END_TEST

START_TEST(test_close_waiting_thread)
{
    ck_assert_int_eq(stm_set_waiter("thread"), 0);
    run_close_while_waiting();
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
}
END_TEST

START_TEST(test_close_waiting_user_ops)
{
    static const struct stm_waiter_ops ops = {
        .name = "mine",
        .create = my_create,
        .destroy = my_destroy,
        .wait = my_wait,
        .notify = my_notify,
    };
    ck_assert_int_eq(stm_set_waiter_ops(&ops), 0); /* (waits through the reactor) */
    run_close_while_waiting();
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
}
END_TEST

START_TEST(test_close_waiting_virtual)
{
    ck_assert_int_eq(stm_clock_virtual(STM_SEC(1)), 0); /* (the reactor too) */
    run_close_while_waiting();
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* Two threads in one wait each on the same fd, one of them with another
 * fd too: the close ends both; a third thread's wait on another fd goes on. */
START_TEST(test_close_ends_only_its_waits)
{
    int a[2], b[2];
    pair(a);
    pair(b);
    struct closer c1, c2, other;
    memset(&c1, 0, sizeof c1);
    memset(&c2, 0, sizeof c2);
    memset(&other, 0, sizeof other);
    waiter_init(&c1.w, a[0], POLLIN);
    waiter_init(&c2.w, a[0], POLLIN);
    waiter_init(&other.w, b[0], POLLIN);
    pthread_t t1 = tu_run_thread(thr_wait_done, &c1);
    pthread_t t2 = tu_run_thread(thr_wait_done, &c2);
    pthread_t t3 = tu_run_thread(thr_wait_done, &other);
    wait_blocked(&c1.w.attempts, 1, &c1.w.tid);
    wait_blocked(&c2.w.attempts, 1, &c2.w.tid);
    wait_blocked(&other.w.attempts, 1, &other.w.tid);
    ck_assert_int_eq(stm_fd_close(a[0]), 0);
    ck_assert(tu_wait_atleast(&c1.done, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&c2.done, 1, TU_HANDSHAKE_MS));
    tu_join(t1);
    tu_join(t2);
    ck_assert_int_eq(c1.w.rc, WHY_FD);
    ck_assert_int_eq(c2.w.rc, WHY_FD);
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&other.w.tid), TU_HANDSHAKE_MS));
    ck_assert_int_eq(ld(&other.done), 0);
    put(b[1], 'x');
    tu_join(t3);
    ck_assert_int_eq(other.w.rc, WHY_FD);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    /* and errors are close()'s */
    errno = 0;
    ck_assert_int_eq(stm_fd_close(a[0]), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(stm_fd_close(-1), -1);
    ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* A watcher waiting on an fd: stm_fd_close runs it again, and its fn
 * sees the fd ready (POLLNVAL); its node is gone. */
START_TEST(test_close_watcher_waiting)
{
    int sv[2];
    pair(sv);
    struct fw f = {.fd = sv[0]};
    stm_watch *w = stm_atomically_watch(fn_fd, cb_fd, &f, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(ld(&f.ones), 0);
    ck_assert_uint_eq(stm__reactor_nodes(), 1);
    ck_assert_int_eq(stm_fd_close(sv[0]), 0);
    ck_assert_msg(tu_wait_atleast(&f.ones, 1, TU_HANDSHAKE_MS), "the close did not run it");
    ck_assert_int_eq(ld(&f.runs), 2);
    ck_assert_uint_eq(stm__reactor_nodes(), 0); /* it asked for nothing more */
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    close(sv[1]);
}
END_TEST

/* Closed before: a watcher's fn sees POLLNVAL at once and registers
 * nothing; so does a transaction. */
START_TEST(test_close_before)
{
    int sv[2];
    pair(sv);
    ck_assert_int_eq(stm_fd_close(sv[0]), 0);
    struct fw f = {.fd = sv[0]};
    stm_watch *w = stm_atomically_watch(fn_fd, cb_fd, &f, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(ld(&f.ones), 1);
    ck_assert_uint_eq(stm__reactor_nodes(), 0);
    struct waiter wt;
    waiter_init(&wt, sv[0], POLLIN);
    ck_assert_int_eq(stm_atomically(body_wait, &wt), WHY_FD);
    ck_assert_int_eq(ld(&wt.attempts), 1);
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    close(sv[1]);
}
END_TEST

/* Closed with close(2), unknown to the library: when the number is asked
 * about again for a new file, the watcher waiting for the old file is run
 * (it does not wait for ever on a file that is gone). */
START_TEST(test_close_stale_number_reused)
{
    int sv[2];
    pair(sv);
    struct fw old = {.fd = sv[0]};
    stm_watch *w_old = stm_atomically_watch(fn_fd, cb_fd, &old, 0);
    ck_assert_ptr_nonnull(w_old);
    ck_assert_int_eq(ld(&old.runs), 1);
    int num = sv[0];
    close(sv[0]); /* (not stm_fd_close) */
    int nv[2];
    pair(nv); /* the lowest numbers: num again */
    int fresh = nv[0] == num ? nv[0] : nv[1] == num ? nv[1] : -1;
    if (fresh < 0) { /* (another thread took it: nothing to test) */
        ck_assert_int_eq(stm_atomically(body_unwatch, w_old), 0);
        close(nv[0]);
        close(nv[1]);
        close(sv[1]);
        return;
    }
    ck_assert_int_eq(ld(&old.runs), 1); /* the close told nobody */
    struct fw neu = {.fd = fresh};
    stm_watch *w_new = stm_atomically_watch(fn_fd, cb_fd, &neu, 0);
    ck_assert_ptr_nonnull(w_new);
    ck_assert_msg(tu_wait_atleast(&old.runs, 2, TU_HANDSHAKE_MS),
                  "the stale interest was not ended");
    ck_assert_int_eq(stm_atomically(body_unwatch, w_old), 0);
    ck_assert_int_eq(stm_atomically(body_unwatch, w_new), 0);
    ck_assert_uint_eq(stm__reactor_nodes(), 0);
    close(nv[0]);
    close(nv[1]);
    close(sv[1]);
}
END_TEST

/* Closed with close(2), unknown to the library: the waits on it go on
 * (the kernel tells nobody) until a transaction asks about the number and
 * sees POLLNVAL; that ends them all, a thread's and a watcher's. */
START_TEST(test_close_plain_then_asked)
{
    int sv[2];
    pair(sv);
    struct closer c;
    memset(&c, 0, sizeof c);
    waiter_init(&c.w, sv[0], POLLIN);
    pthread_t t = tu_run_thread(thr_wait_done, &c);
    wait_blocked(&c.w.attempts, 1, &c.w.tid);
    struct fw f = {.fd = sv[0]};
    stm_watch *w = stm_atomically_watch(fn_fd, cb_fd, &f, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(ld(&f.runs), 1);
    close(sv[0]); /* (not stm_fd_close) */
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&c.w.tid), TU_HANDSHAKE_MS));
    ck_assert_int_eq(ld(&c.done), 0);
    ck_assert_int_eq(ld(&f.runs), 1);
    ck_assert(ask(sv[0], POLLIN)); /* POLLNVAL */
    ck_assert_msg(tu_wait_atleast(&c.done, 1, TU_HANDSHAKE_MS), "the thread's wait goes on");
    ck_assert_msg(tu_wait_atleast(&f.ones, 1, TU_HANDSHAKE_MS), "the watcher's wait goes on");
    tu_join(t);
    ck_assert_int_eq(c.w.rc, WHY_FD);
    ck_assert_uint_eq(stm__reactor_nodes(), 0);
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    close(sv[1]);
}
END_TEST

/* Stopping watchers that wait on fds, and closing fds with waits,
 * leaves no node behind (ASan's leak check sees the rest). */
START_TEST(test_close_no_leak)
{
    enum { N = 64 };
    int(*sv)[2];
    struct fw *f;
    stm_watch **w;
    watchers_make(N, &sv, &f, &w);
    ck_assert_uint_eq(stm__reactor_nodes(), N);
    for (int i = 0; i < N; i += 2) /* half closed while they wait */
        ck_assert_int_eq(stm_fd_close(sv[i][0]), 0);
    for (int i = 0; i < N; i += 2)
        ck_assert(tu_wait_atleast(&f[i].ones, 1, TU_HANDSHAKE_MS));
    ck_assert_uint_eq(stm__reactor_nodes(), N / 2);
    for (int i = 0; i < N; i++) { /* half stopped while they wait */
        ck_assert_int_eq(stm_atomically(body_unwatch, w[i]), 0);
        if (i % 2)
            ck_assert_int_eq(stm_fd_close(sv[i][0]), 0);
        close(sv[i][1]);
    }
    ck_assert_uint_eq(stm__reactor_nodes(), 0);
    free(sv);
    free(f);
    free(w);
    stm_shutdown();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("fd");
    TCase *tc = tcase_create("now");
    tcase_add_test(tc, test_ready_now);
    tcase_add_test(tc, test_ready_ro);
    suite_add_tcase(s, tc);
    tc = tcase_create("retry");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wake_condvar);
    tcase_add_test(tc, test_wake_pipe);
    tcase_add_test(tc, test_wake_thread);
    tcase_add_test(tc, test_wake_user_ops);
    tcase_add_test(tc, test_tvar_first);
    tcase_add_test(tc, test_deadline_first_virtual);
    tcase_add_test(tc, test_deadline_first_real);
    tcase_add_test(tc, test_hangup_wakes);
    tcase_add_test(tc, test_two_waiters_one_fd);
    tcase_add_test(tc, test_wake_hint_one_attempt);
    tcase_add_test(tc, test_tcp_loopback);
    suite_add_tcase(s, tc);
    tc = tcase_create("watch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_watcher_runs_on_ready);
    tcase_add_test(tc, test_watcher_repeats_and_stops);
    tcase_add_test(tc, test_many_watchers);
    suite_add_tcase(s, tc);
    tc = tcase_create("closed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_close_waiting_condvar);
    tcase_add_test(tc, test_close_waiting_pipe);
    tcase_add_test(tc, test_close_waiting_thread);
    tcase_add_test(tc, test_close_waiting_user_ops);
    tcase_add_test(tc, test_close_waiting_virtual);
    tcase_add_test(tc, test_close_ends_only_its_waits);
    tcase_add_test(tc, test_close_watcher_waiting);
    tcase_add_test(tc, test_close_before);
    tcase_add_test(tc, test_close_stale_number_reused);
    tcase_add_test(tc, test_close_plain_then_asked);
    tcase_add_test(tc, test_close_no_leak);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(make_suite)
