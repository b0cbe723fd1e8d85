/*
 * check_starvation.c - stress: a long transaction against short writers.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A long transaction reads all of 64 TVars, spinning a while between
 * reads, and then writes two of them; short writer threads meanwhile keep
 * changing random pairs of the 64 in tight loops.  With invisible reads
 * the long one loses nearly every time, and without a progress guarantee
 * it may never commit.  stm.h promises one: after STM_SERIAL_AFTER
 * conflict restarts in a row the transaction runs in serial mode and
 * cannot be aborted again.
 *
 * The writers only stop once the long threads have made all their commits,
 * so the long transactions must get through *while* the writers run.  All
 * writes keep the sum of the 64 at 0, checked inside every attempt.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

#define NVARS 64

static stm_tvar *vars[NVARS];
static stm_tvar *long_commits; /* incremented by each long transaction */
static atomic_int long_running; /* writers stop when this reaches 0 */
static atomic_int bad_rc;
static atomic_long sum_violations;
static _Atomic intptr_t first_bad_sum;

/* Spin between two reads of the long transaction: the time, not a loop
 * count, so that sanitizers do not shorten the window in which writers
 * get in. */
#define LONG_SPIN_NS 20000

struct long_thread {
    pthread_t tid;
    int id;
    long commits_wanted;
    long commits;
    long attempts;
    int k; /* writes vars[k] and vars[k + 1] */
};

static void note_sum(intptr_t sum)
{
    if (sum != 0) {
        intptr_t zero = 0;
        atomic_compare_exchange_strong(&first_bad_sum, &zero, sum);
        atomic_fetch_add(&sum_violations, 1);
    }
}

static int long_body(stm_tx *tx, void *arg)
{
    struct long_thread *t = arg;
    t->attempts++;
    intptr_t sum = 0;
    for (int i = 0; i < NVARS; i++) {
        sum += stm_read(tx, vars[i]);
        tu_spin_ns(LONG_SPIN_NS);
    }
    note_sum(sum); /* opacity: also in attempts that will be restarted */
    int k = t->k, k2 = (t->k + 1) % NVARS;
    stm_write(tx, vars[k], stm_read(tx, vars[k]) + 1);
    stm_write(tx, vars[k2], stm_read(tx, vars[k2]) - 1);
    stm_write(tx, long_commits, stm_read(tx, long_commits) + 1);
    return 0;
}

static void *long_main(void *p)
{
    struct long_thread *t = p;
    for (long i = 0; i < t->commits_wanted; i++) {
        t->k = (int)((i * 7 + t->id * 13) % NVARS);
        int rc = stm_atomically(long_body, t);
        if (rc != 0) {
            atomic_store(&bad_rc, rc);
            break;
        }
        t->commits++;
    }
    atomic_fetch_sub(&long_running, 1);
    return NULL;
}

struct writer {
    pthread_t tid;
    int id;
    int j, k;
    atomic_long commits; /* read by the main thread while this one runs */
};

static int short_body(stm_tx *tx, void *arg)
{
    const struct writer *w = arg;
    stm_write(tx, vars[w->j], stm_read(tx, vars[w->j]) + 1);
    stm_write(tx, vars[w->k], stm_read(tx, vars[w->k]) - 1);
    return 0;
}

static void *writer_main(void *p)
{
    struct writer *w = p;
    uint64_t rng = tu_seed(700 + (uint64_t)w->id);
    while (atomic_load(&long_running) > 0) {
        w->j = (int)tu_rand_below(&rng, NVARS);
        w->k = (int)tu_rand_below(&rng, NVARS - 1);
        if (w->k >= w->j)
            w->k++;
        int rc = stm_atomically(short_body, w);
        if (rc != 0) {
            atomic_store(&bad_rc, rc);
            break;
        }
        atomic_fetch_add(&w->commits, 1);
    }
    return NULL;
}

static int check_sum_body(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t sum = 0;
    for (int i = 0; i < NVARS; i++)
        sum += stm_read(tx, vars[i]);
    return sum == 0 ? 0 : 1;
}

