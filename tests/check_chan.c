/*
 * check_chan.c - stm_chan: every operation, the blocking cases (retry
 * while nothing is new and the wake-up on a send, with stm_or_else and
 * stm_atomically_until), reclamation of messages every reader has passed,
 * the "a sender and a reader that is behind do not conflict" claim
 * measured with the conflict statistics, and subscribe/unsubscribe churn.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stm.h>

#include "stm-internal.h"

#include "misuse.h"
#include "testutil.h"

/* ---- helpers: one operation per transaction ------------------------------ */

struct cop {
    stm_chan *ch, *ch2;
    stm_chan_reader *r, *r2;
    intptr_t v;
    bool ok;
    atomic_int runs, tid;
};

static int body_send(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    stm_chan_send(tx, o->ch, o->v);
    return 0;
}

static int body_sub(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    o->r = stm_chan_subscribe(tx, o->ch);
    return 0;
}

static int body_unsub(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    stm_chan_unsubscribe(tx, o->r);
    return 0;
}

static int body_recv(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    atomic_fetch_add(&o->runs, 1);
    o->v = stm_chan_recv(tx, o->r);
    return 0;
}

static int body_try_recv(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    o->ok = stm_chan_try_recv(tx, o->r, &o->v);
    return 0;
}

static void ch_send(stm_chan *ch, intptr_t v)
{
    struct cop o = {.ch = ch, .v = v};
    ck_assert_int_eq(stm_atomically(body_send, &o), 0);
}

static stm_chan_reader *sub(stm_chan *ch)
{
    struct cop o = {.ch = ch};
    ck_assert_int_eq(stm_atomically(body_sub, &o), 0);
    ck_assert_ptr_nonnull(o.r);
    return o.r;
}

static void unsub(stm_chan_reader *r)
{
    struct cop o = {.r = r};
    ck_assert_int_eq(stm_atomically(body_unsub, &o), 0);
}

static intptr_t ch_recv(stm_chan_reader *r)
{
    struct cop o = {.r = r};
    ck_assert_int_eq(stm_atomically(body_recv, &o), 0);
    return o.v;
}

static bool try_recv(stm_chan_reader *r, intptr_t *v)
{
    struct cop o = {.r = r, .v = -999};
    ck_assert_int_eq(stm_atomically(body_try_recv, &o), 0);
    if (!o.ok)
        ck_assert_int_eq(o.v, -999);
    *v = o.v;
    return o.ok;
}

static uint64_t reclaimed(void)
{
    stm__reclaim_flush();
    struct stm_stats st;
    stm_stats_get(&st);
    return st.reclaimed;
}

/* ---- single thread ----------------------------------------------------- */

START_TEST(test_broadcast)
{
    stm_chan *ch = stm_chan_new();
    ck_assert_ptr_nonnull(ch);
    intptr_t v;
    ch_send(ch, 100); /* nobody subscribed: dropped */
    stm_chan_reader *a = sub(ch);
    ck_assert(!try_recv(a, &v));
    ch_send(ch, 1);
    ch_send(ch, 2);
    stm_chan_reader *b = sub(ch);
    ch_send(ch, 3);
    ck_assert_int_eq(ch_recv(a), 1);
    ck_assert_int_eq(ch_recv(a), 2);
    ck_assert_int_eq(ch_recv(b), 3);
    ck_assert(!try_recv(b, &v));
    ck_assert(try_recv(a, &v));
    ck_assert_int_eq(v, 3);
    ck_assert(!try_recv(a, &v));
    unsub(a);
    ch_send(ch, 4);
    ck_assert_int_eq(ch_recv(b), 4);
    unsub(b);
    unsub(NULL);
    ch_send(ch, 5); /* nobody again */
    stm_chan_reader *c = sub(ch);
    ck_assert(!try_recv(c, &v));
    ch_send(ch, 6);
    ck_assert_int_eq(ch_recv(c), 6);
    stm_chan_free(ch); /* frees c too */
    stm_chan_free(NULL);
}
END_TEST

/* Pending messages and readers are freed with the channel (ASan and
 * valgrind would see a leak). */
