/*
 * stm-internal.h - private declarations shared across lib/ (never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Layers, low to high: clock, waiter, core (tvar, tx, retry, orelse, hooks,
 * alloc, reclaim, serial), stats.  Names here are stm__* and hidden (the
 * library is built with -fvisibility=hidden; only STM_API names export).
 */
#ifndef STM_INTERNAL_H
#define STM_INTERNAL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM__LIB_INTERNAL 1 /* stm.h: the TVar's fields by their own names */
#include "stm.h"

#define STM__LIKELY(x) __builtin_expect(!!(x), 1)
#define STM__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define STM__CACHELINE 64

#if defined(__has_feature)
#define STM__HAS_FEATURE(x) __has_feature(x)
#else
#define STM__HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || STM__HAS_FEATURE(thread_sanitizer)
#define STM__TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) || STM__HAS_FEATURE(address_sanitizer)
#define STM__ASAN 1
#endif

static inline void stm__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- restarting a body ------------------------------------------------
 * A conflict leaves the body by a non-local jump back into stm_atomically
 * (or stm_or_else).  On x86-64 with GCC or Clang, __builtin_setjmp saves
 * three words and needs no call, against glibc's sigsetjmp (a call, eight
 * mangled registers and a second call to decide about the signal mask).
 * The sanitizers intercept siglongjmp to fix their shadow stacks, so their
 * builds use it.
 *
 * An application built with AddressSanitizer may link this library built
 * without it: the frames the jump skips are the application's, and their
 * stack redzones would stay poisoned (false stack-buffer-overflow reports
 * later).  ASan's runtime, when the process has one, is told before the
 * jump, as its siglongjmp interceptor does.  A weak reference: resolved
 * once, when the library is loaded (or linked); NULL without the runtime.
 * It costs a test on the jump, the slow path, and nothing elsewhere; it
 * is an undefined symbol, not an export. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(STM__TSAN) && !defined(STM__ASAN)
typedef void *stm__jmpbuf[5];
extern void __asan_handle_no_return(void) __attribute__((weak, visibility("default")));
static inline void stm__asan_no_return(void)
{
    if (__asan_handle_no_return)
        __asan_handle_no_return();
}
#define STM__SETJMP(b) __builtin_setjmp(b)
#define STM__LONGJMP(b) (stm__asan_no_return(), __builtin_longjmp(b, 1))
#else
typedef sigjmp_buf stm__jmpbuf;
#define STM__SETJMP(b) sigsetjmp(b, 0)
#define STM__LONGJMP(b) siglongjmp(b, 1)
#endif

/* ---- thread cancellation ---------------------------------------------
 * The rule (stm.h, "Cancellation"): the waits of stm_retry() are the
 * library's cancellation points, made safe by cleanup handlers (retry.c,
 * vclock.c, the backends); everything else that could block, or that
 * calls a cancellation point of the C library (write() in a notify,
 * pthread_cond_wait() under a library lock, pthread_join()), runs with
 * cancellation disabled and puts the caller's state back.  A thread never
 * acts on a cancellation while it holds a library lock or has left a
 * structure half changed. */
static inline int stm__cancel_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}
static inline void stm__cancel_restore(int old)
{
    int unused;
    pthread_setcancelstate(old, &unused);
}

/* ---- clock ---------------------------------------------------------- */

int64_t stm__mono_ns(void); /* the real CLOCK_MONOTONIC */
int64_t stm__wall_ns(void); /* CLOCK_REALTIME plus the test shift */
static inline int64_t stm__sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* ---- deadline heap (timer service, virtual clock) ---------------------- */

struct stm__hnode {
    uint64_t seq; /* tie-break: push order, over all heaps */
    /* position + 1; 0 when not in a heap (changed under the heap owner's
     * lock; read without it for a quick "not in a heap") */
    _Atomic uint32_t idx;
    uint32_t tag; /* for the heap's owner (timer.c: which heap) */
};
/* an entry: the key (deadline) beside its node (heap.c) */
struct stm__hent {
    int64_t key;
    struct stm__hnode *n;
};
struct stm__heap {
    struct stm__hent *v;
    uint32_t n, cap;
};
/* (key, seq) order: the entry (ka, a) before (kb, b) */
static inline bool stm__hnode_before(int64_t ka, const struct stm__hnode *a, int64_t kb,
                                     const struct stm__hnode *b)
{
    return ka < kb || (ka == kb && a->seq < b->seq);
}
bool stm__heap_push(struct stm__heap *h, struct stm__hnode *n, int64_t key); /* false: ENOMEM */
/* put back a node taken out, as it was (its seq kept) */
bool stm__heap_readd(struct stm__heap *h, struct stm__hnode *n, int64_t key);
void stm__heap_remove(struct stm__heap *h, struct stm__hnode *n);
void stm__heap_fix(struct stm__heap *h); /* after keys changed in place: O(n) */
static inline struct stm__hnode *stm__heap_top(const struct stm__heap *h)
{
    return h->n ? h->v[0].n : NULL;
}
static inline uint32_t stm__hnode_idx(const struct stm__hnode *n)
{
    return atomic_load_explicit(&n->idx, memory_order_relaxed);
}
/* the key of n, which is in h */
static inline int64_t stm__heap_key(const struct stm__heap *h, const struct stm__hnode *n)
{
    return h->v[stm__hnode_idx(n) - 1].key;
}

/* ---- the timer service (timer.c) ----------------------------------------
 * Two heaps, one thread.  Real timers (stm__timer_add) have deadlines on
 * the real CLOCK_MONOTONIC.  Library-clock timers (stm__timer_set: watcher
 * deadlines) follow stm__now(): the thread serves them while the clock is
 * real; on the virtual clock stm_clock_advance() takes them
 * (stm__timer_take_due) and runs them itself, and switching clocks
 * re-bases them (stm__timer_rebase).  `fn` gets the deadline it fired for.
 * Callbacks run without the timers' lock held.  `fn` gets the arming it
 * fired for: the node's seq, new at every (re)arm (re-basing keeps it). */
