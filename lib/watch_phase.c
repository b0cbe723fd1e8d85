/*
 * watch_phase.c - the watcher phase of a commit: running the watchers of
 * the TVars a transaction wrote, in rounds, before it commits.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * 1. Rounds.  Round 1 runs the watchers of every TVar the body wrote, the
 *    watchers made by the body and the deadline runs asked for; round k+1
 *    those of the TVars written in round k (new write-set entries, and
 *    older ones written again).  A TVar's list is read with the TVar's
 *    lock held, and the head seen is kept per write-set entry.  The commit
 *    that found watchers while locking the write set keeps the TVars it
 *    had locked so far (stm_tx.watch_held) through the phase, as part of
 *    its commit: their lists cannot change, and the commit does not lock
 *    them twice.  Any other TVar's lock is taken for a moment.  Leaving
 *    the attempt by a jump (conflict, veto, retry, -ENOMEM, -ELOOP)
 *    releases them.
 * 2. Preparation (watch_apply.c): what the runs change in the watchers'
 *    registrations and timers, and the locks that takes.
 * 3. The commit locks everything, checks that each written TVar still has
 *    the list head the phase saw (a watcher added since would have been
 *    missed: run again), validates, and calls stm__watch_apply()
 *    (watch_apply.c) with every lock held.
 *
 * A TVar's lock guards its list: whoever holds it sees a stable list, and
 * lists change only in a commit that holds the lock.  New nodes go to the
 * head, so an unchanged head means nothing was added; a removal that is
 * not seen is caught by the watcher's own TVar, which the removal wrote.
 *
 * While a thread runs a watcher's fn or cb it publishes the watcher in
 * stm_tx.watch_cur (a plain store: the stopper pays for the ordering with
 * a process-wide barrier, as for epochs), then checks that it has not
 * been stopped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"
#include "watch.h"

/* Publish the watcher this thread runs (NULL: none); see above. */
static inline void publish_cur(struct stm_tx *tx, struct stm_watch *w)
{
#ifdef STM__TSAN
    atomic_store_explicit(&tx->watch_cur, w, memory_order_seq_cst);
#else
    atomic_store_explicit(&tx->watch_cur, w, memory_order_release);
    if (w != NULL) {
        if (STM__LIKELY(atomic_load_explicit(&stm__g.fast_epoch, memory_order_relaxed)))
            atomic_signal_fence(memory_order_seq_cst);
        else
            atomic_thread_fence(memory_order_seq_cst);
    }
#endif
}

/* ---- the watchers of this commit: watcher -> run record, round ----------
 * Entries in an array, searched linearly while there are few (the common
 * case: a commit triggers one or two watchers), through an open-addressing
 * index of entry numbers once there are more. */

#define SMALL 8

/* The index slot for w: holding its entry number + 1, or 0 if absent. */
static inline uint32_t *index_slot(struct stm__watchtx *x, const struct stm_watch *w)
{
    uint32_t mask = x->mapcap - 1;
    for (uint32_t i = stm__ptr_hash(w, mask);; i = (i + 1) & mask)
        if (x->map[i] == 0 || x->ents.v[x->map[i] - 1].w == w)
            return &x->map[i];
}

static inline struct stm__wmap *ent_find(struct stm__watchtx *x, const struct stm_watch *w)
{
    if (x->ents.n <= SMALL) {
        for (uint32_t i = 0; i < x->ents.n; i++)
            if (x->ents.v[i].w == w)
                return &x->ents.v[i];
        return NULL;
    }
    uint32_t k = *index_slot(x, w);
    return k ? &x->ents.v[k - 1] : NULL;
}

static inline bool has_room(const struct stm__watchtx *x, uint32_t more)
{
    uint64_t n = (uint64_t)x->ents.n + more;
    return x->ents.n + more <= x->ents.cap && x->next.n + more <= x->next.cap &&
           (n <= SMALL || 2 * n <= x->mapcap);
}

