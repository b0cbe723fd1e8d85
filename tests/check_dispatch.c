/*
 * check_dispatch.c - stm_defer and the dispatcher: stm_dispatch_fd and
 * stm_dispatch.
 *
 * The dispatcher's mode is process-wide: until stm_dispatch_fd() is called
 * a library thread runs the deferred callbacks.  Check forks each test, so
 * every test starts in thread mode and only the tests that call
 * stm_dispatch_fd() switch to fd mode.
 *
 * To check that a callback was dropped, a test commits a "marker" callback
 * afterwards and waits for it: callbacks run in commit order, so anything
 * queued before the marker has run by the time the marker has.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>

enum { NLOG = 512, MARKER = 1000 };

/* What the callbacks record.  Callbacks run one at a time (on the library
 * thread or in stm_dispatch()); the test thread reads the log only after
 * seeing `ran` reach the count it waits for (seq_cst atomics order it). */
static int log_ids[NLOG];
static pthread_t log_threads[NLOG];
static atomic_int ran;
static atomic_int marker_ran;

static void rec(void *arg)
{
    int n = atomic_load(&ran);
    if (n < NLOG) {
        log_ids[n] = (int)(intptr_t)arg;
        log_threads[n] = pthread_self();
    }
    atomic_fetch_add(&ran, 1);
}

static void marker(void *arg)
{
    rec(arg);
    atomic_fetch_add(&marker_ran, 1);
}

static stm_tvar *x, *y;

static void make_vars(void)
{
    atomic_store(&ran, 0);
    atomic_store(&marker_ran, 0);
    x = stm_tvar_new(0);
    y = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
}

/* Commit a transaction that defers marker(MARKER) and wait for it to run
 * (thread mode). */
static int body_marker(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, y, stm_read(tx, y) + 1);
    stm_defer(tx, marker, (void *)(intptr_t)MARKER);
    return 0;
}

static void commit_marker_and_wait(void)
{
    ck_assert_int_eq(stm_atomically(body_marker, NULL), 0);
    ck_assert_msg(tu_wait_atleast(&marker_ran, 1, TU_HANDSHAKE_MS),
                  "the marker callback did not run within %ld ms", TU_HANDSHAKE_MS);
}

/* ---- thread mode -------------------------------------------------------- */

enum { NTHREAD_TX = 50 };

struct seen {
    int id;
    intptr_t peek;
    int tx_rc;
    pthread_t thread;
};
static struct seen seen[NTHREAD_TX];

static int body_in_callback(stm_tx *tx, void *arg)
{
    struct seen *s = arg;
    intptr_t v = stm_read(tx, x);
    stm_write(tx, y, v);
    return s->id + 1;
}

/* Records its id, the committed value of x and whether it can run a
 * transaction of its own (it could not, or would join it, inside one). */
static void cb_thread_mode(void *arg)
{
    struct seen *s = arg;
    s->peek = stm_tvar_peek(x);
    s->tx_rc = stm_atomically(body_in_callback, s);
    s->thread = pthread_self();
    rec((void *)(intptr_t)s->id);
}

static int body_write_defer(stm_tx *tx, void *arg)
{
    struct seen *s = arg;
    stm_write(tx, x, s->id + 1);
    stm_defer(tx, cb_thread_mode, s);
    return 0;
}

START_TEST(test_thread_mode_runs_in_order)
{
    make_vars();
    for (int i = 0; i < NTHREAD_TX; i++) {
        seen[i] = (struct seen){.id = i, .peek = -1, .tx_rc = -1};
        ck_assert_int_eq(stm_atomically(body_write_defer, &seen[i]), 0);
    }
    ck_assert_msg(tu_wait_atleast(&ran, NTHREAD_TX, TU_HANDSHAKE_MS),
                  "only %d of %d callbacks ran", atomic_load(&ran), NTHREAD_TX);
    tu_sleep_ms(10);
    ck_assert_int_eq(atomic_load(&ran), NTHREAD_TX);
    for (int i = 0; i < NTHREAD_TX; i++) {
        ck_assert_int_eq(log_ids[i], i); /* commit order */
        /* after its commit: x holds at least this transaction's value */
        ck_assert_int_ge(seen[i].peek, i + 1);
        ck_assert_int_eq(seen[i].tx_rc, i + 1);
        ck_assert(!pthread_equal(seen[i].thread, pthread_self()));
        ck_assert(pthread_equal(seen[i].thread, seen[0].thread));
    }
}
END_TEST

