/*
 * wake.c - how fast stm_retry() wakes a thread, and how late deadlines
 * fire, for each Waiter backend ("condvar", "pipe", "thread").
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Cases:
 *   pingpong   two threads and one TVar `turn`; each waits (stm_retry)
 *              until turn is its own, then flips it.  ns per round trip
 *              (two wake-ups), per backend, against a plain pthread
 *              ping-pong with the same structure (one mutex, one condvar,
 *              an int turn; signal under the lock).  Runs are interleaved
 *              (condvar pipe thread baseline, condvar pipe thread baseline,
 *              ...); we report the median per case, the ratio of the
 *              medians (ratio=; the target applies to it) and the median of
 *              the ratios within each round (ratio_paired=, less sensitive
 *              to slow phases of a shared VM), and the voluntary context
 *              switches per round trip (csw=; 2 means each wake-up costs one
 *              sleep, more means the threads also block on locks).
 *              Target (benchmarks.md): <= 1.2 x the baseline.
 *   lateness   stm_atomically(body) where body retries until
 *              stm_elapsed(tx, d), d = stm_now() + uniform 100 us .. 2 ms;
 *              lateness = stm_now() right after stm_atomically() returns,
 *              minus d.  p50, p99, max, min per backend, with one thread
 *              waiting at a time (threads=1) and with several waiting at
 *              once (threads=T, same total count).  A plain
 *              clock_nanosleep(TIMER_ABSTIME) with 1 ns timer slack is the
 *              floor (backend=baseline_nanosleep, a quarter of the count).
 *              csw= counts the waiting threads' voluntary context switches
 *              per wake-up (1 = the one sleep).
 *              The cases are interleaved in chunks.  Targets: never early
 *              (min >= 0: an early wake-up prints NEGATIVE and the program
 *              exits 1), p50 <= 20 us, p99 <= 200 us.
 *
 * Usage: wake [-q] [-c CASE[,CASE]] [-b BACKEND[,BACKEND...]] [-n WAITS]
 *             [-t THREADS] [-p ROUNDTRIPS] [-r RUNS] [-s SPIN_NS] [-v]
 *   -q  quick: -n 1000 -p 5000 -r 3 (under 10 s)
 *   -c  pingpong, lateness (default both)
 *   -b  backends to measure (default condvar,pipe,thread)
 *   -n  deadline wake-ups per backend and thread count (default 10000)
 *   -t  threads waiting at once in the concurrent lateness case (default 4;
 *       1 leaves the case out)
 *   -p  round trips per ping-pong run (default 20000)
 *   -r  ping-pong runs per case (default 7)
 *   -s  SPIN_NS: stm_set_wake_spin(SPIN_NS) first: timed waits poll the last
 *       SPIN_NS before their deadline; 0 turns polling off (the default is
 *       STM_WAKE_SPIN_AUTO)
 *   -v  also print every run's figure (comment lines)
 *
 * Exit status: 0; 1 if a wake-up came early, a transaction failed or a
 * backend is missing; 2 for bad options.  Missing a speed target is
 * reported (target=MISSED) but does not fail the run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "stm.h"
#include "bench.h"

#define MAX_BACKENDS 8
#define LAT_CHUNKS 10            /* lateness cases are interleaved in this many chunks */
#define LAT_MIN_NS STM_USEC(100) /* deadline offsets: uniform in [min, max] */
#define LAT_MAX_NS STM_MSEC(2)
#define PP_TARGET 1.2 /* ping-pong: <= 1.2 x the condvar baseline */
#define LAT_P50_TARGET_NS STM_USEC(20)
#define LAT_P99_TARGET_NS STM_USEC(200)

static const char *backends[MAX_BACKENDS];
static int nbackends;
static bool verbose;
static int status;

static void die_rc(const char *what, int rc)
{
    fprintf(stderr, "wake: %s: stm_atomically returned %d (%s)\n", what, rc, stm_strerror(rc));
    exit(1);
}

static void die_err(const char *what, int err)
{
    fprintf(stderr, "wake: %s: %s\n", what, strerror(err));
    exit(1);
}

static void set_waiter(const char *name)
{
    int rc = stm_set_waiter(name);
    if (rc != 0) {
        fprintf(stderr, "wake: stm_set_waiter(\"%s\") returned %d (%s)\n", name, rc,
                stm_strerror(rc));
        exit(1);
    }
}

static void start_threads(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t argsize)
{
    for (int i = 0; i < n; i++) {
        int err = pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsize);
        if (err)
            die_err("pthread_create", err);
    }
}

