/*
 * clock.c - time sources: monotonic and wall clocks in nanoseconds.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * stm_now() reads the virtual clock while it is on (vclock.c).  The wall
 * clock can be shifted by a hidden test hook, which then behaves like a
 * real change of the system time (wallclock.c).
 */
#define _GNU_SOURCE
#include <time.h>

#include "stm-internal.h"

_Atomic int64_t stm__wall_shift_ns;

static int64_t ns_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

int64_t stm__mono_ns(void)
{
    return ns_of(CLOCK_MONOTONIC);
}

int64_t stm__wall_ns(void)
{
    return ns_of(CLOCK_REALTIME) + atomic_load_explicit(&stm__wall_shift_ns, memory_order_relaxed);
}

STM_API int64_t stm_now(void)
{
    return stm__now();
}

STM_API int64_t stm_wall_now(void)
{
    return stm__wall_ns();
}
