/*
 * map.c - stm_map read-mostly throughput against a mutex-protected hash
 * map of the same design.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Keys 0..KEYS-1, half of them present at the start.  Each thread runs
 * OPS operations on random keys: 90% lookups, 5% puts, 5% deletes (so the
 * size stays about KEYS / 2).  Cases, each at 1 and 2 threads:
 *   stm      stm_map; a lookup is a stm_atomically_ro() transaction, a
 *            put or delete a stm_atomically() one
 *   mutex    the same chained hash table (power-of-two buckets, the same
 *            64-bit mixer, doubling at two keys per bucket, malloc()ed
 *            nodes) under one pthread mutex
 * The figure is nanoseconds of wall time per operation of the whole run
 * (all threads' operations counted: lower is better).  The cases
 * alternate within each round; each line gives the median over the
 * rounds, the ratio of medians (vs_mutex > 1: stm_map is faster) and, for
 * stm_map, the fraction of attempts that ended in a conflict.
 *
 * Usage: map [-n OPS] [-r ROUNDS] [-k KEYS]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "stm.h"

static long ops = 400000; /* per thread */
static int rounds = 7;
static long keys = 8192;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* ---- the mutex map ---- */

struct mnode {
    struct mnode *next;
    intptr_t key, value;
    uint64_t hash;
};

struct mmap {
    pthread_mutex_t mu;
    struct mnode **b;
    size_t n, count;
};

static void mm_init(struct mmap *m)
{
    pthread_mutex_init(&m->mu, NULL);
    m->n = 16;
    m->count = 0;
    m->b = calloc(m->n, sizeof *m->b);
    if (!m->b)
        abort();
}

static void mm_grow(struct mmap *m)
{
    size_t n = m->n * 2;
    struct mnode **b = calloc(n, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < m->n; i++) {
        for (struct mnode *x = m->b[i], *next; x; x = next) {
            next = x->next;
            x->next = b[x->hash & (n - 1)];
            b[x->hash & (n - 1)] = x;
        }
    }
    free(m->b);
    m->b = b;
    m->n = n;
}

