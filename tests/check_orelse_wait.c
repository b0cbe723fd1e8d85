/*
 * check_orelse_wait.c - stress: stm_or_else() waits on the union of reads.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A waiter runs stm_or_else(take_from_a, take_from_b) while both a and b
 * are empty, so both branches retry and the whole transaction blocks.  It
 * must wake when a commit changes a TVar read by *either* branch: the
 * first branch's writes are rolled back when it retries, but its reads
 * stay in the transaction (stm.h).
 *
 * Handshake: the waiter counts, in an atomic, every time its last branch
 * is about to call stm_retry().  The poking thread waits (nanosleep 1 ms,
 * at most TU_HANDSHAKE_MS) until that count has moved; from then on the
 * waiter is either asleep or about to sleep, and "no wake-up is lost: a
 * commit that lands between the attempt's reads and the sleep wakes it".
 * Most tests also wait until the kernel reports the thread asleep
 * (tu_wait_asleep), so that the wake-up itself is tested.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

struct ow {
    stm_tvar *a, *b, *c; /* item counts; a branch takes one if > 0 */
    stm_tvar *marker;    /* written by the first branch before it retries */
    intptr_t need;       /* a branch takes only when its count >= need */
    int nested;          /* 1: or_else(take_a, or_else(take_b, take_c)) */
    atomic_int attempts; /* body runs */
    atomic_int blocked;  /* times every branch retried (about to block) */
    atomic_int done;     /* stm_atomically() returned */
    _Atomic pid_t tid;   /* the waiter's kernel thread id */
    int result;
};

static int take(stm_tx *tx, stm_tvar *var, intptr_t need)
{
    intptr_t v = stm_read(tx, var);
    if (v < need)
        return -1;
    stm_write(tx, var, v - need);
    return 0;
}

static int take_a(stm_tx *tx, void *arg)
{
    struct ow *o = arg;
    /* Rolled back when this branch retries: must never be committed. */
    stm_write(tx, o->marker, stm_read(tx, o->marker) + 1);
    if (take(tx, o->a, o->need) < 0)
        stm_retry(tx);
    stm_write(tx, o->marker, stm_read(tx, o->marker) - 1);
    return 1;
}

static int take_last(stm_tx *tx, struct ow *o, stm_tvar *var, int result)
{
    if (take(tx, var, o->need) < 0) {
        atomic_fetch_add(&o->blocked, 1);
        stm_retry(tx);
    }
    return result;
}

static int take_b(stm_tx *tx, void *arg)
{
    struct ow *o = arg;
    if (o->nested) {
        if (take(tx, o->b, o->need) < 0)
            stm_retry(tx);
        return 2;
    }
    return take_last(tx, o, o->b, 2);
}

static int take_c(stm_tx *tx, void *arg)
{
    return take_last(tx, arg, ((struct ow *)arg)->c, 3);
}

static int take_b_or_c(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, take_b, take_c, arg);
}

static int waiter_body(stm_tx *tx, void *arg)
{
    struct ow *o = arg;
    atomic_fetch_add(&o->attempts, 1);
    return stm_or_else(tx, take_a, o->nested ? take_b_or_c : take_b, arg);
}

static void *waiter_main(void *arg)
{
    struct ow *o = arg;
    atomic_store(&o->tid, tu_gettid());
    o->result = stm_atomically(waiter_body, o);
    atomic_store(&o->done, 1);
    return NULL;
}

static void ow_init(struct ow *o, intptr_t need, int nested)
{
    memset(o, 0, sizeof *o);
    o->a = stm_tvar_new(0);
    o->b = stm_tvar_new(0);
    o->c = stm_tvar_new(0);
    o->marker = stm_tvar_new(0);
    ck_assert(o->a && o->b && o->c && o->marker);
    o->need = need;
    o->nested = nested;
}

static void ow_fini(struct ow *o)
{
    stm_tvar_free(o->a);
    stm_tvar_free(o->b);
    stm_tvar_free(o->c);
    stm_tvar_free(o->marker);
}

/* Wait until the waiter has blocked at least `n` times in all, and check
 * that it has not returned (it cannot: nothing it could take is there).
 * Then also wait until the kernel shows the thread asleep, so that the
 * poke that follows has to wake it (rather than be caught by the check
 * the library makes between registering and sleeping - that path is
 * covered by test_many_rounds, which pokes right after the counter). */
