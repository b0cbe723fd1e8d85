/*
 * check_misuse.c - programming errors abort with a one-line message that
 * names the function.
 *
 * Every test must end with SIGABRT.  Before the misuse, the test sends
 * stderr to an in-memory file and installs a SIGABRT handler that reads
 * what was printed: if it is not one line naming the expected function, the
 * handler exits with status 3 instead of dying of SIGABRT, so the test
 * fails; otherwise it lets the signal kill the process.  (Run under
 * CK_FORK=no these tests take the runner down, as any abort test would.)
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "misuse.h"

static stm_tvar *var;
static stm_tx *saved_tx;

static void make_var(void)
{
    var = stm_tvar_new(1);
    ck_assert_ptr_nonnull(var);
}

static int body_save_tx(stm_tx *tx, void *arg)
{
    (void)arg;
    saved_tx = tx;
    return (int)stm_read(tx, var);
}

/* Runs a transaction that saves its handle; the handle is stale after. */
static void make_stale_tx(void)
{
    make_var();
    ck_assert_int_eq(stm_atomically(body_save_tx, NULL), 1);
    ck_assert_ptr_nonnull(saved_tx);
}

static void dummy_hook(void *arg)
{
    (void)arg;
}

static int dummy_fn(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 0;
}

/* ---- NULL arguments ----------------------------------------------------- */

START_TEST(test_read_null_tx)
{
    make_var();
    expect_abort("stm_read");
    stm_read(NULL, var);
    ck_abort_msg("stm_read(NULL, var) returned");
}
END_TEST

static int body_read_null_var(stm_tx *tx, void *arg)
{
    (void)arg;
    return (int)stm_read(tx, NULL);
}

START_TEST(test_read_null_var)
{
    make_var();
    expect_abort("stm_read");
    stm_atomically(body_read_null_var, NULL);
    ck_abort_msg("stm_read(tx, NULL) returned");
}
END_TEST

/* The header promises nonnull to callers' compilers; pass the NULL
 * through a volatile so that they cannot see it, and keep UBSan's
 * nonnull check (which would report it first) out of the way. */
static stm_fn *volatile null_body;

#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
__attribute__((no_sanitize("nonnull-attribute")))
#endif
#endif
static void
call_null_body(void)
{
    stm_atomically(null_body, NULL);
}

START_TEST(test_atomically_null_fn)
{
    expect_abort("stm_atomically");
    call_null_body();
    ck_abort_msg("stm_atomically(NULL) returned");
}
END_TEST

START_TEST(test_write_null_tx)
{
    make_var();
    expect_abort("stm_write");
    stm_write(NULL, var, 2);
    ck_abort_msg("stm_write(NULL, ...) returned");
}
END_TEST

static int body_write_null_var(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, NULL, 5);
    return 0;
}

START_TEST(test_write_null_var)
{
    make_var();
    expect_abort("stm_write");
    stm_atomically(body_write_null_var, NULL);
    ck_abort_msg("stm_write(tx, NULL, ...) returned");
}
END_TEST

START_TEST(test_retry_null_tx)
{
    expect_abort("stm_retry");
    stm_retry(NULL);
}
END_TEST

START_TEST(test_abort_null_tx)
{
    expect_abort("stm_abort");
    stm_abort(NULL, 1);
}
END_TEST

/* ---- a stale handle, used after its transaction returned ---------------- */

START_TEST(test_stale_read)
{
    make_stale_tx();
    expect_abort("stm_read");
    stm_read(saved_tx, var);
    ck_abort_msg("stm_read with a stale tx returned");
}
END_TEST

START_TEST(test_stale_write)
{
    make_stale_tx();
    expect_abort("stm_write");
    stm_write(saved_tx, var, 3);
    ck_abort_msg("stm_write with a stale tx returned");
}
END_TEST

START_TEST(test_stale_retry)
{
    make_stale_tx();
    expect_abort("stm_retry");
    stm_retry(saved_tx);
}
END_TEST

START_TEST(test_stale_abort)
{
    make_stale_tx();
    expect_abort("stm_abort");
    stm_abort(saved_tx, 4);
}
END_TEST

START_TEST(test_stale_or_else)
{
    make_stale_tx();
    expect_abort("stm_or_else");
    stm_or_else(saved_tx, dummy_fn, dummy_fn, NULL);
    ck_abort_msg("stm_or_else with a stale tx returned");
}
END_TEST

