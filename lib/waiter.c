/*
 * waiter.c - the Waiter interface: how every blocking wait sleeps.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * One backend for now (condvar); the registry of named and user-supplied
 * backends belongs here as they are added.
 */
#define _GNU_SOURCE
#include "stm-internal.h"

struct stm__waiter *stm__waiter_create(void)
{
    return stm__waiter_condvar_ops.create();
}
