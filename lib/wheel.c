/*
 * wheel.c - the library clock's deadlines: a timing wheel in front of a
 * small heap, so that taking the earliest touches no cold memory.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A heap of a million deadlines costs its pop half a microsecond of cache
 * misses (the last entry sinks through levels nobody has touched for
 * seconds; doc/benchmarks.md, "watch").  Here the heap, `near`, holds
 * only the deadlines before the cursor: those of the buckets drained so
 * far (the millisecond or so to come, a few hundred entries in cache).
 * Deadlines from the cursor to STM__WHEEL_SPAN past it go into buckets
 * of 2^STM__WHEEL_SHIFT ns, one per slot of a ring: unordered (key, node)
 * arrays, put in and taken out in O(1) (a removal moves the bucket's last
 * entry into the hole).  When the earliest is asked for up to a time,
 * every bucket that starts by then moves into the heap, in the order of
 * the buckets, and the cursor moves past it (over empty ones in one step).
 *
 * Anything else goes into `near` too: deadlines beyond the span, and any
 * that a bucket had no room for (growing a bucket may fail; the owners of
 * these timers reserved room in `near` for each, so putting one there
 * cannot).  So `near` may hold entries past the cursor: its top is the
 * earliest only while it is before the cursor, or before the least key
 * of the first bucket that holds entries (kept per bucket as a lower
 * bound: it is not raised when entries leave).  Ties and order are (key,
 * seq) as in the heap: a bucket's entries all come before those of the
 * next, and the heap orders them among themselves and with the rest.
 *
 * Where a node is: its tag's bits from STM__WHEEL_TAG up hold its bucket
 * + 1 (0: in `near` or nowhere), and its idx its position + 1 there, so
 * stm__hnode_idx() still says whether it is in.  All calls are under the
 * owner's lock.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "stm-timer.h"

#define W (INT64_C(1) << STM__WHEEL_SHIFT)
#define NWORDS (STM__WHEEL_N / 64)
#define LOW_TAG ((UINT32_C(1) << STM__WHEEL_TAG) - 1)
/* keys from here on stay in `near` (no bucket start overflows) */
#define KEY_MAX (INT64_MAX - 4 * STM__WHEEL_SPAN)

static uint32_t slot_of(int64_t key)
{
    return (uint32_t)((uint64_t)key >> STM__WHEEL_SHIFT) & (STM__WHEEL_N - 1);
}

static int64_t floor_w(int64_t key)
{
    return key & ~(W - 1);
}

static bool in_span(const struct stm__wheel *w, int64_t key)
{
    return key >= w->cursor && key < KEY_MAX && key - w->cursor < STM__WHEEL_SPAN;
}

static void into_near(struct stm__wheel *w, struct stm__hnode *n, int64_t key)
{
    n->tag &= LOW_TAG;
    bool ok = stm__heap_readd(&w->near, n, key); /* cannot fail: reserved */
    (void)ok;
}

/* the ring's arrays go (the buckets' own arrays are the caller's) */
static void arrays_free(struct stm__wheel *w)
{
    free(w->b);
    free(w->bmin);
    free(w->bits);
    w->b = NULL;
    w->bmin = NULL;
    w->bits = NULL;
}

static bool into_bucket(struct stm__wheel *w, struct stm__hnode *n, int64_t key)
{
    if (w->b == NULL) {
        w->b = stm__calloc(STM__WHEEL_N, sizeof *w->b);
        w->bmin = stm__calloc(STM__WHEEL_N, sizeof *w->bmin);
        w->bits = stm__calloc(NWORDS, sizeof *w->bits);
        if (w->b == NULL || w->bmin == NULL || w->bits == NULL) {
            arrays_free(w);
            return false;
        }
    }
    uint32_t s = slot_of(key);
    struct stm__heap *b = &w->b[s];
    if (b->n == b->cap && !stm__grow((void **)&b->v, &b->cap, sizeof *b->v, b->n + 1))
        return false;
    if (b->n == 0 || key < w->bmin[s])
        w->bmin[s] = key;
    b->v[b->n].key = key;
    b->v[b->n].n = n;
    atomic_store_explicit(&n->idx, ++b->n, memory_order_relaxed);
    n->tag = (n->tag & LOW_TAG) | ((s + 1) << STM__WHEEL_TAG);
    w->bits[s / 64] |= UINT64_C(1) << (s % 64);
    w->nb++;
    return true;
}

static void readd(struct stm__wheel *w, struct stm__hnode *n, int64_t key)
{
    if (!in_span(w, key) || !into_bucket(w, n, key))
        into_near(w, n, key);
}

void stm__wheel_add(struct stm__wheel *w, struct stm__hnode *n, int64_t key)
{
    n->seq = stm__heap_seq();
    readd(w, n, key);
}

