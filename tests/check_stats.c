/*
 * check_stats.c - stm_stats_get counters, stm_strerror, stm_shutdown and
 * the STM_STATS=1 report.
 *
 * The report test re-runs this program (/proc/self/exe) as a child with
 * STM_STATS=1 in its environment and reads what the child prints on
 * stderr: the variable is then set from the child's start, as a user
 * would set it.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#include <sys/wait.h>
#include <unistd.h>

static stm_tvar *X, *Y, *Z;

static void make_vars(void)
{
    X = stm_tvar_new(1);
    Y = stm_tvar_new(2);
    Z = stm_tvar_new(0);
    ck_assert_ptr_nonnull(X);
    ck_assert_ptr_nonnull(Y);
    ck_assert_ptr_nonnull(Z);
}

static int body_inc(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, Z, stm_read(tx, Z) + 1);
    return 0;
}

static int body_ro(stm_tx *tx, void *arg)
{
    (void)arg;
    return (int)stm_read(tx, X);
}

static int body_abort(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, Z, -1);
    stm_abort(tx, 3);
}

static int body_deadlk(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

/* ---- counters ------------------------------------------------------------ */

START_TEST(test_commits_exact)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0); /* warm up */
    struct stm_stats a, b;
    stm_stats_get(&a);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(stm_atomically(body_ro, NULL), 1);
    ck_assert_int_eq(stm_tvar_poke(Y, 5), 0); /* a transaction too */
    stm_stats_get(&b);
    ck_assert_uint_eq(b.commits - a.commits, 151);
    ck_assert_uint_eq(b.aborts - a.aborts, 0);
    ck_assert_uint_eq(b.watch_runs, 0);
    ck_assert_uint_eq(b.timer_fires, 0);
}
END_TEST

static int body_nest2(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, Y, stm_read(tx, Y) + 1);
    return stm_atomically(body_inc, NULL) + stm_atomically(body_ro, NULL);
}

static int body_nest1(stm_tx *tx, void *arg)
{
    (void)tx;
    return stm_atomically(body_nest2, arg);
}

START_TEST(test_nested_counts_once)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    ck_assert_int_eq(stm_atomically(body_nest1, NULL), 1);
    stm_stats_get(&b);
    ck_assert_uint_eq(b.commits - a.commits, 1);
}
END_TEST

START_TEST(test_abort_counted)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(stm_atomically(body_abort, NULL), 3);
    stm_stats_get(&b);
    ck_assert_uint_eq(b.aborts_explicit - a.aborts_explicit, 7);
    ck_assert_uint_eq(b.aborts - a.aborts, 7);
    ck_assert_uint_eq(b.commits - a.commits, 0);
    ck_assert_uint_eq(b.aborts_conflict - a.aborts_conflict, 0);
    ck_assert_uint_eq(b.aborts_nomem - a.aborts_nomem, 0);
}
END_TEST

START_TEST(test_deadlk_not_a_commit)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    ck_assert_int_eq(stm_atomically(body_deadlk, NULL), -EDEADLK);
    stm_stats_get(&b);
    ck_assert_uint_eq(b.commits - a.commits, 0);
    ck_assert_uint_eq(b.aborts_explicit - a.aborts_explicit, 0);
    /* "retries: stm_retry() calls that blocked or restarted": this one
     * did neither */
    ck_assert_uint_eq(b.retries - a.retries, 0);
}
END_TEST

/* counters are summed over threads, also over threads that have exited */
static void *commit_thread(void *p)
{
    (void)p;
    for (int i = 0; i < 25; i++)
        if (stm_atomically(body_inc, NULL) != 0)
            return (void *)1;
    return NULL;
}

START_TEST(test_commits_summed_over_threads)
{
    make_vars();
    struct stm_stats a, b;
    stm_stats_get(&a);
    pthread_t t1 = tu_run_thread(commit_thread, NULL);
    pthread_t t2 = tu_run_thread(commit_thread, NULL);
    ck_assert_ptr_null(tu_join(t1));
    ck_assert_ptr_null(tu_join(t2));
    stm_stats_get(&b);
    ck_assert_uint_eq(b.commits - a.commits, 50);
    ck_assert_int_eq(stm_tvar_peek(Z), 50);
}
END_TEST

