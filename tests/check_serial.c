/*
 * check_serial.c - proof: random transactions are serializable and opaque.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Several threads run seeded random transactions over a few TVars: reads,
 * writes, stm_retry() (with a deadline, so nothing sleeps for good),
 * stm_or_else() (nested), stm_abort(), flat nesting, declared read-only
 * transactions (stm_atomically_ro(), sometimes writing, so they fall back)
 * and timed ones (stm_atomically_until(), stm_elapsed()).
 *
 * Every write is unique: a transaction writes its own id (thread and
 * sequence number) to every TVar it writes, so each read names the
 * transaction whose write it saw (0 is the initial value).  A transaction
 * reads a TVar before it writes it, so the value it overwrote is known too.
 * Each committed transaction's first reads and its final writes are logged
 * by an stm_after_commit() hook; after the threads have joined the checker
 * verifies offline that the history is serializable:
 *
 *   - every value read was written by a committed transaction (or is 0);
 *   - per TVar the versions form one chain from 0 (no two committed
 *     transactions overwrote the same version: no lost update), and the
 *     chain ends in the TVar's final value;
 *   - the graph of WR (writer -> reader, which includes WW since writers
 *     read first) and RW (reader of a version -> the writer of the next
 *     version) edges is acyclic, so a serial order exists in which every
 *     read saw the latest write before it.
 *
 * Opacity is checked inside the bodies, on every attempt, discarded ones
 * included: TVars come in pairs written together with the same value, so
 * a body that reads both halves of a pair must see them equal; a TVar read
 * twice in one attempt (and not written in between) must read the same;
 * every value must be 0 or a well-formed id.
 *
 * The seed comes from STM_SERIAL_SEED (decimal) or from the clock, and is
 * printed on every run and with every failure.  STM_SERIAL_TX sets the
 * transactions per thread.
 */
#define _GNU_SOURCE
#include <stm.h>

#include <inttypes.h>

#include "testutil.h"

enum {
    NPAIRS = 3,
    NSOLO = 2,
    NVARS = 2 * NPAIRS + NSOLO, /* pairs are vars 2k, 2k+1; solos follow */
    MAXLOG = 256,               /* reads or writes logged per attempt */
    MAXTHREADS = 16,
    ABORT_CODE = 77,
    ID_SHIFT = 24, /* id = (thread + 1) << ID_SHIFT | seq */
};

static stm_tvar *vars[NVARS];
static uint64_t run_seed;
static atomic_long opacity_violations;
static atomic_long deadline_early; /* stm_elapsed() true before its deadline */
static char first_violation[256];
static atomic_flag first_violation_taken = ATOMIC_FLAG_INIT;

static void violation(const char *fmt, intptr_t a, intptr_t b, int var)
{
    atomic_fetch_add(&opacity_violations, 1);
    if (!atomic_flag_test_and_set(&first_violation_taken))
        snprintf(first_violation, sizeof first_violation, fmt, a, b, var);
}

struct read_rec {
    int var;
    intptr_t val;
};

/* One committed transaction, as logged. */
struct tx_rec {
    uint32_t seq;
    uint32_t read_off, nreads;
    uint32_t write_off, nwrites;
};

struct worker {
    pthread_t tid;
    int id;
    long ntx;
    uint64_t tx_seed; /* seeds each transaction's program */
    uint64_t outer;   /* the worker's own choices, outside bodies */
    uint64_t rng;     /* the current attempt's program */
    intptr_t my_id;   /* the id this transaction writes */
    int64_t deadline; /* for stm_elapsed() in this transaction */
    bool ro;          /* declared read-only: writes are rare */
    bool stubborn;    /* retries ignore the deadline (stm_atomically_until) */
    /* this attempt */
    int nreads, nwrites;
    struct read_rec reads[MAXLOG];
    int wvars[MAXLOG];
    bool overflow;
    int hooks_run;
    /* committed history */
    struct tx_rec *txs;
    long ntxs, cap_txs;
    struct read_rec *all_reads;
    long nall_reads, cap_reads;
    int *all_writes;
    long nall_writes, cap_writes;
    /* outcome counters */
    long commits, aborts, timeouts, ro_calls, until_calls;
};

