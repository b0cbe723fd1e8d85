/*
 * queue.c - stm_queue: a transactional FIFO queue, unbounded or bounded.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Built on the public API only (include/stm.h): embedded TVars, stm_alloc,
 * stm_free and stm_retry.  Nothing here needs the library's internals.
 *
 * Items live in slots, two embedded TVars each: the value and `seq`, the
 * number of the push that filled the slot plus one (0: never filled).
 * Positions count pushes from 0: `tail` (the producers') is the number of
 * pushes so far, `head` (the consumers') the number of pops; item p sits
 * in a slot whose seq is p + 1 once it is pushed.
 *
 * Where the slots are:
 *  - a bounded queue of capacity up to RING_MAX has one ring of
 *    `capacity` slots made with the queue: item p in slot p % capacity.
 *    No allocation per item, none per pop;
 *  - other queues keep a list of chunks of CHUNK slots: item p in slot
 *    p % CHUNK of its chunk.  The producer that pushes the first item of
 *    a chunk makes it (stm_alloc) and links it from the last one's `next`;
 *    the consumer that pops it leaves the old chunk (its TVars destroyed,
 *    its memory released with stm_free).  `tchunk` (the producers') is the
 *    chunk of the last push, `hchunk` (the consumers') that of the last
 *    pop.
 *
 * No conflict while the queue holds items: a pop of item h reads head,
 * (hchunk, and at a chunk's end its `next`) and slot h, and writes only
 * head (and hchunk); a push of item t reads tail (tchunk) and writes slot
 * t, tail (and at a chunk's end the last chunk's `next` and tchunk).  With
 * h < t the two touch no common TVar: slot h was filled by a push that
 * committed earlier and is not written again until it is popped, and the
 * `next` a pop reads at a chunk's end is written only by the push of the
 * item the pop takes.  On an empty queue (h == t) they meet on slot h's
 * seq (or that `next`): what wakes a consumer waiting in stm_retry().
 *
 * The bound follows GHC's TBQueue: producers keep their own `limit` (the
 * number of pushes allowed before they look again) and only when they
 * reach it read the consumers' `head` (limit = head + capacity).  So a
 * producer reads consumer-side state only once per run of pushes that
 * catches up with the bound.  In the ring this is also what keeps a push
 * from overwriting a slot whose item has not been popped: slot t %
 * capacity held item t - capacity, and t < limit <= head + capacity.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

#define RING_MAX 1024 /* the largest capacity kept in a ring */
#define CHUNK 32      /* slots per chunk of a queue that is not a ring */

struct qslot {
    stm_tvar seq; /* push number + 1 of the item here; 0 if never filled */
    stm_tvar val;
};

struct qchunk {
    stm_tvar next; /* struct qchunk *, NULL until its first item is pushed */
    struct qslot slot[];
};

/* Consumers' and producers' TVars on their own cache lines: they share no
 * TVar, and also no line. */
struct stm_queue {
    _Alignas(64) stm_tvar head;   /* consumers: pops so far */
    stm_tvar hchunk;              /* consumers: chunk of item head (chunks) */
    _Alignas(64) stm_tvar tail;   /* producers: pushes so far */
    stm_tvar tchunk;              /* producers: chunk of item tail - 1 (chunks) */
    stm_tvar limit;               /* producers: pushes allowed before looking */
    _Alignas(64) size_t capacity; /* 0: unbounded; fixed */
    struct qchunk *ring;          /* the ring, or NULL: chunks; fixed */
};

static _Noreturn void queue_misuse(const char *func, const char *what)
{
    fprintf(stderr, "libstm: %s: %s\n", func, what);
    fflush(stderr);
    abort();
}

static void check_args(stm_tx *tx, stm_queue *q, const char *func)
{
    if (tx == NULL)
        queue_misuse(func, "called outside a transaction (the stm_tx handle is NULL)");
    if (q == NULL)
        queue_misuse(func, "the queue is NULL");
}

static void chunk_init(struct qchunk *c, size_t n)
{
    stm_tvar_init(&c->next, 0);
    for (size_t i = 0; i < n; i++) {
        stm_tvar_init(&c->slot[i].seq, 0);
        stm_tvar_init(&c->slot[i].val, 0);
    }
}

static void chunk_destroy(struct qchunk *c, size_t n)
{
    stm_tvar_destroy(&c->next);
    for (size_t i = 0; i < n; i++) {
        stm_tvar_destroy(&c->slot[i].seq);
        stm_tvar_destroy(&c->slot[i].val);
    }
}

static size_t chunk_size(size_t n)
{
    return sizeof(struct qchunk) + n * sizeof(struct qslot);
}

