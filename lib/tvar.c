/*
 * tvar.c - TVar lifecycle: new, init, destroy, free, names, peek, poke.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A heap TVar (stm_tvar_new) is a 16-byte block holding an embedded one;
 * the two kinds differ only in who owns the memory.  Names live in the
 * TVar's side record (tvar_ext.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"

/* Named TVars, for the statistics report: a table of records with O(1)
 * removal (the last entry moves into the hole, and its name_slot follows
 * it). */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stm__tvx **names;
static uint32_t names_n, names_cap;

STM_API void stm_tvar_init(stm_tvar *var, intptr_t initial)
{
    if (var == NULL)
        stm__misuse("stm_tvar_init", "the TVar is NULL");
    atomic_init(&var->lock, 0);
    atomic_init(&var->value, initial);
}

STM_API stm_tvar *stm_tvar_new(intptr_t initial)
{
    struct stm_tx *tx = stm__self;
    if (tx && stm__active == tx) {
        /* inside a body: freed again unless the attempt commits */
        stm_tvar *var = stm_alloc(tx, sizeof *var);
        stm_tvar_init(var, initial);
        return var;
    }
    stm_tvar *var = stm__malloc(sizeof *var);
    if (var == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    stm_tvar_init(var, initial);
    return var;
}

static void names_remove_locked(struct stm__tvx *x)
{
    if (x->name_slot == 0)
        return;
    uint32_t i = x->name_slot - 1;
    names[i] = names[--names_n];
    names[i]->name_slot = i + 1;
    x->name_slot = 0;
}

struct stm__tvx *stm__tvar_retire(stm_tvar *var, const char *func)
{
    struct stm__tvx *x = stm__tvx_peek(var);
    if (x && atomic_load_explicit(&x->watchers, memory_order_acquire))
        stm__misuse(func, "the TVar is still read by an active watcher (stm_unwatch it first)");
    stm__waiters_detach(var);
    if (x) {
        pthread_mutex_lock(&names_lock);
        names_remove_locked(x);
        pthread_mutex_unlock(&names_lock);
    }
    return x;
}

/* A heap TVar's final free, after the grace period. */
void stm__tvar_reclaim(stm_tvar *var)
{
    stm__tvx_free(stm__tvar_retire(var, "stm_tvar_free"));
    free(var);
}

/* stm_tvar_free() takes effect (at the call, or at the commit of the
 * transaction that made it): a watched TVar is a misuse; wake the threads
 * blocked in stm_retry() on it. */
void stm__tvar_freed(stm_tvar *var)
{
    struct stm__tvx *x = stm__tvx_peek(var);
    if (x && atomic_load_explicit(&x->watchers, memory_order_acquire))
        stm__misuse("stm_tvar_free", "the TVar is still read by an active watcher "
                                     "(stm_unwatch it first)");
    stm__waiters_wake_all(var);
}

STM_API void stm_tvar_free(stm_tvar *var)
{
    if (var == NULL)
        return;
    struct stm_tx *tx = stm__self;
    if (tx && stm__active == tx) {
        /* inside a transaction: only if it commits, stamped with its time */
        stm__frees_push(tx, var, STM__FREE_TVAR);
        return;
    }
    if (tx && stm__ro == tx)
        stm__check_tx_slow(tx, "stm_tvar_free"); /* falls back to a normal transaction */
    stm__tvar_freed(var);
    if (tx == NULL)
        tx = stm__thread_init(); /* NULL: freed synchronously */
    else
        stm__global_init();
    stm__limbo_push(tx, var, STM__FREE_TVAR,
                    atomic_load_explicit(&stm__g.clock, memory_order_acquire));
}

/* stm_tvar_destroy's work, now or at the commit of the transaction that
 * called it: the record goes after the grace period. */
void stm__tvar_destroy_now(struct stm_tx *tx, stm_tvar *var, uint64_t stamp)
{
    struct stm__tvx *x = stm__tvar_retire(var, "stm_tvar_destroy");
    if (x)
        stm__limbo_push(tx, x, STM__FREE_TVX, stamp);
}

STM_API void stm_tvar_destroy(stm_tvar *var)
{
    if (var == NULL)
        return;
    struct stm_tx *tx = stm__self;
    if (tx && stm__active == tx) {
        stm__frees_push(tx, var, STM__DESTROY_TVAR);
        return;
    }
    if (tx && stm__ro == tx)
        stm__check_tx_slow(tx, "stm_tvar_destroy"); /* falls back to a normal transaction */
    if (tx == NULL)
        tx = stm__thread_init(); /* NULL: freed synchronously */
    else
        stm__global_init();
    stm__tvar_destroy_now(tx, var, atomic_load_explicit(&stm__g.clock, memory_order_acquire));
}

STM_API int stm_tvar_set_name(stm_tvar *var, const char *name)
{
    if (var == NULL)
        return -EINVAL;
    char *copy = NULL;
    if (name) {
        size_t len = strlen(name) + 1;
        copy = stm__malloc(len);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, name, len);
    }
    struct stm__tvx *x = copy ? stm__tvx_get(var) : stm__tvx_peek(var);
    if (x == NULL) {
        int rc = copy ? -ENOMEM : 0; /* (no record: no name to remove) */
        free(copy);
        return rc;
    }
    pthread_mutex_lock(&names_lock);
    if (copy && x->name_slot == 0) {
        if (!stm__grow((void **)&names, &names_cap, sizeof *names, names_n + 1)) {
            pthread_mutex_unlock(&names_lock);
            free(copy);
            return -ENOMEM;
        }
        names[names_n++] = x;
        x->name_slot = names_n;
    } else if (!copy) {
        names_remove_locked(x);
    }
    char *old = x->name;
    x->name = copy;
    pthread_mutex_unlock(&names_lock);
    free(old);
    return 0;
}