static bool well_formed(intptr_t v, int nthreads)
{
    if (v == 0)
        return true;
    intptr_t t = v >> ID_SHIFT;
    return t >= 1 && t <= nthreads;
}

static int g_nthreads;

/* Read var `v` in the attempt; log the first read from outside. */
static intptr_t rd(struct worker *w, stm_tx *tx, int v)
{
    intptr_t x = stm_read(tx, vars[v]);
    if (x == w->my_id)
        return x; /* our own write */
    if (!well_formed(x, g_nthreads))
        violation("malformed value %" PRIdPTR " (%" PRIdPTR ") in var %d", x, 0, v);
    for (int i = 0; i < w->nreads; i++)
        if (w->reads[i].var == v) {
            if (w->reads[i].val != x)
                violation("re-read saw %" PRIdPTR " after %" PRIdPTR " in var %d", x,
                          w->reads[i].val, v);
            return x;
        }
    if (w->nreads == MAXLOG) {
        w->overflow = true;
        return x;
    }
    w->reads[w->nreads].var = v;
    w->reads[w->nreads].val = x;
    w->nreads++;
    return x;
}

static void read_pair(struct worker *w, stm_tx *tx, int k)
{
    intptr_t a = rd(w, tx, 2 * k);
    tu_busy(tu_rand_below(&w->rng, 200));
    intptr_t b = rd(w, tx, 2 * k + 1);
    if (a != b)
        violation("pair halves differ: %" PRIdPTR " / %" PRIdPTR " (pair %d)", a, b, k);
}

static void wr(struct worker *w, stm_tx *tx, int v)
{
    (void)rd(w, tx, v); /* read before write: the overwritten version is known */
    stm_write(tx, vars[v], w->my_id);
    for (int i = 0; i < w->nwrites; i++)
        if (w->wvars[i] == v)
            return;
    if (w->nwrites == MAXLOG) {
        w->overflow = true;
        return;
    }
    w->wvars[w->nwrites++] = v;
}

static void write_pair(struct worker *w, stm_tx *tx, int k)
{
    read_pair(w, tx, k);
    stm_write(tx, vars[2 * k], w->my_id);
    stm_write(tx, vars[2 * k + 1], w->my_id);
    wr(w, tx, 2 * k); /* logs the writes (the values are already ours) */
    wr(w, tx, 2 * k + 1);
}

static void run_ops(struct worker *w, stm_tx *tx, int depth);

struct branch {
    struct worker *w;
    int depth;
    int mark; /* write-log length when the first branch began */
};

static int first_branch(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    run_ops(b->w, tx, b->depth + 1);
    if (tu_rand_below(&b->w->rng, 3) == 0)
        stm_retry(tx); /* abandons only this branch */
    return 0;
}

static int second_branch(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    b->w->nwrites = b->mark; /* the first branch's writes were dropped */
    run_ops(b->w, tx, b->depth + 1);
    return 0;
}

static int nested_body(stm_tx *tx, void *arg)
{
    struct branch *b = arg;
    run_ops(b->w, tx, b->depth + 1);
    return 0;
}

static void run_ops(struct worker *w, stm_tx *tx, int depth)
{
    int n = 1 + (int)tu_rand_below(&w->rng, depth == 0 ? 6 : 3);
    for (int i = 0; i < n; i++) {
        uint32_t op = tu_rand_below(&w->rng, 100);
        if (w->ro && op >= 40 && op < 70 && tu_rand_below(&w->rng, 8) != 0)
            op = 0; /* a declared read-only body writes only sometimes */
        if (op < 25) {
            read_pair(w, tx, (int)tu_rand_below(&w->rng, NPAIRS));
        } else if (op < 40) {
            (void)rd(w, tx, 2 * NPAIRS + (int)tu_rand_below(&w->rng, NSOLO));
        } else if (op < 55) {
            write_pair(w, tx, (int)tu_rand_below(&w->rng, NPAIRS));
        } else if (op < 70) {
            wr(w, tx, 2 * NPAIRS + (int)tu_rand_below(&w->rng, NSOLO));
        } else if (op < 80 && depth < 3) {
            struct branch b = {w, depth, w->nwrites};
            (void)stm_or_else(tx, first_branch, second_branch, &b);
        } else if (op < 86 && depth < 3) {
            struct branch b = {w, depth, 0};
            (void)stm_atomically(nested_body, &b); /* joins this transaction */
        } else if (op < 94) {
            /* Wait for a change, or for the deadline. */
            int v = (int)tu_rand_below(&w->rng, NVARS);
            intptr_t x = rd(w, tx, v);
            if ((x & 1) && (w->stubborn || !stm_elapsed(tx, w->deadline)))
                stm_retry(tx);
            if ((x & 1) && !w->stubborn && stm_tx_now(tx) < w->deadline)
                atomic_fetch_add(&deadline_early, 1);
        } else if (op < 95 && depth == 0) {
            stm_abort(tx, ABORT_CODE);
        } else {
            (void)stm_elapsed(tx, w->deadline);
        }
    }
}