static void join_threads(pthread_t *t, int n)
{
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

/* ======================================================================
 * Ping-pong
 * ====================================================================== */

struct pp {
    long warm, n;
    pthread_barrier_t bar;
    int64_t t0, t1; /* player 0 after the barrier; player 1 after its last flip */
    long csw[2];    /* voluntary context switches of each player in the timed part */
    /* STM */
    stm_tvar *turn;
    /* baseline */
    pthread_mutex_t m;
    pthread_cond_t c;
    int iturn;
};

struct pp_player {
    struct pp *pp;
    int me;
};

static int body_flip(stm_tx *tx, void *arg)
{
    const struct pp_player *p = arg;
    if (stm_read(tx, p->pp->turn) != p->me)
        stm_retry(tx);
    stm_write(tx, p->pp->turn, 1 - p->me);
    return 0;
}

static void stm_flips(const struct pp_player *p, long n)
{
    for (long i = 0; i < n; i++) {
        int rc = stm_atomically(body_flip, (void *)p);
        if (__builtin_expect(rc != 0, 0))
            die_rc("pingpong", rc);
    }
}

static void cv_flips(const struct pp_player *p, long n)
{
    struct pp *pp = p->pp;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&pp->m);
        while (pp->iturn != p->me)
            pthread_cond_wait(&pp->c, &pp->m);
        pp->iturn = 1 - p->me;
        pthread_cond_signal(&pp->c);
        pthread_mutex_unlock(&pp->m);
    }
}

static void pp_play(const struct pp_player *p, void (*flips)(const struct pp_player *, long))
{
    struct pp *pp = p->pp;
    flips(p, pp->warm); /* the thread's descriptor, waiter, caches; ends with turn == 0 */
    pthread_barrier_wait(&pp->bar);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    if (p->me == 0)
        pp->t0 = bench_now_ns();
    flips(p, pp->n);
    if (p->me == 1)
        pp->t1 = bench_now_ns();
    getrusage(RUSAGE_THREAD, &r1);
    pp->csw[p->me] = r1.ru_nvcsw - r0.ru_nvcsw;
}

static void *stm_player_main(void *arg)
{
    pp_play(arg, stm_flips);
    return NULL;
}

static void *cv_player_main(void *arg)
{
    pp_play(arg, cv_flips);
    return NULL;
}

/* One run: n round trips; returns ns per round trip and sets *csw to the
 * voluntary context switches (both threads) per round trip.  backend NULL:
 * the pthread baseline. */
static double pp_run(struct pp *pp, const char *backend, double *csw)
{
    struct pp_player pl[2] = {{pp, 0}, {pp, 1}};
    pthread_t t[2];

    if (backend) {
        set_waiter(backend);
        if (stm_tvar_poke(pp->turn, 0) != 0)
            die_err("stm_tvar_poke", ENOMEM);
    } else {
        pp->iturn = 0;
    }
    start_threads(t, 2, backend ? stm_player_main : cv_player_main, pl, sizeof pl[0]);
    join_threads(t, 2);
    if (backend ? stm_tvar_peek(pp->turn) != 0 : pp->iturn != 0) {
        fprintf(stderr, "wake: pingpong %s: turn is not back at 0\n",
                backend ? backend : "baseline");
        exit(1);
    }
    *csw = (double)(pp->csw[0] + pp->csw[1]) / (double)pp->n;
    return (double)(pp->t1 - pp->t0) / (double)pp->n;
}

