/*
 * reclaim.c - epoch-based deferred reclamation.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The epoch of a running transaction is the global-clock value it started
 * from (published in its descriptor; 0 when the thread runs none).  A block
 * freed by a commit with timestamp t is unreachable for every transaction
 * that starts at t or later, so it may be freed once every published epoch
 * is 0 or >= t.  Freed blocks wait in a per-thread limbo list; a reclaim
 * pass runs once that list has grown by STM__RECLAIM_BATCH since the last
 * pass, or once STM__RECLAIM_IDLE commits in a row have added nothing to
 * it (the frees have stopped: stm__commit_end), so its cost (a walk over
 * the threads, and at times a membarrier()) is spread over many frees.
 *
 * Barriers.  A thread publishes its epoch with a plain store
 * (stm__epoch_publish), which another thread may not see yet.  A pass
 * walks the threads first without any barrier:
 *
 *  - A thread seen at a non-zero epoch e bounds the safe time by e.  Its
 *    epochs are clock values it read itself, in program order, so by
 *    coherence every epoch it publishes after e (the one it may be
 *    publishing now included) is >= e; the acquire load of e orders what
 *    its earlier transactions did before the free.
 *  - A thread seen at 0 is idle, or has just begun a transaction whose
 *    epoch is not visible yet.  Only a barrier on every thread
 *    (stm__heavy_barrier: membarrier(), an interrupt to each CPU running
 *    the process) and a second walk tell.  After a barrier begun at clock
 *    m, every transaction of a thread whose epoch the walk did not see
 *    sees every unlink stamped <= m: those m are safe for it, and stay
 *    safe for it in later walks (barrier_clock), which is all the first
 *    walk assumes of a thread it sees at 0.
 *
 * So a pass needs a barrier only when a thread seen idle holds back what
 * it wants to free, and it takes one only once STM__RECLAIM_BARRIER_AT
 * frees are pending (or when a pass is forced: frees stopped, a flush, a
 * thread exit).  In a busy program the walk alone frees nearly
 * everything; beside idle threads there is one barrier per few batches.
 * Before, every pass took one: the interrupts cost a busy two-thread hash
 * set (bench/intset -t hs) about 30% of its throughput.
 *
 * A thread's list is in stamp order (its commits' times only grow), so a
 * pass frees a prefix of it: [limbo_head, first entry stamped after the
 * safe time), and stops there.  It costs O(threads + freed), not
 * O(pending): while a long transaction pins a large backlog, passes go on
 * at the usual rate (a pass that frees nothing costs the walk, and a
 * barrier if it saw a thread idle) and the first one after the pin is
 * gone frees the backlog, within STM__RECLAIM_BARRIER_AT frees or
 * STM__RECLAIM_IDLE commits.  The freed prefix is cut off by moving the
 * rest down once it is no longer than the prefix (so each entry is moved
 * at most once per entry freed before it: O(1) amortised).
 *
 * Lists of exited threads become orphans that any later pass (or
 * stm_shutdown) finishes; a pass sweeps them only once the safe time has
 * reached their oldest stamp.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#if defined(__linux__)
#include <linux/membarrier.h>
#endif

#include "stm-internal.h"

static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stm__freed *orphans;
static uint32_t orphan_n, orphan_cap;
static uint64_t orphan_min = UINT64_MAX;   /* their oldest stamp (under orphan_lock) */
static _Atomic uint64_t reclaimed_orphans; /* freed from no live descriptor */

#ifdef STM__TSAN
static _Atomic int barrier_word;
#endif

/* Registering for membarrier() can take milliseconds (the kernel waits
 * for a grace period), so it is done outside any lock (at load time, or by
 * the first thread that starts a transaction): other threads go on
 * meanwhile, publishing their epochs with a fence.  Only once the registration has succeeded do
 * epochs become plain stores, and barriers use membarrier() only when it
 * is registered, so every pairing is safe during the switch. */
static _Atomic int mb_state; /* 0 not tried, 1 in progress, 2 done */
static _Atomic bool mb_ok;

void stm__membarrier_setup(void)
{
    if (atomic_load_explicit(&mb_state, memory_order_acquire) != 0 ||
        atomic_exchange(&mb_state, 1) != 0)
        return;
#if defined(__linux__) && defined(SYS_membarrier) && !defined(STM__TSAN)
    bool ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    bool ok = false;
#endif
    atomic_store(&mb_ok, ok);
    atomic_store(&mb_state, 2);
    if (ok)
        atomic_store(&stm__g.fast_epoch, true);
}

/* While a process has one thread the registration is quick (tens of
 * microseconds, against milliseconds once there are several), so it is
 * done when the library is loaded, usually before main() starts threads. */
__attribute__((constructor)) static void membarrier_at_load(void)
{
    stm__membarrier_setup();
}

