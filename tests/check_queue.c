/*
 * check_queue.c - stm_queue: every operation, the blocking cases (retry
 * while empty or full and the wake-up on the change, with stm_or_else and
 * stm_atomically_until), the "a producer and a consumer do not conflict"
 * claim measured with the conflict statistics, and a producers/consumers
 * stress on bounded queues.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "misuse.h"
#include "testutil.h"

/* ---- bodies ------------------------------------------------------------ */

struct qop {
    stm_queue *q, *q2;
    intptr_t v;
    intptr_t got;
    bool ok;
    atomic_int runs;
    atomic_int tid;
};

static int body_push(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    atomic_fetch_add(&o->runs, 1);
    stm_queue_push(tx, o->q, o->v);
    return 0;
}

static int body_pop(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    atomic_fetch_add(&o->runs, 1);
    o->got = stm_queue_pop(tx, o->q);
    return 0;
}

static int body_try_push(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    o->ok = stm_queue_try_push(tx, o->q, o->v);
    return 0;
}

static int body_try_pop(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    o->ok = stm_queue_try_pop(tx, o->q, &o->got);
    return 0;
}

static int body_len(stm_tx *tx, void *arg)
{
    return (int)stm_queue_len(tx, arg);
}

static void push(stm_queue *q, intptr_t v)
{
    struct qop o = {.q = q, .v = v};
    ck_assert_int_eq(stm_atomically(body_push, &o), 0);
}

static intptr_t pop(stm_queue *q)
{
    struct qop o = {.q = q};
    ck_assert_int_eq(stm_atomically(body_pop, &o), 0);
    return o.got;
}

static int len(stm_queue *q)
{
    return stm_atomically(body_len, q);
}

/* ---- single thread ----------------------------------------------------- */

START_TEST(test_fifo)
{
    stm_queue *q = stm_queue_new(0);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(len(q), 0);
    for (int i = 0; i < 100; i++)
        push(q, i * 3);
    ck_assert_int_eq(len(q), 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(pop(q), i * 3);
    ck_assert_int_eq(len(q), 0);
    struct qop o = {.q = q, .got = 77};
    ck_assert_int_eq(stm_atomically(body_try_pop, &o), 0);
    ck_assert(!o.ok);
    ck_assert_int_eq(o.got, 77); /* left alone */
    o.v = -5;
    ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
    ck_assert(o.ok);
    ck_assert_int_eq(stm_atomically(body_try_pop, &o), 0);
    ck_assert(o.ok);
    ck_assert_int_eq(o.got, -5);
    stm_queue_free(q);
    stm_queue_free(NULL);
}
END_TEST

START_TEST(test_bounded_try)
{
    stm_queue *q = stm_queue_new(3);
    ck_assert_ptr_nonnull(q);
    struct qop o = {.q = q};
    /* fill, empty and fill again several times: the producers' credit
     * is refilled from the consumers' side each round */
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 3; i++) {
            o.v = round * 10 + i;
            ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
            ck_assert_msg(o.ok, "round %d push %d refused", round, i);
        }
        o.v = 99;
        ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
        ck_assert(!o.ok); /* full */
        ck_assert_int_eq(len(q), 3);
        ck_assert_int_eq(pop(q), round * 10);
        o.v = round * 10 + 3;
        ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
        ck_assert(o.ok); /* room for exactly one */
        ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
        ck_assert(!o.ok);
        for (int i = 1; i <= 3; i++)
            ck_assert_int_eq(pop(q), round * 10 + i);
        ck_assert_int_eq(len(q), 0);
    }
    stm_queue_free(q);
}
END_TEST

/* Items left in the queue are freed with it (ASan / valgrind see a leak
 * otherwise). */
START_TEST(test_free_with_items)
{
    stm_queue *q = stm_queue_new(0);
    for (int i = 0; i < 10; i++)
        push(q, i);
    stm_queue_free(q);
}
END_TEST