static void run_pingpong(long n, int runs)
{
    struct pp pp = {.warm = n / 20 + 1, .n = n};
    int ncases = nbackends + 1, base = nbackends; /* the baseline is the last case */
    double *ns = calloc((size_t)ncases * (size_t)runs, sizeof *ns);
    double *csw = calloc((size_t)ncases * (size_t)runs, sizeof *csw);

    if (!ns || !csw)
        die_err("calloc", ENOMEM);
    pp.turn = stm_tvar_new(0);
    if (!pp.turn)
        die_err("stm_tvar_new", errno);
    pthread_barrier_init(&pp.bar, NULL, 2);
    pthread_mutex_init(&pp.m, NULL);
    pthread_cond_init(&pp.c, NULL);

    printf("# pingpong: 2 threads, ns per round trip (2 wake-ups), median of %d interleaved runs "
           "of %ld round trips; baseline = pthread mutex + condvar + int turn\n",
           runs, n);
    printf("# target (benchmarks.md): rt_ns <= %.1f x baseline_ns, for every backend; "
           "csw = voluntary context switches per round trip, both threads (2 = one sleep "
           "per wake-up)\n",
           PP_TARGET);
    fflush(stdout);

    for (int r = 0; r < runs; r++)
        for (int c = 0; c < ncases; c++)
            ns[c * runs + r] = pp_run(&pp, c == base ? NULL : backends[c], &csw[c * runs + r]);

    for (int c = 0; verbose && c < ncases; c++) {
        printf("# pingpong %s: ns(csw)", c == base ? "baseline" : backends[c]);
        for (int r = 0; r < runs; r++)
            printf(" %.0f(%.2f)", ns[c * runs + r], csw[c * runs + r]);
        putchar('\n');
    }
    double bmed = bench_median(&ns[base * runs], (size_t)runs);
    double bcsw = bench_median(&csw[base * runs], (size_t)runs);
    double *paired = calloc((size_t)runs, sizeof *paired);
    if (!paired)
        die_err("calloc", ENOMEM);
    for (int c = 0; c < nbackends; c++) {
        double med = bench_median(&ns[c * runs], (size_t)runs);
        double ratio = med / bmed;
        for (int r = 0; r < runs; r++)
            paired[r] = ns[c * runs + r] / ns[base * runs + r];
        printf("wake pingpong backend=%s rt_ns=%.0f rt_min_ns=%.0f baseline_ns=%.0f "
               "baseline_min_ns=%.0f ratio=%.2f ratio_paired=%.2f csw=%.2f baseline_csw=%.2f "
               "runs=%d n=%ld target=%s\n",
               backends[c], med, bench_min(&ns[c * runs], (size_t)runs), bmed,
               bench_min(&ns[base * runs], (size_t)runs), ratio, bench_median(paired, (size_t)runs),
               bench_median(&csw[c * runs], (size_t)runs), bcsw, runs, n,
               ratio <= PP_TARGET ? "met" : "MISSED");
    }
    fflush(stdout);
    free(paired);

    pthread_cond_destroy(&pp.c);
    pthread_mutex_destroy(&pp.m);
    pthread_barrier_destroy(&pp.bar);
    stm_tvar_free(pp.turn);
    free(ns);
    free(csw);
}

/* ======================================================================
 * Deadline lateness
 * ====================================================================== */

/* One case: a backend (or the nanosleep baseline) and a thread count. */
struct lat_case {
    const char *backend; /* NULL: clock_nanosleep baseline */
    int threads;
    long n;      /* samples in all */
    long filled; /* so far */
    long csw;    /* voluntary context switches of the waiting threads */
    int64_t *late;
};

struct lat_worker {
    const struct lat_case *c;
    long count;
    int64_t *out;
    uint64_t rng;
    pthread_barrier_t *bar;
    long csw;
};

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

static int body_until(stm_tx *tx, void *arg)
{
    if (!stm_elapsed(tx, *(const int64_t *)arg))
        stm_retry(tx);
    return 0;
}

static int64_t stm_wait_until(int64_t d)
{
    int rc = stm_atomically(body_until, &d);
    int64_t t = stm_now();
    if (rc != 0)
        die_rc("lateness", rc);
    return t;
}

static int64_t nanosleep_until(int64_t d)
{
    struct timespec ts = {.tv_sec = (time_t)(d / STM_SEC(1)), .tv_nsec = (long)(d % STM_SEC(1))};
    int err;
    while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    if (err)
        die_err("clock_nanosleep", err);
    return stm_now();
}

static void *lat_worker_main(void *arg)
{
    struct lat_worker *w = arg;
    int64_t (*wait_until)(int64_t) = w->c->backend ? stm_wait_until : nanosleep_until;

    if (!w->c->backend)
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); /* what the library does */
    (void)wait_until(stm_now() + LAT_MIN_NS);         /* warm-up, not counted */
    pthread_barrier_wait(w->bar);
    struct rusage r0, r1;
    getrusage(RUSAGE_THREAD, &r0);
    for (long i = 0; i < w->count; i++) {
        int64_t d = stm_now() + LAT_MIN_NS +
                    (int64_t)(rng_next(&w->rng) % (uint64_t)(LAT_MAX_NS - LAT_MIN_NS + 1));
        w->out[i] = wait_until(d) - d;
    }
    getrusage(RUSAGE_THREAD, &r1);
    w->csw = r1.ru_nvcsw - r0.ru_nvcsw;
    return NULL;
}

