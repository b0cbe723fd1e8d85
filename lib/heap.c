/*
 * heap.c - a binary min-heap of deadlines, for the timer service and the
 * virtual clock.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Nodes are embedded in their owners and know their own position, so a
 * cancel is O(log n) without a search.  Ties on the key go to the node
 * pushed first (a sequence number shared by all heaps), which is what
 * makes the virtual clock deterministic.
 */
#define _GNU_SOURCE
#include "stm-internal.h"

/* One sequence for all heaps, so that the virtual clock can order the
 * entries of two heaps that share a deadline. */
static _Atomic uint64_t push_seq = 1; /* 0 is "never pushed" */

#define before stm__hnode_before

static void place(struct stm__heap *h, uint32_t i, struct stm__hnode *n)
{
    h->v[i] = n;
    n->idx = i + 1;
}

static void sift_up(struct stm__heap *h, uint32_t i)
{
    struct stm__hnode *n = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(n, h->v[p]))
            break;
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, n);
}

static void sift_down(struct stm__heap *h, uint32_t i)
{
    struct stm__hnode *n = h->v[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->v[c + 1], h->v[c]))
            c++;
        if (!before(h->v[c], n))
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, n);
}

bool stm__heap_push(struct stm__heap *h, struct stm__hnode *n)
{
    if (h->n == h->cap && !stm__grow((void **)&h->v, &h->cap, sizeof *h->v, h->n + 1))
        return false;
    n->seq = atomic_fetch_add_explicit(&push_seq, 1, memory_order_relaxed);
    h->v[h->n] = n;
    sift_up(h, h->n++);
    return true;
}

void stm__heap_fix(struct stm__heap *h)
{
    for (uint32_t i = h->n / 2; i-- > 0;)
        sift_down(h, i);
}

void stm__heap_remove(struct stm__heap *h, struct stm__hnode *n)
{
    if (n->idx == 0)
        return;
    uint32_t i = n->idx - 1;
    n->idx = 0;
    struct stm__hnode *last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
