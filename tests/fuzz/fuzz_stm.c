/*
 * fuzz_stm.c - libFuzzer target: a schedule of operations checked against a
 * sequential model.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The input is read as a schedule of 3-byte operations (opcode, p, q) over
 * a few TVars, watchers and deadlines on the VIRTUAL clock, run by one
 * thread plus, for blocking waits, one helper thread whose steps are
 * ordered by a user Waiter (the main thread waits until the helper is
 * asleep, or done, before the next operation).  After every operation the
 * library is compared with a sequential model of what stm.h promises:
 *
 *   - every TVar's value (stm_tvar_peek(), and a declared read-only
 *     transaction's snapshot);
 *   - what each transaction returned: stm_or_else() outcomes, stm_abort()
 *     codes, -EDEADLK for a retry with nothing to wait for, -ETIMEDOUT
 *     from stm_atomically_until() with a passed deadline;
 *   - the watcher callbacks the operation caused: which watchers, the
 *     values they were given (STM_WATCH_CHANGES_ONLY respected) and the
 *     virtual now they saw (a deadline run sees its deadline), compared
 *     as a multiset per operation, and deadline runs in deadline order;
 *   - the helper's blocked transaction: woken by the commit that makes its
 *     condition true, or at its deadline, seeing that deadline as its now.
 *
 * The same code runs without libFuzzer: tests/fuzz/replay.c feeds it the
 * committed corpus (tests/fuzz/corpus/) and seeded random schedules in
 * `make check`.  A mismatch prints what differed and abort()s.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_stm.h"

enum {
    NV = 4,      /* value TVars */
    ND = 2,      /* deadline TVars (absolute virtual ns, 0 = none) */
    NW = 4,      /* watcher slots */
    MAXEV = 256, /* callback events per operation */
    ABORT_CODE = 5,
};

#define UNIT STM_MSEC(1) /* virtual time step */
#define T0 STM_SEC(1000) /* the virtual clock's start */

static stm_tvar *var[NV], *dlv[ND];

struct event {
    int w;
    intptr_t value;
    int64_t now;
};

/* ---- the library side ---- */

struct lwatch {
    stm_watch *h;
    int id;
    int src, dl; /* dl: deadline TVar index or -1 */
};

static struct lwatch lw[NW];
static struct event lev[MAXEV];
static int nlev;
static bool lev_overflow;

struct pending_ev {
    int w;
    intptr_t value;
    int64_t now;
};

static void ev_commit(void *arg)
{
    struct pending_ev *p = arg;
    if (nlev < MAXEV)
        lev[nlev++] = (struct event){p->w, p->value, p->now};
    else
        lev_overflow = true;
    free(p);
}

static void ev_drop(void *arg)
{
    free(arg);
}

static intptr_t watch_fn(stm_tx *tx, void *arg)
{
    struct lwatch *w = arg;
    intptr_t v = stm_read(tx, var[w->src]) * 4;
    if (w->dl >= 0) {
        int64_t d = (int64_t)stm_read(tx, dlv[w->dl]);
        if (d != 0)
            v += stm_elapsed(tx, d) ? 1 : 2;
    }
    return v;
}

static void watch_cb(stm_tx *tx, intptr_t value, void *arg)
{
    struct lwatch *w = arg;
    struct pending_ev *p = malloc(sizeof *p);
    if (p == NULL)
        abort();
    *p = (struct pending_ev){w->id, value, stm_tx_now(tx)};
    /* the event counts only if this run commits */
    stm_on_abort(tx, ev_drop, p);
    stm_after_commit(tx, ev_commit, p);
}

/* ---- the model ---- */

struct mwatch {
    bool active;
    int src, dl;
    unsigned flags;
    bool given;        /* cb has been called */
    intptr_t last;     /* the last value cb was given */
    int64_t deadline;  /* armed deadline, or 0 */
    uint64_t armed_at; /* order in which the deadline was armed (ties) */
};

static intptr_t mv[NV];
static int64_t md[ND];
static int64_t mnow;
static struct mwatch mw[NW];
static struct event mev[MAXEV];
static int nmev;
static uint64_t arm_seq;

static void m_emit(int w, intptr_t value, int64_t now)
{
    if (nmev < MAXEV)
        mev[nmev++] = (struct event){w, value, now};
}

