/*
 * check_reclaim.c - stress: deferred reclamation of blocks and TVars.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Writers replace the nodes of a shared list (copy on write: stm_alloc()
 * the copies, stm_free() the old nodes) while readers traverse it and
 * dereference every node.  Nothing may be freed while a running
 * transaction can still reach it: under ASan a premature free is a
 * heap-use-after-free; in a plain build the node's magic word (its first
 * word, which glibc's free() overwrites) or its invariants go wrong.
 * Nothing may leak either: the ASan build runs with detect_leaks=1.
 *
 * Then TVars themselves: a "directory" TVar points to an entry TVar that is
 * replaced - unlinked in a committed transaction - and stm_tvar_free()d
 * while other threads' transactions may still be reading it, writing it,
 * or waiting on it in stm_retry().
 *
 * Last, a schedule aimed at the hand-over of a thread's pending frees when
 * it exits (test_orphans_during_flush).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stm.h>

#include "../lib/stm-internal.h"
#include "testutil.h"

static atomic_int bad_rc;
static atomic_int writers_running; /* readers stop when this reaches 0 */
static atomic_int readers_running; /* writers flush when this reaches 0 */

/* ------------------------------------------------------------------ */
/* A copy-on-write list                                                */
/* ------------------------------------------------------------------ */

#define LIST_LEN 8
#define LNODE_MAGIC UINT64_C(0x4c4e4f44454d4147) /* "LNODEMAG" */

struct lnode {
    uint64_t magic; /* first: clobbered by glibc's free() */
    struct lnode *next;
    intptr_t pos; /* 0 .. LIST_LEN-1 */
    intptr_t val; /* the values of a list sum to 0 */
};

static stm_tvar *head;
static atomic_long list_violations;

struct lwriter {
    pthread_t tid;
    int id;
    long n;         /* replacements */
    bool flush;     /* call stm__reclaim_flush() every few replacements */
    int k;          /* this one replaces nodes 0..k */
    intptr_t d;     /* moves d from node 0 to node k */
    long freed;     /* blocks passed to stm_free() by committed transactions */
    size_t pending_before_flush;
    size_t pending_after_flush;
    size_t max_pending;
};

static int list_replace_body(stm_tx *tx, void *arg)
{
    const struct lwriter *w = arg;
    struct lnode *old[LIST_LEN], *copy[LIST_LEN];
    struct lnode *n = stm_read_ptr(tx, head);
    for (int i = 0; i <= w->k; i++) {
        old[i] = n;
        copy[i] = stm_alloc(tx, sizeof **copy);
        *copy[i] = *n;
        n = n->next;
    }
    for (int i = 0; i < w->k; i++)
        copy[i]->next = copy[i + 1];
    copy[w->k]->val += w->d;
    copy[0]->val -= w->d;
    stm_write_ptr(tx, head, copy[0]);
    for (int i = 0; i <= w->k; i++)
        stm_free(tx, old[i]);
    return w->k + 1;
}

/* A transaction that frees nothing (for the aging of pending frees). */
static int touch_body(stm_tx *tx, void *arg)
{
    (void)arg;
    (void)stm_read(tx, head);
    return 0;
}

static void *lwriter_main(void *p)
{
    struct lwriter *w = p;
    uint64_t rng = tu_seed(500 + (uint64_t)w->id);
    for (long i = 0; i < w->n; i++) {
        w->k = (int)tu_rand_below(&rng, LIST_LEN);
        w->d = 1 + (intptr_t)tu_rand_below(&rng, 100);
        int rc = stm_atomically(list_replace_body, w);
        if (rc < 1) {
            atomic_store(&bad_rc, rc);
            break;
        }
        w->freed += rc;
        /* Reclaim at once what no running reader can reach: a premature
         * free then hits a reader that is still traversing. */
        if (w->flush && (i & 7) == 0)
            stm__reclaim_flush();
        if ((i & 255) == 0) {
            size_t pend = stm__reclaim_pending();
            if (pend > w->max_pending)
                w->max_pending = pend;
        }
    }
    atomic_fetch_sub(&writers_running, 1);
    /* Flush once no reader (and no writer) runs a transaction any more:
     * then every deferred free is past its grace period.  Bounded wait;
     * on timeout the assertion on pending_after_flush reports it. */
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * 1000000;
    while ((atomic_load(&readers_running) > 0 || atomic_load(&writers_running) > 0) &&
           tu_now_ns() < end)
        tu_sleep_ms(1);
    /* Pending frees are also retried every 256 commits that free nothing:
     * run that many, so that "reclaimed before the final flush" does not
     * hinge on the passes during the run (under a sanitizer, on a loaded
     * machine, each of those can meet a preempted reader's old epoch). */
    if (!w->flush)
        for (int i = 0; i < 256; i++)
            (void)stm_atomically(touch_body, NULL);
    w->pending_before_flush = stm__reclaim_pending();
    stm__reclaim_flush();
    w->pending_after_flush = stm__reclaim_pending();
    return NULL;
}

struct lreader {
    pthread_t tid;
    int id;
    uint64_t rng;
    unsigned spin;
    long commits;
    size_t pending_after_flush;
};

