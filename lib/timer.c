/*
 * timer.c - the timer service: one thread that calls functions at their
 * deadlines.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Timers live in a binary heap (insert and cancel O(log n), ties in the
 * order they were added); the thread sleeps on a CLOCK_MONOTONIC condition
 * variable until the earliest deadline, with its timer slack set to 1 ns,
 * and fires everything that is due in one pass.  Callbacks run on the
 * timer thread without the heap lock held.  stm__timer_cancel() waits
 * while the timer's callback is running, so that once it returns the
 * owner may free the timer.  The thread starts with the first timer and
 * stops at stm_shutdown().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "stm-internal.h"

static pthread_mutex_t t_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t t_wake;    /* the thread: a new earliest timer, or stop */
static pthread_cond_t t_done;    /* cancellers: a callback finished */
static struct stm__heap t_heap;
static struct stm__timer *t_running;
static pthread_t t_thread;
static bool t_started, t_stop, t_conds;

static void ts_of(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / INT64_C(1000000000));
    ts->tv_nsec = (long)(ns % INT64_C(1000000000));
}

static void *timer_main(void *unused)
{
    (void)unused;
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
#endif
    pthread_mutex_lock(&t_lock);
    while (!t_stop) {
        struct stm__hnode *top = stm__heap_top(&t_heap);
        if (top == NULL) {
            pthread_cond_wait(&t_wake, &t_lock);
            continue;
        }
        if (top->key > stm__mono_ns()) {
            struct timespec ts;
            ts_of(top->key, &ts);
            pthread_cond_timedwait(&t_wake, &t_lock, &ts);
            continue;
        }
        struct stm__timer *t = (struct stm__timer *)top;
        stm__heap_remove(&t_heap, top);
        t_running = t;
        pthread_mutex_unlock(&t_lock);
        t->fn(t);
        pthread_mutex_lock(&t_lock);
        t_running = NULL;
        pthread_cond_broadcast(&t_done);
    }
    pthread_mutex_unlock(&t_lock);
    return NULL;
}

static int start_locked(void)
{
    if (!t_conds) {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&t_wake, &a);
        pthread_condattr_destroy(&a);
        pthread_cond_init(&t_done, NULL);
        t_conds = true;
    }
    t_stop = false;
    int e = pthread_create(&t_thread, NULL, timer_main, NULL);
    if (e != 0)
        return -e;
    t_started = true;
    return 0;
}

int stm__timer_add(struct stm__timer *t, int64_t deadline)
{
    pthread_mutex_lock(&t_lock);
    int r = t_started ? 0 : start_locked();
    if (r == 0) {
        t->h.key = deadline;
        if (!stm__heap_push(&t_heap, &t->h))
            r = -ENOMEM;
        else if (stm__heap_top(&t_heap) == &t->h)
            pthread_cond_signal(&t_wake);
    }
    pthread_mutex_unlock(&t_lock);
    return r;
}

bool stm__timer_cancel(struct stm__timer *t)
{
    pthread_mutex_lock(&t_lock);
    bool pending = t->h.idx != 0;
    stm__heap_remove(&t_heap, &t->h);
    while (t_running == t)
        pthread_cond_wait(&t_done, &t_lock);
    pthread_mutex_unlock(&t_lock);
    return pending;
}

void stm__timer_shutdown(void)
{
    pthread_mutex_lock(&t_lock);
    bool join = t_started;
    if (join) {
        t_stop = true;
        pthread_cond_signal(&t_wake);
    }
    pthread_mutex_unlock(&t_lock);
    if (join)
        pthread_join(t_thread, NULL);
    pthread_mutex_lock(&t_lock);
    t_started = false;
    if (t_heap.n == 0) {
        free(t_heap.v);
        t_heap.v = NULL;
        t_heap.cap = 0;
    }
    pthread_mutex_unlock(&t_lock);
}
