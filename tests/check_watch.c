/*
 * check_watch.c - watchers on one thread: creation, atomic reactions,
 * what triggers a run, STM_WATCH_CHANGES_ONLY, vetoes, cascades and their
 * bound, stm_unwatch, misuse and allocation failure.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Everything here runs on the test's own thread (no deadlines: the timed
 * runs are in check_watch_time.c, the concurrent ones in
 * check_watch_stress.c), so counts are exact: stm_stats.watch_runs grows
 * by one per evaluation of a watcher function, and a callback that counts
 * its calls in a TVar counts only the runs that committed.  Each test runs
 * in its own forked process (Check's default), so counters start afresh.
 *
 * Nothing may leak (the ASan build runs with detect_leaks=1): the helpers
 * below list every TVar and watcher a test makes, and the teardown stops
 * the watchers still active, frees the TVars (misuse, and so a crash, if
 * a stopped watcher were still registered on one) and calls stm_shutdown().
 */
#define _GNU_SOURCE
#include <stm.h>

#include "stm-internal.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t watch_runs(void)
{
    struct stm_stats s;
    stm_stats_get(&s);
    return s.watch_runs;
}

static uint64_t commits(void)
{
    struct stm_stats s;
    stm_stats_get(&s);
    return s.commits;
}

enum { MAXT = 256, MAXW = 64 };
static stm_tvar *tvars[MAXT];
static stm_watch *watchers[MAXW];
static int ntvars, nwatchers;

static stm_tvar *tv(intptr_t v)
{
    stm_tvar *t = stm_tvar_new(v);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_lt(ntvars, MAXT);
    tvars[ntvars++] = t;
    return t;
}

/* Free a TVar made by tv() now (outside a transaction). */
static void tv_free(stm_tvar *t)
{
    for (int i = 0; i < ntvars; i++)
        if (tvars[i] == t)
            tvars[i] = NULL;
    stm_tvar_free(t);
}

/* List an active watcher for the teardown. */
static stm_watch *track(stm_watch *w)
{
    ck_assert_ptr_nonnull(w);
    ck_assert_int_lt(nwatchers, MAXW);
    watchers[nwatchers++] = w;
    return w;
}

/* A watcher stopped by the test itself. */
static void untrack(stm_watch *w)
{
    for (int i = 0; i < nwatchers; i++)
        if (watchers[i] == w)
            watchers[i] = NULL;
}

/* stm_atomically_watch() that must succeed. */
static stm_watch *watch(stm_watch_fn *fn, stm_watch_cb *cb, void *arg, unsigned flags)
{
    stm_watch *w = stm_atomically_watch(fn, cb, arg, flags);
    ck_assert_msg(w != NULL, "stm_atomically_watch: %s", strerror(errno));
    return track(w);
}

static intptr_t peek(stm_tvar *t)
{
    return stm_tvar_peek(t);
}

static void poke(stm_tvar *t, intptr_t v)
{
    ck_assert_int_eq(stm_tvar_poke(t, v), 0);
}

/* A watcher that mirrors one TVar: fn returns `src`; cb writes
 * value * mul + add to `dst` (if any) and counts its calls in `calls`. */
struct mirror {
    stm_tvar *src, *dst, *calls;
    intptr_t mul, add;
    int fn_runs; /* plain: everything here runs on one thread */
    stm_watch *w;
};

static intptr_t mirror_fn(stm_tx *tx, void *arg)
{
    struct mirror *m = arg;
    m->fn_runs++;
    return stm_read(tx, m->src);
}

static void mirror_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct mirror *m = arg;
    if (m->dst)
        stm_write(tx, m->dst, v * m->mul + m->add);
    if (m->calls)
        stm_write(tx, m->calls, stm_read(tx, m->calls) + 1);
}

static void mirror_init(struct mirror *m, stm_tvar *src, stm_tvar *dst, intptr_t mul, intptr_t add)
{
    memset(m, 0, sizeof *m);
    m->src = src;
    m->dst = dst;
    m->calls = tv(0);
    m->mul = mul;
    m->add = add;
}

static stm_watch *mirror_start(struct mirror *m, unsigned flags)
{
    return m->w = watch(mirror_fn, mirror_cb, m, flags);
}

/* Stop a watcher in a transaction of its own. */
static int body_unwatch(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

static void unwatch(stm_watch *w)
{
    untrack(w);
    ck_assert_int_eq(stm_atomically(body_unwatch, w), 0);
}

static void setup(void)
{
    ntvars = nwatchers = 0;
}

static void teardown(void)
{
    for (int i = 0; i < nwatchers; i++)
        if (watchers[i] != NULL)
            unwatch(watchers[i]);
    for (int i = 0; i < ntvars; i++)
        if (tvars[i] != NULL)
            stm_tvar_free(tvars[i]);
    ntvars = nwatchers = 0;
    stm_shutdown();
}

/* ==== 1. creation ======================================================== */

START_TEST(test_create_runs_once_committed)
{
    stm_tvar *x = tv(21), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 2, 0);
    uint64_t r0 = watch_runs(), c0 = commits();
    mirror_start(&m, 0);
    ck_assert_int_eq(m.fn_runs, 1);
    ck_assert_uint_eq(watch_runs() - r0, 1);
    ck_assert_uint_eq(commits() - c0, 1);
    /* the callback was given fn's first value and its write committed */
    ck_assert_int_eq(peek(y), 42);
    ck_assert_int_eq(peek(m.calls), 1);
    /* and it is active: a write of x runs it again */
    poke(x, 5);
    ck_assert_int_eq(m.fn_runs, 2);
    ck_assert_int_eq(peek(y), 10);
    ck_assert_int_eq(peek(m.calls), 2);
}
END_TEST

/* stm_watch_new inside a transaction: active only from its commit */
struct made {
    struct mirror *m;
    stm_tvar *side;
    int fn_runs_in_body;
};

static int body_new_then_abort(stm_tx *tx, void *arg)
{
    struct made *k = arg;
    stm_watch_new(tx, mirror_fn, mirror_cb, k->m, 0);
    stm_write(tx, k->side, 1);
    stm_abort(tx, 5);
}

START_TEST(test_create_discarded_by_abort)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    struct made k = {&m, tv(0), 0};
    uint64_t r0 = watch_runs();
    ck_assert_int_eq(stm_atomically(body_new_then_abort, &k), 5);
    ck_assert_int_eq(peek(k.side), 0);
    ck_assert_int_eq(m.fn_runs, 0);
    /* never runs: writes to the TVar it would have read call nothing */
    poke(x, 2);
    poke(x, 3);
    ck_assert_int_eq(m.fn_runs, 0);
    ck_assert_int_eq(peek(y), 0);
    ck_assert_int_eq(peek(m.calls), 0);
    ck_assert_uint_eq(watch_runs(), r0);
}
END_TEST

static int branch_new_then_retry(stm_tx *tx, void *arg)
{
    struct made *k = arg;
    stm_watch_new(tx, mirror_fn, mirror_cb, k->m, 0);
    stm_write(tx, k->side, 1);
    (void)stm_read(tx, k->m->src);
    stm_retry(tx);
}

static int branch_second(stm_tx *tx, void *arg)
{
    struct made *k = arg;
    stm_write(tx, k->side, stm_read(tx, k->side) + 10);
    return 7;
}

static int body_or_else_new(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, branch_new_then_retry, branch_second, arg);
}

START_TEST(test_create_discarded_by_or_else_branch)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    struct made k = {&m, tv(0), 0};
    uint64_t r0 = watch_runs();
    ck_assert_int_eq(stm_atomically(body_or_else_new, &k), 7);
    ck_assert_int_eq(peek(k.side), 10); /* the second branch committed */
    ck_assert_int_eq(m.fn_runs, 0);
    poke(x, 2);
    poke(x, 3);
    ck_assert_int_eq(m.fn_runs, 0);
    ck_assert_int_eq(peek(y), 0);
    ck_assert_int_eq(peek(m.calls), 0);
    ck_assert_uint_eq(watch_runs(), r0);
}
END_TEST

