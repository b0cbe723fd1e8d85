/*
 * retry.c - blocking retry: wait registration on TVars and wake-ups.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A retrying transaction puts one wait node on every TVar it read, then
 * checks that none of them changed, then sleeps on its thread's Waiter.
 * A committing writer, after releasing a TVar, loads its `waiters` head;
 * only if it is non-NULL does it take the TVar's stripe lock and notify.
 *
 * No lost wake-up (a Dekker pair, all seq_cst): the waiter stores the head
 * and then loads the lock word; the writer CASes the lock word and later
 * loads the head.  Either the writer sees the node, or the waiter sees the
 * lock held or a new version and does not sleep.
 *
 * Nodes live in the thread's descriptor (reused, grown geometrically); the
 * lists are doubly linked and guarded by one of STRIPES mutexes chosen by
 * the TVar's address, so TVars stay small.  Why not a lock-free list:
 * registration only happens on the slow path (the thread is about to
 * sleep), and the lock keeps unregistration and reclamation simple.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "stm-internal.h"

#define STRIPES 64

static struct {
    _Alignas(STM__CACHELINE) pthread_mutex_t m;
} stripes[STRIPES] = {
#define S PTHREAD_MUTEX_INITIALIZER
#define S4 {S}, {S}, {S}, {S}
#define S16 S4, S4, S4, S4
    S16, S16, S16, S16
#undef S16
#undef S4
#undef S
};

static inline uint32_t stripe_of(const stm_tvar *var)
{
    uintptr_t a = (uintptr_t)var;
    return (uint32_t)((a >> 4) ^ (a >> 10)) % STRIPES;
}

int stm__retry_register(struct stm_tx *tx)
{
    tx->nodes.n = 0;
    int e = stm__waiter_get(tx);
    if (e < 0)
        return e;
    struct stm__waiter *w = tx->waiter;
    if (!STM__VEC_RESERVE(tx->nodes, tx->rn))
        return -ENOMEM;
    w->ops->prepare(w);
    stm_tvar *prev = NULL;
    for (uint32_t i = 0; i < tx->rn; i++) {
        stm_tvar *var = tx->rs[i].var;
        if (var == prev)
            continue; /* a cheap de-duplication of repeated reads */
        prev = var;
        struct stm__waitnode *n = &tx->nodes.v[tx->nodes.n++];
        n->var = var;
        n->waiter = w;
        n->stripe = stripe_of(var);
        n->prev = NULL;
        pthread_mutex_lock(&stripes[n->stripe].m);
        n->next = atomic_load_explicit(&var->waiters, memory_order_relaxed);
        if (n->next)
            n->next->prev = n;
        atomic_store_explicit(&var->waiters, n, memory_order_seq_cst);
        pthread_mutex_unlock(&stripes[n->stripe].m);
    }
    /* A commit since the reads?  Then run again instead of sleeping. */
    for (uint32_t i = 0; i < tx->rn; i++) {
        uintptr_t l = atomic_load_explicit(&tx->rs[i].var->lock, memory_order_seq_cst);
        if (l != tx->rs[i].lock)
            return 0;
    }
    return 1;
}

void stm__retry_unregister(struct stm_tx *tx)
{
    for (uint32_t i = 0; i < tx->nodes.n; i++) {
        struct stm__waitnode *n = &tx->nodes.v[i];
        pthread_mutex_lock(&stripes[n->stripe].m);
        if (n->var) { /* else reclamation detached it */
            if (n->next)
                n->next->prev = n->prev;
            if (n->prev)
                n->prev->next = n->next;
            else
                atomic_store_explicit(&n->var->waiters, n->next, memory_order_relaxed);
        }
        pthread_mutex_unlock(&stripes[n->stripe].m);
    }
    tx->nodes.n = 0;
}

void stm__notify_var(stm_tvar *var)
{
    uint32_t s = stripe_of(var);
    pthread_mutex_lock(&stripes[s].m);
    for (struct stm__waitnode *n = atomic_load_explicit(&var->waiters, memory_order_relaxed); n;
         n = n->next)
        n->waiter->ops->notify(n->waiter);
    pthread_mutex_unlock(&stripes[s].m);
}

void stm__waiters_wake_all(stm_tvar *var)
{
    if (atomic_load_explicit(&var->waiters, memory_order_seq_cst))
        stm__notify_var(var);
}

void stm__waiters_detach(stm_tvar *var)
{
    uint32_t s = stripe_of(var);
    pthread_mutex_lock(&stripes[s].m);
    struct stm__waitnode *n = atomic_load_explicit(&var->waiters, memory_order_relaxed);
    while (n) {
        struct stm__waitnode *next = n->next;
        n->var = NULL;
        n->next = n->prev = NULL;
        n->waiter->ops->notify(n->waiter);
        n = next;
    }
    atomic_store_explicit(&var->waiters, NULL, memory_order_relaxed);
    pthread_mutex_unlock(&stripes[s].m);
}

/* fork(): see fork.c.  A thread of the parent may hold a stripe for a
 * moment while it leaves its wait (outside any transaction, so the fork
 * does not wait for it).  The child gets the stripes unlocked: such a
 * thread does not exist there, and the wait nodes it was unlinking stay
 * valid memory (its descriptor is kept), with a waiter that does nothing.
 * (Holding all the stripes across the fork would be exact, but more locks
 * at once than ThreadSanitizer's deadlock detector can track.) */
void stm__retry_fork(int phase)
{
    if (phase != STM__FORK_CHILD)
        return;
    for (uint32_t s = 0; s < STRIPES; s++)
        pthread_mutex_init(&stripes[s].m, NULL);
}