struct stm__timer {
    struct stm__hnode h; /* first: the heap hands back this address */
    void (*fn)(struct stm__timer *t, uint64_t seq);
};
/* A hint: the memory around n (its owner: a watcher is 120 bytes, the
 * timer 16 bytes in) will be read soon. */
static inline void stm__prefetch_owner(const struct stm__hnode *n)
{
    const char *p = (const char *)n - 16;
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 119);
}
int stm__timer_add(struct stm__timer *t, int64_t deadline); /* 0, -ENOMEM, -EAGAIN */
/* Call t's callback as soon as a thread of the pool is free (a real timer
 * due now, kept by a fork's child); nothing if it is waiting already.
 * 0, -ENOMEM or -EAGAIN. */
int stm__timer_soon(struct stm__timer *t);
/* Remove t from its heap and wait while its callback runs (unless the
 * caller is that callback); true if it had not fired. */
bool stm__timer_cancel(struct stm__timer *t);
void stm__timer_shutdown(void);
/* Library-clock timers draw on reserved heap room, so that arming one
 * cannot fail: reserve before, then set/unset at will.  reserve also
 * starts the thread: 0, -ENOMEM or -EAGAIN. */
int stm__timer_reserve(uint32_t n);
void stm__timer_unreserve(uint32_t n);
/* (re)arm; no-op if so armed.  wall: the deadline stands for a
 * wall-clock one, and is moved to now when the system time is set.
 * Returns the arming's seq (what fn will be given). */
uint64_t stm__timer_set(struct stm__timer *t, int64_t deadline, bool wall);
void stm__timer_wall_changed(void);
void stm__timer_unset(struct stm__timer *t); /* disarm, no wait */
/* virtual clock: the earliest library-clock timer, if it is due by
 * `target` and comes before (lkey, limit) (limit NULL: no limit) in (key,
 * seq) order; marked as running until stm__timer_done() */
struct stm__timer *stm__timer_take_due(int64_t target, int64_t lkey, const struct stm__hnode *limit,
                                       int64_t *key, uint64_t *seq);
void stm__timer_done(struct stm__timer *t);
/* clock switch: every library-clock deadline d becomes to + (d - from) */
void stm__timer_rebase(int64_t from, int64_t to);
void stm__timer_kick(void); /* the clock switched: the thread looks again */

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
static inline void stm__waiter_destroy(struct stm__waiter *w)
{
    if (w)
        w->ops->destroy(w);
}

/* ---- file descriptors: stm_fd_ready and the reactor (reactor.c) --------
 * One epoll instance and one thread for the process.  An interest is a
 * node in its fd's list (a table indexed by fd, under the reactor's lock):
 * a retrying thread's (its waiter is notified when the fd is ready, the
 * node is then unlinked; the thread's descriptor owns it), or a watcher's
 * (the watcher is run again; the reactor owns it, at most one per watcher
 * and fd, chained by watcher in a table of the reactor's).  The fd is
 * registered EPOLLONESHOT with the union of its nodes' events, re-armed
 * after each event while nodes remain: an idle fd costs no CPU, and
 * nothing is armed for an fd nobody waits on any more but, at most, one
 * last arming that finds no node. */
struct stm__fdnode {
    struct stm__fdnode *next, *prev;   /* the fd's list (or the run queue) */
    struct stm__fdnode *hnext, *hprev; /* a watcher's: the reactor's table */
    union {
        struct stm__waiter *waiter; /* a retrying thread's */
        struct stm_watch *w;        /* a watcher's */
    };
    int fd;
    short events;
    uint8_t flags; /* reactor.c: N_* */
};
/* a watcher's fn asked about fd and it was not ready */
struct stm__fdwant {
    struct stm_watch *w;
    int fd;
    short events;
};
/* Before a retry sleeps (tx->waiter prepared, TVars registered): put
 * tx's fd interests (tx->fdn) in the reactor.  1: sleep; 0: an fd cannot
 * be waited on (closed, a regular file): run again now; -ENOMEM, -ENOSPC
 * (the epoll limit) or the thread's creation error. */
int stm__reactor_wait_begin(struct stm_tx *tx);
void stm__reactor_wait_end(struct stm_tx *tx); /* after the sleep */
/* fd_wait.c: or, with a built-in Waiter on the real clock, sleep in
 * ppoll() on the fds: begin swaps tx->waiter for the thread's fd waiter
 * (false: not possible, use the reactor); end swaps it back. */
bool stm__fd_direct_begin(struct stm_tx *tx);
void stm__fd_direct_end(struct stm_tx *tx);
/* The attempt right after a direct wait that an fd ended (tx->fdhint ==
 * 1): did that ppoll() report fd ready for events (or an error)? */
bool stm__fd_hinted(struct stm_tx *tx, int fd, short events);
/* stm_fd_close: notify the threads whose direct wait includes fd */
void stm__fd_direct_closed(int fd);
void stm__fd_direct_fork(int phase);
/* A commit that ran watchers, committed, epoch still published: register
 * the fds their fns asked about (tx->fdw), then empty it. */
void stm__reactor_watch(struct stm_tx *tx);
/* The watcher has stopped (its `dead` is set): drop its interests and its
 * pending retry, and wait while the reactor runs it (unless the caller is
 * that run). */
void stm__reactor_forget(struct stm_watch *w);
void stm__reactor_shutdown(void);
/* stm_fd_close (fd_close.c): before fd is closed, take it out of the
 * epoll set; after, end every wait on it (threads run again, watchers are
 * queued to run) */
