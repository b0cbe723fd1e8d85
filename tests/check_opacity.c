/*
 * check_opacity.c - stress: no body ever sees an inconsistent state.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Opacity (stm.h): "a running body never observes an inconsistent state,
 * not even in an attempt that will be thrown away".  Writers keep an
 * invariant across two TVars (x + y == 0), or inside a node that a TVar
 * points to; readers read one part, do some busy work so that writers get
 * in between, read the other part, and check the invariant *inside* the
 * body.  A violation is recorded in an atomic counter (a body must not
 * fail the test itself) and asserted after the threads have joined.
 *
 * The pointer variant also checks memory safety: writers replace the node
 * and stm_free() the old one while readers still dereference it.  The
 * node's magic word is its first word, which glibc's free() overwrites, so
 * a premature free shows as a bad magic even in a plain build; under ASan
 * it is a heap-use-after-free report.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

static pthread_barrier_t start_line;
static atomic_int writers_left; /* readers run until this is 0 */
static atomic_int bad_rc;

/* ------------------------------------------------------------------ */
/* x + y == 0                                                          */
/* ------------------------------------------------------------------ */

static stm_tvar *tx_x, *tx_y;
static atomic_long pair_violations;   /* reader attempts that saw x + y != 0 */
static atomic_long writer_violations; /* writer attempts that saw x + y != 0 */
static _Atomic intptr_t bad_x, bad_y;

struct pair_writer {
    pthread_t tid;
    int id;
    long n;
};

static int pair_write_body(stm_tx *tx, void *arg)
{
    intptr_t d = *(const intptr_t *)arg;
    intptr_t x = stm_read(tx, tx_x);
    intptr_t y = stm_read(tx, tx_y);
    if (x + y != 0)
        atomic_fetch_add(&writer_violations, 1);
    stm_write(tx, tx_x, x + d);
    stm_write(tx, tx_y, y - d);
    return 0;
}

static void *pair_writer_main(void *p)
{
    struct pair_writer *w = p;
    uint64_t rng = tu_seed(100 + (uint64_t)w->id);
    pthread_barrier_wait(&start_line);
    for (long i = 0; i < w->n; i++) {
        intptr_t d = 1 + (intptr_t)tu_rand_below(&rng, 1000);
        if (tu_rand(&rng) & 1)
            d = -d;
        int rc = stm_atomically(pair_write_body, &d);
        if (rc != 0)
            atomic_store(&bad_rc, rc);
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

struct reader {
    pthread_t tid;
    int id;
    uint64_t rng;       /* busy-work lengths; advanced outside the body */
    unsigned spin;      /* this attempt's busy work */
    bool reverse;       /* read y first */
    long commits;
    long attempts;
    intptr_t last_seq;  /* pointer variant: seq seen by the last commit */
};

static int pair_read_body(stm_tx *tx, void *arg)
{
    struct reader *r = arg;
    r->attempts++;
    stm_tvar *first = r->reverse ? tx_y : tx_x;
    stm_tvar *second = r->reverse ? tx_x : tx_y;
    intptr_t a = stm_read(tx, first);
    tu_busy(r->spin);
    intptr_t b = stm_read(tx, second);
    if (a + b != 0) {
        intptr_t zero = 0;
        if (atomic_compare_exchange_strong(&bad_x, &zero, r->reverse ? b : a))
            atomic_store(&bad_y, r->reverse ? a : b);
        atomic_fetch_add(&pair_violations, 1);
    }
    return 0;
}

static void *pair_reader_main(void *p)
{
    struct reader *r = p;
    pthread_barrier_wait(&start_line);
    do {
        r->spin = tu_rand_below(&r->rng, 400);
        r->reverse = tu_rand(&r->rng) & 1;
        int rc = stm_atomically(pair_read_body, r);
        if (rc != 0)
            atomic_store(&bad_rc, rc);
        r->commits++;
    } while (atomic_load(&writers_left) > 0);
    return NULL;
}

START_TEST(test_pair_invariant)
{
    const int nw = 2, nr = 3;
    const long per_writer = TU_SCALE(200000L, 10000L);
    tx_x = stm_tvar_new(0);
    tx_y = stm_tvar_new(0);
    ck_assert(tx_x != NULL && tx_y != NULL);
    atomic_store(&writers_left, nw);
    atomic_store(&pair_violations, 0);
    atomic_store(&writer_violations, 0);
    atomic_store(&bad_rc, 0);
    ck_assert_int_eq(pthread_barrier_init(&start_line, NULL, (unsigned)(nw + nr)), 0);

    struct pair_writer w[2];
    struct reader r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < nw; i++) {
        w[i].id = i;
        w[i].n = per_writer;
        w[i].tid = tu_run_thread(pair_writer_main, &w[i]);
    }
    for (int i = 0; i < nr; i++) {
        r[i].id = i;
        r[i].rng = tu_seed(200 + (uint64_t)i);
        r[i].tid = tu_run_thread(pair_reader_main, &r[i]);
    }
    for (int i = 0; i < nw; i++)
        tu_join(w[i].tid);
    long commits = 0, attempts = 0;
    for (int i = 0; i < nr; i++) {
        tu_join(r[i].tid);
        commits += r[i].commits;
        attempts += r[i].attempts;
    }
    pthread_barrier_destroy(&start_line);
    fprintf(stderr, "opacity pair: %d writers x %ld, readers %ld commits / %ld attempts\n", nw,
            per_writer, commits, attempts);

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&pair_violations) == 0,
                  "opacity: %ld reader attempts saw x + y != 0 (first: x=%ld y=%ld)",
                  atomic_load(&pair_violations), (long)atomic_load(&bad_x),
                  (long)atomic_load(&bad_y));
    ck_assert_msg(atomic_load(&writer_violations) == 0,
                  "opacity: %ld writer attempts saw x + y != 0",
                  atomic_load(&writer_violations));
    ck_assert(stm_tvar_peek(tx_x) + stm_tvar_peek(tx_y) == 0);
    for (int i = 0; i < nr; i++)
        ck_assert(r[i].commits >= 1);

    stm_tvar_free(tx_x);
    stm_tvar_free(tx_y);
    stm_shutdown();
}
END_TEST

