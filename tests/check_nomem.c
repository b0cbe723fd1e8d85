/*
 * check_nomem.c - every internal allocation failure surfaces as -ENOMEM,
 * with nothing committed, no after_commit hook run, and nothing leaked.
 *
 * stm__fault_alloc_after(n) makes the (n+1)-th internal allocation fail.
 * It is process-wide, so nothing here runs concurrently with an armed
 * fault: helper threads run one at a time and are joined.  Each test runs
 * in its own forked process (Check's default), so tests do not disturb
 * each other.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

enum { NR = 300, NW = 300, NH = 40, NA = 3, MAXN = 400 };

struct nm {
    stm_tvar *r[NR];
    stm_tvar *w[NW];
    stm_tvar *ptr[NA];
    stm_tvar *victim_slot;
    unsigned char *victim;
    int runs;
    int bad_reads;
    int after_ran;
    int after_order_bad;
    int abort_ran;
    int abort_registered;
};

struct nref {
    struct nm *m;
    int id;
};

static struct nref AFTER[NH], ABORT[NH];

static void after_hook(void *p)
{
    struct nref *r = p;
    if (r->id != r->m->after_ran)
        r->m->after_order_bad++;
    r->m->after_ran++;
}

static void abort_hook(void *p)
{
    struct nref *r = p;
    r->m->abort_ran++;
}

static void nm_init(struct nm *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < NR; i++) {
        m->r[i] = stm_tvar_new(1000 + i);
        ck_assert_ptr_nonnull(m->r[i]);
    }
    for (int i = 0; i < NW; i++) {
        m->w[i] = stm_tvar_new(-i);
        ck_assert_ptr_nonnull(m->w[i]);
    }
    for (int i = 0; i < NA; i++) {
        m->ptr[i] = stm_tvar_new(0);
        ck_assert_ptr_nonnull(m->ptr[i]);
    }
    m->victim = malloc(128);
    ck_assert_ptr_nonnull(m->victim);
    memset(m->victim, 0x3c, 128);
    m->victim_slot = stm_tvar_new((intptr_t)m->victim);
    ck_assert_ptr_nonnull(m->victim_slot);
    for (int i = 0; i < NH; i++) {
        AFTER[i] = (struct nref){m, i};
        ABORT[i] = (struct nref){m, i};
    }
}

static void nm_reset_counters(struct nm *m)
{
    m->runs = m->bad_reads = 0;
    m->after_ran = m->after_order_bad = 0;
    m->abort_ran = m->abort_registered = 0;
}

/* Reads 300 TVars, writes 300, registers 40 + 40 hooks, allocates 3
 * blocks and frees one, interleaved so that failures land everywhere. */
static int big_body(stm_tx *tx, void *arg)
{
    struct nm *m = arg;
    m->runs++;
    m->bad_reads = 0;
    m->abort_registered = 0;
    int h = 0;
    for (int i = 0; i < NR; i++) {
        if (stm_read(tx, m->r[i]) != 1000 + i)
            m->bad_reads++;
        if (i % 100 == 0) { /* NA == 3 blocks, one per ptr slot */
            void *p = stm_alloc(tx, 32 + 100 * (size_t)(i / 100));
            memset(p, 0x44, 32);
            stm_write_ptr(tx, m->ptr[i / 100], p);
        }
    }
    for (int i = 0; i < NW; i++) {
        stm_write(tx, m->w[i], 7 * i + 1);
        if (i % 7 == 0 && h < NH) {
            stm_after_commit(tx, after_hook, &AFTER[h]);
            stm_on_abort(tx, abort_hook, &ABORT[h]);
            m->abort_registered++;
            h++;
        }
    }
    while (h < NH) {
        stm_after_commit(tx, after_hook, &AFTER[h]);
        stm_on_abort(tx, abort_hook, &ABORT[h]);
        m->abort_registered++;
        h++;
    }
    void *v = stm_read_ptr(tx, m->victim_slot);
    stm_free(tx, v);
    stm_write(tx, m->victim_slot, 0);
    return 77;
}