static void log_commit(void *arg)
{
    struct worker *w = arg;
    w->hooks_run++;
    if (w->ntxs == w->cap_txs) {
        w->cap_txs = w->cap_txs ? 2 * w->cap_txs : 1024;
        w->txs = realloc(w->txs, (size_t)w->cap_txs * sizeof *w->txs);
    }
    while (w->nall_reads + w->nreads > w->cap_reads) {
        w->cap_reads = w->cap_reads ? 2 * w->cap_reads : 4096;
        w->all_reads = realloc(w->all_reads, (size_t)w->cap_reads * sizeof *w->all_reads);
    }
    while (w->nall_writes + w->nwrites > w->cap_writes) {
        w->cap_writes = w->cap_writes ? 2 * w->cap_writes : 4096;
        w->all_writes = realloc(w->all_writes, (size_t)w->cap_writes * sizeof *w->all_writes);
    }
    if (w->txs == NULL || (w->cap_reads && w->all_reads == NULL) ||
        (w->cap_writes && w->all_writes == NULL))
        abort();
    struct tx_rec *r = &w->txs[w->ntxs++];
    r->seq = (uint32_t)(w->my_id & ((1 << ID_SHIFT) - 1));
    r->read_off = (uint32_t)w->nall_reads;
    r->nreads = (uint32_t)w->nreads;
    r->write_off = (uint32_t)w->nall_writes;
    r->nwrites = (uint32_t)w->nwrites;
    if (w->nreads > 0)
        memcpy(w->all_reads + w->nall_reads, w->reads, (size_t)w->nreads * sizeof *w->reads);
    if (w->nwrites > 0)
        memcpy(w->all_writes + w->nall_writes, w->wvars, (size_t)w->nwrites * sizeof *w->wvars);
    w->nall_reads += w->nreads;
    w->nall_writes += w->nwrites;
}

static int body(stm_tx *tx, void *arg)
{
    struct worker *w = arg;
    w->rng = w->tx_seed; /* every attempt runs the same program */
    w->nreads = w->nwrites = 0;
    w->overflow = false;
    run_ops(w, tx, 0);
    if (w->overflow)
        violation("attempt log overflow (%" PRIdPTR ", %" PRIdPTR ") %d", 0, 0, 0);
    stm_after_commit(tx, log_commit, w);
    return 0;
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    for (long i = 0; i < w->ntx; i++) {
        w->my_id = ((intptr_t)(w->id + 1) << ID_SHIFT) | (intptr_t)(i + 1);
        w->tx_seed = tu_rand(&w->outer) | 1;
        uint32_t kind = tu_rand_below(&w->outer, 10);
        w->ro = kind < 3;
        w->stubborn = kind == 3;
        w->deadline = stm_now() + STM_USEC(200 + tu_rand_below(&w->outer, 800));
        int hooks_before = w->hooks_run;
        int rc;
        if (w->ro) {
            w->ro_calls++;
            rc = stm_atomically_ro(body, w);
        } else if (kind < 5) {
            w->until_calls++;
            rc = stm_atomically_until(body, w, w->deadline);
        } else {
            rc = stm_atomically(body, w);
        }
        if (rc == 0) {
            w->commits++;
            if (w->hooks_run != hooks_before + 1)
                violation("commit ran %" PRIdPTR " hooks (%" PRIdPTR ") %d",
                          w->hooks_run - hooks_before, 0, 0);
        } else if (rc == ABORT_CODE || rc == -ETIMEDOUT) {
            if (rc == ABORT_CODE)
                w->aborts++;
            else
                w->timeouts++;
            if (w->hooks_run != hooks_before)
                violation("discarded transaction ran its hooks (%" PRIdPTR ", %" PRIdPTR ") %d", rc,
                          0, 0);
        } else {
            violation("stm_atomically returned %" PRIdPTR " (%" PRIdPTR ") %d", rc, 0, 0);
        }
    }
    return NULL;
}

