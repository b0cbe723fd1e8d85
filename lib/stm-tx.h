/*
 * stm-tx.h - transactions: the per-thread descriptor, the global
 * state, epochs and the internal calls of the core (tx.c, readonly.c,
 * orelse.c, protect.c, hooks.c, alloc.c, reclaim.c, serial.c, stats.c,
 * thread.c; never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_TX_H
#define STM_TX_H

#include "stm-base.h"
#include "stm-fd.h"
#include "stm-tvar.h"
#include "stm-waiter.h"

/* ---- per-thread descriptor ------------------------------------------- */

struct stm__rentry {
    stm_tvar *var;
    uintptr_t lock;
};
struct stm__wentry {
    stm_tvar *var;
    intptr_t value;
    /* the lock word before this transaction locked it (only a locked
     * TVar's lock word leads to its entry); while the body runs: that
     * word | STM__HELD if the write locked it at once, 0 if not */
    uintptr_t old;
};
/* Encounter-time locking (tx.c).  The write that makes an entry also
 * tries to lock its TVar there and then, with one CAS, if the TVar is
 * unlocked and has no flags; the commit then only checks it.  On this
 * machine a locked instruction costs about 20 cycles that the work around
 * it hides, and a commit that takes its locks back to back cannot hide
 * (doc/benchmarks.md, micro).  A CAS that fails, or a TVar with waiters or
 * a side record, leaves the entry to the commit, as before.  An entry so
 * held has STM__HELD in `old` (an unlocked word never has bit 0): every
 * way out of the attempt lets such entries go (stm__ws_release_held),
 * and the commit clears the mark as it passes them.  Readers take such a
 * word as the one it replaced (STM__BODY in stm-tvar.h), so only what must
 * lock the TVar waits for it; if that is the holding thread itself (the
 * making of a side record: stm_tvar_set_name() in the body), it lets the
 * lock go (stm__unhold_own) and the entry becomes one the commit locks. */
#define STM__HELD ((uintptr_t)1)
struct stm__undo {
    uint32_t idx;
    intptr_t value;
};
struct stm__hook {
    void (*fn)(void *);
    void *arg;
};
struct stm__hookvec {
    struct stm__hook *v;
    uint32_t n, cap;
};
/* a stm_defer() callback: allocated in the body, queued at commit */
struct stm__deferred {
    struct stm__deferred *next;
    void (*fn)(void *);
    void *arg;
};
/* what a freed pointer is: a block (free()), a heap TVar, a watcher, a
 * TVar's side record; and, in an attempt's frees only, an embedded TVar
 * that stm_tvar_destroy() ends if the attempt commits */
enum {
    STM__FREE_BLOCK = 0,
    STM__FREE_TVAR = 1,
    STM__FREE_WATCH = 2,
    STM__FREE_TVX = 3,
    STM__DESTROY_TVAR = 4
};
struct stm__freed {
    void *ptr;
    uint64_t stamp; /* commit time after which it is unreachable */
    int kind;
};

struct stm__counters {
    _Atomic uint64_t commits, aborts, retries, wakeups, aborts_conflict, aborts_validate,
        aborts_explicit, aborts_nomem, serial_runs, reclaimed, timer_fires, watch_runs,
        watch_failures;
};

/* An stm_or_else() branch (catch == false: a stm_retry() in it jumps
 * here) or an stm_catch() part (catch == true: a stm_abort() in it jumps
 * here); each kind lets the other's jumps pass to an outer one. */
struct stm__branch {
    stm__jmpbuf jb;
    struct stm__branch *outer;
    bool catch;
    uint64_t wbloom;
    uint32_t wn, undo_n, after_n, abort_n, alloc_n, free_n, defer_n;
    uint32_t wnew_n, wstop_n; /* stm_watch_new / stm_unwatch so far */
};

/* why a body was left (stm_tx.jump); FALLBACK: a declared read-only
 * attempt called something only a normal transaction can do */
enum {
    STM__JUMP_CONFLICT = 1,
    STM__JUMP_RETRY,
    STM__JUMP_ABORT,
    STM__JUMP_NOMEM,
    STM__JUMP_FALLBACK
};

#define STM__VEC(T)                                                                                \
    struct {                                                                                       \
        T *v;                                                                                      \
        uint32_t n, cap;                                                                           \
    }