void stm__reactor_closing(int fd);
void stm__reactor_closed(int fd);
/* fd is closed: end every wait on it, direct and in the reactor */
void stm__fd_closed(int fd);
/* the watchers' fd nodes, plus the threads' nodes linked (for tests) */
uint32_t stm__reactor_nodes(void);
/* A run of w of its own failed: arm its retry at now + delay(failures in
 * a row, this one counted); returns when (STM_NEVER: it could not be
 * armed, for want of memory, or w is stopped).  A run that committed
 * resets the count and drops a pending retry (stm__watch_retry_ok). */
int64_t stm__watch_retry_arm(struct stm_watch *w);
void stm__watch_retry_ok(struct stm_watch *w);
/* (watch_retry.c) w's fd interest could not be registered (err, < 0):
 * retry its run on the schedule and report err when the retry comes */
void stm__watch_retry_lost(struct stm_watch *w, int err);
void stm__watch_retry_forget(struct stm_watch *w); /* w stopped: drop its record */
void stm__watch_retry_shutdown(void);
void stm__watch_retry_fork(int phase);
struct stm__watchtx;
/* a commit ran these watchers successfully: stm__watch_retry_ok() each
 * (cheap when no watcher is failing) */
void stm__watch_runs_ok(struct stm__watchtx *x);
/* watch_error.c: report a failed run of w of its own (err: the veto's
 * code, -EAGAIN for a retry, -ENOMEM, -ELOOP) and schedule its retry */
void stm__watch_failed(struct stm_watch *w, int err);
/* call the handler (outside any transaction; w alive) */
void stm__watch_report(struct stm_watch *w, int err, int64_t retry_at);
/* the schedule: the delay before the retry after `fails` failures in a row */
int64_t stm__watch_retry_delay(uint32_t fails);

/* ---- TVars -------------------------------------------------------------
 * A TVar is two words (stm.h): `lock` and `value`.
 *
 * lock, unlocked: version << 2 | flags.  Locked by a committing
 * transaction (or, for a moment, by a watcher phase or by the making of a
 * side record): the address of the owner's write-set entry | 1 | flags
 * (entries are 8-byte aligned).  The flags survive locking:
 *
 * STM__WT (bit 1): threads may be waiting on it in stm_retry() (retry.c);
 *   set by a waiter with a CAS on the unlocked word, cleared by a commit
 *   that finds no waiter left.
 * STM__XT (bit 63): the TVar has a side record (its watchers, its name:
 *   tvar_ext.c).  Set only by the holder of the lock, never cleared while
 *   the TVar lives, so whoever sees it may follow the record.  The
 *   record's address is then in `value`, and the value in the record.
 *
 * A reader's fast path meets neither: stm__lock_newer() takes STM__XT as
 * "newer than any snapshot" (the read goes to read_stable()), and ignores
 * STM__WT.  Validation ignores both (stm__lock_same()): neither changes
 * the value. */
#define STM__WT ((uintptr_t)2)
#define STM__XT ((uintptr_t)1 << 63)
#define STM__FLAGS (STM__WT | STM__XT)
/* the write-set entry that holds a locked lock word */
#define STM__OWNER(l) ((struct stm__wentry *)((l) & ~(STM__XT | (uintptr_t)7)))

struct stm__tvx;
/* A retrying thread's wait on one TVar: a node of its stripe's list
 * (retry.c).  The thread owns it (tx->nodes); the list is under the
 * stripe's lock. */
struct stm__waitnode {
    struct stm__waitnode *next, *prev;
    stm_tvar *var; /* NULL once detached by the TVar's destruction */
    struct stm__waiter *waiter;
    uint32_t stripe;
};

struct stm__wdep;
/* A TVar's side record.  Made by stm__tvx_get(), released with the TVar
 * (stm__tvx_release()). */
struct stm__tvx {
    _Atomic intptr_t value; /* the TVar's value, under its lock */
    stm_tvar *var;
    /* watchers that read it: read and changed only with the TVar's lock
     * held (by a commit, or for a moment by a watcher phase:
     * watch_phase.c); new ones go to the head, so an unchanged head means
     * none was added */
    _Atomic(struct stm__wdep *) watchers;
    char *name; /* under the names lock (tvar.c) */
    _Atomic uint32_t conflicts;
    uint32_t name_slot; /* index in the named-TVar table + 1, 0 = unnamed */
};

/* var's record, given a lock word of var that has STM__XT */
static inline struct stm__tvx *stm__tvx_of(stm_tvar *var)
{
    return (struct stm__tvx *)atomic_load_explicit(&var->value, memory_order_acquire);
}
/* var's record, or NULL if it has none (a lock-free look) */
static inline struct stm__tvx *stm__tvx_peek(stm_tvar *var)
{
    uintptr_t l = atomic_load_explicit(&var->lock, memory_order_acquire);
    return (l & STM__XT) ? stm__tvx_of(var) : NULL;
}
/* The watchers of var (a lock-free look; exact when var's lock is held) */
static inline struct stm__wdep *stm__tvar_watchers(stm_tvar *var)
{
    struct stm__tvx *x = stm__tvx_peek(var);
    return x ? atomic_load_explicit(&x->watchers, memory_order_acquire) : NULL;
}
/* var's record, made if it has none: NULL on ENOMEM.  For callers that
 * hold no TVar lock (stm_tvar_set_name). */
struct stm__tvx *stm__tvx_get(stm_tvar *var);
/* A record for a TVar that the caller has locked: fill `x` (from
 * stm__tvx_alloc()) and move var's value into it.  The caller's lock
 * word must gain STM__XT when it lets go. */
struct stm__tvx *stm__tvx_alloc(void); /* NULL: ENOMEM */
void stm__tvx_install(stm_tvar *var, struct stm__tvx *x);
/* var is going away: its waiters are woken and detached, its name dropped;
 * returns its record (NULL if none), to be freed with stm__tvx_free()
 * once no transaction can read var.  Misuse (naming `func`) if an active
 * watcher still reads it. */
struct stm__tvx *stm__tvar_retire(stm_tvar *var, const char *func);
void stm__tvx_free(struct stm__tvx *x);

