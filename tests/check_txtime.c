/*
 * check_txtime.c - stm_tx_current, stm_tx_start (the outermost call's
 * start, the same in every attempt) and nested stm_atomically_until (its
 * own deadline: undone and -ETIMEDOUT once it has come, a wait of the
 * whole transaction that also ends at it before).  On the virtual clock,
 * so every time is exact.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

static const int64_t S = STM_SEC(1000); /* the virtual clock's start */

static int ld(atomic_int *p)
{
    return atomic_load(p);
}

/* the thread has run `min` attempts and sleeps */
static void wait_blocked(atomic_int *attempts, int min, atomic_int *tid)
{
    ck_assert_msg(tu_wait_atleast(attempts, min, TU_HANDSHAKE_MS), "attempt %d never ran", min);
    ck_assert(tu_wait_atleast(tid, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(tid), TU_HANDSHAKE_MS),
                  "the thread did not go to sleep");
}

/* ==== stm_tx_current ================================================== */

static stm_tx *seen_in_hook = (stm_tx *)1;

static void hook_current(void *arg)
{
    (void)arg;
    seen_in_hook = stm_tx_current();
}

static int body_nested_current(stm_tx *tx, void *arg)
{
    *(stm_tx **)arg = stm_tx_current();
    (void)tx;
    return 0;
}

static int body_current(stm_tx *tx, void *arg)
{
    stm_tx **out = arg;
    out[0] = tx;
    out[1] = stm_tx_current();
    stm_atomically(body_nested_current, &out[2]);
    stm_after_commit(tx, hook_current, NULL);
    return 0;
}

START_TEST(test_current)
{
    ck_assert_ptr_null(stm_tx_current());
    stm_tx *got[3] = {NULL, NULL, NULL};
    ck_assert_int_eq(stm_atomically(body_current, got), 0);
    ck_assert_ptr_nonnull(got[0]);
    ck_assert_ptr_eq(got[1], got[0]);
    ck_assert_ptr_eq(got[2], got[0]); /* nested: the same transaction */
    ck_assert_ptr_null(seen_in_hook); /* a hook runs after the body */
    ck_assert_ptr_null(stm_tx_current());
    got[0] = got[1] = NULL;
    ck_assert_int_eq(stm_atomically_ro(body_current, got), 0); /* reads only: no fallback */
    ck_assert_ptr_nonnull(got[0]);
    ck_assert_ptr_eq(got[1], got[0]);
    ck_assert_ptr_null(stm_tx_current());
}
END_TEST

static int body_ro_current(stm_tx *tx, void *arg)
{
    *(stm_tx **)arg = stm_tx_current() == tx ? tx : NULL;
    return 0;
}

START_TEST(test_current_ro)
{
    stm_tx *got = NULL;
    ck_assert_int_eq(stm_atomically_ro(body_ro_current, &got), 0);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_null(stm_tx_current());
}
END_TEST

/* ==== stm_tx_start ===================================================== */

enum { MAXA = 8 };

struct st {
    stm_tvar *poke; /* wakes the waiter for another attempt */
    int64_t rel;    /* wait for stm_tx_start() + rel */
    int ask_from;   /* ask for stm_tx_start() from this attempt on (1 = first) */
    bool until;     /* run under stm_atomically_until(STM_NEVER) */
    atomic_int attempts;
    atomic_int tid;
    int64_t start[MAXA];
    int64_t final_now;
    int rc;
};

static int body_start(stm_tx *tx, void *arg)
{
    struct st *s = arg;
    int a = atomic_fetch_add(&s->attempts, 1) + 1;
    (void)stm_read(tx, s->poke);
    if (a < s->ask_from)
        stm_retry(tx); /* (reads poke: a poke wakes it) */
    int64_t st = stm_tx_start(tx);
    if (a <= MAXA)
        s->start[a - 1] = st;
    ck_assert_int_eq(stm_tx_start(tx), st); /* asked twice: the same */
    if (!stm_elapsed(tx, st + s->rel))
        stm_retry(tx);
    s->final_now = stm_tx_now(tx);
    return 0;
}

