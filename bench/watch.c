/*
 * watch.c - watchers: how late deadline runs come, what a million timed
 * watchers cost, and what a triggered watcher adds to a commit.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Cases:
 *   lateness   N (10000) watchers on the real clock, each reading its own
 *              TVar (the offset of its deadline from a base) and calling
 *              stm_elapsed(deadline); deadlines uniform over SPREAD (2 s)
 *              from 50 ms after the watcher is made.  The callback, run by
 *              the library's timer thread, records stm_now() - deadline
 *              and counts runs where stm_now() < deadline (early=) or
 *              stm_tx_now() < deadline (tx_early=).  The floor: the same
 *              number of deadlines over the same spread, served in order
 *              by one thread sleeping with clock_nanosleep(TIMER_ABSTIME)
 *              and 1 ns timer slack (case=baseline_nanosleep) -- what an
 *              ideal timer thread could do on this machine.
 *              cpu%= is the process's CPU time over the wall time of
 *              the firing (100 = one CPU busy): what punctuality costs
 *              (STM_WAKE_SPIN_AUTO polls the last stretch before each
 *              deadline, within a budget; see stm_set_wake_spin(3)).
 *              Targets (benchmarks.md): never early; p50 <= 20 us,
 *              p99 <= 200 us.
 *   million    1,000,000 timed watchers, each in a fresh process (this
 *              program runs itself with -M, so that the RSS delta is not
 *              blurred by memory an earlier variant freed).  On the
 *              virtual clock: deadlines T+1 .. T+N ns, made in shuffled
 *              order, then one stm_clock_advance() over all of them; every
 *              callback checks that its deadline is later than the one
 *              before (in order), counts itself and checks stm_tx_now().
 *              Two passes: watchers made one per transaction
 *              (stm_atomically_watch; create=single), then in batches of B
 *              (1000) stm_watch_new() per transaction (create=batch); each
 *              pass is fired and then stopped (one stm_unwatch() per
 *              transaction, or B per transaction).  Reported: creations,
 *              deadline runs (fire_per_s: the stm_clock_advance() call)
 *              and stops per second; memory per watcher as the RSS delta
 *              over the creation (/proc/self/statm; first pass only: the
 *              second reuses freed memory) and as the malloc heap delta
 *              (mallinfo2: bytes in use, counting malloc's own chunk
 *              headers).  The program's own memory
 *              (arguments, the TVars the watchers read, the array of
 *              handles) is allocated before the first reading.  Variants
 *              (tvars=): own -- each watcher reads one TVar of its own
 *              (holding its deadline): the "< 200 bytes" target refers to
 *              this one; shared -- all read one common TVar (a list of N
 *              registrations on it); two -- its own TVar and the common
 *              one (its size is not judged: the target is for one TVar;
 *              doc_B= is what stm.h says: STM_WATCH_BYTES, plus 32 * n + 16
 *              for a watcher that read n > 1 TVars); real -- like own
 *              but on the real clock, made in batches, deadlines 1 us
 *              apart over ~1 s starting made_before_first_ms after the
 *              creation (its length estimated from a trial of N / 20;
 *              at_creation= counts watchers that were due before they
 *              were made, run by their first evaluation, not by the
 *              timer): all must fire, none early; lateness and the rate
 *              the timer thread sustains (fire_per_s: runs per second
 *              between the first and the last run; at most N / 1 s if it
 *              keeps up) are reported; burst -- like real, but the
 *              deadlines spread over -S (2000) ms: issue 13's case, a
 *              million due within 2 s, judged on p99 <= 20 ms.  On real
 *              and burst, runs come from the library's pool of timer
 *              threads (stm.h: they start in deadline order, one
 *              watcher's runs never overlap, two watchers' may, and end
 *              in any order): out_of_order= counts runs that came on a
 *              thread after a run of a later deadline had (each thread
 *              takes them in order), overlap= runs of a watcher while
 *              another of its runs was in its callback, again= second
 *              runs of a watcher (each has one deadline);
 *              cpu_us_per_run= is the process's CPU time from the first
 *              deadline to the last run, per run (all threads: what a
 *              run costs, less dependent on the machine's load than the
 *              lateness).
 *              Targets: < 200 bytes each; created >= 1 M/s; all fire, in
 *              order.  target= on a create=single line judges its RSS
 *              delta, on a create=batch line its heap delta.
 *   commit     what a triggered watcher adds to a commit (ns per
 *              transaction, median of R interleaved rounds, like
 *              bench/micro).  Every case has TVars of its own; z is a
 *              TVar no one writes.
 *                plain       x = x + 1                     (no watcher)
 *                watched     x = x + 1, one watcher on x: fn returns
 *                            x + z, cb writes y = value
 *                work        y = x + z                     (no watcher)
 *                inline      x = x + 1; y = x + z          (no watcher)
 *                co_changed  as watched, STM_WATCH_CHANGES_ONLY
 *                plain_same  x = x                         (no watcher)
 *                same        x = x, watcher as in watched (cb runs)
 *                co_same     x = x, CHANGES_ONLY watcher (cb skipped)
 *                work_ro     read x and z                  (read-only)
 *              Definitions: added = watched - plain (what the watcher adds
 *              to the commit that triggers it); work = the cost of doing
 *              what fn and cb do (read x and z, write y) as a transaction
 *              of its own = `work` (fn and cb are transactional code: the
 *              cheapest way to run them by themselves is one transaction;
 *              a watcher saves its begin and commit and adds bookkeeping
 *              of its own).  ratio = added / work: the target (<= 2) is
 *              judged on it.  A stricter reading is printed
 *              too: inline_work = inline - plain, what the same work adds
 *              when written by hand into the triggering transaction (no
 *              begin or commit of its own), and ratio_inline = added /
 *              inline_work: the price of the watcher machinery over
 *              hand-written code.  For same/co_same the baseline is
 *              plain_same, and co_same (fn only) is compared with work_ro.
 *   fanout     one commit (x = x + 1) that triggers K = 10 and 100
 *              watchers on x (each: fn x + z, cb writes a y of its own);
 *              per_watcher = (fanK - plain) / K, compared with work.
 *              Measured in the same interleaved rounds as commit.
 *
 * Usage: watch [-q] [-c CASE[,CASE...]] [-n N] [-s SPREAD_MS] [-N COUNT]
 *              [-m VARIANT[,VARIANT...]] [-S BURST_MS] [-b BATCH] [-o OPS] [-r ROUNDS]
 *              [-k CASE[,CASE...]] [-w SPIN_NS] [-v]
 *   -q  quick (a few seconds): -n 2000 -s 500 -N 100000 -o 20000 -r 5
 *   -c  lateness, million, commit, fanout (default all)
 *   -n  lateness: watchers (default 10000)
 *   -s  lateness: spread of the deadlines in ms (default 2000)
 *   -N  million: watchers (default 1000000)
 *   -m  million: variants own, shared, two, real, burst (default all)
 *   -S  million/burst: spread of the deadlines in ms (default 2000)
 *   -b  million: watchers per transaction in batch mode (default 1000)
 *   -o  commit: transactions per batch (default 100000; fanK: OPS / K)
 *   -r  commit: rounds (default 11)
 *   -k  commit, fanout: run only these of their cases (for profiling with
 *       callgrind; the cost lines need plain, work, ...)
 *   -w  SPIN_NS: stm_set_wake_spin(SPIN_NS) first: the timer thread polls
 *       the last SPIN_NS before each deadline; 0 turns polling off (the
 *       default is STM_WAKE_SPIN_AUTO)
 *   -v  also print every round's figure (comment lines)
 *   -M  VARIANT: run one million variant in this process (what the
 *       million case runs itself with)
 *
 * Exit status: 0; 1 if a deadline run came early, a watcher did not fire
 * or fired out of order, or a transaction failed; 2 for bad options.
 * Missing a speed or size target prints target=MISSED but does not fail.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stm.h"
#include "bench.h"

#define LAT_P50_TARGET_NS STM_USEC(20)
#define LAT_P99_TARGET_NS STM_USEC(200)
#define LAT_LEAD_NS STM_MSEC(50) /* first deadline: this long after the watcher is made */
#define MEM_TARGET_BYTES 200.0
#define CREATE_TARGET_PER_S 1e6
#define COST_TARGET 2.0
#define REAL_SPREAD_NS STM_SEC(1) /* million/real: deadlines over this long */
#define BURST_P99_TARGET_NS STM_MSEC(20) /* million/burst (issue 13) */

