/*
 * stm.h - libstm: software transactional memory with timed watches.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * This header is the specification of the library.  Every function says
 * what it does, who owns what, what it does with NULL, which errors it
 * returns, whether it may be called from any thread, and what it costs.
 *
 * CONVENTIONS
 *
 * - Names: everything public starts with stm_ or STM_.  Handles are opaque
 *   (stm_tx, stm_watch); stm_tvar is a complete type with private fields,
 *   so that TVars can live inside the program's structs.
 * - Errors: a function that can fail returns int: 0 (or a non-negative
 *   value) on success, a negative errno value on failure (-ENOMEM,
 *   -EINVAL, ...).  stm_strerror() names them.  Destructors accept NULL.
 * - Time: int64_t nanoseconds.  STM_SEC(), STM_MSEC() and STM_USEC() build
 *   such values and always yield int64_t.
 * - Misuse: calling a transactional function outside a transaction, with a
 *   stale transaction handle or one that belongs to another thread, or with
 *   a NULL TVar, function or output pointer is a programming error, not a
 *   run-time condition.  The library prints one line naming the function
 *   and the mistake to stderr ("libstm: stm_read: the TVar is NULL") and
 *   calls abort().  The exceptions are the functions that return int and
 *   say so (stm_tvar_set_name, stm_tvar_poke): they return -EINVAL.  The
 *   function named is the one the program called (stm_elapsed() names
 *   stm_elapsed, not stm_tx_now); the inline stm_read_ptr() and
 *   stm_write_ptr() report as stm_read() and stm_write().
 * - Out of memory inside a transaction: any call that takes an stm_tx may
 *   need memory for the transaction's logs.  If it cannot be had, the call
 *   does not return: the attempt is discarded and stm_atomically() returns
 *   -ENOMEM, with every TVar as it was.
 * - Threads: every function may be called from any thread unless it says
 *   otherwise.  The library needs no initialisation call; each thread's
 *   transaction descriptor is made on its first transaction and freed when
 *   the thread exits.  On Linux, loading the library registers the process
 *   for membarrier(2) (quick while it has one thread), which lets every
 *   transaction start without a memory fence.
 * - Cancellation (pthread_cancel(), deferred, the default type): the
 *   waits of stm_retry() are the library's only cancellation points: the
 *   sleep of stm_retry(), stm_atomically_until() and timed or wall-clock
 *   retries, with every Waiter backend and under the virtual clock.  A
 *   thread cancelled there leaves nothing behind: its wait registrations
 *   are removed, no library lock stays held, the attempt is discarded (its
 *   stm_on_abort() hooks run, in the cancellation's clean-up), and its
 *   descriptor is freed at thread exit as usual.  Every other call runs
 *   with cancellation disabled (pthread_setcancelstate()) where it could
 *   block or calls a cancellation point of the C library (a wake-up's
 *   write() on the "pipe" backend, stm_clock_advance() waiting for the
 *   threads it woke, serial-mode waits, stm_unwatch() waiting for a run of
 *   the watcher, stm_dispatch_fd() and stm_shutdown() joining the library's
 *   threads); a pending cancellation acts at the caller's next
 *   cancellation point.  The caller's cancel state is always put back, and
 *   a thread that disabled cancellation is never cancelled by the library.
 *   Bodies, watcher functions, hooks and callbacks are the program's own
 *   code: a thread that exits or is cancelled inside a body or a watcher
 *   function (at a cancellation point it called) has its attempt left as
 *   a conflict would leave it (no TVar stays locked, serial mode ends),
 *   without its stm_on_abort() hooks; better not to let that happen.
 *   Asynchronous cancellation is not supported.
 * - fork(): the library's threads (dispatcher, timer, wall-clock watcher)
 *   do not exist in a child, so a child of a process that has used the
 *   library should only exec() or exit, like the child of any threaded
 *   program.
 */
#ifndef STM_H
#define STM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(STM_BUILDING) && defined(__GNUC__)
#define STM_API __attribute__((visibility("default")))
#else
#define STM_API
#endif

/* nonnull is for callers' compilers only: inside the library the checks
 * stay, so that a NULL is diagnosed at run time instead of optimised out. */
#if defined(__GNUC__) && !defined(STM_BUILDING)
#define STM_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define STM_NONNULL(...)
#endif
#if defined(__GNUC__)
#define STM_WUR __attribute__((warn_unused_result))
#else
#define STM_WUR
#endif
/* "does not return", spelled for the language that includes the header:
 * [[noreturn]] in C++11 and C23, _Noreturn in C11/C17. */
#if (defined(__cplusplus) && __cplusplus >= 201103L) ||                                            \
    (defined(__STDC_VERSION__) && __STDC_VERSION__ >= 202311L)
#define STM_NORETURN [[noreturn]]
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define STM_NORETURN _Noreturn
#elif defined(__GNUC__)
#define STM_NORETURN __attribute__((noreturn))
#else
#define STM_NORETURN
#endif

/* ======================================================================
 * TIME
 * ====================================================================== */

/** Nanoseconds in x seconds, milliseconds, microseconds, as int64_t. */
#define STM_SEC(x) ((int64_t)(x) * INT64_C(1000000000))
#define STM_MSEC(x) ((int64_t)(x) * INT64_C(1000000))
#define STM_USEC(x) ((int64_t)(x) * INT64_C(1000))

/**
 * stm_now - the monotonic clock (CLOCK_MONOTONIC) in nanoseconds, or the
 * virtual clock while that is on (stm_clock_virtual()).
 *
 * Never goes backwards, except where the program switches between the real
 * and the virtual clock.  Cost: one vDSO clock_gettime call (~20 ns).
 */
STM_API int64_t stm_now(void);

/**
 * stm_wall_now - the wall clock (CLOCK_REALTIME) in nanoseconds since the
 * Unix epoch.  It can jump when the system time is set.
 */
STM_API int64_t stm_wall_now(void);

/** A deadline that never comes.  Deadline arithmetic that overflows should
 * clamp to it; the library treats anything at or past it as "never". */
#define STM_NEVER INT64_MAX

/* ======================================================================
 * TRANSACTIONAL VARIABLES
 *
 * A TVar holds one machine word (intptr_t).  Bigger values live behind a
 * pointer that a transaction replaces; the old block is released with
 * stm_free() so that transactions still reading it are never left with a
 * dangling pointer.
 *
 * A TVar is 16 bytes (its value and a versioned lock word) and may live
 * inside the program's own structs: declare a member of type stm_tvar and
 * initialise it with stm_tvar_init() or STM_TVAR_INIT.  A tree node, say,
 * then holds its links as TVars, and walking the tree touches nothing but
 * the nodes.  stm_tvar_new() gives a TVar a heap block of its own.  Both
 * kinds work the same with every function of the library.
 *
 * What few TVars have -- threads waiting on it in stm_retry(), watchers,
 * a name -- is kept in a side record (about 64 bytes) that the TVar gets
 * when it first needs one and keeps until it is destroyed or freed.  A
 * flag in the lock word says whether it has one, so the others pay
 * nothing for the feature; reads of a TVar with a record take a slightly
 * longer path (one more dependent load).
 * ====================================================================== */

/* The fields are private: use the functions below, never the members. */
#if defined(STM_BUILDING) || defined(STM__LIB_INTERNAL)
typedef struct stm_tvar {
    _Atomic uintptr_t lock;
    _Atomic intptr_t value;
} stm_tvar;
#else
typedef struct stm_tvar {
    uintptr_t stm_private_lock; /* (no double underscore: C++ reserves it) */
    intptr_t stm_private_value;
} stm_tvar;
#endif

/**
 * STM_TVAR_INIT - static initializer of a TVar holding `value`:
 *
 *     static stm_tvar hits = STM_TVAR_INIT(0);
 *     struct node n = { .key = 7, .next = STM_TVAR_INIT(0) };
 *
 * Equivalent to stm_tvar_init(), for objects of static storage duration
 * or initialised before any other thread can see them.
 */
#define STM_TVAR_INIT(value) {0, (intptr_t)(value)}

/**
 * stm_tvar_init - make the memory at `var` a TVar holding `initial`.
 *
 * For a TVar embedded in the program's own memory (a struct member, an
 * array element, a block from malloc() or stm_alloc()).  No allocation, no
 * failure, O(1).  The memory must not yet be visible to any other thread
 * (initialise, then publish the struct holding it, e.g. by writing its
 * address into a TVar in a transaction).  Initialising a TVar that is in
 * use is undefined; one that was destroyed with stm_tvar_destroy() may be
 * initialised again.  A TVar that is never given a waiter, watcher or name
 * needs no stm_tvar_destroy(), but calling it is always correct.
 * Misuse: a NULL `var` aborts with a message.
 */
STM_API void stm_tvar_init(stm_tvar *var, intptr_t initial);

/**
 * stm_tvar_destroy - end the life of the embedded TVar `var`, before the
 * memory that holds it is freed or reused.
 *
 * Threads blocked in stm_retry() on `var` are woken (they run their
 * transaction again, which should no longer reach `var`), its name is
 * dropped, and its side record, if it has one, is released once no
 * running transaction can still read it.  It is the caller's job to make
 * sure no transaction that starts later can reach `var`, and that no
 * active watcher reads it (stm_unwatch() first; otherwise the call aborts
 * with a message).
 *
 * Inside a transaction, the destroy happens only if the transaction
 * commits, as part of the commit (dropped with a discarded attempt or
 * stm_or_else() branch).  The usual pattern frees a node of a shared
 * structure in the transaction that unlinks it:
 *
 *     stm_write_ptr(tx, &prev->next, stm_read_ptr(tx, &n->next));
 *     stm_tvar_destroy(&n->next);
 *     stm_free(tx, n);
 *
 * stm_free() then keeps the node's memory until no running transaction
 * can still read it.  Outside a transaction, free the memory with
 * stm_free() too unless no other thread can be reading `var`.
 * NULL is a harmless no-op.  Destroying a TVar twice (without an
 * stm_tvar_init() between) is undefined.  Use stm_tvar_free(), not this,
 * for a TVar made by stm_tvar_new().  O(1) plus the waiters woken.
 */
STM_API void stm_tvar_destroy(stm_tvar *var);

/**
 * stm_tvar_new - make a TVar holding `initial`.
 *
 * Returns the TVar, a heap block of its own, owned by the caller until
 * stm_tvar_free().  On allocation failure returns NULL with errno set to
 * ENOMEM.  O(1).  Inside a transaction (since 0.2) it is allocated like
 * stm_alloc(): the TVar is freed again if the attempt does not commit
 * (a conflict, stm_retry(), stm_abort() or a failed stm_or_else()
 * branch), and running out of memory discards the attempt (-ENOMEM from
 * stm_atomically()) instead of returning NULL.
 */
STM_API stm_tvar *stm_tvar_new(intptr_t initial) STM_WUR;

