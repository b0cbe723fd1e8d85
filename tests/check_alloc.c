/*
 * check_alloc.c - stm_alloc / stm_free and deferred reclamation.
 *
 * The ASan build runs with detect_leaks=1: a block that a discarded
 * attempt allocated and the library did not free fails the suite, and a
 * block freed too early (or twice) is a use-after-free / double-free.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

#include <stdalign.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* Bytes the C heap has handed out and not got back, or -1 if unknown (not
 * glibc; under ASan glibc's arena is not used and the number stays flat,
 * but LeakSanitizer does the checking there). */
static long long heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (long long)mi.uordblks + (long long)mi.hblkhd;
#else
    return -1;
#endif
}

enum { NB = 16 };

struct al {
    stm_tvar *cnt; /* a plain counter, never a pointer */
    stm_tvar *slot[NB];
    void *blocks[NB];
    size_t sizes[NB];
    int runs;
    int code;
    int bad;
    void *victim;
};

static void al_init(struct al *a)
{
    memset(a, 0, sizeof *a);
    a->cnt = stm_tvar_new(0);
    ck_assert_ptr_nonnull(a->cnt);
    for (int i = 0; i < NB; i++) {
        a->slot[i] = stm_tvar_new(0);
        ck_assert_ptr_nonnull(a->slot[i]);
    }
}

static int body_free_slots(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    for (int i = 0; i < NB; i++) {
        stm_free(tx, stm_read_ptr(tx, a->slot[i]));
        stm_write(tx, a->slot[i], 0);
    }
    return 0;
}

/* Release whatever the slots hold through the library, then the TVars. */
static void al_fini(struct al *a)
{
    ck_assert_int_eq(stm_atomically(body_free_slots, a), 0);
    for (int i = 0; i < NB; i++)
        stm_tvar_free(a->slot[i]);
    stm_tvar_free(a->cnt);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
}

/* ---- stm_alloc gives writable, aligned, distinct memory ---------------- */

static int body_alloc(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    a->runs++;
    for (int i = 0; i < NB; i++) {
        size_t sz = a->sizes[i];
        unsigned char *p = stm_alloc(tx, sz);
        if (p == NULL)
            a->bad++;
        if ((uintptr_t)p % alignof(max_align_t) != 0)
            a->bad++;
        memset(p, 0x5a ^ i, sz);
        a->blocks[i] = p;
        stm_write_ptr(tx, a->slot[i], p);
    }
    if (a->code)
        stm_abort(tx, a->code);
    return 0;
}

START_TEST(test_alloc_writable)
{
    struct al a;
    al_init(&a);
    for (int i = 0; i < NB; i++)
        a.sizes[i] = (size_t)1 << i; /* 1 .. 32 KiB */
    a.sizes[0] = 0;                  /* a unique pointer */
    a.sizes[1] = 0;
    ck_assert_int_eq(stm_atomically(body_alloc, &a), 0);
    ck_assert_int_eq(a.runs, 1);
    ck_assert_int_eq(a.bad, 0);
    for (int i = 0; i < NB; i++) {
        ck_assert_ptr_eq((void *)stm_tvar_peek(a.slot[i]), a.blocks[i]);
        for (int j = 0; j < i; j++)
            ck_assert_ptr_ne(a.blocks[i], a.blocks[j]);
        unsigned char *p = a.blocks[i];
        for (size_t k = 0; k < a.sizes[i]; k++)
            ck_assert_int_eq(p[k], 0x5a ^ i);
    }
    /* committed blocks belong to the program now; still intact after a
     * flush of the reclamation queue */
    stm__reclaim_flush();
    for (int i = 2; i < NB; i++)
        ck_assert_int_eq(((unsigned char *)a.blocks[i])[a.sizes[i] - 1], 0x5a ^ i);
    al_fini(&a);
}
END_TEST

