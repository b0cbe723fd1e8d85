/*
 * check_time.c - time in transactions (stm_elapsed, stm_atomically_until,
 * wall-clock deadlines) and the Waiter backends.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The whole "time" suite runs once per Waiter backend: the three built-in
 * ones ("condvar", "pipe", "thread") and a user backend defined here
 * ("user-test": a mutex, a condition variable on CLOCK_MONOTONIC and a
 * flag) that counts its calls, so that a test can tell the library really
 * went through it.  Check forks for every test, so the backend is chosen
 * in a checked fixture, inside the test's own process.
 *
 * The "waiter" suite holds what does not depend on the backend: bad names,
 * switching backends while a thread is blocked, STM_WAITER at start-up
 * (this program re-runs itself as a child), the pipe backend's descriptors
 * and failures to make a waiter.
 *
 * Real-time bounds: the lower bound ("not before the deadline") is
 * asserted exactly; upper bounds are loose (seconds), since the CI machine
 * is shared and ThreadSanitizer is 5-20x slower.  Handshakes poll a
 * counter with a bounded wait (testutil.h); no test sleeps in the hope
 * that something has happened meanwhile.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* The backend the suite being run uses ("condvar", "pipe", "thread" or
 * USER_NAME), set by main() before each runner starts. */
static const char *g_backend = "condvar";

/* Loose upper bound on how late a timed wake-up may be. */
#define LATE_NS STM_SEC(5)

/* An atomic's value, as a function: ck_assert_int_eq(ld(&x), 1) prints
 * "ld(&x)" on failure rather than the expansion of atomic_load(). */
static inline int ld(atomic_int *p)
{
    return atomic_load(p);
}

/* ---- the user backend ------------------------------------------------ */

#define USER_NAME "user-test"

struct ucounts {
    atomic_int creates, destroys, waits, notifies, timeouts;
    atomic_int bad_ctx;    /* create() got another ctx than the one set */
    atomic_int bad_thread; /* wait() on a thread that did not create the waiter */
    atomic_int fail_errno; /* != 0: create() fails with this errno */
};
static struct ucounts uc;

struct uwaiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool flag;
    pid_t owner;
};

static void *u_create(void *ctx)
{
    if (ctx != &uc)
        atomic_fetch_add(&uc.bad_ctx, 1);
    int e = atomic_load(&uc.fail_errno);
    if (e != 0) {
        errno = e;
        return NULL;
    }
    struct uwaiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    w->owner = tu_gettid();
    atomic_fetch_add(&uc.creates, 1);
    return w;
}

static void u_destroy(void *wp)
{
    struct uwaiter *w = wp;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    atomic_fetch_add(&uc.destroys, 1);
}

