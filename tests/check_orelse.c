/*
 * check_orelse.c - stm_or_else: choice, partial rollback, hooks and
 * allocations of discarded branches, nesting.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

enum { NV = 200 };

struct oe {
    stm_tvar *x, *y, *z;
    stm_tvar *many[NV];
    int first_runs, second_runs, outer_runs;
    int inner_first_runs, inner_second_runs;
    intptr_t first_saw_x; /* x as first saw it after its own write */
    intptr_t second_saw_x, second_saw_y, second_saw_z;
    intptr_t after_saw_y, after_saw_x;
    int many_bad;
    int ret;
    int code;
    /* hooks */
    int log[16];
    int nlog;
    int aborts_seen_by_second;
    void *block;
    atomic_int attempts;
};

static void oe_init(struct oe *o)
{
    memset(o, 0, sizeof *o);
    o->x = stm_tvar_new(1);
    o->y = stm_tvar_new(2);
    o->z = stm_tvar_new(3);
    ck_assert_ptr_nonnull(o->x);
    ck_assert_ptr_nonnull(o->y);
    ck_assert_ptr_nonnull(o->z);
    for (int i = 0; i < NV; i++) {
        o->many[i] = stm_tvar_new(i);
        ck_assert_ptr_nonnull(o->many[i]);
    }
}

static void oe_fini(struct oe *o)
{
    stm_tvar_free(o->x);
    stm_tvar_free(o->y);
    stm_tvar_free(o->z);
    for (int i = 0; i < NV; i++)
        stm_tvar_free(o->many[i]);
}

/* ---- first succeeds --------------------------------------------------- */

static int first_ok(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->y, 20);
    return 111;
}

static int second_ok(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    stm_write(tx, o->z, 30);
    return 222;
}

static int body_or_else(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->outer_runs++;
    return stm_or_else(tx, first_ok, second_ok, o);
}

START_TEST(test_first_succeeds)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_or_else, &o), 111);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.second_runs, 0);
    ck_assert_int_eq(stm_tvar_peek(o.y), 20);
    ck_assert_int_eq(stm_tvar_peek(o.z), 3);
    oe_fini(&o);
}
END_TEST

/* ---- first retries: partial rollback ---------------------------------- */

static int first_writes_then_retries(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->x, 1000); /* overwrites the outer's write */
    stm_write(tx, o->y, 2000); /* a var the outer did not write */
    o->first_saw_x = stm_read(tx, o->x);
    for (int i = 0; i < NV; i++) /* grow the write set in the branch */
        stm_write(tx, o->many[i], -1);
    stm_retry(tx);
}

static int second_reads(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    o->second_saw_x = stm_read(tx, o->x);
    o->second_saw_y = stm_read(tx, o->y);
    o->many_bad = 0;
    for (int i = 0; i < NV; i++)
        if (stm_read(tx, o->many[i]) != i)
            o->many_bad++;
    stm_write(tx, o->z, 33);
    return 222;
}

static int body_partial_rollback(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->outer_runs++;
    stm_write(tx, o->x, 10);
    o->ret = stm_or_else(tx, first_writes_then_retries, second_reads, o);
    o->after_saw_x = stm_read(tx, o->x);
    o->after_saw_y = stm_read(tx, o->y);
    /* write a var the discarded branch wrote: only this write must land */
    stm_write(tx, o->y, o->after_saw_y + 5);
    return 7;
}

START_TEST(test_first_retries_rolls_back)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_partial_rollback, &o), 7);
    ck_assert_int_eq(o.outer_runs, 1);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.second_runs, 1);
    ck_assert_int_eq(o.ret, 222);
    ck_assert_int_eq(o.first_saw_x, 1000);
    ck_assert_int_eq(o.second_saw_x, 10); /* outer's write restored */
    ck_assert_int_eq(o.second_saw_y, 2);  /* committed value again */
    ck_assert_int_eq(o.many_bad, 0);
    ck_assert_int_eq(o.after_saw_x, 10);
    ck_assert_int_eq(o.after_saw_y, 2);
    ck_assert_int_eq(stm_tvar_peek(o.x), 10);
    ck_assert_int_eq(stm_tvar_peek(o.y), 7);
    ck_assert_int_eq(stm_tvar_peek(o.z), 33);
    for (int i = 0; i < NV; i++)
        ck_assert_int_eq(stm_tvar_peek(o.many[i]), i);
    oe_fini(&o);
}
END_TEST