/* A watcher made in a body runs in that commit, after the body. */
static int body_new_and_write(stm_tx *tx, void *arg)
{
    struct made *k = arg;
    stm_write(tx, k->m->src, 4);
    k->m->w = stm_watch_new(tx, mirror_fn, mirror_cb, k->m, 0);
    k->fn_runs_in_body = k->m->fn_runs;
    stm_write(tx, k->m->src, 6); /* after stm_watch_new, still the body */
    return 0;
}

START_TEST(test_create_in_body_runs_at_commit)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 3, 0);
    struct made k = {&m, tv(0), -1};
    ck_assert_int_eq(stm_atomically(body_new_and_write, &k), 0);
    track(m.w);
    ck_assert_int_eq(k.fn_runs_in_body, 0);
    ck_assert_int_eq(m.fn_runs, 1);
    ck_assert_int_eq(peek(y), 18); /* saw the body's last write */
    poke(x, 2);
    ck_assert_int_eq(peek(y), 6);
}
END_TEST

/* Vetoes of the first evaluation. */
struct veto {
    stm_tvar *x, *out;
    int code;
    bool in_fn;
};

static intptr_t veto_fn(stm_tx *tx, void *arg)
{
    struct veto *v = arg;
    intptr_t x = stm_read(tx, v->x);
    if (v->in_fn && x < 0)
        stm_abort(tx, v->code);
    return x;
}

static void veto_cb(stm_tx *tx, intptr_t x, void *arg)
{
    struct veto *v = arg;
    stm_write(tx, v->out, x + 1000);
    if (!v->in_fn && x < 0)
        stm_abort(tx, v->code);
}

static void check_create_veto(int code, bool in_fn, int want_errno)
{
    struct veto v = {tv(-1), tv(0), code, in_fn};
    errno = 0;
    stm_watch *w = stm_atomically_watch(veto_fn, veto_cb, &v, 0);
    int e = errno;
    ck_assert_ptr_null(w);
    ck_assert_int_eq(e, want_errno);
    ck_assert_int_eq(peek(v.out), 0);
    /* nothing is left: x's writes run no watcher */
    uint64_t r0 = watch_runs();
    poke(v.x, 5);
    ck_assert_int_eq(peek(v.out), 0);
    ck_assert_uint_eq(watch_runs(), r0);
}

/* A watcher made by another watcher's callback is evaluated in the same
 * commit (in the next round) and is active afterwards. */
struct maker {
    stm_tvar *x, *y, *inner_calls;
    stm_watch *inner;
};

static intptr_t maker_read_x(stm_tx *tx, void *arg)
{
    return stm_read(tx, ((struct maker *)arg)->x);
}

static intptr_t maker_read_y(stm_tx *tx, void *arg)
{
    return stm_read(tx, ((struct maker *)arg)->y);
}

static void maker_inner_cb(stm_tx *tx, intptr_t v, void *arg)
{
    (void)v;
    struct maker *m = arg;
    stm_write(tx, m->inner_calls, stm_read(tx, m->inner_calls) + 1);
}

static void maker_outer_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct maker *m = arg;
    if (v == 1)
        m->inner = stm_watch_new(tx, maker_read_y, maker_inner_cb, m, 0);
}

START_TEST(test_create_in_callback)
{
    struct maker m = {tv(0), tv(0), tv(0), NULL};
    watch(maker_read_x, maker_outer_cb, &m, 0);
    ck_assert_ptr_null(m.inner);
    poke(m.x, 1); /* the outer callback makes the inner watcher */
    ck_assert_ptr_nonnull(m.inner);
    track(m.inner);
    ck_assert_int_eq(peek(m.inner_calls), 1); /* its first evaluation */
    poke(m.y, 5);
    ck_assert_int_eq(peek(m.inner_calls), 2); /* registered on y */
}
END_TEST

START_TEST(test_create_veto_positive_code)
{
    check_create_veto(42, false, ECANCELED);
}
END_TEST

START_TEST(test_create_veto_negative_errno)
{
    check_create_veto(-EPERM, false, EPERM);
}
END_TEST

START_TEST(test_create_veto_in_fn)
{
    check_create_veto(9, true, ECANCELED);
    check_create_veto(-EACCES, true, EACCES);
}
END_TEST

/* stm_watch_new in a body: a veto of the first evaluation fails the body */
static int body_new_vetoed(stm_tx *tx, void *arg)
{
    struct veto *v = arg;
    stm_write(tx, v->x, -3);
    stm_watch_new(tx, veto_fn, veto_cb, v, 0);
    return 0;
}

START_TEST(test_create_veto_fails_body)
{
    struct veto v = {tv(1), tv(0), 42, false};
    ck_assert_int_eq(stm_atomically(body_new_vetoed, &v), 42);
    ck_assert_int_eq(peek(v.x), 1);
    ck_assert_int_eq(peek(v.out), 0);
    uint64_t r0 = watch_runs();
    poke(v.x, -5);
    ck_assert_uint_eq(watch_runs(), r0);
    ck_assert_int_eq(peek(v.out), 0);
}
END_TEST

/* ==== 2. atomic reaction ================================================= */

struct xy {
    stm_tvar *x, *y, *z;
    intptr_t xv, yv, zv;
};

static int body_write_x(stm_tx *tx, void *arg)
{
    struct xy *a = arg;
    stm_write(tx, a->x, a->xv);
    return 0;
}

static int body_write_y_then_x(stm_tx *tx, void *arg)
{
    struct xy *a = arg;
    stm_write(tx, a->y, a->yv); /* the watcher's write comes after */
    stm_write(tx, a->x, a->xv);
    stm_write(tx, a->z, a->zv);
    return 0;
}

static int body_incr_x_twice(stm_tx *tx, void *arg)
{
    struct xy *a = arg;
    stm_write(tx, a->x, stm_read(tx, a->x) + 1);
    stm_write(tx, a->x, stm_read(tx, a->x) + 1);
    a->yv = stm_read(tx, a->y); /* the body sees y before the watcher ran */
    return 0;
}

START_TEST(test_double_kept)
{
    stm_tvar *x = tv(3), *y = tv(0), *z = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 2, 0);
    mirror_start(&m, 0);
    ck_assert_int_eq(peek(y), 6);
    struct xy a = {x, y, z, 0, 0, 0};
    for (intptr_t i = -5; i < 50; i += 7) {
        a.xv = i;
        uint64_t c0 = commits();
        ck_assert_int_eq(stm_atomically(body_write_x, &a), 0);
        ck_assert_uint_eq(commits() - c0, 1); /* one commit, not two */
        ck_assert_int_eq(peek(x), i);
        ck_assert_int_eq(peek(y), 2 * i);
    }
    /* the body also wrote y: the watcher's write is the last */
    a.xv = 100;
    a.yv = 7;
    a.zv = 9;
    ck_assert_int_eq(stm_atomically(body_write_y_then_x, &a), 0);
    ck_assert_int_eq(peek(y), 200);
    ck_assert_int_eq(peek(z), 9);
    /* written twice in one body: one run, with the last value */
    int before = m.fn_runs;
    ck_assert_int_eq(stm_atomically(body_incr_x_twice, &a), 0);
    ck_assert_int_eq(m.fn_runs - before, 1);
    ck_assert_int_eq(a.yv, 200);
    ck_assert_int_eq(peek(x), 102);
    ck_assert_int_eq(peek(y), 204);
}
END_TEST

/* ==== 3. what does not trigger a run ==================================== */

static int body_read_x(stm_tx *tx, void *arg)
{
    return (int)stm_read(tx, arg);
}

