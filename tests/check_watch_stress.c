/*
 * check_watch_stress.c - watchers under concurrency: atomic reactions seen
 * by a concurrent auditor, stm_unwatch racing deadline runs and commits,
 * and watchers made and stopped while other threads write their TVars.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Iteration counts shrink under the sanitizers and valgrind (TU_SCALE).
 * A callback may run in attempts that are later discarded, so callbacks
 * here only check conditions that must hold in every attempt and record a
 * violation in an atomic counter; the tests assert the counters are 0.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

static stm_tvar *tv(intptr_t v)
{
    stm_tvar *t = stm_tvar_new(v);
    ck_assert_ptr_nonnull(t);
    return t;
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

static uint64_t watch_runs(void)
{
    struct stm_stats s;
    stm_stats_get(&s);
    return s.watch_runs;
}

/* ==== 1. y == 2x, for every observer ==================================== */

static stm_tvar *gx, *gy;
static atomic_int bad_audits, stop_audit;
static atomic_long audits;

static intptr_t x_fn(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_read(tx, gx);
}

static void double_cb(stm_tx *tx, intptr_t v, void *arg)
{
    (void)arg;
    stm_write(tx, gy, 2 * v);
}

struct writer {
    int id, iters;
};

static int body_add_x(stm_tx *tx, void *arg)
{
    intptr_t d = *(intptr_t *)arg;
    stm_write(tx, gx, stm_read(tx, gx) + d);
    return 0;
}

static void *writer_main(void *p)
{
    struct writer *w = p;
    uint64_t seed = tu_seed((uint64_t)w->id);
    for (int i = 0; i < w->iters; i++) {
        intptr_t d = (intptr_t)tu_rand_below(&seed, 9) - 4;
        ck_assert_int_eq(stm_atomically(body_add_x, &d), 0);
    }
    return NULL;
}

static int body_audit(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t y = stm_read(tx, gy); /* in both orders */
    intptr_t x = stm_read(tx, gx);
    intptr_t y2 = stm_read(tx, gy);
    if (y != 2 * x || y2 != y)
        atomic_fetch_add(&bad_audits, 1); /* in any attempt: opacity */
    return 0;
}

static void *auditor_main(void *p)
{
    (void)p;
    while (!atomic_load(&stop_audit)) {
        ck_assert_int_eq(stm_atomically(body_audit, NULL), 0);
        atomic_fetch_add(&audits, 1);
    }
    return NULL;
}

