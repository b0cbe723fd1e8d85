/*
 * echo_server.c - an echo server on 127.0.0.1 with one thread per core,
 * each waiting for its sockets in a transaction.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Each worker owns the clients it accepted.  It waits in one transaction
 * for whichever comes first: a stop flag (a TVar), a new connection on
 * the shared listening socket, or data on one of its clients -- every
 * socket asked about with stm_fd_ready(), which a stm_retry() then waits
 * on together with the TVars it read.  The I/O itself (accept, recv,
 * send; all non-blocking) happens after the transaction returns, since a
 * body may run more than once.  No thread per connection, no poll loop of
 * the program's own: the library's one epoll thread wakes the worker.
 *
 * The clients are this program too: CLIENTS connections, each sending
 * ROUNDS lines and checking that each comes back.  Prints a summary and
 * exits 0 iff every line was echoed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stm.h>

enum { CLIENTS = 200, ROUNDS = 20, MAXW = 64 };

static int listener;
static stm_tvar *stop;

struct worker {
    pthread_t th;
    int id;
    int fds[CLIENTS]; /* its clients; -1: a free slot */
    int n;            /* slots in use, at most */
    long lines;       /* bytes echoed */
};

enum { STOP = -1, ACCEPT = -2 };

/* What to do next: STOP, ACCEPT, or the slot of a readable client. */
static int wait_for_work(stm_tx *tx, void *arg)
{
    struct worker *w = arg;
    if (stm_read(tx, stop))
        return STOP;
    if (stm_fd_ready(tx, listener, POLLIN))
        return ACCEPT;
    for (int i = 0; i < w->n; i++)
        if (w->fds[i] >= 0 && stm_fd_ready(tx, w->fds[i], POLLIN))
            return i;
    stm_retry(tx); /* until stop is set or a socket is ready */
}

static void echo(struct worker *w, int i)
{
    char buf[4096];
    ssize_t got;
    while ((got = recv(w->fds[i], buf, sizeof buf, 0)) > 0) {
        for (ssize_t off = 0; off < got;) {
            ssize_t put = send(w->fds[i], buf + off, (size_t)(got - off), MSG_NOSIGNAL);
            if (put < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                break;
            off += put > 0 ? put : 0; /* (a few bytes: the buffer has room) */
        }
        w->lines += got;
    }
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        close(w->fds[i]); /* the client left */
        w->fds[i] = -1;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        int what = stm_atomically(wait_for_work, w);
        if (what == STOP)
            break;
        if (what == ACCEPT) {
            int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                continue; /* another worker took it */
            int slot = 0;
            while (slot < w->n && w->fds[slot] >= 0)
                slot++;
            if (slot == w->n)
                w->n++;
            w->fds[slot] = fd;
        } else if (what >= 0) {
            echo(w, what);
        } else {
            fprintf(stderr, "echo_server: %s\n", stm_strerror(what));
            exit(1);
        }
    }
    for (int i = 0; i < w->n; i++)
        if (w->fds[i] >= 0)
            close(w->fds[i]);
    return NULL;
}

static int set_stop(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, stop, 1);
    return 0;
}

/* ---- the clients (main) ------------------------------------------------- */

static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t got = recv(fd, buf + n, 1, 0);
        if (got <= 0)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

int main(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nw = cores < 1 ? 1 : cores > MAXW ? MAXW : (int)cores;
    static struct worker ws[MAXW];
    static int cl[CLIENTS];
    int bad = 0;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listener, CLIENTS) != 0 || getsockname(listener, (struct sockaddr *)&a, &len) != 0) {
        perror("echo_server: listen");
        return 1;
    }
    if (!(stop = stm_tvar_new(0)))
        return 1;
    printf("echo server on 127.0.0.1:%d: %d workers (one per core)\n", ntohs(a.sin_port), nw);
    for (int i = 0; i < nw; i++) {
        ws[i].id = i;
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0)
            return 1;
    }

    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cl[i] < 0 || connect(cl[i], (struct sockaddr *)&a, sizeof a) != 0) {
            perror("echo_server: connect");
            return 1;
        }
    }
    for (int r = 0; r < ROUNDS; r++) {
        char want[64], got[64];
        for (int i = 0; i < CLIENTS; i++) {
            int n = snprintf(want, sizeof want, "client %d line %d\n", i, r);
            if (send(cl[i], want, (size_t)n, MSG_NOSIGNAL) != n)
                bad++;
        }
        for (int i = 0; i < CLIENTS; i++) {
            snprintf(want, sizeof want, "client %d line %d\n", i, r);
            if (read_line(cl[i], got, sizeof got) < 0 || strcmp(got, want) != 0)
                bad++;
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        close(cl[i]);

    stm_atomically(set_stop, NULL); /* every worker wakes and returns */
    long bytes = 0;
    for (int i = 0; i < nw; i++) {
        pthread_join(ws[i].th, NULL);
        bytes += ws[i].lines;
    }
    close(listener);
    stm_tvar_free(stop);
    stm_shutdown();
    printf("%d clients x %d lines: %ld bytes echoed, %d wrong\n", CLIENTS, ROUNDS, bytes, bad);
    if (bad == 0)
        printf("done: all echoed\n");
    return bad == 0 ? 0 : 1;
}
