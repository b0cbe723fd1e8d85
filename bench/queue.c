/*
 * queue.c - stm_queue hand-off throughput against a mutex + condvar queue.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * P producer threads push OPS items in all, C consumer threads pop them
 * (each pops OPS / C); the figure is nanoseconds per item handed off
 * (wall time of the whole run / OPS).  Cases, each at 1/1 and 2/2:
 *   stm      stm_queue bounded to CAP, one transaction per push or pop
 *   mutex    a ring buffer of CAP slots under one pthread mutex with two
 *            condition variables (not full / not empty): the usual
 *            blocking queue
 * The cases alternate within each round (stm, mutex, stm, mutex...), so a
 * noisy machine hits both alike; each line gives the median over the
 * rounds, the ratio of medians to the mutex queue of the same round set
 * (vs_mutex > 1: the STM queue is faster), and, for the STM cases, the
 * fraction of attempts that ended in a conflict (conflicts / (commits +
 * conflicts)).
 *
 * The STM line also gives the retries per item handed off (a pop on an
 * empty queue or a push on a full one; most see the change while spinning
 * before the sleep, see stm_retry), and both lines the voluntary context
 * switches of the worker threads per item (getrusage RUSAGE_THREAD: every
 * time one went to sleep, in a condvar, a futex or a contended mutex).
 * -m stm or -m mutex runs only that case (for strace -c or perf).
 *
 * Usage: queue [-n OPS] [-r ROUNDS] [-k CAP] [-m stm|mutex]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "stm.h"

static long ops = 400000;
static int rounds = 7;
static long cap = 64;
static int only = -1; /* -m: 1 stm only, 0 mutex only */

/* ---- the mutex + condvar queue ---- */

struct mq {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    intptr_t *slot;
    long head, count;
};

static void mq_init(struct mq *q)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_full, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    q->slot = calloc((size_t)cap, sizeof *q->slot);
    if (!q->slot) {
        perror("calloc");
        exit(1);
    }
    q->head = q->count = 0;
}

static void mq_destroy(struct mq *q)
{
    free(q->slot);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
}

static void mq_push(struct mq *q, intptr_t v)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == cap)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->slot[(q->head + q->count) % cap] = v;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

static intptr_t mq_pop(struct mq *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0)
        pthread_cond_wait(&q->not_empty, &q->mu);
    intptr_t v = q->slot[q->head];
    q->head = (q->head + 1) % cap;
    q->count--;
    pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->mu);
    return v;
}

/* ---- the STM queue ---- */

static int body_push(stm_tx *tx, void *arg)
{
    intptr_t *a = arg;
    stm_queue_push(tx, (stm_queue *)a[0], a[1]);
    return 0;
}

static int body_pop(stm_tx *tx, void *arg)
{
    intptr_t *a = arg;
    a[1] = stm_queue_pop(tx, (stm_queue *)a[0]);
    return 0;
}

/* ---- one run ---- */

struct run {
    bool use_stm;
    stm_queue *sq;
    struct mq mq;
    long per_producer, per_consumer;
    pthread_barrier_t start;
    _Atomic long switches; /* the workers' voluntary context switches */
};

static long vol_switches(void)
{
#ifdef RUSAGE_THREAD
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        return ru.ru_nvcsw;
#endif
    return 0;
}

static void *producer(void *arg)
{
    struct run *r = arg;
    pthread_barrier_wait(&r->start);
    long sw = vol_switches();
    for (long i = 0; i < r->per_producer; i++) {
        if (r->use_stm) {
            intptr_t a[2] = {(intptr_t)r->sq, i};
            stm_atomically(body_push, a);
        } else {
            mq_push(&r->mq, i);
        }
    }
    atomic_fetch_add(&r->switches, vol_switches() - sw);
    return NULL;
}

static void *consumer(void *arg)
{
    struct run *r = arg;
    intptr_t sum = 0;
    pthread_barrier_wait(&r->start);
    long sw = vol_switches();
    for (long i = 0; i < r->per_consumer; i++) {
        if (r->use_stm) {
            intptr_t a[2] = {(intptr_t)r->sq, 0};
            stm_atomically(body_pop, a);
            sum += a[1];
        } else {
            sum += mq_pop(&r->mq);
        }
    }
    atomic_fetch_add(&r->switches, vol_switches() - sw);
    BENCH_KEEP(sum);
    return NULL;
}

struct tally {
    uint64_t conf, commits, retries, switches;
};

static void tally_now(struct tally *t)
{
    struct stm_stats st;
    stm_stats_get(&st);
    t->commits = st.commits;
    t->conf = st.aborts_conflict + st.aborts_validate;
    t->retries = st.retries;
}

