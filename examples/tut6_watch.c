/*
 * tut6_watch.c - tutorial step 6: step 5's reconnect loop as a timed
 * watch, with no client thread.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The state is step 5's TVars.  A watcher decides when an attempt is due
 * (the client is disconnected, and the next attempt's deadline has come or
 * `wake` is raised); its callback claims the attempt and defers the
 * connect, a side effect, to the dispatcher.  main() runs the dispatcher's
 * callbacks on its own loop (stm_dispatch_fd / stm_dispatch): the connect,
 * the transaction that records its outcome and plans the next attempt, and
 * the "server" that starts listening once LISTEN_AFTER attempts have
 * failed.  --virtual: the same on the virtual clock with a simulated
 * server, so the output is the same on every run.  See doc/tutorial.md,
 * step 6.  Exits 0 iff attempt LISTEN_AFTER+1 connected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stm.h>

#define FIRST_DELAY STM_MSEC(20)
#define MAX_DELAY STM_MSEC(160)
enum { LISTEN_AFTER = 6, MAX_ATTEMPTS = 10 };
enum { DISCONNECTED, CONNECTING, CONNECTED };
enum { WAIT, LISTEN, DONE }; /* what main's loop does next */

static stm_tvar *state, *attempts, *next_attempt, *delay, *wake;
static int virtual_clock, server_fd, server_up, connected_at;
static int64_t t0;                /* the time of the first attempt */
static struct sockaddr_in server; /* 127.0.0.1:<ephemeral port> */

/* One attempt, from the watcher's callback to the dispatcher. */
struct attempt {
    int n, woken, err;
    int64_t at, delay;
};

/* The watcher's function: is an attempt due?  When the deadline has not
 * come, stm_elapsed() records it and the library runs the watcher again
 * when it comes; a commit to any TVar read here runs it at once. */
static intptr_t due(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, state) != DISCONNECTED)
        return 0;
    return stm_read(tx, wake) || stm_elapsed(tx, stm_read(tx, next_attempt));
}

static void attempt_connect(void *arg);

/* The watcher's callback: claim the attempt, in the transaction that ran
 * the watcher, and defer the connect to the dispatcher. */
static void claim(stm_tx *tx, intptr_t is_due, void *arg)
{
    (void)arg;
    if (!is_due)
        return;
    struct attempt *a = stm_alloc(tx, sizeof *a); /* freed if discarded */
    a->n = (int)stm_read(tx, attempts) + 1;
    a->woken = stm_read(tx, wake) != 0;
    a->at = stm_tx_now(tx);
    a->delay = stm_read(tx, delay);
    stm_write(tx, attempts, a->n);
    stm_write(tx, state, CONNECTING);
    stm_write(tx, wake, 0);
    stm_defer(tx, attempt_connect, a); /* only if this commits */
}

/* Record the outcome; the next deadline counts from the attempt's start. */
static int record(stm_tx *tx, void *arg)
{
    const struct attempt *a = arg;
    stm_write(tx, state, a->err ? DISCONNECTED : CONNECTED);
    stm_write(tx, next_attempt, a->err && a->n < MAX_ATTEMPTS ? a->at + a->delay : STM_NEVER);
    stm_write(tx, delay, a->delay < MAX_DELAY / 2 ? 2 * a->delay : MAX_DELAY);
    return 0;
}

static int try_connect(void)
{
    if (virtual_clock)
        return server_up ? 0 : ECONNREFUSED;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) != 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    return err;
}

/* Deferred by claim(); run by main's stm_dispatch(), outside any
 * transaction: the side effects go here. */
static void attempt_connect(void *arg)
{
    struct attempt *a = arg;
    a->err = try_connect();
    if (a->n == 1)
        t0 = a->at;
    printf("[+%6.1f ms] attempt %d%s: ", (double)(a->at - t0) / STM_MSEC(1), a->n,
           a->woken ? " (woken)" : "");
    if (!a->err)
        printf("connected\n");
    else if (a->n < MAX_ATTEMPTS)
        printf("%s; next in %d ms%s\n", strerror(a->err), (int)(a->delay / STM_MSEC(1)),
               a->delay == MAX_DELAY ? " (cap)" : "");
    else
        printf("%s; giving up\n", strerror(a->err));
    int rc = stm_atomically(record, a);
    if (rc != 0) {
        fprintf(stderr, "tut6: record: %s\n", stm_strerror(rc));
        exit(1);
    }
    if (!a->err)
        connected_at = a->n;
    free(a); /* committed stm_alloc() memory is the program's */
}