static int u_wait(void *wp, int64_t deadline)
{
    struct uwaiter *w = wp;
    int rc = 0;
    if (w->owner != tu_gettid())
        atomic_fetch_add(&uc.bad_thread, 1);
    pthread_mutex_lock(&w->mu);
    /* Counted under the mutex: once a test sees the count move, a notify
     * is either already in the flag or will signal this wait. */
    atomic_fetch_add(&uc.waits, 1);
    while (!w->flag) {
        if (deadline >= STM_NEVER) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        if (tu_now_ns() >= deadline) {
            rc = -ETIMEDOUT;
            atomic_fetch_add(&uc.timeouts, 1);
            break;
        }
        struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    w->flag = false;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void u_notify(void *wp)
{
    struct uwaiter *w = wp;
    atomic_fetch_add(&uc.notifies, 1);
    pthread_mutex_lock(&w->mu);
    w->flag = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static const struct stm_waiter_ops user_ops = {
    .name = USER_NAME,
    .create = u_create,
    .destroy = u_destroy,
    .wait = u_wait,
    .notify = u_notify,
    .ctx = &uc,
};

static bool is_user(void)
{
    return strcmp(g_backend, USER_NAME) == 0;
}

static void ucounts_reset(void)
{
    atomic_store(&uc.creates, 0);
    atomic_store(&uc.destroys, 0);
    atomic_store(&uc.waits, 0);
    atomic_store(&uc.notifies, 0);
    atomic_store(&uc.timeouts, 0);
    atomic_store(&uc.bad_ctx, 0);
    atomic_store(&uc.bad_thread, 0);
    atomic_store(&uc.fail_errno, 0);
}

/* Checked fixture of the per-backend suite: choose the backend. */
static void backend_setup(void)
{
    ucounts_reset();
    if (is_user())
        ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
    else
        ck_assert_int_eq(stm_set_waiter(g_backend), 0);
    ck_assert_ptr_nonnull(stm_waiter_name());
    ck_assert_str_eq(stm_waiter_name(), g_backend);
}

static void backend_teardown(void)
{
    ck_assert_int_eq(ld(&uc.bad_ctx), 0);
    ck_assert_int_eq(ld(&uc.bad_thread), 0);
    stm_shutdown();
}

/* ---- a thread that waits for a TVar to reach a value ------------------ */

struct waitv {
    stm_tvar *x;
    intptr_t need; /* the body waits until x >= need */
    int rounds;    /* the thread waits for need = 1, 2, ..., rounds */
    atomic_int attempts;
    atomic_int in_round; /* the round the last attempt was for */
    atomic_int done;     /* rounds finished */
    atomic_int tid;
    int rc[8];
};

static int body_wait_atleast(stm_tx *tx, void *arg)
{
    struct waitv *w = arg;
    atomic_fetch_add(&w->attempts, 1);
    atomic_store(&w->in_round, (int)w->need);
    intptr_t v = stm_read(tx, w->x);
    if (v < w->need)
        stm_retry(tx);
    return (int)v;
}

static void *thr_wait_atleast(void *arg)
{
    struct waitv *w = arg;
    atomic_store(&w->tid, tu_gettid());
    for (int r = 1; r <= w->rounds; r++) {
        w->need = r;
        w->rc[r - 1] = stm_atomically(body_wait_atleast, w);
        atomic_store(&w->done, r);
    }
    return NULL;
}

static void waitv_init(struct waitv *w, int rounds)
{
    memset(w, 0, sizeof *w);
    w->x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(w->x);
    w->rounds = rounds;
}

/* ==== 1. retry woken by a write ========================================= */

START_TEST(test_retry_woken_by_write)
{
    ck_assert_str_eq(stm_waiter_name(), g_backend);
    struct waitv w;
    waitv_init(&w, 3);
    pthread_t t = tu_run_thread(thr_wait_atleast, &w);
    for (int r = 1; r <= 3; r++) {
        /* The thread has run its body for round r (and found x too small,
         * since x is r - 1): from here on a commit to x wakes it, whether
         * it is asleep yet or not. */
        ck_assert_msg(tu_wait_atleast(&w.in_round, r, TU_HANDSHAKE_MS), "round %d never ran", r);
        if (is_user() && r == 1) /* it is inside our wait() */
            ck_assert(tu_wait_atleast(&uc.waits, 1, TU_HANDSHAKE_MS));
        ck_assert_int_eq(ld(&w.done), r - 1);
        ck_assert_int_eq(stm_tvar_poke(w.x, r), 0);
        ck_assert_msg(tu_wait_atleast(&w.done, r, TU_HANDSHAKE_MS), "round %d not woken", r);
    }
    tu_join(t);
    for (int r = 1; r <= 3; r++)
        ck_assert_int_eq(w.rc[r - 1], r);
    /* one attempt that blocks and one that commits per round; a few
     * spurious re-runs are allowed, a busy loop is not */
    int a = atomic_load(&w.attempts);
    ck_assert_msg(a >= 3 && a <= 3 * 5, "%d attempts for 3 rounds", a);
    if (is_user()) {
        /* The library really used the user backend: the thread made its
         * waiter with create(), was found waiting in wait() in round 1
         * and woken with notify(), and the waiter was destroyed when the
         * thread exited (the main thread never waited, so made none). */
        ck_assert_int_eq(ld(&uc.creates), 1);
        ck_assert_int_ge(ld(&uc.waits), 1);
        ck_assert_int_ge(ld(&uc.notifies), 1);
        ck_assert_int_eq(ld(&uc.destroys), 1);
    }
    stm_tvar_free(w.x);
}
END_TEST

/* ==== 2. retry woken by a deadline ====================================== */

struct dl {
    int64_t d;
    atomic_int attempts;
    int64_t last_now;
    bool last_elapsed;
};

static int body_deadline(stm_tx *tx, void *arg)
{
    struct dl *x = arg;
    atomic_fetch_add(&x->attempts, 1);
    int64_t now = stm_tx_now(tx);
    bool e = stm_elapsed(tx, x->d);
    x->last_now = now;
    x->last_elapsed = e;
    if (!e)
        stm_retry(tx);
    return 1;
}

static void check_deadline_wait(int64_t delay)
{
    struct dl x = {0};
    int64_t t0 = stm_now();
    x.d = t0 + delay;
    ck_assert_int_eq(stm_atomically(body_deadline, &x), 1);
    int64_t t1 = stm_now();
    ck_assert_msg(t1 >= x.d, "returned %lld ns before its deadline", (long long)(x.d - t1));
    ck_assert_msg(t1 < x.d + LATE_NS, "returned %lld ms after its deadline",
                  (long long)((t1 - x.d) / 1000000));
    /* the committing attempt saw the deadline come */
    ck_assert(x.last_elapsed);
    ck_assert_msg(x.last_now >= x.d, "final attempt's now is %lld ns early",
                  (long long)(x.d - x.last_now));
    ck_assert_int_le(x.last_now, t1);
    int a = atomic_load(&x.attempts);
    /* >= 1: a stalled first attempt may already find the deadline come */
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts for one %lld ns wait", a, (long long)delay);
}

START_TEST(test_retry_deadline)
{
    struct stm_stats st0, st1;
    stm_stats_get(&st0);
    check_deadline_wait(STM_MSEC(20));
    check_deadline_wait(STM_MSEC(1));
    check_deadline_wait(STM_USEC(100));
    /* the same thread again, after short waits */
    check_deadline_wait(STM_MSEC(20));
    stm_stats_get(&st1);
    /* the 20 ms waits, at least, blocked and ended at their deadline */
    ck_assert_uint_ge(st1.retries - st0.retries, 2);
    ck_assert_uint_ge(st1.timer_fires - st0.timer_fires, 2);
    ck_assert_uint_eq(st1.commits - st0.commits, 4);
}
END_TEST

/* A deadline and a TVar: whichever comes first wakes the thread. */
struct dlx {
    stm_tvar *x;
    int64_t d;
    atomic_int attempts;
    int64_t last_now;
};

static int body_deadline_or_x(stm_tx *tx, void *arg)
{
    struct dlx *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    p->last_now = stm_tx_now(tx);
    if (stm_read(tx, p->x) != 0)
        return 2;
    if (stm_elapsed(tx, p->d))
        return 1;
    stm_retry(tx);
}

static void *thr_deadline_or_x(void *arg)
{
    return (void *)(intptr_t)stm_atomically(body_deadline_or_x, arg);
}

START_TEST(test_retry_deadline_or_write)
{
    /* the write comes long before the deadline: woken by the write */
    struct dlx p = {.x = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(p.x);
    int64_t t0 = stm_now();
    p.d = t0 + STM_SEC(60);
    pthread_t t = tu_run_thread(thr_deadline_or_x, &p);
    ck_assert(tu_wait_atleast(&p.attempts, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_tvar_poke(p.x, 1), 0);
    ck_assert_int_eq((intptr_t)tu_join(t), 2);
    ck_assert(stm_now() < p.d);
    ck_assert_int_le(ld(&p.attempts), 5);

    /* nobody writes: woken by the deadline */
    struct dlx q = {.x = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(q.x);
    q.d = stm_now() + STM_MSEC(20);
    ck_assert_int_eq(stm_atomically(body_deadline_or_x, &q), 1);
    ck_assert(stm_now() >= q.d);
    ck_assert(q.last_now >= q.d);
    ck_assert_int_le(ld(&q.attempts), 5);
    stm_tvar_free(p.x);
    stm_tvar_free(q.x);
}
END_TEST

/* stm_set_wake_spin: a timed wait sleeps until shortly before its
 * deadline and polls the rest.  Still never early, no extra runs of the
 * body, and a write during the sleep still wakes the waiter. */
START_TEST(test_wake_spin)
{
    ck_assert_int_eq(stm_set_wake_spin(STM_MSEC(2)), 0);
    check_deadline_wait(STM_MSEC(5));   /* a sleep, then 2 ms of polling */
    check_deadline_wait(STM_USEC(500)); /* polling only */
    struct dlx p = {.x = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(p.x);
    p.d = stm_now() + STM_SEC(60);
    pthread_t t = tu_run_thread(thr_deadline_or_x, &p);
    ck_assert(tu_wait_atleast(&p.attempts, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_tvar_poke(p.x, 1), 0);
    ck_assert_int_eq((intptr_t)tu_join(t), 2);
    ck_assert(stm_now() < p.d);
    ck_assert_int_le(ld(&p.attempts), 5);
    stm_tvar_free(p.x);
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
}
END_TEST

/* Several deadlines in one attempt: the earliest wakes it. */
struct dl2 {
    int64_t d_early, d_late;
    atomic_int attempts;
    int64_t last_now;
};

static int body_two_deadlines(stm_tx *tx, void *arg)
{
    struct dl2 *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    p->last_now = stm_tx_now(tx);
    /* the later one is recorded first */
    if (stm_elapsed(tx, p->d_late))
        return 2;
    if (stm_elapsed(tx, p->d_early))
        return 1;
    stm_retry(tx);
}

START_TEST(test_retry_earliest_deadline)
{
    struct dl2 p = {0};
    int64_t t0 = stm_now();
    p.d_early = t0 + STM_MSEC(20);
    p.d_late = t0 + STM_SEC(30);
    ck_assert_int_eq(stm_atomically(body_two_deadlines, &p), 1);
    int64_t t1 = stm_now();
    ck_assert(t1 >= p.d_early);
    ck_assert(p.last_now >= p.d_early && p.last_now < p.d_late);
    ck_assert(t1 < p.d_early + LATE_NS);
    ck_assert_int_le(ld(&p.attempts), 5);
}
END_TEST

/* ==== 3. stm_atomically_until ========================================== */

struct until_arg {
    stm_tvar *x;    /* NULL: the body reads nothing */
    int64_t body_d; /* 0: no deadline in the body */
    atomic_int attempts;
    int64_t last_now;
};

/* Retries until x != 0 (returns it) or body_d has come (returns 100). */
static int body_until(stm_tx *tx, void *arg)
{
    struct until_arg *u = arg;
    atomic_fetch_add(&u->attempts, 1);
    u->last_now = stm_tx_now(tx);
    if (u->x != NULL) {
        intptr_t v = stm_read(tx, u->x);
        if (v != 0)
            return (int)v;
    }
    if (u->body_d != 0 && stm_elapsed(tx, u->body_d))
        return 100;
    stm_retry(tx);
}

START_TEST(test_until_timeout)
{
    struct until_arg u = {.x = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(u.x);
    int64_t d = stm_now() + STM_MSEC(30);
    ck_assert_int_eq(stm_atomically_until(body_until, &u, d), -ETIMEDOUT);
    int64_t t1 = stm_now();
    ck_assert_msg(t1 >= d, "-ETIMEDOUT %lld ns before the deadline", (long long)(d - t1));
    ck_assert(t1 < d + LATE_NS);
    int a = atomic_load(&u.attempts);
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);
    ck_assert_int_eq(stm_tvar_peek(u.x), 0);
    stm_tvar_free(u.x);
}
END_TEST

static void *thr_until_long(void *arg)
{
    return (void *)(intptr_t)stm_atomically_until(body_until, arg, stm_now() + STM_SEC(60));
}

START_TEST(test_until_written_in_time)
{
    struct until_arg u = {.x = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(u.x);
    int64_t t0 = stm_now();
    pthread_t t = tu_run_thread(thr_until_long, &u);
    ck_assert(tu_wait_atleast(&u.attempts, 1, TU_HANDSHAKE_MS));
    if (is_user())
        ck_assert(tu_wait_atleast(&uc.waits, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_tvar_poke(u.x, 9), 0);
    ck_assert_int_eq((intptr_t)tu_join(t), 9);
    ck_assert(stm_now() < t0 + STM_SEC(60));
    ck_assert_int_le(ld(&u.attempts), 5);
    stm_tvar_free(u.x);
}
END_TEST

static int body_count_and_return(stm_tx *tx, void *arg)
{
    (void)tx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 4;
}

START_TEST(test_until_past_deadline_runs_once)
{
    int64_t past[] = {stm_now() - 1, stm_now() - STM_SEC(1), 0, INT64_MIN};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        /* a body that succeeds: its value, one run */
        atomic_int runs = 0;
        ck_assert_int_eq(stm_atomically_until(body_count_and_return, &runs, past[i]), 4);
        ck_assert_int_eq(ld(&runs), 1);

        /* a body that retries: it ran, then -ETIMEDOUT at once */
        struct until_arg u = {.x = stm_tvar_new(0)};
        ck_assert_ptr_nonnull(u.x);
        int64_t t0 = stm_now();
        ck_assert_int_eq(stm_atomically_until(body_until, &u, past[i]), -ETIMEDOUT);
        ck_assert_int_ge(ld(&u.attempts), 1);
        ck_assert_int_le(ld(&u.attempts), 2);
        ck_assert(stm_now() < t0 + LATE_NS);

        /* reading nothing: still -ETIMEDOUT, not -EDEADLK */
        struct until_arg n = {.x = NULL};
        ck_assert_int_eq(stm_atomically_until(body_until, &n, past[i]), -ETIMEDOUT);
        ck_assert_int_ge(ld(&n.attempts), 1);
        stm_tvar_free(u.x);
    }
}
END_TEST

START_TEST(test_until_nothing_read_waits)
{
    struct until_arg n = {.x = NULL};
    int64_t d = stm_now() + STM_MSEC(30);
    ck_assert_int_eq(stm_atomically_until(body_until, &n, d), -ETIMEDOUT);
    int64_t t1 = stm_now();
    ck_assert_msg(t1 >= d, "returned %lld ns before the deadline", (long long)(d - t1));
    ck_assert(t1 < d + LATE_NS);
    int a = atomic_load(&n.attempts);
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);

    /* with no deadline at all it is stm_atomically(): nothing can wake it */
    struct until_arg m = {.x = NULL};
    ck_assert_int_eq(stm_atomically_until(body_until, &m, STM_NEVER), -EDEADLK);
    ck_assert_int_eq(ld(&m.attempts), 1);
}
END_TEST

START_TEST(test_until_and_body_deadline)
{
    /* the body's deadline comes first: the body's value */
    struct until_arg u = {.x = NULL};
    int64_t t0 = stm_now();
    u.body_d = t0 + STM_MSEC(20);
    ck_assert_int_eq(stm_atomically_until(body_until, &u, t0 + STM_SEC(30)), 100);
    int64_t t1 = stm_now();
    ck_assert(t1 >= u.body_d);
    ck_assert(u.last_now >= u.body_d);
    ck_assert(t1 < u.body_d + LATE_NS);

    /* the until deadline comes first: -ETIMEDOUT, not waiting for the body's */
    struct until_arg v = {.x = NULL};
    t0 = stm_now();
    v.body_d = t0 + STM_SEC(30);
    int64_t d = t0 + STM_MSEC(20);
    ck_assert_int_eq(stm_atomically_until(body_until, &v, d), -ETIMEDOUT);
    t1 = stm_now();
    ck_assert(t1 >= d);
    ck_assert(t1 < v.body_d);
}
END_TEST

static int body_nested_until(stm_tx *tx, void *arg)
{
    (void)tx;
    /* joins this transaction; the past deadline is ignored */
    return stm_atomically_until(body_count_and_return, arg, 0) + 10;
}

START_TEST(test_until_nested_joins)
{
    atomic_int runs = 0;
    ck_assert_int_eq(stm_atomically(body_nested_until, &runs), 14);
    ck_assert_int_eq(ld(&runs), 1);
}
END_TEST

/* ==== 4. stm_or_else merges the branches' deadlines ===================== */

struct oe {
    int64_t d1, d2; /* first branch waits for d1, second for d2 */
    atomic_int attempts;
    int64_t last_now;
};

static int oe_first(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    if (!stm_elapsed(tx, o->d1))
        stm_retry(tx);
    return 1;
}

static int oe_second(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    if (!stm_elapsed(tx, o->d2))
        stm_retry(tx);
    return 2;
}

static int body_oe(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    atomic_fetch_add(&o->attempts, 1);
    o->last_now = stm_tx_now(tx);
    return stm_or_else(tx, oe_first, oe_second, arg);
}

/* The second branch's deadline is the earlier one: the transaction wakes
 * then, and the first branch, still waiting, retries again, so the
 * second one commits. */
START_TEST(test_orelse_second_deadline_first)
{
    struct oe o = {0};
    int64_t t0 = stm_now();
    o.d1 = t0 + STM_SEC(2);
    o.d2 = t0 + STM_MSEC(30);
    ck_assert_int_eq(stm_atomically(body_oe, &o), 2);
    int64_t t1 = stm_now();
    ck_assert_msg(t1 >= o.d2, "returned %lld ns before d2", (long long)(o.d2 - t1));
    ck_assert(o.last_now >= o.d2 && o.last_now < o.d1);
    int a = atomic_load(&o.attempts);
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);
}
END_TEST

/* The first branch's deadline is the earlier one: the first branch was
 * discarded, but its deadline is kept, so the transaction wakes at d1
 * (not at d2, 2 s later) and the first branch commits. */
START_TEST(test_orelse_discarded_branch_deadline)
{
    struct oe o = {0};
    int64_t t0 = stm_now();
    o.d1 = t0 + STM_MSEC(30);
    o.d2 = t0 + STM_SEC(2);
    ck_assert_int_eq(stm_atomically(body_oe, &o), 1);
    int64_t t1 = stm_now();
    ck_assert_msg(t1 >= o.d1, "returned %lld ns before d1", (long long)(o.d1 - t1));
    ck_assert(o.last_now >= o.d1 && o.last_now < o.d2);
    int a = atomic_load(&o.attempts);
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);
}
END_TEST

/* ==== 5. notifies racing waits ========================================== */

struct pp {
    stm_tvar *turn;
    intptr_t me, next;
    long rounds;
    int64_t far; /* != 0: each attempt also records this (far) deadline */
    int rc;
};

static int body_pp(stm_tx *tx, void *arg)
{
    struct pp *p = arg;
    if (p->far != 0 && stm_elapsed(tx, p->far))
        stm_abort(tx, 99); /* an hour passed: cannot happen */
    if (stm_read(tx, p->turn) != p->me)
        stm_retry(tx);
    stm_write(tx, p->turn, p->next);
    return 0;
}

static void *thr_pp(void *arg)
{
    struct pp *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        int rc = stm_atomically(body_pp, p);
        if (rc != 0) {
            p->rc = rc;
            break;
        }
    }
    return NULL;
}

static void run_pingpong(long rounds, bool timed)
{
    stm_tvar *turn = stm_tvar_new(0);
    ck_assert_ptr_nonnull(turn);
    int64_t far = timed ? stm_now() + STM_SEC(3600) : 0;
    struct pp a = {turn, 0, 1, rounds, far, 0}, b = {turn, 1, 0, rounds, far, 0};
    int64_t t0 = tu_now_ns();
    pthread_t ta = tu_run_thread(thr_pp, &a);
    pthread_t tb = tu_run_thread(thr_pp, &b);
    tu_join(ta);
    tu_join(tb);
    fprintf(stderr, "time/%s: ping-pong%s %ld rounds in %.3f s\n", g_backend,
            timed ? " (timed waits)" : "", rounds, (double)(tu_now_ns() - t0) / 1e9);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(stm_tvar_peek(turn), 0);
    stm_tvar_free(turn);
}

START_TEST(test_pingpong)
{
    run_pingpong(TU_SCALE(100000L, 5000L), false);
}
END_TEST

START_TEST(test_pingpong_timed)
{
    run_pingpong(TU_SCALE(100000L, 5000L), true);
}
END_TEST

/* ==== 6. wall-clock deadlines ========================================== */

struct wallw {
    int64_t w;
    atomic_int attempts;
    atomic_int done;
    atomic_int tid;
    int rc;
    int64_t last_wall;
    bool last_elapsed;
};

static int body_wall(stm_tx *tx, void *arg)
{
    struct wallw *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    int64_t wn = stm_tx_wall_now(tx);
    bool e = stm_elapsed_wall(tx, p->w);
    p->last_wall = wn;
    p->last_elapsed = e;
    if (!e)
        stm_retry(tx);
    return 1;
}

static void *thr_wall(void *arg)
{
    struct wallw *p = arg;
    atomic_store(&p->tid, tu_gettid());
    p->rc = stm_atomically(body_wall, p);
    atomic_store(&p->done, 1);
    return NULL;
}

/* A thread waits for a wall-clock deadline an hour away; the wall clock
 * is then set forward past it: the thread wakes and commits at once. */
START_TEST(test_wall_shift_wakes)
{
    struct wallw p = {0};
    int64_t w0 = stm_wall_now();
    p.w = w0 + STM_SEC(3600);
    pthread_t t = tu_run_thread(thr_wall, &p);
    ck_assert(tu_wait_atleast(&p.attempts, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&p.tid, 1, TU_HANDSHAKE_MS));
    /* the thread is asleep in its wait (for the user backend: inside
     * wait()), so the clock change has to wake it */
    if (is_user())
        ck_assert(tu_wait_atleast(&uc.waits, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)ld(&p.tid), TU_HANDSHAKE_MS),
                  "the waiting thread never went to sleep");
    ck_assert_int_eq(ld(&p.done), 0);
    int64_t s0 = tu_now_ns();
    stm__test_wall_shift(STM_SEC(3601));
    ck_assert(stm_wall_now() >= w0 + STM_SEC(3601));
    bool woke = tu_wait_atleast(&p.done, 1, 10000);
    int64_t s1 = tu_now_ns();
    if (!woke) {
        /* let the thread finish so that the test can end cleanly */
        stm__test_wall_shift(STM_SEC(3600 * 24));
        if (tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS))
            tu_join(t);
    }
    ck_assert_msg(woke, "not woken within 10 s of the wall clock passing its deadline");
    tu_join(t);
    ck_assert_int_eq(p.rc, 1);
    ck_assert(p.last_elapsed);
    ck_assert(p.last_wall >= p.w);
    fprintf(stderr, "time/%s: woken %.3f ms after the wall-clock shift\n", g_backend,
            (double)(s1 - s0) / 1e6);
    int a = atomic_load(&p.attempts);
    ck_assert_msg(a >= 2 && a <= 5, "%d attempts", a);
    stm__test_wall_shift(-STM_SEC(3601));
}
END_TEST

/* A wall-clock deadline 20 ms away takes (at least) 20 ms. */
START_TEST(test_wall_short_deadline)
{
    for (int i = 0; i < 2; i++) {
        struct wallw p = {0};
        int64_t t0 = stm_now();
        p.w = stm_wall_now() + STM_MSEC(20);
        ck_assert_int_eq(stm_atomically(body_wall, &p), 1);
        int64_t t1 = stm_now();
        ck_assert(p.last_elapsed);
        ck_assert_msg(p.last_wall >= p.w, "committed %lld ns before the wall deadline",
                      (long long)(p.w - p.last_wall));
        ck_assert(stm_wall_now() >= p.w);
        /* 20 ms of wall clock is 20 ms of monotonic clock, give or take
         * an NTP slew (at most 500 ppm; 0.1% allowed) */
        ck_assert_msg(t1 - t0 >= STM_MSEC(20) - STM_USEC(20), "returned after %lld ns",
                      (long long)(t1 - t0));
        ck_assert(t1 - t0 < LATE_NS);
        int a = atomic_load(&p.attempts);
        ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);
    }
}
END_TEST

/* Waiting for a wall-clock deadline while the clock is set *back*: the
 * thread re-runs against the new time and must not commit before it; a
 * shift forward again then releases it. */
START_TEST(test_wall_shift_back_then_forward)
{
    struct wallw p = {0};
    p.w = stm_wall_now() + STM_SEC(3600);
    pthread_t t = tu_run_thread(thr_wall, &p);
    ck_assert(tu_wait_atleast(&p.attempts, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&p.tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)ld(&p.tid), TU_HANDSHAKE_MS));
    int a1 = atomic_load(&p.attempts);
    stm__test_wall_shift(-STM_SEC(3600));
    /* woken by the change, it re-runs, finds the deadline two hours away
     * now, and waits again (it cannot have committed) */
    ck_assert_msg(tu_wait_atleast(&p.attempts, a1 + 1, TU_HANDSHAKE_MS),
                  "the clock change did not re-run the body");
    ck_assert(tu_wait_asleep((pid_t)ld(&p.tid), TU_HANDSHAKE_MS));
    ck_assert_int_eq(ld(&p.done), 0);
    stm__test_wall_shift(STM_SEC(7201));
    ck_assert_msg(tu_wait_atleast(&p.done, 1, 10000), "not woken by the shift forward");
    tu_join(t);
    ck_assert_int_eq(p.rc, 1);
    ck_assert(p.last_wall >= p.w);
    stm__test_wall_shift(-STM_SEC(3601));
}
END_TEST

/* A clock change racing the start of a wall-clock wait: the thread reads
 * the wall clock, finds its deadline (an hour away) not come, and goes to
 * sleep; the clock is set past the deadline at some moment in between
 * (spin delays of 0-10 us spread the moments over the path).
 * Whenever it lands, the thread must not sleep for the hour: either its
 * attempt already sees the new time, or the change wakes it. */
struct wrace {
    int n;
    atomic_int started;  /* iteration + 1 whose attempt has begun */
    atomic_int finished; /* iterations finished */
    atomic_int stop;
    atomic_int attempts;
    int64_t w;
    int rc;
};

static int body_wrace(stm_tx *tx, void *arg)
{
    struct wrace *r = arg;
    atomic_store(&r->started, atomic_load(&r->finished) + 1);
    atomic_fetch_add(&r->attempts, 1);
    if (!stm_elapsed_wall(tx, r->w))
        stm_retry(tx);
    return 0;
}

static void *thr_wrace(void *arg)
{
    struct wrace *r = arg;
    for (int i = 0; i < r->n && !atomic_load(&r->stop); i++) {
        r->w = stm_wall_now() + STM_SEC(3600);
        int rc = stm_atomically(body_wrace, r);
        if (rc != 0) {
            r->rc = rc;
            break;
        }
        atomic_store(&r->finished, i + 1);
    }
    return NULL;
}

/* Spin until *p >= min, for at most `ms` (no sleep: the caller wants to
 * act within microseconds). */
static bool spin_atleast(atomic_int *p, int min, long ms)
{
    int64_t end = tu_now_ns() + STM_MSEC(ms);
    unsigned k = 0;
    while (atomic_load(p) < min) {
        if ((++k & 1023) == 0 && tu_now_ns() > end)
            return false;
    }
    return true;
}

START_TEST(test_wall_shift_race)
{
    struct wrace r;
    memset(&r, 0, sizeof r);
    r.n = TU_SCALE(2000, 300);
    uint64_t seed = tu_seed(7);
    pthread_t t = tu_run_thread(thr_wrace, &r);
    int lost = -1;
    int64_t shifted = 0;
    for (int i = 0; i < r.n; i++) {
        ck_assert_msg(spin_atleast(&r.started, i + 1, TU_HANDSHAKE_MS), "iteration %d never ran",
                      i);
        tu_spin_ns((int64_t)tu_rand_below(&seed, 10000));
        stm__test_wall_shift(STM_SEC(3601));
        shifted += STM_SEC(3601);
        /* woken at once: a generous bound, but far below the hour */
        if (!spin_atleast(&r.finished, i + 1, 100) && !tu_wait_atleast(&r.finished, i + 1, 10000)) {
            lost = i;
            break;
        }
    }
    if (lost >= 0) { /* release it */
        atomic_store(&r.stop, 1);
        stm__test_wall_shift(STM_SEC(7200));
        shifted += STM_SEC(7200);
        if (tu_wait_atleast(&r.finished, lost + 1, TU_HANDSHAKE_MS))
            tu_join(t);
    }
    ck_assert_msg(lost < 0, "iteration %d: the clock change was lost; still asleep 10 s later",
                  lost);
    tu_join(t);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_int_eq(ld(&r.finished), r.n);
    /* how many iterations found the deadline not come, and had to be
     * woken (or re-ran) */
    fprintf(stderr, "time/%s: wall-shift race: %d iterations, %d attempts\n", g_backend, r.n,
            atomic_load(&r.attempts));
    stm__test_wall_shift(-shifted);
}
END_TEST

/* ==== 7. STM_NEVER, past deadlines, a fixed now ======================== */

struct never_arg {
    bool e;
    int runs;
    bool wall;
};

static int body_never(stm_tx *tx, void *arg)
{
    struct never_arg *n = arg;
    n->runs++;
    n->e = n->wall ? stm_elapsed_wall(tx, STM_NEVER) : stm_elapsed(tx, STM_NEVER);
    stm_retry(tx);
}

START_TEST(test_never_deadlk)
{
    struct never_arg n = {.e = true};
    ck_assert_int_eq(stm_atomically(body_never, &n), -EDEADLK);
    ck_assert(!n.e);
    ck_assert_int_eq(n.runs, 1);

    struct never_arg m = {.e = true, .wall = true};
    ck_assert_int_eq(stm_atomically(body_never, &m), -EDEADLK);
    ck_assert(!m.e);
    ck_assert_int_eq(m.runs, 1);
}
END_TEST

struct past_arg {
    bool now_e, minus_e, zero_e, min_e, plus_e, wall_e, wall_plus_e;
};

static int body_past(stm_tx *tx, void *arg)
{
    struct past_arg *p = arg;
    int64_t now = stm_tx_now(tx);
    p->now_e = stm_elapsed(tx, now);
    p->minus_e = stm_elapsed(tx, now - 1);
    p->zero_e = stm_elapsed(tx, 0);
    p->min_e = stm_elapsed(tx, INT64_MIN);
    p->plus_e = stm_elapsed(tx, now + STM_SEC(60));
    int64_t wn = stm_tx_wall_now(tx);
    p->wall_e = stm_elapsed_wall(tx, wn - STM_SEC(1));
    p->wall_plus_e = stm_elapsed_wall(tx, wn + STM_SEC(60));
    return 5; /* no retry: the recorded deadlines are simply dropped */
}

START_TEST(test_past_deadlines)
{
    struct past_arg p;
    memset(&p, 0, sizeof p);
    p.plus_e = p.wall_plus_e = true;
    int64_t t0 = stm_now();
    ck_assert_int_eq(stm_atomically(body_past, &p), 5);
    ck_assert(p.now_e);
    ck_assert(p.minus_e);
    ck_assert(p.zero_e);
    ck_assert(p.min_e);
    ck_assert(!p.plus_e);
    ck_assert(p.wall_e);
    ck_assert(!p.wall_plus_e);
    ck_assert(stm_now() < t0 + STM_SEC(60)); /* committed, no wait */
}
END_TEST

struct fixed_arg {
    int64_t n1, n2, real_after, w1, w2, wall_after;
    bool e_mono, e_wall, e_mono_at, e_wall_at;
};

static int body_fixed(stm_tx *tx, void *arg)
{
    struct fixed_arg *f = arg;
    f->n1 = stm_tx_now(tx);
    f->w1 = stm_tx_wall_now(tx);
    tu_spin_ns(STM_MSEC(3));
    f->n2 = stm_tx_now(tx);
    f->w2 = stm_tx_wall_now(tx);
    f->real_after = stm_now();
    f->wall_after = stm_wall_now();
    /* 3 ms have passed, but not at this attempt's now */
    f->e_mono = stm_elapsed(tx, f->n1 + STM_MSEC(1));
    f->e_wall = stm_elapsed_wall(tx, f->w1 + STM_MSEC(1));
    f->e_mono_at = stm_elapsed(tx, f->n1);
    f->e_wall_at = stm_elapsed_wall(tx, f->w1);
    return 0;
}

START_TEST(test_tx_now_fixed)
{
    struct fixed_arg f;
    memset(&f, 0, sizeof f);
    f.e_mono = f.e_wall = true;
    int64_t before = stm_now();
    ck_assert_int_eq(stm_atomically(body_fixed, &f), 0);
    ck_assert(f.n1 >= before);
    ck_assert_int_eq(f.n1, f.n2);
    ck_assert_int_eq(f.w1, f.w2);
    ck_assert(f.real_after >= f.n1 + STM_MSEC(3));
    /* the wall clock can be set, but not by 1 s within this test */
    ck_assert(f.wall_after > f.w1 && f.wall_after < f.w1 + STM_SEC(1));
    ck_assert(!f.e_mono);
    ck_assert(!f.e_wall);
    ck_assert(f.e_mono_at);
    ck_assert(f.e_wall_at);
    ck_assert(llabs(f.w1 - (int64_t)time(NULL) * STM_SEC(1)) < STM_SEC(5));
}
END_TEST

/* A timed wait sets the thread's timer slack to 1 ns and gives it back
 * afterwards: the value the thread had when the wait began, each time. */
START_TEST(test_timer_slack_restored)
{
    const unsigned long slacks[] = {20000, 30000, 12345, 50000};
    for (size_t i = 0; i < sizeof slacks / sizeof slacks[0]; i++) {
        ck_assert_int_eq(prctl(PR_SET_TIMERSLACK, slacks[i], 0, 0, 0), 0);
        struct dl x = {0};
        x.d = stm_now() + STM_MSEC(2);
        ck_assert_int_eq(stm_atomically(body_deadline, &x), 1);
        long now_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
        ck_assert_msg(now_slack == (long)slacks[i],
                      "timer slack %ld after a timed wait, %lu before it", now_slack, slacks[i]);
    }
}
END_TEST

/* ==== the per-backend suite ============================================ */

static Suite *time_suite(const char *backend)
{
    /* Check keeps the pointer, not a copy */
    static char names[8][64];
    static int nnames;
    if (nnames >= 8)
        abort();
    char *name = names[nnames++];
    snprintf(name, sizeof names[0], "time-%s", backend);
    Suite *s = suite_create(name);

    TCase *tc = tcase_create("retry");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_retry_woken_by_write);
    tcase_add_test(tc, test_retry_deadline);
    tcase_add_test(tc, test_retry_deadline_or_write);
    tcase_add_test(tc, test_retry_earliest_deadline);
    tcase_add_test(tc, test_wake_spin);
    suite_add_tcase(s, tc);

    tc = tcase_create("until");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_until_timeout);
    tcase_add_test(tc, test_until_written_in_time);
    tcase_add_test(tc, test_until_past_deadline_runs_once);
    tcase_add_test(tc, test_until_nothing_read_waits);
    tcase_add_test(tc, test_until_and_body_deadline);
    tcase_add_test(tc, test_until_nested_joins);
    suite_add_tcase(s, tc);

    tc = tcase_create("or_else");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_orelse_second_deadline_first);
    tcase_add_test(tc, test_orelse_discarded_branch_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("race");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pingpong);
    tcase_add_test(tc, test_pingpong_timed);
    suite_add_tcase(s, tc);

    tc = tcase_create("wall");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wall_shift_wakes);
    tcase_add_test(tc, test_wall_short_deadline);
    tcase_add_test(tc, test_wall_shift_back_then_forward);
    tcase_add_test(tc, test_wall_shift_race);
    suite_add_tcase(s, tc);

    tc = tcase_create("now");
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_never_deadlk);
    tcase_add_test(tc, test_past_deadlines);
    tcase_add_test(tc, test_tx_now_fixed);
    tcase_add_test(tc, test_timer_slack_restored);
    suite_add_tcase(s, tc);
    return s;
}

