/*
 * check_embed.c - TVars inside the program's own structs: stm_tvar_init,
 * STM_TVAR_INIT, stm_tvar_destroy, and what a TVar keeps outside its 16
 * bytes (waiters behind STM__WT, watchers and names in the side record
 * behind STM__XT).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "stm-internal.h"

#include "misuse.h"
#include "testutil.h"

static uintptr_t lockword(stm_tvar *v)
{
    return atomic_load(&v->lock);
}

static int body_read(stm_tx *tx, void *arg)
{
    return (int)stm_read(tx, arg);
}

struct incr {
    stm_tvar *v;
    int runs;
};

static int body_incr(stm_tx *tx, void *arg)
{
    struct incr *a = arg;
    a->runs++;
    stm_write(tx, a->v, stm_read(tx, a->v) + 1);
    return 0;
}

/* ---- the type --------------------------------------------------------- */

START_TEST(test_size)
{
    ck_assert_uint_eq(sizeof(stm_tvar), 16);
    ck_assert_uint_eq(_Alignof(stm_tvar), _Alignof(uintptr_t));
}
END_TEST

static stm_tvar hits = STM_TVAR_INIT(41);

START_TEST(test_static_init)
{
    ck_assert_int_eq(stm_tvar_peek(&hits), 41);
    struct incr a = {&hits, 0};
    ck_assert_int_eq(stm_atomically(body_incr, &a), 0);
    ck_assert_int_eq(stm_tvar_peek(&hits), 42);
    ck_assert_int_eq(stm_atomically(body_read, &hits), 42);
}
END_TEST

/* Neighbours in one array: a write to one changes nothing else. */
struct node {
    int key;
    stm_tvar val;
    stm_tvar next;
};

START_TEST(test_array_of_structs)
{
    struct node n[32];
    for (int i = 0; i < 32; i++) {
        n[i].key = i;
        stm_tvar_init(&n[i].val, i * 10);
        stm_tvar_init(&n[i].next, (intptr_t)(i < 31 ? &n[i + 1] : NULL));
    }
    struct incr a = {&n[7].val, 0};
    ck_assert_int_eq(stm_atomically(body_incr, &a), 0);
    for (int i = 0; i < 32; i++) {
        ck_assert_int_eq(n[i].key, i);
        ck_assert_int_eq(stm_tvar_peek(&n[i].val), i * 10 + (i == 7));
        ck_assert_ptr_eq((void *)stm_tvar_peek(&n[i].next), i < 31 ? &n[i + 1] : NULL);
    }
    for (int i = 0; i < 32; i++) {
        stm_tvar_destroy(&n[i].val);
        stm_tvar_destroy(&n[i].next);
    }
}
END_TEST

START_TEST(test_init_again_after_destroy)
{
    stm_tvar v;
    stm_tvar_init(&v, 1);
    ck_assert_int_eq(stm_tvar_set_name(&v, "first life"), 0);
    stm_tvar_destroy(&v);
    stm_tvar_init(&v, 2);
    ck_assert_ptr_null(stm_tvar_name(&v));
    ck_assert_int_eq(stm_tvar_peek(&v), 2);
    ck_assert_uint_eq(lockword(&v), 0);
    stm_tvar_destroy(&v);
    stm_tvar_destroy(NULL); /* a harmless no-op */
    stm__reclaim_flush();
}
END_TEST

START_TEST(test_misuse_init_null)
{
    expect_abort("stm_tvar_init");
    stm_tvar_init(NULL, 0);
}
END_TEST

/* ---- the side record ------------------------------------------------- */

START_TEST(test_record_keeps_the_value)
{
    stm_tvar v = STM_TVAR_INIT(5);
    ck_assert_uint_eq(lockword(&v) & STM__XT, 0);
    ck_assert_int_eq(stm_tvar_set_name(&v, "v"), 0);
    ck_assert_uint_ne(lockword(&v) & STM__XT, 0);
    ck_assert_str_eq(stm_tvar_name(&v), "v");
    ck_assert_int_eq(stm_tvar_peek(&v), 5);
    ck_assert_int_eq(stm_atomically(body_read, &v), 5);
    struct incr a = {&v, 0};
    ck_assert_int_eq(stm_atomically(body_incr, &a), 0);
    ck_assert_int_eq(stm_tvar_peek(&v), 6);
    ck_assert_int_eq(stm_tvar_poke(&v, 9), 0);
    ck_assert_int_eq(stm_atomically(body_read, &v), 9);
    /* the record stays after the name goes; the value is still right */
    ck_assert_int_eq(stm_tvar_set_name(&v, NULL), 0);
    ck_assert_ptr_null(stm_tvar_name(&v));
    ck_assert_int_eq(stm_tvar_peek(&v), 9);
    stm_tvar_destroy(&v);
    stm__reclaim_flush();
}
END_TEST

/* A record made while a transaction has read the TVar does not make it
 * conflict: the version is the same. */
struct midway {
    stm_tvar *v, *w;
    int runs;
};

