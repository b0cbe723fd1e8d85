/*
 * check_wheel.c - the library clock's deadline wheel (lib/wheel.c) on its
 * own: (key, seq) order over the heap, the buckets and what lies beyond
 * them; a deadline in a far bucket (its lower bound, not taken early);
 * removal from a bucket and re-arming across buckets; a bucket that cannot
 * grow (the entry goes into the heap); flattening (clock switch, wall-clock
 * change).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"
#include "stm-internal.h"

#define MS STM_MSEC(1)

static struct stm__wheel wh;

static void setup(uint32_t room, int64_t cursor)
{
    memset(&wh, 0, sizeof wh);
    ck_assert(stm__grow((void **)&wh.near.v, &wh.near.cap, sizeof *wh.near.v, room));
    wh.cursor = cursor & ~((INT64_C(1) << STM__WHEEL_SHIFT) - 1);
}

static void teardown(void)
{
    ck_assert_uint_eq(wh.nb, 0);
    stm__wheel_free(&wh);
    free(wh.near.v);
    memset(&wh, 0, sizeof wh);
}

static int64_t left_bound; /* what take_all()'s last peek said of the rest */

/* Take every entry due by `upto`, in order, checking (key, seq) order and
 * that each was not due later than asked; returns how many. */
static uint32_t take_all(int64_t upto, int64_t *last_key, uint64_t *last_seq)
{
    uint32_t got = 0;
    int64_t k;
    struct stm__hnode *n;
    while ((n = stm__wheel_peek(&wh, upto, &k)) != NULL && k <= upto) {
        ck_assert_int_eq(stm__wheel_key(&wh, n), k);
        ck_assert_msg(k > *last_key || (k == *last_key && n->seq > *last_seq),
                      "out of order: %lld after %lld", (long long)k, (long long)*last_key);
        *last_key = k;
        *last_seq = n->seq;
        stm__wheel_remove(&wh, n);
        ck_assert_uint_eq(stm__hnode_idx(n), 0);
        got++;
    }
    /* nothing left due by upto: a lower bound past it, or the next entry */
    ck_assert_int_gt(k, upto);
    left_bound = k;
    return got;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Deadlines over 12 s from the cursor (two thirds past the buckets' span),
 * many on the same ns, some before the cursor, made in random order:
 * taken in (deadline, arming) order, in steps of time as the timer
 * thread does, and all of them. */
START_TEST(test_order_everywhere)
{
    enum { N = 20000 };
    int64_t base = STM_SEC(1000);
    setup(N, base);
    struct stm__hnode *nodes = calloc(N, sizeof *nodes);
    ck_assert_ptr_nonnull(nodes);
    uint64_t seed = tu_seed(3);
    for (int i = 0; i < N; i++) {
        int64_t key = base - STM_MSEC(5) + (int64_t)tu_rand_below(&seed, 36000) * MS / 3;
        stm__wheel_add(&wh, &nodes[i], key);
        ck_assert_uint_ne(stm__hnode_idx(&nodes[i]), 0);
        ck_assert_int_eq(stm__wheel_key(&wh, &nodes[i]), key);
    }
    ck_assert_uint_gt(wh.nb, N / 4); /* a third went into buckets */
    int64_t *sorted = malloc(N * sizeof *sorted);
    ck_assert_ptr_nonnull(sorted);
    for (int i = 0; i < N; i++)
        sorted[i] = stm__wheel_key(&wh, &nodes[i]);
    qsort(sorted, N, sizeof *sorted, cmp_i64);
    int64_t last = INT64_MIN;
    uint64_t lseq = 0;
    uint32_t got = 0;
    for (int64_t t = base - STM_MSEC(10); t < base + STM_SEC(13); t += STM_USEC(700)) {
        got += take_all(t, &last, &lseq);
        /* what a timer thread would sleep until: never past the earliest */
        if (got < N)
            ck_assert_int_le(left_bound, sorted[got]);
    }
    free(sorted);
    ck_assert_uint_eq(got, N);
    int64_t k;
    ck_assert_ptr_null(stm__wheel_peek(&wh, INT64_MIN, &k));
    ck_assert_int_eq(k, STM_NEVER);
    free(nodes);
    teardown();
}
END_TEST

/* One deadline in a far bucket: until its bucket's time the wheel gives
 * a lower bound no later than it (what the timer thread sleeps to), never
 * the entry; from then on the entry. */
START_TEST(test_far_bucket)
{
    int64_t base = STM_SEC(50);
    setup(16, base);
    struct stm__hnode a, b;
    int64_t ka = wh.cursor + STM_SEC(3) + 12345;
    stm__wheel_add(&wh, &a, ka);
    ck_assert_uint_eq(wh.nb, 1);
    ck_assert_uint_ne(a.tag >> STM__WHEEL_TAG, 0); /* in a bucket */
    int64_t k;
    ck_assert_ptr_null(stm__wheel_peek(&wh, wh.cursor, &k));
    ck_assert_int_le(k, ka);
    ck_assert_int_gt(k, ka - STM_MSEC(2));
    ck_assert_ptr_null(stm__wheel_peek(&wh, ka - STM_MSEC(2), &k));
    ck_assert_int_le(k, ka);
    /* one beyond the span stays in the heap, and is not first */
    int64_t kb = wh.cursor + STM__WHEEL_SPAN + STM_SEC(1);
    stm__wheel_add(&wh, &b, kb);
    ck_assert_uint_eq(b.tag >> STM__WHEEL_TAG, 0);
    struct stm__hnode *p = stm__wheel_peek(&wh, wh.cursor, &k);
    ck_assert_ptr_ne(p, &b); /* not the earliest: a, in its bucket, is */
    ck_assert_int_le(k, ka);
    /* (by ka - 1 its bucket has been drained: known, not yet due) */
    p = stm__wheel_peek(&wh, ka - 1, &k);
    ck_assert(p == NULL ? k <= ka : p == &a && k == ka);
    ck_assert_ptr_eq(stm__wheel_peek(&wh, ka, &k), &a);
    ck_assert_int_eq(k, ka);
    stm__wheel_remove(&wh, &a);
    ck_assert_ptr_eq(stm__wheel_peek(&wh, ka, &k), &b);
    ck_assert_int_eq(k, kb);
    stm__wheel_remove(&wh, &b);
    teardown();
}
END_TEST

/* Removal from the middle of a bucket moves its last entry into the hole
 * (its position follows); re-arming an entry into another bucket, earlier
 * or later, keeps the order; a bucket emptied by removals gives no bound. */
START_TEST(test_cancel_and_rearm_in_buckets)
{
    enum { N = 64 };
    int64_t base = STM_SEC(70);
    setup(N, base);
    struct stm__hnode n[N];
    int64_t key[N];
    int64_t c = wh.cursor;
    for (int i = 0; i < N; i++) {
        key[i] = c + STM_MSEC(500) + (i % 8) * 1000; /* one bucket */
        stm__wheel_add(&wh, &n[i], key[i]);
    }
    ck_assert_uint_eq(wh.nb, N);
    for (int i = 0; i < N; i += 3) {
        stm__wheel_remove(&wh, &n[i]);
        ck_assert_uint_eq(stm__hnode_idx(&n[i]), 0);
        stm__wheel_remove(&wh, &n[i]); /* twice: nothing */
    }
    for (int i = 0; i < N; i++)
        if (i % 3 != 0)
            ck_assert_int_eq(stm__wheel_key(&wh, &n[i]), key[i]);
    /* re-arm 1 to a later bucket, 2 to an earlier one, 4 far (the heap) */
    stm__wheel_remove(&wh, &n[1]);
    key[1] = c + STM_SEC(2);
    stm__wheel_add(&wh, &n[1], key[1]);
    stm__wheel_remove(&wh, &n[2]);
    key[2] = c + STM_MSEC(100);
    stm__wheel_add(&wh, &n[2], key[2]);
    stm__wheel_remove(&wh, &n[4]);
    key[4] = c + STM__WHEEL_SPAN + STM_SEC(2);
    stm__wheel_add(&wh, &n[4], key[4]);
    int64_t k;
    struct stm__hnode *first = stm__wheel_peek(&wh, key[2], &k);
    ck_assert_ptr_eq(first, &n[2]);
    int64_t last = INT64_MIN;
    uint64_t lseq = 0;
    uint32_t got = take_all(c + STM_SEC(1), &last, &lseq);
    ck_assert_uint_eq(got, N - (N + 2) / 3 - 2); /* all but the removed, 1 and 4 */
    ck_assert_uint_ne(stm__hnode_idx(&n[1]), 0);
    got = take_all(c + STM__WHEEL_SPAN + STM_SEC(3), &last, &lseq);
    ck_assert_uint_eq(got, 2);
    teardown();
}
END_TEST

/* A bucket that cannot be had (its allocation fails): the entry goes into
 * the heap (room reserved), in order with the rest. */
START_TEST(test_bucket_alloc_fails)
{
    int64_t base = STM_SEC(90);
    setup(8, base);
    struct stm__hnode a, b, c;
    int64_t k0 = wh.cursor + STM_MSEC(300);
    stm__fault_alloc_after(0); /* the wheel's first allocation fails */
    stm__wheel_add(&wh, &a, k0 + 2);
    stm__fault_alloc_after(-1);
    ck_assert_uint_eq(a.tag >> STM__WHEEL_TAG, 0);
    ck_assert_uint_eq(wh.nb, 0);
    stm__wheel_add(&wh, &b, k0 + 1); /* a bucket now */
    ck_assert_uint_ne(b.tag >> STM__WHEEL_TAG, 0);
    stm__fault_alloc_after(0); /* a bucket that must grow */
    stm__wheel_add(&wh, &c, k0 + STM_MSEC(100));
    stm__fault_alloc_after(-1);
    ck_assert_uint_eq(c.tag >> STM__WHEEL_TAG, 0);
    int64_t k;
    ck_assert_ptr_eq(stm__wheel_peek(&wh, k0 + 1, &k), &b);
    stm__wheel_remove(&wh, &b);
    ck_assert_ptr_eq(stm__wheel_peek(&wh, k0 + 2, &k), &a);
    stm__wheel_remove(&wh, &a);
    ck_assert_ptr_eq(stm__wheel_peek(&wh, k0 + 3, &k), &c); /* known, not due */
    ck_assert_int_eq(k, k0 + STM_MSEC(100));
    stm__wheel_remove(&wh, &c);
    teardown();
}
END_TEST

/* Flattening (before keys change in place): every entry is in the heap,
 * the heap's top is the earliest, and adding afterwards still works. */
START_TEST(test_flatten)
{
    enum { N = 500 };
    int64_t base = STM_SEC(30);
    setup(N + 1, base);
    struct stm__hnode *nodes = calloc(N + 1, sizeof *nodes);
    ck_assert_ptr_nonnull(nodes);
    uint64_t seed = tu_seed(5);
    int64_t least = INT64_MAX;
    for (int i = 0; i < N; i++) {
        int64_t key = wh.cursor + (int64_t)tu_rand_below(&seed, 6000) * MS;
        least = key < least ? key : least;
        stm__wheel_add(&wh, &nodes[i], key);
    }
    stm__wheel_flatten(&wh);
    ck_assert_uint_eq(wh.nb, 0);
    ck_assert_uint_eq(wh.near.n, N);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(nodes[i].tag >> STM__WHEEL_TAG, 0);
    ck_assert_int_eq(wh.near.v[0].key, least);
    stm__wheel_add(&wh, &nodes[N], 5);
    int64_t last = INT64_MIN;
    uint64_t lseq = 0;
    ck_assert_uint_eq(take_all(INT64_MAX - 1, &last, &lseq), N + 1);
    free(nodes);
    teardown();
}
END_TEST

static Suite *wheel_suite(void)
{
    Suite *s = suite_create("wheel");
    TCase *tc = tcase_create("wheel");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_order_everywhere);
    tcase_add_test(tc, test_far_bucket);
    tcase_add_test(tc, test_cancel_and_rearm_in_buckets);
    tcase_add_test(tc, test_bucket_alloc_fails);
    tcase_add_test(tc, test_flatten);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(wheel_suite());
}