/* retry woken by another thread's commit */
static atomic_int retry_calls;

static int body_wait_x(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, X);
    if (v == 1) {
        atomic_fetch_add(&retry_calls, 1);
        stm_retry(tx);
    }
    return (int)v;
}

static void *poke_x_thread(void *p)
{
    bool *saw = p;
    *saw = tu_wait_atleast(&retry_calls, 1, TU_HANDSHAKE_MS);
    ck_assert_int_eq(stm_tvar_poke(X, 6), 0);
    return NULL;
}

START_TEST(test_retry_counted)
{
    make_vars();
    struct stm_stats a, b;
    stm_stats_get(&a);
    bool saw = false;
    pthread_t t = tu_run_thread(poke_x_thread, &saw);
    ck_assert_int_eq(stm_atomically(body_wait_x, NULL), 6);
    tu_join(t);
    ck_assert(saw);
    stm_stats_get(&b);
    int calls = atomic_load(&retry_calls);
    ck_assert_uint_eq(b.retries - a.retries, (uint64_t)calls);
    ck_assert_uint_eq(b.commits - a.commits, 2); /* the poke and the waiter */
    ck_assert_uint_ge(b.aborts - a.aborts, (uint64_t)calls);
}
END_TEST

/* A deterministic conflict (see check_hooks.c): the first attempt reads X,
 * another thread commits X and Y, then the attempt reads Y. */
static atomic_int a_read, b_done;

static int body_conflict(stm_tx *tx, void *arg)
{
    int *runs = arg;
    int run = (*runs)++;
    intptr_t x = stm_read(tx, X);
    if (run == 0) {
        atomic_store(&a_read, 1);
        tu_wait_atleast(&b_done, 1, TU_HANDSHAKE_MS);
    }
    intptr_t y = stm_read(tx, Y);
    stm_write(tx, Z, x + y);
    return 0;
}

static int body_b(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, X, 10);
    stm_write(tx, Y, 20);
    return 0;
}

static void *conflict_b(void *p)
{
    (void)p;
    if (!tu_wait_atleast(&a_read, 1, TU_HANDSHAKE_MS))
        return (void *)1;
    int rc = stm_atomically(body_b, NULL);
    atomic_store(&b_done, 1);
    return rc == 0 ? NULL : (void *)2;
}

static void run_conflict(int *runs)
{
    pthread_t t = tu_run_thread(conflict_b, NULL);
    ck_assert_int_eq(stm_atomically(body_conflict, runs), 0);
    ck_assert_ptr_null(tu_join(t));
}

START_TEST(test_conflict_counted)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    int runs = 0;
    run_conflict(&runs);
    stm_stats_get(&b);
    ck_assert_int_eq(runs, 2);
    ck_assert_int_eq(stm_tvar_peek(Z), 30);
    ck_assert_uint_eq(b.aborts - a.aborts, 1);
    ck_assert_uint_eq(b.aborts_conflict - a.aborts_conflict, 1);
    ck_assert_uint_eq(b.aborts_explicit - a.aborts_explicit, 0);
    ck_assert_uint_eq(b.commits - a.commits, 2);
}
END_TEST

/* A commit that fails validation: the first attempt reads X, another
 * thread commits X, then the attempt writes Z and returns.  Its commit
 * finds X changed; the body runs again, and the second run's result is
 * stm_atomically's. */
static int body_stale(stm_tx *tx, void *arg)
{
    int *runs = arg;
    int run = (*runs)++;
    intptr_t x = stm_read(tx, X);
    if (run == 0) {
        atomic_store(&a_read, 1);
        tu_wait_atleast(&b_done, 1, TU_HANDSHAKE_MS);
    }
    stm_write(tx, Z, x + 100);
    return 40 + run;
}