/* ==== backend-independent: choosing a backend ========================== */

static void waiter_setup(void)
{
    ucounts_reset();
}

static void waiter_teardown(void)
{
    stm_shutdown();
}

START_TEST(test_set_waiter_invalid)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    ck_assert_str_eq(stm_waiter_name(), "pipe");
    ck_assert_int_eq(stm_set_waiter("nope"), -EINVAL);
    ck_assert_int_eq(stm_set_waiter(""), -EINVAL);
    ck_assert_int_eq(stm_set_waiter("CONDVAR"), -EINVAL);
    ck_assert_int_eq(stm_set_waiter(NULL), -EINVAL);
    ck_assert_int_eq(stm_set_waiter(USER_NAME), -EINVAL); /* not a built-in */
    ck_assert_str_eq(stm_waiter_name(), "pipe");          /* unchanged */

    ck_assert_int_eq(stm_set_waiter_ops(NULL), -EINVAL);
    struct stm_waiter_ops o;
    o = user_ops, o.name = NULL;
    ck_assert_int_eq(stm_set_waiter_ops(&o), -EINVAL);
    o = user_ops, o.create = NULL;
    ck_assert_int_eq(stm_set_waiter_ops(&o), -EINVAL);
    o = user_ops, o.destroy = NULL;
    ck_assert_int_eq(stm_set_waiter_ops(&o), -EINVAL);
    o = user_ops, o.wait = NULL;
    ck_assert_int_eq(stm_set_waiter_ops(&o), -EINVAL);
    o = user_ops, o.notify = NULL;
    ck_assert_int_eq(stm_set_waiter_ops(&o), -EINVAL);
    ck_assert_str_eq(stm_waiter_name(), "pipe");
    /* ctx may be NULL */
    o = user_ops, o.ctx = NULL, o.name = "no-ctx";
    ck_assert_int_eq(stm_set_waiter_ops(&o), 0);
    ck_assert_str_eq(stm_waiter_name(), "no-ctx");
}
END_TEST

