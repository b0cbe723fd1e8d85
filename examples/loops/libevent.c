/*
 * libevent.c - libstm in a libevent loop: deferred and watcher callbacks
 * delivered on the loop's thread through stm_dispatch_fd(); a timed watch
 * driving a periodic job; clean shutdown (demo.h has the details and the
 * checks).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The wiring: a persistent EV_READ event on the descriptor ->
 * stm_dispatch().
 */
#define _GNU_SOURCE
#include <event2/event.h>

#include "demo.h"

static struct event_base *base;
static struct event *dispatch_ev, *watchdog_ev;

static void on_dispatch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    demo_dispatch(arg);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    demo_fail(arg, "the watchdog fired (60 s)");
    event_base_loopbreak(base);
}

static void stop(struct demo *d)
{
    (void)d;
    event_del(dispatch_ev);
    event_del(watchdog_ev);
    /* no event left: event_base_dispatch returns */
}

int main(void)
{
    struct demo d = {.loop_name = "libevent", .stop = stop};
    base = event_base_new();
    if (base == NULL)
        return 1;
    int fd = demo_start(&d);
    if (fd < 0)
        return 1;
    dispatch_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_dispatch, &d);
    watchdog_ev = evtimer_new(base, on_watchdog, &d);
    struct timeval sixty = {60, 0};
    event_add(dispatch_ev, NULL);
    evtimer_add(watchdog_ev, &sixty);
    int r = event_base_dispatch(base); /* 1: returned for want of events */
    bool clean =
        r == 1 && !event_pending(dispatch_ev, EV_READ, NULL) && !evtimer_pending(watchdog_ev, NULL);
    event_free(dispatch_ev);
    event_free(watchdog_ev);
    event_base_free(base);
    return demo_finish(&d, clean);
}