/* Chunk k of case c: c->threads threads, c->n / LAT_CHUNKS samples in all
 * (the last chunk takes the remainder). */
static void lat_chunk(struct lat_case *c, int k)
{
    long want = k == LAT_CHUNKS - 1 ? c->n - c->filled : c->n / LAT_CHUNKS;
    struct lat_worker w[64];
    pthread_t t[64];
    pthread_barrier_t bar;

    if (want <= 0)
        return;
    if (c->backend)
        set_waiter(c->backend);
    pthread_barrier_init(&bar, NULL, (unsigned)c->threads);
    for (int i = 0; i < c->threads; i++) {
        long share = want / c->threads + (i < want % c->threads);
        w[i] = (struct lat_worker){
            .c = c,
            .count = share,
            .out = c->late + c->filled,
            .rng = (UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(k * 64 + i + 1)) ^
                   (uint64_t)bench_now_ns(),
            .bar = &bar,
        };
        if (w[i].rng == 0)
            w[i].rng = 1;
        c->filled += share;
    }
    start_threads(t, c->threads, lat_worker_main, w, sizeof w[0]);
    join_threads(t, c->threads);
    for (int i = 0; i < c->threads; i++)
        c->csw += w[i].csw;
    pthread_barrier_destroy(&bar);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n-1]. */
