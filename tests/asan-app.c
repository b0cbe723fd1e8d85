/*
 * asan-app.c - an application built with -fsanitize=address, linked
 * against a libstm built without it (tests/check-asan-app.sh builds and
 * runs it).  Issue 11, defect 7.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A conflict restart leaves the body by a jump from inside the library.
 * The frames it skips are the application's, instrumented: their stack
 * redzones stay poisoned unless AddressSanitizer is told of the jump
 * (__asan_handle_no_return).  This program makes each body's first
 * attempt conflict deep in a chain of frames with stack arrays, then runs
 * the second attempt through frames with large arrays over the same
 * stack, which AddressSanitizer reports as a stack-buffer-overflow if the
 * old redzones were left behind.  A conflict is forced, not hoped for:
 * after the first read, a helper thread commits to both TVars, so the
 * second read finds its snapshot stale and the read set changed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

static stm_tvar *x, *y;
static atomic_int ask, done; /* handshake with the helper: round numbers */
static int rounds;

static void *helper(void *arg)
{
    (void)arg;
    for (int r = 1; r <= rounds; r++) {
        while (atomic_load(&ask) < r)
            ;
        if (stm_tvar_poke(x, r) != 0 || stm_tvar_poke(y, r) != 0)
            abort();
        atomic_store(&done, r);
    }
    return NULL;
}

struct run {
    int round;
    int attempts;
};

/* the depth at which the conflict comes; each level has stack arrays
 * (so redzones) that the jump skips */
static __attribute__((noinline)) intptr_t deep(stm_tx *tx, struct run *p, int level)
{
    volatile char a[24], b[40], c[8];
    a[0] = b[0] = c[0] = (char)level;
    if (level > 0) {
        intptr_t r = deep(tx, p, level - 1);
        return r + a[0] + b[0] + c[0] - 3 * level;
    }
    if (p->attempts == 1) {
        atomic_store(&ask, p->round);
        while (atomic_load(&done) < p->round)
            ;
    }
    return stm_read(tx, y); /* jumps back to stm_atomically on attempt 1 */
}

/* the same stack, used again by one large array written end to end */
static __attribute__((noinline)) int wide(int seed)
{
    volatile char big[2048];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(seed + (int)i);
    int s = 0;
    for (size_t i = 0; i < sizeof big; i += 64)
        s += big[i];
    return s;
}

static int body(stm_tx *tx, void *arg)
{
    struct run *p = arg;
    p->attempts++;
    intptr_t vx = stm_read(tx, x);
    if (p->attempts > 1)
        (void)wide((int)vx);
    intptr_t vy = deep(tx, p, 6);
    stm_write(tx, x, vx + vy);
    return p->attempts;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atoi(argv[1]) : 2000;
    x = stm_tvar_new(0);
    y = stm_tvar_new(0);
    if (x == NULL || y == NULL)
        return 99;
    pthread_t t;
    if (pthread_create(&t, NULL, helper, NULL) != 0)
        return 99;
    long restarts = 0;
    for (int r = 1; r <= rounds; r++) {
        struct run p = {r, 0};
        int a = stm_atomically(body, &p);
        if (a < 1) {
            fprintf(stderr, "asan-app: round %d: stm_atomically returned %d\n", r, a);
            return 1;
        }
        restarts += a - 1;
    }
    pthread_join(t, NULL);
    printf("asan-app: %d rounds, %ld conflict restarts\n", rounds, restarts);
    if (restarts < rounds) {
        fprintf(stderr, "asan-app: only %ld restarts in %d rounds: the test proves nothing\n",
                restarts, rounds);
        return 1;
    }
    stm_tvar_free(x);
    stm_tvar_free(y);
    stm_shutdown();
    return 0;
}
