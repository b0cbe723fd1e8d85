/*
 * reconnect.c - libstm's showcase: a TCP client that reconnects with
 * exponential back-off, driven by one watcher that waits on time, on a
 * socket and on a stop flag at once.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The client's state lives in TVars.  One watcher drives it: its function
 * reads the state and the stop flag and, depending on the state, asks
 * stm_elapsed() whether the next attempt is due (DOWN), stm_fd_ready()
 * whether the non-blocking connect has completed (CONNECTING), or whether
 * data or a hang-up has arrived on the connection (UP).  Whatever it asked
 * and got "not yet" for, the library runs the watcher again when it comes:
 * a deadline or a socket on a thread of its timer pool (one epoll
 * for the process), a TVar in the commit that writes it.  The callback
 * turns the answer into the next state and queues the system calls with
 * stm_defer() - all of them non-blocking: socket() + connect() with
 * O_NONBLOCK, getsockopt(SO_ERROR) once the socket is writable, recv()
 * once it is readable.  Each records its outcome in a transaction, which
 * runs the watcher again.  No reader thread, no blocking connect on the
 * dispatcher, no timer of the program's own.
 *
 * Why a watcher and not threads and timers?  A retry timer has to be
 * armed, re-armed and cancelled whenever the state changes, a reader
 * thread has to be woken to stop; here the rule "connect when DOWN and the
 * deadline has come, check when the socket is writable, read when it is
 * readable, stop when asked" is written once, as a function of the state,
 * and the library keeps exactly the waits that the function asked for.
 *
 * The server is this program too (the main thread), on 127.0.0.1:
 * it is down at first, comes up after 7 refused attempts, drops the
 * connection and goes down, comes up again after 3 more refusals, and the
 * program then ends.  One line per attempt ("attempt 3 at 60 ms: refused;
 * next in 80 ms"), and a summary.  Exits 0 iff it went as scripted.
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
#define MAX_DELAY STM_MSEC(320)
/* DOWN: waiting for next_at; CONNECTING: connect in progress on `sock`;
 * UP: connected on `sock`; BUSY: a deferred system call is deciding;
 * STOPPED: the watcher has stopped itself */
enum { DOWN, CONNECTING, UP, BUSY, STOPPED };
enum { FIRST_OUTAGE = 7, SECOND_OUTAGE = 3 }; /* refusals before the server comes up */
/* what the watcher found */
enum { NOTHING, DUE, CONNECT_DONE, READABLE, STOP };

/* The client's state.  `failures` counts refusals since the last success;
 * `stop` asks the client to stop. */
static stm_tvar *state, *sock, *attempts, *last_at, *next_at, *delay, *failures, *stop;
static stm_tvar **const tvars[] = {&state,   &sock,  &attempts, &last_at,
                                   &next_at, &delay, &failures, &stop};
static const intptr_t initial[] = {DOWN, -1, 0, 0, 0 /* due at once */, FIRST_DELAY, 0, 0};

static struct sockaddr_in server;      /* 127.0.0.1:<port chosen by the kernel> */
static int64_t t0;                     /* times are printed from here */
static int refused, connected, losses; /* one writer each; read at the end */
static stm_watch *client;

static long ms(int64_t t)
{
    return (long)((t - t0) / STM_MSEC(1));
}

/* ---- the watcher: what has happened? ------------------------------------ */

static intptr_t what_now(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, stop))
        return STOP;
    switch (stm_read(tx, state)) {
    case DOWN: /* false: the deadline is recorded, and the watcher runs then */
        return stm_elapsed(tx, stm_read(tx, next_at)) ? DUE : NOTHING;
    case CONNECTING: /* writable (or an error): the connect has finished */
        return stm_fd_ready(tx, (int)stm_read(tx, sock), POLLOUT) ? CONNECT_DONE : NOTHING;
    case UP: /* data, or the server closed or reset the connection */
        return stm_fd_ready(tx, (int)stm_read(tx, sock), POLLIN) ? READABLE : NOTHING;
    default:
        return NOTHING;
    }
}

static void start_connect(void *arg);
static void finish_connect(void *arg);
static void read_input(void *arg);
static void close_fd(void *arg);