/* Asserts that nothing of big_body's committed. */
static void assert_unchanged(struct nm *m, long n)
{
    for (int i = 0; i < NW; i++)
        ck_assert_msg(stm_tvar_peek(m->w[i]) == -i, "n=%ld: w[%d] changed", n, i);
    for (int i = 0; i < NR; i++)
        ck_assert_msg(stm_tvar_peek(m->r[i]) == 1000 + i, "n=%ld: r[%d] changed", n, i);
    for (int i = 0; i < NA; i++)
        ck_assert_msg(stm_tvar_peek(m->ptr[i]) == 0, "n=%ld: ptr[%d] changed", n, i);
    ck_assert_msg(stm_tvar_peek(m->victim_slot) == (intptr_t)m->victim,
                  "n=%ld: victim slot changed", n);
    /* the block passed to stm_free was not freed (ASan would object) */
    ck_assert_msg(m->victim[0] == 0x3c && m->victim[127] == 0x3c, "n=%ld: victim", n);
    ck_assert_msg(m->after_ran == 0, "n=%ld: %d after_commit hooks ran", n, m->after_ran);
    ck_assert_msg(m->abort_ran == m->abort_registered, "n=%ld: %d of %d on_abort hooks ran", n,
                  m->abort_ran, m->abort_registered);
    ck_assert_msg(m->runs <= 1, "n=%ld: body ran %d times", n, m->runs);
}

