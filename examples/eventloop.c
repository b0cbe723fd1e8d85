/*
 * eventloop.c - watcher callbacks delivered on the program's own poll()
 * loop, through stm_dispatch_fd() and stm_dispatch().
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Two worker threads warm up a TVar, `temperature`, one degree per
 * transaction, and in between "touch" it (write back the value it has).
 * A watcher reads the temperature; with STM_WATCH_CHANGES_ONLY its
 * callback runs only when the value changed, so a touch costs a run of
 * the function but no callback.  The callback runs inside the committing
 * transaction, so it does no I/O itself: it queues a report with
 * stm_defer().  Because the main thread asked for stm_dispatch_fd(), the
 * reports are not run by a library thread but by the main thread's poll()
 * loop, in commit order: every value from 0 to 2 * UPDATES, once each,
 * in order.  A timerfd in the same loop is a watchdog.  Exits 0 iff every
 * report ran on the main thread and the values came in order.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <stm.h>

enum { WORKERS = 2, UPDATES = 10, WATCHDOG_TICKS = 100 /* x 100 ms */ };

static stm_tvar *temperature;
static pthread_t main_thread;
static long last = -1;      /* the last value reported */
static int reports, errors; /* main thread only */

/* ---- the watcher --------------------------------------------------------- */

static intptr_t read_temperature(stm_tx *tx, void *arg)
{
    (void)arg;
    return stm_read(tx, temperature);
}

/* A deferred callback: runs after the commit, on the main thread. */
static void report(void *arg)
{
    long value = (long)(intptr_t)arg;
    int on_main = pthread_equal(pthread_self(), main_thread) != 0;

    reports++;
    printf("temperature %ld (report %d, on the %s thread)\n", value, reports,
           on_main ? "main" : "WRONG");
    if (!on_main || value != last + 1)
        errors++;
    last = value;
}

static void changed(stm_tx *tx, intptr_t value, void *arg)
{
    (void)arg;
    stm_defer(tx, report, (void *)value); /* I/O waits for the commit */
}

/* ---- the workers ---------------------------------------------------------- */

static int warm(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, temperature, stm_read(tx, temperature) + 1);
    return 0;
}

static int touch(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, temperature, stm_read(tx, temperature));
    return 0;
}

static void *worker(void *arg)
{
    struct timespec pause = {0, 2 * 1000 * 1000};
    (void)arg;
    for (int i = 0; i < UPDATES; i++) {
        stm_atomically(warm, NULL);  /* the watcher runs, the callback too */
        stm_atomically(touch, NULL); /* the watcher runs, no callback */
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static int unwatch(stm_tx *tx, void *w)
{
    stm_unwatch(tx, w);
    return 0;
}

int main(void)
{
    struct itimerspec every_100ms = {{0, 100 * 1000 * 1000}, {0, 100 * 1000 * 1000}};
    pthread_t th[WORKERS];
    struct stm_stats st;
    int ticks = 0;

    main_thread = pthread_self();
    /* From here on, deferred callbacks wait for stm_dispatch(). */
    int dispatch_fd = stm_dispatch_fd();
    int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (dispatch_fd < 0 || timer_fd < 0 || timerfd_settime(timer_fd, 0, &every_100ms, NULL) != 0 ||
        !(temperature = stm_tvar_new(0))) {
        fprintf(stderr, "eventloop: set-up failed\n");
        return 1;
    }
    /* Its first run reports 0 (queued; the loop below prints it). */
    stm_watch *w = stm_atomically_watch(read_temperature, changed, NULL, STM_WATCH_CHANGES_ONLY);
    if (w == NULL) {
        perror("eventloop: stm_atomically_watch");
        return 1;
    }
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, NULL) != 0) {
            perror("eventloop: pthread_create");
            return 1;
        }

    /* The event loop: until the last value has been reported. */
    while (last < WORKERS * UPDATES && ticks < WATCHDOG_TICKS) {
        struct pollfd fds[2] = {{dispatch_fd, POLLIN, 0}, {timer_fd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            perror("eventloop: poll");
            return 1;
        }
        if (fds[0].revents & POLLIN)
            stm_dispatch(); /* runs the queued reports, here */
        uint64_t n;
        if ((fds[1].revents & POLLIN) && read(timer_fd, &n, sizeof n) == sizeof n)
            ticks += (int)n;
    }
    if (ticks >= WATCHDOG_TICKS)
        fprintf(stderr, "eventloop: the watchdog fired: reports stopped at %ld\n", last);

    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    stm_atomically(unwatch, w);
    stm_stats_get(&st);
    close(timer_fd);
    stm_tvar_free(temperature);
    stm_shutdown();
    bool ok = errors == 0 && last == WORKERS * UPDATES && reports == last + 1;
    printf("%d reports for %d changes and %d touches (%lu watcher runs): %s\n", reports,
           WORKERS * UPDATES, WORKERS * UPDATES, (unsigned long)st.watch_runs,
           ok ? "OK, all in order on the main thread" : "FAILED");
    return ok ? 0 : 1;
}
