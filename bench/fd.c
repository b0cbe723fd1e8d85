/*
 * fd.c - stm_fd_ready benchmarks.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 *   wake   the latency from a write on a socketpair to the moment a thread
 *          waiting for it runs again: a transaction in stm_retry() after
 *          stm_fd_ready() said no, against a thread blocked in poll() on
 *          the same kind of fd, in alternating blocks of the same run
 *          (one hop, measured with CLOCK_MONOTONIC on both sides).
 *   idle   N (default 10000) socketpairs, each waited on by a watcher
 *          whose fn asks stm_fd_ready(POLLIN): the heap (RSS) per
 *          connection added by the library, and the CPU the process
 *          spends in a second at rest.
 *
 * Usage: bench/fd [wake [iterations] | idle [connections]]; no argument
 * runs both.  Timings on a shared machine are noisy: the ratio within one
 * run is what to look at.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <stm.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- wake --------------------------------------------------------------- */

struct hop {
    int in, back; /* the worker reads `in`, answers on `back` */
    bool tx;      /* wait in a transaction, else in poll() */
    int n;
    int64_t *woke; /* when the worker ran again, per iteration */
};

static int wait_readable(stm_tx *tx, void *arg)
{
    if (!stm_fd_ready(tx, *(int *)arg, POLLIN))
        stm_retry(tx);
    return 0;
}

static void *hop_worker(void *arg)
{
    struct hop *h = arg;
    char c;
    for (int i = 0; i < h->n; i++) {
        if (h->tx) {
            if (stm_atomically(wait_readable, &h->in) != 0)
                abort();
        } else {
            struct pollfd p = {h->in, POLLIN, 0};
            while (poll(&p, 1, -1) != 1) {
            }
        }
        h->woke[i] = now_ns();
        if (read(h->in, &c, 1) != 1 || write(h->back, &c, 1) != 1)
            abort();
    }
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* one block of n hops; appends the latencies to lat */
static void block(bool tx, int n, int64_t *lat)
{
    int a[2], b[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, b) != 0)
        abort();
    int64_t *sent = malloc(sizeof *sent * (size_t)n), *woke = malloc(sizeof *woke * (size_t)n);
    struct hop h = {a[1], b[1], tx, n, woke};
    pthread_t th;
    if (!sent || !woke || pthread_create(&th, NULL, hop_worker, &h) != 0)
        abort();
    char c = 'x';
    for (int i = 0; i < n; i++) {
        struct timespec pause = {0, 50 * 1000}; /* let the worker go to sleep */
        nanosleep(&pause, NULL);
        sent[i] = now_ns();
        if (write(a[0], &c, 1) != 1 || read(b[0], &c, 1) != 1)
            abort();
    }
    pthread_join(th, NULL);
    for (int i = 0; i < n; i++)
        lat[i] = woke[i] - sent[i];
    free(sent);
    free(woke);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static void bench_wake(int n)
{
    enum { PAIRS = 5 };
    int per = n / (2 * PAIRS);
    int64_t *tx = malloc(sizeof *tx * (size_t)n), *pl = malloc(sizeof *pl * (size_t)n);
    int nt = 0, np = 0;
    for (int k = 0; k < PAIRS; k++) { /* alternating, so load hits both alike */
        bool tx_first = k % 2 == 0;
        for (int j = 0; j < 2; j++) {
            if (tx_first == (j == 0)) {
                block(true, per, tx + nt);
                nt += per;
            } else {
                block(false, per, pl + np);
                np += per;
            }
        }
    }
    qsort(tx, (size_t)nt, sizeof *tx, cmp64);
    qsort(pl, (size_t)np, sizeof *pl, cmp64);
    printf("wake: socketpair write -> waiter running, one hop, %d + %d samples\n", nt, np);
    printf("  transaction (stm_fd_ready + stm_retry): p50 %6.1f us  p90 %6.1f us  p99 %6.1f us\n",
           tx[nt / 2] / 1e3, tx[nt * 9 / 10] / 1e3, tx[nt * 99 / 100] / 1e3);
    printf("  thread in poll():                        p50 %6.1f us  p90 %6.1f us  p99 %6.1f us\n",
           pl[np / 2] / 1e3, pl[np * 9 / 10] / 1e3, pl[np * 99 / 100] / 1e3);
    printf("  ratio of medians: %.2f (target <= 1.2)\n", (double)tx[nt / 2] / (double)pl[np / 2]);
    free(tx);
    free(pl);
}

/* ---- idle ----------------------------------------------------------------- */

static atomic_long idle_runs;

static intptr_t fn_idle(stm_tx *tx, void *arg)
{
    atomic_fetch_add(&idle_runs, 1);
    return stm_fd_ready(tx, (int)(intptr_t)arg, POLLIN);
}

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int unwatch_body(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

/* n fds waited on, both ends of n / 2 socketpairs (so that 10 000 fit
 * under a limit of 20 000 descriptors, with room for the library's) */
static void bench_idle(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(n + 64)) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)(n + 64) ? rl.rlim_max : (rlim_t)(n + 64);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int *fd = calloc((size_t)n, sizeof *fd);
    stm_watch **w = calloc((size_t)n, sizeof *w);
    int made = 0;
    for (; made + 1 < n; made += 2)
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd + made) != 0)
            break;
    /* warm up the library (its threads, a first watcher) */
    w[0] = stm_atomically_watch(fn_idle, NULL, (void *)(intptr_t)fd[0], 0);
    long before = rss_kb();
    size_t heap0 = mallinfo2().uordblks;
    for (int i = 1; i < made; i++)
        if (!(w[i] = stm_atomically_watch(fn_idle, NULL, (void *)(intptr_t)fd[i], 0)))
            abort();
    long after = rss_kb();
    size_t heap1 = mallinfo2().uordblks;
    double c0 = cpu_s();
    struct timespec one = {1, 0};
    nanosleep(&one, NULL);
    double c1 = cpu_s();
    printf("idle: %d connections (fds), each waited on by a watcher\n", made);
    printf("  RSS per connection: %.0f B\n", (double)(after - before) * 1024.0 / (made - 1));
    printf("  heap per connection (malloc'ed bytes in use, chunk headers included): %.0f B,"
           " the watcher included (STM_WATCH_BYTES says %d for it)\n",
           (double)(heap1 - heap0) / (made - 1), STM_WATCH_BYTES);
    printf("  CPU at rest over 1 s: %.3f ms (target: none)\n", (c1 - c0) * 1e3);
    /* one becomes ready: only its watcher runs */
    long runs0 = atomic_load(&idle_runs);
    if (write(fd[made / 2 + 1], "x", 1) != 1)
        abort();
    for (int k = 0; k < 1000 && atomic_load(&idle_runs) == runs0; k++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    nanosleep(&(struct timespec){0, 10000000}, NULL);
    printf("  one connection ready: %ld watcher run(s)\n", atomic_load(&idle_runs) - runs0);
    for (int i = 0; i < made; i++) {
        stm_atomically(unwatch_body, w[i]);
        close(fd[i]);
    }
    free(fd);
    free(w);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    int n = argc > 2 ? atoi(argv[2]) : 0;
    if (strcmp(what, "wake") == 0 || strcmp(what, "all") == 0)
        bench_wake(n > 0 ? n : 6000);
    if (strcmp(what, "idle") == 0 || strcmp(what, "all") == 0)
        bench_idle(n > 0 ? n : 10000);
    stm_shutdown();
    return 0;
}