START_TEST(test_unread_tvar_runs_nothing)
{
    stm_tvar *x = tv(1), *y = tv(0), *other = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    uint64_t r0 = watch_runs();
    poke(other, 5);
    poke(y, 77); /* written by the callback, but fn does not read it */
    ck_assert_int_eq(stm_atomically(body_read_x, x), 1); /* a read is no write */
    ck_assert_uint_eq(watch_runs(), r0);
    ck_assert_int_eq(m.fn_runs, 1);
    ck_assert_int_eq(peek(m.calls), 1);
    ck_assert_int_eq(peek(y), 77);
    poke(x, 2); /* and a write of x does */
    ck_assert_uint_eq(watch_runs(), r0 + 1);
    ck_assert_int_eq(peek(y), 2);
}
END_TEST

/* fn reads `a` or `b`, as `flag` says */
struct pick {
    stm_tvar *flag, *a, *b, *out;
};

static intptr_t pick_fn(stm_tx *tx, void *arg)
{
    struct pick *p = arg;
    return stm_read(tx, p->flag) ? stm_read(tx, p->b) : stm_read(tx, p->a);
}

static void pick_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct pick *p = arg;
    stm_write(tx, p->out, v);
}

START_TEST(test_deps_follow_last_run)
{
    struct pick p = {tv(0), tv(10), tv(20), tv(0)};
    watch(pick_fn, pick_cb, &p, 0);
    ck_assert_int_eq(peek(p.out), 10);
    uint64_t r0 = watch_runs();
    poke(p.b, 21); /* not read yet */
    ck_assert_uint_eq(watch_runs(), r0);
    ck_assert_int_eq(peek(p.out), 10);
    poke(p.a, 11);
    ck_assert_uint_eq(watch_runs(), r0 + 1);
    ck_assert_int_eq(peek(p.out), 11);

    poke(p.flag, 1); /* switch to b */
    ck_assert_uint_eq(watch_runs(), r0 + 2);
    ck_assert_int_eq(peek(p.out), 21);
    poke(p.a, 12); /* the old one no longer */
    poke(p.a, 13);
    ck_assert_uint_eq(watch_runs(), r0 + 2);
    ck_assert_int_eq(peek(p.out), 21);
    poke(p.b, 22); /* the new one does */
    ck_assert_uint_eq(watch_runs(), r0 + 3);
    ck_assert_int_eq(peek(p.out), 22);

    poke(p.flag, 0); /* and back */
    ck_assert_int_eq(peek(p.out), 13);
    uint64_t r1 = watch_runs();
    poke(p.b, 23);
    ck_assert_uint_eq(watch_runs(), r1);
    poke(p.a, 14);
    ck_assert_uint_eq(watch_runs(), r1 + 1);
    ck_assert_int_eq(peek(p.out), 14);
}
END_TEST

/* fn reads the TVars of `order` (indices into v, some repeated) */
struct reads {
    stm_tvar *v[3];
    const int *order;
    int n;
    stm_tvar *out;
};

static intptr_t reads_fn(stm_tx *tx, void *arg)
{
    const struct reads *r = arg;
    intptr_t sum = 0;
    for (int i = 0; i < r->n; i++)
        sum += stm_read(tx, r->v[r->order[i]]);
    return sum;
}

static void reads_cb(stm_tx *tx, intptr_t v, void *arg)
{
    stm_write(tx, ((struct reads *)arg)->out, v);
}

/* A watcher is registered once on each TVar its fn read, however often and
 * in whatever order it read them; a run that reads the same set again
 * changes nothing (its own TVar keeps its version). */