/* Run model watcher w at virtual time now (fn, then cb as promised). */
static void m_run(int w, int64_t now)
{
    struct mwatch *m = &mw[w];
    intptr_t v = mv[m->src] * 4;
    m->deadline = 0;
    if (m->dl >= 0 && md[m->dl] != 0) {
        if (now >= md[m->dl]) {
            v += 1;
        } else {
            v += 2;
            m->deadline = md[m->dl];
            m->armed_at = ++arm_seq;
        }
    }
    if (!(m->flags & STM_WATCH_CHANGES_ONLY) || !m->given || m->last != v)
        m_emit(w, v, now);
    m->given = true;
    m->last = v;
}

/* A commit wrote the value TVars in vmask and the deadline TVars in dmask. */
static void m_commit(unsigned vmask, unsigned dmask)
{
    for (int w = 0; w < NW; w++) {
        struct mwatch *m = &mw[w];
        if (!m->active)
            continue;
        if ((vmask >> m->src & 1) || (m->dl >= 0 && (dmask >> m->dl & 1)))
            m_run(w, mnow);
    }
}

/* ---- the helper: one blocked transaction at a time ---- */

struct hwaiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool notified;
    bool in_wait;
};

static struct hwaiter *helper_waiter; /* the helper thread's */
static pthread_t helper_tid;
static bool helper_running;         /* main thread's view */
static atomic_bool helper_finished; /* set by the helper */
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t state_cv = PTHREAD_COND_INITIALIZER;

struct helper_job {
    int a;
    intptr_t k;
    int64_t deadline;
    /* results */
    int rc;
    intptr_t seen;
    int64_t seen_now;
};
static struct helper_job job;

/* model of the job */
static bool mh_active;
static int mh_rc;
static intptr_t mh_seen;
static int64_t mh_now;

static __thread bool is_helper;

static void *hw_create(void *ctx)
{
    (void)ctx;
    struct hwaiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (is_helper) {
        pthread_mutex_lock(&state_mu);
        helper_waiter = w;
        pthread_mutex_unlock(&state_mu);
    }
    return w;
}

static void hw_destroy(void *p)
{
    struct hwaiter *w = p;
    pthread_mutex_lock(&state_mu);
    if (helper_waiter == w)
        helper_waiter = NULL;
    pthread_mutex_unlock(&state_mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Virtual clock only: every wait is without a real time-out (the library
 * passes STM_NEVER, or a real deadline that the fuzz inputs never use). */
static int hw_wait(void *p, int64_t deadline)
{
    (void)deadline;
    struct hwaiter *w = p;
    pthread_mutex_lock(&state_mu);
    w->in_wait = true;
    pthread_cond_broadcast(&state_cv);
    while (!w->notified)
        pthread_cond_wait(&state_cv, &state_mu);
    w->notified = false;
    w->in_wait = false;
    pthread_mutex_unlock(&state_mu);
    return 0;
}

static void hw_notify(void *p)
{
    struct hwaiter *w = p;
    pthread_mutex_lock(&state_mu);
    w->notified = true;
    pthread_cond_broadcast(&state_cv);
    pthread_mutex_unlock(&state_mu);
}

static const struct stm_waiter_ops fuzz_waiter = {
    .name = "fuzz",
    .create = hw_create,
    .destroy = hw_destroy,
    .wait = hw_wait,
    .notify = hw_notify,
};

static int helper_body(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t x = stm_read(tx, var[job.a]);
    if (x == job.k) {
        job.seen = x;
        job.seen_now = stm_tx_now(tx);
        return 1;
    }
    if (stm_elapsed(tx, job.deadline)) {
        job.seen = x;
        job.seen_now = stm_tx_now(tx);
        return 2;
    }
    stm_retry(tx);
}

static void *helper_main(void *arg)
{
    (void)arg;
    is_helper = true;
    job.rc = stm_atomically(helper_body, NULL);
    atomic_store(&helper_finished, true);
    pthread_mutex_lock(&state_mu);
    pthread_cond_broadcast(&state_cv);
    pthread_mutex_unlock(&state_mu);
    return NULL;
}

/* Wait until the helper has settled: finished, or asleep with no pending
 * notification. */
static void helper_settle(void)
{
    if (!helper_running)
        return;
    pthread_mutex_lock(&state_mu);
    for (;;) {
        if (atomic_load(&helper_finished))
            break;
        struct hwaiter *w = helper_waiter;
        if (w != NULL && w->in_wait && !w->notified)
            break;
        pthread_cond_wait(&state_cv, &state_mu);
    }
    pthread_mutex_unlock(&state_mu);
}

/* ---- checking ---- */

struct stm_fuzz_counts stm_fuzz_counts;

static const uint8_t *cur_data;
static size_t cur_size, cur_op;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_stm: model mismatch at operation %zu: ", cur_op);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfuzz_stm: input (%zu bytes):", cur_size);
    for (size_t i = 0; i < cur_size; i++)
        fprintf(stderr, "%s%02x", i % 3 ? "" : " ", cur_data[i]);
    fprintf(stderr, "\n");
    abort();
}

