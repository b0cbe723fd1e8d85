/*
 * check_watch_wall.c - watchers that read wall-clock deadlines
 * (stm_elapsed_wall): they run when the deadline comes, and at once when
 * the system time is set (simulated with the test hook
 * stm__test_wall_shift, which does what a clock change does).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <check.h>

#include "stm.h"
#include "stm-internal.h"
#include "testutil.h"

struct wallwatch {
    stm_tvar *deadline;        /* wall-clock ns */
    atomic_int runs;           /* runs whose value was true */
    _Atomic int64_t wall_seen; /* stm_tx_wall_now of the true run */
    _Atomic int64_t mono_seen; /* stm_now() in that run */
};

static intptr_t wall_fn(stm_tx *tx, void *arg)
{
    struct wallwatch *s = arg;
    return stm_elapsed_wall(tx, stm_read(tx, s->deadline));
}

static void after_true(void *arg)
{
    atomic_fetch_add(&((struct wallwatch *)arg)->runs, 1);
}

static void wall_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct wallwatch *s = arg;
    if (v) {
        atomic_store(&s->wall_seen, stm_tx_wall_now(tx));
        atomic_store(&s->mono_seen, stm_now());
        stm_after_commit(tx, after_true, s);
    }
}

static int unwatch_body(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

/* Deadline an hour away; the system time is set past it: the watcher runs
 * at once (not an hour later), and sees the new time. */
START_TEST(test_shift_forward_runs_now)
{
    struct wallwatch s = {0};
    int64_t w0 = stm_wall_now();
    s.deadline = stm_tvar_new(w0 + STM_SEC(3600));
    ck_assert_ptr_nonnull(s.deadline);
    stm_watch *w = stm_atomically_watch(wall_fn, wall_cb, &s, STM_WATCH_CHANGES_ONLY);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(atomic_load(&s.runs), 0);
    stm__test_wall_shift(STM_SEC(3601));
    bool ran = tu_wait_atleast(&s.runs, 1, TU_HANDSHAKE_MS);
    stm__test_wall_shift(-STM_SEC(3601));
    ck_assert_msg(ran, "the watcher did not run within 10 s of the clock change");
    ck_assert(atomic_load(&s.wall_seen) >= w0 + STM_SEC(3600));
    ck_assert_int_eq(stm_atomically(unwatch_body, w), 0);
    stm_tvar_free(s.deadline);
}
END_TEST

/* A clock change that does not reach the deadline re-runs the watcher
 * (value still false: no callback) and leaves it waiting; the deadline
 * still comes later. */
START_TEST(test_shift_short_of_deadline)
{
    struct wallwatch s = {0};
    s.deadline = stm_tvar_new(stm_wall_now() + STM_SEC(3600));
    stm_watch *w = stm_atomically_watch(wall_fn, wall_cb, &s, STM_WATCH_CHANGES_ONLY);
    ck_assert_ptr_nonnull(w);
    struct stm_stats a, b;
    stm_stats_get(&a);
    stm__test_wall_shift(STM_SEC(60));
    /* the re-run is a deadline run: wait for it to be counted */
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * 1000000;
    do {
        tu_sleep_ms(1);
        stm_stats_get(&b);
    } while (b.timer_fires == a.timer_fires && tu_now_ns() < end);
    ck_assert_msg(b.timer_fires > a.timer_fires, "no run after the clock change");
    ck_assert_int_eq(atomic_load(&s.runs), 0);
    /* now move the deadline close: it comes by itself */
    int64_t close = stm_wall_now() + STM_MSEC(30);
    int64_t m0 = stm_now();
    stm_tvar_poke(s.deadline, close);
    ck_assert(tu_wait_atleast(&s.runs, 1, TU_HANDSHAKE_MS));
    stm__test_wall_shift(-STM_SEC(60));
    ck_assert(atomic_load(&s.wall_seen) >= close);
    /* 30 ms of wall clock are (close to) 30 ms of monotonic clock */
    ck_assert(atomic_load(&s.mono_seen) - m0 >= STM_MSEC(30) - STM_USEC(100));
    ck_assert_int_eq(stm_atomically(unwatch_body, w), 0);
    stm_tvar_free(s.deadline);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("watch_wall");
    TCase *tc = tcase_create("wall");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shift_forward_runs_now);
    tcase_add_test(tc, test_shift_short_of_deadline);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(make_suite)