static bool verbose;
static int status;

static void die(const char *what, int rc)
{
    fprintf(stderr, "watch: %s: %d (%s)\n", what, rc, stm_strerror(rc));
    exit(1);
}

static void die_errno(const char *what)
{
    fprintf(stderr, "watch: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p)
        die_errno("calloc");
    return p;
}

static stm_tvar *new_tvar(intptr_t v)
{
    stm_tvar *t = stm_tvar_new(v);
    if (!t)
        die_errno("stm_tvar_new");
    return t;
}

static void atomically(stm_fn *fn, void *arg, const char *what)
{
    int rc = stm_atomically(fn, arg);
    if (__builtin_expect(rc != 0, 0))
        die(what, rc);
}

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* A random permutation of 0 .. n-1 (Fisher-Yates). */
static uint32_t *shuffled(uint32_t n, uint64_t seed)
{
    uint32_t *p = xmalloc((size_t)n * sizeof *p);
    for (uint32_t i = 0; i < n; i++)
        p[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)(rng_next(&seed) % i);
        uint32_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
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

/* Resident set size in bytes (/proc/self/statm), -1 if unknown. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, res = -1;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &res) != 2)
            res = -1;
        fclose(f);
    }
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

/* Bytes the malloc heap has handed out (chunk headers included), -1 if
 * unknown. */
static long long heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    long long n = (long long)(mi.uordblks + mi.hblkhd);
    return n > 0 ? n : -1; /* 0: another allocator (a sanitizer's) */
#else
    return -1;
#endif
}

static void print_stats(const char *prefix)
{
    struct stm_stats st;
    stm_stats_get(&st);
    printf("# %sstats commits=%llu aborts=%llu watch_runs=%llu timer_fires=%llu "
           "watch_failures=%llu reclaimed=%llu\n",
           prefix, (unsigned long long)st.commits, (unsigned long long)st.aborts,
           (unsigned long long)st.watch_runs, (unsigned long long)st.timer_fires,
           (unsigned long long)st.watch_failures, (unsigned long long)st.reclaimed);
}

/* ======================================================================
 * Lateness of deadline runs on the real clock
 * ====================================================================== */

struct lw {
    stm_tvar *tv;     /* the offset of the deadline from lat_base */
    int64_t deadline; /* lat_base + offset, for the callback's check */
    int64_t late;     /* stm_now() in the deadline run - deadline */
    int fired;
};

static int64_t lat_base;
static _Atomic long lat_fired, lat_tx_early;

static intptr_t lat_fn(stm_tx *tx, void *arg)
{
    const struct lw *a = arg;
    return stm_elapsed(tx, lat_base + (int64_t)stm_read(tx, a->tv));
}

static void lat_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct lw *a = arg;
    if (!v)
        return; /* the first evaluation, when it is made */
    a->late = stm_now() - a->deadline;
    if (stm_tx_now(tx) < a->deadline)
        atomic_fetch_add(&lat_tx_early, 1);
    if (!a->fired) {
        a->fired = 1;
        atomic_fetch_add_explicit(&lat_fired, 1, memory_order_release);
    }
}

struct range {
    stm_watch **w;
    long lo, hi;
};

static int unwatch_range(stm_tx *tx, void *arg)
{
    const struct range *r = arg;
    for (long i = r->lo; i < r->hi; i++)
        stm_unwatch(tx, r->w[i]);
    return 0;
}

static void unwatch_all(stm_watch **w, long n, long batch)
{
    for (long lo = 0; lo < n; lo += batch) {
        struct range r = {w, lo, lo + batch < n ? lo + batch : n};
        atomically(unwatch_range, &r, "stm_unwatch");
    }
}

/* CPU time of the whole process (all threads), ns */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * STM_SEC(1) + ts.tv_nsec;
}

static void lat_report(const char *name, int64_t *late, long n, long fired, long tx_early,
                       bool target, int64_t spread, double cpu_pct)
{
    long early = 0;
    qsort(late, (size_t)n, sizeof *late, cmp_i64);
    for (long i = 0; i < n && late[i] < 0; i++)
        early++;
    int64_t p50 = pct(late, n, 50), p90 = pct(late, n, 90), p99 = pct(late, n, 99);
    printf("watch lateness case=%s n=%ld spread_ms=%lld p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.0f min_us=%.1f early=%ld cpu%%=%.1f",
           name, n, (long long)(spread / STM_MSEC(1)), (double)p50 / 1e3, (double)p90 / 1e3,
           (double)p99 / 1e3, (double)late[n - 1] / 1e3, (double)late[0] / 1e3, early, cpu_pct);
    if (target) {
        printf(" tx_early=%ld fired=%ld target=%s", tx_early, fired,
               early == 0 && tx_early == 0 && p50 <= LAT_P50_TARGET_NS && p99 <= LAT_P99_TARGET_NS
                   ? "met"
                   : "MISSED");
    }
    putchar('\n');
    fflush(stdout);
    if (early || tx_early) {
        fprintf(stderr, "watch: lateness %s: %ld runs early (stm_now), %ld (stm_tx_now)\n", name,
                early, tx_early);
        status = 1;
    }
}

