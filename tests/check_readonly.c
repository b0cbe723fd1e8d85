/*
 * check_readonly.c - stm_atomically_ro: declared read-only transactions.
 *
 * What is checked: reads see committed values; a read-only attempt keeps
 * no read set, so a read that finds a TVar changed since the snapshot
 * restarts the attempt where a normal transaction would extend its
 * snapshot, and after such a restart the body, and the thread's next
 * STM__RO_NORMAL_RUN read-only calls, run as normal transactions; opacity under concurrent writers; the fall-back to a normal
 * transaction when the body writes, retries (and then waits on its reads
 * and its deadline), uses stm_or_else, stm_alloc, stm_free or
 * stm_tvar_free; nesting in both directions; stm_abort, hooks, stm_defer
 * and the attempt's clocks inside a read-only attempt; statistics; misuse.
 *
 * Bodies count their attempts: the count is how a test tells a read-only
 * attempt that committed from one that fell back or restarted.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

#include <signal.h>

#include "stm-internal.h" /* stm__fault_alloc_after: tests link statically */

#include "misuse.h"

/* ---- reads ---------------------------------------------------------------- */

struct reads {
    stm_tvar *a, *b;
    intptr_t ra, rb;
    int attempts;
};

static int body_read_two(stm_tx *tx, void *arg)
{
    struct reads *r = arg;
    r->attempts++;
    r->ra = stm_read(tx, r->a);
    r->rb = stm_read(tx, r->b);
    return (int)(r->ra + r->rb);
}

enum { MANY = 5000 };

struct many_reads {
    stm_tvar **v;
    long sum;
};

static int body_sum(stm_tx *tx, void *arg)
{
    struct many_reads *m = arg;
    m->sum = 0;
    for (int i = 0; i < MANY; i++)
        m->sum += stm_read(tx, m->v[i]);
    return 0;
}

START_TEST(test_reads_committed_values)
{
    struct reads r = {.a = stm_tvar_new(40), .b = stm_tvar_new(2)};
    ck_assert_ptr_nonnull(r.a);
    ck_assert_ptr_nonnull(r.b);
    ck_assert_int_eq(stm_atomically_ro(body_read_two, &r), 42);
    ck_assert_int_eq(r.ra, 40);
    ck_assert_int_eq(r.rb, 2);
    ck_assert_int_eq(r.attempts, 1);

    /* a later commit is seen by the next read-only transaction */
    ck_assert_int_eq(stm_tvar_poke(r.a, 100), 0);
    r.attempts = 0;
    ck_assert_int_eq(stm_atomically_ro(body_read_two, &r), 102);
    ck_assert_int_eq(r.ra, 100);
    ck_assert_int_eq(r.attempts, 1);

    /* many reads in one attempt (more than a read set starts with) */
    stm_tvar **v = calloc(MANY, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < MANY; i++) {
        v[i] = stm_tvar_new(i);
        ck_assert_ptr_nonnull(v[i]);
    }
    struct many_reads m = {v, -1};
    ck_assert_int_eq(stm_atomically_ro(body_sum, &m), 0);
    ck_assert_int_eq(m.sum, (long)MANY * (MANY - 1) / 2);
    for (int i = 0; i < MANY; i++)
        stm_tvar_free(v[i]);
    free(v);
    stm_tvar_free(r.a);
    stm_tvar_free(r.b);
}
END_TEST

START_TEST(test_no_read_set)
{
    /* Reading MANY TVars needs no memory in a read-only transaction; the
     * same body under stm_atomically() must grow its read set (it starts
     * at 64 entries), and the first allocation is made to fail. */
    struct reads r = {.a = stm_tvar_new(1), .b = stm_tvar_new(2)};
    ck_assert_int_eq(stm_atomically_ro(body_read_two, &r), 3); /* descriptor */
    stm_tvar **v = calloc(MANY, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < MANY; i++) {
        v[i] = stm_tvar_new(i);
        ck_assert_ptr_nonnull(v[i]);
    }
    struct many_reads m = {v, -1};
    stm__fault_alloc_after(0);
    int rc = stm_atomically_ro(body_sum, &m);
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert_int_eq(rc, 0);
    ck_assert(!fired);
    ck_assert_int_eq(m.sum, (long)MANY * (MANY - 1) / 2);

    stm__fault_alloc_after(0);
    rc = stm_atomically(body_sum, &m);
    fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    ck_assert_int_eq(rc, -ENOMEM);
    ck_assert(fired);

    for (int i = 0; i < MANY; i++)
        stm_tvar_free(v[i]);
    free(v);
    stm_tvar_free(r.a);
    stm_tvar_free(r.b);
}
END_TEST