static void act(stm_tx *tx, intptr_t what, void *arg)
{
    (void)arg;
    switch (what) {
    case DUE:
        stm_write(tx, state, BUSY);
        stm_write(tx, attempts, stm_read(tx, attempts) + 1);
        stm_write(tx, last_at, stm_tx_now(tx));
        stm_defer(tx, start_connect, NULL); /* system calls are side effects */
        break;
    case CONNECT_DONE:
        stm_write(tx, state, BUSY);
        stm_defer(tx, finish_connect, (void *)stm_read(tx, sock));
        break;
    case READABLE:
        stm_write(tx, state, BUSY);
        stm_defer(tx, read_input, (void *)stm_read(tx, sock));
        break;
    case STOP:
        if (stm_read(tx, state) == STOPPED)
            break;
        stm_unwatch(tx, client); /* its own callback may stop it */
        if (stm_read(tx, sock) >= 0)
            stm_defer(tx, close_fd, (void *)stm_read(tx, sock));
        stm_write(tx, sock, -1);
        stm_write(tx, state, STOPPED);
        break;
    }
}

/* ---- the system calls: deferred, non-blocking --------------------------- */

struct attempt {
    intptr_t n;
    int64_t at, delay;
    int err, fd;
};

static int read_attempt(stm_tx *tx, void *arg)
{
    struct attempt *a = arg;
    a->n = stm_read(tx, attempts);
    a->at = stm_read(tx, last_at);
    a->delay = stm_read(tx, delay);
    return 0;
}

/* The outcome of an attempt: in progress (fd >= 0, err == EINPROGRESS),
 * connected or refused. */
static int record(stm_tx *tx, void *arg)
{
    const struct attempt *a = arg;
    if (stm_read(tx, state) == STOPPED)
        return -1; /* (the caller closes the fd) */
    if (a->err == EINPROGRESS) {
        stm_write(tx, state, CONNECTING);
        stm_write(tx, sock, a->fd);
    } else if (a->err == 0) {
        stm_write(tx, state, UP);
        stm_write(tx, sock, a->fd);
        stm_write(tx, delay, FIRST_DELAY);
        stm_write(tx, failures, 0);
    } else {
        stm_write(tx, state, DOWN);
        stm_write(tx, sock, -1);
        stm_write(tx, next_at, a->at + a->delay);
        stm_write(tx, delay, a->delay < MAX_DELAY / 2 ? 2 * a->delay : MAX_DELAY);
        stm_write(tx, failures, stm_read(tx, failures) + 1);
    }
    return 0;
}

/* Printed before the outcome commits: the main thread prints when it
 * sees the commit, so the lines come out in order. */
static void outcome(struct attempt *a)
{
    if (a->err == 0) {
        connected++;
        printf("attempt %ld at %ld ms: connected\n", (long)a->n, ms(a->at));
    } else {
        refused++;
        printf("attempt %ld at %ld ms: %s; next in %ld ms\n", (long)a->n, ms(a->at),
               a->err == ECONNREFUSED ? "refused" : strerror(a->err),
               (long)(a->delay / STM_MSEC(1)));
        if (a->fd >= 0)
            close(a->fd);
        a->fd = -1;
    }
    fflush(stdout);
}

static void start_connect(void *unused)
{
    struct attempt a = {0, 0, 0, 0, -1};
    (void)unused;
    stm_atomically(read_attempt, &a); /* nobody else writes these while BUSY */
    a.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a.fd < 0)
        a.err = errno;
    else if (connect(a.fd, (struct sockaddr *)&server, sizeof server) != 0)
        a.err = errno; /* EINPROGRESS: the watcher waits for the socket */
    if (a.err != EINPROGRESS)
        outcome(&a);
    if (stm_atomically(record, &a) != 0 && a.fd >= 0)
        close(a.fd);
}

static void finish_connect(void *arg)
{
    struct attempt a = {0, 0, 0, 0, (int)(intptr_t)arg};
    socklen_t len = sizeof a.err;
    stm_atomically(read_attempt, &a);
    if (getsockopt(a.fd, SOL_SOCKET, SO_ERROR, &a.err, &len) != 0)
        a.err = errno;
    outcome(&a);
    if (stm_atomically(record, &a) != 0 && a.fd >= 0)
        close(a.fd);
}

static int lost(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, state) == STOPPED)
        return -1;
    stm_write(tx, state, DOWN); /* back-off starts afresh: now, +20 ms, ... */
    stm_write(tx, sock, -1);
    stm_write(tx, next_at, stm_tx_now(tx));
    stm_write(tx, delay, FIRST_DELAY);
    stm_write(tx, failures, 0);
    return 0;
}

