/*
 * stm-timer.h - deadlines: the heap and the timer service's pool
 * (heap.c, timer.c; never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_TIMER_H
#define STM_TIMER_H

#include "stm-base.h"

/* ---- deadline heap (timer service, virtual clock) ---------------------- */

struct stm__hnode {
    uint64_t seq; /* tie-break: push order, over all heaps */
    /* position + 1; 0 when not in a heap (changed under the heap owner's
     * lock; read without it for a quick "not in a heap") */
    _Atomic uint32_t idx;
    uint32_t tag; /* for the heap's owner (timer.c: which heap) */
};
/* an entry: the key (deadline) beside its node (heap.c) */
struct stm__hent {
    int64_t key;
    struct stm__hnode *n;
};
struct stm__heap {
    struct stm__hent *v;
    uint32_t n, cap;
};
/* (key, seq) order: the entry (ka, a) before (kb, b) */
static inline bool stm__hnode_before(int64_t ka, const struct stm__hnode *a, int64_t kb,
                                     const struct stm__hnode *b)
{
    return ka < kb || (ka == kb && a->seq < b->seq);
}
bool stm__heap_push(struct stm__heap *h, struct stm__hnode *n, int64_t key); /* false: ENOMEM */
uint64_t stm__heap_seq(void); /* a new seq (what a push gives its node) */
/* put back a node taken out, as it was (its seq kept) */
bool stm__heap_readd(struct stm__heap *h, struct stm__hnode *n, int64_t key);
void stm__heap_remove(struct stm__heap *h, struct stm__hnode *n);
void stm__heap_fix(struct stm__heap *h); /* after keys changed in place: O(n) */
static inline struct stm__hnode *stm__heap_top(const struct stm__heap *h)
{
    return h->n ? h->v[0].n : NULL;
}
static inline uint32_t stm__hnode_idx(const struct stm__hnode *n)
{
    return atomic_load_explicit(&n->idx, memory_order_relaxed);
}
/* the key of n, which is in h */
static inline int64_t stm__heap_key(const struct stm__heap *h, const struct stm__hnode *n)
{
    return h->v[stm__hnode_idx(n) - 1].key;
}

/* ---- the library clock's deadlines: a timing wheel before a heap (wheel.c)
 * Deadlines from the cursor to STM__WHEEL_SPAN past it wait in unordered
 * buckets of 2^STM__WHEEL_SHIFT ns; the heap `near` holds the buckets
 * drained so far (the next millisecond or so) and whatever has no bucket
 * (beyond the span, or a bucket could not grow: near has room reserved
 * for every timer, so adding cannot fail).  A node's tag bits from
 * STM__WHEEL_TAG up: its bucket + 1, 0 in near (the owner's flags stay
 * below).  Under the owner's lock. */
#define STM__WHEEL_SHIFT 20 /* a bucket: 2^20 ns, about 1 ms */
#define STM__WHEEL_N 4096   /* buckets (a multiple of 64): about 4.3 s */
#define STM__WHEEL_SPAN ((int64_t)STM__WHEEL_N << STM__WHEEL_SHIFT)
#define STM__WHEEL_TAG 16
struct stm__wheel {
    struct stm__heap near;
    struct stm__heap *b; /* [STM__WHEEL_N] (NULL until the first is used) */
    int64_t *bmin;       /* per bucket: at most its least key */
    uint64_t *bits;      /* the buckets that hold entries */
    int64_t cursor;      /* where the first bucket not drained starts */
    uint32_t nb;         /* entries in buckets */
};
void stm__wheel_add(struct stm__wheel *w, struct stm__hnode *n, int64_t key); /* new seq */
void stm__wheel_remove(struct stm__wheel *w, struct stm__hnode *n);
int64_t stm__wheel_key(const struct stm__wheel *w, const struct stm__hnode *n);
/* Moves every bucket that starts by `upto` into near, then: the earliest
 * entry and its key if it is known; else NULL and in *key at most the
 * earliest key (STM_NEVER: empty), which is after `upto`. */
struct stm__hnode *stm__wheel_peek(struct stm__wheel *w, int64_t upto, int64_t *key);
/* every entry into near (before keys change in place), the cursor reset */
void stm__wheel_flatten(struct stm__wheel *w);
void stm__wheel_free(struct stm__wheel *w); /* the buckets' memory, if empty */

/* ---- the timer service (timer.c) ----------------------------------------
 * Two heaps, one thread.  Real timers (stm__timer_add) have deadlines on
 * the real CLOCK_MONOTONIC.  Library-clock timers (stm__timer_set: watcher
 * deadlines) follow stm__now(): the thread serves them while the clock is
 * real; on the virtual clock stm_clock_advance() takes them
 * (stm__timer_take_due) and runs them itself, and switching clocks
 * re-bases them (stm__timer_rebase).  `fn` gets the deadline it fired for.
 * Callbacks run without the timers' lock held.  `fn` gets the arming it
 * fired for: the node's seq, new at every (re)arm (re-basing keeps it). */
struct stm__timer {
    struct stm__hnode h; /* first: the heap hands back this address */
    void (*fn)(struct stm__timer *t, uint64_t seq);
};
/* A hint: the memory around n (its owner: a watcher is 120 bytes, the
 * timer 16 bytes in) will be read soon. */
static inline void stm__prefetch_owner(const struct stm__hnode *n)
{
    const char *p = (const char *)n - 16;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 119);
}
int stm__timer_add(struct stm__timer *t, int64_t deadline); /* 0, -ENOMEM, -EAGAIN */
/* Call t's callback as soon as a thread of the pool is free (a real timer
 * due now, kept by a fork's child; a thread takes it alone, and the pool
 * grows if every thread is running firings); nothing if it is waiting
 * already.  0, -ENOMEM or -EAGAIN. */
int stm__timer_soon(struct stm__timer *t);
/* Remove t from its heap and wait while its callback runs (unless the
 * caller is that callback); true if it had not fired. */
bool stm__timer_cancel(struct stm__timer *t);
void stm__timer_shutdown(void);
/* Library-clock timers draw on reserved heap room, so that arming one
 * cannot fail: reserve before, then set/unset at will.  reserve also
 * starts the thread: 0, -ENOMEM or -EAGAIN. */
int stm__timer_reserve(uint32_t n);
void stm__timer_unreserve(uint32_t n);
/* (re)arm; no-op if so armed.  wall: the deadline stands for a
 * wall-clock one, and is moved to now when the system time is set.
 * Returns the arming's seq (what fn will be given). */
uint64_t stm__timer_set(struct stm__timer *t, int64_t deadline, bool wall);
void stm__timer_wall_changed(void);
void stm__timer_unset(struct stm__timer *t); /* disarm, no wait */
/* virtual clock: the earliest library-clock timer, if it is due by
 * `target` and comes before (lkey, limit) (limit NULL: no limit) in (key,
 * seq) order; marked as running until stm__timer_done() */
struct stm__timer *stm__timer_take_due(int64_t target, int64_t lkey, const struct stm__hnode *limit,
                                       int64_t *key, uint64_t *seq);
void stm__timer_done(struct stm__timer *t);
/* clock switch: every library-clock deadline d becomes to + (d - from) */
void stm__timer_rebase(int64_t from, int64_t to);
void stm__timer_kick(void); /* the clock switched: the thread looks again */

#endif