/* Several callbacks of one transaction run in registration order. */
static int body_many_defers(stm_tx *tx, void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        stm_defer(tx, rec, (void *)(intptr_t)i);
    stm_write(tx, x, 1);
    return 0;
}

START_TEST(test_thread_mode_registration_order)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_many_defers, NULL), 0);
    ck_assert(tu_wait_atleast(&ran, 20, TU_HANDSHAKE_MS));
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(log_ids[i], i);
}
END_TEST

/* ---- dropped with a discarded attempt ----------------------------------- */

static int body_defer_abort(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, 5);
    stm_defer(tx, rec, (void *)(intptr_t)1);
    stm_abort(tx, 7);
}

START_TEST(test_dropped_on_abort)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_defer_abort, NULL), 7);
    commit_marker_and_wait();
    ck_assert_int_eq(atomic_load(&ran), 1);
    ck_assert_int_eq(log_ids[0], MARKER);
    ck_assert_int_eq(stm_tvar_peek(x), 0);
}
END_TEST

struct retry_once {
    int runs;
    atomic_int attempts;
};

static int body_defer_retry(stm_tx *tx, void *arg)
{
    struct retry_once *r = arg;
    int run = r->runs++;
    stm_defer(tx, rec, (void *)(intptr_t)run);
    if (stm_read(tx, x) == 0) {
        atomic_fetch_add(&r->attempts, 1);
        stm_retry(tx);
    }
    return run;
}

struct poker {
    atomic_int *counter;
    bool saw;
    int rc;
};

static void *poker_thread(void *p)
{
    struct poker *pk = p;
    pk->saw = tu_wait_atleast(pk->counter, 1, TU_HANDSHAKE_MS);
    pk->rc = stm_tvar_poke(x, 1);
    return NULL;
}

START_TEST(test_dropped_on_retry)
{
    make_vars();
    struct retry_once r = {0};
    struct poker pk = {.counter = &r.attempts};
    pthread_t t = tu_run_thread(poker_thread, &pk);
    int last = stm_atomically(body_defer_retry, &r);
    tu_join(t);
    ck_assert(pk.saw);
    ck_assert_int_eq(pk.rc, 0);
    ck_assert_int_ge(atomic_load(&r.attempts), 1);
    ck_assert_int_eq(last, r.runs - 1);
    commit_marker_and_wait();
    /* only the committed attempt's callback, then the marker */
    ck_assert_int_eq(atomic_load(&ran), 2);
    ck_assert_int_eq(log_ids[0], last);
    ck_assert_int_eq(log_ids[1], MARKER);
}
END_TEST

static int branch_first(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_defer(tx, rec, (void *)(intptr_t)2);
    stm_write(tx, y, 9);
    if (stm_read(tx, x) == 0)
        stm_retry(tx);
    return 2;
}

static int branch_second(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_defer(tx, rec, (void *)(intptr_t)3);
    return 3;
}

static int body_or_else(stm_tx *tx, void *arg)
{
    stm_defer(tx, rec, (void *)(intptr_t)1); /* before the choice: kept */
    int r = stm_or_else(tx, branch_first, branch_second, arg);
    stm_defer(tx, rec, (void *)(intptr_t)4); /* after it: kept */
    return r;
}

START_TEST(test_dropped_with_or_else_branch)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_or_else, NULL), 3);
    ck_assert_int_eq(stm_tvar_peek(y), 0);
    commit_marker_and_wait();
    ck_assert_int_eq(atomic_load(&ran), 4);
    ck_assert_int_eq(log_ids[0], 1);
    ck_assert_int_eq(log_ids[1], 3);
    ck_assert_int_eq(log_ids[2], 4);
    ck_assert_int_eq(log_ids[3], MARKER);
}
END_TEST

struct nomem {
    int runs;
    bool fired;
};

static int body_defer_nomem(stm_tx *tx, void *arg)
{
    struct nomem *nm = arg;
    nm->runs++;
    stm_write(tx, x, 3);
    stm__fault_alloc_after(0);
    stm_defer(tx, rec, (void *)(intptr_t)1);
    nm->fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    return 0;
}

