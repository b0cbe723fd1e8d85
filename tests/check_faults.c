/*
 * check_faults.c - proof: resources that run out come back as documented
 * errors, and the library keeps working once they return.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Faults injected:
 *   - pthread_create() failing (EAGAIN) for the library's timer thread
 *     (the "thread" Waiter's timed waits; a watcher arming a deadline) and
 *     for the dispatcher thread (stm_defer()).  The tests link libstm
 *     statically, so the pthread_create() defined here is the one the
 *     library calls; it calls the next one (libc's, or a sanitizer's
 *     interceptor) through dlsym(RTLD_NEXT) unless told to fail;
 *   - EMFILE: the descriptor table filled with dup() under a lowered
 *     RLIMIT_NOFILE, for stm_dispatch_fd() and for the "pipe" Waiter.
 * Every test then gives the resource back and checks that the same calls
 * succeed.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <dlfcn.h>
#include <poll.h>
#include <sys/resource.h>

#include "testutil.h"

/* ---- pthread_create on demand ---- */

static atomic_bool fail_create;
static atomic_int creates_failed, creates_ok;

typedef int create_fn(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static create_fn *real;
    if (real == NULL) {
        void *p = dlsym(RTLD_NEXT, "pthread_create");
        if (p == NULL)
            abort();
        memcpy(&real, &p, sizeof real);
    }
    if (atomic_load(&fail_create)) {
        atomic_fetch_add(&creates_failed, 1);
        return EAGAIN;
    }
    int rc = real(t, attr, fn, arg);
    if (rc == 0)
        atomic_fetch_add(&creates_ok, 1);
    return rc;
}

/* ---- descriptors on demand ---- */

static int *held;
static int nheld;
static struct rlimit saved_limit;

/* Use up every descriptor (a soft limit of 256 keeps it quick). */
static void fill_fds(void)
{
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved_limit), 0);
    struct rlimit low = saved_limit;
    if (low.rlim_cur > 256)
        low.rlim_cur = 256;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    held = malloc(low.rlim_cur * sizeof *held);
    ck_assert_ptr_nonnull(held);
    nheld = 0;
    int fd;
    while ((fd = dup(0)) >= 0)
        held[nheld++] = fd;
    ck_assert_int_eq(errno, EMFILE);
}

static void free_fds(void)
{
    for (int i = 0; i < nheld; i++)
        close(held[i]);
    free(held);
    held = NULL;
    nheld = 0;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved_limit), 0);
}

/* ---- bodies ---- */

static stm_tvar *x;

static int wait_for_x(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, x) == 0)
        stm_retry(tx);
    return (int)stm_read(tx, x);
}

/* A timed wait: -ETIMEDOUT, never early. */
static void timed_wait_ok(int64_t ms)
{
    int64_t t0 = stm_now();
    int rc = stm_atomically_until(wait_for_x, NULL, t0 + STM_MSEC(ms));
    ck_assert_int_eq(rc, -ETIMEDOUT);
    ck_assert_int_ge(stm_now() - t0, STM_MSEC(ms));
}

struct poker {
    stm_tvar *var;
    atomic_int go;
};

static void *poke_later(void *p)
{
    struct poker *k = p;
    tu_wait_atleast(&k->go, 1, TU_HANDSHAKE_MS);
    tu_sleep_ms(20); /* the waiter is (very likely) asleep by now; either way it wakes */
    stm_tvar_poke(k->var, 7);
    return NULL;
}

/* A commit wakes a thread blocked in stm_retry() on this thread. */
static void commit_wakes_ok(void)
{
    stm_tvar_poke(x, 0);
    struct poker k = {.var = x};
    atomic_store(&fail_create, false);
    pthread_t t = tu_run_thread(poke_later, &k);
    atomic_store(&k.go, 1);
    ck_assert_int_eq(stm_atomically(wait_for_x, NULL), 7);
    tu_join(t);
}

/* ---- the timer thread ---- */

