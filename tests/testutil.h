/*
 * testutil.h - small helpers shared by the Check suites in tests/.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Every test file defines _GNU_SOURCE before including anything, then
 * includes <check.h> and this header.  Keep this file small; append new
 * helpers at the end rather than changing existing ones (several suites
 * share it).
 */
#ifndef STM_TESTUTIL_H
#define STM_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Monotonic clock in nanoseconds, independent of the library. */
static inline int64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/* Sleep for `ms` milliseconds (restarting after signals). */
static inline void tu_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Start a joinable thread; fails the test if it cannot be created. */
static inline pthread_t tu_run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, arg);
    ck_assert_msg(rc == 0, "pthread_create: %s", strerror(rc));
    return t;
}

/* Join a thread started with tu_run_thread(); returns its result. */
static inline void *tu_join(pthread_t t)
{
    void *res = NULL;
    int rc = pthread_join(t, &res);
    ck_assert_msg(rc == 0, "pthread_join: %s", strerror(rc));
    return res;
}

/*
 * Wait until *p >= min, polling every millisecond, for at most
 * `timeout_ms`.  Returns whether the condition came true.  Use it for
 * handshakes between threads: the condition, not the delay, decides.
 */
static inline bool tu_wait_atleast(atomic_int *p, int min, long timeout_ms)
{
    int64_t end = tu_now_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(p) < min) {
        if (tu_now_ns() > end)
            return false;
        tu_sleep_ms(1);
    }
    return true;
}

/* Wait until *a >= amin or *b >= bmin (as tu_wait_atleast). */
static inline bool tu_wait_either(atomic_int *a, int amin, atomic_int *b, int bmin,
                                  long timeout_ms)
{
    int64_t end = tu_now_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(a) < amin && atomic_load(b) < bmin) {
        if (tu_now_ns() > end)
            return false;
        tu_sleep_ms(1);
    }
    return true;
}

/* Generous bound for handshakes (the CI machine is shared). */
#define TU_HANDSHAKE_MS 10000L

/*
 * TU_SUITE_MAIN(make_suite): a main() that runs the suite made by
 * `Suite *make_suite(void)` and exits with EXIT_FAILURE if any test failed.
 */
#define TU_SUITE_MAIN(make_suite)                                                                  \
    int main(void)                                                                                 \
    {                                                                                              \
        SRunner *sr_ = srunner_create(make_suite());                                               \
        srunner_run_all(sr_, CK_NORMAL);                                                           \
        int failed_ = srunner_ntests_failed(sr_);                                                  \
        srunner_free(sr_);                                                                         \
        return failed_ == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                                         \
    }

/* Run a suite from an existing main(); returns the exit status. */
static inline int tu_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- helpers for the stress suites (check_bank.c, check_opacity.c, ...) ----
 *
 * The stress suites run the normal iteration counts of the issue in a plain
 * build and smaller ones where everything is much slower: under
 * ThreadSanitizer or AddressSanitizer, under valgrind, or when
 * STM_TEST_SMALL=1 is set in the environment. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif

/* Whether to use the small iteration counts (see above). */
static inline bool tu_small_run(void)
{
    if (TU_TSAN || TU_ASAN)
        return true;
    const char *e = getenv("STM_TEST_SMALL");
    if (e != NULL && *e != '\0' && strcmp(e, "0") != 0)
        return true;
    const char *pre = getenv("LD_PRELOAD"); /* valgrind preloads vgpreload_*.so */
    return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

/* `normal` in a plain build, `small` under sanitizers or valgrind. */
#define TU_SCALE(normal, small) (tu_small_run() ? (small) : (normal))

/* xorshift64*: a per-thread pseudo-random generator; *s must not be 0. */
static inline uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

/* A seed for tu_rand() from a small integer (never 0). */
static inline uint64_t tu_seed(uint64_t n)
{
    return (n + 1) * UINT64_C(0x9E3779B97F4A7C15) | 1;
}

/* A uniformly-ish distributed integer in [0, n). */
static inline uint32_t tu_rand_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)((tu_rand(s) >> 32) % n);
}

/* Busy work that the compiler cannot remove: about `n` loop iterations. */
static inline void tu_busy(unsigned n)
{
    volatile unsigned sink = 0;
    for (unsigned i = 0; i < n; i++)
        sink = sink + i;
    (void)sink;
}

/* Spin (no sleep) for at least `ns` nanoseconds of wall time. */
static inline void tu_spin_ns(int64_t ns)
{
    int64_t end = tu_now_ns() + ns;
    while (tu_now_ns() < end) {
    }
}

/* Online CPUs (at least 1). */
static inline int tu_ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

/* Like tu_wait_atleast() for an atomic_long counter. */
static inline bool tu_wait_atleast_long(atomic_long *p, long min, long timeout_ms)
{
    int64_t end = tu_now_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(p) < min) {
        if (tu_now_ns() > end)
            return false;
        tu_sleep_ms(1);
    }
    return true;
}