START_TEST(test_dropped_on_nomem)
{
    make_vars();
    /* Nothing else runs meanwhile: no callback has been queued yet, so the
     * library's dispatcher thread has not been started. */
    struct nomem nm = {0};
    int rc = stm_atomically(body_defer_nomem, &nm);
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert_int_eq(rc, -ENOMEM);
    ck_assert(fired);
    ck_assert_int_eq(nm.runs, 1);
    ck_assert_int_eq(stm_tvar_peek(x), 0);
    commit_marker_and_wait();
    ck_assert_int_eq(atomic_load(&ran), 1);
    ck_assert_int_eq(log_ids[0], MARKER);
}
END_TEST

/* ---- read-only transactions --------------------------------------------- */

static int body_read_only(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, x);
    stm_defer(tx, rec, (void *)(intptr_t)(v + 40));
    return 0;
}

START_TEST(test_read_only_defer_runs)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_read_only, NULL), 0);
    ck_assert(tu_wait_atleast(&ran, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(log_ids[0], 40);
    /* and with no TVar read at all */
    ck_assert_int_eq(stm_atomically(body_many_defers, NULL), 0);
    ck_assert(tu_wait_atleast(&ran, 21, TU_HANDSHAKE_MS));
}
END_TEST

/* ---- fd mode ------------------------------------------------------------ */

/* Whether fd is readable now (poll with time-out 0). */
static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    ck_assert_int_ge(r, 0);
    return r == 1 && (p.revents & POLLIN);
}

static int body_defer_id(stm_tx *tx, void *arg)
{
    stm_write(tx, x, stm_read(tx, x) + 1);
    stm_defer(tx, rec, arg);
    return 0;
}

static int body_defer_id_again(stm_tx *tx, void *arg)
{
    stm_write(tx, y, stm_read(tx, y) + 1);
    stm_defer(tx, rec, arg);
    return 0;
}

/* A callback that commits a transaction with a callback of its own. */
static void cb_chain(void *arg)
{
    rec(arg);
    ck_assert_int_eq(stm_atomically(body_defer_id_again, (void *)(intptr_t)21), 0);
}

static int body_defer_chain(stm_tx *tx, void *arg)
{
    stm_write(tx, x, stm_read(tx, x) + 1);
    stm_defer(tx, cb_chain, arg);
    return 0;
}

START_TEST(test_fd_mode)
{
    make_vars();
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stm_dispatch_fd(), fd);
    ck_assert(!readable(fd));
    ck_assert_int_eq(stm_dispatch(), 0);

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(stm_atomically(body_defer_id, (void *)(intptr_t)i), 0);
    ck_assert(readable(fd));
    tu_sleep_ms(20); /* no library thread runs them meanwhile */
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert(readable(fd));

    ck_assert_int_eq(stm_dispatch(), 3);
    ck_assert_int_eq(atomic_load(&ran), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(log_ids[i], i);
        ck_assert(pthread_equal(log_threads[i], pthread_self()));
    }
    ck_assert(!readable(fd));
    ck_assert_int_eq(stm_dispatch(), 0);

    /* a callback's own deferred callback runs in the same stm_dispatch() */
    ck_assert_int_eq(stm_atomically(body_defer_chain, (void *)(intptr_t)20), 0);
    ck_assert(readable(fd));
    ck_assert_int_eq(stm_dispatch(), 2);
    ck_assert_int_eq(atomic_load(&ran), 5);
    ck_assert_int_eq(log_ids[3], 20);
    ck_assert_int_eq(log_ids[4], 21);
    ck_assert(!readable(fd));

    /* the descriptor is the same after use */
    ck_assert_int_eq(stm_dispatch_fd(), fd);
}
END_TEST

/* Callbacks queued in thread mode are not lost by switching to fd mode. */
static void cb_slow(void *arg)
{
    tu_sleep_ms(1);
    rec(arg);
}

static int body_defer_slow(stm_tx *tx, void *arg)
{
    stm_write(tx, x, stm_read(tx, x) + 1);
    stm_defer(tx, cb_slow, arg);
    return 0;
}