START_TEST(test_deps_repeated_reads)
{
    static const int twice[] = {0, 0}, back[] = {1, 0}, fwd[] = {0, 1},
                     mixed[] = {2, 0, 1, 0, 2, 1};
    static const struct {
        const int *order;
        int n, distinct;
    } cases[] = {{twice, 2, 1}, {back, 2, 2}, {fwd, 2, 2}, {mixed, 6, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct reads r = {{tv(1), tv(10), tv(100)}, cases[c].order, cases[c].n, tv(0)};
        stm_watch *w = watch(reads_fn, reads_cb, &r, 0);
        unsigned ndeps = atomic_load(&w->ndeps);
        ck_assert_uint_eq(ndeps, (unsigned)cases[c].distinct);
        uintptr_t self = atomic_load(&w->self.lock);
        intptr_t expect = 0;
        for (int i = 0; i < cases[c].n; i++)
            expect += peek(r.v[cases[c].order[i]]);
        ck_assert_int_eq(peek(r.out), expect);
        for (int k = 0; k < 3; k++) {
            uint64_t r0 = watch_runs();
            poke(r.v[cases[c].order[0]], 1000 + k);
            ck_assert_uint_eq(watch_runs(), r0 + 1);
            expect = 0;
            for (int i = 0; i < cases[c].n; i++)
                expect += peek(r.v[cases[c].order[i]]);
            ck_assert_int_eq(peek(r.out), expect);
            ndeps = atomic_load(&w->ndeps);
            ck_assert_uint_eq(ndeps, (unsigned)cases[c].distinct);
            ck_assert_msg(atomic_load(&w->self.lock) == self,
                          "case %zu: a run that read the same TVars rewrote the watcher", c);
        }
        /* every TVar read triggers it, the unread one does not */
        for (int t = 0; t < 3; t++) {
            bool read = false;
            for (int i = 0; i < cases[c].n; i++)
                read = read || cases[c].order[i] == t;
            uint64_t r0 = watch_runs();
            poke(r.v[t], 5000 + t);
            ck_assert_uint_eq(watch_runs(), r0 + (read ? 1 : 0));
        }
    }
}
END_TEST

/* fn reads the first `n` (a TVar) of many TVars: more than the watcher
 * phase sorts by insertion */
enum { WIDE = 24 };
struct wide {
    stm_tvar *v[WIDE], *n, *out;
};

static intptr_t wide_fn(stm_tx *tx, void *arg)
{
    const struct wide *d = arg;
    intptr_t sum = 0, n = stm_read(tx, d->n);
    for (intptr_t i = n - 1; i >= 0; i--) /* (against address order, likely) */
        sum += stm_read(tx, d->v[i]);
    return sum;
}

static void wide_cb(stm_tx *tx, intptr_t v, void *arg)
{
    stm_write(tx, ((struct wide *)arg)->out, v);
}

/* A watcher that reads many TVars: registered on each, once; a run that
 * reads the same set changes nothing, one that reads fewer or more moves
 * its registrations. */
START_TEST(test_deps_many_tvars)
{
    struct wide d;
    for (int i = 0; i < WIDE; i++)
        d.v[i] = tv(i);
    d.n = tv(WIDE);
    d.out = tv(-1);
    stm_watch *w = watch(wide_fn, wide_cb, &d, 0);
    ck_assert_int_eq(peek(d.out), WIDE * (WIDE - 1) / 2);
    ck_assert_uint_eq(atomic_load(&w->ndeps), WIDE + 1);
    uintptr_t self = atomic_load(&w->self.lock);
    for (int k = 0; k < 3; k++) {
        uint64_t r0 = watch_runs();
        poke(d.v[k * 7], peek(d.v[k * 7]) + 100);
        ck_assert_uint_eq(watch_runs(), r0 + 1);
        ck_assert_int_eq(peek(d.out), WIDE * (WIDE - 1) / 2 + 100 * (k + 1));
        ck_assert_msg(atomic_load(&w->self.lock) == self,
                      "a run that read the same TVars rewrote the watcher");
    }
    poke(d.n, 3); /* fewer: v[3..] no longer read */
    ck_assert_uint_eq(atomic_load(&w->ndeps), 4);
    ck_assert_int_eq(peek(d.out), 100 + 1 + 2);
    uint64_t r0 = watch_runs();
    poke(d.v[WIDE - 1], 7);
    ck_assert_uint_eq(watch_runs(), r0);
    poke(d.n, WIDE); /* and more again */
    ck_assert_uint_eq(atomic_load(&w->ndeps), WIDE + 1);
    r0 = watch_runs();
    poke(d.v[WIDE - 1], 8);
    ck_assert_uint_eq(watch_runs(), r0 + 1);
    intptr_t expect = 0;
    for (int i = 0; i < WIDE; i++)
        expect += peek(d.v[i]);
    ck_assert_int_eq(peek(d.out), expect);
}
END_TEST

/* Many watchers on one TVar (more than a commit notes without its index,
 * some of them stopped): a write of it runs each live one once, in the
 * commit's first watcher round and later ones alike. */
enum { CROWD = 20 };
START_TEST(test_many_watchers_one_tvar)
{
    stm_tvar *x = tv(1);
    struct mirror m[CROWD];
    for (int i = 0; i < CROWD; i++) {
        mirror_init(&m[i], x, tv(0), 1, i);
        mirror_start(&m[i], 0);
    }
    for (int k = 2; k <= 4; k++) { /* (the first commits make room) */
        poke(x, k);
        for (int i = 0; i < CROWD; i++) {
            ck_assert_int_eq(m[i].fn_runs, k);
            ck_assert_int_eq(peek(m[i].dst), k + i);
        }
    }
    for (int i = 0; i < CROWD; i += 3) {
        untrack(m[i].w);
        unwatch(m[i].w);
    }
    poke(x, 10);
    for (int i = 0; i < CROWD; i++) {
        bool live = i % 3 != 0;
        ck_assert_int_eq(m[i].fn_runs, live ? 5 : 4);
        ck_assert_int_eq(peek(m[i].dst), live ? 10 + i : 4 + i);
    }
    /* and written by a callback (a later round) */
    struct mirror feed;
    stm_tvar *src = tv(0);
    mirror_init(&feed, src, x, 1, 0);
    mirror_start(&feed, 0);
    poke(src, 20);
    for (int i = 0; i < CROWD; i++)
        if (i % 3 != 0)
            ck_assert_int_eq(peek(m[i].dst), 20 + i);
}
END_TEST

/* A body with a write set large enough to be indexed (over 32 entries)
 * triggers a watcher whose fn reads TVars of that write set: it sees the
 * values written, and they stay its dependencies. */
struct bigws {
    stm_tvar *t[40], *x, *out;
};

static intptr_t bigws_fn(stm_tx *tx, void *arg)
{
    struct bigws *b = arg;
    return stm_read(tx, b->x) + stm_read(tx, b->t[17]);
}

static void bigws_cb(stm_tx *tx, intptr_t v, void *arg)
{
    stm_write(tx, ((struct bigws *)arg)->out, v);
}

static int bigws_body(stm_tx *tx, void *arg)
{
    struct bigws *b = arg;
    for (int i = 0; i < 40; i++)
        stm_write(tx, b->t[i], 100 + i);
    stm_write(tx, b->x, 5);
    return 0;
}

START_TEST(test_deps_from_big_write_set)
{
    struct bigws b;
    for (int i = 0; i < 40; i++)
        b.t[i] = tv(0);
    b.x = tv(1);
    b.out = tv(-1);
    watch(bigws_fn, bigws_cb, &b, 0);
    ck_assert_int_eq(peek(b.out), 1);
    uint64_t r0 = watch_runs();
    ck_assert_int_eq(stm_atomically(bigws_body, &b), 0);
    ck_assert_uint_eq(watch_runs(), r0 + 1);
    ck_assert_int_eq(peek(b.out), 5 + 117); /* the values the body wrote */
    poke(b.x, 6);                           /* still a dependency */
    ck_assert_int_eq(peek(b.out), 6 + 117);
    poke(b.t[17], 0);
    ck_assert_int_eq(peek(b.out), 6);
    poke(b.t[16], 0); /* never read */
    ck_assert_uint_eq(watch_runs(), r0 + 3);
}
END_TEST

/* ==== 4. STM_WATCH_CHANGES_ONLY ========================================= */

START_TEST(test_changes_only)
{
    stm_tvar *x = tv(4), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, STM_WATCH_CHANGES_ONLY);
    ck_assert_int_eq(peek(m.calls), 1); /* the first run always calls cb */
    ck_assert_int_eq(peek(y), 4);
    poke(x, 4); /* written, same value: fn runs, cb does not */
    poke(x, 4);
    ck_assert_int_eq(m.fn_runs, 3);
    ck_assert_int_eq(peek(m.calls), 1);
    poke(x, 5);
    ck_assert_int_eq(peek(m.calls), 2);
    ck_assert_int_eq(peek(y), 5);
    poke(y, 99); /* what cb wrote is not what it compares with */
    poke(x, 5);
    ck_assert_int_eq(peek(m.calls), 2);
    ck_assert_int_eq(peek(y), 99);
    poke(x, 4); /* back to an older value is a change */
    ck_assert_int_eq(peek(m.calls), 3);
    ck_assert_int_eq(peek(y), 4);
}
END_TEST

/* the value compared is the last one given to cb, not the last fn result */
START_TEST(test_changes_only_first_value_zero)
{
    stm_tvar *x = tv(0), *y = tv(-1);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, STM_WATCH_CHANGES_ONLY);
    ck_assert_int_eq(peek(m.calls), 1); /* called with 0 the first time */
    ck_assert_int_eq(peek(y), 0);
    poke(x, 0);
    ck_assert_int_eq(peek(m.calls), 1);
}
END_TEST

START_TEST(test_every_commit_without_flag)
{
    stm_tvar *x = tv(4), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    ck_assert_int_eq(peek(m.calls), 1);
    for (int i = 0; i < 5; i++)
        poke(x, 4);
    ck_assert_int_eq(peek(m.calls), 6);
    poke(y, 99);
    poke(x, 4);
    ck_assert_int_eq(peek(m.calls), 7);
    ck_assert_int_eq(peek(y), 4);
}
END_TEST

/* ==== 5. vetoes ========================================================== */

struct inv {
    stm_tvar *x, *z;
    intptr_t xv, zv;
};

static int body_write_xz(stm_tx *tx, void *arg)
{
    struct inv *a = arg;
    stm_write(tx, a->z, a->zv);
    stm_write(tx, a->x, a->xv);
    return 1;
}

START_TEST(test_cb_veto)
{
    struct veto v = {tv(1), tv(0), 42, false};
    watch(veto_fn, veto_cb, &v, 0);
    ck_assert_int_eq(peek(v.out), 1001);
    stm_tvar *z = tv(0);
    struct inv a = {v.x, z, -7, 55};
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 42);
    ck_assert_int_eq(peek(v.x), 1);
    ck_assert_int_eq(peek(z), 0);
    ck_assert_int_eq(peek(v.out), 1001); /* written by cb before its abort */
    ck_assert_int_eq(stm_tvar_poke(v.x, -1), -ECANCELED); /* not the code */
    ck_assert_int_eq(peek(v.x), 1);
    /* good values still pass, and the watcher is still there */
    a.xv = 8;
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 1);
    ck_assert_int_eq(peek(v.x), 8);
    ck_assert_int_eq(peek(z), 55);
    ck_assert_int_eq(peek(v.out), 1008);
    a.xv = -2;
    a.zv = 66;
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 42);
    ck_assert_int_eq(peek(v.x), 8);
    ck_assert_int_eq(peek(z), 55);
}
END_TEST

/* stm_tvar_poke's every return (issue #11, defect 6): a vetoed poke is
 * negative whatever the veto's code, so that `rc < 0` sees it. */
static int body_poke_in_tx(stm_tx *tx, void *arg)
{
    struct veto *v = arg;
    ck_assert_int_eq(stm_tvar_poke(v->x, -3), 0); /* joins: vetoed at commit */
    (void)tx;
    return 7;
}

struct poke_nomem {
    stm_tvar *var;
    int failures;
    intptr_t last;
};