bool stm__heavy_barrier(void)
{
#ifdef STM__TSAN
    atomic_fetch_add_explicit(&barrier_word, 1, memory_order_seq_cst);
    return true;
#else
#if defined(__linux__) && defined(SYS_membarrier)
    if (atomic_load(&mb_ok)) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
            return true;
        /* Cannot happen once registered, short of a seccomp filter.
         * Epochs published with the plain store may not be visible yet:
         * from now on they are published with a fence, and this pass
         * reports failure so that nothing is freed on its evidence. */
        atomic_store(&stm__g.fast_epoch, false);
        atomic_thread_fence(memory_order_seq_cst);
        return false;
    }
#endif
    atomic_thread_fence(memory_order_seq_cst);
    return true;
#endif
}

/* The clock when the latest barrier pass began (under stm__reg_lock; it
 * only grows).  See the top of the file. */
static uint64_t barrier_clock;
static _Atomic uint64_t barriers; /* passes that used one (tests) */

/* One walk over the threads: the oldest published epoch, and at most
 * `clock` (read before the walk).  The calling thread, outside a
 * transaction, does not count (its own epoch is exact to it).  Another
 * thread seen outside one counts as barrier_clock, and *idle is set if
 * that lowered the result.  after_barrier: the walk follows a barrier
 * begun after `clock` was read, so such a thread does not count, and
 * `clock` becomes the barrier_clock of later walks. */
static uint64_t scan(uint64_t clock, bool after_barrier, bool *idle)
{
    struct stm_tx *self = stm__self;
    uint64_t busy = clock, quiet = clock;
    pthread_mutex_lock(&stm__reg_lock);
    if (!after_barrier && barrier_clock < quiet)
        quiet = barrier_clock;
    bool any_quiet = false;
    for (struct stm_tx *t = stm__reg_head; t; t = t->reg_next) {
        uint64_t e = atomic_load_explicit(&t->epoch, memory_order_acquire);
        if (e == 0)
            any_quiet |= t != self;
        else if (e < busy)
            busy = e;
    }
    if (after_barrier && clock > barrier_clock)
        barrier_clock = clock;
    pthread_mutex_unlock(&stm__reg_lock);
    *idle = any_quiet && quiet < busy;
    return *idle ? quiet : busy;
}

/* What is safe to free: everything stamped at or before the returned
 * time.  That is the oldest epoch of any running transaction, but never
 * more than the clock before the scan: a block retired after the scan (an
 * exiting thread's orphans) may have been unlinked by a commit the scan
 * could not know about.  A walk without a barrier comes first.  If it
 * does not reach `want` because of a thread seen idle, and `barrier`
 * allows, a barrier and a second walk follow; a barrier could not help
 * with a thread seen inside a transaction. */
static uint64_t safe_time(uint64_t want, bool barrier)
{
    uint64_t m = atomic_load_explicit(&stm__g.clock, memory_order_seq_cst);
    bool idle;
    uint64_t safe = scan(m, false, &idle);
    if (safe >= want || !idle || !barrier)
        return safe;
    atomic_fetch_add_explicit(&barriers, 1, memory_order_relaxed);
    if (!stm__heavy_barrier())
        return safe;
    return scan(m, true, &idle);
}

uint64_t stm__reclaim_barriers(void)
{
    return atomic_load_explicit(&barriers, memory_order_relaxed);
}

void stm__free_now(void *ptr, int kind)
{
    if (kind == STM__FREE_TVAR)
        stm__tvar_reclaim(ptr);
    else if (kind == STM__FREE_WATCH)
        stm__watch_reclaim(ptr);
    else if (kind == STM__FREE_TVX)
        stm__tvx_free(ptr);
    else
        free(ptr);
}

/* Free the entries of v[0..*n) stamped at or before `safe`; keep the
 * rest, whose oldest stamp goes to *min.  (Orphans: in no order.) */
static uint32_t sweep(struct stm__freed *v, uint32_t *n, uint64_t safe, uint64_t *min)
{
    uint32_t kept = 0, freed = 0;
    *min = UINT64_MAX;
    for (uint32_t i = 0; i < *n; i++) {
        if (v[i].stamp <= safe) {
            stm__free_now(v[i].ptr, v[i].kind);
            freed++;
        } else {
            if (v[i].stamp < *min)
                *min = v[i].stamp;
            v[kept++] = v[i];
        }
    }
    *n = kept;
    return freed;
}

/* Free the oldest entries of tx's limbo (in stamp order), up to the first
 * one stamped after `safe`: O(freed + 1) amortised. */
static uint32_t sweep_limbo(struct stm_tx *tx, uint64_t safe)
{
    struct stm__freed *v = tx->limbo.v;
    const uint32_t n = tx->limbo.n, from = tx->limbo_head;
    uint32_t i = from;
    while (i < n && v[i].stamp <= safe) {
        stm__free_now(v[i].ptr, v[i].kind);
        i++;
    }
    if (i == n) {
        tx->limbo.n = 0;
        tx->limbo_head = 0;
    } else if (n - i <= i) {
        memmove(v, v + i, (size_t)(n - i) * sizeof *v);
        tx->limbo.n = n - i;
        tx->limbo_head = 0;
    } else {
        tx->limbo_head = i;
    }
    return i - from;
}