static int list_read_body(stm_tx *tx, void *arg)
{
    const struct lreader *r = arg;
    const struct lnode *n = stm_read_ptr(tx, head);
    intptr_t sum = 0;
    bool bad = false;
    for (int i = 0; i < LIST_LEN; i++) {
        if (n == NULL || n->magic != LNODE_MAGIC || n->pos != i) {
            bad = true;
            break;
        }
        sum += n->val;
        tu_busy(r->spin);
        n = n->next;
    }
    if (bad || n != NULL || sum != 0)
        atomic_fetch_add(&list_violations, 1);
    return 0;
}

static void *lreader_main(void *p)
{
    struct lreader *r = p;
    while (atomic_load(&writers_running) > 0) {
        r->spin = tu_rand_below(&r->rng, 50);
        int rc = stm_atomically(list_read_body, r);
        if (rc != 0)
            atomic_store(&bad_rc, rc);
        r->commits++;
    }
    stm__reclaim_flush();
    r->pending_after_flush = stm__reclaim_pending(); /* readers free nothing */
    atomic_fetch_sub(&readers_running, 1);
    return NULL;
}

START_TEST(test_list_replace)
{
    enum { NW = 2, NR = 2 };
    const long per_writer = TU_SCALE(50000L, 5000L); /* ~100k replacements in all */

    struct lnode *nodes[LIST_LEN];
    for (int i = LIST_LEN - 1; i >= 0; i--) {
        nodes[i] = malloc(sizeof *nodes[i]);
        ck_assert_ptr_nonnull(nodes[i]);
        nodes[i]->magic = LNODE_MAGIC;
        nodes[i]->next = i + 1 < LIST_LEN ? nodes[i + 1] : NULL;
        nodes[i]->pos = i;
        nodes[i]->val = 0;
    }
    head = stm_tvar_new((intptr_t)nodes[0]);
    ck_assert_ptr_nonnull(head);
    atomic_store(&bad_rc, 0);
    atomic_store(&list_violations, 0);
    atomic_store(&writers_running, NW);
    atomic_store(&readers_running, NR);

    struct stm_stats before, after;
    stm_stats_get(&before);
    int64_t t0 = tu_now_ns();

    struct lwriter w[NW];
    struct lreader r[NR];
    memset(w, 0, sizeof w);
    memset(r, 0, sizeof r);
    for (int i = 0; i < NR; i++) {
        r[i].id = i;
        r[i].rng = tu_seed(600 + (uint64_t)i);
        r[i].tid = tu_run_thread(lreader_main, &r[i]);
    }
    for (int i = 0; i < NW; i++) {
        w[i].id = i;
        w[i].n = per_writer;
        w[i].flush = i == 1; /* writer 0 relies on automatic reclamation */
        w[i].tid = tu_run_thread(lwriter_main, &w[i]);
    }
    for (int i = 0; i < NW; i++)
        tu_join(w[i].tid);
    long reads = 0;
    for (int i = 0; i < NR; i++) {
        tu_join(r[i].tid);
        reads += r[i].commits;
    }
    int64_t t1 = tu_now_ns();
    stm_stats_get(&after);

    long freed = 0, reclaimed_early = 0;
    size_t max_pending = 0;
    for (int i = 0; i < NW; i++) {
        freed += w[i].freed;
        if (!w[i].flush)
            reclaimed_early += w[i].freed - (long)w[i].pending_before_flush;
        if (w[i].max_pending > max_pending)
            max_pending = w[i].max_pending;
    }
    uint64_t reclaimed = after.reclaimed - before.reclaimed;
    fprintf(stderr,
            "reclaim list: %d writers x %ld replacements, %ld blocks freed, %ld reader "
            "commits, %.3f s; reclaimed %llu (writer 0: %ld before its final flush), max pending "
            "%zu\n",
            NW, per_writer, freed, reads, (double)(t1 - t0) / 1e9,
            (unsigned long long)reclaimed, reclaimed_early, max_pending);

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&list_violations) == 0,
                  "%ld reader attempts saw a bad list (freed too early, or torn)",
                  atomic_load(&list_violations));
    for (int i = 0; i < NW; i++)
        ck_assert_msg(w[i].pending_after_flush == 0,
                      "writer %d: %zu deferred frees still pending after "
                      "stm__reclaim_flush() with no transaction running",
                      i, w[i].pending_after_flush);
    for (int i = 0; i < NR; i++)
        ck_assert_uint_eq(r[i].pending_after_flush, 0);
    /* Reclamation runs as the program goes ("typically within the next few
     * hundred commits"), not only when flushed: readers run only short
     * transactions, so their epochs keep moving. */
    ck_assert_msg(reclaimed_early > 0,
                  "writer 0 (which never flushed) had nothing reclaimed before its final flush");
    /* Every block freed by a committed transaction has been reclaimed:
     * each writer's pending count was 0 after its flush, and only the
     * writers freed anything.  The counter may also include other
     * deferred frees, so this is a lower bound (100%, not ~90%: the
     * blocks were not left to thread exit). */
    ck_assert_msg(reclaimed >= (uint64_t)freed, "reclaimed grew by %llu, but %ld blocks were freed",
                  (unsigned long long)reclaimed, freed);

    /* Nothing runs any more: the final list can be freed directly. */
    struct lnode *n = (struct lnode *)stm_tvar_peek(head);
    intptr_t sum = 0;
    for (int i = 0; i < LIST_LEN; i++) {
        ck_assert_ptr_nonnull(n);
        ck_assert(n->magic == LNODE_MAGIC);
        ck_assert_int_eq(n->pos, i);
        sum += n->val;
        struct lnode *next = n->next;
        free(n);
        n = next;
    }
    ck_assert_ptr_null(n);
    ck_assert_int_eq(sum, 0);
    stm_tvar_free(head);
    stm_shutdown();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Freeing TVars that other transactions may still be reading          */
