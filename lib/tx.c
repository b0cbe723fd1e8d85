/*
 * tx.c - transactions: begin, read, write, validate, commit, restart.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * TL2 with snapshot extension (as in LSA / TinySTM): a transaction starts
 * from a snapshot of the global clock; a read accepts a TVar whose version
 * is not newer than the snapshot, and when it meets a newer one it tries to
 * move the snapshot forward by re-validating everything read so far, rather
 * than aborting.  Every value a body sees is therefore consistent with one
 * point in time (opacity).  Writes go to a redo log, and the write that
 * makes an entry locks its TVar there and then (STM__HELD, STM__BODY:
 * readers still take the committed value, so they do not wait for the
 * body); commit locks the rest of the write set, takes a new clock value,
 * validates the read set (skipped when no other commit happened since the
 * snapshot), writes back and releases each lock with the new version.
 * The reads of a declared read-only transaction (readonly.c) take the
 * same snapshot test but are recorded nowhere, and cannot extend it
 * (read_not_active).
 *
 * Memory ordering, reader side (a seqlock read):
 *   l1 = lock (acquire); v = value (acquire); l2 = lock (relaxed)
 * and the writer stores each value with release after locking, so a reader
 * that sees a new value also sees the lock word change and retries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"
#include "watch.h" /* stm__watch_dep_ws() */

/* Spins on a locked TVar before giving up (its commit is short). */
#define STM__READ_SPIN 256
#define STM__LOCK_SPIN 64

/* Past this many entries the write set gets an index (the Bloom filter
 * is saturated long before). */
#define WS_INDEX_AT 32

static uint32_t *ws_slot(struct stm_tx *tx, const stm_tvar *var)
{
    uint32_t mask = tx->wsidx_cap - 1;
    for (uint32_t i = stm__ptr_hash(var, mask);; i = (i + 1) & mask)
        if (tx->wsidx[i] == 0 || tx->ws[tx->wsidx[i] - 1].var == var)
            return &tx->wsidx[i];
}

/* Bring the index up to date (jumps with ENOMEM: every caller runs inside
 * the transaction's attempt). */
static void ws_index_update(struct stm_tx *tx)
{
    if (2 * (uint64_t)tx->wn > tx->wsidx_cap) {
        uint32_t cap = tx->wsidx_cap ? tx->wsidx_cap : 128;
        while (2 * (uint64_t)tx->wn > cap)
            cap *= 2;
        uint32_t *v = stm__calloc(cap, sizeof *v);
        if (v == NULL)
            stm__nomem(tx);
        free(tx->wsidx);
        tx->wsidx = v;
        tx->wsidx_cap = cap;
        tx->wsidx_n = 0;
    }
    tx->extras = 1; /* reset_extras() empties it */
    for (; tx->wsidx_n < tx->wn; tx->wsidx_n++) {
        uint32_t *s = ws_slot(tx, tx->ws[tx->wsidx_n].var);
        if (*s == 0)
            *s = tx->wsidx_n + 1;
    }
}

void stm__ws_forget(struct stm_tx *tx)
{
    if (tx->wsidx_n) {
        memset(tx->wsidx, 0, (size_t)tx->wsidx_cap * sizeof *tx->wsidx);
        tx->wsidx_n = 0;
    }
}

static struct stm__wentry *ws_find(struct stm_tx *tx, stm_tvar *var)
{
    if (tx->wn > WS_INDEX_AT) {
        ws_index_update(tx);
        uint32_t k = *ws_slot(tx, var);
        return k ? &tx->ws[k - 1] : NULL;
    }
    for (uint32_t i = tx->wn; i-- > 0;)
        if (tx->ws[i].var == var)
            return &tx->ws[i];
    return NULL;
}

void stm__ws_reserve1(struct stm_tx *tx)
{
    if (tx->wn < tx->wcap)
        return;
    if (!stm__grow((void **)&tx->ws, &tx->wcap, sizeof *tx->ws, tx->wn + 1))
        stm__nomem(tx);
    /* a locked TVar's lock word names its entry: the entries moved */
    for (uint32_t i = 0; i < tx->watch_held; i++)
        atomic_store_explicit(&tx->ws[i].var->lock,
                              (uintptr_t)&tx->ws[i] | 1 | (tx->ws[i].old & STM__FLAGS),
                              memory_order_release);
}

void stm__ws_release_held(struct stm_tx *tx, uint32_t from)
{
    for (uint32_t i = from; i < tx->wn; i++) {
        struct stm__wentry *w = &tx->ws[i];
        if (w->old & STM__HELD) {
            w->old &= ~STM__HELD;
            atomic_store_explicit(&w->var->lock, w->old, memory_order_release);
        }
    }
}

bool stm__unhold_own(stm_tvar *var, uintptr_t l)
{
    struct stm_tx *tx = stm__self;
    if (tx == NULL || !(l & STM__BODY) || !(tx->wbloom & stm__bloom_bit(var)))
        return false;
    for (uint32_t i = tx->watch_held; i < tx->wn; i++) {
        struct stm__wentry *w = &tx->ws[i];
        if (w->var == var && (w->old & STM__HELD)) {
            uintptr_t was = w->old & ~STM__HELD;
            w->old = 0; /* the commit locks it */
            atomic_store_explicit(&var->lock, was, memory_order_release);
            return true;
        }
    }
    return false;
}

