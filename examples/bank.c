/*
 * bank.c - libstm by example: a bank whose money is never lost or created.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * 16 accounts and a vault are TVars.  Four tellers move random amounts
 * between accounts; a transfer from an account that cannot cover it
 * *waits* (stm_retry) instead of overdrawing.  A depositor tops up the
 * poorest account from the vault now and then, which wakes tellers waiting
 * on it.  An auditor sums everything in one transaction and checks that the
 * total never changes.  When the depositor is done it sets `closing`: from
 * then on a transfer that would have to wait is declined (stm_or_else), so
 * no teller can wait forever.  Exits 0 iff every audit balanced.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stm.h>

enum { ACCOUNTS = 16, TELLERS = 4, TRANSFERS = 20000, DEPOSITS = 400 };
enum { OPENING = 1000, VAULT = 100000, TOTAL = ACCOUNTS * OPENING + VAULT };

static stm_tvar *account[ACCOUNTS], *vault, *closing, *tellers_done;
static atomic_long declined;                   /* summed by the tellers */
static long audits, audit_failures, deposits; /* one writer each; read after join */

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "bank: %s: %s\n", what, stm_strerror(rc));
        exit(1);
    }
}

/* ---- a transfer: wait for funds, or decline once the bank is closing ---- */

struct transfer { int from, to; intptr_t amount; };

static int try_transfer(stm_tx *tx, void *arg)
{
    struct transfer *t = arg;
    intptr_t balance = stm_read(tx, account[t->from]);
    if (balance < t->amount)
        stm_retry(tx); /* abandons this branch; stm_or_else runs the other */
    stm_write(tx, account[t->from], balance - t->amount);
    stm_write(tx, account[t->to], stm_read(tx, account[t->to]) + t->amount);
    return 1; /* done */
}

static int decline_if_closing(stm_tx *tx, void *arg)
{
    (void)arg;
    if (!stm_read(tx, closing))
        stm_retry(tx); /* both branches retried: sleep until the source
                          balance or `closing` changes, then run again */
    return 0; /* declined */
}

static int transfer_body(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, try_transfer, decline_if_closing, arg);
}

static int add_one(stm_tx *tx, void *arg)
{
    stm_tvar *counter = arg;
    stm_write(tx, counter, stm_read(tx, counter) + 1);
    return 0;
}

static void *teller(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    long no = 0;
    for (int i = 0; i < TRANSFERS; i++) {
        /* Choose outside the transaction: a retried body must wait for the
         * *same* transfer, not pick an easier one. */
        struct transfer t = {rand_r(&seed) % ACCOUNTS, 0, 1 + rand_r(&seed) % 800};
        t.to = (t.from + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        int rc = stm_atomically(transfer_body, &t);
        check(rc, "transfer");
        no += rc == 0;
    }
    atomic_fetch_add(&declined, no);
    check(stm_atomically(add_one, tellers_done), "tellers_done");
    return NULL;
}

/* ---- the depositor: move money from the vault to the poorest account ---- */

static int deposit_body(stm_tx *tx, void *arg)
{
    (void)arg;
    int poorest = 0;
    intptr_t low = stm_read(tx, account[0]), cash = stm_read(tx, vault);
    for (int i = 1; i < ACCOUNTS; i++) {
        intptr_t v = stm_read(tx, account[i]);
        if (v < low)
            low = v, poorest = i;
    }
    intptr_t amount = cash < 200 ? cash : 200;
    stm_write(tx, vault, cash - amount);
    stm_write(tx, account[poorest], low + amount);
    return 0;
}

static void *depositor(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 500000}; /* 0.5 ms */
    for (int i = 0; i < DEPOSITS && stm_tvar_peek(tellers_done) < TELLERS; i++) {
        check(stm_atomically(deposit_body, NULL), "deposit");
        deposits++;
        nanosleep(&pause, NULL);
    }
    check(stm_tvar_poke(closing, 1), "closing"); /* wakes waiting tellers */
    return NULL;
}

/* ---- the auditor: one consistent snapshot of all the money ---- */

static int audit_body(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t sum = stm_read(tx, vault);
    for (int i = 0; i < ACCOUNTS; i++)
        sum += stm_read(tx, account[i]);
    return (int)sum; /* opacity: even an attempt that will be restarted
                        sees a consistent snapshot, so this is never torn */
}

static void *auditor(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 100000}; /* 0.1 ms */
    do {
        int sum = stm_atomically(audit_body, NULL);
        check(sum, "audit");
        audits++;
        audit_failures += sum != TOTAL;
        nanosleep(&pause, NULL);
    } while (stm_tvar_peek(tellers_done) < TELLERS);
    return NULL;
}

static stm_tvar *tvar(intptr_t value, const char *name)
{
    stm_tvar *v = stm_tvar_new(value);
    if (!v || stm_tvar_set_name(v, name) != 0) {
        perror("bank: stm_tvar_new");
        exit(1);
    }
    return v;
}

int main(void)
{
    pthread_t th[TELLERS + 2];
    char name[32];
    for (int i = 0; i < ACCOUNTS; i++) {
        snprintf(name, sizeof name, "account[%d]", i);
        account[i] = tvar(OPENING, name);
    }
    vault = tvar(VAULT, "vault");
    closing = tvar(0, "closing");
    tellers_done = tvar(0, "tellers_done");

    for (int i = 0; i < TELLERS + 2; i++) {
        void *(*fn)(void *) = i < TELLERS ? teller : i == TELLERS ? depositor : auditor;
        int err = pthread_create(&th[i], NULL, fn, (void *)(uintptr_t)(i + 1));
        if (err) {
            fprintf(stderr, "bank: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    for (int i = 0; i < TELLERS + 2; i++)
        pthread_join(th[i], NULL);

    /* Everyone has stopped: a final audit, then the report. */
    int total = stm_atomically(audit_body, NULL);
    check(total, "final audit");
    struct stm_stats st;
    stm_stats_get(&st);
    long no = atomic_load(&declined);
    printf("bank: %ld transfers done, %ld declined at closing; %ld deposits, "
           "%ld audits\n", (long)TELLERS * TRANSFERS - no, no, deposits, audits);
    printf("bank: commits %llu, aborts %llu, retries %llu, wakeups %llu\n",
           (unsigned long long)st.commits, (unsigned long long)st.aborts,
           (unsigned long long)st.retries, (unsigned long long)st.wakeups);
    int ok = total == TOTAL && audit_failures == 0;
    printf("bank: total %d == initial %d, %ld failed audits: %s\n", total, TOTAL,
           audit_failures, ok ? "OK" : "FAILED");

    for (int i = 0; i < ACCOUNTS; i++)
        stm_tvar_free(account[i]);
    stm_tvar_free(vault);
    stm_tvar_free(closing);
    stm_tvar_free(tellers_done);
    stm_shutdown();
    return ok ? 0 : 1;
}
