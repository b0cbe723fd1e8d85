/*
 * waiter_condvar.c - Waiter backend "condvar": a mutex, a flag and a
 * condition variable whose timed waits use CLOCK_MONOTONIC (so setting the
 * system time does not move deadlines).  The "thread" backend builds on
 * the same parts (stm__cv_*).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "stm-internal.h"

int stm__cv_init(struct stm__cv_waiter *w, const struct stm__waiter_ops *self)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int e = pthread_cond_init(&w->c, &a);
    pthread_condattr_destroy(&a);
    if (e != 0)
        return e;
    /* adaptive: the notifier and the woken thread hold it only for a
     * moment each, often at the same time (a wake-up) */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, STM__MUTEX_ADAPTIVE);
    pthread_mutex_init(&w->m, &ma);
    pthread_mutexattr_destroy(&ma);
    w->base.ops = self;
    w->signaled = false;
    return 0;
}

void stm__cv_fini(struct stm__cv_waiter *w)
{
    pthread_cond_destroy(&w->c);
    pthread_mutex_destroy(&w->m);
}

void stm__cv_prepare(struct stm__waiter *base)
{
    struct stm__cv_waiter *w = (struct stm__cv_waiter *)base;
    pthread_mutex_lock(&w->m);
    w->signaled = false;
    pthread_mutex_unlock(&w->m);
}

/* Signal after unlocking: a waiter woken under the lock would only block
 * again on the mutex (one more sleep per wake-up, measured by bench/wake).
 * Safe because every notifier holds a lock (a TVar's stripe, the virtual
 * clock's, the wall-clock list's) that the waiting thread must take before
 * its waiter can be destroyed. */
void stm__cv_notify(struct stm__waiter *base)
{
    struct stm__cv_waiter *w = (struct stm__cv_waiter *)base;
    pthread_mutex_lock(&w->m);
    w->signaled = true;
    pthread_mutex_unlock(&w->m);
    pthread_cond_signal(&w->c);
}

static struct stm__waiter *cv_create(const struct stm__waiter_ops *self)
{
    struct stm__cv_waiter *w = stm__malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    int e = stm__cv_init(w, self);
    if (e != 0) {
        free(w);
        errno = e;
        return NULL;
    }
    return &w->base;
}

static void cv_destroy(struct stm__waiter *base)
{
    stm__cv_fini((struct stm__cv_waiter *)base);
    free(base);
}

/* pthread_cond_wait() is a cancellation point: a thread cancelled there
 * holds the mutex again when its cleanup handlers run. */
void stm__cv_unlock(void *m)
{
    pthread_mutex_unlock(m);
}

static bool cv_wait(struct stm__waiter *base, int64_t deadline)
{
    struct stm__cv_waiter *w = (struct stm__cv_waiter *)base;
    struct timespec ts = {.tv_sec = (time_t)(deadline / INT64_C(1000000000)),
                          .tv_nsec = (long)(deadline % INT64_C(1000000000))};
    bool r;
    pthread_mutex_lock(&w->m);
    /* a deadline already past is a poll (stm_set_wake_spin): no call */
    if (deadline < INT64_MAX && deadline <= stm__mono_ns()) {
        r = w->signaled;
        w->signaled = false;
        pthread_mutex_unlock(&w->m);
        return r;
    }
    pthread_cleanup_push(stm__cv_unlock, &w->m);
    while (!w->signaled) {
        if (deadline == INT64_MAX)
            pthread_cond_wait(&w->c, &w->m);
        else if (pthread_cond_timedwait(&w->c, &w->m, &ts) == ETIMEDOUT)
            break;
    }
    r = w->signaled;
    w->signaled = false;
    pthread_cleanup_pop(1);
    return r;
}

const struct stm__waiter_ops stm__waiter_condvar_ops = {
    .name = "condvar",
    .create = cv_create,
    .destroy = cv_destroy,
    .prepare = stm__cv_prepare,
    .wait = cv_wait,
    .notify = stm__cv_notify,
};
