/*
 * queue.c - stm_queue: a transactional FIFO queue, unbounded or bounded.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Built on the public API only (include/stm.h): embedded TVars, stm_alloc,
 * stm_free and stm_retry.  Nothing here needs the library's internals.
 *
 * The queue is a singly linked list of nodes whose `next` links are
 * embedded TVars.  The first node is a sentinel (the last node popped, or
 * the initial one): `head` points at it and consumers own that TVar;
 * `tail` points at the last node and producers own it.  Pushing writes
 * tail->next and tail; popping reads head->next and writes head.  While the
 * queue holds at least one item the sentinel is not the last node, so a
 * producer and a consumer touch disjoint TVars and do not conflict; on an
 * empty queue they meet on the sentinel's `next`, which is what wakes a
 * consumer waiting in stm_retry().
 *
 * Every node carries the number of its push (`seq`, fixed when the node is
 * made), so the length is tail->seq - head->seq without a shared counter.
 * The bound follows GHC's TBQueue: producers keep their own `limit` (the
 * seq below which a push may go on without asking) and only when they reach
 * it read the consumers' `head` to learn how far consumers have got
 * (limit = head->seq + capacity).  So a producer reads consumer-side state
 * only once per run of pushes that catches up with the bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

struct qnode {
    stm_tvar next; /* struct qnode *, NULL at the tail */
    intptr_t value;
    uint64_t seq; /* number of pushes up to and including this one */
};

/* head and tail on their own cache lines: producers and consumers share
 * no TVar, and also no line. */
struct stm_queue {
    _Alignas(64) stm_tvar head; /* consumers: the sentinel */
    _Alignas(64) stm_tvar tail; /* producers: the last node */
    stm_tvar limit;             /* producers: seq they may push below */
    size_t capacity;            /* 0: unbounded; fixed */
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

stm_queue *stm_queue_new(size_t capacity)
{
    stm_queue *q = aligned_alloc(64, sizeof *q);
    struct qnode *s = malloc(sizeof *s);
    if (q == NULL || s == NULL) {
        free(q);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    stm_tvar_init(&s->next, 0);
    s->value = 0;
    s->seq = 0;
    stm_tvar_init(&q->head, (intptr_t)s);
    stm_tvar_init(&q->tail, (intptr_t)s);
    stm_tvar_init(&q->limit, (intptr_t)capacity);
    q->capacity = capacity;
    return q;
}

void stm_queue_free(stm_queue *q)
{
    if (q == NULL)
        return;
    struct qnode *n = (struct qnode *)stm_tvar_peek(&q->head);
    while (n != NULL) {
        struct qnode *next = (struct qnode *)stm_tvar_peek(&n->next);
        stm_tvar_destroy(&n->next);
        free(n);
        n = next;
    }
    stm_tvar_destroy(&q->head);
    stm_tvar_destroy(&q->tail);
    stm_tvar_destroy(&q->limit);
    free(q);
}

/* Push unless the bound is reached; returns whether it pushed. */
static bool push(stm_tx *tx, stm_queue *q, intptr_t v)
{
    struct qnode *t = stm_read_ptr(tx, &q->tail);
    uint64_t seq = t->seq + 1;
    if (q->capacity != 0) {
        uint64_t limit = (uint64_t)stm_read(tx, &q->limit);
        if (seq > limit) {
            /* out of credit: see how far the consumers have got */
            struct qnode *h = stm_read_ptr(tx, &q->head);
            limit = h->seq + q->capacity;
            if (limit < h->seq)
                limit = UINT64_MAX; /* a bound too large to reach */
            if (seq > limit)
                return false; /* full */
            stm_write(tx, &q->limit, (intptr_t)limit);
        }
    }
    struct qnode *n = stm_alloc(tx, sizeof *n);
    stm_tvar_init(&n->next, 0);
    n->value = v;
    n->seq = seq;
    stm_write_ptr(tx, &t->next, n);
    stm_write_ptr(tx, &q->tail, n);
    return true;
}

/* Pop unless empty; returns whether it popped. */
static bool pop(stm_tx *tx, stm_queue *q, intptr_t *out)
{
    struct qnode *h = stm_read_ptr(tx, &q->head);
    struct qnode *first = stm_read_ptr(tx, &h->next);
    if (first == NULL)
        return false;
    *out = first->value;
    stm_write_ptr(tx, &q->head, first); /* `first` is the new sentinel */
    stm_tvar_destroy(&h->next);
    stm_free(tx, h);
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
    struct qnode *h = stm_read_ptr(tx, &q->head);
    struct qnode *t = stm_read_ptr(tx, &q->tail);
    return (size_t)(t->seq - h->seq);
}