/* Make has_room(x, more) true (may jump with ENOMEM). */
static void room_slow(struct stm_tx *tx, struct stm__watchtx *x, uint32_t more)
{
    /* runs grows with ents, first (a watcher has one run record at
     * most): grown alike from the same needs, runs.cap >= ents.cap, and
     * a run needs no check of its own */
    if (!STM__VEC_RESERVE(x->runs, x->ents.n + more) ||
        !STM__VEC_RESERVE(x->ents, x->ents.n + more) ||
        !STM__VEC_RESERVE(x->next, x->next.n + more))
        stm__nomem(tx);
    uint64_t n = (uint64_t)x->ents.n + more;
    if (n > SMALL && 2 * n > x->mapcap) {
        uint32_t cap = x->mapcap ? x->mapcap : 32;
        while (2 * n > cap)
            cap *= 2;
        uint32_t *m = stm__calloc(cap, sizeof *m);
        if (m == NULL)
            stm__nomem(tx);
        free(x->map);
        x->map = m;
        x->mapcap = cap;
        x->indexed = 0;
        if (x->ents.n > SMALL)
            for (; x->indexed < x->ents.n; x->indexed++)
                *index_slot(x, x->ents.v[x->indexed].w) = x->indexed + 1;
    }
}

static inline void room(struct stm_tx *tx, struct stm__watchtx *x, uint32_t more)
{
    if (!has_room(x, more))
        room_slow(tx, x, more);
}

/* w's entry, made if new; there must be room. */
static inline struct stm__wmap *ent_get(struct stm__watchtx *x, struct stm_watch *w)
{
    struct stm__wmap *e = ent_find(x, w);
    if (e != NULL)
        return e;
    e = &x->ents.v[x->ents.n++];
    e->w = w;
    e->run = 0;
    e->round = 0;
    e->stopped = 0;
    if (x->ents.n > SMALL) {
        /* index every entry not indexed yet (all of them, the first time) */
        for (; x->indexed < x->ents.n; x->indexed++)
            *index_slot(x, x->ents.v[x->indexed].w) = x->indexed + 1;
    }
    return e;
}

bool stm__wx_stop(struct stm_tx *tx, struct stm__watchtx *x, struct stm_watch *w)
{
    room(tx, x, 1);
    struct stm__wmap *e = ent_get(x, w);
    if (e->stopped)
        return false;
    e->stopped = 1;
    return true;
}

bool stm__wx_stopping_slow(struct stm__watchtx *x, const struct stm_watch *w)
{
    struct stm__wmap *e = ent_find(x, w);
    return e && e->stopped;
}

void stm__wx_unstop(struct stm__watchtx *x, const struct stm_watch *w)
{
    struct stm__wmap *e = ent_find(x, w);
    if (e)
        e->stopped = 0;
}

/* ---- rounds ------------------------------------------------------------ */

/* Put w in the next round, once; there must be room for it. */
static inline void schedule(struct stm__watchtx *x, struct stm_watch *w, uint32_t round)
{
    if (atomic_load_explicit(&w->dead, memory_order_acquire) || stm__wx_stopping(x, w))
        return;
    struct stm__wmap *e = ent_get(x, w);
    if (e->round == round)
        return;
    e->round = round;
    x->next.v[x->next.n++] = (uint32_t)(e - x->ents.v);
}

/* The watchers on var's list go to `round`; returns the head.  var's
 * lock is held; there must be room (see room()).  A watcher that already
 * ran in this commit is left to deps_pass(): what it read then, not what
 * it is registered on, decides. */
__attribute__((always_inline)) static inline struct stm__wdep *
collect_held(struct stm__watchtx *x, stm_tvar *var, uint32_t round)
{
    struct stm__wdep *h = stm__tvar_watchers(var);
    for (struct stm__wdep *d = h; d; d = d->next) {
        struct stm__wmap *e = x->runs.n ? ent_find(x, d->w) : NULL;
        if (e == NULL || e->run == 0)
            schedule(x, d->w, round);
    }
    return h;
}

static inline uint32_t list_length(stm_tvar *var)
{
    uint32_t n = 0;
    for (struct stm__wdep *d = stm__tvar_watchers(var); d;
         d = d->next)
        n++;
    return n;
}

/* The watchers of write-set entry idx go to `round`; the head of the list
 * is kept for the commit to check.  The TVar is locked for the moment it
 * takes (readers wait as for a commit; after a while behind another
 * commit's lock, the transaction runs again). */
