/*
 * alloc.c - the library's allocator wrappers, stm_alloc and stm_free.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Every allocation the library makes goes through stm__malloc & co., so
 * that a test can make any one of them fail (stm__fault_alloc_after) and
 * check that the failure surfaces as -ENOMEM with every TVar unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "stm-internal.h"

static _Atomic long fault_countdown = -1;
static _Atomic bool fault_fired;

void stm__fault_alloc_after(long n)
{
    atomic_store(&fault_fired, false);
    atomic_store(&fault_countdown, n < 0 ? -1 : n);
}

bool stm__fault_alloc_fired(void)
{
    return atomic_load(&fault_fired);
}

static bool fault_hit(void)
{
    if (STM__LIKELY(atomic_load_explicit(&fault_countdown, memory_order_relaxed) < 0))
        return false;
    long n = atomic_fetch_sub(&fault_countdown, 1);
    if (n == 0) {
        atomic_store(&fault_fired, true);
        errno = ENOMEM;
        return true;
    }
    if (n < 0)
        atomic_store(&fault_countdown, -1);
    return false;
}

void *stm__malloc(size_t n)
{
    return fault_hit() ? NULL : malloc(n);
}

void *stm__calloc(size_t n, size_t size)
{
    return fault_hit() ? NULL : calloc(n, size);
}

void *stm__realloc(void *p, size_t n)
{
    return fault_hit() ? NULL : realloc(p, n);
}

bool stm__grow(void **vec, uint32_t *cap, size_t size, uint32_t need)
{
    if (need <= *cap)
        return true;
    uint64_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    if (c > UINT32_MAX || c * size / size != c)
        return false;
    void *p = stm__realloc(*vec, (size_t)c * size);
    if (p == NULL)
        return false;
    *vec = p;
    *cap = (uint32_t)c;
    return true;
}

STM_API void *stm_alloc(stm_tx *tx, size_t size)
{
    stm__check_tx(tx, "stm_alloc");
    if (!STM__VEC_RESERVE(tx->allocs, tx->allocs.n + 1))
        stm__nomem(tx);
    tx->extras = 1;
    void *p = stm__malloc(size ? size : 1);
    if (p == NULL)
        stm__nomem(tx);
    tx->allocs.v[tx->allocs.n++] = p;
    return p;
}

void stm__frees_push(struct stm_tx *tx, void *ptr, int kind)
{
    /* Reserve the limbo slot now: after the commit nothing may fail. */
    if (!STM__VEC_RESERVE(tx->frees, tx->frees.n + 1) ||
        !STM__VEC_RESERVE(tx->limbo, tx->limbo.n + tx->frees.n + 1))
        stm__nomem(tx);
    tx->extras = 1;
    tx->frees.v[tx->frees.n].ptr = ptr;
    tx->frees.v[tx->frees.n].kind = kind;
    tx->frees.v[tx->frees.n].stamp = 0;
    tx->frees.n++;
}

STM_API void stm_free(stm_tx *tx, void *ptr)
{
    stm__check_tx(tx, "stm_free");
    if (ptr != NULL)
        stm__frees_push(tx, ptr, STM__FREE_BLOCK);
}

void stm__allocs_discard(struct stm_tx *tx, uint32_t from)
{
    while (tx->allocs.n > from)
        free(tx->allocs.v[--tx->allocs.n]);
}

void stm__frees_commit(struct stm_tx *tx, uint64_t stamp)
{
    for (uint32_t i = 0; i < tx->frees.n; i++) {
        const struct stm__freed *e = &tx->frees.v[i];
        if (e->kind == STM__DESTROY_TVAR) {
            /* its record, if any, takes the limbo slot reserved for it */
            stm__tvar_destroy_now(tx, e->ptr, stamp);
            continue;
        }
        struct stm__freed *f = &tx->limbo.v[tx->limbo.n++];
        *f = *e;
        f->stamp = stamp;
        if (f->kind == STM__FREE_TVAR)
            stm__tvar_freed(f->ptr);
    }
    tx->frees.n = 0;
    tx->limbo_age = 0;
    if (tx->limbo.n >= tx->limbo_next)
        stm__reclaim(tx, false);
}
