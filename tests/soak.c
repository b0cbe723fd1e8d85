/*
 * soak.c - `make soak`: everything at once, for minutes (not in make check).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * More threads than cores run together, for STM_SOAK_SECONDS (default
 * 180) seconds:
 *   - bank transfers between NACC accounts, each also replacing a block
 *     (stm_alloc/stm_free, so reclamation runs all the time);
 *   - audits: declared read-only transactions that sum every account
 *     (the total must never change) and check each account's block;
 *   - a periodic watcher (every 20 ms, its next deadline in a TVar,
 *     skipping periods that went by while it was held up) that
 *     audits a few accounts inside its run, and a watcher on the mailbox;
 *   - mailboxes: consumers block in stm_atomically_until() on a mailbox,
 *     producers fill it and record when; every blocked consumer must be
 *     woken within STM_SOAK_WAKE_MS (default 5000) of the commit it
 *     waited for, and no timed wait may end before its deadline;
 *   - a thread that switches the Waiter backend (stm_set_waiter) every
 *     100 ms among condvar, pipe and thread.
 * Every second the resident set size is read from /proc/self/statm, and
 * the heap in use from mallinfo2(); at the end, for each, the second
 * half's peak must not exceed the first half's by more than 10% + 4 MiB.
 * (`make soak` runs it with MALLOC_ARENA_MAX=1: with glibc's default of
 * one malloc arena per thread, blocks allocated by one thread and freed by
 * reclamation on another leave the arenas fragmented, and the RSS creeps
 * up while the heap in use stays flat.)  Exits 0 only with zero
 * violations.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>

#include "testutil.h"

enum { NACC = 64, INITIAL = 1000, NBOX = 4, MAXSAMPLES = 100000 };

struct account {
    stm_tvar *bal;
    stm_tvar *blk; /* a block holding the balance too */
};

static struct account acc[NACC];
static stm_tvar *box[NBOX];     /* 0: empty; else the producer's stamp */
static stm_tvar *tick_deadline; /* the periodic watcher's next deadline */
static stm_tvar *ticks;         /* its count */
static atomic_bool stop;
static atomic_long violations;
static atomic_long n_moved; /* transfers that moved money: 2 blocks freed each */
static atomic_long n_transfers, n_audits, n_wakes, n_timeouts, n_switches, n_ticks, n_box_cb;
static atomic_llong max_wake_ns;
static int64_t wake_bound_ns;

static void violation(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (atomic_fetch_add(&violations, 1) < 20) {
        fprintf(stderr, "soak: VIOLATION: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
    }
    va_end(ap);
}

/* ---- bank ---- */

struct xfer {
    int from, to;
    intptr_t amount;
};

static int transfer_body(stm_tx *tx, void *arg)
{
    const struct xfer *x = arg;
    intptr_t a = stm_read(tx, acc[x->from].bal);
    if (a < x->amount)
        return 0;
    intptr_t b = stm_read(tx, acc[x->to].bal);
    stm_write(tx, acc[x->from].bal, a - x->amount);
    stm_write(tx, acc[x->to].bal, b + x->amount);
    int ends[2] = {x->from, x->to};
    intptr_t vals[2] = {a - x->amount, b + x->amount};
    for (int i = 0; i < 2; i++) {
        intptr_t *old = stm_read_ptr(tx, acc[ends[i]].blk);
        intptr_t *nb = stm_alloc(tx, 4 * sizeof *nb);
        nb[0] = vals[i];
        nb[1] = nb[2] = nb[3] = -vals[i];
        stm_write_ptr(tx, acc[ends[i]].blk, nb);
        stm_free(tx, old);
    }
    return 1;
}

static void *transfer_main(void *p)
{
    uint64_t rng = tu_seed((uint64_t)(intptr_t)p);
    while (!atomic_load(&stop)) {
        struct xfer x = {(int)tu_rand_below(&rng, NACC), (int)tu_rand_below(&rng, NACC),
                         1 + (intptr_t)tu_rand_below(&rng, 50)};
        if (x.from == x.to)
            continue;
        int rc = stm_atomically(transfer_body, &x);
        if (rc != 0 && rc != 1)
            violation("transfer returned %d", rc);
        if (rc == 1)
            atomic_fetch_add(&n_moved, 1);
        atomic_fetch_add(&n_transfers, 1);
    }
    return NULL;
}

static int audit_body(stm_tx *tx, void *arg)
{
    intptr_t *sum = arg;
    *sum = 0;
    for (int i = 0; i < NACC; i++) {
        intptr_t v = stm_read(tx, acc[i].bal);
        const intptr_t *b = stm_read_ptr(tx, acc[i].blk);
        if (b[0] != v || b[1] != -v || b[3] != -v)
            return -1000 - i; /* a torn or reclaimed block: opacity broken */
        *sum += v;
    }
    return 0;
}

static void *audit_main(void *p)
{
    (void)p;
    while (!atomic_load(&stop)) {
        intptr_t sum;
        int rc = stm_atomically_ro(audit_body, &sum);
        if (rc != 0)
            violation("audit: account %d's block does not match its balance", -1000 - rc);
        else if (sum != (intptr_t)NACC * INITIAL)
            violation("audit: total %" PRIdPTR ", expected %d", sum, NACC * INITIAL);
        atomic_fetch_add(&n_audits, 1);
    }
    return NULL;
}

/* ---- watchers ---- */

static intptr_t periodic_fn(stm_tx *tx, void *arg)
{
    (void)arg;
    int64_t d = (int64_t)stm_read(tx, tick_deadline);
    /* an audit of a few accounts inside the run */
    intptr_t s = 0;
    for (int i = 0; i < 4; i++) {
        intptr_t v = stm_read(tx, acc[i].bal);
        const intptr_t *b = stm_read_ptr(tx, acc[i].blk);
        if (b[0] != v)
            s = INTPTR_MIN;
        s += v;
    }
    if (s == INTPTR_MIN)
        stm_abort(tx, 99);
    return stm_elapsed(tx, d) ? 1 : 0;
}

static void periodic_cb(stm_tx *tx, intptr_t fired, void *arg)
{
    (void)arg;
    if (!fired)
        return;
    int64_t d = (int64_t)stm_read(tx, tick_deadline);
    if (stm_tx_now(tx) < d)
        violation("periodic watcher ran before its deadline");
    /* the next period; periods that have gone by entirely are skipped
     * (else, once far behind, the cascade would fail with -ELOOP: see
     * stm_watch_new(3), Periodic watchers) */
    int64_t next = d + STM_MSEC(20), now = stm_tx_now(tx);
    if (next <= now)
        next += (now - next) / STM_MSEC(20) * STM_MSEC(20) + STM_MSEC(20);
    stm_write(tx, tick_deadline, (intptr_t)next);
    stm_write(tx, ticks, stm_read(tx, ticks) + 1);
}

static intptr_t box_fn(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t full = 0;
    for (int i = 0; i < NBOX; i++)
        full += stm_read(tx, box[i]) != 0;
    return full;
}

static void box_count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&n_box_cb, 1);
}

