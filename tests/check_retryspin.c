/*
 * check_retryspin.c - stm_retry() watches what it read for a moment
 * before it sleeps (lib/retryspin.c): a change within the spin needs no
 * sleep and no registration; a waiter that spins and then sleeps is still
 * woken; a spin that does not pay is given up (counted, not timed); and
 * stm_set_wake_spin() governs it.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "../lib/stm-internal.h"
#include "testutil.h"

enum { ROUNDS = 40 };

struct waiter {
    stm_tvar *x;            /* one TVar for all rounds (target i in round i) */
    stm_tvar *vars[ROUNDS]; /* or one per round (waits until it is non-zero) */
    bool per_round;
    atomic_int tid, done;     /* rounds finished */
    atomic_long paid;         /* W's stm__self->rspin.paid after each round */
    struct stm__rspin counts; /* W's counts at the end */
};

static int body_wait_ge(stm_tx *tx, void *arg)
{
    struct waiter *w = arg;
    int round = atomic_load(&w->done) + 1;
    if (w->per_round) {
        if (stm_read(tx, w->vars[round - 1]) == 0)
            stm_retry(tx);
    } else if (stm_read(tx, w->x) < round) {
        stm_retry(tx);
    }
    return 0;
}

static void *thr_waiter(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, (int)tu_gettid());
    for (int i = 0; i < ROUNDS; i++) {
        ck_assert_int_eq(stm_atomically(body_wait_ge, w), 0);
        atomic_store(&w->paid, (long)stm__self->rspin.paid);
        atomic_store(&w->done, i + 1);
    }
    w->counts = stm__self->rspin;
    return NULL;
}

static int body_set(stm_tx *tx, void *arg)
{
    intptr_t *a = arg;
    stm_write(tx, (stm_tvar *)a[0], a[1]);
    return 0;
}

static void set(stm_tvar *var, intptr_t v)
{
    intptr_t a[2] = {(intptr_t)var, v};
    ck_assert_int_eq(stm_atomically(body_set, a), 0);
}

static uint64_t retries_now(void)
{
    struct stm_stats st;
    stm_stats_get(&st);
    return st.retries;
}

/* Each round the change comes only once the waiter sleeps (seen in
 * /proc): every spin is in vain, so after a few the waiter stops spinning
 * for this TVar and sleeps at once, probing now and then -- and it is
 * woken every time. */
static struct waiter *run_sleepers(void)
{
    struct waiter *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->x = stm_tvar_new(0);
    pthread_t t = tu_run_thread(thr_waiter, w);
    ck_assert(tu_wait_atleast(&w->tid, 1, TU_HANDSHAKE_MS));
    for (int i = 1; i <= ROUNDS; i++) {
        ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(&w->tid), TU_HANDSHAKE_MS),
                      "round %d: the waiter did not go to sleep", i);
        set(w->x, i);
        ck_assert_msg(tu_wait_atleast(&w->done, i, TU_HANDSHAKE_MS),
                      "round %d: the waiter was not woken", i);
    }
    tu_join(t);
    stm_tvar_free(w->x);
    return w;
}

START_TEST(test_gives_up_and_sleeps)
{
    struct waiter *w = run_sleepers();
    struct stm__rspin *c = &w->counts;
    uint64_t all = c->paid + c->gave_up + c->skipped;
    ck_assert_uint_ge(all, ROUNDS); /* one retry a round at least */
    ck_assert_uint_eq(c->paid, 0);  /* the change never came in a spin */
    /* 8, 4, 2, 1, 0.5 us in vain, then off but for probes 8, 8, 16, ...
     * retries apart: 7 spins in 40 retries */
    ck_assert_msg(c->gave_up <= 10, "spun in vain %llu times of %llu",
                  (unsigned long long)c->gave_up, (unsigned long long)all);
    ck_assert_uint_ge(c->skipped, all - 10);
    free(w);
}
END_TEST

