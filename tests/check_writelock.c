/*
 * check_writelock.c - a write locks its TVar at once (encounter-time
 * locking, lib/stm-tx.h: STM__HELD, lib/stm-tvar.h: STM__BODY): readers
 * still see the committed value, a second writer waits for the first's
 * commit, every way out of an attempt lets the locks go, and the thread
 * that holds one is never stuck behind it.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "../lib/stm-internal.h"
#include "testutil.h"

static uintptr_t word(stm_tvar *x)
{
    return atomic_load(&x->lock);
}

static bool held_by_body(stm_tvar *x)
{
    uintptr_t l = word(x);
    return STM__LOCKED(l) && (l & STM__BODY);
}

static uint64_t conflicts(void)
{
    struct stm_stats st;
    stm_stats_get(&st);
    return st.aborts_conflict + st.aborts_validate;
}

/* ---- the lock word through one transaction ------------------------------ */

struct one {
    stm_tvar *x;
    uintptr_t before;
    bool seen_held, seen_same_value;
};

static int body_write_check(stm_tx *tx, void *arg)
{
    struct one *o = arg;
    stm_write(tx, o->x, 5);
    o->seen_held = held_by_body(o->x);
    /* the unlocked word it hides is the one before the write */
    o->seen_same_value = stm__lock_seen(word(o->x)) == o->before;
    return 0;
}

static int body_write_abort(stm_tx *tx, void *arg)
{
    struct one *o = arg;
    stm_write(tx, o->x, 6);
    o->seen_held = held_by_body(o->x);
    stm_abort(tx, 42);
}

START_TEST(test_word_through_commit_and_abort)
{
    struct one o = {.x = stm_tvar_new(1)};
    o.before = word(o.x);
    ck_assert_int_eq(stm_atomically(body_write_check, &o), 0);
    ck_assert(o.seen_held);
    ck_assert(o.seen_same_value);
    ck_assert(!STM__LOCKED(word(o.x)));
    ck_assert_uint_gt(STM__VERSION(word(o.x)), STM__VERSION(o.before));
    ck_assert_int_eq(stm_tvar_peek(o.x), 5);
    /* an abort puts back the very word it replaced */
    o.before = word(o.x);
    o.seen_held = false;
    ck_assert_int_eq(stm_atomically(body_write_abort, &o), 42);
    ck_assert(o.seen_held);
    ck_assert_uint_eq(word(o.x), o.before);
    ck_assert_int_eq(stm_tvar_peek(o.x), 5);
    stm_tvar_free(o.x);
}
END_TEST

/* ---- another thread while a body holds x -------------------------------- */

/* Thread A writes x (x + 1, after reading it), says so, and waits in its
 * first attempt until `go`; the test does its checks meanwhile. */
struct pair {
    stm_tvar *x, *y;
    atomic_int a_ready, go, a_runs, b_runs, b_done;
    intptr_t b_saw;
};

static int body_a_incr(stm_tx *tx, void *arg)
{
    struct pair *p = arg;
    int run = atomic_fetch_add(&p->a_runs, 1);
    stm_write(tx, p->x, stm_read(tx, p->x) + 1);
    if (run == 0) {
        atomic_store(&p->a_ready, 1);
        ck_assert(tu_wait_atleast(&p->go, 1, TU_HANDSHAKE_MS));
    }
    return 0;
}

static void *thr_a(void *arg)
{
    return (void *)(intptr_t)stm_atomically(body_a_incr, arg);
}

static int body_read_x_write_y(stm_tx *tx, void *arg)
{
    struct pair *p = arg;
    p->b_saw = stm_read(tx, p->x);
    stm_write(tx, p->y, p->b_saw + 100);
    return 0;
}

static int body_read_x(stm_tx *tx, void *arg)
{
    struct pair *p = arg;
    return (int)stm_read(tx, p->x);
}

