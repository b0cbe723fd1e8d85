/*
 * watch_retry.c - the retries of a watcher's failed runs of its own: a
 * record per failing watcher, with its timer.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A run of a watcher in a transaction of its own (a deadline, an fd, a
 * retry) that fails is retried on the schedule of watch_error.c by a
 * library-clock timer.  The timer and the count of failures in a row are
 * in a record of their own, found by the watcher's address in a small
 * table, made when a run first fails and kept until the watcher stops:
 * a watcher that never fails pays nothing for it (the fd interests of
 * reactor.c are kept apart, for the same reason).
 *
 * Lock order: the reactor's lock, then this file's (an fd interest that
 * could not be registered arms a retry from inside the reactor); the
 * timer's callback takes only this one.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "stm-internal.h"
#include "watch.h" /* stm__watch_runs_ok(): the runs of a commit */

struct wretry {
    struct stm__timer retry; /* first: the timer hands back this address */
    struct wretry *hnext;    /* bucket chain */
    struct stm_watch *w;
    uint32_t fails; /* failed runs in a row */
    int pending;    /* an fd interest that could not be registered: its error */
    bool slot;      /* holds a reserved timer-heap slot */
};

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct wretry **q_b;
static uint32_t q_nb, q_n;
static _Atomic uint32_t q_failing; /* records with fails != 0 */

static void retry_fire(struct stm__timer *t, uint64_t seq);

static struct wretry **slot_of(struct stm_watch *w)
{
    struct wretry **p = &q_b[stm__ptr_hash(w, q_nb - 1)];
    while (*p && (*p)->w != w)
        p = &(*p)->hnext;
    return p;
}

static struct wretry *find(struct stm_watch *w)
{
    return q_nb ? *slot_of(w) : NULL;
}

/* w's record, made if it has none: NULL on ENOMEM */
static struct wretry *get(struct stm_watch *w)
{
    struct wretry *s = find(w);
    if (s)
        return s;
    if (q_n + 1 > q_nb) {
        uint32_t nb = q_nb ? 2 * q_nb : 16;
        struct wretry **b = stm__calloc(nb, sizeof *b);
        if (b == NULL)
            return NULL;
        for (uint32_t i = 0; i < q_nb; i++)
            for (struct wretry *e = q_b[i], *next; e; e = next) {
                next = e->hnext;
                uint32_t k = stm__ptr_hash(e->w, nb - 1);
                e->hnext = b[k];
                b[k] = e;
            }
        free(q_b);
        q_b = b;
        q_nb = nb;
    }
    s = stm__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->w = w;
    s->retry.fn = retry_fire;
    struct wretry **p = &q_b[stm__ptr_hash(w, q_nb - 1)];
    s->hnext = *p;
    *p = s;
    q_n++;
    return s;
}

static void retry_fire(struct stm__timer *t, uint64_t seq)
{
    (void)seq;
    /* w is alive: its stop cancels this timer, waiting for this run */
    struct wretry *s = (struct wretry *)t;
    struct stm_watch *w = s->w;
    pthread_mutex_lock(&q_lock);
    int err = s->pending;
    s->pending = 0;
    pthread_mutex_unlock(&q_lock);
    if (err)
        stm__watch_report(w, err, stm__now()); /* an interest it lost */
    stm__watch_run_now(w);
}

/* Arm s's retry on the schedule: when, or STM_NEVER (no memory). */
static int64_t arm(struct wretry *s)
{
    if (!s->slot && stm__timer_reserve(1) == 0)
        s->slot = true;
    if (!s->slot)
        return STM_NEVER;
    if (s->fails++ == 0)
        atomic_fetch_add(&q_failing, 1);
    int64_t at = stm__sat_add(stm__now(), stm__watch_retry_delay(s->fails));
    stm__timer_set(&s->retry, at, false);
    return at;
}

int64_t stm__watch_retry_arm(struct stm_watch *w)
{
    int64_t at = STM_NEVER;
    pthread_mutex_lock(&q_lock);
    struct wretry *s = atomic_load_explicit(&w->dead, memory_order_seq_cst) ? NULL : get(w);
    if (s)
        at = arm(s);
    pthread_mutex_unlock(&q_lock);
    return at;
}

void stm__watch_retry_lost(struct stm_watch *w, int err)
{
    pthread_mutex_lock(&q_lock);
    struct wretry *s = get(w);
    if (s) { /* (else: no memory even for that: a change of what it read runs it) */
        if (s->pending == 0)
            s->pending = err;
        arm(s);
    }
    pthread_mutex_unlock(&q_lock);
}

void stm__watch_retry_ok(struct stm_watch *w)
{
    if (atomic_load_explicit(&q_failing, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&q_lock);
    struct wretry *s = find(w);
    if (s && s->fails && s->pending == 0) { /* (pending: this run lost an fd) */
        s->fails = 0;
        atomic_fetch_sub(&q_failing, 1);
        stm__timer_unset(&s->retry); /* (a pending retry is not needed) */
    }
    pthread_mutex_unlock(&q_lock);
}

void stm__watch_runs_ok(struct stm__watchtx *x)
{
    if (atomic_load_explicit(&q_failing, memory_order_relaxed) == 0)
        return;
    for (uint32_t k = 0; k < x->runs.n; k++)
        stm__watch_retry_ok(x->runs.v[k].w);
}

void stm__watch_retry_forget(struct stm_watch *w)
{
    pthread_mutex_lock(&q_lock);
    struct wretry *s = find(w);
    if (s) {
        *slot_of(w) = s->hnext;
        q_n--;
        if (s->fails)
            atomic_fetch_sub(&q_failing, 1);
    }
    pthread_mutex_unlock(&q_lock);
    if (s) {
        /* (without the lock: a retry run in progress takes it) */
        stm__timer_cancel(&s->retry);
        if (s->slot)
            stm__timer_unreserve(1);
        free(s);
    }
}

void stm__watch_retry_shutdown(void)
{
    pthread_mutex_lock(&q_lock);
    if (q_n == 0) {
        free(q_b);
        q_b = NULL;
        q_nb = 0;
    }
    pthread_mutex_unlock(&q_lock);
}

void stm__watch_retry_fork(int phase)
{
    if (phase == STM__FORK_PREPARE)
        pthread_mutex_lock(&q_lock);
    else
        pthread_mutex_unlock(&q_lock);
}
