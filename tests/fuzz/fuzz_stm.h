/*
 * fuzz_stm.h - the schedule checker shared by the libFuzzer target
 * (fuzz_main.c) and the standalone replay (replay.c).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_FUZZ_STM_H
#define STM_FUZZ_STM_H

#include <stddef.h>
#include <stdint.h>

/* Run one input as a schedule of operations and check it against the
 * model; abort()s with a description on a mismatch.  Returns 0.  Leaves
 * the library as it found it (stm_shutdown() at the end). */
int stm_fuzz_one(const uint8_t *data, size_t size);

/* What the inputs run so far exercised. */
struct stm_fuzz_counts {
    unsigned long ops;             /* operations run */
    unsigned long callbacks;       /* watcher callbacks compared */
    unsigned long deadline_runs;   /* of those expected: deadline runs */
    unsigned long helper_deadline; /* blocked transactions woken by their deadline */
    unsigned long helper_other;    /* ... by a commit, or not blocked at all */
};
extern struct stm_fuzz_counts stm_fuzz_counts;

#endif