struct stm_tx {
    /* hot: touched by every read and write */
    uint64_t snapshot;
    struct stm__rentry *rs;
    uint32_t rn, rcap;
    struct stm__wentry *ws;
    uint32_t wn, wcap;
    uint64_t wbloom;
    stm__jmpbuf *jb;
    struct stm__branch *branch;
    int jump; /* STM__JUMP_*: why the last jump into stm_atomically */
    /* the attempt made, stopped or was asked to run a watcher: its commit
     * takes the watcher path (watch.c) */
    bool watch_work;
    /* in the commit's watcher phase: round number (reads served from the
     * write set are logged while watch_dep; rewrites of entries below
     * watch_mark are logged) */
    bool watch_dep;
    uint32_t watch_round, watch_mark;
    /* the watcher whose fn or cb runs now, if any: published for
     * stm_unwatch, which waits until no thread runs the watcher it stops */
    _Atomic(struct stm_watch *) watch_cur;
    struct stm__watchtx *wx; /* watcher bookkeeping, made on first use */
    /* write-set entries [0, watch_held) stay locked through the watcher
     * phase: the commit that found watchers on them did not let go */
    uint32_t watch_held;

    /* published epoch: the snapshot this thread's running transaction
     * started from, 0 when it runs none (read by reclamation and serial
     * mode) */
    _Atomic uint64_t epoch;

    uint32_t extras;       /* non-zero once the attempt used anything below */
    int64_t now, wall_now; /* the attempt's clocks, read on first use */
    bool now_valid, wall_now_valid;
    int64_t deadline;      /* earliest stm_elapsed() deadline not yet come */
    int64_t wall_deadline; /* likewise for stm_elapsed_wall() */
    /* stm_tx_start(): when the outermost call began, once noted; valid
     * only inside that call (every way out of it clears it) */
    int64_t start;
    bool start_valid;
    unsigned long slack; /* the thread's own timer slack, 0 = unknown */
    int cancel_state;    /* the program's, while stm_retry() waits */
    bool vtoken;         /* woken by stm_clock_advance(), not yet settled */
    bool serial;
    int abort_code;
    uint32_t restarts; /* consecutive conflict restarts */
    /* stm_atomically_ro() calls still to run as normal transactions after
     * a read-only attempt met a conflict (readonly.c) */
    uint32_t ro_normal;
#define STM__RO_NORMAL_RUN 64 /* how many, after each such conflict */
    uint64_t rng;
    stm_tvar *conflict_var;

    /* an index of the write set (open addressing: entry number + 1), made
     * once it is large enough that searching it costs: entries [0,
     * wsidx_n) are in it; reset with the extras */
    uint32_t *wsidx;
    uint32_t wsidx_cap, wsidx_n;

    STM__VEC(struct stm__undo) undo;
    struct stm__hookvec after;
    struct stm__hookvec onabort;
    STM__VEC(struct stm__deferred *) defers;
    STM__VEC(void *) allocs;
    STM__VEC(struct stm__freed) frees; /* this attempt's stm_free()s */
    STM__VEC(struct stm__freed) limbo; /* committed, awaiting grace */
    uint32_t limbo_head;               /* limbo.v[0, limbo_head) freed already */
    uint32_t limbo_next;               /* try to reclaim at this size */
    uint32_t limbo_age;                /* commits since the last pass or free */
    STM__VEC(struct stm__waitnode) nodes;
    /* stm_fd_ready() said no: the attempt's fd interests (a retry waits for
     * them too), and those of watcher fns (registered at commit); reset
     * with the extras */
    STM__VEC(struct stm__fdnode) fdn;
    STM__VEC(struct stm__fdwant) fdw;
    struct stm__waiter *fdwaiter, *fdsaved; /* fd_wait.c */
    uint32_t fdhint; /* 1: this attempt may answer from the ppoll() that woke it */

    struct stm__waiter *waiter;
    struct stm__counters st;
    /* st as stm_shutdown() found it: counts are reported from there on
     * (written and read under stm__reg_lock, by other threads) */
    struct stm_stats st_base;
    struct stm_tx *reg_next, *reg_prev; /* registry, under stm__reg_lock */

