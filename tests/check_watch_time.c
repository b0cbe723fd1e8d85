/*
 * check_watch_time.c - watchers with deadlines: runs on the virtual clock
 * (order, exact times, periodic watchers, moved and dropped deadlines,
 * re-basing onto the real clock) and on the real clock.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Under the virtual clock a deadline run happens on the thread calling
 * stm_clock_advance(), in deadline order, each seeing its deadline as
 * stm_tx_now(), and stm_clock_advance() returns once they are done: the
 * tests check at once, with no waiting.  Every run that a callback sees is
 * appended to a log kept in TVars, so that only committed runs count.
 * The real-time tests wait on conditions with generous bounds and assert
 * lower bounds strictly (never early), upper bounds loosely.
 *
 * Nothing may leak (the ASan build runs with detect_leaks=1): every test
 * stops its watchers, and the teardown frees the TVars that tv() made
 * (misuse, so a crash, if a stopped watcher were still registered on one)
 * and calls stm_shutdown().
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#define T0 STM_SEC(1000)

enum { MAXT = 512 };
static stm_tvar *tvars[MAXT];
static int ntvars;

static void vsetup(void)
{
    ck_assert(!stm_clock_is_virtual());
    ntvars = 0;
}

static void vteardown(void)
{
    ck_assert_msg(!stm_clock_is_virtual(), "the test left the virtual clock on");
    for (int i = 0; i < ntvars; i++)
        stm_tvar_free(tvars[i]);
    ntvars = 0;
    stm_shutdown();
}

static struct stm_stats stats(void)
{
    struct stm_stats s;
    stm_stats_get(&s);
    return s;
}

static stm_tvar *tv(intptr_t v)
{
    stm_tvar *t = stm_tvar_new(v);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_lt(ntvars, MAXT);
    tvars[ntvars++] = t;
    return t;
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

static void unwatch(stm_watch *w)
{
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
}

/* ---- the log: (id, the value fn returned, cb's stm_tx_now) per run ---- */

enum { LOGN = 64 };

struct vlog {
    stm_tvar *n;
    stm_tvar *id[LOGN], *val[LOGN], *now[LOGN];
};

static void log_init(struct vlog *l)
{
    l->n = tv(0);
    for (int i = 0; i < LOGN; i++) {
        l->id[i] = tv(0);
        l->val[i] = tv(0);
        l->now[i] = tv(0);
    }
}

static void log_append(stm_tx *tx, struct vlog *l, intptr_t id, intptr_t val)
{
    intptr_t n = stm_read(tx, l->n);
    if (n >= LOGN)
        stm_abort(tx, 99); /* the test fails on the return code */
    stm_write(tx, l->id[n], id);
    stm_write(tx, l->val[n], val);
    stm_write(tx, l->now[n], (intptr_t)stm_tx_now(tx));
    stm_write(tx, l->n, n + 1);
}

static int log_len(struct vlog *l)
{
    return (int)stm_tvar_peek(l->n);
}

/* ---- a watcher that fires once at a fixed deadline ---------------------- */

struct once {
    intptr_t id;
    int64_t dl;
    struct vlog *log;
};

/* 0 until the deadline, then the attempt's now */
static intptr_t once_fn(stm_tx *tx, void *arg)
{
    struct once *o = arg;
    if (!stm_elapsed(tx, o->dl))
        return 0;
    return (intptr_t)stm_tx_now(tx);
}

static void once_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct once *o = arg;
    if (v != 0)
        log_append(tx, o->log, o->id, v);
}

static stm_watch *once_start(struct once *o)
{
    stm_watch *w = stm_atomically_watch(once_fn, once_cb, o, 0);
    ck_assert_msg(w != NULL, "stm_atomically_watch: %s", strerror(errno));
    return w;
}

/* ==== virtual clock ====================================================== */

