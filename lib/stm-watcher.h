/*
 * stm-watcher.h - watchers as the rest of the library sees them: the
 * watcher and its registrations, and what commits and the clocks call
 * (watch*.c has more of its own in watch.h; never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_WATCHER_H
#define STM_WATCHER_H

#include "stm-timer.h"
#include "stm-tx.h"

/* ---- watchers (watch.c) -------------------------------------------------- */

/* A watcher's registration on one TVar: a node of that TVar's list. */
struct stm__wdep {
    _Atomic(stm_tvar *) var;
    struct stm__wdep *next, *prev; /* with var's lock held */
    struct stm_watch *w;
};

struct stm_watch {
    /* Its own TVar: every run reads it, and a run that changes the
     * watcher (its registrations, its timer, the last value given to a
     * CHANGES_ONLY cb, which is self's value) and the stop write it, so
     * that such commits are serialised by the TL2 machinery.  The fields
     * below change only in a commit that holds self.lock. */
    struct stm_tvar self;
    struct stm__timer timer;
    stm_watch_fn *fn;
    stm_watch_cb *cb;
    void *arg;
    /* the TVars fn read on its last run, sorted by address: &dep0 when
     * one, an array of its own when more, NULL when none */
    _Atomic(struct stm__wdep *) deps;
    _Atomic uint32_t ndeps;
    uint8_t flags;          /* STM_WATCH_* */
    _Atomic uint8_t alone;  /* a run of its own in progress: 0, or whose (watch.c) */
    _Atomic uint8_t dead;   /* stopped (set in the stopping commit) */
    _Atomic uint8_t slot;   /* holds a reserved timer-heap slot */
    _Atomic uint64_t armed; /* the timer's arming (its seq), 0 for none */
    struct stm__wdep dep0;
};

/* Room for one more write-set entry (jumps with ENOMEM); entries held
 * locked through the watcher phase follow the set if it moves. */
void stm__ws_reserve1(struct stm_tx *tx);
/* per write-set entry, in the watcher phase */
struct stm__wmeta {
    struct stm__wdep *head; /* the TVar's list as the phase saw it */
    uint32_t round;         /* the round that this write triggers */
};

/* called by commit in watch mode, all locks held and validated, if
 * the watcher phase said it has work */
void stm__watch_apply(struct stm_tx *tx, uint64_t wv);
/* after the commit (end_attempt done), if tx->watch_work: stops, frees */
void stm__watch_finish(struct stm_tx *tx, uint64_t wv);
/* the attempt is discarded (any jump out) */
void stm__watch_abandon(struct stm_tx *tx);
void stm__watch_reset(struct stm_tx *tx); /* next attempt */
void stm__watch_branch_mark(struct stm_tx *tx, struct stm__branch *br);
void stm__watch_branch_rollback(struct stm_tx *tx, struct stm__branch *br);
void stm__watch_rewrite(struct stm_tx *tx, uint32_t idx); /* ws[idx] written again */
void stm__watch_reclaim(struct stm_watch *w);             /* final free */
/* A run of w in a transaction of its own, as a deadline run but for no
 * arming in particular (an fd it waited for is ready, a retry is due);
 * the caller keeps w alive (stm__reactor_forget() waits for it). */
void stm__watch_run_now(struct stm_watch *w);
/* a seed's `armed` for such a run: never stale */
#define STM__ARMED_ANY UINT64_MAX
void stm__watchtx_free(struct stm_tx *tx);
bool stm__ws_has(struct stm_tx *tx, stm_tvar *var);      /* var is in the write set */
int64_t stm__ws_index(struct stm_tx *tx, stm_tvar *var); /* its entry, or -1 */
void stm__ws_forget(struct stm_tx *tx);                  /* entries were dropped */

/* stm_free / stm_tvar_free inside a transaction: done if it commits */
void stm__frees_push(struct stm_tx *tx, void *ptr, int kind);
/* allocation lists at the end of an attempt */
void stm__allocs_discard(struct stm_tx *tx, uint32_t from);
void stm__frees_commit(struct stm_tx *tx, uint64_t stamp);