/* ------------------------------------------------------------------ */

/* dir points to the current entry TVar; the entry's value always equals
 * gen's (the bumper adds 1 to both; the replacer copies gen into the new
 * entry in the transaction that links it). */
static stm_tvar *dir, *gen;
static atomic_long entry_violations;
static atomic_int replacer_running;
static atomic_int others_running;

struct replacer {
    long n;
    long tvars_freed;
    stm_tvar *fresh;
    stm_tvar *old; /* set by the committed attempt */
    bool free_inside;
    size_t pending_after_flush;
};

static int replace_body(stm_tx *tx, void *arg)
{
    struct replacer *rp = arg;
    stm_tvar *old = stm_read_ptr(tx, dir);
    intptr_t g = stm_read(tx, gen);
    if (stm_read(tx, old) != g)
        atomic_fetch_add(&entry_violations, 1);
    stm_write(tx, rp->fresh, g);
    stm_write_ptr(tx, dir, rp->fresh);
    if (rp->free_inside)
        stm_tvar_free(old); /* takes effect only if this commits */
    rp->old = old;
    return 0;
}

static void *replacer_main(void *p)
{
    struct replacer *rp = p;
    for (long i = 0; i < rp->n; i++) {
        rp->fresh = stm_tvar_new(-1);
        if (rp->fresh == NULL) {
            atomic_store(&bad_rc, -ENOMEM);
            break;
        }
        rp->free_inside = (i & 1) != 0;
        int rc = stm_atomically(replace_body, rp);
        if (rc != 0) {
            atomic_store(&bad_rc, rc);
            stm_tvar_free(rp->fresh);
            break;
        }
        /* Unlinked by a committed transaction: no transaction that starts
         * from now on can reach it, but running ones may still read it. */
        if (!rp->free_inside)
            stm_tvar_free(rp->old);
        rp->tvars_freed++;
        /* Free at once whatever no running transaction can still reach, so
         * that a premature free meets a reader still using the TVar. */
        stm__reclaim_flush();
    }
    atomic_store(&replacer_running, 0);
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * 1000000;
    while (atomic_load(&others_running) > 0 && tu_now_ns() < end)
        tu_sleep_ms(1);
    stm__reclaim_flush();
    rp->pending_after_flush = stm__reclaim_pending();
    return NULL;
}

static int bump_body(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_tvar *e = stm_read_ptr(tx, dir);
    intptr_t v = stm_read(tx, e);
    intptr_t g = stm_read(tx, gen);
    if (v != g)
        atomic_fetch_add(&entry_violations, 1);
    stm_write(tx, e, v + 1); /* e may be unlinked and freed meanwhile */
    stm_write(tx, gen, g + 1);
    return 0;
}

static int entry_read_body(stm_tx *tx, void *arg)
{
    unsigned spin = *(const unsigned *)arg;
    stm_tvar *e = stm_read_ptr(tx, dir);
    tu_busy(spin); /* the replacer may unlink and free e here */
    intptr_t v = stm_read(tx, e);
    intptr_t g = stm_read(tx, gen);
    if (v != g)
        atomic_fetch_add(&entry_violations, 1);
    return 0;
}

static void *bumper_main(void *p)
{
    long *count = p;
    while (atomic_load(&replacer_running)) {
        int rc = stm_atomically(bump_body, NULL);
        if (rc != 0)
            atomic_store(&bad_rc, rc);
        ++*count;
    }
    atomic_fetch_sub(&others_running, 1);
    return NULL;
}

static void *entry_reader_main(void *p)
{
    long *count = p;
    uint64_t rng = tu_seed((uint64_t)(uintptr_t)p);
    while (atomic_load(&replacer_running)) {
        unsigned spin = tu_rand_below(&rng, 8) == 0 ? 3000 : tu_rand_below(&rng, 300);
        int rc = stm_atomically(entry_read_body, &spin);
        if (rc != 0)
            atomic_store(&bad_rc, rc);
        ++*count;
    }
    atomic_fetch_sub(&others_running, 1);
    return NULL;
}

