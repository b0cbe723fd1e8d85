/*
 * check_hooks.c - stm_after_commit and stm_on_abort.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

enum { NLOG = 64 };

struct hk {
    stm_tvar *x, *y, *z;
    int log[NLOG];
    int nlog;
    intptr_t peek_in_hook;
    int hook_tx_rc;
    int runs;
    int abort_code;
    atomic_int attempts;
    int aborts_at_run_start[8];
};

struct ref {
    struct hk *h;
    int id;
};

static struct ref R[NLOG];

static void hk_init(struct hk *h)
{
    memset(h, 0, sizeof *h);
    h->x = stm_tvar_new(1);
    h->y = stm_tvar_new(2);
    h->z = stm_tvar_new(3);
    ck_assert_ptr_nonnull(h->x);
    ck_assert_ptr_nonnull(h->y);
    ck_assert_ptr_nonnull(h->z);
    for (int i = 0; i < NLOG; i++)
        R[i] = (struct ref){h, i};
}

static void hk_fini(struct hk *h)
{
    stm_tvar_free(h->x);
    stm_tvar_free(h->y);
    stm_tvar_free(h->z);
}

static void rec(void *p)
{
    struct ref *r = p;
    if (r->h->nlog < NLOG)
        r->h->log[r->h->nlog++] = r->id;
}

/* ---- after_commit ----------------------------------------------------- */

static int body_order(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    h->runs++;
    for (int i = 0; i < 20; i++)
        stm_after_commit(tx, rec, &R[i]);
    stm_write(tx, h->x, 10);
    return 0;
}

START_TEST(test_after_commit_order)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_order, &h), 0);
    ck_assert_int_eq(h.runs, 1);
    ck_assert_int_eq(h.nlog, 20);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(h.log[i], i);
    /* hooks are per transaction: the next one starts with none */
    h.nlog = 0;
    ck_assert_int_eq(stm_atomically(body_order, &h), 0);
    ck_assert_int_eq(h.nlog, 20);
    hk_fini(&h);
}
END_TEST

static int hook_tx_body(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    intptr_t v = stm_read(tx, h->x);
    stm_write(tx, h->y, v + 1);
    return (int)v;
}

static void hook_after(void *p)
{
    struct hk *h = p;
    h->peek_in_hook = stm_tvar_peek(h->x);
    /* a hook may start a new (top-level) transaction */
    h->hook_tx_rc = stm_atomically(hook_tx_body, h);
}

static int body_after(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    h->runs++;
    stm_write(tx, h->x, 42);
    stm_after_commit(tx, hook_after, h);
    stm_write(tx, h->z, 43);
    return 5;
}

START_TEST(test_after_commit_sees_commit)
{
    struct hk h;
    hk_init(&h);
    h.hook_tx_rc = -1;
    ck_assert_int_eq(stm_atomically(body_after, &h), 5);
    ck_assert_int_eq(h.runs, 1);
    ck_assert_int_eq(h.peek_in_hook, 42);
    ck_assert_int_eq(h.hook_tx_rc, 42);
    ck_assert_int_eq(stm_tvar_peek(h.y), 43);
    ck_assert_int_eq(stm_tvar_peek(h.z), 43);
    hk_fini(&h);
}
END_TEST

/* The hook's own transaction aborting must not undo the first commit. */
static int hook_abort_body(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_write(tx, h->x, -1);
    stm_abort(tx, 3);
}

static void hook_aborting_tx(void *p)
{
    struct hk *h = p;
    h->hook_tx_rc = stm_atomically(hook_abort_body, h);
}

static int body_after_abort_in_hook(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_write(tx, h->x, 8);
    stm_after_commit(tx, hook_aborting_tx, h);
    return 0;
}

START_TEST(test_after_commit_hook_tx_independent)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_after_abort_in_hook, &h), 0);
    ck_assert_int_eq(h.hook_tx_rc, 3);
    ck_assert_int_eq(stm_tvar_peek(h.x), 8);
    hk_fini(&h);
}
END_TEST

static void null_arg_hook(void *p)
{
    *(p == NULL ? &R[0].id : &R[1].id) += 100;
}

static int body_null_arg(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_after_commit(tx, null_arg_hook, NULL);
    return 0;
}

START_TEST(test_after_commit_null_arg)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_null_arg, NULL), 0);
    ck_assert_int_eq(R[0].id, 100);
    ck_assert_int_eq(R[1].id, 1);
    hk_fini(&h);
}
END_TEST

/* nested stm_atomically: hooks registered inside belong to the whole */
static int nested_reg(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_after_commit(tx, rec, &R[1]);
    stm_on_abort(tx, rec, &R[11]);
    if (h->abort_code)
        stm_abort(tx, h->abort_code);
    return 0;
}

static int body_nested_hooks(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_after_commit(tx, rec, &R[0]);
    stm_on_abort(tx, rec, &R[10]);
    stm_atomically(nested_reg, h);
    stm_after_commit(tx, rec, &R[2]);
    h->runs++; /* counts bodies that got here */
    return 0;
}