int64_t stm__ws_index(struct stm_tx *tx, stm_tvar *var)
{
    struct stm__wentry *w = ws_find(tx, var);
    return w ? w - tx->ws : -1;
}

bool stm__ws_has(struct stm_tx *tx, stm_tvar *var)
{
    return (tx->wbloom & stm__bloom_bit(var)) && ws_find(tx, var) != NULL;
}

/* Lock word `l` is held by this transaction (during its own commit). */
static inline bool owned_by(struct stm_tx *tx, uintptr_t l)
{
    const struct stm__wentry *w = STM__OWNER(l);
    return w >= tx->ws && w < tx->ws + tx->wn;
}

/* Every read is still what it was.  Also used at commit, when the write set
 * is locked by us. */
static bool validate(struct stm_tx *tx)
{
    for (uint32_t i = 0; i < tx->rn; i++) {
        const struct stm__rentry *r = &tx->rs[i];
        uintptr_t l = atomic_load_explicit(&r->var->lock, memory_order_acquire);
        if (stm__lock_same(stm__lock_seen(l), r->lock))
            continue; /* (also: held by a body, this one's or another's) */
        if (STM__LOCKED(l) && owned_by(tx, l) &&
            stm__lock_same(STM__OWNER(l)->old & ~STM__HELD, r->lock))
            continue;
        tx->conflict_var = r->var;
        return false;
    }
    return true;
}

_Noreturn void stm__conflict(struct stm_tx *tx, stm_tvar *var)
{
    tx->conflict_var = var;
    stm__count(&tx->st.aborts_conflict);
    stm__jump(tx, STM__JUMP_CONFLICT);
}

_Noreturn void stm__nomem(struct stm_tx *tx)
{
    stm__jump(tx, STM__JUMP_NOMEM);
}

static void rs_push(struct stm_tx *tx, stm_tvar *var, uintptr_t l)
{
    if (STM__UNLIKELY(tx->rn == tx->rcap) &&
        !stm__grow((void **)&tx->rs, &tx->rcap, sizeof *tx->rs, tx->rn + 1))
        stm__nomem(tx);
    tx->rs[tx->rn].var = var;
    tx->rs[tx->rn].lock = l;
    tx->rn++;
}

/* var's value with the unlocked lock word it was read under, waiting a
 * little while a commit holds it (then a conflict).  A TVar with a side
 * record keeps its value there. */
static inline intptr_t read_stable(struct stm_tx *tx, stm_tvar *var, uintptr_t *lock)
{
    for (unsigned spins = 0;; spins++) {
        uintptr_t l1 = atomic_load_explicit(&var->lock, memory_order_acquire);
        intptr_t v = atomic_load_explicit(&var->value, memory_order_acquire);
        if (l1 & STM__XT)
            v = atomic_load_explicit(&((struct stm__tvx *)v)->value, memory_order_acquire);
        uintptr_t l2 = atomic_load_explicit(&var->lock, memory_order_relaxed);
        if (l1 == l2 && !STM__LOCKED(l1 = stm__lock_seen(l1))) {
            *lock = l1;
            return v;
        }
        if (spins >= STM__READ_SPIN)
            stm__conflict(tx, var);
        stm__cpu_relax();
    }
}

__attribute__((noinline)) static intptr_t read_slow(struct stm_tx *tx, stm_tvar *var)
{
    for (;;) {
        uintptr_t l1;
        intptr_t v = read_stable(tx, var, &l1);
        if (STM__VERSION(l1) > tx->snapshot) {
            /* Extend: everything read so far must still hold at `now`. */
            uint64_t now = atomic_load_explicit(&stm__g.clock, memory_order_acquire);
            if (!validate(tx))
                stm__conflict(tx, tx->conflict_var);
            tx->snapshot = now;
            /* Read `var` again under the new snapshot: the value in hand
             * may predate a commit that is at or below `now` but was
             * still writing back (the read set did not cover `var`). */
            continue;
        }
        rs_push(tx, var, l1);
        return v;
    }
}

/* read_special() with the write-set index, or when a watcher's fn read
 * from the write set needs more room to note the dependency. */
__attribute__((noinline)) static intptr_t read_special_more(struct stm_tx *tx, stm_tvar *var,
                                                            const struct stm__wentry *w)
{
    if (w == NULL) {
        w = ws_find(tx, var);
        if (w == NULL)
            return read_slow(tx, var);
    }
    if (STM__UNLIKELY(tx->watch_dep))
        stm__watch_dep_ws(tx, var, stm__bloom_bit(var)); /* a watcher read it: a dependency */
    return w->value;
}

/* Everything stm_read's fast path leaves out, tx being the running
 * transaction: a NULL TVar, read-after-write, a full read set.  (Every
 * call in it is a tail call, so that the common ways through it save no
 * registers.) */