static int still_up(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, state) == STOPPED)
        return -1;
    stm_write(tx, state, UP); /* the watcher asks the socket again */
    return 0;
}

static void read_input(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0)
        continue; /* the server sends nothing; a real client would use it */
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (stm_atomically(still_up, NULL) != 0)
            close(fd);
        return;
    }
    if (!stm_tvar_peek(stop)) { /* main sets stop before its last close */
        losses++;
        printf("connection lost at %ld ms: %s\n", ms(stm_now()),
               got == 0 ? "closed by the server" : strerror(errno));
        fflush(stdout);
    }
    close(fd);
    stm_atomically(lost, NULL);
}

static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

/* ---- the server (main): up, down, up ---------------------------------- */

/* The port stays ours throughout: `keeper` (in main) is bound to it and
 * never listens, so while no listener exists a connect is refused, and the
 * kernel cannot hand the port to anyone else in between.  SO_REUSEPORT
 * lets each "server up" bind a new listening socket to the same port. */
static int bound_socket(void)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&server, sizeof server) != 0) {
        perror("reconnect: server socket");
        exit(1);
    }
    return fd;
}

/* Wait until the client is UP (want < 0), or until it has been refused
 * `want` times in a row. */
static int await(stm_tx *tx, void *arg)
{
    intptr_t want = (intptr_t)arg;
    if (want < 0 ? stm_read(tx, state) != UP : stm_read(tx, failures) < want)
        stm_retry(tx);
    return 0;
}

/* Come up after `refusals`; return the client's connection once it is UP. */
static int serve_after(int refusals, int *listener)
{
    stm_atomically(await, (void *)(intptr_t)refusals);
    *listener = bound_socket();
    if (listen(*listener, 4) != 0) {
        perror("reconnect: listen");
        exit(1);
    }
    printf("server up at %ld ms\n", ms(stm_now()));
    fflush(stdout);
    int fd = accept(*listener, NULL, NULL);
    if (fd < 0) {
        perror("reconnect: accept");
        exit(1);
    }
    stm_atomically(await, (void *)(intptr_t)-1);
    return fd;
}

static int ask_stop(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, stop, 1); /* the watcher reads it: it stops in this commit */
    return 0;
}

static int await_stopped(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, state) != STOPPED)
        stm_retry(tx);
    return 0;
}

int main(void)
{
    struct linger reset = {1, 0}; /* close() sends a reset, like a crash */
    int listener, fd;
    size_t i;

    server.sin_family = AF_INET;
    server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int keeper = bound_socket(); /* port 0: the kernel picks one */
    socklen_t len = sizeof server;
    if (getsockname(keeper, (struct sockaddr *)&server, &len) != 0)
        return 1;
    printf("server 127.0.0.1:%d is down\n", ntohs(server.sin_port));
    for (i = 0; i < sizeof tvars / sizeof tvars[0]; i++)
        if (!(*tvars[i] = stm_tvar_new(initial[i])))
            return 1;
    t0 = stm_now();
    /* Its first evaluation, in this call's commit, queues attempt 1. */
    if (!(client = stm_atomically_watch(what_now, act, NULL, 0))) {
        perror("reconnect: stm_atomically_watch");
        return 1;
    }

    fd = serve_after(FIRST_OUTAGE, &listener);
    close(listener); /* the port is closed again... */
    printf("server down at %ld ms\n", ms(stm_now()));
    fflush(stdout);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd); /* ...and the client's connection is reset */
    fd = serve_after(SECOND_OUTAGE, &listener);

    stm_atomically(ask_stop, NULL);
    stm_atomically(await_stopped, NULL); /* the client closes its socket */
    close(fd);
    close(listener);
    close(keeper);
    long n = (long)stm_tvar_peek(attempts);
    for (i = 0; i < sizeof tvars / sizeof tvars[0]; i++)
        stm_tvar_free(*tvars[i]);
    stm_shutdown(); /* runs what is deferred (the last close), then stops */
    printf("done: %ld attempts, %d refused, %d connected, %d connection lost\n", n, refused,
           connected, losses);
    return connected == 2 && losses == 1 && refused + connected == n ? 0 : 1;
}
