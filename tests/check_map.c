/*
 * check_map.c - stm_map: every operation with integer and string keys,
 * growth (many keys, iterations while buckets are being moved), aborts,
 * the "writers of different keys do not conflict" claim measured with
 * the conflict statistics, and concurrent writers with auditors.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "misuse.h"
#include "testutil.h"

/* ---- helpers: one operation per transaction ------------------------------ */

struct mop {
    stm_map *m;
    intptr_t key, value;
    bool ok;
};

static int body_put(stm_tx *tx, void *arg)
{
    struct mop *o = arg;
    o->ok = stm_map_put(tx, o->m, o->key, o->value);
    return 0;
}

static int body_get(stm_tx *tx, void *arg)
{
    struct mop *o = arg;
    o->ok = stm_map_get(tx, o->m, o->key, &o->value);
    return 0;
}

static int body_del(stm_tx *tx, void *arg)
{
    struct mop *o = arg;
    o->ok = stm_map_del(tx, o->m, o->key);
    return 0;
}

static int body_len(stm_tx *tx, void *arg)
{
    return (int)stm_map_len(tx, arg);
}

static bool put(stm_map *m, intptr_t k, intptr_t v)
{
    struct mop o = {m, k, v, false};
    ck_assert_int_eq(stm_atomically(body_put, &o), 0);
    return o.ok;
}

static bool get(stm_map *m, intptr_t k, intptr_t *v)
{
    struct mop o = {m, k, -12345, false};
    ck_assert_int_eq(stm_atomically_ro(body_get, &o), 0);
    if (o.ok)
        *v = o.value;
    else
        ck_assert_int_eq(o.value, -12345); /* left alone */
    return o.ok;
}

static bool del(stm_map *m, intptr_t k)
{
    struct mop o = {m, k, 0, false};
    ck_assert_int_eq(stm_atomically(body_del, &o), 0);
    return o.ok;
}

static int len(stm_map *m)
{
    return stm_atomically(body_len, m);
}

/* Iterate the whole map in one transaction: *count keys; each key in
 * [0, range) is marked in seen[] (which is cleared first); keys outside
 * the range or seen twice count as errors. */
struct scan {
    stm_map *m;
    intptr_t range;
    unsigned char *seen;
    long count, errors, len;
    bool value_is_key_mod; /* value % range == key */
};

static int body_scan(stm_tx *tx, void *arg)
{
    struct scan *s = arg;
    memset(s->seen, 0, (size_t)s->range);
    s->count = s->errors = 0;
    stm_map_iter it;
    stm_map_iter_init(&it);
    intptr_t k, v;
    while (stm_map_next(tx, s->m, &it, &k, &v)) {
        s->count++;
        if (k < 0 || k >= s->range || s->seen[k]++) {
            s->errors++;
            continue;
        }
        if (s->value_is_key_mod && v % s->range != k)
            s->errors++;
    }
    ck_assert(!stm_map_next(tx, s->m, &it, &k, &v)); /* stays done */
    s->len = (long)stm_map_len(tx, s->m);
    return 0;
}

/* ---- single thread ----------------------------------------------------- */

START_TEST(test_int_keys)
{
    stm_map *m = stm_map_new(NULL);
    ck_assert_ptr_nonnull(m);
    intptr_t v;
    ck_assert_int_eq(len(m), 0);
    ck_assert(!get(m, 5, &v));
    ck_assert(put(m, 5, 50));
    ck_assert(put(m, -7, 70));
    ck_assert(put(m, 0, 0));
    ck_assert(!put(m, 5, 55)); /* replaced */
    ck_assert_int_eq(len(m), 3);
    ck_assert(get(m, 5, &v));
    ck_assert_int_eq(v, 55);
    ck_assert(get(m, -7, &v));
    ck_assert_int_eq(v, 70);
    ck_assert(get(m, 0, &v));
    ck_assert_int_eq(v, 0);
    ck_assert(del(m, -7));
    ck_assert(!del(m, -7));
    ck_assert(!get(m, -7, &v));
    ck_assert_int_eq(len(m), 2);
    ck_assert(put(m, INTPTR_MAX, 1));
    ck_assert(put(m, INTPTR_MIN, 2));
    ck_assert(get(m, INTPTR_MIN, &v));
    ck_assert_int_eq(v, 2);
    stm_map_free(m);
    stm_map_free(NULL);
}
END_TEST