__attribute__((noinline)) static intptr_t read_special(struct stm_tx *tx, stm_tvar *var)
{
    if (STM__UNLIKELY(var == NULL))
        stm__misuse("stm_read", "the TVar is NULL");
    const uint64_t bit = stm__bloom_bit(var);
    if (tx->wbloom & bit) {
        if (STM__UNLIKELY(tx->wn > WS_INDEX_AT))
            return read_special_more(tx, var, NULL);
        for (const struct stm__wentry *e = tx->ws + tx->wn; e-- > tx->ws;)
            if (e->var == var) {
                /* a watcher read it: a dependency */
                if (STM__UNLIKELY(tx->watch_dep) && !stm__watch_dep_ws_fast(tx, var, bit))
                    return read_special_more(tx, var, e);
                return e->value;
            }
    }
    return read_slow(tx, var);
}

/* A declared read-only attempt's read, when the TVar is locked or newer
 * than the snapshot: nothing was recorded, so the snapshot cannot be
 * extended; the attempt restarts with a fresh one (readonly.c). */
__attribute__((noinline)) static intptr_t read_ro_slow(struct stm_tx *tx, stm_tvar *var)
{
    uintptr_t l1;
    intptr_t v = read_stable(tx, var, &l1);
    if (STM__VERSION(l1) > tx->snapshot)
        stm__conflict(tx, var);
    return v;
}

/* tx is not the running normal transaction: a declared read-only
 * attempt's read (checked against the snapshot, recorded nowhere), or
 * misuse. */
__attribute__((noinline)) static intptr_t read_not_active(struct stm_tx *tx, stm_tvar *var)
{
    if (STM__UNLIKELY(tx != stm__ro))
        stm__check_tx_slow(tx, "stm_read"); /* diagnoses the handle */
    if (STM__UNLIKELY(var == NULL))
        stm__misuse("stm_read", "the TVar is NULL");
    uint64_t snapshot = tx->snapshot; /* (the acquire loads would reload it) */
    uintptr_t l1 = atomic_load_explicit(&var->lock, memory_order_acquire);
    intptr_t v = atomic_load_explicit(&var->value, memory_order_acquire);
    uintptr_t l2 = atomic_load_explicit(&var->lock, memory_order_relaxed);
    if (STM__UNLIKELY(l1 != l2) || STM__UNLIKELY(stm__lock_newer(l1, snapshot)))
        return read_ro_slow(tx, var);
    return v;
}

STM_API intptr_t stm_read(stm_tx *tx, stm_tvar *var)
{
    /* Two tests for all the rare cases, so that the common path has no
     * stack frame: every way out of it is a tail call. */
    if (STM__UNLIKELY(tx != stm__active))
        return read_not_active(tx, var);
    if (STM__UNLIKELY(var == NULL || tx->rn == tx->rcap ||
                      (tx->wbloom != 0 && (tx->wbloom & stm__bloom_bit(var)))))
        return read_special(tx, var);
    intptr_t v;
    if (STM__LIKELY(stm__read_fast(tx, var, &v)))
        return v;
    return read_slow(tx, var);
}

__attribute__((noinline)) static void write_special(struct stm_tx *tx, stm_tvar *var,
                                                    intptr_t value)
{
    stm__check_tx(tx, "stm_write");
    if (STM__UNLIKELY(var == NULL))
        stm__misuse("stm_write", "the TVar is NULL");
    uint64_t bit = stm__bloom_bit(var);
    if (tx->wbloom & bit) {
        struct stm__wentry *w = ws_find(tx, var);
        if (w) {
            struct stm__branch *br = tx->branch;
            if (br && (uint32_t)(w - tx->ws) < br->wn) {
                /* overwriting a value from before the or_else branch */
                if (!STM__VEC_RESERVE(tx->undo, tx->undo.n + 1))
                    stm__nomem(tx);
                tx->undo.v[tx->undo.n].idx = (uint32_t)(w - tx->ws);
                tx->undo.v[tx->undo.n].value = w->value;
                tx->undo.n++;
            }
            if (STM__UNLIKELY(tx->watch_round) && (uint32_t)(w - tx->ws) < tx->watch_mark)
                stm__watch_rewrite(tx, (uint32_t)(w - tx->ws));
            w->value = value;
            return;
        }
    }
    stm__ws_reserve1(tx);
    tx->wbloom |= bit;
    stm__ws_append(tx, var, value);
}

STM_API void stm_write(stm_tx *tx, stm_tvar *var, intptr_t value)
{
    /* stm__bloom_bit(var), by number, not mask: a bit test and a bit set */
    const unsigned b = (unsigned)((uintptr_t)var >> 4) & 63;
    if (STM__UNLIKELY(tx != stm__active || var == NULL || ((tx->wbloom >> b) & 1) ||
                      tx->wn == tx->wcap)) {
        write_special(tx, var, value);
        return;
    }
    tx->wbloom |= UINT64_C(1) << b;
    stm__ws_append(tx, var, value);
}

