/*
 * tut2_transfer.c - tutorial step 2: transfers that compose, and that can
 * refuse.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * withdraw() and deposit() are small operations that take a transaction
 * handle; transfer() is just the two called in one transaction, and so is
 * atomic as a whole.  A withdrawal that would overdraw calls stm_abort()
 * with our own error code: the transaction is discarded (also any deposit
 * already made in it) and stm_atomically() returns the code.  Three
 * threads move random amounts around while the main thread checks that
 * the total never changes.  See doc/tutorial.md, step 2.  Exits 0 iff the
 * total was always right and no balance went negative.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

enum { ACCOUNTS = 5, OPENING = 100, TOTAL = ACCOUNTS * OPENING };
enum { THREADS = 3, TRANSFERS = 20000 };
enum { E_FUNDS = 1000 }; /* ours: positive, so never taken for a -errno */

static stm_tvar *account[ACCOUNTS];
static atomic_long refused;

/* Building blocks: they take `tx`, so they run inside someone's
 * transaction and commit (or not) together with the rest of it. */
static void withdraw(stm_tx *tx, stm_tvar *acct, intptr_t amount)
{
    intptr_t balance = stm_read(tx, acct);
    if (balance < amount)
        stm_abort(tx, E_FUNDS); /* does not return */
    stm_write(tx, acct, balance - amount);
}

static void deposit(stm_tx *tx, stm_tvar *acct, intptr_t amount)
{
    stm_write(tx, acct, stm_read(tx, acct) + amount);
}

struct transfer { int from, to; intptr_t amount; };

static int transfer(stm_tx *tx, void *arg)
{
    struct transfer *t = arg;
    deposit(tx, account[t->to], t->amount); /* undone if the withdrawal fails */
    withdraw(tx, account[t->from], t->amount);
    return 0;
}

/* The invariant, read in one snapshot: the sum, or -1 if a balance is
 * negative. */
static int audit(stm_tx *tx, void *arg)
{
    (void)arg;
    intptr_t sum = 0;
    for (int i = 0; i < ACCOUNTS; i++) {
        intptr_t b = stm_read(tx, account[i]);
        if (b < 0)
            return -1;
        sum += b;
    }
    return (int)sum;
}

static void *clerk(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < TRANSFERS; i++) {
        /* Choose outside the body: a re-run must repeat the same transfer. */
        struct transfer t = {rand_r(&seed) % ACCOUNTS, 0, 1 + rand_r(&seed) % 60};
        t.to = (t.from + 1 + rand_r(&seed) % (ACCOUNTS - 1)) % ACCOUNTS;
        int rc = stm_atomically(transfer, &t);
        if (rc == E_FUNDS) {
            atomic_fetch_add(&refused, 1);
        } else if (rc != 0) {
            fprintf(stderr, "tut2: transfer: %s\n", stm_strerror(rc));
            exit(1);
        }
    }
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];
    for (int i = 0; i < ACCOUNTS; i++)
        if ((account[i] = stm_tvar_new(OPENING)) == NULL) {
            perror("tut2: stm_tvar_new");
            return 1;
        }

    /* One refusal, shown on its own: 500 is more than account 0 has. */
    struct transfer big = {0, 1, 500};
    int rc = stm_atomically(transfer, &big);
    printf("tut2: transfer 500 from account 0: %s; balances %ld and %ld\n",
           rc == E_FUNDS ? "refused, insufficient funds" : "accepted?!",
           (long)stm_tvar_peek(account[0]), (long)stm_tvar_peek(account[1]));
    int ok = rc == E_FUNDS && stm_tvar_peek(account[1]) == OPENING;

    for (int i = 0; i < THREADS; i++) {
        int err = pthread_create(&th[i], NULL, clerk, (void *)(uintptr_t)(i + 1));
        if (err != 0) {
            fprintf(stderr, "tut2: pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    long audits = 0, bad = 0;
    for (; audits < 2000; audits++) /* audit while the clerks work */
        bad += stm_atomically(audit, NULL) != TOTAL;
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    bad += stm_atomically(audit, NULL) != TOTAL;
    ok = ok && bad == 0;

    printf("tut2: %ld transfers refused for insufficient funds, %ld done\n",
           atomic_load(&refused), (long)THREADS * TRANSFERS - atomic_load(&refused));
    printf("tut2: %ld audits, %ld wrong; total %d: %s\n", audits + 1, bad, TOTAL,
           ok ? "OK" : "WRONG");
    for (int i = 0; i < ACCOUNTS; i++)
        stm_tvar_free(account[i]);
    stm_shutdown();
    return ok ? 0 : 1;
}