START_TEST(test_virtual_deadline_order)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct once o[3] = {
        {30, T0 + STM_MSEC(30), &log},
        {10, T0 + STM_MSEC(10), &log},
        {20, T0 + STM_MSEC(20), &log},
    };
    stm_watch *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = once_start(&o[i]);
    ck_assert_int_eq(log_len(&log), 0);
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(100));
    struct stm_stats s1 = stats();
    ck_assert_int_eq(stm_now(), T0 + STM_MSEC(100));
    ck_assert_int_eq(log_len(&log), 3);
    for (int i = 0; i < 3; i++) {
        int64_t want = T0 + STM_MSEC(10) * (i + 1);
        ck_assert_int_eq(stm_tvar_peek(log.id[i]), 10 * (i + 1));
        ck_assert_int_eq(stm_tvar_peek(log.val[i]), want); /* fn's now */
        ck_assert_int_eq(stm_tvar_peek(log.now[i]), want); /* cb's now */
    }
    ck_assert_uint_eq(s1.timer_fires - s0.timer_fires, 3);
    ck_assert_uint_eq(s1.watch_runs - s0.watch_runs, 3);
    ck_assert_uint_eq(s1.watch_failures, s0.watch_failures);
    /* done: they read no deadline any more */
    stm_clock_advance(STM_SEC(10));
    ck_assert_int_eq(log_len(&log), 3);
    ck_assert_uint_eq(stats().timer_fires, s1.timer_fires);
    for (int i = 0; i < 3; i++)
        unwatch(w[i]);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* Deadlines spread over 9 s, some more than the deadline wheel's span
 * (lib/wheel.c: about 4.3 s of 1 ms buckets) past the clock, made in
 * random order once the wheel has moved to the clock: each runs at its
 * deadline, in deadline order (ties: in the order armed), whether the
 * clock moves in steps smaller than, about as large as, or larger than a
 * bucket, or in one step past them all. */
static void far_order(int64_t step)
{
    enum { N = 48 };
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    stm_clock_advance(STM_MSEC(3)); /* (the wheel's cursor comes to T0) */
    int64_t t1 = stm_now();
    struct vlog log;
    log_init(&log);
    struct once o[N];
    stm_watch *w[N];
    uint64_t seed = tu_seed(11);
    for (int i = 0; i < N; i++) {
        /* a few on the same ns, a few on bucket boundaries */
        int64_t d = (int64_t)tu_rand_below(&seed, 9000) * STM_MSEC(1);
        if (i % 7 == 0)
            d = (d >> STM__WHEEL_SHIFT) << STM__WHEEL_SHIFT;
        if (i % 11 == 1)
            d = STM_SEC(5);
        o[i] = (struct once){i, t1 + STM_MSEC(1) + d, &log};
        w[i] = once_start(&o[i]);
    }
    ck_assert_int_eq(log_len(&log), 0);
    while (log_len(&log) < N && stm_now() < t1 + STM_SEC(10))
        stm_clock_advance(step);
    ck_assert_int_eq(log_len(&log), N);
    for (int i = 0; i < N; i++) {
        int id = (int)stm_tvar_peek(log.id[i]);
        ck_assert_int_eq(stm_tvar_peek(log.val[i]), o[id].dl); /* at its deadline */
        if (i > 0) {
            int prev = (int)stm_tvar_peek(log.id[i - 1]);
            ck_assert_msg(o[prev].dl < o[id].dl || (o[prev].dl == o[id].dl && prev < id),
                          "run %d (deadline +%lld ns) after %d (+%lld ns)", id,
                          (long long)(o[id].dl - t1), prev, (long long)(o[prev].dl - t1));
        }
    }
    for (int i = 0; i < N; i++)
        unwatch(w[i]);
    ck_assert_int_eq(stm_clock_real(), 0);
}

START_TEST(test_virtual_far_order_small_steps)
{
    far_order(STM_USEC(300));
}
END_TEST

START_TEST(test_virtual_far_order_ms_steps)
{
    far_order(STM_MSEC(1) + 1);
}
END_TEST

START_TEST(test_virtual_far_order_one_step)
{
    far_order(STM_SEC(20));
}
END_TEST