/* ---- the offline checker ---- */

struct node {
    int thread;
    struct tx_rec *rec;
};

static long idx_of(long *const *by_seq, const long *nseq, intptr_t id)
{
    if (id == 0)
        return -1;
    int t = (int)(id >> ID_SHIFT) - 1;
    long s = (long)(id & ((1 << ID_SHIFT) - 1));
    if (t < 0 || t >= g_nthreads || s < 0 || s >= nseq[t])
        return -2;
    return by_seq[t][s];
}

/* Checks the history logged in ws[0..nthreads) against the TVars' final
 * values; returns the number of violations (the first described in msg)
 * and sets *checked to the number of transactions checked. */
static long check_history(struct worker *ws, int nthreads, const intptr_t *final, long *checked,
                          char *msg, size_t msglen)
{
    long n = 0;
    for (int t = 0; t < nthreads; t++)
        n += ws[t].ntxs;
    struct node *nodes = calloc((size_t)n, sizeof *nodes);
    long *by_seq[MAXTHREADS];
    long nseq[MAXTHREADS];
    long k = 0;
    for (int t = 0; t < nthreads; t++) {
        nseq[t] = ws[t].ntx + 1;
        by_seq[t] = malloc((size_t)nseq[t] * sizeof(long));
        ck_assert_ptr_nonnull(by_seq[t]);
        for (long s = 0; s < nseq[t]; s++)
            by_seq[t][s] = -2; /* not committed */
        for (long i = 0; i < ws[t].ntxs; i++, k++) {
            nodes[k].thread = t;
            nodes[k].rec = &ws[t].txs[i];
            by_seq[t][ws[t].txs[i].seq] = k;
        }
    }
    /* succ[v][idx + 1]: the transaction that overwrote version idx of v */
    long *succ[NVARS];
    for (int v = 0; v < NVARS; v++) {
        succ[v] = malloc((size_t)(n + 1) * sizeof(long));
        ck_assert_ptr_nonnull(succ[v]);
        for (long i = 0; i <= n; i++)
            succ[v][i] = -1;
    }
    long bad = 0;
    msg[0] = '\0';
#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (bad++ == 0)                                                                            \
            snprintf(msg, msglen, __VA_ARGS__);                                                    \
    } while (0)
    for (long i = 0; i < n; i++) {
        struct worker *w = &ws[nodes[i].thread];
        struct tx_rec *r = nodes[i].rec;
        const struct read_rec *rs = w->all_reads + r->read_off;
        for (uint32_t j = 0; j < r->nreads; j++) {
            long src = idx_of(by_seq, nseq, rs[j].val);
            if (src == -2)
                BAD("tx %ld read %" PRIdPTR " from var %d: not a committed write", i, rs[j].val,
                    rs[j].var);
        }
        const int *wv = w->all_writes + r->write_off;
        for (uint32_t j = 0; j < r->nwrites; j++) {
            int v = wv[j];
            intptr_t prev = 0;
            bool found = false;
            for (uint32_t q = 0; q < r->nreads; q++)
                if (rs[q].var == v) {
                    prev = rs[q].val, found = true;
                    break;
                }
            if (!found) {
                BAD("tx %ld wrote var %d without reading it", i, v);
                continue;
            }
            long p = idx_of(by_seq, nseq, prev);
            if (p == -2)
                continue; /* reported above */
            if (succ[v][p + 1] != -1)
                BAD("lost update: txs %ld and %ld both overwrote version %" PRIdPTR " of var %d",
                    succ[v][p + 1], i, prev, v);
            else
                succ[v][p + 1] = i;
        }
    }
    /* Each chain from 0 must reach the TVar's final value and cover every
     * committed write of that TVar. */
    for (int v = 0; v < NVARS; v++) {
        long len = 0, cur = -1, writes = 0;
        for (long i = 0; i < n; i++) {
            struct tx_rec *r = nodes[i].rec;
            const int *wv = ws[nodes[i].thread].all_writes + r->write_off;
            for (uint32_t j = 0; j < r->nwrites; j++)
                writes += wv[j] == v;
        }
        while (succ[v][cur + 1] != -1 && len <= n) {
            cur = succ[v][cur + 1];
            len++;
        }
        intptr_t fin = final[v];
        long fidx = idx_of(by_seq, nseq, fin);
        if (fidx != cur)
            BAD("var %d: final value %" PRIdPTR " is not the end of its version chain", v, fin);
        if (len != writes)
            BAD("var %d: version chain of %ld, but %ld committed writes", v, len, writes);
    }
    /* The dependency graph: WR edges writer -> reader, RW edges reader of a
     * version -> the transaction that overwrote it.  Kahn's algorithm. */
    long *indeg = calloc((size_t)n, sizeof(long));
    long *head = malloc((size_t)n * sizeof(long));
    long nedges_cap = 1024, nedges = 0;
    long(*edges)[2] = malloc((size_t)nedges_cap * sizeof *edges);
    ck_assert(indeg && head && edges);
    for (long i = 0; i < n; i++) {
        struct tx_rec *r = nodes[i].rec;
        const struct read_rec *rs = ws[nodes[i].thread].all_reads + r->read_off;
        for (uint32_t j = 0; j < r->nreads; j++) {
            long src = idx_of(by_seq, nseq, rs[j].val);
            if (src == -2)
                continue;
            long next = succ[rs[j].var][src + 1];
            long e[2][2] = {{src, i}, {i, next}};
            for (int q = 0; q < 2; q++) {
                if (e[q][0] < 0 || e[q][1] < 0 || e[q][0] == e[q][1])
                    continue;
                if (nedges == nedges_cap) {
                    nedges_cap *= 2;
                    edges = realloc(edges, (size_t)nedges_cap * sizeof *edges);
                    ck_assert_ptr_nonnull(edges);
                }
                edges[nedges][0] = e[q][0];
                edges[nedges][1] = e[q][1];
                nedges++;
                indeg[e[q][1]]++;
            }
        }
    }
    /* adjacency in CSR form */
    long *start = calloc((size_t)n + 1, sizeof(long));
    long *adj = malloc((size_t)(nedges ? nedges : 1) * sizeof(long));
    ck_assert(start && adj);
    for (long e = 0; e < nedges; e++)
        start[edges[e][0] + 1]++;
    for (long i = 0; i < n; i++)
        start[i + 1] += start[i];
    long *fill = malloc((size_t)(n + 1) * sizeof(long));
    ck_assert_ptr_nonnull(fill);
    memcpy(fill, start, (size_t)(n + 1) * sizeof(long));
    for (long e = 0; e < nedges; e++)
        adj[fill[edges[e][0]]++] = edges[e][1];
    long qh = 0, qt = 0, done = 0;
    for (long i = 0; i < n; i++)
        if (indeg[i] == 0)
            head[qt++] = i;
    while (qh < qt) {
        long u = head[qh++];
        done++;
        for (long e = start[u]; e < start[u + 1]; e++)
            if (--indeg[adj[e]] == 0)
                head[qt++] = adj[e];
    }
    if (done != n)
        BAD("dependency cycle: %ld of %ld transactions cannot be ordered", n - done, n);
    free(fill);
    free(adj);
    free(start);
    free(edges);
    free(head);
    free(indeg);
    for (int v = 0; v < NVARS; v++)
        free(succ[v]);
    for (int t = 0; t < nthreads; t++)
        free(by_seq[t]);
    free(nodes);
    *checked = n;
    if (bad == 0)
        printf("check_serial: %ld committed transactions, %ld dependency edges: serializable\n", n,
               nedges);
    return bad;
