/*
 * check_tx.c - stm_atomically, stm_read/stm_write, stm_abort, stm_retry,
 * nesting, and the clocks.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

/* ---- basics ---------------------------------------------------------- */

static int body_const(stm_tx *tx, void *arg)
{
    (void)tx;
    return *(int *)arg;
}

START_TEST(test_returns_body_value)
{
    int v = 42;
    ck_assert_int_eq(stm_atomically(body_const, &v), 42);
    v = 0;
    ck_assert_int_eq(stm_atomically(body_const, &v), 0);
    v = 1000000;
    ck_assert_int_eq(stm_atomically(body_const, &v), 1000000);
}
END_TEST

struct rw_arg {
    stm_tvar *a, *b;
    intptr_t r1, r2, r3, r4;
};

static int body_own_writes(stm_tx *tx, void *arg)
{
    struct rw_arg *x = arg;
    x->r1 = stm_read(tx, x->a); /* committed value */
    stm_write(tx, x->a, 11);
    x->r2 = stm_read(tx, x->a); /* own write */
    stm_write(tx, x->a, 12);    /* overwrite */
    x->r3 = stm_read(tx, x->a);
    stm_write(tx, x->b, x->r3 + 1); /* b written before it is read */
    x->r4 = stm_read(tx, x->b);
    return 3;
}

START_TEST(test_read_own_writes)
{
    struct rw_arg x = {.a = stm_tvar_new(10), .b = stm_tvar_new(20)};
    ck_assert_ptr_nonnull(x.a);
    ck_assert_ptr_nonnull(x.b);
    ck_assert_int_eq(stm_atomically(body_own_writes, &x), 3);
    ck_assert_int_eq(x.r1, 10);
    ck_assert_int_eq(x.r2, 11);
    ck_assert_int_eq(x.r3, 12);
    ck_assert_int_eq(x.r4, 13);
    ck_assert_int_eq(stm_tvar_peek(x.a), 12);
    ck_assert_int_eq(stm_tvar_peek(x.b), 13);
    stm_tvar_free(x.a);
    stm_tvar_free(x.b);
}
END_TEST

static int body_ptr(stm_tx *tx, void *arg)
{
    stm_tvar *v = arg;
    static int target;
    ck_assert_ptr_null(stm_read_ptr(tx, v));
    stm_write_ptr(tx, v, &target);
    ck_assert_ptr_eq(stm_read_ptr(tx, v), &target);
    return 0;
}

START_TEST(test_ptr_helpers)
{
    stm_tvar *v = stm_tvar_new(0);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_atomically(body_ptr, v), 0);
    ck_assert(stm_tvar_peek(v) != 0);
    stm_tvar_free(v);
}
END_TEST

/* ---- many TVars in one transaction ---------------------------------- */

enum { MANY = 1000 };

struct many_arg {
    stm_tvar *r[MANY];
    stm_tvar *w[MANY];
    int bad_read, bad_back;
    int abort_code; /* 0: commit */
    int runs;
};

static int body_many(stm_tx *tx, void *arg)
{
    struct many_arg *m = arg;
    m->runs++;
    m->bad_read = m->bad_back = 0;
    long sum = 0;
    for (int i = 0; i < MANY; i++) {
        intptr_t v = stm_read(tx, m->r[i]);
        if (v != i)
            m->bad_read++;
        sum += v;
    }
    for (int i = 0; i < MANY; i++)
        stm_write(tx, m->w[i], 3 * i + 1);
    /* overwrite every other one, then read all back (write-set lookup) */
    for (int i = 0; i < MANY; i += 2)
        stm_write(tx, m->w[i], -(3 * i + 1));
    for (int i = 0; i < MANY; i++) {
        intptr_t want = (i % 2 == 0) ? -(3 * i + 1) : 3 * i + 1;
        if (stm_read(tx, m->w[i]) != want)
            m->bad_back++;
    }
    if (m->abort_code)
        stm_abort(tx, m->abort_code);
    return (int)(sum % 100000);
}

