/*
 * watch_error.c - failed runs of watchers that no commit can report:
 * stm_set_watch_error_handler and the retry schedule.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A run of a watcher in a transaction of its own (a deadline came, an fd
 * it waited for is ready, or a retry of an earlier failure is due) has no
 * caller to return its failure to.  It is retried by a timer on the
 * library's clock (watch_retry.c keeps it in a record of its own) after
 * STM_WATCH_RETRY_FIRST, doubling with each failure in a row up to
 * STM_WATCH_RETRY_MAX, and then reported to the program's handler.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "stm-internal.h"

static pthread_mutex_t h_lock = PTHREAD_MUTEX_INITIALIZER;
static stm_watch_error_fn *h_fn;
static void *h_arg;

STM_API void stm_set_watch_error_handler(stm_watch_error_fn *fn, void *arg)
{
    pthread_mutex_lock(&h_lock);
    h_fn = fn;
    h_arg = arg;
    pthread_mutex_unlock(&h_lock);
}

int64_t stm__watch_retry_delay(uint32_t fails)
{
    int64_t d = STM_WATCH_RETRY_FIRST;
    for (uint32_t i = 1; i < fails && d < STM_WATCH_RETRY_MAX; i++)
        d *= 2;
    return d < STM_WATCH_RETRY_MAX ? d : STM_WATCH_RETRY_MAX;
}

void stm__watch_report(struct stm_watch *w, int err, int64_t retry_at)
{
    pthread_mutex_lock(&h_lock);
    stm_watch_error_fn *fn = h_fn;
    void *arg = h_arg;
    pthread_mutex_unlock(&h_lock);
    if (fn != NULL && !atomic_load_explicit(&w->dead, memory_order_acquire))
        fn(w, err, retry_at, arg);
}

void stm__watch_failed(struct stm_watch *w, int err)
{
    stm__watch_report(w, err, stm__watch_retry_arm(w));
}