START_TEST(test_alloc_freed_on_abort)
{
    struct al a;
    al_init(&a);
    for (int i = 0; i < NB; i++)
        a.sizes[i] = 100 + 10 * (size_t)i;
    a.code = 9;
    for (int round = 0; round < 50; round++) {
        a.runs = 0;
        ck_assert_int_eq(stm_atomically(body_alloc, &a), 9);
        ck_assert_int_eq(a.runs, 1);
    }
    ck_assert_int_eq(a.bad, 0);
    for (int i = 0; i < NB; i++)
        ck_assert_int_eq(stm_tvar_peek(a.slot[i]), 0);
    al_fini(&a); /* a leak shows up under ASan */
}
END_TEST

static int body_alloc_deadlk(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    a->runs++;
    void *p = stm_alloc(tx, 256);
    memset(p, 1, 256);
    stm_write_ptr(tx, a->slot[0], p);
    stm_retry(tx); /* nothing read: -EDEADLK */
}

START_TEST(test_alloc_freed_on_deadlk)
{
    struct al a;
    al_init(&a);
    ck_assert_int_eq(stm_atomically(body_alloc_deadlk, &a), -EDEADLK);
    ck_assert_int_eq(a.runs, 1);
    ck_assert_int_eq(stm_tvar_peek(a.slot[0]), 0);
    al_fini(&a);
}
END_TEST

/* a block allocated in a discarded or_else branch is freed there */
static int branch_alloc_retry(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    void *p = stm_alloc(tx, 512);
    memset(p, 2, 512);
    stm_write_ptr(tx, a->slot[1], p);
    stm_retry(tx);
}

static int branch_alloc_keep(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    if (stm_read(tx, a->slot[1]) != 0)
        a->bad++;
    void *p = stm_alloc(tx, 64);
    memset(p, 3, 64);
    stm_write_ptr(tx, a->slot[2], p);
    return 1;
}

static int body_or_else_alloc(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, branch_alloc_retry, branch_alloc_keep, arg);
}

START_TEST(test_alloc_in_discarded_branch)
{
    struct al a;
    al_init(&a);
    ck_assert_int_eq(stm_atomically(body_or_else_alloc, &a), 1);
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(stm_tvar_peek(a.slot[1]), 0);
    unsigned char *kept = (unsigned char *)stm_tvar_peek(a.slot[2]);
    ck_assert_ptr_nonnull(kept);
    ck_assert_int_eq(kept[0], 3);
    ck_assert_int_eq(kept[63], 3);
    al_fini(&a);
}
END_TEST

/* Many discarded attempts, each allocating: the heap must not grow.  (The
 * block pointers of one attempt may linger in the descriptor's reused
 * vectors; over many attempts they are overwritten, so leaked blocks become
 * unreachable and LeakSanitizer sees them too.) */
enum { ROUNDS = 1000, BIG = 4096 };

static int body_abort_big(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    void *p = stm_alloc(tx, BIG);
    memset(p, 1, BIG);
    stm_write_ptr(tx, a->slot[0], p);
    stm_abort(tx, 1);
}

static int body_deadlk_big(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    void *p = stm_alloc(tx, BIG);
    memset(p, 1, BIG);
    stm_write_ptr(tx, a->slot[0], p);
    stm_retry(tx);
}

static int branch_big_retry(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    void *p = stm_alloc(tx, BIG);
    memset(p, 1, BIG);
    stm_write_ptr(tx, a->slot[0], p);
    stm_retry(tx);
}

static int branch_none(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_write(tx, a->cnt, stm_read(tx, a->cnt) + 1);
    return 0;
}

static int body_branch_big(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, branch_big_retry, branch_none, arg);
}

