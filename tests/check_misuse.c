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

/* ---- every public function names itself --------------------------------
 * One case per misuse path of every public function: the message must
 * start with "libstm: <that function>: " (misuse.h), so that a function
 * that diagnoses through another one (stm_elapsed through stm_tx_now,
 * stm_atomically_until as stm_atomically) is caught.  stm_read_ptr() and
 * stm_write_ptr() are inline wrappers in stm.h: they report as stm_read()
 * and stm_write(), as the header says. */

/* NULLs the compiler cannot see (the header declares nonnull), passed
 * with UBSan's nonnull check out of the way */
static void (*volatile null_hook)(void *);
static stm_tvar *volatile null_var;
static struct stm_stats *volatile null_stats;
static stm_watch_fn *volatile null_watch_fn;

#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define NO_NONNULL_CHECK __attribute__((no_sanitize("nonnull-attribute")))
#endif
#endif
#ifndef NO_NONNULL_CHECK
#define NO_NONNULL_CHECK
#endif

static intptr_t watch_fn0(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 0;
}

static stm_watch *made_watch;

static int body_make_watch(stm_tx *tx, void *arg)
{
    (void)arg;
    made_watch = stm_watch_new(tx, watch_fn0, NULL, NULL, 0);
    return 0;
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_unwatch(tx, made_watch);
    return 0;
}

/* what a case does with the transaction handle it gets (NULL, stale, or
 * the running transaction's) */
static void do_read(stm_tx *tx)
{
    (void)stm_read(tx, var);
}
static void do_read_null(stm_tx *tx)
{
    (void)stm_read(tx, null_var);
}
static void do_read_ptr(stm_tx *tx)
{
    (void)stm_read_ptr(tx, var);
}
static void do_write(stm_tx *tx)
{
    stm_write(tx, var, 2);
}
static void do_write_null(stm_tx *tx)
{
    stm_write(tx, null_var, 2);
}
static void do_write_ptr(stm_tx *tx)
{
    stm_write_ptr(tx, var, NULL);
}
static void do_retry(stm_tx *tx)
{
    stm_retry(tx);
}
static void do_abort(stm_tx *tx)
{
    stm_abort(tx, 1);
}
static void do_or_else(stm_tx *tx)
{
    (void)stm_or_else(tx, dummy_fn, dummy_fn, NULL);
}
NO_NONNULL_CHECK static void do_or_else_null(stm_tx *tx)
{
    (void)stm_or_else(tx, dummy_fn, (stm_fn *)null_body, NULL);
}
static void do_tx_now(stm_tx *tx)
{
    (void)stm_tx_now(tx);
}
static void do_tx_wall_now(stm_tx *tx)
{
    (void)stm_tx_wall_now(tx);
}
static void do_elapsed(stm_tx *tx)
{
    (void)stm_elapsed(tx, STM_NEVER);
}
static void do_elapsed_wall(stm_tx *tx)
{
    (void)stm_elapsed_wall(tx, STM_NEVER);
}
static void do_after_commit(stm_tx *tx)
{
    stm_after_commit(tx, dummy_hook, NULL);
}
NO_NONNULL_CHECK static void do_after_commit_null(stm_tx *tx)
{
    stm_after_commit(tx, null_hook, NULL);
}
static void do_on_abort(stm_tx *tx)
{
    stm_on_abort(tx, dummy_hook, NULL);
}
NO_NONNULL_CHECK static void do_on_abort_null(stm_tx *tx)
{
    stm_on_abort(tx, null_hook, NULL);
}
static void do_defer(stm_tx *tx)
{
    stm_defer(tx, dummy_hook, NULL);
}
NO_NONNULL_CHECK static void do_defer_null(stm_tx *tx)
{
    stm_defer(tx, null_hook, NULL);
}
static void do_alloc(stm_tx *tx)
{
    free(stm_alloc(tx, 8));
}
static void do_free(stm_tx *tx)
{
    stm_free(tx, var); /* never freed: it aborts first */
}
static void do_watch_new(stm_tx *tx)
{
    (void)stm_watch_new(tx, watch_fn0, NULL, NULL, 0);
}
static void do_watch_new_null(stm_tx *tx)
{
    (void)stm_watch_new(tx, null_watch_fn, NULL, NULL, 0);
}
static void do_watch_new_flags(stm_tx *tx)
{
    (void)stm_watch_new(tx, watch_fn0, NULL, NULL, 0x100);
}
static void do_unwatch(stm_tx *tx)
{
    stm_unwatch(tx, made_watch);
}
static void do_dispatch(stm_tx *tx)
{
    (void)tx;
    (void)stm_dispatch();
}
static void do_shutdown(stm_tx *tx)
{
    (void)tx;
    stm_shutdown();
}
static void do_atomically_watch(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically_watch(watch_fn0, NULL, NULL, 0);
}
/* outside any transaction */
NO_NONNULL_CHECK static void do_atomically_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically(null_body, NULL);
}
NO_NONNULL_CHECK static void do_atomically_until_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically_until(null_body, NULL, STM_NEVER);
}
NO_NONNULL_CHECK static void do_atomically_ro_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically_ro(null_body, NULL);
}
static void do_atomically_watch_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically_watch(null_watch_fn, NULL, NULL, 0);
}
static void do_atomically_watch_flags(stm_tx *tx)
{
    (void)tx;
    (void)stm_atomically_watch(watch_fn0, NULL, NULL, 0x100);
}
NO_NONNULL_CHECK static void do_stats_get_null(stm_tx *tx)
{
    (void)tx;
    stm_stats_get(null_stats);
}
NO_NONNULL_CHECK static void do_tvar_name_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_tvar_name(null_var);
}
NO_NONNULL_CHECK static void do_tvar_peek_null(stm_tx *tx)
{
    (void)tx;
    (void)stm_tvar_peek(null_var);
}
static void do_unwatch_twice(stm_tx *tx)
{
    (void)tx;
    ck_assert_int_eq(stm_atomically(body_unwatch, NULL), 0);
    ck_assert_int_eq(stm_atomically(body_unwatch, NULL), 0);
}

