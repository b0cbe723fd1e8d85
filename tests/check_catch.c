/*
 * check_catch.c - stm_catch: a part of a transaction that stm_abort()
 * undoes on its own, while stm_retry() passes it by.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "misuse.h"
#include "testutil.h"

static stm_tvar *a, *b, *c;

static void setup(void)
{
    a = stm_tvar_new(1);
    b = stm_tvar_new(2);
    c = stm_tvar_new(3);
    ck_assert(a && b && c);
}

static void teardown(void)
{
    stm_tvar_free(a);
    stm_tvar_free(b);
    stm_tvar_free(c);
}

static atomic_int after_runs, abort_runs;

static void count_after(void *arg)
{
    (void)arg;
    atomic_fetch_add(&after_runs, 1);
}

static void count_abort(void *arg)
{
    (void)arg;
    atomic_fetch_add(&abort_runs, 1);
}

/* The part: writes a (already written before it) and b (new), registers
 * hooks, allocates, then aborts with 77 if asked to. */
static int part(stm_tx *tx, void *arg)
{
    int fail = *(int *)arg;
    stm_write(tx, a, 100);
    stm_write(tx, b, 200);
    stm_after_commit(tx, count_after, NULL);
    stm_on_abort(tx, count_abort, NULL);
    void *p = stm_alloc(tx, 64); /* freed with the part (ASan: no leak) */
    memset(p, 0, 64);
    if (fail)
        stm_abort(tx, 77);
    return 5;
}

struct outer {
    int fail;
    int rc;
    bool aborted;
};

static int body_with_catch(stm_tx *tx, void *arg)
{
    struct outer *o = arg;
    stm_write(tx, a, 10); /* before the part */
    o->rc = stm_catch(tx, part, &o->fail, &o->aborted);
    stm_write(tx, c, stm_read(tx, a) + stm_read(tx, b)); /* after it */
    return 0;
}

START_TEST(test_part_returns)
{
    struct outer o = {.fail = 0, .aborted = true}; /* (must be set to false) */
    atomic_store(&after_runs, 0);
    atomic_store(&abort_runs, 0);
    ck_assert_int_eq(stm_atomically(body_with_catch, &o), 0);
    ck_assert_int_eq(o.rc, 5);
    ck_assert(!o.aborted);
    ck_assert_int_eq(stm_tvar_peek(a), 100);
    ck_assert_int_eq(stm_tvar_peek(b), 200);
    ck_assert_int_eq(stm_tvar_peek(c), 300);
    ck_assert_int_eq(atomic_load(&after_runs), 1);
    ck_assert_int_eq(atomic_load(&abort_runs), 0);
}
END_TEST

START_TEST(test_part_aborts_alone)
{
    struct outer o = {.fail = 1, .aborted = false};
    atomic_store(&after_runs, 0);
    atomic_store(&abort_runs, 0);
    ck_assert_int_eq(stm_atomically(body_with_catch, &o), 0);
    ck_assert_int_eq(o.rc, 77);
    ck_assert(o.aborted);
    /* the part's writes are gone, a's earlier value is back, the rest of
     * the transaction committed */
    ck_assert_int_eq(stm_tvar_peek(a), 10);
    ck_assert_int_eq(stm_tvar_peek(b), 2);
    ck_assert_int_eq(stm_tvar_peek(c), 12);
    ck_assert_int_eq(atomic_load(&after_runs), 0); /* its after-commit hook went */
    ck_assert_int_eq(atomic_load(&abort_runs), 1); /* its on-abort hook ran */
}
END_TEST

/* An abort after the part returned ends the whole transaction. */
static int body_abort_after(stm_tx *tx, void *arg)
{
    struct outer *o = arg;
    o->rc = stm_catch(tx, part, &o->fail, &o->aborted);
    stm_abort(tx, 9);
}

START_TEST(test_abort_outside_the_part)
{
    struct outer o = {.fail = 0};
    ck_assert_int_eq(stm_atomically(body_abort_after, &o), 9);
    ck_assert_int_eq(stm_tvar_peek(a), 1);
    ck_assert_int_eq(stm_tvar_peek(b), 2);
}
END_TEST

/* ---- nesting ------------------------------------------------------------- */

static int inner_abort(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, b, 222);
    stm_abort(tx, 3);
}

static int outer_part(stm_tx *tx, void *arg)
{
    int *inner_rc = arg;
    bool ab;
    stm_write(tx, a, 111);
    *inner_rc = stm_catch(tx, inner_abort, NULL, &ab);
    ck_assert(ab);
    stm_write(tx, c, 333);
    return 4;
}

static int body_nested(stm_tx *tx, void *arg)
{
    bool ab;
    int r = stm_catch(tx, outer_part, arg, &ab);
    ck_assert(!ab);
    return r;
}

START_TEST(test_nested_catch)
{
    int inner_rc = 0;
    ck_assert_int_eq(stm_atomically(body_nested, &inner_rc), 4);
    ck_assert_int_eq(inner_rc, 3);
    ck_assert_int_eq(stm_tvar_peek(a), 111);
    ck_assert_int_eq(stm_tvar_peek(b), 2);
    ck_assert_int_eq(stm_tvar_peek(c), 333);
}
END_TEST

/* An abort inside stm_or_else inside stm_catch goes to the catch, undoing
 * the or_else branch's writes too. */