static void many_init(struct many_arg *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < MANY; i++) {
        m->r[i] = stm_tvar_new(i);
        m->w[i] = stm_tvar_new(7);
        ck_assert_ptr_nonnull(m->r[i]);
        ck_assert_ptr_nonnull(m->w[i]);
    }
}

static void many_fini(struct many_arg *m)
{
    for (int i = 0; i < MANY; i++) {
        stm_tvar_free(m->r[i]);
        stm_tvar_free(m->w[i]);
    }
}

static int body_check_many(stm_tx *tx, void *arg)
{
    struct many_arg *m = arg;
    int bad = 0;
    for (int i = 0; i < MANY; i++) {
        intptr_t want = (i % 2 == 0) ? -(3 * i + 1) : 3 * i + 1;
        if (stm_read(tx, m->w[i]) != want)
            bad++;
    }
    return bad;
}

START_TEST(test_many_tvars)
{
    struct many_arg *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    many_init(m);
    ck_assert_int_eq(stm_atomically(body_many, m), (MANY * (MANY - 1) / 2) % 100000);
    ck_assert_int_eq(m->runs, 1);
    ck_assert_int_eq(m->bad_read, 0);
    ck_assert_int_eq(m->bad_back, 0);
    for (int i = 0; i < MANY; i++) {
        intptr_t want = (i % 2 == 0) ? -(3 * i + 1) : 3 * i + 1;
        ck_assert_int_eq(stm_tvar_peek(m->w[i]), want);
        ck_assert_int_eq(stm_tvar_peek(m->r[i]), i);
    }
    ck_assert_int_eq(stm_atomically(body_check_many, m), 0);
    /* and again: the reused (grown) sets must be clean */
    ck_assert_int_eq(stm_atomically(body_many, m), (MANY * (MANY - 1) / 2) % 100000);
    ck_assert_int_eq(m->bad_read, 0);
    ck_assert_int_eq(m->bad_back, 0);
    many_fini(m);
    free(m);
}
END_TEST

START_TEST(test_many_tvars_abort)
{
    struct many_arg *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    many_init(m);
    m->abort_code = 77;
    ck_assert_int_eq(stm_atomically(body_many, m), 77);
    ck_assert_int_eq(m->runs, 1);
    ck_assert_int_eq(m->bad_back, 0);
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(stm_tvar_peek(m->w[i]), 7);
    many_fini(m);
    free(m);
}
END_TEST

/* A small transaction after a huge one must not see leftovers. */
static int body_small_after(stm_tx *tx, void *arg)
{
    struct many_arg *m = arg;
    return (int)stm_read(tx, m->w[5]);
}

START_TEST(test_sets_reset_between_tx)
{
    struct many_arg *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    many_init(m);
    m->abort_code = 3;
    ck_assert_int_eq(stm_atomically(body_many, m), 3);
    /* the aborted big write set must not leak into this read */
    ck_assert_int_eq(stm_atomically(body_small_after, m), 7);
    many_fini(m);
    free(m);
}
END_TEST

/* ---- commit visibility ---------------------------------------------- */

struct two {
    stm_tvar *a, *b;
    int ret;
};

static int body_write_two(stm_tx *tx, void *arg)
{
    struct two *t = arg;
    stm_write(tx, t->a, stm_read(tx, t->a) + 1);
    stm_write(tx, t->b, 500);
    return t->ret;
}

static int body_sum_two(stm_tx *tx, void *arg)
{
    struct two *t = arg;
    return (int)(stm_read(tx, t->a) * 1000 + stm_read(tx, t->b));
}