static void collect(struct stm_tx *tx, struct stm__watchtx *x, uint32_t idx, uint32_t round)
{
    stm_tvar *var = tx->ws[idx].var;
    struct stm__wdep *h = stm__tvar_watchers(var);
    if (h != NULL && idx < tx->watch_held) {
        /* still locked by this commit (written again by a callback) */
        room(tx, x, list_length(var));
        h = collect_held(x, var, round);
    } else if (h != NULL) {
        uintptr_t me = (uintptr_t)&tx->ws[idx] | 1;
        for (unsigned spins = 0;; spins++) {
            uintptr_t l = atomic_load_explicit(&var->lock, memory_order_relaxed);
            if (!STM__LOCKED(l) &&
                atomic_compare_exchange_weak_explicit(&var->lock, &l, me | (l & STM__FLAGS),
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                uint32_t n = list_length(var);
                if (has_room(x, n)) {
                    h = collect_held(x, var, round);
                    atomic_store_explicit(&var->lock, l, memory_order_release);
                    break;
                }
                atomic_store_explicit(&var->lock, l, memory_order_release);
                room(tx, x, n); /* no lock may be held where we may jump */
                continue;
            }
            if (spins >= 1024)
                stm__conflict(tx, var);
            stm__cpu_relax();
        }
    }
    x->meta.v[idx].head = h;
    x->meta.v[idx].round = round;
    x->roundbloom |= stm__bloom_bit(var);
}

/* Round 1 of a commit that found watchers on ws[idx] while locking its
 * write set, and holds ws[0, idx] (tx->watch_held): that list, read with
 * the lock held; the entries before idx have none (seen with their locks
 * held).  The body made, stopped and asked to run no watcher, or its
 * commit would have taken the watcher path at once: commonly the map is
 * empty, and this list's live watchers are simply its entries. */
static inline void collect_found(struct stm_tx *tx, struct stm__watchtx *x, uint32_t idx)
{
    if (!STM__VEC_RESERVE(x->meta, idx + 1))
        stm__nomem(tx);
    stm_tvar *var = tx->ws[idx].var;
    struct stm__wdep *h = stm__tvar_watchers(var);
    /* (capacities are 0 or at least 8: stm__grow) */
    if (STM__LIKELY((x->ents.n | x->stopped.n) == 0 && x->ents.cap >= SMALL &&
                    x->next.cap >= SMALL)) {
        uint32_t k = 0;
        for (struct stm__wdep *d = h; d; d = d->next) {
            struct stm_watch *w = d->w;
            if (atomic_load_explicit(&w->dead, memory_order_acquire))
                continue;
            if (STM__UNLIKELY(k == SMALL))
                goto general; /* (nothing noted yet) */
            struct stm__wmap *e = &x->ents.v[k];
            e->w = w;
            e->run = 0;
            e->round = 1;
            e->stopped = 0;
            x->next.v[k] = k;
            k++;
        }
        x->ents.n = x->next.n = k;
    } else {
    general:
        x->next.n = 0;
        room(tx, x, list_length(var));
        collect_held(x, var, 1);
    }
    struct stm__wmeta *meta = x->meta.v;
    for (uint32_t i = 0; i < idx; i++) {
        meta[i].head = NULL;
        meta[i].round = 1;
    }
    meta[idx].head = h;
    meta[idx].round = 1;
}

static inline void collect_range(struct stm_tx *tx, struct stm__watchtx *x, uint32_t from,
                                 uint32_t to, uint32_t round)
{
    if (from >= to)
        return;
    if (!STM__VEC_RESERVE(x->meta, to))
        stm__nomem(tx);
    uint64_t bloom = 0;
    for (uint32_t i = from; i < to; i++) {
        stm_tvar *var = tx->ws[i].var;
        if (stm__tvar_watchers(var) == NULL) {
            struct stm__wmeta *m = &x->meta.v[i];
            m->head = NULL; /* (collect() would say the same) */
            m->round = round;
            bloom |= stm__bloom_bit(var);
        } else {
            collect(tx, x, i, round);
        }
    }
    x->roundbloom |= bloom;
}

/* Watchers that ran in this commit run again in `round` if their run read
 * a TVar written for it (meta[].round == round; x->roundbloom has them). */
static inline void deps_pass(struct stm_tx *tx, struct stm__watchtx *x, uint32_t round)
{
    uint64_t bloom = x->roundbloom;
    if (bloom == 0)
        return;
    for (uint32_t k = 0; k < x->runs.n; k++) {
        if (!(x->runs.v[k].depbloom & bloom))
            continue;
        room(tx, x, 1);
        const struct stm__wrun *r = &x->runs.v[k]; /* (room() may move runs) */
        for (uint32_t i = 0; i < r->depn; i++) {
            stm_tvar *d = x->deps.v[r->dep0 + i];
            if (!(bloom & stm__bloom_bit(d)))
                continue;
            int64_t e = stm__ws_index(tx, d);
            if (e >= 0 && x->meta.v[e].round == round) {
                schedule(x, r->w, round);
                break;
            }
        }
    }
}

void stm__watch_rewrite(struct stm_tx *tx, uint32_t idx)
{
    struct stm__watchtx *x = tx->wx;
    if (!STM__VEC_RESERVE(x->rewrites, x->rewrites.n + 1))
        stm__nomem(tx);
    x->rewrites.v[x->rewrites.n++] = idx;
}

/* Run w once in tx.  seeded: a deadline run for the timer's arming
 * `armed`, skipped if a commit has re-armed or disarmed it since (the
 * firing is stale). */
__attribute__((always_inline)) static inline void run_one(struct stm_tx *tx, struct stm__watchtx *x,
                                                          uint32_t ent, bool seeded, uint64_t armed)
{
    struct stm_watch *w = x->ents.v[ent].w;
    publish_cur(tx, w);
    if (atomic_load_explicit(&w->dead, memory_order_seq_cst) || stm__wx_stopping(x, w)) {
        publish_cur(tx, NULL);
        return;
    }
    intptr_t last = stm__read_in(tx, &w->self);
    if (seeded && atomic_load_explicit(&w->armed, memory_order_relaxed) != armed)
        goto out;
    x->saved_deadline = tx->deadline;
    x->saved_wall = tx->wall_deadline;
    tx->deadline = STM_NEVER;
    tx->wall_deadline = STM_NEVER;
    uint32_t rstart = tx->rn, d0 = x->deps.n;
    x->depbloom = 0;
    tx->watch_dep = true;
    stm__count(&tx->st.watch_runs);
    intptr_t v = w->fn(tx, w->arg);
    tx->watch_dep = false;
    /* what fn read: the read-set entries it added (reads of TVars in the
     * write set were noted as they happened, with their Bloom bits), and
     * their Bloom bits */
    uint32_t dn = x->deps.n, rn = tx->rn;
    if (!STM__VEC_RESERVE(x->deps, dn + (rn - rstart)))
        stm__nomem(tx);
    stm_tvar **dv = x->deps.v;
    uint64_t depbloom = x->depbloom;
    const struct stm__rentry *rs = tx->rs;
    for (uint32_t i = rstart; i < rn; i++) {
        stm_tvar *var = rs[i].var;
        dv[dn++] = var;
        depbloom |= stm__bloom_bit(var);
    }
    x->deps.n = dn;
    int64_t dl = tx->deadline;
    bool wall = false;
    if (tx->wall_deadline < STM_NEVER) {
        /* a wall-clock deadline, as a deadline on the library's clock (a
         * change of the system time fires it at once: timer.c) */
        int64_t d = stm__sat_add(stm_tx_now(tx), tx->wall_deadline - stm_tx_wall_now(tx));
        if (d <= dl) {
            dl = d;
            wall = true;
        }
    }
    tx->deadline = x->saved_deadline;
    tx->wall_deadline = x->saved_wall;
    /* (ents may move in fn or cb, which can stop watchers: by index) */
    bool first = (w->flags & STM__WATCH_FRESH) && x->ents.v[ent].run == 0;
    bool call = first || !(w->flags & STM_WATCH_CHANGES_ONLY) || v != last;
    if (call && w->cb)
        w->cb(tx, v, w->arg);
    /* its TVar holds the last value given to cb (what CHANGES_ONLY
     * compares with); prepare() writes it anyway when the watcher's
     * registrations or timer change */
    if (call && v != last && (w->flags & STM_WATCH_CHANGES_ONLY))
        stm_write(tx, &w->self, v);
    struct stm__wmap *e = &x->ents.v[ent];
    if (e->run == 0)
        e->run = ++x->runs.n; /* (room for it: see room_slow()) */
    struct stm__wrun *r = &x->runs.v[e->run - 1];
    r->w = w;
    r->deadline = dl;
    r->dep0 = d0;
    r->depn = dn - d0;
    r->depbloom = depbloom;
    r->wall = wall; /* (plan and nd: stm__watch_prepare()) */
out:
    publish_cur(tx, NULL);
}

/* A deadline run (rare: out of line, so that rounds() inlines only the
 * common run). */
__attribute__((noinline)) static void run_seeded(struct stm_tx *tx, struct stm__watchtx *x,
                                                 uint32_t ent, uint64_t armed)
{
    run_one(tx, x, ent, true, armed);
}

void stm__watch_abandon(struct stm_tx *tx)
{
    publish_cur(tx, NULL);
    tx->watch_dep = false;
    tx->watch_round = 0;
    /* a retry in fn waits for the body's deadlines too */
    if (tx->wx->saved_deadline < tx->deadline)
        tx->deadline = tx->wx->saved_deadline;
    if (tx->wx->saved_wall < tx->wall_deadline)
        tx->wall_deadline = tx->wx->saved_wall;
}

static void rounds(struct stm_tx *tx, struct stm__watchtx *x)
{
    uint32_t round = 1, made = 0, held = tx->watch_held;
    tx->watch_round = round;
    tx->watch_mark = 0;
    x->saved_deadline = x->saved_wall = STM_NEVER;
    if (held) {
        /* the commit found watchers while locking: see collect_found();
         * nothing reads round 1's Bloom bits (no deadline runs) */
        collect_found(tx, x, held - 1);
        collect_range(tx, x, held, tx->wn, round);
    } else {
        x->next.n = 0;
        /* deadline runs come first; what they write is collected with the
         * body's writes, so their own callbacks' writes re-run them */
        for (uint32_t i = 0; i < x->seeds.n; i++) {
            room(tx, x, 1);
            uint32_t ent = (uint32_t)(ent_get(x, x->seeds.v[i].w) - x->ents.v);
            run_seeded(tx, x, ent, x->seeds.v[i].armed);
        }
        x->roundbloom = 0;
        collect_range(tx, x, 0, tx->wn, round);
        x->rewrites.n = 0;
        if (x->runs.n)
            deps_pass(tx, x, round); /* deadline runs' own writes */
        made = x->made.n;            /* watchers made so far: first run now */
        if (made) {
            room(tx, x, made);
            for (uint32_t i = 0; i < made; i++)
                schedule(x, x->made.v[i], round);
        }
    }
    x->metan = tx->wn;
    while (x->next.n) {
        if (round > STM_WATCH_ROUNDS) {
            tx->watch_round = 0;
            tx->abort_code = -ELOOP;
            stm__jump(tx, STM__JUMP_ABORT);
        }
        uint32_t mark = tx->wn;
        tx->watch_mark = mark;
        tx->watch_round = round;
        x->rewrites.n = 0;
        /* `next` holds this round's runs until they are over: nothing
         * schedules while fn and cb run (stm__wx_stop() only makes room,
         * which may move next.v but keeps it), then the next round is
         * collected into it */
        for (uint32_t i = 0; i < x->next.n; i++)
            run_one(tx, x, x->next.v[i], false, 0);
        x->next.n = 0;
        round++;
        x->roundbloom = 0;
        collect_range(tx, x, mark, tx->wn, round);
        for (uint32_t i = 0; i < x->rewrites.n; i++)
            collect(tx, x, x->rewrites.v[i], round);
        deps_pass(tx, x, round);
        x->metan = tx->wn;
        /* watchers made by this round's callbacks run in the next */
        if (made < x->made.n) {
            room(tx, x, x->made.n - made);
            for (; made < x->made.n; made++)
                schedule(x, x->made.v[made], round);
        }
    }
    tx->watch_round = 0;
}

void stm__watch_phase(struct stm_tx *tx, struct stm__watchtx *x)
{
    rounds(tx, x);
    stm__watch_prepare(tx, x);
}
