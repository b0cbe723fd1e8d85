/*
 * tut3_queue.c - tutorial step 3: a bounded blocking queue, and taking
 * from whichever of two queues has something.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A queue is a ring of CAP slot TVars plus two TVars for where it starts
 * and how full it is.  put() waits while the queue is full and get() while
 * it is empty, both with stm_retry(): the thread sleeps until a TVar it
 * read changes.  Two producers fill an "urgent" and a "normal" queue; one
 * consumer takes from urgent, or else from normal (stm_or_else).  See
 * doc/tutorial.md, step 3.  Exits 0 iff every item arrived exactly once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

enum { CAP = 8, ITEMS = 5000 };

struct queue { stm_tvar *slot[CAP], *head, *count; };

static struct queue urgent, normal;

static void put(stm_tx *tx, struct queue *q, intptr_t item)
{
    intptr_t n = stm_read(tx, q->count);
    if (n == CAP)
        stm_retry(tx); /* full: sleep until count (or head) changes */
    intptr_t tail = (stm_read(tx, q->head) + n) % CAP;
    stm_write(tx, q->slot[tail], item);
    stm_write(tx, q->count, n + 1);
}

static intptr_t get(stm_tx *tx, struct queue *q)
{
    intptr_t n = stm_read(tx, q->count);
    if (n == 0)
        stm_retry(tx); /* empty: sleep until something is put */
    intptr_t h = stm_read(tx, q->head);
    stm_write(tx, q->head, (h + 1) % CAP);
    stm_write(tx, q->count, n - 1);
    return stm_read(tx, q->slot[h]);
}

/* stm_fn wrappers; items are small positive numbers, so they fit in the
 * int a body returns. */
struct put_arg { struct queue *q; intptr_t item; };
static int put_body(stm_tx *tx, void *arg)
{
    struct put_arg *p = arg;
    put(tx, p->q, p->item);
    return 0;
}
static int get_urgent(stm_tx *tx, void *arg) { (void)arg; return (int)get(tx, &urgent); }
static int get_normal(stm_tx *tx, void *arg) { (void)arg; return (int)get(tx, &normal); }
static int get_either(stm_tx *tx, void *arg)
{
    /* urgent first; if that would wait, normal; if both would wait, the
     * whole transaction sleeps until either queue changes. */
    return stm_or_else(tx, get_urgent, get_normal, arg);
}

static void *producer(void *arg)
{
    struct queue *q = arg;
    intptr_t base = q == &urgent ? 0 : ITEMS; /* urgent: 1..N, normal: N+1..2N */
    for (intptr_t i = 1; i <= ITEMS; i++) {
        struct put_arg p = {q, base + i};
        if (stm_atomically(put_body, &p) != 0)
            abort(); /* only -ENOMEM is possible here */
    }
    return NULL;
}

static int init(struct queue *q)
{
    for (int i = 0; i < CAP; i++)
        if ((q->slot[i] = stm_tvar_new(0)) == NULL)
            return -1;
    q->head = stm_tvar_new(0);
    q->count = stm_tvar_new(0);
    return q->head && q->count ? 0 : -1;
}

static void fini(struct queue *q)
{
    for (int i = 0; i < CAP; i++)
        stm_tvar_free(q->slot[i]);
    stm_tvar_free(q->head);
    stm_tvar_free(q->count);
}

int main(void)
{
    static unsigned char seen[2 * ITEMS + 1];
    pthread_t th[2];
    long from_urgent = 0, dups = 0;
    long long sum = 0;

    if (init(&urgent) != 0 || init(&normal) != 0) {
        perror("tut3: stm_tvar_new");
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        int err = pthread_create(&th[i], NULL, producer, i ? &normal : &urgent);
        if (err != 0) {
            fprintf(stderr, "tut3: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (int i = 0; i < 2 * ITEMS; i++) { /* the consumer */
        int item = stm_atomically(get_either, NULL);
        if (item <= 0 || item > 2 * ITEMS) {
            fprintf(stderr, "tut3: get: %s\n", stm_strerror(item));
            return 1;
        }
        dups += seen[item]++ != 0;
        from_urgent += item <= ITEMS;
        sum += item;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);

    long long want = (long long)ITEMS * (2 * ITEMS + 1);
    int ok = dups == 0 && from_urgent == ITEMS && sum == want;
    printf("tut3: took %d items, %ld from urgent, %ld from normal, %ld twice\n",
           2 * ITEMS, from_urgent, 2 * ITEMS - from_urgent, dups);
    printf("tut3: sum %lld (expected %lld): %s\n", sum, want, ok ? "OK" : "WRONG");
    fini(&urgent);
    fini(&normal);
    stm_shutdown();
    return ok ? 0 : 1;
}