/**
 * stm_tvar_free - free a TVar.
 *
 * The memory is reclaimed only once no running transaction can still read
 * it, so it is safe to call while other threads' transactions may have
 * read `var` (they finish, or restart, without touching freed memory).
 * It is the caller's job to make sure no transaction that *starts* later
 * can reach `var` (unlink it first, in a committed transaction).  Threads
 * blocked in stm_retry() on `var` are woken.  NULL is a harmless no-op.
 * Freeing a TVar twice is undefined.  O(1) amortised.
 *
 * Inside a transaction, the free happens only if the transaction commits
 * (it is dropped with a discarded attempt or stm_or_else() branch), and
 * counts from the commit: the threads blocked in stm_retry() on `var` are
 * woken when it commits.  Freeing a TVar that an active watcher reads is
 * a misuse (the process aborts with a message): at the call outside a
 * transaction, at the commit inside one.
 */
STM_API void stm_tvar_free(stm_tvar *var);

/**
 * stm_tvar_set_name - give `var` a name for diagnostics and statistics
 * (the STM_STATS=1 report lists named TVars that caused conflicts).
 *
 * The string is copied.  A NULL `name` removes the name.  Returns 0, or
 * -EINVAL if `var` is NULL, or -ENOMEM (the old name is kept).  Not a
 * transactional operation: call it before the TVar is shared, or accept
 * that a concurrent stm_tvar_name() reader is serialised by a lock.
 */
STM_API int stm_tvar_set_name(stm_tvar *var, const char *name);

/**
 * stm_tvar_name - the name set with stm_tvar_set_name(), or NULL.
 *
 * The string is owned by the TVar and stays valid until the name is changed
 * or the TVar is freed.
 */
STM_API const char *stm_tvar_name(stm_tvar *var) STM_NONNULL(1);

/**
 * stm_tvar_peek - the committed value of `var`, read outside any
 * transaction.
 *
 * The value is one that some commit left there (never a torn or
 * uncommitted one), but two peeks of two TVars are not a consistent
 * snapshot: use a transaction for that.  Wait-free unless a commit to `var`
 * is in progress, in which case it spins until that commit finishes.
 * Inside a transaction it still returns the last committed value: it
 * ignores the transaction's own writes and is not part of its snapshot
 * (use stm_read() there).
 */
STM_API intptr_t stm_tvar_peek(stm_tvar *var) STM_NONNULL(1);

/**
 * stm_tvar_poke - write `value` to `var` in a transaction of its own.
 *
 * Wakes the transactions waiting in stm_retry() on `var` and runs the
 * watchers that read it, in the commit.  Returns 0 when the write
 * committed, else a negative value and nothing was written:
 *   -EINVAL     `var` is NULL;
 *   -ENOMEM     out of memory;
 *   -ELOOP      the watcher cascade did not settle (STM_WATCH_ROUNDS);
 *   -ECANCELED  a watcher vetoed the commit with stm_abort(tx, code) and
 *               `code` was 0, positive or INT_MIN;
 *   code        a watcher vetoed it with a negative `code` (an errno value
 *               of its choosing), returned as it is;
 * as stm_atomically_watch() reports vetoes.  So `if (rc < 0)` catches
 * every failure; no positive value is returned.  A program that needs a
 * positive veto code writes the TVar in its own stm_atomically(), which
 * returns it.
 * Inside a transaction it is a plain stm_write() in that transaction: it
 * returns 0 and takes effect only if the enclosing transaction commits.
 * Any thread.  Costs one transaction with one write (and the watchers it
 * triggers).
 */
STM_API int stm_tvar_poke(stm_tvar *var, intptr_t value);

/* ======================================================================
 * TRANSACTIONS
 *
 * A transaction is a function (the body) that reads and writes TVars
 * through the stm_tx handle it is given.  stm_atomically() runs it so that
 * it appears to happen at one instant: other threads see all of its writes
 * or none of them (atomicity), and it sees no other thread's writes half
 * done (isolation).
 *
 * The body may be run several times: when it reads a TVar that another
 * thread has changed since the body began, it is stopped at once (the
 * library longjmp()s out of it from inside stm_read(), stm_write() or
 * stm_retry()) and run again.  So a body must be restartable: no side
 * effects outside TVars, except through stm_after_commit(),
 * stm_on_abort() and the memory functions below.  Do not hold locks, or
 * leave malloc()ed memory reachable only from local variables, across a
 * call that takes `tx`.
 *
 * Sanitizers: the jump skips the body's frames without running their
 * epilogues.  A program built with AddressSanitizer may use a libstm built
 * without it: when the ASan runtime is in the process, the library calls
 * its __asan_handle_no_return() before each jump (found at load time, at
 * no cost to the paths that do not jump), so the skipped frames' stack
 * redzones are cleared and no false stack-buffer-overflow follows a
 * restart.  A libstm built with a sanitizer (--enable-sanitize) jumps with
 * siglongjmp(), which the sanitizers intercept.  A ThreadSanitizer program
 * needs a libstm built with --enable-sanitize=thread, as TSan needs all of
 * a program's code instrumented.
 *
 * Opacity: a running body never observes an inconsistent state, not even
 * in an attempt that will be thrown away.  Every value it reads belongs to
 * one snapshot of all TVars.
 *
 * The stm_tx handle is valid only inside the body (and nested bodies) on
 * the thread that runs it.  Using it after the body returns, or from
 * another thread, is misuse (the library aborts with a message).
 *
 * Cost: a transaction that reads one TVar and writes another takes tens of
 * nanoseconds and allocates nothing once the thread has run its first
 * transaction (read and write sets are reused and grow geometrically).
 * Read-only transactions take no lock and do no atomic read-modify-write.
 * ====================================================================== */

typedef struct stm_tx stm_tx;

/** A transaction body.  Its return value is what stm_atomically() returns. */
typedef int stm_fn(stm_tx *tx, void *arg);

/**
 * stm_atomically - run `fn(tx, arg)` as one atomic, isolated transaction.
 *
 * Returns what `fn` returned, once the transaction has committed.  Bodies
 * should return non-negative values so that they are not mistaken for the
 * library's own errors:
 *
 *   -EDEADLK  the body called stm_retry() having read no TVar and recorded
 *             no deadline (stm_elapsed()), so nothing could ever wake it;
 *   -EMFILE   (and other negative errno values) the Waiter backend could
 *             not make this thread's waiter (see stm_set_waiter());
 *   -ENOMEM   memory for the transaction's bookkeeping could not be had;
 *             nothing was committed and every TVar is as it was;
 *   code      the body called stm_abort(tx, code).
 *
 * Nesting: called inside a body (on the same thread), it does not start a
 * new transaction; `fn` joins the enclosing one (flat nesting) and its
 * return value is returned directly.  A stm_abort() or stm_retry() in the
 * nested body acts on the whole enclosing transaction.
 *
 * Progress: a transaction that keeps losing conflicts is, after a bounded
 * number of restarts (STM_SERIAL_AFTER, see below), run in serial mode:
 * other transactions wait at their start until it has finished, so it
 * cannot be aborted again.  Of two transactions that write the same TVar,
 * the one whose body wrote it first commits first (stm_write()).
 *
 * `fn` must not be NULL (misuse).  May be called from any thread, also
 * from stm_after_commit() hooks (a new transaction) and from inside a body
 * (joins, as above).
 */
STM_API int stm_atomically(stm_fn *fn, void *arg) STM_NONNULL(1);

/** Conflict restarts after which a transaction runs in serial mode. */
#define STM_SERIAL_AFTER 16

/**
 * stm_atomically_ro - run `fn(tx, arg)` as a transaction that promises not
 * to write.
 *
 * Returns what stm_atomically(fn, arg) would: what `fn` returned once the
 * transaction has committed, the `code` of a stm_abort(), -ENOMEM (also
 * when this thread's descriptor cannot be made), or any other error of
 * stm_atomically() (see above) if the body fell back, as below.  The body,
 * its handle and the rules for bodies are those of stm_atomically(); only
 * the cost differs.  `arg` is handed to `fn` as it is; the library keeps
 * no reference to `fn` or `arg` once the call returns.
 *
 * A declared read-only attempt records no read set: each stm_read() is
 * checked against the snapshot taken when the attempt began, which is the
 * transaction's serialisation point, so the commit has nothing to
 * validate.  Opacity holds as in any transaction.  Without a read set the
 * snapshot cannot be extended: a read that finds `var` changed since the
 * snapshot (or locked by a committing writer for longer than a short spin)
 * restarts the attempt (counted in aborts_conflict).  The body then runs
 * again as a normal transaction (stm_atomically()), which extends its
 * snapshot instead, and so do this thread's next 64 stm_atomically_ro()
 * calls: a thread whose reads meet concurrent commits records what it
 * reads for a while (one restart, then at most 64 calls at the cost of
 * stm_atomically()) rather than restarting again and again.
 *
 * In a read-only attempt the body may call stm_read(), stm_abort(),
 * stm_tx_now(), stm_tx_start(), stm_elapsed(), stm_tx_wall_now(), stm_elapsed_wall(),
 * stm_after_commit(), stm_on_abort() and stm_defer(), which work as usual.
 * If it calls anything else that takes `tx` -- stm_write(), stm_retry()
 * (which needs the reads to wait on), stm_or_else(), stm_alloc(),
 * stm_free(), or stm_tvar_free() -- the attempt falls back: it is
 * discarded like an attempt that lost a conflict (its stm_on_abort() hooks
 * run, its stm_after_commit() hooks and stm_defer() callbacks are
 * dropped, the `aborts` statistic counts it) and the body runs again from
 * the start as stm_atomically(fn, arg), whose result is returned.  The
 * caller sees no difference except the cost of the wasted attempt, so a
 * body that usually only reads and sometimes writes may use this function
 * too.  A body that always writes should use stm_atomically().
 *
 * Nesting: called inside a body (on the same thread) it joins the
 * enclosing transaction, read-only or not, like stm_atomically(); and
 * stm_atomically() or stm_atomically_until() inside a read-only body joins
 * the read-only transaction (a write in there falls back as above).
 *
 * `fn` must not be NULL: misuse, diagnosed (one line on stderr, then
 * abort()).  May be called from any thread, also from stm_after_commit()
 * hooks.  Cost: O(1) per read, no allocation, no lock, no atomic
 * read-modify-write; a body that reads one TVar takes about a fifth less
 * time than under stm_atomically() (bench/micro: tx_1r_ro_decl against
 * tx_1r_ro), and every further read saves writing a read-set entry; but a
 * read that would have extended the snapshot restarts the attempt.
 */
STM_API int stm_atomically_ro(stm_fn *fn, void *arg) STM_NONNULL(1);

/**
 * stm_read - read `var` in transaction `tx`.
 *
 * Returns the value as of the transaction's snapshot, or the value the
 * transaction itself wrote last.  If `var` has changed since the snapshot,
 * the snapshot is extended when every earlier read is still valid;
 * otherwise the attempt is restarted (this function does not return).
 * O(1) amortised; O(reads so far) when the snapshot is extended.
 */
STM_API intptr_t stm_read(stm_tx *tx, stm_tvar *var);

