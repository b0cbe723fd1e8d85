/*
 * retry.c - blocking retry: wait registration on TVars and wake-ups.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A retrying transaction puts one wait node on every TVar it read, then
 * checks that none of them changed, then sleeps on its thread's Waiter.
 *
 * The nodes are not in the TVar (it is 16 bytes: stm-internal.h) but in
 * one of STRIPES lists, chosen by the TVar's address, each under its own
 * mutex; the TVar carries a flag, STM__WT, that says "look there".  A
 * committing writer that finds the flag in the lock word it replaced
 * takes the stripe's lock before it lets go of the TVar, wakes the nodes
 * of that TVar, and clears the flag if it found none (so a TVar that was
 * waited on once does not cost its writers a lock for ever).
 *
 * No lost wake-up.  The waiter adds its node (under the stripe lock), then
 * makes sure the flag is set (a CAS on the unlocked lock word), then loads
 * the lock word (seq_cst) and compares it with what it read.  The flag can
 * only be set on an unlocked word, so either it was set before a writer
 * locked the TVar (the writer sees it in the word it replaced and, under
 * the stripe lock, the node), or only after the writer let go (and then
 * the version the waiter compares has moved, and it does not sleep).  A
 * writer that clears the flag does so under the stripe lock, having seen
 * no node: a node added after that sets the flag again, on a version that
 * is already new.  A waiter that leaves clears it the same way (under the
 * stripe lock, having unlinked the TVar's last node, on an unlocked word),
 * so that a TVar waited on once does not cost its next writer a lock.
 *
 * Why lists per stripe, not per TVar: registration happens only on the
 * slow path (the thread is about to sleep), and a list per TVar would need
 * a pointer in every TVar.  The cost is that a writer walks the stripe's
 * list, which holds the nodes of other TVars too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>

#include "stm-internal.h"

#define STRIPES 256

/* Adaptive mutexes (spin a little before sleeping): a woken waiter takes
 * its stripes to leave while the committer that woke it may still hold
 * one, for the moment its notify takes; with plain mutexes the waiter went
 * back to sleep on the stripe (bench/queue: about one extra sleep per
 * retry on a loaded machine). */
static struct {
    _Alignas(STM__CACHELINE) pthread_mutex_t m;
    struct stm__waitnode *head;
} stripes[STRIPES] = {
#define S {STM__MUTEX_ADAPTIVE_INITIALIZER, NULL}
#define S4 S, S, S, S
#define S16 S4, S4, S4, S4
#define S64 S16, S16, S16, S16
    S64, S64, S64, S64
#undef S64
#undef S16
#undef S4
#undef S
};

static inline uint32_t stripe_of(const stm_tvar *var)
{
    uintptr_t a = (uintptr_t)var;
    return (uint32_t)((a >> 4) ^ (a >> 12)) % STRIPES;
}

static void node_unlink(struct stm__waitnode *n)
{
    if (n->next)
        n->next->prev = n->prev;
    if (n->prev)
        n->prev->next = n->next;
    else
        stripes[n->stripe].head = n->next;
    n->next = n->prev = NULL;
}

/* Set STM__WT on var unless it stays locked: false if it does (then the
 * caller must not sleep: the holder may let go without the flag).  A
 * word held by a body (STM__BODY) cannot take the flag (its commit
 * replaces it with a plain store): wait for its commit or its end, which
 * change nothing the waiter read until then, yielding the CPU to it. */
static bool flag_waiting(stm_tvar *var)
{
    for (unsigned spins = 0, yields = 0; spins < 256;) {
        uintptr_t l = atomic_load_explicit(&var->lock, memory_order_seq_cst);
        if (l & STM__WT)
            return true;
        if (!STM__LOCKED(l) &&
            atomic_compare_exchange_weak_explicit(&var->lock, &l, l | STM__WT,
                                                  memory_order_seq_cst, memory_order_relaxed))
            return true;
        if ((l & STM__BODY) && spins >= 64 && yields < 100000) {
            yields++;
            sched_yield();
            continue;
        }
        spins++;
        stm__cpu_relax();
    }
    return false;
}

int stm__retry_register(struct stm_tx *tx)
{
    tx->nodes.n = 0;
    int e = stm__waiter_get(tx);
    if (e < 0)
        return e;
    return stm__retry_register_on(tx);
}

int stm__retry_register_on(struct stm_tx *tx)
{
    tx->nodes.n = 0;
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
        n->next = stripes[n->stripe].head;
        if (n->next)
            n->next->prev = n;
        stripes[n->stripe].head = n;
        pthread_mutex_unlock(&stripes[n->stripe].m);
        if (!flag_waiting(var))
            return 0;
    }
    /* A commit since the reads?  Then run again instead of sleeping. */
    return stm__retry_changed(tx) ? 0 : 1;
}

bool stm__retry_changed(struct stm_tx *tx)
{
    for (uint32_t i = 0; i < tx->rn; i++) {
        uintptr_t l = atomic_load_explicit(&tx->rs[i].var->lock, memory_order_seq_cst);
        /* (a word held by a body hides the unlocked word it replaced) */
        if (!stm__lock_same(stm__lock_seen(l), tx->rs[i].lock))
            return true;
    }
    return false;
}

/* The last node of var is gone (stripe s's lock held): clear STM__WT, as
 * a writer that found no node would, so that var's next writer does not
 * pay for the stripe's lock.  Only on an unlocked word: a writer holding
 * var clears it itself.  A waiter that adds a node later sets the flag
 * again (on a version it then compares), as after a writer's clearing. */