/* ---- both retry, nothing read ----------------------------------------- */

static int retry_write_only(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->y, 99);
    stm_retry(tx);
}

static int retry_write_only2(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    stm_write(tx, o->z, 99);
    stm_retry(tx);
}

static int body_both_retry(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->outer_runs++;
    stm_write(tx, o->x, 50);
    stm_or_else(tx, retry_write_only, retry_write_only2, o);
    o->ret = 1; /* not reached */
    return 0;
}

START_TEST(test_both_retry_deadlk)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_both_retry, &o), -EDEADLK);
    ck_assert_int_eq(o.outer_runs, 1);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.second_runs, 1);
    ck_assert_int_eq(o.ret, 0);
    ck_assert_int_eq(stm_tvar_peek(o.x), 1);
    ck_assert_int_eq(stm_tvar_peek(o.y), 2);
    ck_assert_int_eq(stm_tvar_peek(o.z), 3);
    oe_fini(&o);
}
END_TEST

/* ---- nested or_else --------------------------------------------------- */

static int inner_first_retry(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->inner_first_runs++;
    stm_write(tx, o->x, 4444);
    stm_retry(tx);
}

static int inner_second_ok(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->inner_second_runs++;
    o->second_saw_x = stm_read(tx, o->x);
    stm_write(tx, o->y, 55);
    return 555;
}

static int inner_second_retry(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->inner_second_runs++;
    stm_write(tx, o->y, 5555);
    stm_retry(tx);
}

static int outer_first_nested_ok(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->z, 300);
    return stm_or_else(tx, inner_first_retry, inner_second_ok, o) + 1;
}

static int outer_first_nested_retry(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->z, 300);
    return stm_or_else(tx, inner_first_retry, inner_second_retry, o) + 1;
}

static int outer_second(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    o->second_saw_x = stm_read(tx, o->x);
    o->second_saw_y = stm_read(tx, o->y);
    o->second_saw_z = stm_read(tx, o->z);
    return 666;
}

static int body_nested_ok(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, outer_first_nested_ok, outer_second, arg);
}

static int body_nested_retry(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, outer_first_nested_retry, outer_second, arg);
}

START_TEST(test_nested_inner_second_wins)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_nested_ok, &o), 556);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.inner_first_runs, 1);
    ck_assert_int_eq(o.inner_second_runs, 1);
    ck_assert_int_eq(o.second_runs, 0);
    ck_assert_int_eq(o.second_saw_x, 1); /* inner first's write discarded */
    ck_assert_int_eq(stm_tvar_peek(o.x), 1);
    ck_assert_int_eq(stm_tvar_peek(o.y), 55);
    ck_assert_int_eq(stm_tvar_peek(o.z), 300);
    oe_fini(&o);
}
END_TEST

START_TEST(test_nested_both_inner_retry)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_nested_retry, &o), 666);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.inner_first_runs, 1);
    ck_assert_int_eq(o.inner_second_runs, 1);
    ck_assert_int_eq(o.second_runs, 1);
    /* everything the outer first branch (and its nested branches) wrote is gone */
    ck_assert_int_eq(o.second_saw_x, 1);
    ck_assert_int_eq(o.second_saw_y, 2);
    ck_assert_int_eq(o.second_saw_z, 3);
    ck_assert_int_eq(stm_tvar_peek(o.x), 1);
    ck_assert_int_eq(stm_tvar_peek(o.y), 2);
    ck_assert_int_eq(stm_tvar_peek(o.z), 3);
    oe_fini(&o);
}
END_TEST