static int body_name_midway(stm_tx *tx, void *arg)
{
    struct midway *m = arg;
    m->runs++;
    intptr_t x = stm_read(tx, m->v);
    if (m->runs == 1)
        ck_assert_int_eq(stm_tvar_set_name(m->v, "named midway"), 0);
    stm_write(tx, m->w, x + stm_read(tx, m->v));
    return 0;
}

START_TEST(test_record_made_midway_no_conflict)
{
    stm_tvar v = STM_TVAR_INIT(4), w = STM_TVAR_INIT(0);
    struct midway m = {&v, &w, 0};
    ck_assert_int_eq(stm_atomically(body_name_midway, &m), 0);
    ck_assert_int_eq(m.runs, 1);
    ck_assert_int_eq(stm_tvar_peek(&w), 8);
    stm_tvar_destroy(&v);
    stm_tvar_destroy(&w);
    stm__reclaim_flush();
}
END_TEST

/* ---- waiters ---------------------------------------------------------- */

struct waiter {
    stm_tvar *v;
    atomic_int runs;
    pid_t tid;
    intptr_t got;
};

static int body_wait_nonzero(stm_tx *tx, void *arg)
{
    struct waiter *w = arg;
    atomic_fetch_add(&w->runs, 1);
    intptr_t x = stm_read(tx, w->v);
    if (x == 0)
        stm_retry(tx);
    w->got = x;
    return 0;
}

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    w->tid = tu_gettid();
    intptr_t rc = stm_atomically(body_wait_nonzero, w);
    return (void *)rc;
}

START_TEST(test_retry_wakes_and_flag_clears)
{
    stm_tvar v = STM_TVAR_INIT(0);
    struct waiter w = {.v = &v};
    pthread_t t = tu_run_thread(wait_thread, &w);
    ck_assert(tu_wait_atleast(&w.runs, 1, TU_HANDSHAKE_MS));
    /* asleep on it: the flag is up */
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * 1000000;
    while (!(lockword(&v) & STM__WT) && tu_now_ns() < end)
        tu_sleep_ms(1);
    ck_assert_uint_ne(lockword(&v) & STM__WT, 0);
    ck_assert_int_eq(stm_tvar_poke(&v, 3), 0);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(w.got, 3);
    /* nobody waits any more: the next commit lets go without the flag */
    ck_assert_int_eq(stm_tvar_poke(&v, 4), 0);
    ck_assert_uint_eq(lockword(&v) & STM__WT, 0);
    stm_tvar_destroy(&v);
}
END_TEST

/* stm_tvar_destroy in a transaction wakes the TVar's waiters when that
 * transaction commits: they run again (here they find it still 0, and
 * wait again, also on `stop`). */
struct dwaiter {
    stm_tvar *v, *stop;
    atomic_int runs;
    pid_t tid;
};

static int body_wait_v_or_stop(stm_tx *tx, void *arg)
{
    struct dwaiter *w = arg;
    atomic_fetch_add(&w->runs, 1);
    if (stm_read(tx, w->stop))
        return 0;
    if (stm_read(tx, w->v) == 0)
        stm_retry(tx);
    return 1;
}

static void *dwait_thread(void *arg)
{
    struct dwaiter *w = arg;
    w->tid = tu_gettid();
    return (void *)(intptr_t)stm_atomically(body_wait_v_or_stop, w);
}

static int body_destroy(stm_tx *tx, void *arg)
{
    (void)tx;
    stm_tvar_destroy(arg);
    return 0;
}

