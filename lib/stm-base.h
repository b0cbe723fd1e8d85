/*
 * stm-base.h - the bottom layer of the private headers: compiler and
 * sanitizer macros, the restart jump, cancellation, the real clocks and
 * memory.  Every other slice includes it (never installed).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#ifndef STM_BASE_H
#define STM_BASE_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STM__LIB_INTERNAL 1 /* stm.h: the TVar's fields by their own names */
#include "stm.h"

#define STM__LIKELY(x) __builtin_expect(!!(x), 1)
#define STM__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define STM__CACHELINE 64

#if defined(__has_feature)
#define STM__HAS_FEATURE(x) __has_feature(x)
#else
#define STM__HAS_FEATURE(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || STM__HAS_FEATURE(thread_sanitizer)
#define STM__TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__) || STM__HAS_FEATURE(address_sanitizer)
#define STM__ASAN 1
#endif

static inline void stm__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- restarting a body ------------------------------------------------
 * A conflict leaves the body by a non-local jump back into stm_atomically
 * (or stm_or_else).  On x86-64 with GCC or Clang, __builtin_setjmp saves
 * three words and needs no call, against glibc's sigsetjmp (a call, eight
 * mangled registers and a second call to decide about the signal mask).
 * The sanitizers intercept siglongjmp to fix their shadow stacks, so their
 * builds use it.
 *
 * An application built with AddressSanitizer may link this library built
 * without it: the frames the jump skips are the application's, and their
 * stack redzones would stay poisoned (false stack-buffer-overflow reports
 * later).  ASan's runtime, when the process has one, is told before the
 * jump, as its siglongjmp interceptor does.  A weak reference: resolved
 * once, when the library is loaded (or linked); NULL without the runtime.
 * It costs a test on the jump, the slow path, and nothing elsewhere; it
 * is an undefined symbol, not an export. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(STM__TSAN) && !defined(STM__ASAN)
typedef void *stm__jmpbuf[5];
extern void __asan_handle_no_return(void) __attribute__((weak, visibility("default")));
static inline void stm__asan_no_return(void)
{
    if (__asan_handle_no_return)
        __asan_handle_no_return();
}
#define STM__SETJMP(b) __builtin_setjmp(b)
#define STM__LONGJMP(b) (stm__asan_no_return(), __builtin_longjmp(b, 1))
#else
typedef sigjmp_buf stm__jmpbuf;
#define STM__SETJMP(b) sigsetjmp(b, 0)
#define STM__LONGJMP(b) siglongjmp(b, 1)
#endif

/* ---- thread cancellation ---------------------------------------------
 * The rule (stm.h, "Cancellation"): the waits of stm_retry() are the
 * library's cancellation points, made safe by cleanup handlers (retry.c,
 * vclock.c, the backends); everything else that could block, or that
 * calls a cancellation point of the C library (write() in a notify,
 * pthread_cond_wait() under a library lock, pthread_join()), runs with
 * cancellation disabled and puts the caller's state back.  A thread never
 * acts on a cancellation while it holds a library lock or has left a
 * structure half changed. */
static inline int stm__cancel_off(void)
{
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    return old;
}
static inline void stm__cancel_restore(int old)
{
    int unused;
    pthread_setcancelstate(old, &unused);
}

/* ---- clock ---------------------------------------------------------- */

int64_t stm__mono_ns(void); /* the real CLOCK_MONOTONIC */
int64_t stm__wall_ns(void); /* CLOCK_REALTIME plus the test shift */
static inline int64_t stm__sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

/* ---- memory -------------------------------------------------------------- */

void *stm__malloc(size_t n);
void *stm__calloc(size_t n, size_t size);
void *stm__realloc(void *p, size_t n);
/* Grow *vec (elements of `size` bytes) to hold at least `need`; false on ENOMEM. */
bool stm__grow(void **vec, uint32_t *cap, size_t size, uint32_t need);
#define STM__VEC_RESERVE(vec, need)                                                                \
    ((need) <= (vec).cap || stm__grow((void **)&(vec).v, &(vec).cap, sizeof *(vec).v, (need)))

#endif