START_TEST(test_visible_after_commit)
{
    struct two t = {stm_tvar_new(1), stm_tvar_new(2), 0};
    ck_assert_ptr_nonnull(t.a);
    ck_assert_ptr_nonnull(t.b);
    ck_assert_int_eq(stm_atomically(body_write_two, &t), 0);
    ck_assert_int_eq(stm_tvar_peek(t.a), 2);
    ck_assert_int_eq(stm_tvar_peek(t.b), 500);
    ck_assert_int_eq(stm_atomically(body_sum_two, &t), 2500);
    stm_tvar_free(t.a);
    stm_tvar_free(t.b);
}
END_TEST

START_TEST(test_negative_return_commits)
{
    struct two t = {stm_tvar_new(1), stm_tvar_new(2), -7};
    ck_assert_ptr_nonnull(t.a);
    ck_assert_ptr_nonnull(t.b);
    ck_assert_int_eq(stm_atomically(body_write_two, &t), -7);
    ck_assert_int_eq(stm_tvar_peek(t.a), 2);
    ck_assert_int_eq(stm_tvar_peek(t.b), 500);
    t.ret = -1000;
    ck_assert_int_eq(stm_atomically(body_write_two, &t), -1000);
    ck_assert_int_eq(stm_tvar_peek(t.a), 3);
    stm_tvar_free(t.a);
    stm_tvar_free(t.b);
}
END_TEST

/* ---- stm_abort ------------------------------------------------------- */

struct ab_arg {
    stm_tvar *a, *b;
    int runs;
    int code;
    int on_abort_ran;
    int after_commit_ran;
};

static void count_hook(void *p)
{
    ++*(int *)p;
}

static int body_abort(stm_tx *tx, void *arg)
{
    struct ab_arg *x = arg;
    x->runs++;
    stm_write(tx, x->a, 100);
    stm_write(tx, x->b, stm_read(tx, x->b) + 100);
    stm_on_abort(tx, count_hook, &x->on_abort_ran);
    stm_after_commit(tx, count_hook, &x->after_commit_ran);
    stm_abort(tx, x->code);
}

START_TEST(test_abort_discards)
{
    int codes[] = {17, 0, -5, 1 << 20};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        struct ab_arg x = {.a = stm_tvar_new(1), .b = stm_tvar_new(2), .code = codes[i]};
        ck_assert_ptr_nonnull(x.a);
        ck_assert_ptr_nonnull(x.b);
        ck_assert_int_eq(stm_atomically(body_abort, &x), codes[i]);
        ck_assert_int_eq(x.runs, 1);
        ck_assert_int_eq(x.on_abort_ran, 1);
        ck_assert_int_eq(x.after_commit_ran, 0);
        ck_assert_int_eq(stm_tvar_peek(x.a), 1);
        ck_assert_int_eq(stm_tvar_peek(x.b), 2);
        stm_tvar_free(x.a);
        stm_tvar_free(x.b);
    }
}
END_TEST

/* ---- stm_retry -------------------------------------------------------- */

struct rt_arg {
    stm_tvar *v;
    atomic_int attempts; /* attempts that reached stm_retry() */
    atomic_int runs;
    int64_t now_first, now_last;
    int inner; /* retry from a nested stm_atomically */
};

static int body_retry_nothing_read(stm_tx *tx, void *arg)
{
    struct rt_arg *x = arg;
    atomic_fetch_add(&x->runs, 1);
    stm_write(tx, x->v, 55);
    stm_retry(tx);
}

START_TEST(test_retry_nothing_read)
{
    struct rt_arg x = {.v = stm_tvar_new(3)};
    ck_assert_ptr_nonnull(x.v);
    ck_assert_int_eq(stm_atomically(body_retry_nothing_read, &x), -EDEADLK);
    ck_assert_int_eq(atomic_load(&x.runs), 1);
    ck_assert_int_eq(stm_tvar_peek(x.v), 3);
    stm_tvar_free(x.v);
}
END_TEST