/* retry: make sure the thread has a waiter, arm it, register a wait node
 * on every TVar the attempt read, then check that none has changed.
 * Returns 1 if the thread should sleep, 0 if a read TVar changed already,
 * or -errno (-ENOMEM, or the backend's error such as -EMFILE).
 * unregister() removes whatever register() added. */
int stm__retry_register(struct stm_tx *tx);
/* stm__sleep() for stm_retry(), with a cleanup handler: a thread cancelled
 * in the wait leaves the wall-clock list (listed), unregisters its wait
 * nodes, settles a virtual-clock token and discards the attempt (its
 * stm_on_abort() hooks run) before it exits. */
int stm__retry_sleep(struct stm_tx *tx, int64_t deadline, int64_t real, bool listed);
int stm__retry_register_on(struct stm_tx *tx); /* on tx->waiter as it is */
void stm__retry_unregister(struct stm_tx *tx);
/* A commit lets go of var, whose lock word it replaced had STM__WT: store
 * the lock word nl (keeping STM__WT if waiters remain) and wake them. */
void stm__waiters_release(stm_tvar *var, uintptr_t nl);
/* Whether a TVar the attempt read has changed (or is being committed)
 * since: with the wait nodes registered, a commit it misses will notify
 * the waiter. */
bool stm__retry_changed(struct stm_tx *tx);
void stm__waiters_detach(stm_tvar *var); /* before var's memory is freed */
void stm__waiters_wake_all(stm_tvar *var);

/* the virtual clock (vclock.c) */
enum { STM__VWAIT_NOTIFIED = 0, STM__VWAIT_FIRED, STM__VWAIT_REAL, STM__VWAIT_TIMEOUT };
/* A timed wait under the virtual clock, also ended by the real-time
 * deadline `real` (STM_NEVER for none): NOTIFIED, FIRED (the virtual
 * deadline came; the caller holds a settle token), TIMEOUT (`real` passed),
 * REAL (the clock went real: wait by real time until *rebased), -ENOMEM. */
int stm__vclock_wait(struct stm_tx *tx, struct stm__waiter *w, int64_t deadline, int64_t real,
                     int64_t *rebased);
void stm__vclock_settle(struct stm_tx *tx);
void stm__vclock_shutdown(void);

/* waits on wall-clock deadlines (wallclock.c): list the waiter so that a
 * change of the system time wakes it; false if it could not be listed */
bool stm__wall_wait_begin(struct stm__waiter *w);
void stm__wallclock_watch(void); /* watchers read wall deadlines: watch for changes */
void stm__wall_wait_end(struct stm__waiter *w);
void stm__wallclock_shutdown(void);

/* serial (irrevocable) mode */
void stm__serial_enter(struct stm_tx *tx);
void stm__serial_exit(struct stm_tx *tx);
void stm__serial_wait(void);

/* Take the snapshot and publish it as the epoch, unless a serial
 * transaction runs (and this is not it): then leave the epoch, false. */
static inline bool stm__snapshot_try(struct stm_tx *tx)
{
    uint64_t c = atomic_load_explicit(&stm__g.clock, memory_order_acquire);
    stm__epoch_publish(tx, c);
    if (STM__LIKELY(!atomic_load_explicit(&stm__g.serial, memory_order_acquire)) || tx->serial) {
        tx->snapshot = c;
        return true;
    }
    stm__epoch_clear(tx);
    return false;
}

/* Begin an attempt: take the snapshot and publish it as the epoch, once
 * no serial transaction runs (or this is the serial one). */
static inline void stm__snapshot_begin(struct stm_tx *tx)
{
    while (!stm__snapshot_try(tx))
        stm__serial_wait();
}
/* The begin of an attempt (tx.c, readonly.c) in two parts: inline, with
 * tx->jb set, if (!tx->extras && stm__snapshot_try(tx)); else (out of
 * line, and best in a tail call, so that the hot path saves no registers
 * for the call) stm__begin_slow(), which resets the extras or waits for
 * the serial transaction, then takes the snapshot. */
void stm__begin_slow(struct stm_tx *tx);

#endif
