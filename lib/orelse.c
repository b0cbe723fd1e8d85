/*
 * orelse.c - stm_or_else and stm_catch: parts of a transaction that are
 * rolled back on their own.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A branch records how long each of the transaction's logs was when it
 * started.  If an stm_or_else() branch retries, or an stm_abort() ends an
 * stm_catch() part, the logs are cut back to those marks; values the
 * branch overwrote in entries that existed before it are put back from
 * the undo log.  The branch's reads stay: whether it retried or aborted
 * depended on them, so they are validated at commit and waited on if the
 * whole transaction retries.
 *
 * The two kinds nest in any order.  A retry goes to the innermost or_else
 * branch (or retries the transaction), an abort to the innermost catch
 * (or ends the transaction), passing the branches of the other kind: the
 * one that takes the jump rolls back to its own marks, which are a prefix
 * of every inner branch's.
 *
 * A nested stm_atomically_until() is an or_else branch too: a retry in
 * its body comes back to it; once its deadline has come (at the attempt's
 * now) it rolls back and returns -ETIMEDOUT, else it passes the retry on
 * with the deadline recorded (stm_elapsed), so that the whole
 * transaction's wait also ends when the deadline comes.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "stm-internal.h"

static void branch_rollback(struct stm_tx *tx, struct stm__branch *br)
{
    while (tx->undo.n > br->undo_n) {
        tx->undo.n--;
        tx->ws[tx->undo.v[tx->undo.n].idx].value = tx->undo.v[tx->undo.n].value;
    }
    stm__ws_release_held(tx, br->wn);
    if (tx->wn > br->wn)
        stm__ws_forget(tx); /* entries past the mark go */
    tx->wn = br->wn;
    tx->wbloom = br->wbloom;
    tx->after.n = br->after_n;
    tx->frees.n = br->free_n;
    stm__allocs_discard(tx, br->alloc_n);
    stm__defers_discard(tx, br->defer_n);
    stm__watch_branch_rollback(tx, br);
    tx->branch = br->outer;
    stm__hooks_run_abort(tx, br->abort_n);
}

/* Mark the logs for a new branch of the given kind. */
static void branch_mark(struct stm_tx *tx, struct stm__branch *br, bool catch)
{
    tx->extras = 1;
    br->catch = catch;
    br->outer = tx->branch;
    br->wbloom = tx->wbloom;
    br->wn = tx->wn;
    br->undo_n = tx->undo.n;
    br->after_n = tx->after.n;
    br->abort_n = tx->onabort.n;
    br->alloc_n = tx->allocs.n;
    br->free_n = tx->frees.n;
    br->defer_n = tx->defers.n;
    stm__watch_branch_mark(tx, br);
}

STM_API int stm_or_else(stm_tx *tx, stm_fn *first, stm_fn *second, void *arg)
{
    stm__check_tx(tx, "stm_or_else");
    if (first == NULL || second == NULL)
        stm__misuse("stm_or_else", "a branch function is NULL");
    struct stm__branch br;
    branch_mark(tx, &br, false);
    if (STM__SETJMP(br.jb) == 0) {
        tx->branch = &br;
        int r = first(tx, arg);
        /* (a binding's branch returns when told of a jump: its own?) */
        if (STM__LIKELY(tx->pend == 0) || !stm__pending_take_for(tx, &br)) {
            tx->branch = br.outer;
            return r;
        }
    }
    branch_rollback(tx, &br);
    return second(tx, arg);
}

STM_API int stm_catch(stm_tx *tx, stm_fn *body, void *arg, bool *aborted)
{
    stm__check_tx(tx, "stm_catch");
    if (body == NULL)
        stm__misuse("stm_catch", "the body is NULL");
    if (aborted == NULL)
        stm__misuse("stm_catch", "the `aborted` pointer is NULL");
    struct stm__branch br;
    branch_mark(tx, &br, true);
    if (STM__SETJMP(br.jb) == 0) {
        tx->branch = &br;
        int r = body(tx, arg);
        if (STM__LIKELY(tx->pend == 0) || !stm__pending_take_for(tx, &br)) {
            tx->branch = br.outer;
            *aborted = false;
            return r;
        }
    }
    branch_rollback(tx, &br);
    *aborted = true;
    return tx->abort_code;
}

int stm__until_nested(struct stm_tx *tx, stm_fn *fn, void *arg, int64_t deadline)
{
    if (tx == stm__ro)
        return fn(tx, arg); /* a retry in it falls back, and comes here again */
    stm__check_tx(tx, "stm_atomically_until");
    struct stm__branch br;
    branch_mark(tx, &br, false);
    if (STM__SETJMP(br.jb) == 0) {
        tx->branch = &br;
        int r = fn(tx, arg);
        tx->branch = br.outer;
        return r;
    }
    if (stm_elapsed(tx, deadline)) {
        branch_rollback(tx, &br);
        return -ETIMEDOUT;
    }
    tx->branch = br.outer; /* the enclosing branch, or the whole attempt */
    stm_retry(tx);
}