START_TEST(test_virtual_not_before_deadline)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct once o = {1, T0 + STM_MSEC(10), &log};
    stm_watch *w = once_start(&o);
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(4));
    stm_clock_advance(STM_MSEC(6) - 1); /* 1 ns short */
    ck_assert_int_eq(log_len(&log), 0);
    ck_assert_uint_eq(stats().watch_runs, s0.watch_runs);
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires);
    stm_clock_advance(1);
    ck_assert_int_eq(log_len(&log), 1);
    ck_assert_int_eq(stm_tvar_peek(log.now[0]), T0 + STM_MSEC(10));
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires + 1);
    unwatch(w);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* ---- "every 20 ms": the next deadline in a TVar, advanced by the period -- */

struct periodic {
    stm_tvar *next;
    int64_t period;
    struct vlog *log;
};

static intptr_t per_fn(stm_tx *tx, void *arg)
{
    struct periodic *p = arg;
    int64_t d = (int64_t)stm_read(tx, p->next);
    return stm_elapsed(tx, d) ? (intptr_t)d : 0;
}

static void per_cb(stm_tx *tx, intptr_t d, void *arg)
{
    struct periodic *p = arg;
    if (d == 0)
        return;
    log_append(tx, p->log, 0, d);
    stm_write(tx, p->next, d + p->period); /* from the deadline, not from now */
}

START_TEST(test_virtual_periodic_no_drift)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct periodic p = {tv(T0 + STM_MSEC(20)), STM_MSEC(20), &log};
    stm_watch *w = stm_atomically_watch(per_fn, per_cb, &p, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(log_len(&log), 0);
    static const int steps[] = {7, 33, 50, 3, 17, 40, 1, 49};
    int64_t t = 0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        stm_clock_advance(STM_MSEC(steps[i]));
        t += steps[i];
        ck_assert_int_eq(stm_now(), T0 + STM_MSEC(t));
        ck_assert_msg(log_len(&log) == t / 20, "at +%ld ms: %d runs", (long)t, log_len(&log));
    }
    ck_assert_int_eq(t, 200);
    ck_assert_int_eq(log_len(&log), 10);
    for (int k = 0; k < 10; k++) {
        int64_t want = T0 + STM_MSEC(20) * (k + 1);
        ck_assert_int_eq(stm_tvar_peek(log.val[k]), want);
        ck_assert_int_eq(stm_tvar_peek(log.now[k]), want);
    }
    ck_assert_int_eq(stm_tvar_peek(p.next), T0 + STM_MSEC(220));
    unwatch(w);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* ---- a deadline read from a TVar: moving it replaces the timer ---------- */

struct moving {
    stm_tvar *dl;
    struct vlog *log;
};

static intptr_t moving_fn(stm_tx *tx, void *arg)
{
    struct moving *m = arg;
    return stm_elapsed(tx, (int64_t)stm_read(tx, m->dl)) ? (intptr_t)stm_tx_now(tx) : 0;
}

static void moving_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct moving *m = arg;
    if (v != 0)
        log_append(tx, m->log, 0, v);
}

START_TEST(test_virtual_moved_deadline)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct moving m = {tv(T0 + STM_MSEC(50)), &log};
    stm_watch *w = stm_atomically_watch(moving_fn, moving_cb, &m, 0);
    ck_assert_ptr_nonnull(w);
    stm_clock_advance(STM_MSEC(20));
    ck_assert_int_eq(stm_tvar_poke(m.dl, T0 + STM_MSEC(80)), 0); /* runs it: reads 80 */
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(40)); /* past the old deadline */
    ck_assert_int_eq(log_len(&log), 0);
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires);
    ck_assert_uint_eq(stats().watch_runs, s0.watch_runs);
    stm_clock_advance(STM_MSEC(30)); /* past the new one */
    ck_assert_int_eq(log_len(&log), 1);
    ck_assert_int_eq(stm_tvar_peek(log.now[0]), T0 + STM_MSEC(80));
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires + 1);
    /* earlier works too */
    ck_assert_int_eq(stm_tvar_poke(m.dl, T0 + STM_MSEC(150)), 0);
    ck_assert_int_eq(stm_tvar_poke(m.dl, T0 + STM_MSEC(120)), 0);
    stm_clock_advance(STM_MSEC(40)); /* to 130 */
    ck_assert_int_eq(log_len(&log), 2);
    ck_assert_int_eq(stm_tvar_peek(log.now[1]), T0 + STM_MSEC(120));
    stm_clock_advance(STM_MSEC(40)); /* past 150: nothing is left there */
    ck_assert_int_eq(log_len(&log), 2);
    unwatch(w);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* ---- a watcher that stops reading time leaves no timer ------------------ */

