/*
 * queue.c - stm_queue: a work queue between producers and consumers, and
 * taking from whichever of two queues has something.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Two producers push numbered jobs into a bounded queue of 8 (they wait
 * while it is full); an "urgent" queue gets every tenth job.  Two
 * consumers take from urgent, or else from the work queue (stm_or_else),
 * and wait while both are empty.  A consumer that finds nothing for 200 ms
 * (stm_atomically_until) has seen the end.  Prints one line per consumer
 * and exits 0 iff every job arrived exactly once, each producer's jobs in
 * the order they were pushed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

enum { PRODUCERS = 2, CONSUMERS = 2, JOBS = 20000 };

static stm_queue *work, *urgent;
static unsigned char seen[PRODUCERS * JOBS];

struct push_arg {
    stm_queue *q;
    intptr_t job;
};

static int push_body(stm_tx *tx, void *arg)
{
    struct push_arg *p = arg;
    stm_queue_push(tx, p->q, p->job); /* waits while the queue is full */
    return 0;
}

static void *producer(void *arg)
{
    intptr_t id = (intptr_t)arg;
    for (intptr_t i = 0; i < JOBS; i++) {
        struct push_arg p = {i % 10 == 0 ? urgent : work, id * JOBS + i};
        stm_atomically(push_body, &p);
    }
    return NULL;
}

static int take_urgent(stm_tx *tx, void *arg)
{
    *(intptr_t *)arg = stm_queue_pop(tx, urgent);
    return 0;
}

static int take_work(stm_tx *tx, void *arg)
{
    *(intptr_t *)arg = stm_queue_pop(tx, work);
    return 0;
}

static int take_either(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, take_urgent, take_work, arg);
}

static void *consumer(void *arg)
{
    intptr_t id = (intptr_t)arg, job, last[2][PRODUCERS];
    long taken = 0, out_of_order = 0;
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < PRODUCERS; p++)
            last[k][p] = -1;
    while (stm_atomically_until(take_either, &job, stm_now() + STM_MSEC(200)) == 0) {
        int p = (int)(job / JOBS), k = job % JOBS % 10 == 0; /* queue it came from */
        if (job <= last[k][p])
            out_of_order++;
        last[k][p] = job;
        seen[job]++; /* each job is taken by one consumer only */
        taken++;
    }
    printf("consumer %d: %ld jobs, %ld out of order\n", (int)id, taken, out_of_order);
    return (void *)out_of_order;
}

int main(void)
{
    work = stm_queue_new(8);
    urgent = stm_queue_new(0);
    if (!work || !urgent) {
        perror("stm_queue_new");
        return 1;
    }
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (intptr_t i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consumer, (void *)i);
    for (intptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&p[i], NULL, producer, (void *)i);
    long bad = 0;
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) {
        void *r;
        pthread_join(c[i], &r);
        bad += (long)(intptr_t)r;
    }
    for (int i = 0; i < PRODUCERS * JOBS; i++)
        bad += seen[i] != 1;
    stm_queue_free(work);
    stm_queue_free(urgent);
    printf("%d jobs: %s\n", PRODUCERS * JOBS, bad ? "FAILED" : "each taken once, in order: OK");
    stm_shutdown();
    return bad ? 1 : 0;
}