START_TEST(test_stats_commit_without_abort)
{
    struct reads r = {.a = stm_tvar_new(1), .b = stm_tvar_new(2)};
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(stm_atomically_ro(body_read_two, &r), 3);
    stm_stats_get(&s1);
    ck_assert_uint_eq(s1.commits - s0.commits, 10);
    ck_assert_uint_eq(s1.aborts - s0.aborts, 0);
    ck_assert_int_eq(r.attempts, 10);
    stm_tvar_free(r.a);
    stm_tvar_free(r.b);
}
END_TEST

/* ---- no read set: restart instead of extension --------------------------- */

/* A helper thread commits a write to `b` whenever the body asks, so that a
 * body can see a TVar change under it at a point of its choosing. */
struct bumper {
    stm_tvar *a, *b;
    atomic_int asked, done;
    atomic_bool stop;
    int bumps;    /* attempts that ask for a bump (the first ones) */
    int attempts; /* the body's */
    bool handshake_failed;
    pthread_t tid;
};

static void *bumper_main(void *p)
{
    struct bumper *k = p;
    while (!atomic_load(&k->stop)) {
        int d = atomic_load(&k->done);
        if (atomic_load(&k->asked) > d) {
            int rc = stm_tvar_poke(k->b, d + 1);
            ck_assert_int_eq(rc, 0);
            atomic_store(&k->done, d + 1);
        } else {
            tu_sleep_ms(1);
        }
    }
    return NULL;
}

/* read a; in the first `bumps` attempts have b changed; read b */
static int body_read_bump_read(stm_tx *tx, void *arg)
{
    struct bumper *k = arg;
    int attempt = ++k->attempts;
    intptr_t a = stm_read(tx, k->a);
    if (attempt <= k->bumps) {
        int want = atomic_load(&k->asked) + 1;
        atomic_store(&k->asked, want);
        if (!tu_wait_atleast(&k->done, want, TU_HANDSHAKE_MS))
            k->handshake_failed = true;
    }
    return (int)(a + stm_read(tx, k->b));
}

/* Run out any normal-mode calls an earlier conflict on this thread left
 * (when the suite does not fork per test). */
static int body_nothing(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    return 0;
}

static void ro_calls_settle(void)
{
    for (int i = 0; i < STM__RO_NORMAL_RUN; i++)
        ck_assert_int_eq(stm_atomically_ro(body_nothing, NULL), 0);
}

static void bumper_start(struct bumper *k, int bumps)
{
    memset(k, 0, sizeof *k);
    k->a = stm_tvar_new(1000);
    k->b = stm_tvar_new(0);
    ck_assert_ptr_nonnull(k->a);
    ck_assert_ptr_nonnull(k->b);
    k->bumps = bumps;
    k->tid = tu_run_thread(bumper_main, k);
}

static void bumper_stop(struct bumper *k)
{
    atomic_store(&k->stop, true);
    tu_join(k->tid);
    ck_assert(!k->handshake_failed);
    stm_tvar_free(k->a);
    stm_tvar_free(k->b);
}

START_TEST(test_normal_tx_extends)
{
    /* the contrast for the next test: a normal transaction extends its
     * snapshot over the change of b (a is unchanged), no restart */
    struct bumper k;
    bumper_start(&k, 1);
    ck_assert_int_eq(stm_atomically(body_read_bump_read, &k), 1001);
    ck_assert_int_eq(k.attempts, 1);
    bumper_stop(&k);
}
END_TEST