START_TEST(test_tvar_free_while_read)
{
    stm_tvar *first = stm_tvar_new(0);
    ck_assert_ptr_nonnull(first);
    dir = stm_tvar_new((intptr_t)first);
    gen = stm_tvar_new(0);
    ck_assert(dir != NULL && gen != NULL);
    atomic_store(&bad_rc, 0);
    atomic_store(&entry_violations, 0);
    atomic_store(&replacer_running, 1);
    atomic_store(&others_running, 3);

    struct stm_stats before, after;
    stm_stats_get(&before);
    int64_t t0 = tu_now_ns();

    struct replacer rp;
    memset(&rp, 0, sizeof rp);
    rp.n = TU_SCALE(20000L, 2000L);
    long bumps = 0, reads[2] = {0, 0};
    pthread_t tb = tu_run_thread(bumper_main, &bumps);
    pthread_t tr0 = tu_run_thread(entry_reader_main, &reads[0]);
    pthread_t tr1 = tu_run_thread(entry_reader_main, &reads[1]);
    pthread_t trp = tu_run_thread(replacer_main, &rp);
    tu_join(trp);
    tu_join(tb);
    tu_join(tr0);
    tu_join(tr1);
    int64_t t1 = tu_now_ns();
    stm_stats_get(&after);

    uint64_t reclaimed = after.reclaimed - before.reclaimed;
    fprintf(stderr,
            "reclaim tvars: %ld TVars replaced and freed, %ld bumps, %ld + %ld reads, %.3f s; "
            "reclaimed %llu\n",
            rp.tvars_freed, bumps, reads[0], reads[1], (double)(t1 - t0) / 1e9,
            (unsigned long long)reclaimed);

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d", atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&entry_violations) == 0,
                  "%ld attempts saw entry value != gen", atomic_load(&entry_violations));
    ck_assert_int_eq(rp.tvars_freed, rp.n);
    ck_assert_msg(rp.pending_after_flush == 0,
                  "replacer: %zu deferred frees still pending after stm__reclaim_flush() with "
                  "no transaction running",
                  rp.pending_after_flush);
    ck_assert_msg(reclaimed >= (uint64_t)rp.tvars_freed, "reclaimed grew by %llu, want >= %ld",
                  (unsigned long long)reclaimed, rp.tvars_freed);

    stm_tvar *last = (stm_tvar *)stm_tvar_peek(dir);
    ck_assert_int_eq(stm_tvar_peek(last), stm_tvar_peek(gen));
    ck_assert_int_eq(stm_tvar_peek(gen), bumps);
    stm_tvar_free(last);
    stm_tvar_free(dir);
    stm_tvar_free(gen);
    stm_shutdown();
}
END_TEST

/*
 * Waiters blocked in stm_retry() on an entry TVar (reached through dir)
 * when it is unlinked and freed.  Round r: each waiter waits until the
 * entry's value is at least r + 1; the main thread, once all waiters have
 * blocked in that round, links a new entry holding r + 1 and frees the old
 * one (outside the transaction or, every other round, inside it).
 */
#define NWAITERS 3

struct fwaiter {
    pthread_t tid;
    int id;
    long rounds;
    atomic_int blocked_round; /* r + 1 once blocked in round r */
    long target;
    long got_wrong;
    int rc;
};

static int fwait_body(stm_tx *tx, void *arg)
{
    struct fwaiter *w = arg;
    stm_tvar *e = stm_read_ptr(tx, dir);
    intptr_t v = stm_read(tx, e);
    if (v < w->target) {
        atomic_store(&w->blocked_round, (int)w->target);
        stm_retry(tx);
    }
    return (int)v;
}

static void *fwaiter_main(void *p)
{
    struct fwaiter *w = p;
    for (long r = 0; r < w->rounds; r++) {
        w->target = r + 1;
        int rc = stm_atomically(fwait_body, w);
        if (rc < 0) {
            w->rc = rc;
            break;
        }
        if (rc != r + 1)
            w->got_wrong++;
    }
    return NULL;
}

struct relink {
    stm_tvar *fresh;
    stm_tvar *old;
    bool free_inside;
};

static int relink_body(stm_tx *tx, void *arg)
{
    struct relink *rl = arg;
    rl->old = stm_read_ptr(tx, dir);
    stm_write_ptr(tx, dir, rl->fresh);
    if (rl->free_inside)
        stm_tvar_free(rl->old);
    return 0;
}

START_TEST(test_tvar_free_wakes_waiters)
{
    stm_tvar *first = stm_tvar_new(0);
    ck_assert_ptr_nonnull(first);
    dir = stm_tvar_new((intptr_t)first);
    ck_assert_ptr_nonnull(dir);
    const long rounds = TU_SCALE(300L, 100L);

    struct fwaiter *w = calloc(NWAITERS, sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < NWAITERS; i++) {
        w[i].id = i;
        w[i].rounds = rounds;
        w[i].tid = tu_run_thread(fwaiter_main, &w[i]);
    }
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < NWAITERS; i++)
            ck_assert_msg(tu_wait_atleast(&w[i].blocked_round, (int)r + 1, TU_HANDSHAKE_MS),
                          "round %ld: waiter %d did not block (rc %d)", r, i, w[i].rc);
        struct relink rl = {stm_tvar_new(r + 1), NULL, (r & 1) != 0};
        ck_assert_ptr_nonnull(rl.fresh);
        ck_assert_int_eq(stm_atomically(relink_body, &rl), 0);
        if (!rl.free_inside)
            stm_tvar_free(rl.old);
    }
    for (int i = 0; i < NWAITERS; i++) {
        tu_join(w[i].tid); /* bounded by the test timeout */
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_int_eq(w[i].got_wrong, 0);
    }
    free(w);
    stm_tvar *last = (stm_tvar *)stm_tvar_peek(dir);
    ck_assert_int_eq(stm_tvar_peek(last), rounds);
    stm_tvar_free(last);
    stm_tvar_free(dir);
    stm_shutdown();
}
END_TEST