static void *thr_start(void *arg)
{
    struct st *s = arg;
    atomic_store(&s->tid, tu_gettid());
    s->rc =
        s->until ? stm_atomically_until(body_start, s, STM_NEVER) : stm_atomically(body_start, s);
    return NULL;
}

/* The waiter is woken twice by a poke before its relative deadline comes:
 * every attempt sees the same start, and the wait ends at start + rel. */
static void run_start(int ask_from, bool until)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct st s;
    memset(&s, 0, sizeof s);
    s.poke = stm_tvar_new(0);
    s.rel = STM_MSEC(100);
    s.ask_from = ask_from;
    s.until = until;
    pthread_t t = tu_run_thread(thr_start, &s);
    wait_blocked(&s.attempts, 1, &s.tid);
    stm_clock_advance(STM_MSEC(30));
    ck_assert_int_eq(stm_tvar_poke(s.poke, 1), 0);
    wait_blocked(&s.attempts, 2, &s.tid);
    stm_clock_advance(STM_MSEC(30));
    ck_assert_int_eq(stm_tvar_poke(s.poke, 2), 0);
    wait_blocked(&s.attempts, 3, &s.tid);
    stm_clock_advance(STM_MSEC(39)); /* S + 99 ms: not yet */
    ck_assert_int_eq(ld(&s.attempts), 3);
    stm_clock_advance(STM_MSEC(1)); /* S + 100 ms */
    tu_join(t);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq(ld(&s.attempts), 4);
    for (int a = ask_from; a <= 4; a++)
        ck_assert_msg(s.start[a - 1] == S, "attempt %d: start %lld, want %lld", a,
                      (long long)s.start[a - 1], (long long)S);
    ck_assert_int_eq(s.final_now, S + STM_MSEC(100));
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(s.poke);
}

START_TEST(test_start_every_attempt)
{
    run_start(1, false);
}
END_TEST

/* The first attempts do not ask: the start is still the call's. */
START_TEST(test_start_asked_late)
{
    run_start(3, false);
}
END_TEST

START_TEST(test_start_until)
{
    run_start(1, true);
    run_start(2, true);
}
END_TEST

static int body_just_start(stm_tx *tx, void *arg)
{
    *(int64_t *)arg = stm_tx_start(tx);
    return 0;
}

static int body_start_then_write(stm_tx *tx, void *arg)
{
    *(int64_t *)arg = stm_tx_start(tx);
    stm_write(tx, ((stm_tvar **)arg)[1], 1);
    return 0;
}

struct nest_start {
    int64_t outer, inner;
};

static int body_inner_start(stm_tx *tx, void *arg)
{
    ((struct nest_start *)arg)->inner = stm_tx_start(tx);
    return 0;
}

static int body_outer_start(stm_tx *tx, void *arg)
{
    struct nest_start *n = arg;
    n->outer = stm_tx_start(tx);
    return stm_atomically(body_inner_start, n);
}

/* Each call has its own start (nothing of an earlier call is kept), a
 * nested call sees the outermost's, and a read-only call has one too. */
START_TEST(test_start_per_call)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    int64_t st = 0;
    ck_assert_int_eq(stm_atomically(body_just_start, &st), 0);
    ck_assert_int_eq(st, S);
    stm_clock_advance(STM_MSEC(10));
    ck_assert_int_eq(stm_atomically(body_just_start, &st), 0);
    ck_assert_int_eq(st, S + STM_MSEC(10));
    stm_clock_advance(STM_MSEC(10));
    ck_assert_int_eq(stm_atomically_ro(body_just_start, &st), 0);
    ck_assert_int_eq(st, S + STM_MSEC(20));
    stm_clock_advance(STM_MSEC(10));
    ck_assert_int_eq(stm_atomically_until(body_just_start, &st, STM_NEVER), 0);
    ck_assert_int_eq(st, S + STM_MSEC(30));
    stm_clock_advance(STM_MSEC(10));
    /* a committing writer */
    stm_tvar *v = stm_tvar_new(0);
    union {
        int64_t st;
        stm_tvar *p[2];
    } u;
    u.p[1] = v;
    ck_assert_int_eq(stm_atomically(body_start_then_write, &u), 0);
    ck_assert_int_eq(u.st, S + STM_MSEC(40));
    stm_clock_advance(STM_MSEC(10));
    struct nest_start n = {0, 0};
    ck_assert_int_eq(stm_atomically(body_outer_start, &n), 0);
    ck_assert_int_eq(n.outer, S + STM_MSEC(50));
    ck_assert_int_eq(n.inner, S + STM_MSEC(50));
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_tvar_free(v);
}
END_TEST