static int inner_retry_if_zero(stm_tx *tx, void *arg)
{
    struct rt_arg *x = arg;
    intptr_t v = stm_read(tx, x->v);
    /* asked for after the read: in the attempt that sees the poke, "now"
     * is later than the poke, which is >= 2 ms after the first attempt's */
    int64_t now = stm_tx_now(tx);
    if (atomic_load(&x->runs) == 1)
        x->now_first = now;
    x->now_last = now;
    if (v == 0) {
        atomic_fetch_add(&x->attempts, 1);
        stm_retry(tx);
    }
    return (int)v;
}

static int body_retry_until_set(stm_tx *tx, void *arg)
{
    struct rt_arg *x = arg;
    atomic_fetch_add(&x->runs, 1);
    if (x->inner)
        return stm_atomically(inner_retry_if_zero, x) + 1000;
    return inner_retry_if_zero(tx, x);
}

struct poker {
    stm_tvar *v;
    atomic_int *counter;
    intptr_t value;
    int rc;
    bool saw;
};

static void *poker_thread(void *p)
{
    struct poker *pk = p;
    pk->saw = tu_wait_atleast(pk->counter, 1, TU_HANDSHAKE_MS);
    /* make sure the clock moves between the two attempts */
    tu_sleep_ms(2);
    pk->rc = stm_tvar_poke(pk->v, pk->value);
    return NULL;
}

static void run_retry_woken(int inner)
{
    struct rt_arg x = {.v = stm_tvar_new(0), .inner = inner};
    ck_assert_ptr_nonnull(x.v);
    struct poker pk = {.v = x.v, .counter = &x.attempts, .value = 9};
    pthread_t t = tu_run_thread(poker_thread, &pk);
    int r = stm_atomically(body_retry_until_set, &x);
    tu_join(t);
    ck_assert(pk.saw);
    ck_assert_int_eq(pk.rc, 0);
    ck_assert_int_eq(r, inner ? 1009 : 9);
    int attempts = atomic_load(&x.attempts);
    ck_assert_int_ge(attempts, 1);
    /* every retrying attempt re-ran the whole (outermost) body */
    ck_assert_int_eq(atomic_load(&x.runs), attempts + 1);
    /* a new attempt reads the clock again */
    ck_assert(x.now_last >= x.now_first + 2000000);
    ck_assert_int_eq(stm_tvar_peek(x.v), 9);
    stm_tvar_free(x.v);
}

START_TEST(test_retry_woken_by_poke)
{
    run_retry_woken(0);
}
END_TEST

START_TEST(test_nested_retry_retries_whole)
{
    run_retry_woken(1);
}
END_TEST

/* retry discards writes made before it, including in the woken attempt */
struct rtw_arg {
    stm_tvar *flag, *out;
    atomic_int attempts;
    intptr_t out_seen_second;
};

static int body_retry_writes(stm_tx *tx, void *arg)
{
    struct rtw_arg *x = arg;
    intptr_t o = stm_read(tx, x->out);
    stm_write(tx, x->out, o + 1);
    if (stm_read(tx, x->flag) == 0) {
        atomic_fetch_add(&x->attempts, 1);
        stm_retry(tx);
    }
    x->out_seen_second = o;
    return 0;
}

START_TEST(test_retry_discards_writes)
{
    struct rtw_arg x = {.flag = stm_tvar_new(0), .out = stm_tvar_new(100)};
    ck_assert_ptr_nonnull(x.flag);
    ck_assert_ptr_nonnull(x.out);
    struct poker pk = {.v = x.flag, .counter = &x.attempts, .value = 1};
    pthread_t t = tu_run_thread(poker_thread, &pk);
    ck_assert_int_eq(stm_atomically(body_retry_writes, &x), 0);
    tu_join(t);
    ck_assert(pk.saw);
    /* the retried attempts' increments were discarded: exactly one landed */
    ck_assert_int_eq(x.out_seen_second, 100);
    ck_assert_int_eq(stm_tvar_peek(x.out), 101);
    stm_tvar_free(x.flag);
    stm_tvar_free(x.out);
}
END_TEST

