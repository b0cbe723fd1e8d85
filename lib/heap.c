/*
 * heap.c - a 4-ary min-heap of deadlines, for the timer service and the
 * virtual clock.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The array holds each entry's key beside a pointer to its node, so that
 * sifting compares keys without touching the nodes (a million timed
 * watchers are ~150 MB of cold memory; a binary heap of node pointers
 * took two cache misses per level, twenty levels deep).  Four children
 * per node halve the depth, and the four keys of a node's children sit
 * in one or two cache lines.  Nodes are embedded in their owners and
 * know their own position, so a cancel is O(log n) without a search.
 * Ties on the key go to the node pushed first (a sequence number shared
 * by all heaps), which is what makes the virtual clock deterministic.
 */
#define _GNU_SOURCE
#include "stm-timer.h"

/* One sequence for all heaps, so that the virtual clock can order the
 * entries of two heaps that share a deadline. */
static _Atomic uint64_t push_seq = 1; /* 0 is "never pushed" */

#define ARITY 4

static inline bool before(const struct stm__hent *a, const struct stm__hent *b)
{
    return a->key < b->key || (a->key == b->key && a->n->seq < b->n->seq);
}

static inline void place(struct stm__heap *h, uint32_t i, struct stm__hent e)
{
    h->v[i] = e;
    atomic_store_explicit(&e.n->idx, i + 1, memory_order_relaxed);
}

static void sift_up(struct stm__heap *h, uint32_t i)
{
    struct stm__hent e = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / ARITY;
        if (!before(&e, &h->v[p]))
            break;
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, e);
}

static void sift_down(struct stm__heap *h, uint32_t i)
{
    struct stm__hent e = h->v[i];
    uint32_t n = h->n;
    for (;;) {
        uint32_t c = ARITY * i + 1;
        if (c >= n)
            break;
        /* the grandchildren's keys, fetched while these are compared:
         * their misses overlap instead of coming one level at a time */
        uint32_t g = ARITY * c + 1;
        if (g < n)
            for (uint32_t k = 0; k < ARITY * ARITY && g + k < n; k += 4)
                __builtin_prefetch(&h->v[g + k]);
        uint32_t end = c + ARITY < n ? c + ARITY : n, m = c;
        for (uint32_t k = c + 1; k < end; k++)
            if (before(&h->v[k], &h->v[m]))
                m = k;
        if (!before(&h->v[m], &e))
            break;
        place(h, i, h->v[m]);
        i = m;
    }
    place(h, i, e);
}

bool stm__heap_push(struct stm__heap *h, struct stm__hnode *n, int64_t key)
{
    if (h->n == h->cap && !stm__grow((void **)&h->v, &h->cap, sizeof *h->v, h->n + 1))
        return false;
    n->seq = stm__heap_seq();
    return stm__heap_readd(h, n, key);
}

uint64_t stm__heap_seq(void)
{
    return atomic_fetch_add_explicit(&push_seq, 1, memory_order_relaxed);
}

bool stm__heap_readd(struct stm__heap *h, struct stm__hnode *n, int64_t key)
{
    if (h->n == h->cap && !stm__grow((void **)&h->v, &h->cap, sizeof *h->v, h->n + 1))
        return false;
    h->v[h->n].key = key;
    h->v[h->n].n = n;
    sift_up(h, h->n++);
    return true;
}

void stm__heap_fix(struct stm__heap *h)
{
    for (uint32_t i = h->n / ARITY + 1; i-- > 0;)
        if (i < h->n)
            sift_down(h, i);
}

void stm__heap_remove(struct stm__heap *h, struct stm__hnode *n)
{
    uint32_t i = stm__hnode_idx(n);
    if (i-- == 0)
        return;
    atomic_store_explicit(&n->idx, 0, memory_order_relaxed);
    struct stm__hent last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    if (i > 0 && before(&last, &h->v[(i - 1) / ARITY]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
