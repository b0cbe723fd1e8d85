/*
 * check_vclock.c - the virtual clock: stm_clock_virtual, stm_clock_advance,
 * stm_clock_real.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Under the virtual clock nothing waits by real time, so these tests are
 * exact: a thread woken by stm_clock_advance() sees its own deadline as
 * its now, threads come due in deadline order (ties in the order their
 * waits began), and when stm_clock_advance() returns, every thread it
 * woke has committed or gone back to waiting, so the tests check the
 * results at once, with no waiting.  Only the rebasing tests (virtual to
 * real and back) wait in real time.
 *
 * To know that a thread's wait has *begun* (for ties, and before an
 * advance that must find it waiting), a test waits for the thread's
 * attempt counter and then for the kernel to report the thread asleep
 * (tu_wait_asleep in testutil.h): a bounded wait on a condition.
 *
 * Every test leaves the clock real (the teardown checks).
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#define LATE_NS STM_SEC(5)

/* An atomic's value, as a function: ck_assert_int_eq(ld(&x), 1) prints
 * "ld(&x)" on failure rather than the expansion of atomic_load(). */
static inline int ld(atomic_int *p)
{
    return atomic_load(p);
}

static void vclock_setup(void)
{
    ck_assert(!stm_clock_is_virtual());
}

static void vclock_teardown(void)
{
    ck_assert_msg(!stm_clock_is_virtual(), "the test left the virtual clock on");
    stm_shutdown();
}

/* Wait until the thread with kernel id *tid has run its body `min` times
 * (counted in *attempts) and is asleep. */
static void wait_blocked(atomic_int *attempts, int min, atomic_int *tid)
{
    ck_assert_msg(tu_wait_atleast(attempts, min, TU_HANDSHAKE_MS), "attempt %d never ran", min);
    ck_assert(tu_wait_atleast(tid, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(tid), TU_HANDSHAKE_MS),
                  "the thread did not go to sleep");
}

/* ==== 1. switching on and off, advancing ============================== */

struct now_arg {
    int64_t now, wall;
    bool e_at, e_after, e_never;
};

static int body_now(stm_tx *tx, void *arg)
{
    struct now_arg *n = arg;
    n->now = stm_tx_now(tx);
    n->wall = stm_tx_wall_now(tx);
    n->e_at = stm_elapsed(tx, n->now);
    n->e_after = stm_elapsed(tx, n->now + 1);
    n->e_never = stm_elapsed(tx, STM_NEVER);
    return 0;
}