START_TEST(test_discarded_allocs_do_not_accumulate)
{
    struct al a;
    al_init(&a);
    /* warm up: let the descriptor's vectors reach their size */
    ck_assert_int_eq(stm_atomically(body_abort_big, &a), 1);
    ck_assert_int_eq(stm_atomically(body_deadlk_big, &a), -EDEADLK);
    ck_assert_int_eq(stm_atomically(body_branch_big, &a), 0);
    long long h0 = heap_in_use();
    for (int i = 0; i < ROUNDS; i++) {
        ck_assert_int_eq(stm_atomically(body_abort_big, &a), 1);
        ck_assert_int_eq(stm_atomically(body_deadlk_big, &a), -EDEADLK);
        ck_assert_int_eq(stm_atomically(body_branch_big, &a), 0);
    }
    long long h1 = heap_in_use();
    ck_assert_int_eq(stm_tvar_peek(a.slot[0]), 0);
    ck_assert_int_eq(stm_tvar_peek(a.cnt), ROUNDS + 1);
    if (h0 >= 0 && h1 >= 0)
        ck_assert_msg(h1 - h0 < (long long)ROUNDS * BIG / 4,
                      "heap grew by %lld bytes over %d rounds", h1 - h0, ROUNDS);
    al_fini(&a);
}
END_TEST

/* ---- stm_free ---------------------------------------------------------- */

START_TEST(test_free_reclaimed)
{
    struct al a;
    al_init(&a);
    for (int i = 0; i < NB; i++)
        a.sizes[i] = 48;
    ck_assert_int_eq(stm_atomically(body_alloc, &a), 0);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically(body_free_slots, &a), 0);
    for (int i = 0; i < NB; i++)
        ck_assert_int_eq(stm_tvar_peek(a.slot[i]), 0);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    stm_stats_get(&s1);
    ck_assert_uint_ge(s1.reclaimed - s0.reclaimed, NB);
    al_fini(&a);
}
END_TEST

/* malloc()ed blocks may be passed to stm_free() too */
static int body_free_victim(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    a->runs++;
    stm_free(tx, a->victim);
    stm_write(tx, a->cnt, 1);
    if (a->code)
        stm_abort(tx, a->code);
    return 0;
}

START_TEST(test_free_malloced)
{
    struct al a;
    al_init(&a);
    a.victim = malloc(100);
    ck_assert_ptr_nonnull(a.victim);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically(body_free_victim, &a), 0);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    stm_stats_get(&s1);
    ck_assert_uint_ge(s1.reclaimed - s0.reclaimed, 1);
    al_fini(&a);
}
END_TEST

/* reclamation happens by itself too, within a bounded number of commits */
static int body_tick(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_write(tx, a->cnt, stm_read(tx, a->cnt) + 1);
    return 0;
}

START_TEST(test_free_reclaimed_eventually)
{
    struct al a;
    al_init(&a);
    a.victim = malloc(100);
    ck_assert_ptr_nonnull(a.victim);
    ck_assert_int_eq(stm_atomically(body_free_victim, &a), 0);
    /* "typically within the next few hundred commits": allow 100000 */
    int n = 0;
    while (stm__reclaim_pending() > 0 && n < 100000) {
        ck_assert_int_eq(stm_atomically(body_tick, &a), 0);
        n++;
    }
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    al_fini(&a);
}
END_TEST

static int body_free_null(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_free(tx, NULL);
    stm_write(tx, a->cnt, 5);
    return 0;
}

START_TEST(test_free_null)
{
    struct al a;
    al_init(&a);
    stm__reclaim_flush();
    size_t p0 = stm__reclaim_pending();
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically(body_free_null, &a), 0);
    ck_assert_int_eq(stm_tvar_peek(a.cnt), 5);
    ck_assert_uint_eq(stm__reclaim_pending(), p0);
    stm__reclaim_flush();
    stm_stats_get(&s1);
    ck_assert_uint_eq(s1.reclaimed, s0.reclaimed);
    ck_assert_int_eq(stm_atomically(body_free_null, &a), 0);
    al_fini(&a);
}
END_TEST

