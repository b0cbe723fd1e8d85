/*
 * demo.h - what the event-loop examples (uv.c, glib.c, libevent.c) share:
 * the transactional part, and the checks.  Each example only wires it to
 * its loop: a readable watch on stm_dispatch_fd() that calls
 * stm_dispatch(), a way to stop, and a watchdog.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * What runs:
 *   - a worker thread commits COUNT transactions, each adding one to
 *     `counter`; a watcher (STM_WATCH_CHANGES_ONLY) on it queues a report
 *     with stm_defer() from its callback, so the reports run on the loop's
 *     thread, in commit order: every value 0..COUNT, once each, in order;
 *   - a timed watch drives a periodic job: its function asks
 *     stm_elapsed(next_tick); when the deadline has come its callback moves
 *     next_tick on by PERIOD and queues the job with stm_defer(); the
 *     library's timer runs the watcher again at the next deadline.  Each
 *     job must run on the loop's thread, no earlier than its deadline
 *     (strict) and not absurdly late (loose);
 *   - once both are done the loop is stopped from a deferred callback and
 *     every handle is closed (clean shutdown).
 * Exits 0 iff all of that held.
 */
#ifndef STM_LOOP_DEMO_H
#define STM_LOOP_DEMO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

enum { COUNT = 50, TICKS = 5 };
#define PERIOD STM_MSEC(20)
#define TOO_LATE STM_SEC(5)

struct demo {
    const char *loop_name;
    void (*stop)(struct demo *d); /* the loop's: stop it, close handles */
    pthread_t loop_thread, worker;
    stm_tvar counter, next_tick, ticks;
    stm_watch *wcount, *wtick;
    long last;   /* the last value reported */
    int reports; /* loop thread only, like the rest below */
    int tick_runs, errors, dispatched;
    bool counted, ticked, stopping;
    int64_t start;
};

static struct demo *the_demo;

static void demo_fail(struct demo *d, const char *what)
{
    d->errors++;
    printf("%s: FAIL: %s\n", d->loop_name, what);
}

static void demo_on_loop_thread(struct demo *d, const char *what)
{
    if (!pthread_equal(pthread_self(), d->loop_thread))
        demo_fail(d, what);
}

static void demo_maybe_stop(struct demo *d)
{
    if (d->counted && d->ticked && !d->stopping) {
        d->stopping = true;
        d->stop(d); /* from a deferred callback, on the loop thread */
    }
}

/* ---- the counter: reports, deferred to the loop ---------------------- */

static void demo_report(void *arg)
{
    struct demo *d = the_demo;
    long v = (long)(intptr_t)arg;
    demo_on_loop_thread(d, "a report ran off the loop's thread");
    if (v != d->last + 1)
        demo_fail(d, "reports out of order");
    d->last = v;
    d->reports++;
    if (v == COUNT) {
        d->counted = true;
        printf("%s: %d reports, 0..%d in order, on the loop's thread\n", d->loop_name, d->reports,
               COUNT);
        demo_maybe_stop(d);
    }
}

static intptr_t demo_read_counter(stm_tx *tx, void *arg)
{
    return stm_read(tx, &((struct demo *)arg)->counter);
}

static void demo_counter_changed(stm_tx *tx, intptr_t value, void *arg)
{
    (void)arg;
    stm_defer(tx, demo_report, (void *)value); /* no I/O in a transaction */
}

static int demo_bump(stm_tx *tx, void *arg)
{
    stm_tvar *c = &((struct demo *)arg)->counter;
    stm_write(tx, c, stm_read(tx, c) + 1);
    return 0;
}

static void *demo_worker(void *arg)
{
    for (int i = 0; i < COUNT; i++)
        stm_atomically(demo_bump, arg);
    return NULL;
}

/* ---- the periodic job: a timed watch --------------------------------- */

struct demo_tick {
    int64_t due;
    int n;
};

