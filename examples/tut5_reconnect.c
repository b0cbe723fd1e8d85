/*
 * tut5_reconnect.c - tutorial step 5: a reconnect loop with exponential
 * back-off (20 ms, doubling, at most 160 ms), made of transactions only.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The client's state is in TVars.  Its thread waits in a transaction until
 * the next attempt is due or `wake` is raised, connects outside any
 * transaction, and records the outcome in a second one.  The server is our
 * own socket on 127.0.0.1 (ephemeral port), listening only once
 * LISTEN_AFTER attempts have failed.  --virtual: the same on the virtual
 * clock with a simulated server, so the output is the same on every run.
 * See doc/tutorial.md, step 5.  Exits 0 iff attempt LISTEN_AFTER+1 connected.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stm.h>

#define FIRST_DELAY STM_MSEC(20)
#define MAX_DELAY STM_MSEC(160)
enum { LISTEN_AFTER = 6, MAX_ATTEMPTS = 10 };
enum { DISCONNECTED, CONNECTING, CONNECTED };

static stm_tvar *state, *attempts, *next_attempt, *delay, *wake;
static int virtual_clock, server_fd;
static struct sockaddr_in server;   /* 127.0.0.1:<ephemeral port> */
static atomic_int server_up;        /* simulated server (--virtual) */

struct plan { int n, woken; int64_t at, delay; };

/* Wait until the next attempt is due or `wake` is raised; claim it. */
static int wait_turn(stm_tx *tx, void *arg)
{
    struct plan *p = arg;
    p->woken = stm_read(tx, wake) != 0;
    if (!p->woken && !stm_elapsed(tx, stm_read(tx, next_attempt)))
        stm_retry(tx);      /* sleeps until whichever comes first */
    p->at = stm_tx_now(tx);
    p->n = (int)stm_read(tx, attempts) + 1;
    p->delay = stm_read(tx, delay);
    stm_write(tx, attempts, p->n);
    stm_write(tx, state, CONNECTING);
    stm_write(tx, wake, 0);
    return 0;
}

/* Record the outcome (arg: errno of the attempt, 0 = connected). */
static int record(stm_tx *tx, void *arg)
{
    int err = *(int *)arg, n = (int)stm_read(tx, attempts);
    int64_t d = stm_read(tx, delay);
    stm_write(tx, state, err ? DISCONNECTED : CONNECTED);
    stm_write(tx, next_attempt, err && n < MAX_ATTEMPTS ? stm_tx_now(tx) + d : STM_NEVER);
    stm_write(tx, delay, d < MAX_DELAY / 2 ? 2 * d : MAX_DELAY);
    return 0;
}

static int try_connect(void)    /* a side effect: never inside a body */
{
    if (virtual_clock)
        return atomic_load(&server_up) ? 0 : ECONNREFUSED;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) != 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    return err;
}

static void *client(void *arg)
{
    int *connected_at = arg, err = 1;
    int64_t t0 = 0;         /* the time of the first attempt */
    for (int i = 0; err != 0 && i < MAX_ATTEMPTS; i++) {
        struct plan p;
        if (stm_atomically(wait_turn, &p) != 0)
            break;
        err = try_connect();
        if (p.n == 1)
            t0 = p.at;
        printf("[+%6.1f ms] attempt %d%s: ", (double)(p.at - t0) / STM_MSEC(1), p.n,
               p.woken ? " (woken)" : "");
        if (!err)
            printf("connected\n");
        else if (p.n < MAX_ATTEMPTS)
            printf("%s; next in %d ms%s\n", strerror(err), (int)(p.delay / STM_MSEC(1)),
                   p.delay == MAX_DELAY ? " (cap)" : "");
        else
            printf("%s; giving up\n", strerror(err));
        fflush(stdout);     /* printed before the commit, so in order */
        if (stm_atomically(record, &err) != 0)
            break;
        if (!err)
            *connected_at = p.n;
    }
    return NULL;
}

/* Run by main.  1: the client has finished.  0: the client is idle and
 * main has something to do: start the server (LISTEN_AFTER attempts have
 * failed) or, on the virtual clock, move time on (the next attempt lies
 * in the future).  Otherwise wait.  `arg`: main's "server started" flag. */
static int client_idle(stm_tx *tx, void *arg)
{
    int started = *(int *)arg, st = (int)stm_read(tx, state);
    int64_t next = stm_read(tx, next_attempt);
    if (st == CONNECTED || next == STM_NEVER)
        return 1;
    if (st == CONNECTING || stm_read(tx, wake))
        stm_retry(tx);      /* an attempt is under way */
    if (!started && stm_read(tx, attempts) >= LISTEN_AFTER)
        return 0;
    if (virtual_clock && next > stm_tx_now(tx))
        return 0;
    stm_retry(tx);
}

int main(int argc, char **argv)
{
    socklen_t len = sizeof server;
    int connected_at = 0, rc = 0, started = 0;
    pthread_t th;

    virtual_clock = argc > 1 && strcmp(argv[1], "--virtual") == 0;
    if (virtual_clock && stm_clock_virtual(0) != 0) {
        fprintf(stderr, "tut5: the virtual clock is already on\n");
        return 1;
    }
    server.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!virtual_clock) {   /* bind now, so connects are refused until listen() */
        server_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&server, sizeof server) ||
            getsockname(server_fd, (struct sockaddr *)&server, &len)) {
            perror("tut5: server socket");
            return 1;
        }
        printf("server: bound to 127.0.0.1:%d, not listening yet\n", ntohs(server.sin_port));
    }
    if (!(state = stm_tvar_new(DISCONNECTED)) || !(attempts = stm_tvar_new(0)) ||
        !(next_attempt = stm_tvar_new(0)) || !(delay = stm_tvar_new(FIRST_DELAY)) ||
        !(wake = stm_tvar_new(0)) || pthread_create(&th, NULL, client, &connected_at) != 0) {
        perror("tut5: set-up");
        return 1;
    }
    /* The operator: start the server once LISTEN_AFTER attempts have
     * failed; on the virtual clock, also move time on, 10 ms a step. */
    while (rc == 0 && (rc = stm_atomically(client_idle, &started)) == 0) {
        if (!started && stm_tvar_peek(attempts) >= LISTEN_AFTER) {
            started = 1;    /* the server comes up and tells the client */
            atomic_store(&server_up, 1);
            if (!virtual_clock && listen(server_fd, 4) != 0) {
                perror("tut5: listen");
                break;
            }
            printf("server: listening%s\n", virtual_clock ? " (simulated)" : "");
            rc = stm_tvar_poke(wake, 1);
        } else if (virtual_clock) {
            stm_clock_advance(STM_MSEC(10));
        }
    }
    pthread_join(th, NULL);
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
    return rc >= 0 && connected_at == LISTEN_AFTER + 1 ? 0 : 1;
}