START_TEST(test_switch_keeps_queued)
{
    enum { N = 200 };
    make_vars();
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(stm_atomically(body_defer_slow, (void *)(intptr_t)i), 0);
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    /* the library thread has stopped: nothing more runs by itself */
    int by_thread = atomic_load(&ran);
    tu_sleep_ms(20);
    ck_assert_int_eq(atomic_load(&ran), by_thread);
    if (by_thread < N)
        ck_assert_msg(readable(fd), "%d callbacks queued, fd not readable", N - by_thread);
    int by_app = stm_dispatch();
    ck_assert_int_eq(by_thread + by_app, N);
    ck_assert_int_eq(atomic_load(&ran), N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(log_ids[i], i);
    ck_assert(!readable(fd));
}
END_TEST

START_TEST(test_shutdown_runs_queued)
{
    make_vars();
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(stm_atomically(body_defer_id, (void *)(intptr_t)i), 0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
    ck_assert_int_eq(atomic_load(&ran), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(log_ids[i], i);
        ck_assert(pthread_equal(log_threads[i], pthread_self()));
    }
}
END_TEST

/* In thread mode too, stm_shutdown() returns after the queue has run. */
START_TEST(test_shutdown_thread_mode)
{
    make_vars();
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(stm_atomically(body_defer_slow, (void *)(intptr_t)i), 0);
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
    ck_assert_int_eq(atomic_load(&ran), 50);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(log_ids[i], i);
}
END_TEST

/* ---- concurrency -------------------------------------------------------- */

enum { CTHREADS = 4, CPER = 2000, CTOTAL = CTHREADS * CPER };

static intptr_t cvals[CTOTAL];
static atomic_int cran;
static stm_tvar *counter;

static void rec_value(void *arg)
{
    int n = atomic_load(&cran);
    if (n < CTOTAL)
        cvals[n] = (intptr_t)arg;
    atomic_fetch_add(&cran, 1);
}

static int body_increment(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, counter) + 1;
    stm_write(tx, counter, v);
    stm_defer(tx, rec_value, (void *)v);
    return 0;
}

static void *incrementer(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < CPER; i++)
        if (stm_atomically(body_increment, NULL) != 0)
            ++*bad;
    return NULL;
}

START_TEST(test_concurrent_commit_order)
{
    counter = stm_tvar_new(0);
    ck_assert_ptr_nonnull(counter);
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    pthread_t t[CTHREADS];
    int bad[CTHREADS] = {0};
    for (int i = 0; i < CTHREADS; i++)
        t[i] = tu_run_thread(incrementer, &bad[i]);
    int64_t end = tu_now_ns() + INT64_C(60000000000);
    while (atomic_load(&cran) < CTOTAL && tu_now_ns() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 100);
        ck_assert_int_ge(r, 0);
        if (r > 0)
            stm_dispatch();
    }
    for (int i = 0; i < CTHREADS; i++) {
        tu_join(t[i]);
        ck_assert_int_eq(bad[i], 0);
    }
    ck_assert_int_eq(atomic_load(&cran), CTOTAL);
    ck_assert_int_eq(stm_dispatch(), 0);
    ck_assert_int_eq(stm_tvar_peek(counter), CTOTAL);
    for (int i = 0; i < CTOTAL; i++)
        ck_assert_msg(cvals[i] == i + 1, "callback %d recorded %ld", i, (long)cvals[i]);
}
END_TEST

/* ---- several dispatchers at once (issue #11, defects 8 and 9) ---------- */

/* Callbacks that must run one at a time, in commit order, whoever runs
 * them: each records its value (the counter its commit wrote, so commit
 * order is 1, 2, 3, ...) and notices any other callback running at the
 * same time. */
static atomic_int inside, overlaps;

static void rec_exclusive(void *arg)
{
    if (atomic_fetch_add(&inside, 1) != 0)
        atomic_fetch_add(&overlaps, 1);
    int n = atomic_load(&cran);
    if (n < CTOTAL)
        cvals[n] = (intptr_t)arg;
    sched_yield(); /* widen the window: let another dispatcher in, if it can */
    atomic_fetch_add(&cran, 1);
    atomic_fetch_sub(&inside, 1);
}

static int body_increment_exclusive(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, counter) + 1;
    stm_write(tx, counter, v);
    stm_defer(tx, rec_exclusive, (void *)v);
    return 0;
}