    /* the restart that unwinds (protect.c): the innermost stm_protect()
     * running, and a jump put off (pend: STM__JUMP_*, 0 for none; pend_br:
     * its branch, NULL for the transaction's target; the hidden write-set
     * length; whether the attempt is a declared read-only one) */
    struct stm__prot *prot;
    struct stm__branch *pend_br;
    int pend;
    uint32_t pend_wn;
    bool pend_ro;

    struct stm__rspin rspin; /* retryspin.c */
};

/* An stm_protect() call: the jump target it put in place of outer_jb,
 * and the branch that was innermost when it began. */
struct stm__prot {
    stm__jmpbuf jb;
    stm__jmpbuf *outer_jb;
    struct stm__branch *branch;
    struct stm__prot *outer;
};
/* protect.c: a branch function returned while a jump is pending: if it
 * goes to branch br, take it (true; the caller rolls back to br) */
bool stm__pending_take_for(struct stm_tx *tx, struct stm__branch *br);
/* stm_retry / stm_abort inside stm_protect(): br lies outside the
 * innermost stm_protect() (its jump must go through that) */
bool stm__branch_outside_protect(struct stm_tx *tx, struct stm__branch *br);

/* The calling thread's descriptor, NULL before its first transaction. */
extern _Thread_local struct stm_tx *stm__self __attribute__((tls_model("initial-exec")));
/* The calling thread's descriptor while it runs a transaction, else
 * &stm__no_tx (never NULL): so "is tx the caller's running transaction?"
 * is one compare, which also rejects NULL. */
extern _Thread_local struct stm_tx *stm__active __attribute__((tls_model("initial-exec")));
/* The calling thread's descriptor while it runs a declared read-only
 * attempt (stm_atomically_ro), else &stm__no_tx.  stm__active is then
 * &stm__no_tx, so every operation's one-compare check fails and lands in
 * its slow path, which looks here (readonly.c). */
extern _Thread_local struct stm_tx *stm__ro __attribute__((tls_model("initial-exec")));
extern struct stm_tx stm__no_tx;

/* Whether the calling thread, whose descriptor is tx (not NULL), is
 * inside a body, of a normal or of a declared read-only transaction: that
 * is exactly while its epoch is published (the clock starts at 1, so a
 * published epoch is never 0).  Decides nesting, with one load. */
static inline bool stm__in_body(struct stm_tx *tx)
{
    return atomic_load_explicit(&tx->epoch, memory_order_relaxed) != 0;
}

struct stm_tx *stm__thread_init(void);
void stm__global_init(void);

/* ---- global state ------------------------------------------------------ */

struct stm__global {
    _Alignas(STM__CACHELINE) _Atomic uint64_t clock;  /* TL2 global version clock */
    _Alignas(STM__CACHELINE) _Atomic uint32_t serial; /* 1 while a serial transaction runs */
    /* membarrier() registered: epochs may be published with a plain store.
     * Set once registration has succeeded, cleared if a barrier fails. */
    _Alignas(STM__CACHELINE) _Atomic bool fast_epoch;
    bool stats_env;                                   /* STM_STATS=1 */
    _Alignas(STM__CACHELINE) _Atomic bool virtual_on; /* the virtual clock */
    _Atomic int64_t virtual_now;
};
extern struct stm__global stm__g;

/* The library's monotonic now: the virtual clock when it is on. */
static inline int64_t stm__now(void)
{
    if (STM__UNLIKELY(atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)))
        return atomic_load_explicit(&stm__g.virtual_now, memory_order_acquire);
    return stm__mono_ns();
}

/* registry of live descriptors (for reclamation, serial mode, stats) */
extern pthread_mutex_t stm__reg_lock;
extern struct stm_tx *stm__reg_head;

/* ---- epochs ----------------------------------------------------------
 * Publishing an epoch is a plain store: reclamation and serial mode pay
 * for the ordering with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), so
 * the begin path has no fence.  Without membarrier (or under TSan, which
 * cannot see it) the store is sequentially consistent. */
static inline void stm__epoch_publish(struct stm_tx *tx, uint64_t e)
{
#ifdef STM__TSAN
    /* TSan does not model fences; it checks happens-before only. */
    atomic_store_explicit(&tx->epoch, e, memory_order_seq_cst);
#else
    atomic_store_explicit(&tx->epoch, e, memory_order_release);
    if (STM__LIKELY(atomic_load_explicit(&stm__g.fast_epoch, memory_order_relaxed)))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}