/* The innermost branch of the kind that takes a retry (or_else) or an
 * abort (catch), or NULL. */
static inline struct stm__branch *branch_of(struct stm_tx *tx, bool catch)
{
    struct stm__branch *br = tx->branch;
    while (br && br->catch != catch)
        br = br->outer;
    return br;
}

STM_API _Noreturn void stm_retry(stm_tx *tx)
{
    stm__check_tx(tx, "stm_retry");
    struct stm__branch *br = branch_of(tx, false);
    if (br) {
        if (STM__UNLIKELY(tx->prot != NULL) && stm__branch_outside_protect(tx, br)) {
            tx->pend_br = br; /* to the branch, through stm_protect() */
            stm__jump(tx, STM__JUMP_RETRY);
        }
        STM__LONGJMP(br->jb);
    }
    stm__jump(tx, STM__JUMP_RETRY);
}

STM_API _Noreturn void stm_abort(stm_tx *tx, int code)
{
    stm__check_tx_ro(tx, "stm_abort");
    tx->abort_code = code;
    struct stm__branch *br = tx == stm__active ? branch_of(tx, true) : NULL;
    if (br) {
        if (STM__UNLIKELY(tx->prot != NULL) && stm__branch_outside_protect(tx, br)) {
            tx->pend_br = br; /* to the branch, through stm_protect() */
            stm__jump(tx, STM__JUMP_ABORT);
        }
        STM__LONGJMP(br->jb);
    }
    stm__jump(tx, STM__JUMP_ABORT);
}

/* ---- begin / commit ---------------------------------------------------- */

/* The state that only some transactions touch (clocks, deadlines,
 * branches, hooks, allocations) is reset only after an attempt that
 * touched it: whoever uses it sets tx->extras. */
__attribute__((noinline)) void stm__reset_extras(struct stm_tx *tx)
{
    tx->undo.n = 0;
    tx->branch = NULL;
    stm__ws_forget(tx);
    tx->now_valid = false;
    tx->wall_now_valid = false;
    tx->deadline = STM_NEVER;
    tx->wall_deadline = STM_NEVER;
    tx->fdn.n = 0;
    tx->fdw.n = 0;
    if (tx->watch_work)
        stm__watch_reset(tx);
    /* after a conflict, stay on this path until a commit resets restarts */
    tx->extras = tx->restarts != 0;
    if (tx->fdhint && --tx->fdhint)
        tx->extras = 1; /* the attempt after a direct fd wait (fd_wait.c) */
    if (tx->restarts >= STM_SERIAL_AFTER && !tx->serial)
        stm__serial_enter(tx);
}

/* Write back and let go of a TVar that has a side record or waiters. */
__attribute__((noinline)) static void release_flagged(stm_tvar *var, const struct stm__wentry *w,
                                                      uintptr_t nl)
{
    if (w->old & STM__XT) {
        atomic_store_explicit(&stm__tvx_of(var)->value, w->value, memory_order_release);
        nl |= STM__XT;
    } else {
        atomic_store_explicit(&var->value, w->value, memory_order_release);
    }
    if (w->old & STM__WT)
        stm__waiters_release(var, nl);
    else
        atomic_store_explicit(&var->lock, nl, memory_order_release);
}

static void unlock_ws(struct stm__wentry *ws, struct stm__wentry *end)
{
    for (struct stm__wentry *w = ws; w < end; w++)
        atomic_store_explicit(&w->var->lock, w->old, memory_order_release);
}

/* How commit_core() ended: COMMIT_DONE, or COMMIT_FAILED (validation, or
 * a TVar stayed locked; the locks are let go), or COMMIT_WATCH: a TVar it
 * locked has watchers, the commit has not happened and the watcher path
 * takes over, keeping the locks taken so far (tx->watch_held; the last
 * one is that TVar's, its list read by the phase).  (An outcome apart from the
 * timestamp, so that the caller's test folds into each way out.) */
enum { COMMIT_DONE, COMMIT_FAILED, COMMIT_WATCH };

/* Commit a non-empty write set: on COMMIT_DONE, *stamp is the commit
 * timestamp.  (A read-only transaction needs no commit: its reads were
 * consistent at its snapshot, which is its serialisation point.)
 *
 * `watch`: the commit of a transaction that ran its watchers.  Entries
 * [data_n, wn) are only locked (watcher lists of those TVars change, see
 * watch.c): no new version, no wake-up.  A written TVar must still have the
 * watcher list the watcher phase saw (meta[i].head), else the phase missed a
 * watcher and the transaction runs again; entries [0, tx->watch_held) were
 * locked when the watchers were found and still are; `apply`: the phase
 * has registrations, timers or stops to change (stm__watch_apply, with
 * every lock held).  Without `watch`,
 * finding a watcher on a written TVar hands the commit to the watcher
 * path (COMMIT_WATCH).
 *
 * Inlined into its two callers (commit_attempt and commit_attempt_watch),
 * so that the common one does not pay for the other. */