START_TEST(test_timer_thread_waiter)
{
    ck_assert_int_eq(stm_set_waiter("thread"), 0);
    x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    atomic_store(&fail_create, true);
    /* The "thread" Waiter's timed wait needs the timer thread; without
     * it the waiter times its wait by itself. */
    /* (long enough that the first attempt, slow under valgrind, waits) */
    timed_wait_ok(TU_SCALE(30, 500));
    ck_assert_int_ge(atomic_load(&creates_failed), 1);
    timed_wait_ok(10);
    atomic_store(&fail_create, false);
    /* Once threads can be had, the timer thread starts and serves it. */
    int before = atomic_load(&creates_ok);
    timed_wait_ok(TU_SCALE(20, 200));
    ck_assert_int_eq(atomic_load(&creates_ok), before + 1);
    commit_wakes_ok();
    stm_tvar_free(x);
    stm_shutdown();
}
END_TEST

static atomic_int cb_calls;
static _Atomic intptr_t cb_last;

static intptr_t deadline_fn(stm_tx *tx, void *arg)
{
    int64_t d = *(const int64_t *)arg;
    return stm_read(tx, x) * 10 + (stm_elapsed(tx, d) ? 1 : 0);
}

static intptr_t cb_pending; /* runs and their commits are on one thread */

static void cb_committed(void *arg)
{
    (void)arg;
    atomic_store(&cb_last, cb_pending);
    atomic_fetch_add(&cb_calls, 1);
}

/* Counts callbacks whose run committed (a discarded run may call it too). */
static void deadline_cb(stm_tx *tx, intptr_t v, void *arg)
{
    (void)arg;
    cb_pending = v;
    stm_after_commit(tx, cb_committed, NULL);
}