START_TEST(test_readers_see_committed_value)
{
    struct pair p = {.x = stm_tvar_new(10), .y = stm_tvar_new(0)};
    pthread_t a = tu_run_thread(thr_a, &p);
    ck_assert(tu_wait_atleast(&p.a_ready, 1, TU_HANDSHAKE_MS));
    ck_assert(held_by_body(p.x));
    uint64_t c0 = conflicts();
    /* a read-only transaction, a declared one, a writer of y, a peek:
     * none waits for A's body, none conflicts */
    ck_assert_int_eq(stm_atomically(body_read_x, &p), 10);
    ck_assert_int_eq(stm_atomically_ro(body_read_x, &p), 10);
    ck_assert_int_eq(stm_atomically(body_read_x_write_y, &p), 0);
    ck_assert_int_eq(p.b_saw, 10);
    ck_assert_int_eq(stm_tvar_peek(p.y), 110);
    ck_assert_int_eq(stm_tvar_peek(p.x), 10);
    ck_assert_uint_eq(conflicts(), c0);
    atomic_store(&p.go, 1);
    ck_assert_ptr_eq(tu_join(a), NULL);
    /* A serialised after them: it read x, which nobody wrote meanwhile */
    ck_assert_int_eq(atomic_load(&p.a_runs), 1);
    ck_assert_int_eq(stm_tvar_peek(p.x), 11);
    stm_tvar_free(p.x);
    stm_tvar_free(p.y);
}
END_TEST

static int body_b_incr(stm_tx *tx, void *arg)
{
    struct pair *p = arg;
    atomic_fetch_add(&p->b_runs, 1);
    stm_write(tx, p->x, stm_read(tx, p->x) + 1);
    return 0;
}

static void *thr_b(void *arg)
{
    struct pair *p = arg;
    intptr_t rc = stm_atomically(body_b_incr, arg);
    atomic_store(&p->b_done, 1);
    return (void *)rc;
}

START_TEST(test_second_writer_waits)
{
    struct pair p = {.x = stm_tvar_new(0), .y = NULL};
    pthread_t a = tu_run_thread(thr_a, &p);
    ck_assert(tu_wait_atleast(&p.a_ready, 1, TU_HANDSHAKE_MS));
    pthread_t b = tu_run_thread(thr_b, &p);
    /* B meets A's lock, runs again, and cannot commit before A */
    ck_assert(tu_wait_atleast(&p.b_runs, 2, TU_HANDSHAKE_MS));
    ck_assert_int_eq(atomic_load(&p.b_done), 0);
    ck_assert_int_eq(stm_tvar_peek(p.x), 0);
    atomic_store(&p.go, 1);
    ck_assert_ptr_eq(tu_join(a), NULL);
    ck_assert_ptr_eq(tu_join(b), NULL);
    ck_assert_int_eq(atomic_load(&p.a_runs), 1);
    ck_assert_int_eq(stm_tvar_peek(p.x), 2); /* no update lost */
    stm_tvar_free(p.x);
}
END_TEST

/* ---- every way out of an attempt lets go -------------------------------- */

/* A writes x, then waits for y != 0 (stm_retry): asleep, it holds nothing. */
struct sleeper {
    stm_tvar *x, *y;
    atomic_int tid, runs;
};

static int body_write_then_wait(stm_tx *tx, void *arg)
{
    struct sleeper *s = arg;
    atomic_fetch_add(&s->runs, 1);
    stm_write(tx, s->x, 1000);
    if (stm_read(tx, s->y) == 0)
        stm_retry(tx);
    return 0;
}

static void *thr_sleeper(void *arg)
{
    struct sleeper *s = arg;
    atomic_store(&s->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_write_then_wait, arg);
}

static int body_set_y(stm_tx *tx, void *arg)
{
    struct sleeper *s = arg;
    stm_write(tx, s->x, stm_read(tx, s->x) + 1);
    stm_write(tx, s->y, 1);
    return 0;
}

