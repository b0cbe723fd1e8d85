/*
 * watch_apply.c - what a commit with watchers changes in them: their
 * registrations on TVars and their timers, prepared before the commit
 * locks anything, applied while it holds every lock, finished after.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Preparation: for each watcher run of the commit, the TVars fn read
 * (sorted, no duplicates) are compared with those the watcher is
 * registered on (read like a seqlock under its own TVar's version).  If
 * they differ, new registrations are allocated, and every TVar that gains
 * or loses the watcher (all it reads, when its registrations move to a new
 * array) is added to the write set as "lock only": a TVar's list changes
 * only with its lock held.  Timer-heap room is reserved, so that arming a
 * timer with the locks held cannot fail.  Stopped watchers lock every TVar
 * they are registered on.
 *
 * After the commit, stopped watchers are finished (watch.c) and replaced
 * registration arrays go to epoch reclamation.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"
#include "watch.h"

/* ---- preparation ------------------------------------------------------- */

/* Read the TVars w is registered on into x->tmp, consistently with the
 * version of w's TVar (as stm__registered_same()). */
static void read_registered(struct stm_tx *tx, struct stm__watchtx *x, struct stm_watch *w)
{
    for (unsigned spins = 0;; spins++) {
        uintptr_t l1 = atomic_load_explicit(&w->self.lock, memory_order_acquire);
        if (!STM__LOCKED(stm__lock_seen(l1))) { /* (held by a body: not changed yet) */
            struct stm__wdep *d = atomic_load_explicit(&w->deps, memory_order_acquire);
            uint32_t on = d ? atomic_load_explicit(&w->ndeps, memory_order_acquire) : 0;
            if (!STM__VEC_RESERVE(x->tmp, on))
                stm__nomem(tx);
            /* (acquire loads: the lock word below is read after them) */
            for (uint32_t i = 0; i < on; i++)
                x->tmp.v[i] = atomic_load_explicit(&d[i].var, memory_order_acquire);
            if (atomic_load_explicit(&w->self.lock, memory_order_relaxed) == l1) {
                x->tmp.n = on;
                return;
            }
        }
        if (spins > 256)
            stm__conflict(tx, &w->self); /* held by a commit that runs or stops w */
        stm__cpu_relax();
    }
}

/* Add var to the write set as "lock only" (entries past x->data_n). */
static void lock_only(struct stm_tx *tx, stm_tvar *var)
{
    if (stm__ws_has(tx, var))
        return;
    stm__ws_reserve1(tx);
    struct stm__wentry *e = &tx->ws[tx->wn++];
    e->var = var;
    e->value = 0;
    e->old = 0; /* locked by the commit */
    tx->wbloom |= stm__bloom_bit(var);
}

/* Side records for those of the n TVars at nv that have none, set aside
 * for record_locked(): a watcher's registration needs one, and nothing
 * may be allocated once the commit holds its locks.  (A TVar cannot lose
 * its record, so what is set aside now is enough then.) */
static void reserve_records(struct stm_tx *tx, struct stm__watchtx *x, stm_tvar *const *nv,
                            uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (!(atomic_load_explicit(&nv[i]->lock, memory_order_acquire) & STM__XT))
            x->spare_need++;
    while (x->spare.n < x->spare_need) {
        if (!STM__VEC_RESERVE(x->spare, x->spare.n + 1))
            stm__nomem(tx);
        struct stm__tvx *r = stm__tvx_alloc();
        if (r == NULL)
            stm__nomem(tx);
        x->spare.v[x->spare.n++] = r;
    }
}

/* Every TVar in exactly one of old (x->tmp) and new (sorted). */
static void lock_difference(struct stm_tx *tx, struct stm__watchtx *x, stm_tvar *const *nv,
                            uint32_t nn)
{
    uint32_t i = 0, j = 0, on = x->tmp.n;
    while (i < on || j < nn) {
        stm_tvar *a = i < on ? x->tmp.v[i] : NULL, *b = j < nn ? nv[j] : NULL;
        if (a && b && a == b) {
            i++, j++;
        } else if (a && (!b || (uintptr_t)a < (uintptr_t)b)) {
            lock_only(tx, a);
            i++;
        } else {
            lock_only(tx, b);
            j++;
        }
    }
}