START_TEST(test_stale_tx_now)
{
    make_stale_tx();
    expect_abort("stm_tx_now");
    stm_tx_now(saved_tx);
    ck_abort_msg("stm_tx_now with a stale tx returned");
}
END_TEST

START_TEST(test_stale_after_commit)
{
    make_stale_tx();
    expect_abort("stm_after_commit");
    stm_after_commit(saved_tx, dummy_hook, NULL);
    ck_abort_msg("stm_after_commit with a stale tx returned");
}
END_TEST

START_TEST(test_stale_on_abort)
{
    make_stale_tx();
    expect_abort("stm_on_abort");
    stm_on_abort(saved_tx, dummy_hook, NULL);
    ck_abort_msg("stm_on_abort with a stale tx returned");
}
END_TEST

START_TEST(test_stale_alloc)
{
    make_stale_tx();
    expect_abort("stm_alloc");
    void *p = stm_alloc(saved_tx, 16);
    free(p);
    ck_abort_msg("stm_alloc with a stale tx returned");
}
END_TEST

START_TEST(test_stale_free)
{
    make_stale_tx();
    void *p = malloc(16);
    ck_assert_ptr_nonnull(p);
    expect_abort("stm_free");
    stm_free(saved_tx, p);
    ck_abort_msg("stm_free with a stale tx returned");
}
END_TEST

/* The handle of a transaction that ended with stm_abort is stale too. */
static int body_save_and_abort(stm_tx *tx, void *arg)
{
    (void)arg;
    saved_tx = tx;
    stm_write(tx, var, 9);
    stm_abort(tx, 6);
}

START_TEST(test_stale_after_abort)
{
    make_var();
    ck_assert_int_eq(stm_atomically(body_save_and_abort, NULL), 6);
    expect_abort("stm_read");
    stm_read(saved_tx, var);
    ck_abort_msg("stm_read with the handle of an aborted tx returned");
}
END_TEST

/* ---- a handle used from another thread ------------------------------- */

struct foreign {
    stm_tx *tx;
    int op; /* 0: read, 1: write */
};

static void *foreign_thread(void *p)
{
    struct foreign *f = p;
    if (f->op == 0)
        stm_read(f->tx, var);
    else
        stm_write(f->tx, var, 8);
    return NULL;
}

static int body_lend_tx(stm_tx *tx, void *arg)
{
    struct foreign *f = arg;
    f->tx = tx;
    (void)stm_read(tx, var);
    /* the owner waits in its body while the other thread misuses tx */
    tu_join(tu_run_thread(foreign_thread, f));
    return 0;
}

START_TEST(test_foreign_thread_read)
{
    make_var();
    struct foreign f = {NULL, 0};
    expect_abort("stm_read");
    stm_atomically(body_lend_tx, &f);
    ck_abort_msg("stm_read from another thread returned");
}
END_TEST

START_TEST(test_foreign_thread_write)
{
    make_var();
    struct foreign f = {NULL, 1};
    expect_abort("stm_write");
    stm_atomically(body_lend_tx, &f);
    ck_abort_msg("stm_write from another thread returned");
}
END_TEST

/* ---- control: the capture machinery itself passes a correct message ---- */

START_TEST(test_control_message)
{
    expect_abort("stm_control");
    fprintf(stderr, "stm_control: this is the expected form\n");
    abort();
}
END_TEST

static Suite *misuse_suite(void)
{
    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("null");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_control_message, SIGABRT);
    tcase_add_test_raise_signal(tc, test_read_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_read_null_var, SIGABRT);
    tcase_add_test_raise_signal(tc, test_atomically_null_fn, SIGABRT);
    tcase_add_test_raise_signal(tc, test_write_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_write_null_var, SIGABRT);
    tcase_add_test_raise_signal(tc, test_retry_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_abort_null_tx, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("stale");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_stale_read, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_write, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_retry, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_abort, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_or_else, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_tx_now, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_after_commit, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_on_abort, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_alloc, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_free, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_after_abort, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("foreign");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_foreign_thread_read, SIGABRT);
    tcase_add_test_raise_signal(tc, test_foreign_thread_write, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(misuse_suite)