START_TEST(test_retry_lets_go)
{
    stm_set_wake_spin(0); /* (so that it sleeps at once) */
    struct sleeper s = {.x = stm_tvar_new(0), .y = stm_tvar_new(0)};
    pthread_t t = tu_run_thread(thr_sleeper, &s);
    ck_assert(tu_wait_atleast(&s.tid, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep((pid_t)atomic_load(&s.tid), TU_HANDSHAKE_MS));
    ck_assert(!STM__LOCKED(word(s.x)));
    uint64_t c0 = conflicts();
    ck_assert_int_eq(stm_atomically(body_set_y, &s), 0); /* writes x too */
    ck_assert_uint_eq(conflicts(), c0);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(stm_tvar_peek(s.x), 1000); /* the waiter's write, last */
    stm_tvar_free(s.x);
    stm_tvar_free(s.y);
    stm_set_wake_spin(STM_WAKE_SPIN_AUTO);
}
END_TEST

struct branch {
    stm_tvar *x;
    bool after_orelse, after_catch;
};

static int first_writes_retries(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    stm_write(tx, b->x, 7);
    stm_retry(tx);
}

static int second_nothing(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 0;
}

static int part_writes_aborts(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    stm_write(tx, b->x, 8);
    stm_abort(tx, 3);
}

static int body_branches(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    stm_or_else(tx, first_writes_retries, second_nothing, b);
    b->after_orelse = !STM__LOCKED(word(b->x));
    bool aborted = false;
    ck_assert_int_eq(stm_catch(tx, part_writes_aborts, b, &aborted), 3);
    ck_assert(aborted);
    b->after_catch = !STM__LOCKED(word(b->x));
    return 0;
}

START_TEST(test_branch_rollback_lets_go)
{
    struct branch b = {.x = stm_tvar_new(1)};
    uintptr_t before = word(b.x);
    ck_assert_int_eq(stm_atomically(body_branches, &b), 0);
    ck_assert(b.after_orelse);
    ck_assert(b.after_catch);
    ck_assert_uint_eq(word(b.x), before); /* nothing written: untouched */
    ck_assert_int_eq(stm_tvar_peek(b.x), 1);
    stm_tvar_free(b.x);
}
END_TEST

/* A failed commit: A writes x, then v (held by B's body: A's commit stops
 * there), then z.  The attempt's stm_on_abort hook runs once the attempt
 * is discarded: x and z must be free by then, v still B's. */
struct failed {
    stm_tvar *x, *v, *z;
    atomic_int b_ready, b_go, a_runs;
    int hook_calls;
    bool hook_x_free, hook_z_free, hook_v_held;
};

static void on_abort_check(void *arg)
{
    struct failed *f = arg;
    if (f->hook_calls++ == 0) {
        f->hook_x_free = !STM__LOCKED(word(f->x));
        f->hook_z_free = !STM__LOCKED(word(f->z));
        f->hook_v_held = held_by_body(f->v);
        atomic_store(&f->b_go, 1); /* B may commit now */
    }
}

static int body_a_three(stm_tx *tx, void *arg)
{
    struct failed *f = arg;
    atomic_fetch_add(&f->a_runs, 1);
    stm_on_abort(tx, on_abort_check, f);
    stm_write(tx, f->x, 1);
    stm_write(tx, f->v, 1);
    stm_write(tx, f->z, 1);
    return 0;
}

static int body_b_holds_v(stm_tx *tx, void *arg)
{
    struct failed *f = arg;
    stm_write(tx, f->v, 2);
    if (atomic_load(&f->b_ready) == 0) {
        atomic_store(&f->b_ready, 1);
        ck_assert(tu_wait_atleast(&f->b_go, 1, TU_HANDSHAKE_MS));
    }
    return 0;
}

static void *thr_b_holds_v(void *arg)
{
    return (void *)(intptr_t)stm_atomically(body_b_holds_v, arg);
}

START_TEST(test_failed_commit_lets_go)
{
    struct failed f = {.x = stm_tvar_new(0), .v = stm_tvar_new(0), .z = stm_tvar_new(0)};
    pthread_t b = tu_run_thread(thr_b_holds_v, &f);
    ck_assert(tu_wait_atleast(&f.b_ready, 1, TU_HANDSHAKE_MS));
    ck_assert_int_eq(stm_atomically(body_a_three, &f), 0);
    ck_assert_ptr_eq(tu_join(b), NULL);
    ck_assert_int_ge(f.hook_calls, 1);
    ck_assert(f.hook_x_free);
    ck_assert(f.hook_z_free);
    ck_assert(f.hook_v_held);
    ck_assert_int_ge(atomic_load(&f.a_runs), 2);
    ck_assert_int_eq(stm_tvar_peek(f.v), 1); /* A committed after B */
    stm_tvar_free(f.x);
    stm_tvar_free(f.v);
    stm_tvar_free(f.z);
}
END_TEST

/* ---- the holder is never stuck behind its own lock ---------------------- */

struct own {
    stm_tvar *x;
    intptr_t peeked;
    int named;
};

static int body_write_peek_name(stm_tx *tx, void *arg)
{
    struct own *o = arg;
    stm_write(tx, o->x, 5);
    o->peeked = stm_tvar_peek(o->x); /* the committed value */
    /* a side record needs the lock: the write's is let go for it */
    o->named = stm_tvar_set_name(o->x, "own");
    stm_write(tx, o->x, stm_read(tx, o->x) + 1);
    return 0;
}

START_TEST(test_holder_peeks_and_names)
{
    struct own o = {.x = stm_tvar_new(1)};
    ck_assert_int_eq(stm_atomically(body_write_peek_name, &o), 0);
    ck_assert_int_eq(o.peeked, 1);
    ck_assert_int_eq(o.named, 0);
    ck_assert_str_eq(stm_tvar_name(o.x), "own");
    ck_assert_int_eq(stm_tvar_peek(o.x), 6);
    ck_assert(!STM__LOCKED(word(o.x)));
    stm_tvar_free(o.x);
}
END_TEST

/* ---- a big write set: the entries move, the locks stay right ------------- */

enum { MANY = 3000 };

struct many {
    stm_tvar *v[MANY];
    atomic_int ready, go, runs;
};

static int body_write_many(stm_tx *tx, void *arg)
{
    struct many *m = arg;
    int run = atomic_fetch_add(&m->runs, 1);
    for (int i = 0; i < MANY; i++)
        stm_write(tx, m->v[i], stm_read(tx, m->v[i]) + 1);
    if (run == 0) {
        atomic_store(&m->ready, 1);
        ck_assert(tu_wait_atleast(&m->go, 1, TU_HANDSHAKE_MS));
    }
    return 0;
}

static void *thr_many(void *arg)
{
    return (void *)(intptr_t)stm_atomically(body_write_many, arg);
}

static int body_sum(stm_tx *tx, void *arg)
{
    struct many *m = arg;
    intptr_t s = 0;
    for (int i = 0; i < MANY; i++)
        s += stm_read(tx, m->v[i]);
    return (int)s;
}

START_TEST(test_many_writes)
{
    struct many *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < MANY; i++)
        m->v[i] = stm_tvar_new(i);
    int sum0 = MANY * (MANY - 1) / 2;
    pthread_t t = tu_run_thread(thr_many, m);
    ck_assert(tu_wait_atleast(&m->ready, 1, TU_HANDSHAKE_MS));
    for (int i = 0; i < MANY; i++)
        ck_assert(held_by_body(m->v[i]));
    ck_assert_int_eq(stm_atomically(body_sum, m), sum0); /* the committed values */
    atomic_store(&m->go, 1);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(atomic_load(&m->runs), 1);
    ck_assert_int_eq(stm_atomically(body_sum, m), sum0 + MANY);
    for (int i = 0; i < MANY; i++) {
        ck_assert(!STM__LOCKED(word(m->v[i])));
        stm_tvar_free(m->v[i]);
    }
    free(m);
}
END_TEST

