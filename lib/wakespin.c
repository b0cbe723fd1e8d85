/*
 * wakespin.c - punctual deadlines: how long a timed wait polls before its
 * deadline instead of sleeping through the kernel's wake-up latency.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * A thread that sleeps to a deadline wakes late by the kernel's wake-up
 * latency: a few microseconds on bare metal with the timer slack at 1 ns,
 * tens on a virtual machine.  A wait that sleeps until `window` before its
 * deadline and polls the rest is on time, at the cost of up to `window` of
 * CPU.  stm_set_wake_spin() fixes the window, or turns polling off; the
 * default, STM_WAKE_SPIN_AUTO, learns it:
 *
 *  - every timed sleep that ends by timing out reports how late it woke;
 *    the estimate follows a high quantile of those (it climbs a quarter of
 *    the way to a later sample and sinks a 32nd of the way to an earlier
 *    one), and the window is the estimate plus 2 us, at most
 *    STM__SPIN_AUTO_MAX;
 *  - polling is paid from a budget that grows at 1/8 of real time and
 *    holds at most 20 ms: all the threads of the process together poll at
 *    most an eighth of one CPU's time on average.  A wait that finds the
 *    budget short sleeps to its deadline instead.
 *
 * Both run under one mutex, taken a couple of times per timed wait.
 */
#include <errno.h>
#include <pthread.h>

#include "stm-waiter.h"

#define SPIN_MARGIN STM_USEC(2)
#define SAMPLE_MAX STM_MSEC(1) /* a later wake-up was a preemption */
#define BUDGET_MAX STM_MSEC(20)
#define BUDGET_SHARE 8 /* 1/8 of real time */

static _Atomic int64_t mode = STM_WAKE_SPIN_AUTO; /* stm_set_wake_spin() */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct stm__spin state;

void stm__spin_learn(struct stm__spin *s, int64_t late)
{
    if (late < 0)
        late = 0;
    if (late > SAMPLE_MAX)
        late = SAMPLE_MAX;
    if (late > s->est)
        s->est += (late - s->est + 3) / 4;
    else
        s->est -= (s->est - late) / 32;
    s->samples++;
}

int64_t stm__spin_window_of(const struct stm__spin *s)
{
    if (s->samples == 0)
        return 0;
    int64_t w = s->est + SPIN_MARGIN;
    return w < STM__SPIN_AUTO_MAX ? w : STM__SPIN_AUTO_MAX;
}

bool stm__spin_charge(struct stm__spin *s, int64_t now, int64_t ns)
{
    if (s->last == 0 || now < s->last) {
        s->last = now;
        s->tokens = BUDGET_MAX;
    }
    s->tokens += (now - s->last) / BUDGET_SHARE;
    if (s->tokens > BUDGET_MAX)
        s->tokens = BUDGET_MAX;
    s->last = now;
    if (ns > s->tokens)
        return false;
    s->tokens -= ns;
    return true;
}

int64_t stm__spin_window(void)
{
    int64_t m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m != STM_WAKE_SPIN_AUTO)
        return m;
    pthread_mutex_lock(&lock);
    int64_t w = stm__spin_window_of(&state);
    pthread_mutex_unlock(&lock);
    return w;
}

bool stm__spin_start(int64_t now, int64_t ns)
{
    if (atomic_load_explicit(&mode, memory_order_relaxed) != STM_WAKE_SPIN_AUTO)
        return true;
    pthread_mutex_lock(&lock);
    bool ok = stm__spin_charge(&state, now, ns);
    pthread_mutex_unlock(&lock);
    return ok;
}

void stm__spin_sample(int64_t asked, int64_t woke)
{
    pthread_mutex_lock(&lock);
    stm__spin_learn(&state, woke - asked);
    pthread_mutex_unlock(&lock);
}

struct stm__spin stm__spin_state(void)
{
    pthread_mutex_lock(&lock);
    struct stm__spin s = state;
    pthread_mutex_unlock(&lock);
    return s;
}

int64_t stm__spin_mode(void)
{
    return atomic_load_explicit(&mode, memory_order_relaxed);
}

STM_API int stm_set_wake_spin(int64_t ns)
{
    if (ns != STM_WAKE_SPIN_AUTO && (ns < 0 || ns > STM_MSEC(10)))
        return -EINVAL;
    atomic_store(&mode, ns);
    return 0;
}