START_TEST(test_virtual_basics)
{
    /* off: advance and real are no-ops; a negative start is refused */
    ck_assert_int_eq(stm_clock_virtual(-1), -EINVAL);
    ck_assert(!stm_clock_is_virtual());
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert(!stm_clock_is_virtual());
    int64_t a = tu_now_ns();
    stm_clock_advance(STM_SEC(100));
    int64_t n = stm_now();
    int64_t b = tu_now_ns();
    ck_assert(n >= a && n <= b);

    /* on */
    ck_assert_int_eq(stm_clock_virtual(1000), 0);
    ck_assert(stm_clock_is_virtual());
    ck_assert_int_eq(stm_now(), 1000);
    tu_spin_ns(STM_MSEC(2));
    ck_assert_int_eq(stm_now(), 1000); /* it does not move by itself */
    stm_clock_advance(500);
    ck_assert_int_eq(stm_now(), 1500);
    stm_clock_advance(0);
    ck_assert_int_eq(stm_now(), 1500);
    stm_clock_advance(-100); /* negative: a no-op */
    ck_assert_int_eq(stm_now(), 1500);
    ck_assert_int_eq(stm_clock_virtual(7), -EALREADY);
    ck_assert(stm_clock_is_virtual());
    ck_assert_int_eq(stm_now(), 1500);

    /* transactions read it */
    struct now_arg na = {0};
    ck_assert_int_eq(stm_atomically(body_now, &na), 0);
    ck_assert_int_eq(na.now, 1500);
    ck_assert(na.e_at);
    ck_assert(!na.e_after);
    ck_assert(!na.e_never);
    /* the wall clock keeps following the real one */
    int64_t real_wall = (int64_t)time(NULL) * STM_SEC(1);
    ck_assert(llabs(stm_wall_now() - real_wall) < STM_SEC(5));
    ck_assert(llabs(na.wall - real_wall) < STM_SEC(5));

    /* off again: the real monotonic clock */
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert(!stm_clock_is_virtual());
    a = tu_now_ns();
    n = stm_now();
    b = tu_now_ns();
    ck_assert(n >= a && n <= b);
    ck_assert(n > 1500);
    int64_t prev = n;
    for (int i = 0; i < 1000; i++) {
        int64_t m = stm_now();
        ck_assert(m >= prev);
        prev = m;
    }
    ck_assert_int_eq(stm_clock_real(), 0); /* a no-op now */
    stm_clock_advance(STM_SEC(3600));      /* a no-op too */
    ck_assert(stm_now() < tu_now_ns() + STM_SEC(1));

    /* and on again, from 0 */
    ck_assert_int_eq(stm_clock_virtual(0), 0);
    ck_assert_int_eq(stm_now(), 0);
    stm_clock_advance(STM_SEC(3600));
    ck_assert_int_eq(stm_now(), STM_SEC(3600));
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

START_TEST(test_virtual_overflow_clamps)
{
    ck_assert_int_eq(stm_clock_virtual(1000), 0);
    stm_clock_advance(STM_NEVER); /* 1000 + INT64_MAX overflows */
    ck_assert_int_eq(stm_now(), STM_NEVER - 1);
    stm_clock_advance(1);
    ck_assert_int_eq(stm_now(), STM_NEVER - 1);
    stm_clock_advance(STM_NEVER);
    ck_assert_int_eq(stm_now(), STM_NEVER - 1);
    struct now_arg na = {0};
    ck_assert_int_eq(stm_atomically(body_now, &na), 0);
    ck_assert_int_eq(na.now, STM_NEVER - 1);
    ck_assert(na.e_at);
    ck_assert(!na.e_after); /* now + 1 is STM_NEVER: never */
    ck_assert(!na.e_never);
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert(stm_now() < STM_NEVER / 2);
}
END_TEST

/* ==== 2. deadline order, ties, exact nows ============================= */

enum { NV = 7 };

struct vlog {
    stm_tvar *n;     /* entries so far */
    stm_tvar *e[NV]; /* who committed, in order */
};

struct vt {
    int idx;
    int64_t d;
    struct vlog *log;
    atomic_int attempts;
    atomic_int tid;
    int64_t final_now;
    int rc;
};

static int body_vt(stm_tx *tx, void *arg)
{
    struct vt *v = arg;
    atomic_fetch_add(&v->attempts, 1);
    int64_t now = stm_tx_now(tx);
    if (!stm_elapsed(tx, v->d))
        stm_retry(tx);
    v->final_now = now;
    intptr_t k = stm_read(tx, v->log->n);
    stm_write(tx, v->log->e[k], v->idx);
    stm_write(tx, v->log->n, k + 1);
    return 0;
}

static void *thr_vt(void *arg)
{
    struct vt *v = arg;
    atomic_store(&v->tid, tu_gettid());
    v->rc = stm_atomically(body_vt, v);
    return NULL;
}

static void run_order(const char *backend)
{
    ck_assert_int_eq(stm_set_waiter(backend), 0);
    struct vlog log;
    log.n = stm_tvar_new(0);
    ck_assert_ptr_nonnull(log.n);
    for (int i = 0; i < NV; i++) {
        log.e[i] = stm_tvar_new(-1);
        ck_assert_ptr_nonnull(log.e[i]);
    }
    const int64_t S = STM_SEC(1000);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    /* deadlines (ms after S) in the order the waits begin */
    const int64_t rel[NV] = {300, 100, 200, 100, 200, 100, 5000};
    /* deadline order, ties in registration order; the last one is not
     * due in the first advance */
    const int want[NV] = {1, 3, 5, 2, 4, 0, 6};
    struct vt v[NV];
    pthread_t t[NV];
    for (int i = 0; i < NV; i++) {
        memset(&v[i], 0, sizeof v[i]);
        v[i].idx = i;
        v[i].d = S + STM_MSEC(rel[i]);
        v[i].log = &log;
        t[i] = tu_run_thread(thr_vt, &v[i]);
        /* thread i is waiting before thread i + 1 starts */
        wait_blocked(&v[i].attempts, 1, &v[i].tid);
    }
    ck_assert_int_eq(stm_tvar_peek(log.n), 0);

    stm_clock_advance(STM_MSEC(1000));
    /* no waiting: everything that came due has committed */
    ck_assert_int_eq(stm_now(), S + STM_MSEC(1000));
    ck_assert_int_eq(stm_tvar_peek(log.n), NV - 1);
    for (int k = 0; k < NV - 1; k++)
        ck_assert_msg(stm_tvar_peek(log.e[k]) == want[k], "%s: entry %d is thread %d, want %d",
                      backend, k, (int)stm_tvar_peek(log.e[k]), want[k]);
    ck_assert_int_eq(stm_tvar_peek(log.e[NV - 1]), -1);

    stm_clock_advance(STM_MSEC(4000)); /* exactly to the last deadline */
    ck_assert_int_eq(stm_now(), S + STM_MSEC(5000));
    ck_assert_int_eq(stm_tvar_peek(log.n), NV);
    ck_assert_int_eq(stm_tvar_peek(log.e[NV - 1]), want[NV - 1]);

    for (int i = 0; i < NV; i++) {
        tu_join(t[i]);
        ck_assert_int_eq(v[i].rc, 0);
        ck_assert_msg(v[i].final_now == v[i].d, "%s: thread %d committed at %lld, deadline %lld",
                      backend, i, (long long)v[i].final_now, (long long)v[i].d);
        /* one attempt that waited, one that committed */
        ck_assert_msg(ld(&v[i].attempts) == 2, "%s: thread %d ran %d attempts", backend, i,
                      ld(&v[i].attempts));
    }
    ck_assert_int_eq(stm_clock_real(), 0);
    for (int i = 0; i < NV; i++)
        stm_tvar_free(log.e[i]);
    stm_tvar_free(log.n);
}

START_TEST(test_order_condvar)
{
    run_order("condvar");
}
END_TEST

START_TEST(test_order_pipe)
{
    run_order("pipe");
}
END_TEST

START_TEST(test_order_thread)
{
    run_order("thread");
}
END_TEST

/* Due exactly at the new now; not due one nanosecond before. */
START_TEST(test_due_boundary)
{
    struct vlog log;
    log.n = stm_tvar_new(0);
    log.e[0] = stm_tvar_new(-1);
    ck_assert(log.n && log.e[0]);
    ck_assert_int_eq(stm_clock_virtual(0), 0);
    struct vt v;
    memset(&v, 0, sizeof v);
    v.d = 100;
    v.log = &log;
    pthread_t t = tu_run_thread(thr_vt, &v);
    wait_blocked(&v.attempts, 1, &v.tid);
    stm_clock_advance(99);
    ck_assert_int_eq(stm_now(), 99);
    ck_assert_int_eq(stm_tvar_peek(log.n), 0);
    stm_clock_advance(1);
    ck_assert_int_eq(stm_now(), 100);
    ck_assert_int_eq(stm_tvar_peek(log.n), 1);
    tu_join(t);
    ck_assert_int_eq(v.final_now, 100);
    ck_assert_int_eq(ld(&v.attempts), 2);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(log.e[0]);
    stm_tvar_free(log.n);
}
END_TEST

/* A thread woken by an advance that waits again (for a later deadline, or
 * for a TVar only) has settled: the advance returns, and the thread is
 * still waiting, having run its body exactly once more. */
struct again {
    int64_t d1, d2; /* d2 == 0: after d1, wait for x != 0 instead */
    stm_tvar *x, *out;
    atomic_int attempts;
    atomic_int tid;
    int64_t nows[8];
    int rc;
};

static int body_again(stm_tx *tx, void *arg)
{
    struct again *g = arg;
    int a = atomic_fetch_add(&g->attempts, 1);
    if (a < 8)
        g->nows[a] = stm_tx_now(tx);
    if (!stm_elapsed(tx, g->d1))
        stm_retry(tx);
    if (g->d2 != 0 && !stm_elapsed(tx, g->d2))
        stm_retry(tx);
    if (g->d2 == 0 && stm_read(tx, g->x) == 0)
        stm_retry(tx);
    stm_write(tx, g->out, 1);
    return 0;
}

static void *thr_again(void *arg)
{
    struct again *g = arg;
    atomic_store(&g->tid, tu_gettid());
    g->rc = stm_atomically(body_again, g);
    return NULL;
}

static void run_again(bool tvar)
{
    const int64_t S = STM_SEC(10);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct again g;
    memset(&g, 0, sizeof g);
    g.x = stm_tvar_new(0);
    g.out = stm_tvar_new(0);
    ck_assert(g.x && g.out);
    g.d1 = S + STM_SEC(1);
    g.d2 = tvar ? 0 : S + STM_SEC(3);
    pthread_t t = tu_run_thread(thr_again, &g);
    wait_blocked(&g.attempts, 1, &g.tid);
    stm_clock_advance(STM_SEC(2)); /* d1 comes; d2 (or x) does not */
    ck_assert_int_eq(stm_now(), S + STM_SEC(2));
    ck_assert_int_eq(ld(&g.attempts), 2);
    ck_assert_int_eq(stm_tvar_peek(g.out), 0);
    if (tvar) {
        ck_assert_int_eq(stm_tvar_poke(g.x, 1), 0);
    } else {
        stm_clock_advance(STM_SEC(1));
        ck_assert_int_eq(stm_tvar_peek(g.out), 1); /* committed before the advance returned */
    }
    tu_join(t);
    ck_assert_int_eq(g.rc, 0);
    ck_assert_int_eq(stm_tvar_peek(g.out), 1);
    ck_assert_int_eq(ld(&g.attempts), 3);
    ck_assert_int_eq(g.nows[0], S);
    ck_assert_int_eq(g.nows[1], g.d1);
    ck_assert_int_eq(g.nows[2], tvar ? S + STM_SEC(2) : g.d2);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(g.x);
    stm_tvar_free(g.out);
}

START_TEST(test_woken_waits_again_deadline)
{
    run_again(false);
}
END_TEST

START_TEST(test_woken_waits_again_tvar)
{
    run_again(true);
}
END_TEST

/* ==== 3. an hour of exponential back-off ============================== */

enum { BK_MAX = 80 };

struct bk {
    int64_t start;
    int64_t d[BK_MAX]; /* the schedule: start + 1, 3, 7, ... s */
    int nd;
    int k;                         /* the step being waited for */
    int64_t times[2 * BK_MAX + 2]; /* every attempt's now */
    int ntimes;
    stm_tvar *count; /* steps committed */
    atomic_int attempts;
    atomic_int retried; /* steps that have retried: last step + 1 */
    atomic_int tid;
    int rc;
};

/* Delays 1 s, 2 s, 4 s, ... capped at 60 s, for an hour. */
static void bk_init(struct bk *b, int64_t start)
{
    memset(b, 0, sizeof *b);
    b->start = start;
    int64_t d = start, delay = STM_SEC(1);
    while (d + delay <= start + STM_SEC(3600)) {
        ck_assert_int_lt(b->nd, BK_MAX);
        d += delay;
        b->d[b->nd++] = d;
        delay = delay * 2 > STM_SEC(60) ? STM_SEC(60) : delay * 2;
    }
    b->count = stm_tvar_new(0);
    ck_assert_ptr_nonnull(b->count);
}

static void bk_record(stm_tx *tx, struct bk *b)
{
    atomic_fetch_add(&b->attempts, 1);
    if (b->ntimes < (int)(sizeof b->times / sizeof b->times[0]))
        b->times[b->ntimes++] = stm_tx_now(tx);
}

/* One transaction per step: wait for d[k], then count it. */
static int body_bk_step(stm_tx *tx, void *arg)
{
    struct bk *b = arg;
    bk_record(tx, b);
    if (!stm_elapsed(tx, b->d[b->k])) {
        atomic_store(&b->retried, b->k + 1);
        stm_retry(tx);
    }
    stm_write(tx, b->count, b->k + 1);
    return 0;
}

static void *thr_bk_steps(void *arg)
{
    struct bk *b = arg;
    atomic_store(&b->tid, tu_gettid());
    for (b->k = 0; b->k < b->nd; b->k++) {
        b->rc = stm_atomically(body_bk_step, b);
        if (b->rc != 0)
            break;
    }
    return NULL;
}

/* One transaction for the whole hour: the body waits for the first
 * deadline that has not come; each wake-up moves it to the next. */
static int body_bk_all(stm_tx *tx, void *arg)
{
    struct bk *b = arg;
    bk_record(tx, b);
    for (int k = 0; k < b->nd; k++)
        if (!stm_elapsed(tx, b->d[k]))
            stm_retry(tx);
    stm_write(tx, b->count, b->nd);
    return 0;
}

static void *thr_bk_all(void *arg)
{
    struct bk *b = arg;
    atomic_store(&b->tid, tu_gettid());
    b->rc = stm_atomically(body_bk_all, b);
    return NULL;
}

START_TEST(test_backoff_hour_steps)
{
    const int64_t S = STM_SEC(5);
    struct bk *b = malloc(sizeof *b);
    ck_assert_ptr_nonnull(b);
    bk_init(b, S);
    ck_assert_int_eq(b->nd, 64); /* 1, 3, ..., 63, then every 60 s to 3543 */
    ck_assert_int_eq(b->d[5], S + STM_SEC(63));
    ck_assert_int_eq(b->d[63], S + STM_SEC(3543));
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int64_t w0 = tu_now_ns();
    pthread_t t = tu_run_thread(thr_bk_steps, b);
    ck_assert(tu_wait_atleast(&b->retried, 1, TU_HANDSHAKE_MS));
    wait_blocked(&b->attempts, 1, &b->tid);
    intptr_t seen = 0;
    for (int s = 1; s <= 3600; s++) {
        stm_clock_advance(STM_SEC(1));
        ck_assert_int_eq(stm_now(), S + STM_SEC(s));
        intptr_t c = stm_tvar_peek(b->count);
        /* the step whose deadline is now has committed, at once */
        intptr_t want = seen;
        if (seen < b->nd && b->d[seen] == S + STM_SEC(s))
            want = seen + 1;
        ck_assert_msg(c == want, "after %d s: %d steps committed, want %d", s, (int)c, (int)want);
        if (c != seen) {
            seen = c;
            if (seen < b->nd) { /* the next step is waiting before the next advance */
                ck_assert(tu_wait_atleast(&b->retried, (int)seen + 1, TU_HANDSHAKE_MS));
                ck_assert(tu_wait_asleep((pid_t)ld(&b->tid), TU_HANDSHAKE_MS));
            }
        }
    }
    tu_join(t);
    int64_t w1 = tu_now_ns();
    fprintf(stderr, "vclock: an hour of back-off in 3600 steps took %.3f s\n",
            (double)(w1 - w0) / 1e9);
    ck_assert_int_eq(b->rc, 0);
    ck_assert_int_eq(stm_tvar_peek(b->count), b->nd);
    /* attempt times: S; then each deadline twice (the attempt that commits
     * and the next step's first attempt), the last once */
    ck_assert_int_eq(b->ntimes, 2 * b->nd);
    ck_assert_int_eq(ld(&b->attempts), 2 * b->nd);
    ck_assert_int_eq(b->times[0], S);
    for (int k = 0; k < b->nd; k++) {
        ck_assert_msg(b->times[2 * k + 1] == b->d[k], "attempt %d at %lld, want %lld", 2 * k + 1,
                      (long long)b->times[2 * k + 1], (long long)b->d[k]);
        if (k + 1 < b->nd)
            ck_assert_msg(b->times[2 * k + 2] == b->d[k], "attempt %d at %lld, want %lld",
                          2 * k + 2, (long long)b->times[2 * k + 2], (long long)b->d[k]);
    }
    ck_assert(w1 - w0 < STM_SEC(60));
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(b->count);
    free(b);
}
END_TEST

START_TEST(test_backoff_hour_one_advance)
{
    const int64_t S = STM_SEC(5);
    struct bk *b = malloc(sizeof *b);
    ck_assert_ptr_nonnull(b);
    bk_init(b, S);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int64_t w0 = tu_now_ns();
    pthread_t t = tu_run_thread(thr_bk_all, b);
    wait_blocked(&b->attempts, 1, &b->tid);
    stm_clock_advance(STM_SEC(3600));
    int64_t w1 = tu_now_ns();
    /* every deadline came due within the advance, in turn: committed */
    ck_assert_int_eq(stm_now(), S + STM_SEC(3600));
    ck_assert_int_eq(stm_tvar_peek(b->count), b->nd);
    tu_join(t);
    fprintf(stderr, "vclock: an hour of back-off in one advance took %.3f s\n",
            (double)(w1 - w0) / 1e9);
    ck_assert_int_eq(b->rc, 0);
    ck_assert_int_eq(b->ntimes, b->nd + 1);
    ck_assert_int_eq(ld(&b->attempts), b->nd + 1);
    ck_assert_int_eq(b->times[0], S);
    for (int k = 0; k < b->nd; k++)
        ck_assert_msg(b->times[k + 1] == b->d[k], "attempt %d at %lld, want %lld", k + 1,
                      (long long)b->times[k + 1], (long long)b->d[k]);
    ck_assert(w1 - w0 < STM_SEC(60));
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(b->count);
    free(b);
}
END_TEST

/* ==== 4. stm_atomically_until under the virtual clock ================= */

struct vu {
    stm_tvar *x;
    int64_t deadline;
    atomic_int attempts;
    atomic_int tid;
    atomic_int done;
    int64_t nows[8];
    int rc;
};

static int body_vu(stm_tx *tx, void *arg)
{
    struct vu *u = arg;
    int a = atomic_fetch_add(&u->attempts, 1);
    if (a < 8)
        u->nows[a] = stm_tx_now(tx);
    if (stm_read(tx, u->x) == 0)
        stm_retry(tx);
    return (int)stm_read(tx, u->x);
}

static void *thr_vu(void *arg)
{
    struct vu *u = arg;
    atomic_store(&u->tid, tu_gettid());
    u->rc = stm_atomically_until(body_vu, u, u->deadline);
    atomic_store(&u->done, 1);
    return NULL;
}

START_TEST(test_until_virtual)
{
    const int64_t S = STM_SEC(1000), D = STM_SEC(5);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct vu u;
    memset(&u, 0, sizeof u);
    u.x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(u.x);
    u.deadline = S + D;
    pthread_t t = tu_run_thread(thr_vu, &u);
    wait_blocked(&u.attempts, 1, &u.tid);
    stm_clock_advance(D - 1);
    ck_assert_int_eq(stm_now(), S + D - 1);
    /* not due: still waiting (and nothing re-ran the body) */
    ck_assert_int_eq(ld(&u.done), 0);
    ck_assert_int_eq(ld(&u.attempts), 1);
    stm_clock_advance(1);
    ck_assert_int_eq(stm_now(), S + D);
    /* stm_clock_advance() has seen it return from stm_atomically_until();
     * its store to u.done comes after that, so give it a bounded wait */
    ck_assert_msg(tu_wait_atleast(&u.done, 1, TU_HANDSHAKE_MS), "not timed out");
    tu_join(t);
    ck_assert_int_eq(u.rc, -ETIMEDOUT);
    ck_assert_int_eq(u.nows[0], S);
    int a = atomic_load(&u.attempts);
    ck_assert_int_le(a, 2);
    if (a == 2) /* if the body ran again at the deadline, it saw it as now */
        ck_assert_int_eq(u.nows[1], S + D);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(u.x);
}
END_TEST

/* A write before the (virtual) deadline: the body's value. */
START_TEST(test_until_virtual_written)
{
    const int64_t S = STM_SEC(1000), D = STM_SEC(5);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct vu u;
    memset(&u, 0, sizeof u);
    u.x = stm_tvar_new(0);
    ck_assert_ptr_nonnull(u.x);
    u.deadline = S + D;
    pthread_t t = tu_run_thread(thr_vu, &u);
    wait_blocked(&u.attempts, 1, &u.tid);
    stm_clock_advance(D / 2);
    ck_assert_int_eq(ld(&u.done), 0);
    ck_assert_int_eq(stm_tvar_poke(u.x, 8), 0);
    ck_assert(tu_wait_atleast(&u.done, 1, TU_HANDSHAKE_MS));
    tu_join(t);
    ck_assert_int_eq(u.rc, 8);
    ck_assert_int_eq(u.nows[ld(&u.attempts) - 1], S + D / 2);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(u.x);
}
END_TEST

/* ==== 5. back to real time: pending waits are re-based ================ */

struct rb {
    int64_t d;
    int real_at; /* attempts from this one on expect a virtual now */
    atomic_int attempts;
    atomic_int tid;
    atomic_int done;
    int64_t tu[8];  /* real time of each attempt */
    int64_t now[8]; /* its stm_tx_now */
    int rc;
};

static int body_rb(stm_tx *tx, void *arg)
{
    struct rb *r = arg;
    int a = atomic_fetch_add(&r->attempts, 1);
    if (a < 8) {
        r->tu[a] = tu_now_ns();
        r->now[a] = stm_tx_now(tx);
    }
    if (!stm_elapsed(tx, r->d))
        stm_retry(tx);
    return 1;
}

static void *thr_rb(void *arg)
{
    struct rb *r = arg;
    atomic_store(&r->tid, tu_gettid());
    r->rc = stm_atomically(body_rb, r);
    atomic_store(&r->done, 1);
    return NULL;
}

static void run_rebase(const char *backend)
{
    ck_assert_int_eq(stm_set_waiter(backend), 0);
    const int64_t V = 1000;
    ck_assert_int_eq(stm_clock_virtual(V), 0);
    struct rb r;
    memset(&r, 0, sizeof r);
    r.d = V + STM_MSEC(50);
    pthread_t t = tu_run_thread(thr_rb, &r);
    wait_blocked(&r.attempts, 1, &r.tid);
    int64_t t0 = tu_now_ns();
    ck_assert_int_eq(stm_clock_real(), 0);
    int64_t t1 = tu_now_ns();
    ck_assert(!stm_clock_is_virtual());
    ck_assert_msg(tu_wait_atleast(&r.done, 1, TU_HANDSHAKE_MS), "%s: never woken", backend);
    tu_join(t);
    ck_assert_int_eq(r.rc, 1);
    ck_assert_int_eq(r.now[0], V);
    int a = atomic_load(&r.attempts);
    ck_assert_msg(a >= 2 && a <= 5, "%s: %d attempts", backend, a);
    /* no attempt ran again before 50 ms of real time had passed since
     * the switch (the deadline, as a plain number, is long past in real
     * time, so an early re-run would have committed at once) */
    for (int i = 1; i < a && i < 8; i++)
        ck_assert_msg(r.tu[i] >= t0 + STM_MSEC(50), "%s: attempt %d ran %lld us after the switch",
                      backend, i, (long long)((r.tu[i] - t0) / 1000));
    ck_assert_msg(r.tu[a - 1] < t1 + STM_MSEC(50) + LATE_NS, "%s: woken %lld ms after the switch",
                  backend, (long long)((r.tu[a - 1] - t0) / 1000000));
    fprintf(stderr, "vclock/%s: re-based wait woke %.3f ms after the switch\n", backend,
            (double)(r.tu[a - 1] - t0) / 1e6);
}

START_TEST(test_rebase_condvar)
{
    run_rebase("condvar");
}
END_TEST

START_TEST(test_rebase_pipe)
{
    run_rebase("pipe");
}
END_TEST

START_TEST(test_rebase_thread)
{
    run_rebase("thread");
}
END_TEST

/* Switching *to* the virtual clock: a thread already sleeping until a
 * real deadline keeps it, and wakes then (its body then runs against the
 * virtual clock). */
static int body_keep_real(stm_tx *tx, void *arg)
{
    struct rb *r = arg;
    int a = atomic_fetch_add(&r->attempts, 1);
    if (a < 8) {
        r->tu[a] = tu_now_ns();
        r->now[a] = stm_tx_now(tx);
    }
    if (stm_elapsed(tx, r->d))
        return 1;
    if (a >= 1)
        return 2; /* woken, and the deadline is not elapsed in virtual time */
    stm_retry(tx);
}

static void *thr_keep_real(void *arg)
{
    struct rb *r = arg;
    atomic_store(&r->tid, tu_gettid());
    r->rc = stm_atomically(body_keep_real, r);
    atomic_store(&r->done, 1);
    return NULL;
}

static void run_keep_real(const char *backend)
{
    ck_assert_int_eq(stm_set_waiter(backend), 0);
    struct rb r;
    memset(&r, 0, sizeof r);
    r.d = stm_now() + STM_MSEC(300);
    pthread_t t = tu_run_thread(thr_keep_real, &r);
    wait_blocked(&r.attempts, 1, &r.tid);
    int64_t t_switch = tu_now_ns();
    ck_assert_int_eq(stm_clock_virtual(0), 0);
    bool woke = tu_wait_atleast(&r.done, 1, TU_HANDSHAKE_MS);
    if (!woke) { /* release it, to end cleanly */
        stm_clock_advance(STM_NEVER);
        if (tu_wait_atleast(&r.done, 1, TU_HANDSHAKE_MS))
            tu_join(t);
        stm_clock_real();
    }
    ck_assert_msg(woke, "%s: a real deadline was lost when the clock went virtual", backend);
    tu_join(t);
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert_msg(t_switch < r.d, "%s: the handshake took over 300 ms; the test proves nothing",
                  backend);
    ck_assert_int_eq(r.rc, 2);
    ck_assert_int_eq(ld(&r.attempts), 2);
    ck_assert_msg(r.tu[1] >= r.d, "%s: woken %lld ns before the real deadline", backend,
                  (long long)(r.d - r.tu[1]));
    ck_assert(r.tu[1] < r.d + LATE_NS);
    ck_assert_int_eq(r.now[1], 0); /* the virtual now */
}

START_TEST(test_keep_real_deadline)
{
    run_keep_real("condvar");
    run_keep_real("pipe");
    run_keep_real("thread");
}
END_TEST

/* A commit and stm_clock_real() right after it (issue 11, defect 1): the
 * commit's wake-up and the switch's re-basing reach the sleeper together,
 * in one return of its Waiter.  The wake-up must not be taken for the
 * re-basing alone: the sleeper runs its body again at once, rather than at
 * its re-based deadline an hour of real time later.  The window is a few
 * microseconds wide, so the scenario runs many times; a wake-up lost in
 * any round fails the test after the handshake bound. */
struct lw {
    stm_tvar *x;
    int64_t d;
    atomic_int attempts;
    atomic_int tid;
    atomic_int done;
    int rc;
};

static int body_lw(stm_tx *tx, void *arg)
{
    struct lw *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    intptr_t v = stm_read(tx, p->x);
    if (v == 0 && !stm_elapsed(tx, p->d))
        stm_retry(tx);
    return (int)v;
}

static void *thr_lw(void *arg)
{
    struct lw *p = arg;
    atomic_store(&p->tid, tu_gettid());
    p->rc = stm_atomically(body_lw, p);
    atomic_store(&p->done, 1);
    return NULL;
}

static int body_set1(stm_tx *tx, void *arg)
{
    stm_write(tx, arg, 1);
    return 0;
}

static void run_commit_then_real(const char *backend)
{
    ck_assert_int_eq(stm_set_waiter(backend), 0);
    const int rounds = TU_SCALE(300, 60);
    struct lw p;
    for (int i = 0; i < rounds; i++) {
        memset(&p, 0, sizeof p);
        p.x = stm_tvar_new(0);
        ck_assert_ptr_nonnull(p.x);
        ck_assert_int_eq(stm_clock_virtual(STM_SEC(1000)), 0);
        p.d = stm_now() + STM_SEC(3600);
        pthread_t t = tu_run_thread(thr_lw, &p);
        wait_blocked(&p.attempts, 1, &p.tid);
        ck_assert_int_eq(stm_atomically(body_set1, p.x), 0);
        ck_assert_int_eq(stm_clock_real(), 0);
        bool woke = tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS);
        ck_assert_msg(woke, "%s, round %d of %d: the commit's wake-up was lost", backend, i + 1,
                      rounds);
        tu_join(t);
        ck_assert_int_eq(p.rc, 1);
        stm_tvar_free(p.x);
    }
}