__attribute__((always_inline)) static inline int commit_core(struct stm_tx *tx, bool watch,
                                                             uint32_t data_n,
                                                             const struct stm__wmeta *meta,
                                                             bool apply, uint64_t *stamp)
{
    /* locals: the atomics below are compiler barriers, and tx would be
     * reloaded around each of them */
    struct stm__wentry *const ws = tx->ws, *const end = ws + tx->wn;
    struct stm__wentry *const data_end = watch ? ws + data_n : end;
    /* (watch: entries the watcher phase kept locked are locked, and their
     * lists cannot have changed) */
    struct stm__wentry *const held_end = watch ? ws + tx->watch_held : ws;
    const struct stm__wmeta *m = watch ? meta + tx->watch_held : meta; /* w's (watch) */
    uintptr_t seen = 0; /* the lock words replaced, or'ed: any flags? */
    for (struct stm__wentry *w = held_end; w < end; w++) {
        stm_tvar *const var = w->var;
        uintptr_t o = w->old;
        if (STM__LIKELY(o & STM__HELD)) {
            /* locked by the write: now held by the commit, before the
             * clock moves (readers take a word held by a body, STM__BODY,
             * as the unlocked word it hides) */
            o &= ~STM__HELD;
            w->old = o;
            atomic_store_explicit(&var->lock, (uintptr_t)w | 1, memory_order_release);
            seen |= o;
            if (!watch)
                continue; /* (it had no flags: no watchers) */
        } else {
            for (unsigned spins = 0;; spins++) {
                uintptr_t l = atomic_load_explicit(&var->lock, memory_order_relaxed);
                if (STM__LOCKED(l)) {
                    if (spins < STM__LOCK_SPIN) {
                        stm__cpu_relax();
                        continue;
                    }
                    tx->conflict_var = var;
                    unlock_ws(ws, w);
                    tx->watch_held = 0;
                    return COMMIT_FAILED;
                }
                /* seq_cst: pairs with the waiter registration in retry.c */
                if (atomic_compare_exchange_weak_explicit(
                        &var->lock, &l, (uintptr_t)w | 1 | (l & STM__FLAGS), memory_order_seq_cst,
                        memory_order_relaxed)) {
                    w->old = l;
                    seen |= l;
                    break;
                }
            }
        }
        /* Watchers of a TVar change only under its lock, which we hold;
         * only a TVar with a side record can have any. */
        struct stm__wdep *h = NULL;
        if (STM__UNLIKELY(w->old & STM__XT))
            h = atomic_load_explicit(&stm__tvx_of(var)->watchers, memory_order_acquire);
        if (!watch) {
            if (STM__UNLIKELY(h != NULL)) {
                /* kept locked: the watcher phase reads this list */
                tx->watch_held = (uint32_t)(w - ws) + 1;
                return COMMIT_WATCH;
            }
        } else {
            if (w < data_end && h != m->head) {
                tx->conflict_var = var;
                unlock_ws(ws, w + 1);
                tx->watch_held = 0;
                return COMMIT_FAILED;
            }
            m++;
        }
    }
    uint64_t wv = atomic_fetch_add_explicit(&stm__g.clock, 1, memory_order_acq_rel) + 1;
    if (wv != tx->snapshot + 1 && !validate(tx)) {
        unlock_ws(ws, end);
        if (watch)
            tx->watch_held = 0;
        return COMMIT_FAILED;
    }
    if (watch) {
        tx->watch_held = 0; /* released with the rest below */
        if (apply)
            stm__watch_apply(tx, wv);
    }
    /* Committed.  Deferred callbacks are queued while the write set is
     * still locked, so a transaction that depends on this one queues
     * its own after these. */
    if (STM__UNLIKELY(tx->defers.n))
        stm__defers_queue(tx);
    /* Write back and release; wake retrying transactions, at the cost of
     * one load per TVar when nobody waits.  (Waking one before the next
     * TVar is released is fine: the woken thread just finds it locked.) */
    uintptr_t nl = STM__MKLOCK(wv);
    if (STM__LIKELY(!watch && !(seen & STM__FLAGS))) {
        for (struct stm__wentry *w = ws; w < end; w++) {
            stm_tvar *var = w->var;
            atomic_store_explicit(&var->value, w->value, memory_order_release);
            atomic_store_explicit(&var->lock, nl, memory_order_release);
        }
    } else {
        /* (watch: entries held through the phase, or given a record by
         * it, have flags that `seen` does not know of) */
        for (struct stm__wentry *w = ws; w < data_end; w++) {
            stm_tvar *var = w->var;
            if (STM__LIKELY(!(w->old & STM__FLAGS))) {
                atomic_store_explicit(&var->value, w->value, memory_order_release);
                atomic_store_explicit(&var->lock, nl, memory_order_release);
            } else {
                release_flagged(var, w, nl);
            }
        }
    }
    if (watch)
        unlock_ws(data_end, end);
    *stamp = wv;
    return COMMIT_DONE;
}

/* The attempt is over, committed or not: leave the epoch. */
static inline void end_attempt(struct stm_tx *tx)
{
    stm__active = &stm__no_tx;
    stm__epoch_clear(tx);
    if (STM__UNLIKELY(tx->serial))
        stm__serial_exit(tx);
}