/* ---- a waiter that meets a body's lock is still woken -------------------- */

struct wait_x {
    struct pair p;
    atomic_int w_done;
};

static int body_wait_x_nonzero(stm_tx *tx, void *arg)
{
    struct wait_x *w = arg;
    if (stm_read(tx, w->p.x) == 0)
        stm_retry(tx);
    return 0;
}

static void *thr_wait_x(void *arg)
{
    struct wait_x *w = arg;
    intptr_t rc = stm_atomically(body_wait_x_nonzero, arg);
    atomic_store(&w->w_done, 1);
    return (void *)rc;
}

START_TEST(test_waiter_on_held_is_woken)
{
    struct wait_x w = {.p = {.x = stm_tvar_new(0)}};
    pthread_t a = tu_run_thread(thr_a, &w.p); /* x = 1, held until go */
    ck_assert(tu_wait_atleast(&w.p.a_ready, 1, TU_HANDSHAKE_MS));
    pthread_t t = tu_run_thread(thr_wait_x, &w);
    ck_assert_int_eq(atomic_load(&w.w_done), 0);
    atomic_store(&w.p.go, 1);
    ck_assert_ptr_eq(tu_join(a), NULL);
    ck_assert(tu_wait_atleast(&w.w_done, 1, TU_HANDSHAKE_MS));
    ck_assert_ptr_eq(tu_join(t), NULL);
    stm_tvar_free(w.p.x);
}
END_TEST

static Suite *writelock_suite(void)
{
    Suite *s = suite_create("writelock");
    TCase *tc = tcase_create("writelock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_word_through_commit_and_abort);
    tcase_add_test(tc, test_readers_see_committed_value);
    tcase_add_test(tc, test_second_writer_waits);
    tcase_add_test(tc, test_retry_lets_go);
    tcase_add_test(tc, test_branch_rollback_lets_go);
    tcase_add_test(tc, test_failed_commit_lets_go);
    tcase_add_test(tc, test_holder_peeks_and_names);
    tcase_add_test(tc, test_many_writes);
    tcase_add_test(tc, test_waiter_on_held_is_woken);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(writelock_suite)