static void double_under_writers(int nwriters)
{
    gx = tv(1);
    gy = tv(0);
    atomic_store(&bad_audits, 0);
    atomic_store(&stop_audit, 0);
    atomic_store(&audits, 0);
    stm_watch *w = stm_atomically_watch(x_fn, double_cb, NULL, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(stm_tvar_peek(gy), 2);
    uint64_t r0 = watch_runs();
    pthread_t aud = tu_run_thread(auditor_main, NULL);
    pthread_t t[4];
    struct writer wr[4];
    int iters = TU_SCALE(20000, 1500);
    for (int i = 0; i < nwriters; i++) {
        wr[i] = (struct writer){i, iters};
        t[i] = tu_run_thread(writer_main, &wr[i]);
    }
    for (int i = 0; i < nwriters; i++)
        tu_join(t[i]);
    atomic_store(&stop_audit, 1);
    tu_join(aud);
    ck_assert_int_eq(atomic_load(&bad_audits), 0);
    ck_assert_int_gt(atomic_load(&audits), 0);
    intptr_t x = stm_tvar_peek(gx);
    ck_assert_int_eq(stm_tvar_peek(gy), 2 * x);
    ck_assert_uint_ge(watch_runs() - r0, (uint64_t)(nwriters * iters));
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    stm_tvar_free(gx);
    stm_tvar_free(gy);
    stm_shutdown();
}

START_TEST(test_double_two_writers)
{
    double_under_writers(2);
}
END_TEST

START_TEST(test_double_four_writers)
{
    double_under_writers(4);
}
END_TEST

/* ==== 2. stm_unwatch racing a deadline run (and commits) ================ */

/* cb must never be entered after stm_unwatch() returned: `stopped` is set
 * right after it returns, and the record is freed right after that (so a
 * later call is also a use after free under AddressSanitizer). */
struct racer {
    int64_t dl;
    stm_tvar *s; /* NULL, or a TVar another thread keeps writing */
    atomic_int stopped;
    stm_watch *w;
};

static atomic_long late_calls, deadline_calls, race_rounds;

static intptr_t racer_fn(stm_tx *tx, void *arg)
{
    struct racer *r = arg;
    intptr_t v = r->s ? stm_read(tx, r->s) & 1 : 0;
    return stm_elapsed(tx, r->dl) ? 2 + v : v;
}

static void racer_cb(stm_tx *tx, intptr_t v, void *arg)
{
    (void)tx;
    struct racer *r = arg;
    if (atomic_load(&r->stopped))
        atomic_fetch_add(&late_calls, 1);
    if (v >= 2)
        atomic_fetch_add(&deadline_calls, 1);
}

/* one slot per pair: the maker puts a watcher in, the stopper takes it */
struct pair {
    int id, rounds;
    stm_tvar *s;
    _Atomic(struct racer *) slot;
};

static void *maker_main(void *p)
{
    struct pair *pr = p;
    uint64_t seed = tu_seed((uint64_t)pr->id + 100);
    for (int i = 0; i < pr->rounds; i++) {
        while (atomic_load(&pr->slot) != NULL)
            sched_yield();
        struct racer *r = calloc(1, sizeof *r);
        ck_assert_ptr_nonnull(r);
        r->s = pr->s;
        atomic_init(&r->stopped, 0);
        r->dl = stm_now() + (int64_t)tu_rand_below(&seed, 300) * 1000; /* 0..300 us */
        r->w = stm_atomically_watch(racer_fn, racer_cb, r, 0);
        ck_assert_ptr_nonnull(r->w);
        atomic_store(&pr->slot, r);
    }
    return NULL;
}

static void *stopper_main(void *p)
{
    struct pair *pr = p;
    uint64_t seed = tu_seed((uint64_t)pr->id + 200);
    for (int i = 0; i < pr->rounds; i++) {
        struct racer *r;
        while ((r = atomic_exchange(&pr->slot, NULL)) == NULL)
            sched_yield();
        tu_spin_ns((int64_t)tu_rand_below(&seed, 300) * 1000);
        ck_assert_int_eq(stm_atomically(body_unwatch, r->w), 0);
        atomic_store(&r->stopped, 1);
        free(r);
        atomic_fetch_add(&race_rounds, 1);
    }
    return NULL;
}

static atomic_int poke_quit;

static void *poker_main(void *p)
{
    stm_tvar *s = p;
    intptr_t i = 0;
    while (!atomic_load(&poke_quit)) {
        ck_assert_int_eq(stm_tvar_poke(s, ++i), 0);
        if ((i & 63) == 0)
            sched_yield();
    }
    return NULL;
}

static void unwatch_race(bool with_commits)
{
    enum { PAIRS = 2 };
    atomic_store(&late_calls, 0);
    atomic_store(&deadline_calls, 0);
    atomic_store(&race_rounds, 0);
    atomic_store(&poke_quit, 0);
    stm_tvar *s = with_commits ? tv(0) : NULL;
    pthread_t poker = (pthread_t)0;
    if (with_commits)
        poker = tu_run_thread(poker_main, s);
    struct pair pr[PAIRS];
    pthread_t mk[PAIRS], st[PAIRS];
    int rounds = TU_SCALE(1500, 150);
    for (int i = 0; i < PAIRS; i++) {
        pr[i].id = i;
        pr[i].rounds = rounds;
        pr[i].s = s;
        atomic_init(&pr[i].slot, NULL);
        mk[i] = tu_run_thread(maker_main, &pr[i]);
        st[i] = tu_run_thread(stopper_main, &pr[i]);
    }
    for (int i = 0; i < PAIRS; i++) {
        tu_join(mk[i]);
        tu_join(st[i]);
    }
    if (with_commits) {
        atomic_store(&poke_quit, 1);
        tu_join(poker);
    }
    ck_assert_int_eq(atomic_load(&race_rounds), PAIRS * rounds);
    ck_assert_int_eq(atomic_load(&late_calls), 0);
    /* the race was real: some deadlines were served before their stop */
    ck_assert_int_gt(atomic_load(&deadline_calls), 0);
    if (with_commits) {
        stm_tvar_free(s); /* no watcher is left on it */
        stm__reclaim_flush();
    }
    stm_shutdown();
}

START_TEST(test_unwatch_races_deadline)
{
    unwatch_race(false);
}
END_TEST

START_TEST(test_unwatch_races_deadline_and_commits)
{
    unwatch_race(true);
}
END_TEST

/* ==== 3. making and stopping watchers while others write ================ */

enum { NV = 8, SLOTS = 16 };

static stm_tvar *vars[NV];
static atomic_int churn_quit, churn_bad;

struct sum {
    int a, b;
    stm_tvar *out;
    atomic_int stopped;
};

static intptr_t sum_fn(stm_tx *tx, void *arg)
{
    struct sum *s = arg;
    return stm_read(tx, vars[s->a]) + stm_read(tx, vars[s->b]);
}

static void sum_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct sum *s = arg;
    if (atomic_load(&s->stopped))
        atomic_fetch_add(&churn_bad, 1);
    stm_write(tx, s->out, v);
}