/* ns per item; adds the STM counts of the run to *sum. */
static double run_once(bool use_stm, int np, int nc, struct tally *sum)
{
    if (only >= 0 && only != use_stm)
        return 0;
    struct run r = {.use_stm = use_stm};
    r.per_producer = ops / np;
    r.per_consumer = r.per_producer * np / nc;
    if (use_stm) {
        r.sq = stm_queue_new((size_t)cap);
        if (!r.sq) {
            perror("stm_queue_new");
            exit(1);
        }
    } else {
        mq_init(&r.mq);
    }
    pthread_barrier_init(&r.start, NULL, (unsigned)(np + nc + 1));
    pthread_t t[8];
    for (int i = 0; i < nc; i++)
        pthread_create(&t[i], NULL, consumer, &r);
    for (int i = 0; i < np; i++)
        pthread_create(&t[nc + i], NULL, producer, &r);
    struct tally a, b;
    tally_now(&a);
    pthread_barrier_wait(&r.start);
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < np + nc; i++)
        pthread_join(t[i], NULL);
    int64_t t1 = bench_now_ns();
    tally_now(&b);
    pthread_barrier_destroy(&r.start);
    sum->switches += (uint64_t)atomic_load(&r.switches);
    if (use_stm) {
        sum->conf += b.conf - a.conf;
        sum->commits += b.commits - a.commits;
        sum->retries += b.retries - a.retries;
        stm_queue_free(r.sq);
    } else {
        mq_destroy(&r.mq);
    }
    return (double)(t1 - t0) / (double)(r.per_producer * np);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "n:r:k:m:h")) != -1) {
        switch (opt) {
        case 'n':
            ops = bench_parse_count("-n", optarg);
            break;
        case 'r':
            rounds = (int)bench_parse_count("-r", optarg);
            break;
        case 'k':
            cap = bench_parse_count("-k", optarg);
            break;
        case 'm':
            only = strcmp(optarg, "stm") == 0 ? 1 : strcmp(optarg, "mutex") == 0 ? 0 : -2;
            if (only == -2) {
                fprintf(stderr, "queue: -m takes stm or mutex\n");
                return 2;
            }
            break;
        default:
            fprintf(stderr, "usage: %s [-n OPS] [-r ROUNDS] [-k CAP] [-m stm|mutex]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    double load[1];
    if (getloadavg(load, 1) == 1)
        printf("# queue: %ld items per run, %d rounds, capacity %ld, load %.2f\n", ops, rounds, cap,
               load[0]);
    static const int shape[][2] = {{1, 1}, {2, 2}};
    for (size_t s = 0; s < sizeof shape / sizeof shape[0]; s++) {
        int np = shape[s][0], nc = shape[s][1];
        double *vs = malloc((size_t)rounds * sizeof *vs), *vm = malloc((size_t)rounds * sizeof *vm);
        if (!vs || !vm) {
            perror("malloc");
            return 1;
        }
        struct tally t = {0}, tm = {0};
        for (int i = 0; i < rounds; i++) {
            if (i % 2 == 0) {
                vs[i] = run_once(true, np, nc, &t);
                vm[i] = run_once(false, np, nc, &tm);
            } else {
                vm[i] = run_once(false, np, nc, &tm);
                vs[i] = run_once(true, np, nc, &t);
            }
        }
        double ms = bench_median(vs, (size_t)rounds), mm = bench_median(vm, (size_t)rounds);
        char name[32];
        snprintf(name, sizeof name, "stm_%dp%dc", np, nc);
        bench_line("queue", name, ms, bench_min(vs, (size_t)rounds), "mutex",
                   ms > 0 && mm > 0 ? mm / ms : 0, 0, rounds, ops);
        double items = (double)(ops / np * np) * rounds;
        printf("queue %s conflict_fraction=%.4f (conflicts=%llu commits=%llu) retries/item=%.4f "
               "switches/item=%.4f\n",
               name, t.commits + t.conf ? (double)t.conf / (double)(t.commits + t.conf) : 0.0,
               (unsigned long long)t.conf, (unsigned long long)t.commits, (double)t.retries / items,
               (double)t.switches / items);
        snprintf(name, sizeof name, "mutex_%dp%dc", np, nc);
        bench_line("queue", name, mm, bench_min(vm, (size_t)rounds), "mutex", 1.0, 0, rounds, ops);
        printf("queue %s switches/item=%.4f\n", name, (double)tm.switches / items);
        free(vs);
        free(vm);
    }
    stm_shutdown();
    return 0;
}