/* What only some commits need: hooks, frees, deferred callbacks, the
 * virtual clock (and, as in stm__commit_end, reclamation). */
__attribute__((noinline)) void stm__finish_commit_slow(struct stm_tx *tx, uint64_t stamp)
{
    if (STM__UNLIKELY(tx->pend))
        stm__misuse("stm_atomically", "the body returned while its attempt was over (a jump "
                                      "was pending: call stm_resume)");
    tx->restarts = 0;
    tx->start_valid = false; /* the call is over */
    tx->fdhint = 0;
    tx->allocs.n = 0;
    tx->onabort.n = 0;
    if (tx->defers.n) /* a read-only commit */
        stm__defers_queue(tx);
    if (tx->frees.n)
        stm__frees_commit(tx, stamp);
    else
        stm__limbo_tick(tx);
    if (tx->after.n)
        stm__hooks_run_after(tx);
    if (tx->vtoken)
        stm__vclock_settle(tx); /* stm_clock_advance() may go on */
}

/* Block for stm_retry().  0: run the body again; < 0: give up with it.
 * The sleep ends at the earliest deadline the attempt recorded (or
 * stm_atomically_until's), or when a wall-clock one is due in real time. */
static int retry_block(struct stm_tx *tx, int64_t until)
{
    int64_t deadline = tx->deadline < until ? tx->deadline : until;
    bool wall = tx->wall_deadline < STM_NEVER;
    /* only the Waiter's waits may act on a cancellation (retry.c) */
    tx->cancel_state = stm__cancel_off();
    stm__count(&tx->st.retries);
    /* Register on everything read while the epoch still protects the
     * TVars, then leave the transaction (and serial mode) to sleep. */
    tx->after.n = 0;
    tx->frees.n = 0;
    stm__defers_discard(tx, 0);
    /* a change that comes within a moment needs no sleep (retryspin.c) */
    bool spun = stm__retry_spin(tx, deadline);
    /* stm_fd_ready() said no: sleep in ppoll() on the fds, or have the
     * reactor wake the waiter */
    bool direct = !spun && tx->fdn.n && stm__fd_direct_begin(tx);
    int r = spun ? 0 : direct ? stm__retry_register_on(tx) : stm__retry_register(tx);
    if (spun)
        stm__count(&tx->st.wakeups);
    if (r > 0 && tx->fdn.n && !direct)
        r = stm__reactor_wait_begin(tx);
    end_attempt(tx);
    if (r > 0) {
        /* listed first, then the wall clock read: a change of the time
         * after the read wakes the waiter */
        bool listed = wall && stm__wall_wait_begin(tx->waiter);
        int64_t real = STM_NEVER;
        if (wall)
            real = stm__sat_add(stm__mono_ns(), tx->wall_deadline - stm__wall_ns());
        r = stm__retry_sleep(tx, deadline, real, listed);
        if (listed)
            stm__wall_wait_end(tx->waiter);
        if (r == 0)
            stm__count(&tx->st.wakeups);
        else if (r == 1)
            stm__count(&tx->st.timer_fires);
    }
    stm__retry_unregister(tx);
    if (direct)
        stm__fd_direct_end(tx);
    else if (tx->fdn.n)
        stm__reactor_wait_end(tx);
    /* (only now: the wait nodes may be on TVars in these blocks) */
    stm__allocs_discard(tx, 0);
    stm__cancel_restore(tx->cancel_state);
    stm__count(&tx->st.aborts);
    stm__hooks_run_abort(tx, 0);
    if (r == -ENOMEM)
        stm__count(&tx->st.aborts_nomem);
    return r < 0 ? r : 0;
}

int stm__leave(struct stm_tx *tx, int ret)
{
    tx->restarts = 0;
    tx->start_valid = false;
    if (tx->vtoken)
        stm__vclock_settle(tx);
    return ret;
}

/* Discard the attempt: free its allocations; on_abort hooks run later
 * (they may start transactions, so only once the attempt's state is no
 * longer needed). */
void stm__discard(struct stm_tx *tx)
{
    stm__count(&tx->st.aborts);
    tx->after.n = 0;
    tx->frees.n = 0;
    stm__allocs_discard(tx, 0);
    stm__defers_discard(tx, 0);
}

static void backoff(struct stm_tx *tx)
{
    uint64_t x = tx->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    tx->rng = x;
    unsigned shift = tx->restarts < 10 ? tx->restarts : 10;
    unsigned n = (unsigned)(x % ((uint64_t)4 << shift));
    for (unsigned i = 0; i < n; i++)
        stm__cpu_relax();
}

/* After a conflict, once the attempt has ended (and stm__blame_conflict):
 * discard the attempt, run its on_abort hooks and back off before the
 * next. */
void stm__conflict_restart(struct stm_tx *tx)
{
    stm__discard(tx);
    if (tx->onabort.n)
        stm__hooks_run_abort(tx, 0);
    tx->restarts++;
    tx->extras = 1; /* stm__reset_extras() decides about serial mode */
    backoff(tx);
}