START_TEST(test_validate_counted)
{
    make_vars();
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    struct stm_stats a, b;
    stm_stats_get(&a);
    int runs = 0;
    pthread_t t = tu_run_thread(conflict_b, NULL);
    ck_assert_int_eq(stm_atomically(body_stale, &runs), 41);
    ck_assert_ptr_null(tu_join(t));
    stm_stats_get(&b);
    ck_assert_int_eq(runs, 2);
    ck_assert_int_eq(stm_tvar_peek(Z), 110);
    ck_assert_uint_eq(b.aborts - a.aborts, 1);
    ck_assert_uint_eq(b.aborts_validate - a.aborts_validate, 1);
    ck_assert_uint_eq(b.aborts_conflict - a.aborts_conflict, 0);
    ck_assert_uint_eq(b.commits - a.commits, 2);
}
END_TEST

/* -ENOMEM attempts are counted as aborts_nomem */
static int body_big_read(stm_tx *tx, void *arg)
{
    stm_tvar **vs = arg;
    intptr_t s = 0;
    for (int i = 0; i < 2000; i++)
        s += stm_read(tx, vs[i]);
    void *p = stm_alloc(tx, 10);
    stm_free(tx, p); /* freed after the commit */
    stm_write(tx, Z, s);
    return 0;
}

START_TEST(test_nomem_counted)
{
    make_vars();
    stm_tvar **vs = malloc(2000 * sizeof *vs);
    ck_assert_ptr_nonnull(vs);
    for (int i = 0; i < 2000; i++) {
        vs[i] = stm_tvar_new(1);
        ck_assert_ptr_nonnull(vs[i]);
    }
    ck_assert_int_eq(stm_atomically(body_inc, NULL), 0); /* the descriptor */
    struct stm_stats a, b;
    stm_stats_get(&a);
    int nomem = 0;
    bool ok = false;
    for (long n = 0; n < 200 && !ok; n++) {
        stm__fault_alloc_after(n);
        int rc = stm_atomically(body_big_read, vs);
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        if (fired) {
            ck_assert_int_eq(rc, -ENOMEM);
            nomem++;
        } else {
            ck_assert_int_eq(rc, 0);
            ok = true;
        }
    }
    ck_assert(ok);
    ck_assert_int_ge(nomem, 1);
    stm_stats_get(&b);
    ck_assert_uint_eq(b.aborts_nomem - a.aborts_nomem, (uint64_t)nomem);
    ck_assert_uint_eq(b.aborts - a.aborts, (uint64_t)nomem);
    ck_assert_uint_eq(b.commits - a.commits, 1);
    ck_assert_int_eq(stm_tvar_peek(Z), 2000);
    for (int i = 0; i < 2000; i++)
        stm_tvar_free(vs[i]);
    free(vs);
    stm__reclaim_flush();
}
END_TEST

/* ---- stm_shutdown ------------------------------------------------------ */

START_TEST(test_shutdown_resets)
{
    make_vars();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    stm_tvar_free(X);
    stm_tvar_free(Y);
    stm_tvar_free(Z);
    stm_shutdown();
    struct stm_stats s;
    stm_stats_get(&s);
    ck_assert_uint_eq(s.commits, 0);
    ck_assert_uint_eq(s.aborts, 0);
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    /* the library starts afresh */
    make_vars();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    stm_stats_get(&s);
    ck_assert_uint_eq(s.commits, 3);
    ck_assert_int_eq(stm_tvar_peek(Z), 3);
    stm_shutdown();
}
END_TEST

/* Issue #11, defect 5: a thread that is alive but idle at stm_shutdown()
 * has its counts reset too ("since start-up or stm_shutdown()"), and
 * counts on from zero afterwards, also once it exits. */
static atomic_int idle_step, main_step;