/* ---- nesting ---------------------------------------------------------- */

struct nest_arg {
    stm_tvar *a, *b;
    intptr_t inner_saw_a;
    intptr_t outer_saw_b;
    int inner_ret;
    int inner_abort;
    int outer_runs;
    int after_inner;
};

static int nest_inner(stm_tx *tx, void *arg)
{
    struct nest_arg *n = arg;
    n->inner_saw_a = stm_read(tx, n->a);
    stm_write(tx, n->b, 77);
    if (n->inner_abort)
        stm_abort(tx, n->inner_abort);
    return 31;
}

static int nest_outer(stm_tx *tx, void *arg)
{
    struct nest_arg *n = arg;
    n->outer_runs++;
    stm_write(tx, n->a, 5);
    n->inner_ret = stm_atomically(nest_inner, n);
    n->after_inner = 1;
    n->outer_saw_b = stm_read(tx, n->b);
    return 8;
}

START_TEST(test_nested_joins)
{
    struct nest_arg n = {.a = stm_tvar_new(1), .b = stm_tvar_new(2)};
    ck_assert_ptr_nonnull(n.a);
    ck_assert_ptr_nonnull(n.b);
    ck_assert_int_eq(stm_atomically(nest_outer, &n), 8);
    ck_assert_int_eq(n.outer_runs, 1);
    ck_assert_int_eq(n.inner_ret, 31);
    ck_assert_int_eq(n.inner_saw_a, 5);  /* outer's write seen by inner */
    ck_assert_int_eq(n.outer_saw_b, 77); /* inner's write seen by outer */
    ck_assert_int_eq(stm_tvar_peek(n.a), 5);
    ck_assert_int_eq(stm_tvar_peek(n.b), 77);
    stm_tvar_free(n.a);
    stm_tvar_free(n.b);
}
END_TEST

START_TEST(test_nested_abort_aborts_whole)
{
    struct nest_arg n = {.a = stm_tvar_new(1), .b = stm_tvar_new(2), .inner_abort = 66};
    ck_assert_ptr_nonnull(n.a);
    ck_assert_ptr_nonnull(n.b);
    ck_assert_int_eq(stm_atomically(nest_outer, &n), 66);
    ck_assert_int_eq(n.outer_runs, 1);
    ck_assert_int_eq(n.after_inner, 0); /* the outer body did not go on */
    ck_assert_int_eq(stm_tvar_peek(n.a), 1);
    ck_assert_int_eq(stm_tvar_peek(n.b), 2);
    stm_tvar_free(n.a);
    stm_tvar_free(n.b);
}
END_TEST