START_TEST(test_commit_then_real_condvar)
{
    run_commit_then_real("condvar");
}
END_TEST

START_TEST(test_commit_then_real_pipe)
{
    run_commit_then_real("pipe");
}
END_TEST

START_TEST(test_commit_then_real_thread)
{
    run_commit_then_real("thread");
}
END_TEST

/* ==== 6. wall-clock deadlines keep following the real wall clock ====== */

struct vw {
    int64_t wall_d; /* wall-clock deadline */
    int64_t mono_d; /* monotonic (virtual) deadline, 0: none */
    stm_tvar *out;  /* written by the committing attempt */
    atomic_int attempts;
    atomic_int tid;
    atomic_int done;
    int64_t last_wall, last_now;
    int rc;
};

/* Returns 1 if the monotonic deadline came, 2 if the wall-clock one did. */
static int body_vw(stm_tx *tx, void *arg)
{
    struct vw *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    p->last_now = stm_tx_now(tx);
    p->last_wall = stm_tx_wall_now(tx);
    int r = 0;
    if (p->mono_d != 0 && stm_elapsed(tx, p->mono_d))
        r = 1;
    else if (stm_elapsed_wall(tx, p->wall_d))
        r = 2;
    if (r == 0)
        stm_retry(tx);
    stm_write(tx, p->out, r);
    return r;
}