/* where the handle comes from */
enum { NULL_TX, STALE_TX, IN_TX, NO_TX };

struct mcase {
    const char *name; /* the function the message must name */
    int how;
    void (*run)(stm_tx *tx);
    bool watch; /* make made_watch first */
};

static const struct mcase mcases[] = {
    {"stm_read", NULL_TX, do_read, false},
    {"stm_read", STALE_TX, do_read, false},
    {"stm_read", IN_TX, do_read_null, false},
    {"stm_read", NULL_TX, do_read_ptr, false}, /* inline: reports as stm_read */
    {"stm_write", NULL_TX, do_write, false},
    {"stm_write", STALE_TX, do_write, false},
    {"stm_write", IN_TX, do_write_null, false},
    {"stm_write", STALE_TX, do_write_ptr, false}, /* inline: reports as stm_write */
    {"stm_retry", NULL_TX, do_retry, false},
    {"stm_retry", STALE_TX, do_retry, false},
    {"stm_abort", NULL_TX, do_abort, false},
    {"stm_abort", STALE_TX, do_abort, false},
    {"stm_or_else", NULL_TX, do_or_else, false},
    {"stm_or_else", STALE_TX, do_or_else, false},
    {"stm_or_else", IN_TX, do_or_else_null, false},
    {"stm_tx_now", NULL_TX, do_tx_now, false},
    {"stm_tx_now", STALE_TX, do_tx_now, false},
    {"stm_tx_wall_now", NULL_TX, do_tx_wall_now, false},
    {"stm_tx_wall_now", STALE_TX, do_tx_wall_now, false},
    {"stm_elapsed", NULL_TX, do_elapsed, false},
    {"stm_elapsed", STALE_TX, do_elapsed, false},
    {"stm_elapsed_wall", NULL_TX, do_elapsed_wall, false},
    {"stm_elapsed_wall", STALE_TX, do_elapsed_wall, false},
    {"stm_after_commit", NULL_TX, do_after_commit, false},
    {"stm_after_commit", STALE_TX, do_after_commit, false},
    {"stm_after_commit", IN_TX, do_after_commit_null, false},
    {"stm_on_abort", NULL_TX, do_on_abort, false},
    {"stm_on_abort", STALE_TX, do_on_abort, false},
    {"stm_on_abort", IN_TX, do_on_abort_null, false},
    {"stm_defer", NULL_TX, do_defer, false},
    {"stm_defer", STALE_TX, do_defer, false},
    {"stm_defer", IN_TX, do_defer_null, false},
    {"stm_alloc", NULL_TX, do_alloc, false},
    {"stm_alloc", STALE_TX, do_alloc, false},
    {"stm_free", NULL_TX, do_free, false},
    {"stm_free", STALE_TX, do_free, false},
    {"stm_watch_new", NULL_TX, do_watch_new, false},
    {"stm_watch_new", STALE_TX, do_watch_new, false},
    {"stm_watch_new", IN_TX, do_watch_new_null, false},
    {"stm_watch_new", IN_TX, do_watch_new_flags, false},
    {"stm_unwatch", NULL_TX, do_unwatch, true},
    {"stm_unwatch", STALE_TX, do_unwatch, true},
    {"stm_unwatch", NO_TX, do_unwatch_twice, true},
    {"stm_atomically_watch", IN_TX, do_atomically_watch, false},
    {"stm_atomically_watch", NO_TX, do_atomically_watch_null, false},
    {"stm_atomically_watch", NO_TX, do_atomically_watch_flags, false},
    {"stm_dispatch", IN_TX, do_dispatch, false},
    {"stm_shutdown", IN_TX, do_shutdown, false},
    {"stm_atomically", NO_TX, do_atomically_null, false},
    {"stm_atomically_until", NO_TX, do_atomically_until_null, false},
    {"stm_atomically_ro", NO_TX, do_atomically_ro_null, false},
    {"stm_stats_get", NO_TX, do_stats_get_null, false},
    {"stm_tvar_name", NO_TX, do_tvar_name_null, false},
    {"stm_tvar_peek", NO_TX, do_tvar_peek_null, false},
};
#define N_MCASES ((int)(sizeof mcases / sizeof mcases[0]))

