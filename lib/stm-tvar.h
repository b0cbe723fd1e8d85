/*
 * stm-tvar.h - TVars: the lock word, its flags, the side record and
 * the wait nodes of retrying threads (tvar.c, tvar_ext.c, retry.c; never
 * installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_TVAR_H
#define STM_TVAR_H

#include "stm-base.h"

struct stm_tx;
struct stm__waiter;

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
/* STM__BODY (bit 62, with bit 0): locked by a transaction's write while
 * its body runs (encounter-time locking: STM__HELD in stm-tx.h).  The
 * rest of the word is the unlocked word it replaced, never with flags:
 * the value is still the committed one, and readers take the word as
 * that unlocked word (stm__lock_seen).  Only the holder changes it: its
 * commit makes it an ordinary locked word (entry | 1) before the clock
 * moves and the value changes, and any other end of the attempt puts the
 * unlocked word back.  Writers, waiters and the making of a side record
 * treat it as locked. */
#define STM__BODY ((uintptr_t)1 << 62)
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
/* The lock word l as a reader takes it: a word held by a body (STM__BODY)
 * is the unlocked word it hides; any other word is itself. */
static inline uintptr_t stm__lock_seen(uintptr_t l)
{
    return (l & STM__BODY) ? l & ~(STM__BODY | 1) : l;
}
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

/* var, whose lock word `l` is locked, is held by the calling thread's
 * running attempt since a write (STM__HELD, stm-tx.h): let it go (its
 * commit will lock it); true if so, false if someone else holds it (then
 * wait, as before).  (tx.c) */
bool stm__unhold_own(stm_tvar *var, uintptr_t l);

void stm__tvar_reclaim(stm_tvar *var); /* final free, after the grace period */
/* stm_tvar_destroy()'s work: its record goes to tx's limbo, stamped */
void stm__tvar_destroy_now(struct stm_tx *tx, stm_tvar *var, uint64_t stamp);
void stm__tvar_freed(stm_tvar *var); /* stm_tvar_free takes effect: wake waiters */
void stm__names_report(void *file);  /* FILE *: named TVars by conflicts */
void stm__names_clear(void);

#endif
