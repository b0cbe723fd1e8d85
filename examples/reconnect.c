/*
 * reconnect.c - libstm's showcase: a TCP client that reconnects with
 * exponential back-off, driven by a timed watch.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The client's state lives in TVars.  One watcher decides when to
 * connect: its function reads the state and, while the client is DOWN,
 * asks stm_elapsed() whether the next attempt is due.  If it is not, the
 * library runs the watcher again when it is (on its timer thread); if it
 * is, the callback marks the attempt CONNECTING and queues the connect
 * with stm_defer().  The connect runs after the commit, on the library's
 * dispatcher thread, and records its outcome in a transaction: connected
 * (UP, back-off reset) or refused (DOWN, next attempt = this attempt's
 * time + delay, delay doubled up to a cap).  That commit wakes the watcher
 * again, since it wrote what the watcher read.
 *
 * Why a timed watch and not a timer thread of our own?  A retry timer has
 * to be armed, re-armed and cancelled whenever the state changes, from
 * every place that changes it, under a lock shared with them all.  Here
 * the rule "connect when DOWN and the deadline has come" is written once,
 * as a function of the state; whoever changes the state (the connect, the
 * reader thread, a deadline) has the watcher re-evaluated inside the same
 * commit, and the library keeps the one timer that the function's
 * stm_elapsed() call asks for.  No lock, no lost wake-up, no stale timer.
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <stm.h>

#define FIRST_DELAY STM_MSEC(20)
#define MAX_DELAY STM_MSEC(320)
enum { DOWN, CONNECTING, UP };
enum { FIRST_OUTAGE = 7, SECOND_OUTAGE = 3 }; /* refusals before the server comes up */

/* The client's state.  `failures` counts refusals since the last success;
 * `conn` hands a new connection to the reader thread (-1: none); `quit`
 * stops the reader. */
static stm_tvar *state, *attempts, *last_at, *next_at, *delay, *failures, *conn, *quit;
static stm_tvar **const tvars[] = {&state, &attempts, &last_at, &next_at,
                                   &delay, &failures, &conn,    &quit};
static const intptr_t initial[] = {DOWN, 0, 0, 0 /* due at once */, FIRST_DELAY, 0, -1, 0};

static struct sockaddr_in server;      /* 127.0.0.1:<port chosen by the kernel> */
static int64_t t0;                     /* times are printed from here */
static int refused, connected, losses; /* one writer each; read at the end */

static long ms(int64_t t)
{
    return (long)((t - t0) / STM_MSEC(1));
}

/* ---- the watcher: is an attempt due? ----------------------------------- */

static intptr_t attempt_due(stm_tx *tx, void *arg)
{
    (void)arg;
    if (stm_read(tx, state) != DOWN)
        return 0;
    /* false: the deadline is recorded, and the watcher runs again then */
    return stm_elapsed(tx, stm_read(tx, next_at));
}

static void try_connect(void *arg);

static void start_attempt(stm_tx *tx, intptr_t due, void *arg)
{
    (void)arg;
    if (!due)
        return;
    stm_write(tx, state, CONNECTING);
    stm_write(tx, attempts, stm_read(tx, attempts) + 1);
    stm_write(tx, last_at, stm_tx_now(tx));
    stm_defer(tx, try_connect, NULL); /* the connect is a side effect */
}

/* ---- the connect: on the dispatcher thread, after the commit ---------- */

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

static int record(stm_tx *tx, void *arg)
{
    const struct attempt *a = arg;
    if (a->err == 0) {
        stm_write(tx, state, UP);
        stm_write(tx, conn, a->fd);
        stm_write(tx, delay, FIRST_DELAY);
        stm_write(tx, failures, 0);
    } else {
        stm_write(tx, state, DOWN);
        stm_write(tx, next_at, a->at + a->delay);
        stm_write(tx, delay, a->delay < MAX_DELAY / 2 ? 2 * a->delay : MAX_DELAY);
        stm_write(tx, failures, stm_read(tx, failures) + 1);
    }
    return 0;
}