static void demo_tick(void *arg)
{
    struct demo *d = the_demo;
    struct demo_tick *t = arg;
    int64_t now = stm_now();
    demo_on_loop_thread(d, "a periodic job ran off the loop's thread");
    if (now < t->due)
        demo_fail(d, "a periodic job ran before its deadline");
    if (now > t->due + TOO_LATE)
        demo_fail(d, "a periodic job ran far too late");
    printf("%s: tick %d at %lld ms (due %lld ms)\n", d->loop_name, t->n,
           (long long)((now - d->start) / STM_MSEC(1)),
           (long long)((t->due - d->start) / STM_MSEC(1)));
    d->tick_runs++;
    if (t->n != d->tick_runs)
        demo_fail(d, "periodic jobs out of order");
    free(t);
    if (d->tick_runs == TICKS) {
        d->ticked = true;
        demo_maybe_stop(d);
    }
}

/* The deadline that has come (> 0), 0 while waiting for it, -1 when all
 * ticks were done. */
static intptr_t demo_due(stm_tx *tx, void *arg)
{
    struct demo *d = arg;
    if (stm_read(tx, &d->ticks) >= TICKS)
        return -1;
    int64_t next = stm_read(tx, &d->next_tick);
    return stm_elapsed(tx, next) ? (intptr_t)next : 0;
}

static void demo_fire(stm_tx *tx, intptr_t due, void *arg)
{
    struct demo *d = arg;
    if (due <= 0)
        return;
    intptr_t n = stm_read(tx, &d->ticks) + 1;
    stm_write(tx, &d->ticks, n);
    stm_write(tx, &d->next_tick, due + PERIOD);
    struct demo_tick *t = stm_alloc(tx, sizeof *t); /* freed if discarded */
    t->due = due;
    t->n = (int)n;
    stm_defer(tx, demo_tick, t);
}

/* ---- start and finish --------------------------------------------------- */

/* Set up (on the loop's thread, before the loop runs): returns the
 * descriptor to watch for reading, or -1. */
static int demo_start(struct demo *d)
{
    the_demo = d;
    d->loop_thread = pthread_self();
    d->last = -1;
    d->start = stm_now();
    int fd = stm_dispatch_fd();
    if (fd < 0) {
        printf("%s: stm_dispatch_fd: %s\n", d->loop_name, stm_strerror(fd));
        return -1;
    }
    stm_tvar_init(&d->counter, 0);
    stm_tvar_init(&d->ticks, 0);
    stm_tvar_init(&d->next_tick, (intptr_t)(d->start + PERIOD));
    d->wcount =
        stm_atomically_watch(demo_read_counter, demo_counter_changed, d, STM_WATCH_CHANGES_ONLY);
    d->wtick = stm_atomically_watch(demo_due, demo_fire, d, STM_WATCH_CHANGES_ONLY);
    if (d->wcount == NULL || d->wtick == NULL ||
        pthread_create(&d->worker, NULL, demo_worker, d) != 0) {
        printf("%s: cannot start\n", d->loop_name);
        return -1;
    }
    return fd;
}

/* The loop's readable callback on the dispatch descriptor. */
static void demo_dispatch(struct demo *d)
{
    demo_on_loop_thread(d, "the descriptor was served off the loop's thread");
    d->dispatched += stm_dispatch();
}

static int demo_unwatch(stm_tx *tx, void *arg)
{
    struct demo *d = arg;
    stm_unwatch(tx, d->wcount);
    stm_unwatch(tx, d->wtick);
    return 0;
}

/* After the loop has returned: the checks.  Returns the exit status. */
static int demo_finish(struct demo *d, bool loop_clean)
{
    pthread_join(d->worker, NULL);
    stm_atomically(demo_unwatch, d);
    stm_tvar_destroy(&d->counter);
    stm_tvar_destroy(&d->ticks);
    stm_tvar_destroy(&d->next_tick);
    if (!d->counted || !d->ticked)
        demo_fail(d, "the loop stopped before the work was done");
    if (!loop_clean)
        demo_fail(d, "the loop did not shut down cleanly");
    if (d->dispatched != d->reports + d->tick_runs)
        demo_fail(d, "stm_dispatch ran callbacks other than ours");
    printf("%s: %d callbacks through stm_dispatch_fd; %s\n", d->loop_name, d->dispatched,
           d->errors ? "FAILED" : "ok");
    stm_shutdown();
    return d->errors ? 1 : 0;
}

#endif
