/*
 * stm-waiter.h - the Waiter: "sleep until notified or until a deadline"
 * (waiter*.c, wakespin.c, retryspin.c; never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_WAITER_H
#define STM_WAITER_H

#include "stm-base.h"

struct stm_tx;

/* ---- waiter: "sleep until notified or until a deadline" ---------------
 * A waiter belongs to one thread.  prepare() arms it; a notify() that
 * comes after prepare() and before or during wait() is never lost;
 * spurious wake-ups are absorbed.  wait() returns true if it was notified,
 * false if the deadline (absolute, CLOCK_MONOTONIC ns; INT64_MAX = never)
 * passed first. */
struct stm__waiter;
struct stm__waiter_ops {
    const char *name;
    struct stm__waiter *(*create)(const struct stm__waiter_ops *self); /* NULL, errno */
    void (*destroy)(struct stm__waiter *w);
    void (*prepare)(struct stm__waiter *w);
    bool (*wait)(struct stm__waiter *w, int64_t deadline);
    void (*notify)(struct stm__waiter *w);
    const struct stm_waiter_ops *user; /* a user-supplied backend, else NULL */
};
struct stm__waiter {
    const struct stm__waiter_ops *ops;
};
/* the mutex + flag + CLOCK_MONOTONIC condvar of the "condvar" backend,
 * which the "thread" backend reuses */
struct stm__cv_waiter {
    struct stm__waiter base;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool signaled;
};
int stm__cv_init(struct stm__cv_waiter *w, const struct stm__waiter_ops *self); /* 0 or errno */
void stm__cv_fini(struct stm__cv_waiter *w);
void stm__cv_prepare(struct stm__waiter *base);
void stm__cv_notify(struct stm__waiter *base);
void stm__cv_unlock(void *mutex); /* a cleanup handler: unlock it */
extern const struct stm__waiter_ops stm__waiter_condvar_ops;
extern const struct stm__waiter_ops stm__waiter_pipe_ops;
extern const struct stm__waiter_ops stm__waiter_thread_ops;
/* Make sure tx->waiter belongs to the current backend: 0 or -errno. */
int stm__waiter_get(struct stm_tx *tx);
/* Block on tx->waiter until notified (0), until `deadline` (on the
 * library's clock: virtual when that is on) or `real` (always the real
 * CLOCK_MONOTONIC; wall-clock deadlines) has passed (1; never early), or
 * fail (-ENOMEM).  For retry: tx's wait nodes are registered on what it
 * read (stm__retry_register). */
int stm__sleep(struct stm_tx *tx, int64_t deadline, int64_t real);
/* One blocking wait of stm_retry() on w: the caller runs with
 * cancellation disabled; the wait runs with the state the program had
 * when it called the library (tx->cancel_state), so it may be cancelled
 * there and only there.  A poll (deadline already past) never blocks and
 * is not a cancellation point. */
bool stm__wait_cancellable(struct stm_tx *tx, struct stm__waiter *w, int64_t deadline);
void stm__waiter_init_env(void);
/* wakespin.c: how long a timed wait polls before its deadline.
 * stm__spin_window(): the window now (0: sleep all the way);
 * stm__spin_start(): may a wait poll the `ns` from `now` to its deadline
 * (charged to the budget of STM_WAKE_SPIN_AUTO)?  stm__spin_sample(): a
 * sleep asked to end at `asked` timed out at `woke`. */
#define STM__SPIN_AUTO_MAX STM_USEC(200)
int64_t stm__spin_window(void);
bool stm__spin_start(int64_t now, int64_t ns);
void stm__spin_sample(int64_t asked, int64_t woke);
/* A mutex type that spins a little before it sleeps, where there is one
 * (glibc's adaptive mutexes; needs _GNU_SOURCE); else the default. */
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#define STM__MUTEX_ADAPTIVE PTHREAD_MUTEX_ADAPTIVE_NP
#define STM__MUTEX_ADAPTIVE_INITIALIZER PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
#else
#define STM__MUTEX_ADAPTIVE PTHREAD_MUTEX_DEFAULT
#define STM__MUTEX_ADAPTIVE_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#endif

/* stm_set_wake_spin()'s setting: STM_WAKE_SPIN_AUTO, 0, or a window */
int64_t stm__spin_mode(void);

/* retryspin.c: before stm_retry() sleeps it watches what the attempt read
 * for a short, adaptive while.  Per thread, a few TVar sets (keyed by the
 * first TVar read) each keep the window that pays for them. */
#define STM__RSPIN_SETS 4
struct stm__rspin {
    struct {
        const void *key;  /* the set's first TVar, NULL: unused */
        int32_t window;   /* ns; 0: off for this set */
        uint16_t skip;    /* off: retries left before the next probe */
        uint16_t backoff; /* off: the next skip */
    } set[STM__RSPIN_SETS];
    /* counts (this thread's; read by tests): spins that saw a change,
     * spins that gave up and slept, retries that did not spin */
    uint64_t paid, gave_up, skipped;
};
/* Spin while nothing tx read has changed, within the window (and before
 * `deadline`, on the monotonic clock): true if something changed (run the
 * body again; nothing was registered).  Called inside the epoch. */
bool stm__retry_spin(struct stm_tx *tx, int64_t deadline);
void stm__waiter_shutdown(void);
/* STM_WAKE_SPIN_AUTO's state, and its pure parts (tests use them with
 * made-up times). */
struct stm__spin {
    int64_t est;      /* learned wake-up lateness, ns */
    int64_t tokens;   /* polling budget, ns */
    int64_t last;     /* when the budget was last topped up */
    uint64_t samples; /* sleeps that reported their lateness */
};
struct stm__spin stm__spin_state(void);
void stm__spin_learn(struct stm__spin *s, int64_t late);
int64_t stm__spin_window_of(const struct stm__spin *s);
bool stm__spin_charge(struct stm__spin *s, int64_t now, int64_t ns);
static inline void stm__waiter_destroy(struct stm__waiter *w)
{
    if (w)
        w->ops->destroy(w);
}

#endif