struct maybe {
    stm_tvar *off;
    int64_t dl;
    struct vlog *log;
};

static intptr_t maybe_fn(stm_tx *tx, void *arg)
{
    struct maybe *m = arg;
    if (stm_read(tx, m->off))
        return 0;
    return stm_elapsed(tx, m->dl) ? (intptr_t)stm_tx_now(tx) : 0;
}

static void maybe_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct maybe *m = arg;
    if (v != 0)
        log_append(tx, m->log, 0, v);
}

START_TEST(test_virtual_no_deadline_no_timer)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct maybe m = {tv(0), T0 + STM_MSEC(50), &log};
    stm_watch *w = stm_atomically_watch(maybe_fn, maybe_cb, &m, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(stm_tvar_poke(m.off, 1), 0); /* this run reads no time */
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(100));
    ck_assert_int_eq(log_len(&log), 0);
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires);
    ck_assert_uint_eq(stats().watch_runs, s0.watch_runs);
    /* reading it again: the deadline is past, so that run fires at once */
    ck_assert_int_eq(stm_tvar_poke(m.off, 0), 0);
    ck_assert_int_eq(log_len(&log), 1);
    ck_assert_int_eq(stm_tvar_peek(log.now[0]), T0 + STM_MSEC(100));
    unwatch(w);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

START_TEST(test_virtual_unwatch_before_deadline)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct once o = {1, T0 + STM_MSEC(10), &log}, o2 = {2, T0 + STM_MSEC(20), &log};
    stm_watch *w = once_start(&o);
    stm_watch *w2 = once_start(&o2);
    stm_clock_advance(STM_MSEC(5));
    unwatch(w);
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(100));
    ck_assert_int_eq(log_len(&log), 1); /* only the other one */
    ck_assert_int_eq(stm_tvar_peek(log.id[0]), 2);
    ck_assert_uint_eq(stats().timer_fires, s0.timer_fires + 1);
    unwatch(w2);
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* ---- a deadline run that is vetoed or gives up -------------------------- */

struct picky {
    stm_tvar *ok; /* the callback refuses while this is 0 */
    int64_t dl;
    bool retry; /* refuse with stm_retry() instead of stm_abort() */
    struct vlog *log;
};

static intptr_t picky_fn(stm_tx *tx, void *arg)
{
    struct picky *p = arg;
    (void)stm_read(tx, p->ok);
    return stm_elapsed(tx, p->dl) ? (intptr_t)stm_tx_now(tx) : 0;
}

static void picky_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct picky *p = arg;
    if (v == 0)
        return;
    log_append(tx, p->log, 0, v); /* discarded with the run if refused */
    if (stm_read(tx, p->ok) == 0) {
        if (p->retry)
            stm_retry(tx);
        stm_abort(tx, 5);
    }
}

static void check_refused_deadline_run(bool retry)
{
    ck_assert_int_eq(stm_clock_virtual(T0), 0);
    struct vlog log;
    log_init(&log);
    struct picky p = {tv(0), T0 + STM_MSEC(10), retry, &log};
    stm_watch *w = stm_atomically_watch(picky_fn, picky_cb, &p, 0);
    ck_assert_ptr_nonnull(w);
    struct stm_stats s0 = stats();
    stm_clock_advance(STM_MSEC(20));
    struct stm_stats s1 = stats();
    ck_assert_int_eq(log_len(&log), 0);
    ck_assert_uint_eq(s1.timer_fires - s0.timer_fires, 1);
    /* not dropped: retried 1, 2 and 4 ms after each failure (at 11, 13
     * and 17 ms; check_watch_error.c has the whole schedule) */
    ck_assert_uint_eq(s1.watch_failures - s0.watch_failures, 4);
    /* it runs again when a TVar it read changes; that run commits and
     * ends the retries */
    stm_clock_advance(STM_MSEC(2));
    ck_assert_int_eq(stm_tvar_poke(p.ok, 1), 0);
    ck_assert_int_eq(log_len(&log), 1);
    ck_assert_int_eq(stm_tvar_peek(log.now[0]), T0 + STM_MSEC(22));
    stm_clock_advance(STM_MSEC(100));
    ck_assert_int_eq(log_len(&log), 1);
    ck_assert_uint_eq(stats().watch_failures, s1.watch_failures);
    unwatch(w);
    ck_assert_int_eq(stm_clock_real(), 0);
}

