/*
 * elapsed.c - time as a transactional read: stm_tx_now, stm_elapsed and
 * their wall-clock twins.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * An attempt reads each clock at most once, so every call in one attempt
 * agrees.  A deadline that has not come is remembered (the earliest one);
 * stm_atomically turns it into the time-out of the retry wait.  Nothing is
 * undone for a discarded stm_or_else branch, which is what makes a retry
 * of both branches wait for the earliest deadline of either.
 */
#define _GNU_SOURCE
#include "stm-internal.h"

/* The attempt's clocks, for the public function `func` (named by a misuse
 * diagnostic). */
static inline int64_t tx_now(stm_tx *tx, const char *func)
{
    stm__check_tx_ro(tx, func);
    if (!tx->now_valid) {
        tx->now = stm__now();
        tx->now_valid = true;
        tx->extras = 1;
    }
    return tx->now;
}

static inline int64_t tx_wall_now(stm_tx *tx, const char *func)
{
    stm__check_tx_ro(tx, func);
    if (!tx->wall_now_valid) {
        tx->wall_now = stm__wall_ns();
        tx->wall_now_valid = true;
        tx->extras = 1;
    }
    return tx->wall_now;
}

STM_API int64_t stm_tx_now(stm_tx *tx)
{
    return tx_now(tx, "stm_tx_now");
}

STM_API int64_t stm_tx_wall_now(stm_tx *tx)
{
    return tx_wall_now(tx, "stm_tx_wall_now");
}

STM_API bool stm_elapsed(stm_tx *tx, int64_t deadline)
{
    if (tx_now(tx, "stm_elapsed") >= deadline)
        return true;
    if (deadline < tx->deadline)
        tx->deadline = deadline;
    return false;
}

STM_API bool stm_elapsed_wall(stm_tx *tx, int64_t wall_deadline)
{
    if (tx_wall_now(tx, "stm_elapsed_wall") >= wall_deadline)
        return true;
    if (wall_deadline < tx->wall_deadline)
        tx->wall_deadline = wall_deadline;
    return false;
}
