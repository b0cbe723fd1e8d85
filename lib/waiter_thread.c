/*
 * waiter_thread.c - Waiter backend "thread": the waiting thread blocks
 * with no time-out; the timer service's one thread notifies it when its
 * deadline comes.  No thread per wait.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "stm-internal.h"

struct th_waiter {
    struct stm__waiter base;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool signaled, fired;
    struct stm__timer timer;
};

static void th_fire(struct stm__timer *t)
{
    struct th_waiter *w = (struct th_waiter *)((char *)t - offsetof(struct th_waiter, timer));
    pthread_mutex_lock(&w->m);
    w->fired = true;
    pthread_mutex_unlock(&w->m);
    pthread_cond_signal(&w->c); /* safe: cancel waits for this callback */
}

static struct stm__waiter *th_create(const struct stm__waiter_ops *self)
{
    struct th_waiter *w = stm__calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    /* monotonic only for the fallback below */
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int e = pthread_cond_init(&w->c, &a);
    pthread_condattr_destroy(&a);
    if (e != 0) {
        free(w);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&w->m, NULL);
    w->timer.fn = th_fire;
    w->base.ops = self;
    return &w->base;
}

static void th_destroy(struct stm__waiter *base)
{
    struct th_waiter *w = (struct th_waiter *)base;
    pthread_cond_destroy(&w->c);
    pthread_mutex_destroy(&w->m);
    free(w);
}

static void th_prepare(struct stm__waiter *base)
{
    struct th_waiter *w = (struct th_waiter *)base;
    pthread_mutex_lock(&w->m);
    w->signaled = false;
    pthread_mutex_unlock(&w->m);
}

static bool th_wait(struct stm__waiter *base, int64_t deadline)
{
    struct th_waiter *w = (struct th_waiter *)base;
    bool timed = deadline < STM_NEVER;
    /* If the timer service cannot take the timer, wait by ourselves. */
    bool own = timed && stm__timer_add(&w->timer, deadline) != 0;
    struct timespec ts = {.tv_sec = (time_t)(deadline / INT64_C(1000000000)),
                          .tv_nsec = (long)(deadline % INT64_C(1000000000))};
    pthread_mutex_lock(&w->m);
    while (!w->signaled && !w->fired) {
        if (own) {
            if (pthread_cond_timedwait(&w->c, &w->m, &ts) == ETIMEDOUT)
                break;
        } else {
            pthread_cond_wait(&w->c, &w->m);
        }
    }
    bool r = w->signaled;
    w->signaled = false;
    pthread_mutex_unlock(&w->m);
    if (timed && !own) {
        stm__timer_cancel(&w->timer); /* after this it cannot fire */
        pthread_mutex_lock(&w->m);
        w->fired = false;
        pthread_mutex_unlock(&w->m);
    }
    return r;
}

static void th_notify(struct stm__waiter *base)
{
    struct th_waiter *w = (struct th_waiter *)base;
    pthread_mutex_lock(&w->m);
    w->signaled = true;
    pthread_mutex_unlock(&w->m);
    pthread_cond_signal(&w->c); /* after unlocking: see waiter_condvar.c */
}

const struct stm__waiter_ops stm__waiter_thread_ops = {
    .name = "thread",
    .create = th_create,
    .destroy = th_destroy,
    .prepare = th_prepare,
    .wait = th_wait,
    .notify = th_notify,
};