static void sweep_orphans(uint64_t safe, bool wait)
{
    if (wait)
        pthread_mutex_lock(&orphan_lock);
    else if (pthread_mutex_trylock(&orphan_lock) != 0)
        return;
    uint32_t k = 0;
    if (orphan_n != 0 && safe >= orphan_min)
        k = sweep(orphans, &orphan_n, safe, &orphan_min);
    pthread_mutex_unlock(&orphan_lock);
    if (k)
        atomic_fetch_add_explicit(&reclaimed_orphans, k, memory_order_relaxed);
}

void stm__reclaim(struct stm_tx *tx, bool force)
{
    uint32_t pending = tx->limbo.n - tx->limbo_head;
    uint64_t want = pending ? tx->limbo.v[tx->limbo.n - 1].stamp : 0;
    uint64_t safe = safe_time(want, force || pending >= STM__RECLAIM_BARRIER_AT);
    uint32_t k = sweep_limbo(tx, safe);
    for (uint32_t i = 0; i < k; i++)
        stm__count(&tx->st.reclaimed);
    /* Next pass after another batch of frees, however many are pending
     * (see the top of the file). */
    tx->limbo_next = tx->limbo.n + STM__RECLAIM_BATCH;
    tx->limbo_age = 0;
    sweep_orphans(safe, false);
}

/* Wait for a grace period, then free: the path for when no list can
 * hold the entry (out of memory).  Must not be called inside a
 * transaction. */
static void free_synchronously(void *ptr, int kind, uint64_t stamp)
{
    while (safe_time(stamp, true) < stamp)
        sched_yield();
    stm__free_now(ptr, kind);
    atomic_fetch_add_explicit(&reclaimed_orphans, 1, memory_order_relaxed);
}

void stm__limbo_push(struct stm_tx *tx, void *ptr, int kind, uint64_t stamp)
{
    if (tx == NULL || !STM__VEC_RESERVE(tx->limbo, tx->limbo.n + 1)) {
        free_synchronously(ptr, kind, stamp);
        return;
    }
    /* keep the list in stamp order (a later stamp is only more careful) */
    if (tx->limbo.n > tx->limbo_head && stamp < tx->limbo.v[tx->limbo.n - 1].stamp)
        stamp = tx->limbo.v[tx->limbo.n - 1].stamp;
    tx->limbo.v[tx->limbo.n].ptr = ptr;
    tx->limbo.v[tx->limbo.n].kind = kind;
    tx->limbo.v[tx->limbo.n].stamp = stamp;
    tx->limbo.n++;
    tx->limbo_age = 0;
    if (tx->limbo.n >= tx->limbo_next)
        stm__reclaim(tx, false);
}

void stm__reclaim_thread_exit(struct stm_tx *tx)
{
    if (tx->limbo.n)
        stm__reclaim(tx, true);
    if (tx->limbo.n == 0)
        return;
    const struct stm__freed *v = tx->limbo.v + tx->limbo_head;
    const uint32_t n = tx->limbo.n - tx->limbo_head;
    pthread_mutex_lock(&orphan_lock);
    bool ok = stm__grow((void **)&orphans, &orphan_cap, sizeof *orphans, orphan_n + n);
    if (ok) {
        for (uint32_t i = 0; i < n; i++) {
            orphans[orphan_n + i] = v[i];
            if (v[i].stamp < orphan_min)
                orphan_min = v[i].stamp;
        }
        orphan_n += n;
    }
    pthread_mutex_unlock(&orphan_lock);
    if (!ok)
        for (uint32_t i = 0; i < n; i++)
            free_synchronously(v[i].ptr, v[i].kind, v[i].stamp);
    tx->limbo.n = 0;
    tx->limbo_head = 0;
}

uint64_t stm__reclaimed_orphans(void)
{
    return atomic_load_explicit(&reclaimed_orphans, memory_order_relaxed);
}

void stm__reclaim_shutdown(void)
{
    pthread_mutex_lock(&orphan_lock);
    uint32_t k = sweep(orphans, &orphan_n, safe_time(UINT64_MAX, true), &orphan_min);
    if (orphan_n == 0) {
        free(orphans);
        orphans = NULL;
        orphan_cap = 0;
    }
    pthread_mutex_unlock(&orphan_lock);
    atomic_fetch_add_explicit(&reclaimed_orphans, k, memory_order_relaxed);
}

void stm__reclaim_flush(void)
{
    struct stm_tx *tx = stm__self;
    if (tx)
        stm__reclaim(tx, true);
    sweep_orphans(safe_time(UINT64_MAX, true), true);
}

size_t stm__reclaim_pending(void)
{
    struct stm_tx *tx = stm__self;
    return tx ? tx->limbo.n - tx->limbo_head : 0;
}