START_TEST(test_virtual_deadline_run_vetoed)
{
    check_refused_deadline_run(false);
}
END_TEST

START_TEST(test_virtual_deadline_run_retries)
{
    check_refused_deadline_run(true);
}
END_TEST

/* a pending deadline is re-based onto the real clock, d ahead stays d ahead
 * (the deadline in the watcher's function is a plain number in the past of
 * the real clock, so the run, when it comes, sees it elapsed) */
START_TEST(test_virtual_to_real_rebases)
{
    const int64_t start = STM_MSEC(10); /* far below the real clock's now */
    ck_assert_int_eq(stm_clock_virtual(start), 0);
    struct vlog log;
    log_init(&log);
    struct once o = {1, start + STM_MSEC(150), &log};
    stm_watch *w = once_start(&o);
    stm_clock_advance(STM_MSEC(50)); /* 100 ms ahead now */
    ck_assert_int_eq(log_len(&log), 0);
    int64_t r0 = tu_now_ns();
    ck_assert_int_eq(stm_clock_real(), 0);
    ck_assert_int_eq(log_len(&log), 0); /* not run by the switch */
    int64_t end = tu_now_ns() + STM_SEC(10);
    while (log_len(&log) == 0 && tu_now_ns() < end)
        tu_sleep_ms(1);
    ck_assert_msg(log_len(&log) == 1, "the re-based deadline never ran");
    int64_t at = (int64_t)stm_tvar_peek(log.now[0]);
    ck_assert_msg(at >= r0 + STM_MSEC(100), "ran %lld ns early",
                  (long long)(r0 + STM_MSEC(100) - at));
    ck_assert_msg(at < r0 + STM_SEC(5), "ran %lld ms late", (long long)((at - r0) / 1000000));
    unwatch(w);
}
END_TEST

/* ==== real clock ========================================================= */

struct rt {
    int64_t dl;
    stm_tvar *ran_at;
    atomic_int early, done;
};

static intptr_t rt_fn(stm_tx *tx, void *arg)
{
    struct rt *r = arg;
    return stm_elapsed(tx, r->dl) ? (intptr_t)stm_tx_now(tx) : 0;
}

static void rt_done(void *arg)
{
    struct rt *r = arg;
    atomic_fetch_add(&r->done, 1);
}

static void rt_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct rt *r = arg;
    if (v == 0)
        return;
    if (v < r->dl || stm_now() < r->dl || stm_tx_now(tx) < r->dl)
        atomic_store(&r->early, 1);
    stm_write(tx, r->ran_at, v);
    stm_after_commit(tx, rt_done, r);
}