/**
 * stm_write - write `value` to `var` in transaction `tx`.
 *
 * The write is buffered in the transaction and becomes visible to other
 * threads only when the transaction commits.  O(1) amortised (a small
 * Bloom filter keeps look-ups cheap).  If memory for the write set cannot
 * be had the transaction is discarded and stm_atomically() returns
 * -ENOMEM.
 *
 * The first write of `var` in an attempt also locks `var` for writers
 * until the attempt ends (encounter-time locking; one atomic
 * compare-and-swap, which the rest of the body's work hides, where a
 * commit that took its locks one after the other could not).  Readers do
 * not wait for it: stm_read() in other transactions and stm_tvar_peek()
 * see the committed value, as before the write.  Another transaction
 * that writes `var` meanwhile cannot commit first: its commit waits a
 * moment, then it runs again (with back-off, and in serial mode after
 * STM_SERIAL_AFTER restarts) until this attempt commits or ends; a
 * stm_retry() waiter that read `var` waits for the same.  Every end of
 * the attempt (commit, conflict, stm_retry(), stm_abort(), the rollback
 * of a stm_or_else() or stm_catch() branch) lets the lock go.  So keep
 * bodies short after their first writes, as they should be anyway.  (If
 * `var` has waiters or watchers, or the lock is taken, it is locked at
 * commit instead.)
 */
STM_API void stm_write(stm_tx *tx, stm_tvar *var, intptr_t value);

/** Pointer conveniences around stm_read() / stm_write(). */
static inline void *stm_read_ptr(stm_tx *tx, stm_tvar *var)
{
    return (void *)stm_read(tx, var);
}
static inline void stm_write_ptr(stm_tx *tx, stm_tvar *var, void *ptr)
{
    stm_write(tx, var, (intptr_t)ptr);
}

/**
 * stm_retry - abandon this attempt and block until it can make progress.
 *
 * The attempt's writes are discarded.  The thread sleeps until a commit
 * changes a TVar that the attempt read, or until the earliest deadline the
 * attempt recorded with stm_elapsed() / stm_elapsed_wall() comes, then the
 * body is run again.  No
 * wake-up is lost: a commit that lands between the attempt's reads and the
 * sleep wakes it.  Inside the first branch of stm_or_else() it abandons
 * only that branch (see there).  If the attempt read no TVar and recorded
 * no deadline, stm_atomically() returns -EDEADLK instead of sleeping
 * forever.
 *
 * Blocking goes through the library's Waiter (see WAITERS below).  A
 * committing writer wakes exactly the threads
 * waiting on the TVars it wrote, and pays one load per written TVar when
 * nobody waits.
 *
 * Before it sleeps, the thread watches what the attempt read for a short,
 * adaptive while (a few microseconds, at most 20) and runs the body again
 * at once if a commit changes it meanwhile; nothing is registered during
 * the spin, so that committer wakes nobody, and the registration and sleep
 * that follow are the usual ones, so no wake-up is lost.  The window adapts
 * per set of TVars waited on (keyed by the first TVar read): a spin that
 * sees the change doubles it, one that does not halves it, and
 * below half a microsecond spinning stops for that set, which is probed
 * again only every 8 to 1024 retries.  stm_set_wake_spin() turns it off
 * (0) or fixes the window.  No spin under the virtual clock, in serial
 * mode, or with fd or wall-clock waits; never past the attempt's deadline.
 * stm_stats_get() counts a change seen while spinning as a wake-up.
 *
 * The sleep is a cancellation point (see Cancellation under CONVENTIONS):
 * a thread cancelled in it unregisters, runs the attempt's stm_on_abort()
 * hooks and exits; a thread that disabled cancellation sleeps on.
 */
STM_API STM_NORETURN void stm_retry(stm_tx *tx);

/**
 * stm_abort - discard the transaction and make stm_atomically() return
 * `code`.
 *
 * The body is not run again.  Hooks registered with stm_on_abort() run;
 * blocks from stm_alloc() in this attempt are freed.  Acts on the whole
 * (outermost) transaction, also from inside stm_or_else() branches --
 * except inside stm_catch(), which takes the abort and undoes only its
 * own part.
 */
STM_API STM_NORETURN void stm_abort(stm_tx *tx, int code);

/**
 * stm_catch - run `body` as a part of the transaction that an stm_abort()
 * undoes on its own (GHC's catchSTM).
 *
 * `body(tx, arg)` runs inside the current transaction.  If it returns,
 * its effects stay in the transaction, *aborted is set to false and its
 * result is returned.  If it (or anything it calls) calls
 * stm_abort(tx, code), only the part's effects are undone -- its
 * stm_write()s (values it overwrote are put back), its stm_after_commit()
 * hooks, stm_defer()s and stm_free()s, and the blocks it got from
 * stm_alloc() (freed); its stm_on_abort() hooks run -- *aborted is set to
 * true, and `code` is returned.  The transaction goes on from there.  The
 * part's reads stay in the transaction (what it did depended on them).
 *
 * So "this step failed" (stm_abort, caught here) and "this step must
 * wait" (stm_retry, which goes past stm_catch to the enclosing
 * stm_or_else() or retries the whole transaction) can be told apart.
 * Calls nest with each other and with stm_or_else() in any order: an
 * abort goes to the innermost stm_catch(), a retry to the innermost
 * stm_or_else().  A conflict restarts the whole transaction as always.
 *
 * Misuse: a NULL `body` or `aborted`, or a `tx` that is not the running
 * transaction.  Inside a declared read-only transaction
 * (stm_atomically_ro) the attempt falls back to a normal one.
 * Cost: a setjmp and a few stores; an abort costs the length of what it
 * undoes.
 */
STM_API int stm_catch(stm_tx *tx, stm_fn *body, void *arg, bool *aborted);

/**
 * stm_or_else - run `first`; if it retries, run `second` instead.
 *
 * `first(tx, arg)` runs as a nested transaction.  If it returns, its
 * result is returned.  If it calls stm_retry(), its writes, hooks and
 * allocations are discarded (partial rollback; its reads stay in the
 * transaction, since the decision depended on them) and
 * `second(tx, arg)` runs; its result is returned.  If `second` retries
 * too, the retry goes outward like any other: to the enclosing
 * stm_or_else() if this call is inside the first branch of another one,
 * otherwise to the whole transaction, which then waits on the TVars read
 * by both branches.  Calls nest.  Both functions must be non-NULL
 * (misuse).
 *
 * Discarding a branch drops its stm_write()s (values it overwrote are put
 * back), its stm_after_commit() hooks and stm_free()s, frees its
 * stm_alloc() blocks, and runs its stm_on_abort() hooks.
 */
STM_API int stm_or_else(stm_tx *tx, stm_fn *first, stm_fn *second, void *arg)
    STM_NONNULL(2, 3);

/* ======================================================================
 * FOR BINDINGS: A RESTART THAT UNWINDS
 *
 * A conflict, stm_retry(), stm_abort() or a lack of memory ends an attempt
 * with a non-local jump (longjmp) out of the call that found it, back into
 * stm_atomically() (or to the stm_or_else() / stm_catch() branch it
 * concerns).  That is right for C, but it skips the frames in between
 * without running anything in them: C++ destructors, a Python
 * interpreter's frames, Rust drops.  A binding whose bodies run in such a
 * language uses the calls below instead, which report "this attempt is
 * over" to their caller and leave the jump pending:
 *
 *   1. The binding's body function (the stm_fn that stm_atomically() or a
 *      branch calls, or the stm_watch_fn of a watcher) calls into its own
 *      language, which calls stm_read_x(), stm_write_x(), stm_retry_x(),
 *      stm_abort_x(), or any other function through stm_protect().
 *   2. A non-zero result (an STM_PENDING_* reason) means the attempt is
 *      over: the language code unwinds to the body function (C++: throw an
 *      exception that only the body function catches), running its
 *      destructors.  Until then it must not use `tx` (every _x call and
 *      stm_protect() report the same reason again; the plain functions
 *      diagnose misuse).
 *   3. Back in the body function, with no foreign frame left between it
 *      and the library: if the library called it from stm_atomically(),
 *      stm_atomically_ro(), stm_atomically_until() (as the outermost
 *      transaction, not a nested one) or as a watcher's fn, it calls
 *      stm_resume(tx), which does the jump.  If it was called by
 *      stm_or_else() or stm_catch() (or by a nested stm_atomically*(),
 *      which joins the enclosing transaction), it simply returns (any
 *      value): a branch that the jump goes to takes it, any other passes
 *      it outward, so the frames of every enclosing body unwind in turn.
 *
 * A body that returns to the outermost stm_atomically*() with a jump
 * pending is misuse (diagnosed; nothing it wrote is committed).  The
 * outcome is exactly the jump's: a conflict runs the body again, a retry
 * waits, an abort returns its code, and so on.
 *
 * Cost: stm_read_x() and stm_write_x() take the fast paths of stm_read()
 * and stm_write() and pay a setjmp only on their rare paths (a read of a
 * TVar the attempt wrote, a full log, a conflict); nothing here slows
 * transactions that do not use it.  include/stm.hpp, the C++ API, is built
 * on these calls.
 * ====================================================================== */

/** Reasons an attempt is over (what the jump that is pending will do). */
#define STM_PENDING_CONFLICT 1 /* run the body again (or it read a TVar that moved) */
#define STM_PENDING_RETRY 2    /* stm_retry(): the branch's alternative, or wait */
#define STM_PENDING_ABORT 3    /* stm_abort(): to stm_catch(), or end the transaction */
#define STM_PENDING_NOMEM 4    /* memory ran out: stm_atomically() returns -ENOMEM */
#define STM_PENDING_FALLBACK 5 /* a read-only attempt did what only a normal one can */

/** A function run by stm_protect(). */
typedef void stm_op_fn(stm_tx *tx, void *arg);

/**
 * stm_protect - run `op(tx, arg)`; if it would leave by the restart jump,
 * return the reason instead.
 *
 * `op` calls any library functions on `tx` (stm_read(), stm_alloc(),
 * stm_or_else(), stm_elapsed(), stm_watch_new(), ...).  Returns 0 if it
 * returned and the attempt goes on, or an STM_PENDING_* reason: the
 * attempt is over and its jump is pending (see above); what `op` did not
 * finish is not finished.  A retry or abort aimed at an stm_or_else() or
 * stm_catch() branch that `op` itself opened stays inside `op`, as usual.
 * Only C frames may lie between stm_protect() and the library calls that
 * can jump (`op` must not itself call into code with destructors).  With a
 * jump already pending it returns its reason without running `op`.
 * Misuse: a NULL `op`, or a `tx` that is not the caller's running
 * transaction.  Calls nest.  Cost: a setjmp and a few stores.
 */
STM_API int stm_protect(stm_tx *tx, stm_op_fn *op, void *arg) STM_WUR;

