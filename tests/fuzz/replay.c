/*
 * replay.c - run the fuzz target's checker without libFuzzer (make check).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Usage: fuzz_replay [FILE|DIR]...  Runs every file given (every regular
 * file in a directory) through stm_fuzz_one().  With no arguments it runs
 * the committed corpus (STM_FUZZ_CORPUS, the source tree's
 * tests/fuzz/corpus) and then STM_FUZZ_RANDOM seeded random schedules
 * (default 2000, 200 under sanitizers or valgrind or STM_TEST_SMALL=1;
 * STM_FUZZ_SEED repeats a run).  A mismatch aborts with the input printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <check.h>

#include "../testutil.h"
#include "fuzz_stm.h"

static long nrun;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        exit(EXIT_FAILURE);
    }
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    stm_fuzz_one(buf, n);
    nrun++;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(EXIT_FAILURE);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        exit(EXIT_FAILURE);
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        if (names == NULL || asprintf(&names[n], "%s/%s", path, e->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    for (size_t i = 0; i < n; i++) {
        run_file(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            run_path(argv[i]);
        printf("fuzz_replay: %ld inputs checked against the model\n", nrun);
        return EXIT_SUCCESS;
    }
    run_path(STM_FUZZ_CORPUS);
    long corpus = nrun;
    const char *e = getenv("STM_FUZZ_SEED");
    uint64_t seed = e != NULL && *e ? strtoull(e, NULL, 10) : (uint64_t)tu_now_ns() % 1000000007u;
    e = getenv("STM_FUZZ_RANDOM");
    long nrandom = e != NULL && *e ? atol(e) : TU_SCALE(2000, 200);
    printf("fuzz_replay: seed %" PRIu64 " (set STM_FUZZ_SEED to repeat)\n", seed);
    fflush(stdout);
    uint64_t rng = tu_seed(seed);
    uint8_t buf[600];
    for (long i = 0; i < nrandom; i++) {
        size_t n = 3 * (1 + tu_rand_below(&rng, 150));
        for (size_t j = 0; j < n; j++)
            buf[j] = (uint8_t)tu_rand(&rng);
        stm_fuzz_one(buf, n);
        nrun++;
    }
    printf("fuzz_replay: %ld corpus inputs and %ld random schedules checked against the model\n",
           corpus, nrun - corpus);
    printf("fuzz_replay: %lu operations, %lu watcher callbacks (%lu deadline runs), %lu blocked "
           "transactions ended by their deadline, %lu otherwise\n",
           stm_fuzz_counts.ops, stm_fuzz_counts.callbacks, stm_fuzz_counts.deadline_runs,
           stm_fuzz_counts.helper_deadline, stm_fuzz_counts.helper_other);
    return EXIT_SUCCESS;
}