START_TEST(test_free_with_pending)
{
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *a = sub(ch);
    ch_send(ch, 1);
    stm_chan_reader *b = sub(ch);
    ch_send(ch, 2);
    ch_send(ch, 3);
    ck_assert_int_eq(ch_recv(b), 2);
    (void)a;
    stm_chan_free(ch);
}
END_TEST

/* A discarded attempt leaves the channel as it was. */
static int body_sub_send_abort(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    stm_chan_reader *r = stm_chan_subscribe(tx, o->ch);
    (void)r;
    stm_chan_send(tx, o->ch, 77);
    stm_abort(tx, 45);
}

static int body_recv_abort(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    ck_assert_int_eq(stm_chan_recv(tx, o->r), 8);
    stm_abort(tx, 46);
}

START_TEST(test_abort_undoes)
{
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *a = sub(ch);
    struct cop o = {.ch = ch, .r = a};
    ck_assert_int_eq(stm_atomically(body_sub_send_abort, &o), 45);
    intptr_t v;
    ck_assert(!try_recv(a, &v));
    ch_send(ch, 8);
    ck_assert_int_eq(stm_atomically(body_recv_abort, &o), 46);
    ck_assert_int_eq(ch_recv(a), 8);
    stm_chan_free(ch);
}
END_TEST

/* In one transaction: subscribe, send, receive it. */
static int body_all_in_one(stm_tx *tx, void *arg)
{
    stm_chan *ch = arg;
    stm_chan_reader *r = stm_chan_subscribe(tx, ch);
    stm_chan_send(tx, ch, 1);
    stm_chan_send(tx, ch, 2);
    ck_assert_int_eq(stm_chan_recv(tx, r), 1);
    ck_assert_int_eq(stm_chan_recv(tx, r), 2);
    intptr_t v;
    ck_assert(!stm_chan_try_recv(tx, r, &v));
    stm_chan_unsubscribe(tx, r);
    return 0;
}

START_TEST(test_one_transaction)
{
    stm_chan *ch = stm_chan_new();
    ck_assert_int_eq(stm_atomically(body_all_in_one, ch), 0);
    stm_chan_free(ch);
}
END_TEST

/* stm_catch: a part that receives (freeing the message it leaves, as the
 * only reader) and sends, then aborts, is undone on its own. */
static int part_recv_send_abort(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    ck_assert_int_eq(stm_chan_recv(tx, o->r), 1);
    ck_assert_int_eq(stm_chan_recv(tx, o->r), 2);
    stm_chan_send(tx, o->ch, 99);
    stm_abort(tx, 9);
}

static int body_catch(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    bool aborted = false;
    ck_assert_int_eq(stm_catch(tx, part_recv_send_abort, o, &aborted), 9);
    ck_assert(aborted);
    stm_chan_send(tx, o->ch, 3);
    return 0;
}

START_TEST(test_catch_undoes_part)
{
    stm_chan *ch = stm_chan_new();
    struct cop o = {.ch = ch, .r = sub(ch)};
    ch_send(ch, 1);
    ch_send(ch, 2);
    ck_assert_int_eq(stm_atomically(body_catch, &o), 0);
    ck_assert_int_eq(ch_recv(o.r), 1);
    ck_assert_int_eq(ch_recv(o.r), 2);
    ck_assert_int_eq(ch_recv(o.r), 3);
    intptr_t v;
    ck_assert(!try_recv(o.r, &v));
    stm_chan_free(ch);
}
END_TEST

/* ---- reclamation --------------------------------------------------------- */

/* Every message every reader has passed is freed: after N messages read
 * by two readers, N blocks have been reclaimed (the N - 1 first messages
 * and the first sentinel; the last message stays as the tail). */