/* A discarded attempt leaves the queue as it was. */
static int body_push_abort(stm_tx *tx, void *arg)
{
    stm_queue_push(tx, arg, 1);
    stm_queue_push(tx, arg, 2);
    stm_abort(tx, 42);
}

static int body_pop_abort(stm_tx *tx, void *arg)
{
    ck_assert_int_eq(stm_queue_pop(tx, arg), 7);
    stm_abort(tx, 43);
}

START_TEST(test_abort_undoes)
{
    stm_queue *q = stm_queue_new(2);
    ck_assert_int_eq(stm_atomically(body_push_abort, q), 42);
    ck_assert_int_eq(len(q), 0);
    push(q, 7);
    ck_assert_int_eq(stm_atomically(body_pop_abort, q), 43);
    ck_assert_int_eq(len(q), 1);
    ck_assert_int_eq(pop(q), 7);
    stm_queue_free(q);
}
END_TEST

/* Several pushes and pops in one transaction, with len in between. */
static int body_many(stm_tx *tx, void *arg)
{
    stm_queue *q = arg;
    for (int i = 0; i < 5; i++)
        stm_queue_push(tx, q, i);
    ck_assert_uint_eq(stm_queue_len(tx, q), 5);
    ck_assert_int_eq(stm_queue_pop(tx, q), 0);
    ck_assert_int_eq(stm_queue_pop(tx, q), 1);
    ck_assert_uint_eq(stm_queue_len(tx, q), 3);
    return 0;
}

START_TEST(test_one_transaction)
{
    stm_queue *q = stm_queue_new(5);
    ck_assert_int_eq(stm_atomically(body_many, q), 0);
    ck_assert_int_eq(len(q), 3);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(pop(q), i);
    stm_queue_free(q);
}
END_TEST

START_TEST(test_new_enomem_path_free_null)
{
    /* capacity SIZE_MAX: effectively unbounded, no overflow in the bound */
    stm_queue *q = stm_queue_new(SIZE_MAX);
    for (int i = 0; i < 10; i++)
        push(q, i);
    ck_assert_int_eq(len(q), 10);
    stm_queue_free(q);
}
END_TEST

/* stm_catch: a part that pops (and pushes) and then aborts is undone on
 * its own -- the popped node's destroy and free included -- while the
 * transaction goes on and commits the rest. */
static int part_pop_push_abort(stm_tx *tx, void *arg)
{
    stm_queue *q = arg;
    ck_assert_int_eq(stm_queue_pop(tx, q), 1);
    stm_queue_push(tx, q, 99);
    stm_abort(tx, 7);
}

static int body_catch(stm_tx *tx, void *arg)
{
    stm_queue *q = arg;
    bool aborted = false;
    ck_assert_int_eq(stm_catch(tx, part_pop_push_abort, q, &aborted), 7);
    ck_assert(aborted);
    ck_assert_uint_eq(stm_queue_len(tx, q), 2);
    stm_queue_push(tx, q, 3);
    return 0;
}

START_TEST(test_catch_undoes_part)
{
    stm_queue *q = stm_queue_new(3);
    push(q, 1);
    push(q, 2);
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(stm_atomically(body_catch, q), 0);
        ck_assert_int_eq(len(q), 3);
        ck_assert_int_eq(pop(q), 1);
        ck_assert_int_eq(pop(q), 2);
        ck_assert_int_eq(pop(q), 3);
        push(q, 1);
        push(q, 2);
    }
    stm_queue_free(q);
}
END_TEST

/* The slots: a bounded queue of capacity up to 1024 is a ring of that
 * many slots, others are chunks of 32.  Runs of pushes and pops of every
 * length around those sizes go round the ring many times and across many
 * chunk ends, in order, with the bound exact at every step. */