/* The rest of stm__watch_prepare(), for a commit that changes a watcher
 * (or its timer), or stops one: the watchers' own TVars that must be
 * written, and whatever the commit must lock or reserve. */
__attribute__((noinline)) static void prepare_changes(struct stm_tx *tx, struct stm__watchtx *x)
{
    uint32_t slots = 0, retiring = 0;
    bool wall = false, more = x->stopped.n != 0, apply = false;
    x->spare_need = 0;
    /* a run that changes a watcher's registrations or timer holds its
     * lock while the commit changes them (runs that only read it and
     * change nothing need not) */
    for (uint32_t k = 0; k < x->runs.n; k++) {
        struct stm__wrun *r = &x->runs.v[k];
        struct stm_watch *w = r->w;
        if (r->plan == RUN_SKIP)
            continue;
        bool fresh = w->flags & STM__WATCH_FRESH;
        if (r->plan == RUN_CHANGE || r->deadline < STM_NEVER) {
            more = true;
            if (!fresh)
                stm_write(tx, &w->self, stm_read(tx, &w->self)); /* fresh: written */
        } else if (atomic_load_explicit(&w->armed, memory_order_relaxed)) {
            stm_write(tx, &w->self, stm_read(tx, &w->self)); /* to disarm */
            apply = true;
        } else if (fresh) {
            apply = true; /* to clear STM__WATCH_FRESH */
        }
    }
    x->apply = apply || more;
    /* those writes are new write-set entries: TVars of watchers, on
     * which no watcher is registered */
    if (!STM__VEC_RESERVE(x->meta, tx->wn))
        stm__nomem(tx);
    for (uint32_t i = x->metan; i < tx->wn; i++) {
        x->meta.v[i].head = stm__tvar_watchers(tx->ws[i].var);
        x->meta.v[i].round = 0;
    }
    x->data_n = tx->wn;
    if (!more)
        return; /* no registration, timer or stop to prepare */
    for (uint32_t k = 0; k < x->runs.n; k++) {
        struct stm__wrun *r = &x->runs.v[k];
        struct stm_watch *w = r->w;
        if (r->plan == RUN_SKIP)
            continue;
        stm_tvar **nv = x->deps.v + r->dep0;
        if (r->plan == RUN_CHANGE) {
            if (w->flags & STM__WATCH_FRESH)
                x->tmp.n = 0;
            else
                read_registered(tx, x, w);
            if (r->depn >= 2 || x->tmp.n >= 2) {
                /* a new array: every node moves, so every list changes */
                for (uint32_t i = 0; i < x->tmp.n; i++)
                    lock_only(tx, x->tmp.v[i]);
                for (uint32_t i = 0; i < r->depn; i++)
                    lock_only(tx, nv[i]);
            } else {
                lock_difference(tx, x, nv, r->depn);
            }
            reserve_records(tx, x, nv, r->depn);
            if (r->depn >= 2) {
                if (!STM__VEC_RESERVE(x->fresh, x->fresh.n + 1))
                    stm__nomem(tx);
                struct stm__wdep *a = stm__calloc(r->depn, sizeof *a);
                if (a == NULL)
                    stm__nomem(tx);
                x->fresh.v[x->fresh.n++] = a;
                r->nd = a;
            } else {
                r->nd = r->depn ? &w->dep0 : NULL;
            }
            if (x->tmp.n >= 2)
                retiring++;
        }
        if (r->deadline < STM_NEVER && !atomic_load_explicit(&w->slot, memory_order_relaxed)) {
            slots++;
        }
        if (r->wall)
            wall = true;
    }
    for (uint32_t k = 0; k < x->stopped.n; k++) {
        struct stm_watch *w = x->stopped.v[k];
        if (w->flags & STM__WATCH_FRESH)
            continue;
        read_registered(tx, x, w);
        lock_difference(tx, x, NULL, 0);
    }
    /* room for what must not fail once committed */
    if (!STM__VEC_RESERVE(x->retired, retiring) ||
        !STM__VEC_RESERVE(tx->limbo, tx->limbo.n + tx->frees.n + retiring + x->stopped.n))
        stm__nomem(tx);
    if (wall)
        stm__wallclock_watch();
    if (slots) {
        int e = stm__timer_reserve(slots);
        if (e < 0)
            stm__nomem(tx);
        x->slots = slots;
    }
}