/**
 * stm_read_x, stm_write_x - stm_read() and stm_write() that report the end
 * of the attempt instead of jumping.
 *
 * stm_read_x() stores the value in *out and returns 0, or returns an
 * STM_PENDING_* reason (*out is left alone).  stm_write_x() returns 0 or
 * a reason.  Otherwise as stm_read() and stm_write(), at the same cost on
 * their fast paths.  Misuse: a NULL `var` or `out`, a `tx` that is not
 * the running transaction.
 */
STM_API int stm_read_x(stm_tx *tx, stm_tvar *var, intptr_t *out) STM_WUR;
STM_API int stm_write_x(stm_tx *tx, stm_tvar *var, intptr_t value) STM_WUR;

/**
 * stm_retry_x, stm_abort_x - stm_retry() and stm_abort(tx, code) that
 * return instead of jumping: the attempt is over and the reason
 * (STM_PENDING_RETRY, STM_PENDING_ABORT, or STM_PENDING_FALLBACK in a
 * declared read-only attempt that retries) is returned; it is never 0.
 */
STM_API int stm_retry_x(stm_tx *tx);
STM_API int stm_abort_x(stm_tx *tx, int code);

/**
 * stm_pending - the STM_PENDING_* reason of the jump pending in `tx`, or 0
 * if none is (also for a NULL or foreign `tx`).  O(1).
 */
STM_API int stm_pending(stm_tx *tx);

/**
 * stm_resume - do the jump pending in `tx`: the attempt ends as if the
 * call that reported it had jumped (the body runs again, waits, returns
 * the abort code, ...).  Does not return.  Call it only where no frame
 * that must unwind lies between the caller and the library function that
 * called it (see above).  Misuse: no jump pending, `tx` not the caller's.
 */
STM_API STM_NORETURN void stm_resume(stm_tx *tx);

/**
 * stm_tx_now - the attempt's "now" on the monotonic clock.
 *
 * Read once, the first time it is asked for in an attempt, and then fixed
 * for the rest of the attempt, so every call in one attempt agrees.  A
 * restarted attempt reads the clock again.
 */
STM_API int64_t stm_tx_now(stm_tx *tx);

/**
 * stm_tx_start - when the outermost stm_atomically() (or
 * stm_atomically_ro(), stm_atomically_until()) call running `tx` began,
 * on the library's clock (virtual when that is on, as stm_now()).
 *
 * The same in every attempt of that call, so a relative deadline computed
 * from it stays put when the body runs again:
 *
 *     if (!stm_elapsed(tx, stm_tx_start(tx) + STM_MSEC(200)))
 *         stm_retry(tx);   // waits 200 ms from the call, not per attempt
 *
 * (Python's elapsed(seconds), ScalaSTM's retryFor).  stm_atomically_until()
 * reads the clock as it begins.  stm_atomically() does not, to keep its
 * fast path free of a clock read: its value is the first attempt's
 * stm_tx_now() if that attempt asks for either, else the clock as that
 * attempt ended (by a conflict, a retry or an abort).  So it is at or
 * after the call began, at or before every attempt's stm_tx_now() but the
 * first's, and never later than the first attempt's end.  Nested calls
 * and watcher runs inside a commit see the outermost call's value; a
 * deadline run of a watcher sees when that run began.  Thread-safety and
 * misuse as stm_tx_now(); O(1).
 */
STM_API int64_t stm_tx_start(stm_tx *tx);

/**
 * stm_tx_current - the transaction the calling thread is running, or
 * NULL.
 *
 * Inside a body (also a nested one, a watcher's fn or cb, or a declared
 * read-only attempt) returns the handle the body was given, valid as that
 * handle is: on this thread, until the body returns.  Outside a body --
 * and in stm_after_commit() and stm_on_abort() hooks, stm_defer()
 * callbacks and waiters -- returns NULL.  For code deep in a call chain
 * that must know whether it runs inside a transaction.  Any thread; O(1),
 * no allocation.
 */
STM_API stm_tx *stm_tx_current(void);

/**
 * stm_atomically_until - stm_atomically() with a time limit on waiting.
 *
 * As stm_atomically(), but if the body is still retrying when `deadline`
 * (monotonic, as stm_now(); STM_NEVER for none) has come, returns
 * -ETIMEDOUT.  The body always runs at least once, even if the deadline
 * has already passed; it is never cut short while running.  A body that
 * is waiting when the deadline comes is woken and run once more (now at
 * or past the deadline): -ETIMEDOUT is returned if that run retries too.  The deadline
 * counts as something to wait for, so a body that retries having read
 * nothing sleeps until the deadline instead of returning -EDEADLK.
 *
 * Nested (called inside a body, on the same thread): `fn` joins the
 * enclosing transaction, but its deadline still counts (ScalaSTM's nested
 * withRetryTimeout).  If `fn` returns, its result is returned.  If `fn`
 * calls stm_retry() (and no stm_or_else() inside it takes the retry):
 *   - once the deadline has come at the attempt's now (stm_elapsed()),
 *     what `fn` did is undone as a discarded stm_or_else() branch is (its
 *     writes, hooks, allocations, frees, watchers; its reads stay and are
 *     validated) and -ETIMEDOUT is returned to the enclosing body, which
 *     goes on;
 *   - before it, the retry goes on to the enclosing transaction (or the
 *     enclosing stm_or_else() branch) with the deadline recorded as by
 *     stm_elapsed(): the whole transaction waits for a change of what it
 *     read or for that deadline, whichever comes first, and runs again.
 * STM_NEVER as the deadline joins exactly as stm_atomically() does.  In a
 * declared read-only attempt it joins; a retry in its body makes the
 * attempt fall back as any retry does (stm_atomically_ro()), and in the
 * normal transaction that follows it behaves as above.
 */
STM_API int stm_atomically_until(stm_fn *fn, void *arg, int64_t deadline) STM_NONNULL(1);

/* ======================================================================
 * TIME INSIDE TRANSACTIONS
 *
 * Time is read like a TVar.  An attempt sees one "now" (stm_tx_now()),
 * and stm_elapsed() compares a deadline with it.  A deadline that has not
 * come yet is recorded in the attempt: if the attempt then retries, it
 * wakes when any TVar it read changes or when the earliest recorded
 * deadline comes, whichever is first, and the next attempt then sees
 * stm_elapsed() true for that deadline (a wake-up is never early).
 * stm_or_else() keeps the deadlines of a discarded branch, so a retry of
 * both branches waits for the earliest of all.
 * ====================================================================== */

/**
 * stm_elapsed - whether the monotonic `deadline` has come at this
 * attempt's now: stm_tx_now(tx) >= deadline.
 *
 * When it has not, records the deadline in the attempt (see above) and
 * returns false.  Deadlines are absolute: a re-run does not restart them
 * (a deadline computed from stm_tx_now() moves with every attempt; one
 * relative to the call is stm_tx_start(tx) + delay).
 * STM_NEVER is never elapsed and records nothing.  O(1).
 */
STM_API bool stm_elapsed(stm_tx *tx, int64_t deadline);

/**
 * stm_tx_wall_now - the attempt's "now" on the wall clock (CLOCK_REALTIME,
 * ns since the epoch), read once per attempt like stm_tx_now().
 */
STM_API int64_t stm_tx_wall_now(stm_tx *tx);

/**
 * stm_elapsed_wall - whether the wall-clock `wall_deadline` has come at
 * this attempt's wall-clock now: stm_tx_wall_now(tx) >= wall_deadline.
 *
 * When it has not, records the deadline.  A retry then waits at most as
 * long as the wall clock says is left, and if the system time is set
 * (settimeofday, an NTP step) while it waits, it wakes and the body runs
 * again against the new time.  On Linux the change is noticed through a
 * CLOCK_REALTIME timerfd with TFD_TIMER_CANCEL_ON_SET, watched by one
 * library thread that is started by the first wait on a wall deadline.
 * If that thread (or its descriptors) cannot be had, waits still end at
 * their deadlines but miss changes of the system time until a later wall
 * wait manages to start it.
 */
STM_API bool stm_elapsed_wall(stm_tx *tx, int64_t wall_deadline);

/* ======================================================================
 * FILE DESCRIPTORS INSIDE TRANSACTIONS
 *
 * The readiness of a file descriptor is read like a TVar, too: a body
 * that finds a socket not ready and retries sleeps until the socket is
 * ready, a TVar it read changes or a deadline it recorded comes,
 * whichever is first (GHC's threadWaitReadSTM, with deadlines and
 * watchers).  A retrying thread whose Waiter is a built-in one, on the
 * real clock, sleeps in ppoll() itself on its fds and on an eventfd that
 * TVar commits signal: an fd wakes it in one hop, as it would wake a
 * thread blocked in poll().  Otherwise (a program's own Waiter, the
 * virtual clock, more than 1024 fds in one attempt) and for watchers, one
 * library thread serves every fd of the process through one epoll
 * instance (started by the first such wait, stopped by stm_shutdown()),
 * and wakes the waiter through its Waiter.  An fd a watcher waits on costs
 * memory (about 150 bytes with its side record, and 8 per fd number in a
 * table indexed by fd), no thread and no CPU while it stays idle.  Linux
 * only.
 * ====================================================================== */

/**
 * stm_fd_ready - whether `fd` is ready for any of `events` (POLLIN,
 * POLLOUT, POLLPRI, POLLRDHUP, ... as poll(2) takes them) now.
 *
 * True if poll(2) reports any of `events`, or POLLERR, POLLHUP or
 * POLLNVAL, for `fd` at this moment (so a wait never outlives its fd: the
 * caller finds out what happened by reading, writing or getsockopt(2)
 * SO_ERROR); also true for a negative `fd` and if poll() itself fails.
 * Otherwise false, and the interest is kept in the attempt (like a
 * deadline stm_elapsed() found not come; a discarded stm_or_else()
 * branch keeps it too): if the attempt then calls stm_retry(), the thread
 * also wakes when `fd` becomes ready for `events` or has an error or
 * hang-up, and the body runs again.  A retry waiting on an fd alone does
 * not fail with -EDEADLK.  In a watcher's `fn`, false also makes the
 * library run the watcher again, in a transaction of its own on the
 * library's timer pool (the fd thread hands it over; see WATCHERS, "Runs
 * of a watcher's own"), once `fd` is ready; a watcher that no longer asks about an fd may still be run once
 * more when it becomes ready.  A watcher whose `cb` consumes what made the
 * fd ready (reads the data) should also write a TVar that `fn` reads, so
 * that `fn` runs again in the same commit and asks again.
 *
 * The answer is not a snapshot: two calls in one attempt may differ, and
 * nothing is validated at commit.  (The attempt that runs right after a
 * wait that the fd's readiness ended may answer from the poll that ended
 * it, with no second system call; only that attempt does.)  Reading or
 * writing the fd belongs outside the transaction (or in
 * stm_after_commit()/stm_defer()), since a body may run more than once.
 *
 * Closed fds: an fd closed before the call is POLLNVAL (true); one closed
 * between the call and the wait makes the retry run the body again at
 * once (which then sees POLLNVAL).  Closing an fd with close(2) while a
 * thread waits on it does NOT wake that thread, nor does it run a watcher
 * waiting on it (the kernel tells nobody: poll() in another thread does
 * not notice a close either): close such an fd with stm_fd_close(), which
 * ends those waits, so that they see POLLNVAL.  Waits on an fd closed
 * with close(2) end later, when any transaction asks about the number
 * and sees POLLNVAL, or when it is asked about again for a new file (then
 * they see the new file).  Regular files are always ready (poll(2)).
 *
 * Errors: if the fd cannot be added to epoll for want of memory or of
 * epoll watches (/proc/sys/fs/epoll/max_user_watches), the retry fails
 * and stm_atomically() returns -ENOMEM or -ENOSPC; if the fd thread
 * cannot be started, the error of pthread_create() (-EAGAIN).  Memory for
 * the interest: the attempt is discarded with -ENOMEM.  Works with every
 * Waiter backend (the fd thread calls its notify); on the virtual clock
 * deadlines stay virtual while fds are ready in real time.  Thread-safety
 * as any function taking `tx`; at most one poll() per call, O(1) (an fd
 * found closed also ends the waits on it: O(those waits)).
 * Memory: a watcher's interest in an fd takes a 64-byte heap block (the
 * allocator's header included) and about 8 to 16 bytes of the fd thread's
 * tables, for as long as the watcher waits on the fd; the kernel's epoll
 * entry comes on top.  A thread's interests live in its descriptor.
 */