/* ------------------------------------------------------------------ */
/* A TVar pointing to a node that writers replace                      */
/* ------------------------------------------------------------------ */

#define NODE_MAGIC UINT64_C(0x6e6f64654d414749) /* "nodeMAGI" */

struct node {
    uint64_t magic; /* first: clobbered by glibc's free() */
    intptr_t a[2];  /* a[0] + a[1] == 0 */
    intptr_t seq;   /* replacements so far */
};

static stm_tvar *cur;
static atomic_long node_violations;  /* bad magic or a[0] + a[1] != 0 */
static atomic_long order_violations; /* seq went backwards for one reader */
static atomic_long writer_node_violations;

struct node_writer {
    pthread_t tid;
    int id;
    bool use_malloc; /* allocate outside the transaction with malloc() */
    long n;
    struct node *fresh; /* malloc variant: the block the body fills in */
    intptr_t d;
};

static int node_write_body(stm_tx *tx, void *arg)
{
    struct node_writer *w = arg;
    struct node *old = stm_read_ptr(tx, cur);
    if (old->magic != NODE_MAGIC || old->a[0] + old->a[1] != 0)
        atomic_fetch_add(&writer_node_violations, 1);
    struct node *n = w->use_malloc ? w->fresh : stm_alloc(tx, sizeof *n);
    n->magic = NODE_MAGIC;
    n->a[0] = old->a[0] + w->d;
    n->a[1] = -n->a[0];
    n->seq = old->seq + 1;
    stm_write_ptr(tx, cur, n);
    stm_free(tx, old);
    return 0;
}

static void *node_writer_main(void *p)
{
    struct node_writer *w = p;
    uint64_t rng = tu_seed(300 + (uint64_t)w->id);
    pthread_barrier_wait(&start_line);
    for (long i = 0; i < w->n; i++) {
        w->d = 1 + (intptr_t)tu_rand_below(&rng, 1000);
        if (w->use_malloc) {
            /* Owned by this thread until the commit publishes it; a
             * restarted attempt fills the same block again. */
            w->fresh = malloc(sizeof(struct node));
            if (w->fresh == NULL) {
                atomic_store(&bad_rc, -ENOMEM);
                break;
            }
        }
        int rc = stm_atomically(node_write_body, w);
        if (rc != 0) {
            atomic_store(&bad_rc, rc);
            free(w->fresh); /* not published */
        }
        w->fresh = NULL;
    }
    atomic_fetch_sub(&writers_left, 1);
    return NULL;
}