/* stm_tvar_free() inside a transaction wakes the threads blocked in
 * stm_retry() on the TVar when that transaction commits, as a call outside
 * a transaction does at once (issue 11, defect 3): not when reclamation
 * frees the TVar, many commits later.  The waiter learns that the TVar is
 * gone from a plain flag set before the freeing commit (a transaction
 * that starts after the free must not read it), so nothing but the free
 * can wake it; the freeing transaction writes nothing else. */
struct ifw {
    stm_tvar *x;
    atomic_int gone;
    atomic_int attempts;
    atomic_int tid;
    atomic_int done;
    int rc;
};

static int ifw_body(stm_tx *tx, void *arg)
{
    struct ifw *p = arg;
    atomic_fetch_add(&p->attempts, 1);
    if (atomic_load(&p->gone))
        return 1;
    if (stm_read(tx, p->x) == 0)
        stm_retry(tx);
    return 2;
}

static void *ifw_main(void *arg)
{
    struct ifw *p = arg;
    atomic_store(&p->tid, tu_gettid());
    p->rc = stm_atomically(ifw_body, p);
    atomic_store(&p->done, 1);
    return NULL;
}

static int free_in_tx_body(stm_tx *tx, void *arg)
{
    (void)tx;
    stm_tvar_free(arg);
    return 0;
}

START_TEST(test_tvar_free_in_tx_wakes_at_commit)
{
    const int rounds = TU_SCALE(20, 5);
    for (int r = 0; r < rounds; r++) {
        struct ifw p;
        memset(&p, 0, sizeof p);
        p.x = stm_tvar_new(0);
        ck_assert_ptr_nonnull(p.x);
        pthread_t t = tu_run_thread(ifw_main, &p);
        ck_assert(tu_wait_atleast(&p.attempts, 1, TU_HANDSHAKE_MS));
        ck_assert(tu_wait_atleast(&p.tid, 1, TU_HANDSHAKE_MS));
        ck_assert(tu_wait_asleep((pid_t)atomic_load(&p.tid), TU_HANDSHAKE_MS));
        atomic_store(&p.gone, 1);
        ck_assert_int_eq(stm_atomically(free_in_tx_body, p.x), 0);
        bool woke = tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS);
        if (!woke) {
            stm__reclaim_flush(); /* release it: reclamation wakes it */
            tu_wait_atleast(&p.done, 1, TU_HANDSHAKE_MS);
        }
        ck_assert_msg(woke,
                      "round %d: the thread blocked on a TVar freed in a committed "
                      "transaction was not woken by the commit",
                      r);
        tu_join(t);
        ck_assert_int_eq(p.rc, 1);
        ck_assert_int_eq(atomic_load(&p.attempts), 2);
    }
    stm_shutdown();
}
END_TEST

/*
 * A block freed by a thread that then exits moves to the library's
 * orphan list, which a reclaim pass of any other thread sweeps.  The
 * grace-period bound that pass uses must also hold for orphans that
 * arrive while it runs.  The schedule below aims at exactly that:
 *
 *   A   stm_free()s many blocks while a blocker transaction keeps them all
 *       pending; the blocker ends; A calls stm__reclaim_flush(), which
 *       finds no running transaction and then sweeps its long list;
 *   R   starts a transaction meanwhile, after A looked at the epochs, and
 *       reads the node X that `ocur` points to, and holds it;
 *   B   replaces X (stm_free(X)) and exits: X becomes an orphan while R
 *       can still read it;
 *   R   reads X once A's flush and B's exit are over.
 *
 * A correct library keeps X until R's transaction ends, whatever the
 * timing; the timing (a short spin) only makes a premature free likely to
 * show: a bad magic word (the first word, overwritten by glibc's free())
 * in a plain build, heap-use-after-free under ASan, a race under TSan.
 */
static stm_tvar *ocur, *ocount;
static atomic_int blocker_in, blocker_release, blocker_out;
static atomic_int a_flushing, a_flushed, r_holds, b_gone;
static atomic_long orphan_violations;
static atomic_int orphan_timeouts;

/* Spin (inside a transaction, without sleeping) until *flag is set; false
 * after TU_HANDSHAKE_MS. */
static bool spin_until(atomic_int *flag)
{
    int64_t end = tu_now_ns() + TU_HANDSHAKE_MS * INT64_C(1000000);
    while (!atomic_load(flag)) {
        if (tu_now_ns() > end) {
            atomic_fetch_add(&orphan_timeouts, 1);
            return false;
        }
        sched_yield();
    }
    return true;
}

