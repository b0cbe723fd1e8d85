/*
 * check_protect.c - the restart that unwinds (protect.c): stm_protect(),
 * stm_read_x(), stm_write_x(), stm_retry_x(), stm_abort_x(),
 * stm_pending() and stm_resume() report the end of an attempt to their
 * caller, and the pending jump then does what the jump would have done.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "misuse.h"
#include "stm-internal.h" /* stm__fault_alloc_after */
#include "testutil.h"

static stm_tvar a, b, c;

static void setup(void)
{
    stm_tvar_init(&a, 1);
    stm_tvar_init(&b, 2);
    stm_tvar_init(&c, 3);
}

static void teardown(void)
{
    stm_tvar_destroy(&a);
    stm_tvar_destroy(&b);
    stm_tvar_destroy(&c);
}

/* ---- the fast paths: a body through the _x calls commits as usual ---- */

static int body_rw(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v;
    ck_assert_int_eq(stm_read_x(tx, &a, &v), 0);
    ck_assert_int_eq(stm_write_x(tx, &b, v + 10), 0);
    ck_assert_int_eq(stm_write_x(tx, &b, v + 20), 0); /* again: slow path */
    ck_assert_int_eq(stm_read_x(tx, &b, &v), 0);      /* read-after-write */
    ck_assert_int_eq(v, 21);
    ck_assert_int_eq(stm_pending(tx), 0);
    return (int)v;
}

START_TEST(test_read_write_x)
{
    ck_assert_int_eq(stm_atomically(body_rw, NULL), 21);
    ck_assert_int_eq(stm_tvar_peek(&b), 21);
}
END_TEST

/* ---- a conflict is reported, stays reported, and restarts on resume ---- */

static void *writer(void *arg)
{
    (void)arg;
    stm_tvar_poke(&a, stm_tvar_peek(&a) + 1);
    stm_tvar_poke(&b, stm_tvar_peek(&b) + 1);
    return NULL;
}

static atomic_int attempts, unwound;

static int body_conflict(stm_tx *tx, void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&attempts, 1);
    intptr_t va, vb = -1;
    ck_assert_int_eq(stm_read_x(tx, &a, &va), 0);
    if (n == 0) /* another thread commits to both a and b now */
        tu_join(tu_run_thread(writer, NULL));
    int r = stm_read_x(tx, &b, &vb);
    if (n == 0) {
        /* b is newer than the snapshot and a changed since it was read */
        ck_assert_int_eq(r, STM_PENDING_CONFLICT);
        ck_assert_int_eq(vb, -1); /* *out left alone */
        ck_assert_int_eq(stm_pending(tx), STM_PENDING_CONFLICT);
        ck_assert_int_eq(stm_read_x(tx, &c, &vb), STM_PENDING_CONFLICT);
        ck_assert_int_eq(stm_write_x(tx, &c, 9), STM_PENDING_CONFLICT);
        ck_assert_int_eq(stm_retry_x(tx), STM_PENDING_CONFLICT);
        atomic_fetch_add(&unwound, 1); /* "the binding's frames unwound" */
        stm_resume(tx);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(stm_write_x(tx, &c, va + vb), 0);
    return n;
}

START_TEST(test_conflict_reported)
{
    atomic_store(&attempts, 0);
    ck_assert_int_eq(stm_atomically(body_conflict, NULL), 1);
    ck_assert_int_eq(atomic_load(&unwound), 1);
    ck_assert_int_eq(stm_tvar_peek(&c), 2 + 3);
}
END_TEST

/* ---- abort: reported, then stm_atomically returns its code ---- */

static int body_abort(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_write_x(tx, &a, 100), 0);
    ck_assert_int_eq(stm_abort_x(tx, 55), STM_PENDING_ABORT);
    stm_resume(tx);
}

START_TEST(test_abort_x)
{
    ck_assert_int_eq(stm_atomically(body_abort, NULL), 55);
    ck_assert_int_eq(stm_tvar_peek(&a), 1);
}
END_TEST

/* ---- branches: a function that returns while the jump is pending ---- */

static int first_retries(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_write_x(tx, &a, 100), 0);
    ck_assert_int_eq(stm_retry_x(tx), STM_PENDING_RETRY);
    return -1; /* returns: stm_or_else takes the jump aimed at it */
}

