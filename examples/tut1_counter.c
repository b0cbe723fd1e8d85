/*
 * tut1_counter.c - tutorial step 1: a counter shared by several threads.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Four threads each add 1 to one TVar 25000 times, every time in a
 * transaction of its own.  No increment may be lost, so the counter must
 * end at exactly 100000.  The statistics show how many attempts were
 * thrown away and run again along the way: a transaction body can run
 * more than once, which is why it must not have side effects of its own.
 * See doc/tutorial.md, step 1.  Exits 0 iff the count is right.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

enum { THREADS = 4, ADDS = 25000 };

static stm_tvar *counter; /* the shared state: one TVar */

/* The transaction body.  It may be stopped at any stm_read() or
 * stm_write() and run again from the top, so it only reads and writes
 * TVars: no printf(), no counting in ordinary variables, no malloc(). */
static int add_one(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t n = stm_read(tx, counter);
    stm_write(tx, counter, n + 1);
    return 0;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++) {
        int rc = stm_atomically(add_one, NULL);
        if (rc < 0) { /* only the library's own errors are negative */
            fprintf(stderr, "tut1: stm_atomically: %s\n", stm_strerror(rc));
            exit(1);
        }
    }
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];

    counter = stm_tvar_new(0);
    if (counter == NULL) {
        perror("tut1: stm_tvar_new");
        return 1;
    }
    for (int i = 0; i < THREADS; i++) {
        int err = pthread_create(&th[i], NULL, worker, NULL);
        if (err != 0) {
            fprintf(stderr, "tut1: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    /* Every thread has stopped, so a plain peek sees the final value. */
    long total = (long)stm_tvar_peek(counter);
    long want = (long)THREADS * ADDS;
    struct stm_stats st;
    stm_stats_get(&st);
    printf("tut1: %d threads x %d increments\n", THREADS, ADDS);
    printf("tut1: %llu commits, %llu attempts run again after a conflict\n",
           (unsigned long long)st.commits,
           (unsigned long long)(st.aborts_conflict + st.aborts_validate));
    printf("tut1: counter = %ld (expected %ld): %s\n", total, want,
           total == want ? "OK" : "WRONG");

    stm_tvar_free(counter);
    stm_shutdown();
    return total == want ? 0 : 1;
}
