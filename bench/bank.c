/*
 * bank.c - money transfers between accounts, with concurrent audits, at 1,
 * 2 and 8 threads.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The accounts are an array of embedded TVars (stm_tvar_init), all
 * starting at 1000.  Each thread loops: with probability AUDIT% an audit,
 * a declared read-only transaction (stm_atomically_ro) that sums every
 * account and checks, once committed, that the sum is the total the bank
 * started with; otherwise a transfer, a transaction that moves 1..10 from
 * one random account to another (two reads, two writes).  The money is
 * counted once more at the end.  Any wrong sum: exit status 1.
 *
 * The thread counts are run in alternating rounds (1 2 8, 1 2 8, ...), so
 * that a slow phase of a shared machine hits them alike; per count the
 * median over the rounds is reported, and for 8 threads the ratio to the
 * 2-thread median: on a 2-CPU machine, 8 threads must keep >= 80% of the
 * 2-thread throughput (preempted threads must not stall the running ones).
 *
 *   bank [-a ACCOUNTS] [-p AUDIT%] [-d MS] [-r ROUNDS] [-t N[,N...]]
 *     -a  accounts (1024);  -p  audits per 100 operations (1);
 *     -d  length of one round in ms (300);  -r  rounds (3);
 *     -t  thread counts (1,2,8)
 *
 * Output, one line per thread count:
 *   bank n=8 accounts=1024 audit%=1 txs/s=... audits/s=... aborts%=... cpus=...
 *        txs/cpu_s=... vs_n2=0.97 vs_n2_per_cpu=0.95
 *
 * cpus: CPU time over wall time; txs/cpu_s: throughput per busy CPU, which
 * is not flattered when more threads win a bigger share of a busy machine.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "stm.h"
#include "bench.h"

#define INITIAL_BALANCE 1000
#define MAX_COUNTS 8

static stm_tvar *accounts;
static int naccounts = 1024, audit_pct = 1;
static atomic_int stop;
static atomic_long bad_audits;
static pthread_barrier_t start_line;

struct transfer {
    stm_tvar *from, *to;
    intptr_t amount;
};

static int transfer_body(stm_tx *tx, void *arg)
{
    struct transfer *t = arg;
    stm_write(tx, t->from, stm_read(tx, t->from) - t->amount);
    stm_write(tx, t->to, stm_read(tx, t->to) + t->amount);
    return 0;
}

static int audit_body(stm_tx *tx, void *arg)
{
    intptr_t sum = 0;
    for (int i = 0; i < naccounts; i++)
        sum += stm_read(tx, &accounts[i]);
    *(intptr_t *)arg = sum;
    return 0;
}

struct worker {
    alignas(64) uint64_t rng;
    unsigned long transfers, audits;
    pthread_t id;
};

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void check(int rc)
{
    if (rc < 0) {
        fprintf(stderr, "bank: transaction failed: %s\n", stm_strerror(rc));
        exit(1);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    intptr_t total = (intptr_t)naccounts * INITIAL_BALANCE;
    pthread_barrier_wait(&start_line);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = next_rand(&w->rng);
        if ((int)(r % 100) < audit_pct) {
            intptr_t sum;
            check(stm_atomically_ro(audit_body, &sum));
            if (sum != total)
                atomic_fetch_add(&bad_audits, 1);
            w->audits++;
        } else {
            struct transfer t;
            int from = (int)((r >> 8) % (uint64_t)naccounts);
            int to = (int)((r >> 32) % (uint64_t)(naccounts - 1));
            t.from = &accounts[from];
            t.to = &accounts[to >= from ? to + 1 : to];
            t.amount = 1 + (intptr_t)((r >> 56) % 10);
            check(stm_atomically(transfer_body, &t));
            w->transfers++;
        }
    }
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One round at n threads: fills *txs, *audits (per second), *aborts and
 * *cpu (CPUs the process kept busy: CPU time over wall time). */
static void round_run(int n, int ms, double *txs, double *audits, double *aborts, double *cpu)
{
    struct worker *w = aligned_alloc(64, sizeof *w * (size_t)n);
    if (!w) {
        perror("bank: aligned_alloc");
        exit(1);
    }
    pthread_barrier_init(&start_line, NULL, (unsigned)n + 1);
    atomic_store(&stop, 0);
    for (int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].rng = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(i + 1) ^ (uint64_t)bench_now_ns();
        if (pthread_create(&w[i].id, NULL, worker_main, &w[i])) {
            fprintf(stderr, "bank: cannot create a thread\n");
            exit(1);
        }
    }
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    pthread_barrier_wait(&start_line);
    int64_t t0 = bench_now_ns();
    double c0 = cpu_seconds();
    usleep((useconds_t)ms * 1000);
    atomic_store(&stop, 1);
    int64_t t1 = bench_now_ns();
    double c1 = cpu_seconds();
    unsigned long nt = 0, na = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].id, NULL);
        nt += w[i].transfers;
        na += w[i].audits;
    }
    stm_stats_get(&s1);
    pthread_barrier_destroy(&start_line);
    double sec = (double)(t1 - t0) / 1e9;
    *txs = (double)(nt + na) / sec;
    *audits = (double)na / sec;
    *aborts = nt + na ? 100.0 * (double)(s1.aborts - s0.aborts) / (double)(nt + na) : 0;
    *cpu = (c1 - c0) / sec;
    free(w);
}

