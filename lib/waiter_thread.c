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
    struct stm__cv_waiter cv; /* first: the waiter handed out */
    bool fired;               /* under cv.m */
    bool armed;               /* the timer is (or may be) in the service's heap */
    struct stm__timer timer;
};

static void th_fire(struct stm__timer *t, uint64_t seq)
{
    (void)seq;
    struct th_waiter *w = (struct th_waiter *)((char *)t - offsetof(struct th_waiter, timer));
    pthread_mutex_lock(&w->cv.m);
    w->fired = true;
    pthread_mutex_unlock(&w->cv.m);
    pthread_cond_signal(&w->cv.c); /* safe: cancel waits for this callback */
}

static struct stm__waiter *th_create(const struct stm__waiter_ops *self)
{
    struct th_waiter *w = stm__calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    int e = stm__cv_init(&w->cv, self);
    if (e != 0) {
        free(w);
        errno = e;
        return NULL;
    }
    w->timer.fn = th_fire;
    return &w->cv.base;
}

static void th_destroy(struct stm__waiter *base)
{
    stm__cv_fini((struct stm__cv_waiter *)base);
    free(base);
}

/* Cancelled in pthread_cond_wait(): the mutex is held again, and the
 * timer must leave the service's heap before the waiter can be freed. */
static void th_cancelled(void *arg)
{
    struct th_waiter *w = arg;
    pthread_mutex_unlock(&w->cv.m);
    if (w->armed) {
        stm__timer_cancel(&w->timer);
        w->armed = false;
        w->fired = false;
    }
}

static bool th_wait(struct stm__waiter *base, int64_t deadline)
{
    struct th_waiter *w = (struct th_waiter *)base;
    if (deadline <= stm__mono_ns()) { /* a poll: no timer needed */
        pthread_mutex_lock(&w->cv.m);
        bool r = w->cv.signaled;
        w->cv.signaled = false;
        pthread_mutex_unlock(&w->cv.m);
        return r;
    }
    bool timed = deadline < STM_NEVER;
    /* If the timer service cannot take the timer, wait by ourselves. */
    bool own = timed && stm__timer_add(&w->timer, deadline) != 0;
    struct timespec ts = {.tv_sec = (time_t)(deadline / INT64_C(1000000000)),
                          .tv_nsec = (long)(deadline % INT64_C(1000000000))};
    bool r;
    w->armed = timed && !own;
    pthread_mutex_lock(&w->cv.m);
    pthread_cleanup_push(th_cancelled, w);
    while (!w->cv.signaled && !w->fired) {
        if (own) {
            if (pthread_cond_timedwait(&w->cv.c, &w->cv.m, &ts) == ETIMEDOUT)
                break;
        } else {
            pthread_cond_wait(&w->cv.c, &w->cv.m);
        }
    }
    r = w->cv.signaled;
    w->cv.signaled = false;
    pthread_cleanup_pop(0);
    pthread_mutex_unlock(&w->cv.m);
    if (w->armed) {
        stm__timer_cancel(&w->timer); /* after this it cannot fire */
        w->armed = false;
        pthread_mutex_lock(&w->cv.m);
        w->fired = false;
        pthread_mutex_unlock(&w->cv.m);
    }
    return r;
}

const struct stm__waiter_ops stm__waiter_thread_ops = {
    .name = "thread",
    .create = th_create,
    .destroy = th_destroy,
    .prepare = stm__cv_prepare,
    .wait = th_wait,
    .notify = stm__cv_notify,
};