static void *idle_counter(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    ck_assert_int_eq(stm_atomically(body_abort, NULL), 3);
    atomic_store(&idle_step, 1);
    /* idle, with its descriptor, while the main thread shuts down */
    ck_assert(tu_wait_atleast(&main_step, 1, TU_HANDSHAKE_MS));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(stm_atomically(body_inc, NULL), 0);
    atomic_store(&idle_step, 2);
    ck_assert(tu_wait_atleast(&main_step, 2, TU_HANDSHAKE_MS));
    return NULL;
}

START_TEST(test_shutdown_resets_idle_threads)
{
    make_vars();
    atomic_store(&idle_step, 0);
    atomic_store(&main_step, 0);
    pthread_t t = tu_run_thread(idle_counter, NULL);
    ck_assert(tu_wait_atleast(&idle_step, 1, TU_HANDSHAKE_MS));
    struct stm_stats s;
    stm_stats_get(&s);
    ck_assert_uint_ge(s.commits, 50);
    ck_assert_uint_ge(s.aborts_explicit, 1);
    stm_shutdown();
    stm_stats_get(&s);
    ck_assert_uint_eq(s.commits, 0);
    ck_assert_uint_eq(s.aborts, 0);
    ck_assert_uint_eq(s.aborts_explicit, 0);
    ck_assert_uint_eq(s.reclaimed, 0);
    atomic_store(&main_step, 1);
    ck_assert(tu_wait_atleast(&idle_step, 2, TU_HANDSHAKE_MS));
    stm_stats_get(&s);
    ck_assert_uint_eq(s.commits, 3);
    ck_assert_uint_eq(s.aborts, 0);
    atomic_store(&main_step, 2);
    tu_join(t);
    stm_stats_get(&s); /* folded when it exited: still 3 */
    ck_assert_uint_eq(s.commits, 3);
    ck_assert_uint_eq(s.aborts_explicit, 0);
    ck_assert_int_eq(stm_tvar_peek(Z), 53);
    stm_tvar_free(X);
    stm_tvar_free(Y);
    stm_tvar_free(Z);
    stm_shutdown();
}
END_TEST

/* ---- stm_strerror -------------------------------------------------------- */

START_TEST(test_strerror)
{
    int errs[] = {-ENOMEM, -EDEADLK, -ETIMEDOUT, -EINVAL, 0,
                  -123456, -ELOOP,   -EMFILE,    -EAGAIN, -ECANCELED};
    enum { N = sizeof errs / sizeof errs[0] };
    const char *s[N];
    for (int i = 0; i < N; i++) {
        s[i] = stm_strerror(errs[i]);
        ck_assert_ptr_nonnull(s[i]);
        ck_assert_uint_gt(strlen(s[i]), 0);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(s[i], s[j]) != 0, "stm_strerror(%d) == stm_strerror(%d): %s",
                          errs[i], errs[j], s[i]);
    /* positive values name the same error */
    ck_assert_ptr_nonnull(stm_strerror(ENOMEM));
    ck_assert_str_eq(stm_strerror(ENOMEM), s[0]);
    ck_assert_str_eq(stm_strerror(EDEADLK), s[1]);
    ck_assert_ptr_nonnull(stm_strerror(123456));
    ck_assert_ptr_nonnull(stm_strerror(INT32_MIN));
    ck_assert_ptr_nonnull(stm_strerror(INT32_MAX));
    /* static: the same string every time */
    ck_assert_ptr_eq(stm_strerror(-ENOMEM), s[0]);
}
END_TEST

/* ---- STM_STATS=1 --------------------------------------------------------- */

/* What the re-run child does: a few transactions and one conflict on TVars
 * named "stats_hot_x" and "stats_hot_y", then exit(0). */
static int stats_child(void)
{
    X = stm_tvar_new(1);
    Y = stm_tvar_new(2);
    Z = stm_tvar_new(0);
    if (!X || !Y || !Z)
        return 10;
    if (stm_tvar_set_name(X, "stats_hot_x") != 0 || stm_tvar_set_name(Y, "stats_hot_y") != 0)
        return 11;
    for (int i = 0; i < 10; i++)
        if (stm_atomically(body_inc, NULL) != 0)
            return 12;
    int runs = 0;
    pthread_t t;
    if (pthread_create(&t, NULL, conflict_b, NULL) != 0)
        return 13;
    if (stm_atomically(body_conflict, &runs) != 0)
        return 14;
    void *res;
    pthread_join(t, &res);
    if (res != NULL || runs != 2)
        return 15;
    exit(0); /* the report is printed at exit */
}