static int ev_cmp(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->now != y->now)
        return x->now < y->now ? -1 : 1;
    if (x->w != y->w)
        return x->w - y->w;
    return (x->value > y->value) - (x->value < y->value);
}

static void check_events(void)
{
    if (lev_overflow)
        fail("too many events");
    for (int i = 1; i < nlev; i++)
        if (lev[i].now < lev[i - 1].now)
            fail("callback at %" PRId64 " after one at %" PRId64, lev[i].now, lev[i - 1].now);
    qsort(lev, (size_t)nlev, sizeof *lev, ev_cmp);
    qsort(mev, (size_t)nmev, sizeof *mev, ev_cmp);
    int n = nlev > nmev ? nlev : nmev;
    for (int i = 0; i < n; i++) {
        if (i >= nlev || i >= nmev || lev[i].w != mev[i].w || lev[i].value != mev[i].value ||
            lev[i].now != mev[i].now) {
            fprintf(stderr, "library events:");
            for (int j = 0; j < nlev; j++)
                fprintf(stderr, " w%d=%" PRIdPTR "@%" PRId64, lev[j].w, lev[j].value,
                        lev[j].now - T0);
            fprintf(stderr, "\nmodel events:  ");
            for (int j = 0; j < nmev; j++)
                fprintf(stderr, " w%d=%" PRIdPTR "@%" PRId64, mev[j].w, mev[j].value,
                        mev[j].now - T0);
            fprintf(stderr, "\n");
            fail("watcher callbacks differ (%d from the library, %d from the model)", nlev, nmev);
        }
    }
    stm_fuzz_counts.callbacks += (unsigned long)nlev;
    nlev = nmev = 0;
}

static void check_state(void)
{
    for (int i = 0; i < NV; i++)
        if (stm_tvar_peek(var[i]) != mv[i])
            fail("var %d is %" PRIdPTR ", model %" PRIdPTR, i, stm_tvar_peek(var[i]), mv[i]);
    for (int i = 0; i < ND; i++)
        if ((int64_t)stm_tvar_peek(dlv[i]) != md[i])
            fail("deadline var %d differs", i);
    if (stm_now() != mnow)
        fail("clock %" PRId64 ", model %" PRId64, stm_now() - T0, mnow - T0);
    if (helper_running && atomic_load(&helper_finished)) {
        pthread_join(helper_tid, NULL);
        helper_running = false;
        if (!mh_active)
            fail("helper finished (rc %d, saw %" PRIdPTR " at %" PRId64 "), the model still waits",
                 job.rc, job.seen, job.seen_now - T0);
        if (mh_rc == 2 && mh_now == job.deadline && mh_now > T0)
            stm_fuzz_counts.helper_deadline++;
        else
            stm_fuzz_counts.helper_other++;
        if (job.rc != mh_rc || job.seen != mh_seen || job.seen_now != mh_now)
            fail("helper returned %d, saw %" PRIdPTR " at %" PRId64 "; model %d, %" PRIdPTR
                 " at %" PRId64,
                 job.rc, job.seen, job.seen_now - T0, mh_rc, mh_seen, mh_now - T0);
        mh_active = false;
    }
    if (!helper_running && mh_active)
        fail("the model's helper finished (rc %d at %" PRId64 "), the library's still waits", mh_rc,
             mh_now - T0);
    check_events();
}

/* model: the helper sees a commit (or its start) */
static void mh_step(void)
{
    if (!mh_active || mh_rc != 0)
        return;
    if (mv[job.a] == job.k) {
        mh_rc = 1, mh_seen = mv[job.a], mh_now = mnow;
    } else if (mnow >= job.deadline) {
        mh_rc = 2, mh_seen = mv[job.a], mh_now = mnow;
    }
}

/* model: still waiting after this operation? */
static bool mh_waiting(void)
{
    return mh_active && mh_rc == 0;
}

/* ---- the operations ---- */

struct txargs {
    int a, b, c;
    intptr_t x, y;
};

static int tx_write2(stm_tx *tx, void *arg)
{
    struct txargs *t = arg;
    stm_write(tx, var[t->a], t->x);
    stm_write(tx, var[t->b], t->y);
    return 0;
}