static int unwatch_body(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

START_TEST(test_timer_thread_watcher)
{
    x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(stm_clock_virtual(STM_SEC(10)), 0);
    int64_t d = stm_now() + STM_MSEC(10);
    atomic_store(&fail_create, true);
    /* A watcher that arms a deadline needs the timer service: -ENOMEM
     * (documented: stm_watch_new(3)), nothing created. */
    errno = 0;
    stm_watch *w = stm_atomically_watch(deadline_fn, deadline_cb, &d, 0);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_int_ge(atomic_load(&creates_failed), 1);
    ck_assert_int_eq(atomic_load(&cb_calls), 0);
    /* A watcher without a deadline does not need it. */
    int64_t never = STM_NEVER;
    stm_watch *w0 = stm_atomically_watch(deadline_fn, deadline_cb, &never, 0);
    ck_assert_ptr_nonnull(w0);
    ck_assert_int_eq(atomic_load(&cb_calls), 1);
    ck_assert_int_eq(stm_atomically(unwatch_body, w0), 0);
    atomic_store(&cb_calls, 0);
    /* Resources back: the same call works, and the deadline fires. */
    atomic_store(&fail_create, false);
    w = stm_atomically_watch(deadline_fn, deadline_cb, &d, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(atomic_load(&cb_calls), 1);
    ck_assert_int_eq(atomic_load(&cb_last), 0);
    stm_clock_advance(STM_MSEC(10));
    ck_assert_int_eq(atomic_load(&cb_calls), 2);
    ck_assert_int_eq(atomic_load(&cb_last), 1);
    ck_assert_int_eq(stm_tvar_poke(x, 3), 0);
    ck_assert_int_eq(atomic_load(&cb_last), 31);
    ck_assert_int_eq(stm_atomically(unwatch_body, w), 0);
    stm_clock_real();
    stm_tvar_free(x);
    stm_shutdown();
}
END_TEST

/* ---- the wall-clock monitor thread ---- */

static int wall_wait(stm_tx *tx, void *arg)
{
    int64_t d = *(const int64_t *)arg;
    if (stm_read(tx, x) == 0 && !stm_elapsed_wall(tx, d))
        stm_retry(tx);
    return 1;
}

START_TEST(test_wallclock_monitor_thread)
{
    x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    atomic_store(&fail_create, true);
    /* A wait on a wall-clock deadline starts the thread that watches for
     * changes of the system time; without it the wait still ends on time. */
    int64_t d = stm_wall_now() + STM_MSEC(TU_SCALE(20, 500));
    ck_assert_int_eq(stm_atomically(wall_wait, &d), 1);
    ck_assert_int_ge(stm_wall_now(), d);
    ck_assert_int_ge(atomic_load(&creates_failed), 1);
    /* Threads back: the next wall-clock wait starts it. */
    atomic_store(&fail_create, false);
    int before = atomic_load(&creates_ok);
    d = stm_wall_now() + STM_MSEC(20);
    ck_assert_int_eq(stm_atomically(wall_wait, &d), 1);
    ck_assert_int_eq(atomic_load(&creates_ok), before + 1);
    stm_tvar_free(x);
    stm_shutdown();
}
END_TEST

/* ---- the dispatcher thread ---- */

static atomic_int deferred_ran;
static pthread_t deferred_thread;

static void deferred(void *arg)
{
    (void)arg;
    deferred_thread = pthread_self();
    atomic_fetch_add(&deferred_ran, 1);
}

static int defer_body(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, x, stm_read(tx, x) + 1);
    stm_defer(tx, deferred, NULL);
    return 0;
}

START_TEST(test_dispatcher_thread)
{
    x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    atomic_store(&fail_create, true);
    /* The commit succeeds; with no thread, the callback waits in the
     * queue for stm_dispatch() (documented: stm_defer(3)). */
    ck_assert_int_eq(stm_atomically(defer_body, NULL), 0);
    ck_assert_int_eq(stm_tvar_peek(x), 1);
    ck_assert_int_ge(atomic_load(&creates_failed), 1);
    ck_assert_int_eq(atomic_load(&deferred_ran), 0);
    ck_assert_int_eq(stm_dispatch(), 1);
    ck_assert_int_eq(atomic_load(&deferred_ran), 1);
    ck_assert(pthread_equal(deferred_thread, pthread_self()));
    /* Threads back: the next commit starts the dispatcher thread. */
    atomic_store(&fail_create, false);
    ck_assert_int_eq(stm_atomically(defer_body, NULL), 0);
    ck_assert(tu_wait_atleast(&deferred_ran, 2, TU_HANDSHAKE_MS));
    ck_assert(!pthread_equal(deferred_thread, pthread_self()));
    stm_tvar_free(x);
    stm_shutdown();
}
END_TEST

/* ---- EMFILE ---- */

START_TEST(test_dispatch_fd_emfile)
{
    x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    fill_fds();
    ck_assert_int_eq(stm_dispatch_fd(), -EMFILE);
    /* The library thread still runs the callbacks. */
    ck_assert_int_eq(stm_atomically(defer_body, NULL), 0);
    bool ran = tu_wait_atleast(&deferred_ran, 1, TU_HANDSHAKE_MS);
    free_fds();
    ck_assert(ran);
    int fd = stm_dispatch_fd();
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stm_dispatch_fd(), fd);
    ck_assert_int_eq(stm_atomically(defer_body, NULL), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, (int)TU_HANDSHAKE_MS), 1);
    ck_assert_int_eq(stm_dispatch(), 1);
    ck_assert_int_eq(atomic_load(&deferred_ran), 2);
    stm_tvar_free(x);
    stm_shutdown();
}
END_TEST

START_TEST(test_pipe_waiter_emfile)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    x = stm_tvar_new(0);
    stm_tvar *y = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    fill_fds();
    /* This thread has no waiter yet and none can be made: the blocking
     * call fails with -EMFILE (documented: stm_atomically(3)). */
    int rc = stm_atomically(wait_for_x, NULL);
    int rc2 = stm_atomically_until(wait_for_x, NULL, stm_now() + STM_SEC(2));
    /* A transaction that does not block is not affected. */
    int rc3 = stm_tvar_poke(y, 1);
    free_fds();
    ck_assert_int_eq(rc, -EMFILE);
    ck_assert_int_eq(rc2, -EMFILE);
    ck_assert_int_eq(rc3, 0);
    /* Descriptors back: the same thread waits and is woken. */
    timed_wait_ok(10);
    commit_wakes_ok();
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
}
END_TEST

static Suite *faults_suite(void)
{
    Suite *s = suite_create("faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_timer_thread_waiter);
    tcase_add_test(tc, test_timer_thread_watcher);
    tcase_add_test(tc, test_wallclock_monitor_thread);
    tcase_add_test(tc, test_dispatcher_thread);
    tcase_add_test(tc, test_dispatch_fd_emfile);
    tcase_add_test(tc, test_pipe_waiter_emfile);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(faults_suite)
