/*
 * tut4_timeout.c - tutorial step 4: time is read like a TVar.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A consumer takes an item from a one-slot queue (a mailbox TVar, 0 when
 * empty) or gives up 100 ms after it started.  Written twice: with
 * stm_elapsed() inside the body, and with stm_atomically_until().  Each is
 * run once with a producer that delivers after 10 ms (the wait ends at the
 * delivery) and once with no producer (the wait ends at the deadline, and
 * never before it).  See doc/tutorial.md, step 4.  Exits 0 iff all four
 * runs ended the way they should.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <stm.h>

enum { TIMED_OUT = 0 }; /* what take_or_give_up() returns on time-out */

static stm_tvar *mailbox;

/* Version 1: the deadline is read inside the body.  If the mailbox is
 * empty and the deadline has not come, stm_retry() sleeps until the
 * mailbox changes or the deadline comes, whichever is first. */
static int take_or_give_up(stm_tx *tx, void *arg)
{
    const int64_t *deadline = arg;
    intptr_t item = stm_read(tx, mailbox);
    if (item != 0) {
        stm_write(tx, mailbox, 0);
        return (int)item;
    }
    if (stm_elapsed(tx, *deadline))
        return TIMED_OUT;
    stm_retry(tx);
}

/* Version 2: the body only knows how to wait; the caller sets the limit. */
static int take(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t item = stm_read(tx, mailbox);
    if (item == 0)
        stm_retry(tx);
    stm_write(tx, mailbox, 0);
    return (int)item;
}

static void *producer(void *arg)
{
    (void)arg;
    struct timespec ten_ms = {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, NULL);
    if (stm_tvar_poke(mailbox, 42) != 0) /* wakes the consumer */
        fprintf(stderr, "tut4: stm_tvar_poke failed\n");
    return NULL;
}

/* One run; returns 1 if it ended as expected. */
static int run(int until, int with_producer)
{
    pthread_t th;
    int64_t start = stm_now(), deadline = start + STM_MSEC(100);
    if (with_producer && pthread_create(&th, NULL, producer, NULL) != 0) {
        fprintf(stderr, "tut4: pthread_create failed\n");
        return 0;
    }
    int rc = until ? stm_atomically_until(take, NULL, deadline)
                   : stm_atomically(take_or_give_up, &deadline);
    int64_t took = stm_now() - start;
    if (with_producer)
        pthread_join(th, NULL);
    int got = rc == 42, timed_out = until ? rc == -ETIMEDOUT : rc == TIMED_OUT;
    printf("tut4: %-22s %-13s -> %-9s after %5.1f ms\n",
           until ? "stm_atomically_until:" : "stm_elapsed:",
           with_producer ? "producer," : "no producer,",
           got ? "item 42" : timed_out ? "timed out" : stm_strerror(rc),
           (double)took / STM_MSEC(1));
    if (with_producer)
        return got;
    return timed_out && took >= STM_MSEC(100) && stm_tvar_peek(mailbox) == 0;
}

int main(void)
{
    int ok = 1;
    if ((mailbox = stm_tvar_new(0)) == NULL) {
        perror("tut4: stm_tvar_new");
        return 1;
    }
    for (int until = 0; until < 2; until++)
        for (int with_producer = 1; with_producer >= 0; with_producer--)
            ok &= run(until, with_producer);
    printf("tut4: %s\n", ok ? "OK: each wait ended at whichever came first"
                            : "WRONG");
    stm_tvar_free(mailbox);
    stm_shutdown();
    return ok ? 0 : 1;
}
