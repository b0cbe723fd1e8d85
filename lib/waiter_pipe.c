/*
 * waiter_pipe.c - Waiter backend "pipe": a descriptor that becomes
 * readable on notify, waited on with ppoll() (nanosecond time-outs, unlike
 * poll()'s milliseconds).  An eventfd where there is one, else a pipe;
 * both non-blocking and close-on-exec, drained completely after a
 * wake-up, closed on destroy.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#include "stm-internal.h"

struct pipe_waiter {
    struct stm__waiter base;
    int rfd, wfd; /* the same descriptor for an eventfd */
};

static struct stm__waiter *pw_create(const struct stm__waiter_ops *self)
{
    struct pipe_waiter *w = stm__malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    w->base.ops = self;
#if defined(__linux__)
    w->rfd = w->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->rfd >= 0)
        return &w->base;
    if (errno != ENOSYS && errno != EINVAL) {
        int e = errno;
        free(w);
        errno = e;
        return NULL;
    }
#endif
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        int e = errno;
        free(w);
        errno = e;
        return NULL;
    }
    w->rfd = fds[0];
    w->wfd = fds[1];
    return &w->base;
}

static void pw_destroy(struct stm__waiter *base)
{
    struct pipe_waiter *w = (struct pipe_waiter *)base;
    close(w->rfd);
    if (w->wfd != w->rfd)
        close(w->wfd);
    free(w);
}

/* Read until empty; true if anything was there. */
static bool drain(struct pipe_waiter *w)
{
    char buf[64];
    bool any = false;
    for (;;) {
        ssize_t n = read(w->rfd, buf, sizeof buf);
        if (n > 0) {
            any = true;
            if (w->rfd == w->wfd)
                return true; /* an eventfd read resets it */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return any;
    }
}

static void pw_prepare(struct stm__waiter *base)
{
    drain((struct pipe_waiter *)base);
}

/* ppoll() is a cancellation point (the one where stm_retry() may be
 * cancelled, with this backend).  Nothing is held here, so the handler has
 * nothing to release; it is here so that the cancellation's unwinding
 * stops in this frame first.  AddressSanitizer's runtime needs that: at
 * the next handler (retry.c) it would meet the stack redzones of the
 * frames skipped on the way, and report a false error
 * (google/sanitizers#1010). */
static void pw_cancelled(void *unused)
{
    (void)unused;
}

static int pw_poll(struct pollfd *p, const struct timespec *tp)
{
    volatile int r = -1;
    pthread_cleanup_push(pw_cancelled, NULL);
    r = ppoll(p, 1, tp, NULL);
    pthread_cleanup_pop(0);
    return r;
}

static bool pw_wait(struct stm__waiter *base, int64_t deadline)
{
    struct pipe_waiter *w = (struct pipe_waiter *)base;
    struct pollfd p = {.fd = w->rfd, .events = POLLIN};
    for (;;) {
        struct timespec ts, *tp = NULL;
        if (deadline < STM_NEVER) {
            int64_t left = deadline - stm__mono_ns();
            if (left <= 0)
                return drain(w);
            ts.tv_sec = (time_t)(left / INT64_C(1000000000));
            ts.tv_nsec = (long)(left % INT64_C(1000000000));
            tp = &ts;
        }
        int r = pw_poll(&p, tp);
        if (r > 0)
            return drain(w) || true;
        if (r == 0)
            return drain(w);
        if (errno != EINTR)
            return true; /* cannot wait: report a (spurious) wake-up */
    }
}

static void pw_notify(struct stm__waiter *base)
{
    struct pipe_waiter *w = (struct pipe_waiter *)base;
    ssize_t n;
    do {
        if (w->rfd == w->wfd) {
            uint64_t one = 1;
            n = write(w->wfd, &one, sizeof one);
        } else {
            n = write(w->wfd, "", 1);
        }
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, so it is readable already */
}

const struct stm__waiter_ops stm__waiter_pipe_ops = {
    .name = "pipe",
    .create = pw_create,
    .destroy = pw_destroy,
    .prepare = pw_prepare,
    .wait = pw_wait,
    .notify = pw_notify,
};