START_TEST(test_set_waiter_names)
{
    const char *names[] = {"thread", "pipe", "condvar", "pipe", "thread", "condvar"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ck_assert_int_eq(stm_set_waiter(names[i]), 0);
        ck_assert_str_eq(stm_waiter_name(), names[i]);
    }
    ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
    ck_assert_str_eq(stm_waiter_name(), USER_NAME);
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
    ck_assert_str_eq(stm_waiter_name(), "condvar");
    /* a name passed in a buffer that is reused: the built-in names are
     * the library's, so the caller's buffer does not matter */
    char buf[16];
    strcpy(buf, "pipe");
    ck_assert_int_eq(stm_set_waiter(buf), 0);
    strcpy(buf, "xxxx");
    ck_assert_str_eq(stm_waiter_name(), "pipe");
}
END_TEST

/* The ops structure is copied: clobbering the caller's copy afterwards
 * changes nothing. */
START_TEST(test_ops_copied)
{
    struct stm_waiter_ops o = user_ops;
    ck_assert_int_eq(stm_set_waiter_ops(&o), 0);
    memset(&o, 0, sizeof o);
    struct dl x = {0};
    /* long enough that the first (slow, under valgrind) attempt waits */
    x.d = stm_now() + TU_SCALE(STM_MSEC(5), STM_MSEC(500));
    ck_assert_int_eq(stm_atomically(body_deadline, &x), 1);
    ck_assert(stm_now() >= x.d);
    ck_assert_str_eq(stm_waiter_name(), USER_NAME);
    ck_assert_int_eq(ld(&uc.creates), 1);
    ck_assert_int_eq(ld(&uc.bad_ctx), 0);
}
END_TEST