START_TEST(test_changed_var_restarts)
{
    /* read-only: b changed after the snapshot, and without a read set the
     * snapshot cannot be extended: the attempt restarts, once */
    struct bumper k;
    bumper_start(&k, 1);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically_ro(body_read_bump_read, &k), 1001);
    stm_stats_get(&s1);
    ck_assert_int_eq(k.attempts, 2);
    ck_assert_uint_eq(s1.aborts_conflict - s0.aborts_conflict, 1);
    ck_assert_uint_eq(s1.commits - s0.commits, 1 + 1); /* ours and the bump */
    bumper_stop(&k);
}
END_TEST

START_TEST(test_restart_then_normal)
{
    /* b changes in every attempt: the read-only attempt restarts, the
     * second runs as a normal transaction and extends its snapshot */
    struct bumper k;
    ro_calls_settle();
    bumper_start(&k, 1000);
    ck_assert_int_eq(stm_atomically_ro(body_read_bump_read, &k), 1000 + 2);
    ck_assert_int_eq(k.attempts, 2);
    ck_assert_int_eq(atomic_load(&k.done), 2);
    bumper_stop(&k);
}
END_TEST

static int body_read_a(stm_tx *tx, void *arg)
{
    return (int)stm_read(tx, ((struct bumper *)arg)->a);
}

/* One call of body_read_bump_read with one bump; returns its conflicts. */
static uint64_t ro_call_bumped(struct bumper *k, int want)
{
    struct stm_stats s0, s1;
    k->attempts = 0;
    k->bumps = 1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically_ro(body_read_bump_read, k), want);
    stm_stats_get(&s1);
    return s1.aborts_conflict - s0.aborts_conflict;
}

START_TEST(test_conflict_makes_next_calls_normal)
{
    /* After a read-only attempt met a conflict, the thread's next
     * STM__RO_NORMAL_RUN calls run as normal transactions: the same change
     * under the body is then an extension, not a restart.  After them,
     * read-only attempts again. */
    struct bumper k;
    ro_calls_settle();
    bumper_start(&k, 1);
    ck_assert_uint_eq(ro_call_bumped(&k, 1001), 1); /* read-only: restarts */
    ck_assert_int_eq(k.attempts, 2);
    ck_assert_uint_eq(ro_call_bumped(&k, 1002), 0); /* normal: extends */
    ck_assert_int_eq(k.attempts, 1);
    for (int i = 1; i < STM__RO_NORMAL_RUN; i++)
        ck_assert_int_eq(stm_atomically_ro(body_read_a, &k), 1000);
    ck_assert_uint_eq(ro_call_bumped(&k, 1003), 1); /* read-only again */
    ck_assert_int_eq(k.attempts, 2);
    bumper_stop(&k);
}
END_TEST

/* ---- opacity under concurrent writers -------------------------------------- */

static stm_tvar *op_x, *op_y;
static pthread_barrier_t op_start;
static atomic_int op_writers_left;
static atomic_int op_readers_started; /* readers with a first commit */
static atomic_long op_violations;
static atomic_int op_bad_rc;

static int op_write_body(stm_tx *tx, void *arg)
{
    intptr_t d = *(const intptr_t *)arg;
    stm_write(tx, op_x, stm_read(tx, op_x) + d);
    stm_write(tx, op_y, stm_read(tx, op_y) - d);
    return 0;
}

static void *op_writer(void *p)
{
    uint64_t rng = tu_seed((uint64_t)(uintptr_t)p);
    long n = TU_SCALE(100000, 5000);
    pthread_barrier_wait(&op_start);
    /* write only once both readers have seen a first value, so that what
     * they see must move */
    ck_assert(tu_wait_atleast(&op_readers_started, 2, TU_HANDSHAKE_MS));
    for (long i = 0; i < n; i++) {
        intptr_t d = 1 + (intptr_t)tu_rand_below(&rng, 100);
        int rc = stm_atomically(op_write_body, &d);
        if (rc != 0)
            atomic_store(&op_bad_rc, rc);
    }
    atomic_fetch_sub(&op_writers_left, 1);
    return NULL;
}

struct op_reader {
    long commits;
    intptr_t first_x, last_x;
    unsigned spin;
};

