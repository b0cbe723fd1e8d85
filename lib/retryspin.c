/*
 * retryspin.c - stm_retry() watches what it read for a moment before it
 * sleeps.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * In a hand-off (a consumer retrying on an empty queue, a producer on a
 * full one) the change a retry waits for often comes within a microsecond
 * or two, while a sleep and its wake-up cost the waker a futex call and
 * the sleeper a trip through the scheduler: tens of microseconds on a
 * virtual machine.  So before it registers, a retrying transaction polls
 * the lock words of what it read (stm__retry_changed) for a short window;
 * if one moves it runs the body again at once.  Nothing is registered
 * while it polls, so a committer finds no STM__WT flag and wakes nobody;
 * after the window the usual protocol of retry.c runs unchanged (register,
 * flag, look again, sleep), so the spin cannot lose a wake-up: it only
 * comes before it.
 *
 * The window adapts per TVar set (keyed by the first TVar the attempt
 * read; a few sets per thread, replaced round-robin on a miss):
 *  - a spin that saw the change doubles the window, or widens it to four
 *    times the wait it saw if that is more (at most WINDOW_MAX);
 *  - a spin that gave up halves it; below WINDOW_MIN spinning is off for
 *    the set: the next retries sleep at once, and only every `backoff`-th
 *    probes with WINDOW_MIN again (backoff doubles with each probe that
 *    fails, up to BACKOFF_MAX, and resets when one pays).
 * So a set whose changes come late (an idle queue) costs at most a few
 * windows of CPU, then about WINDOW_MIN per BACKOFF_MAX sleeps.
 *
 * stm_set_wake_spin() governs it too: 0 turns it off, a fixed window is
 * used as it is (no adapting), STM_WAKE_SPIN_AUTO adapts.  Not under the
 * virtual clock, in serial mode (the spinner would hold up every other
 * transaction), or when the attempt waits on fds or the wall clock (no TVar
 * tells of those); a spin stops early when another thread wants to run a
 * serial transaction (which waits for this one to leave its epoch).
 */
#include "stm-internal.h"

#define WINDOW_MAX STM_USEC(20)
#define WINDOW_START STM_USEC(8)
#define WINDOW_MIN 500 /* ns */
#define BACKOFF_FIRST 8
#define BACKOFF_MAX 1024
#define PAUSE_MAX 8 /* cpu_relax()es between looks, at most (~0.25 us here) */

static unsigned set_of(struct stm__rspin *r, const void *key)
{
    unsigned free_slot = STM__RSPIN_SETS;
    for (unsigned i = 0; i < STM__RSPIN_SETS; i++) {
        if (r->set[i].key == key)
            return i;
        if (r->set[i].key == NULL && free_slot == STM__RSPIN_SETS)
            free_slot = i;
    }
    unsigned i = free_slot;
    if (i == STM__RSPIN_SETS) { /* replace one, round-robin */
        i = (unsigned)(r->paid + r->gave_up + r->skipped) % STM__RSPIN_SETS;
    }
    r->set[i].key = key;
    r->set[i].window = WINDOW_START;
    r->set[i].skip = 0;
    r->set[i].backoff = BACKOFF_FIRST;
    return i;
}

bool stm__retry_spin(struct stm_tx *tx, int64_t deadline)
{
    struct stm__rspin *r = &tx->rspin;
    int64_t mode = stm__spin_mode();
    if (mode == 0 || tx->rn == 0 || tx->serial || tx->fdn.n != 0 || tx->wall_deadline < STM_NEVER ||
        atomic_load_explicit(&stm__g.virtual_on, memory_order_acquire)) {
        r->skipped++;
        return false;
    }
    unsigned k = STM__RSPIN_SETS;
    int64_t window = mode;
    if (mode == STM_WAKE_SPIN_AUTO) {
        k = set_of(r, tx->rs[0].var);
        window = r->set[k].window;
        if (window == 0) {
            if (r->set[k].skip > 0) {
                r->set[k].skip--;
                r->skipped++;
                return false;
            }
            window = WINDOW_MIN; /* a probe */
        }
    }
    int64_t t0 = stm__mono_ns(), now = t0;
    int64_t end = stm__sat_add(t0, window);
    bool cut = deadline < end; /* the deadline ends the spin, not the window */
    if (cut)
        end = deadline;
    if (end <= t0) {
        r->skipped++;
        return false;
    }
    bool changed = false;
    unsigned pause = 1;
    while (now < end) {
        if ((changed = stm__retry_changed(tx)))
            break;
        /* look less and less often (up to PAUSE_MAX): each look takes the
         * cache line of what it watches from the writer about to change it */
        for (unsigned j = 0; j < pause; j++)
            stm__cpu_relax();
        if (pause < PAUSE_MAX)
            pause *= 2;
        now = stm__mono_ns();
        /* a serial transaction waits for this one to leave its epoch */
        if (atomic_load_explicit(&stm__g.serial, memory_order_relaxed)) {
            cut = true;
            break;
        }
    }
    if (changed)
        r->paid++;
    else
        r->gave_up++;
    if (k == STM__RSPIN_SETS || (cut && !changed))
        return changed; /* a fixed window, or no verdict on this one */
    /* (cut: ended by the deadline or by a serial transaction) */
    if (changed) {
        int64_t want = 2 * (int64_t)r->set[k].window;
        if (want < 4 * (now - t0))
            want = 4 * (now - t0);
        if (want < WINDOW_MIN)
            want = WINDOW_MIN;
        r->set[k].window = (int32_t)(want < WINDOW_MAX ? want : WINDOW_MAX);
        r->set[k].backoff = BACKOFF_FIRST;
    } else if (r->set[k].window == 0) { /* a probe that failed */
        r->set[k].skip = r->set[k].backoff;
        if (r->set[k].backoff < BACKOFF_MAX)
            r->set[k].backoff *= 2;
    } else {
        r->set[k].window /= 2;
        if (r->set[k].window < WINDOW_MIN) {
            r->set[k].window = 0;
            r->set[k].skip = r->set[k].backoff;
        }
    }
    return changed;
}
