/*
 * map.c - stm_map: threads counting words into one map with string keys,
 * and an auditor that reads a consistent total while they run.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Four threads each count the words of a short text 500 times; one
 * transaction per word looks the word up and stores its count + 1 (a new
 * key for its first occurrence).  An auditor meanwhile walks the whole
 * map in one transaction (stm_map_iter_init / stm_map_next) and checks
 * that the counts add up to a whole number of words counted (each
 * increment and the "words counted" TVar commit together).  Prints the
 * counts and exits 0 iff every count is exact.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

enum { THREADS = 4, ROUNDS = 500 };

static const char text[] = "the quick brown fox jumps over the lazy dog and the dog "
                           "sleeps while the fox runs over the hill";

static stm_map *words;
static stm_tvar counted = STM_TVAR_INIT(0); /* words counted so far */
static atomic_int running = THREADS;

static uint64_t str_hash(intptr_t key)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const char *p = (const char *)key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

static bool str_equal(intptr_t a, intptr_t b)
{
    return strcmp((const char *)a, (const char *)b) == 0;
}

static const struct stm_map_ops str_ops = {str_hash, str_equal};

static int count_word(stm_tx *tx, void *word)
{
    intptr_t n = 0;
    stm_map_get(tx, words, (intptr_t)word, &n); /* n stays 0 if absent */
    stm_map_put(tx, words, (intptr_t)word, n + 1);
    stm_write(tx, &counted, stm_read(tx, &counted) + 1);
    return 0;
}

/* The text with its spaces made '\0': each word a string that outlives the
 * map (the map stores key pointers; it copies nothing). */
static char keys[sizeof text];

static void *counter(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < sizeof text - 1; i++)
            if (keys[i] != '\0' && (i == 0 || keys[i - 1] == '\0'))
                stm_atomically(count_word, keys + i);
    }
    atomic_fetch_sub(&running, 1);
    return NULL;
}

struct audit {
    long sum, counted, keys;
};

static int audit(stm_tx *tx, void *arg)
{
    struct audit *a = arg;
    stm_map_iter it;
    stm_map_iter_init(&it);
    intptr_t key, n;
    a->sum = a->keys = 0;
    while (stm_map_next(tx, words, &it, &key, &n)) {
        a->sum += n;
        a->keys++;
    }
    a->counted = stm_read(tx, &counted);
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < sizeof text; i++)
        keys[i] = text[i] == ' ' ? '\0' : text[i];
    words = stm_map_new(&str_ops);
    if (!words) {
        perror("stm_map_new");
        return 1;
    }
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, counter, NULL);
    long audits = 0, bad = 0;
    while (atomic_load(&running) > 0) {
        struct audit a;
        stm_atomically(audit, &a);
        bad += a.sum != a.counted;
        audits++;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("%ld audits while counting, %ld inconsistent\n", audits, bad);

    /* the exact counts, from the text itself */
    long total = 0;
    for (size_t i = 0; i < sizeof text - 1; i++)
        total += keys[i] != '\0' && (i == 0 || keys[i - 1] == '\0');
    struct audit a;
    stm_atomically(audit, &a);
    printf("%ld distinct words, %ld counted (expected %ld)\n", a.keys, a.sum,
           total * THREADS * ROUNDS);
    bad += a.sum != total * THREADS * ROUNDS;
    stm_map_free(words);
    printf("%s\n", bad ? "FAILED" : "counts exact and every audit consistent: OK");
    stm_shutdown();
    return bad ? 1 : 0;
}