static int op_read_body(stm_tx *tx, void *arg)
{
    struct op_reader *r = arg;
    intptr_t x = stm_read(tx, op_x);
    tu_busy(r->spin); /* let writers in between the two reads */
    intptr_t y = stm_read(tx, op_y);
    if (x + y != 0) /* checked in every attempt, not only committed ones */
        atomic_fetch_add(&op_violations, 1);
    r->last_x = x;
    return 0;
}

static void *op_reader_main(void *p)
{
    struct op_reader *r = p;
    long min = TU_SCALE(20000, 1000);
    uint64_t rng = tu_seed(77);
    pthread_barrier_wait(&op_start);
    for (long i = 0;; i++) {
        /* the last read begins after the writers have finished */
        bool last = i >= min && atomic_load(&op_writers_left) == 0;
        r->spin = tu_rand_below(&rng, 200);
        int rc = stm_atomically_ro(op_read_body, r);
        if (rc != 0)
            atomic_store(&op_bad_rc, rc);
        if (r->commits++ == 0) {
            r->first_x = r->last_x;
            atomic_fetch_add(&op_readers_started, 1);
        }
        if (last)
            break;
    }
    return NULL;
}

START_TEST(test_opacity_two_writers)
{
    op_x = stm_tvar_new(0);
    op_y = stm_tvar_new(0);
    ck_assert_ptr_nonnull(op_x);
    ck_assert_ptr_nonnull(op_y);
    atomic_store(&op_writers_left, 2);
    atomic_store(&op_readers_started, 0);
    ck_assert_int_eq(pthread_barrier_init(&op_start, NULL, 4), 0);
    struct op_reader rd[2] = {{0}, {0}};
    pthread_t w1 = tu_run_thread(op_writer, (void *)1);
    pthread_t w2 = tu_run_thread(op_writer, (void *)2);
    pthread_t r1 = tu_run_thread(op_reader_main, &rd[0]);
    pthread_t r2 = tu_run_thread(op_reader_main, &rd[1]);
    tu_join(w1);
    tu_join(w2);
    tu_join(r1);
    tu_join(r2);
    int bad_rc = atomic_load(&op_bad_rc);
    long violations = atomic_load(&op_violations);
    ck_assert_int_eq(bad_rc, 0);
    ck_assert_int_eq(violations, 0);
    ck_assert_int_eq(stm_tvar_peek(op_x) + stm_tvar_peek(op_y), 0);
    /* the writers wrote after each reader's first commit, and each
     * reader's last read came after the writers: what they saw moved (x
     * only ever grows), and the last value is the final one */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_lt(rd[i].first_x, rd[i].last_x);
        ck_assert_int_eq(rd[i].last_x, stm_tvar_peek(op_x));
    }
    pthread_barrier_destroy(&op_start);
    stm_tvar_free(op_x);
    stm_tvar_free(op_y);
}
END_TEST

/* ---- falling back to a normal transaction --------------------------------- */

struct fb {
    stm_tvar *a, *b;
    int attempts;
    int after_runs, abort_runs;
    void *block;
};

static void fb_after(void *arg)
{
    ((struct fb *)arg)->after_runs++;
}

static void fb_abort(void *arg)
{
    ((struct fb *)arg)->abort_runs++;
}

static int body_read_then_write(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_after_commit(tx, fb_after, f);
    stm_on_abort(tx, fb_abort, f);
    intptr_t a = stm_read(tx, f->a);
    stm_write(tx, f->b, a + 1);
    return 7;
}

START_TEST(test_write_falls_back)
{
    struct fb f = {.a = stm_tvar_new(41), .b = stm_tvar_new(0)};
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically_ro(body_read_then_write, &f), 7);
    stm_stats_get(&s1);
    ck_assert_int_eq(stm_tvar_peek(f.b), 42); /* the write committed */
    ck_assert_int_eq(f.attempts, 2);          /* read-only, then normal */
    ck_assert_int_eq(f.abort_runs, 1);        /* the discarded attempt's */
    ck_assert_int_eq(f.after_runs, 1);        /* the committed attempt's */
    ck_assert_uint_eq(s1.commits - s0.commits, 1);
    ck_assert_uint_eq(s1.aborts - s0.aborts, 1);
    stm_tvar_free(f.a);
    stm_tvar_free(f.b);
}
END_TEST