/* a pointer's slot in an open-addressing table of mask + 1 slots */
static inline uint32_t stm__ptr_hash(const void *p, uint32_t mask)
{
    return (uint32_t)(((uint64_t)(uintptr_t)p * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & mask;
}

/* a TVar's bit in a 64-bit Bloom filter (write sets, watcher rounds) */
static inline uint64_t stm__bloom_bit(const stm_tvar *var)
{
    return UINT64_C(1) << (((uintptr_t)var >> 4) & 63);
}

#define STM__LOCKED(l) ((l)&1u)
#define STM__VERSION(l) ((uint64_t)((l) & ~STM__XT) >> 2)
#define STM__MKLOCK(version) ((uintptr_t)(version) << 2)
/* Two lock words are the same but for the flags (which do not change the
 * value) */
static inline bool stm__lock_same(uintptr_t a, uintptr_t b)
{
    return ((a ^ b) & ~STM__FLAGS) == 0;
}
/* STM__LOCKED(l) || STM__VERSION(l) > snapshot || (l & STM__XT), in one
 * compare: the lock word rotated right by one is version << 1 | STM__WT,
 * with the lock bit on top and STM__XT below it; a snapshot (a clock
 * value) never comes near 2^60. */
static inline bool stm__lock_newer(uintptr_t l, uint64_t snapshot)
{
    uint64_t w = (uint64_t)l;
    return ((w >> 1) | (w << 63)) > (snapshot << 1 | 1);
}

void stm__tvar_reclaim(stm_tvar *var); /* final free, after the grace period */
/* stm_tvar_destroy()'s work: its record goes to tx's limbo, stamped */
void stm__tvar_destroy_now(struct stm_tx *tx, stm_tvar *var, uint64_t stamp);
void stm__tvar_freed(stm_tvar *var);   /* stm_tvar_free takes effect: wake waiters */
void stm__names_report(void *file);    /* FILE *: named TVars by conflicts */
void stm__names_clear(void);

/* ---- per-thread descriptor ------------------------------------------- */

struct stm__rentry {
    stm_tvar *var;
    uintptr_t lock;
};
struct stm__wentry {
    stm_tvar *var;
    intptr_t value;
    /* the lock word before the commit locked it: set by the commit (only
     * a locked TVar's lock word leads to its entry) */
    uintptr_t old;
};
struct stm__undo {
    uint32_t idx;
    intptr_t value;
};
struct stm__hook {
    void (*fn)(void *);
    void *arg;
};
struct stm__hookvec {
    struct stm__hook *v;
    uint32_t n, cap;
};
/* a stm_defer() callback: allocated in the body, queued at commit */
struct stm__deferred {
    struct stm__deferred *next;
    void (*fn)(void *);
    void *arg;
};
/* what a freed pointer is: a block (free()), a heap TVar, a watcher, a
 * TVar's side record; and, in an attempt's frees only, an embedded TVar
 * that stm_tvar_destroy() ends if the attempt commits */
enum {
    STM__FREE_BLOCK = 0,
    STM__FREE_TVAR = 1,
    STM__FREE_WATCH = 2,
    STM__FREE_TVX = 3,
    STM__DESTROY_TVAR = 4
};
struct stm__freed {
    void *ptr;
    uint64_t stamp; /* commit time after which it is unreachable */
    int kind;
};

struct stm__counters {
    _Atomic uint64_t commits, aborts, retries, wakeups, aborts_conflict, aborts_validate,
        aborts_explicit, aborts_nomem, serial_runs, reclaimed, timer_fires, watch_runs,
        watch_failures;
};

/* An stm_or_else() branch (catch == false: a stm_retry() in it jumps
 * here) or an stm_catch() part (catch == true: a stm_abort() in it jumps
 * here); each kind lets the other's jumps pass to an outer one. */
struct stm__branch {
    stm__jmpbuf jb;
    struct stm__branch *outer;
    bool catch;
    uint64_t wbloom;
    uint32_t wn, undo_n, after_n, abort_n, alloc_n, free_n, defer_n;
    uint32_t wnew_n, wstop_n; /* stm_watch_new / stm_unwatch so far */
};

/* why a body was left (stm_tx.jump); FALLBACK: a declared read-only
 * attempt called something only a normal transaction can do */
enum {
    STM__JUMP_CONFLICT = 1,
    STM__JUMP_RETRY,
    STM__JUMP_ABORT,
    STM__JUMP_NOMEM,
    STM__JUMP_FALLBACK
};

#define STM__VEC(T)                                                                                \
    struct {                                                                                       \
        T *v;                                                                                      \
        uint32_t n, cap;                                                                           \
    }

struct stm_tx {
    /* hot: touched by every read and write */
    uint64_t snapshot;
    struct stm__rentry *rs;
    uint32_t rn, rcap;
    struct stm__wentry *ws;
    uint32_t wn, wcap;
    uint64_t wbloom;
    stm__jmpbuf *jb;
    struct stm__branch *branch;
    int jump; /* STM__JUMP_*: why the last jump into stm_atomically */
    /* the attempt made, stopped or was asked to run a watcher: its commit
     * takes the watcher path (watch.c) */
    bool watch_work;
    /* in the commit's watcher phase: round number (reads served from the
     * write set are logged while watch_dep; rewrites of entries below
     * watch_mark are logged) */
    bool watch_dep;
    uint32_t watch_round, watch_mark;
    /* the watcher whose fn or cb runs now, if any: published for
     * stm_unwatch, which waits until no thread runs the watcher it stops */
    _Atomic(struct stm_watch *) watch_cur;
    struct stm__watchtx *wx; /* watcher bookkeeping, made on first use */
    /* write-set entries [0, watch_held) stay locked through the watcher
     * phase: the commit that found watchers on them did not let go */
    uint32_t watch_held;

    /* published epoch: the snapshot this thread's running transaction
     * started from, 0 when it runs none (read by reclamation and serial
     * mode) */
    _Atomic uint64_t epoch;

    uint32_t extras;       /* non-zero once the attempt used anything below */
    int64_t now, wall_now; /* the attempt's clocks, read on first use */
    bool now_valid, wall_now_valid;
    int64_t deadline;      /* earliest stm_elapsed() deadline not yet come */
    int64_t wall_deadline; /* likewise for stm_elapsed_wall() */
    /* stm_tx_start(): when the outermost call began, once noted; valid
     * only inside that call (every way out of it clears it) */
    int64_t start;
    bool start_valid;
    unsigned long slack;   /* the thread's own timer slack, 0 = unknown */
    int cancel_state;      /* the program's, while stm_retry() waits */
    bool vtoken;           /* woken by stm_clock_advance(), not yet settled */
    bool serial;
    int abort_code;
    uint32_t restarts; /* consecutive conflict restarts */
    /* stm_atomically_ro() calls still to run as normal transactions after
     * a read-only attempt met a conflict (readonly.c) */
    uint32_t ro_normal;
#define STM__RO_NORMAL_RUN 64 /* how many, after each such conflict */
    uint64_t rng;
    stm_tvar *conflict_var;

    /* an index of the write set (open addressing: entry number + 1), made
     * once it is large enough that searching it costs: entries [0,
     * wsidx_n) are in it; reset with the extras */
    uint32_t *wsidx;
    uint32_t wsidx_cap, wsidx_n;

    STM__VEC(struct stm__undo) undo;
    struct stm__hookvec after;
    struct stm__hookvec onabort;
    STM__VEC(struct stm__deferred *) defers;
    STM__VEC(void *) allocs;
    STM__VEC(struct stm__freed) frees; /* this attempt's stm_free()s */
    STM__VEC(struct stm__freed) limbo; /* committed, awaiting grace */
    uint32_t limbo_head;               /* limbo.v[0, limbo_head) freed already */
    uint32_t limbo_next;               /* try to reclaim at this size */
    uint32_t limbo_age;                /* commits since, while limbo is non-empty */
    STM__VEC(struct stm__waitnode) nodes;
    /* stm_fd_ready() said no: the attempt's fd interests (a retry waits for
     * them too), and those of watcher fns (registered at commit); reset
     * with the extras */
    STM__VEC(struct stm__fdnode) fdn;
    STM__VEC(struct stm__fdwant) fdw;
    struct stm__waiter *fdwaiter, *fdsaved; /* fd_wait.c */
    uint32_t fdhint; /* 1: this attempt may answer from the ppoll() that woke it */

    struct stm__waiter *waiter;
    struct stm__counters st;
    /* st as stm_shutdown() found it: counts are reported from there on
     * (written and read under stm__reg_lock, by other threads) */
    struct stm_stats st_base;
    struct stm_tx *reg_next, *reg_prev; /* registry, under stm__reg_lock */

    /* the restart that unwinds (protect.c): the innermost stm_protect()
     * running, and a jump put off (pend: STM__JUMP_*, 0 for none; pend_br:
     * its branch, NULL for the transaction's target; the hidden write-set
     * length; whether the attempt is a declared read-only one) */
    struct stm__prot *prot;
    struct stm__branch *pend_br;
    int pend;
    uint32_t pend_wn;
    bool pend_ro;

    struct stm__rspin rspin; /* retryspin.c */
};

/* An stm_protect() call: the jump target it put in place of outer_jb,
 * and the branch that was innermost when it began. */
struct stm__prot {
    stm__jmpbuf jb;
    stm__jmpbuf *outer_jb;
    struct stm__branch *branch;
    struct stm__prot *outer;
};
/* protect.c: a branch function returned while a jump is pending: if it
 * goes to branch br, take it (true; the caller rolls back to br) */
bool stm__pending_take_for(struct stm_tx *tx, struct stm__branch *br);
/* stm_retry / stm_abort inside stm_protect(): br lies outside the
 * innermost stm_protect() (its jump must go through that) */
bool stm__branch_outside_protect(struct stm_tx *tx, struct stm__branch *br);

/* The calling thread's descriptor, NULL before its first transaction. */
extern _Thread_local struct stm_tx *stm__self __attribute__((tls_model("initial-exec")));
/* The calling thread's descriptor while it runs a transaction, else
 * &stm__no_tx (never NULL): so "is tx the caller's running transaction?"
 * is one compare, which also rejects NULL. */
extern _Thread_local struct stm_tx *stm__active __attribute__((tls_model("initial-exec")));
/* The calling thread's descriptor while it runs a declared read-only
 * attempt (stm_atomically_ro), else &stm__no_tx.  stm__active is then
 * &stm__no_tx, so every operation's one-compare check fails and lands in
 * its slow path, which looks here (readonly.c). */
extern _Thread_local struct stm_tx *stm__ro __attribute__((tls_model("initial-exec")));
extern struct stm_tx stm__no_tx;

/* Whether the calling thread, whose descriptor is tx (not NULL), is
 * inside a body, of a normal or of a declared read-only transaction: that
 * is exactly while its epoch is published (the clock starts at 1, so a
 * published epoch is never 0).  Decides nesting, with one load. */
static inline bool stm__in_body(struct stm_tx *tx)
{
    return atomic_load_explicit(&tx->epoch, memory_order_relaxed) != 0;
}

struct stm_tx *stm__thread_init(void);
void stm__global_init(void);

/* ---- global state ------------------------------------------------------ */

struct stm__global {
    _Alignas(STM__CACHELINE) _Atomic uint64_t clock;  /* TL2 global version clock */
    _Alignas(STM__CACHELINE) _Atomic uint32_t serial; /* 1 while a serial transaction runs */
    /* membarrier() registered: epochs may be published with a plain store.
     * Set once registration has succeeded, cleared if a barrier fails. */
    _Alignas(STM__CACHELINE) _Atomic bool fast_epoch;
    bool stats_env;                                   /* STM_STATS=1 */
    _Alignas(STM__CACHELINE) _Atomic bool virtual_on; /* the virtual clock */
    _Atomic int64_t virtual_now;
};
extern struct stm__global stm__g;

/* The library's monotonic now: the virtual clock when it is on. */
static inline int64_t stm__now(void)
{
    if (STM__UNLIKELY(atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)))
        return atomic_load_explicit(&stm__g.virtual_now, memory_order_acquire);
    return stm__mono_ns();
}

/* registry of live descriptors (for reclamation, serial mode, stats) */
extern pthread_mutex_t stm__reg_lock;
extern struct stm_tx *stm__reg_head;

/* ---- epochs ----------------------------------------------------------
 * Publishing an epoch is a plain store: reclamation and serial mode pay
 * for the ordering with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), so
 * the begin path has no fence.  Without membarrier (or under TSan, which
 * cannot see it) the store is sequentially consistent. */
static inline void stm__epoch_publish(struct stm_tx *tx, uint64_t e)
{
#ifdef STM__TSAN
    /* TSan does not model fences; it checks happens-before only. */
    atomic_store_explicit(&tx->epoch, e, memory_order_seq_cst);
#else
    atomic_store_explicit(&tx->epoch, e, memory_order_release);
    if (STM__LIKELY(atomic_load_explicit(&stm__g.fast_epoch, memory_order_relaxed)))
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}
static inline void stm__epoch_clear(struct stm_tx *tx)
{
    atomic_store_explicit(&tx->epoch, 0, memory_order_release);
}
/* The other side of stm__epoch_publish: a full barrier on every thread;
 * false if it could not be had (then the scan must not be trusted). */
bool stm__heavy_barrier(void);

/* ---- memory -------------------------------------------------------------- */

void *stm__malloc(size_t n);
void *stm__calloc(size_t n, size_t size);
void *stm__realloc(void *p, size_t n);
/* Grow *vec (elements of `size` bytes) to hold at least `need`; false on ENOMEM. */
bool stm__grow(void **vec, uint32_t *cap, size_t size, uint32_t need);
#define STM__VEC_RESERVE(vec, need)                                                                \
    ((need) <= (vec).cap || stm__grow((void **)&(vec).v, &(vec).cap, sizeof *(vec).v, (need)))

/* ---- transactions (internal) ------------------------------------------- */

_Noreturn void stm__nomem(struct stm_tx *tx);
/* var is locked or changed under the attempt: count it, run again */
_Noreturn void stm__conflict(struct stm_tx *tx, stm_tvar *var);
_Noreturn static inline void stm__jump(struct stm_tx *tx, int why)
{
    tx->jump = why;
    STM__LONGJMP(*tx->jb);
}
_Noreturn void stm__misuse(const char *func, const char *what);
/* tx is not the running (normal) transaction: if it runs a declared
 * read-only attempt, fall back (does not return: the body runs again as
 * a normal transaction); otherwise diagnose the misuse. */
_Noreturn void stm__check_tx_slow(struct stm_tx *tx, const char *func);
/* For the operations only a normal transaction can do. */
static inline void stm__check_tx(struct stm_tx *tx, const char *func)
{
    if (STM__UNLIKELY(tx != stm__active))
        stm__check_tx_slow(tx, func);
}
/* stm_read()'s fast path, for tx the running transaction: a TVar that is
 * unlocked and not newer than the snapshot, with room in the read set,
 * is recorded there and *out is its value (true); false: nothing done.
 * (Whether tx wrote var is the caller's to check.) */
static inline bool stm__read_fast(struct stm_tx *tx, stm_tvar *var, intptr_t *out)
{
    /* (read before the acquire loads, which would have them reloaded) */
    const uint32_t n = tx->rn;
    struct stm__rentry *const r = &tx->rs[n];
    const uint64_t snapshot = tx->snapshot;
    uintptr_t l1 = atomic_load_explicit(&var->lock, memory_order_acquire);
    intptr_t v = atomic_load_explicit(&var->value, memory_order_acquire);
    uintptr_t l2 = atomic_load_explicit(&var->lock, memory_order_relaxed);
    if (STM__UNLIKELY(l1 != l2) || STM__UNLIKELY(stm__lock_newer(l1, snapshot)))
        return false;
    r->var = var;
    r->lock = l1;
    tx->rn = n + 1;
    *out = v;
    return true;
}
/* stm_read() for the library's own reads inside the running transaction
 * tx, of a TVar that is not NULL: the fast path inline, the rest by
 * stm_read(). */
static inline intptr_t stm__read_in(struct stm_tx *tx, stm_tvar *var)
{
    intptr_t v;
    if (STM__LIKELY(tx->rn != tx->rcap && !(tx->wbloom & stm__bloom_bit(var)) &&
                    stm__read_fast(tx, var, &v)))
        return v;
    return stm_read(tx, var);
}
/* For those a declared read-only attempt may do as well (stm_abort, the
 * hooks, stm_defer, the attempt's clocks). */
static inline void stm__check_tx_ro(struct stm_tx *tx, const char *func)
{
    if (STM__UNLIKELY(tx != stm__active) && tx != stm__ro)
        stm__check_tx_slow(tx, func);
}

/* Shared by stm_atomically (tx.c) and stm_atomically_ro (readonly.c). */
/* A conflict: count it on the TVar that caused it, if it has a record
 * (every named one has: only those are reported).  The attempt's epoch
 * must still protect that TVar from reclamation. */
static inline void stm__blame_conflict(struct stm_tx *tx)
{
    if (tx->conflict_var) {
        struct stm__tvx *x = stm__tvx_peek(tx->conflict_var);
        if (x)
            atomic_fetch_add_explicit(&x->conflicts, 1, memory_order_relaxed);
    }
    tx->conflict_var = NULL;
}
void stm__reset_extras(struct stm_tx *tx);
/* stm_tx_start(): note the outermost call's start, if not yet noted, as
 * the attempt's now (an attempt that has just ended: its own now if it
 * read one, else the clock) */
static inline void stm__start_note(struct stm_tx *tx)
{
    if (!tx->start_valid) {
        tx->start = tx->now_valid ? tx->now : stm__now();
        tx->start_valid = true;
    }
}
/* a nested stm_atomically_until() (orelse.c) */
int stm__until_nested(struct stm_tx *tx, stm_fn *fn, void *arg, int64_t deadline);
void stm__finish_commit_slow(struct stm_tx *tx, uint64_t stamp);
void stm__discard(struct stm_tx *tx);
void stm__conflict_restart(struct stm_tx *tx);
void stm__tx_abandon(struct stm_tx *tx); /* the thread exits inside a body */
int stm__leave(struct stm_tx *tx, int ret);

/* hooks */
void stm__hooks_run_after(struct stm_tx *tx);
void stm__hooks_run_abort(struct stm_tx *tx, uint32_t from);
/* stm_defer (dispatch.c): queue a committed attempt's callbacks in
 * commit order (called before the commit's locks are released); free a
 * discarded attempt's from index `from` on */
void stm__defers_queue(struct stm_tx *tx);
void stm__defers_discard(struct stm_tx *tx, uint32_t from);
void stm__dispatch_shutdown(void);

/* ---- watchers (watch.c) -------------------------------------------------- */

/* A watcher's registration on one TVar: a node of that TVar's list. */
struct stm__wdep {
    _Atomic(stm_tvar *) var;
    struct stm__wdep *next, *prev; /* with var's lock held */
    struct stm_watch *w;
};

struct stm_watch {
    /* Its own TVar: every run reads it, and a run that changes the
     * watcher (its registrations, its timer, the last value given to a
     * CHANGES_ONLY cb, which is self's value) and the stop write it, so
     * that such commits are serialised by the TL2 machinery.  The fields
     * below change only in a commit that holds self.lock. */
    struct stm_tvar self;
    struct stm__timer timer;
    stm_watch_fn *fn;
    stm_watch_cb *cb;
    void *arg;
    /* the TVars fn read on its last run, sorted by address: &dep0 when
     * one, an array of its own when more, NULL when none */
    _Atomic(struct stm__wdep *) deps;
    _Atomic uint32_t ndeps;
    uint8_t flags;          /* STM_WATCH_* */
    _Atomic uint8_t alone;  /* a run of its own in progress: 0, or whose (watch.c) */
    _Atomic uint8_t dead;   /* stopped (set in the stopping commit) */
    _Atomic uint8_t slot;   /* holds a reserved timer-heap slot */
    _Atomic uint64_t armed; /* the timer's arming (its seq), 0 for none */
    struct stm__wdep dep0;
};

/* Room for one more write-set entry (jumps with ENOMEM); entries held
 * locked through the watcher phase follow the set if it moves. */
void stm__ws_reserve1(struct stm_tx *tx);
/* per write-set entry, in the watcher phase */
struct stm__wmeta {
    struct stm__wdep *head; /* the TVar's list as the phase saw it */
    uint32_t round;         /* the round that this write triggers */
};

/* called by commit in watch mode, all locks held and validated, if
 * the watcher phase said it has work */
void stm__watch_apply(struct stm_tx *tx, uint64_t wv);
/* after the commit (end_attempt done), if tx->watch_work: stops, frees */
void stm__watch_finish(struct stm_tx *tx, uint64_t wv);
/* the attempt is discarded (any jump out) */
void stm__watch_abandon(struct stm_tx *tx);
void stm__watch_reset(struct stm_tx *tx); /* next attempt */
void stm__watch_branch_mark(struct stm_tx *tx, struct stm__branch *br);
void stm__watch_branch_rollback(struct stm_tx *tx, struct stm__branch *br);
void stm__watch_rewrite(struct stm_tx *tx, uint32_t idx); /* ws[idx] written again */
void stm__watch_reclaim(struct stm_watch *w);             /* final free */
/* A run of w in a transaction of its own, as a deadline run but for no
 * arming in particular (an fd it waited for is ready, a retry is due);
 * the caller keeps w alive (stm__reactor_forget() waits for it). */
void stm__watch_run_now(struct stm_watch *w);
/* a seed's `armed` for such a run: never stale */
#define STM__ARMED_ANY UINT64_MAX
void stm__watchtx_free(struct stm_tx *tx);
bool stm__ws_has(struct stm_tx *tx, stm_tvar *var);      /* var is in the write set */
int64_t stm__ws_index(struct stm_tx *tx, stm_tvar *var); /* its entry, or -1 */
void stm__ws_forget(struct stm_tx *tx);                  /* entries were dropped */

/* stm_free / stm_tvar_free inside a transaction: done if it commits */
void stm__frees_push(struct stm_tx *tx, void *ptr, int kind);
/* allocation lists at the end of an attempt */
void stm__allocs_discard(struct stm_tx *tx, uint32_t from);
void stm__frees_commit(struct stm_tx *tx, uint64_t stamp);

/* retry: make sure the thread has a waiter, arm it, register a wait node
 * on every TVar the attempt read, then check that none has changed.
 * Returns 1 if the thread should sleep, 0 if a read TVar changed already,
 * or -errno (-ENOMEM, or the backend's error such as -EMFILE).
 * unregister() removes whatever register() added. */
int stm__retry_register(struct stm_tx *tx);
/* stm__sleep() for stm_retry(), with a cleanup handler: a thread cancelled
 * in the wait leaves the wall-clock list (listed), unregisters its wait
 * nodes, settles a virtual-clock token and discards the attempt (its
 * stm_on_abort() hooks run) before it exits. */
int stm__retry_sleep(struct stm_tx *tx, int64_t deadline, int64_t real, bool listed);
int stm__retry_register_on(struct stm_tx *tx); /* on tx->waiter as it is */
void stm__retry_unregister(struct stm_tx *tx);
/* A commit lets go of var, whose lock word it replaced had STM__WT: store
 * the lock word nl (keeping STM__WT if waiters remain) and wake them. */
void stm__waiters_release(stm_tvar *var, uintptr_t nl);
/* Whether a TVar the attempt read has changed (or is being committed)
 * since: with the wait nodes registered, a commit it misses will notify
 * the waiter. */
bool stm__retry_changed(struct stm_tx *tx);
void stm__waiters_detach(stm_tvar *var); /* before var's memory is freed */
void stm__waiters_wake_all(stm_tvar *var);

/* reclamation */
void stm__reclaim(struct stm_tx *tx);
void stm__limbo_push(struct stm_tx *tx, void *ptr, int kind, uint64_t stamp);
void stm__reclaim_thread_exit(struct stm_tx *tx);
void stm__reclaim_shutdown(void);
void stm__free_now(void *ptr, int kind);
void stm__membarrier_setup(void);
uint64_t stm__reclaimed_orphans(void);
#define STM__RECLAIM_BATCH 128

/* the virtual clock (vclock.c) */
enum { STM__VWAIT_NOTIFIED = 0, STM__VWAIT_FIRED, STM__VWAIT_REAL, STM__VWAIT_TIMEOUT };
/* A timed wait under the virtual clock, also ended by the real-time
 * deadline `real` (STM_NEVER for none): NOTIFIED, FIRED (the virtual
 * deadline came; the caller holds a settle token), TIMEOUT (`real` passed),
 * REAL (the clock went real: wait by real time until *rebased), -ENOMEM. */
int stm__vclock_wait(struct stm_tx *tx, struct stm__waiter *w, int64_t deadline, int64_t real,
                     int64_t *rebased);
void stm__vclock_settle(struct stm_tx *tx);
void stm__vclock_shutdown(void);

/* waits on wall-clock deadlines (wallclock.c): list the waiter so that a
 * change of the system time wakes it; false if it could not be listed */
bool stm__wall_wait_begin(struct stm__waiter *w);
void stm__wallclock_watch(void); /* watchers read wall deadlines: watch for changes */
void stm__wall_wait_end(struct stm__waiter *w);
void stm__wallclock_shutdown(void);

/* serial (irrevocable) mode */
void stm__serial_enter(struct stm_tx *tx);
void stm__serial_exit(struct stm_tx *tx);
void stm__serial_wait(void);

/* Take the snapshot and publish it as the epoch, unless a serial
 * transaction runs (and this is not it): then leave the epoch, false. */
static inline bool stm__snapshot_try(struct stm_tx *tx)
{
    uint64_t c = atomic_load_explicit(&stm__g.clock, memory_order_acquire);
    stm__epoch_publish(tx, c);
    if (STM__LIKELY(!atomic_load_explicit(&stm__g.serial, memory_order_acquire)) || tx->serial) {
        tx->snapshot = c;
        return true;
    }
    stm__epoch_clear(tx);
    return false;
}

/* Begin an attempt: take the snapshot and publish it as the epoch, once
 * no serial transaction runs (or this is the serial one). */
static inline void stm__snapshot_begin(struct stm_tx *tx)
{
    while (!stm__snapshot_try(tx))
        stm__serial_wait();
}
/* The begin of an attempt (tx.c, readonly.c) in two parts: inline, with
 * tx->jb set, if (!tx->extras && stm__snapshot_try(tx)); else (out of
 * line, and best in a tail call, so that the hot path saves no registers
 * for the call) stm__begin_slow(), which resets the extras or waits for
 * the serial transaction, then takes the snapshot. */
void stm__begin_slow(struct stm_tx *tx);

/* statistics: single-writer counters, read by stm_stats_get() */
static inline void stm__count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}
void stm__stats_fold(struct stm_tx *tx); /* a descriptor going away */
void stm__stats_atexit(void);
void stm__stats_reset(void);