STM_API bool stm_fd_ready(stm_tx *tx, int fd, short events);

/**
 * stm_fd_close - close `fd` as close(2) does, and end every wait on it.
 *
 * Use it instead of close(2) for an fd that a transaction may be waiting
 * on in stm_retry(), or a watcher's `fn` asked about with stm_fd_ready():
 * after the close, each such retry runs its body again and each such
 * watcher is run again (on the timer pool), where stm_fd_ready() on the
 * closed fd says true (POLLNVAL), at once and with every Waiter backend.
 * The fd is first taken out of the library's epoll set (so that a
 * duplicate that keeps the file open reports nothing for this number).
 *
 * Returns what close(2) returns: 0, or -1 with errno set (EBADF, EINTR,
 * EIO; on Linux the fd is closed even then, and the waits end all the
 * same).  A number that a concurrent open(2), socket(2), accept(2)... has
 * already reused by the time the waiters look again is a new file to
 * them: closing an fd that other threads still use is a race in any
 * program.  Not transactional: like close(2) it acts at once, in every
 * attempt that calls it; close from outside the transaction or from a
 * stm_defer() or stm_after_commit() callback.  Thread-safe; O(threads
 * waiting directly + the fd's interests), one lock of the fd thread and
 * one of the waiting threads' list held briefly.
 */
STM_API int stm_fd_close(int fd);
STM_API bool stm_fd_ready(stm_tx *tx, int fd, short events);

/* ======================================================================
 * HOOKS AND MEMORY INSIDE TRANSACTIONS
 * ====================================================================== */

/**
 * stm_after_commit - call `fn(arg)` after the transaction has committed.
 *
 * Runs on the committing thread, after the commit is visible to every
 * other thread, in registration order; hooks registered in an attempt that
 * is discarded are dropped.  `fn` may start new transactions.  If memory
 * for the hook list cannot be had, the transaction is discarded and
 * stm_atomically() returns -ENOMEM.
 */
STM_API void stm_after_commit(stm_tx *tx, void (*fn)(void *arg), void *arg) STM_NONNULL(2);

/**
 * stm_on_abort - call `fn(arg)` each time this attempt is discarded.
 *
 * Discarded means restarted after a conflict, abandoned by stm_retry(),
 * ended by stm_abort(), failed with -ENOMEM, or (a stm_atomically_ro()
 * attempt) fallen back to a normal transaction.  Hooks run in
 * registration order, after the attempt's writes are discarded.  When an
 * stm_or_else() branch is discarded, the hooks registered in that branch
 * run at that point, while the enclosing transaction goes on: such a hook
 * must not use the transaction.  Otherwise the hook runs outside any
 * transaction and may start new ones.  Hooks registered in an attempt that
 * commits are dropped.
 */
STM_API void stm_on_abort(stm_tx *tx, void (*fn)(void *arg), void *arg) STM_NONNULL(2);

/**
 * stm_defer - queue `fn(arg)` for the dispatcher, if the transaction
 * commits.
 *
 * Callbacks run one at a time, in commit order (a transaction that read
 * another's writes has its callbacks run after the other's; callbacks of
 * one transaction in registration order), outside any transaction: by
 * default on a library thread started with the first one, or on the
 * application's thread through stm_dispatch_fd() / stm_dispatch().  If
 * the library thread cannot be started (pthread_create() failed), the
 * commit still succeeds and its callbacks stay queued: they run at the
 * next stm_dispatch() or stm_shutdown(), or on the thread that a later
 * commit with callbacks starts.  This
 * is where a transaction's side effects go (I/O, starting a connect).
 * Dropped if the attempt (or its stm_or_else() branch) is discarded.  If
 * memory for the callback cannot be had, the transaction is discarded and
 * stm_atomically() returns -ENOMEM.  O(1).
 */
STM_API void stm_defer(stm_tx *tx, void (*fn)(void *arg), void *arg) STM_NONNULL(2);

/**
 * stm_alloc - allocate `size` bytes (malloc alignment) in a transaction.
 *
 * If the attempt is discarded, the block is freed again.  Never returns
 * NULL: if memory cannot be had, the transaction is discarded and
 * stm_atomically() returns -ENOMEM.  A size of 0 gives a unique pointer.
 * Once committed the block is ordinary malloc() memory owned by the
 * program: release it with stm_free() when transactions may still reach
 * it, or with free() when none can.
 */
STM_API void *stm_alloc(stm_tx *tx, size_t size);

/**
 * stm_free - free `ptr` (from malloc() or stm_alloc()) once it is safe.
 *
 * Nothing happens unless the transaction commits.  After the commit the
 * block is freed as soon as no running transaction can still be reading
 * it (epoch-based reclamation: typically within the next few hundred
 * commits on this thread).  A transaction that runs long holds back the
 * blocks freed after it began, until it ends; they are then freed within
 * the next few hundred commits of the freeing thread too.  NULL is a
 * harmless no-op.  O(1) amortised per block, however many are held back
 * (a reclamation pass, one per 128 frees, also looks at every thread, and
 * while some thread is outside any transaction, a pass with 512 blocks
 * waiting interrupts every CPU running the process once: membarrier()).
 */
STM_API void stm_free(stm_tx *tx, void *ptr);

/* ======================================================================
 * WATCHERS AND TIMED WATCHES
 *
 * A watcher is a function of transactional state, `fn`, and a callback,
 * `cb`, that the library keeps evaluating for you:
 *
 *   new       stm_watch_new() in a transaction that has not committed yet;
 *             nothing happens if that transaction is discarded.
 *   active    from the commit of that transaction on.  It was evaluated
 *             once in that commit (fn, then cb with the first value).
 *             From then on, every transaction that writes a TVar `fn` read
 *             on its last run runs `fn` and `cb` again, inside itself,
 *             before it commits; and if `fn` called stm_elapsed(tx, d) and
 *             got false, the library runs the watcher again, in a
 *             transaction of its own, once `d` has come.
 *   stopped   from the commit of the transaction that called
 *             stm_unwatch() on it.  `cb` is never called again, not even by a
 *             deadline that is being served at that moment; the memory is
 *             reclaimed once no transaction can still reach it.
 *
 * `fn` and `cb` run inside transactions: like any body they may run more
 * than once when an attempt restarts, and their side effects belong in
 * stm_after_commit() / stm_defer().  What `cb` writes commits atomically
 * with the change that caused the run; stm_abort() in `fn` or `cb` vetoes
 * that commit (an invariant): stm_atomically() returns the code and nothing
 * is written.  The watcher's reads are validated with the transaction's
 * own.  Watchers whose TVars were written by a callback run in the same
 * commit, in rounds: a watcher runs again when a TVar it read was written
 * since its last run, its own callback's writes included (that is how a
 * watcher moves its own next deadline).  The cascade settles when a round
 * writes nothing any watcher read; if it has not settled after
 * STM_WATCH_ROUNDS rounds the commit fails with -ELOOP.  Which watcher of
 * one round runs first is unspecified.
 *
 * Runs of a watcher's own -- started by its deadline, by an fd that `fn`
 * asked about (stm_fd_ready()), or by the retry of a failed run (below)
 * -- happen on the library's timer pool: up to one thread per online CPU,
 * at most 4 (STM_TIMER_THREADS=n in the environment, 1 to 4, sets the
 * most), started one at a time as runs come due faster than the threads
 * there are take them, and stopped by stm_shutdown().  One thread serves
 * the deadlines while it keeps up with them; the others take deadline
 * runs too once a due one has waited about a millisecond (or the thread
 * serving them is held up in a run), and runs caused by an fd at once,
 * whichever thread is free.  The pool takes the
 * runs that come due in deadline order (ties: in the order the deadlines
 * were armed), and each thread starts the runs it took in that order;
 * runs of different watchers on different threads overlap, and end and
 * commit in any order (so a run of a later deadline may start before one
 * of an earlier deadline when both had come, taken by two threads at
 * once).  The runs of its own of one watcher never overlap, whatever
 * started them: a run that finds another run of it in progress waits for
 * it to end; its deadline runs are made in the order of their deadlines.
 * (Runs inside other transactions' commits are those transactions'.)
 * Each deadline run sees stm_tx_now() >= its deadline, never less.  On
 * the virtual clock, deadline runs happen instead on the thread calling
 * stm_clock_advance(), one at a time in deadline order, each seeing its
 * deadline as stm_tx_now().  If such a run of its own is vetoed
 * (stm_abort), gives up (stm_retry: it never blocks the thread that runs
 * it) or fails (-ENOMEM, -ELOOP), its writes are discarded, the watcher
 * stays as its previous run left it, stm_stats.watch_failures counts it,
 * and it is never dropped: the library runs it again on its own after
 * STM_WATCH_RETRY_FIRST, doubling the delay with each failure in a row up
 * to STM_WATCH_RETRY_MAX (on the library's clock: virtual when that is
 * on), until a run of it commits (one of its own, or one in the commit
 * of a transaction that changed a TVar it read), and reports each failure
 * to the handler set with stm_set_watch_error_handler().  A run that reads
 * a new deadline replaces the old one; a run that reads none leaves no
 * timer behind.  Deadlines are absolute: a periodic watcher keeps its next
 * deadline in a TVar and advances it by the period (see stm_watch_new(3),
 * "every 20 ms").
 *
 * A TVar that an active watcher read on its last run must not be freed:
 * stm_unwatch() first.  stm_tvar_free() of such a TVar is diagnosed as
 * misuse (one line on standard error, then abort()) when it is called
 * outside a transaction, or when it is reclaimed.
 *
 * Memory: an active watcher takes STM_WATCH_BYTES bytes of heap (its timer
 * entry and its registration on one TVar included; the timer service adds
 * 16 to 32 bytes per armed deadline, room reserved in its heap, and as
 * much again in a bucket of its wheel for a deadline from about 1 ms to
 * 4 s ahead (a bucket keeps its room for later deadlines while any
 * watcher is left; room reserved but never used is address space, not
 * RAM); one that read n > 1 TVars keeps its
 * registrations in an array of its own, 32 * n + 16 bytes of heap besides
 * (both figures count the allocator's 16-byte chunk header, as glibc's
 * malloc has it).  Evaluating a watcher
 * allocates nothing unless the set of TVars it read changed.
 * ====================================================================== */