static int branch_first(stm_tx *tx, void *arg)
{
    struct txargs *t = arg;
    intptr_t v = stm_read(tx, var[t->a]);
    stm_write(tx, var[t->c], 100); /* dropped if this branch retries */
    if (v == 0)
        stm_retry(tx);
    stm_write(tx, var[t->c], t->x);
    return 1;
}

static int branch_second(stm_tx *tx, void *arg)
{
    struct txargs *t = arg;
    stm_write(tx, var[t->b], t->y);
    return 2;
}

static int tx_orelse(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, branch_first, branch_second, arg);
}

static int tx_abort(stm_tx *tx, void *arg)
{
    struct txargs *t = arg;
    stm_write(tx, var[t->a], t->x);
    stm_abort(tx, ABORT_CODE);
}

static int tx_retry_nothing(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

static int tx_until(stm_tx *tx, void *arg)
{
    struct txargs *t = arg;
    if (stm_read(tx, var[t->a]) != t->x)
        stm_retry(tx);
    return 3;
}

static int tx_snapshot(stm_tx *tx, void *arg)
{
    intptr_t *out = arg;
    for (int i = 0; i < NV; i++)
        out[i] = stm_read(tx, var[i]);
    return 0;
}

static int unwatch_body(stm_tx *tx, void *arg)
{
    stm_unwatch(tx, arg);
    return 0;
}

static void expect_rc(const char *what, int rc, int want)
{
    if (rc != want)
        fail("%s returned %d, model %d", what, rc, want);
}

static void op_run(uint8_t op, uint8_t p, uint8_t q)
{
    int a = p % NV, b = (p / NV) % NV, c = (p / 16) % NV;
    intptr_t x = q % 4, y = (q / 4) % 4;
    switch (op % 13) {
    case 0: /* poke */
        expect_rc("stm_tvar_poke", stm_tvar_poke(var[a], x), 0);
        mv[a] = x;
        m_commit(1u << a, 0);
        mh_step();
        break;
    case 1: { /* a transaction writing two TVars */
        struct txargs t = {.a = a, .b = b, .x = x, .y = y};
        expect_rc("write2", stm_atomically(tx_write2, &t), 0);
        mv[a] = x;
        mv[b] = y;
        m_commit(1u << a | 1u << b, 0);
        mh_step();
        break;
    }
    case 2:
    case 3: { /* advance the virtual clock */
        int64_t step = (int64_t)(q % 32) * UNIT / 2;
        int64_t target = mnow + step;
        /* due deadlines in order: watchers (by deadline, then arming
         * order) and the helper */
        for (;;) {
            int best = -1;
            for (int w = 0; w < NW; w++)
                if (mw[w].active && mw[w].deadline != 0 && mw[w].deadline <= target &&
                    (best < 0 || mw[w].deadline < mw[best].deadline ||
                     (mw[w].deadline == mw[best].deadline && mw[w].armed_at < mw[best].armed_at)))
                    best = w;
            int64_t hd = mh_waiting() && job.deadline <= target ? job.deadline : INT64_MAX;
            if (best < 0 && hd == INT64_MAX)
                break;
            if (best >= 0 && mw[best].deadline <= hd) {
                stm_fuzz_counts.deadline_runs++;
                if (mw[best].deadline > mnow)
                    mnow = mw[best].deadline;
                m_run(best, mnow > mw[best].deadline ? mnow : mw[best].deadline);
            } else {
                if (hd > mnow)
                    mnow = hd;
                mh_step();
            }
        }
        mnow = target;
        stm_clock_advance(step);
        break;
    }
    case 4: { /* a watcher */
        int w = p % NW;
        if (mw[w].active)
            break;
        lw[w] = (struct lwatch){.id = w, .src = (p / NW) % NV, .dl = q % 3 == 2 ? -1 : q % 3};
        unsigned flags = (q / 4) & 1 ? STM_WATCH_CHANGES_ONLY : 0;
        mw[w] = (struct mwatch){.active = true, .src = lw[w].src, .dl = lw[w].dl, .flags = flags};
        lw[w].h = stm_atomically_watch(watch_fn, watch_cb, &lw[w], flags);
        if (lw[w].h == NULL)
            fail("stm_atomically_watch: %s", strerror(errno));
        m_run(w, mnow);
        break;
    }
    case 5: { /* stop a watcher */
        int w = p % NW;
        if (!mw[w].active)
            break;
        stm_watch *h = lw[w].h;
        expect_rc("unwatch", stm_atomically(unwatch_body, h), 0);
        mw[w].active = false;
        break;
    }
    case 6: { /* set a deadline TVar */
        int d = p % ND;
        int64_t v = q % 8 == 0 ? 0 : mnow + (int64_t)(q % 40) * UNIT / 2 - 4 * UNIT;
        if (v < 0)
            v = 0;
        expect_rc("poke deadline", stm_tvar_poke(dlv[d], (intptr_t)v), 0);
        md[d] = v;
        m_commit(0, 1u << d);
        break;
    }
    case 7: { /* or_else */
        struct txargs t = {.a = a, .b = b, .c = c, .x = x, .y = y};
        int want;
        unsigned mask;
        if (mv[a] == 0) {
            want = 2, mv[b] = y, mask = 1u << b;
        } else {
            want = 1, mv[c] = x, mask = 1u << c;
        }
        expect_rc("or_else", stm_atomically(tx_orelse, &t), want);
        m_commit(mask, 0);
        mh_step();
        break;
    }
    case 8: { /* abort */
        struct txargs t = {.a = a, .x = x};
        expect_rc("abort", stm_atomically(tx_abort, &t), ABORT_CODE);
        break;
    }
    case 9: /* retry with nothing to wait for */
        expect_rc("retry of nothing", stm_atomically(tx_retry_nothing, NULL), -EDEADLK);
        break;
    case 10: { /* until with a deadline that has come */
        struct txargs t = {.a = a, .x = x};
        int64_t dl = mnow - (int64_t)(q / 16) * UNIT;
        expect_rc("until", stm_atomically_until(tx_until, &t, dl), mv[a] == x ? 3 : -ETIMEDOUT);
        break;
    }
    case 11: { /* a declared read-only snapshot */
        intptr_t snap[NV];
        expect_rc("snapshot", stm_atomically_ro(tx_snapshot, snap), 0);
        for (int i = 0; i < NV; i++)
            if (snap[i] != mv[i])
                fail("snapshot var %d is %" PRIdPTR ", model %" PRIdPTR, i, snap[i], mv[i]);
        break;
    }
    case 12: /* start the helper's blocking transaction */
        if (helper_running || mh_active)
            break;
        job = (struct helper_job){.a = a, .k = x, .deadline = mnow + (int64_t)(q % 16) * UNIT};
        mh_active = true;
        mh_rc = 0;
        pthread_mutex_lock(&state_mu);
        helper_waiter = NULL;
        pthread_mutex_unlock(&state_mu);
        mh_step();
        atomic_store(&helper_finished, false);
        if (pthread_create(&helper_tid, NULL, helper_main, NULL) != 0)
            abort();
        helper_running = true;
        break;
    }
    helper_settle();
}

int stm_fuzz_one(const uint8_t *data, size_t size)
{
    static bool inited;
    if (!inited) {
        if (stm_set_waiter_ops(&fuzz_waiter) != 0)
            abort();
        inited = true;
    }
    if (stm_clock_virtual(T0) != 0)
        fail("stm_clock_virtual failed");
    mnow = T0;
    for (int i = 0; i < NV; i++) {
        var[i] = stm_tvar_new(0);
        mv[i] = 0;
    }
    for (int i = 0; i < ND; i++) {
        dlv[i] = stm_tvar_new(0);
        md[i] = 0;
    }
    memset(mw, 0, sizeof mw);
    memset(lw, 0, sizeof lw);
    nlev = nmev = 0;
    lev_overflow = false;
    cur_data = data;
    cur_size = size;
    for (cur_op = 0; cur_op + 3 <= size && cur_op < 3 * 200; cur_op += 3) {
        op_run(data[cur_op], data[cur_op + 1], data[cur_op + 2]);
        check_state();
    }
    stm_fuzz_counts.ops += cur_op / 3;
    cur_op = size;
    /* finish: the helper gives up at its deadline; stop the watchers */
    if (helper_running) {
        /* at most 15 units ahead: one advance of the operation's range */
        int64_t left = job.deadline - mnow;
        op_run(2, 0, (uint8_t)(left > 0 ? left / (UNIT / 2) : 0));
        check_state();
        if (helper_running)
            fail("the helper did not finish at its deadline");
    }
    for (int w = 0; w < NW; w++)
        if (mw[w].active)
            if (stm_atomically(unwatch_body, lw[w].h) != 0)
                fail("unwatch at the end");
    stm_clock_real();
    for (int i = 0; i < NV; i++)
        stm_tvar_free(var[i]);
    for (int i = 0; i < ND; i++)
        stm_tvar_free(dlv[i]);
    stm_shutdown();
    return 0;
}