static void run_lateness(long n, int64_t spread)
{
    struct lw *a = xmalloc((size_t)n * sizeof *a);
    stm_watch **w = xmalloc((size_t)n * sizeof *w);
    int64_t *late = xmalloc((size_t)n * sizeof *late);
    uint64_t seed = (uint64_t)bench_now_ns() | 1;

    printf("# lateness: %ld watchers on the real clock, deadlines uniform over %lld ms from "
           "%lld ms after each is made; lateness = stm_now() in the callback - deadline\n",
           n, (long long)(spread / STM_MSEC(1)), (long long)(LAT_LEAD_NS / STM_MSEC(1)));
    printf("# baseline_nanosleep: as many deadlines over the same spread, slept to in order by "
           "one thread (clock_nanosleep TIMER_ABSTIME, timer slack 1 ns): the floor\n");
    printf("# targets (benchmarks.md): never early (early=0, tx_early=0); p50_us <= %.0f; "
           "p99_us <= %.0f\n",
           (double)LAT_P50_TARGET_NS / 1e3, (double)LAT_P99_TARGET_NS / 1e3);
    fflush(stdout);

    atomic_store(&lat_fired, 0);
    atomic_store(&lat_tx_early, 0);
    lat_base = stm_now();
    int64_t last = 0;
    for (long i = 0; i < n; i++) {
        int64_t d = stm_now() + LAT_LEAD_NS + (int64_t)(rng_next(&seed) % (uint64_t)spread);
        a[i].deadline = d;
        a[i].tv = new_tvar((intptr_t)(d - lat_base));
        if (d > last)
            last = d;
        w[i] = stm_atomically_watch(lat_fn, lat_cb, &a[i], 0);
        if (!w[i])
            die("stm_atomically_watch", -errno);
    }
    int64_t made = stm_now(), cpu0 = cpu_ns();
    /* wait for all, with a generous bound */
    while (atomic_load_explicit(&lat_fired, memory_order_acquire) < n &&
           stm_now() < last + STM_SEC(10)) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    long fired = atomic_load_explicit(&lat_fired, memory_order_acquire);
    double cpu = 100.0 * (double)(cpu_ns() - cpu0) / (double)(stm_now() - made);
    if (verbose)
        printf("# lateness: %ld made in %.1f ms\n", n, (double)(made - lat_base) / 1e6);
    long k = 0;
    for (long i = 0; i < n; i++)
        if (a[i].fired)
            late[k++] = a[i].late;
    if (fired < n) {
        fprintf(stderr, "watch: lateness: only %ld of %ld watchers fired\n", fired, n);
        status = 1;
    }
    if (k > 0)
        lat_report("watchers", late, k, fired, atomic_load(&lat_tx_early), true, spread, cpu);
    unwatch_all(w, n, 1000);
    for (long i = 0; i < n; i++)
        stm_tvar_free(a[i].tv);

    /* the floor: the same density of deadlines, served by one thread */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    int64_t start = stm_now() + LAT_LEAD_NS;
    cpu0 = cpu_ns();
    for (long i = 0; i < n; i++)
        late[i] = start + (int64_t)(rng_next(&seed) % (uint64_t)spread);
    qsort(late, (size_t)n, sizeof *late, cmp_i64);
    for (long i = 0; i < n; i++) {
        int64_t d = late[i];
        struct timespec ts = {.tv_sec = (time_t)(d / STM_SEC(1)),
                              .tv_nsec = (long)(d % STM_SEC(1))};
        if (stm_now() < d)
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
        late[i] = stm_now() - d;
    }
    prctl(PR_SET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL); /* back to the default */
    cpu = 100.0 * (double)(cpu_ns() - cpu0) / (double)(stm_now() - start + LAT_LEAD_NS);
    lat_report("baseline_nanosleep", late, n, n, 0, false, spread, cpu);

    free(a);
    free(w);
    free(late);
}

/* ======================================================================
 * A million timed watchers
 * ====================================================================== */

enum variant { V_OWN, V_SHARED, V_TWO, V_REAL, V_BURST, NVARIANTS };
static const char *const variant_names[NVARIANTS] = {"own", "shared", "two", "real", "burst"};

struct mw {
    stm_tvar *tv;     /* own, two, real, burst: the deadline - m_base */
    int64_t deadline; /* for the checks */
    int64_t late;     /* real, burst: stm_now() in the run - deadline */
    _Atomic int in_run; /* real, burst: its callback runs (overlap check) */
};

static int64_t m_base;     /* deadlines are m_base + offset */
static stm_tvar *m_shared; /* shared, two: 0 */
static int64_t m_last;     /* the deadline of the last run (virtual clock) */
static long m_disorder, m_early;
static _Atomic long m_fired, m_at_make;
static _Thread_local bool m_making; /* this thread is in make_watchers() */
/* real, burst: runs on the library's timer threads */
static _Atomic long m_rdisorder, m_rearly, m_overlap, m_again;
static _Thread_local int64_t m_tlast = INT64_MIN; /* this thread's last deadline run */

static intptr_t m_fn_own(stm_tx *tx, void *arg)
{
    const struct mw *a = arg;
    return stm_elapsed(tx, m_base + (int64_t)stm_read(tx, a->tv));
}

static intptr_t m_fn_shared(stm_tx *tx, void *arg)
{
    const struct mw *a = arg;
    return stm_elapsed(tx, a->deadline + (int64_t)stm_read(tx, m_shared));
}

static intptr_t m_fn_two(stm_tx *tx, void *arg)
{
    const struct mw *a = arg;
    return stm_elapsed(tx, m_base + (int64_t)stm_read(tx, a->tv) + (int64_t)stm_read(tx, m_shared));
}

/* Virtual clock: all runs on the thread in stm_clock_advance(). */
static void m_cb(stm_tx *tx, intptr_t v, void *arg)
{
    const struct mw *a = arg;
    if (!v)
        return;
    if (a->deadline <= m_last)
        m_disorder++;
    m_last = a->deadline;
    if (stm_tx_now(tx) < a->deadline)
        m_early++;
    atomic_fetch_add_explicit(&m_fired, 1, memory_order_relaxed);
}