/* ---- hooks and allocations in a discarded branch ---------------------- */

struct hook_ref {
    struct oe *o;
    int id;
};

static void rec_hook(void *p)
{
    struct hook_ref *h = p;
    if (h->o->nlog < 16)
        h->o->log[h->o->nlog++] = h->id;
}

static struct hook_ref H[8];

static int first_hooks_alloc_retry(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_after_commit(tx, rec_hook, &H[1]); /* dropped */
    stm_on_abort(tx, rec_hook, &H[2]);     /* runs at discard */
    o->block = stm_alloc(tx, 4096);        /* freed at discard */
    memset(o->block, 0xab, 4096);
    stm_write_ptr(tx, o->y, o->block);
    stm_retry(tx);
}

static int second_hooks(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    o->aborts_seen_by_second = o->nlog;
    if (o->nlog > 0)
        o->code = o->log[0];
    o->second_saw_y = stm_read(tx, o->y);
    stm_after_commit(tx, rec_hook, &H[3]);
    stm_on_abort(tx, rec_hook, &H[4]); /* dropped at commit */
    return 8;
}

static int body_hooks(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    stm_after_commit(tx, rec_hook, &H[0]);
    stm_on_abort(tx, rec_hook, &H[5]); /* the outer attempt commits: dropped */
    int r = stm_or_else(tx, first_hooks_alloc_retry, second_hooks, o);
    stm_after_commit(tx, rec_hook, &H[6]);
    return r;
}

START_TEST(test_discarded_branch_hooks)
{
    struct oe o;
    oe_init(&o);
    for (int i = 0; i < 8; i++)
        H[i] = (struct hook_ref){&o, i};
    ck_assert_int_eq(stm_atomically(body_hooks, &o), 8);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.second_runs, 1);
    /* the branch's on_abort ran when the branch was discarded */
    ck_assert_int_eq(o.aborts_seen_by_second, 1);
    ck_assert_int_eq(o.code, 2);
    ck_assert_int_eq(o.second_saw_y, 2);
    ck_assert_int_eq(stm_tvar_peek(o.y), 2);
    /* then the committed hooks, in registration order; 1, 4, 5 never */
    ck_assert_int_eq(o.nlog, 4);
    ck_assert_int_eq(o.log[0], 2);
    ck_assert_int_eq(o.log[1], 0);
    ck_assert_int_eq(o.log[2], 3);
    ck_assert_int_eq(o.log[3], 6);
    oe_fini(&o);
}
END_TEST

/* ---- stm_abort inside a branch acts on the whole transaction ---------- */

static int first_aborts(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    stm_write(tx, o->y, 77);
    stm_abort(tx, 42);
}

static int body_branch_abort(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->outer_runs++;
    stm_write(tx, o->x, 9);
    stm_on_abort(tx, rec_hook, &H[0]);
    o->ret = stm_or_else(tx, first_aborts, second_ok, o);
    o->ret = -1000; /* not reached */
    return 0;
}

START_TEST(test_abort_in_branch)
{
    struct oe o;
    oe_init(&o);
    for (int i = 0; i < 8; i++)
        H[i] = (struct hook_ref){&o, i};
    ck_assert_int_eq(stm_atomically(body_branch_abort, &o), 42);
    ck_assert_int_eq(o.outer_runs, 1);
    ck_assert_int_eq(o.first_runs, 1);
    ck_assert_int_eq(o.second_runs, 0);
    ck_assert_int_eq(o.ret, 0);
    ck_assert_int_eq(o.nlog, 1);
    ck_assert_int_eq(o.log[0], 0);
    ck_assert_int_eq(stm_tvar_peek(o.x), 1);
    ck_assert_int_eq(stm_tvar_peek(o.y), 2);
    oe_fini(&o);
}
END_TEST

/* ---- the whole retries, waiting on the first branch's reads ----------- */

static int first_wait_x(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->first_runs++;
    intptr_t v = stm_read(tx, o->x);
    if (v == 1)
        stm_retry(tx); /* the decision depended on x */
    stm_write(tx, o->z, v * 10);
    return (int)v;
}

