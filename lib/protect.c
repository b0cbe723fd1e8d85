/*
 * protect.c - the restart that unwinds: library calls that report "this
 * attempt is over" to their caller instead of jumping out of it, for C++
 * and other languages' bindings, whose frames must not be jumped over.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * stm_protect() points the transaction's jump target (tx->jb) at a buffer
 * of its own for the length of one call, so that a jump out of the
 * library (conflict, retry, abort, ENOMEM, a read-only attempt's fall
 * back) lands in it, with only the library's C frames in between.  The
 * jump is then pending (tx->pend: its STM__JUMP_* reason; tx->pend_br: the
 * branch it goes to, NULL for the transaction itself) and the caller is
 * told.  stm_retry() and stm_abort(), whose jump goes to an stm_or_else()
 * or stm_catch() branch, come here too when the branch lies outside the
 * innermost stm_protect() (there may be foreign frames in between).
 *
 * While a jump is pending the attempt is over for the body: tx is no
 * longer the running transaction (stm__active / stm__ro point elsewhere,
 * so every plain call diagnoses misuse and every _x call reports the jump
 * again), and the write set is hidden (tx->wn = 0, kept in pend_wn), so
 * that a body that returns to stm_atomically() anyway commits nothing and
 * is diagnosed (stm__finish_commit_slow, through tx->extras).  The jump
 * is done by stm_resume(), or taken by the stm_or_else() or stm_catch()
 * it was aimed at when that branch's function returns (orelse.c).
 *
 * The fast paths of stm_read_x() and stm_write_x() are those of stm_read()
 * and stm_write(); only their rare cases pay for the setjmp.  Nothing here
 * is on the path of a C transaction.
 */
#define _GNU_SOURCE
#include "stm-internal.h"

_Static_assert(STM_PENDING_CONFLICT == STM__JUMP_CONFLICT && STM_PENDING_RETRY == STM__JUMP_RETRY &&
                   STM_PENDING_ABORT == STM__JUMP_ABORT && STM_PENDING_NOMEM == STM__JUMP_NOMEM &&
                   STM_PENDING_FALLBACK == STM__JUMP_FALLBACK,
               "the pending reasons are the jump reasons");

/* The attempt is over for `why`; its jump (to branch `br`, or NULL: to
 * the transaction's target) is put off. */
static int pending_set(struct stm_tx *tx, int why, struct stm__branch *br)
{
    tx->pend = why;
    tx->pend_br = br;
    stm__ws_release_held(tx, tx->watch_held); /* the attempt is over */
    tx->pend_wn = tx->wn;
    tx->wn = 0;
    tx->extras = 1;
    tx->pend_ro = stm__ro == tx;
    if (tx->pend_ro)
        stm__ro = &stm__no_tx;
    else
        stm__active = &stm__no_tx;
    return why;
}

/* The pending jump is being done: the attempt is the body's again. */
static void pending_take(struct stm_tx *tx)
{
    tx->wn = tx->pend_wn;
    if (tx->pend_ro)
        stm__ro = tx;
    else
        stm__active = tx;
    tx->pend = 0;
    tx->pend_br = NULL;
}

bool stm__pending_take_for(struct stm_tx *tx, struct stm__branch *br)
{
    if (tx->pend_br != br)
        return false;
    pending_take(tx);
    return true;
}

bool stm__branch_outside_protect(struct stm_tx *tx, struct stm__branch *br)
{
    for (struct stm__branch *b = tx->branch; b != tx->prot->branch; b = b->outer)
        if (b == br)
            return false;
    return true;
}

/* tx is not the running attempt: its pending jump, or misuse (or, for
 * a declared read-only attempt, the fall back: check_tx_slow). */
__attribute__((noinline)) static int not_running(struct stm_tx *tx, const char *func)
{
    if (tx != NULL && tx == stm__self && tx->pend)
        return tx->pend;
    stm__check_tx_slow(tx, func);
}