static void *incrementer_exclusive(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < CPER; i++)
        if (stm_atomically(body_increment_exclusive, NULL) != 0)
            ++*bad;
    return NULL;
}

/* An event loop: poll the descriptor (or not, in thread mode) and
 * dispatch, until every callback has run. */
static void *event_loop(void *arg)
{
    int fd = (int)(intptr_t)arg;
    int64_t end = tu_now_ns() + INT64_C(60000000000);
    while (atomic_load(&cran) < CTOTAL && tu_now_ns() < end) {
        if (fd >= 0) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 10) <= 0)
                continue;
        }
        if (stm_dispatch() == 0 && fd < 0)
            sched_yield(); /* thread mode: nothing to poll */
    }
    return NULL;
}

static void check_exclusive_in_order(int fd, int loops)
{
    counter = stm_tvar_new(0);
    ck_assert_ptr_nonnull(counter);
    atomic_store(&cran, 0);
    atomic_store(&inside, 0);
    atomic_store(&overlaps, 0);
    pthread_t t[CTHREADS], l[4];
    int bad[CTHREADS] = {0};
    for (int i = 0; i < loops; i++)
        l[i] = tu_run_thread(event_loop, (void *)(intptr_t)fd);
    for (int i = 0; i < CTHREADS; i++)
        t[i] = tu_run_thread(incrementer_exclusive, &bad[i]);
    for (int i = 0; i < CTHREADS; i++) {
        tu_join(t[i]);
        ck_assert_int_eq(bad[i], 0);
    }
    for (int i = 0; i < loops; i++)
        tu_join(l[i]);
    stm_shutdown(); /* runs anything left (thread mode) */
    ck_assert_int_eq(atomic_load(&cran), CTOTAL);
    int overlapped = atomic_load(&overlaps);
    ck_assert_msg(overlapped == 0, "%d of %d callbacks ran while another ran", overlapped, CTOTAL);
    int out_of_order = 0;
    for (int i = 0; i < CTOTAL; i++)
        out_of_order += cvals[i] != i + 1;
    ck_assert_msg(out_of_order == 0, "%d of %d callbacks out of commit order", out_of_order,
                  CTOTAL);
    stm_tvar_free(counter);
}

/* Two event loops dispatching the one queue at once. */
START_TEST(test_two_loops_one_at_a_time)
{
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    check_exclusive_in_order(fd, 2);
}
END_TEST

/* An event loop calling stm_dispatch() while the library thread still
 * runs (no stm_dispatch_fd()): the two take turns too. */
START_TEST(test_loop_and_library_thread_one_at_a_time)
{
    check_exclusive_in_order(-1, 1);
}
END_TEST

/* stm_dispatch() from a callback returns 0 at once; the callbacks behind
 * it run after it, in order. */
static atomic_int nested_rc;

static void cb_dispatch_nested(void *arg)
{
    rec(arg);
    atomic_store(&nested_rc, stm_dispatch());
}

static int body_defer_nested(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, 1);
    stm_defer(tx, rec, (void *)(intptr_t)1);
    stm_defer(tx, cb_dispatch_nested, (void *)(intptr_t)2);
    stm_defer(tx, rec, (void *)(intptr_t)3);
    stm_defer(tx, rec, (void *)(intptr_t)4);
    return 0;
}

START_TEST(test_dispatch_from_callback)
{
    make_vars();
    atomic_store(&nested_rc, -1);
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stm_atomically(body_defer_nested, NULL), 0);
    ck_assert_int_eq(stm_dispatch(), 4);
    ck_assert_int_eq(atomic_load(&nested_rc), 0);
    ck_assert_int_eq(atomic_load(&ran), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(log_ids[i], i + 1);
    /* on the library thread too */
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
    make_vars();
    atomic_store(&nested_rc, -1);
    ck_assert_int_eq(stm_atomically(body_defer_nested, NULL), 0);
    commit_marker_and_wait();
    ck_assert_int_eq(atomic_load(&nested_rc), 0);
    ck_assert_int_eq(atomic_load(&ran), 5);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(log_ids[i], i + 1);
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
}
END_TEST