START_TEST(test_nested_hooks_commit)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_nested_hooks, &h), 0);
    ck_assert_int_eq(h.runs, 1);
    ck_assert_int_eq(h.nlog, 3);
    ck_assert_int_eq(h.log[0], 0);
    ck_assert_int_eq(h.log[1], 1);
    ck_assert_int_eq(h.log[2], 2);
    hk_fini(&h);
}
END_TEST

START_TEST(test_nested_hooks_abort)
{
    struct hk h;
    hk_init(&h);
    h.abort_code = 21;
    ck_assert_int_eq(stm_atomically(body_nested_hooks, &h), 21);
    ck_assert_int_eq(h.runs, 0);
    ck_assert_int_eq(h.nlog, 2);
    ck_assert_int_eq(h.log[0], 10);
    ck_assert_int_eq(h.log[1], 11);
    hk_fini(&h);
}
END_TEST

/* ---- on_abort --------------------------------------------------------- */

static int body_abort_hooks(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    h->runs++;
    stm_write(tx, h->x, 1000);
    for (int i = 0; i < 10; i++) {
        stm_on_abort(tx, rec, &R[i]);
        stm_after_commit(tx, rec, &R[30 + i]);
    }
    stm_abort(tx, h->abort_code);
}

START_TEST(test_on_abort_runs_in_order)
{
    struct hk h;
    hk_init(&h);
    h.abort_code = 12;
    ck_assert_int_eq(stm_atomically(body_abort_hooks, &h), 12);
    ck_assert_int_eq(h.runs, 1);
    ck_assert_int_eq(h.nlog, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(h.log[i], i);
    ck_assert_int_eq(stm_tvar_peek(h.x), 1);
    hk_fini(&h);
}
END_TEST

static int body_commit_with_abort_hooks(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_on_abort(tx, rec, &R[0]);
    stm_write(tx, h->x, 2);
    return 0;
}

START_TEST(test_on_abort_dropped_on_commit)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_commit_with_abort_hooks, &h), 0);
    ck_assert_int_eq(h.nlog, 0);
    /* and not carried into the next transaction, which aborts */
    h.abort_code = 1;
    ck_assert_int_eq(stm_atomically(body_abort_hooks, &h), 1);
    ck_assert_int_eq(h.nlog, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(h.log[i], i);
    hk_fini(&h);
}
END_TEST

/* An on_abort hook runs outside any transaction, after the writes are
 * discarded, and may start a new one. */
static int abort_hook_tx_body(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    intptr_t v = stm_read(tx, h->x); /* must be the old value */
    stm_write(tx, h->y, v + 100);
    return (int)v;
}

static void abort_hook_tx(void *p)
{
    struct hk *h = p;
    h->peek_in_hook = stm_tvar_peek(h->x);
    h->hook_tx_rc = stm_atomically(abort_hook_tx_body, h);
}

static int body_abort_hook_tx(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_write(tx, h->x, 77);
    stm_on_abort(tx, abort_hook_tx, h);
    stm_abort(tx, 4);
}

START_TEST(test_on_abort_hook_may_transact)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_abort_hook_tx, &h), 4);
    ck_assert_int_eq(h.peek_in_hook, 1);
    ck_assert_int_eq(h.hook_tx_rc, 1);
    ck_assert_int_eq(stm_tvar_peek(h.y), 101);
    ck_assert_int_eq(stm_tvar_peek(h.x), 1);
    hk_fini(&h);
}
END_TEST

/* stm_retry with nothing read ends the transaction with -EDEADLK: the
 * attempt is abandoned by stm_retry(), so its on_abort hooks run. */
static int body_deadlk_hooks(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_on_abort(tx, rec, &R[5]);
    stm_after_commit(tx, rec, &R[6]);
    stm_retry(tx);
}

START_TEST(test_on_abort_runs_on_deadlk)
{
    struct hk h;
    hk_init(&h);
    ck_assert_int_eq(stm_atomically(body_deadlk_hooks, &h), -EDEADLK);
    ck_assert_int_eq(h.nlog, 1);
    ck_assert_int_eq(h.log[0], 5);
    hk_fini(&h);
}
END_TEST

/* on_abort runs when stm_retry() abandons the attempt (woken by a poke). */
static int body_retry_once(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    int run = h->runs++;
    if (run < 8)
        h->aborts_at_run_start[run] = h->nlog;
    stm_on_abort(tx, rec, &R[1]);
    stm_after_commit(tx, rec, &R[2]);
    if (stm_read(tx, h->x) == 1) {
        atomic_fetch_add(&h->attempts, 1);
        stm_retry(tx);
    }
    return 0;
}

struct poker {
    stm_tvar *v;
    atomic_int *counter;
    intptr_t value;
    bool saw;
    int rc;
};