static void *thr_vw(void *arg)
{
    struct vw *p = arg;
    atomic_store(&p->tid, tu_gettid());
    p->rc = stm_atomically(body_vw, p);
    atomic_store(&p->done, 1);
    return NULL;
}

/* Under the virtual clock a wall-clock deadline 30 ms away comes 30 ms
 * later in real time, with no stm_clock_advance(): "stm_wall_now() and
 * wall-clock deadlines keep following the real wall clock". */
static void run_wall_under_virtual(bool with_mono)
{
    const int64_t S = STM_SEC(1000);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct vw p;
    memset(&p, 0, sizeof p);
    p.out = stm_tvar_new(0);
    ck_assert_ptr_nonnull(p.out);
    if (with_mono)
        p.mono_d = S + STM_SEC(3600);
    int64_t t0 = tu_now_ns();
    p.wall_d = stm_wall_now() + STM_MSEC(30);
    pthread_t t = tu_run_thread(thr_vw, &p);
    bool woke = tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS);
    int64_t t1 = tu_now_ns();
    int stuck_attempts = atomic_load(&p.attempts);
    if (!woke) { /* release it: a wall-clock change re-runs the body */
        stm__test_wall_shift(STM_SEC(3600));
        if (tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS))
            tu_join(t);
        stm__test_wall_shift(-STM_SEC(3600));
    }
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert_msg(woke,
                  "a wall-clock deadline 30 ms away did not come within %ld ms under the "
                  "virtual clock (%d attempts)",
                  TU_HANDSHAKE_MS, stuck_attempts);
    tu_join(t);
    ck_assert_int_eq(p.rc, 2);
    ck_assert(p.last_wall >= p.wall_d);
    ck_assert_int_eq(p.last_now, S);                   /* the virtual clock did not move */
    ck_assert(t1 - t0 >= STM_MSEC(30) - STM_USEC(30)); /* give or take an NTP slew */
    int a = atomic_load(&p.attempts);
    ck_assert_msg(a >= 1 && a <= 5, "%d attempts", a);
    stm_tvar_free(p.out);
}