/* create() failing: the wait fails with -errno, and a later wait, once
 * create() works again, succeeds. */
START_TEST(test_user_create_fails)
{
    ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
    atomic_store(&uc.fail_errno, ENOSPC);
    struct dl x = {0};
    x.d = stm_now() + STM_SEC(10);
    ck_assert_int_eq(stm_atomically(body_deadline, &x), -ENOSPC);
    ck_assert_int_eq(ld(&x.attempts), 1);
    ck_assert(stm_now() < x.d);
    atomic_store(&uc.fail_errno, 0);
    struct dl y = {0};
    y.d = stm_now() + TU_SCALE(STM_MSEC(5), STM_MSEC(500));
    ck_assert_int_eq(stm_atomically(body_deadline, &y), 1);
    ck_assert(stm_now() >= y.d);
    ck_assert_int_eq(ld(&uc.creates), 1);
}
END_TEST

/* The pipe backend with no descriptors left: -EMFILE; then it works. */
START_TEST(test_pipe_emfile)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    /* make a first transaction, so that nothing else is left to set up */
    atomic_int runs;
    atomic_init(&runs, 0);
    ck_assert_int_eq(stm_atomically(body_count_and_return, &runs), 4);
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    struct rlimit low = rl;
    low.rlim_cur = (rlim_t)tu_count_fds() + 16;
    if (low.rlim_cur > rl.rlim_cur)
        low.rlim_cur = rl.rlim_cur;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fillers[64], nf = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            ck_assert_int_eq(errno, EMFILE);
            break;
        }
        ck_assert_int_lt(nf, 64);
        fillers[nf++] = fd;
    }
    struct dl x = {0};
    x.d = stm_now() + STM_SEC(10);
    int rc = stm_atomically(body_deadline, &x);
    for (int i = 0; i < nf; i++)
        close(fillers[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rc == -EMFILE, "stm_atomically returned %d (%s), want -EMFILE", rc,
                  stm_strerror(rc));
    ck_assert(stm_now() < x.d);
    struct dl y = {0};
    y.d = stm_now() + STM_MSEC(5);
    ck_assert_int_eq(stm_atomically(body_deadline, &y), 1);
    ck_assert(stm_now() >= y.d);
}
END_TEST