static int total_now(stm_tx *tx, void *arg)
{
    return audit_body(tx, arg);
}

int main(int argc, char **argv)
{
    int ms = 300, rounds = 3, counts[MAX_COUNTS] = {1, 2, 8}, ncounts = 3, c;
    while ((c = getopt(argc, argv, "a:p:d:r:t:h")) != -1) {
        switch (c) {
        case 'a':
            naccounts = (int)bench_parse_count("-a", optarg);
            break;
        case 'p':
            audit_pct = atoi(optarg);
            break;
        case 'd':
            ms = (int)bench_parse_count("-d", optarg);
            break;
        case 'r':
            rounds = (int)bench_parse_count("-r", optarg);
            break;
        case 't': {
            ncounts = 0;
            for (char *s = strtok(optarg, ","); s && ncounts < MAX_COUNTS; s = strtok(NULL, ","))
                counts[ncounts++] = (int)bench_parse_count("-t", s);
            break;
        }
        default:
            fprintf(c == 'h' ? stdout : stderr,
                    "usage: bank [-a accounts] [-p audit%%] [-d ms] [-r rounds] [-t n,n,...]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (naccounts < 2 || audit_pct < 0 || audit_pct > 100 || ncounts == 0) {
        fprintf(stderr, "bank: bad arguments\n");
        return 2;
    }

    accounts = aligned_alloc(64, ((sizeof(stm_tvar) * (size_t)naccounts + 63) / 64) * 64);
    if (!accounts) {
        perror("bank: aligned_alloc");
        return 1;
    }
    for (int i = 0; i < naccounts; i++)
        stm_tvar_init(&accounts[i], INITIAL_BALANCE);

    double *txs = calloc((size_t)ncounts * (size_t)rounds, sizeof *txs);
    double *aud = calloc((size_t)ncounts * (size_t)rounds, sizeof *aud);
    double *abt = calloc((size_t)ncounts * (size_t)rounds, sizeof *abt);
    double *cpu = calloc((size_t)ncounts * (size_t)rounds, sizeof *cpu);
    if (!txs || !aud || !abt || !cpu) {
        perror("bank: calloc");
        return 1;
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < ncounts; k++)
            round_run(counts[k], ms, &txs[k * rounds + r], &aud[k * rounds + r],
                      &abt[k * rounds + r], &cpu[k * rounds + r]);

    /* throughput per busy CPU too: on a shared machine 8 threads get a
     * bigger share of the CPUs than 2 do, which flatters them */
    double *per_cpu = calloc((size_t)ncounts * (size_t)rounds, sizeof *per_cpu);
    if (!per_cpu) {
        perror("bank: calloc");
        return 1;
    }
    for (int j = 0; j < ncounts * rounds; j++)
        per_cpu[j] = cpu[j] > 0 ? txs[j] / cpu[j] : 0;
    double med2 = 0, med2_cpu = 0;
    for (int k = 0; k < ncounts; k++)
        if (counts[k] == 2) {
            med2 = bench_median(&txs[k * rounds], (size_t)rounds);
            med2_cpu = bench_median(&per_cpu[k * rounds], (size_t)rounds);
        }
    for (int k = 0; k < ncounts; k++) {
        double m = bench_median(&txs[k * rounds], (size_t)rounds);
        double mc = bench_median(&per_cpu[k * rounds], (size_t)rounds);
        printf("bank n=%d accounts=%d audit%%=%d txs/s=%.0f audits/s=%.0f aborts%%=%.3f cpus=%.2f "
               "txs/cpu_s=%.0f",
               counts[k], naccounts, audit_pct, m, bench_median(&aud[k * rounds], (size_t)rounds),
               bench_median(&abt[k * rounds], (size_t)rounds),
               bench_median(&cpu[k * rounds], (size_t)rounds), mc);
        if (med2 > 0 && counts[k] != 2)
            printf(" vs_n2=%.2f vs_n2_per_cpu=%.2f", m / med2, med2_cpu > 0 ? mc / med2_cpu : 0);
        printf("\n");
    }
    free(per_cpu);
    free(cpu);

    intptr_t sum;
    check(stm_atomically_ro(total_now, &sum));
    long bad = atomic_load(&bad_audits);
    for (int i = 0; i < naccounts; i++)
        stm_tvar_destroy(&accounts[i]);
    free(accounts);
    free(txs);
    free(aud);
    free(abt);
    if (bad || sum != (intptr_t)naccounts * INITIAL_BALANCE) {
        printf("CHECK FAILED: %ld audits saw a wrong total; final total %ld, want %ld\n", bad,
               (long)sum, (long)naccounts * INITIAL_BALANCE);
        return 1;
    }
    return 0;
}