static void many_deadlines(void)
{
    enum { N = 120 };
    static struct rt r[N];
    stm_watch *w[N];
    uint64_t seed = tu_seed(7);
    int64_t base = stm_now();
    for (int i = 0; i < N; i++) {
        r[i].dl = base + STM_MSEC(20) + (int64_t)tu_rand_below(&seed, 180 * 1000) * 1000;
        r[i].ran_at = tv(0);
        atomic_init(&r[i].early, 0);
        atomic_init(&r[i].done, 0);
    }
    for (int i = 0; i < N; i++) {
        w[i] = stm_atomically_watch(rt_fn, rt_cb, &r[i], 0);
        ck_assert_ptr_nonnull(w[i]);
    }
    for (int i = 0; i < N; i++)
        ck_assert_msg(tu_wait_atleast(&r[i].done, 1, TU_HANDSHAKE_MS), "watcher %d never ran", i);
    for (int i = 0; i < N; i++) {
        int64_t at = (int64_t)stm_tvar_peek(r[i].ran_at);
        ck_assert_msg(atomic_load(&r[i].early) == 0, "watcher %d ran early", i);
        ck_assert_msg(at >= r[i].dl, "watcher %d: now %lld before its deadline %lld", i,
                      (long long)at, (long long)r[i].dl);
        ck_assert_msg(at < r[i].dl + STM_SEC(2), "watcher %d: %lld ms late", i,
                      (long long)((at - r[i].dl) / 1000000));
        ck_assert_int_eq(atomic_load(&r[i].done), 1); /* once */
    }
    for (int i = 0; i < N; i++)
        unwatch(w[i]);
}

START_TEST(test_real_many_deadlines)
{
    many_deadlines(); /* STM_WAKE_SPIN_AUTO */
    ck_assert_int_eq(stm_set_wake_spin(0), 0);
    many_deadlines();
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
}
END_TEST

/* With stm_set_wake_spin() the timer thread polls the last stretch before
 * each deadline instead of sleeping through it: still never early, and
 * every one runs. */
START_TEST(test_real_many_deadlines_spin)
{
    ck_assert_int_eq(stm_set_wake_spin(STM_USEC(200)), 0);
    many_deadlines();
    ck_assert_int_eq(stm_set_wake_spin(STM_WAKE_SPIN_AUTO), 0);
}
END_TEST

/* a periodic watcher on the real clock: every deadline, never early */
START_TEST(test_real_periodic)
{
    struct vlog log;
    log_init(&log);
    int64_t first = stm_now() + STM_MSEC(10);
    struct periodic p = {tv(first), STM_MSEC(5), &log};
    stm_watch *w = stm_atomically_watch(per_fn, per_cb, &p, 0);
    ck_assert_ptr_nonnull(w);
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * 1000000;
    while (log_len(&log) < 10 && tu_now_ns() < end)
        tu_sleep_ms(1);
    unwatch(w);
    int n = log_len(&log);
    ck_assert_int_ge(n, 10);
    for (int k = 0; k < n; k++) {
        int64_t d = first + STM_MSEC(5) * k;
        ck_assert_int_eq(stm_tvar_peek(log.val[k]), d); /* every deadline, in order */
        ck_assert_msg(stm_tvar_peek(log.now[k]) >= d, "run %d early", k);
    }
    /* stopped: no more */
    int64_t next = (int64_t)stm_tvar_peek(p.next);
    while (stm_now() < next + STM_MSEC(20))
        tu_sleep_ms(5);
    ck_assert_int_eq(log_len(&log), n);
}
END_TEST

static Suite *watch_time_suite(void)
{
    Suite *s = suite_create("watch_time");
    TCase *tc = tcase_create("virtual");
    tcase_add_checked_fixture(tc, vsetup, vteardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_virtual_deadline_order);
    tcase_add_test(tc, test_virtual_far_order_small_steps);
    tcase_add_test(tc, test_virtual_far_order_ms_steps);
    tcase_add_test(tc, test_virtual_far_order_one_step);
    tcase_add_test(tc, test_virtual_not_before_deadline);
    tcase_add_test(tc, test_virtual_periodic_no_drift);
    tcase_add_test(tc, test_virtual_moved_deadline);
    tcase_add_test(tc, test_virtual_no_deadline_no_timer);
    tcase_add_test(tc, test_virtual_unwatch_before_deadline);
    tcase_add_test(tc, test_virtual_deadline_run_vetoed);
    tcase_add_test(tc, test_virtual_deadline_run_retries);
    tcase_add_test(tc, test_virtual_to_real_rebases);
    suite_add_tcase(s, tc);

    tc = tcase_create("real");
    tcase_add_checked_fixture(tc, vsetup, vteardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_real_many_deadlines);
    tcase_add_test(tc, test_real_many_deadlines_spin);
    tcase_add_test(tc, test_real_periodic);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(watch_time_suite)