static int nest_inner_retry(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

static int nest_outer_retry(stm_tx *tx, void *arg)
{
    struct nest_arg *n = arg;
    n->outer_runs++;
    stm_write(tx, n->a, 5);
    stm_atomically(nest_inner_retry, n);
    n->after_inner = 1;
    return 0;
}

START_TEST(test_nested_retry_nothing_read)
{
    struct nest_arg n = {.a = stm_tvar_new(1), .b = stm_tvar_new(2)};
    ck_assert_ptr_nonnull(n.a);
    ck_assert_ptr_nonnull(n.b);
    ck_assert_int_eq(stm_atomically(nest_outer_retry, &n), -EDEADLK);
    ck_assert_int_eq(n.outer_runs, 1);
    ck_assert_int_eq(n.after_inner, 0);
    ck_assert_int_eq(stm_tvar_peek(n.a), 1);
    stm_tvar_free(n.a);
    stm_tvar_free(n.b);
}
END_TEST

/* ---- clocks ----------------------------------------------------------- */

START_TEST(test_sec_macros)
{
    ck_assert(_Generic(STM_SEC(3600), int64_t : 1, default : 0));
    ck_assert(_Generic(STM_MSEC(1), int64_t : 1, default : 0));
    ck_assert(_Generic(STM_USEC(1), int64_t : 1, default : 0));
    ck_assert(_Generic(STM_SEC((short)1), int64_t : 1, default : 0));
    ck_assert(STM_SEC(3600) == INT64_C(3600000000000));
    ck_assert(STM_MSEC(2500) == INT64_C(2500000000));
    ck_assert(STM_USEC(7) == INT64_C(7000));
    ck_assert(STM_SEC(-2) == INT64_C(-2000000000));
    int x = 3;
    ck_assert(STM_SEC(x + 1) == INT64_C(4000000000)); /* argument parenthesised */
}
END_TEST

START_TEST(test_now_monotonic)
{
    int64_t a = tu_now_ns();
    int64_t s = stm_now();
    int64_t b = tu_now_ns();
    ck_assert(a <= s && s <= b);
    int64_t prev = stm_now();
    for (int i = 0; i < 100000; i++) {
        int64_t n = stm_now();
        ck_assert(n >= prev);
        prev = n;
    }
    int64_t t0 = stm_now();
    tu_sleep_ms(5);
    ck_assert(stm_now() - t0 >= STM_MSEC(5));
}
END_TEST

START_TEST(test_wall_now)
{
    int64_t w = stm_wall_now();
    int64_t t = (int64_t)time(NULL) * INT64_C(1000000000);
    int64_t d = w > t ? w - t : t - w;
    ck_assert_msg(d < STM_SEC(5), "stm_wall_now %lld vs time() %lld", (long long)w, (long long)t);
}
END_TEST

struct now_arg {
    int64_t n1, n2, n3;
};

static int body_now(stm_tx *tx, void *arg)
{
    struct now_arg *n = arg;
    n->n1 = stm_tx_now(tx);
    tu_sleep_ms(2);
    n->n2 = stm_tx_now(tx);
    n->n3 = stm_now();
    return 0;
}

START_TEST(test_tx_now_fixed)
{
    struct now_arg n = {0};
    int64_t before = stm_now();
    ck_assert_int_eq(stm_atomically(body_now, &n), 0);
    int64_t after = stm_now();
    ck_assert(n.n1 == n.n2);
    ck_assert(before <= n.n1 && n.n1 <= after);
    ck_assert(n.n3 >= n.n1 + STM_MSEC(2)); /* the real clock did move */
    /* a new transaction gets a new now */
    struct now_arg m = {0};
    ck_assert_int_eq(stm_atomically(body_now, &m), 0);
    ck_assert(m.n1 >= n.n3);
}
END_TEST

static Suite *tx_suite(void)
{
    Suite *s = suite_create("tx");
    TCase *tc = tcase_create("basics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_returns_body_value);
    tcase_add_test(tc, test_read_own_writes);
    tcase_add_test(tc, test_ptr_helpers);
    tcase_add_test(tc, test_many_tvars);
    tcase_add_test(tc, test_many_tvars_abort);
    tcase_add_test(tc, test_sets_reset_between_tx);
    tcase_add_test(tc, test_visible_after_commit);
    tcase_add_test(tc, test_negative_return_commits);
    suite_add_tcase(s, tc);

    tc = tcase_create("abort_retry");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_abort_discards);
    tcase_add_test(tc, test_retry_nothing_read);
    tcase_add_test(tc, test_retry_woken_by_poke);
    tcase_add_test(tc, test_retry_discards_writes);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_nested_joins);
    tcase_add_test(tc, test_nested_abort_aborts_whole);
    tcase_add_test(tc, test_nested_retry_nothing_read);
    tcase_add_test(tc, test_nested_retry_retries_whole);
    suite_add_tcase(s, tc);

    tc = tcase_create("time");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sec_macros);
    tcase_add_test(tc, test_now_monotonic);
    tcase_add_test(tc, test_wall_now);
    tcase_add_test(tc, test_tx_now_fixed);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(tx_suite)