static void try_connect(void *unused)
{
    struct attempt a = {0, 0, 0, 0, -1};
    struct timeval limit = {1, 0}; /* a blocking connect, for at most 1 s */
    (void)unused;
    stm_atomically(read_attempt, &a); /* nobody else writes these while CONNECTING */
    a.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (a.fd < 0 || setsockopt(a.fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0 ||
        connect(a.fd, (struct sockaddr *)&server, sizeof server) != 0) {
        a.err = errno;
        if (a.fd >= 0)
            close(a.fd);
    }
    /* Printed before the outcome commits: the main thread prints when it
     * sees the commit, so the lines come out in order. */
    if (a.err == 0) {
        connected++;
        printf("attempt %ld at %ld ms: connected\n", (long)a.n, ms(a.at));
    } else {
        refused++;
        printf("attempt %ld at %ld ms: %s; next in %ld ms\n", (long)a.n, ms(a.at),
               a.err == ECONNREFUSED ? "refused" : strerror(a.err), (long)(a.delay / STM_MSEC(1)));
    }
    fflush(stdout);
    if (stm_atomically(record, &a) != 0)
        abort(); /* only -ENOMEM could get here */
}

/* ---- the reader thread: notices a broken connection -------------------- */

static int take_conn(stm_tx *tx, void *arg)
{
    int *fd = arg;
    *fd = (int)stm_read(tx, conn);
    if (*fd >= 0)
        stm_write(tx, conn, -1);
    else if (!stm_read(tx, quit))
        stm_retry(tx); /* sleep until there is a connection, or `quit` */
    return 0;
}

static int lost(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, state, DOWN); /* back-off starts afresh: now, +20 ms, ... */
    stm_write(tx, next_at, stm_tx_now(tx));
    stm_write(tx, delay, FIRST_DELAY);
    stm_write(tx, failures, 0);
    return 0;
}

static void *reader(void *unused)
{
    char buf[64];
    ssize_t got;
    int fd;
    (void)unused;
    while (stm_atomically(take_conn, &fd) == 0 && fd >= 0) {
        /* The server sends nothing; a real client would read here. */
        while ((got = recv(fd, buf, sizeof buf, 0)) > 0)
            continue;
        if (!stm_tvar_peek(quit)) { /* main sets quit before its last close */
            losses++;
            printf("connection lost at %ld ms: %s\n", ms(stm_now()),
                   got == 0 ? "closed by the server" : strerror(errno));
            fflush(stdout);
        }
        close(fd);
        stm_atomically(lost, NULL);
    }
    return NULL;
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

static int stop(stm_tx *tx, void *w)
{
    stm_unwatch(tx, w); /* from this commit on, no attempt can start */
    stm_write(tx, quit, 1);
    return 0;
}

int main(void)
{
    struct linger reset = {1, 0}; /* close() sends a reset, like a crash */
    int listener, fd;
    size_t i;
    pthread_t th;
    stm_watch *w;

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
    if (pthread_create(&th, NULL, reader, NULL) != 0)
        return 1;
    /* Its first evaluation, in this call's commit, queues attempt 1. */
    if (!(w = stm_atomically_watch(attempt_due, start_attempt, NULL, 0))) {
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

    stm_atomically(stop, w);
    close(fd); /* the reader sees the close, and `quit` */
    pthread_join(th, NULL);
    close(listener);
    close(keeper);
    long n = (long)stm_tvar_peek(attempts);
    for (i = 0; i < sizeof tvars / sizeof tvars[0]; i++)
        stm_tvar_free(*tvars[i]);
    stm_shutdown(); /* waits for the dispatcher thread, too */
    printf("done: %ld attempts, %d refused, %d connected, %d connection lost\n", n, refused,
           connected, losses);
    return connected == 2 && losses == 1 && refused + connected == n ? 0 : 1;
}