STM_API int stm_protect(stm_tx *tx, stm_op_fn *op, void *arg)
{
    if (STM__UNLIKELY(tx != stm__active) && tx != stm__ro)
        return not_running(tx, "stm_protect");
    if (STM__UNLIKELY(op == NULL))
        stm__misuse("stm_protect", "the function is NULL");
    struct stm__prot p;
    p.outer_jb = tx->jb;
    p.branch = tx->branch;
    p.outer = tx->prot;
    if (STM__SETJMP(p.jb) == 0) {
        tx->jb = &p.jb;
        tx->prot = &p;
        op(tx, arg);
        tx->jb = p.outer_jb;
        tx->prot = p.outer;
        return tx->pend; /* op may have been told of a jump itself */
    }
    /* (not tx: a variable changed after the setjmp may be clobbered) */
    struct stm_tx *self = stm__self;
    self->jb = p.outer_jb;
    self->prot = p.outer;
    self->branch = p.branch; /* (branches made inside op are gone) */
    struct stm__branch *br = self->pend_br;
    return pending_set(self, self->jump, br);
}

STM_API int stm_pending(stm_tx *tx)
{
    if (tx == NULL || tx != stm__self)
        return 0;
    return tx->pend;
}

STM_API void stm_resume(stm_tx *tx)
{
    if (tx == NULL || tx != stm__self || tx->pend == 0)
        stm__misuse("stm_resume", "no jump is pending in this transaction");
    struct stm__branch *br = tx->pend_br;
    int why = tx->pend;
    pending_take(tx);
    if (br)
        STM__LONGJMP(br->jb);
    stm__jump(tx, why);
}

/* ---- the operations, reporting instead of jumping ----------------------- */

struct read_args {
    stm_tvar *var;
    intptr_t value;
};

static void read_op(stm_tx *tx, void *arg)
{
    struct read_args *a = arg;
    a->value = stm_read(tx, a->var);
}

__attribute__((noinline)) static int read_x_slow(stm_tx *tx, stm_tvar *var, intptr_t *out)
{
    if (out == NULL)
        stm__misuse("stm_read_x", "the output pointer is NULL");
    struct read_args a = {var, 0};
    int r = stm_protect(tx, read_op, &a);
    if (r == 0)
        *out = a.value;
    return r;
}

STM_API int stm_read_x(stm_tx *tx, stm_tvar *var, intptr_t *out)
{
    /* stm_read()'s fast path; everything else under stm_protect() */
    if (STM__LIKELY(tx == stm__active && var != NULL && out != NULL && tx->rn != tx->rcap &&
                    (tx->wbloom == 0 || !(tx->wbloom & stm__bloom_bit(var)))) &&
        STM__LIKELY(stm__read_fast(tx, var, out)))
        return 0;
    return read_x_slow(tx, var, out);
}

struct write_args {
    stm_tvar *var;
    intptr_t value;
};

static void write_op(stm_tx *tx, void *arg)
{
    struct write_args *a = arg;
    stm_write(tx, a->var, a->value);
}

__attribute__((noinline)) static int write_x_slow(stm_tx *tx, stm_tvar *var, intptr_t value)
{
    struct write_args a = {var, value};
    return stm_protect(tx, write_op, &a);
}

STM_API int stm_write_x(stm_tx *tx, stm_tvar *var, intptr_t value)
{
    /* stm_write()'s fast path */
    const unsigned b = (unsigned)((uintptr_t)var >> 4) & 63;
    if (STM__UNLIKELY(tx != stm__active || var == NULL || ((tx->wbloom >> b) & 1) ||
                      tx->wn == tx->wcap))
        return write_x_slow(tx, var, value);
    tx->wbloom |= UINT64_C(1) << b;
    stm__ws_append(tx, var, value);
    return 0;
}

static void retry_op(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

STM_API int stm_retry_x(stm_tx *tx)
{
    return stm_protect(tx, retry_op, NULL);
}

static void abort_op(stm_tx *tx, void *arg)
{
    stm_abort(tx, *(int *)arg);
}

STM_API int stm_abort_x(stm_tx *tx, int code)
{
    return stm_protect(tx, abort_op, &code);
}