/* ---- helpers for the time suites (check_time.c, check_vclock.c) ----
 *
 * The library gives no hook that says "this thread is now asleep in
 * stm_retry()".  Where a test needs it (ties broken by the order the waits
 * began, or a clock change that must find the thread waiting), it waits
 * for the thread's attempt counter and then for the kernel to report the
 * thread asleep: state S in /proc/self/task/TID/stat on several polls in a
 * row.  A thread that is between its body and its sleep is running (R), so
 * once it is seen asleep, and stays so, it is in its wait. */
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/types.h>

/* The calling thread's kernel id. */
static inline pid_t tu_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* The state letter of thread `tid` of this process (R, S, D, ...), or 0. */
static inline char tu_thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold ')' */
    return (p != NULL && p[1] == ' ') ? p[2] : 0;
}

/* Wait (at most `timeout_ms`) until thread `tid` is seen asleep (S) on
 * five polls in a row, 1 ms apart.  Returns whether it was. */
static inline bool tu_wait_asleep(pid_t tid, long timeout_ms)
{
    int64_t end = tu_now_ns() + (int64_t)timeout_ms * 1000000;
    int seen = 0;
    while (seen < 5) {
        if (tu_now_ns() > end)
            return false;
        seen = tu_thread_state(tid) == 'S' ? seen + 1 : 0;
        tu_sleep_ms(1);
    }
    return true;
}

/* Open file descriptors of this process (entries of /proc/self/fd, not
 * counting the one used to read it), or -1. */
static inline int tu_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/*
 * Embedded TVars.  Built with -DSTM_TEST_EMBEDDED (tests/embedded.mk: every
 * suite a second time), the suites' stm_tvar_new() and stm_tvar_free() make
 * and end TVars that live inside a larger block, between two guard words,
 * as a TVar in a program's own struct would: made with stm_tvar_init(),
 * ended with stm_tvar_destroy() and stm_free() in a transaction (nested in
 * the caller's, if it runs one).  The guards must be intact at the end: the
 * library never writes outside the 16 bytes it was given.
 */
#ifdef STM_TEST_EMBEDDED
#include <stm.h>

#define TU_GUARD UINT64_C(0x5ca1ab1e0ddba11)
struct tu_embedded {
    uint64_t head;
    stm_tvar var;
    uint64_t tail;
};

static inline stm_tvar *tu_tvar_new(intptr_t initial)
{
    struct tu_embedded *b = malloc(sizeof *b);
    if (b == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    b->head = b->tail = TU_GUARD;
    stm_tvar_init(&b->var, initial);
    return &b->var;
}

static inline int tu_tvar_end(stm_tx *tx, void *arg)
{
    struct tu_embedded *b = arg;
    stm_tvar_destroy(&b->var);
    stm_free(tx, b);
    return 0;
}

static inline void tu_tvar_free(stm_tvar *var)
{
    if (var == NULL)
        return;
    struct tu_embedded *b =
        (struct tu_embedded *)(void *)((char *)var - offsetof(struct tu_embedded, var));
    /* (no ck_assert: this may run outside a test, e.g. at exit) */
    if (b->head != TU_GUARD || b->tail != TU_GUARD) {
        fprintf(stderr, "the library wrote outside an embedded TVar\n");
        abort();
    }
    int rc = stm_atomically(tu_tvar_end, b);
    if (rc != 0) {
        fprintf(stderr, "ending an embedded TVar: %d\n", rc);
        abort();
    }
}

#define stm_tvar_new(initial) tu_tvar_new(initial)
#define stm_tvar_free(var) tu_tvar_free(var)
#endif

/* Run this program again (in a child, after fork()) with `argv`: execv()
 * of the path /proc/self/exe names, resolved first, so that it works under
 * valgrind too (where /proc/self/exe is valgrind's tool; its readlink() is
 * the program's path).  The re-run is not under valgrind: its LD_PRELOAD
 * of valgrind's libraries is dropped.  Returns only on failure. */
static inline void tu_exec_self(char *const argv[])
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return;
    self[n] = '\0';
    const char *pre = getenv("LD_PRELOAD");
    if (pre != NULL && strstr(pre, "vgpreload") != NULL)
        unsetenv("LD_PRELOAD");
    execv(self, argv);
}

/* ---- fork() ---------------------------------------------------------- */

/* A check in a forked child (Check's asserts belong to the parent): on
 * failure, say where and exit with status 10. */
#define TU_CHILD_CHECK(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child: %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
            _exit(10);                                                                             \
        }                                                                                          \
    } while (0)

/* Wait for the child at most `ms`: its exit status (128 + the signal if
 * one ended it), or -1 if it hung (it is killed). */
static inline int tu_reap(pid_t pid, int64_t ms)
{
    int64_t end = tu_now_ns() + ms * 1000000;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (tu_now_ns() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        tu_sleep_ms(1);
    }
}

#endif /* STM_TESTUTIL_H */