static int64_t pct(const int64_t *v, long n, double p)
{
    long i = (long)(p / 100.0 * (double)n + 0.999999) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void lat_report(struct lat_case *c)
{
    long n = c->filled, early = 0;
    qsort(c->late, (size_t)n, sizeof *c->late, cmp_i64);
    for (long i = 0; i < n && c->late[i] < 0; i++)
        early++;
    int64_t p50 = pct(c->late, n, 50), p99 = pct(c->late, n, 99);
    int64_t mx = c->late[n - 1], mn = c->late[0];
    printf("wake lateness backend=%s threads=%d n=%ld p50_us=%.1f p99_us=%.1f max_us=%.0f "
           "min_us=%.1f early=%ld csw=%.2f",
           c->backend ? c->backend : "baseline_nanosleep", c->threads, n, (double)p50 / 1e3,
           (double)p99 / 1e3, (double)mx / 1e3, (double)mn / 1e3, early,
           (double)c->csw / (double)n);
    if (c->backend)
        printf(" target=%s", early == 0 && p50 <= LAT_P50_TARGET_NS && p99 <= LAT_P99_TARGET_NS
                                 ? "met"
                                 : "MISSED");
    if (early) {
        printf(" NEGATIVE\n");
        fprintf(stderr,
                "wake: NEGATIVE lateness: backend=%s threads=%d: %ld of %ld wake-ups came "
                "before their deadline (earliest by %lld ns)\n",
                c->backend ? c->backend : "baseline_nanosleep", c->threads, early, n,
                (long long)-mn);
        status = 1;
    } else {
        putchar('\n');
    }
    fflush(stdout);
}

static void run_lateness(long n, int threads)
{
    struct lat_case cases[2 * MAX_BACKENDS + 1];
    int ncases = 0;

    for (int b = 0; b < nbackends; b++)
        cases[ncases++] = (struct lat_case){.backend = backends[b], .threads = 1, .n = n};
    cases[ncases++] = (struct lat_case){.backend = NULL, .threads = 1, .n = n / 4 > 0 ? n / 4 : 1};
    for (int b = 0; threads > 1 && b < nbackends; b++)
        cases[ncases++] = (struct lat_case){.backend = backends[b], .threads = threads, .n = n};
    for (int c = 0; c < ncases; c++) {
        cases[c].late = malloc((size_t)cases[c].n * sizeof *cases[c].late);
        if (!cases[c].late)
            die_err("malloc", ENOMEM);
    }

    printf("# lateness: stm_atomically(retry until stm_elapsed(d)), d = now + uniform "
           "%d us .. %d ms; lateness = stm_now() after return - d; %d interleaved chunks\n",
           (int)(LAT_MIN_NS / 1000), (int)(LAT_MAX_NS / 1000000), LAT_CHUNKS);
    printf("# baseline_nanosleep: clock_nanosleep(TIMER_ABSTIME), timer slack 1 ns (the floor); "
           "csw = voluntary context switches of the waiting thread per wake-up (1 = one sleep)\n");
    printf("# targets (benchmarks.md): never early (min_us >= 0, early=0); p50_us <= %.0f; "
           "p99_us <= %.0f\n",
           (double)LAT_P50_TARGET_NS / 1e3, (double)LAT_P99_TARGET_NS / 1e3);
    fflush(stdout);

    for (int k = 0; k < LAT_CHUNKS; k++)
        for (int c = 0; c < ncases; c++)
            lat_chunk(&cases[c], k);
    for (int c = 0; c < ncases; c++) {
        lat_report(&cases[c]);
        free(cases[c].late);
    }
}

/* ====================================================================== */

static void usage(FILE *f)
{
    fprintf(f, "usage: wake [-q] [-c pingpong,lateness] [-b BACKEND[,BACKEND...]] [-n WAITS]\n"
               "            [-t THREADS] [-p ROUNDTRIPS] [-r RUNS] [-s SPIN_NS] [-v]\n");
}

int main(int argc, char **argv)
{
    long lat_n = 10000, pp_n = 20000;
    int pp_runs = 7, threads = 4, opt;
    bool quick = false, set_n = false, set_p = false, set_r = false;
    bool do_pp = true, do_lat = true;
    char *blist = NULL;

    while ((opt = getopt(argc, argv, "qc:b:n:t:p:r:s:vh")) != -1) {
        switch (opt) {
        case 's': { /* stm_set_wake_spin: poll the last SPIN_NS before deadlines */
            long spin = bench_parse_spin("-s", optarg);
            if (stm_set_wake_spin(spin) != 0) {
                fprintf(stderr, "wake: -s takes 0 .. 10000000 ns\n");
                return 2;
            }
            if (spin)
                printf("# stm_set_wake_spin(%ld): timed waits poll the last %ld ns\n", spin, spin);
            else
                printf("# stm_set_wake_spin(0): timed waits sleep to their deadlines\n");
            break;
        }
        case 'q':
            quick = true;
            break;
        case 'c':
            do_pp = do_lat = false;
            for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
                if (strcmp(tok, "pingpong") == 0)
                    do_pp = true;
                else if (strcmp(tok, "lateness") == 0)
                    do_lat = true;
                else {
                    fprintf(stderr, "wake: unknown case '%s' (pingpong, lateness)\n", tok);
                    return 2;
                }
            }
            break;
        case 'b':
            blist = optarg;
            break;
        case 'n':
            lat_n = bench_parse_count("-n", optarg);
            set_n = true;
            break;
        case 't':
            threads = (int)bench_parse_count("-t", optarg);
            break;
        case 'p':
            pp_n = bench_parse_count("-p", optarg);
            set_p = true;
            break;
        case 'r':
            pp_runs = (int)bench_parse_count("-r", optarg);
            set_r = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (threads > 64 || pp_runs > 10000) {
        fprintf(stderr, "wake: at most 64 threads and 10000 runs\n");
        return 2;
    }
    if (quick) {
        lat_n = set_n ? lat_n : 1000;
        pp_n = set_p ? pp_n : 5000;
        pp_runs = set_r ? pp_runs : 3;
    }

    static char defaults[] = "condvar,pipe,thread";
    for (char *tok = strtok(blist ? blist : defaults, ","); tok; tok = strtok(NULL, ",")) {
        if (nbackends == MAX_BACKENDS) {
            fprintf(stderr, "wake: at most %d backends\n", MAX_BACKENDS);
            return 2;
        }
        int rc = stm_set_waiter(tok);
        if (rc != 0) {
            printf("wake backend=%s error=%s\n", tok, stm_strerror(rc));
            fprintf(stderr, "wake: backend '%s' is not available: %s\n", tok, stm_strerror(rc));
            status = 1;
            continue;
        }
        backends[nbackends++] = tok;
    }

    printf("# wake: Waiter backends:");
    for (int b = 0; b < nbackends; b++)
        printf(" %s", backends[b]);
    printf("%s\n", quick ? " (quick run)" : "");
    double load[3];
    if (getloadavg(load, 3) == 3)
        printf("# loadavg=%.2f,%.2f,%.2f nproc=%ld\n", load[0], load[1], load[2],
               sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    if (nbackends > 0) {
        if (do_pp)
            run_pingpong(pp_n, pp_runs);
        if (do_lat)
            run_lateness(lat_n, threads);
    }

    struct stm_stats st;
    stm_stats_get(&st);
    printf("# stats commits=%llu retries=%llu wakeups=%llu timer_fires=%llu aborts=%llu\n",
           (unsigned long long)st.commits, (unsigned long long)st.retries,
           (unsigned long long)st.wakeups, (unsigned long long)st.timer_fires,
           (unsigned long long)st.aborts);
    stm_shutdown();
    return status;
}