static int second_retry_counting(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->second_runs++;
    atomic_fetch_add(&o->attempts, 1);
    stm_retry(tx);
}

static int body_union_wait(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    o->outer_runs++;
    return stm_or_else(tx, first_wait_x, second_retry_counting, o);
}

struct poker {
    stm_tvar *v;
    atomic_int *counter;
    bool saw;
    int rc;
};

static void *poker_thread(void *p)
{
    struct poker *pk = p;
    pk->saw = tu_wait_atleast(pk->counter, 1, TU_HANDSHAKE_MS);
    pk->rc = stm_tvar_poke(pk->v, 4);
    return NULL;
}

START_TEST(test_whole_retry_waits_on_first_reads)
{
    struct oe o;
    oe_init(&o);
    struct poker pk = {.v = o.x, .counter = &o.attempts};
    pthread_t t = tu_run_thread(poker_thread, &pk);
    int r = stm_atomically(body_union_wait, &o);
    tu_join(t);
    ck_assert(pk.saw);
    ck_assert_int_eq(pk.rc, 0);
    ck_assert_int_eq(r, 4);
    int attempts = atomic_load(&o.attempts);
    ck_assert_int_ge(attempts, 1);
    ck_assert_int_eq(o.outer_runs, attempts + 1);
    ck_assert_int_eq(o.first_runs, attempts + 1);
    ck_assert_int_eq(o.second_runs, attempts);
    ck_assert_int_eq(stm_tvar_peek(o.z), 40);
    oe_fini(&o);
}
END_TEST

/* ---- or_else with no retry anywhere, used from a nested atomically ---- */

static int body_nested_atomically_or_else(stm_tx *tx, void *arg)
{
    (void)tx;
    return stm_atomically(body_or_else, arg) + 1;
}

START_TEST(test_or_else_in_nested_atomically)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_nested_atomically_or_else, &o), 112);
    ck_assert_int_eq(o.second_runs, 0);
    ck_assert_int_eq(stm_tvar_peek(o.y), 20);
    oe_fini(&o);
}
END_TEST

/* ---- second branch wins after several sequential or_else calls -------- */

static int body_sequential(stm_tx *tx, void *arg)
{
    struct oe *o = arg;
    int sum = 0;
    for (int i = 0; i < 50; i++)
        sum += stm_or_else(tx, first_writes_then_retries, second_reads, o);
    return sum / 50;
}

START_TEST(test_sequential_or_else)
{
    struct oe o;
    oe_init(&o);
    ck_assert_int_eq(stm_atomically(body_sequential, &o), 222);
    ck_assert_int_eq(o.first_runs, 50);
    ck_assert_int_eq(o.second_runs, 50);
    ck_assert_int_eq(o.many_bad, 0);
    ck_assert_int_eq(o.second_saw_x, 1);
    ck_assert_int_eq(stm_tvar_peek(o.x), 1);
    ck_assert_int_eq(stm_tvar_peek(o.y), 2);
    ck_assert_int_eq(stm_tvar_peek(o.z), 33);
    oe_fini(&o);
}
END_TEST

static Suite *orelse_suite(void)
{
    Suite *s = suite_create("orelse");
    TCase *tc = tcase_create("choice");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_first_succeeds);
    tcase_add_test(tc, test_first_retries_rolls_back);
    tcase_add_test(tc, test_both_retry_deadlk);
    tcase_add_test(tc, test_sequential_or_else);
    tcase_add_test(tc, test_or_else_in_nested_atomically);
    suite_add_tcase(s, tc);

    tc = tcase_create("nested");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_nested_inner_second_wins);
    tcase_add_test(tc, test_nested_both_inner_retry);
    suite_add_tcase(s, tc);

    tc = tcase_create("discard");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_discarded_branch_hooks);
    tcase_add_test(tc, test_abort_in_branch);
    tcase_add_test(tc, test_whole_retry_waits_on_first_reads);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(orelse_suite)
