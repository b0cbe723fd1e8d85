/*
 * check_pingpong.c - stress: blocking hand-offs through stm_retry().
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Two threads share one TVar `turn`.  A waits (stm_retry) until turn == 0
 * and sets it to 1; B waits until it is 1 and sets it to 0.  Every round
 * trip is two blocking hand-offs, so a lost wake-up hangs the test (and the
 * Check timeout fails it).  The ring variant passes the turn around more
 * threads than there are cores, all waiting on the same TVar.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

static stm_tvar *turn;
static atomic_int bad_rc;

struct player {
    pthread_t tid;
    intptr_t me;    /* wait until turn == me ... */
    intptr_t next;  /* ... then set it to next */
    stm_tvar *count; /* incremented in the same transaction */
    long rounds;
    long done;
};

static int play_body(stm_tx *tx, void *arg)
{
    const struct player *p = arg;
    if (stm_read(tx, turn) != p->me)
        stm_retry(tx);
    stm_write(tx, turn, p->next);
    stm_write(tx, p->count, stm_read(tx, p->count) + 1);
    return 0;
}

static void *player_main(void *arg)
{
    struct player *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        int rc = stm_atomically(play_body, p);
        if (rc != 0) {
            atomic_store(&bad_rc, rc);
            break;
        }
        p->done++;
    }
    return NULL;
}

static void run_ring(int nplayers, long rounds)
{
    struct player *p = calloc((size_t)nplayers, sizeof *p);
    ck_assert_ptr_nonnull(p);
    turn = stm_tvar_new(0);
    ck_assert_ptr_nonnull(turn);
    atomic_store(&bad_rc, 0);
    for (int i = 0; i < nplayers; i++) {
        p[i].me = i;
        p[i].next = (i + 1) % nplayers;
        p[i].count = stm_tvar_new(0);
        ck_assert_ptr_nonnull(p[i].count);
        p[i].rounds = rounds;
    }

    struct stm_stats before, after;
    stm_stats_get(&before);
    int64_t t0 = tu_now_ns();
    for (int i = 0; i < nplayers; i++)
        p[i].tid = tu_run_thread(player_main, &p[i]);
    for (int i = 0; i < nplayers; i++)
        tu_join(p[i].tid);
    int64_t t1 = tu_now_ns();
    stm_stats_get(&after);

    fprintf(stderr,
            "pingpong: %d players x %ld rounds in %.3f s; retries %llu wakeups %llu "
            "aborts %llu\n",
            nplayers, rounds, (double)(t1 - t0) / 1e9,
            (unsigned long long)(after.retries - before.retries),
            (unsigned long long)(after.wakeups - before.wakeups),
            (unsigned long long)(after.aborts - before.aborts));

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    for (int i = 0; i < nplayers; i++) {
        ck_assert_int_eq(p[i].done, rounds);
        ck_assert_int_eq(stm_tvar_peek(p[i].count), rounds);
    }
    /* The last player to move handed the turn back to player 0. */
    ck_assert_int_eq(stm_tvar_peek(turn), 0);
    /* Each player's next move needs the others' moves first, so threads
     * keep finding the turn not theirs (retry) and being woken by the
     * commit that hands it over.  Over thousands of round trips some
     * of those waits block: wakeups > 0. */
    ck_assert_msg(after.retries > before.retries, "no retry was counted");
    ck_assert_msg(after.wakeups > before.wakeups, "no wakeup was counted");
    ck_assert_msg(after.commits - before.commits >= (uint64_t)(nplayers * rounds),
                  "commits grew by %llu, want >= %ld",
                  (unsigned long long)(after.commits - before.commits), nplayers * rounds);

    for (int i = 0; i < nplayers; i++)
        stm_tvar_free(p[i].count);
    stm_tvar_free(turn);
    free(p);
    stm_shutdown();
}

/* A and B: 100,000 round trips (10,000 under sanitizers). */
START_TEST(test_pingpong)
{
    run_ring(2, TU_SCALE(100000L, 10000L));
}
END_TEST

/* The turn goes round more threads than cores; every hand-off wakes the
 * one thread whose turn it is among several waiting on the same TVar. */
START_TEST(test_ring)
{
    int n = tu_ncpu() + 2;
    if (n < 4)
        n = 4;
    if (n > 16)
        n = 16;
    run_ring(n, TU_SCALE(20000L, 2000L));
}
END_TEST

static Suite *pingpong_suite(void)
{
    Suite *s = suite_create("pingpong");
    TCase *tc = tcase_create("pingpong");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pingpong);
    tcase_add_test(tc, test_ring);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(pingpong_suite)