#undef BAD
}

static void run(const char *waiter)
{
    ck_assert_int_eq(stm_set_waiter(waiter), 0);
    for (int v = 0; v < NVARS; v++) {
        vars[v] = stm_tvar_new(0);
        ck_assert_ptr_nonnull(vars[v]);
    }
    int nthreads = tu_ncpu() < 2 ? 3 : tu_ncpu() + 2;
    if (nthreads > 6)
        nthreads = 6;
    g_nthreads = nthreads;
    long ntx = TU_SCALE(6000, 800);
    const char *e = getenv("STM_SERIAL_TX");
    if (e != NULL && atol(e) > 0)
        ntx = atol(e);
    if (ntx >= (1L << ID_SHIFT) - 1)
        ntx = (1L << ID_SHIFT) - 2;
    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    ck_assert_ptr_nonnull(ws);
    atomic_store(&opacity_violations, 0);
    atomic_store(&deadline_early, 0);
    for (int t = 0; t < nthreads; t++) {
        ws[t].id = t;
        ws[t].ntx = ntx;
        ws[t].outer = tu_seed(run_seed * 131 + (uint64_t)t);
        ws[t].tid = tu_run_thread(worker_main, &ws[t]);
    }
    for (int t = 0; t < nthreads; t++)
        tu_join(ws[t].tid);
    long commits = 0, aborts = 0, timeouts = 0, ro = 0, until = 0;
    for (int t = 0; t < nthreads; t++) {
        commits += ws[t].commits;
        aborts += ws[t].aborts;
        timeouts += ws[t].timeouts;
        ro += ws[t].ro_calls;
        until += ws[t].until_calls;
    }
    struct stm_stats st;
    stm_stats_get(&st);
    printf("check_serial[%s] seed %" PRIu64 ": %d threads, %ld committed, %ld aborted, %ld "
           "timed out (%ld read-only, %ld timed calls); library: %" PRIu64 " aborts, %" PRIu64
           " retries\n",
           waiter, run_seed, nthreads, commits, aborts, timeouts, ro, until, st.aborts, st.retries);
    ck_assert_msg(atomic_load(&opacity_violations) == 0,
                  "seed %" PRIu64 ": %ld opacity violations; first: %s", run_seed,
                  atomic_load(&opacity_violations), first_violation);
    ck_assert_msg(atomic_load(&deadline_early) == 0, "seed %" PRIu64 ": deadline seen early",
                  run_seed);
    intptr_t final[NVARS];
    for (int v = 0; v < NVARS; v++)
        final[v] = stm_tvar_peek(vars[v]);
    long checked = 0;
    char msg[512];
    long bad = check_history(ws, nthreads, final, &checked, msg, sizeof msg);
    ck_assert_msg(bad == 0, "seed %" PRIu64 ": %ld serializability violations; first: %s", run_seed,
                  bad, msg);
    ck_assert_int_eq(checked, commits);
    ck_assert_int_gt(timeouts, 0);
    ck_assert_int_gt(aborts, 0);
    for (int t = 0; t < nthreads; t++) {
        free(ws[t].txs);
        free(ws[t].all_reads);
        free(ws[t].all_writes);
    }
    free(ws);
    for (int v = 0; v < NVARS; v++)
        stm_tvar_free(vars[v]);
    stm_shutdown();
}