/* Real clock: runs on the library's timer threads (stm.h: deadline runs
 * start in deadline order, one watcher's runs never overlap, two
 * watchers' runs may).  Checked: each watcher runs once, never
 * concurrently with itself (in_run), and each thread's runs come in
 * deadline order (a thread takes them in that order: out_of_order=). */
static void m_cb_real(stm_tx *tx, intptr_t v, void *arg)
{
    struct mw *a = arg;
    if (!v)
        return;
    if (m_making) { /* due before it was made: not a deadline run */
        atomic_fetch_add_explicit(&m_at_make, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&m_fired, 1, memory_order_release);
        return;
    }
    if (atomic_exchange(&a->in_run, 1) != 0)
        atomic_fetch_add(&m_overlap, 1);
    int64_t late = stm_now() - a->deadline;
    if (a->late != INT64_MIN)
        atomic_fetch_add(&m_again, 1);
    a->late = late;
    if (a->deadline <= m_tlast)
        atomic_fetch_add(&m_rdisorder, 1);
    m_tlast = a->deadline;
    if (stm_tx_now(tx) < a->deadline)
        atomic_fetch_add(&m_rearly, 1);
    atomic_store(&a->in_run, 0);
    atomic_fetch_add_explicit(&m_fired, 1, memory_order_release);
}

struct mk {
    struct mw *a;
    stm_watch **w;
    stm_watch_fn *fn;
    stm_watch_cb *cb;
    long lo, hi;
};

static int make_range(stm_tx *tx, void *arg)
{
    const struct mk *m = arg;
    for (long i = m->lo; i < m->hi; i++)
        m->w[i] = stm_watch_new(tx, m->fn, m->cb, &m->a[i], 0);
    return 0;
}

/* Make watchers lo .. hi-1, one per transaction (batch 0) or `batch` per
 * transaction; returns the ns taken. */
static int64_t make_watchers(struct mk *m, long lo, long hi, long batch)
{
    int64_t t0 = bench_now_ns();
    m_making = true;
    if (batch == 0) {
        for (long i = lo; i < hi; i++) {
            m->w[i] = stm_atomically_watch(m->fn, m->cb, &m->a[i], 0);
            if (__builtin_expect(m->w[i] == NULL, 0))
                die("stm_atomically_watch", -errno);
        }
    } else {
        for (long i = lo; i < hi; i += batch) {
            m->lo = i;
            m->hi = i + batch < hi ? i + batch : hi;
            atomically(make_range, m, "stm_watch_new (batch)");
        }
    }
    m_making = false;
    return bench_now_ns() - t0;
}

#define NO_BYTES LLONG_MIN

/* delta / n into buf, or "na" for NO_BYTES. */
static void fmt_bytes(char *buf, size_t len, long long delta, long n)
{
    if (delta == NO_BYTES)
        snprintf(buf, len, "na");
    else
        snprintf(buf, len, "%.1f", (double)delta / (double)n);
}

/* One pass on the virtual clock: make, fire, stop; a failed check sets
 * status. */
static void million_pass(enum variant v, struct mk *m, long n, long batch, const uint32_t *perm,
                         bool first)
{
    struct stm_stats s0, s1;
    m_base = stm_now();
    for (long i = 0; i < n; i++) {
        m->a[i].deadline = m_base + 1 + perm[i];
        if (m->a[i].tv && stm_tvar_poke(m->a[i].tv, (intptr_t)(1 + perm[i])) != 0)
            die("stm_tvar_poke", -ENOMEM);
    }
    m_last = m_base;
    m_disorder = m_early = 0;
    atomic_store(&m_fired, 0);

    long long rss0 = rss_bytes(), heap0 = heap_bytes();
    int64_t t_make = make_watchers(m, 0, n, batch);
    long long rss1 = rss_bytes(), heap1 = heap_bytes();
    long fired_at_make = atomic_load(&m_fired);

    stm_stats_get(&s0);
    int64_t t0 = bench_now_ns();
    stm_clock_advance((int64_t)n + 1);
    int64_t t_fire = bench_now_ns() - t0;
    stm_stats_get(&s1);
    long fired = atomic_load(&m_fired);

    t0 = bench_now_ns();
    if (batch == 0)
        for (long i = 0; i < n; i++)
            unwatch_all(&m->w[i], 1, 1);
    else
        unwatch_all(m->w, n, batch);
    int64_t t_stop = bench_now_ns() - t0;
    long long heap2 = heap_bytes();

    char rss[32], heap[32], left[32];
    fmt_bytes(rss, sizeof rss, first && rss0 >= 0 && rss1 >= 0 ? rss1 - rss0 : NO_BYTES, n);
    fmt_bytes(heap, sizeof heap, heap0 >= 0 ? heap1 - heap0 : NO_BYTES, n);
    fmt_bytes(left, sizeof left, heap0 >= 0 ? heap2 - heap0 : NO_BYTES, n);
    double create_rate = (double)n / ((double)t_make / 1e9);
    bool ok = fired == n && fired_at_make == 0 && m_disorder == 0 && m_early == 0 &&
              (long)(s1.timer_fires - s0.timer_fires) == n &&
              s1.watch_failures == s0.watch_failures;
    /* the size target is for watchers that read one TVar */
    bool mem_ok =
        v == V_TWO || (double)(first ? rss1 - rss0 : heap1 - heap0) < MEM_TARGET_BYTES * (double)n;
    printf("watch million tvars=%s create=%s n=%ld batch=%ld create_per_s=%.0f rss_B=%s heap_B=%s "
           "doc_B=%d fire_per_s=%.0f unwatch_per_s=%.0f heap_left_B=%s fired=%ld out_of_order=%ld "
           "early=%ld target=%s\n",
           variant_names[v], batch ? "batch" : "single", n, batch ? batch : 1, create_rate, rss,
           heap, STM_WATCH_BYTES + (v == V_TWO ? 2 * 32 + 16 : 0), (double)n / ((double)t_fire / 1e9),
           (double)n / ((double)t_stop / 1e9), left, fired, m_disorder, m_early,
           ok && mem_ok && create_rate >= CREATE_TARGET_PER_S ? "met" : "MISSED");
    fflush(stdout);
    if (!ok) {
        fprintf(stderr,
                "watch: million tvars=%s create=%s: fired %ld of %ld (%ld at creation), %ld out "
                "of order, %ld early, timer_fires +%llu, watch_failures +%llu\n",
                variant_names[v], batch ? "batch" : "single", fired, n, fired_at_make, m_disorder,
                m_early, (unsigned long long)(s1.timer_fires - s0.timer_fires),
                (unsigned long long)(s1.watch_failures - s0.watch_failures));
        status = 1;
    }
}