static void runs_case(size_t capacity)
{
    stm_queue *q = stm_queue_new(capacity);
    ck_assert_ptr_nonnull(q);
    static const int runs[] = {1, 2, 3, 31, 32, 33, 5, 64, 65, 7, 96, 1};
    intptr_t next_in = 0, next_out = 0;
    struct qop o = {.q = q};
    for (int round = 0; round < 12; round++) {
        for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
            int n = runs[(k + (size_t)round) % (sizeof runs / sizeof runs[0])];
            for (int i = 0; i < n; i++) {
                o.v = next_in;
                ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
                bool room = capacity == 0 || (size_t)(next_in - next_out) < capacity;
                ck_assert_msg(o.ok == room, "capacity %zu, %ld items: push %s", capacity,
                              (long)(next_in - next_out), o.ok ? "taken" : "refused");
                if (o.ok)
                    next_in++;
            }
            ck_assert_int_eq(len(q), (int)(next_in - next_out));
            /* pop all but a few, so that items stay across a boundary */
            while (next_in - next_out > (intptr_t)(k % 3))
                ck_assert_int_eq(pop(q), next_out++);
        }
    }
    while (next_out < next_in)
        ck_assert_int_eq(pop(q), next_out++);
    ck_assert_int_eq(stm_atomically(body_try_pop, &o), 0);
    ck_assert(!o.ok);
    stm_queue_free(q);
}

START_TEST(test_ring_wraps)
{
    runs_case(1);
    runs_case(3);
    runs_case(32);
    runs_case(33);
    runs_case(1024); /* the largest ring */
}
END_TEST

START_TEST(test_chunk_ends)
{
    runs_case(0);
    runs_case(1025); /* bounded, beyond a ring: chunks and the credit */
    runs_case(2000);
}
END_TEST

/* A bounded queue larger than a ring fills up exactly at its capacity. */
START_TEST(test_large_bounded_full)
{
    stm_queue *q = stm_queue_new(1500);
    struct qop o = {.q = q};
    for (int i = 0; i < 1500; i++) {
        o.v = i;
        ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
        ck_assert(o.ok);
    }
    ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
    ck_assert(!o.ok);
    ck_assert_int_eq(pop(q), 0);
    o.v = 1500;
    ck_assert_int_eq(stm_atomically(body_try_push, &o), 0);
    ck_assert(o.ok);
    for (int i = 1; i <= 1500; i++)
        ck_assert_int_eq(pop(q), i);
    stm_queue_free(q);
}
END_TEST

/* Pushes and pops across chunk ends inside one transaction: the pop of
 * the first item of a chunk the same transaction made, and the release
 * of the chunk it leaves. */
static int body_cross(stm_tx *tx, void *arg)
{
    stm_queue *q = arg;
    for (int i = 0; i < 70; i++)
        stm_queue_push(tx, q, i);
    for (int i = 0; i < 66; i++)
        ck_assert_int_eq(stm_queue_pop(tx, q), i);
    ck_assert_uint_eq(stm_queue_len(tx, q), 4);
    return 0;
}

START_TEST(test_chunks_in_one_transaction)
{
    stm_queue *q = stm_queue_new(0);
    push(q, -1);
    ck_assert_int_eq(pop(q), -1); /* so that the chunk ends fall mid-run */
    ck_assert_int_eq(stm_atomically(body_cross, q), 0);
    for (int i = 66; i < 70; i++)
        ck_assert_int_eq(pop(q), i);
    ck_assert_int_eq(len(q), 0);
    stm_queue_free(q);
}
END_TEST

/* stm_catch around a push that makes a chunk and a pop that leaves one:
 * both undone with the part (the chunk freed, the TVars not destroyed). */
static int part_cross_abort(stm_tx *tx, void *arg)
{
    stm_queue *q = arg;
    stm_queue_push(tx, q, 1000); /* the first item of a new chunk */
    ck_assert_int_eq(stm_queue_pop(tx, q), 0);
    stm_abort(tx, 5);
}

static int body_catch_cross(stm_tx *tx, void *arg)
{
    bool aborted = false;
    ck_assert_int_eq(stm_catch(tx, part_cross_abort, arg, &aborted), 5);
    ck_assert(aborted);
    return 0;
}