START_TEST(test_wall_deadline_under_virtual)
{
    run_wall_under_virtual(false);
}
END_TEST

START_TEST(test_wall_and_virtual_deadline_wall_first)
{
    run_wall_under_virtual(true);
}
END_TEST

/* Both kinds in one attempt, the virtual one first: stm_clock_advance()
 * to the virtual deadline wakes it (and it has committed when the advance
 * returns), though the wall-clock one is an hour away. */
START_TEST(test_wall_and_virtual_deadline_virtual_first)
{
    const int64_t S = STM_SEC(1000);
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct vw p;
    memset(&p, 0, sizeof p);
    p.out = stm_tvar_new(0);
    ck_assert_ptr_nonnull(p.out);
    p.mono_d = S + STM_SEC(60);
    p.wall_d = stm_wall_now() + STM_SEC(3600);
    pthread_t t = tu_run_thread(thr_vw, &p);
    wait_blocked(&p.attempts, 1, &p.tid);
    stm_clock_advance(STM_SEC(59));
    ck_assert_int_eq(stm_tvar_peek(p.out), 0);
    stm_clock_advance(STM_SEC(1));
    intptr_t out = stm_tvar_peek(p.out);
    if (out == 0) { /* release it */
        stm_clock_advance(STM_SEC(7200));
        stm__test_wall_shift(STM_SEC(7200));
        if (tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS))
            tu_join(t);
        stm__test_wall_shift(-STM_SEC(7200));
        stm_clock_real();
    }
    ck_assert_msg(out == 1, "not committed when the advance reached its virtual deadline");
    tu_join(t);
    ck_assert_int_eq(p.rc, 1);
    ck_assert_int_eq(p.last_now, S + STM_SEC(60));
    ck_assert_int_eq(ld(&p.attempts), 2);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(p.out);
}
END_TEST