static int second_writes(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_pending(tx), 0);
    ck_assert_int_eq(stm_write_x(tx, &b, 200), 0);
    return 7;
}

static int body_orelse(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_or_else(tx, first_retries, second_writes, NULL);
}

START_TEST(test_orelse_takes_pending_retry)
{
    ck_assert_int_eq(stm_atomically(body_orelse, NULL), 7);
    ck_assert_int_eq(stm_tvar_peek(&a), 1); /* the first branch's write went */
    ck_assert_int_eq(stm_tvar_peek(&b), 200);
}
END_TEST

static int part_aborts(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_write_x(tx, &a, 100), 0);
    ck_assert_int_eq(stm_abort_x(tx, 66), STM_PENDING_ABORT);
    return -1;
}

static int body_catch(stm_tx *tx, void *arg)
{
    (void)arg;
    bool aborted = false;
    int r = stm_catch(tx, part_aborts, NULL, &aborted);
    ck_assert(aborted);
    ck_assert_int_eq(r, 66);
    ck_assert_int_eq(stm_write_x(tx, &b, 300), 0);
    return 8;
}

START_TEST(test_catch_takes_pending_abort)
{
    ck_assert_int_eq(stm_atomically(body_catch, NULL), 8);
    ck_assert_int_eq(stm_tvar_peek(&a), 1);
    ck_assert_int_eq(stm_tvar_peek(&b), 300);
}
END_TEST

/* An abort reported inside an stm_or_else() branch (no stm_catch): the
 * branch function returns, stm_or_else passes the pending jump outward
 * (it is not aimed at it), and the body resumes it: the whole
 * transaction aborts. */
static int inner_first(stm_tx *tx, void *arg)
{
    (void)arg;
    int r = stm_abort_x(tx, 44); /* no stm_catch: the whole transaction */
    ck_assert_int_eq(r, STM_PENDING_ABORT);
    return -1;
}

static int never(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    ck_abort_msg("the second branch runs only after a retry");
    return -1;
}

static int body_pass_outward(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_write_x(tx, &a, 100), 0);
    stm_or_else(tx, inner_first, never, NULL); /* returns: not its jump */
    ck_assert_int_eq(stm_pending(tx), STM_PENDING_ABORT);
    stm_resume(tx);
}

START_TEST(test_pending_passes_branches)
{
    ck_assert_int_eq(stm_atomically(body_pass_outward, NULL), 44);
    ck_assert_int_eq(stm_tvar_peek(&a), 1);
}
END_TEST

/* ---- retry at the top: resume waits, a commit wakes it ---- */

static atomic_int retry_runs;

static int body_wait(stm_tx *tx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&retry_runs, 1);
    intptr_t v;
    if (stm_read_x(tx, &a, &v) != 0)
        stm_resume(tx);
    if (v == 1) {
        ck_assert_int_eq(stm_retry_x(tx), STM_PENDING_RETRY);
        stm_resume(tx);
    }
    return (int)v;
}

static void *poke_later(void *arg)
{
    (void)arg;
    while (atomic_load(&retry_runs) == 0)
        tu_sleep_ms(1);
    tu_sleep_ms(20);
    stm_tvar_poke(&a, 5);
    return NULL;
}

START_TEST(test_retry_x_waits)
{
    pthread_t t = tu_run_thread(poke_later, NULL);
    ck_assert_int_eq(stm_atomically(body_wait, NULL), 5);
    tu_join(t);
    ck_assert_int_ge(atomic_load(&retry_runs), 2);
}
END_TEST

/* ---- stm_protect: any call; branches opened inside op stay inside ---- */

struct op_args {
    void *block;
    int branch;
};

static int retries(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx); /* plain: the branch is inside the protected op */
}

static int answers(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 3;
}

static void op_alloc(stm_tx *tx, void *arg)
{
    struct op_args *o = arg;
    o->block = stm_alloc(tx, 32);
    o->branch = stm_or_else(tx, retries, answers, NULL);
}

static int body_protect(stm_tx *tx, void *arg)
{
    (void)arg;
    struct op_args o = {NULL, 0};
    ck_assert_int_eq(stm_protect(tx, op_alloc, &o), 0);
    ck_assert_ptr_nonnull(o.block);
    ck_assert_int_eq(o.branch, 3);
    stm_free(tx, o.block);
    return 0;
}