/* The re-run child for the stm_shutdown case: the report comes out at
 * stm_shutdown(), before the marker line, and only there. */
static int stats_child_shutdown(void)
{
    Z = stm_tvar_new(0);
    if (!Z)
        return 10;
    for (int i = 0; i < 3; i++)
        if (stm_atomically(body_inc, NULL) != 0)
            return 12;
    stm_tvar_free(Z); /* reclaimed by stm_shutdown */
    stm_shutdown();
    fprintf(stderr, "MARKER after stm_shutdown\n");
    fflush(stderr);
    Z = stm_tvar_new(0);
    if (!Z)
        return 10;
    for (int i = 0; i < 2; i++)
        if (stm_atomically(body_inc, NULL) != 0)
            return 12;
    exit(0);
}

/* Runs this program as a stats child; returns what it printed on stderr. */
static char *run_child_mode(const char *mode, bool stats_on, int *status)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        if (stats_on)
            setenv("STM_STATS", "1", 1);
        else
            unsetenv("STM_STATS");
        char *argv[] = {"check_stats", (char *)mode, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (;;) {
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, status, 0), pid);
    return buf;
}

static char *run_child(bool stats_on, int *status)
{
    return run_child_mode("--stats-child", stats_on, status);
}

START_TEST(test_stats_report_at_shutdown)
{
    int status;
    char *out = run_child_mode("--stats-child-shutdown", true, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x: %s", status,
                  out);
    char *report = strstr(out, "commits");
    char *marker = strstr(out, "MARKER");
    ck_assert_msg(report != NULL, "no report in: %s", out);
    ck_assert_msg(marker != NULL, "no marker in: %s", out);
    ck_assert_msg(report < marker, "the report came after stm_shutdown returned: %s", out);
    ck_assert_msg(strstr(report + 1, "commits") == NULL, "the report came out twice: %s", out);
    free(out);
}
END_TEST

START_TEST(test_stats_report)
{
    int status;
    char *out = run_child(true, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x: %s", status,
                  out);
    ck_assert_msg(strstr(out, "commits") != NULL, "no commits line in: %s", out);
    ck_assert_msg(strstr(out, "stats_hot_x") != NULL || strstr(out, "stats_hot_y") != NULL,
                  "the conflicting TVar is not named in: %s", out);
    free(out);
}
END_TEST

START_TEST(test_stats_report_off)
{
    int status;
    char *out = run_child(false, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x: %s", status,
                  out);
    ck_assert_msg(strstr(out, "commits") == NULL, "a report without STM_STATS: %s", out);
    free(out);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("counters");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_commits_exact);
    tcase_add_test(tc, test_nested_counts_once);
    tcase_add_test(tc, test_abort_counted);
    tcase_add_test(tc, test_deadlk_not_a_commit);
    tcase_add_test(tc, test_commits_summed_over_threads);
    tcase_add_test(tc, test_retry_counted);
    tcase_add_test(tc, test_conflict_counted);
    tcase_add_test(tc, test_validate_counted);
    tcase_add_test(tc, test_nomem_counted);
    tcase_add_test(tc, test_shutdown_resets);
    tcase_add_test(tc, test_shutdown_resets_idle_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("strings");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_stats_report);
    tcase_add_test(tc, test_stats_report_off);
    tcase_add_test(tc, test_stats_report_at_shutdown);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--stats-child") == 0)
        return stats_child();
    if (argc > 1 && strcmp(argv[1], "--stats-child-shutdown") == 0)
        return stats_child_shutdown();
    return tu_run_suite(stats_suite());
}
