/*
 * fork.c - fork(): the child of a process that uses libstm can use it too.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * pthread_atfork() handlers, registered when the library starts.  Before
 * the fork the forking thread waits for a stm_clock_advance() in
 * progress, stops every transaction the way serial mode does (new ones
 * wait at their start; running ones finish), and takes the library's
 * locks, so the child inherits no lock held and no commit half done.
 * The parent then goes on as before.  The child has only the forking
 * thread: it forgets the library's threads (dispatcher, timer, wall-clock
 * monitor, fd reactor), which start again when needed (the reactor with
 * an epoll set of its own, the parent's being shared with the parent), and the waits of the other
 * threads; their descriptors stay, idle, with waiters that do nothing
 * (commits may still find their wait nodes).
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "stm-internal.h"

static void prepare(void)
{
    stm__vclock_fork(STM__FORK_PREPARE_OUTER);
    stm__serial_fork(STM__FORK_PREPARE);
    stm__vclock_fork(STM__FORK_PREPARE);
    stm__dispatch_fork(STM__FORK_PREPARE);
    stm__timer_fork(STM__FORK_PREPARE);
    stm__reactor_fork(STM__FORK_PREPARE);
    stm__wallclock_fork(STM__FORK_PREPARE);
    stm__thread_fork(STM__FORK_PREPARE);
    stm__retry_fork(STM__FORK_PREPARE);
}

static void finish(int phase)
{
    stm__retry_fork(phase);
    stm__thread_fork(phase);
    stm__wallclock_fork(phase);
    stm__reactor_fork(phase);
    stm__timer_fork(phase);
    stm__dispatch_fork(phase);
    stm__vclock_fork(phase);
    stm__serial_fork(phase);
}

static void parent(void)
{
    finish(STM__FORK_PARENT);
}

static void child(void)
{
    finish(STM__FORK_CHILD);
}

void stm__fork_init(void)
{
    /* Without the handlers (ENOMEM) a child is as without this file. */
    (void)pthread_atfork(prepare, parent, child);
}