static bool mm_get(struct mmap *m, intptr_t key, intptr_t *value)
{
    uint64_t h = mix((uint64_t)key);
    bool found = false;
    pthread_mutex_lock(&m->mu);
    for (struct mnode *x = m->b[h & (m->n - 1)]; x; x = x->next) {
        if (x->hash == h && x->key == key) {
            *value = x->value;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

static bool mm_put(struct mmap *m, intptr_t key, intptr_t value)
{
    uint64_t h = mix((uint64_t)key);
    pthread_mutex_lock(&m->mu);
    struct mnode **link = &m->b[h & (m->n - 1)];
    for (; *link; link = &(*link)->next) {
        if ((*link)->hash == h && (*link)->key == key) {
            (*link)->value = value;
            pthread_mutex_unlock(&m->mu);
            return false;
        }
    }
    struct mnode *x = malloc(sizeof *x);
    if (!x)
        abort();
    *x = (struct mnode){NULL, key, value, h};
    *link = x;
    if (++m->count > 2 * m->n)
        mm_grow(m);
    pthread_mutex_unlock(&m->mu);
    return true;
}

static bool mm_del(struct mmap *m, intptr_t key)
{
    uint64_t h = mix((uint64_t)key);
    pthread_mutex_lock(&m->mu);
    for (struct mnode **link = &m->b[h & (m->n - 1)]; *link; link = &(*link)->next) {
        struct mnode *x = *link;
        if (x->hash == h && x->key == key) {
            *link = x->next;
            m->count--;
            pthread_mutex_unlock(&m->mu);
            free(x);
            return true;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return false;
}

static void mm_destroy(struct mmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        for (struct mnode *x = m->b[i], *next; x; x = next) {
            next = x->next;
            free(x);
        }
    }
    free(m->b);
    pthread_mutex_destroy(&m->mu);
}

/* ---- stm_map bodies ---- */

struct sop {
    stm_map *m;
    intptr_t key, value;
};

static int body_get(stm_tx *tx, void *arg)
{
    struct sop *o = arg;
    return stm_map_get(tx, o->m, o->key, &o->value);
}

static int body_put(stm_tx *tx, void *arg)
{
    struct sop *o = arg;
    return stm_map_put(tx, o->m, o->key, o->value);
}

static int body_del(stm_tx *tx, void *arg)
{
    struct sop *o = arg;
    return stm_map_del(tx, o->m, o->key);
}

/* ---- one run ---- */

struct run {
    bool use_stm;
    stm_map *sm;
    struct mmap mm;
    pthread_barrier_t start;
};

struct worker {
    struct run *r;
    uint64_t seed;
    long found;
};

static void *worker(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    uint64_t s = w->seed;
    long found = 0;
    pthread_barrier_wait(&r->start);
    for (long i = 0; i < ops; i++) {
        uint64_t x = rnd(&s);
        intptr_t key = (intptr_t)((x >> 8) % (uint64_t)keys);
        unsigned what = (unsigned)(x & 0xff) % 100;
        if (r->use_stm) {
            struct sop o = {r->sm, key, (intptr_t)i};
            if (what < 90)
                found += stm_atomically_ro(body_get, &o);
            else if (what < 95)
                stm_atomically(body_put, &o);
            else
                stm_atomically(body_del, &o);
        } else {
            intptr_t v;
            if (what < 90)
                found += mm_get(&r->mm, key, &v);
            else if (what < 95)
                mm_put(&r->mm, key, (intptr_t)i);
            else
                mm_del(&r->mm, key);
        }
    }
    w->found = found;
    return NULL;
}

static uint64_t conflicts_now(uint64_t *commits)
{
    struct stm_stats st;
    stm_stats_get(&st);
    *commits = st.commits;
    return st.aborts_conflict + st.aborts_validate;
}

static double run_once(bool use_stm, int nt, uint64_t *conf, uint64_t *commits)
{
    struct run r = {.use_stm = use_stm};
    if (use_stm) {
        r.sm = stm_map_new(NULL);
        if (!r.sm) {
            perror("stm_map_new");
            exit(1);
        }
        for (intptr_t k = 0; k < keys; k += 2) {
            struct sop o = {r.sm, k, k};
            stm_atomically(body_put, &o);
        }
    } else {
        mm_init(&r.mm);
        for (intptr_t k = 0; k < keys; k += 2)
            mm_put(&r.mm, k, k);
    }
    pthread_barrier_init(&r.start, NULL, (unsigned)(nt + 1));
    pthread_t t[8];
    struct worker w[8];
    for (int i = 0; i < nt; i++) {
        w[i] = (struct worker){&r, (uint64_t)(i + 1) * UINT64_C(0x9E3779B97F4A7C15), 0};
        pthread_create(&t[i], NULL, worker, &w[i]);
    }
    uint64_t c0, k0 = conflicts_now(&c0), c1;
    pthread_barrier_wait(&r.start);
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
    int64_t t1 = bench_now_ns();
    uint64_t k1 = conflicts_now(&c1);
    pthread_barrier_destroy(&r.start);
    if (use_stm) {
        *conf += k1 - k0;
        *commits += c1 - c0;
        stm_map_free(r.sm);
    } else {
        mm_destroy(&r.mm);
    }
    return (double)(t1 - t0) / (double)(ops * nt);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "n:r:k:h")) != -1) {
        switch (opt) {
        case 'n':
            ops = bench_parse_count("-n", optarg);
            break;
        case 'r':
            rounds = (int)bench_parse_count("-r", optarg);
            break;
        case 'k':
            keys = bench_parse_count("-k", optarg);
            break;
        default:
            fprintf(stderr, "usage: %s [-n OPS] [-r ROUNDS] [-k KEYS]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    double load[1];
    if (getloadavg(load, 1) == 1)
        printf("# map: %ld ops per thread, %d rounds, %ld keys (half present), 90%% get, "
               "5%% put, 5%% del, load %.2f\n",
               ops, rounds, keys, load[0]);
    for (int nt = 1; nt <= 2; nt++) {
        double *vs = malloc((size_t)rounds * sizeof *vs), *vm = malloc((size_t)rounds * sizeof *vm);
        if (!vs || !vm) {
            perror("malloc");
            return 1;
        }
        uint64_t conf = 0, commits = 0;
        for (int i = 0; i < rounds; i++) {
            if (i % 2 == 0) {
                vs[i] = run_once(true, nt, &conf, &commits);
                vm[i] = run_once(false, nt, &conf, &commits);
            } else {
                vm[i] = run_once(false, nt, &conf, &commits);
                vs[i] = run_once(true, nt, &conf, &commits);
            }
        }
        double ms = bench_median(vs, (size_t)rounds), mm = bench_median(vm, (size_t)rounds);
        char name[32];
        snprintf(name, sizeof name, "stm_%dt", nt);
        bench_line("map", name, ms, bench_min(vs, (size_t)rounds), "mutex", mm / ms, 0, rounds,
                   ops * nt);
        printf("map %s conflict_fraction=%.4f (conflicts=%llu commits=%llu)\n", name,
               commits + conf ? (double)conf / (double)(commits + conf) : 0.0,
               (unsigned long long)conf, (unsigned long long)commits);
        snprintf(name, sizeof name, "mutex_%dt", nt);
        bench_line("map", name, mm, bench_min(vm, (size_t)rounds), "mutex", 1.0, 0, rounds,
                   ops * nt);
        free(vs);
        free(vm);
    }
    stm_shutdown();
    return 0;
}