STM_API const char *stm_tvar_name(stm_tvar *var)
{
    if (var == NULL)
        stm__misuse("stm_tvar_name", "the TVar is NULL");
    struct stm__tvx *x = stm__tvx_peek(var);
    if (x == NULL)
        return NULL;
    pthread_mutex_lock(&names_lock);
    const char *n = x->name;
    pthread_mutex_unlock(&names_lock);
    return n;
}

STM_API intptr_t stm_tvar_peek(stm_tvar *var)
{
    if (var == NULL)
        stm__misuse("stm_tvar_peek", "the TVar is NULL");
    for (;;) {
        uintptr_t l1 = atomic_load_explicit(&var->lock, memory_order_acquire);
        intptr_t v = atomic_load_explicit(&var->value, memory_order_acquire);
        if (l1 & STM__XT)
            v = atomic_load_explicit(&((struct stm__tvx *)v)->value, memory_order_acquire);
        uintptr_t l2 = atomic_load_explicit(&var->lock, memory_order_relaxed);
        if (l1 == l2 && !STM__LOCKED(stm__lock_seen(l1)))
            return v;
        stm__cpu_relax();
    }
}

struct poke {
    stm_tvar *var;
    intptr_t value;
    bool committed;
};

static void poke_committed(void *arg)
{
    ((struct poke *)arg)->committed = true;
}

static int poke_fn(stm_tx *tx, void *arg)
{
    struct poke *p = arg;
    stm_write(tx, p->var, p->value);
    stm_after_commit(tx, poke_committed, p);
    return 0;
}

STM_API int stm_tvar_poke(stm_tvar *var, intptr_t value)
{
    if (var == NULL)
        return -EINVAL;
    struct stm_tx *tx = stm__self;
    if (tx && stm__in_body(tx)) {
        stm_write(tx, var, value); /* joins the enclosing transaction */
        return 0;
    }
    struct poke p = {var, value, false};
    int r = stm_atomically(poke_fn, &p);
    if (p.committed)
        return 0;
    /* Not written: out of memory, a watcher cascade that did not settle,
     * or a watcher's veto.  A veto's code is the watcher's choice: a
     * negative one (an errno value) is returned as it is, any other (0 or
     * positive, which would pass for success, or INT_MIN) as -ECANCELED,
     * as stm_atomically_watch() reports them. */
    return r < 0 && r != INT_MIN ? r : -ECANCELED;
}

/* Top named TVars by conflicts, for the STM_STATS report. */
void stm__names_report(void *file)
{
    FILE *f = file;
    pthread_mutex_lock(&names_lock);
    struct stm__tvx *top[10] = {0};
    for (uint32_t i = 0; i < names_n; i++) {
        struct stm__tvx *v = names[i];
        uint32_t c = atomic_load_explicit(&v->conflicts, memory_order_relaxed);
        if (c == 0)
            continue;
        for (int k = 0; k < 10; k++) {
            if (!top[k] || c > atomic_load_explicit(&top[k]->conflicts, memory_order_relaxed)) {
                memmove(&top[k + 1], &top[k], (size_t)(9 - k) * sizeof top[0]);
                top[k] = v;
                break;
            }
        }
    }
    for (int k = 0; k < 10 && top[k]; k++)
        fprintf(f, "libstm:   conflicts %10u  %s\n",
                (unsigned)atomic_load_explicit(&top[k]->conflicts, memory_order_relaxed),
                top[k]->name);
    pthread_mutex_unlock(&names_lock);
}

void stm__names_clear(void)
{
    pthread_mutex_lock(&names_lock);
    for (uint32_t i = 0; i < names_n; i++)
        names[i]->name_slot = 0;
    free(names);
    names = NULL;
    names_n = names_cap = 0;
    pthread_mutex_unlock(&names_lock);
}
