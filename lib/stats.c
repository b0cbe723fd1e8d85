/*
 * stats.c - counters, stm_stats_get and the STM_STATS=1 report.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Each thread counts in its own descriptor (single writer, relaxed
 * atomics, no read-modify-write); readers sum over the registry.  When a
 * descriptor goes away its counts are folded into `gone`.
 *
 * stm_shutdown() starts the counts afresh, also for threads that are alive
 * then (idle, as it requires).  It cannot zero their counters, which only
 * their owners write, so it records what each one holds in the
 * descriptor's st_base, and everything reports counter - base.  Base and
 * the sums are under stm__reg_lock; a counter never goes down, and a
 * reader that takes the lock after the reset sees at least the value the
 * reset read (coherence), so the difference never wraps.  The count of
 * blocks reclaimed from no live descriptor gets a base of its own.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "stm-internal.h"

static struct stm_stats gone; /* under stm__reg_lock */
static uint64_t orphans_base; /* likewise: stm__reclaimed_orphans() at the reset */

#define FIELDS(X)                                                                                  \
    X(commits) X(aborts) X(retries) X(wakeups) X(aborts_conflict) X(aborts_validate)               \
        X(aborts_explicit) X(aborts_nomem) X(serial_runs) X(reclaimed) X(timer_fires)            \
            X(watch_runs) X(watch_failures)

/* out += counts since the base; stm__reg_lock held */
static void add(struct stm_stats *out, struct stm__counters *c, const struct stm_stats *base)
{
#define ADD(f) out->f += atomic_load_explicit(&c->f, memory_order_relaxed) - base->f;
    FIELDS(ADD)
#undef ADD
}

void stm__stats_fold(struct stm_tx *tx)
{
    add(&gone, &tx->st, &tx->st_base);
}

STM_API void stm_stats_get(struct stm_stats *out)
{
    if (out == NULL)
        stm__misuse("stm_stats_get", "the output pointer is NULL");
    pthread_mutex_lock(&stm__reg_lock);
    *out = gone;
    for (struct stm_tx *t = stm__reg_head; t; t = t->reg_next)
        add(out, &t->st, &t->st_base);
    out->reclaimed += stm__reclaimed_orphans() - orphans_base;
    pthread_mutex_unlock(&stm__reg_lock);
}

void stm__stats_reset(void)
{
    pthread_mutex_lock(&stm__reg_lock);
    memset(&gone, 0, sizeof gone);
    for (struct stm_tx *t = stm__reg_head; t; t = t->reg_next) {
#define BASE(f) t->st_base.f = atomic_load_explicit(&t->st.f, memory_order_relaxed);
        FIELDS(BASE)
#undef BASE
    }
    orphans_base = stm__reclaimed_orphans();
    pthread_mutex_unlock(&stm__reg_lock);
}

void stm__stats_atexit(void)
{
    static _Atomic bool printed;
    if (atomic_exchange(&printed, true))
        return;
    struct stm_stats s;
    stm_stats_get(&s);
    fprintf(stderr,
            "libstm: commits %llu, aborts %llu (conflict %llu, validate %llu, explicit %llu, "
            "nomem %llu), retries %llu, wakeups %llu, timer fires %llu, serial runs %llu, "
            "reclaimed %llu, watcher runs %llu (deadline runs failed %llu)\n",
            (unsigned long long)s.commits, (unsigned long long)s.aborts,
            (unsigned long long)s.aborts_conflict, (unsigned long long)s.aborts_validate,
            (unsigned long long)s.aborts_explicit, (unsigned long long)s.aborts_nomem,
            (unsigned long long)s.retries, (unsigned long long)s.wakeups,
            (unsigned long long)s.timer_fires, (unsigned long long)s.serial_runs, (unsigned long long)s.reclaimed,
            (unsigned long long)s.watch_runs, (unsigned long long)s.watch_failures);
    stm__names_report(stderr);
}