typedef struct stm_watch stm_watch;
/** A watcher's function: read TVars (and time), return a value. */
typedef intptr_t stm_watch_fn(stm_tx *tx, void *arg);
/** A watcher's callback: called in the same transaction with fn's value. */
typedef void stm_watch_cb(stm_tx *tx, intptr_t value, void *arg);

/** stm_watch_new() flag: call `cb` only when the value differs from the
 * last value it was given (the first run always calls it). */
enum { STM_WATCH_CHANGES_ONLY = 1 };

/** The most rounds of watcher runs one commit may take (-ELOOP beyond). */
#define STM_WATCH_ROUNDS 32

/** Heap bytes per active watcher that read at most one TVar (see above). */
#define STM_WATCH_BYTES 176

/** The first retry of a failed run of a watcher's own comes this long
 * after the failure; each failure in a row doubles it, up to
 * STM_WATCH_RETRY_MAX. */
#define STM_WATCH_RETRY_FIRST STM_MSEC(1)
#define STM_WATCH_RETRY_MAX STM_SEC(1)

/** A handler for failed watcher runs: see stm_set_watch_error_handler(). */
typedef void stm_watch_error_fn(stm_watch *w, int err, int64_t retry_at, void *arg);

/**
 * stm_set_watch_error_handler - report the failed runs of watchers that
 * no commit can report: runs of a watcher's own, started by a deadline,
 * by an fd (stm_fd_ready()) or by the retry of an earlier failure.
 *
 * `fn(w, err, retry_at, arg)` is called after each such failure, on the
 * thread that made the run (a thread of the timer pool, the fd thread
 * when the pool could not take an fd's run, or the thread in
 * stm_clock_advance()), outside any transaction, once the
 * retry is scheduled.  `err` is the code of the veto (stm_abort() in
 * `fn` or `cb`), -EAGAIN for a stm_retry(), -ENOMEM or -ELOOP; `retry_at`
 * is when the watcher will be run again on the library's clock (as
 * stm_now()): the failure's now + STM_WATCH_RETRY_FIRST * 2^(k-1) for its
 * k-th failure in a row, at most STM_WATCH_RETRY_MAX; STM_NEVER if the
 * retry could not be armed for want of memory (then only a change of what
 * it read runs it again).  A run of it that commits (of its own, or in
 * another transaction's commit) resets the count and drops a pending
 * retry.  An fd interest of its fn that could not be registered (-ENOMEM,
 * -ENOSPC, or the error of starting the fd thread, such as -EMFILE) is
 * retried the same way, and reported when its retry comes, with
 * `retry_at` that moment.  `w` is valid during the call; the handler
 * may start transactions, also one that stops `w`.  A failure of a run
 * made inside another transaction's commit is that commit's failure, and
 * is not reported here.
 *
 * NULL (the default) reports nothing; the retries happen anyway.  The
 * last call wins; `arg` belongs to the caller.  Thread-safe; O(1).
 */
STM_API void stm_set_watch_error_handler(stm_watch_error_fn *fn, void *arg);

/**
 * stm_watch_new - create a watcher, active once `tx` commits.
 *
 * `fn` must not be NULL; `cb` may be (a watcher with no callback is an
 * invariant: `fn` vetoes with stm_abort()).  `arg` is passed to both and is
 * owned by the caller: keep it alive until the watcher is stopped.
 * `flags` is 0 or STM_WATCH_CHANGES_ONLY.  The first evaluation happens
 * in `tx`'s commit, after its body; anything it fails with (a veto, -ENOMEM,
 * -ELOOP) fails `tx`.  -ENOMEM also when a watcher records a deadline and
 * the library's timer pool, which serves watcher deadlines, cannot start
 * its first thread (pthread_create() failed): the same call succeeds once threads
 * can be had again.  Returns the watcher, valid until it is stopped; if
 * `tx` is discarded the watcher is freed with it and the pointer must not
 * be used.  Never returns NULL: when memory cannot be had the transaction
 * is discarded and stm_atomically() returns -ENOMEM.  A NULL `fn` or an
 * unknown flag is misuse (one line on standard error, then abort()).
 */
STM_API stm_watch *stm_watch_new(stm_tx *tx, stm_watch_fn *fn, stm_watch_cb *cb, void *arg,
                                 unsigned flags);

/**
 * stm_atomically_watch - stm_watch_new() in a transaction of its own.
 *
 * Returns the active watcher, evaluated once (its callback has run and
 * committed).  On failure returns NULL with errno set: ENOMEM, ELOOP, or,
 * when the first evaluation vetoed with stm_abort(tx, code), -code if code
 * is a negative errno value and ECANCELED otherwise.  Must not be called
 * inside a transaction (misuse: use stm_watch_new()).
 */
STM_API stm_watch *stm_atomically_watch(stm_watch_fn *fn, stm_watch_cb *cb, void *arg,
                                        unsigned flags);

/**
 * stm_unwatch - stop the watcher `w` when `tx` commits.
 *
 * From that commit on `cb` is never called again: stm_atomically() returns
 * only once every run of `w` that had started elsewhere (another thread's
 * commit, a deadline being served) has finished.  Runs of `w` inside `tx`
 * itself after this call are skipped; a watcher may stop itself from its
 * own callback.  NULL is a harmless no-op; stopping a watcher twice (or
 * using it after its stop committed) is undefined, like a double free().
 * O(number of TVars it read).
 */
STM_API void stm_unwatch(stm_tx *tx, stm_watch *w);

/* ======================================================================
 * THE DISPATCHER AND THE APPLICATION'S EVENT LOOP
 *
 * Until stm_dispatch_fd() is called, a library thread runs deferred
 * callbacks (stm_defer()) by itself, so a program that never calls
 * stm_dispatch() still has them run.
 * ====================================================================== */

/**
 * stm_dispatch_fd - hand deferred callbacks to the application's loop.
 *
 * Stops the library's dispatcher thread (after the callback it is running,
 * if any) and returns a descriptor (an eventfd, close-on-exec and
 * non-blocking, owned by the library: do not close it) that is readable
 * while callbacks are queued; several commits make it readable once.
 * Poll it, then call stm_dispatch().  Calling it again returns the same
 * descriptor.  Any thread, also several at once: one stops the library
 * thread, the others wait until it has stopped, and all return the same
 * descriptor.  Returns -errno if no descriptor can be had, -ENOSYS where
 * there is no eventfd.  Do not call it from a deferred callback.
 */
STM_API int stm_dispatch_fd(void);

/**
 * stm_dispatch - run the queued deferred callbacks on the calling thread,
 * in commit order, until the queue is empty; returns how many ran.
 *
 * Callbacks queued while it runs are run too.  Must not be called inside a
 * transaction (misuse).  Callbacks still run one at a time, in commit
 * order, when several threads call it at once, or one calls it while the
 * library thread still runs (no stm_dispatch_fd()): the runners take turns
 * per callback, a caller waiting while another's callback runs.  On
 * return the queue was empty and no callback was running.  Called from a
 * deferred callback it returns 0 at once (the callbacks behind that one
 * run after it returns); a callback must not wait for a thread that calls
 * stm_dispatch() (deadlock).  It is a cancellation point only inside the
 * callbacks it runs: a thread cancelled in one leaves the rest queued for
 * the next caller.  O(1) per callback besides the callbacks.
 */
STM_API int stm_dispatch(void);

/* ======================================================================
 * WAITERS: HOW THREADS BLOCK
 *
 * Every blocking wait in the library (stm_retry(), deadlines) goes through
 * a Waiter: "sleep until notified or until an absolute deadline".  Each
 * thread has its own waiter, made by the backend in use at its first
 * wait.  Backends:
 *
 *   "condvar"  a mutex, a flag and pthread_cond_timedwait() on
 *              CLOCK_MONOTONIC.  The default: a wake-up is one futex call
 *              on each side (no read/write system calls, as "pipe" needs)
 *              and a timed wait needs no second thread (as "thread" does),
 *              so in bench/wake, with polling off (-s 0), its deadline
 *              lateness equals a bare clock_nanosleep(), and its retry
 *              ping-pong is as fast as any.
 *   "pipe"     an eventfd (a non-blocking, close-on-exec pipe where there
 *              is no eventfd) and ppoll() with nanosecond time-outs;
 *              drained completely after each wake-up.  One descriptor per
 *              waiting thread; if none can be had, the wait fails with
 *              -EMFILE (returned by stm_atomically()).
 *   "thread"   waits with no time-out at all; the library's timer pool
 *              (its first thread started by the first timed wait, with its timer slack set
 *              to 1 ns) notifies waiters at their deadlines.  If that
 *              thread cannot be started, a timed wait times itself (and
 *              the next one tries again): no error.
 *   user ops   any backend the program supplies (stm_set_waiter_ops()).
 *
 * Precision: a timed wait is never early: if a backend returns before the
 * deadline without being notified, the library waits again.  While it
 * makes a timed wait, the waiting thread's timer slack is set to 1 ns
 * (PR_SET_TIMERSLACK, restored afterwards) so that Linux does not add its
 * default 50 us.
 * ====================================================================== */

/**
 * A user-supplied Waiter backend.  The library calls:
 *
 *   create(ctx)          make a waiter for the calling thread (NULL with
 *                        errno set on failure: the wait then fails with
 *                        -errno);
 *   wait(w, deadline)    block until notify(w) is called or the absolute
 *                        CLOCK_MONOTONIC `deadline` (ns; STM_NEVER for
 *                        none) has passed.  Return 0 when notified (or
 *                        woken spuriously: the library copes), -ETIMEDOUT
 *                        when the deadline passed.  A notify() that came
 *                        before wait() must make it return at once;
 *   notify(w)            called from any thread, at any time while w
 *                        exists, possibly many times;
 *   destroy(w)           free it (no wait or notify is in progress).
 *
 * Only the thread that created a waiter waits on it.  `name` is what
 * stm_waiter_name() returns.  The structure is copied; `ctx` is passed to
 * create() unchanged.  notify() may be called with library locks held:
 * keep all four functions short and do not call libstm from them.  A
 * wait() result other than -ETIMEDOUT counts as a wake-up.
 *
 * Cancellation: wait() runs with the program's cancel state, so a
 * cancellation point in it (pthread_cond_wait(), poll()) is where a thread
 * blocked in stm_retry() may be cancelled; wait() must then leave the
 * waiter as destroy() expects it (pthread_cleanup_push() to release its
 * mutex, for example).  create(), destroy() and notify() run with
 * cancellation disabled.
 */
