/*
 * install-smoke.c - a small program built by tests/check-install.sh
 * against an installed libstm (stm.h and -lstm from `pkg-config stm`),
 * as a user would build one.  Uses only the public API; exits 0 iff every
 * check passed.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

static int failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "install-smoke: %s:%d: check failed: %s\n",    \
                    __FILE__, __LINE__, #cond);                            \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static stm_tvar *counter, *box, *ready;
static int hook_runs;

static void after(void *arg)
{
    (void)arg;
    hook_runs++;
}

/* Increment `counter`, swap a freshly stm_alloc()ed block into `box` and
 * stm_free() the old one (NULL the first time); count commits in a hook. */
static int bump(stm_tx *tx, void *arg)
{
    int *block = stm_alloc(tx, sizeof *block);
    int *old = stm_read_ptr(tx, box);
    intptr_t n = stm_read(tx, counter) + 1;

    (void)arg;
    *block = (int)n;
    stm_write(tx, counter, n);
    stm_write_ptr(tx, box, block);
    stm_free(tx, old);
    stm_after_commit(tx, after, NULL);
    return (int)n;
}

/* Wait (stm_retry) until `ready` is set, then take it. */
static int take(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, ready) == 0)
        stm_retry(tx);
    stm_write(tx, ready, 0);
    return 7;
}

static void *waiter(void *arg)
{
    *(int *)arg = stm_atomically(take, NULL);
    return NULL;
}

static int give_up(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, counter, -1); /* discarded by the abort */
    stm_abort(tx, 42);
}

int main(void)
{
    struct stm_stats st;
    pthread_t th;
    int64_t t0 = stm_now();
    int taken = -1;
    int i;

    counter = stm_tvar_new(0);
    box = stm_tvar_new(0);
    ready = stm_tvar_new(0);
    CHECK(counter != NULL && box != NULL && ready != NULL);
    if (counter == NULL || box == NULL || ready == NULL)
        return 1;
    CHECK(stm_tvar_set_name(counter, "counter") == 0);
    CHECK(strcmp(stm_tvar_name(counter), "counter") == 0);

    for (i = 1; i <= 10; i++)
        CHECK(stm_atomically(bump, NULL) == i);
    CHECK(stm_tvar_peek(counter) == 10);
    CHECK(*(int *)stm_tvar_peek(box) == 10);
    CHECK(hook_runs == 10);

    CHECK(stm_atomically(give_up, NULL) == 42);
    CHECK(stm_tvar_peek(counter) == 10);

    CHECK(pthread_create(&th, NULL, waiter, &taken) == 0);
    CHECK(stm_tvar_poke(ready, 1) == 0); /* wakes the waiter */
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(taken == 7);
    CHECK(stm_tvar_peek(ready) == 0);

    stm_stats_get(&st);
    CHECK(st.commits >= 11);
    CHECK(st.aborts_explicit == 1);
    CHECK(stm_strerror(-EDEADLK) != NULL && stm_strerror(-EDEADLK)[0] != '\0');
    CHECK(stm_now() - t0 >= 0 && stm_now() - t0 < STM_SEC(60));
    CHECK(stm_wall_now() > 0);

    free((void *)stm_tvar_peek(box)); /* never shared again */
    stm_tvar_free(counter);
    stm_tvar_free(box);
    stm_tvar_free(ready);
    stm_shutdown();

    if (failures == 0)
        printf("install-smoke: OK\n");
    return failures == 0 ? 0 : 1;
}
