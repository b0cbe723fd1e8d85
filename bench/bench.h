/*
 * bench.h - tiny helpers shared by the benchmarks: a clock, a compiler
 * barrier, median/min of a sample, and the one-line result format.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Header-only (everything static) so that each benchmark is one .c file.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keep the compiler from moving memory accesses across this point or
 * dropping a computed value. */
#define BENCH_BARRIER() __asm__ __volatile__("" ::: "memory")
#define BENCH_KEEP(x) __asm__ __volatile__("" : : "r"(x) : "memory")

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n-1] (n >= 1); v is left untouched. */
static inline double bench_median(const double *v, size_t n)
{
    double *tmp = malloc(n * sizeof *tmp), m;
    if (!tmp) {
        perror("malloc");
        exit(1);
    }
    memcpy(tmp, v, n * sizeof *v);
    qsort(tmp, n, sizeof *tmp, bench_cmp_double);
    m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2.0;
    free(tmp);
    return m;
}

/* Smallest of v[0..n-1] (n >= 1). */
static inline double bench_min(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

/* Parse a positive count ("3000000", "3e6", "3M"); exits on nonsense. */
static inline long bench_parse_count(const char *opt, const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end != s && (*end == 'k' || *end == 'K'))
        v *= 1e3, end++;
    else if (end != s && (*end == 'm' || *end == 'M'))
        v *= 1e6, end++;
    if (end == s || *end != '\0' || !(v >= 1) || v > 1e12) {
        fprintf(stderr, "bad value for %s: '%s'\n", opt, s);
        exit(2);
    }
    return (long)v;
}

/* -s / -w: "0" (polling off) or a spin window in ns for stm_set_wake_spin();
 * without the option the library's default, STM_WAKE_SPIN_AUTO, applies. */
static inline long bench_parse_spin(const char *opt, const char *s)
{
    return strcmp(s, "0") == 0 ? 0 : bench_parse_count(opt, s);
}

/*
 * One machine-readable result line:
 *   <bench> <case> ns=<median> min=<min> vs_<base>=<ratio> [cyc=<cycles>]
 *   rounds=<r> ops=<n>
 * A ratio <= 0 (no baseline measured) prints as "na"; cycles <= 0 (clock
 * not calibrated) are left out.
 */
static inline void bench_line(const char *bench, const char *name, double med, double min,
                              const char *base, double ratio, double cycles, int rounds, long ops)
{
    printf("%s %s ns=%.2f min=%.2f", bench, name, med, min);
    if (ratio > 0)
        printf(" vs_%s=%.2f", base, ratio);
    else
        printf(" vs_%s=na", base);
    if (cycles > 0)
        printf(" cyc=%.0f", cycles);
    printf(" rounds=%d ops=%ld\n", rounds, ops);
    fflush(stdout);
}

#endif