/* main's loop: what next?  `arg`: main's "server started" flag. */
static int next_step(stm_tx *tx, void *arg)
{
    int started = *(int *)arg, st = (int)stm_read(tx, state);
    if (st == CONNECTED || (st == DISCONNECTED && stm_read(tx, next_attempt) == STM_NEVER))
        return DONE;
    if (!started && st == DISCONNECTED && stm_read(tx, attempts) >= LISTEN_AFTER)
        return LISTEN;
    return WAIT;
}

static int stop_watch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

int main(int argc, char **argv)
{
    socklen_t len = sizeof server;
    int rc, started = 0;

    virtual_clock = argc > 1 && strcmp(argv[1], "--virtual") == 0;
    if (virtual_clock && stm_clock_virtual(0) != 0) {
        fprintf(stderr, "tut6: the virtual clock is already on\n");
        return 1;
    }
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!virtual_clock) { /* bind now, so connects are refused until listen() */
        server_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&server, sizeof server) ||
            getsockname(server_fd, (struct sockaddr *)&server, &len)) {
            perror("tut6: server socket");
            return 1;
        }
        printf("server: bound to 127.0.0.1:%d, not listening yet\n", ntohs(server.sin_port));
    }
    if (!(state = stm_tvar_new(DISCONNECTED)) || !(attempts = stm_tvar_new(0)) ||
        !(next_attempt = stm_tvar_new(0)) || !(delay = stm_tvar_new(FIRST_DELAY)) ||
        !(wake = stm_tvar_new(0))) {
        perror("tut6: stm_tvar_new");
        return 1;
    }
    /* Deferred callbacks run on this thread, in stm_dispatch(). */
    int fd = stm_dispatch_fd();
    if (fd < 0) {
        fprintf(stderr, "tut6: stm_dispatch_fd: %s\n", stm_strerror(fd));
        return 1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    /* The client: evaluated once now (attempt 1 is due at once). */
    stm_watch *client = stm_atomically_watch(due, claim, NULL, 0);
    if (client == NULL) {
        perror("tut6: stm_atomically_watch");
        return 1;
    }
    while ((rc = stm_atomically(next_step, &started)) != DONE) {
        if (rc < 0) {
            fprintf(stderr, "tut6: %s\n", stm_strerror(rc));
            return 1;
        }
        if (rc == LISTEN) { /* the server comes up and tells the client */
            started = server_up = 1;
            if (!virtual_clock && listen(server_fd, 4) != 0) {
                perror("tut6: listen");
                return 1;
            }
            printf("server: listening%s\n", virtual_clock ? " (simulated)" : "");
            rc = stm_tvar_poke(wake, 1); /* runs the watcher: attempt due */
            if (rc != 0) {
                fprintf(stderr, "tut6: stm_tvar_poke: %s\n", stm_strerror(rc));
                return 1;
            }
        } else if (stm_dispatch() == 0) { /* nothing to run: wait */
            if (virtual_clock) {
                stm_clock_advance(STM_MSEC(10)); /* runs the watcher when due */
            } else if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                perror("tut6: poll");
                return 1;
            }
        }
    }
    if (stm_atomically(stop_watch, client) != 0)
        return 1;
    /* stopped: claim() is never called again, the TVars may go */
    if (connected_at)
        printf("connected after %d attempts\n", connected_at);
    else
        printf("not connected\n");

    stm_tvar_free(state);
    stm_tvar_free(attempts);
    stm_tvar_free(next_attempt);
    stm_tvar_free(delay);
    stm_tvar_free(wake);
    if (!virtual_clock)
        close(server_fd);
    else
        stm_clock_real();
    stm_shutdown();
    return connected_at == LISTEN_AFTER + 1 ? 0 : 1;
}