START_TEST(test_catch_chunk_end)
{
    stm_queue *q = stm_queue_new(0);
    for (int i = 0; i < 32; i++)
        push(q, i);
    ck_assert_int_eq(stm_atomically(body_catch_cross, q), 0);
    ck_assert_int_eq(len(q), 32);
    push(q, 32);
    for (int i = 0; i <= 32; i++)
        ck_assert_int_eq(pop(q), i);
    stm_queue_free(q);
}
END_TEST

/* ---- blocking ------------------------------------------------------------ */

static void *thr_pop(void *arg)
{
    struct qop *o = arg;
    atomic_store(&o->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_pop, o);
}

static void *thr_push(void *arg)
{
    struct qop *o = arg;
    atomic_store(&o->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_push, o);
}

static void wait_blocked(struct qop *o)
{
    ck_assert(tu_wait_atleast(&o->runs, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&o->tid, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(&o->tid), TU_HANDSHAKE_MS),
                  "the thread did not go to sleep");
}

START_TEST(test_pop_waits_while_empty)
{
    stm_queue *q = stm_queue_new(0);
    struct qop o = {.q = q};
    pthread_t t = tu_run_thread(thr_pop, &o);
    wait_blocked(&o);
    ck_assert_int_eq(atomic_load(&o.runs), 1); /* asleep, not spinning */
    push(q, 123);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(o.got, 123);
    ck_assert_int_eq(atomic_load(&o.runs), 2);
    ck_assert_int_eq(len(q), 0);
    stm_queue_free(q);
}
END_TEST

START_TEST(test_push_waits_while_full)
{
    stm_queue *q = stm_queue_new(2);
    push(q, 1);
    push(q, 2);
    struct qop o = {.q = q, .v = 3};
    pthread_t t = tu_run_thread(thr_push, &o);
    wait_blocked(&o);
    ck_assert_int_eq(atomic_load(&o.runs), 1);
    ck_assert_int_eq(len(q), 2);
    ck_assert_int_eq(pop(q), 1);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(atomic_load(&o.runs), 2);
    ck_assert_int_eq(len(q), 2);
    ck_assert_int_eq(pop(q), 2);
    ck_assert_int_eq(pop(q), 3);
    stm_queue_free(q);
}
END_TEST

/* A pop that waits where the next item is the first of a chunk not yet
 * made, or in a ring slot of the previous lap: woken by the push. */
static void pop_waits_after(size_t capacity, int before)
{
    stm_queue *q = stm_queue_new(capacity);
    for (int i = 0; i < before; i++) {
        push(q, i);
        ck_assert_int_eq(pop(q), i);
    }
    struct qop o = {.q = q};
    pthread_t t = tu_run_thread(thr_pop, &o);
    wait_blocked(&o);
    push(q, 4242);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(o.got, 4242);
    ck_assert_int_eq(len(q), 0);
    stm_queue_free(q);
}

START_TEST(test_pop_waits_at_boundaries)
{
    pop_waits_after(0, 32);    /* at a chunk end */
    pop_waits_after(0, 64);    /* at the next */
    pop_waits_after(4, 4);     /* a ring's second lap */
    pop_waits_after(4, 7);     /* mid-lap */
    pop_waits_after(1100, 32); /* bounded, chunks */
}
END_TEST

/* stm_or_else: take from q, or else from q2; both empty: wait on both. */
static int first_q(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    o->got = stm_queue_pop(tx, o->q);
    return 1;
}

static int second_q(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    o->got = stm_queue_pop(tx, o->q2);
    return 2;
}

static int body_either(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    atomic_fetch_add(&o->runs, 1);
    return stm_or_else(tx, first_q, second_q, o);
}

static void *thr_either(void *arg)
{
    struct qop *o = arg;
    atomic_store(&o->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_either, o);
}

