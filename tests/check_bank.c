/*
 * check_bank.c - stress: random transfers between 64 accounts, audited.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * 64 accounts (TVars) start with the same balance, so the total is known.
 * Transfer threads move random amounts between two random accounts, each
 * transfer one transaction that reads both and writes both; a transfer
 * that would make the source negative is skipped (the transaction commits
 * read-only).  Auditor threads sum all 64 accounts in one transaction, over
 * and over, while the transfers run.
 *
 * What must hold:
 *  - opacity: every attempt of every body - also attempts that are later
 *    restarted - sees a consistent snapshot, so the auditor's sum is the
 *    known total and no balance is negative, checked inside the body;
 *  - atomicity: after all threads have joined the total is unchanged and
 *    no account is negative;
 *  - progress and accounting: every transfer and every audit returned from
 *    stm_atomically(), and stm_stats counted at least that many commits.
 */
#define _GNU_SOURCE
#include <stm.h>

#include "testutil.h"

#define NACC 64
#define INIT_BALANCE 1000
#define TOTAL ((intptr_t)NACC * INIT_BALANCE)

static stm_tvar *acc[NACC];

/* Set once the transfer threads have all finished. */
static atomic_int transfers_done;

/* Violations seen inside transaction bodies (asserted after join). */
static atomic_long audit_bad_total;  /* auditor attempts with a wrong sum */
static atomic_long audit_negative;   /* auditor attempts seeing a negative balance */
static atomic_long transfer_negative; /* transfer attempts seeing a negative balance */
static _Atomic intptr_t first_bad_sum;

static atomic_long audits;         /* committed audits */
static atomic_long audit_attempts; /* auditor body runs */
static atomic_int bad_rc;          /* a stm_atomically() returned something unexpected */

static pthread_barrier_t start_line;

struct xfer {
    int from, to;
    intptr_t amount;
};

/* Returns 1 if the transfer was made, 0 if skipped for lack of funds. */
static int transfer_body(stm_tx *tx, void *arg)
{
    const struct xfer *x = arg;
    intptr_t a = stm_read(tx, acc[x->from]);
    intptr_t b = stm_read(tx, acc[x->to]);
    if (a < 0 || b < 0)
        atomic_fetch_add(&transfer_negative, 1);
    if (a < x->amount)
        return 0;
    stm_write(tx, acc[x->from], a - x->amount);
    stm_write(tx, acc[x->to], b + x->amount);
    return 1;
}

static int audit_body(stm_tx *tx, void *arg)
{
    (void)arg;
    atomic_fetch_add(&audit_attempts, 1);
    intptr_t sum = 0;
    bool negative = false;
    for (int i = 0; i < NACC; i++) {
        intptr_t v = stm_read(tx, acc[i]);
        if (v < 0)
            negative = true;
        sum += v;
    }
    /* Checked here, on every attempt: an attempt that is about to be
     * restarted must not have seen an inconsistent state either. */
    if (sum != TOTAL) {
        intptr_t zero = 0;
        atomic_compare_exchange_strong(&first_bad_sum, &zero, sum);
        atomic_fetch_add(&audit_bad_total, 1);
    }
    if (negative)
        atomic_fetch_add(&audit_negative, 1);
    return 7;
}

struct xfer_thread {
    pthread_t tid;
    int id;
    long n;      /* transfers to attempt */
    long made;   /* transfers made */
    long skipped; /* transfers skipped for lack of funds */
};

static void *transfer_main(void *p)
{
    struct xfer_thread *t = p;
    uint64_t rng = tu_seed((uint64_t)t->id);
    pthread_barrier_wait(&start_line);
    for (long i = 0; i < t->n; i++) {
        struct xfer x;
        x.from = (int)tu_rand_below(&rng, NACC);
        x.to = (int)tu_rand_below(&rng, NACC - 1);
        if (x.to >= x.from)
            x.to++;
        x.amount = 1 + (intptr_t)tu_rand_below(&rng, INIT_BALANCE / 2);
        int rc = stm_atomically(transfer_body, &x);
        if (rc == 1)
            t->made++;
        else if (rc == 0)
            t->skipped++;
        else
            atomic_store(&bad_rc, rc);
    }
    return NULL;
}

static void *audit_main(void *p)
{
    (void)p;
    pthread_barrier_wait(&start_line);
    /* Audit while the transfers run, and once more after they are done. */
    bool last = false;
    while (!last) {
        last = atomic_load(&transfers_done) != 0;
        int rc = stm_atomically(audit_body, NULL);
        if (rc != 7)
            atomic_store(&bad_rc, rc);
        atomic_fetch_add(&audits, 1);
    }
    return NULL;
}

static int final_sum_body(stm_tx *tx, void *arg)
{
    intptr_t *out = arg;
    intptr_t sum = 0;
    int negative = 0;
    for (int i = 0; i < NACC; i++) {
        intptr_t v = stm_read(tx, acc[i]);
        negative += v < 0;
        sum += v;
    }
    *out = sum;
    return negative;
}