/* After a call of several attempts (committed in the slow path), the
 * next call's first attempt does not see the old start. */
START_TEST(test_start_not_kept)
{
    run_start(1, false);
    ck_assert_int_eq(stm_clock_virtual(S + STM_SEC(5)), 0);
    int64_t st = 0;
    ck_assert_int_eq(stm_atomically(body_just_start, &st), 0);
    ck_assert_int_eq(st, S + STM_SEC(5));
    ck_assert_int_eq(stm_clock_real(), 0);
}
END_TEST

/* ==== nested stm_atomically_until ======================================= */

struct nu {
    stm_tvar *a, *b, *flag;
    int64_t deadline;
    atomic_int attempts;
    atomic_int tid;
    int inner_rc;
    int64_t final_now;
    int rc;
};

/* waits for flag, writes b on its way (undone if it times out) */
static int body_inner_wait(stm_tx *tx, void *arg)
{
    struct nu *n = arg;
    stm_write(tx, n->b, 1);
    if (stm_read(tx, n->flag) == 0)
        stm_retry(tx);
    stm_write(tx, n->b, 2);
    return 5;
}

static int body_outer_wait(stm_tx *tx, void *arg)
{
    struct nu *n = arg;
    atomic_fetch_add(&n->attempts, 1);
    stm_write(tx, n->a, 1);
    n->inner_rc = stm_atomically_until(body_inner_wait, n, n->deadline);
    n->final_now = stm_tx_now(tx);
    stm_write(tx, n->a, 2);
    return 0;
}

static void nu_init(struct nu *n, int64_t deadline)
{
    memset(n, 0, sizeof *n);
    n->a = stm_tvar_new(0);
    n->b = stm_tvar_new(0);
    n->flag = stm_tvar_new(0);
    n->deadline = deadline;
}

static void nu_free(struct nu *n)
{
    stm_tvar_free(n->a);
    stm_tvar_free(n->b);
    stm_tvar_free(n->flag);
}

static void *thr_nu(void *arg)
{
    struct nu *n = arg;
    atomic_store(&n->tid, tu_gettid());
    n->rc = stm_atomically(body_outer_wait, n);
    return NULL;
}

/* The deadline has come when the inner body retries: its writes are
 * undone, it returns -ETIMEDOUT and the outer body commits. */
START_TEST(test_until_nested_past)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct nu n;
    nu_init(&n, S);
    ck_assert_int_eq(stm_atomically(body_outer_wait, &n), 0);
    ck_assert_int_eq(n.inner_rc, -ETIMEDOUT);
    ck_assert_int_eq(ld(&n.attempts), 1);
    ck_assert_int_eq(stm_tvar_peek(n.a), 2);
    ck_assert_int_eq(stm_tvar_peek(n.b), 0); /* undone */
    ck_assert_int_eq(stm_clock_real(), 0);
    nu_free(&n);
}
END_TEST

/* Before the deadline the whole transaction waits, and the deadline
 * ends the wait: the next attempt times the inner part out. */
START_TEST(test_until_nested_wakes_at_deadline)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct nu n;
    nu_init(&n, S + STM_MSEC(50));
    pthread_t t = tu_run_thread(thr_nu, &n);
    wait_blocked(&n.attempts, 1, &n.tid);
    ck_assert_int_eq(stm_tvar_peek(n.a), 0); /* nothing committed */
    stm_clock_advance(STM_MSEC(49));
    ck_assert_int_eq(ld(&n.attempts), 1);
    stm_clock_advance(STM_MSEC(1));
    tu_join(t);
    ck_assert_int_eq(n.rc, 0);
    ck_assert_int_eq(ld(&n.attempts), 2);
    ck_assert_int_eq(n.inner_rc, -ETIMEDOUT);
    ck_assert_int_eq(n.final_now, S + STM_MSEC(50));
    ck_assert_int_eq(stm_tvar_peek(n.a), 2);
    ck_assert_int_eq(stm_tvar_peek(n.b), 0);
    ck_assert_int_eq(stm_clock_real(), 0);
    nu_free(&n);
}
END_TEST