/* The end of stm__watch_prepare(): whether the commit changes watchers. */
static inline void prepared(struct stm_tx *tx, struct stm__watchtx *x, bool changes)
{
    if (STM__UNLIKELY(changes)) {
        prepare_changes(tx, x);
        return;
    }
    x->apply = false;
    x->data_n = tx->wn; /* (no new entries: meta is filled in for all) */
}

void stm__watch_prepare_from(struct stm_tx *tx, struct stm__watchtx *x, uint32_t k, bool changes)
{
    for (; k < x->runs.n; k++) {
        struct stm__wrun *r = &x->runs.v[k];
        if (stm__wx_stopping(x, r->w)) {
            r->plan = RUN_SKIP;
            continue;
        }
        changes |= stm__plan_run(tx, x, r);
    }
    prepared(tx, x, changes);
}

/* ---- applying, locks held ------------------------------------------------ */

/* List surgery: the TVar's lock is held (this commit locked it). */
static void unlink_dep(struct stm__wdep *d)
{
    stm_tvar *var = atomic_load_explicit(&d->var, memory_order_relaxed);
    if (d->next)
        d->next->prev = d->prev;
    if (d->prev)
        d->prev->next = d->next;
    else /* (it has a watcher: it has a record) */
        atomic_store_explicit(&stm__tvx_of(var)->watchers, d->next, memory_order_relaxed);
    d->next = d->prev = NULL;
}

/* var's record, made from the spares that preparation set aside if it has
 * none yet (its lock is held by this commit: the lock word names the
 * write-set entry, whose `old` is what the commit lets go with). */
static struct stm__tvx *record_locked(struct stm__watchtx *x, stm_tvar *var)
{
    uintptr_t l = atomic_load_explicit(&var->lock, memory_order_relaxed);
    if (l & STM__XT)
        return stm__tvx_of(var);
    struct stm__tvx *r = x->spare.v[--x->spare.n];
    stm__tvx_install(var, r);
    STM__OWNER(l)->old |= STM__XT;
    atomic_store_explicit(&var->lock, l | STM__XT, memory_order_release);
    return r;
}

static void link_dep(struct stm__watchtx *x, struct stm__wdep *d, stm_tvar *var,
                     struct stm_watch *w)
{
    struct stm__tvx *r = record_locked(x, var);
    atomic_store_explicit(&d->var, var, memory_order_relaxed);
    d->w = w;
    d->prev = NULL;
    d->next = atomic_load_explicit(&r->watchers, memory_order_relaxed);
    if (d->next)
        d->next->prev = d;
    atomic_store_explicit(&r->watchers, d, memory_order_relaxed);
}

/* Put `nd` where `od` is in var's list. */
static void swap_dep(struct stm__wdep *od, struct stm__wdep *nd, stm_tvar *var, struct stm_watch *w)
{
    atomic_store_explicit(&nd->var, var, memory_order_relaxed);
    nd->w = w;
    nd->prev = od->prev;
    nd->next = od->next;
    if (nd->next)
        nd->next->prev = nd;
    if (nd->prev)
        nd->prev->next = nd;
    else
        atomic_store_explicit(&stm__tvx_of(var)->watchers, nd, memory_order_relaxed);
    od->next = od->prev = NULL;
}