static int body_alloc(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    f->block = stm_alloc(tx, 64);
    memset(f->block, 0x5a, 64);
    return (int)stm_read(tx, f->a);
}

static int body_free(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_free(tx, f->block);
    return (int)stm_read(tx, f->a);
}

static int body_tvar_free(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    intptr_t v = stm_read(tx, f->b);
    stm_tvar_free(f->b);
    return (int)v;
}

START_TEST(test_memory_falls_back)
{
    struct fb f = {.a = stm_tvar_new(3), .b = stm_tvar_new(9)};
    ck_assert_int_eq(stm_atomically_ro(body_alloc, &f), 3);
    ck_assert_int_eq(f.attempts, 2);
    ck_assert_ptr_nonnull(f.block);
    ck_assert_int_eq(((unsigned char *)f.block)[63], 0x5a);

    f.attempts = 0;
    ck_assert_int_eq(stm_atomically_ro(body_free, &f), 3);
    ck_assert_int_eq(f.attempts, 2);

    f.attempts = 0;
    ck_assert_int_eq(stm_atomically_ro(body_tvar_free, &f), 9);
    ck_assert_int_eq(f.attempts, 2);
    stm_tvar_free(f.a);
}
END_TEST

/* retry: the read-only attempt falls back, and the normal transaction
 * waits on what it read */
struct waiter_arg {
    stm_tvar *flag;
    atomic_int attempts;
    atomic_int tid;
    int rc;
};

static int body_wait_flag(stm_tx *tx, void *arg)
{
    struct waiter_arg *w = arg;
    atomic_fetch_add(&w->attempts, 1);
    intptr_t f = stm_read(tx, w->flag);
    if (f == 0)
        stm_retry(tx);
    return (int)f;
}

static void *waiter_main(void *p)
{
    struct waiter_arg *w = p;
    atomic_store(&w->tid, (int)tu_gettid());
    w->rc = stm_atomically_ro(body_wait_flag, w);
    return NULL;
}

START_TEST(test_retry_falls_back_and_waits)
{
    struct waiter_arg w = {.flag = stm_tvar_new(0)};
    ck_assert_ptr_nonnull(w.flag);
    pthread_t t = tu_run_thread(waiter_main, &w);
    /* the read-only attempt and the normal one that retries */
    ck_assert(tu_wait_atleast(&w.attempts, 2, TU_HANDSHAKE_MS));
    ck_assert(tu_wait_asleep(atomic_load(&w.tid), TU_HANDSHAKE_MS));
    ck_assert_int_eq(atomic_load(&w.attempts), 2); /* asleep, not spinning */
    ck_assert_int_eq(stm_tvar_poke(w.flag, 5), 0);
    tu_join(t);
    ck_assert_int_eq(w.rc, 5);
    ck_assert_int_eq(atomic_load(&w.attempts), 3);
    stm_tvar_free(w.flag);
}
END_TEST

/* retry on a deadline only: the normal transaction it falls back to waits
 * for the deadline recorded by stm_elapsed() */
static int body_wait_deadline(stm_tx *tx, void *arg)
{
    int64_t deadline = *(int64_t *)arg;
    if (!stm_elapsed(tx, deadline))
        stm_retry(tx);
    return 1;
}

START_TEST(test_retry_waits_for_deadline)
{
    int64_t deadline = stm_now() + STM_MSEC(30);
    ck_assert_int_eq(stm_atomically_ro(body_wait_deadline, &deadline), 1);
    ck_assert(stm_now() >= deadline);
}
END_TEST

/* retry having read nothing and recorded no deadline: -EDEADLK, as with
 * stm_atomically() */
static int body_retry_nothing(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_retry(tx);
}

START_TEST(test_retry_nothing_edeadlk)
{
    ck_assert_int_eq(stm_atomically_ro(body_retry_nothing, NULL), -EDEADLK);
}
END_TEST

static int first_retries(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    if (stm_read(tx, f->a) == 0)
        stm_retry(tx);
    return 1;
}

static int second_returns(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    return 2 + (int)stm_read(tx, f->b);
}

static int body_or_else(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    return stm_or_else(tx, first_retries, second_returns, f);
}

