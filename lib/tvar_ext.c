/*
 * tvar_ext.c - a TVar's side record: what few TVars have (watchers, a
 * name, a conflict count), kept out of the 16-byte TVar.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A TVar gets a record the first time it needs one and keeps it until it
 * is destroyed or freed.  The record takes the TVar's value with it: from
 * then on `value` holds the record's address and STM__XT is set in the
 * lock word (stm-internal.h).  Both changes are made by the holder of the
 * TVar's lock, so a reader either sees the old lock word (and the value in
 * place) or the new one (and the record); a reader that sees a mix fails
 * its seqlock check and reads again.  The version does not change, and
 * validation ignores STM__XT, so transactions that read the TVar before
 * are not disturbed.
 *
 * Why the value moves rather than a pointer being added: the TVar has no
 * third word to hold one, and a hash table keyed by address would cost
 * every commit to a watched TVar a look-up.  The price is one more load
 * when a TVar with a record is read (read_stable() in tx.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "stm-tvar.h"

struct stm__tvx *stm__tvx_alloc(void)
{
    struct stm__tvx *x = stm__calloc(1, sizeof *x);
    if (x == NULL)
        errno = ENOMEM;
    return x;
}

void stm__tvx_install(stm_tvar *var, struct stm__tvx *x)
{
    x->var = var;
    atomic_store_explicit(&x->value, atomic_load_explicit(&var->value, memory_order_relaxed),
                          memory_order_relaxed);
    /* release: a reader that follows the pointer finds the value */
    atomic_store_explicit(&var->value, (intptr_t)x, memory_order_release);
}

struct stm__tvx *stm__tvx_get(stm_tvar *var)
{
    struct stm__tvx *x = NULL;
    for (unsigned spins = 0;; spins++) {
        uintptr_t l = atomic_load_explicit(&var->lock, memory_order_acquire);
        if (l & STM__XT) {
            free(x); /* made by another thread meanwhile */
            return stm__tvx_of(var);
        }
        if (x == NULL && (x = stm__tvx_alloc()) == NULL)
            return NULL;
        /* lock it as a commit would, with the record's address as the
         * owner (nobody looks at it: a locked word only makes others wait) */
        uintptr_t me = ((uintptr_t)x & ~(uintptr_t)7) | 1 | (l & STM__FLAGS);
        if (!STM__LOCKED(l) && atomic_compare_exchange_weak_explicit(&var->lock, &l, me,
                                                                     memory_order_acquire,
                                                                     memory_order_relaxed)) {
            stm__tvx_install(var, x);
            atomic_store_explicit(&var->lock, l | STM__XT, memory_order_release);
            return x;
        }
        if (stm__unhold_own(var, l)) /* (this thread's body wrote it) */
            continue;
        if (spins > 64)
            sched_yield();
        else
            stm__cpu_relax();
    }
}

void stm__tvx_free(struct stm__tvx *x)
{
    if (x == NULL)
        return;
    free(x->name);
    free(x);
}