static void relink(struct stm__watchtx *x, struct stm__wrun *r)
{
    struct stm_watch *w = r->w;
    struct stm__wdep *od = atomic_load_explicit(&w->deps, memory_order_relaxed);
    uint32_t on = od ? atomic_load_explicit(&w->ndeps, memory_order_relaxed) : 0;
    stm_tvar *const *nv = x->deps.v + r->dep0;
    uint32_t nn = r->depn;
    struct stm__wdep *nd = r->nd;
    /* removals first: the new array may be dep0, which an old one used */
    uint32_t i = 0, j = 0;
    while (i < on) {
        stm_tvar *a = atomic_load_explicit(&od[i].var, memory_order_relaxed);
        while (j < nn && (uintptr_t)nv[j] < (uintptr_t)a)
            j++;
        if (j == nn || nv[j] != a)
            unlink_dep(&od[i]);
        i++;
    }
    for (i = 0, j = 0; j < nn; j++) {
        while (i < on &&
               (uintptr_t)atomic_load_explicit(&od[i].var, memory_order_relaxed) < (uintptr_t)nv[j])
            i++;
        if (i < on && atomic_load_explicit(&od[i].var, memory_order_relaxed) == nv[j]) {
            if (&od[i] != &nd[j])
                swap_dep(&od[i], &nd[j], nv[j], w);
        } else {
            link_dep(x, &nd[j], nv[j], w);
        }
    }
    atomic_store_explicit(&w->deps, nd, memory_order_release);
    atomic_store_explicit(&w->ndeps, nn, memory_order_release);
    if (od && od != &w->dep0 && od != nd)
        x->retired.v[x->retired.n++] = od;
}

void stm__watch_apply(struct stm_tx *tx, uint64_t wv)
{
    (void)wv;
    struct stm__watchtx *x = tx->wx; /* (x->apply: else not called) */
    for (uint32_t k = 0; k < x->runs.n; k++) {
        struct stm__wrun *r = &x->runs.v[k];
        struct stm_watch *w = r->w;
        if (r->plan == RUN_SKIP)
            continue;
        if (w->flags & STM__WATCH_FRESH)
            w->flags &= (uint8_t)~STM__WATCH_FRESH; /* before anyone can see it */
        if (r->plan == RUN_CHANGE)
            relink(x, r);
        if (r->deadline >= STM_NEVER) {
            if (atomic_load_explicit(&w->armed, memory_order_relaxed)) {
                stm__timer_unset(&w->timer);
                atomic_store_explicit(&w->armed, 0, memory_order_relaxed);
            }
        } else {
            if (!atomic_load_explicit(&w->slot, memory_order_relaxed)) {
                atomic_store_explicit(&w->slot, 1, memory_order_relaxed);
                x->slots--; /* prepare reserved one for it */
            }
            atomic_store_explicit(&w->armed, stm__timer_set(&w->timer, r->deadline, r->wall),
                                  memory_order_relaxed);
        }
    }
    for (uint32_t k = 0; k < x->stopped.n; k++) {
        struct stm_watch *w = x->stopped.v[k];
        atomic_store_explicit(&w->dead, 1, memory_order_seq_cst);
        if (w->flags & STM__WATCH_FRESH)
            continue;
        struct stm__wdep *d = atomic_load_explicit(&w->deps, memory_order_relaxed);
        uint32_t n = d ? atomic_load_explicit(&w->ndeps, memory_order_relaxed) : 0;
        for (uint32_t i = 0; i < n; i++)
            unlink_dep(&d[i]);
        stm__timer_unset(&w->timer);
        if (atomic_load_explicit(&w->slot, memory_order_relaxed)) {
            atomic_store_explicit(&w->slot, 0, memory_order_relaxed);
            x->slots++; /* given back below */
        }
    }
    /* published: the arrays belong to their watchers now */
    x->fresh.n = 0;
}

void stm__watch_finish(struct stm_tx *tx, uint64_t wv)
{
    struct stm__watchtx *x = tx->wx;
    if (STM__UNLIKELY((x->slots | x->retired.n | x->stopped.n) != 0)) {
        if (x->slots) {
            /* reserved for a watcher that had one after all, or given back */
            stm__timer_unreserve(x->slots);
            x->slots = 0;
        }
        for (uint32_t k = 0; k < x->retired.n; k++)
            stm__limbo_push(tx, x->retired.v[k], STM__FREE_BLOCK, wv);
        x->retired.n = 0;
        for (uint32_t k = 0; k < x->stopped.n; k++) {
            struct stm_watch *w = x->stopped.v[k];
            if (w->flags & STM__WATCH_FRESH)
                free(w); /* made and stopped by this transaction: never seen */
            else
                stm__watch_stopped(tx, w);
        }
        x->stopped.n = 0;
    }
    stm__watch_reset_inline(tx);
}