START_TEST(test_or_else)
{
    stm_queue *a = stm_queue_new(0), *b = stm_queue_new(1);
    struct qop o = {.q = a, .q2 = b};
    push(b, 20);
    ck_assert_int_eq(stm_atomically(body_either, &o), 2);
    ck_assert_int_eq(o.got, 20);
    push(a, 10);
    push(b, 21);
    ck_assert_int_eq(stm_atomically(body_either, &o), 1);
    ck_assert_int_eq(o.got, 10);
    ck_assert_int_eq(len(b), 1); /* untouched */
    ck_assert_int_eq(pop(b), 21);

    /* both empty: blocks, and a push to the second wakes it */
    atomic_store(&o.runs, 0);
    pthread_t t = tu_run_thread(thr_either, &o);
    wait_blocked(&o);
    push(b, 22);
    ck_assert_int_eq((int)(intptr_t)tu_join(t), 2);
    ck_assert_int_eq(o.got, 22);

    /* and a push to the first */
    atomic_store(&o.runs, 0);
    atomic_store(&o.tid, 0);
    t = tu_run_thread(thr_either, &o);
    wait_blocked(&o);
    push(a, 11);
    ck_assert_int_eq((int)(intptr_t)tu_join(t), 1);
    ck_assert_int_eq(o.got, 11);
    stm_queue_free(a);
    stm_queue_free(b);
}
END_TEST

/* A bounded push in an or_else branch: full, so the other branch runs
 * and the queue is left as it was. */
static int first_push(stm_tx *tx, void *arg)
{
    struct qop *o = arg;
    stm_queue_push(tx, o->q, o->v);
    return 1;
}

static int second_nothing(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 2;
}

static int body_push_or_skip(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, first_push, second_nothing, arg);
}

START_TEST(test_or_else_full)
{
    stm_queue *q = stm_queue_new(1);
    struct qop o = {.q = q, .v = 5};
    ck_assert_int_eq(stm_atomically(body_push_or_skip, &o), 1);
    o.v = 6;
    ck_assert_int_eq(stm_atomically(body_push_or_skip, &o), 2);
    ck_assert_int_eq(len(q), 1);
    ck_assert_int_eq(pop(q), 5);
    stm_queue_free(q);
}
END_TEST

/* stm_atomically_until: pop with a time-out, on the virtual clock. */
struct tpop {
    struct qop o;
    int64_t deadline;
    int rc;
};

static void *thr_pop_until(void *arg)
{
    struct tpop *p = arg;
    atomic_store(&p->o.tid, (int)tu_gettid());
    p->rc = stm_atomically_until(body_pop, &p->o, p->deadline);
    return NULL;
}

START_TEST(test_pop_timeout_virtual)
{
    stm_queue *q = stm_queue_new(0);
    ck_assert_int_eq(stm_clock_virtual(STM_SEC(1)), 0);
    struct tpop p = {.o = {.q = q}, .deadline = STM_SEC(1) + STM_MSEC(50)};
    pthread_t t = tu_run_thread(thr_pop_until, &p);
    wait_blocked(&p.o);
    stm_clock_advance(STM_MSEC(49));
    ck_assert_int_eq(atomic_load(&p.o.runs), 1); /* not yet due */
    stm_clock_advance(STM_MSEC(1));
    tu_join(t);
    ck_assert_int_eq(p.rc, -ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&p.o.runs), 2);

    /* an item that comes before the deadline is taken */
    struct tpop p2 = {.o = {.q = q}, .deadline = stm_now() + STM_MSEC(50)};
    t = tu_run_thread(thr_pop_until, &p2);
    wait_blocked(&p2.o);
    stm_clock_advance(STM_MSEC(10));
    push(q, 9);
    tu_join(t);
    ck_assert_int_eq(p2.rc, 0);
    ck_assert_int_eq(p2.o.got, 9);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_queue_free(q);
}
END_TEST

/* Real clock, lower bound strict, upper bound loose. */
START_TEST(test_pop_timeout_real)
{
    stm_queue *q = stm_queue_new(0);
    struct qop o = {.q = q};
    int64_t t0 = stm_now();
    ck_assert_int_eq(stm_atomically_until(body_pop, &o, t0 + STM_MSEC(20)), -ETIMEDOUT);
    int64_t took = stm_now() - t0;
    ck_assert_int_ge(took, STM_MSEC(20));
    ck_assert_int_lt(took, STM_SEC(10));
    stm_queue_free(q);
}
END_TEST