static int64_t m_burst_spread = STM_SEC(2); /* -S */

/* million/real and burst: made in batches on the real clock, deadlines
 * spread evenly over `spread` (real: REAL_SPREAD_NS, 1 us apart for a
 * million; burst: -S, 2 s) starting once all are made. */
static void million_real(struct mk *m, long n, long batch, const uint32_t *perm, bool burst)
{
    int64_t spread = burst ? m_burst_spread : REAL_SPREAD_NS;
    const char *name = burst ? "burst" : "real";
    /* how long the making takes: a trial of n / 20, made and stopped */
    long trial = n / 20 > 0 ? n / 20 : 1;
    int64_t far = STM_SEC(3600);
    m_base = stm_now() + far;
    for (long i = 0; i < trial; i++) {
        m->a[i].deadline = m_base;
        stm_tvar_poke(m->a[i].tv, 0);
    }
    int64_t t_trial = make_watchers(m, 0, trial, batch);
    unwatch_all(m->w, trial, batch);
    int64_t lead = 2 * t_trial * (n / trial) + STM_MSEC(200);
    if (lead > STM_SEC(10))
        lead = STM_SEC(10); /* a slow trial on a busy machine: at_creation= tells */

    m_base = stm_now() + lead;
    for (long i = 0; i < n; i++) {
        /* (perm[i] * spread / n: exact, also when spread / n is not whole) */
        int64_t off = (int64_t)((__int128)perm[i] * spread / n);
        m->a[i].deadline = m_base + off;
        m->a[i].late = INT64_MIN;
        if (stm_tvar_poke(m->a[i].tv, (intptr_t)off) != 0)
            die("stm_tvar_poke", -ENOMEM);
    }
    m_last = INT64_MIN;
    m_disorder = m_early = 0;
    atomic_store(&m_fired, 0);
    atomic_store(&m_at_make, 0);
    long long rss0 = rss_bytes(), heap0 = heap_bytes();
    int64_t t_make = make_watchers(m, 0, n, batch);
    long long rss1 = rss_bytes(), heap1 = heap_bytes();
    int64_t made = stm_now();
    int64_t end = m_base + spread;
    /* CPU time of the firing: from the first deadline to the last run */
    while (stm_now() < m_base - STM_MSEC(20) && atomic_load(&m_fired) == 0) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int64_t cpu0 = cpu_ns();
    while (atomic_load_explicit(&m_fired, memory_order_acquire) < n &&
           stm_now() < end + STM_SEC(30)) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int64_t cpu1 = cpu_ns();
    long fired = atomic_load_explicit(&m_fired, memory_order_acquire);
    unwatch_all(m->w, n, batch);

    int64_t *late = xmalloc((size_t)n * sizeof *late);
    long k = 0;
    int64_t last_run = INT64_MIN, first_run = INT64_MAX;
    for (long i = 0; i < n; i++) {
        if (m->a[i].late == INT64_MIN)
            continue;
        late[k++] = m->a[i].late;
        int64_t at = m->a[i].deadline + m->a[i].late;
        if (at > last_run)
            last_run = at;
        if (at < first_run)
            first_run = at;
    }
    qsort(late, (size_t)k, sizeof *late, cmp_i64);
    long early = 0;
    for (long i = 0; i < k && late[i] < 0; i++)
        early++;
    char rss[32], heap[32];
    fmt_bytes(rss, sizeof rss, rss0 >= 0 && rss1 >= 0 ? rss1 - rss0 : NO_BYTES, n);
    fmt_bytes(heap, sizeof heap, heap0 >= 0 ? heap1 - heap0 : NO_BYTES, n);
    long at_make = atomic_load(&m_at_make), disorder = atomic_load(&m_rdisorder);
    long tx_early = atomic_load(&m_rearly), overlap = atomic_load(&m_overlap);
    long again = atomic_load(&m_again);
    bool ok =
        fired == n && early == 0 && tx_early == 0 && disorder == 0 && overlap == 0 && again == 0;
    int64_t p99 = k ? pct(late, k, 99) : 0;
    bool met = ok && (!burst || (k == n && p99 <= BURST_P99_TARGET_NS));
    printf("watch million tvars=%s create=batch n=%ld batch=%ld create_per_s=%.0f rss_B=%s "
           "heap_B=%s spread_ms=%lld made_before_first_ms=%.0f fire_per_s=%.0f "
           "cpu_us_per_run=%.2f p50_us=%.0f p99_us=%.0f max_us=%.0f fired=%ld at_creation=%ld "
           "out_of_order=%ld overlap=%ld again=%ld early=%ld tx_early=%ld target=%s\n",
           name, n, batch, (double)n / ((double)t_make / 1e9), rss, heap,
           (long long)(spread / STM_MSEC(1)), (double)(m_base - made) / 1e6,
           k > 1 && last_run > first_run ? (double)(k - 1) / ((double)(last_run - first_run) / 1e9)
                                         : 0.0,
           (double)(cpu1 - cpu0) / 1e3 / (double)n, k ? (double)pct(late, k, 50) / 1e3 : 0.0,
           (double)p99 / 1e3, k ? (double)late[k - 1] / 1e3 : 0.0, fired, at_make, disorder,
           overlap, again, early, tx_early, met ? "met" : "MISSED");
    fflush(stdout);
    if (!ok) {
        fprintf(stderr,
                "watch: million tvars=%s: fired %ld of %ld, %ld early, %ld early by "
                "stm_tx_now, %ld out of order on a thread, %ld overlapping, %ld run twice\n",
                name, fired, n, early, tx_early, disorder, overlap, again);
        status = 1;
    }
    free(late);
}