START_TEST(test_serial_condvar)
{
    run("condvar");
}
END_TEST

START_TEST(test_serial_pipe)
{
    run("pipe");
}
END_TEST

START_TEST(test_serial_thread)
{
    run("thread");
}
END_TEST

/* ---- the checker catches what it should: synthetic histories ---- */

#define ID(t, s) (((intptr_t)(t) + 1) << ID_SHIFT | (s))

/* Log a committed transaction of thread t: reads (var, value) pairs, then
 * the vars written. */
static void fake_tx(struct worker *ws, int t, int seq, int nreads, const int *rv,
                    const intptr_t *rval, int nwrites, const int *wv)
{
    struct worker *w = &ws[t];
    w->my_id = ID(t, seq);
    w->nreads = nreads;
    for (int i = 0; i < nreads; i++) {
        w->reads[i].var = rv[i];
        w->reads[i].val = rval[i];
    }
    w->nwrites = nwrites;
    for (int i = 0; i < nwrites; i++)
        w->wvars[i] = wv[i];
    log_commit(w);
}

static long fake_check(struct worker *ws, const intptr_t *final)
{
    long checked = 0;
    char msg[512];
    long bad = check_history(ws, 3, final, &checked, msg, sizeof msg);
    for (int t = 0; t < 3; t++) {
        free(ws[t].txs);
        free(ws[t].all_reads);
        free(ws[t].all_writes);
    }
    memset(ws, 0, 3 * sizeof *ws);
    for (int t = 0; t < 3; t++)
        ws[t].ntx = 3;
    if (bad)
        printf("checker self-test: caught: %s\n", msg);
    return bad;
}