static uint64_t str_hash(intptr_t k)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (const char *p = (const char *)k; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    return h;
}

static bool str_equal(intptr_t a, intptr_t b)
{
    return strcmp((const char *)a, (const char *)b) == 0;
}

static const struct stm_map_ops str_ops = {str_hash, str_equal};

START_TEST(test_string_keys)
{
    stm_map *m = stm_map_new(&str_ops);
    ck_assert_ptr_nonnull(m);
    char a[] = "alpha", b[] = "beta", a2[] = "alpha";
    ck_assert(put(m, (intptr_t)a, 1));
    ck_assert(put(m, (intptr_t)b, 2));
    ck_assert(!put(m, (intptr_t)a2, 3)); /* equal string, other pointer */
    intptr_t v;
    ck_assert(get(m, (intptr_t) "alpha", &v));
    ck_assert_int_eq(v, 3);
    ck_assert(!get(m, (intptr_t) "gamma", &v));
    ck_assert(del(m, (intptr_t) "beta"));
    ck_assert_int_eq(len(m), 1);
    /* many keys, grown a few times */
    char(*keys)[16] = malloc(3000 * sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    for (int i = 0; i < 3000; i++) {
        snprintf(keys[i], sizeof keys[i], "key-%d", i);
        ck_assert(put(m, (intptr_t)keys[i], i));
    }
    for (int i = 0; i < 3000; i++) {
        char probe[16];
        snprintf(probe, sizeof probe, "key-%d", i);
        ck_assert(get(m, (intptr_t)probe, &v));
        ck_assert_int_eq(v, i);
    }
    ck_assert_int_eq(len(m), 3001);
    stm_map_free(m);
    free(keys);
}
END_TEST

START_TEST(test_new_einval)
{
    struct stm_map_ops half = {str_hash, NULL};
    errno = 0;
    ck_assert_ptr_null(stm_map_new(&half));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* Growth: many keys one at a time, iterating now and then (also while
 * buckets are half moved), then deleting every other key. */
START_TEST(test_growth_and_iteration)
{
    enum { N = 20000 };
    stm_map *m = stm_map_new(NULL);
    struct scan s = {.m = m, .range = N, .seen = malloc(N), .value_is_key_mod = true};
    ck_assert_ptr_nonnull(s.seen);
    for (intptr_t k = 0; k < N; k++) {
        ck_assert(put(m, k, k + N * 3));
        if (k % 997 == 0 || k == N - 1) {
            ck_assert_int_eq(stm_atomically(body_scan, &s), 0);
            ck_assert_int_eq(s.errors, 0);
            ck_assert_int_eq(s.count, k + 1);
            ck_assert_int_eq(s.len, k + 1);
        }
    }
    intptr_t v;
    for (intptr_t k = 0; k < N; k++) {
        ck_assert_msg(get(m, k, &v), "key %ld lost", (long)k);
        ck_assert_int_eq(v, k + N * 3);
    }
    ck_assert(!get(m, N, &v));
    for (intptr_t k = 0; k < N; k += 2)
        ck_assert(del(m, k));
    ck_assert_int_eq(len(m), N / 2);
    ck_assert_int_eq(stm_atomically_ro(body_scan, &s), 0);
    ck_assert_int_eq(s.errors, 0);
    ck_assert_int_eq(s.count, N / 2);
    for (intptr_t k = 0; k < N; k++)
        ck_assert_int_eq(get(m, k, &v), k % 2 == 1);
    free(s.seen);
    stm_map_free(m);
}
END_TEST

/* Many operations in one transaction, with the growth starting in it. */
static int body_bulk(stm_tx *tx, void *arg)
{
    stm_map *m = arg;
    for (intptr_t k = 0; k < 500; k++)
        ck_assert(stm_map_put(tx, m, k, k));
    for (intptr_t k = 0; k < 500; k += 5)
        ck_assert(stm_map_del(tx, m, k));
    intptr_t v;
    ck_assert(!stm_map_get(tx, m, 0, &v));
    ck_assert(stm_map_get(tx, m, 1, &v));
    ck_assert_uint_eq(stm_map_len(tx, m), 400);
    return 0;
}

START_TEST(test_one_transaction)
{
    stm_map *m = stm_map_new(NULL);
    ck_assert_int_eq(stm_atomically(body_bulk, m), 0);
    ck_assert_int_eq(len(m), 400);
    intptr_t v;
    for (intptr_t k = 0; k < 500; k++)
        ck_assert_int_eq(get(m, k, &v), k % 5 != 0);
    stm_map_free(m);
}
END_TEST

/* A discarded attempt leaves the map as it was (and frees its nodes). */
static int body_abort(stm_tx *tx, void *arg)
{
    stm_map *m = arg;
    for (intptr_t k = 100; k < 400; k++)
        stm_map_put(tx, m, k, k);
    stm_map_put(tx, m, 1, 111);
    stm_map_del(tx, m, 2);
    stm_abort(tx, 44);
}

START_TEST(test_abort_undoes)
{
    stm_map *m = stm_map_new(NULL);
    put(m, 1, 10);
    put(m, 2, 20);
    ck_assert_int_eq(stm_atomically(body_abort, m), 44);
    ck_assert_int_eq(len(m), 2);
    intptr_t v;
    ck_assert(get(m, 1, &v));
    ck_assert_int_eq(v, 10);
    ck_assert(get(m, 2, &v));
    ck_assert(!get(m, 100, &v));
    stm_map_free(m);
}
END_TEST

/* stm_catch: a part that deletes and inserts keys (the deletes destroy
 * and free nodes) and then aborts is undone on its own. */
static int part_del_put_abort(stm_tx *tx, void *arg)
{
    stm_map *m = arg;
    ck_assert(stm_map_del(tx, m, 1));
    ck_assert(stm_map_put(tx, m, 3, 30));
    ck_assert(!stm_map_put(tx, m, 2, 0));
    stm_abort(tx, 8);
}

static int body_catch(stm_tx *tx, void *arg)
{
    stm_map *m = arg;
    bool aborted = false;
    ck_assert_int_eq(stm_catch(tx, part_del_put_abort, m, &aborted), 8);
    ck_assert(aborted);
    ck_assert_uint_eq(stm_map_len(tx, m), 2);
    ck_assert(stm_map_put(tx, m, 4, 40));
    return 0;
}

START_TEST(test_catch_undoes_part)
{
    stm_map *m = stm_map_new(NULL);
    put(m, 1, 10);
    put(m, 2, 20);
    ck_assert_int_eq(stm_atomically(body_catch, m), 0);
    intptr_t v;
    ck_assert_int_eq(len(m), 3);
    ck_assert(get(m, 1, &v));
    ck_assert_int_eq(v, 10);
    ck_assert(get(m, 2, &v));
    ck_assert_int_eq(v, 20);
    ck_assert(!get(m, 3, &v));
    ck_assert(get(m, 4, &v));
    /* the node of key 1 is still good: update and delete it */
    ck_assert(!put(m, 1, 11));
    ck_assert(del(m, 1));
    ck_assert_int_eq(len(m), 2);
    stm_map_free(m);
}
END_TEST

/* A get that finds nothing retries: the program can wait for a key. */
struct waitkey {
    stm_map *m;
    intptr_t key, got;
    atomic_int runs, tid;
};

static int body_wait_key(stm_tx *tx, void *arg)
{
    struct waitkey *w = arg;
    atomic_fetch_add(&w->runs, 1);
    if (!stm_map_get(tx, w->m, w->key, &w->got))
        stm_retry(tx);
    return 0;
}

static void *thr_wait_key(void *arg)
{
    struct waitkey *w = arg;
    atomic_store(&w->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_wait_key, w);
}

START_TEST(test_wait_for_key)
{
    stm_map *m = stm_map_new(NULL);
    struct waitkey w = {.m = m, .key = 42};
    pthread_t t = tu_run_thread(thr_wait_key, &w);
    ck_assert(tu_wait_atleast(&w.runs, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&w.tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&w.tid), TU_HANDSHAKE_MS));
    put(m, 42, 4200);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(w.got, 4200);
    stm_map_free(m);
}
END_TEST

/* ---- no conflict between writers of different keys ---------------------- */

/* A copy of the map's integer mixer (lib/map.c), to choose keys that land
 * in different buckets of a new map's 16-bucket table. */
static unsigned bucket16(intptr_t key)
{
    uint64_t x = (uint64_t)key;
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return (unsigned)(x & 15);
}

enum { OP_PUT, OP_DEL };

/* Thread A runs its operation, then (first attempt only) holds its
 * transaction open until thread B has committed its own, or has met A's
 * write and run again (a write locks its TVar until the commit: stm.h).
 * No conflict: one attempt each.  A conflict: one of them ran again. */
struct inter {
    stm_map *m;
    int a_op, b_op;
    intptr_t a_key, b_key;
    atomic_int a_ready, b_done, a_runs, b_runs;
};

static void do_op(stm_tx *tx, stm_map *m, int op, intptr_t key)
{
    if (op == OP_PUT)
        stm_map_put(tx, m, key, key * 10);
    else
        stm_map_del(tx, m, key);
}

static int body_a(stm_tx *tx, void *arg)
{
    struct inter *s = arg;
    int run = atomic_fetch_add(&s->a_runs, 1);
    do_op(tx, s->m, s->a_op, s->a_key);
    if (run == 0) {
        atomic_store(&s->a_ready, 1);
        ck_assert(tu_wait_either(&s->b_done, 1, &s->b_runs, 2, TU_HANDSHAKE_MS));
    }
    return 0;
}

static int body_b(stm_tx *tx, void *arg)
{
    struct inter *s = arg;
    atomic_fetch_add(&s->b_runs, 1);
    do_op(tx, s->m, s->b_op, s->b_key);
    return 0;
}

static void *thr_a(void *arg)
{
    return (void *)(intptr_t)stm_atomically(body_a, arg);
}

static void *thr_b(void *arg)
{
    struct inter *s = arg;
    ck_assert(tu_wait_atleast(&s->a_ready, 1, TU_HANDSHAKE_MS));
    intptr_t rc = stm_atomically(body_b, arg);
    atomic_store(&s->b_done, 1);
    return (void *)rc;
}

static uint64_t conflicts(void)
{
    struct stm_stats st;
    stm_stats_get(&st);
    return st.aborts_conflict + st.aborts_validate;
}

/* The attempts of A and B together (2: no conflict); *conf: conflicts
 * counted meanwhile. */
static int interleave(stm_map *m, int a_op, intptr_t a_key, int b_op, intptr_t b_key,
                      uint64_t *conf)
{
    struct inter s = {.m = m, .a_op = a_op, .b_op = b_op, .a_key = a_key, .b_key = b_key};
    uint64_t c0 = conflicts();
    pthread_t ta = tu_run_thread(thr_a, &s);
    pthread_t tb = tu_run_thread(thr_b, &s);
    ck_assert_ptr_eq(tu_join(tb), NULL);
    ck_assert_ptr_eq(tu_join(ta), NULL);
    *conf = conflicts() - c0;
    return atomic_load(&s.a_runs) + atomic_load(&s.b_runs);
}

START_TEST(test_different_keys_no_conflict)
{
    /* two keys in different buckets, plus existing keys sharing a bucket */
    intptr_t k1 = 1, k2 = 2;
    while (bucket16(k2) == bucket16(k1))
        k2++;
    intptr_t s1 = 100, s2 = 101;
    while (bucket16(s2) != bucket16(s1))
        s2++;
    stm_map *m = stm_map_new(NULL);
    put(m, s1, 1);
    put(m, s2, 2);
    uint64_t conf;
    /* inserts of new keys (each thread its own size stripe) */
    ck_assert_int_eq(interleave(m, OP_PUT, k1, OP_PUT, k2, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    /* updates of existing keys, even in one bucket */
    ck_assert_int_eq(interleave(m, OP_PUT, s1, OP_PUT, s2, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    ck_assert_int_eq(interleave(m, OP_PUT, s2, OP_PUT, s1, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    /* deletes */
    ck_assert_int_eq(interleave(m, OP_DEL, k1, OP_DEL, k2, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    /* an insert and a delete */
    int runs = interleave(m, OP_PUT, k1, OP_DEL, s1, &conf);
    if (bucket16(k1) == bucket16(s1))
        ck_assert_int_ge(runs, 3);
    else
        ck_assert_int_eq(runs, 2);
    intptr_t v;
    ck_assert(get(m, k1, &v));
    ck_assert(!get(m, k2, &v));
    ck_assert(!get(m, s1, &v));
    ck_assert(get(m, s2, &v));
    ck_assert_int_eq(len(m), 2);
    stm_map_free(m);
}
END_TEST

/* The control: two inserts of the same new key do conflict (the
 * handshake above can see a conflict).  (Two updates of one existing key
 * need not: each only writes the value, and either order is a valid
 * serialisation.) */
START_TEST(test_same_key_conflicts)
{
    stm_map *m = stm_map_new(NULL);
    uint64_t conf;
    ck_assert_int_ge(interleave(m, OP_PUT, 7, OP_PUT, 7, &conf), 3);
    ck_assert_uint_ge(conf, 1);
    ck_assert_int_eq(len(m), 1);
    stm_map_free(m);
}
END_TEST

/* ---- stress: writers and auditors ---------------------------------------- */

/* Keys 0..K-1; a present key k always has a value v with v % K == k.
 * Phase 1: each writer inserts its share (the map grows under
 * concurrency).  Phase 2: each transaction deletes a present key and
 * inserts an absent one (the size stays K / 2), or updates a value.
 * Auditors iterate in one transaction: every key once, values right, the
 * count equal to stm_map_len(), and K / 2 during phase 2. */
enum { WRITERS = 3, AUDITORS = 1 };

struct stress {
    stm_map *m;
    intptr_t K;
    long ops;
    atomic_int phase1_done;
    atomic_int writers_done;
    atomic_long audits;
};

struct move_arg {
    stm_map *m;
    intptr_t from, to, K;
    uint64_t rnd;
};

static int body_move(stm_tx *tx, void *arg)
{
    struct move_arg *a = arg;
    intptr_t v;
    if (stm_map_get(tx, a->m, a->from, &v) && !stm_map_get(tx, a->m, a->to, NULL)) {
        ck_assert(stm_map_del(tx, a->m, a->from));
        ck_assert(stm_map_put(tx, a->m, a->to, v - a->from + a->to));
        return 1;
    }
    if (stm_map_get(tx, a->m, a->to, &v))
        ck_assert(!stm_map_put(tx, a->m, a->to, v + a->K));
    return 0;
}

static void *writer(void *arg)
{
    struct stress *s = arg;
    static atomic_int ids;
    int id = atomic_fetch_add(&ids, 1) % WRITERS;
    for (intptr_t k = id; k < s->K / 2; k += WRITERS) {
        struct mop o = {s->m, k, k, false};
        ck_assert_int_eq(stm_atomically(body_put, &o), 0);
        ck_assert(o.ok);
    }
    atomic_fetch_add(&s->phase1_done, 1);
    while (atomic_load(&s->phase1_done) < WRITERS)
        sched_yield();
    struct move_arg a = {.m = s->m, .K = s->K, .rnd = tu_seed((uint64_t)id + 7)};
    for (long i = 0; i < s->ops; i++) {
        a.from = (intptr_t)tu_rand_below(&a.rnd, (uint32_t)s->K);
        a.to = (intptr_t)tu_rand_below(&a.rnd, (uint32_t)s->K);
        ck_assert_int_ge(stm_atomically(body_move, &a), 0);
    }
    atomic_fetch_add(&s->writers_done, 1);
    return NULL;
}

static void *auditor(void *arg)
{
    struct stress *s = arg;
    struct scan sc = {
        .m = s->m, .range = s->K, .seen = malloc((size_t)s->K), .value_is_key_mod = true};
    ck_assert_ptr_nonnull(sc.seen);
    while (atomic_load(&s->writers_done) < WRITERS) {
        bool steady = atomic_load(&s->phase1_done) == WRITERS;
        ck_assert_int_eq(stm_atomically(body_scan, &sc), 0);
        ck_assert_int_eq(sc.errors, 0);
        ck_assert_int_eq(sc.count, sc.len);
        if (steady)
            ck_assert_int_eq(sc.count, s->K / 2);
        atomic_fetch_add(&s->audits, 1);
    }
    free(sc.seen);
    return NULL;
}

START_TEST(test_stress_writers_auditors)
{
    struct stress s = {
        .m = stm_map_new(NULL), .K = TU_SCALE(8192, 1024), .ops = TU_SCALE(40000, 4000)};
    pthread_t w[WRITERS], a[AUDITORS];
    for (int i = 0; i < AUDITORS; i++)
        a[i] = tu_run_thread(auditor, &s);
    for (int i = 0; i < WRITERS; i++)
        w[i] = tu_run_thread(writer, &s);
    for (int i = 0; i < WRITERS; i++)
        tu_join(w[i]);
    for (int i = 0; i < AUDITORS; i++)
        tu_join(a[i]);
    ck_assert_int_ge(atomic_load(&s.audits), 1);
    ck_assert_int_eq(len(s.m), s.K / 2);
    struct scan sc = {
        .m = s.m, .range = s.K, .seen = malloc((size_t)s.K), .value_is_key_mod = true};
    ck_assert_int_eq(stm_atomically(body_scan, &sc), 0);
    ck_assert_int_eq(sc.errors, 0);
    ck_assert_int_eq(sc.count, s.K / 2);
    free(sc.seen);
    stm_map_free(s.m);
}
END_TEST

/* ---- misuse --------------------------------------------------------------- */

static int body_put_null_map(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_map_put(tx, NULL, 1, 1);
    return 0;
}

START_TEST(test_misuse_null_map)
{
    expect_abort("stm_map_put");
    stm_atomically(body_put_null_map, NULL);
}
END_TEST

START_TEST(test_misuse_null_tx)
{
    stm_map *m = stm_map_new(NULL);
    expect_abort("stm_map_get");
    stm_map_get(NULL, m, 1, NULL);
}
END_TEST

static int body_next_null_iter(stm_tx *tx, void *arg)
{
    stm_map_next(tx, arg, NULL, NULL, NULL);
    return 0;
}

START_TEST(test_misuse_null_iter)
{
    stm_map *m = stm_map_new(NULL);
    expect_abort("stm_map_next");
    stm_atomically(body_next_null_iter, m);
}
END_TEST

static Suite *map_suite(void)
{
    Suite *s = suite_create("map");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_int_keys);
    tcase_add_test(tc, test_string_keys);
    tcase_add_test(tc, test_new_einval);
    tcase_add_test(tc, test_growth_and_iteration);
    tcase_add_test(tc, test_one_transaction);
    tcase_add_test(tc, test_abort_undoes);
    tcase_add_test(tc, test_catch_undoes_part);
    tcase_add_test(tc, test_wait_for_key);
    tcase_add_test_raise_signal(tc, test_misuse_null_map, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_iter, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("conflicts");
    tcase_add_test(tc, test_different_keys_no_conflict);
    tcase_add_test(tc, test_same_key_conflicts);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_writers_auditors);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(map_suite)