static void run_bank(int nxfer, int nauditors, long per_thread)
{
    for (int i = 0; i < NACC; i++) {
        acc[i] = stm_tvar_new(INIT_BALANCE);
        ck_assert_ptr_nonnull(acc[i]);
    }
    atomic_store(&transfers_done, 0);
    atomic_store(&audit_bad_total, 0);
    atomic_store(&audit_negative, 0);
    atomic_store(&transfer_negative, 0);
    atomic_store(&first_bad_sum, 0);
    atomic_store(&audits, 0);
    atomic_store(&audit_attempts, 0);
    atomic_store(&bad_rc, 0);

    struct stm_stats before, after;
    stm_stats_get(&before);
    int64_t t0 = tu_now_ns();

    ck_assert_int_eq(pthread_barrier_init(&start_line, NULL, (unsigned)(nxfer + nauditors)), 0);
    struct xfer_thread *xt = calloc((size_t)nxfer, sizeof *xt);
    pthread_t *at = calloc((size_t)nauditors, sizeof *at);
    ck_assert(xt != NULL && at != NULL);
    for (int i = 0; i < nxfer; i++) {
        xt[i].id = i;
        xt[i].n = per_thread;
        xt[i].tid = tu_run_thread(transfer_main, &xt[i]);
    }
    for (int i = 0; i < nauditors; i++)
        at[i] = tu_run_thread(audit_main, NULL);

    for (int i = 0; i < nxfer; i++)
        tu_join(xt[i].tid);
    atomic_store(&transfers_done, 1);
    for (int i = 0; i < nauditors; i++)
        tu_join(at[i]);
    pthread_barrier_destroy(&start_line);

    int64_t t1 = tu_now_ns();
    stm_stats_get(&after);

    long made = 0, skipped = 0;
    for (int i = 0; i < nxfer; i++) {
        ck_assert_int_eq(xt[i].made + xt[i].skipped, per_thread);
        made += xt[i].made;
        skipped += xt[i].skipped;
    }
    long naudits = atomic_load(&audits);
    fprintf(stderr,
            "bank: %d transfer threads x %ld, %d auditors: %ld made, %ld skipped, "
            "%ld audits (%ld attempts), %.3f s; commits %llu aborts %llu serial %llu\n",
            nxfer, per_thread, nauditors, made, skipped, naudits,
            atomic_load(&audit_attempts), (double)(t1 - t0) / 1e9,
            (unsigned long long)(after.commits - before.commits),
            (unsigned long long)(after.aborts - before.aborts),
            (unsigned long long)(after.serial_runs - before.serial_runs));

    ck_assert_msg(atomic_load(&bad_rc) == 0, "stm_atomically returned %d",
                  atomic_load(&bad_rc));
    ck_assert_msg(atomic_load(&audit_bad_total) == 0,
                  "opacity: %ld audit attempts saw a wrong total (first: %ld, want %ld)",
                  atomic_load(&audit_bad_total), (long)atomic_load(&first_bad_sum),
                  (long)TOTAL);
    ck_assert_msg(atomic_load(&audit_negative) == 0,
                  "opacity: %ld audit attempts saw a negative balance",
                  atomic_load(&audit_negative));
    ck_assert_msg(atomic_load(&transfer_negative) == 0,
                  "opacity: %ld transfer attempts saw a negative balance",
                  atomic_load(&transfer_negative));
    ck_assert_msg(naudits >= nauditors, "only %ld audits", naudits);
    ck_assert_msg(made > 0, "no transfer was made");

    intptr_t sum = 0;
    int negative = stm_atomically(final_sum_body, &sum);
    ck_assert_int_eq(negative, 0);
    ck_assert_msg(sum == TOTAL, "total %ld after the run, want %ld", (long)sum, (long)TOTAL);
    intptr_t peeked = 0;
    for (int i = 0; i < NACC; i++) {
        intptr_t v = stm_tvar_peek(acc[i]);
        ck_assert_msg(v >= 0, "account %d is %ld", i, (long)v);
        peeked += v;
    }
    ck_assert(peeked == TOTAL);

    /* Every stm_atomically() call above returned, hence committed: one
     * commit per transfer (made or skipped) and per audit.  Other commits
     * (none here) could only add. */
    uint64_t want = (uint64_t)nxfer * (uint64_t)per_thread + (uint64_t)naudits;
    ck_assert_msg(after.commits - before.commits >= want, "commits grew by %llu, want >= %llu",
                  (unsigned long long)(after.commits - before.commits),
                  (unsigned long long)want);

    free(xt);
    free(at);
    for (int i = 0; i < NACC; i++)
        stm_tvar_free(acc[i]);
    stm_shutdown();
}

/* 4 transfer threads and an auditor. */
START_TEST(test_bank_4)
{
    run_bank(4, 1, TU_SCALE(200000L, 10000L));
}
END_TEST

/* More threads than cores: at least 8 transfer threads (twice the cores,
 * up to 32) and two auditors. */
START_TEST(test_bank_oversubscribed)
{
    int n = 2 * tu_ncpu();
    if (n < 8)
        n = 8;
    if (n > 32)
        n = 32;
    run_bank(n, 2, TU_SCALE(100000L, 5000L));
}
END_TEST

static Suite *bank_suite(void)
{
    Suite *s = suite_create("bank");
    TCase *tc = tcase_create("bank");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bank_4);
    tcase_add_test(tc, test_bank_oversubscribed);
    suite_add_tcase(s, tc);
    return s;
}

TU_SUITE_MAIN(bank_suite)