static void *poke_nomem_thread(void *arg)
{
    struct poke_nomem *p = arg;
    for (long n = 0; n < 1000; n++) {
        stm__fault_alloc_after(n);
        int rc = stm_tvar_poke(p->var, n + 1);
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        if (rc == 0) {
            p->last = n + 1;
            break;
        }
        ck_assert_msg(fired && rc == -ENOMEM, "n=%ld: poke returned %d", n, rc);
        ck_assert_int_eq(stm_tvar_peek(p->var), 0);
        p->failures++;
    }
    return NULL;
}

START_TEST(test_poke_returns)
{
    static const struct {
        int code, want;
        bool in_fn;
    } cases[] = {
        {4242, -ECANCELED, false}, {1, -ECANCELED, true},   {0, -ECANCELED, false},
        {0, -ECANCELED, true},     {-EPERM, -EPERM, false}, {INT32_MIN, -ECANCELED, true},
        {-ENOMEM, -ENOMEM, false}, {-ELOOP, -ELOOP, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct veto v = {tv(1), tv(0), cases[i].code, cases[i].in_fn};
        stm_watch *w = watch(veto_fn, veto_cb, &v, 0);
        int rc = stm_tvar_poke(v.x, -1);
        ck_assert_msg(rc == cases[i].want, "veto %d: poke returned %d, not %d", cases[i].code, rc,
                      cases[i].want);
        ck_assert_int_eq(peek(v.x), 1); /* nothing written */
        /* inside a transaction it joins: the enclosing commit is vetoed */
        ck_assert_int_eq(stm_atomically(body_poke_in_tx, &v), cases[i].code);
        ck_assert_int_eq(peek(v.x), 1);
        /* a good value commits: 0 */
        ck_assert_int_eq(stm_tvar_poke(v.x, 5), 0);
        ck_assert_int_eq(peek(v.x), 5);
        ck_assert_int_eq(peek(v.out), 1005);
        (void)w;
    }
    ck_assert_int_eq(stm_tvar_poke(NULL, 1), -EINVAL);
    /* out of memory, in a thread of its own (whose first transaction
     * needs memory): -ENOMEM and nothing written, until some n succeeds */
    struct poke_nomem pn = {tv(0), 0, 0};
    tu_join(tu_run_thread(poke_nomem_thread, &pn));
    ck_assert_int_gt(pn.failures, 0);
    ck_assert_int_eq(peek(pn.var), pn.last);
}
END_TEST

START_TEST(test_fn_veto)
{
    struct veto v = {tv(1), tv(0), -EPERM, true};
    watch(veto_fn, veto_cb, &v, 0);
    stm_tvar *z = tv(0);
    struct inv a = {v.x, z, -7, 55};
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), -EPERM);
    ck_assert_int_eq(peek(v.x), 1);
    ck_assert_int_eq(peek(z), 0);
    ck_assert_int_eq(peek(v.out), 1001);
    a.xv = 3;
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 1);
    ck_assert_int_eq(peek(v.out), 1003);
}
END_TEST

/* a watcher with no callback: an invariant */
static intptr_t nonneg_fn(stm_tx *tx, void *arg)
{
    intptr_t x = stm_read(tx, arg);
    if (x < 0)
        stm_abort(tx, 3);
    return x;
}

START_TEST(test_null_cb_invariant)
{
    stm_tvar *x = tv(0), *z = tv(0);
    watch(nonneg_fn, NULL, x, 0);
    struct inv a = {x, z, 5, 1};
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 1);
    ck_assert_int_eq(peek(x), 5);
    a.xv = -1;
    a.zv = 2;
    ck_assert_int_eq(stm_atomically(body_write_xz, &a), 3);
    ck_assert_int_eq(peek(x), 5);
    ck_assert_int_eq(peek(z), 1);
}
END_TEST

/* ==== 6. cascades ======================================================== */

START_TEST(test_cascade_one_commit)
{
    stm_tvar *a = tv(0), *b = tv(0), *c = tv(0);
    struct mirror ma, mb;
    mirror_init(&ma, a, b, 1, 1);  /* b = a + 1 */
    mirror_init(&mb, b, c, 10, 0); /* c = b * 10 */
    mirror_start(&ma, 0);
    mirror_start(&mb, 0);
    ck_assert_int_eq(peek(b), 1);
    ck_assert_int_eq(peek(c), 10);
    uint64_t c0 = commits();
    poke(a, 5);
    ck_assert_uint_eq(commits() - c0, 1);
    ck_assert_int_eq(peek(b), 6);
    ck_assert_int_eq(peek(c), 60);
    ck_assert_int_eq(ma.fn_runs, 2);
    ck_assert_int_eq(mb.fn_runs, 2);
}
END_TEST

/* fn returns the value; cb clamps it to [0, 100] by writing it back */
static intptr_t clamp_fn(stm_tx *tx, void *arg)
{
    return stm_read(tx, arg);
}

static void clamp_cb(stm_tx *tx, intptr_t v, void *arg)
{
    if (v > 100)
        stm_write(tx, arg, 100);
    else if (v < 0)
        stm_write(tx, arg, 0);
}

START_TEST(test_self_clamp_settles)
{
    stm_tvar *v = tv(50);
    watch(clamp_fn, clamp_cb, v, 0);
    ck_assert_int_eq(peek(v), 50);
    uint64_t r0 = watch_runs(), c0 = commits();
    poke(v, 500);
    ck_assert_uint_eq(commits() - c0, 1);
    ck_assert_int_eq(peek(v), 100);
    ck_assert_uint_eq(watch_runs() - r0, 2); /* ran, moved v, ran again */
    poke(v, -40);
    ck_assert_int_eq(peek(v), 0);
    poke(v, 70);
    ck_assert_int_eq(peek(v), 70);
}
END_TEST

/* cb moves v one step towards 3: settles after several runs */
static void step_cb(stm_tx *tx, intptr_t v, void *arg)
{
    if (v < 3)
        stm_write(tx, arg, v + 1);
    else if (v > 3)
        stm_write(tx, arg, v - 1);
}

START_TEST(test_self_step_settles)
{
    stm_tvar *v = tv(3);
    watch(clamp_fn, step_cb, v, 0);
    uint64_t r0 = watch_runs();
    poke(v, 0);
    ck_assert_int_eq(peek(v), 3);
    ck_assert_uint_eq(watch_runs() - r0, 4);
    poke(v, 8);
    ck_assert_int_eq(peek(v), 3);
}
END_TEST

/* the same in the creating commit: the first run's own writes re-run it */
START_TEST(test_self_step_settles_at_creation)
{
    stm_tvar *v = tv(0);
    uint64_t r0 = watch_runs();
    watch(clamp_fn, step_cb, v, 0);
    ck_assert_int_eq(peek(v), 3);
    ck_assert_uint_eq(watch_runs() - r0, 4);
    stm_tvar *c = tv(500);
    watch(clamp_fn, clamp_cb, c, 0);
    ck_assert_int_eq(peek(c), 100);
}
END_TEST

/* two watchers that never settle: p -> q -> p ... while `go` is set */
struct pp {
    stm_tvar *go, *from, *to;
};

static intptr_t pp_fn(stm_tx *tx, void *arg)
{
    struct pp *p = arg;
    return stm_read(tx, p->go) ? stm_read(tx, p->from) + 1 : -1;
}

static void pp_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct pp *p = arg;
    if (v >= 0)
        stm_write(tx, p->to, v);
}

START_TEST(test_ping_pong_eloop)
{
    stm_tvar *go = tv(0), *p = tv(0), *q = tv(0), *other = tv(0);
    struct pp a = {go, p, q}, b = {go, q, p};
    watch(pp_fn, pp_cb, &a, 0);
    watch(pp_fn, pp_cb, &b, 0);
    struct inv w = {go, other, 1, 9};
    ck_assert_int_eq(stm_atomically(body_write_xz, &w), -ELOOP);
    ck_assert_int_eq(peek(go), 0);
    ck_assert_int_eq(peek(p), 0);
    ck_assert_int_eq(peek(q), 0);
    ck_assert_int_eq(peek(other), 0);
    ck_assert_int_eq(stm_tvar_poke(go, 1), -ELOOP);
    ck_assert_int_eq(peek(go), 0);
    /* the watchers are intact: without `go` they let writes through */
    poke(p, 3);
    ck_assert_int_eq(peek(p), 3);
    ck_assert_int_eq(peek(q), 0);
}
END_TEST