START_TEST(test_reclaimed_when_all_passed)
{
    enum { N = 1000 };
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *a = sub(ch), *b = sub(ch);
    uint64_t r0 = reclaimed();
    for (int i = 0; i < N; i++)
        ch_send(ch, i);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ch_recv(a), i);
    /* a has passed them all, b none: nothing can go yet */
    ck_assert_uint_eq(reclaimed() - r0, 0);
    for (int i = 0; i < N / 2; i++)
        ck_assert_int_eq(ch_recv(b), i);
    ck_assert_uint_eq(reclaimed() - r0, N / 2);
    for (int i = N / 2; i < N; i++)
        ck_assert_int_eq(ch_recv(b), i);
    ck_assert_uint_eq(reclaimed() - r0, N);
    stm_chan_free(ch);
}
END_TEST

/* Unsubscribing lets go of the messages the reader had not received. */
START_TEST(test_unsubscribe_releases)
{
    enum { N = 300 };
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *slow = sub(ch), *fast = sub(ch);
    uint64_t r0 = reclaimed();
    for (int i = 0; i < N; i++)
        ch_send(ch, i);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ch_recv(fast), i);
    ck_assert_uint_eq(reclaimed() - r0, 0);
    unsub(slow);
    ck_assert_uint_ge(reclaimed() - r0, N); /* the N nodes, and the reader */
    /* and with no reader left, sends keep nothing */
    unsub(fast);
    uint64_t r1 = reclaimed();
    for (int i = 0; i < N; i++)
        ch_send(ch, i);
    ck_assert_uint_ge(reclaimed() - r1, N);
    stm_chan_free(ch);
}
END_TEST

/* A long run with a fast and a slow reader thread: memory stays flat --
 * each round, everything both have passed has been reclaimed. */
struct flat {
    stm_chan_reader *r;
    int n;
    unsigned busy;
    long errors;
};

static void *flat_reader(void *arg)
{
    struct flat *f = arg;
    for (int i = 0; i < f->n; i++) {
        if (ch_recv(f->r) != i)
            f->errors++;
        tu_busy(f->busy);
    }
    return NULL;
}

START_TEST(test_memory_flat_slow_and_fast)
{
    int rounds = 5, n = TU_SCALE(4000, 500);
    stm_chan *ch = stm_chan_new();
    for (int round = 0; round < rounds; round++) {
        struct flat fast = {sub(ch), n, 0, 0}, slow = {sub(ch), n, 2000, 0};
        uint64_t r0 = reclaimed();
        pthread_t tf = tu_run_thread(flat_reader, &fast);
        pthread_t ts = tu_run_thread(flat_reader, &slow);
        for (int i = 0; i < n; i++)
            ch_send(ch, i);
        tu_join(tf);
        tu_join(ts);
        ck_assert_int_eq(fast.errors, 0);
        ck_assert_int_eq(slow.errors, 0);
        /* n messages plus the tail the readers started from have gone,
         * but the last message (the tail); plus the readers' memory */
        unsub(fast.r);
        unsub(slow.r);
        ck_assert_uint_ge(reclaimed() - r0, (uint64_t)n);
    }
    stm_chan_free(ch);
}
END_TEST

/* ---- blocking ------------------------------------------------------------ */

static void *thr_recv(void *arg)
{
    struct cop *o = arg;
    atomic_store(&o->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_recv, o);
}

