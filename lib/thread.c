/*
 * thread.c - per-thread transaction descriptors, the registry of threads,
 * library start-up and stm_shutdown.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A thread's descriptor is made on its first transaction and freed by a
 * pthread key destructor when the thread exits.  It is reached through an
 * initial-exec TLS pointer (one %fs-relative load on x86-64).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "stm-internal.h"

_Thread_local struct stm_tx *stm__self __attribute__((tls_model("initial-exec")));
struct stm_tx stm__no_tx;
_Thread_local struct stm_tx *stm__active __attribute__((tls_model("initial-exec"))) = &stm__no_tx;
_Thread_local struct stm_tx *stm__ro __attribute__((tls_model("initial-exec"))) = &stm__no_tx;

struct stm__global stm__g = {.clock = 1};
pthread_mutex_t stm__reg_lock = PTHREAD_MUTEX_INITIALIZER;
struct stm_tx *stm__reg_head;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;

static void descriptor_free(struct stm_tx *tx)
{
    free(tx->rs);
    free(tx->ws);
    free(tx->undo.v);
    free(tx->after.v);
    free(tx->onabort.v);
    free(tx->allocs.v);
    free(tx->defers.v);
    free(tx->frees.v);
    free(tx->limbo.v);
    free(tx->nodes.v);
    free(tx->wsidx);
    stm__watchtx_free(tx);
    stm__waiter_destroy(tx->waiter);
    free(tx);
}

static void descriptor_retire(struct stm_tx *tx)
{
    stm__reclaim_thread_exit(tx);
    pthread_mutex_lock(&stm__reg_lock);
    if (tx->reg_prev)
        tx->reg_prev->reg_next = tx->reg_next;
    else
        stm__reg_head = tx->reg_next;
    if (tx->reg_next)
        tx->reg_next->reg_prev = tx->reg_prev;
    stm__stats_fold(tx);
    pthread_mutex_unlock(&stm__reg_lock);
    descriptor_free(tx);
}

/* At thread exit, also when cancelled: a thread cancelled in stm_retry()
 * has unregistered already (retry.c); one that exits inside a body (it or
 * a watcher function called pthread_exit() or a cancellation point) still
 * runs an attempt, which is left here. */
static void thread_exit(void *p)
{
    struct stm_tx *tx = p;
    if (tx == NULL)
        return;
    if (stm__in_body(tx))
        stm__tx_abandon(tx);
    if (tx->nodes.n)
        stm__retry_unregister(tx);
    if (tx->vtoken)
        stm__vclock_settle(tx); /* stm_clock_advance() woke it */
    stm__self = NULL;
    descriptor_retire(tx);
}

static void global_init(void)
{
    int cs = stm__cancel_off(); /* fprintf() below is a cancellation point */
    pthread_key_create(&key, thread_exit);
    const char *s = getenv("STM_STATS");
    stm__g.stats_env = s && *s && strcmp(s, "0") != 0;
    if (stm__g.stats_env)
        atexit(stm__stats_atexit);
    stm__waiter_init_env();
    stm__cancel_restore(cs);
}

void stm__global_init(void)
{
    pthread_once(&once, global_init);
}

struct stm_tx *stm__thread_init(void)
{
    stm__global_init();
    stm__membarrier_setup();
    struct stm_tx *tx = stm__calloc(1, sizeof *tx);
    if (tx == NULL)
        return NULL;
    tx->rcap = 64;
    tx->wcap = 16;
    tx->rs = stm__malloc(tx->rcap * sizeof *tx->rs);
    tx->ws = stm__malloc(tx->wcap * sizeof *tx->ws);
    if (tx->rs == NULL || tx->ws == NULL || pthread_setspecific(key, tx) != 0) {
        descriptor_free(tx);
        return NULL;
    }
    tx->limbo_next = STM__RECLAIM_BATCH;
    tx->deadline = tx->wall_deadline = STM_NEVER; /* the waiter is made at the first wait */
    tx->rng = (uint64_t)(uintptr_t)tx * UINT64_C(0x9E3779B97F4A7C15) | 1;
    pthread_mutex_lock(&stm__reg_lock);
    tx->reg_next = stm__reg_head;
    if (stm__reg_head)
        stm__reg_head->reg_prev = tx;
    stm__reg_head = tx;
    pthread_mutex_unlock(&stm__reg_lock);
    stm__self = tx;
    return tx;
}

STM_API void stm_shutdown(void)
{
    struct stm_tx *tx = stm__self;
    if (tx != NULL && stm__in_body(tx))
        stm__misuse("stm_shutdown", "called inside a transaction");
    int cs = stm__cancel_off(); /* joins the library's threads */
    if (stm__g.stats_env)
        stm__stats_atexit(); /* prints once */
    stm__dispatch_shutdown();
    stm__timer_shutdown();
    stm__wallclock_shutdown();
    stm__vclock_shutdown();
    stm__waiter_shutdown();
    if (tx) {
        stm__self = NULL;
        pthread_setspecific(key, NULL);
        descriptor_retire(tx);
    }
    stm__reclaim_shutdown();
    stm__names_clear();
    stm__stats_reset();
    stm__cancel_restore(cs);
}