/* A change of what the inner body read, before its deadline, wins. */
START_TEST(test_until_nested_change_first)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct nu n;
    nu_init(&n, S + STM_MSEC(50));
    pthread_t t = tu_run_thread(thr_nu, &n);
    wait_blocked(&n.attempts, 1, &n.tid);
    stm_clock_advance(STM_MSEC(20));
    ck_assert_int_eq(stm_tvar_poke(n.flag, 1), 0);
    tu_join(t);
    ck_assert_int_eq(n.rc, 0);
    ck_assert_int_eq(ld(&n.attempts), 2);
    ck_assert_int_eq(n.inner_rc, 5);
    ck_assert_int_eq(n.final_now, S + STM_MSEC(20));
    ck_assert_int_eq(stm_tvar_peek(n.b), 2);
    ck_assert_int_eq(stm_clock_real(), 0);
    nu_free(&n);
}
END_TEST

static int first_until(stm_tx *tx, void *arg)
{
    struct nu *n = arg;
    (void)tx;
    return stm_atomically_until(body_inner_wait, n, n->deadline);
}

static int second_plain(stm_tx *tx, void *arg)
{
    struct nu *n = arg;
    (void)tx;
    (void)n;
    return 7;
}

static int body_orelse_until(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, first_until, second_plain, arg);
}

/* Before its deadline a retry passes to an enclosing stm_or_else, which
 * takes its second branch; after it, the nested call returns -ETIMEDOUT
 * and the first branch goes on. */
START_TEST(test_until_nested_in_orelse)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct nu n;
    nu_init(&n, S + STM_MSEC(50));
    ck_assert_int_eq(stm_atomically(body_orelse_until, &n), 7);
    ck_assert_int_eq(stm_tvar_peek(n.b), 0);
    n.deadline = S;
    ck_assert_int_eq(stm_atomically(body_orelse_until, &n), -ETIMEDOUT);
    ck_assert_int_eq(stm_tvar_peek(n.b), 0);
    ck_assert_int_eq(stm_clock_real(), 0);
    nu_free(&n);
}
END_TEST

static int body_ro_until(stm_tx *tx, void *arg)
{
    struct nu *n = arg;
    (void)tx;
    return stm_atomically_until(body_inner_wait, n, S);
}

/* In a declared read-only body a nested call with a deadline falls back
 * to a normal transaction and works the same. */
START_TEST(test_until_nested_ro)
{
    ck_assert_int_eq(stm_clock_virtual(S), 0);
    struct nu n;
    nu_init(&n, S);
    ck_assert_int_eq(stm_atomically_ro(body_ro_until, &n), -ETIMEDOUT);
    ck_assert_int_eq(stm_tvar_peek(n.b), 0);
    ck_assert_int_eq(stm_clock_real(), 0);
    nu_free(&n);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("txtime");
    TCase *tc = tcase_create("current");
    tcase_add_test(tc, test_current);
    tcase_add_test(tc, test_current_ro);
    suite_add_tcase(s, tc);
    tc = tcase_create("start");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_start_every_attempt);
    tcase_add_test(tc, test_start_asked_late);
    tcase_add_test(tc, test_start_until);
    tcase_add_test(tc, test_start_per_call);
    tcase_add_test(tc, test_start_not_kept);
    suite_add_tcase(s, tc);
    tc = tcase_create("until_nested");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_until_nested_past);
    tcase_add_test(tc, test_until_nested_wakes_at_deadline);
    tcase_add_test(tc, test_until_nested_change_first);
    tcase_add_test(tc, test_until_nested_in_orelse);
    tcase_add_test(tc, test_until_nested_ro);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(make_suite)