static void box_cb(stm_tx *tx, intptr_t full, void *arg)
{
    (void)full, (void)arg;
    stm_defer(tx, box_count, NULL);
}

/* ---- mailboxes: wake-up bounds ---- */

struct consumer {
    int box;
    int64_t deadline;
    intptr_t got;
};

static int take_body(stm_tx *tx, void *arg)
{
    struct consumer *c = arg;
    intptr_t v = stm_read(tx, box[c->box]);
    if (v == 0)
        stm_retry(tx);
    stm_write(tx, box[c->box], 0);
    c->got = v;
    return 1;
}

static void *consumer_main(void *p)
{
    uint64_t rng = tu_seed(1000 + (uint64_t)(intptr_t)p);
    while (!atomic_load(&stop)) {
        struct consumer c = {.box = (int)tu_rand_below(&rng, NBOX)};
        int64_t t0 = stm_now();
        c.deadline = t0 + STM_MSEC(1 + tu_rand_below(&rng, 50));
        int rc = stm_atomically_until(take_body, &c, c.deadline);
        int64_t t1 = stm_now();
        if (rc == 1) {
            int64_t late = t1 - (int64_t)c.got;
            if (late > wake_bound_ns)
                violation("consumer woken %" PRId64 " ms after the commit it waited for",
                          late / 1000000);
            long long m = atomic_load(&max_wake_ns);
            while (late > m && !atomic_compare_exchange_weak(&max_wake_ns, &m, late)) {
            }
            atomic_fetch_add(&n_wakes, 1);
        } else if (rc == -ETIMEDOUT) {
            if (t1 < c.deadline)
                violation("timed wait ended %" PRId64 " ns before its deadline", c.deadline - t1);
            atomic_fetch_add(&n_timeouts, 1);
        } else {
            violation("consumer: stm_atomically_until returned %d", rc);
        }
    }
    return NULL;
}

static int put_body(stm_tx *tx, void *arg)
{
    int b = *(const int *)arg;
    if (stm_read(tx, box[b]) != 0)
        stm_retry(tx);
    /* the stamp is the commit's time as well as we can have it: taken in
     * the attempt that commits (an attempt's now is fixed) */
    stm_write(tx, box[b], (intptr_t)stm_tx_now(tx));
    return 0;
}