/* A thread cancelled inside a callback it runs in stm_dispatch() (the
 * callback blocks in read(), a cancellation point) does not leave the
 * other dispatchers waiting for it: the callbacks behind it still run. */
static atomic_int blocking_in, second_done, second_rc;
static int block_pipe[2];

/* A handler in the frame that is cancelled, so that the unwinding stops
 * here first: AddressSanitizer's runtime would otherwise meet this
 * frame's stack redzones at the library's handler and report a false
 * error (google/sanitizers#1010). */
static void block_cancelled(void *unused)
{
    (void)unused;
}

static void cb_block_cancellable(void *arg)
{
    rec(arg);
    atomic_store(&blocking_in, 1);
    char c;
    pthread_cleanup_push(block_cancelled, NULL);
    ssize_t r = read(block_pipe[0], &c, 1); /* cancelled here */
    (void)r;
    pthread_cleanup_pop(0);
}

static int body_defer_blocking(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, 1);
    stm_defer(tx, cb_block_cancellable, (void *)(intptr_t)1);
    stm_defer(tx, rec, (void *)(intptr_t)2);
    stm_defer(tx, rec, (void *)(intptr_t)3);
    return 0;
}

static void *dispatch_once(void *arg)
{
    atomic_int *done = arg;
    int rc = stm_dispatch();
    if (done) {
        atomic_store(&second_rc, rc);
        atomic_store(done, 1);
    }
    return NULL;
}

START_TEST(test_cancel_in_callback)
{
    make_vars();
    atomic_store(&blocking_in, 0);
    atomic_store(&second_done, 0);
    ck_assert_int_eq(pipe(block_pipe), 0);
    ck_assert_int_ge(stm_dispatch_fd(), 0);
    ck_assert_int_eq(stm_atomically(body_defer_blocking, NULL), 0);
    pthread_t t = tu_run_thread(dispatch_once, NULL);
    ck_assert(tu_wait_atleast(&blocking_in, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(pthread_cancel(t), 0);
    ck_assert_ptr_eq(tu_join(t), PTHREAD_CANCELED);
    pthread_t t2 = tu_run_thread(dispatch_once, &second_done);
    ck_assert_msg(tu_wait_atleast(&second_done, 1, TU_HANDSHAKE_MS),
                  "stm_dispatch() hangs after a dispatching thread was cancelled in a callback");
    tu_join(t2);
    ck_assert_int_eq(atomic_load(&second_rc), 2);
    ck_assert_int_eq(atomic_load(&ran), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(log_ids[i], i + 1);
    close(block_pipe[0]);
    close(block_pipe[1]);
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
}
END_TEST

/* Many threads call stm_dispatch_fd() at once while the library thread
 * runs a callback: every one returns the same descriptor, none hangs, and
 * none returns before the library thread has stopped (after that
 * callback).  Repeated: stm_shutdown() goes back to thread mode. */
enum { FD_CALLERS = 8, FD_ROUNDS = 20 };
static atomic_int fd_started, fd_returned, fd_early, cb_entered, cb_done;
static int fd_seen[FD_CALLERS];

static void cb_hold_thread(void *arg)
{
    (void)arg;
    atomic_store(&cb_entered, 1);
    tu_wait_atleast(&fd_started, FD_CALLERS, TU_HANDSHAKE_MS);
    /* Not needed for the test to pass: it gives the callers time to
     * reach the join, where they used to collide. */
    tu_sleep_ms(10);
    atomic_store(&cb_done, 1);
}

static int body_defer_hold(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, stm_read(tx, x) + 1);
    stm_defer(tx, cb_hold_thread, NULL);
    return 0;
}

static void *fd_caller(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&fd_started, 1);
    fd_seen[i] = stm_dispatch_fd();
    if (!atomic_load(&cb_done))
        atomic_fetch_add(&fd_early, 1);
    atomic_fetch_add(&fd_returned, 1);
    return NULL;
}

START_TEST(test_dispatch_fd_race)
{
    for (int round = 0; round < FD_ROUNDS; round++) {
        make_vars();
        atomic_store(&fd_started, 0);
        atomic_store(&fd_returned, 0);
        atomic_store(&fd_early, 0);
        atomic_store(&cb_entered, 0);
        atomic_store(&cb_done, 0);
        ck_assert_int_eq(stm_atomically(body_defer_hold, NULL), 0);
        ck_assert(tu_wait_atleast(&cb_entered, 1, TU_HANDSHAKE_MS));
        pthread_t t[FD_CALLERS];
        for (int i = 0; i < FD_CALLERS; i++)
            t[i] = tu_run_thread(fd_caller, (void *)(intptr_t)i);
        ck_assert_msg(tu_wait_atleast(&fd_returned, FD_CALLERS, TU_HANDSHAKE_MS),
                      "round %d: %d of %d stm_dispatch_fd() calls hang", round,
                      FD_CALLERS - atomic_load(&fd_returned), FD_CALLERS);
        for (int i = 0; i < FD_CALLERS; i++)
            tu_join(t[i]);
        ck_assert_msg(atomic_load(&fd_early) == 0,
                      "round %d: %d calls returned while the library thread ran a callback", round,
                      atomic_load(&fd_early));
        ck_assert_int_ge(fd_seen[0], 0);
        for (int i = 1; i < FD_CALLERS; i++)
            ck_assert_int_eq(fd_seen[i], fd_seen[0]);
        /* the application's now: a commit makes the descriptor readable */
        ck_assert_int_eq(stm_atomically(body_marker, NULL), 0);
        struct pollfd p = {.fd = fd_seen[0], .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, (int)TU_HANDSHAKE_MS), 1);
        ck_assert_int_eq(stm_dispatch(), 1);
        ck_assert_int_eq(atomic_load(&marker_ran), 1);
        stm_tvar_free(x);
        stm_tvar_free(y);
        stm_shutdown();
    }
}
END_TEST