START_TEST(test_destroy_in_tx_wakes_at_commit)
{
    stm_tvar v = STM_TVAR_INIT(0), stop = STM_TVAR_INIT(0);
    struct dwaiter w = {.v = &v, .stop = &stop};
    pthread_t t = tu_run_thread(dwait_thread, &w);
    ck_assert(tu_wait_atleast(&w.runs, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep(w.tid, TU_HANDSHAKE_MS));
    ck_assert_int_eq(atomic_load(&w.runs), 1);
    ck_assert_int_eq(stm_atomically(body_destroy, &v), 0);
    ck_assert_msg(tu_wait_atleast(&w.runs, 2, TU_HANDSHAKE_MS),
                  "the waiter was not woken by the destroying commit");
    ck_assert_int_eq(stm_tvar_poke(&stop, 1), 0);
    ck_assert_ptr_eq(tu_join(t), NULL);
    stm_tvar_destroy(&stop);
    stm__reclaim_flush();
}
END_TEST

/* ---- watchers ---------------------------------------------------------- */

struct pair {
    stm_tvar *in, *out;
};

static intptr_t watch_fn(stm_tx *tx, void *arg)
{
    struct pair *p = arg;
    return stm_read(tx, p->in);
}

static void watch_cb(stm_tx *tx, intptr_t value, void *arg)
{
    struct pair *p = arg;
    stm_write(tx, p->out, value * 2);
}

static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

START_TEST(test_watcher_on_embedded)
{
    struct {
        stm_tvar in, out;
    } s = {STM_TVAR_INIT(1), STM_TVAR_INIT(0)};
    struct pair p = {&s.in, &s.out};
    stm_watch *w = stm_atomically_watch(watch_fn, watch_cb, &p, 0);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(stm_tvar_peek(&s.out), 2);
    ck_assert_uint_ne(lockword(&s.in) & STM__XT, 0); /* its watchers are in the record */
    for (int i = 2; i < 50; i++) {
        ck_assert_int_eq(stm_tvar_poke(&s.in, i), 0);
        ck_assert_int_eq(stm_tvar_peek(&s.out), 2 * i);
    }
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
    ck_assert_int_eq(stm_tvar_poke(&s.in, 100), 0);
    ck_assert_int_eq(stm_tvar_peek(&s.out), 98);
    stm_tvar_destroy(&s.in);
    stm_tvar_destroy(&s.out);
    stm__reclaim_flush();
}
END_TEST

START_TEST(test_misuse_destroy_watched)
{
    stm_tvar in = STM_TVAR_INIT(1), out = STM_TVAR_INIT(0);
    struct pair p = {&in, &out};
    stm_watch *w = stm_atomically_watch(watch_fn, watch_cb, &p, 0);
    ck_assert_ptr_nonnull(w);
    expect_abort("stm_tvar_destroy");
    stm_tvar_destroy(&in);
}
END_TEST

/* ---- a shared list of nodes made and freed in transactions -------------- */

struct lnode {
    intptr_t key;
    stm_tvar next;
};

struct list {
    stm_tvar head;
    atomic_int stop;
    int iters;
    unsigned seed;
};

struct op {
    struct list *l;
    intptr_t key;
};

/* insert key if absent, remove it if present: 1 inserted, 0 removed */
static int body_toggle(stm_tx *tx, void *arg)
{
    struct op *o = arg;
    stm_tvar *link = &o->l->head;
    struct lnode *n;
    while ((n = stm_read_ptr(tx, link)) != NULL && n->key < o->key)
        link = &n->next;
    if (n != NULL && n->key == o->key) {
        stm_write_ptr(tx, link, stm_read_ptr(tx, &n->next));
        stm_tvar_destroy(&n->next);
        stm_free(tx, n);
        return 0;
    }
    struct lnode *m = stm_alloc(tx, sizeof *m);
    m->key = o->key;
    stm_tvar_init(&m->next, (intptr_t)n);
    stm_write_ptr(tx, link, m);
    return 1;
}

static int body_check_sorted(stm_tx *tx, void *arg)
{
    struct list *l = arg;
    intptr_t last = -1;
    int n = 0;
    for (struct lnode *p = stm_read_ptr(tx, &l->head); p; p = stm_read_ptr(tx, &p->next)) {
        if (p->key <= last)
            return -1000;
        last = p->key;
        n++;
    }
    return n;
}

static void *toggler(void *arg)
{
    struct list *l = arg;
    unsigned seed = __atomic_add_fetch(&l->seed, 7919, __ATOMIC_RELAXED);
    intptr_t balance = 0;
    for (int i = 0; i < l->iters; i++) {
        struct op o = {l, (intptr_t)(rand_r(&seed) % 64)};
        balance += stm_atomically(body_toggle, &o) ? 1 : -1;
    }
    return (void *)balance;
}

static void *checker(void *arg)
{
    struct list *l = arg;
    intptr_t bad = 0;
    while (!atomic_load(&l->stop))
        if (stm_atomically_ro(body_check_sorted, l) < 0)
            bad++;
    return (void *)bad;
}

START_TEST(test_concurrent_list)
{
    struct list l = {.head = STM_TVAR_INIT(0), .iters = TU_SCALE(20000, 2000), .seed = 1};
    pthread_t a = tu_run_thread(toggler, &l), b = tu_run_thread(toggler, &l);
    pthread_t c = tu_run_thread(checker, &l);
    intptr_t ins = (intptr_t)tu_join(a) + (intptr_t)tu_join(b);
    atomic_store(&l.stop, 1);
    ck_assert_ptr_eq(tu_join(c), NULL);
    int n = stm_atomically(body_check_sorted, &l);
    ck_assert_int_ge(n, 0);
    /* every insert not undone by a removal is in the list */
    ck_assert_int_eq(n, (int)ins);
    while (stm_tvar_peek(&l.head)) {
        struct op o = {&l, ((struct lnode *)stm_tvar_peek(&l.head))->key};
        ck_assert_int_eq(stm_atomically(body_toggle, &o), 0);
    }
    stm__reclaim_flush();
}
END_TEST

static Suite *embed_suite(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("type");
    tcase_add_test(tc, test_size);
    tcase_add_test(tc, test_static_init);
    tcase_add_test(tc, test_array_of_structs);
    tcase_add_test(tc, test_init_again_after_destroy);
    tcase_add_test_raise_signal(tc, test_misuse_init_null, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("record");
    tcase_add_test(tc, test_record_keeps_the_value);
    tcase_add_test(tc, test_record_made_midway_no_conflict);
    tcase_add_test(tc, test_watcher_on_embedded);
    tcase_add_test_raise_signal(tc, test_misuse_destroy_watched, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("waiters");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_retry_wakes_and_flag_clears);
    tcase_add_test(tc, test_destroy_in_tx_wakes_at_commit);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrent");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_concurrent_list);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(embed_suite)