static void run_starvation(int nlong, long commits_each, int nwriters)
{
    for (int i = 0; i < NVARS; i++) {
        vars[i] = stm_tvar_new(0);
        ck_assert_ptr_nonnull(vars[i]);
    }
    long_commits = stm_tvar_new(0);
    ck_assert_ptr_nonnull(long_commits);
    atomic_store(&long_running, nlong);
    atomic_store(&bad_rc, 0);
    atomic_store(&sum_violations, 0);
    atomic_store(&first_bad_sum, 0);

    struct stm_stats before, after;
    stm_stats_get(&before);
    int64_t t0 = tu_now_ns();

    struct writer *w = calloc((size_t)nwriters, sizeof *w);
    struct long_thread *lt = calloc((size_t)nlong, sizeof *lt);
    ck_assert(w != NULL && lt != NULL);
    for (int i = 0; i < nwriters; i++) {
        w[i].id = i;
        w[i].tid = tu_run_thread(writer_main, &w[i]);
    }
    /* Start the long ones only once every writer is committing. */
    for (int i = 0; i < nwriters; i++) {
        int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * INT64_C(1000000);
        while (atomic_load(&w[i].commits) == 0 && tu_now_ns() < end)
            tu_sleep_ms(1);
    }
    long writer_commits_at_start = 0;
    for (int i = 0; i < nwriters; i++)
        writer_commits_at_start += atomic_load(&w[i].commits);
    for (int i = 0; i < nlong; i++) {
        lt[i].id = i;
        lt[i].commits_wanted = commits_each;
        lt[i].tid = tu_run_thread(long_main, &lt[i]);
    }
    for (int i = 0; i < nlong; i++)
        tu_join(lt[i].tid);
    int64_t t1 = tu_now_ns();
    long writer_commits_while_long = -writer_commits_at_start;
    for (int i = 0; i < nwriters; i++)
        writer_commits_while_long += atomic_load(&w[i].commits);
    for (int i = 0; i < nwriters; i++)
        tu_join(w[i].tid);
    stm_stats_get(&after);

    long attempts = 0, writer_commits = 0;
    for (int i = 0; i < nlong; i++)
        attempts += lt[i].attempts;
    for (int i = 0; i < nwriters; i++)
        writer_commits += atomic_load(&w[i].commits);
    uint64_t serial = after.serial_runs - before.serial_runs;
    fprintf(stderr,
            "starvation: %d long x %ld commits in %.3f s (%ld attempts), %d writers: "
            "%ld commits (%ld while the long ones ran); serial runs %llu, aborts %llu\n",
            nlong, commits_each, (double)(t1 - t0) / 1e9, attempts, nwriters, writer_commits,
            writer_commits_while_long, (unsigned long long)serial,
            (unsigned long long)(after.aborts - before.aborts));

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&sum_violations) == 0,
                  "opacity: %ld long attempts saw sum %ld, want 0",
                  atomic_load(&sum_violations), (long)atomic_load(&first_bad_sum));
    /* Completion within the test's timeout is the main assertion. */
    for (int i = 0; i < nlong; i++)
        ck_assert_int_eq(lt[i].commits, commits_each);
    ck_assert_int_eq(stm_tvar_peek(long_commits), (intptr_t)nlong * commits_each);
    ck_assert_int_eq(stm_atomically(check_sum_body, NULL), 0);
    /* The writers did run against the long transactions. */
    ck_assert_msg(writer_commits_while_long > 0, "the writers made no commit meanwhile");
    /*
     * Why serial mode must have been used: an attempt of the long
     * transaction lasts at least 64 x LONG_SPIN_NS = 1.28 ms of wall time
     * (the spin measures time, so sanitizers or preemption only make it
     * longer), while several writer threads commit in tight loops - many
     * hundreds of commits, each touching 2 of the 64 TVars, in that
     * window, even on a loaded 2-core machine.  So nearly every attempt
     * meets an already-read TVar that has changed, and is restarted.  Of
     * the long transactions' commits, at least one then needs
     * STM_SERIAL_AFTER (16) restarts in a row, i.e. serial mode.  The
     * attempt count shows the restarts.
     */
    ck_assert_msg(attempts > nlong * commits_each, "no long attempt was ever restarted");
    ck_assert_msg(serial > 0, "no serial run although %ld attempts for %ld commits", attempts,
                  nlong * commits_each);

    free(w);
    free(lt);
    for (int i = 0; i < NVARS; i++)
        stm_tvar_free(vars[i]);
    stm_tvar_free(long_commits);
    stm_shutdown();
}

/* One long transaction, 20 commits, against 3 writers. */
START_TEST(test_long_vs_writers)
{
    run_starvation(1, 20, 3);
}
END_TEST

/* Two long threads that both need serial mode, against 2 writers. */
START_TEST(test_two_long_vs_writers)
{
    run_starvation(2, 10, 2);
}
END_TEST

static Suite *starvation_suite(void)
{
    Suite *s = suite_create("starvation");
    TCase *tc = tcase_create("starvation");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_long_vs_writers);
    tcase_add_test(tc, test_two_long_vs_writers);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(starvation_suite)