START_TEST(test_checker_catches)
{
    struct worker ws[3];
    memset(ws, 0, sizeof ws);
    for (int t = 0; t < 3; t++)
        ws[t].ntx = 3;
    g_nthreads = 3;
    intptr_t final[NVARS] = {0};
    const int v01[] = {0, 1}, v10[] = {1, 0}, v0[] = {0}, v1[] = {1};

    /* serial: T0 then T1 both increment var 0; T2 reads both */
    fake_tx(ws, 0, 1, 1, v0, (intptr_t[]){0}, 1, v0);
    fake_tx(ws, 1, 1, 1, v0, (intptr_t[]){ID(0, 1)}, 1, v0);
    fake_tx(ws, 2, 1, 2, v01, (intptr_t[]){ID(1, 1), 0}, 0, NULL);
    final[0] = ID(1, 1);
    ck_assert_int_eq(fake_check(ws, final), 0);

    /* write skew: both read var 0 and var 1 initial, each writes one */
    fake_tx(ws, 0, 1, 2, v01, (intptr_t[]){0, 0}, 1, v0);
    fake_tx(ws, 1, 1, 2, v01, (intptr_t[]){0, 0}, 1, v1);
    final[0] = ID(0, 1), final[1] = ID(1, 1);
    ck_assert_int_gt(fake_check(ws, final), 0);

    /* lost update: both overwrite the initial version of var 0 */
    fake_tx(ws, 0, 1, 1, v0, (intptr_t[]){0}, 1, v0);
    fake_tx(ws, 1, 1, 1, v0, (intptr_t[]){0}, 1, v0);
    final[0] = ID(1, 1), final[1] = 0;
    ck_assert_int_gt(fake_check(ws, final), 0);

    /* dirty read: a value no committed transaction wrote */
    fake_tx(ws, 0, 1, 1, v0, (intptr_t[]){ID(1, 2)}, 0, NULL);
    final[0] = 0;
    ck_assert_int_gt(fake_check(ws, final), 0);

    /* a reader that sees T1's write but not T0's, which T1 read */
    fake_tx(ws, 0, 1, 1, v0, (intptr_t[]){0}, 1, v0);
    fake_tx(ws, 1, 1, 2, v01, (intptr_t[]){ID(0, 1), 0}, 1, v1);
    fake_tx(ws, 2, 1, 2, v10, (intptr_t[]){ID(1, 1), 0}, 0, NULL);
    final[0] = ID(0, 1), final[1] = ID(1, 1);
    ck_assert_int_gt(fake_check(ws, final), 0);

    /* a final value that is not the last version */
    fake_tx(ws, 0, 1, 1, v0, (intptr_t[]){0}, 1, v0);
    final[0] = 0, final[1] = 0;
    ck_assert_int_gt(fake_check(ws, final), 0);
}
END_TEST

static Suite *serial_suite(void)
{
    Suite *s = suite_create("serial");
    TCase *tc = tcase_create("history");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_checker_catches);
    tcase_add_test(tc, test_serial_condvar);
    tcase_add_test(tc, test_serial_pipe);
    tcase_add_test(tc, test_serial_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *e = getenv("STM_SERIAL_SEED");
    if (e != NULL && *e != '\0')
        run_seed = strtoull(e, NULL, 10);
    else
        run_seed = (uint64_t)tu_now_ns() % 1000000007u;
    printf("check_serial: seed %" PRIu64 " (set STM_SERIAL_SEED to repeat)\n", run_seed);
    fflush(stdout);
    return tu_run_suite(serial_suite());
}
