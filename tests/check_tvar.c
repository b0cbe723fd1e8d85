/*
 * check_tvar.c - TVar lifecycle, names, peek and poke.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stm.h>

#include "stm-internal.h"

#include "testutil.h"

START_TEST(test_new_peek)
{
    static const intptr_t vals[] = {0, 1, -1, 42, INTPTR_MAX, INTPTR_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        stm_tvar *v = stm_tvar_new(vals[i]);
        ck_assert_ptr_nonnull(v);
        ck_assert(stm_tvar_peek(v) == vals[i]);
        stm_tvar_free(v);
    }
}
END_TEST

START_TEST(test_new_distinct)
{
    stm_tvar *a = stm_tvar_new(1);
    stm_tvar *b = stm_tvar_new(2);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert_int_eq(stm_tvar_peek(a), 1);
    ck_assert_int_eq(stm_tvar_peek(b), 2);
    stm_tvar_free(a);
    stm_tvar_free(b);
}
END_TEST

START_TEST(test_poke)
{
    stm_tvar *v = stm_tvar_new(5);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_tvar_poke(v, 6), 0);
    ck_assert_int_eq(stm_tvar_peek(v), 6);
    ck_assert_int_eq(stm_tvar_poke(v, INTPTR_MIN), 0);
    ck_assert(stm_tvar_peek(v) == INTPTR_MIN);
    ck_assert_int_eq(stm_tvar_poke(v, -3), 0);
    ck_assert_int_eq(stm_tvar_peek(v), -3);
    stm_tvar_free(v);
}
END_TEST

static int body_read(stm_tx *tx, void *arg)
{
    return (int)stm_read(tx, (stm_tvar *)arg);
}

START_TEST(test_poke_visible_to_tx)
{
    stm_tvar *v = stm_tvar_new(1);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_atomically(body_read, v), 1);
    ck_assert_int_eq(stm_tvar_poke(v, 77), 0);
    ck_assert_int_eq(stm_atomically(body_read, v), 77);
    stm_tvar_free(v);
}
END_TEST

START_TEST(test_free_null)
{
    stm_tvar_free(NULL);
    /* still usable afterwards */
    stm_tvar *v = stm_tvar_new(3);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_tvar_peek(v), 3);
    stm_tvar_free(v);
}
END_TEST

START_TEST(test_free_reclaimed)
{
    enum { N = 64 };
    stm_tvar *vs[N];
    for (int i = 0; i < N; i++) {
        vs[i] = stm_tvar_new(i);
        ck_assert_ptr_nonnull(vs[i]);
        ck_assert_int_eq(stm_tvar_set_name(vs[i], "doomed"), 0);
    }
    ck_assert_int_eq(stm_atomically(body_read, vs[0]), 0);
    struct stm_stats before, after;
    stm_stats_get(&before);
    for (int i = 0; i < N; i++)
        stm_tvar_free(vs[i]);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    stm_stats_get(&after);
    ck_assert_uint_ge(after.reclaimed - before.reclaimed, N);
}
END_TEST

/* ---- names ---------------------------------------------------------- */

START_TEST(test_name_default_null)
{
    stm_tvar *v = stm_tvar_new(0);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(stm_tvar_name(v));
    stm_tvar_free(v);
}
END_TEST

START_TEST(test_name_copied)
{
    stm_tvar *v = stm_tvar_new(0);
    ck_assert_ptr_nonnull(v);
    char buf[32];
    strcpy(buf, "balance");
    ck_assert_int_eq(stm_tvar_set_name(v, buf), 0);
    const char *n = stm_tvar_name(v);
    ck_assert_ptr_nonnull(n);
    ck_assert_ptr_ne(n, buf);
    ck_assert_str_eq(n, "balance");
    strcpy(buf, "XXXXXXX");
    ck_assert_str_eq(stm_tvar_name(v), "balance");
    stm_tvar_free(v);
}
END_TEST

START_TEST(test_name_replace_and_remove)
{
    stm_tvar *v = stm_tvar_new(0);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_tvar_set_name(v, "first"), 0);
    ck_assert_str_eq(stm_tvar_name(v), "first");
    ck_assert_int_eq(stm_tvar_set_name(v, "a much longer second name"), 0);
    ck_assert_str_eq(stm_tvar_name(v), "a much longer second name");
    ck_assert_int_eq(stm_tvar_set_name(v, ""), 0);
    ck_assert_ptr_nonnull(stm_tvar_name(v));
    ck_assert_str_eq(stm_tvar_name(v), "");
    ck_assert_int_eq(stm_tvar_set_name(v, NULL), 0);
    ck_assert_ptr_null(stm_tvar_name(v));
    /* removing twice is fine too */
    ck_assert_int_eq(stm_tvar_set_name(v, NULL), 0);
    ck_assert_ptr_null(stm_tvar_name(v));
    ck_assert_int_eq(stm_tvar_set_name(v, "again"), 0);
    ck_assert_str_eq(stm_tvar_name(v), "again");
    /* the name does not disturb the value */
    ck_assert_int_eq(stm_tvar_peek(v), 0);
    stm_tvar_free(v); /* frees the name too (ASan leak check) */
}
END_TEST

