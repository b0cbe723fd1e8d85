/*
 * clock.c - time sources: monotonic and wall clocks in nanoseconds.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <time.h>

#include "stm-internal.h"

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

STM_API int64_t stm_now(void)
{
    return ns_of(CLOCK_MONOTONIC);
}

STM_API int64_t stm_wall_now(void)
{
    return ns_of(CLOCK_REALTIME);
}