static const struct mcase *cur_case;

static int body_run_case(stm_tx *tx, void *arg)
{
    (void)arg;
    cur_case->run(tx);
    return 0;
}

START_TEST(test_names_itself)
{
    cur_case = &mcases[_i];
    make_var();
    if (cur_case->watch) {
        ck_assert_int_eq(stm_atomically(body_make_watch, NULL), 0);
        ck_assert_ptr_nonnull(made_watch);
    }
    if (cur_case->how == STALE_TX)
        make_stale_tx();
    expect_abort(cur_case->name);
    switch (cur_case->how) {
    case NULL_TX:
        cur_case->run(NULL);
        break;
    case STALE_TX:
        cur_case->run(saved_tx);
        break;
    case IN_TX:
        stm_atomically(body_run_case, NULL);
        break;
    default:
        cur_case->run(NULL);
        break;
    }
    ck_abort_msg("case %d (%s) returned", _i, cur_case->name);
}
END_TEST

/* ---- control: the capture machinery itself passes a correct message ---- */

START_TEST(test_control_message)
{
    expect_abort("stm_control");
    fprintf(stderr, "libstm: stm_control: this is the expected form\n");
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

    tc = tcase_create("names");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test_raise_signal(tc, test_names_itself, SIGABRT, 0, N_MCASES);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(misuse_suite)
