/*
 * glib.c - libstm in a GLib main loop: deferred and watcher callbacks
 * delivered on the loop's thread through stm_dispatch_fd(); a timed watch
 * driving a periodic job; clean shutdown (demo.h has the details and the
 * checks).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The wiring: g_unix_fd_add() on the descriptor, G_IO_IN ->
 * stm_dispatch().
 */
#define _GNU_SOURCE
#include <glib-unix.h>
#include <glib.h>

#include "demo.h"

static GMainLoop *loop;
static guint dispatch_source, watchdog_source;

static gboolean on_dispatch(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    (void)cond;
    demo_dispatch(data);
    return G_SOURCE_CONTINUE;
}

static gboolean on_watchdog(gpointer data)
{
    demo_fail(data, "the watchdog fired (60 s)");
    watchdog_source = 0;
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

static void stop(struct demo *d)
{
    (void)d;
    g_source_remove(dispatch_source);
    dispatch_source = 0;
    g_source_remove(watchdog_source);
    watchdog_source = 0;
    g_main_loop_quit(loop);
}

int main(void)
{
    struct demo d = {.loop_name = "glib", .stop = stop};
    loop = g_main_loop_new(NULL, FALSE); /* the default context */
    int fd = demo_start(&d);
    if (fd < 0)
        return 1;
    dispatch_source = g_unix_fd_add(fd, G_IO_IN, on_dispatch, &d);
    watchdog_source = g_timeout_add_seconds(60, on_watchdog, &d);
    g_main_loop_run(loop);
    /* clean: our sources are gone, nothing is left pending */
    bool clean = dispatch_source == 0 && watchdog_source == 0 && !g_main_context_pending(NULL);
    g_main_loop_unref(loop);
    return demo_finish(&d, clean);
}
