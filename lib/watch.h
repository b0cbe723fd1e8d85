/*
 * watch.h - what watch.c, watch_phase.c and watch_apply.c share (never
 * installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_WATCH_H
#define STM_WATCH_H

#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"

/* stm_watch.flags: made by a transaction that has not committed yet */
#define STM__WATCH_FRESH 0x80u

/* The last run of a watcher in the committing transaction. */
struct stm__wrun {
    struct stm_watch *w;
    int64_t deadline;     /* earliest deadline fn read and found not come */
    uint32_t dep0, depn;  /* TVars fn read: x->deps[dep0, dep0 + depn) */
    uint64_t depbloom;    /* of those TVars */
    struct stm__wdep *nd; /* prepared registrations (plan CHANGE) */
    uint8_t plan;         /* RUN_* */
    uint8_t wall;         /* the deadline came from stm_elapsed_wall() */
};
enum { RUN_SAME = 0, RUN_CHANGE, RUN_SKIP };

struct stm__wseed {
    struct stm_watch *w;
    uint64_t armed; /* the timer's arming that fired */
};

/* watcher -> its run record, and the last round it was scheduled in */
struct stm__wmap {
    struct stm_watch *w;
    uint32_t run; /* index + 1 in runs, 0 = none yet */
    uint32_t round : 31;
    uint32_t stopped : 1; /* stm_unwatch in this attempt */
};

/* Per-thread watcher bookkeeping of the running attempt (reused). */
struct stm__watchtx {
    STM__VEC(struct stm_watch *) made;    /* stm_watch_new, in order */
    STM__VEC(struct stm_watch *) stopped; /* stm_unwatch */
    STM__VEC(struct stm__wseed) seeds;    /* deadline runs asked for */
    STM__VEC(uint32_t) next;              /* the coming round: entries of ents */
    STM__VEC(struct stm__wrun) runs;
    STM__VEC(stm_tvar *) deps;
    STM__VEC(stm_tvar *) tmp;
    STM__VEC(struct stm__wmeta) meta;     /* per write-set entry */
    uint64_t roundbloom;                  /* of the TVars written for the coming round */
    uint64_t depbloom;                    /* of the deps the running fn read from the write set */
    uint32_t data_n;                      /* write-set entries that are writes */
    bool apply;                           /* stm__watch_apply() has work (else not called) */
    uint32_t metan;                       /* meta is filled in for entries [0, metan) */
    STM__VEC(uint32_t) rewrites;          /* entries written again this round */
    STM__VEC(struct stm__wdep *) fresh;   /* allocated, not yet published */
    STM__VEC(struct stm__wdep *) retired; /* replaced by this commit */
    /* side records set aside for TVars that gain their first watcher
     * (watch_apply.c; kept for later commits), and how many this one may
     * take */
    STM__VEC(struct stm__tvx *) spare;
    uint32_t spare_need;
    STM__VEC(struct stm__wmap) ents;
    uint32_t *map; /* index into ents (number + 1), once there are many */
    uint32_t mapcap, indexed;
    uint32_t slots; /* timer-heap slots reserved for this commit */
    int64_t saved_deadline, saved_wall;
};

struct stm__watchtx *stm__wx_make(struct stm_tx *tx); /* the first use (may jump) */
/* tx's bookkeeping, made if new; marks the attempt */
static inline struct stm__watchtx *stm__wx_get(struct stm_tx *tx)
{
    struct stm__watchtx *x = tx->wx;
    if (STM__UNLIKELY(x == NULL))
        x = stm__wx_make(tx);
    /* (not tx->extras: a commit finishes the watcher work itself, and a
     * discarded attempt sets extras on its way out) */
    tx->watch_work = true;
    return x;
}
/* stm_unwatch: note w as stopped by this attempt; false if it was */
bool stm__wx_stop(struct stm_tx *tx, struct stm__watchtx *x, struct stm_watch *w);
bool stm__wx_stopping_slow(struct stm__watchtx *x, const struct stm_watch *w);
/* w is being stopped by this attempt */
static inline bool stm__wx_stopping(struct stm__watchtx *x, const struct stm_watch *w)
{
    return x->stopped.n != 0 && stm__wx_stopping_slow(x, w);
}
void stm__wx_unstop(struct stm__watchtx *x, const struct stm_watch *w);
/* ---- preparation (watch_apply.c), its common case inline ---------------- */

static inline int stm__cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (stm_tvar *const *)a, y = (uintptr_t) * (stm_tvar *const *)b;
    return (x > y) - (x < y);
}

