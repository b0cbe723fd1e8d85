/*
 * uv.c - libstm in a libuv loop: deferred and watcher callbacks delivered
 * on the loop's thread through stm_dispatch_fd(); a timed watch driving a
 * periodic job; clean shutdown (demo.h has the details and the checks).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The wiring: a uv_poll_t on the descriptor, readable -> stm_dispatch().
 */
#define _GNU_SOURCE
#include <uv.h>

#include "demo.h"

static uv_poll_t dispatch_watch;
static uv_timer_t watchdog;

static void on_dispatch(uv_poll_t *h, int status, int events)
{
    (void)events;
    if (status < 0)
        demo_fail(h->data, "uv_poll reported an error");
    demo_dispatch(h->data);
}

static void on_watchdog(uv_timer_t *t)
{
    demo_fail(t->data, "the watchdog fired (60 s)");
    uv_stop(t->loop);
}

static void stop(struct demo *d)
{
    (void)d;
    uv_poll_stop(&dispatch_watch);
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&dispatch_watch, NULL);
    uv_close((uv_handle_t *)&watchdog, NULL);
    /* uv_run returns once the closes are done: nothing else is active */
}

int main(void)
{
    struct demo d = {.loop_name = "uv", .stop = stop};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 1;
    int fd = demo_start(&d);
    if (fd < 0)
        return 1;
    dispatch_watch.data = &d;
    watchdog.data = &d;
    uv_poll_init(&loop, &dispatch_watch, fd);
    uv_poll_start(&dispatch_watch, UV_READABLE, on_dispatch);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 60000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    bool clean = uv_loop_close(&loop) == 0; /* every handle closed */
    return demo_finish(&d, clean);
}