void stm__wheel_remove(struct stm__wheel *w, struct stm__hnode *n)
{
    uint32_t s = n->tag >> STM__WHEEL_TAG;
    if (s == 0) {
        stm__heap_remove(&w->near, n);
        return;
    }
    s--;
    uint32_t i = stm__hnode_idx(n);
    if (i-- == 0)
        return;
    struct stm__heap *b = &w->b[s];
    atomic_store_explicit(&n->idx, 0, memory_order_relaxed);
    n->tag &= LOW_TAG;
    struct stm__hent last = b->v[--b->n];
    if (i != b->n) {
        b->v[i] = last;
        atomic_store_explicit(&last.n->idx, i + 1, memory_order_relaxed);
    }
    if (b->n == 0)
        w->bits[s / 64] &= ~(UINT64_C(1) << (s % 64));
    w->nb--;
}

int64_t stm__wheel_key(const struct stm__wheel *w, const struct stm__hnode *n)
{
    uint32_t s = n->tag >> STM__WHEEL_TAG;
    uint32_t i = stm__hnode_idx(n) - 1;
    return s == 0 ? w->near.v[i].key : w->b[s - 1].v[i].key;
}

/* The first bucket from the cursor's on (in ring order) that holds
 * entries; the wheel holds some. */
static uint32_t first_bucket(const struct stm__wheel *w)
{
    uint32_t s0 = slot_of(w->cursor), w0 = s0 / 64, b0 = s0 % 64;
    uint64_t m = w->bits[w0] & (~UINT64_C(0) << b0);
    if (m != 0)
        return w0 * 64 + (uint32_t)__builtin_ctzll(m);
    for (uint32_t k = 1; k < NWORDS; k++) {
        uint32_t wi = (w0 + k) % NWORDS;
        if (w->bits[wi] != 0)
            return wi * 64 + (uint32_t)__builtin_ctzll(w->bits[wi]);
    }
    m = w->bits[w0] & ((UINT64_C(1) << b0) - 1);
    return w0 * 64 + (uint32_t)__builtin_ctzll(m);
}

/* where bucket s starts (it is at or after the cursor's) */
static int64_t start_of(const struct stm__wheel *w, uint32_t s)
{
    uint32_t d = (s - slot_of(w->cursor)) & (STM__WHEEL_N - 1);
    return w->cursor + (int64_t)d * W;
}

static void drain_bucket(struct stm__wheel *w, uint32_t s)
{
    struct stm__heap *b = &w->b[s];
    for (uint32_t i = 0; i < b->n; i++) {
        if (i + 8 < b->n)
            __builtin_prefetch(b->v[i + 8].n);
        into_near(w, b->v[i].n, b->v[i].key);
    }
    w->nb -= b->n;
    b->n = 0;
    w->bits[s / 64] &= ~(UINT64_C(1) << (s % 64));
    /* (its room is kept for the deadlines of its next turn, about 4 s on;
     * a free() here would run under the timer lock) */
}

/* Every bucket that starts by `upto` into `near`; the cursor past upto
 * (or as far as keys in buckets go) */
static void drain(struct stm__wheel *w, int64_t upto)
{
    while (w->cursor <= upto) {
        if (w->nb > 0) {
            uint32_t s = first_bucket(w);
            int64_t start = start_of(w, s);
            if (start <= upto) {
                drain_bucket(w, s);
                w->cursor = start + W;
                continue;
            }
        }
        /* the buckets up to upto are empty: skip them */
        w->cursor = upto < KEY_MAX ? floor_w(upto) + W : floor_w(KEY_MAX);
        return;
    }
}

struct stm__hnode *stm__wheel_peek(struct stm__wheel *w, int64_t upto, int64_t *key)
{
    drain(w, upto);
    struct stm__hnode *top = stm__heap_top(&w->near);
    int64_t k = top ? w->near.v[0].key : STM_NEVER;
    if (top != NULL && k < w->cursor) {
        *key = k;
        return top;
    }
    if (w->nb > 0) {
        int64_t m = w->bmin[first_bucket(w)];
        if (m <= k) {
            *key = m; /* at most the earliest: not known yet */
            return NULL;
        }
    }
    *key = k;
    return top;
}

void stm__wheel_flatten(struct stm__wheel *w)
{
    for (uint32_t s = 0; w->nb > 0 && s < STM__WHEEL_N; s++)
        if (w->b[s].n > 0)
            drain_bucket(w, s);
    w->cursor = 0;
}

void stm__wheel_free(struct stm__wheel *w)
{
    if (w->nb > 0 || w->b == NULL)
        return;
    for (uint32_t s = 0; s < STM__WHEEL_N; s++)
        free(w->b[s].v);
    arrays_free(w);
}
