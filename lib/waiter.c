/*
 * waiter.c - the Waiter: how every blocking wait sleeps.  Backend
 * registry, the per-thread waiter, and the one timed-sleep routine that
 * retry and deadlines go through.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The current backend is one atomic pointer.  Each thread keeps the waiter
 * it made and replaces it at its next wait when the backend has changed,
 * so a switch never disturbs a wait in progress.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include "stm-internal.h"

static const struct stm__waiter_ops *const builtins[] = {
    &stm__waiter_condvar_ops,
    &stm__waiter_pipe_ops,
    &stm__waiter_thread_ops,
};

static _Atomic(const struct stm__waiter_ops *) current = &stm__waiter_condvar_ops;
static _Atomic bool chosen; /* set explicitly: STM_WAITER no longer applies */

/* ---- user-supplied backends -------------------------------------------- */

struct user_backend {
    struct stm__waiter_ops ops;
    struct stm_waiter_ops user;
    struct user_backend *next;
};
struct user_waiter {
    struct stm__waiter base;
    void *handle;
};
static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static struct user_backend *users; /* kept until shutdown: waiters may use them */

static struct stm__waiter *user_create(const struct stm__waiter_ops *self)
{
    struct user_waiter *w = stm__malloc(sizeof *w);
    if (w == NULL)
        return NULL;
    errno = 0;
    w->handle = self->user->create(self->user->ctx);
    if (w->handle == NULL) {
        int e = errno ? errno : ENOMEM;
        free(w);
        errno = e;
        return NULL;
    }
    w->base.ops = self;
    return &w->base;
}

static void user_destroy(struct stm__waiter *base)
{
    struct user_waiter *w = (struct user_waiter *)base;
    base->ops->user->destroy(w->handle);
    free(w);
}

static void user_prepare(struct stm__waiter *base)
{
    (void)base; /* a stale notify only costs one extra run of the body */
}

static bool user_wait(struct stm__waiter *base, int64_t deadline)
{
    struct user_waiter *w = (struct user_waiter *)base;
    return base->ops->user->wait(w->handle, deadline) != -ETIMEDOUT;
}

static void user_notify(struct stm__waiter *base)
{
    struct user_waiter *w = (struct user_waiter *)base;
    base->ops->user->notify(w->handle);
}

/* ---- choosing --------------------------------------------------------------- */

STM_API int stm_set_waiter(const char *name)
{
    if (name == NULL)
        return -EINVAL;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (strcmp(name, builtins[i]->name) == 0) {
            atomic_store(&chosen, true);
            atomic_store(&current, builtins[i]);
            return 0;
        }
    }
    return -EINVAL;
}

STM_API int stm_set_waiter_ops(const struct stm_waiter_ops *ops)
{
    if (ops == NULL || ops->name == NULL || ops->create == NULL || ops->destroy == NULL ||
        ops->wait == NULL || ops->notify == NULL)
        return -EINVAL;
    pthread_mutex_lock(&users_lock);
    for (struct user_backend *u = users; u; u = u->next) {
        if (u->user.name == ops->name && u->user.create == ops->create &&
            u->user.destroy == ops->destroy && u->user.wait == ops->wait &&
            u->user.notify == ops->notify && u->user.ctx == ops->ctx) {
            /* the same backend again: no new memory */
            atomic_store(&chosen, true);
            atomic_store(&current, &u->ops);
            pthread_mutex_unlock(&users_lock);
            return 0;
        }
    }
    pthread_mutex_unlock(&users_lock);
    struct user_backend *b = stm__calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->user = *ops;
    b->ops.name = ops->name;
    b->ops.create = user_create;
    b->ops.destroy = user_destroy;
    b->ops.prepare = user_prepare;
    b->ops.wait = user_wait;
    b->ops.notify = user_notify;
    b->ops.user = &b->user;
    pthread_mutex_lock(&users_lock);
    b->next = users;
    users = b;
    pthread_mutex_unlock(&users_lock);
    atomic_store(&chosen, true);
    atomic_store(&current, &b->ops);
    return 0;
}

STM_API const char *stm_waiter_name(void)
{
    stm__global_init(); /* so that STM_WAITER is applied */
    return atomic_load(&current)->name;
}

void stm__waiter_init_env(void)
{
    const char *name = getenv("STM_WAITER");
    if (name == NULL || *name == '\0' || atomic_load(&chosen))
        return;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (strcmp(name, builtins[i]->name) == 0) {
            atomic_store(&current, builtins[i]);
            return;
        }
    }
    fprintf(stderr, "libstm: STM_WAITER=%s: unknown waiter (condvar, pipe, thread); using %s\n",
            name, atomic_load(&current)->name);
}