static int orelse_first_aborts(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, c, 999);
    stm_abort(tx, 6);
}

static int orelse_second(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    ck_abort_msg("an abort is not a retry: the second branch must not run");
    return 0;
}

static int part_with_orelse(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, b, 50);
    return stm_or_else(tx, orelse_first_aborts, orelse_second, NULL);
}

static int body_catch_orelse(stm_tx *tx, void *arg)
{
    bool *ab = arg;
    return stm_catch(tx, part_with_orelse, NULL, ab);
}

START_TEST(test_abort_passes_orelse)
{
    bool ab = false;
    ck_assert_int_eq(stm_atomically(body_catch_orelse, &ab), 6);
    ck_assert(ab);
    ck_assert_int_eq(stm_tvar_peek(b), 2);
    ck_assert_int_eq(stm_tvar_peek(c), 3);
}
END_TEST

/* A retry inside stm_catch goes past it, to the enclosing stm_or_else. */
static int part_retries(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, a, 555);
    stm_retry(tx);
}

static int first_with_catch(stm_tx *tx, void *arg)
{
    (void)arg;
    bool ab = false;
    stm_catch(tx, part_retries, NULL, &ab);
    ck_abort_msg("stm_catch returned after a retry");
    return 0;
}

static int second_writes(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, b, 20);
    return 8;
}

static int body_orelse_catch_retry(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, first_with_catch, second_writes, arg);
}

START_TEST(test_retry_passes_catch)
{
    ck_assert_int_eq(stm_atomically(body_orelse_catch_retry, NULL), 8);
    ck_assert_int_eq(stm_tvar_peek(a), 1);
    ck_assert_int_eq(stm_tvar_peek(b), 20);
}
END_TEST

/* With no stm_or_else around it, a retry in stm_catch retries the whole
 * transaction: it waits for a change of what it read. */
struct waiting {
    atomic_int runs;
    pid_t tid;
};

static int part_wait_for_a(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, a) == 1)
        stm_retry(tx);
    return (int)stm_read(tx, a);
}

static int body_retry_whole(stm_tx *tx, void *arg)
{
    struct waiting *w = arg;
    atomic_fetch_add(&w->runs, 1);
    bool ab;
    return stm_catch(tx, part_wait_for_a, NULL, &ab);
}

static void *retry_thread(void *arg)
{
    struct waiting *w = arg;
    w->tid = tu_gettid();
    return (void *)(intptr_t)stm_atomically(body_retry_whole, w);
}

START_TEST(test_retry_in_catch_retries_transaction)
{
    struct waiting w = {0};
    pthread_t t = tu_run_thread(retry_thread, &w);
    ck_assert(tu_wait_atleast(&w.runs, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep(w.tid, TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_tvar_poke(a, 42), 0);
    ck_assert_int_eq((intptr_t)tu_join(t), 42);
    ck_assert_int_ge(atomic_load(&w.runs), 2);
}
END_TEST

#ifndef STM_TEST_EMBEDDED /* (about stm_tvar_new's heap TVars) */
/* TVars made by the part go with it. */
static int part_makes_tvar(stm_tx *tx, void *arg)
{
    stm_tvar **made = arg;
    *made = stm_tvar_new(7);
    stm_write(tx, a, (intptr_t)stm_read(tx, *made));
    stm_abort(tx, 1);
}

static int body_makes(stm_tx *tx, void *arg)
{
    bool ab;
    return stm_catch(tx, part_makes_tvar, arg, &ab);
}

START_TEST(test_part_allocations_freed)
{
    stm_tvar *made = NULL;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(stm_atomically(body_makes, &made), 1); /* ASan: no leak */
    ck_assert_ptr_nonnull(made);
    ck_assert_int_eq(stm_tvar_peek(a), 1);
}
END_TEST
#endif

/* ---- misuse --------------------------------------------------------------- */

static int body_catch_null_fn(stm_tx *tx, void *arg)
{
    bool ab;
    (void)arg;
    return stm_catch(tx, NULL, NULL, &ab);
}

START_TEST(test_misuse_null_body)
{
    expect_abort("stm_catch");
    stm_atomically(body_catch_null_fn, NULL);
}
END_TEST

static int body_catch_null_out(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_catch(tx, part, &(int){0}, NULL);
}

START_TEST(test_misuse_null_aborted)
{
    expect_abort("stm_catch");
    stm_atomically(body_catch_null_out, NULL);
}
END_TEST

START_TEST(test_misuse_outside_tx)
{
    bool ab;
    expect_abort("stm_catch");
    stm_catch(NULL, part, &(int){0}, &ab);
}
END_TEST

static Suite *catch_suite(void)
{
    Suite *s = suite_create("catch");
    TCase *tc = tcase_create("catch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_part_returns);
    tcase_add_test(tc, test_part_aborts_alone);
    tcase_add_test(tc, test_abort_outside_the_part);
    tcase_add_test(tc, test_nested_catch);
    tcase_add_test(tc, test_abort_passes_orelse);
    tcase_add_test(tc, test_retry_passes_catch);
    tcase_add_test(tc, test_retry_in_catch_retries_transaction);
#ifndef STM_TEST_EMBEDDED
    tcase_add_test(tc, test_part_allocations_freed);
#endif
    tcase_add_test_raise_signal(tc, test_misuse_null_body, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_aborted, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_outside_tx, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(catch_suite)