/* One variant, in this process. */
static void million_variant(enum variant v, long n, long batch)
{
    struct mk m = {0};
    m.a = xmalloc((size_t)n * sizeof *m.a);
    m.w = xmalloc((size_t)n * sizeof *m.w);
    uint32_t *perm = shuffled((uint32_t)n, (uint64_t)bench_now_ns() | 1);
    if (v == V_SHARED || v == V_TWO)
        m_shared = new_tvar(0);
    if (v != V_SHARED)
        for (long i = 0; i < n; i++)
            m.a[i].tv = new_tvar(0);
    m.fn = v == V_SHARED ? m_fn_shared : v == V_TWO ? m_fn_two : m_fn_own;
    m.cb = v == V_REAL || v == V_BURST ? m_cb_real : m_cb;
    /* the handles, arguments and TVars are the program's: touched before
     * the first reading (calloc'd pages are not resident until written) */
    memset(m.w, 1, (size_t)n * sizeof *m.w);

    if (v == V_REAL || v == V_BURST) {
        million_real(&m, n, batch, perm, v == V_BURST);
    } else {
        int rc = stm_clock_virtual(STM_SEC(1));
        if (rc != 0)
            die("stm_clock_virtual", rc);
        million_pass(v, &m, n, 0, perm, true);
        million_pass(v, &m, n, batch, perm, false);
        stm_clock_real();
    }
    if (verbose)
        print_stats("million: ");
    for (long i = 0; v != V_SHARED && i < n; i++)
        stm_tvar_free(m.a[i].tv);
    if (m_shared)
        stm_tvar_free(m_shared);
    m_shared = NULL;
    free(perm);
    free(m.a);
    free(m.w);
}

static void run_million(const bool *variants, long n, long batch, const char *self)
{
    printf("# million: %ld timed watchers per variant, each variant in a fresh process; "
           "virtual clock (deadlines T+1 .. T+%ld ns, made in shuffled order, fired by one "
           "stm_clock_advance), except tvars=real\n",
           n, n);
    printf("# create=single: stm_atomically_watch per watcher, stopped one stm_unwatch per "
           "transaction; create=batch: %ld stm_watch_new / stm_unwatch per transaction\n",
           batch);
    printf("# rss_B: RSS delta per watcher over the creation (first pass of a process only); "
           "heap_B: malloc bytes in use per watcher (mallinfo2); heap_left_B: after all are "
           "stopped\n");
    printf("# targets (benchmarks.md): < %.0f bytes each (tvars=own, rss_B of create=single; "
           "stm.h: STM_WATCH_BYTES=%d, +16..32 timer-heap slot, +32 * n + 16 for n > 1 TVars read: "
           "doc_B); created >= 1 M/s; all fire, in order (fired=n out_of_order=0 early=0)\n",
           MEM_TARGET_BYTES, STM_WATCH_BYTES);
    fflush(stdout);
    for (int v = 0; v < NVARIANTS; v++) {
        if (!variants[v])
            continue;
        char nbuf[32], bbuf[32], sbuf[32];
        snprintf(nbuf, sizeof nbuf, "%ld", n);
        snprintf(bbuf, sizeof bbuf, "%ld", batch);
        snprintf(sbuf, sizeof sbuf, "%lld", (long long)(m_burst_spread / STM_MSEC(1)));
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {(char *)"watch",
                            (char *)"-M",
                            (char *)variant_names[v],
                            (char *)"-N",
                            nbuf,
                            (char *)"-b",
                            bbuf,
                            (char *)"-S",
                            sbuf,
                            verbose ? (char *)"-v" : NULL,
                            NULL};
            execv(self, args);
            fprintf(stderr, "watch: exec %s: %s\n", self, strerror(errno));
            _exit(127);
        }
        int ws;
        if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
            if (pid < 0 || (WIFEXITED(ws) && WEXITSTATUS(ws) == 127)) {
                /* no fresh process to be had: run it here (RSS figures
                 * after the first are then worth less) */
                million_variant((enum variant)v, n, batch);
            } else {
                fprintf(stderr, "watch: million tvars=%s failed\n", variant_names[v]);
                status = 1;
            }
        }
    }
}

/* ======================================================================
 * What a triggered watcher adds to a commit
 * ====================================================================== */

struct cc;
typedef int64_t cc_run_fn(struct cc *c, long ops);

struct cc {
    const char *name;
    stm_fn *body;
    int nwatch;     /* watchers on x */
    unsigned flags; /* theirs */
    bool fanout;    /* a fanout case (else commit) */
    bool off;       /* left out (-k) */
    stm_tvar *x, *y, *z;
    stm_tvar **ys; /* fanout: one y per watcher */
    stm_watch **w;
    void **wargs;
    double *ns; /* per round */
    long ops;
};

struct cw {
    stm_tvar *x, *y, *z;
};

static volatile intptr_t sink;

static intptr_t cc_fn(stm_tx *tx, void *arg)
{
    const struct cw *c = arg;
    return stm_read(tx, c->x) + stm_read(tx, c->z);
}

static void cc_cb(stm_tx *tx, intptr_t v, void *arg)
{
    const struct cw *c = arg;
    stm_write(tx, c->y, v);
}

static int body_inc(stm_tx *tx, void *arg)
{
    const struct cc *c = arg;
    stm_write(tx, c->x, stm_read(tx, c->x) + 1);
    return 0;
}

static int body_same(stm_tx *tx, void *arg)
{
    const struct cc *c = arg;
    stm_write(tx, c->x, stm_read(tx, c->x));
    return 0;
}

static int body_work(stm_tx *tx, void *arg)
{
    const struct cc *c = arg;
    stm_write(tx, c->y, stm_read(tx, c->x) + stm_read(tx, c->z));
    return 0;
}

static int body_inline(stm_tx *tx, void *arg)
{
    const struct cc *c = arg;
    stm_write(tx, c->x, stm_read(tx, c->x) + 1);
    stm_write(tx, c->y, stm_read(tx, c->x) + stm_read(tx, c->z));
    return 0;
}

static int body_work_ro(stm_tx *tx, void *arg)
{
    const struct cc *c = arg;
    sink = stm_read(tx, c->x) + stm_read(tx, c->z);
    return 0;
}

enum {
    C_PLAIN,
    C_WATCHED,
    C_WORK,
    C_INLINE,
    C_CO_CHANGED,
    C_PLAIN_SAME,
    C_SAME,
    C_CO_SAME,
    C_WORK_RO,
    C_FAN10,
    C_FAN100,
    NCC
};

#define CO STM_WATCH_CHANGES_ONLY
static struct cc ccs[NCC] = {
    [C_PLAIN] = {.name = "plain", .body = body_inc},
    [C_WATCHED] = {.name = "watched", .body = body_inc, .nwatch = 1},
    [C_WORK] = {.name = "work", .body = body_work},
    [C_INLINE] = {.name = "inline", .body = body_inline},
    [C_CO_CHANGED] = {.name = "co_changed", .body = body_inc, .nwatch = 1, .flags = CO},
    [C_PLAIN_SAME] = {.name = "plain_same", .body = body_same},
    [C_SAME] = {.name = "same", .body = body_same, .nwatch = 1},
    [C_CO_SAME] = {.name = "co_same", .body = body_same, .nwatch = 1, .flags = CO},
    [C_WORK_RO] = {.name = "work_ro", .body = body_work_ro},
    [C_FAN10] = {.name = "fan10", .body = body_inc, .nwatch = 10, .fanout = true},
    [C_FAN100] = {.name = "fan100", .body = body_inc, .nwatch = 100, .fanout = true},
};
#undef CO