START_TEST(test_create_eloop)
{
    /* the cascade of the first evaluation fails the creation */
    stm_tvar *go = tv(1), *p = tv(0), *q = tv(0);
    struct pp a = {go, p, q}, b = {go, q, p};
    watch(pp_fn, pp_cb, &a, 0);
    ck_assert_int_eq(peek(q), 1);
    errno = 0;
    ck_assert_ptr_null(stm_atomically_watch(pp_fn, pp_cb, &b, 0));
    ck_assert_int_eq(errno, ELOOP);
    ck_assert_int_eq(peek(p), 0);
    ck_assert_int_eq(peek(q), 1);
}
END_TEST

/*
 * The bound.  stm.h: watchers run in rounds; the body's writes start
 * round 1 and the watchers of TVars written in round k run in round k+1;
 * "if it has not settled after STM_WATCH_ROUNDS rounds the commit fails
 * with -ELOOP".  A chain t0 -> W1 -> t1 -> ... -> Wn -> tn, nobody reading
 * tn, takes exactly n rounds: n = STM_WATCH_ROUNDS settles (round 32
 * writes nothing any watcher read), n = STM_WATCH_ROUNDS + 1 would need a
 * 33rd round.
 */
enum { CHAIN_MAX = STM_WATCH_ROUNDS + 1 };

static void chain_check(int n, bool settles)
{
    stm_tvar *t[CHAIN_MAX + 1];
    struct mirror m[CHAIN_MAX];
    for (int i = 0; i <= n; i++)
        t[i] = tv(0);
    for (int i = 0; i < n; i++) { /* in order: nobody reads t[i+1] yet */
        mirror_init(&m[i], t[i], t[i + 1], 1, 1);
        mirror_start(&m[i], 0);
    }
    for (int i = 0; i <= n; i++)
        ck_assert_int_eq(peek(t[i]), i);
    uint64_t r0 = watch_runs();
    int rc = stm_tvar_poke(t[0], 1000);
    if (settles) {
        ck_assert_int_eq(rc, 0);
        ck_assert_uint_eq(watch_runs() - r0, (uint64_t)n);
        for (int i = 0; i <= n; i++)
            ck_assert_int_eq(peek(t[i]), 1000 + i);
    } else {
        ck_assert_int_eq(rc, -ELOOP);
        ck_assert_uint_eq(watch_runs() - r0, (uint64_t)STM_WATCH_ROUNDS);
        for (int i = 0; i <= n; i++)
            ck_assert_int_eq(peek(t[i]), i);
    }
}

START_TEST(test_chain_of_rounds_settles)
{
    chain_check(STM_WATCH_ROUNDS, true);
}
END_TEST

START_TEST(test_chain_longer_fails)
{
    chain_check(STM_WATCH_ROUNDS + 1, false);
}
END_TEST

START_TEST(test_chain_shorter_settles)
{
    chain_check(STM_WATCH_ROUNDS - 1, true);
}
END_TEST

/* ==== 7. stm_unwatch ===================================================== */

START_TEST(test_unwatch_stops)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    poke(x, 2);
    ck_assert_int_eq(peek(m.calls), 2);
    unwatch(m.w);
    uint64_t r0 = watch_runs();
    for (int i = 3; i < 10; i++)
        poke(x, i);
    ck_assert_int_eq(peek(m.calls), 2);
    ck_assert_int_eq(peek(y), 2);
    ck_assert_uint_eq(watch_runs(), r0);
    ck_assert_int_eq(m.fn_runs, 2);
}
END_TEST

/* in a transaction that is discarded, stm_unwatch does nothing */
static int body_unwatch_abort(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    stm_abort(tx, 8);
}

START_TEST(test_unwatch_discarded)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    ck_assert_int_eq(stm_atomically(body_unwatch_abort, m.w), 8);
    poke(x, 2);
    ck_assert_int_eq(peek(y), 2);
    ck_assert_int_eq(peek(m.calls), 2);
    unwatch(m.w); /* still stoppable: the first stop never committed */
    poke(x, 3);
    ck_assert_int_eq(peek(y), 2);
}
END_TEST

/* in the same transaction, after stm_unwatch, no run of it */
static int body_unwatch_then_write(stm_tx *tx, void *arg)
{
    struct mirror *m = arg;
    stm_unwatch(tx, m->w);
    stm_write(tx, m->src, 50);
    return 0;
}

START_TEST(test_unwatch_then_write_same_tx)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    uint64_t r0 = watch_runs();
    ck_assert_int_eq(stm_atomically(body_unwatch_then_write, &m), 0);
    untrack(m.w);
    ck_assert_int_eq(peek(x), 50);
    ck_assert_int_eq(peek(y), 1);
    ck_assert_int_eq(peek(m.calls), 1);
    ck_assert_uint_eq(watch_runs(), r0);
}
END_TEST

/* cb stops its own watcher when it sees 3 */
static void stop_at_3_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct mirror *m = arg;
    mirror_cb(tx, v, arg);
    if (v == 3)
        stm_unwatch(tx, m->w);
}

START_TEST(test_unwatch_from_own_cb)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    m.w = watch(mirror_fn, stop_at_3_cb, &m, 0);
    poke(x, 2);
    ck_assert_int_eq(peek(y), 2);
    poke(x, 3); /* cb runs, writes y, stops itself: all in this commit */
    untrack(m.w);
    ck_assert_int_eq(peek(y), 3);
    ck_assert_int_eq(peek(m.calls), 3);
    uint64_t r0 = watch_runs();
    poke(x, 4);
    poke(x, 3);
    ck_assert_int_eq(peek(y), 3);
    ck_assert_int_eq(peek(m.calls), 3);
    ck_assert_uint_eq(watch_runs(), r0);
}
END_TEST

/* a watcher stopping itself from its first run */
static void stop_now_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct mirror *m = arg;
    mirror_cb(tx, v, arg);
    stm_unwatch(tx, m->w);
}

static int body_new_stop_in_cb(stm_tx *tx, void *arg)
{
    struct mirror *m = arg;
    m->w = stm_watch_new(tx, mirror_fn, stop_now_cb, m, 0);
    return 0;
}

START_TEST(test_unwatch_in_first_run)
{
    stm_tvar *x = tv(7), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    ck_assert_int_eq(stm_atomically(body_new_stop_in_cb, &m), 0);
    ck_assert_int_eq(peek(y), 7);
    ck_assert_int_eq(peek(m.calls), 1);
    uint64_t r0 = watch_runs();
    poke(x, 8);
    ck_assert_int_eq(peek(y), 7);
    ck_assert_uint_eq(watch_runs(), r0);
}
END_TEST

static int body_unwatch_null(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, NULL);
    stm_write(tx, arg, 4);
    return 6;
}

/* A callback that stops many watchers at once (more than the commit's
 * watcher bookkeeping had room for, so it grows while the callback runs):
 * they all stop, and the watcher that stopped them goes on working. */
enum { MANY = 40 };
struct stopper {
    stm_tvar *x;
    stm_watch *victims[MANY];
    stm_tvar *calls;
};

static intptr_t stopper_fn(stm_tx *tx, void *arg)
{
    return stm_read(tx, ((struct stopper *)arg)->x);
}

static void stopper_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct stopper *st = arg;
    stm_write(tx, st->calls, stm_read(tx, st->calls) + 1);
    if (v == 1)
        for (int i = 0; i < MANY; i++)
            stm_unwatch(tx, st->victims[i]);
}

