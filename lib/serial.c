/*
 * serial.c - serial (irrevocable) mode, the progress guarantee.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Invisible reads let a long transaction lose forever to short writers.
 * After STM_SERIAL_AFTER conflict restarts in a row, a transaction raises
 * the global serial flag, waits until no other thread is inside a
 * transaction, and runs alone: nothing can commit under it, so it cannot
 * be aborted.  Others see the flag at their start (one load they make
 * anyway) and sleep until it is lowered.
 *
 * The flag and the epochs form a Dekker pair: a starting transaction
 * publishes its epoch and then loads the flag; the serial one stores the
 * flag, issues stm__heavy_barrier(), then reads the epochs.
 */
#define _GNU_SOURCE
#include <sched.h>

#include "stm-internal.h"

static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t serial_cond = PTHREAD_COND_INITIALIZER;
static bool serial_busy;

/* The waits here are short (for a serial transaction to end, for running
 * ones to finish) and made with serial_lock held, or between a begin and
 * its snapshot: not cancellation points. */
void stm__serial_enter(struct stm_tx *tx)
{
    int cs = stm__cancel_off();
    pthread_mutex_lock(&serial_lock);
    while (serial_busy)
        pthread_cond_wait(&serial_cond, &serial_lock);
    serial_busy = true;
    atomic_store_explicit(&stm__g.serial, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&serial_lock);
    stm__heavy_barrier();
    for (;;) {
        bool others = false;
        pthread_mutex_lock(&stm__reg_lock);
        for (struct stm_tx *t = stm__reg_head; t && !others; t = t->reg_next)
            others = t != tx && atomic_load_explicit(&t->epoch, memory_order_seq_cst) != 0;
        pthread_mutex_unlock(&stm__reg_lock);
        if (!others)
            break;
        sched_yield();
    }
    tx->serial = true;
    stm__count(&tx->st.serial_runs);
    stm__cancel_restore(cs);
}

void stm__serial_exit(struct stm_tx *tx)
{
    tx->serial = false;
    pthread_mutex_lock(&serial_lock);
    serial_busy = false;
    atomic_store_explicit(&stm__g.serial, 0, memory_order_release);
    pthread_cond_broadcast(&serial_cond);
    pthread_mutex_unlock(&serial_lock);
}

void stm__serial_wait(void)
{
    int cs = stm__cancel_off();
    pthread_mutex_lock(&serial_lock);
    while (atomic_load_explicit(&stm__g.serial, memory_order_acquire))
        pthread_cond_wait(&serial_cond, &serial_lock);
    pthread_mutex_unlock(&serial_lock);
    stm__cancel_restore(cs);
}