/* ---- test-only hooks (hidden; tests link the library statically) ---- */

/* Make the (n+1)-th internal allocation from now on fail (n = 0: the very
 * next one); n < 0 disarms.  Process-wide. */
void stm__fault_alloc_after(long n);
/* Whether the armed failure has happened since it was armed. */
bool stm__fault_alloc_fired(void);
/* Try to reclaim every deferred free of this thread now. */
void stm__reclaim_flush(void);
/* How many deferred frees (blocks and TVars) this thread still holds. */
size_t stm__reclaim_pending(void);
/* Shift the library's wall clock by ns (cumulative) and act as if the
 * system time had been set: waits on wall-clock deadlines wake. */
void stm__test_wall_shift(int64_t ns);
/* STM_WAKE_SPIN_AUTO's state, and its pure parts (tested with made-up
 * times). */
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

/* fork() (fork.c): pthread_atfork handlers, registered at start-up.  Each
 * module's stm__X_fork(phase) takes its locks for PREPARE and releases
 * them for PARENT; for CHILD it also forgets the threads the child does
 * not have. */
enum { STM__FORK_PREPARE_OUTER, STM__FORK_PREPARE, STM__FORK_PARENT, STM__FORK_CHILD };
void stm__fork_init(void);
void stm__vclock_fork(int phase);
void stm__serial_fork(int phase);
void stm__dispatch_fork(int phase);
void stm__timer_fork(int phase);
/* counts the forks this process's line went through (timer.c: the child
 * adds one): marks left by the parent's threads are told from the
 * child's own (watch.c, `alone`) */
extern _Atomic uint8_t stm__fork_gen;
void stm__reactor_fork(int phase);
void stm__wallclock_fork(int phase);
void stm__thread_fork(int phase);
void stm__retry_fork(int phase);

#endif