struct stm_waiter_ops {
    const char *name;
    void *(*create)(void *ctx);
    void (*destroy)(void *waiter);
    int (*wait)(void *waiter, int64_t deadline);
    void (*notify)(void *waiter);
    void *ctx;
};

/**
 * stm_set_waiter - choose a built-in backend by name: "condvar", "pipe" or
 * "thread".  Returns 0, or -EINVAL for an unknown name (or NULL).
 *
 * May be called at any time from any thread: waits already in progress
 * finish on the backend they started on; each thread switches at its next
 * wait.  The environment variable STM_WAITER chooses the backend when the
 * library starts (at the first transaction or stm_waiter_name() call),
 * unless the program has already chosen one with this function or
 * stm_set_waiter_ops(); an unknown name prints one line to stderr and
 * keeps the default.
 */
STM_API int stm_set_waiter(const char *name);

/**
 * stm_set_waiter_ops - use a user-supplied backend from now on (see
 * struct stm_waiter_ops).  Returns 0, -EINVAL if `ops` or any of its
 * functions or its name is NULL, or -ENOMEM.  The name string must stay
 * valid while the backend may be in use.
 */
STM_API int stm_set_waiter_ops(const struct stm_waiter_ops *ops);

/** stm_waiter_name - the name of the backend in use, as set. */
STM_API const char *stm_waiter_name(void);

/**
 * stm_set_wake_spin - trade CPU time for punctual deadlines.
 *
 * A thread that sleeps until a deadline wakes late by the kernel's wake-up
 * latency: a few microseconds on bare metal, tens on a loaded or virtual
 * machine (see bench/wake).  With a spin window, a timed wait sleeps only
 * until the window before its deadline and then polls its waiter (with any
 * backend) until the deadline comes, so that latency falls before the
 * deadline instead of after it.  The library's timer pool does the same
 * before each deadline it serves (watchers' deadline runs, the "thread"
 * backend).
 *
 * `ns` is one of:
 *  - STM_WAKE_SPIN_AUTO (the default): the library measures how late its
 *    timed sleeps wake and uses that (a high quantile of it plus 2 us, at
 *    most 200 us) as the window; all polling together is held to an eighth
 *    of one CPU's time on average (a wait that finds that budget spent
 *    sleeps to its deadline).  On a machine whose kernel wakes on time,
 *    this costs almost nothing.
 *  - 0: never poll; every wait sleeps to its deadline.
 *  - 1 to 10 ms: a fixed window, without a budget: each timed wait burns
 *    up to `ns` of CPU.
 *
 * The same setting governs the spin of stm_retry() before it sleeps (see
 * there): AUTO adapts it per set of TVars (at most 20 us), 0 turns it off,
 * a fixed window is used as it is for every retry.
 *
 * Returns 0, or -EINVAL for any other value.  Process-wide; applies to
 * waits that start afterwards.  Under the virtual clock nothing waits by
 * real time, so it has no effect there.  Thread-safe.
 */
#define STM_WAKE_SPIN_AUTO INT64_C(-1)
STM_API int stm_set_wake_spin(int64_t ns);

/* ======================================================================
 * THE VIRTUAL CLOCK (deterministic tests)
 *
 * Under the virtual clock, stm_now() and every transaction's now read a
 * clock that moves only when stm_clock_advance() moves it, and nothing
 * waits by real time: an hour of exponential back-off runs in
 * milliseconds, the same way every time.  stm_wall_now() and wall-clock
 * deadlines keep following the real wall clock.
 * ====================================================================== */

/**
 * stm_clock_virtual - switch to the virtual clock, reading `start`.
 *
 * Returns 0, -EALREADY if the virtual clock is already on, or -EINVAL if
 * `start` is negative.  Threads already sleeping until a real deadline
 * keep their real deadline.
 */
STM_API int stm_clock_virtual(int64_t start);

/**
 * stm_clock_advance - move the virtual clock forward by `ns` (>= 0).
 *
 * Everything that comes due runs, in deadline order (ties in the order the
 * waits began), each seeing its own deadline as its now.  They run one at
 * a time: each thread woken has settled (committed, returned from
 * stm_atomically(), or gone back to waiting) before the next is woken, and
 * a wait that a woken thread begins with a deadline within the step runs
 * in the same call.  The call returns when all of it has settled.  (What a woken
 * thread does after stm_atomically() returns is not waited for.)  Then the
 * clock reads old + ns.  Overflow clamps to STM_NEVER - 1.  A no-op when
 * the virtual clock is off or `ns` is negative.  Watchers whose deadlines
 * come due run on the calling thread, in the same order.  Call it from a
 * thread that is not itself inside a transaction, and not from a watcher
 * or a hook that such a run calls (calls from two threads take turns).
 */
STM_API void stm_clock_advance(int64_t ns);

/**
 * stm_clock_real - go back to the real clocks.
 *
 * Waits still pending are re-based: one that was d ns ahead of the virtual
 * now becomes d ns ahead of the real now.  (Deadlines that bodies keep in
 * their own TVars are plain numbers and are not changed.)  Re-basing a
 * wait loses none of its wake-ups: a commit to a TVar it waits on, even
 * one made just before the switch, still wakes it at once.  Returns 0;
 * a no-op when the virtual clock is off.
 */
STM_API int stm_clock_real(void);

/** stm_clock_is_virtual - whether the virtual clock is on. */
STM_API bool stm_clock_is_virtual(void);

/* ======================================================================
 * TRANSACTIONAL CONTAINERS
 *
 * Queues, broadcast channels and hash maps built on embedded TVars (and on
 * nothing but this header).  Every operation takes the running stm_tx and
 * is part of that transaction: it commits or is discarded with it, and
 * composes with stm_retry(), stm_or_else() and stm_atomically_until() like
 * any read or write.  Two transactions conflict only where they really
 * touch the same element; each section says exactly what conflicts with
 * what.  The containers hold intptr_t values; what a value points to is
 * the program's.
 *
 * Common rules: a NULL transaction handle or container (or output
 * pointer) is misuse (one line on standard error naming the function,
 * then abort()); the constructors return NULL with errno = ENOMEM when
 * memory cannot be had; inside a transaction, running out of memory
 * discards the attempt (stm_atomically() returns -ENOMEM).  The free
 * functions accept NULL, must be called outside any transaction, and only
 * once no other thread can use the container.
 * ====================================================================== */

/* ---- stm_queue: a FIFO queue (like GHC's TQueue / TBQueue) ---- */

typedef struct stm_queue stm_queue;

/**
 * stm_queue_new - make an empty FIFO queue of intptr_t values.
 *
 * `capacity` 0 makes it unbounded; otherwise stm_queue_push() waits while
 * it holds `capacity` items.  Returns the queue, owned by the caller until
 * stm_queue_free(), or NULL with errno set to ENOMEM.  Not transactional:
 * call it outside a transaction (or inside one, but then the queue is not
 * freed if the attempt is discarded).  A bounded queue of capacity up to
 * 1024 is a ring of `capacity` 32-byte slots allocated here (its pushes
 * and pops allocate nothing); other queues take a chunk of 32 slots (about
 * 1 KiB) per 32 items, at least one, plus about 200 bytes.
 */
STM_API stm_queue *stm_queue_new(size_t capacity) STM_WUR;

/**
 * stm_queue_free - free `q` and the items still in it (the values are
 * dropped: free what they point to first).  NULL is a no-op.  Call it
 * outside a transaction, once no thread can use `q`.  O(capacity) for a
 * ring, O(items) otherwise.
 */
STM_API void stm_queue_free(stm_queue *q);

/**
 * stm_queue_push - append `v` to `q` in transaction `tx`.
 *
 * If `q` is bounded and full, calls stm_retry(): the transaction (or the
 * stm_or_else() branch) waits until a consumer makes room.  A push that
 * starts a chunk (queues that are not a ring, once per 32 items) allocates
 * it with stm_alloc() (freed again if the attempt is discarded).  O(1).
 *
 * Conflicts: pushes conflict with each other (they write the tail).  A
 * push does not conflict with a pop from a non-empty queue.  On a bounded
 * queue, a producer reads the consumers' side only when its credit runs
 * out, about once per `capacity` pushes while consumers keep up (every
 * push while the queue stays full).
 */
STM_API void stm_queue_push(stm_tx *tx, stm_queue *q, intptr_t v);

/**
 * stm_queue_try_push - stm_queue_push() that returns false instead of
 * waiting when `q` is full; true when `v` was appended.
 */
STM_API bool stm_queue_try_push(stm_tx *tx, stm_queue *q, intptr_t v);

/**
 * stm_queue_pop - remove and return the oldest item of `q`.
 *
 * If `q` is empty, calls stm_retry(): the transaction waits until a push
 * commits (for a time limit, run it with stm_atomically_until()).  A pop
 * that leaves a chunk (once per 32 items) destroys its TVars and releases
 * it with stm_free() when the transaction commits.  O(1).
 *
 * Conflicts: pops conflict with each other (they write the head).  A pop
 * from a non-empty queue does not conflict with a push; a pop that finds
 * the queue empty is woken by the push that fills it.
 */
STM_API intptr_t stm_queue_pop(stm_tx *tx, stm_queue *q);

/**
 * stm_queue_try_pop - stm_queue_pop() that returns false (and leaves
 * `*out` alone) instead of waiting when `q` is empty; true with the item
 * in `*out` otherwise.  `out` must not be NULL (misuse).
 */
STM_API bool stm_queue_try_pop(stm_tx *tx, stm_queue *q, intptr_t *out);

/**
 * stm_queue_len - the number of items in `q`, in `tx`'s snapshot.  O(1).
 *
 * Reads both the producers' and the consumers' side, so a transaction
 * that calls it conflicts with every push and pop that commits meanwhile.
 */
STM_API size_t stm_queue_len(stm_tx *tx, stm_queue *q);

/* ---- stm_chan: a broadcast channel (GHC's TChan with dupTChan) ---- */

typedef struct stm_chan stm_chan;
typedef struct stm_chan_reader stm_chan_reader;

/**
 * stm_chan_new - make a broadcast channel of intptr_t messages.
 *
 * Every reader (stm_chan_subscribe()) receives every message sent after
 * it subscribed, in the order sent; a message sent while nobody is
 * subscribed is dropped.  Returns the channel, owned by the caller until
 * stm_chan_free(), or NULL with errno set to ENOMEM.  Not transactional.
 */
STM_API stm_chan *stm_chan_new(void) STM_WUR;

/**
 * stm_chan_free - free `ch`, its pending messages and every reader still
 * subscribed (their handles become invalid).  NULL is a no-op.  Call it
 * outside any transaction, once no thread can use `ch` or its readers.
 * O(readers + pending messages).
 */
STM_API void stm_chan_free(stm_chan *ch);