START_TEST(test_unwatch_many_from_cb)
{
    struct stopper st;
    st.x = tv(0);
    st.calls = tv(0);
    stm_tvar *y = tv(0);
    struct mirror m[MANY];
    for (int i = 0; i < MANY; i++) {
        mirror_init(&m[i], y, NULL, 1, 0);
        st.victims[i] = mirror_start(&m[i], 0);
    }
    watch(stopper_fn, stopper_cb, &st, 0);
    /* (no commit has triggered MANY watchers on this thread yet) */
    poke(st.x, 1); /* stops them all */
    for (int i = 0; i < MANY; i++)
        untrack(st.victims[i]);
    ck_assert_int_eq(peek(st.calls), 2);
    poke(y, 2);
    for (int i = 0; i < MANY; i++)
        ck_assert_int_eq(peek(m[i].calls), 1); /* only their first run */
    poke(st.x, 2);
    ck_assert_int_eq(peek(st.calls), 3);
}
END_TEST

START_TEST(test_unwatch_null)
{
    stm_tvar *x = tv(0);
    ck_assert_int_eq(stm_atomically(body_unwatch_null, x), 6);
    ck_assert_int_eq(peek(x), 4);
}
END_TEST

/* stop one watcher and make its replacement in one transaction */
struct swap {
    struct mirror *old, *fresh;
};

static int body_swap(stm_tx *tx, void *arg)
{
    struct swap *s = arg;
    stm_unwatch(tx, s->old->w);
    s->fresh->w = stm_watch_new(tx, mirror_fn, mirror_cb, s->fresh, 0);
    return 0;
}

START_TEST(test_unwatch_and_create_one_tx)
{
    stm_tvar *x = tv(2), *y1 = tv(0), *y2 = tv(0);
    struct mirror m1, m2;
    mirror_init(&m1, x, y1, 1, 0);
    mirror_init(&m2, x, y2, 10, 0);
    mirror_start(&m1, 0);
    struct swap s = {&m1, &m2};
    ck_assert_int_eq(stm_atomically(body_swap, &s), 0);
    untrack(m1.w);
    track(m2.w);
    ck_assert_int_eq(peek(y2), 20);
    ck_assert_int_eq(peek(m2.calls), 1);
    ck_assert_int_eq(peek(m1.calls), 1);
    poke(x, 3);
    ck_assert_int_eq(peek(y1), 2);
    ck_assert_int_eq(peek(m1.calls), 1);
    ck_assert_int_eq(peek(y2), 30);
    ck_assert_int_eq(peek(m2.calls), 2);
}
END_TEST

/* made and stopped in one transaction: never evaluated */
static int body_new_and_stop(stm_tx *tx, void *arg)
{
    struct mirror *m = arg;
    stm_watch *w = stm_watch_new(tx, mirror_fn, mirror_cb, m, 0);
    stm_write(tx, m->src, 9);
    stm_unwatch(tx, w);
    return 0;
}

START_TEST(test_new_and_stop_one_tx)
{
    stm_tvar *x = tv(2), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    uint64_t r0 = watch_runs();
    ck_assert_int_eq(stm_atomically(body_new_and_stop, &m), 0);
    ck_assert_int_eq(peek(x), 9);
    ck_assert_int_eq(m.fn_runs, 0);
    ck_assert_int_eq(peek(m.calls), 0);
    poke(x, 10);
    ck_assert_int_eq(m.fn_runs, 0);
    ck_assert_uint_eq(watch_runs(), r0);
    tv_free(x); /* nothing reads it: not misuse */
}
END_TEST

/* after the stop, the TVars it read may be freed */
START_TEST(test_unwatch_then_free_tvar)
{
    stm_tvar *x = tv(2), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
    unwatch(m.w);
    tv_free(x);
    stm__reclaim_flush();
    ck_assert_int_eq(peek(y), 2);
}
END_TEST

/* ==== 8. misuse ========================================================== */

#include "misuse.h"

static intptr_t const_fn(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 1;
}

static int body_new_null_fn(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_watch_new(tx, NULL, NULL, NULL, 0);
    return 0;
}

START_TEST(test_misuse_new_null_fn)
{
    expect_abort("stm_watch_new");
    stm_atomically(body_new_null_fn, NULL);
    ck_abort_msg("stm_watch_new with a NULL fn returned");
}
END_TEST

static int body_new_bad_flags(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_watch_new(tx, const_fn, NULL, NULL, 2);
    return 0;
}

START_TEST(test_misuse_new_unknown_flags)
{
    expect_abort("stm_watch_new");
    stm_atomically(body_new_bad_flags, NULL);
    ck_abort_msg("stm_watch_new with unknown flags returned");
}
END_TEST

static stm_tx *saved_tx;

static int body_save_tx(stm_tx *tx, void *arg)
{
    (void)arg;
    saved_tx = tx;
    return 0;
}

START_TEST(test_misuse_new_outside_tx)
{
    ck_assert_int_eq(stm_atomically(body_save_tx, NULL), 0);
    expect_abort("stm_watch_new");
    stm_watch_new(saved_tx, const_fn, NULL, NULL, 0);
    ck_abort_msg("stm_watch_new outside a transaction returned");
}
END_TEST

static int body_atomically_watch(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    stm_atomically_watch(const_fn, NULL, NULL, 0);
    return 0;
}

START_TEST(test_misuse_atomically_watch_inside_tx)
{
    expect_abort("stm_atomically_watch");
    stm_atomically(body_atomically_watch, NULL);
    ck_abort_msg("stm_atomically_watch inside a transaction returned");
}
END_TEST

START_TEST(test_misuse_free_watched_tvar)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
#ifdef STM_TEST_EMBEDDED
    expect_abort("stm_tvar_destroy"); /* (tests/testutil.h: destroy + stm_free) */
#else
    expect_abort("stm_tvar_free");
#endif
    stm_tvar_free(x);
    ck_abort_msg("freeing a watched TVar returned");
}
END_TEST

/* inside a transaction the check is made at its commit, as the call
 * outside one makes it at once */
static int body_free_arg(stm_tx *tx, void *arg)
{
    (void)tx;
    stm_tvar_free(arg);
    return 0;
}

START_TEST(test_misuse_free_watched_tvar_in_tx)
{
    stm_tvar *x = tv(1), *y = tv(0);
    struct mirror m;
    mirror_init(&m, x, y, 1, 0);
    mirror_start(&m, 0);
#ifdef STM_TEST_EMBEDDED
    expect_abort("stm_tvar_destroy"); /* (tests/testutil.h: destroy + stm_free) */
#else
    expect_abort("stm_tvar_free");
#endif
    stm_atomically(body_free_arg, x);
    ck_abort_msg("a transaction that freed a watched TVar committed");
}
END_TEST

/* the TVar was read on an earlier run only: freeing it is fine */
START_TEST(test_free_tvar_no_longer_read)
{
    struct pick p = {tv(0), tv(10), tv(20), tv(0)};
    watch(pick_fn, pick_cb, &p, 0);
    poke(p.flag, 1);
    tv_free(p.a);
    stm__reclaim_flush();
    poke(p.b, 5);
    ck_assert_int_eq(peek(p.out), 5);
}
END_TEST

/* ==== 9. allocation failure ============================================== */

/* fn reads x, y and a deadline an hour away (a timer slot): a watcher that
 * needs a registration array and a timer-heap slot */
struct big {
    stm_tvar *x, *y, *out;
    int64_t far;
};

static intptr_t big_fn(stm_tx *tx, void *arg)
{
    struct big *b = arg;
    (void)stm_elapsed(tx, b->far);
    return stm_read(tx, b->x) + stm_read(tx, b->y);
}

static void big_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct big *b = arg;
    stm_write(tx, b->out, v + 1);
}