/* A commit that failed validation: another attempt. */
_Noreturn static void commit_failed(struct stm_tx *tx)
{
    stm__count(&tx->st.aborts_validate);
    stm__jump(tx, STM__JUMP_CONFLICT);
}

/* commit_attempt() with watchers: run them (watch_phase.c), commit in
 * watch mode. */
__attribute__((noinline)) static int commit_attempt_watch(struct stm_tx *tx, int r)
{
    struct stm__watchtx *x = stm__wx_get(tx);
    stm__watch_phase(tx, x);
    uint32_t data_n = x->data_n;
    uint64_t stamp;
    if (commit_core(tx, true, data_n, x->meta.v, x->apply, &stamp) != COMMIT_DONE)
        stamp = 0;
    else
        stm__watch_runs_ok(x); /* ends the retries of watchers that failed */
    stm__watch_committed(tx, x, data_n, stamp);
    if (STM__UNLIKELY(stamp == 0))
        commit_failed(tx);
    if (STM__UNLIKELY(tx->fdw.n))
        stm__reactor_watch(tx); /* fds that watcher fns asked about */
    end_attempt(tx);
    if (STM__UNLIKELY(tx->watch_work))
        stm__watch_finish(tx, stamp); /* stops wait for runs elsewhere */
    stm__commit_end(tx, stamp);
    return r;
}

/* The end of an attempt that wrote: commit it, or (it failed validation)
 * jump back for another.  Out of line, so that read-only attempts do not
 * save the registers it needs; the body's result passes through. */
__attribute__((noinline)) static int commit_attempt(struct stm_tx *tx, int r)
{
    /* (making, stopping or running a watcher writes its own TVar) */
    if (STM__UNLIKELY(tx->watch_work))
        return commit_attempt_watch(tx, r);
    uint64_t stamp;
    int how = commit_core(tx, false, 0, NULL, false, &stamp);
    if (STM__UNLIKELY(how != COMMIT_DONE)) {
        if (how == COMMIT_FAILED)
            commit_failed(tx);
        return commit_attempt_watch(tx, r);
    }
    end_attempt(tx);
    stm__commit_end(tx, stamp);
    return r;
}

/* An attempt from `stm__active = tx` on (begin's last step): the body,
 * then the commit. */
__attribute__((always_inline)) static inline int attempt_run(struct stm_tx *tx, void *arg,
                                                             stm_fn *fn)
{
    stm__active = tx;
    int r = fn(tx, arg);
    /* the same descriptor: read again rather than kept in a callee-saved
     * register (which this function would have to save) */
    tx = stm__self;
    if (tx->wn != 0)
        return commit_attempt(tx, r);
    end_attempt(tx);
    stm__commit_end(tx, tx->snapshot);
    return r;
}

/* The begin of an attempt, when its fast path (tx->extras clear, then
 * stm__snapshot_try()) did not do: the extras to reset, or a serial
 * transaction to wait for (stm__snapshot_try() has left the epoch). */
void stm__begin_slow(struct stm_tx *tx)
{
    if (tx->extras)
        stm__reset_extras(tx);
    else
        stm__serial_wait();
    stm__snapshot_begin(tx);
}

/* attempt(), when the begin needs more than the fast path. */
__attribute__((noinline)) static int attempt_slow(struct stm_tx *tx, void *arg, stm_fn *fn)
{
    stm__begin_slow(tx);
    return attempt_run(tx, arg, fn);
}

/* One attempt, from begin to the end of the commit; returns the body's
 * result.  A commit that fails validation jumps (STM__JUMP_CONFLICT), as
 * a conflict in the body does.  A function of its own, apart from the
 * setjmp in stm_atomically: a function that calls setjmp keeps its
 * variables in memory, and this is the hot path.  It calls nothing before
 * the body but through tail calls, and keeps nothing in callee-saved
 * registers across it, so it saves none.  (The parameters in the order
 * that leaves tx and arg where fn wants them.) */
__attribute__((noinline)) static int attempt(struct stm_tx *tx, void *arg, stm_fn *fn,
                                             stm__jmpbuf *jb)
{
    tx->jb = jb;
    tx->rn = 0;
    tx->wn = 0;
    tx->wbloom = 0;
    if (STM__UNLIKELY(tx->extras) || STM__UNLIKELY(!stm__snapshot_try(tx)))
        return attempt_slow(tx, arg, fn);
    return attempt_run(tx, arg, fn);
}

/* After a jump into stm_atomically: clean up after the watcher code that
 * was left, and say why. */
static int jumped(struct stm_tx *tx)
{
    int why = tx->jump;
    stm__ws_release_held(tx, tx->watch_held);
    if (tx->watch_work)
        tx->extras = 1; /* the next begin resets the watcher state */
    if (STM__UNLIKELY(tx->watch_held)) {
        /* left the watcher phase of a commit that kept locks */
        unlock_ws(tx->ws, tx->ws + tx->watch_held);
        tx->watch_held = 0;
    }
    if (STM__UNLIKELY(atomic_load_explicit(&tx->watch_cur, memory_order_relaxed)))
        stm__watch_abandon(tx); /* left in the middle of a watcher */
    return why;
}