/* stm_set_wake_spin(0): no spin at all. */
START_TEST(test_off)
{
    ck_assert_int_eq(stm_set_wake_spin(0), 0);
    struct waiter *w = run_sleepers();
    ck_assert_uint_eq(w->counts.paid, 0);
    ck_assert_uint_eq(w->counts.gave_up, 0);
    ck_assert_uint_ge(w->counts.skipped, ROUNDS);
    free(w);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

/* With a long fixed window (10 ms) the change made right after the
 * waiter's retry began is seen while it spins: then the waiter never
 * registered (the TVar has no waiter flag, so the writer woke nobody).
 * Whichever way each round goes, no wake-up is lost. */
START_TEST(test_change_seen_while_spinning)
{
    ck_assert_int_eq(stm_set_wake_spin(STM_MSEC(10)), 0);
    struct waiter *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->per_round = true;
    for (int i = 0; i < ROUNDS; i++)
        w->vars[i] = stm_tvar_new(0);
    struct stm_stats st0;
    stm_stats_get(&st0);
    pthread_t t = tu_run_thread(thr_waiter, w);
    int paid_rounds = 0;
    for (int i = 0; i < ROUNDS; i++) {
        /* the waiter's retry of round i has begun (counted before the spin) */
        int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * INT64_C(1000000);
        while (retries_now() < st0.retries + (uint64_t)i + 1)
            ck_assert_msg(tu_now_ns() < end, "round %d: no retry", i + 1);
        long paid_before = atomic_load(&w->paid);
        set(w->vars[i], 1);
        ck_assert_msg(tu_wait_atleast(&w->done, i + 1, TU_HANDSHAKE_MS),
                      "round %d: the waiter was not woken", i + 1);
        if (atomic_load(&w->paid) > paid_before) {
            paid_rounds++;
            uintptr_t l = atomic_load(&w->vars[i]->lock);
            ck_assert_msg(!(l & STM__WT),
                          "round %d: saw the change while spinning, but "
                          "registered",
                          i + 1);
        }
    }
    tu_join(t);
    /* most rounds: the window is 10 ms and the change comes within
     * microseconds (lower bound loose: a preempted waiter may miss it) */
    ck_assert_int_ge(paid_rounds, 1);
    ck_assert_uint_eq(w->counts.paid, (uint64_t)paid_rounds);
    ck_assert_uint_eq(w->counts.skipped, 0);
    struct stm_stats st1;
    stm_stats_get(&st1);
    /* a spin that saw the change counts as a wake-up, as a sleep would
     * (a change seen only at the check after registering counts as
     * neither) */
    ck_assert_uint_ge(st1.wakeups - st0.wakeups, (uint64_t)paid_rounds);
    for (int i = 0; i < ROUNDS; i++)
        stm_tvar_free(w->vars[i]);
    free(w);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

/* A spin is bounded by the attempt's deadline: a retry whose deadline has
 * passed does not spin and returns at once (stm_atomically_until). */
static int body_wait_forever(stm_tx *tx, void *arg)
{
    if (stm_read(tx, arg) == 0)
        stm_retry(tx);
    return 0;
}

START_TEST(test_deadline_past_no_spin)
{
    ck_assert_int_eq(stm_set_wake_spin(STM_MSEC(10)), 0);
    stm_tvar *x = stm_tvar_new(0);
    int64_t t0 = tu_now_ns();
    ck_assert_int_eq(stm_atomically_until(body_wait_forever, x, stm_now() - 1), -ETIMEDOUT);
    ck_assert_int_lt(tu_now_ns() - t0, STM_SEC(5)); /* (loose) */
    ck_assert_uint_eq(stm__self->rspin.gave_up, 0);
    ck_assert_uint_eq(stm__self->rspin.paid, 0);
    stm_tvar_free(x);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

/* A waiter that leaves clears the TVar's waiter flag when its node was the
 * last (before, the flag stayed until the next writer cleared it, which
 * cost that writer the stripe's lock). */
static void *thr_wait_one(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->tid, (int)tu_gettid());
    ck_assert_int_eq(stm_atomically(body_wait_ge, w), 0);
    return NULL;
}

START_TEST(test_leaving_waiter_clears_flag)
{
    ck_assert_int_eq(stm_set_wake_spin(0), 0); /* so that it registers */
    struct waiter *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->x = stm_tvar_new(0);
    pthread_t t = tu_run_thread(thr_wait_one, w);
    ck_assert(tu_wait_atleast(&w->tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&w->tid), TU_HANDSHAKE_MS));
    ck_assert(atomic_load(&w->x->lock) & STM__WT); /* registered */
    set(w->x, 1);
    tu_join(t);
    ck_assert_msg(!(atomic_load(&w->x->lock) & STM__WT), "the flag outlived the last waiter");

    /* two waiters on x (each waits for x >= 2): one write wakes both, and
     * the flag goes with the last of them to leave */
    struct waiter *w2 = calloc(1, sizeof *w2);
    ck_assert_ptr_nonnull(w2);
    w2->x = w->x;
    atomic_store(&w->done, 1);
    atomic_store(&w2->done, 1);
    atomic_store(&w->tid, 0);
    t = tu_run_thread(thr_wait_one, w);
    pthread_t t2 = tu_run_thread(thr_wait_one, w2);
    ck_assert(tu_wait_atleast(&w->tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&w2->tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&w->tid), TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&w2->tid), TU_HANDSHAKE_MS));
    set(w->x, 2);
    tu_join(t);
    tu_join(t2);
    ck_assert(!(atomic_load(&w->x->lock) & STM__WT));
    stm_tvar_free(w->x);
    free(w);
    free(w2);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

static Suite *retryspin_suite(void)
{
    Suite *s = suite_create("retryspin");
    TCase *tc = tcase_create("spin");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_gives_up_and_sleeps);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_change_seen_while_spinning);
    tcase_add_test(tc, test_deadline_past_no_spin);
    tcase_add_test(tc, test_leaving_waiter_clears_flag);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(retryspin_suite)