/* A thread blocked in the user backend stays there when the backend is
 * switched, and is still woken (through the user backend's notify); its
 * next wait uses the new backend. */
START_TEST(test_switch_while_blocked_user_to_pipe)
{
    ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
    struct waitv w;
    waitv_init(&w, 2);
    pthread_t t = tu_run_thread(thr_wait_atleast, &w);
    ck_assert(tu_wait_atleast(&w.in_round, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&uc.waits, 1, TU_HANDSHAKE_MS)); /* inside u_wait() */
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    ck_assert_str_eq(stm_waiter_name(), "pipe");
    int fds0 = tu_count_fds();
    ck_assert_int_eq(stm_tvar_poke(w.x, 1), 0);
    ck_assert_msg(tu_wait_atleast(&w.done, 1, TU_HANDSHAKE_MS), "not woken after the switch");
    ck_assert_int_ge(ld(&uc.notifies), 1);
    int waits1 = atomic_load(&uc.waits);

    /* round 2: the thread's next wait is on a pipe backend waiter (one
     * more descriptor), not on the user backend */
    ck_assert(tu_wait_atleast(&w.in_round, 2, TU_HANDSHAKE_MS));
    int64_t end = tu_now_ns() + STM_MSEC(TU_HANDSHAKE_MS);
    while (tu_count_fds() <= fds0 && tu_now_ns() < end)
        tu_sleep_ms(1);
    ck_assert_msg(tu_count_fds() > fds0, "no descriptor for the thread's pipe waiter");
    ck_assert_int_eq(stm_tvar_poke(w.x, 2), 0);
    ck_assert(tu_wait_atleast(&w.done, 2, TU_HANDSHAKE_MS));
    tu_join(t);
    ck_assert_int_eq(w.rc[0], 1);
    ck_assert_int_eq(w.rc[1], 2);
    ck_assert_int_eq(ld(&uc.waits), waits1);
    /* the thread's user waiter was destroyed (at the switch or at exit) */
    ck_assert_int_eq(ld(&uc.creates), 1);
    ck_assert_int_eq(ld(&uc.destroys), 1);
    stm_tvar_free(w.x);
}
END_TEST

/* The other way round: blocked on a pipe waiter, switched to the user
 * backend; woken; its next wait goes through the user backend. */