stm_queue *stm_queue_new(size_t capacity)
{
    bool ring = capacity != 0 && capacity <= RING_MAX;
    size_t n = ring ? capacity : CHUNK;
    stm_queue *q = aligned_alloc(64, sizeof *q);
    struct qchunk *c = malloc(chunk_size(n));
    if (q == NULL || c == NULL) {
        free(q);
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    chunk_init(c, n);
    stm_tvar_init(&q->head, 0);
    stm_tvar_init(&q->hchunk, ring ? 0 : (intptr_t)c);
    stm_tvar_init(&q->tail, 0);
    stm_tvar_init(&q->tchunk, ring ? 0 : (intptr_t)c);
    /* (a capacity beyond INTPTR_MAX is one that cannot be reached) */
    stm_tvar_init(&q->limit, capacity <= INTPTR_MAX ? (intptr_t)capacity : INTPTR_MAX);
    q->capacity = capacity;
    q->ring = ring ? c : NULL;
    return q;
}

void stm_queue_free(stm_queue *q)
{
    if (q == NULL)
        return;
    if (q->ring) {
        chunk_destroy(q->ring, q->capacity);
        free(q->ring);
    } else {
        struct qchunk *c = (struct qchunk *)stm_tvar_peek(&q->hchunk);
        while (c != NULL) {
            struct qchunk *next = (struct qchunk *)stm_tvar_peek(&c->next);
            chunk_destroy(c, CHUNK);
            free(c);
            c = next;
        }
    }
    stm_tvar_destroy(&q->head);
    stm_tvar_destroy(&q->hchunk);
    stm_tvar_destroy(&q->tail);
    stm_tvar_destroy(&q->tchunk);
    stm_tvar_destroy(&q->limit);
    free(q);
}

/* Positions are counts of pushes and pops, kept in intptr_t TVars: they
 * would need 2^63 operations to wrap. */
static uint64_t read_pos(stm_tx *tx, stm_tvar *var)
{
    return (uint64_t)stm_read(tx, var);
}

/* Push unless the bound is reached; returns whether it pushed. */
static bool push(stm_tx *tx, stm_queue *q, intptr_t v)
{
    uint64_t t = read_pos(tx, &q->tail);
    if (q->capacity != 0) {
        uint64_t limit = read_pos(tx, &q->limit);
        if (t >= limit) {
            /* out of credit: see how far the consumers have got */
            uint64_t h = read_pos(tx, &q->head);
            limit = h + q->capacity;
            if (limit < h || limit > INTPTR_MAX)
                limit = INTPTR_MAX; /* a bound too large to reach */
            if (t >= limit)
                return false; /* full */
            stm_write(tx, &q->limit, (intptr_t)limit);
        }
    }
    struct qslot *s;
    if (q->ring) {
        s = &q->ring->slot[t % q->capacity];
    } else {
        struct qchunk *c = stm_read_ptr(tx, &q->tchunk);
        if (t % CHUNK == 0 && t != 0) {
            /* c is full: item t starts a new chunk, born holding it */
            struct qchunk *n = stm_alloc(tx, chunk_size(CHUNK));
            chunk_init(n, CHUNK);
            stm_tvar_init(&n->slot[0].seq, (intptr_t)(t + 1));
            stm_tvar_init(&n->slot[0].val, v);
            stm_write_ptr(tx, &c->next, n);
            stm_write_ptr(tx, &q->tchunk, n);
            stm_write(tx, &q->tail, (intptr_t)(t + 1));
            return true;
        }
        s = &c->slot[t % CHUNK];
    }
    stm_write(tx, &s->val, v);
    stm_write(tx, &s->seq, (intptr_t)(t + 1));
    stm_write(tx, &q->tail, (intptr_t)(t + 1));
    return true;
}

/* Pop unless empty; returns whether it popped. */
static bool pop(stm_tx *tx, stm_queue *q, intptr_t *out)
{
    uint64_t h = read_pos(tx, &q->head);
    struct qslot *s;
    struct qchunk *left = NULL;
    if (q->ring) {
        s = &q->ring->slot[h % q->capacity];
    } else {
        struct qchunk *c = stm_read_ptr(tx, &q->hchunk);
        if (h % CHUNK == 0 && h != 0) {
            /* item h is the first of the next chunk, if it is there */
            struct qchunk *n = stm_read_ptr(tx, &c->next);
            if (n == NULL)
                return false; /* empty */
            left = c;
            c = n;
        }
        s = &c->slot[h % CHUNK];
    }
    if ((uint64_t)stm_read(tx, &s->seq) != h + 1)
        return false; /* empty: item h is not pushed yet */
    *out = stm_read(tx, &s->val);
    stm_write(tx, &q->head, (intptr_t)(h + 1));
    if (left) {
        stm_write_ptr(tx, &q->hchunk, stm_read_ptr(tx, &left->next));
        chunk_destroy(left, CHUNK);
        stm_free(tx, left);
    }
    return true;
}

void stm_queue_push(stm_tx *tx, stm_queue *q, intptr_t v)
{
    check_args(tx, q, "stm_queue_push");
    if (!push(tx, q, v))
        stm_retry(tx);
}

bool stm_queue_try_push(stm_tx *tx, stm_queue *q, intptr_t v)
{
    check_args(tx, q, "stm_queue_try_push");
    return push(tx, q, v);
}

intptr_t stm_queue_pop(stm_tx *tx, stm_queue *q)
{
    check_args(tx, q, "stm_queue_pop");
    intptr_t v;
    if (!pop(tx, q, &v))
        stm_retry(tx);
    return v;
}

bool stm_queue_try_pop(stm_tx *tx, stm_queue *q, intptr_t *out)
{
    check_args(tx, q, "stm_queue_try_pop");
    if (out == NULL)
        queue_misuse("stm_queue_try_pop", "the output pointer is NULL");
    return pop(tx, q, out);
}

size_t stm_queue_len(stm_tx *tx, stm_queue *q)
{
    check_args(tx, q, "stm_queue_len");
    uint64_t h = read_pos(tx, &q->head);
    uint64_t t = read_pos(tx, &q->tail);
    return (size_t)(t - h);
}