static void *churn_writer(void *p)
{
    uint64_t seed = tu_seed((uint64_t)(intptr_t)p + 300);
    while (!atomic_load(&churn_quit)) {
        int i = (int)tu_rand_below(&seed, NV);
        ck_assert_int_eq(stm_tvar_poke(vars[i], (intptr_t)tu_rand_below(&seed, 1000)), 0);
    }
    return NULL;
}

struct manager {
    int id, ops;
    struct sum *slot[SLOTS];
    stm_watch *w[SLOTS];
    long made, stopped;
};

static void manager_stop(struct manager *m, int k)
{
    ck_assert_int_eq(stm_atomically(body_unwatch, m->w[k]), 0);
    atomic_store(&m->slot[k]->stopped, 1);
    stm_tvar_free(m->slot[k]->out); /* nothing reads it */
    free(m->slot[k]);
    m->slot[k] = NULL;
    m->w[k] = NULL;
    m->stopped++;
}

static void *manager_main(void *p)
{
    struct manager *m = p;
    uint64_t seed = tu_seed((uint64_t)m->id + 400);
    for (int i = 0; i < m->ops; i++) {
        int k = (int)tu_rand_below(&seed, SLOTS);
        if (m->slot[k] != NULL) {
            manager_stop(m, k);
            continue;
        }
        struct sum *s = calloc(1, sizeof *s);
        ck_assert_ptr_nonnull(s);
        s->a = (int)tu_rand_below(&seed, NV);
        s->b = (int)tu_rand_below(&seed, NV);
        s->out = stm_tvar_new(-1);
        ck_assert_ptr_nonnull(s->out);
        atomic_init(&s->stopped, 0);
        m->w[k] = stm_atomically_watch(sum_fn, sum_cb, s, (i & 1) ? STM_WATCH_CHANGES_ONLY : 0);
        ck_assert_ptr_nonnull(m->w[k]);
        m->slot[k] = s;
        m->made++;
    }
    return NULL;
}

/* every live watcher's output equals the sum, in one snapshot */
static int body_check_sums(stm_tx *tx, void *arg)
{
    struct manager *m = arg;
    int bad = 0;
    for (int k = 0; k < SLOTS; k++) {
        struct sum *s = m->slot[k];
        if (s && stm_read(tx, s->out) != stm_read(tx, vars[s->a]) + stm_read(tx, vars[s->b]))
            bad++;
    }
    return bad;
}

START_TEST(test_churn)
{
    enum { MANAGERS = 2, WRITERS = 2 };
    for (int i = 0; i < NV; i++)
        vars[i] = tv(i);
    atomic_store(&churn_quit, 0);
    atomic_store(&churn_bad, 0);
    uint64_t r0 = watch_runs();
    pthread_t wt[WRITERS], mt[MANAGERS];
    static struct manager mg[MANAGERS];
    for (int i = 0; i < WRITERS; i++)
        wt[i] = tu_run_thread(churn_writer, (void *)(intptr_t)i);
    for (int i = 0; i < MANAGERS; i++) {
        memset(&mg[i], 0, sizeof mg[i]);
        mg[i].id = i;
        mg[i].ops = TU_SCALE(4000, 400);
        mt[i] = tu_run_thread(manager_main, &mg[i]);
    }
    for (int i = 0; i < MANAGERS; i++)
        tu_join(mt[i]);
    atomic_store(&churn_quit, 1);
    for (int i = 0; i < WRITERS; i++)
        tu_join(wt[i]);
    /* quiet now: every live watcher agrees with its TVars */
    for (int i = 0; i < MANAGERS; i++) {
        ck_assert_int_gt(mg[i].made, 0);
        ck_assert_int_eq(stm_atomically(body_check_sums, &mg[i]), 0);
    }
    /* and still reacts */
    for (int v = 0; v < NV; v++)
        ck_assert_int_eq(stm_tvar_poke(vars[v], 1000 + v), 0);
    for (int i = 0; i < MANAGERS; i++)
        ck_assert_int_eq(stm_atomically(body_check_sums, &mg[i]), 0);
    for (int i = 0; i < MANAGERS; i++)
        for (int k = 0; k < SLOTS; k++)
            if (mg[i].slot[k])
                manager_stop(&mg[i], k);
    ck_assert_int_eq(atomic_load(&churn_bad), 0);
    ck_assert_uint_gt(watch_runs() - r0, 0);
    /* balanced: nothing reads the TVars any more, so they may be freed */
    uint64_t r1 = watch_runs();
    for (int v = 0; v < NV; v++)
        ck_assert_int_eq(stm_tvar_poke(vars[v], -1), 0);
    ck_assert_uint_eq(watch_runs(), r1);
    for (int v = 0; v < NV; v++)
        stm_tvar_free(vars[v]);
    stm__reclaim_flush();
    stm_shutdown();
}
END_TEST

