/*
 * check_watch_error.c - failed runs of a watcher's own (deadline, fd,
 * retry runs) are reported to stm_set_watch_error_handler()'s handler and
 * retried on the documented schedule: STM_WATCH_RETRY_FIRST after the
 * failure, doubling with each failure in a row up to STM_WATCH_RETRY_MAX,
 * on the library's clock.  On the virtual clock, exactly.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "stm-internal.h"
#include "testutil.h"

static const int64_t S = STM_SEC(1000);
static const int64_t D = STM_SEC(1000) + STM_MSEC(100); /* the watcher's deadline */

enum { MAXR = 64 };

static pthread_mutex_t rep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct report {
    stm_watch *w;
    int err;
    int64_t retry_at, now;
} reps[MAXR];
static atomic_int nrep;

static void handler(stm_watch *w, int err, int64_t retry_at, void *arg)
{
    ck_assert_ptr_eq(arg, &nrep);
    ck_assert_ptr_null(stm_tx_current()); /* outside any transaction */
    pthread_mutex_lock(&rep_lock);
    int k = atomic_load(&nrep);
    if (k < MAXR) {
        reps[k].w = w;
        reps[k].err = err;
        reps[k].retry_at = retry_at;
        reps[k].now = stm_now();
    }
    atomic_store(&nrep, k + 1);
    pthread_mutex_unlock(&rep_lock);
}

static void reset_reports(void)
{
    pthread_mutex_lock(&rep_lock);
    memset(reps, 0, sizeof reps);
    atomic_store(&nrep, 0);
    pthread_mutex_unlock(&rep_lock);
    stm_set_watch_error_handler(handler, &nrep);
}

enum { OK = 0, VETO, RETRY, LOOP };

struct wf {
    stm_tvar *mode; /* what fn does once the deadline has come */
    stm_tvar *x;    /* LOOP: cb writes it, fn reads it */
    atomic_int runs, cbs;
    int fd;     /* >= 0: wait for it instead of the deadline */
    int64_t dl; /* the deadline (D unless set) */
};

static intptr_t fn_wf(stm_tx *tx, void *arg)
{
    struct wf *f = arg;
    atomic_fetch_add(&f->runs, 1);
    intptr_t mode = stm_read(tx, f->mode);
    intptr_t x = stm_read(tx, f->x);
    if (f->fd >= 0) {
        if (!stm_fd_ready(tx, f->fd, POLLIN))
            return 0;
    } else if (!stm_elapsed(tx, f->dl)) {
        return 0;
    }
    switch (mode) {
    case VETO:
        stm_abort(tx, -EPIPE);
    case RETRY:
        stm_retry(tx);
    case LOOP:
        return x;
    default:
        return 1;
    }
}

static void cb_wf(stm_tx *tx, intptr_t v, void *arg)
{
    struct wf *f = arg;
    atomic_fetch_add(&f->cbs, 1);
    if (stm_read(tx, f->mode) == LOOP && v != 0)
        stm_write(tx, f->x, v + 1); /* runs fn again: for ever */
}