static inline void stm__epoch_clear(struct stm_tx *tx)
{
    atomic_store_explicit(&tx->epoch, 0, memory_order_release);
}
/* The other side of stm__epoch_publish: a full barrier on every thread;
 * false if it could not be had (then the scan must not be trusted). */
bool stm__heavy_barrier(void);

/* ---- transactions (internal) ------------------------------------------- */

_Noreturn void stm__nomem(struct stm_tx *tx);
/* var is locked or changed under the attempt: count it, run again */
_Noreturn void stm__conflict(struct stm_tx *tx, stm_tvar *var);
_Noreturn static inline void stm__jump(struct stm_tx *tx, int why)
{
    tx->jump = why;
    STM__LONGJMP(*tx->jb);
}
_Noreturn void stm__misuse(const char *func, const char *what);
/* tx is not the running (normal) transaction: if it runs a declared
 * read-only attempt, fall back (does not return: the body runs again as
 * a normal transaction); otherwise diagnose the misuse. */
_Noreturn void stm__check_tx_slow(struct stm_tx *tx, const char *func);
/* For the operations only a normal transaction can do. */
static inline void stm__check_tx(struct stm_tx *tx, const char *func)
{
    if (STM__UNLIKELY(tx != stm__active))
        stm__check_tx_slow(tx, func);
}
/* stm_read()'s fast path, for tx the running transaction: a TVar that is
 * unlocked and not newer than the snapshot, with room in the read set,
 * is recorded there and *out is its value (true); false: nothing done.
 * (Whether tx wrote var is the caller's to check.) */
static inline bool stm__read_fast(struct stm_tx *tx, stm_tvar *var, intptr_t *out)
{
    /* (read before the acquire loads, which would have them reloaded) */
    const uint32_t n = tx->rn;
    struct stm__rentry *const r = &tx->rs[n];
    const uint64_t snapshot = tx->snapshot;
    uintptr_t l1 = atomic_load_explicit(&var->lock, memory_order_acquire);
    intptr_t v = atomic_load_explicit(&var->value, memory_order_acquire);
    uintptr_t l2 = atomic_load_explicit(&var->lock, memory_order_relaxed);
    if (STM__UNLIKELY(l1 != l2) || STM__UNLIKELY(stm__lock_newer(l1, snapshot)))
        return false;
    r->var = var;
    r->lock = l1;
    tx->rn = n + 1;
    *out = v;
    return true;
}
/* stm_read() for the library's own reads inside the running transaction
 * tx, of a TVar that is not NULL: the fast path inline, the rest by
 * stm_read(). */
static inline intptr_t stm__read_in(struct stm_tx *tx, stm_tvar *var)
{
    intptr_t v;
    if (STM__LIKELY(tx->rn != tx->rcap && !(tx->wbloom & stm__bloom_bit(var)) &&
                    stm__read_fast(tx, var, &v)))
        return v;
    return stm_read(tx, var);
}
/* For those a declared read-only attempt may do as well (stm_abort, the
 * hooks, stm_defer, the attempt's clocks). */
static inline void stm__check_tx_ro(struct stm_tx *tx, const char *func)
{
    if (STM__UNLIKELY(tx != stm__active) && tx != stm__ro)
        stm__check_tx_slow(tx, func);
}

/* Append an entry for var (not in the write set; room checked) and try
 * to lock var at once (see STM__HELD). */
static inline void stm__ws_append(struct stm_tx *tx, stm_tvar *var, intptr_t value)
{
    struct stm__wentry *w = &tx->ws[tx->wn++];
    w->var = var;
    w->value = value;
    uintptr_t l = atomic_load_explicit(&var->lock, memory_order_relaxed);
    uintptr_t old = 0;
    /* seq_cst: pairs with the waiter registration in retry.c, as the
     * commit's */
    if (STM__LIKELY(!(l & (1 | STM__FLAGS))) &&
        STM__LIKELY(atomic_compare_exchange_strong_explicit(
            &var->lock, &l, l | 1 | STM__BODY, memory_order_seq_cst, memory_order_relaxed)))
        old = l | STM__HELD;
    w->old = old;
}
/* Let go of the entries [from, tx->wn) that the writes locked (an attempt
 * or a branch is left). */
