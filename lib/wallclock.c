/*
 * wallclock.c - waits on wall-clock deadlines, and what happens when the
 * system time is set.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A retry that recorded a wall-clock deadline sleeps on the monotonic
 * clock for as long as the wall clock says is left; if the system time is
 * set meanwhile, that amount is wrong.  So such a waiter is listed here,
 * and one library thread watches for changes of the time with a
 * CLOCK_REALTIME timerfd armed with TFD_TIMER_CANCEL_ON_SET (its read
 * fails with ECANCELED when the clock is set).  It then wakes every listed
 * waiter, whose body runs again against the new time, and fires at once
 * the deadlines of watchers that read a wall-clock deadline (their runs
 * read the new time and re-arm).  The thread starts with the first such
 * wait or watcher; stm_shutdown() stops it.  Without timerfd
 * (not Linux) changes are noticed only when the wait ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#endif

#include "stm-internal.h"

extern _Atomic int64_t stm__wall_shift_ns; /* clock.c */

static pthread_mutex_t wc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stm__waiter **wc_list;
static uint32_t wc_n, wc_cap;
static bool wc_started;
#if defined(__linux__)
static pthread_t wc_thread;
static int wc_tfd = -1, wc_stopfd = -1;
#endif

static void wake_all(void)
{
    stm__timer_wall_changed(); /* watchers */
    int cs = stm__cancel_off(); /* notifies with wc_lock held */
    pthread_mutex_lock(&wc_lock);
    for (uint32_t i = 0; i < wc_n; i++)
        wc_list[i]->ops->notify(wc_list[i]);
    pthread_mutex_unlock(&wc_lock);
    stm__cancel_restore(cs);
}

#if defined(__linux__)
static bool arm(void)
{
    struct itimerspec its = {0};
    clock_gettime(CLOCK_REALTIME, &its.it_value);
    its.it_value.tv_sec += 86400 * 365; /* far away: only a change matters */
    return timerfd_settime(wc_tfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) == 0;
}

static void *monitor(void *unused)
{
    (void)unused;
    struct pollfd p[2] = {{.fd = wc_tfd, .events = POLLIN}, {.fd = wc_stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (p[1].revents)
            return NULL;
        if (p[0].revents) {
            uint64_t n;
            if (read(wc_tfd, &n, sizeof n) < 0 && errno == ECANCELED)
                wake_all();
            if (!arm())
                return NULL;
        }
    }
}

static void start_locked(void)
{
    wc_started = true; /* one try: without it, waits just miss changes */
    wc_tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    wc_stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wc_tfd < 0 || wc_stopfd < 0 || !arm() ||
        pthread_create(&wc_thread, NULL, monitor, NULL) != 0) {
        if (wc_tfd >= 0)
            close(wc_tfd);
        if (wc_stopfd >= 0)
            close(wc_stopfd);
        wc_tfd = wc_stopfd = -1;
    }
}
#else
static void start_locked(void)
{
    wc_started = true;
}
#endif

bool stm__wall_wait_begin(struct stm__waiter *w)
{
    pthread_mutex_lock(&wc_lock);
    if (!wc_started)
        start_locked();
    bool ok = stm__grow((void **)&wc_list, &wc_cap, sizeof *wc_list, wc_n + 1);
    if (ok)
        wc_list[wc_n++] = w;
    pthread_mutex_unlock(&wc_lock);
    return ok;
}

void stm__wallclock_watch(void)
{
    pthread_mutex_lock(&wc_lock);
    if (!wc_started)
        start_locked();
    pthread_mutex_unlock(&wc_lock);
}

void stm__wall_wait_end(struct stm__waiter *w)
{
    pthread_mutex_lock(&wc_lock);
    for (uint32_t i = 0; i < wc_n; i++) {
        if (wc_list[i] == w) {
            wc_list[i] = wc_list[--wc_n];
            break;
        }
    }
    pthread_mutex_unlock(&wc_lock);
}

void stm__test_wall_shift(int64_t ns)
{
    atomic_fetch_add(&stm__wall_shift_ns, ns);
    wake_all();
}

void stm__wallclock_shutdown(void)
{
    pthread_mutex_lock(&wc_lock);
    bool started = wc_started;
    wc_started = false;
    pthread_mutex_unlock(&wc_lock);
#if defined(__linux__)
    if (started && wc_stopfd >= 0) {
        uint64_t one = 1;
        if (write(wc_stopfd, &one, sizeof one) == sizeof one)
            pthread_join(wc_thread, NULL);
        close(wc_tfd);
        close(wc_stopfd);
        wc_tfd = wc_stopfd = -1;
    }
#else
    (void)started;
#endif
    pthread_mutex_lock(&wc_lock);
    if (wc_n == 0) {
        free(wc_list);
        wc_list = NULL;
        wc_cap = 0;
    }
    pthread_mutex_unlock(&wc_lock);
}