static void *poker_thread(void *p)
{
    struct poker *pk = p;
    pk->saw = tu_wait_atleast(pk->counter, 1, TU_HANDSHAKE_MS);
    pk->rc = stm_tvar_poke(pk->v, pk->value);
    return NULL;
}

START_TEST(test_on_abort_runs_on_retry)
{
    struct hk h;
    hk_init(&h);
    struct poker pk = {.v = h.x, .counter = &h.attempts, .value = 2};
    pthread_t t = tu_run_thread(poker_thread, &pk);
    ck_assert_int_eq(stm_atomically(body_retry_once, &h), 0);
    tu_join(t);
    ck_assert(pk.saw);
    ck_assert_int_eq(pk.rc, 0);
    int attempts = atomic_load(&h.attempts);
    ck_assert_int_ge(attempts, 1);
    ck_assert_int_eq(h.runs, attempts + 1);
    /* one on_abort per retried attempt, each before the next attempt began,
     * then the after_commit hook of the committed attempt only */
    ck_assert_int_eq(h.aborts_at_run_start[0], 0);
    ck_assert_int_eq(h.aborts_at_run_start[1], 1);
    ck_assert_int_eq(h.nlog, attempts + 1);
    for (int i = 0; i < attempts; i++)
        ck_assert_int_eq(h.log[i], 1);
    ck_assert_int_eq(h.log[attempts], 2);
    hk_fini(&h);
}
END_TEST

/*
 * on_abort runs on a conflict restart.  Made deterministic with a
 * handshake: the first attempt reads x, then lets another thread commit new
 * values of x and y, then reads y.  y is newer than the attempt's snapshot
 * and x has changed, so the snapshot cannot be extended: the attempt must
 * be restarted (it may not see the new y together with the old x).
 */
struct conflict {
    struct hk *h;
    atomic_int a_read;
    atomic_int b_done;
    bool b_saw;
    bool a_saw;
    int b_rc;
    int opacity_broken;
};

static int body_conflict(stm_tx *tx, void *arg)
{
    struct conflict *c = arg;
    struct hk *h = c->h;
    int run = h->runs++;
    stm_on_abort(tx, rec, &R[7]);
    stm_after_commit(tx, rec, &R[8]);
    intptr_t x = stm_read(tx, h->x);
    if (run == 0) {
        atomic_store(&c->a_read, 1);
        c->a_saw = tu_wait_atleast(&c->b_done, 1, TU_HANDSHAKE_MS);
    }
    intptr_t y = stm_read(tx, h->y);
    if (x == 1 && y != 2)
        c->opacity_broken++;
    stm_write(tx, h->z, x + y);
    return 0;
}

static int body_b(stm_tx *tx, void *arg)
{
    struct hk *h = arg;
    stm_write(tx, h->x, 10);
    stm_write(tx, h->y, 20);
    return 0;
}

static void *conflict_b(void *p)
{
    struct conflict *c = p;
    c->b_saw = tu_wait_atleast(&c->a_read, 1, TU_HANDSHAKE_MS);
    c->b_rc = stm_atomically(body_b, c->h);
    atomic_store(&c->b_done, 1);
    return NULL;
}

START_TEST(test_on_abort_runs_on_conflict)
{
    struct hk h;
    hk_init(&h);
    struct conflict c = {.h = &h};
    pthread_t t = tu_run_thread(conflict_b, &c);
    ck_assert_int_eq(stm_atomically(body_conflict, &c), 0);
    tu_join(t);
    ck_assert(c.a_saw);
    ck_assert(c.b_saw);
    ck_assert_int_eq(c.b_rc, 0);
    ck_assert_int_eq(c.opacity_broken, 0);
    ck_assert_int_eq(h.runs, 2);
    ck_assert_int_eq(h.nlog, 2);
    ck_assert_int_eq(h.log[0], 7);
    ck_assert_int_eq(h.log[1], 8);
    ck_assert_int_eq(stm_tvar_peek(h.z), 30);
    hk_fini(&h);
}
END_TEST

static Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");
    TCase *tc = tcase_create("after_commit");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_after_commit_order);
    tcase_add_test(tc, test_after_commit_sees_commit);
    tcase_add_test(tc, test_after_commit_hook_tx_independent);
    tcase_add_test(tc, test_after_commit_null_arg);
    tcase_add_test(tc, test_nested_hooks_commit);
    tcase_add_test(tc, test_nested_hooks_abort);
    suite_add_tcase(s, tc);

    tc = tcase_create("on_abort");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_on_abort_runs_in_order);
    tcase_add_test(tc, test_on_abort_dropped_on_commit);
    tcase_add_test(tc, test_on_abort_hook_may_transact);
    tcase_add_test(tc, test_on_abort_runs_on_deadlk);
    tcase_add_test(tc, test_on_abort_runs_on_retry);
    tcase_add_test(tc, test_on_abort_runs_on_conflict);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(hooks_suite)