/**
 * stm_chan_send - send `v` to every current subscriber of `ch`.
 *
 * Never waits (the channel is unbounded: a reader that falls behind holds
 * the messages it has not received).  Allocates one 48-byte message with
 * stm_alloc().  O(1).
 *
 * Conflicts: sends conflict with each other (they write the tail), and
 * with subscribe and unsubscribe.  A send does not conflict with a reader
 * that has messages left to receive; it wakes a reader that waits for the
 * next message.
 */
STM_API void stm_chan_send(stm_tx *tx, stm_chan *ch, intptr_t v);

/**
 * stm_chan_subscribe - a new reader of `ch`, which receives the messages
 * sent after `tx` commits (in `tx`'s serialisation order), in order.
 *
 * The reader is allocated with stm_alloc() (freed again if the attempt is
 * discarded) and belongs to the caller until stm_chan_unsubscribe() (or
 * stm_chan_free()).  O(1).  Conflicts with sends, subscribes and
 * unsubscribes of `ch` that commit meanwhile.
 */
STM_API stm_chan_reader *stm_chan_subscribe(stm_tx *tx, stm_chan *ch) STM_WUR;

/**
 * stm_chan_recv - the next message for reader `r`.
 *
 * If `r` has received everything sent so far, calls stm_retry(): the
 * transaction waits for the next send (for a time limit, use
 * stm_atomically_until()).  A message that every reader has received is
 * released (stm_free()) by the last of them, so memory stays flat as long
 * as readers keep up.  O(1).
 *
 * Conflicts: a reader writes only its own position and the count of
 * readers still to pass the message it leaves, so two readers conflict
 * only when they leave the same message at the same time; a reader with
 * messages left does not conflict with senders.
 */
STM_API intptr_t stm_chan_recv(stm_tx *tx, stm_chan_reader *r);

/**
 * stm_chan_try_recv - stm_chan_recv() that returns false (and leaves
 * `*out` alone) instead of waiting; true with the message in `*out`
 * otherwise.  `out` must not be NULL (misuse).
 */
STM_API bool stm_chan_try_recv(stm_tx *tx, stm_chan_reader *r, intptr_t *out);

/**
 * stm_chan_unsubscribe - end reader `r` when `tx` commits; the messages
 * it had not received are released as if it had.  `r` must not be used
 * afterwards (its memory goes with stm_free()).  NULL is a no-op.
 * O(messages `r` had not received + readers of the channel); conflicts
 * with every reader receiving one of those messages meanwhile, and with
 * sends, subscribes and unsubscribes.
 */
STM_API void stm_chan_unsubscribe(stm_tx *tx, stm_chan_reader *r);

/* ---- stm_map: a hash map (like stm-containers' Map, ScalaSTM's TMap) ---- */

typedef struct stm_map stm_map;

/**
 * How an stm_map compares keys that are not plain integers (string keys,
 * say): `hash` returns the same value for keys that are `equal`.  Both
 * must be pure functions, safe to call from any thread at any time (they
 * run inside transactions, possibly on data a discarded attempt read).
 */
struct stm_map_ops {
    uint64_t (*hash)(intptr_t key);
    bool (*equal)(intptr_t a, intptr_t b);
};

/**
 * stm_map_new - make an empty hash map from intptr_t keys to intptr_t
 * values.
 *
 * With `ops` NULL, keys are compared as integers (and hashed with a
 * good 64-bit mixer); otherwise `ops` says how (the structure is copied;
 * both functions must be non-NULL).  Returns the map, owned by the caller
 * until stm_map_free(), or NULL with errno set to ENOMEM, or to EINVAL
 * when `ops` lacks a function.  Keys and values are the program's: the
 * map stores them and frees neither.  About 1.3 KiB empty; each key takes
 * a 48-byte node, and the table 16 bytes per bucket (about a bucket per
 * key at most: the table doubles past two keys per bucket).
 */
STM_API stm_map *stm_map_new(const struct stm_map_ops *ops) STM_WUR;

/**
 * stm_map_free - free `m`, its tables and every node (not what keys and
 * values point to).  NULL is a no-op.  Call it outside any transaction,
 * once no thread can use `m`.  O(keys + buckets).
 */
STM_API void stm_map_free(stm_map *m);

/**
 * stm_map_get - look `key` up in `m`: true with its value in `*value`
 * (`value` may be NULL to test presence only), or false if it is absent
 * (`*value` left alone).  Writes nothing, so it may be used in
 * stm_atomically_ro() bodies.  O(1) on average.
 */
STM_API bool stm_map_get(stm_tx *tx, stm_map *m, intptr_t key, intptr_t *value);

/**
 * stm_map_put - set `key` to `value` in `m`; returns true if the key was
 * new, false if an existing value was replaced.  A new key takes one node
 * from stm_alloc() (freed again if the attempt is discarded).  O(1) on
 * average.
 */
STM_API bool stm_map_put(stm_tx *tx, stm_map *m, intptr_t key, intptr_t value);

/**
 * stm_map_del - remove `key` from `m`; returns true if it was there.  Its
 * node is released with stm_free() when the transaction commits.  O(1) on
 * average.
 */
STM_API bool stm_map_del(stm_tx *tx, stm_map *m, intptr_t key);

/**
 * stm_map_len - the number of keys in `m`, in `tx`'s snapshot.
 *
 * The size is kept in 16 striped counters (one per thread, threads beyond
 * 16 share), so writers never meet on it; this function reads them all,
 * and so conflicts with every insert and delete that commits meanwhile.
 * O(1) (16 reads).
 */
STM_API size_t stm_map_len(stm_tx *tx, stm_map *m);

/** An iteration over an stm_map; the fields are private.  Set it up with
 * stm_map_iter_init(), inside the transaction body that uses it. */
typedef struct stm_map_iter {
    uintptr_t stm__private[3];
} stm_map_iter;

/**
 * stm_map_iter_init - start an iteration: the next stm_map_next() returns
 * the first key.  `it` must not be NULL (misuse).
 */
STM_API void stm_map_iter_init(stm_map_iter *it);

/**
 * stm_map_next - the next key of `m` (and its value) in the iteration
 * `it`: true with the key in `*key` and the value in `*value` (either
 * pointer may be NULL), or false when every key has been returned.
 *
 * The order is unspecified.  Within one transaction the iteration sees
 * the transaction's snapshot: each key exactly once.  Use `it` in one
 * transaction only (initialise it inside the body, which may run again),
 * and do not put or delete keys of `m` between its first and last call
 * (the result is then unspecified, though memory-safe).  A full
 * iteration reads every bucket, and the value of every key it returns
 * (when `value` is not NULL), so it conflicts with every insert and delete
 * (and such value update) that commits meanwhile: keep iterations for
 * audits and snapshots, not hot paths.  O(keys + buckets) for the whole
 * iteration.
 */
STM_API bool stm_map_next(stm_tx *tx, stm_map *m, stm_map_iter *it, intptr_t *key,
                          intptr_t *value);

/* ======================================================================
 * STATISTICS, DIAGNOSTICS, SHUTDOWN
 * ====================================================================== */

/** Counters summed over all threads, since start-up or stm_shutdown()
 * (which resets the counts of every thread, also of threads still alive). */
struct stm_stats {
    uint64_t commits;          /* transactions committed (read-only included) */
    uint64_t aborts;           /* attempts discarded, all reasons (also a
                                  stm_atomically_ro() attempt that fell back) */
    uint64_t retries;          /* stm_retry() calls that blocked or restarted */
    uint64_t wakeups;          /* threads woken from stm_retry() by a commit
                                  (or that saw it while spinning before the
                                  sleep) */
    uint64_t watch_runs;       /* watcher functions run (discarded attempts too) */
    uint64_t timer_fires;      /* timed waits that ended at their deadline */
    uint64_t aborts_conflict;  /* of aborts: a read found a TVar changed or locked */
    uint64_t aborts_validate;  /* of aborts: commit-time validation or locking failed */
    uint64_t aborts_explicit;  /* of aborts: stm_abort() */
    uint64_t aborts_nomem;     /* of aborts: -ENOMEM */
    uint64_t serial_runs;      /* transactions run in serial mode */
    uint64_t reclaimed;        /* blocks and TVars freed by deferred reclamation */
    uint64_t watch_failures;   /* runs of watchers' own (deadline, fd, retry) that failed */
};

/**
 * stm_stats_get - fill `out` with the current counters.
 *
 * The sum is not a consistent snapshot while other threads run
 * transactions (each counter is exact on its own).  O(threads).
 */
STM_API void stm_stats_get(struct stm_stats *out) STM_NONNULL(1);

/**
 * stm_strerror - a static English string naming `err`, a negative errno
 * value returned by the library (positive values are accepted too).
 * Never returns NULL.
 */
STM_API const char *stm_strerror(int err);

/**
 * stm_shutdown - free everything the library holds.
 *
 * Runs the deferred callbacks still queued, stops the library's threads
 * (the dispatcher, the timer pool's threads -- each finishes the runs it
 * has taken --, the wall-clock watcher, the fd thread of stm_fd_ready()),
 * reclaims every deferred block and TVar still pending and frees this
 * thread's descriptor, so that a program can exit valgrind-clean.  Call it
 * when no other thread is using the library, and not inside a transaction
 * (misuse).  The library may be used again afterwards (it starts afresh:
 * stm_stats_get() counts from zero, for threads alive across the call
 * too).
 *
 * Watchers, like TVars, are the program's: stop them with stm_unwatch()
 * first.  One still active keeps running inside the commits that write
 * its TVars, but a deadline it waits for is served only once the timer
 * pool has started again (with the next deadline a watcher arms, or the
 * next timed wait of the "thread" backend), and an fd it waits for once
 * the fd thread has (with the next fd interest of a watcher, or the next
 * wait on an fd that uses it).
 *
 * STM_STATS=1 in the environment (read at the first transaction) prints
 * the statistics, and the named TVars that caused the most conflicts, to
 * standard error once: at stm_shutdown(), or at exit if that comes first.
 */
STM_API void stm_shutdown(void);

/* ======================================================================
 * FORK
 *
 * A process that uses the library may fork(), and the child may use it.
 * pthread_atfork() handlers, registered when the library starts, make the
 * fork wait for a stm_clock_advance() in progress and for the
 * transactions running on other threads (new ones wait at their start),
 * and take the library's locks: the child inherits no lock held and no
 * commit half done.  In the child, the library's own threads (dispatcher,
 * timer pool, wall-clock monitor) start again when needed (the timer pool
 * at once if watchers have deadlines armed or runs due, including those
 * the parent's pool had taken and not begun); deferred callbacks the parent
 * had queued are run by the parent only; a stm_dispatch_fd() descriptor
 * keeps its number but is the child's own.  Other threads' waits are gone
 * in the child; their descriptors stay, idle (a little memory, and with
 * the "pipe" Waiter one descriptor per such thread).  Do not fork() inside
 * a transaction, a hook, a watcher or a deferred callback, nor while
 * stm_set_waiter_ops() or stm_tvar_set_name() runs on another thread.
 * See stm(7), FORK.
 * ====================================================================== */

#ifdef __cplusplus
}
#endif

#endif /* STM_H */