START_TEST(test_free_in_aborted_attempt)
{
    struct al a;
    al_init(&a);
    unsigned char *v = malloc(100);
    ck_assert_ptr_nonnull(v);
    memset(v, 0x77, 100);
    a.victim = v;
    a.code = 13;
    size_t p0 = stm__reclaim_pending();
    ck_assert_int_eq(stm_atomically(body_free_victim, &a), 13);
    ck_assert_int_eq(a.runs, 1);
    ck_assert_int_eq(stm_tvar_peek(a.cnt), 0);
    ck_assert_uint_eq(stm__reclaim_pending(), p0);
    stm__reclaim_flush();
    /* still ours: readable (ASan: no use-after-free) and freeable once */
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(v[i], 0x77);
    free(v);
    al_fini(&a);
}
END_TEST

static int body_free_deadlk(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_free(tx, a->victim);
    stm_retry(tx);
}

START_TEST(test_free_in_deadlk_attempt)
{
    struct al a;
    al_init(&a);
    unsigned char *v = malloc(64);
    ck_assert_ptr_nonnull(v);
    memset(v, 0x11, 64);
    a.victim = v;
    ck_assert_int_eq(stm_atomically(body_free_deadlk, &a), -EDEADLK);
    stm__reclaim_flush();
    ck_assert_int_eq(v[63], 0x11);
    free(v);
    al_fini(&a);
}
END_TEST

static int branch_free_retry(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_free(tx, a->victim);
    stm_retry(tx);
}

static int branch_plain(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    stm_write(tx, a->cnt, 3);
    return 2;
}

static int body_or_else_free(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, branch_free_retry, branch_plain, arg);
}

START_TEST(test_free_in_discarded_branch)
{
    struct al a;
    al_init(&a);
    unsigned char *v = malloc(64);
    ck_assert_ptr_nonnull(v);
    memset(v, 0x22, 64);
    a.victim = v;
    size_t p0 = stm__reclaim_pending();
    ck_assert_int_eq(stm_atomically(body_or_else_free, &a), 2);
    ck_assert_int_eq(stm_tvar_peek(a.cnt), 3);
    ck_assert_uint_eq(stm__reclaim_pending(), p0);
    stm__reclaim_flush();
    ck_assert_int_eq(v[0], 0x22);
    free(v);
    al_fini(&a);
}
END_TEST

/* Replace a pointer value, freeing the old block: the usual pattern. */
static int body_replace(stm_tx *tx, void *arg)
{
    struct al *a = arg;
    long *old = stm_read_ptr(tx, a->slot[0]);
    long *new = stm_alloc(tx, sizeof *new);
    *new = old ? *old + 1 : 0;
    stm_write_ptr(tx, a->slot[0], new);
    stm_free(tx, old);
    return (int)*new;
}

START_TEST(test_replace_pattern)
{
    struct al a;
    al_init(&a);
    for (int i = 0; i < 2000; i++)
        ck_assert_int_eq(stm_atomically(body_replace, &a), i);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    ck_assert_int_eq(*(long *)stm_tvar_peek(a.slot[0]), 1999);
    al_fini(&a);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("alloc");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_alloc_writable);
    tcase_add_test(tc, test_alloc_freed_on_abort);
    tcase_add_test(tc, test_alloc_freed_on_deadlk);
    tcase_add_test(tc, test_alloc_in_discarded_branch);
    tcase_add_test(tc, test_discarded_allocs_do_not_accumulate);
    suite_add_tcase(s, tc);

    tc = tcase_create("free");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_free_reclaimed);
    tcase_add_test(tc, test_free_malloced);
    tcase_add_test(tc, test_free_reclaimed_eventually);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_free_in_aborted_attempt);
    tcase_add_test(tc, test_free_in_deadlk_attempt);
    tcase_add_test(tc, test_free_in_discarded_branch);
    tcase_add_test(tc, test_replace_pattern);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(alloc_suite)