START_TEST(test_protect_op)
{
    ck_assert_int_eq(stm_atomically(body_protect, NULL), 0);
}
END_TEST

/* A plain stm_retry() inside stm_protect(), aimed at an stm_or_else()
 * branch opened outside it: reported (foreign frames may lie between),
 * taken by that stm_or_else when its function returns. */
static void op_retry(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

static int first_protects(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_protect(tx, op_retry, NULL), STM_PENDING_RETRY);
    return -1;
}

static int body_protect_branch(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_or_else(tx, first_protects, answers, NULL);
}

START_TEST(test_protect_retry_to_outer_branch)
{
    ck_assert_int_eq(stm_atomically(body_protect_branch, NULL), 3);
}
END_TEST

/* ---- a declared read-only attempt that writes falls back ---- */

static atomic_int ro_runs;

static int body_ro_writes(stm_tx *tx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&ro_runs, 1);
    intptr_t v;
    ck_assert_int_eq(stm_read_x(tx, &a, &v), 0);
    int r = stm_write_x(tx, &b, v + 40);
    if (r != 0) {
        ck_assert_int_eq(r, STM_PENDING_FALLBACK);
        stm_resume(tx);
    }
    return 4;
}

START_TEST(test_readonly_fallback)
{
    atomic_store(&ro_runs, 0);
    ck_assert_int_eq(stm_atomically_ro(body_ro_writes, NULL), 4);
    ck_assert_int_eq(atomic_load(&ro_runs), 2);
    ck_assert_int_eq(stm_tvar_peek(&b), 41);
}
END_TEST

/* ---- out of memory: reported, then -ENOMEM ---- */

static stm_tvar many[4096];

static int body_many(stm_tx *tx, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++) {
        intptr_t v;
        int r = stm_read_x(tx, &many[i], &v);
        if (r != 0) {
            ck_assert_int_eq(r, STM_PENDING_NOMEM);
            stm_resume(tx);
        }
    }
    return 0;
}

START_TEST(test_nomem_reported)
{
    for (size_t i = 0; i < sizeof many / sizeof many[0]; i++)
        stm_tvar_init(&many[i], (intptr_t)i);
    stm__fault_alloc_after(0);
    int r = stm_atomically(body_many, NULL);
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert(fired);
    ck_assert_int_eq(r, -ENOMEM);
    ck_assert_int_eq(stm_atomically(body_many, NULL), 0);
}
END_TEST

/* ---- misuse ---- */

static int body_returns_pending(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_write_x(tx, &a, 100), 0);
    ck_assert_int_eq(stm_abort_x(tx, 1), STM_PENDING_ABORT);
    return 0; /* forgets stm_resume */
}

START_TEST(test_misuse_return_pending)
{
    expect_abort("stm_atomically");
    stm_atomically(body_returns_pending, NULL);
}
END_TEST

static int body_plain_after_pending(stm_tx *tx, void *arg)
{
    (void)arg;
    ck_assert_int_eq(stm_abort_x(tx, 1), STM_PENDING_ABORT);
    expect_abort("stm_write");
    stm_write(tx, &a, 5);
    return 0;
}

START_TEST(test_misuse_plain_after_pending)
{
    stm_atomically(body_plain_after_pending, NULL);
}
END_TEST

START_TEST(test_misuse_resume_nothing)
{
    expect_abort("stm_resume");
    stm_resume(NULL);
}
END_TEST

static Suite *protect_suite(void)
{
    Suite *s = suite_create("protect");
    TCase *tc = tcase_create("protect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_read_write_x);
    tcase_add_test(tc, test_conflict_reported);
    tcase_add_test(tc, test_abort_x);
    tcase_add_test(tc, test_orelse_takes_pending_retry);
    tcase_add_test(tc, test_catch_takes_pending_abort);
    tcase_add_test(tc, test_pending_passes_branches);
    tcase_add_test(tc, test_retry_x_waits);
    tcase_add_test(tc, test_protect_op);
    tcase_add_test(tc, test_protect_retry_to_outer_branch);
    tcase_add_test(tc, test_readonly_fallback);
    tcase_add_test(tc, test_nomem_reported);
    tcase_add_test_raise_signal(tc, test_misuse_return_pending, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_plain_after_pending, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_resume_nothing, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(protect_suite)