/* ==== a watcher phase whose callback grows the write set ===============
 * The commit that finds the watcher keeps x locked through the watcher
 * phase; the callback then writes more TVars than the thread's write set
 * has ever held (fresh threads start small), so the set moves while x is
 * locked and x's lock word (which names its write-set entry) must move
 * with it.  Checked: every commit lands, and a concurrent reader sees
 * out[last] == x + last at every snapshot; under ASan, nothing touches
 * the freed old set. */

enum { GROW_N = 200 };
static stm_tvar *grow_x, *grow_out[GROW_N];
static atomic_int grow_stop, grow_bad;

static intptr_t grow_fn(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_read(tx, grow_x);
}

static void grow_cb(stm_tx *tx, intptr_t v, void *arg)
{
    (void)arg;
    int k = (int)(v % 64) * 3; /* more entries, commit after commit */
    for (int i = 0; i < k && i < GROW_N - 1; i++)
        stm_write(tx, grow_out[i], v + i);
    stm_write(tx, grow_out[GROW_N - 1], v + GROW_N - 1);
}

static int body_bump_grow_x(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, grow_x, stm_read(tx, grow_x) + 1);
    return 0;
}

static void *grow_trigger_main(void *p)
{
    long n = *(long *)p;
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(stm_atomically(body_bump_grow_x, NULL), 0);
    return NULL;
}

static int body_grow_audit(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, grow_x);
    return stm_read(tx, grow_out[GROW_N - 1]) == v + GROW_N - 1 ? 0 : 1;
}

static void *grow_reader_main(void *p)
{
    (void)p;
    while (!atomic_load(&grow_stop))
        if (stm_atomically(body_grow_audit, NULL) != 0)
            atomic_fetch_add(&grow_bad, 1);
    return NULL;
}

START_TEST(test_phase_grows_write_set)
{
    const int threads = TU_SCALE(100, 20);
    long per_thread = 64;
    grow_x = tv(0);
    for (int i = 0; i < GROW_N; i++)
        grow_out[i] = tv(0);
    stm_watch *w = stm_atomically_watch(grow_fn, grow_cb, NULL, 0);
    ck_assert_ptr_nonnull(w);
    atomic_store(&grow_stop, 0);
    atomic_store(&grow_bad, 0);
    pthread_t reader = tu_run_thread(grow_reader_main, NULL);
    for (int t = 0; t < threads; t++)
        tu_join(tu_run_thread(grow_trigger_main, &per_thread)); /* a fresh thread each */
    atomic_store(&grow_stop, 1);
    tu_join(reader);
    ck_assert_int_eq(atomic_load(&grow_bad), 0);
    intptr_t x = stm_tvar_peek(grow_x);
    ck_assert_int_eq(x, threads * per_thread);
    ck_assert_int_eq(stm_tvar_peek(grow_out[GROW_N - 1]), x + GROW_N - 1);
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    stm_tvar_free(grow_x);
    for (int i = 0; i < GROW_N; i++)
        stm_tvar_free(grow_out[i]);
    stm_shutdown();
}
END_TEST

static Suite *watch_stress_suite(void)
{
    Suite *s = suite_create("watch_stress");
    TCase *tc = tcase_create("double");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_double_two_writers);
    tcase_add_test(tc, test_double_four_writers);
    suite_add_tcase(s, tc);

    tc = tcase_create("unwatch_race");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_unwatch_races_deadline);
    tcase_add_test(tc, test_unwatch_races_deadline_and_commits);
    suite_add_tcase(s, tc);

    tc = tcase_create("churn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_churn);
    suite_add_tcase(s, tc);

    tc = tcase_create("held_locks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_phase_grows_write_set);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(watch_stress_suite)