static int node_read_body(stm_tx *tx, void *arg)
{
    struct reader *r = arg;
    r->attempts++;
    const struct node *n = stm_read_ptr(tx, cur);
    uint64_t magic = n->magic;
    tu_busy(r->spin);
    intptr_t a0 = n->a[0];
    tu_busy(r->spin);
    intptr_t a1 = n->a[1];
    intptr_t seq = n->seq;
    uint64_t magic2 = n->magic;
    if (magic != NODE_MAGIC || magic2 != NODE_MAGIC || a0 + a1 != 0)
        atomic_fetch_add(&node_violations, 1);
    /* A transaction that starts after another committed cannot see an
     * older state than that one saw. */
    if (seq < r->last_seq)
        atomic_fetch_add(&order_violations, 1);
    /* Read the pointer again: the same node within one attempt. */
    if (stm_read_ptr(tx, cur) != n)
        atomic_fetch_add(&node_violations, 1);
    return (int)(seq & 0x3fffffff);
}

static void *node_reader_main(void *p)
{
    struct reader *r = p;
    pthread_barrier_wait(&start_line);
    do {
        r->spin = tu_rand_below(&r->rng, 200);
        int rc = stm_atomically(node_read_body, r);
        if (rc < 0)
            atomic_store(&bad_rc, rc);
        else
            r->last_seq = rc;
        r->commits++;
    } while (atomic_load(&writers_left) > 0);
    return NULL;
}

START_TEST(test_node_invariant)
{
    enum { NW = 2, NR = 3 };
    const long per_writer = TU_SCALE(200000L, 10000L);
    struct node *first = malloc(sizeof *first);
    ck_assert_ptr_nonnull(first);
    first->magic = NODE_MAGIC;
    first->a[0] = first->a[1] = 0;
    first->seq = 0;
    cur = stm_tvar_new((intptr_t)first);
    ck_assert_ptr_nonnull(cur);
    atomic_store(&writers_left, NW);
    atomic_store(&node_violations, 0);
    atomic_store(&order_violations, 0);
    atomic_store(&writer_node_violations, 0);
    atomic_store(&bad_rc, 0);
    ck_assert_int_eq(pthread_barrier_init(&start_line, NULL, NW + NR), 0);

    struct node_writer w[NW];
    struct reader r[NR];
    memset(w, 0, sizeof w);
    memset(r, 0, sizeof r);
    for (int i = 0; i < NW; i++) {
        w[i].id = i;
        w[i].n = per_writer;
        w[i].use_malloc = (i % 2) == 1;
        w[i].tid = tu_run_thread(node_writer_main, &w[i]);
    }
    for (int i = 0; i < NR; i++) {
        r[i].id = i;
        r[i].rng = tu_seed(400 + (uint64_t)i);
        r[i].tid = tu_run_thread(node_reader_main, &r[i]);
    }
    for (int i = 0; i < NW; i++)
        tu_join(w[i].tid);
    long commits = 0, attempts = 0;
    for (int i = 0; i < NR; i++) {
        tu_join(r[i].tid);
        commits += r[i].commits;
        attempts += r[i].attempts;
    }
    pthread_barrier_destroy(&start_line);
    fprintf(stderr, "opacity node: %d writers x %ld, readers %ld commits / %ld attempts\n", NW,
            per_writer, commits, attempts);

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&node_violations) == 0,
                  "%ld reader attempts saw a bad node (freed too early, or torn)",
                  atomic_load(&node_violations));
    ck_assert_msg(atomic_load(&writer_node_violations) == 0,
                  "%ld writer attempts saw a bad node", atomic_load(&writer_node_violations));
    ck_assert_msg(atomic_load(&order_violations) == 0,
                  "%ld reader transactions saw an older node than an earlier commit had",
                  atomic_load(&order_violations));

    struct node *last = (struct node *)stm_tvar_peek(cur);
    ck_assert(last->magic == NODE_MAGIC);
    ck_assert(last->a[0] + last->a[1] == 0);
    ck_assert_int_eq(last->seq, NW * per_writer);
    free(last);
    stm_tvar_free(cur);
    stm_shutdown(); /* reclaims what the exited writers left pending */
}
END_TEST

static Suite *opacity_suite(void)
{
    Suite *s = suite_create("opacity");
    TCase *tc = tcase_create("opacity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pair_invariant);
    tcase_add_test(tc, test_node_invariant);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(opacity_suite)