/* The thread exits inside a body (pthread_exit(), or a cancellation acted
 * on at a cancellation point that the body or a watcher function called):
 * leave the attempt as a jump out of it would, so that nothing stays
 * locked (a watcher phase's write locks), published (the epoch) or
 * serial, and free what it allocated.  No stm_on_abort() hook runs: the
 * thread is going away (thread.c, at its exit). */
void stm__tx_abandon(struct stm_tx *tx)
{
    stm__ro = &stm__no_tx;
    jumped(tx);
    end_attempt(tx);
    stm__discard(tx);
    tx->onabort.n = 0;
}

/* again()'s `why`, besides STM__JUMP_*: no attempt has run yet; the
 * attempt was left by a jump (jumped() tells why). */
#define AGAIN_FIRST 0
#define AGAIN_JUMPED (-1)

/* stm_atomically but its first attempt: decide after an attempt that
 * ended for `why`, and run the next ones.  Also all of
 * stm_atomically_until (`until`, STM_NEVER for none).  Out of line, so
 * that stm_atomically (which calls setjmp, and so saves every register
 * and keeps its variables in memory) stays small. */
__attribute__((noinline)) static int again(struct stm_tx *tx, stm_fn *fn, void *arg, int64_t until,
                                           int why)
{
    stm__jmpbuf jb;
    int ret;
    if (why == AGAIN_FIRST) {
        /* stm_atomically_until: the call begins here */
        tx->start = stm__now();
        tx->start_valid = true;
    }
    for (;;) {
        if (why == AGAIN_JUMPED) {
            why = jumped(tx);
            stm__start_note(tx); /* a later attempt may ask for it */
        }
        switch (why) {
        case AGAIN_FIRST:
            break;
        case STM__JUMP_CONFLICT:
            stm__blame_conflict(tx);
            end_attempt(tx);
            stm__conflict_restart(tx);
            break;
        case STM__JUMP_RETRY:
            tx->restarts = 0;
            if (until < STM_NEVER && stm__now() >= until) {
                end_attempt(tx);
                ret = -ETIMEDOUT;
                goto give_up;
            }
            if (tx->rn == 0 && tx->deadline >= STM_NEVER && tx->wall_deadline >= STM_NEVER &&
                until >= STM_NEVER && tx->fdn.n == 0) {
                end_attempt(tx);
                ret = -EDEADLK;
                goto give_up;
            }
            ret = retry_block(tx, until);
            if (ret != 0)
                return stm__leave(tx, ret);
            break;
        case STM__JUMP_ABORT:
            stm__count(&tx->st.aborts_explicit);
            end_attempt(tx);
            ret = tx->abort_code;
            goto give_up;
        default: /* STM__JUMP_NOMEM */
            stm__count(&tx->st.aborts_nomem);
            end_attempt(tx);
            ret = -ENOMEM;
            goto give_up;
        }
        if (STM__SETJMP(jb) == 0) {
            ret = attempt(tx, arg, fn, &jb);
            stm__self->start_valid = false; /* committed: the call is over */
            return ret;
        }
        why = AGAIN_JUMPED;
    }
give_up:
    stm__discard(tx);
    stm__hooks_run_abort(tx, 0);
    return stm__leave(tx, ret);
}

/* The hot path: the setjmp (so it does nothing else) and the first
 * attempt; after a jump, again() takes over. */
STM_API int stm_atomically(stm_fn *fn, void *arg)
{
    if (STM__UNLIKELY(fn == NULL))
        stm__misuse("stm_atomically", "the body function is NULL");
    struct stm_tx *const tx = STM__LIKELY(stm__self != NULL) ? stm__self : stm__thread_init();
    if (STM__UNLIKELY(tx == NULL))
        return -ENOMEM;
    if (stm__in_body(tx)) {
        /* nested (also in stm_atomically_ro): join the enclosing
         * transaction (flat nesting) */
        return fn(tx, arg);
    }
    stm__jmpbuf jb;
    if (STM__LIKELY(STM__SETJMP(jb) == 0))
        return attempt(tx, arg, fn, &jb);
    return again(tx, fn, arg, STM_NEVER, AGAIN_JUMPED);
}

STM_API int stm_atomically_until(stm_fn *fn, void *arg, int64_t deadline)
{
    struct stm_tx *tx = stm__self ? stm__self : stm__thread_init();
    if (tx == NULL)
        return -ENOMEM;
    if (STM__UNLIKELY(fn == NULL))
        stm__misuse("stm_atomically_until", "the body function is NULL");
    if (stm__in_body(tx)) {
        /* nested: joins, as stm_atomically's, but a retry of its body
         * after its deadline ends it alone (orelse.c) */
        if (deadline >= STM_NEVER)
            return fn(tx, arg);
        return stm__until_nested(tx, fn, arg, deadline);
    }
    return again(tx, fn, arg, deadline, AGAIN_FIRST);
}