static int blocker_body(stm_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    atomic_store(&blocker_in, 1);
    spin_until(&blocker_release); /* holds its epoch: nothing A frees can go */
    return 0;
}

static void *blocker_main(void *p)
{
    (void)p;
    if (stm_atomically(blocker_body, NULL) != 0)
        atomic_store(&bad_rc, -1);
    atomic_store(&blocker_out, 1);
    return NULL;
}

static int count_and_free_body(stm_tx *tx, void *arg)
{
    stm_write(tx, ocount, stm_read(tx, ocount) + 1); /* a commit stamp of its own */
    stm_free(tx, arg);
    return 0;
}

struct flusher {
    long n;
    size_t pending_before;
};

static void *flusher_main(void *p)
{
    struct flusher *f = p;
    spin_until(&blocker_in);
    for (long i = 0; i < f->n; i++) {
        void *block = malloc(sizeof(struct lnode));
        if (block == NULL || stm_atomically(count_and_free_body, block) != 0) {
            atomic_store(&bad_rc, -ENOMEM);
            free(block);
            break;
        }
    }
    f->pending_before = stm__reclaim_pending();
    atomic_store(&blocker_release, 1);
    spin_until(&blocker_out);
    atomic_store(&a_flushing, 1);
    stm__reclaim_flush();
    atomic_store(&a_flushed, 1);
    return NULL;
}

static int hold_body(stm_tx *tx, void *arg)
{
    (void)arg;
    const struct lnode *x = stm_read_ptr(tx, ocur);
    atomic_store(&r_holds, 1);
    spin_until(&b_gone);
    spin_until(&a_flushed);
    if (x->magic != LNODE_MAGIC || x->pos != 0 || (x->val != 42 && x->val != 43))
        atomic_fetch_add(&orphan_violations, 1);
    return 0;
}

static void *holder_main(void *p)
{
    (void)p;
    spin_until(&a_flushing);
    tu_spin_ns(100000); /* let A look at the epochs first */
    if (stm_atomically(hold_body, NULL) != 0)
        atomic_store(&bad_rc, -1);
    return NULL;
}

static int replace_x_body(stm_tx *tx, void *arg)
{
    struct lnode *x = stm_read_ptr(tx, ocur);
    stm_write_ptr(tx, ocur, arg);
    stm_free(tx, x);
    return 0;
}

static void *replacer_b_main(void *p)
{
    spin_until(&r_holds);
    if (stm_atomically(replace_x_body, p) != 0)
        atomic_store(&bad_rc, -1);
    return NULL; /* exits: its pending free of X becomes an orphan */
}

