/*
 * readonly.c - stm_atomically_ro: declared read-only transactions.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A body that promises not to write needs no read set.  Each read is
 * checked against the snapshot taken at begin (tx.c, read_not_active) and
 * recorded nowhere: every value the body sees was current at the
 * snapshot, which is the transaction's serialisation point, so the commit
 * has nothing to validate and nothing to lock.  Without a read set the
 * snapshot cannot be extended (that would mean re-validating the earlier
 * reads), so a read that meets a TVar newer than the snapshot, or one that
 * stays locked, restarts the attempt.  The body then runs as a normal
 * transaction, which can extend, and which has the serial-mode guarantee
 * of progress; so do the thread's next STM__RO_NORMAL_RUN calls, since a
 * thread whose reads met one concurrent commit is likely to meet more (a
 * long lookup in a list that others update: recording the reads costs
 * less than restarting).
 *
 * While a read-only attempt runs, stm__ro (not stm__active) names the
 * descriptor.  So every operation's one-compare "is tx the running
 * transaction?" test fails, and the decision is made in its slow path:
 *   - stm_read: the read-only read;
 *   - stm_abort, stm_after_commit, stm_on_abort, stm_defer, stm_tx_now,
 *     stm_tx_wall_now (and the stm_elapsed pair): accepted as they are
 *     (stm__check_tx_ro);
 *   - everything else that takes tx (stm_write, stm_retry, stm_or_else,
 *     stm_alloc, stm_free, and stm_tvar_free in a body): the attempt falls
 *     back (stm__check_tx_slow jumps here with STM__JUMP_FALLBACK), is
 *     discarded, and the body runs again from the start under
 *     stm_atomically().  A retry in particular needs the read set to wait
 *     on, and the deadlines recorded by stm_elapsed() with it.
 * Normal transactions pay nothing for any of this.  Nesting is decided by
 * the published epoch (stm__in_body), which both kinds of attempt have, so
 * a stm_atomically() inside a read-only body joins it.
 *
 * The hot path is stm_atomically_ro() (the setjmp, which makes its caller
 * save every callee-saved register and keep its variables in memory, so
 * it does nothing else) and ro_attempt(); what happens after a jump is
 * out of line in ro_again(), which ends the call (a conflict or a
 * fall-back runs the body again under stm_atomically()).
 */
#define _GNU_SOURCE
#include <errno.h>

#include "stm-internal.h"

static inline void ro_end(struct stm_tx *tx)
{
    stm__ro = &stm__no_tx;
    stm__epoch_clear(tx);
    if (STM__UNLIKELY(tx->serial))
        stm__serial_exit(tx);
}

/* A read-only attempt from `stm__ro = tx` on (its begin's last step) to
 * the commit, which is the end of the epoch. */
__attribute__((always_inline)) static inline int ro_run(struct stm_tx *tx, void *arg, stm_fn *fn)
{
    stm__ro = tx;
    int r = fn(tx, arg);
    /* the same descriptor: read again rather than kept in a callee-saved
     * register (which ro_attempt would have to save) */
    tx = stm__self;
    ro_end(tx);
    stm__commit_end(tx, tx->snapshot);
    return r;
}

/* ro_attempt(), when the begin needs more than its fast path, or the
 * thread's read-only calls run as normal transactions for now. */
__attribute__((noinline)) static int ro_attempt_slow(struct stm_tx *tx, void *arg, stm_fn *fn)
{
    if (tx->ro_normal != 0) {
        /* (the jump buffer set for this attempt is not used again: the
         * normal transaction sets its own and ends before returning) */
        tx->ro_normal--;
        return stm_atomically(fn, arg);
    }
    stm__begin_slow(tx);
    return ro_run(tx, arg, fn);
}

/* One attempt, begin to commit.  Out of line, apart from the setjmp, as
 * attempt() in tx.c (the parameters in the order that leaves tx and arg
 * where fn wants them). */
__attribute__((noinline)) static int ro_attempt(struct stm_tx *tx, void *arg, stm_fn *fn,
                                                stm__jmpbuf *jb)
{
    tx->jb = jb;
    if (STM__UNLIKELY(tx->extras | tx->ro_normal) || STM__UNLIKELY(!stm__snapshot_try(tx)))
        return ro_attempt_slow(tx, arg, fn);
    return ro_run(tx, arg, fn);
}

/* The read-only attempt was left by a jump: end it, and finish the call.
 * Out of line, so that stm_atomically_ro() (which calls setjmp, and so
 * keeps its variables in memory) stays small. */
__attribute__((noinline)) static int ro_again(struct stm_tx *tx, stm_fn *fn, void *arg)
{
    int why = tx->jump, ret;
    stm__start_note(tx); /* the normal transaction below may ask */
    if (why == STM__JUMP_CONFLICT)
        stm__blame_conflict(tx);
    ro_end(tx);
    switch (why) {
    case STM__JUMP_CONFLICT:
        stm__conflict_restart(tx);
        /* This thread's reads meet concurrent commits: for a while, read
         * with a read set, which can extend the snapshot instead */
        tx->ro_normal = STM__RO_NORMAL_RUN;
        break;
    case STM__JUMP_FALLBACK:
        stm__discard(tx);
        stm__hooks_run_abort(tx, 0);
        break;
    case STM__JUMP_ABORT:
        stm__count(&tx->st.aborts_explicit);
        ret = tx->abort_code;
        goto give_up;
    default: /* STM__JUMP_NOMEM; stm_retry() falls back instead */
        stm__count(&tx->st.aborts_nomem);
        ret = -ENOMEM;
        goto give_up;
    }
    /* Again from the start, as a normal transaction; a conflict restart
     * counts towards its serial mode. */
    return stm_atomically(fn, arg);
give_up:
    stm__discard(tx);
    stm__hooks_run_abort(tx, 0);
    return stm__leave(tx, ret);
}

STM_API int stm_atomically_ro(stm_fn *fn, void *arg)
{
    struct stm_tx *const tx = STM__LIKELY(stm__self != NULL) ? stm__self : stm__thread_init();
    if (STM__UNLIKELY(tx == NULL))
        return -ENOMEM;
    if (STM__UNLIKELY(fn == NULL))
        stm__misuse("stm_atomically_ro", "the body function is NULL");
    if (STM__UNLIKELY(stm__in_body(tx)))
        return fn(tx, arg); /* nested: join the enclosing transaction */
    stm__jmpbuf jb;
    if (STM__LIKELY(STM__SETJMP(jb) == 0))
        return ro_attempt(tx, arg, fn, &jb);
    return ro_again(tx, fn, arg);
}