/* Up to this many, stm__sort_unique() sorts by insertion (and calls
 * nothing). */
#define STM__SORT_INSERTION 16

/* Sort and de-duplicate v[0, n); returns the new n. */
static inline uint32_t stm__sort_unique(stm_tvar **v, uint32_t n)
{
    if (n <= 2) {
        if (n < 2)
            return n;
        stm_tvar *a = v[0], *b = v[1];
        if (a == b)
            return 1;
        if ((uintptr_t)a > (uintptr_t)b) {
            v[0] = b;
            v[1] = a;
        }
        return 2;
    }
    uint32_t sorted = 1;
    while (sorted < n && (uintptr_t)v[sorted - 1] < (uintptr_t)v[sorted])
        sorted++;
    if (sorted >= n)
        return n; /* already sorted, no duplicates */
    if (n <= STM__SORT_INSERTION) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = i; j > 0 && (uintptr_t)v[j] < (uintptr_t)v[j - 1]; j--) {
                stm_tvar *t = v[j];
                v[j] = v[j - 1];
                v[j - 1] = t;
            }
    } else {
        qsort(v, n, sizeof *v, stm__cmp_ptr);
    }
    uint32_t k = 1;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] != v[k - 1])
            v[k++] = v[i];
    return k;
}

/* Whether w is registered on exactly nv[0, n) (sorted), read
 * consistently with the version of w's TVar (a seqlock read: the
 * registrations change only under its lock). */
__attribute__((always_inline)) static inline bool
stm__registered_same(struct stm_tx *tx, struct stm_watch *w, stm_tvar *const *nv, uint32_t n)
{
    for (unsigned spins = 0;; spins++) {
        uintptr_t l1 = atomic_load_explicit(&w->self.lock, memory_order_acquire);
        /* (held by a body: not changed yet) */
        if (!STM__LOCKED(stm__lock_seen(l1))) {
            struct stm__wdep *d = atomic_load_explicit(&w->deps, memory_order_acquire);
            uint32_t on = d ? atomic_load_explicit(&w->ndeps, memory_order_acquire) : 0;
            bool same = on == n;
            /* (acquire loads: the lock word below is read after them) */
            if (same)
                for (stm_tvar *const *v = nv, *const *end = nv + n; v < end; v++, d++)
                    if (atomic_load_explicit(&d->var, memory_order_acquire) != *v) {
                        same = false;
                        break;
                    }
            if (atomic_load_explicit(&w->self.lock, memory_order_relaxed) == l1)
                return same;
        }
        if (spins > 256)
            stm__conflict(tx, &w->self); /* held by a commit that runs or stops w */
        stm__cpu_relax();
    }
}

/* The plan of run r (of a watcher not being stopped), its deps sorted
 * first: true if the commit changes the watcher (watch_apply.c:
 * prepare_changes()). */
__attribute__((always_inline)) static inline bool
stm__plan_run(struct stm_tx *tx, struct stm__watchtx *x, struct stm__wrun *r)
{
    struct stm_watch *w = r->w;
    stm_tvar **nv = x->deps.v + r->dep0;
    r->depn = stm__sort_unique(nv, r->depn);
    bool fresh = w->flags & STM__WATCH_FRESH;
    r->plan =
        (fresh ? r->depn == 0 : stm__registered_same(tx, w, nv, r->depn)) ? RUN_SAME : RUN_CHANGE;
    return r->plan == RUN_CHANGE || r->deadline < STM_NEVER || fresh ||
           atomic_load_explicit(&w->armed, memory_order_relaxed);
}

/* stm__watch_prepare() from run k on, for anything its loop leaves out
 * (watch_apply.c); `changes`: a run before k changes its watcher. */
void stm__watch_prepare_from(struct stm_tx *tx, struct stm__watchtx *x, uint32_t k, bool changes);

/* Before the commit locks anything: the plans of the runs, and what the
 * commit must write, lock or reserve for them (watch_apply.c).  Commonly
 * nothing is stopped, each fn read a few TVars, and every run keeps its
 * registrations and has no timer: nothing to write, lock or apply.  This
 * loop then calls nothing; stm__watch_prepare_from() does the rest. */
