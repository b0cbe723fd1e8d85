/*
 * hooks.c - stm_after_commit and stm_on_abort.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Hooks are kept in per-thread vectors that are reused from transaction to
 * transaction.  A hook may itself run transactions on this thread, which
 * would reuse the very vector being walked; so the top-level runners take
 * the vector out of the descriptor first and give it back afterwards
 * (allocation-free unless a hook really does register hooks of its own).
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "stm-internal.h"

static void push(struct stm_tx *tx, struct stm__hookvec *vec, void (*fn)(void *), void *arg)
{
    if (!STM__VEC_RESERVE(*vec, vec->n + 1))
        stm__nomem(tx);
    tx->extras = 1;
    vec->v[vec->n].fn = fn;
    vec->v[vec->n].arg = arg;
    vec->n++;
}

STM_API void stm_after_commit(stm_tx *tx, void (*fn)(void *arg), void *arg)
{
    stm__check_tx_ro(tx, "stm_after_commit");
    if (fn == NULL)
        stm__misuse("stm_after_commit", "the hook function is NULL");
    push(tx, &tx->after, fn, arg);
}

STM_API void stm_on_abort(stm_tx *tx, void (*fn)(void *arg), void *arg)
{
    stm__check_tx_ro(tx, "stm_on_abort");
    if (fn == NULL)
        stm__misuse("stm_on_abort", "the hook function is NULL");
    push(tx, &tx->onabort, fn, arg);
}

/* Run hooks [0, n) of *vec with the vector detached from the descriptor. */
static void run_detached(struct stm__hookvec *slot)
{
    struct stm__hook *v = slot->v;
    uint32_t n = slot->n, cap = slot->cap;
    slot->v = NULL;
    slot->n = slot->cap = 0;
    for (uint32_t i = 0; i < n; i++)
        v[i].fn(v[i].arg);
    if (slot->v == NULL) {
        slot->v = v;
        slot->cap = cap;
    } else {
        free(v); /* a hook grew a vector of its own: keep the newer one */
    }
    slot->n = 0;
}

void stm__hooks_run_after(struct stm_tx *tx)
{
    run_detached(&tx->after);
}

void stm__hooks_run_abort(struct stm_tx *tx, uint32_t from)
{
    if (tx->onabort.n <= from)
        return;
    if (from == 0 && stm__active != tx) {
        run_detached(&tx->onabort);
        return;
    }
    /* a discarded or_else branch: the transaction goes on */
    uint32_t n = tx->onabort.n;
    for (uint32_t i = from; i < n; i++)
        tx->onabort.v[i].fn(tx->onabort.v[i].arg);
    tx->onabort.n = from;
}