void stm__ws_release_held(struct stm_tx *tx, uint32_t from);

/* Shared by stm_atomically (tx.c) and stm_atomically_ro (readonly.c). */
/* A conflict: count it on the TVar that caused it, if it has a record
 * (every named one has: only those are reported).  The attempt's epoch
 * must still protect that TVar from reclamation. */
static inline void stm__blame_conflict(struct stm_tx *tx)
{
    if (tx->conflict_var) {
        struct stm__tvx *x = stm__tvx_peek(tx->conflict_var);
        if (x)
            atomic_fetch_add_explicit(&x->conflicts, 1, memory_order_relaxed);
    }
    tx->conflict_var = NULL;
}
void stm__reset_extras(struct stm_tx *tx);
/* stm_tx_start(): note the outermost call's start, if not yet noted, as
 * the attempt's now (an attempt that has just ended: its own now if it
 * read one, else the clock) */
static inline void stm__start_note(struct stm_tx *tx)
{
    if (!tx->start_valid) {
        tx->start = tx->now_valid ? tx->now : stm__now();
        tx->start_valid = true;
    }
}
/* a nested stm_atomically_until() (orelse.c) */
int stm__until_nested(struct stm_tx *tx, stm_fn *fn, void *arg, int64_t deadline);
void stm__finish_commit_slow(struct stm_tx *tx, uint64_t stamp);

/* statistics: single-writer counters, read by stm_stats_get() */
static inline void stm__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
void stm__stats_fold(struct stm_tx *tx); /* a descriptor going away */
void stm__stats_atexit(void);
void stm__stats_reset(void);

/* reclamation (reclaim.c): a pass runs once the limbo has grown by a
 * batch of frees, or after STM__RECLAIM_IDLE commits that added none
 * (force); it may use a barrier if forced or once STM__RECLAIM_BARRIER_AT
 * frees are pending */
void stm__reclaim(struct stm_tx *tx, bool force);
void stm__limbo_push(struct stm_tx *tx, void *ptr, int kind, uint64_t stamp);
void stm__reclaim_thread_exit(struct stm_tx *tx);
void stm__reclaim_shutdown(void);
void stm__free_now(void *ptr, int kind);
void stm__membarrier_setup(void);
uint64_t stm__reclaimed_orphans(void);
#define STM__RECLAIM_BATCH 128
#define STM__RECLAIM_IDLE 256
#define STM__RECLAIM_BARRIER_AT (4 * STM__RECLAIM_BATCH)

/* A commit that freed nothing: while frees wait in the limbo, a pass
 * once STM__RECLAIM_IDLE such commits in a row have gone by (the frees
 * have stopped). */
static inline void stm__limbo_tick(struct stm_tx *tx)
{
    if (STM__UNLIKELY(tx->limbo.n != 0) && ++tx->limbo_age >= STM__RECLAIM_IDLE)
        stm__reclaim(tx, true);
}

/* The end of every committed call, normal or declared read-only: count
 * it; the extras (hooks, frees, deferred callbacks, the virtual clock) if
 * the attempt used any; else the limbo's tick. */
static inline void stm__commit_end(struct stm_tx *tx, uint64_t stamp)
{
    stm__count(&tx->st.commits);
    if (STM__UNLIKELY((tx->extras | tx->vtoken) != 0))
        stm__finish_commit_slow(tx, stamp);
    else
        stm__limbo_tick(tx);
}
void stm__discard(struct stm_tx *tx);
void stm__conflict_restart(struct stm_tx *tx);
void stm__tx_abandon(struct stm_tx *tx); /* the thread exits inside a body */
int stm__leave(struct stm_tx *tx, int ret);

/* hooks */
void stm__hooks_run_after(struct stm_tx *tx);
void stm__hooks_run_abort(struct stm_tx *tx, uint32_t from);
/* stm_defer (dispatch.c): queue a committed attempt's callbacks in
 * commit order (called before the commit's locks are released); free a
 * discarded attempt's from index `from` on */
void stm__defers_queue(struct stm_tx *tx);
void stm__defers_discard(struct stm_tx *tx, uint32_t from);
void stm__dispatch_shutdown(void);

#endif