static void flag_clear_if_last(uint32_t s, stm_tvar *var)
{
    for (struct stm__waitnode *n = stripes[s].head; n; n = n->next)
        if (n->var == var)
            return;
    uintptr_t l = atomic_load_explicit(&var->lock, memory_order_relaxed);
    if ((l & STM__WT) && !STM__LOCKED(l))
        atomic_compare_exchange_strong_explicit(&var->lock, &l, l & ~STM__WT,
                                                memory_order_seq_cst, memory_order_relaxed);
}

void stm__retry_unregister(struct stm_tx *tx)
{
    for (uint32_t i = 0; i < tx->nodes.n; i++) {
        struct stm__waitnode *n = &tx->nodes.v[i];
        pthread_mutex_lock(&stripes[n->stripe].m);
        if (n->var) { /* else the TVar's destruction detached it */
            stm_tvar *var = n->var;
            node_unlink(n);
            /* (var is valid: its destruction detaches under this lock) */
            flag_clear_if_last(n->stripe, var);
        }
        pthread_mutex_unlock(&stripes[n->stripe].m);
    }
    tx->nodes.n = 0;
}

/* Wake var's waiters; true if it had any.  The stripe's lock is held. */
static bool notify_locked(uint32_t s, const stm_tvar *var)
{
    bool any = false;
    for (struct stm__waitnode *n = stripes[s].head; n; n = n->next)
        if (n->var == var) {
            n->waiter->ops->notify(n->waiter);
            any = true;
        }
    return any;
}

/* A notify may call a cancellation point (the pipe backend's write(), a
 * user backend's notify): not with a stripe lock held, so cancellation is
 * off around the stripe's lock here and below. */
void stm__waiters_release(stm_tvar *var, uintptr_t nl)
{
    uint32_t s = stripe_of(var);
    int cs = stm__cancel_off();
    pthread_mutex_lock(&stripes[s].m);
    bool any = false;
    for (struct stm__waitnode *n = stripes[s].head; n && !any; n = n->next)
        any = n->var == var;
    atomic_store_explicit(&var->lock, any ? nl | STM__WT : nl, memory_order_release);
    if (any)
        notify_locked(s, var);
    pthread_mutex_unlock(&stripes[s].m);
    stm__cancel_restore(cs);
}

void stm__waiters_wake_all(stm_tvar *var)
{
    if (!(atomic_load_explicit(&var->lock, memory_order_seq_cst) & STM__WT))
        return;
    uint32_t s = stripe_of(var);
    int cs = stm__cancel_off();
    pthread_mutex_lock(&stripes[s].m);
    notify_locked(s, var);
    pthread_mutex_unlock(&stripes[s].m);
    stm__cancel_restore(cs);
}

void stm__waiters_detach(stm_tvar *var)
{
    if (!(atomic_load_explicit(&var->lock, memory_order_seq_cst) & STM__WT))
        return;
    uint32_t s = stripe_of(var);
    int cs = stm__cancel_off();
    pthread_mutex_lock(&stripes[s].m);
    struct stm__waitnode *n = stripes[s].head;
    while (n) {
        struct stm__waitnode *next = n->next;
        if (n->var == var) {
            node_unlink(n);
            n->var = NULL;
            n->waiter->ops->notify(n->waiter);
        }
        n = next;
    }
    pthread_mutex_unlock(&stripes[s].m);
    stm__cancel_restore(cs);
}

/* ---- cancellation ------------------------------------------------------
 * pthread_cancel() of a thread asleep in stm_retry() acts in its Waiter's
 * wait (stm__wait_cancellable).  The backend's and the virtual clock's
 * own handlers have run by the time this one does (innermost first):
 * what is left is the retry's state, which the thread's descriptor must
 * not keep when it is freed at thread exit: the wait nodes linked into
 * the TVars, the wall-clock listing, a settle token.  The attempt is
 * discarded as a wake-up would have discarded it. */
struct retry_cancel {
    struct stm_tx *tx;
    bool listed;
};

static void retry_cancelled(void *arg)
{
    struct retry_cancel *c = arg;
    struct stm_tx *tx = c->tx;
    if (c->listed)
        stm__wall_wait_end(tx->waiter);
    stm__retry_unregister(tx);
    if (tx->fdsaved) /* (stm_fd_ready: the fds were waited on directly) */
        stm__fd_direct_end(tx);
    else if (tx->fdn.n)
        stm__reactor_wait_end(tx);
    stm__allocs_discard(tx, 0);
    if (tx->vtoken)
        stm__vclock_settle(tx);
    tx->restarts = 0;
    stm__count(&tx->st.aborts);
    stm__hooks_run_abort(tx, 0);
}

int stm__retry_sleep(struct stm_tx *tx, int64_t deadline, int64_t real, bool listed)
{
    struct retry_cancel c = {tx, listed};
    volatile int r = 0;
    pthread_cleanup_push(retry_cancelled, &c);
    r = stm__sleep(tx, deadline, real);
    pthread_cleanup_pop(0);
    return r;
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
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, STM__MUTEX_ADAPTIVE);
    for (uint32_t s = 0; s < STRIPES; s++)
        pthread_mutex_init(&stripes[s].m, &a);
    pthread_mutexattr_destroy(&a);
}