START_TEST(test_nomem_create)
{
    struct big b = {tv(1), tv(2), tv(0), stm_now() + STM_SEC(3600)};
    ck_assert_int_eq(stm_atomically(body_read_x, b.x), 1); /* warm this thread */
    int failures = 0;
    stm_watch *w = NULL;
    for (long n = 0; n < 1000 && w == NULL; n++) {
        stm__fault_alloc_after(n);
        errno = 0;
        w = stm_atomically_watch(big_fn, big_cb, &b, 0);
        if (w != NULL)
            track(w);
        int e = errno;
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        if (w != NULL)
            break;
        failures++;
        ck_assert_msg(fired, "n=%ld: failed without a failed allocation", n);
        ck_assert_msg(e == ENOMEM, "n=%ld: errno %d", n, e);
        ck_assert_msg(peek(b.out) == 0, "n=%ld: the callback's write is visible", n);
        /* nothing half made: x's writes run nothing */
        uint64_t r0 = watch_runs();
        poke(b.x, peek(b.x) + 1);
        ck_assert_msg(watch_runs() == r0, "n=%ld: a failed creation left a watcher", n);
        ck_assert_int_eq(peek(b.out), 0);
    }
    ck_assert_ptr_nonnull(w);
    ck_assert_int_ge(failures, 1);
    intptr_t x = peek(b.x);
    ck_assert_int_eq(peek(b.out), x + 2 + 1);
    poke(b.y, 10);
    ck_assert_int_eq(peek(b.out), x + 10 + 1);
    poke(b.x, 0);
    ck_assert_int_eq(peek(b.out), 11);
    /* and a normal creation works */
    struct big b2 = {b.x, b.y, tv(0), STM_NEVER};
    watch(big_fn, big_cb, &b2, 0);
    ck_assert_int_eq(peek(b2.out), 11);
    poke(b.x, 5);
    ck_assert_int_eq(peek(b.out), 16);
    ck_assert_int_eq(peek(b2.out), 16);
    unwatch(w);
}
END_TEST

/* fn reads `a`, or (flag set) b, c and d and a deadline: the switch needs a
 * new registration array and a timer slot */
struct sw {
    stm_tvar *flag, *a, *b, *c, *d, *out, *z;
    int64_t far;
};

static intptr_t sw_fn(stm_tx *tx, void *arg)
{
    struct sw *s = arg;
    if (!stm_read(tx, s->flag))
        return stm_read(tx, s->a);
    (void)stm_elapsed(tx, s->far);
    return stm_read(tx, s->b) + stm_read(tx, s->c) + stm_read(tx, s->d);
}

static void sw_cb(stm_tx *tx, intptr_t v, void *arg)
{
    struct sw *s = arg;
    stm_write(tx, s->out, v);
}

static int body_switch(stm_tx *tx, void *arg)
{
    struct sw *s = arg;
    stm_write(tx, s->z, stm_read(tx, s->z) + 1);
    stm_write(tx, s->flag, 1);
    return 0;
}

START_TEST(test_nomem_trigger)
{
    struct sw s = {tv(0), tv(1), tv(10), tv(20), tv(30), tv(0), tv(0), stm_now() + STM_SEC(3600)};
    watch(sw_fn, sw_cb, &s, 0);
    ck_assert_int_eq(peek(s.out), 1);
    int failures = 0, rc = -1;
    for (long n = 0; n < 1000; n++) {
        stm__fault_alloc_after(n);
        rc = stm_atomically(body_switch, &s);
        bool fired = stm__fault_alloc_fired();
        stm__fault_alloc_after(-1);
        if (rc == 0)
            break;
        failures++;
        ck_assert_msg(rc == -ENOMEM, "n=%ld: rc=%d", n, rc);
        ck_assert(fired);
        ck_assert_int_eq(peek(s.flag), 0);
        ck_assert_int_eq(peek(s.z), 0);
        ck_assert_int_eq(peek(s.out), 1);
        /* the watcher is as it was: reads a, not b */
        uint64_t r0 = watch_runs();
        poke(s.b, 10);
        ck_assert_msg(watch_runs() == r0, "n=%ld: a failed commit moved the watcher", n);
        poke(s.a, 1);
        ck_assert_uint_eq(watch_runs(), r0 + 1);
        ck_assert_int_eq(peek(s.out), 1);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_ge(failures, 1);
    ck_assert_int_eq(peek(s.z), 1);
    ck_assert_int_eq(peek(s.out), 60);
    uint64_t r0 = watch_runs();
    poke(s.a, 2);
    ck_assert_uint_eq(watch_runs(), r0);
    poke(s.d, 31);
    ck_assert_int_eq(peek(s.out), 61);
}
END_TEST

/* ==== the suite ========================================================= */

static Suite *watch_suite(void)
{
    Suite *s = suite_create("watch");
    TCase *tc = tcase_create("create");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_create_runs_once_committed);
    tcase_add_test(tc, test_create_discarded_by_abort);
    tcase_add_test(tc, test_create_discarded_by_or_else_branch);
    tcase_add_test(tc, test_create_in_body_runs_at_commit);
    tcase_add_test(tc, test_create_in_callback);
    tcase_add_test(tc, test_create_veto_positive_code);
    tcase_add_test(tc, test_create_veto_negative_errno);
    tcase_add_test(tc, test_create_veto_in_fn);
    tcase_add_test(tc, test_create_veto_fails_body);
    suite_add_tcase(s, tc);

    tc = tcase_create("react");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_double_kept);
    tcase_add_test(tc, test_unread_tvar_runs_nothing);
    tcase_add_test(tc, test_deps_follow_last_run);
    tcase_add_test(tc, test_deps_repeated_reads);
    tcase_add_test(tc, test_deps_from_big_write_set);
    tcase_add_test(tc, test_deps_many_tvars);
    tcase_add_test(tc, test_many_watchers_one_tvar);
    suite_add_tcase(s, tc);

    tc = tcase_create("changes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_changes_only);
    tcase_add_test(tc, test_changes_only_first_value_zero);
    tcase_add_test(tc, test_every_commit_without_flag);
    suite_add_tcase(s, tc);

    tc = tcase_create("veto");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cb_veto);
    tcase_add_test(tc, test_poke_returns);
    tcase_add_test(tc, test_fn_veto);
    tcase_add_test(tc, test_null_cb_invariant);
    suite_add_tcase(s, tc);

    tc = tcase_create("cascade");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_cascade_one_commit);
    tcase_add_test(tc, test_self_clamp_settles);
    tcase_add_test(tc, test_self_step_settles);
    tcase_add_test(tc, test_self_step_settles_at_creation);
    tcase_add_test(tc, test_ping_pong_eloop);
    tcase_add_test(tc, test_create_eloop);
    tcase_add_test(tc, test_chain_of_rounds_settles);
    tcase_add_test(tc, test_chain_longer_fails);
    tcase_add_test(tc, test_chain_shorter_settles);
    suite_add_tcase(s, tc);

    tc = tcase_create("unwatch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_unwatch_stops);
    tcase_add_test(tc, test_unwatch_discarded);
    tcase_add_test(tc, test_unwatch_then_write_same_tx);
    tcase_add_test(tc, test_unwatch_from_own_cb);
    tcase_add_test(tc, test_unwatch_in_first_run);
    tcase_add_test(tc, test_unwatch_many_from_cb);
    tcase_add_test(tc, test_unwatch_null);
    tcase_add_test(tc, test_unwatch_and_create_one_tx);
    tcase_add_test(tc, test_new_and_stop_one_tx);
    tcase_add_test(tc, test_unwatch_then_free_tvar);
    tcase_add_test(tc, test_free_tvar_no_longer_read);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_misuse_new_null_fn, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_new_unknown_flags, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_new_outside_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_atomically_watch_inside_tx, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_free_watched_tvar, SIGABRT);
    tcase_add_test_raise_signal(tc, test_misuse_free_watched_tvar_in_tx, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("nomem");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_nomem_create);
    tcase_add_test(tc, test_nomem_trigger);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(watch_suite)
