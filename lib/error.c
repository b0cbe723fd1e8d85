/*
 * error.c - stm_strerror and misuse diagnostics.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "stm-internal.h"

STM_API const char *stm_strerror(int err)
{
    switch (err == INT_MIN ? INT_MAX : err < 0 ? -err : err) { /* INT_MIN: unknown */
    case 0:
        return "success";
    case ENOMEM:
        return "out of memory";
    case EDEADLK:
        return "retry with nothing to wait for (no TVar read, no deadline recorded)";
    case ETIMEDOUT:
        return "deadline passed";
    case EINVAL:
        return "invalid argument";
    case ELOOP:
        return "watcher cascade did not settle";
    case EMFILE:
        return "too many open files";
    case EAGAIN:
        return "resource temporarily unavailable";
    case ECANCELED:
        return "cancelled (a watcher vetoed the commit)";
    default:
        return "unknown error";
    }
}

_Noreturn void stm__misuse(const char *func, const char *what)
{
    fprintf(stderr, "libstm: %s: %s\n", func, what);
    fflush(stderr);
    abort();
}

_Noreturn void stm__check_tx_slow(struct stm_tx *tx, const char *func)
{
    /* a declared read-only attempt (stm__ro is never NULL): fall back to
     * a normal transaction (readonly.c) */
    if (tx == stm__ro)
        stm__jump(tx, STM__JUMP_FALLBACK);
    if (tx == NULL)
        stm__misuse(func, "called outside a transaction (the stm_tx handle is NULL)");
    if (tx != stm__self)
        stm__misuse(func, "the stm_tx handle belongs to another thread");
    stm__misuse(func, "called outside a transaction (the stm_tx handle is stale: its "
                      "transaction has ended)");
}