static void await_blocked(struct ow *o, int n)
{
    ck_assert_msg(tu_wait_atleast(&o->blocked, n, TU_HANDSHAKE_MS),
                  "waiter did not reach retry #%d within %ld ms (attempts %d, blocked %d)", n,
                  TU_HANDSHAKE_MS, atomic_load(&o->attempts), atomic_load(&o->blocked));
    ck_assert_msg(tu_wait_asleep(atomic_load(&o->tid), TU_HANDSHAKE_MS),
                  "waiter (retry #%d) not seen asleep within %ld ms", n, TU_HANDSHAKE_MS);
    ck_assert_msg(atomic_load(&o->done) == 0, "waiter returned %d with nothing to take",
                  o->result);
    ck_assert_int_eq(atomic_load(&o->blocked), n); /* asleep, so no new attempt */
}

static void await_done(struct ow *o, pthread_t t, const char *what)
{
    ck_assert_msg(tu_wait_atleast(&o->done, 1, TU_HANDSHAKE_MS),
                  "waiter not woken within %ld ms after %s (attempts %d, blocked %d)",
                  TU_HANDSHAKE_MS, what, atomic_load(&o->attempts), atomic_load(&o->blocked));
    tu_join(t);
}

/* Poke one of the two and check that the waiter took from that one. */
static void one_poke(int poke_a)
{
    struct ow o;
    ow_init(&o, 1, 0);
    struct stm_stats before, after;
    stm_stats_get(&before);

    pthread_t t = tu_run_thread(waiter_main, &o);
    await_blocked(&o, 1);
    ck_assert_int_eq(stm_tvar_poke(poke_a ? o.a : o.b, 1), 0);
    await_done(&o, t, poke_a ? "poking a" : "poking b");
    stm_stats_get(&after);

    ck_assert_int_eq(o.result, poke_a ? 1 : 2);
    ck_assert_int_eq(stm_tvar_peek(o.a), 0);
    ck_assert_int_eq(stm_tvar_peek(o.b), 0);
    ck_assert_int_eq(stm_tvar_peek(o.marker), 0);
    ck_assert_msg(after.retries > before.retries, "no retry counted");
    ow_fini(&o);
    stm_shutdown();
}

/* Only b (read by the second branch) changes: take from b. */
START_TEST(test_wake_second_branch)
{
    one_poke(0);
}
END_TEST

/* Only a (read only by the first, rolled-back branch) changes: take from a. */
START_TEST(test_wake_first_branch)
{
    one_poke(1);
}
END_TEST

/*
 * A change that does not let either branch proceed must still wake the
 * waiter (it re-runs and blocks again): first on a TVar read only in the
 * first branch, then on one read only in the second.  Then a change that
 * lets the first branch proceed.
 */
START_TEST(test_wake_without_progress)
{
    struct ow o;
    ow_init(&o, 2, 0); /* a branch needs 2 items */
    pthread_t t = tu_run_thread(waiter_main, &o);
    await_blocked(&o, 1);

    ck_assert_int_eq(stm_tvar_poke(o.a, 1), 0); /* first branch only; still short */
    await_blocked(&o, 2);
    ck_assert_int_ge(atomic_load(&o.attempts), 2);

    ck_assert_int_eq(stm_tvar_poke(o.b, 1), 0); /* second branch only; still short */
    await_blocked(&o, 3);
    ck_assert_int_ge(atomic_load(&o.attempts), 3);

    ck_assert_int_eq(stm_tvar_poke(o.a, 2), 0); /* now the first branch can take */
    await_done(&o, t, "poking a = 2");
    ck_assert_int_eq(o.result, 1);
    ck_assert_int_eq(stm_tvar_peek(o.a), 0);
    ck_assert_int_eq(stm_tvar_peek(o.b), 1);
    ck_assert_int_eq(stm_tvar_peek(o.marker), 0);
    ow_fini(&o);
    stm_shutdown();
}
END_TEST

/* Nested or_else: or_else(a, or_else(b, c)); only c, read by the innermost
 * last branch, changes. */