static int64_t cc_batch(struct cc *c, long ops)
{
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < ops; i++) {
        int rc = stm_atomically(c->body, c);
        if (__builtin_expect(rc != 0, 0))
            die(c->name, rc);
    }
    return bench_now_ns() - t0;
}

static double cc_med(int i, int rounds)
{
    return bench_median(ccs[i].ns, (size_t)rounds);
}

static void cost_line(const char *name, double added, double work, const char *work_name, int per,
                      bool judge)
{
    double ratio = work > 0 ? added / work : 0;
    printf("watch cost case=%s added_ns=%.1f", name, added);
    if (per > 1)
        printf(" watchers=%d per_watcher_ns=%.1f", per, added / per);
    printf(" %s_ns=%.1f ratio=%.2f", work_name, work, per > 1 ? ratio / per : ratio);
    if (judge)
        printf(" target=%s", (per > 1 ? ratio / per : ratio) <= COST_TARGET ? "met" : "MISSED");
    putchar('\n');
}

static void run_commit(bool do_commit, bool do_fanout, long ops, int rounds)
{
    stm_tvar *z = new_tvar(7);
    for (int i = 0; i < NCC; i++) {
        struct cc *c = &ccs[i];
        c->ns = xmalloc((size_t)rounds * sizeof *c->ns);
        c->ops = c->nwatch > 1 ? ops / c->nwatch : ops;
        if (c->ops < 1)
            c->ops = 1;
        if (c->off || !(c->fanout ? do_fanout : do_commit))
            continue;
        c->x = new_tvar(0);
        c->y = new_tvar(0);
        c->z = z;
        if (c->nwatch == 0)
            continue;
        c->w = xmalloc((size_t)c->nwatch * sizeof *c->w);
        c->wargs = xmalloc((size_t)c->nwatch * sizeof *c->wargs);
        c->ys = xmalloc((size_t)c->nwatch * sizeof *c->ys);
        for (int k = 0; k < c->nwatch; k++) {
            struct cw *a = xmalloc(sizeof *a);
            a->x = c->x;
            a->z = z;
            a->y = c->ys[k] = k == 0 ? c->y : new_tvar(0);
            c->wargs[k] = a;
            c->w[k] = stm_atomically_watch(cc_fn, cc_cb, a, c->flags);
            if (!c->w[k])
                die("stm_atomically_watch", -errno);
        }
    }

    printf("# commit: 1 thread, ns per transaction, median of %d interleaved rounds of %ld "
           "transactions (fanK: %ld / K)\n",
           rounds, ops, ops);
    printf("# added = case - plain (same/co_same: - plain_same); work = y = x + z as a "
           "transaction of its own; ratio = added / work (target <= %.0f, benchmarks.md); "
           "ratio_inline = added / (inline - plain): against the same work written by hand "
           "into the triggering transaction\n",
           COST_TARGET);
    fflush(stdout);

    for (int i = 0; i < NCC; i++) /* warm-up */
        if (ccs[i].x)
            (void)cc_batch(&ccs[i], ccs[i].ops / 10 + 1);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NCC; i++)
            if (ccs[i].x)
                ccs[i].ns[r] = (double)cc_batch(&ccs[i], ccs[i].ops) / (double)ccs[i].ops;
    stm_stats_get(&s1);

    for (int i = 0; verbose && i < NCC; i++) {
        if (!ccs[i].x)
            continue;
        printf("# %s:", ccs[i].name);
        for (int r = 0; r < rounds; r++)
            printf(" %.1f", ccs[i].ns[r]);
        putchar('\n');
    }
    double plain = ccs[C_PLAIN].x ? cc_med(C_PLAIN, rounds) : 0;
    for (int i = 0; i < NCC; i++)
        if (ccs[i].x)
            bench_line("watch", ccs[i].name, cc_med(i, rounds),
                       bench_min(ccs[i].ns, (size_t)rounds), "plain",
                       plain > 0 ? cc_med(i, rounds) / plain : 0, 0, rounds, ccs[i].ops);
    bool all = true; /* the cost lines need every case */
    for (int i = 0; i < NCC; i++)
        all = all && (ccs[i].x || !(ccs[i].fanout ? do_fanout : do_commit));
    double work = ccs[C_WORK].x ? cc_med(C_WORK, rounds) : 0;
    if (do_commit && all) {
        double added = cc_med(C_WATCHED, rounds) - plain;
        double inl = cc_med(C_INLINE, rounds) - plain;
        printf("watch cost case=watched added_ns=%.1f work_ns=%.1f ratio=%.2f inline_work_ns=%.1f "
               "ratio_inline=%.2f target=%s\n",
               added, work, added / work, inl, inl > 0 ? added / inl : 0.0,
               added / work <= COST_TARGET ? "met" : "MISSED");
        cost_line("co_changed", cc_med(C_CO_CHANGED, rounds) - plain, work, "work", 1, false);
        double ps = cc_med(C_PLAIN_SAME, rounds);
        cost_line("same", cc_med(C_SAME, rounds) - ps, work, "work", 1, false);
        cost_line("co_same", cc_med(C_CO_SAME, rounds) - ps, cc_med(C_WORK_RO, rounds), "work_ro",
                  1, false);
    }
    if (do_fanout && all && plain > 0 && work > 0) {
        cost_line("fan10", cc_med(C_FAN10, rounds) - plain, work, "work", 10, false);
        cost_line("fan100", cc_med(C_FAN100, rounds) - plain, work, "work", 100, false);
    }
    fflush(stdout);

    /* the watchers really ran: y follows x */
    for (int i = 0; i < NCC; i++) {
        struct cc *c = &ccs[i];
        for (int k = 0; c->x && k < c->nwatch; k++)
            if (stm_tvar_peek(c->ys[k]) != stm_tvar_peek(c->x) + 7) {
                fprintf(stderr, "watch: commit %s: watcher %d left y=%ld, x=%ld\n", c->name, k,
                        (long)stm_tvar_peek(c->ys[k]), (long)stm_tvar_peek(c->x));
                status = 1;
            }
    }
    if (s1.aborts != s0.aborts)
        printf("# commit: %llu aborts in a 1-thread run\n",
               (unsigned long long)(s1.aborts - s0.aborts));
    for (int i = 0; i < NCC; i++) {
        struct cc *c = &ccs[i];
        if (c->nwatch && c->x) {
            unwatch_all(c->w, c->nwatch, c->nwatch);
            for (int k = 0; k < c->nwatch; k++) {
                if (k)
                    stm_tvar_free(c->ys[k]);
                free(c->wargs[k]);
            }
        }
        if (c->x) {
            stm_tvar_free(c->x);
            stm_tvar_free(c->y);
        }
        free(c->w);
        free(c->wargs);
        free(c->ys);
        free(c->ns);
        c->x = NULL;
    }
    stm_tvar_free(z);
}