static Suite *vclock_suite(void)
{
    Suite *s = suite_create("vclock");
    TCase *tc = tcase_create("basics");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_virtual_basics);
    tcase_add_test(tc, test_virtual_overflow_clamps);
    suite_add_tcase(s, tc);

    tc = tcase_create("order");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_order_condvar);
    tcase_add_test(tc, test_order_pipe);
    tcase_add_test(tc, test_order_thread);
    tcase_add_test(tc, test_due_boundary);
    tcase_add_test(tc, test_woken_waits_again_deadline);
    tcase_add_test(tc, test_woken_waits_again_tvar);
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_backoff_hour_steps);
    tcase_add_test(tc, test_backoff_hour_one_advance);
    suite_add_tcase(s, tc);

    tc = tcase_create("until");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_until_virtual);
    tcase_add_test(tc, test_until_virtual_written);
    suite_add_tcase(s, tc);

    tc = tcase_create("rebase");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rebase_condvar);
    tcase_add_test(tc, test_rebase_pipe);
    tcase_add_test(tc, test_rebase_thread);
    tcase_add_test(tc, test_keep_real_deadline);
    suite_add_tcase(s, tc);

    tc = tcase_create("commit_then_real");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_commit_then_real_condvar);
    tcase_add_test(tc, test_commit_then_real_pipe);
    tcase_add_test(tc, test_commit_then_real_thread);
    suite_add_tcase(s, tc);

    tc = tcase_create("wall");
    tcase_add_checked_fixture(tc, vclock_setup, vclock_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wall_deadline_under_virtual);
    tcase_add_test(tc, test_wall_and_virtual_deadline_wall_first);
    tcase_add_test(tc, test_wall_and_virtual_deadline_virtual_first);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(vclock_suite)