/* At stm_shutdown no other thread uses the library: free the user
 * backends except the one in use, which the program may go on using. */
void stm__waiter_shutdown(void)
{
    const struct stm__waiter_ops *cur = atomic_load(&current);
    pthread_mutex_lock(&users_lock);
    struct user_backend **p = &users;
    while (*p) {
        struct user_backend *u = *p;
        if (&u->ops == cur) {
            p = &u->next;
        } else {
            *p = u->next;
            free(u);
        }
    }
    pthread_mutex_unlock(&users_lock);
}

int stm__waiter_get(struct stm_tx *tx)
{
    const struct stm__waiter_ops *cur = atomic_load_explicit(&current, memory_order_acquire);
    if (STM__LIKELY(tx->waiter != NULL && tx->waiter->ops == cur))
        return 0;
    errno = 0;
    struct stm__waiter *w = cur->create(cur);
    if (w == NULL)
        return -(errno ? errno : ENOMEM);
    stm__waiter_destroy(tx->waiter);
    tx->waiter = w;
    return 0;
}

/* ---- sleeping ------------------------------------------------------------- */

/* Linux adds up to 50 us of "timer slack" to a sleeping thread's timers;
 * a timed wait asks for 1 ns and gives the thread its own value back. */
static void slack_tight(struct stm_tx *tx)
{
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    int s = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0); /* the program may change it */
    tx->slack = s > 0 ? (unsigned long)s : 50000;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
#else
    (void)tx;
#endif
}

static void slack_restore(struct stm_tx *tx)
{
#if defined(__linux__) && defined(PR_SET_TIMERSLACK)
    prctl(PR_SET_TIMERSLACK, tx->slack, 0, 0, 0);
#else
    (void)tx;
#endif
}

bool stm__wait_cancellable(struct stm_tx *tx, struct stm__waiter *w, int64_t deadline)
{
    stm__cancel_restore(tx->cancel_state);
    bool r = w->ops->wait(w, deadline);
    stm__cancel_off();
    return r;
}

int stm__sleep(struct stm_tx *tx, int64_t deadline, int64_t real)
{
    struct stm__waiter *w = tx->waiter;
    if (deadline < STM_NEVER && atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)) {
        int64_t rebased;
        int r = stm__vclock_wait(tx, w, deadline, real, &rebased);
        if (r != STM__VWAIT_REAL)
            return r == STM__VWAIT_NOTIFIED ? 0 : r < 0 ? r : 1;
        /* stm_clock_real() woke the waiter to re-base its deadline; a
         * commit's notify that came with it was absorbed by the same
         * wake-up.  The wait nodes are still registered, so a look at
         * what the attempt read tells: changed, or any later commit
         * notifies again (issue 11, defect 1). */
        if (stm__retry_changed(tx))
            return 0;
        deadline = rebased;
    }
    if (real < deadline)
        deadline = real;
    if (tx->vtoken)
        stm__vclock_settle(tx);
    if (deadline >= STM_NEVER) {
        stm__wait_cancellable(tx, w, STM_NEVER);
        return 0;
    }
    int r = 1;
    slack_tight(tx);
    /* With a spin window (wakespin.c), sleep only until that long before
     * the deadline (the kernel's wake-up latency then falls before it),
     * then poll the waiter (a wait that has already timed out) until the
     * deadline.  Every sleep that times out reports how late it woke. */
    int64_t spin = stm__spin_window();
    int64_t sleep_until = spin > 0 ? stm__sat_add(deadline, -spin) : deadline;
    bool polling = false;
    for (;;) {
        int64_t now = stm__mono_ns();
        if (now >= deadline) /* never early */
            break;
        if (now < sleep_until) {
            if (stm__wait_cancellable(tx, w, sleep_until)) {
                r = 0;
                break;
            }
            int64_t woke = stm__mono_ns();
            if (woke >= sleep_until)
                stm__spin_sample(sleep_until, woke);
            continue;
        }
        if (!polling && !(polling = stm__spin_start(now, deadline - now))) {
            sleep_until = deadline; /* over the budget: sleep after all */
            continue;
        }
        if (w->ops->wait(w, now)) {
            r = 0;
            break;
        }
        stm__cpu_relax();
    }
    slack_restore(tx);
    return r;
}