START_TEST(test_or_else_falls_back)
{
    struct fb f = {.a = stm_tvar_new(0), .b = stm_tvar_new(10)};
    ck_assert_int_eq(stm_atomically_ro(body_or_else, &f), 12);
    ck_assert_int_eq(f.attempts, 2);
    stm_tvar_free(f.a);
    stm_tvar_free(f.b);
}
END_TEST

/* ---- nesting ------------------------------------------------------------------ */

static int nested_ro_read(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    return (int)stm_read(tx, f->a);
}

static int body_write_then_nested_ro(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_write(tx, f->a, 5);
    /* joins: sees this transaction's own write */
    return 10 * stm_atomically_ro(nested_ro_read, f);
}

START_TEST(test_ro_nested_in_normal_joins)
{
    struct fb f = {.a = stm_tvar_new(1)};
    ck_assert_int_eq(stm_atomically(body_write_then_nested_ro, &f), 50);
    ck_assert_int_eq(f.attempts, 1);
    ck_assert_int_eq(stm_tvar_peek(f.a), 5);
    stm_tvar_free(f.a);
}
END_TEST

static int nested_read_b(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    return (int)stm_read(tx, f->b);
}

static int nested_write_b(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    stm_write(tx, f->b, stm_read(tx, f->b) + 1);
    return 100;
}

static int body_nested_in_ro(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    int r = (int)stm_read(tx, f->a);
    r += stm_atomically(nested_read_b, f);
    r += stm_atomically_ro(nested_read_b, f);
    r += stm_atomically_until(nested_read_b, f, stm_now() - 1);
    return r;
}

static int body_nested_write_in_ro(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    return (int)stm_read(tx, f->a) + stm_atomically(nested_write_b, f);
}

START_TEST(test_nested_in_ro_joins)
{
    struct fb f = {.a = stm_tvar_new(1), .b = stm_tvar_new(2)};
    /* reads only: everything joins the read-only transaction */
    ck_assert_int_eq(stm_atomically_ro(body_nested_in_ro, &f), 1 + 3 * 2);
    ck_assert_int_eq(f.attempts, 1);
    /* a nested body that writes makes the whole transaction fall back */
    f.attempts = 0;
    ck_assert_int_eq(stm_atomically_ro(body_nested_write_in_ro, &f), 101);
    ck_assert_int_eq(f.attempts, 2);
    ck_assert_int_eq(stm_tvar_peek(f.b), 3);
    stm_tvar_free(f.a);
    stm_tvar_free(f.b);
}
END_TEST

/* A nested stm_atomically() reads at the read-only transaction's snapshot
 * (it joined it): b changed after that snapshot, so the whole attempt
 * restarts.  A transaction of its own would have read the new b. */
static int nested_read_bumped(stm_tx *tx, void *arg)
{
    struct bumper *k = arg;
    return (int)stm_read(tx, k->b);
}

static int body_bump_then_nested(stm_tx *tx, void *arg)
{
    struct bumper *k = arg;
    int attempt = ++k->attempts;
    intptr_t a = stm_read(tx, k->a);
    if (attempt <= k->bumps) {
        int want = atomic_load(&k->asked) + 1;
        atomic_store(&k->asked, want);
        if (!tu_wait_atleast(&k->done, want, TU_HANDSHAKE_MS))
            k->handshake_failed = true;
    }
    return (int)a + stm_atomically(nested_read_bumped, k);
}

START_TEST(test_nested_uses_outer_snapshot)
{
    struct bumper k;
    bumper_start(&k, 1);
    ck_assert_int_eq(stm_atomically_ro(body_bump_then_nested, &k), 1001);
    ck_assert_int_eq(k.attempts, 2);
    bumper_stop(&k);
}
END_TEST

/* ---- what a read-only attempt may do ---------------------------------------- */

static int body_abort(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_on_abort(tx, fb_abort, f);
    stm_after_commit(tx, fb_after, f);
    if (stm_read(tx, f->a) == 1)
        stm_abort(tx, 42);
    return 0;
}