/* ---- misuse ------------------------------------------------------------- */

#include "misuse.h"

static int body_dispatch_inside(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, 1);
    return stm_dispatch();
}

START_TEST(test_dispatch_inside_tx)
{
    make_vars();
    expect_abort("stm_dispatch");
    stm_atomically(body_dispatch_inside, NULL);
    ck_abort_msg("stm_dispatch inside a transaction returned");
}
END_TEST

/* volatile: keeps the compiler from seeing the NULL (stm_defer is
 * declared nonnull for callers).  Under -fsanitize=undefined the call site
 * would be reported (and the process exit 1) before the library could
 * diagnose it, so that check is off for this function. */
static void (*volatile null_fn)(void *);

#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define TU_NO_SANITIZE_NONNULL __attribute__((no_sanitize("nonnull-attribute")))
#endif
#endif
#ifndef TU_NO_SANITIZE_NONNULL
#define TU_NO_SANITIZE_NONNULL
#endif

TU_NO_SANITIZE_NONNULL
static int body_defer_null(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_defer(tx, null_fn, NULL);
    return 0;
}

START_TEST(test_defer_null_fn)
{
    make_vars();
    expect_abort("stm_defer");
    stm_atomically(body_defer_null, NULL);
    ck_abort_msg("stm_defer with a NULL callback returned");
}
END_TEST

static Suite *dispatch_suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tc = tcase_create("thread");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_thread_mode_runs_in_order);
    tcase_add_test(tc, test_thread_mode_registration_order);
    tcase_add_test(tc, test_read_only_defer_runs);
    suite_add_tcase(s, tc);

    tc = tcase_create("dropped");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_dropped_on_abort);
    tcase_add_test(tc, test_dropped_on_retry);
    tcase_add_test(tc, test_dropped_with_or_else_branch);
    tcase_add_test(tc, test_dropped_on_nomem);
    suite_add_tcase(s, tc);

    tc = tcase_create("fd");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fd_mode);
    tcase_add_test(tc, test_switch_keeps_queued);
    tcase_add_test(tc, test_shutdown_runs_queued);
    tcase_add_test(tc, test_shutdown_thread_mode);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_concurrent_commit_order);
    tcase_add_test(tc, test_two_loops_one_at_a_time);
    tcase_add_test(tc, test_loop_and_library_thread_one_at_a_time);
    tcase_add_test(tc, test_dispatch_from_callback);
    tcase_add_test(tc, test_dispatch_fd_race);
    tcase_add_test(tc, test_cancel_in_callback);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_dispatch_inside_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_defer_null_fn, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(dispatch_suite)