START_TEST(test_orphans_during_flush)
{
    struct lnode *x = malloc(sizeof *x), *y = malloc(sizeof *y);
    ck_assert(x != NULL && y != NULL);
    *x = (struct lnode){LNODE_MAGIC, NULL, 0, 42};
    *y = (struct lnode){LNODE_MAGIC, NULL, 0, 43};
    ocur = stm_tvar_new((intptr_t)x);
    ocount = stm_tvar_new(0);
    ck_assert(ocur != NULL && ocount != NULL);
    atomic_store(&bad_rc, 0);
    atomic_store(&orphan_violations, 0);
    atomic_store(&orphan_timeouts, 0);
    atomic_store(&blocker_in, 0);
    atomic_store(&blocker_release, 0);
    atomic_store(&blocker_out, 0);
    atomic_store(&a_flushing, 0);
    atomic_store(&a_flushed, 0);
    atomic_store(&r_holds, 0);
    atomic_store(&b_gone, 0);

    /* The flush must outlast R's start and B's exit: many pending frees
     * (its sweep frees them one by one). */
    struct flusher f = {TU_SCALE(300000L, 100000L), 0};
    pthread_t t0 = tu_run_thread(blocker_main, NULL);
    pthread_t ta = tu_run_thread(flusher_main, &f);
    pthread_t tr = tu_run_thread(holder_main, NULL);
    pthread_t tb = tu_run_thread(replacer_b_main, y);
    tu_join(tb); /* B's descriptor, with X pending, is gone */
    atomic_store(&b_gone, 1);
    tu_join(t0);
    tu_join(ta);
    tu_join(tr);

    ck_assert_int_eq(atomic_load(&bad_rc), 0);
    ck_assert_int_eq(atomic_load(&orphan_timeouts), 0);
    ck_assert_msg(f.pending_before >= (size_t)f.n / 2,
                  "only %zu of %ld frees were pending while a transaction held its epoch",
                  f.pending_before, f.n);
    ck_assert_msg(atomic_load(&orphan_violations) == 0,
                  "node X was freed while a running transaction could still read it (its "
                  "freeing thread had exited; another thread's reclaim pass freed it)");
    ck_assert_ptr_eq((void *)stm_tvar_peek(ocur), y);
    free(y);
    stm_tvar_free(ocur);
    stm_tvar_free(ocount);
    stm_shutdown();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reclamation resumes soon after a long transaction (issue #11, 10)   */
/* ------------------------------------------------------------------ */

/* stm_free(3): a block is freed "typically within the next few hundred
 * commits".  While a long read-only transaction runs, every block freed
 * after it began is held back; once it ends, the next few hundred commits
 * of the freeing thread must reclaim that backlog (a pass that found it
 * all pinned used to wait for the backlog to double). */
enum { PIN_BACKLOG = 5000, PIN_RESUME_WITHIN = 300 };
static stm_tvar *pin_var, *pin_count;
static atomic_int pin_in, pin_release;

static int pin_body(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t v = stm_read(tx, pin_var);
    atomic_store(&pin_in, 1);
    tu_wait_atleast(&pin_release, 1, 10 * TU_HANDSHAKE_MS);
    return (int)v;
}

static void *pin_main(void *arg)
{
    (void)arg;
    if (stm_atomically_ro(pin_body, NULL) != 7)
        atomic_store(&bad_rc, -1);
    return NULL;
}

static int free_one_body(stm_tx *tx, void *arg)
{
    stm_write(tx, pin_count, stm_read(tx, pin_count) + 1);
    stm_free(tx, arg);
    return 0;
}

static void commit_free_one(void)
{
    void *p = malloc(32);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(stm_atomically(free_one_body, p), 0);
}

START_TEST(test_reclaim_resumes_after_long_tx)
{
    pin_var = stm_tvar_new(7);
    pin_count = stm_tvar_new(0);
    ck_assert(pin_var != NULL && pin_count != NULL);
    atomic_store(&bad_rc, 0);
    atomic_store(&pin_in, 0);
    atomic_store(&pin_release, 0);
    commit_free_one();
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);

    pthread_t t = tu_run_thread(pin_main, NULL);
    ck_assert(tu_wait_atleast(&pin_in, 1, TU_HANDSHAKE_MS));
    for (int i = 0; i < PIN_BACKLOG; i++)
        commit_free_one();
    /* all of them were freed after the reader began: none may go */
    ck_assert_uint_eq(stm__reclaim_pending(), PIN_BACKLOG);
    atomic_store(&pin_release, 1);
    tu_join(t);
    ck_assert_int_eq(atomic_load(&bad_rc), 0);

    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    int n = 0;
    while (n < 3000 && stm__reclaim_pending() > PIN_RESUME_WITHIN) {
        commit_free_one();
        n++;
    }
    stm_stats_get(&s1);
    ck_assert_msg(n <= PIN_RESUME_WITHIN,
                  "%d commits after the long transaction ended, %zu of a backlog of %d blocks "
                  "are still pending",
                  n, stm__reclaim_pending(), PIN_BACKLOG);
    ck_assert_uint_ge(s1.reclaimed - s0.reclaimed, PIN_BACKLOG);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    stm_tvar_free(pin_var);
    stm_tvar_free(pin_count);
    stm_shutdown();
}
END_TEST

/* ------------------------------------------------------------------ */
/* When a pass needs a barrier on every thread (issue #10)             */
/* ------------------------------------------------------------------ */

/* A pass reads each thread's epoch.  A thread seen inside a transaction
 * bounds what may be freed by its epoch, with no barrier; only a thread
 * seen idle can need one (membarrier(), an interrupt to every CPU running
 * the process), and only once a few batches of frees are pending.  Before
 * this, every pass of every thread issued one: in a busy two-thread hash
 * set that was a quarter of the time. */
enum { FREES = 20000 };
static stm_tvar *busy_var;
static atomic_int busy_stop, busy_runs, quiet_in, quiet_release;

static int busy_body(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t sum = 0;
    for (int i = 0; i < 200; i++)
        sum += stm_read(tx, busy_var);
    return (int)(sum & 1);
}

/* Inside a transaction nearly all the time. */
static void *busy_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop)) {
        if (stm_atomically_ro(busy_body, NULL) < 0)
            atomic_store(&bad_rc, -1);
        atomic_fetch_add(&busy_runs, 1);
    }
    return NULL;
}

/* Has a descriptor (one transaction), then waits outside any. */
static void *quiet_main(void *arg)
{
    (void)arg;
    if (stm_atomically_ro(busy_body, NULL) < 0)
        atomic_store(&bad_rc, -1);
    atomic_store(&quiet_in, 1);
    tu_wait_atleast(&quiet_release, 1, 10 * TU_HANDSHAKE_MS);
    return NULL;
}

/* FREES commits that free a block each; the largest pending count seen
 * after a commit. */
static size_t free_many(int n)
{
    size_t max = 0;
    for (int i = 0; i < n; i++) {
        commit_free_one();
        size_t p = stm__reclaim_pending();
        if (p > max)
            max = p;
    }
    return max;
}

/* The three tests below: their TVars, and a thread running fn, once it
 * has set *ready and this thread's frees are all reclaimed. */
static pthread_t other_start(void *(*fn)(void *), atomic_int *ready)
{
    busy_var = stm_tvar_new(1);
    pin_count = stm_tvar_new(0);
    ck_assert(busy_var != NULL && pin_count != NULL);
    atomic_store(&bad_rc, 0);
    atomic_store(&busy_stop, 0);
    atomic_store(&busy_runs, 0);
    atomic_store(&quiet_in, 0);
    atomic_store(&quiet_release, 0);
    stm__reclaim_flush();
    pthread_t t = tu_run_thread(fn, NULL);
    ck_assert(tu_wait_atleast(ready, 1, TU_HANDSHAKE_MS));
    return t;
}