static void assert_committed(struct nm *m, long n)
{
    ck_assert_msg(m->runs == 1, "n=%ld: body ran %d times", n, m->runs);
    ck_assert_int_eq(m->bad_reads, 0);
    for (int i = 0; i < NW; i++)
        ck_assert_msg(stm_tvar_peek(m->w[i]) == 7 * i + 1, "n=%ld: w[%d]", n, i);
    for (int i = 0; i < NA; i++) {
        unsigned char *p = (unsigned char *)stm_tvar_peek(m->ptr[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(p[0], 0x44);
    }
    ck_assert_int_eq(stm_tvar_peek(m->victim_slot), 0);
    ck_assert_int_eq(m->after_ran, NH);
    ck_assert_int_eq(m->after_order_bad, 0);
    ck_assert_int_eq(m->abort_ran, 0);
}

static int free_ptrs_body(stm_tx *tx, void *arg)
{
    struct nm *m = arg;
    for (int i = 0; i < NA; i++) {
        stm_free(tx, stm_read_ptr(tx, m->ptr[i]));
        stm_write(tx, m->ptr[i], 0);
    }
    return 0;
}

static void nm_fini(struct nm *m, bool committed)
{
    ck_assert_int_eq(stm_atomically(free_ptrs_body, m), 0);
    if (!committed)
        free(m->victim);
    for (int i = 0; i < NR; i++)
        stm_tvar_free(m->r[i]);
    for (int i = 0; i < NW; i++)
        stm_tvar_free(m->w[i]);
    for (int i = 0; i < NA; i++)
        stm_tvar_free(m->ptr[i]);
    stm_tvar_free(m->victim_slot);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
}

static int small_body(stm_tx *tx, void *arg)
{
    stm_tvar *v = arg;
    stm_write(tx, v, stm_read(tx, v) + 1);
    return 0;
}

/* One armed attempt: returns the result, sets *fired. */
static int armed_run(struct nm *m, long n, bool *fired)
{
    nm_reset_counters(m);
    stm__fault_alloc_after(n);
    int rc = stm_atomically(big_body, m);
    *fired = stm__fault_alloc_fired(); /* read before disarming */
    stm__fault_alloc_after(-1);
    return rc;
}

START_TEST(test_nomem_sweep_same_thread)
{
    struct nm *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    nm_init(m);
    stm_tvar *warm = stm_tvar_new(0);
    ck_assert_ptr_nonnull(warm);
    ck_assert_int_eq(stm_atomically(small_body, warm), 0); /* make the descriptor */

    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    int nomem = 0;
    bool done = false;
    for (long n = 0; n < MAXN && !done; n++) {
        bool fired;
        int rc = armed_run(m, n, &fired);
        if (fired) {
            ck_assert_msg(rc == -ENOMEM, "n=%ld: fault fired but rc=%d", n, rc);
            assert_unchanged(m, n);
            nomem++;
        } else {
            ck_assert_msg(rc == 77, "n=%ld: rc=%d", n, rc);
            assert_committed(m, n);
            done = true;
        }
    }
    ck_assert_msg(done, "no success within %d armed runs", MAXN);
    ck_assert_int_ge(nomem, 3);
    stm_stats_get(&s1);
    ck_assert_uint_eq(s1.aborts_nomem - s0.aborts_nomem, (uint64_t)nomem);
    ck_assert_uint_eq(s1.commits - s0.commits, 1);
    /* the thread still works */
    ck_assert_int_eq(stm_atomically(small_body, warm), 0);
    ck_assert_int_eq(stm_tvar_peek(warm), 2);
    stm_tvar_free(warm);
    nm_fini(m, true);
    free(m);
}
END_TEST

/* Each run in a fresh thread: the descriptor and its sets are made anew,
 * so failure points include the descriptor itself and every growth. */
struct fresh {
    struct nm *m;
    long n;
    int rc;
    bool fired;
    int rc_after;
    stm_tvar *warm;
};

static void *fresh_thread(void *p)
{
    struct fresh *f = p;
    f->rc = armed_run(f->m, f->n, &f->fired);
    /* the thread can go on after a failure */
    f->rc_after = stm_atomically(small_body, f->warm);
    return NULL;
}

START_TEST(test_nomem_sweep_fresh_threads)
{
    struct nm *m = malloc(sizeof *m);
    ck_assert_ptr_nonnull(m);
    nm_init(m);
    stm_tvar *warm = stm_tvar_new(0);
    ck_assert_ptr_nonnull(warm);
    int nomem = 0;
    bool done = false;
    for (long n = 0; n < MAXN && !done; n++) {
        struct fresh f = {.m = m, .n = n, .warm = warm};
        tu_join(tu_run_thread(fresh_thread, &f));
        ck_assert_msg(f.rc_after == 0, "n=%ld: transaction after the failure: %d", n, f.rc_after);
        if (f.fired) {
            ck_assert_msg(f.rc == -ENOMEM, "n=%ld: fault fired but rc=%d", n, f.rc);
            assert_unchanged(m, n);
            nomem++;
        } else {
            ck_assert_msg(f.rc == 77, "n=%ld: rc=%d", n, f.rc);
            assert_committed(m, n);
            done = true;
        }
    }
    ck_assert_msg(done, "no success within %d armed runs", MAXN);
    ck_assert_int_ge(nomem, 5);
    ck_assert_int_eq(stm_tvar_peek(warm), nomem + 1);
    stm_tvar_free(warm);
    nm_fini(m, true);
    free(m);
}
END_TEST

/* ---- a fresh thread's very first transaction ------------------------- */

struct first {
    stm_tvar *v;
    int runs;
    int rc1, rc2;
    bool fired;
    intptr_t after_fail;
};

static int first_body(stm_tx *tx, void *arg)
{
    struct first *f = arg;
    f->runs++;
    stm_write(tx, f->v, stm_read(tx, f->v) + 5);
    return 1;
}

static void *first_thread(void *p)
{
    struct first *f = p;
    stm__fault_alloc_after(0);
    f->rc1 = stm_atomically(first_body, f);
    f->fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    f->after_fail = stm_tvar_peek(f->v);
    f->rc2 = stm_atomically(first_body, f);
    return NULL;
}

START_TEST(test_nomem_first_tx_of_thread)
{
    struct first f = {.v = stm_tvar_new(10)};
    ck_assert_ptr_nonnull(f.v);
    /* the main thread has used the library already */
    ck_assert_int_eq(stm_atomically(first_body, &f), 1);
    f.runs = 0;
    tu_join(tu_run_thread(first_thread, &f));
    ck_assert(f.fired);
    ck_assert_int_eq(f.rc1, -ENOMEM);
    ck_assert_int_eq(f.after_fail, 15);
    ck_assert_int_eq(f.rc2, 1);
    ck_assert_int_eq(stm_tvar_peek(f.v), 20);
    stm_tvar_free(f.v);
}
END_TEST

struct pk {
    stm_tvar *v;
    int rc1, rc2;
    bool fired;
    intptr_t after_fail;
};

static void *poke_thread(void *p)
{
    struct pk *k = p;
    stm__fault_alloc_after(0);
    k->rc1 = stm_tvar_poke(k->v, 99);
    k->fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    k->after_fail = stm_tvar_peek(k->v);
    k->rc2 = stm_tvar_poke(k->v, 100);
    return NULL;
}

START_TEST(test_nomem_poke)
{
    struct pk k = {.v = stm_tvar_new(7)};
    ck_assert_ptr_nonnull(k.v);
    tu_join(tu_run_thread(poke_thread, &k));
    ck_assert(k.fired);
    ck_assert_int_eq(k.rc1, -ENOMEM);
    ck_assert_int_eq(k.after_fail, 7);
    ck_assert_int_eq(k.rc2, 0);
    ck_assert_int_eq(stm_tvar_peek(k.v), 100);
    stm_tvar_free(k.v);
}
END_TEST

/* ---- TVars ------------------------------------------------------------ */

#ifndef STM_TEST_EMBEDDED
START_TEST(test_nomem_tvar_new)
{
    errno = 0;
    stm__fault_alloc_after(0);
    stm_tvar *v = stm_tvar_new(1);
    int err = errno;
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert(fired);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(err, ENOMEM);
    /* and it works again */
    v = stm_tvar_new(2);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_tvar_peek(v), 2);
    stm_tvar_free(v);
}
END_TEST
#endif

START_TEST(test_nomem_tvar_set_name)
{
    stm_tvar *v = stm_tvar_new(1);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(stm_tvar_set_name(v, "old"), 0);
    stm__fault_alloc_after(0);
    int rc = stm_tvar_set_name(v, "a new name");
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert(fired);
    ck_assert_int_eq(rc, -ENOMEM);
    ck_assert_ptr_nonnull(stm_tvar_name(v));
    ck_assert_str_eq(stm_tvar_name(v), "old");
    ck_assert_int_eq(stm_tvar_set_name(v, "a new name"), 0);
    ck_assert_str_eq(stm_tvar_name(v), "a new name");
    stm_tvar_free(v);
}
END_TEST

/* ---- allocation failure while registering a retry ------------------- */

/*
 * The body reads x (0), has a helper thread poke x = 1 while it waits
 * inside the body, then retries: the registration for the wake-up may need
 * memory, and then finds x changed and runs the body again (no sleep).
 * The helper's descriptor is made before the fault is armed, and the body
 * is parked (waiting for the helper) while the helper pokes.  The spin
 * before the sleep is off (stm_set_wake_spin(0)): it would see the change
 * first and never register.
 */
struct rr {
    stm_tvar *x;
    stm_tvar *dummy;
    atomic_int go;   /* pokes requested */
    atomic_int done; /* pokes made */
    atomic_int quit;
    atomic_int ready; /* the helper has its descriptor */
    int poke_failed;  /* the helper's poke itself hit the fault */
    int runs;
    bool handshake_ok;
};

static void *rr_poker(void *p)
{
    struct rr *r = p;
    if (stm_tvar_poke(r->dummy, 1) != 0) /* make this thread's descriptor */
        r->poke_failed++;
    atomic_store(&r->ready, 1);
    for (int k = 1;; k++) {
        if (!tu_wait_atleast(&r->go, k, TU_HANDSHAKE_MS) || atomic_load(&r->quit))
            break;
        if (stm_tvar_poke(r->x, 1) != 0) {
            r->poke_failed++;
            while (stm_tvar_poke(r->x, 1) != 0) {
            }
        }
        atomic_store(&r->done, k);
    }
    return NULL;
}

static int rr_body(stm_tx *tx, void *arg)
{
    struct rr *r = arg;
    r->runs++;
    intptr_t v = stm_read(tx, r->x);
    if (v == 0) {
        if (r->runs == 1) {
            int k = atomic_fetch_add(&r->go, 1) + 1;
            r->handshake_ok = tu_wait_atleast(&r->done, k, TU_HANDSHAKE_MS);
        }
        stm_retry(tx);
    }
    return (int)v + 100;
}

START_TEST(test_nomem_retry_registration)
{
    struct rr r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(stm_set_wake_spin(0), 0);
    r.x = stm_tvar_new(0);
    r.dummy = stm_tvar_new(0);
    ck_assert_ptr_nonnull(r.x);
    ck_assert_ptr_nonnull(r.dummy);
    ck_assert_int_eq(stm_tvar_poke(r.dummy, 2), 0); /* this thread's descriptor */
    pthread_t t = tu_run_thread(rr_poker, &r);
    ck_assert(tu_wait_atleast(&r.ready, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(r.poke_failed, 0);
    int nomem = 0;
    bool done = false;
    for (long n = 0; n < MAXN && !done; n++) {
        ck_assert_int_eq(stm_tvar_poke(r.x, 0), 0);
        r.runs = 0;
        r.poke_failed = 0;
        stm__fault_alloc_after(n);
        int rc = stm_atomically(rr_body, &r);
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        ck_assert(r.handshake_ok);
        if (r.poke_failed)
            continue; /* the helper took the fault: nothing to conclude */
        if (fired) {
            ck_assert_msg(rc == -ENOMEM, "n=%ld: fault fired but rc=%d", n, rc);
            ck_assert_msg(r.runs == 1, "n=%ld: body ran %d times", n, r.runs);
            nomem++;
        } else {
            ck_assert_msg(rc == 101, "n=%ld: rc=%d", n, rc);
            ck_assert_int_eq(r.runs, 2);
            done = true;
        }
    }
    atomic_store(&r.quit, 1);
    atomic_fetch_add(&r.go, 1);
    tu_join(t);
    ck_assert(done);
    ck_assert_int_ge(nomem, 1);
    stm_tvar_free(r.x);
    stm_tvar_free(r.dummy);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

/* ---- allocation failures inside stm_or_else branches --------------- */

enum { OE_N = 100, OE_H = 5 };

struct oen {
    stm_tvar *x, *y, *pa, *pb;
    stm_tvar *many[OE_N];
    int after_ran, abort_ran, abort_registered;
    int runs;
};

static void oen_after(void *p)
{
    ((struct oen *)p)->after_ran++;
}

static void oen_abort(void *p)
{
    ((struct oen *)p)->abort_ran++;
}

static int oen_first(stm_tx *tx, void *arg)
{
    struct oen *o = arg;
    stm_write(tx, o->x, 20); /* overwrites the outer write: undo log */
    for (int i = 0; i < OE_N; i++)
        stm_write(tx, o->many[i], -1);
    for (int i = 0; i < OE_H; i++) {
        stm_after_commit(tx, oen_after, o);
        stm_on_abort(tx, oen_abort, o);
        o->abort_registered++;
    }
    void *a = stm_alloc(tx, 64);
    void *b = stm_alloc(tx, 64);
    stm_write_ptr(tx, o->pa, a);
    stm_write_ptr(tx, o->pb, b);
    stm_retry(tx);
}

static int oen_second(stm_tx *tx, void *arg)
{
    struct oen *o = arg;
    stm_write(tx, o->y, 5);
    for (int i = 0; i < OE_H; i++)
        stm_after_commit(tx, oen_after, o);
    void *b = stm_alloc(tx, 32);
    memset(b, 0, 32);
    stm_write_ptr(tx, o->pb, b);
    return 3;
}

static int oen_body(stm_tx *tx, void *arg)
{
    struct oen *o = arg;
    o->runs++;
    o->abort_registered = 0;
    stm_write(tx, o->x, 10);
    return stm_or_else(tx, oen_first, oen_second, o);
}

static int oen_free_body(stm_tx *tx, void *arg)
{
    struct oen *o = arg;
    stm_free(tx, stm_read_ptr(tx, o->pb));
    stm_write(tx, o->pb, 0);
    return 0;
}

START_TEST(test_nomem_sweep_or_else)
{
    struct oen o;
    memset(&o, 0, sizeof o);
    o.x = stm_tvar_new(1);
    o.y = stm_tvar_new(2);
    o.pa = stm_tvar_new(0);
    o.pb = stm_tvar_new(0);
    ck_assert(o.x && o.y && o.pa && o.pb);
    for (int i = 0; i < OE_N; i++) {
        o.many[i] = stm_tvar_new(i);
        ck_assert_ptr_nonnull(o.many[i]);
    }
    ck_assert_int_eq(stm_atomically(oen_free_body, &o), 0); /* the descriptor */
    int nomem = 0;
    bool done = false;
    for (long n = 0; n < MAXN && !done; n++) {
        o.runs = o.after_ran = o.abort_ran = o.abort_registered = 0;
        stm__fault_alloc_after(n);
        int rc = stm_atomically(oen_body, &o);
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        for (int i = 0; i < OE_N; i++)
            ck_assert_msg(stm_tvar_peek(o.many[i]) == i, "n=%ld: many[%d]", n, i);
        ck_assert_int_eq(stm_tvar_peek(o.pa), 0);
        ck_assert_msg(o.runs == 1, "n=%ld: body ran %d times", n, o.runs);
        ck_assert_msg(o.abort_ran == o.abort_registered, "n=%ld: %d of %d on_abort hooks ran", n,
                      o.abort_ran, o.abort_registered);
        if (fired) {
            ck_assert_msg(rc == -ENOMEM, "n=%ld: fault fired but rc=%d", n, rc);
            ck_assert_int_eq(stm_tvar_peek(o.x), 1);
            ck_assert_int_eq(stm_tvar_peek(o.y), 2);
            ck_assert_int_eq(stm_tvar_peek(o.pb), 0);
            ck_assert_msg(o.after_ran == 0, "n=%ld: %d after_commit hooks ran", n, o.after_ran);
            nomem++;
        } else {
            ck_assert_msg(rc == 3, "n=%ld: rc=%d", n, rc);
            ck_assert_int_eq(stm_tvar_peek(o.x), 10);
            ck_assert_int_eq(stm_tvar_peek(o.y), 5);
            ck_assert(stm_tvar_peek(o.pb) != 0);
            ck_assert_int_eq(o.after_ran, OE_H);
            ck_assert_int_eq(o.abort_ran, OE_H);
            done = true;
        }
    }
    ck_assert(done);
    ck_assert_int_ge(nomem, 3);
    ck_assert_int_eq(stm_atomically(oen_free_body, &o), 0);
    stm_tvar_free(o.x);
    stm_tvar_free(o.y);
    stm_tvar_free(o.pa);
    stm_tvar_free(o.pb);
    for (int i = 0; i < OE_N; i++)
        stm_tvar_free(o.many[i]);
    stm__reclaim_flush();
}
END_TEST

/* An unnamed TVar: naming it may need more than the copy of the string. */
START_TEST(test_nomem_tvar_set_name_sweep)
{
    stm_tvar *v = stm_tvar_new(1);
    ck_assert_ptr_nonnull(v);
    int nomem = 0;
    bool done = false;
    for (long n = 0; n < 50 && !done; n++) {
        stm__fault_alloc_after(n);
        int rc = stm_tvar_set_name(v, "sweep");
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        if (fired) {
            ck_assert_msg(rc == -ENOMEM, "n=%ld: rc=%d", n, rc);
            ck_assert_ptr_null(stm_tvar_name(v));
            nomem++;
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_str_eq(stm_tvar_name(v), "sweep");
            done = true;
        }
    }
    ck_assert(done);
    ck_assert_int_ge(nomem, 1);
    stm_tvar_free(v);
}
END_TEST

/* stm_tvar_free cannot fail: without memory it still frees the TVar. */
#ifndef STM_TEST_EMBEDDED
START_TEST(test_nomem_tvar_free)
{
    stm_tvar *v = stm_tvar_new(1);
    stm_tvar *w = stm_tvar_new(2);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(stm_tvar_set_name(v, "doomed"), 0);
    ck_assert_int_eq(stm_tvar_poke(w, 3), 0); /* this thread's descriptor */
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    stm__fault_alloc_after(0);
    stm_tvar_free(v);
    stm__fault_alloc_after(-1);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    stm_stats_get(&s1);
    ck_assert_uint_eq(s1.reclaimed - s0.reclaimed, 1);
    ck_assert_int_eq(stm_tvar_peek(w), 3);
    stm_tvar_free(w);
}
END_TEST
#endif

static Suite *nomem_suite(void)
{
    Suite *s = suite_create("nomem");
    TCase *tc = tcase_create("sweep");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_nomem_sweep_same_thread);
    tcase_add_test(tc, test_nomem_sweep_fresh_threads);
    tcase_add_test(tc, test_nomem_sweep_or_else);
    tcase_add_test(tc, test_nomem_retry_registration);
    suite_add_tcase(s, tc);

    tc = tcase_create("single");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_nomem_first_tx_of_thread);
    tcase_add_test(tc, test_nomem_poke);
#ifndef STM_TEST_EMBEDDED /* (about heap TVars only) */
    tcase_add_test(tc, test_nomem_tvar_new);
#endif
    tcase_add_test(tc, test_nomem_tvar_set_name);
    tcase_add_test(tc, test_nomem_tvar_set_name_sweep);
#ifndef STM_TEST_EMBEDDED /* (about heap TVars only) */
    tcase_add_test(tc, test_nomem_tvar_free);
#endif
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(nomem_suite)