static stm_watch *make(struct wf *f, intptr_t mode, int fd)
{
    memset(f, 0, sizeof *f);
    f->mode = stm_tvar_new(mode);
    f->x = stm_tvar_new(1);
    f->fd = fd;
    f->dl = D;
    stm_watch *w = stm_atomically_watch(fn_wf, cb_wf, f, 0);
    ck_assert_ptr_nonnull(w);
    return w;
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

static void unmake(struct wf *f, stm_watch *w)
{
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    stm_tvar_free(f->mode);
    stm_tvar_free(f->x);
}

static int nrep_now(void)
{
    return atomic_load(&nrep);
}

/* The k-th failure in a row is retried STM_WATCH_RETRY_FIRST * 2^(k-1)
 * after it, at most STM_WATCH_RETRY_MAX. */
static int64_t delay(int k)
{
    int64_t d = STM_WATCH_RETRY_FIRST;
    for (int i = 1; i < k && d < STM_WATCH_RETRY_MAX; i++)
        d *= 2;
    return d < STM_WATCH_RETRY_MAX ? d : STM_WATCH_RETRY_MAX;
}

/* A vetoed deadline run: reported with the veto's code, retried on the
 * schedule (checked exactly, up to and at the cap), each retry reported
 * again; nothing runs between retries. */
static void run_schedule(intptr_t mode, int err)
{
    reset_reports();
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct wf f;
    stm_watch *w = make(&f, mode, -1);
    ck_assert_int_eq(atomic_load(&f.runs), 1);
    stm_clock_advance(D - S); /* the deadline run fails */
    ck_assert_int_eq(nrep_now(), 1);
    ck_assert_ptr_eq(reps[0].w, w);
    ck_assert_int_eq(reps[0].err, err);
    ck_assert_int_eq(reps[0].now, D);
    ck_assert_int_eq(reps[0].retry_at, D + STM_WATCH_RETRY_FIRST);
    int64_t at = D;
    const int N = 14; /* past the cap: 1, 2, 4, ..., 512, 1000, 1000 ms */
    for (int k = 1; k < N; k++) {
        int64_t next = at + delay(k);
        ck_assert_int_eq(reps[k - 1].retry_at, next);
        stm_clock_advance(next - stm_now() - 1); /* not yet */
        ck_assert_int_eq(nrep_now(), k);
        stm_clock_advance(1); /* the retry: fails again */
        ck_assert_int_eq(nrep_now(), k + 1);
        ck_assert_int_eq(reps[k].now, next);
        ck_assert_int_eq(reps[k].err, err);
        ck_assert_int_eq(reps[k].retry_at, next + delay(k + 1));
        at = next;
    }
    ck_assert_int_eq(delay(N), STM_WATCH_RETRY_MAX);
    /* fixed: the run the poke causes commits; no more reports, no retries */
    ck_assert_int_eq(stm_tvar_poke(f.mode, OK), 0); /* (runs it: a TVar it read) */
    int runs = atomic_load(&f.runs);
    stm_clock_advance(STM_SEC(10));
    ck_assert_int_eq(nrep_now(), N);
    ck_assert_int_eq(atomic_load(&f.runs), runs); /* the poke's run ended the series */
    unmake(&f, w);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_set_watch_error_handler(NULL, NULL);
}

START_TEST(test_veto_schedule)
{
    run_schedule(VETO, -EPIPE);
}
END_TEST

START_TEST(test_retry_schedule)
{
    run_schedule(RETRY, -EAGAIN);
}
END_TEST

START_TEST(test_eloop_reported)
{
    reset_reports();
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct wf f;
    stm_watch *w = make(&f, LOOP, -1);
    stm_clock_advance(D - S);
    ck_assert_int_eq(nrep_now(), 1);
    ck_assert_int_eq(reps[0].err, -ELOOP);
    ck_assert_int_eq(reps[0].retry_at, D + STM_WATCH_RETRY_FIRST);
    stm_clock_advance(STM_WATCH_RETRY_FIRST);
    ck_assert_int_eq(nrep_now(), 2);
    ck_assert_int_eq(stm_tvar_poke(f.mode, OK), 0);
    stm_clock_advance(STM_SEC(5));
    ck_assert_int_eq(nrep_now(), 2);
    unmake(&f, w);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_set_watch_error_handler(NULL, NULL);
}
END_TEST

/* Without a handler the failed runs are still retried (and counted). */
START_TEST(test_no_handler_still_retried)
{
    stm_set_watch_error_handler(NULL, NULL);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    struct wf f;
    stm_watch *w = make(&f, VETO, -1);
    stm_clock_advance(D - S);
    int runs = atomic_load(&f.runs);
    stm_clock_advance(STM_MSEC(1) + STM_MSEC(2) + STM_MSEC(4)); /* three retries */
    ck_assert_int_eq(atomic_load(&f.runs), runs + 3);
    stm_stats_get(&b);
    ck_assert_uint_ge(b.watch_failures - a.watch_failures, 4);
    unmake(&f, w);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* An fd run that fails is reported too, and retried on the (virtual)
 * library clock. */
START_TEST(test_fd_run_reported)
{
    reset_reports();
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct wf f;
    stm_watch *w = make(&f, VETO, sv[0]);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert_msg(tu_wait_atleast(&nrep, 1, TU_HANDSHAKE_MS), "no report");
    ck_assert_int_eq(reps[0].err, -EPIPE);
    ck_assert_int_eq(reps[0].now, S);
    ck_assert_int_eq(reps[0].retry_at, S + STM_WATCH_RETRY_FIRST);
    stm_clock_advance(STM_WATCH_RETRY_FIRST);
    ck_assert_int_eq(nrep_now(), 2);
    ck_assert_int_eq(reps[1].retry_at, S + STM_WATCH_RETRY_FIRST + 2 * STM_WATCH_RETRY_FIRST);
    unmake(&f, w);
    /* stopped: its pending retry is gone */
    stm_clock_advance(STM_SEC(5));
    ck_assert_int_eq(nrep_now(), 2);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_set_watch_error_handler(NULL, NULL);
}
END_TEST

/* The real clock: a deadline run that fails is retried by the timer
 * thread, never before its retry time. */
START_TEST(test_real_clock_retry)
{
    reset_reports();
    struct wf f;
    memset(&f, 0, sizeof f);
    f.mode = stm_tvar_new(VETO);
    f.x = stm_tvar_new(1);
    f.fd = -1;
    f.dl = stm_now() + STM_MSEC(20);
    stm_watch *w = stm_atomically_watch(fn_wf, cb_wf, &f, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_msg(tu_wait_atleast(&nrep, 3, TU_HANDSHAKE_MS), "no retries");
    pthread_mutex_lock(&rep_lock);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(reps[k].err, -EPIPE);
    ck_assert_int_ge(reps[0].now, f.dl);
    ck_assert_int_ge(reps[1].now, reps[0].retry_at); /* never early */
    ck_assert_int_ge(reps[2].now, reps[1].retry_at);
    ck_assert_int_ge(reps[2].retry_at - reps[1].retry_at, 2 * STM_WATCH_RETRY_FIRST);
    pthread_mutex_unlock(&rep_lock);
    unmake(&f, w);
    stm_set_watch_error_handler(NULL, NULL);
}
END_TEST

/* An fd interest that cannot be registered (here: the fd thread cannot
 * start, for want of file descriptors) is not dropped: the watcher is run
 * again on the schedule, the error reported when the retry comes, and
 * once fds are to be had again its interest is registered.  (Check runs
 * each test in a process of its own: the fd thread has not started.) */
START_TEST(test_fd_interest_lost_is_retried)
{
    reset_reports();
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct wf f;
    memset(&f, 0, sizeof f);
    f.mode = stm_tvar_new(OK);
    f.x = stm_tvar_new(1);
    f.fd = sv[0];
    f.dl = D;
    /* use up the file descriptors: epoll_create1() fails with EMFILE */
    struct rlimit rl, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = rl;
    low.rlim_cur = 256;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int hog[256], nhog = 0;
    while (nhog < 256 && (hog[nhog] = dup(0)) >= 0)
        nhog++;
    ck_assert_int_lt(nhog, 256);
    ck_assert_int_eq(errno, EMFILE);
    stm_watch *w = stm_atomically_watch(fn_wf, cb_wf, &f, 0);
    ck_assert_ptr_nonnull(w); /* the watcher is made; its fd could not be */
    ck_assert_int_eq(nrep_now(), 0);
    stm_clock_advance(STM_WATCH_RETRY_FIRST - 1);
    ck_assert_int_eq(atomic_load(&f.runs), 1);
    stm_clock_advance(1); /* the retry: reported, run, fails again */
    ck_assert_int_eq(nrep_now(), 1);
    ck_assert_int_eq(reps[0].err, -EMFILE);
    ck_assert_int_eq(reps[0].now, S + STM_WATCH_RETRY_FIRST);
    ck_assert_int_eq(atomic_load(&f.runs), 2);
    for (int i = 0; i < nhog; i++)
        close(hog[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    stm_clock_advance(2 * STM_WATCH_RETRY_FIRST); /* the next retry registers it */
    ck_assert_int_eq(nrep_now(), 2);
    ck_assert_int_eq(reps[1].err, -EMFILE);
    ck_assert_int_eq(atomic_load(&f.runs), 3);
    stm_clock_advance(STM_SEC(10)); /* no more retries */
    ck_assert_int_eq(nrep_now(), 2);
    ck_assert_int_eq(atomic_load(&f.runs), 3);
    ck_assert_int_eq(write(sv[1], "x", 1), 1); /* and the fd now runs it */
    ck_assert_msg(tu_wait_atleast(&f.runs, 4, TU_HANDSHAKE_MS), "the fd did not run it");
    unmake(&f, w);
    close(sv[0]);
    close(sv[1]);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_set_watch_error_handler(NULL, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("watch_error");
    TCase *tc = tcase_create("schedule");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_veto_schedule);
    tcase_add_test(tc, test_retry_schedule);
    tcase_add_test(tc, test_eloop_reported);
    tcase_add_test(tc, test_no_handler_still_retried);
    tcase_add_test(tc, test_fd_run_reported);
    tcase_add_test(tc, test_real_clock_retry);
    tcase_add_test(tc, test_fd_interest_lost_is_retried);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(make_suite)