START_TEST(test_switch_while_blocked_pipe_to_user)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    int fds0 = tu_count_fds();
    struct waitv w;
    waitv_init(&w, 2);
    pthread_t t = tu_run_thread(thr_wait_atleast, &w);
    ck_assert(tu_wait_atleast(&w.in_round, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&w.tid, 1, TU_HANDSHAKE_MS));
    int64_t end = tu_now_ns() + STM_MSEC(TU_HANDSHAKE_MS);
    while (tu_count_fds() <= fds0 && tu_now_ns() < end)
        tu_sleep_ms(1);
    ck_assert_msg(tu_count_fds() > fds0, "no descriptor for the thread's pipe waiter");
    ck_assert(tu_wait_asleep((pid_t)ld(&w.tid), TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
    ck_assert_int_eq(stm_tvar_poke(w.x, 1), 0);
    ck_assert_msg(tu_wait_atleast(&w.done, 1, TU_HANDSHAKE_MS), "not woken after the switch");

    ck_assert(tu_wait_atleast(&w.in_round, 2, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_atleast(&uc.waits, 1, TU_HANDSHAKE_MS),
                  "the thread's next wait did not use the new backend");
    ck_assert_int_eq(stm_tvar_poke(w.x, 2), 0);
    ck_assert(tu_wait_atleast(&w.done, 2, TU_HANDSHAKE_MS));
    tu_join(t);
    ck_assert_int_eq(w.rc[0], 1);
    ck_assert_int_eq(w.rc[1], 2);
    ck_assert_int_ge(ld(&uc.notifies), 1);
    ck_assert_int_eq(ld(&uc.creates), 1);
    ck_assert_int_eq(ld(&uc.destroys), 1);
    stm_tvar_free(w.x);
}
END_TEST

/* Two threads ping-pong, with timed waits, while the main thread keeps
 * switching backends under them. */
START_TEST(test_switch_under_load)
{
    stm_tvar *turn = stm_tvar_new(0);
    ck_assert_ptr_nonnull(turn);
    long rounds = TU_SCALE(20000L, 2000L);
    struct pp a = {turn, 0, 1, rounds, stm_now() + STM_SEC(3600), 0};
    struct pp b = {turn, 1, 0, rounds, 0, 0};
    pthread_t ta = tu_run_thread(thr_pp, &a);
    pthread_t tb = tu_run_thread(thr_pp, &b);
    const char *names[] = {"condvar", "pipe", "thread", NULL};
    int switches = 0;
    /* until both are done: pthread_tryjoin_np tells without blocking */
    bool a_done = false, b_done = false;
    int64_t end = tu_now_ns() + STM_SEC(250);
    while (!(a_done && b_done) && tu_now_ns() < end) {
        const char *n = names[switches % 4];
        if (n != NULL)
            ck_assert_int_eq(stm_set_waiter(n), 0);
        else
            ck_assert_int_eq(stm_set_waiter_ops(&user_ops), 0);
        switches++;
        tu_sleep_ms(1);
        if (!a_done)
            a_done = pthread_tryjoin_np(ta, NULL) == 0;
        if (!b_done)
            b_done = pthread_tryjoin_np(tb, NULL) == 0;
    }
    ck_assert_msg(a_done && b_done, "the players did not finish");
    fprintf(stderr, "waiter: %d backend switches during %ld rounds\n", switches, rounds);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_int_eq(stm_tvar_peek(turn), 0);
    stm_tvar_free(turn);
    /* every user waiter made was destroyed (by thread exit, or here) */
    stm_shutdown();
    ck_assert_int_eq(ld(&uc.creates), ld(&uc.destroys));
}
END_TEST

/* ---- STM_WAITER at start-up: this program re-run as a child ---------- */

/* The child: print the backend's name, then make one timed wait. */
static int waiter_child(void)
{
    printf("WAITER=%s\n", stm_waiter_name());
    struct dl x = {0};
    x.d = stm_now() + STM_MSEC(2);
    int rc = stm_atomically(body_deadline, &x);
    printf("RC=%d LATE=%d\n", rc, stm_now() >= x.d ? 0 : 1);
    fflush(stdout);
    stm_shutdown();
    return 0;
}

static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

/* Runs this program with STM_WAITER=value (NULL: unset); returns its
 * standard output, and its standard error in *err. */
static char *run_waiter_child(const char *value, char **err)
{
    int out[2], er[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(er), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(er[1], 2);
        close(out[0]);
        close(out[1]);
        close(er[0]);
        close(er[1]);
        if (value != NULL)
            setenv("STM_WAITER", value, 1);
        else
            unsetenv("STM_WAITER");
        char *argv[] = {"check_time", "--waiter-child", NULL};
        tu_exec_self(argv);
        _exit(127);
    }
    close(out[1]);
    close(er[1]);
    char *o = read_all(out[0]); /* the child writes little: no deadlock */
    *err = read_all(er[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x: %s %s", status,
                  o, *err);
    return o;
}

START_TEST(test_env_waiter)
{
    struct {
        const char *env, *want;
    } cases[] = {
        {"pipe", "pipe"},
        {"thread", "thread"},
        {"condvar", "condvar"},
        {NULL, "condvar"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err;
        char *out = run_waiter_child(cases[i].env, &err);
        char want[64];
        snprintf(want, sizeof want, "WAITER=%s\n", cases[i].want);
        ck_assert_msg(strstr(out, want) != NULL, "STM_WAITER=%s: want %s, child printed: %s",
                      cases[i].env ? cases[i].env : "(unset)", want, out);
        ck_assert_msg(strstr(out, "RC=1 LATE=0") != NULL, "STM_WAITER=%s: child printed %s",
                      cases[i].env ? cases[i].env : "(unset)", out);
        ck_assert_msg(strstr(err, "libstm") == NULL, "STM_WAITER=%s: stderr: %s",
                      cases[i].env ? cases[i].env : "(unset)", err);
        free(out);
        free(err);
    }
}
END_TEST

START_TEST(test_env_waiter_unknown)
{
    char *err;
    char *out = run_waiter_child("bogus", &err);
    ck_assert_msg(strstr(out, "WAITER=condvar\n") != NULL, "child printed: %s", out);
    ck_assert_msg(strstr(out, "RC=1 LATE=0") != NULL, "child printed %s", out);
    /* one line on stderr that says what was wrong */
    int lines = 0;
    for (char *l = err; *l != '\0';) {
        char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        char save = l[len];
        l[len] = '\0';
        if (strstr(l, "bogus") != NULL || strstr(l, "STM_WAITER") != NULL)
            lines++;
        l[len] = save;
        l += len + (nl ? 1 : 0);
    }
    ck_assert_msg(lines == 1, "%d lines about the bad STM_WAITER; stderr: '%s'", lines, err);
    free(out);
    free(err);
}
END_TEST

/* ---- the pipe backend's descriptors ---------------------------------- */

struct fdw {
    stm_tvar *x;
    atomic_int *ran;
    int rc;
};

static int body_fd_wait(stm_tx *tx, void *arg)
{
    struct fdw *f = arg;
    if (stm_read(tx, f->x) == 0) {
        atomic_fetch_add(f->ran, 1);
        stm_retry(tx);
    }
    return 1;
}

static void *thr_fd_wait(void *arg)
{
    struct fdw *f = arg;
    f->rc = stm_atomically(body_fd_wait, f);
    return NULL;
}

enum { NFDTHREADS = 50 };

START_TEST(test_pipe_closes_fds)
{
    ck_assert_int_eq(stm_set_waiter("pipe"), 0);
    stm_tvar *x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(x);
    atomic_int ran = 0;
    struct fdw f[NFDTHREADS];
    pthread_t t[NFDTHREADS];
    int before = tu_count_fds();
    ck_assert_int_gt(before, 0);
    for (int i = 0; i < NFDTHREADS; i++) {
        f[i] = (struct fdw){x, &ran, -1};
        t[i] = tu_run_thread(thr_fd_wait, &f[i]);
    }
    ck_assert(tu_wait_atleast(&ran, NFDTHREADS, TU_HANDSHAKE_MS));
    /* one descriptor per waiting thread */
    int64_t end = tu_now_ns() + STM_MSEC(TU_HANDSHAKE_MS);
    while (tu_count_fds() < before + NFDTHREADS && tu_now_ns() < end)
        tu_sleep_ms(1);
    int during = tu_count_fds();
    ck_assert_msg(during >= before + NFDTHREADS, "%d descriptors before, %d with %d waiting",
                  before, during, NFDTHREADS);
    ck_assert_int_eq(stm_tvar_poke(x, 1), 0);
    for (int i = 0; i < NFDTHREADS; i++) {
        tu_join(t[i]);
        ck_assert_int_eq(f[i].rc, 1);
    }
    int after = tu_count_fds();
    fprintf(stderr, "waiter: descriptors %d before, %d during, %d after\n", before, during, after);
    ck_assert_msg(after <= before + 2, "%d descriptors before, %d after %d threads exited", before,
                  after, NFDTHREADS);
    stm_tvar_free(x);
}
END_TEST

/* ---- the library's own threads --------------------------------------- */

/* Threads of this process (entries of /proc/self/task). */
static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* A joined thread can stay listed for a moment after pthread_join():
 * wait (bounded) until at most `n` are left, and return the count. */
static int tasks_settle(int n)
{
    int64_t end = tu_now_ns() + STM_MSEC(TU_HANDSHAKE_MS);
    int c;
    while ((c = count_tasks()) > n && tu_now_ns() < end)
        tu_sleep_ms(1);
    return c;
}

static void *thr_timed_wait(void *arg)
{
    struct dl *x = arg;
    x->d = stm_now() + STM_MSEC(20);
    return (void *)(intptr_t)stm_atomically(body_deadline, x);
}

static void timed_waits_on_threads(void)
{
    struct dl x[5];
    pthread_t t[5];
    memset(x, 0, sizeof x);
    for (int i = 0; i < 5; i++)
        t[i] = tu_run_thread(thr_timed_wait, &x[i]);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq((intptr_t)tu_join(t[i]), 1);
}

/* "condvar" makes timed waits with no other thread; "thread" starts one
 * timer thread for all of them; the first wall-clock wait starts one
 * watcher; stm_shutdown() stops both. */
static void *thr_nothing(void *arg)
{
    return arg;
}

START_TEST(test_library_threads)
{
    /* a first thread, joined, so that helper threads a sanitizer starts
     * with the first pthread_create are there already */
    tu_join(tu_run_thread(thr_nothing, NULL));
    int n0 = count_tasks(), same = 0; /* once the count has stayed put for 5 ms */
    while (same < 5) {
        tu_sleep_ms(1);
        int c = count_tasks();
        same = c == n0 ? same + 1 : 0;
        n0 = c;
    }
    ck_assert_int_eq(stm_set_waiter("condvar"), 0);
    timed_waits_on_threads();
    ck_assert_int_eq(tasks_settle(n0), n0);

    ck_assert_int_eq(stm_set_waiter("thread"), 0);
    timed_waits_on_threads();
    timed_waits_on_threads();
    ck_assert_msg(tasks_settle(n0 + 1) == n0 + 1, "%d threads, %d before: want one timer thread",
                  count_tasks(), n0);

    struct wallw p = {0};
    p.w = stm_wall_now() + STM_MSEC(5);
    ck_assert_int_eq(stm_atomically(body_wall, &p), 1);
    struct wallw q = {0};
    q.w = stm_wall_now() + STM_MSEC(5);
    ck_assert_int_eq(stm_atomically(body_wall, &q), 1);
    ck_assert_msg(tasks_settle(n0 + 2) == n0 + 2,
                  "%d threads, %d before: want the timer thread and the wall-clock watcher",
                  count_tasks(), n0);

    stm_shutdown();
    ck_assert_msg(tasks_settle(n0) == n0, "%d threads after stm_shutdown, %d before", count_tasks(),
                  n0);

    /* and the library starts afresh */
    ck_assert_int_eq(stm_set_waiter("thread"), 0);
    timed_waits_on_threads();
    ck_assert_int_eq(tasks_settle(n0 + 1), n0 + 1);
    stm_shutdown();
    ck_assert_int_eq(tasks_settle(n0), n0);
}
END_TEST

START_TEST(test_wake_spin_bounds)
{
    ck_assert_int_eq(stm_set_wake_spin(-2), -EINVAL);
    ck_assert_int_eq(stm_set_wake_spin(INT64_MIN), -EINVAL);
    ck_assert_int_eq(stm_set_wake_spin(STM_MSEC(10) + 1), -EINVAL);
    ck_assert_int_eq(stm_set_wake_spin(STM_MSEC(10)), 0);
    ck_assert_int_eq(stm_set_wake_spin(0), 0);
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
}
END_TEST

/* STM_WAKE_SPIN_AUTO's model, with made-up lateness and times: the window
 * follows the later wake-ups, is capped, and polling stays within an
 * eighth of real time. */
START_TEST(test_wake_spin_auto_model)
{
    struct stm__spin s = {0};
    ck_assert_int_eq(stm__spin_window_of(&s), 0); /* nothing learned yet */
    for (int i = 0; i < 40; i++)
        stm__spin_learn(&s, STM_USEC(30));
    ck_assert_uint_eq(s.samples, 40);
    ck_assert_int_ge(s.est, STM_USEC(29));
    ck_assert_int_le(s.est, STM_USEC(30));
    ck_assert_int_eq(stm__spin_window_of(&s), s.est + STM_USEC(2));
    /* an early wake-up pulls the estimate down a little, a late one up a lot */
    int64_t e = s.est;
    stm__spin_learn(&s, 0);
    ck_assert_int_eq(s.est, e - e / 32);
    e = s.est;
    stm__spin_learn(&s, e + STM_USEC(40));
    ck_assert_int_ge(s.est, e + STM_USEC(10));
    /* mostly-on-time wake-ups with a few late ones: the window covers the
     * common case (a high quantile, not the mean) */
    struct stm__spin q = {0};
    for (int i = 0; i < 1000; i++)
        stm__spin_learn(&q, i % 10 == 0 ? STM_USEC(50) : STM_USEC(20));
    ck_assert_int_ge(q.est, STM_USEC(20));
    ck_assert_int_lt(q.est, STM_USEC(50));
    /* negative lateness counts as none; preemptions are clipped; the
     * window is capped */
    struct stm__spin c = {0};
    stm__spin_learn(&c, -STM_USEC(5));
    ck_assert_int_eq(c.est, 0);
    for (int i = 0; i < 100; i++)
        stm__spin_learn(&c, STM_SEC(1));
    ck_assert_int_le(c.est, STM_MSEC(1));
    ck_assert_int_eq(stm__spin_window_of(&c), STM__SPIN_AUTO_MAX);

    /* the budget: starts full (20 ms), refills at 1/8 of real time */
    struct stm__spin b = {0};
    int64_t t = STM_SEC(5);
    ck_assert(stm__spin_charge(&b, t, STM_MSEC(20)));
    ck_assert(!stm__spin_charge(&b, t, 1));
    t += STM_MSEC(8);
    ck_assert(!stm__spin_charge(&b, t, STM_MSEC(1) + 1));
    ck_assert(stm__spin_charge(&b, t, STM_MSEC(1)));
    ck_assert(!stm__spin_charge(&b, t, 1));
    t += STM_SEC(3600); /* a long quiet spell fills it, no further */
    ck_assert(stm__spin_charge(&b, t, STM_MSEC(20)));
    ck_assert(!stm__spin_charge(&b, t, 1));
}
END_TEST

/* By default the library learns the wake-up lateness from real timed
 * sleeps, and the waits stay on the right side of their deadlines. */
START_TEST(test_wake_spin_auto_learns)
{
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
    uint64_t n0 = stm__spin_state().samples;
    for (int i = 0; i < 5; i++)
        check_deadline_wait(STM_MSEC(3));
    ck_assert_uint_ge(stm__spin_state().samples, n0 + 1);
    int64_t w = stm__spin_window();
    ck_assert_int_ge(w, STM_USEC(2));
    ck_assert_int_le(w, STM__SPIN_AUTO_MAX);
    /* with polling off, nothing polls: the window is 0 */
    ck_assert_int_eq(stm_set_wake_spin(0), 0);
    ck_assert_int_eq(stm__spin_window(), 0);
    check_deadline_wait(STM_MSEC(3));
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
}
END_TEST

static Suite *waiter_suite(void)
{
    Suite *s = suite_create("waiter");
    TCase *tc = tcase_create("choose");
    tcase_add_checked_fixture(tc, waiter_setup, waiter_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_set_waiter_invalid);
    tcase_add_test(tc, test_wake_spin_bounds);
    tcase_add_test(tc, test_wake_spin_auto_model);
    tcase_add_test(tc, test_wake_spin_auto_learns);
    tcase_add_test(tc, test_set_waiter_names);
    tcase_add_test(tc, test_ops_copied);
    tcase_add_test(tc, test_user_create_fails);
    tcase_add_test(tc, test_pipe_emfile);
    tcase_add_test(tc, test_env_waiter);
    tcase_add_test(tc, test_env_waiter_unknown);
    tcase_add_test(tc, test_pipe_closes_fds);
    tcase_add_test(tc, test_library_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("switch");
    tcase_add_checked_fixture(tc, waiter_setup, waiter_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_switch_while_blocked_user_to_pipe);
    tcase_add_test(tc, test_switch_while_blocked_pipe_to_user);
    tcase_add_test(tc, test_switch_under_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--waiter-child") == 0)
        return waiter_child();

    int status = tu_run_suite(waiter_suite());
    const char *backends[] = {"condvar", "pipe", "thread", USER_NAME};
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        g_backend = backends[i];
        if (tu_run_suite(time_suite(g_backend)) != EXIT_SUCCESS)
            status = EXIT_FAILURE;
    }
    return status;
}