START_TEST(test_abort_returns_code)
{
    struct fb f = {.a = stm_tvar_new(1)};
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    ck_assert_int_eq(stm_atomically_ro(body_abort, &f), 42);
    stm_stats_get(&s1);
    ck_assert_int_eq(f.attempts, 1); /* not run again, no fall-back */
    ck_assert_int_eq(f.abort_runs, 1);
    ck_assert_int_eq(f.after_runs, 0);
    ck_assert_uint_eq(s1.aborts_explicit - s0.aborts_explicit, 1);
    ck_assert_uint_eq(s1.commits - s0.commits, 0);
    stm_tvar_free(f.a);
}
END_TEST

static atomic_int deferred_runs;

static void on_deferred(void *arg)
{
    (void)arg;
    atomic_fetch_add(&deferred_runs, 1);
}

static int body_hooks(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_after_commit(tx, fb_after, f);
    stm_on_abort(tx, fb_abort, f);
    stm_defer(tx, on_deferred, NULL);
    return (int)stm_read(tx, f->a);
}

START_TEST(test_hooks_and_defer)
{
    struct fb f = {.a = stm_tvar_new(8)};
    ck_assert_int_eq(stm_atomically_ro(body_hooks, &f), 8);
    ck_assert_int_eq(f.attempts, 1);
    ck_assert_int_eq(f.after_runs, 1);
    ck_assert_int_eq(f.abort_runs, 0);
    ck_assert(tu_wait_atleast(&deferred_runs, 1, TU_HANDSHAKE_MS));
    stm_tvar_free(f.a);
    stm_shutdown(); /* runs what is queued, stops the dispatcher */
    ck_assert_int_eq(atomic_load(&deferred_runs), 1);
}
END_TEST

/* -ENOMEM in a read-only attempt: a deferred callback's node cannot be
 * had; nothing runs, the attempt's on_abort hooks do */
static int body_defer_nomem(stm_tx *tx, void *arg)
{
    struct fb *f = arg;
    f->attempts++;
    stm_on_abort(tx, fb_abort, f);
    intptr_t v = stm_read(tx, f->a);
    stm__fault_alloc_after(0);
    stm_defer(tx, on_deferred, NULL);
    return (int)v;
}

START_TEST(test_nomem)
{
    struct fb f = {.a = stm_tvar_new(8)};
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    int rc = stm_atomically_ro(body_defer_nomem, &f);
    bool fired = stm__fault_alloc_fired();
    stm__fault_alloc_after(-1);
    stm_stats_get(&s1);
    ck_assert(fired);
    ck_assert_int_eq(rc, -ENOMEM);
    ck_assert_int_eq(f.attempts, 1);
    ck_assert_int_eq(f.abort_runs, 1);
    ck_assert_uint_eq(s1.aborts_nomem - s0.aborts_nomem, 1);
    ck_assert_uint_eq(s1.commits - s0.commits, 0);
    ck_assert_int_eq(atomic_load(&deferred_runs), 0);
    stm_tvar_free(f.a);
}
END_TEST

struct times {
    int64_t now1, now2, wall;
    bool past, future;
    int attempts;
};

static int body_times(stm_tx *tx, void *arg)
{
    struct times *t = arg;
    t->attempts++;
    t->now1 = stm_tx_now(tx);
    tu_spin_ns(200000);
    t->now2 = stm_tx_now(tx);
    t->wall = stm_tx_wall_now(tx);
    t->past = stm_elapsed(tx, t->now1 - 1);
    t->future = stm_elapsed(tx, t->now1 + STM_SEC(3600));
    return 0;
}

START_TEST(test_time_reads)
{
    struct times t = {0};
    int64_t before = stm_now(), wall_before = stm_wall_now();
    ck_assert_int_eq(stm_atomically_ro(body_times, &t), 0);
    ck_assert_int_eq(t.attempts, 1); /* no fall-back */
    ck_assert(t.now1 >= before && t.now1 <= stm_now());
    ck_assert(t.now1 == t.now2); /* fixed for the attempt */
    ck_assert(t.wall >= wall_before && t.wall <= stm_wall_now());
    ck_assert(t.past);
    ck_assert(!t.future);
    /* the next attempt reads the clock again */
    struct times u = {0};
    ck_assert_int_eq(stm_atomically_ro(body_times, &u), 0);
    ck_assert(u.now1 > t.now1);
}
END_TEST