START_TEST(test_name_per_var)
{
    stm_tvar *a = stm_tvar_new(0), *b = stm_tvar_new(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(stm_tvar_set_name(a, "a"), 0);
    ck_assert_ptr_null(stm_tvar_name(b));
    ck_assert_int_eq(stm_tvar_set_name(b, "b"), 0);
    ck_assert_str_eq(stm_tvar_name(a), "a");
    ck_assert_str_eq(stm_tvar_name(b), "b");
    stm_tvar_free(a);
    stm_tvar_free(b);
}
END_TEST

START_TEST(test_name_null_var)
{
    ck_assert_int_eq(stm_tvar_set_name(NULL, "x"), -EINVAL);
    ck_assert_int_eq(stm_tvar_set_name(NULL, NULL), -EINVAL);
}
END_TEST

/* ---- poke inside a transaction joins it ----------------------------- */

struct poke_arg {
    stm_tvar *v;
    intptr_t seen_read;
    intptr_t seen_peek;
    int poke_rc;
    int abort;
};

static int body_poke(stm_tx *tx, void *arg)
{
    struct poke_arg *a = arg;
    a->poke_rc = stm_tvar_poke(a->v, 99);
    a->seen_read = stm_read(tx, a->v);  /* the joined write */
    a->seen_peek = stm_tvar_peek(a->v); /* committed value: not yet 99 */
    if (a->abort)
        stm_abort(tx, 5);
    return 1;
}

START_TEST(test_poke_in_tx_aborted)
{
    struct poke_arg a = {.v = stm_tvar_new(10), .abort = 1};
    ck_assert_ptr_nonnull(a.v);
    ck_assert_int_eq(stm_atomically(body_poke, &a), 5);
    ck_assert_int_eq(a.poke_rc, 0);
    ck_assert_int_eq(a.seen_read, 99);
    ck_assert_int_eq(a.seen_peek, 10);
    ck_assert_int_eq(stm_tvar_peek(a.v), 10);
    stm_tvar_free(a.v);
}
END_TEST

START_TEST(test_poke_in_tx_committed)
{
    struct poke_arg a = {.v = stm_tvar_new(10), .abort = 0};
    ck_assert_ptr_nonnull(a.v);
    ck_assert_int_eq(stm_atomically(body_poke, &a), 1);
    ck_assert_int_eq(a.poke_rc, 0);
    ck_assert_int_eq(a.seen_read, 99);
    ck_assert_int_eq(a.seen_peek, 10);
    ck_assert_int_eq(stm_tvar_peek(a.v), 99);
    stm_tvar_free(a.v);
}
END_TEST

/* ---- a TVar made inside a body lives only if the attempt commits ----- */

struct new_arg {
    stm_tvar *made;
    int abort;
};

static int body_new(stm_tx *tx, void *arg)
{
    struct new_arg *a = arg;
    a->made = stm_tvar_new(123);
    ck_assert_ptr_nonnull(a->made); /* (no NULL inside a body: -ENOMEM instead) */
    ck_assert_int_eq(stm_read(tx, a->made), 123);
    stm_write(tx, a->made, 456);
    if (a->abort)
        stm_abort(tx, 9);
    return 0;
}

START_TEST(test_new_inside_committed_tx)
{
    struct new_arg a = {NULL, 0};
    ck_assert_int_eq(stm_atomically(body_new, &a), 0);
    ck_assert_ptr_nonnull(a.made);
    ck_assert_int_eq(stm_tvar_peek(a.made), 456);
    ck_assert_int_eq(stm_tvar_poke(a.made, 7), 0);
    ck_assert_int_eq(stm_atomically(body_read, a.made), 7);
    stm_tvar_free(a.made);
}
END_TEST

#ifndef STM_TEST_EMBEDDED
START_TEST(test_new_inside_aborted_tx_is_freed)
{
    /* The attempt's TVars go back: thousands of aborted bodies leave the
     * heap as it was (under ASan, whose allocator mallinfo2 does not see,
     * its leak check at exit does the same job). */
    struct new_arg a = {NULL, 1};
    ck_assert_int_eq(stm_atomically(body_new, &a), 9); /* warm up the logs */
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 4000; i++)
        ck_assert_int_eq(stm_atomically(body_new, &a), 9);
    size_t after = mallinfo2().uordblks;
    ck_assert_msg(after < before + 4000 * sizeof(stm_tvar) / 4,
                  "heap grew by %zu bytes over 4000 aborted stm_tvar_new()s", after - before);
}
END_TEST
#endif

static Suite *tvar_suite(void)
{
    Suite *s = suite_create("tvar");
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_new_peek);
    tcase_add_test(tc, test_new_distinct);
    tcase_add_test(tc, test_poke);
    tcase_add_test(tc, test_poke_visible_to_tx);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_free_reclaimed);
    tcase_add_test(tc, test_new_inside_committed_tx);
#ifndef STM_TEST_EMBEDDED /* (about heap TVars only) */
    tcase_add_test(tc, test_new_inside_aborted_tx_is_freed);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_name_default_null);
    tcase_add_test(tc, test_name_copied);
    tcase_add_test(tc, test_name_replace_and_remove);
    tcase_add_test(tc, test_name_per_var);
    tcase_add_test(tc, test_name_null_var);
    suite_add_tcase(s, tc);

    tc = tcase_create("poke_joins");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_poke_in_tx_aborted);
    tcase_add_test(tc, test_poke_in_tx_committed);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(tvar_suite)
