/*
 * stm-internal.h - private declarations shared across lib/ (never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The declarations live in one slice per layer, low to high, each of
 * which includes only the slices below it:
 *   stm-base.h     compiler and sanitizer macros, the restart jump,
 *                  cancellation, the real clocks, memory
 *   stm-timer.h    the deadline heap and the timer pool
 *   stm-waiter.h   the Waiters
 *   stm-fd.h       fd readiness: the reactor, the direct wait
 *   stm-tvar.h     TVars: the lock word, side records, wait nodes
 *   stm-tx.h       the per-thread descriptor, global state, epochs, and
 *                  the core's calls (tx, retry, orelse, hooks, alloc,
 *                  reclaim, serial, stats)
 *   stm-watcher.h  watchers, as the core sees them
 * A file that needs one layer includes its slice; this header includes
 * them all, and adds the test-only hooks and the fork handlers, which
 * cut across the layers.  Names here are stm__* and hidden (the library
 * is built with -fvisibility=hidden; only STM_API names export).
 */
#ifndef STM_INTERNAL_H
#define STM_INTERNAL_H

#include "stm-base.h"    /* macros, restart jump, cancellation, clocks, memory */
#include "stm-timer.h"   /* deadline heap, timer pool */
#include "stm-waiter.h"  /* Waiters */
#include "stm-fd.h"      /* fd readiness, reactor */
#include "stm-tvar.h"    /* TVars */
#include "stm-tx.h"      /* descriptor, global state, epochs, core calls */
#include "stm-watcher.h" /* watchers */

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
/* How many reclamation passes so far (process-wide) needed a barrier on
 * every thread (membarrier()) because a thread was idle. */
uint64_t stm__reclaim_barriers(void);
/* Shift the library's wall clock by ns (cumulative) and act as if the
 * system time had been set: waits on wall-clock deadlines wake. */
void stm__test_wall_shift(int64_t ns);

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