/* ---- misuse ----------------------------------------------------------------- */

/* volatile: keeps the compiler from seeing the NULL (stm_atomically_ro
 * is declared nonnull for callers).  Under -fsanitize=undefined the call
 * site would be reported (and the process exit 1) before the library
 * could diagnose it, so that check is off for this function. */
static stm_fn *volatile null_body;

#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define TU_NO_SANITIZE_NONNULL __attribute__((no_sanitize("nonnull-attribute")))
#endif
#endif
#ifndef TU_NO_SANITIZE_NONNULL
#define TU_NO_SANITIZE_NONNULL
#endif

TU_NO_SANITIZE_NONNULL
static int run_null_body(void)
{
    return stm_atomically_ro(null_body, NULL);
}

START_TEST(test_null_fn)
{
    expect_abort("stm_atomically_ro");
    run_null_body();
    ck_abort_msg("stm_atomically_ro(NULL) returned");
}
END_TEST

static int body_read_null(stm_tx *tx, void *arg)
{
    (void)arg;
    return (int)stm_read(tx, NULL);
}

START_TEST(test_read_null_var)
{
    /* diagnosed, not taken for something to fall back on */
    expect_abort("stm_read");
    stm_atomically_ro(body_read_null, NULL);
    ck_abort_msg("stm_read(tx, NULL) returned");
}
END_TEST

static stm_tx *saved_tx;
static stm_tvar *saved_var;

static int body_save(stm_tx *tx, void *arg)
{
    (void)arg;
    saved_tx = tx;
    return (int)stm_read(tx, saved_var);
}

START_TEST(test_stale_handle)
{
    saved_var = stm_tvar_new(4);
    ck_assert_int_eq(stm_atomically_ro(body_save, NULL), 4);
    expect_abort("stm_write");
    stm_write(saved_tx, saved_var, 1); /* misuse, not a fall-back */
    ck_abort_msg("stm_write with a stale handle returned");
}
END_TEST

START_TEST(test_stale_handle_read)
{
    saved_var = stm_tvar_new(4);
    ck_assert_int_eq(stm_atomically_ro(body_save, NULL), 4);
    expect_abort("stm_read");
    stm_read(saved_tx, saved_var);
    ck_abort_msg("stm_read with a stale handle returned");
}
END_TEST

static Suite *readonly_suite(void)
{
    Suite *s = suite_create("readonly");
    TCase *tc = tcase_create("reads");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reads_committed_values);
    tcase_add_test(tc, test_no_read_set);
    tcase_add_test(tc, test_stats_commit_without_abort);
    tcase_add_test(tc, test_normal_tx_extends);
    tcase_add_test(tc, test_changed_var_restarts);
    tcase_add_test(tc, test_restart_then_normal);
    tcase_add_test(tc, test_conflict_makes_next_calls_normal);
    suite_add_tcase(s, tc);

    tc = tcase_create("opacity");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_opacity_two_writers);
    suite_add_tcase(s, tc);

    tc = tcase_create("fallback");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_write_falls_back);
    tcase_add_test(tc, test_memory_falls_back);
    tcase_add_test(tc, test_retry_falls_back_and_waits);
    tcase_add_test(tc, test_retry_waits_for_deadline);
    tcase_add_test(tc, test_retry_nothing_edeadlk);
    tcase_add_test(tc, test_or_else_falls_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ro_nested_in_normal_joins);
    tcase_add_test(tc, test_nested_in_ro_joins);
    tcase_add_test(tc, test_nested_uses_outer_snapshot);
    suite_add_tcase(s, tc);

    tc = tcase_create("allowed");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_abort_returns_code);
    tcase_add_test(tc, test_hooks_and_defer);
    tcase_add_test(tc, test_time_reads);
    tcase_add_test(tc, test_nomem);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_set_timeout(tc, 30);
    tcase_add_test_raise_signal(tc, test_null_fn, SIGABRT);
    tcase_add_test_raise_signal(tc, test_read_null_var, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_handle, SIGABRT);
    tcase_add_test_raise_signal(tc, test_stale_handle_read, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(readonly_suite)