/* ====================================================================== */

static void usage(FILE *f)
{
    fprintf(f, "usage: watch [-q] [-c lateness,million,commit,fanout] [-n N] [-s SPREAD_MS]\n"
               "             [-N COUNT] [-m own,shared,two,real,burst] [-S BURST_MS] [-b BATCH]\n"
               "             [-o OPS] [-r ROUNDS]\n"
               "             [-k CASE[,CASE...]] [-w SPIN_NS] [-v]\n");
}

/* -k: the commit and fanout cases to run. */
static void select_cc(char *list)
{
    for (int i = 0; i < NCC; i++)
        ccs[i].off = true;
    for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
        int i;
        for (i = 0; i < NCC && strcmp(t, ccs[i].name) != 0; i++)
            ;
        if (i == NCC) {
            fprintf(stderr, "watch: unknown commit case '%s'; cases:", t);
            for (i = 0; i < NCC; i++)
                fprintf(stderr, " %s", ccs[i].name);
            fputc('\n', stderr);
            exit(2);
        }
        ccs[i].off = false;
    }
}

static int parse_variant(const char *s)
{
    for (int v = 0; v < NVARIANTS; v++)
        if (strcmp(s, variant_names[v]) == 0)
            return v;
    fprintf(stderr, "watch: unknown variant '%s' (own, shared, two, real, burst)\n", s);
    exit(2);
}

int main(int argc, char **argv)
{
    long lat_n = 10000, spread_ms = 2000, mil_n = 1000000, batch = 1000, ops = 100000;
    long spin = STM_WAKE_SPIN_AUTO, burst_ms = 2000;
    int rounds = 11, opt, only = -1;
    bool quick = false, set_n = false, set_s = false, set_N = false, set_o = false, set_r = false;
    bool do_lat = true, do_mil = true, do_commit = true, do_fan = true;
    bool variants[NVARIANTS] = {true, true, true, true, true};

    while ((opt = getopt(argc, argv, "qc:n:s:S:N:m:b:o:r:k:w:vM:h")) != -1) {
        switch (opt) {
        case 'q':
            quick = true;
            break;
        case 'c':
            do_lat = do_mil = do_commit = do_fan = false;
            for (char *t = strtok(optarg, ","); t; t = strtok(NULL, ",")) {
                if (strcmp(t, "lateness") == 0)
                    do_lat = true;
                else if (strcmp(t, "million") == 0)
                    do_mil = true;
                else if (strcmp(t, "commit") == 0)
                    do_commit = true;
                else if (strcmp(t, "fanout") == 0)
                    do_fan = true;
                else {
                    fprintf(stderr, "watch: unknown case '%s'\n", t);
                    return 2;
                }
            }
            break;
        case 'n':
            lat_n = bench_parse_count("-n", optarg);
            set_n = true;
            break;
        case 's':
            spread_ms = bench_parse_count("-s", optarg);
            set_s = true;
            break;
        case 'S':
            burst_ms = bench_parse_count("-S", optarg);
            break;
        case 'N':
            mil_n = bench_parse_count("-N", optarg);
            set_N = true;
            break;
        case 'm':
            memset(variants, 0, sizeof variants);
            for (char *t = strtok(optarg, ","); t; t = strtok(NULL, ","))
                variants[parse_variant(t)] = true;
            break;
        case 'b':
            batch = bench_parse_count("-b", optarg);
            break;
        case 'o':
            ops = bench_parse_count("-o", optarg);
            set_o = true;
            break;
        case 'r':
            rounds = (int)bench_parse_count("-r", optarg);
            set_r = true;
            break;
        case 'w':
            spin = bench_parse_spin("-w", optarg);
            if (stm_set_wake_spin(spin) != 0) {
                fprintf(stderr, "watch: -w takes 1 .. 10000000 ns\n");
                return 2;
            }
            break;
        case 'k':
            select_cc(optarg);
            break;
        case 'v':
            verbose = true;
            break;
        case 'M':
            only = parse_variant(optarg);
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
    if (quick) {
        lat_n = set_n ? lat_n : 2000;
        spread_ms = set_s ? spread_ms : 500;
        mil_n = set_N ? mil_n : 100000;
        ops = set_o ? ops : 20000;
        rounds = set_r ? rounds : 5;
    }
    if (mil_n > 100000000 || rounds > 10000 || spread_ms > 60000 || burst_ms > 60000 ||
        burst_ms < 1) {
        fprintf(stderr, "watch: at most -N 100M, -r 10000, -s 60000, -S 1 .. 60000\n");
        return 2;
    }
    m_burst_spread = STM_MSEC(burst_ms);

    if (only >= 0) { /* a child of run_million */
        million_variant((enum variant)only, mil_n, batch);
        stm_shutdown();
        return status;
    }

    printf("# watch: watchers and timed watches%s\n", quick ? " (quick run)" : "");
    if (spin > 0)
        printf("# stm_set_wake_spin(%ld): timed waits poll the last %ld ns\n", spin, spin);
    else if (spin == 0)
        printf("# stm_set_wake_spin(0): timed waits sleep to their deadlines\n");
    double load[3];
    if (getloadavg(load, 3) == 3)
        printf("# loadavg=%.2f,%.2f,%.2f nproc=%ld\n", load[0], load[1], load[2],
               sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    if (do_lat)
        run_lateness(lat_n, STM_MSEC(spread_ms));
    if (do_mil) {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0)
            snprintf(self, sizeof self, "%s", argv[0]);
        else
            self[len] = '\0';
        run_million(variants, mil_n, batch, self);
    }
    if (do_commit || do_fan)
        run_commit(do_commit, do_fan, ops, rounds);

    print_stats("");
    stm_shutdown();
    return status;
}