/* ---- no conflict between a producer and a consumer --------------------- */

/* Thread A runs its operation, then (first attempt only) holds its
 * transaction open until thread B has committed its own, or has met A's
 * write and run again (a write locks its TVar until the commit: stm.h);
 * if the two conflicted, one of them runs again. */
struct inter {
    stm_queue *q;
    bool a_pushes, b_pushes;
    atomic_int a_ready, b_done;
    atomic_int a_runs, b_runs;
    intptr_t a_got, b_got;
};

static int body_a(stm_tx *tx, void *arg)
{
    struct inter *s = arg;
    int run = atomic_fetch_add(&s->a_runs, 1);
    if (s->a_pushes)
        stm_queue_push(tx, s->q, 100);
    else
        s->a_got = stm_queue_pop(tx, s->q);
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
    if (s->b_pushes)
        stm_queue_push(tx, s->q, 200);
    else
        s->b_got = stm_queue_pop(tx, s->q);
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

/* Runs A and B interleaved on `q`; returns the attempts of both (2: no
 * conflict) and sets *conf to the conflicts counted meanwhile. */
static int interleave(struct inter *s, uint64_t *conf)
{
    uint64_t c0 = conflicts();
    pthread_t ta = tu_run_thread(thr_a, s);
    pthread_t tb = tu_run_thread(thr_b, s);
    ck_assert_ptr_eq(tu_join(tb), NULL);
    ck_assert_ptr_eq(tu_join(ta), NULL);
    *conf = conflicts() - c0;
    return atomic_load(&s->a_runs) + atomic_load(&s->b_runs);
}

/* `script` first ('+' a push of 0, '-' a pop), then `items` pushes: where
 * in the ring or the chunk the two meet. */
static void no_conflict_seq(size_t capacity, const char *script, int items, bool a_pushes)
{
    stm_queue *q = stm_queue_new(capacity);
    for (const char *c = script; *c; c++) {
        if (*c == '+')
            push(q, 0);
        else
            ck_assert_int_eq(pop(q), 0);
    }
    for (int i = 0; i < items; i++)
        push(q, i);
    int before = len(q);
    struct inter s = {.q = q, .a_pushes = a_pushes, .b_pushes = !a_pushes};
    uint64_t conf;
    int runs = interleave(&s, &conf);
    ck_assert_msg(runs == 2 && conf == 0,
                  "capacity %zu, after \"%s\", %d items, A %s: %d runs, %llu conflicts", capacity,
                  script, items, a_pushes ? "pushes" : "pops", runs, (unsigned long long)conf);
    ck_assert_int_eq(a_pushes ? s.b_got : s.a_got, 0);
    ck_assert_int_eq(len(q), before); /* one push, one pop */
    stm_queue_free(q);
}

static void no_conflict_case(size_t capacity, int items, bool a_pushes)
{
    no_conflict_seq(capacity, "", items, a_pushes);
}

/* `skip` items pushed and popped first */
static void no_conflict_at(size_t capacity, int skip, int items, bool a_pushes)
{
    char script[2 * 64 + 1] = "";
    ck_assert_int_le(skip, 64);
    for (int i = 0; i < skip; i++) {
        script[2 * i] = '+';
        script[2 * i + 1] = '-';
    }
    script[2 * skip] = '\0';
    no_conflict_seq(capacity, script, items, a_pushes);
}

START_TEST(test_producer_consumer_no_conflict)
{
    /* one item: the consumer's sentinel is not the producer's tail */
    no_conflict_case(0, 1, true);
    no_conflict_case(0, 1, false);
    no_conflict_case(0, 5, true);
    no_conflict_case(0, 5, false);
    /* bounded, with credit left */
    no_conflict_case(8, 1, true);
    no_conflict_case(8, 1, false);
    /* the pop takes the first item of a chunk (and leaves the old one)
     * while the push fills the next slot of that chunk */
    no_conflict_at(0, 31, 1, true);
    no_conflict_at(0, 31, 1, false);
    no_conflict_at(0, 32, 1, true);
    no_conflict_at(0, 32, 1, false);
    /* the push starts a chunk while the pop takes an item of the last */
    no_conflict_at(0, 30, 2, true);
    /* a ring of 4 with credit left: the push wraps round to slot 0 while
     * the pop takes slot 1 (head 5, tail 8, limit 9); the pop takes slot 0
     * while the push fills slot 1 (head 4, tail 5, limit 6) */
    no_conflict_seq(4, "++++-+-+-+--+", 0, true);
    no_conflict_seq(4, "++++-+-+-+--+", 0, false);
    no_conflict_seq(4, "++++--+--", 0, true);
    no_conflict_seq(4, "++++--+--", 0, false);
}
END_TEST

/* The control: the same handshake between two producers does show the
 * conflict (so the measurement above can fail). */
START_TEST(test_two_producers_conflict)
{
    stm_queue *q = stm_queue_new(0);
    push(q, 0);
    struct inter s = {.q = q, .a_pushes = true, .b_pushes = true};
    uint64_t conf;
    int runs = interleave(&s, &conf);
    ck_assert_int_ge(runs, 3);
    ck_assert_uint_ge(conf, 1);
    ck_assert_int_eq(len(q), 3);
    ck_assert_int_eq(pop(q), 0);
    /* B met A's lock on the tail, ran again, and committed after A */
    ck_assert_int_eq(atomic_load(&s.a_runs), 1);
    ck_assert_int_eq(pop(q), 100);
    ck_assert_int_eq(pop(q), 200);
    stm_queue_free(q);
}
END_TEST

/* ---- stress: producers and consumers on a bounded queue ----------------- */

enum { NPROD = 3, NCONS = 3 };

struct stress {
    stm_queue *q;
    int per_producer;
    atomic_int *seen; /* [NPROD * per_producer] */
    atomic_int order_errors;
    atomic_int id;
};

static int body_push_v(stm_tx *tx, void *arg)
{
    intptr_t *v = arg;
    stm_queue_push(tx, (stm_queue *)v[0], v[1]);
    return 0;
}

static int body_pop_v(stm_tx *tx, void *arg)
{
    intptr_t *v = arg;
    v[1] = stm_queue_pop(tx, (stm_queue *)v[0]);
    return 0;
}

static void *producer(void *arg)
{
    struct stress *s = arg;
    intptr_t p = atomic_fetch_add(&s->id, 1);
    for (intptr_t i = 0; i < s->per_producer; i++) {
        intptr_t v[2] = {(intptr_t)s->q, p * s->per_producer + i};
        ck_assert_int_eq(stm_atomically(body_push_v, v), 0);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct stress *s = arg;
    intptr_t last[NPROD];
    for (int p = 0; p < NPROD; p++)
        last[p] = -1;
    for (;;) {
        intptr_t v[2] = {(intptr_t)s->q, 0};
        ck_assert_int_eq(stm_atomically(body_pop_v, v), 0);
        if (v[1] < 0)
            return NULL; /* the end marker */
        int p = (int)(v[1] / s->per_producer);
        intptr_t i = v[1] % s->per_producer;
        ck_assert(p >= 0 && p < NPROD);
        if (i <= last[p])
            atomic_fetch_add(&s->order_errors, 1);
        last[p] = i;
        atomic_fetch_add(&s->seen[v[1]], 1);
    }
}

static void stress_case(size_t capacity)
{
    struct stress s = {.q = stm_queue_new(capacity), .per_producer = TU_SCALE(20000, 2000)};
    int total = NPROD * s.per_producer;
    s.seen = calloc((size_t)total, sizeof *s.seen);
    ck_assert_ptr_nonnull(s.seen);
    pthread_t pt[NPROD], ct[NCONS];
    for (int i = 0; i < NCONS; i++)
        ct[i] = tu_run_thread(consumer, &s);
    for (int i = 0; i < NPROD; i++)
        pt[i] = tu_run_thread(producer, &s);
    for (int i = 0; i < NPROD; i++)
        tu_join(pt[i]);
    for (int i = 0; i < NCONS; i++) {
        intptr_t v[2] = {(intptr_t)s.q, -1};
        ck_assert_int_eq(stm_atomically(body_push_v, v), 0);
    }
    for (int i = 0; i < NCONS; i++)
        tu_join(ct[i]);
    ck_assert_int_eq(atomic_load(&s.order_errors), 0);
    for (int i = 0; i < total; i++)
        ck_assert_msg(atomic_load(&s.seen[i]) == 1, "item %d delivered %d times", i,
                      atomic_load(&s.seen[i]));
    ck_assert_int_eq(len(s.q), 0);
    free(s.seen);
    stm_queue_free(s.q);
}

START_TEST(test_stress_bounded_small)
{
    stress_case(1);
}
END_TEST

START_TEST(test_stress_bounded)
{
    stress_case(16);
}
END_TEST

START_TEST(test_stress_unbounded)
{
    stress_case(0);
}
END_TEST

START_TEST(test_stress_bounded_chunks)
{
    stress_case(1100); /* beyond a ring: chunks and the credit */
}
END_TEST

/* ---- misuse --------------------------------------------------------------- */

static int body_push_null_q(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_queue_push(tx, NULL, 1);
    return 0;
}

START_TEST(test_misuse_null_queue)
{
    expect_abort("stm_queue_push");
    stm_atomically(body_push_null_q, NULL);
}
END_TEST

START_TEST(test_misuse_null_tx)
{
    stm_queue *q = stm_queue_new(0);
    expect_abort("stm_queue_pop");
    stm_queue_pop(NULL, q);
}
END_TEST

static int body_try_pop_null_out(stm_tx *tx, void *arg)
{
    stm_queue_try_pop(tx, arg, NULL);
    return 0;
}

START_TEST(test_misuse_null_out)
{
    stm_queue *q = stm_queue_new(0);
    expect_abort("stm_queue_try_pop");
    stm_atomically(body_try_pop_null_out, q);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_fifo);
    tcase_add_test(tc, test_bounded_try);
    tcase_add_test(tc, test_free_with_items);
    tcase_add_test(tc, test_abort_undoes);
    tcase_add_test(tc, test_one_transaction);
    tcase_add_test(tc, test_catch_undoes_part);
    tcase_add_test(tc, test_new_enomem_path_free_null);
    tcase_add_test(tc, test_ring_wraps);
    tcase_add_test(tc, test_chunk_ends);
    tcase_add_test(tc, test_large_bounded_full);
    tcase_add_test(tc, test_chunks_in_one_transaction);
    tcase_add_test(tc, test_catch_chunk_end);
    tcase_add_test_raise_signal(tc, test_misuse_null_queue, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_out, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocking");
    tcase_add_test(tc, test_pop_waits_while_empty);
    tcase_add_test(tc, test_push_waits_while_full);
    tcase_add_test(tc, test_pop_waits_at_boundaries);
    tcase_add_test(tc, test_or_else);
    tcase_add_test(tc, test_or_else_full);
    tcase_add_test(tc, test_pop_timeout_virtual);
    tcase_add_test(tc, test_pop_timeout_real);
    suite_add_tcase(s, tc);

    tc = tcase_create("conflicts");
    tcase_add_test(tc, test_producer_consumer_no_conflict);
    tcase_add_test(tc, test_two_producers_conflict);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_bounded_small);
    tcase_add_test(tc, test_stress_bounded);
    tcase_add_test(tc, test_stress_unbounded);
    tcase_add_test(tc, test_stress_bounded_chunks);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(queue_suite)
