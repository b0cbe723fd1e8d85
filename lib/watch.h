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
#define STM__WATCH_FRESH 0x8000u

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
    STM__VEC(uint32_t) cur, next;         /* this round, the next: entries of ents */
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
/* watch_apply.c: before the commit locks anything */
void stm__watch_prepare(struct stm_tx *tx, struct stm__watchtx *x);
/* after the stopping commit: wait for runs elsewhere, then reclaim */
void stm__watch_stopped(struct stm_tx *tx, struct stm_watch *w);

void stm__wx_free_fresh(struct stm__watchtx *x); /* and empty x->fresh */

/* A watcher's fn read var (Bloom bit `bit`) from the write set (tx.c): a
 * dependency. */
static inline void stm__watch_dep_ws(struct stm_tx *tx, stm_tvar *var, uint64_t bit)
{
    struct stm__watchtx *x = tx->wx;
    if (!STM__VEC_RESERVE(x->deps, x->deps.n + 1))
        stm__nomem(tx);
    x->deps.v[x->deps.n++] = var;
    x->depbloom |= bit;
}

/* stm__watch_reset(), for the commit path (stm__watch_commit() has a
 * shorter copy for the commit that leaves nothing to finish) */
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
    x->made.n = x->stopped.n = x->seeds.n = 0;
    x->runs.n = x->deps.n = x->retired.n = 0;
    x->cur.n = x->next.n = x->rewrites.n = 0;
    if (x->indexed) {
        memset(x->map, 0, (size_t)x->mapcap * sizeof *x->map);
        x->indexed = 0;
    }
    x->ents.n = 0;
    x->slots = 0;
}

#endif