static inline void stm__watch_prepare(struct stm_tx *tx, struct stm__watchtx *x)
{
    if (STM__UNLIKELY(x->stopped.n)) {
        stm__watch_prepare_from(tx, x, 0, true); /* (a stop changes its watcher) */
        return;
    }
    bool changes = false;
    for (uint32_t k = 0; k < x->runs.n; k++) {
        struct stm__wrun *r = &x->runs.v[k];
        if (STM__UNLIKELY(r->depn > STM__SORT_INSERTION)) {
            stm__watch_prepare_from(tx, x, k, changes);
            return;
        }
        changes |= stm__plan_run(tx, x, r);
    }
    if (STM__UNLIKELY(changes)) {
        stm__watch_prepare_from(tx, x, x->runs.n, true); /* (no runs left: the changes) */
        return;
    }
    x->apply = false;
    x->data_n = tx->wn; /* (no new entries: meta is filled in for all) */
}
/* The watcher phase of a commit (watch_phase.c): the rounds, then
 * stm__watch_prepare().  The commit in watch mode follows (tx.c:
 * commit_core): ws[0, x->data_n) are writes, the rest only locked so
 * that watcher lists can change; x->apply: it calls stm__watch_apply(). */
void stm__watch_phase(struct stm_tx *tx, struct stm__watchtx *x);
/* after the stopping commit: wait for runs elsewhere, then reclaim */
void stm__watch_stopped(struct stm_tx *tx, struct stm_watch *w);

void stm__wx_free_fresh(struct stm__watchtx *x); /* and empty x->fresh */

/* stm__watch_dep_ws() if it needs no more room (calls nothing); false if
 * it does, having done nothing */
static inline bool stm__watch_dep_ws_fast(struct stm_tx *tx, stm_tvar *var, uint64_t bit)
{
    struct stm__watchtx *x = tx->wx;
    if (STM__UNLIKELY(x->deps.n == x->deps.cap))
        return false;
    x->deps.v[x->deps.n++] = var;
    x->depbloom |= bit;
    return true;
}
/* A watcher's fn read var (Bloom bit `bit`) from the write set (tx.c): a
 * dependency. */
static inline void stm__watch_dep_ws(struct stm_tx *tx, stm_tvar *var, uint64_t bit)
{
    if (!stm__watch_dep_ws_fast(tx, var, bit)) {
        if (!STM__VEC_RESERVE(tx->wx->deps, tx->wx->deps.n + 1))
            stm__nomem(tx);
        stm__watch_dep_ws_fast(tx, var, bit);
    }
}

/* Empty what every watcher commit fills: the runs and their watcher map
 * (what else stm__watch_reset_inline() clears, such a commit may leave
 * empty: see stm__watch_committed()). */
static inline void stm__wx_clear_runs(struct stm__watchtx *x)
{
    x->made.n = x->seeds.n = 0;
    x->runs.n = x->deps.n = 0;
    x->rewrites.n = 0;
    if (x->indexed) {
        memset(x->map, 0, (size_t)x->mapcap * sizeof *x->map);
        x->indexed = 0;
    }
    x->ents.n = 0;
}

/* stm__watch_reset(), for the commit path */
static inline void stm__watch_reset_inline(struct stm_tx *tx)
{
    struct stm__watchtx *x = tx->wx;
    tx->watch_work = false;
    tx->watch_round = 0;
    tx->watch_dep = false;
    if (x == NULL)
        return;
    if (STM__UNLIKELY(x->fresh.n))
        stm__wx_free_fresh(x);
    stm__wx_clear_runs(x);
    x->stopped.n = x->retired.n = x->next.n = 0;
    x->slots = 0;
}

/* After the commit in watch mode (wv: its time, 0 if it failed), before
 * the attempt ends.  A commit that leaves stm__watch_finish() nothing to
 * do finishes the watcher work here (tx->watch_work clear). */
static inline void stm__watch_committed(struct stm_tx *tx, struct stm__watchtx *x, uint32_t data_n,
                                        uint64_t wv)
{
    if (tx->wsidx_n > data_n)
        stm__ws_forget(tx); /* it knew the lock-only entries */
    tx->wn = data_n;
    if (wv == 0) {
        if (x->slots) {
            stm__timer_unreserve(x->slots);
            x->slots = 0;
        }
    } else if ((x->slots | x->retired.n | x->stopped.n) == 0) {
        /* Nothing for stm__watch_finish() to do after the attempt but
         * stm__watch_reset_inline(), of which this is what is left: there
         * are no fresh arrays (stm__watch_apply() published them), `next`
         * is empty and rounds() cleared watch_round and watch_dep.  (The
         * caller sees tx->watch_work clear.) */
        tx->watch_work = false;
        stm__wx_clear_runs(x);
    }
}

#endif