static void wait_blocked(struct cop *o)
{
    ck_assert(tu_wait_atleast(&o->runs, 1, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_atleast(&o->tid, 1, TU_HANDSHAKE_MS));
    ck_assert_msg(tu_wait_asleep((pid_t)atomic_load(&o->tid), TU_HANDSHAKE_MS),
                  "the thread did not go to sleep");
}

START_TEST(test_recv_waits)
{
    stm_chan *ch = stm_chan_new();
    struct cop o = {.r = sub(ch)};
    pthread_t t = tu_run_thread(thr_recv, &o);
    wait_blocked(&o);
    ck_assert_int_eq(atomic_load(&o.runs), 1);
    ch_send(ch, 55);
    ck_assert_ptr_eq(tu_join(t), NULL);
    ck_assert_int_eq(o.v, 55);
    ck_assert_int_eq(atomic_load(&o.runs), 2);
    stm_chan_free(ch);
}
END_TEST

static int first_r(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    o->v = stm_chan_recv(tx, o->r);
    return 1;
}

static int second_r(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    o->v = stm_chan_recv(tx, o->r2);
    return 2;
}

static int body_either(stm_tx *tx, void *arg)
{
    struct cop *o = arg;
    atomic_fetch_add(&o->runs, 1);
    return stm_or_else(tx, first_r, second_r, o);
}

static void *thr_either(void *arg)
{
    struct cop *o = arg;
    atomic_store(&o->tid, (int)tu_gettid());
    return (void *)(intptr_t)stm_atomically(body_either, o);
}

START_TEST(test_or_else)
{
    stm_chan *a = stm_chan_new(), *b = stm_chan_new();
    struct cop o = {.r = sub(a), .r2 = sub(b)};
    ch_send(b, 20);
    ck_assert_int_eq(stm_atomically(body_either, &o), 2);
    ck_assert_int_eq(o.v, 20);
    ch_send(a, 10);
    ck_assert_int_eq(stm_atomically(body_either, &o), 1);
    ck_assert_int_eq(o.v, 10);
    /* nothing on either: waits; a send on the second wakes it */
    atomic_store(&o.runs, 0);
    pthread_t t = tu_run_thread(thr_either, &o);
    wait_blocked(&o);
    ch_send(b, 21);
    ck_assert_int_eq((int)(intptr_t)tu_join(t), 2);
    ck_assert_int_eq(o.v, 21);
    stm_chan_free(a);
    stm_chan_free(b);
}
END_TEST

struct trecv {
    struct cop o;
    int64_t deadline;
    int rc;
};

static void *thr_recv_until(void *arg)
{
    struct trecv *p = arg;
    atomic_store(&p->o.tid, (int)tu_gettid());
    p->rc = stm_atomically_until(body_recv, &p->o, p->deadline);
    return NULL;
}

START_TEST(test_recv_timeout_virtual)
{
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *r = sub(ch);
    ck_assert_int_eq(stm_clock_virtual(STM_SEC(5)), 0);
    struct trecv p = {.o = {.r = r}, .deadline = STM_SEC(5) + STM_MSEC(30)};
    pthread_t t = tu_run_thread(thr_recv_until, &p);
    wait_blocked(&p.o);
    stm_clock_advance(STM_MSEC(29));
    ck_assert_int_eq(atomic_load(&p.o.runs), 1);
    stm_clock_advance(STM_MSEC(1));
    tu_join(t);
    ck_assert_int_eq(p.rc, -ETIMEDOUT);
    /* a message before the deadline is received */
    struct trecv p2 = {.o = {.r = r}, .deadline = stm_now() + STM_MSEC(30)};
    t = tu_run_thread(thr_recv_until, &p2);
    wait_blocked(&p2.o);
    ch_send(ch, 31);
    tu_join(t);
    ck_assert_int_eq(p2.rc, 0);
    ck_assert_int_eq(p2.o.v, 31);
    ck_assert_int_eq(stm_clock_real(), 0);
    stm_chan_free(ch);
}
END_TEST

/* ---- no conflict between a sender and a reader that is behind ------------ */

enum { OP_SEND, OP_RECV };

struct inter {
    stm_chan *ch;
    stm_chan_reader *ra, *rb;
    int a_op, b_op;
    atomic_int a_ready, b_done, a_runs, b_runs;
};

static void do_op(stm_tx *tx, struct inter *s, int op, stm_chan_reader *r)
{
    if (op == OP_SEND)
        stm_chan_send(tx, s->ch, 9);
    else
        (void)stm_chan_recv(tx, r);
}

static int body_a(stm_tx *tx, void *arg)
{
    struct inter *s = arg;
    int run = atomic_fetch_add(&s->a_runs, 1);
    do_op(tx, s, s->a_op, s->ra);
    if (run == 0) {
        /* (until B commits, or meets A's write and runs again) */
        atomic_store(&s->a_ready, 1);
        ck_assert(tu_wait_either(&s->b_done, 1, &s->b_runs, 2, TU_HANDSHAKE_MS));
    }
    return 0;
}

static int body_b(stm_tx *tx, void *arg)
{
    struct inter *s = arg;
    atomic_fetch_add(&s->b_runs, 1);
    do_op(tx, s, s->b_op, s->rb);
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

static int interleave(stm_chan *ch, int a_op, stm_chan_reader *ra, int b_op, stm_chan_reader *rb,
                      uint64_t *conf)
{
    struct inter s = {.ch = ch, .ra = ra, .rb = rb, .a_op = a_op, .b_op = b_op};
    uint64_t c0 = conflicts();
    pthread_t ta = tu_run_thread(thr_a, &s);
    pthread_t tb = tu_run_thread(thr_b, &s);
    ck_assert_ptr_eq(tu_join(tb), NULL);
    ck_assert_ptr_eq(tu_join(ta), NULL);
    *conf = conflicts() - c0;
    return atomic_load(&s.a_runs) + atomic_load(&s.b_runs); /* 2: no conflict */
}

START_TEST(test_no_conflict)
{
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *fast = sub(ch), *slow = sub(ch);
    for (int i = 0; i < 6; i++)
        ch_send(ch, i);
    for (int i = 0; i < 4; i++)
        ch_recv(fast);
    uint64_t conf;
    /* a sender and a reader with messages left, both ways round */
    ck_assert_int_eq(interleave(ch, OP_SEND, NULL, OP_RECV, slow, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    ck_assert_int_eq(interleave(ch, OP_RECV, fast, OP_SEND, NULL, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    /* a fast and a slow reader on different messages */
    ck_assert_int_eq(interleave(ch, OP_RECV, fast, OP_RECV, slow, &conf), 2);
    ck_assert_uint_eq(conf, 0);
    /* the control: two senders do conflict */
    ck_assert_int_ge(interleave(ch, OP_SEND, NULL, OP_SEND, NULL, &conf), 3);
    ck_assert_uint_ge(conf, 1);
    stm_chan_free(ch);
}
END_TEST

/* ---- churn: readers come and go while a sender sends 0, 1, 2, ... -------- */

struct churn {
    stm_chan *ch;
    stm_tvar done;
    int n;
    atomic_long errors, received, sessions;
    int id;
};

struct rarg {
    struct churn *c;
    stm_chan_reader *r;
    intptr_t v;
};

static int recv_one(stm_tx *tx, void *arg)
{
    struct rarg *a = arg;
    a->v = stm_chan_recv(tx, a->r);
    return 1;
}

static int or_done(stm_tx *tx, void *arg)
{
    struct rarg *a = arg;
    if (stm_read(tx, &a->c->done) == 0)
        stm_retry(tx);
    return 0;
}

static int body_recv_or_done(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, recv_one, or_done, arg);
}

static int body_csub(stm_tx *tx, void *arg)
{
    struct rarg *a = arg;
    a->r = stm_chan_subscribe(tx, a->c->ch);
    return 0;
}

static int body_cunsub(stm_tx *tx, void *arg)
{
    struct rarg *a = arg;
    stm_chan_unsubscribe(tx, a->r);
    return 0;
}

/* A reader session: subscribe, receive up to `limit` messages (each must
 * follow the one before), unsubscribe.  Returns false when all is sent
 * and received. */
static bool session(struct churn *c, long limit, bool *first_is_zero)
{
    struct rarg a = {.c = c};
    ck_assert_int_eq(stm_atomically(body_csub, &a), 0);
    atomic_fetch_add(&c->sessions, 1);
    intptr_t prev = -1;
    bool more = true;
    for (long i = 0; i < limit; i++) {
        int rc = stm_atomically(body_recv_or_done, &a);
        if (rc == 0) {
            more = false;
            break;
        }
        if (prev >= 0 && a.v != prev + 1)
            atomic_fetch_add(&c->errors, 1);
        if (prev < 0 && first_is_zero != NULL)
            *first_is_zero = a.v == 0;
        prev = a.v;
        atomic_fetch_add(&c->received, 1);
    }
    ck_assert_int_eq(stm_atomically(body_cunsub, &a), 0);
    return more;
}

static void *churn_reader(void *arg)
{
    struct churn *c = arg;
    uint64_t s = tu_seed((uint64_t)atomic_fetch_add(&c->received, 0) + (uint64_t)pthread_self());
    while (session(c, 1 + tu_rand_below(&s, 50), NULL)) {
    }
    return NULL;
}

struct sarg {
    struct churn *c;
    intptr_t v;
};

static int body_csend(stm_tx *tx, void *arg)
{
    struct sarg *a = arg;
    stm_chan_send(tx, a->c->ch, a->v);
    return 0;
}

static int body_cdone(stm_tx *tx, void *arg)
{
    struct churn *c = arg;
    stm_write(tx, &c->done, 1);
    return 0;
}

struct whole {
    struct churn *c;
    stm_chan_reader *r;
    long errors, got;
};

static void *whole_reader(void *arg)
{
    struct whole *w = arg;
    struct rarg a = {.c = w->c, .r = w->r};
    for (;;) {
        int rc = stm_atomically(body_recv_or_done, &a);
        if (rc == 0)
            break;
        if (a.v != w->got)
            w->errors++;
        w->got++;
    }
    return NULL;
}

START_TEST(test_churn)
{
    struct churn c = {.ch = stm_chan_new(), .n = TU_SCALE(30000, 3000)};
    stm_tvar_init(&c.done, 0);
    /* one reader subscribed from the start sees everything */
    struct whole w = {.c = &c, .r = sub(c.ch)};
    pthread_t wt = tu_run_thread(whole_reader, &w);
    pthread_t rt[3];
    for (int i = 0; i < 3; i++)
        rt[i] = tu_run_thread(churn_reader, &c);
    for (intptr_t i = 0; i < c.n; i++) {
        struct sarg a = {&c, i};
        ck_assert_int_eq(stm_atomically(body_csend, &a), 0);
    }
    ck_assert_int_eq(stm_atomically(body_cdone, &c), 0);
    for (int i = 0; i < 3; i++)
        tu_join(rt[i]);
    tu_join(wt);
    ck_assert_int_eq(w.errors, 0);
    ck_assert_int_eq(w.got, c.n);
    ck_assert_int_eq(atomic_load(&c.errors), 0);
    ck_assert_int_gt(atomic_load(&c.sessions), 3);
    unsub(w.r);
    stm_chan_free(c.ch);
}
END_TEST

/* ---- misuse --------------------------------------------------------------- */

static int body_send_null(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_chan_send(tx, NULL, 1);
    return 0;
}

START_TEST(test_misuse_null_chan)
{
    expect_abort("stm_chan_send");
    stm_atomically(body_send_null, NULL);
}
END_TEST

START_TEST(test_misuse_null_tx)
{
    stm_chan *ch = stm_chan_new();
    stm_chan_reader *r = sub(ch);
    expect_abort("stm_chan_recv");
    stm_chan_recv(NULL, r);
}
END_TEST

static int body_recv_null_reader(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_chan_recv(tx, NULL);
    return 0;
}

START_TEST(test_misuse_null_reader)
{
    expect_abort("stm_chan_recv");
    stm_atomically(body_recv_null_reader, NULL);
}
END_TEST

static Suite *chan_suite(void)
{
    Suite *s = suite_create("chan");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_broadcast);
    tcase_add_test(tc, test_free_with_pending);
    tcase_add_test(tc, test_abort_undoes);
    tcase_add_test(tc, test_one_transaction);
    tcase_add_test(tc, test_catch_undoes_part);
    tcase_add_test_raise_signal(tc, test_misuse_null_chan, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_null_reader, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("reclaim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reclaimed_when_all_passed);
    tcase_add_test(tc, test_unsubscribe_releases);
    tcase_add_test(tc, test_memory_flat_slow_and_fast);
    suite_add_tcase(s, tc);

    tc = tcase_create("blocking");
    tcase_add_test(tc, test_recv_waits);
    tcase_add_test(tc, test_or_else);
    tcase_add_test(tc, test_recv_timeout_virtual);
    suite_add_tcase(s, tc);

    tc = tcase_create("conflicts");
    tcase_add_test(tc, test_no_conflict);
    suite_add_tcase(s, tc);

    tc = tcase_create("churn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_churn);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(chan_suite)