START_TEST(test_wake_nested)
{
    for (int which = 0; which < 3; which++) {
        struct ow o;
        ow_init(&o, 1, 1);
        pthread_t t = tu_run_thread(waiter_main, &o);
        await_blocked(&o, 1);
        stm_tvar *v = which == 0 ? o.c : which == 1 ? o.b : o.a;
        ck_assert_int_eq(stm_tvar_poke(v, 1), 0);
        await_done(&o, t, "poking one of a, b, c");
        ck_assert_int_eq(o.result, which == 0 ? 3 : which == 1 ? 2 : 1);
        ck_assert_int_eq(stm_tvar_peek(o.a) + stm_tvar_peek(o.b) + stm_tvar_peek(o.c), 0);
        ck_assert_int_eq(stm_tvar_peek(o.marker), 0);
        ow_fini(&o);
    }
    stm_shutdown();
}
END_TEST

/*
 * Many rounds: a long-lived waiter thread takes one item per transaction;
 * each round the main thread waits until the waiter has blocked in that
 * round, then puts an item into a or b (chosen at random).
 */
struct rounds {
    struct ow o;
    long n;
    atomic_int blocked_round; /* round + 1 once blocked in that round */
    atomic_int cur_round;
    atomic_long took_a, took_b;
    int bad;
};

static int rounds_take_b(stm_tx *tx, void *arg)
{
    struct rounds *r = arg;
    if (take(tx, r->o.b, 1) < 0) {
        atomic_store(&r->blocked_round, atomic_load(&r->cur_round) + 1);
        stm_retry(tx);
    }
    return 2;
}

static int rounds_take_a(stm_tx *tx, void *arg)
{
    struct rounds *r = arg;
    return take_a(tx, &r->o);
}

static int rounds_body(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, rounds_take_a, rounds_take_b, arg);
}

static void *rounds_main(void *arg)
{
    struct rounds *r = arg;
    for (long i = 0; i < r->n; i++) {
        atomic_store(&r->cur_round, (int)i);
        int rc = stm_atomically(rounds_body, r);
        if (rc == 1)
            atomic_fetch_add(&r->took_a, 1);
        else if (rc == 2)
            atomic_fetch_add(&r->took_b, 1);
        else {
            r->bad = rc;
            break;
        }
    }
    return NULL;
}

START_TEST(test_many_rounds)
{
    struct rounds *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    ow_init(&r->o, 1, 0);
    r->n = TU_SCALE(1000L, 200L);
    uint64_t rng = tu_seed(7);
    long poked_a = 0, poked_b = 0;
    pthread_t t = tu_run_thread(rounds_main, r);
    for (long i = 0; i < r->n; i++) {
        ck_assert_msg(tu_wait_atleast(&r->blocked_round, (int)i + 1, TU_HANDSHAKE_MS),
                      "round %ld: waiter did not block (took a %ld, b %ld, rc %d)", i,
                      atomic_load(&r->took_a), atomic_load(&r->took_b), r->bad);
        /* It blocked in round i, so it has taken exactly i items. */
        ck_assert_int_eq(atomic_load(&r->took_a) + atomic_load(&r->took_b), i);
        bool to_a = tu_rand(&rng) & 1;
        ck_assert_int_eq(stm_tvar_poke(to_a ? r->o.a : r->o.b, 1), 0);
        if (to_a)
            poked_a++;
        else
            poked_b++;
    }
    tu_join(t); /* bounded by the test timeout */
    ck_assert_int_eq(r->bad, 0);
    ck_assert_int_eq(atomic_load(&r->took_a), poked_a);
    ck_assert_int_eq(atomic_load(&r->took_b), poked_b);
    ck_assert_int_eq(stm_tvar_peek(r->o.a), 0);
    ck_assert_int_eq(stm_tvar_peek(r->o.b), 0);
    ck_assert_int_eq(stm_tvar_peek(r->o.marker), 0);
    ow_fini(&r->o);
    free(r);
    stm_shutdown();
}
END_TEST

static Suite *orelse_wait_suite(void)
{
    Suite *s = suite_create("orelse_wait");
    TCase *tc = tcase_create("orelse_wait");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_wake_second_branch);
    tcase_add_test(tc, test_wake_first_branch);
    tcase_add_test(tc, test_wake_without_progress);
    tcase_add_test(tc, test_wake_nested);
    tcase_add_test(tc, test_many_rounds);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(orelse_wait_suite)
