/*
 * fd.c - stm_fd_ready benchmarks.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 *   wake   the latency from a write on a socketpair to the moment a thread
 *          waiting for it runs again: a transaction in stm_retry() after
 *          stm_fd_ready() said no (alone, and with a TVar read too, as a
 *          stop flag), against a thread blocked in poll() on the same kind
 *          of fd, in rounds of one block of each, in rotating order (one
 *          hop, measured with CLOCK_MONOTONIC on both sides, each write
 *          made once /proc says the waiter is blocked); the ratio is taken
 *          within each round, its median reported.
 *   idle   N (default 10000) socketpairs, each waited on by a watcher
 *          whose fn asks stm_fd_ready(POLLIN): the heap (RSS) per
 *          connection added by the library, and, over a second at rest,
 *          the CPU the process spends and how often the library's
 *          threads wake (context switches, from /proc/self/task).
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
#include <dirent.h>
#include <sys/resource.h>
#include <sys/syscall.h>
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
    int mode;     /* WAIT_POLL, WAIT_TX or WAIT_TX_TVAR */
    int n;
    int64_t *woke;   /* when the worker ran again, per iteration */
    atomic_long tid; /* the worker's thread id, once it runs */
};

enum { WAIT_POLL, WAIT_TX, WAIT_TX_TVAR, WAIT_MODES };

static stm_tvar *stop_flag; /* read, never set: a reconnect loop's stop flag */

static int wait_readable(stm_tx *tx, void *arg)
{
    if (!stm_fd_ready(tx, *(int *)arg, POLLIN))
        stm_retry(tx);
    return 0;
}

static int wait_readable_or_stop(stm_tx *tx, void *arg)
{
    if (stm_read(tx, stop_flag) == 0 && !stm_fd_ready(tx, *(int *)arg, POLLIN))
        stm_retry(tx);
    return 0;
}

static void *hop_worker(void *arg)
{
    struct hop *h = arg;
    char c;
    atomic_store(&h->tid, (long)syscall(SYS_gettid));
    for (int i = 0; i < h->n; i++) {
        if (h->mode == WAIT_TX) {
            if (stm_atomically(wait_readable, &h->in) != 0)
                abort();
        } else if (h->mode == WAIT_TX_TVAR) {
            if (stm_atomically(wait_readable_or_stop, &h->in) != 0)
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

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* whether thread tid is blocked (state S in /proc) */
static bool asleep(long tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return true; /* (no /proc: rely on the pause) */
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = '\0';
    char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] == 'S';
}

/* one block of n hops; writes the latencies to lat, returns their median */
static int64_t block(int mode, int n, int64_t *lat)
{
    int a[2], b[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, b) != 0)
        abort();
    int64_t *sent = malloc(sizeof *sent * (size_t)n), *woke = malloc(sizeof *woke * (size_t)n);
    struct hop h = {a[1], b[1], mode, n, woke, 0};
    pthread_t th;
    if (!sent || !woke || pthread_create(&th, NULL, hop_worker, &h) != 0)
        abort();
    char c = 'x';
    for (int i = 0; i < n; i++) {
        /* let the worker go to sleep: the latency is a blocked waiter's */
        struct timespec pause = {0, 50 * 1000};
        nanosleep(&pause, NULL);
        for (int k = 0; k < 1000 && !(atomic_load(&h.tid) && asleep(atomic_load(&h.tid))); k++)
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
    int64_t *s = malloc(sizeof *s * (size_t)n);
    if (!s)
        abort();
    memcpy(s, lat, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, cmp64);
    int64_t med = s[n / 2];
    free(s);
    return med;
}

static void report(const char *what, int64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp64);
    printf("  %-40s p50 %6.1f us  p90 %6.1f us  p99 %6.1f us\n", what, v[n / 2] / 1e3,
           v[n * 9 / 10] / 1e3, v[n * 99 / 100] / 1e3);
}

/* ROUNDS rounds; each runs one block of every mode, in a rotating order
 * (so that load hits them alike); the ratio of a transaction mode to
 * poll() is taken within each round (block median over block median),
 * and the median of those ratios is reported. */
static void bench_wake(int n)
{
    enum { ROUNDS = 9 };
    int per = n / (WAIT_MODES * ROUNDS);
    if (per < 10)
        per = 10;
    stop_flag = stm_tvar_new(0);
    int64_t *lat[WAIT_MODES];
    double ratio[WAIT_MODES][ROUNDS];
    for (int m = 0; m < WAIT_MODES; m++)
        if (!(lat[m] = malloc(sizeof *lat[m] * (size_t)per * ROUNDS)))
            abort();
    for (int k = 0; k < ROUNDS; k++) {
        int64_t med[WAIT_MODES];
        for (int j = 0; j < WAIT_MODES; j++) {
            int m = (j + k) % WAIT_MODES;
            med[m] = block(m, per, lat[m] + (size_t)k * per);
        }
        for (int m = 0; m < WAIT_MODES; m++)
            ratio[m][k] = (double)med[m] / (double)med[WAIT_POLL];
    }
    printf("wake: socketpair write -> waiter running, one hop; %d rounds of a block of %d"
           " per kind\n",
           ROUNDS, per);
    report("thread in poll():", lat[WAIT_POLL], per * ROUNDS);
    report("transaction (stm_fd_ready + stm_retry):", lat[WAIT_TX], per * ROUNDS);
    report("... which also read a TVar:", lat[WAIT_TX_TVAR], per * ROUNDS);
    for (int m = WAIT_TX; m < WAIT_MODES; m++) {
        qsort(ratio[m], ROUNDS, sizeof ratio[m][0], cmpd);
        printf("  %s / poll(): median of the %d per-round ratios %.2f (min %.2f, max %.2f)%s\n",
               m == WAIT_TX ? "transaction" : "with a TVar", ROUNDS, ratio[m][ROUNDS / 2],
               ratio[m][0], ratio[m][ROUNDS - 1], m == WAIT_TX ? " (target <= 1.2)" : "");
    }
    for (int m = 0; m < WAIT_MODES; m++)
        free(lat[m]);
    stm_tvar_free(stop_flag);
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

/* context switches of the process's threads but the calling one: how
 * often the library's threads woke */
static long other_switches(void)
{
    long total = 0;
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    struct dirent *e;
    char path[300], line[128];
    long self = (long)syscall(SYS_gettid);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atol(e->d_name) == self)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f)) {
            long v;
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
                total += v;
        }
        fclose(f);
    }
    closedir(d);
    return total;
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
    long s0 = other_switches();
    double c0 = cpu_s();
    struct timespec one = {1, 0};
    nanosleep(&one, NULL);
    double c1 = cpu_s();
    long s1 = other_switches();
    printf("idle: %d connections (fds), each waited on by a watcher\n", made);
    printf("  RSS per connection: %.0f B\n", (double)(after - before) * 1024.0 / (made - 1));
    printf("  heap per connection (malloc'ed bytes in use, chunk headers included): %.0f B,"
           " the watcher included (STM_WATCH_BYTES says %d for it)\n",
           (double)(heap1 - heap0) / (made - 1), STM_WATCH_BYTES);
    printf("  CPU at rest over 1 s: %.3f ms, the measuring thread's own included;"
           " wake-ups of the library's threads: %ld (target: none)\n",
           (c1 - c0) * 1e3, s1 - s0);
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