static void other_stop(pthread_t t)
{
    atomic_store(&busy_stop, 1);
    atomic_store(&quiet_release, 1);
    tu_join(t);
    ck_assert_int_eq(atomic_load(&bad_rc), 0);
}

static void others_free(void)
{
    stm_tvar_free(busy_var);
    stm_tvar_free(pin_count);
    stm_shutdown();
}

START_TEST(test_reclaim_busy_thread_no_barrier)
{
    pthread_t t = other_start(busy_main, &busy_runs);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    uint64_t b0 = stm__reclaim_barriers();
    free_many(FREES);
    uint64_t b = stm__reclaim_barriers() - b0;
    other_stop(t);
    /* one pass per STM__RECLAIM_BATCH frees; a barrier only while the
     * other thread is caught between two transactions with 4 batches
     * pending: at most one pass in 4 even if it always were */
    uint64_t passes = FREES / STM__RECLAIM_BATCH;
    ck_assert_msg(b * 3 <= passes, "%llu of %llu passes used a barrier on every thread",
                  (unsigned long long)b, (unsigned long long)passes);
    /* (How much was freed meanwhile depends on how long the other thread
     * was preempted inside a transaction.)  Alone now: the next batch's
     * pass frees everything, without a barrier. */
    b0 = stm__reclaim_barriers();
    int n = 0;
    do
        commit_free_one();
    while (++n <= STM__RECLAIM_BATCH && stm__reclaim_pending() != 0);
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    ck_assert_uint_eq(stm__reclaim_barriers(), b0);
    stm_stats_get(&s1);
    ck_assert_uint_eq(s1.reclaimed - s0.reclaimed, (uint64_t)FREES + (uint64_t)n);
    others_free();
}
END_TEST

/* An idle thread's epoch reads 0, which may be stale: only a barrier
 * tells it from a transaction just begun.  The barrier comes once
 * STM__RECLAIM_BARRIER_AT frees are pending, so they stay below that
 * plus a batch, and everything is freed. */
START_TEST(test_reclaim_idle_thread_barrier)
{
    pthread_t t = other_start(quiet_main, &quiet_in);
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    uint64_t b0 = stm__reclaim_barriers();
    size_t max = free_many(FREES);
    uint64_t b = stm__reclaim_barriers() - b0;
    stm_stats_get(&s1);
    other_stop(t);
    ck_assert_msg(max < STM__RECLAIM_BARRIER_AT + STM__RECLAIM_BATCH,
                  "%zu frees pending beside an idle thread", max);
    ck_assert_uint_ge(s1.reclaimed - s0.reclaimed, FREES - STM__RECLAIM_BARRIER_AT);
    ck_assert_uint_ge(b, 1);
    ck_assert_msg(b <= FREES / STM__RECLAIM_BARRIER_AT + 1, "%llu barriers for %d frees",
                  (unsigned long long)b, FREES);
    stm__reclaim_flush();
    ck_assert_uint_eq(stm__reclaim_pending(), 0);
    others_free();
}
END_TEST

/* Frees that stop short of a batch are freed once STM__RECLAIM_IDLE
 * commits in a row have freed nothing (declared read-only ones count),
 * with the barrier an idle thread needs. */
START_TEST(test_reclaim_after_frees_stop)
{
    pthread_t t = other_start(quiet_main, &quiet_in);
    for (int round = 0; round < 2; round++) {
        free_many(STM__RECLAIM_BATCH / 2);
        ck_assert_uint_eq(stm__reclaim_pending(), STM__RECLAIM_BATCH / 2);
        int n = 0;
        while (stm__reclaim_pending() > 0 && n <= STM__RECLAIM_IDLE) {
            int r = round ? stm_atomically_ro(busy_body, NULL) : stm_atomically(busy_body, NULL);
            ck_assert_int_ge(r, 0);
            n++;
        }
        ck_assert_msg(stm__reclaim_pending() == 0 && n == STM__RECLAIM_IDLE,
                      "round %d: %zu frees pending after %d commits without any", round,
                      stm__reclaim_pending(), n);
    }
    other_stop(t);
    others_free();
}
END_TEST

static Suite *reclaim_suite(void)
{
    Suite *s = suite_create("reclaim");
    TCase *tc = tcase_create("reclaim");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_list_replace);
    tcase_add_test(tc, test_tvar_free_while_read);
    tcase_add_test(tc, test_tvar_free_wakes_waiters);
    tcase_add_test(tc, test_tvar_free_in_tx_wakes_at_commit);
    tcase_add_test(tc, test_orphans_during_flush);
    tcase_add_test(tc, test_reclaim_resumes_after_long_tx);
    tcase_add_test(tc, test_reclaim_busy_thread_no_barrier);
    tcase_add_test(tc, test_reclaim_idle_thread_barrier);
    tcase_add_test(tc, test_reclaim_after_frees_stop);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(reclaim_suite)