static void *producer_main(void *p)
{
    uint64_t rng = tu_seed(2000 + (uint64_t)(intptr_t)p);
    while (!atomic_load(&stop)) {
        int b = (int)tu_rand_below(&rng, NBOX);
        int rc = stm_atomically_until(put_body, &b, stm_now() + STM_MSEC(100));
        if (rc != 0 && rc != -ETIMEDOUT)
            violation("producer: %d", rc);
        tu_sleep_ms((long)tu_rand_below(&rng, 3));
    }
    return NULL;
}

static void *switcher_main(void *p)
{
    (void)p;
    static const char *const names[] = {"condvar", "pipe", "thread"};
    unsigned i = 0;
    while (!atomic_load(&stop)) {
        tu_sleep_ms(100);
        if (stm_set_waiter(names[++i % 3]) != 0)
            violation("stm_set_waiter failed");
        atomic_fetch_add(&n_switches, 1);
    }
    return NULL;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    long size, res;
    int n = fscanf(f, "%ld %ld", &size, &res);
    fclose(f);
    return n == 2 ? res * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

/* Bytes malloc() has handed out and not had back (glibc). */
static long heap_kib(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (long)((mi.uordblks + mi.hblkhd) / 1024);
#else
    return -1;
#endif
}

static int unwatch_body(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

int main(void)
{
    const char *e = getenv("STM_SOAK_SECONDS");
    long seconds = e != NULL && atol(e) > 0 ? atol(e) : 180;
    e = getenv("STM_SOAK_WAKE_MS");
    wake_bound_ns = STM_MSEC(e != NULL && atol(e) > 0 ? atol(e) : 5000);
    /* STM_SOAK_OFF (to find what a failure comes from): a sum of 1 no
     * waiter switching, 2 no watchers, 4 no mailboxes, 8 no audits */
    e = getenv("STM_SOAK_OFF");
    int off = e != NULL ? atoi(e) : 0;
    int ncpu = tu_ncpu();
    int ntransfer = ncpu + 2, naudit = off & 8 ? 0 : 2, nconsumer = off & 4 ? 0 : 3,
        nproducer = off & 4 ? 0 : 2, nswitch = off & 1 ? 0 : 1;
    for (int i = 0; i < NACC; i++) {
        acc[i].bal = stm_tvar_new(INITIAL);
        intptr_t *b = malloc(4 * sizeof *b);
        if (acc[i].bal == NULL || b == NULL)
            return 2;
        b[0] = INITIAL;
        b[1] = b[2] = b[3] = -INITIAL;
        acc[i].blk = stm_tvar_new((intptr_t)b);
    }
    for (int i = 0; i < NBOX; i++)
        box[i] = stm_tvar_new(0);
    tick_deadline = stm_tvar_new((intptr_t)(stm_now() + STM_MSEC(20)));
    ticks = stm_tvar_new(0);
    stm_watch *wp = NULL, *wb = NULL;
    if (!(off & 2)) {
        wp = stm_atomically_watch(periodic_fn, periodic_cb, NULL, 0);
        wb = stm_atomically_watch(box_fn, box_cb, NULL, STM_WATCH_CHANGES_ONLY);
    }
    if (!(off & 2) && (wp == NULL || wb == NULL)) {
        fprintf(stderr, "soak: cannot create the watchers\n");
        return 2;
    }
    int nthreads = ntransfer + naudit + nconsumer + nproducer + nswitch;
    printf("soak: %ld s, %d threads on %d CPUs (%d transfer, %d audit, %d consumer, "
           "%d producer, %d waiter switcher), wake-up bound %" PRId64 " ms\n",
           seconds, nthreads, ncpu, ntransfer, naudit, nconsumer, nproducer, nswitch,
           wake_bound_ns / 1000000);
    fflush(stdout);
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    int k = 0;
    for (int i = 0; i < ntransfer; i++)
        pthread_create(&t[k++], NULL, transfer_main, (void *)(intptr_t)i);
    for (int i = 0; i < naudit; i++)
        pthread_create(&t[k++], NULL, audit_main, NULL);
    for (int i = 0; i < nconsumer; i++)
        pthread_create(&t[k++], NULL, consumer_main, (void *)(intptr_t)i);
    for (int i = 0; i < nproducer; i++)
        pthread_create(&t[k++], NULL, producer_main, (void *)(intptr_t)i);
    for (int i = 0; i < nswitch; i++)
        pthread_create(&t[k++], NULL, switcher_main, NULL);

    long *rss = calloc((size_t)seconds + 1, sizeof *rss);
    long *heap = calloc((size_t)seconds + 1, sizeof *heap);
    e = getenv("STM_SOAK_REPORT");
    long report = e != NULL && atol(e) > 0 ? atol(e) : 30; /* seconds between reports */
    int64_t start = tu_now_ns();
    for (long s = 0; s < seconds; s++) {
        int64_t until = start + (s + 1) * INT64_C(1000000000);
        while (tu_now_ns() < until)
            tu_sleep_ms(20);
        rss[s] = rss_kib();
        heap[s] = heap_kib();
        if ((s + 1) % report == 0 || s + 1 == seconds) {
            struct stm_stats now;
            stm_stats_get(&now);
            long pending = 2 * atomic_load(&n_moved) - (long)now.reclaimed;
            printf("soak: %3ld s: %ld transfers, %ld audits, %ld wakes, %ld time-outs, rss %ld "
                   "KiB, heap in use %ld KiB, %ld freed blocks not yet reclaimed, %ld "
                   "violations\n",
                   s + 1, atomic_load(&n_transfers), atomic_load(&n_audits), atomic_load(&n_wakes),
                   atomic_load(&n_timeouts), rss[s], heap[s], pending, atomic_load(&violations));
            fflush(stdout);
        }
    }
    atomic_store(&stop, true);
    /* consumers and producers end by their deadlines */
    for (int i = 0; i < k; i++)
        pthread_join(t[i], NULL);
    n_ticks = (long)stm_tvar_peek(ticks);

    /* memory: the second half's peak against the first half's (the first
     * few seconds, while everything warms up, are left out) */
    long warm = seconds / 10, half = seconds / 2, peak1 = 0, peak2 = 0, hpeak1 = 0, hpeak2 = 0;
    for (long s = warm; s < half; s++) {
        peak1 = rss[s] > peak1 ? rss[s] : peak1;
        hpeak1 = heap[s] > hpeak1 ? heap[s] : hpeak1;
    }
    for (long s = half; s < seconds; s++) {
        peak2 = rss[s] > peak2 ? rss[s] : peak2;
        hpeak2 = heap[s] > hpeak2 ? heap[s] : hpeak2;
    }
    bool flat = seconds < 4 || peak2 <= peak1 + peak1 / 10 + 4096;
    bool hflat = seconds < 4 || hpeak2 <= hpeak1 + hpeak1 / 10 + 4096;
    if (!flat)
        violation("memory grew: peak rss %ld KiB in the first half, %ld KiB in the second", peak1,
                  peak2);
    if (!hflat)
        violation("memory grew: peak heap in use %ld KiB in the first half, %ld KiB in the "
                  "second",
                  hpeak1, hpeak2);

    intptr_t sum;
    if (stm_atomically_ro(audit_body, &sum) != 0 || sum != (intptr_t)NACC * INITIAL)
        violation("final audit failed");
    long expect_ticks = seconds * 1000 / 20; /* fewer if periods were skipped */
    if (!(off & 2) && n_ticks < expect_ticks / 4)
        violation("periodic watcher: %ld ticks, expected about %ld", n_ticks, expect_ticks);
    if (!(off & 4) && atomic_load(&n_wakes) == 0)
        violation("no consumer was ever woken by a producer");

    struct stm_stats st;
    stm_stats_get(&st);
    if (st.watch_failures != 0)
        violation("%" PRIu64 " deadline runs of the periodic watcher failed", st.watch_failures);
    printf("soak: done after %ld s: %ld transfers, %ld audits, %ld periodic ticks, %ld mailbox "
           "callbacks, %ld wakes (slowest %.3f ms after its commit), %ld time-outs, %ld waiter "
           "switches; %" PRIu64 " commits, %" PRIu64 " aborts, %" PRIu64 " reclaimed\n",
           seconds, atomic_load(&n_transfers), atomic_load(&n_audits), n_ticks,
           atomic_load(&n_box_cb), atomic_load(&n_wakes), (double)atomic_load(&max_wake_ns) / 1e6,
           atomic_load(&n_timeouts), atomic_load(&n_switches), st.commits, st.aborts, st.reclaimed);
    printf("soak: rss peak %ld KiB (s %ld-%ld), %ld KiB (s %ld-%ld): %s\n", peak1, warm, half - 1,
           peak2, half, seconds - 1, flat ? "flat" : "GREW");
    printf("soak: heap in use peak %ld KiB, then %ld KiB: %s\n", hpeak1, hpeak2,
           hflat ? "flat" : "GREW");
    printf("soak: %ld violations\n", atomic_load(&violations));

    if (wp != NULL) {
        stm_atomically(unwatch_body, wp);
        stm_atomically(unwatch_body, wb);
    }
    for (int i = 0; i < NACC; i++) {
        free((void *)stm_tvar_peek(acc[i].blk));
        stm_tvar_free(acc[i].bal);
        stm_tvar_free(acc[i].blk);
    }
    for (int i = 0; i < NBOX; i++)
        stm_tvar_free(box[i]);
    stm_tvar_free(tick_deadline);
    stm_tvar_free(ticks);
    stm_shutdown();
    free(rss);
    free(heap);
    free(t);
    return atomic_load(&violations) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
