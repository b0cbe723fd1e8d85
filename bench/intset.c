/*
 * intset.c - the classic integer-set stress test: a sorted linked list, a
 * red-black tree, a skip list and a hash set, shared by N threads that look
 * keys up, add them and remove them, each operation one transaction.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The options, the operation mix and the closing lines are those of
 * TinySTM's test/intset, so that the two can be run side by side:
 *
 *   intset [-t ll|rb|sl|hs] [-m stm|mutex] [-n THREADS] [-i INITIAL]
 *          [-r RANGE] [-u UPDATE%] [-d MS] [-s SEED] [-a]
 *
 *   -t  the structure (default ll)
 *   -m  stm (default): every operation is a transaction (lookups through
 *       stm_atomically_ro, adds and removes through stm_atomically);
 *       mutex: the same code, the same nodes and the same layout, with
 *       plain loads and stores under one global pthread mutex
 *   -n  threads (1);  -i  keys put in before the run (256);
 *   -r  keys are drawn from 1..RANGE (2 * INITIAL);  -u  percentage of
 *       operations that are updates (20);  -d  run time in ms (10000);
 *   -s  seed (0: from the time);  -a  do not alternate: an update adds or
 *       removes a random key, instead of adding a random key and then
 *       removing that same key at the thread's next update.
 *
 * Each thread loops: draw op in 0..99 (erand48, as TinySTM); op < UPDATE:
 * an update, otherwise a lookup of a random key.  "#txs" counts every
 * operation, successful or not.  At the end the program checks the
 * structure (order, red-black rules and parent links, skip-list levels,
 * bucket membership) and that its size is INITIAL plus the successful
 * adds minus the successful removes, and exits with status 1 if not.  The
 * last line is machine-readable:
 *
 *   intset rb i=4096 r=8192 u=20 n=2 m=stm txs/s=... aborts%=...
 *
 * aborts% is discarded attempts (stm_stats_get(): conflicts, and
 * stm_atomically_ro attempts that had to run again) per 100 operations.
 *
 * LAYOUT -- which fields are TVars (read and written only through
 * stm_read/stm_write in stm mode), and which are plain:
 *
 *   linked list  node { key; TVar next; }              keys plain
 *   hash set     2^17 bucket-head TVars (as TinySTM); node { key; TVar next; }
 *   skip list    set { TVar level; }  node { key; level; TVar fwd[level+1]; }
 *   rb tree      set { TVar root; }   node { key; TVar child[2];
 *                                            TVar parent_colour; }
 *                the colour is bit 0 of the parent pointer's word
 *
 * Keys and a skip-list node's level are written once, before the node is
 * published by the committing transaction, and never again, so they are
 * read with plain loads: a transaction only ever reaches a node through a
 * TVar it read from a consistent snapshot, and a node is freed (stm_free
 * after stm_tvar_destroy of its TVars) only once no running transaction
 * can still hold it.  Everything that changes after publication is a TVar,
 * embedded in the node (no separate allocation, no extra pointer to
 * follow).  A red-black node is 56 bytes with 16-byte TVars (TinySTM's: 48).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stm.h"

#define AI static inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))

/* A word of shared state: a TVar in stm mode, a plain word (same size, same
 * place) in mutex mode. */
typedef union slot {
    stm_tvar tv;
    intptr_t w;
} slot;

/* Every structure's code is written once, against these; tx == NULL is
 * mutex mode.  The callers are specialised for both (the inline functions
 * see a constant NULL, or a tx the compiler is told is not NULL). */
AI intptr_t ld(stm_tx *tx, slot *s)
{
    return tx ? stm_read(tx, &s->tv) : s->w;
}

AI void st(stm_tx *tx, slot *s, intptr_t v)
{
    if (tx)
        stm_write(tx, &s->tv, v);
    else
        s->w = v;
}

AI void slot_init(stm_tx *tx, slot *s, intptr_t v)
{
    if (tx)
        stm_tvar_init(&s->tv, v);
    else
        s->w = v;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        perror("intset: malloc");
        exit(1);
    }
    return p;
}

AI void *node_alloc(stm_tx *tx, size_t n)
{
    return tx ? stm_alloc(tx, n) : xmalloc(n);
}

/* A node's TVars are destroyed (at commit), then the node is freed (once
 * no transaction can still be reading it). */
AI void slot_destroy(stm_tx *tx, slot *s)
{
    if (tx)
        stm_tvar_destroy(&s->tv);
}

AI void node_free(stm_tx *tx, void *node)
{
    if (tx)
        stm_free(tx, node);
    else
        free(node);
}

static bool use_mutex;

/* Outside any transaction, after the threads have stopped. */
static intptr_t peek(slot *s)
{
    return use_mutex ? s->w : stm_tvar_peek(&s->tv);
}

static int rand_range(int n, unsigned short *seed)
{
    return (int)(erand48(seed) * n);
}

/* ======================================================================
 * sorted linked list, with a head (INTPTR_MIN) and a tail (INTPTR_MAX)
 * sentinel
 * ====================================================================== */

struct ll_node {
    intptr_t key;
    slot next;
};

struct ll {
    struct ll_node *head;
};

static struct ll_node *ll_new_node(stm_tx *tx, intptr_t key, struct ll_node *next)
{
    struct ll_node *n = node_alloc(tx, sizeof *n);
    n->key = key;
    slot_init(tx, &n->next, (intptr_t)next);
    return n;
}

AI int ll_contains(stm_tx *tx, struct ll *s, intptr_t key)
{
    struct ll_node *cur = (struct ll_node *)ld(tx, &s->head->next);
    while (cur->key < key)
        cur = (struct ll_node *)ld(tx, &cur->next);
    return cur->key == key;
}

AI int ll_add(stm_tx *tx, struct ll *s, intptr_t key)
{
    struct ll_node *prev = s->head, *cur = (struct ll_node *)ld(tx, &prev->next);
    while (cur->key < key) {
        prev = cur;
        cur = (struct ll_node *)ld(tx, &cur->next);
    }
    if (cur->key == key)
        return 0;
    st(tx, &prev->next, (intptr_t)ll_new_node(tx, key, cur));
    return 1;
}

AI int ll_remove(stm_tx *tx, struct ll *s, intptr_t key)
{
    struct ll_node *prev = s->head, *cur = (struct ll_node *)ld(tx, &prev->next);
    while (cur->key < key) {
        prev = cur;
        cur = (struct ll_node *)ld(tx, &cur->next);
    }
    if (cur->key != key)
        return 0;
    st(tx, &prev->next, ld(tx, &cur->next));
    slot_destroy(tx, &cur->next);
    node_free(tx, cur);
    return 1;
}

static long ll_check(struct ll *s)
{
    long n = 0;
    struct ll_node *prev = s->head, *cur = (struct ll_node *)peek(&prev->next);
    for (; cur->key != INTPTR_MAX; prev = cur, cur = (struct ll_node *)peek(&cur->next), n++)
        if (cur->key <= prev->key) {
            printf("CHECK FAILED: list not sorted at key %ld\n", (long)cur->key);
            return -1;
        }
    return n;
}

/* ======================================================================
 * hash set: 2^17 buckets, Knuth's multiplicative hash, new keys pushed at
 * the head of their bucket (as TinySTM's)
 * ====================================================================== */

#define HS_BUCKETS (1u << 17)

struct hs_node {
    intptr_t key;
    slot next;
};

struct hs {
    slot *bucket;
};

static unsigned hs_hash(intptr_t key)
{
    return ((uint32_t)key * 2654435761u) & (HS_BUCKETS - 1);
}

AI int hs_contains(stm_tx *tx, struct hs *s, intptr_t key)
{
    for (struct hs_node *n = (struct hs_node *)ld(tx, &s->bucket[hs_hash(key)]); n;
         n = (struct hs_node *)ld(tx, &n->next))
        if (n->key == key)
            return 1;
    return 0;
}

AI int hs_add(stm_tx *tx, struct hs *s, intptr_t key)
{
    slot *b = &s->bucket[hs_hash(key)];
    struct hs_node *first = (struct hs_node *)ld(tx, b);
    for (struct hs_node *n = first; n; n = (struct hs_node *)ld(tx, &n->next))
        if (n->key == key)
            return 0;
    struct hs_node *n = node_alloc(tx, sizeof *n);
    n->key = key;
    slot_init(tx, &n->next, (intptr_t)first);
    st(tx, b, (intptr_t)n);
    return 1;
}

AI int hs_remove(stm_tx *tx, struct hs *s, intptr_t key)
{
    slot *link = &s->bucket[hs_hash(key)];
    for (struct hs_node *n = (struct hs_node *)ld(tx, link); n;
         link = &n->next, n = (struct hs_node *)ld(tx, link))
        if (n->key == key) {
            st(tx, link, ld(tx, &n->next));
            slot_destroy(tx, &n->next);
            node_free(tx, n);
            return 1;
        }
    return 0;
}

static long hs_check(struct hs *s, int range)
{
    long n = 0;
    char *seen = calloc((size_t)range + 2, 1);
    if (!seen) {
        perror("intset: calloc");
        exit(1);
    }
    for (unsigned b = 0; b < HS_BUCKETS; b++)
        for (struct hs_node *e = (struct hs_node *)peek(&s->bucket[b]); e;
             e = (struct hs_node *)peek(&e->next), n++) {
            if (e->key < 1 || e->key > range || hs_hash(e->key) != b || seen[e->key]) {
                printf("CHECK FAILED: key %ld in bucket %u (hash %u, %s)\n", (long)e->key, b,
                       hs_hash(e->key), e->key >= 1 && e->key <= range ? "twice" : "range");
                free(seen);
                return -1;
            }
            seen[e->key] = 1;
        }
    free(seen);
    return n;
}

/* ======================================================================
 * skip list (TinySTM's parameters: levels 0..32, p = 1/2), head and tail
 * sentinels reaching every level
 * ====================================================================== */

#define SL_MAX_LEVEL 32
#define SL_PROB 50

struct sl_node {
    intptr_t key;
    intptr_t level; /* highest level: fwd[0..level] */
    slot fwd[];
};

struct sl {
    struct sl_node *head, *tail;
    slot level; /* highest level in use */
};

static struct sl_node *sl_alloc(stm_tx *tx, intptr_t key, int level)
{
    struct sl_node *n = node_alloc(tx, sizeof *n + (size_t)(level + 1) * sizeof(slot));
    n->key = key;
    n->level = level;
    return n;
}

AI int sl_contains(stm_tx *tx, struct sl *s, intptr_t key)
{
    struct sl_node *node = s->head, *next = NULL;
    for (int i = (int)ld(tx, &s->level); i >= 0; i--) {
        next = (struct sl_node *)ld(tx, &node->fwd[i]);
        while (next->key < key) {
            node = next;
            next = (struct sl_node *)ld(tx, &node->fwd[i]);
        }
    }
    return next->key == key;
}

/* The nodes before `key` at each level (pred) and after them (succ). */
AI int sl_find(stm_tx *tx, struct sl *s, intptr_t key, struct sl_node **pred, struct sl_node **succ)
{
    int level = (int)ld(tx, &s->level);
    struct sl_node *node = s->head;
    int i = level;
    do { /* level >= 0: fills succ[0] */
        struct sl_node *next = (struct sl_node *)ld(tx, &node->fwd[i]);
        while (next->key < key) {
            node = next;
            next = (struct sl_node *)ld(tx, &node->fwd[i]);
        }
        pred[i] = node;
        succ[i] = next;
    } while (--i >= 0);
    return level;
}

AI int sl_add(stm_tx *tx, struct sl *s, intptr_t key, unsigned short *seed)
{
    struct sl_node *pred[SL_MAX_LEVEL + 1], *succ[SL_MAX_LEVEL + 1];
    int level = sl_find(tx, s, key, pred, succ);
    if (succ[0]->key == key)
        return 0;
    int l = 0;
    while (l < SL_MAX_LEVEL && rand_range(100, seed) < SL_PROB)
        l++;
    if (l > level) {
        for (int i = level + 1; i <= l; i++) {
            pred[i] = s->head;
            succ[i] = (struct sl_node *)ld(tx, &s->head->fwd[i]);
        }
        st(tx, &s->level, l);
    }
    struct sl_node *n = sl_alloc(tx, key, l);
    for (int i = 0; i <= l; i++) {
        slot_init(tx, &n->fwd[i], (intptr_t)succ[i]);
        st(tx, &pred[i]->fwd[i], (intptr_t)n);
    }
    return 1;
}

AI int sl_remove(stm_tx *tx, struct sl *s, intptr_t key)
{
    struct sl_node *pred[SL_MAX_LEVEL + 1], *succ[SL_MAX_LEVEL + 1];
    int level = sl_find(tx, s, key, pred, succ);
    struct sl_node *n = succ[0];
    if (n->key != key)
        return 0;
    /* n is in the lists 0..n->level, right after pred[i] */
    for (int i = 0; i <= n->level; i++)
        st(tx, &pred[i]->fwd[i], ld(tx, &n->fwd[i]));
    int i = level;
    while (i > 0 && (struct sl_node *)ld(tx, &s->head->fwd[i]) == s->tail)
        i--;
    if (i != level)
        st(tx, &s->level, i);
    for (i = 0; i <= n->level; i++)
        slot_destroy(tx, &n->fwd[i]);
    node_free(tx, n);
    return 1;
}

static long sl_check(struct sl *s)
{
    long count[SL_MAX_LEVEL + 1] = {0}, n = 0;
    int level = (int)peek(&s->level), top = 0;
    for (int i = 0; i <= SL_MAX_LEVEL; i++) {
        struct sl_node *prev = s->head;
        for (struct sl_node *e = (struct sl_node *)peek(&prev->fwd[i]); e != s->tail;
             prev = e, e = (struct sl_node *)peek(&e->fwd[i])) {
            if (e->key <= prev->key || e->level < i || e->level > SL_MAX_LEVEL) {
                printf("CHECK FAILED: skip list level %d at key %ld (node level %ld)\n", i,
                       (long)e->key, (long)e->level);
                return -1;
            }
            count[i]++;
        }
    }
    /* every node is in each list up to its level: count the nodes of level
     * >= i along level 0 and compare */
    long want[SL_MAX_LEVEL + 1] = {0};
    for (struct sl_node *e = (struct sl_node *)peek(&s->head->fwd[0]); e != s->tail;
         e = (struct sl_node *)peek(&e->fwd[0]), n++) {
        for (int i = 0; i <= e->level; i++)
            want[i]++;
        if (e->level > top)
            top = (int)e->level;
    }
    for (int i = 0; i <= SL_MAX_LEVEL; i++)
        if (count[i] != want[i]) {
            printf("CHECK FAILED: skip list level %d has %ld nodes, %ld reach it\n", i, count[i],
                   want[i]);
            return -1;
        }
    if (level < top || level > SL_MAX_LEVEL || (level > 0 && count[level] == 0)) {
        printf("CHECK FAILED: skip list level %d, highest node level %d\n", level, top);
        return -1;
    }
    return n;
}

/* ======================================================================
 * red-black tree (CLRS, with NULL leaves: no shared sentinel to write)
 * ====================================================================== */

struct rb_node {
    intptr_t key;
    slot child[2];
    slot pc; /* parent pointer | colour (bit 0: red) */
};

struct rb {
    slot root;
};

#define RB_RED 1

AI struct rb_node *rb_child(stm_tx *tx, struct rb_node *n, int d)
{
    return (struct rb_node *)ld(tx, &n->child[d]);
}

AI struct rb_node *rb_parent(stm_tx *tx, struct rb_node *n)
{
    return (struct rb_node *)(ld(tx, &n->pc) & ~(intptr_t)RB_RED);
}

AI bool rb_red(stm_tx *tx, struct rb_node *n)
{
    return n && (ld(tx, &n->pc) & RB_RED);
}

AI void rb_set_parent(stm_tx *tx, struct rb_node *n, struct rb_node *p)
{
    st(tx, &n->pc, (intptr_t)p | (ld(tx, &n->pc) & RB_RED));
}

/* Only writes when the colour changes: a no-op write would make every
 * insert conflict with every other on the root's word. */
AI void rb_set_colour(stm_tx *tx, struct rb_node *n, intptr_t red)
{
    intptr_t pc = ld(tx, &n->pc);
    if ((pc & RB_RED) != red)
        st(tx, &n->pc, (pc & ~(intptr_t)RB_RED) | red);
}

/* The TVar that points to `n`, whose parent is `p` (keys tell the side). */
AI slot *rb_link(struct rb *t, struct rb_node *p, struct rb_node *n)
{
    return p ? &p->child[n->key > p->key] : &t->root;
}

/* Rotate at x towards side d: x's child on the other side takes its place. */
AI void rb_rotate(stm_tx *tx, struct rb *t, struct rb_node *x, int d)
{
    struct rb_node *y = rb_child(tx, x, !d), *b = rb_child(tx, y, d), *p = rb_parent(tx, x);
    st(tx, &x->child[!d], (intptr_t)b);
    if (b)
        rb_set_parent(tx, b, x);
    rb_set_parent(tx, y, p);
    st(tx, rb_link(t, p, x), (intptr_t)y);
    st(tx, &y->child[d], (intptr_t)x);
    rb_set_parent(tx, x, y);
}

AI int rb_contains(stm_tx *tx, struct rb *t, intptr_t key)
{
    struct rb_node *n = (struct rb_node *)ld(tx, &t->root);
    while (n) {
        if (key == n->key)
            return 1;
        n = rb_child(tx, n, key > n->key);
    }
    return 0;
}

static void rb_insert_fixup(stm_tx *tx, struct rb *t, struct rb_node *z)
{
    struct rb_node *p;
    while ((p = rb_parent(tx, z)) && rb_red(tx, p)) {
        struct rb_node *g = rb_parent(tx, p); /* p is red, so not the root */
        int d = p->key > g->key;              /* p's side under g */
        struct rb_node *u = rb_child(tx, g, !d);
        if (rb_red(tx, u)) {
            rb_set_colour(tx, p, 0);
            rb_set_colour(tx, u, 0);
            rb_set_colour(tx, g, RB_RED);
            z = g;
            continue;
        }
        if ((z->key > p->key) != d) {
            rb_rotate(tx, t, p, d);
            z = p;
            p = rb_parent(tx, z);
        }
        rb_set_colour(tx, p, 0);
        rb_set_colour(tx, g, RB_RED);
        rb_rotate(tx, t, g, !d);
    }
    rb_set_colour(tx, (struct rb_node *)ld(tx, &t->root), 0);
}

AI int rb_add(stm_tx *tx, struct rb *t, intptr_t key)
{
    struct rb_node *p = NULL, *n;
    slot *link = &t->root;
    while ((n = (struct rb_node *)ld(tx, link))) {
        if (key == n->key)
            return 0;
        p = n;
        link = &n->child[key > n->key];
    }
    n = node_alloc(tx, sizeof *n);
    n->key = key;
    slot_init(tx, &n->child[0], 0);
    slot_init(tx, &n->child[1], 0);
    slot_init(tx, &n->pc, (intptr_t)p | RB_RED);
    st(tx, link, (intptr_t)n);
    if (p && rb_red(tx, p))
        rb_insert_fixup(tx, t, n);
    else if (!p)
        rb_set_colour(tx, n, 0);
    return 1;
}

/* x (maybe NULL), child of xp, is short of one black. */
static void rb_delete_fixup(stm_tx *tx, struct rb *t, struct rb_node *x, struct rb_node *xp)
{
    while (xp && !rb_red(tx, x)) {
        int d = rb_child(tx, xp, 0) == x ? 0 : 1;
        struct rb_node *w = rb_child(tx, xp, !d); /* not NULL: its side has a black more */
        if (rb_red(tx, w)) {
            rb_set_colour(tx, w, 0);
            rb_set_colour(tx, xp, RB_RED);
            rb_rotate(tx, t, xp, d);
            w = rb_child(tx, xp, !d);
        }
        struct rb_node *wn = rb_child(tx, w, d), *wf = rb_child(tx, w, !d);
        if (!rb_red(tx, wn) && !rb_red(tx, wf)) {
            rb_set_colour(tx, w, RB_RED);
            x = xp;
            xp = rb_parent(tx, x);
            continue;
        }
        if (!rb_red(tx, wf)) {
            rb_set_colour(tx, wn, 0);
            rb_set_colour(tx, w, RB_RED);
            rb_rotate(tx, t, w, !d);
            w = rb_child(tx, xp, !d);
            wf = rb_child(tx, w, !d);
        }
        rb_set_colour(tx, w, ld(tx, &xp->pc) & RB_RED);
        rb_set_colour(tx, xp, 0);
        rb_set_colour(tx, wf, 0);
        rb_rotate(tx, t, xp, d);
        return;
    }
    if (x)
        rb_set_colour(tx, x, 0);
}

/* Unlink z (CLRS RB-DELETE with transplants: keys never move, nodes do). */
static int rb_erase(stm_tx *tx, struct rb *t, struct rb_node *z)
{
    struct rb_node *zl = rb_child(tx, z, 0), *zr = rb_child(tx, z, 1), *x, *xp;
    intptr_t zpc = ld(tx, &z->pc);
    struct rb_node *zp = (struct rb_node *)(zpc & ~(intptr_t)RB_RED);
    bool removed_red;
    if (!zl || !zr) {
        x = zl ? zl : zr;
        xp = zp;
        removed_red = zpc & RB_RED;
        st(tx, rb_link(t, zp, z), (intptr_t)x);
        if (x)
            rb_set_parent(tx, x, zp);
    } else {
        struct rb_node *y = zr, *l;
        while ((l = rb_child(tx, y, 0)))
            y = l;
        intptr_t ypc = ld(tx, &y->pc);
        removed_red = ypc & RB_RED;
        x = rb_child(tx, y, 1);
        if (y == zr) {
            xp = y;
        } else {
            xp = (struct rb_node *)(ypc & ~(intptr_t)RB_RED);
            st(tx, &xp->child[0], (intptr_t)x);
            if (x)
                rb_set_parent(tx, x, xp);
            st(tx, &y->child[1], (intptr_t)zr);
            rb_set_parent(tx, zr, y);
        }
        st(tx, rb_link(t, zp, z), (intptr_t)y);
        st(tx, &y->child[0], (intptr_t)zl);
        rb_set_parent(tx, zl, y);
        st(tx, &y->pc, zpc);
    }
    if (!removed_red)
        rb_delete_fixup(tx, t, x, xp);
    slot_destroy(tx, &z->child[0]);
    slot_destroy(tx, &z->child[1]);
    slot_destroy(tx, &z->pc);
    node_free(tx, z);
    return 1;
}

AI int rb_remove(stm_tx *tx, struct rb *t, intptr_t key)
{
    struct rb_node *z = (struct rb_node *)ld(tx, &t->root);
    while (z && z->key != key)
        z = rb_child(tx, z, key > z->key);
    if (!z)
        return 0;
    return rb_erase(tx, t, z);
}

static long rb_check_sub(struct rb_node *n, struct rb_node *parent, intptr_t lo, intptr_t hi,
                         long *count)
{
    if (!n)
        return 1;
    intptr_t pc = peek(&n->pc);
    if ((struct rb_node *)(pc & ~(intptr_t)RB_RED) != parent || n->key <= lo || n->key >= hi) {
        printf("CHECK FAILED: rb node %ld: wrong parent or out of order\n", (long)n->key);
        return -1;
    }
    struct rb_node *l = (struct rb_node *)peek(&n->child[0]);
    struct rb_node *r = (struct rb_node *)peek(&n->child[1]);
    if ((pc & RB_RED) && ((l && (peek(&l->pc) & RB_RED)) || (r && (peek(&r->pc) & RB_RED)))) {
        printf("CHECK FAILED: rb node %ld: red with a red child\n", (long)n->key);
        return -1;
    }
    ++*count;
    long bl = rb_check_sub(l, n, lo, n->key, count);
    long br = bl < 0 ? -1 : rb_check_sub(r, n, n->key, hi, count);
    if (br < 0)
        return -1;
    if (bl != br) {
        printf("CHECK FAILED: rb node %ld: black heights %ld and %ld\n", (long)n->key, bl, br);
        return -1;
    }
    return bl + !(pc & RB_RED);
}

static long rb_check(struct rb *t)
{
    long count = 0;
    struct rb_node *root = (struct rb_node *)peek(&t->root);
    if (root && (peek(&root->pc) & RB_RED)) {
        printf("CHECK FAILED: red root\n");
        return -1;
    }
    return rb_check_sub(root, NULL, INTPTR_MIN, INTPTR_MAX, &count) < 0 ? -1 : count;
}

/* ======================================================================
 * the four structures behind one interface
 * ====================================================================== */

enum type { LL, RB, SL, HS };
static const char *const type_flag[] = {"ll", "rb", "sl", "hs"};
static const char *const type_name[] = {"linked list", "red-black tree", "skip list", "hash set"};

static enum type type;
static int range;
static union {
    struct ll ll;
    struct rb rb;
    struct sl sl;
    struct hs hs;
} set;

/* One operation's arguments, handed to the transaction body. */
struct op {
    intptr_t key;
    unsigned short *seed; /* for a skip-list node's level */
};

/* For each structure: the three transaction bodies (tx is never NULL in
 * them) and the three operations in mutex mode (tx is NULL), each a copy of
 * the inline code specialised for its mode. */
#define OPS(T, ADD_EXTRA)                                                                          \
    static int T##_contains_tx(stm_tx *tx, void *a)                                                \
    {                                                                                              \
        if (!tx)                                                                                   \
            __builtin_unreachable();                                                               \
        return T##_contains(tx, &set.T, ((struct op *)a)->key);                                    \
    }                                                                                              \
    static int T##_add_tx(stm_tx *tx, void *a)                                                     \
    {                                                                                              \
        if (!tx)                                                                                   \
            __builtin_unreachable();                                                               \
        return T##_add(tx, &set.T, ((struct op *)a)->key ADD_EXTRA);                               \
    }                                                                                              \
    static int T##_remove_tx(stm_tx *tx, void *a)                                                  \
    {                                                                                              \
        if (!tx)                                                                                   \
            __builtin_unreachable();                                                               \
        return T##_remove(tx, &set.T, ((struct op *)a)->key);                                      \
    }                                                                                              \
    static int T##_contains_mx(stm_tx *tx, void *a)                                                \
    {                                                                                              \
        (void)tx;                                                                                  \
        return T##_contains(NULL, &set.T, ((struct op *)a)->key);                                  \
    }                                                                                              \
    static int T##_add_mx(stm_tx *tx, void *a)                                                     \
    {                                                                                              \
        (void)tx;                                                                                  \
        return T##_add(NULL, &set.T, ((struct op *)a)->key ADD_EXTRA);                             \
    }                                                                                              \
    static int T##_remove_mx(stm_tx *tx, void *a)                                                  \
    {                                                                                              \
        (void)tx;                                                                                  \
        return T##_remove(NULL, &set.T, ((struct op *)a)->key);                                    \
    }

#define NO_EXTRA
#define SEED_EXTRA , ((struct op *)a)->seed
OPS(ll, NO_EXTRA)
OPS(rb, NO_EXTRA)
OPS(sl, SEED_EXTRA)
OPS(hs, NO_EXTRA)

enum { CONTAINS, ADD, REMOVE };
static stm_fn *const body_tx[4][3] = {
    [LL] = {ll_contains_tx, ll_add_tx, ll_remove_tx},
    [RB] = {rb_contains_tx, rb_add_tx, rb_remove_tx},
    [SL] = {sl_contains_tx, sl_add_tx, sl_remove_tx},
    [HS] = {hs_contains_tx, hs_add_tx, hs_remove_tx},
};
static stm_fn *const body_mx[4][3] = {
    [LL] = {ll_contains_mx, ll_add_mx, ll_remove_mx},
    [RB] = {rb_contains_mx, rb_add_mx, rb_remove_mx},
    [SL] = {sl_contains_mx, sl_add_mx, sl_remove_mx},
    [HS] = {hs_contains_mx, hs_add_mx, hs_remove_mx},
};

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

AI int run_op(int which, struct op *o)
{
    int r;
    if (use_mutex) {
        pthread_mutex_lock(&big_lock);
        r = body_mx[type][which](NULL, o);
        pthread_mutex_unlock(&big_lock);
        return r;
    }
    r = which == CONTAINS ? stm_atomically_ro(body_tx[type][which], o)
                          : stm_atomically(body_tx[type][which], o);
    if (__builtin_expect(r < 0, 0)) {
        fprintf(stderr, "intset: transaction failed: %s\n", stm_strerror(r));
        exit(1);
    }
    return r;
}

static void set_new(void)
{
    switch (type) {
    case LL: {
        struct ll_node *tail = ll_new_node(NULL, INTPTR_MAX, NULL);
        set.ll.head = ll_new_node(NULL, INTPTR_MIN, tail);
        if (!use_mutex) {
            stm_tvar_init(&tail->next.tv, 0);
            stm_tvar_init(&set.ll.head->next.tv, (intptr_t)tail);
        }
        break;
    }
    case RB:
        if (use_mutex)
            set.rb.root.w = 0;
        else
            stm_tvar_init(&set.rb.root.tv, 0);
        break;
    case SL:
        set.sl.head = sl_alloc(NULL, INTPTR_MIN, SL_MAX_LEVEL);
        set.sl.tail = sl_alloc(NULL, INTPTR_MAX, SL_MAX_LEVEL);
        for (int i = 0; i <= SL_MAX_LEVEL; i++) {
            if (use_mutex) {
                set.sl.head->fwd[i].w = (intptr_t)set.sl.tail;
                set.sl.tail->fwd[i].w = 0;
            } else {
                stm_tvar_init(&set.sl.head->fwd[i].tv, (intptr_t)set.sl.tail);
                stm_tvar_init(&set.sl.tail->fwd[i].tv, 0);
            }
        }
        if (use_mutex)
            set.sl.level.w = 0;
        else
            stm_tvar_init(&set.sl.level.tv, 0);
        break;
    case HS:
        set.hs.bucket = aligned_alloc(64, HS_BUCKETS * sizeof(slot));
        if (!set.hs.bucket) {
            perror("intset: aligned_alloc");
            exit(1);
        }
        for (unsigned b = 0; b < HS_BUCKETS; b++) {
            if (use_mutex)
                set.hs.bucket[b].w = 0;
            else
                stm_tvar_init(&set.hs.bucket[b].tv, 0);
        }
        break;
    }
}

/* Structure check; the number of keys, or -1. */
static long set_check(void)
{
    switch (type) {
    case LL:
        return ll_check(&set.ll);
    case RB:
        return rb_check(&set.rb);
    case SL:
        return sl_check(&set.sl);
    case HS:
        return hs_check(&set.hs, range);
    }
    return -1;
}

static size_t node_size(void)
{
    switch (type) {
    case LL:
        return sizeof(struct ll_node);
    case RB:
        return sizeof(struct rb_node);
    case SL:
        return sizeof(struct sl_node) + sizeof(slot); /* level 0 */
    case HS:
        return sizeof(struct hs_node);
    }
    return 0;
}

/* ======================================================================
 * the threads
 * ====================================================================== */

struct thread {
    alignas(64) unsigned short seed[3];
    int update;
    bool alternate;
    unsigned long nb_add, nb_remove, nb_contains, nb_found;
    long diff;
    pthread_t id;
};

static atomic_int stop;
static pthread_barrier_t start_line;

static void *thread_main(void *arg)
{
    struct thread *d = arg;
    struct op o = {0, d->seed};
    int last = -1;
    pthread_barrier_wait(&start_line);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int op = rand_range(100, d->seed);
        if (op < d->update) {
            if (d->alternate) {
                if (last < 0) {
                    o.key = rand_range(range, d->seed) + 1;
                    if (run_op(ADD, &o)) {
                        d->diff++;
                        last = (int)o.key;
                    }
                    d->nb_add++;
                } else {
                    o.key = last;
                    if (run_op(REMOVE, &o))
                        d->diff--;
                    d->nb_remove++;
                    last = -1;
                }
            } else {
                o.key = rand_range(range, d->seed) + 1;
                if ((op & 1) == 0) {
                    if (run_op(ADD, &o))
                        d->diff++;
                    d->nb_add++;
                } else {
                    if (run_op(REMOVE, &o))
                        d->diff--;
                    d->nb_remove++;
                }
            }
        } else {
            o.key = rand_range(range, d->seed) + 1;
            if (run_op(CONTAINS, &o))
                d->nb_found++;
            d->nb_contains++;
        }
    }
    return NULL;
}

static int int_arg(int c, const char *s, int min)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < min || v > INT_MAX) {
        fprintf(stderr, "intset: bad value for -%c: '%s'\n", c, s);
        exit(2);
    }
    return (int)v;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: intset [-t ll|rb|sl|hs] [-m stm|mutex] [-n threads] [-i initial]\n"
               "              [-r range] [-u update%%] [-d ms] [-s seed] [-a]\n");
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    int nthreads = 1, initial = 256, update = 20, duration = 10000, seed = 0, c;
    bool alternate = true;
    range = -1;
    type = LL;
    while ((c = getopt(argc, argv, "ahd:i:m:n:r:s:t:u:")) != -1) {
        switch (c) {
        case 'a':
            alternate = false;
            break;
        case 'd':
            duration = int_arg(c, optarg, 1);
            break;
        case 'i':
            initial = int_arg(c, optarg, 0);
            break;
        case 'm':
            if (strcmp(optarg, "stm") && strcmp(optarg, "mutex")) {
                usage(stderr);
                return 2;
            }
            use_mutex = strcmp(optarg, "mutex") == 0;
            break;
        case 'n':
            nthreads = int_arg(c, optarg, 1);
            break;
        case 'r':
            range = int_arg(c, optarg, 1);
            break;
        case 's':
            seed = int_arg(c, optarg, 0);
            break;
        case 't': {
            int t = 0;
            while (t < 4 && strcmp(optarg, type_flag[t]))
                t++;
            if (t == 4) {
                usage(stderr);
                return 2;
            }
            type = (enum type)t;
            break;
        }
        case 'u':
            update = int_arg(c, optarg, 0);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (range < 0)
        range = initial * 2 > 0 ? initial * 2 : 1;
    if (range < initial || update > 100 || optind != argc) {
        usage(stderr);
        return 2;
    }

    printf("Set type     : %s\n", type_name[type]);
    printf("Mode         : %s\n", use_mutex ? "mutex" : "stm");
    printf("Duration     : %d\n", duration);
    printf("Initial size : %d\n", initial);
    printf("Nb threads   : %d\n", nthreads);
    printf("Value range  : %d\n", range);
    printf("Seed         : %d\n", seed);
    printf("Update rate  : %d\n", update);
    printf("Alternate    : %d\n", alternate);
    printf("Node size    : %zu bytes (TVar %zu)\n", node_size(), sizeof(stm_tvar));

    srand(seed ? (unsigned)seed : (unsigned)time(NULL));
    unsigned short main_seed[3];
    for (int i = 0; i < 3; i++)
        main_seed[i] = (unsigned short)rand();

    set_new();
    struct op o = {0, main_seed};
    for (int i = 0; i < initial;) {
        o.key = rand_range(range, main_seed) + 1;
        if (run_op(ADD, &o))
            i++;
    }
    long size = set_check();
    printf("Set size     : %ld\n", size);
    if (size != initial) {
        printf("CHECK FAILED: %ld keys after putting in %d\n", size, initial);
        return 1;
    }

    struct thread *th = aligned_alloc(64, sizeof *th * (size_t)nthreads);
    if (!th) {
        perror("intset: aligned_alloc");
        return 1;
    }
    pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1);
    for (int i = 0; i < nthreads; i++) {
        memset(&th[i], 0, sizeof th[i]);
        for (int j = 0; j < 3; j++)
            th[i].seed[j] = (unsigned short)rand();
        th[i].update = update;
        th[i].alternate = alternate;
        if (pthread_create(&th[i].id, NULL, thread_main, &th[i])) {
            fprintf(stderr, "intset: cannot create a thread\n");
            return 1;
        }
    }
    struct stm_stats s0, s1;
    stm_stats_get(&s0);
    pthread_barrier_wait(&start_line);
    int64_t t0 = now_ms();
    struct timespec nap = {duration / 1000, (long)(duration % 1000) * 1000000};
    while (nanosleep(&nap, &nap))
        ;
    atomic_store(&stop, 1);
    int64_t elapsed = now_ms() - t0;
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i].id, NULL);
    stm_stats_get(&s1);

    unsigned long reads = 0, updates = 0, aborts = s1.aborts - s0.aborts;
    long expected = initial;
    for (int i = 0; i < nthreads; i++) {
        reads += th[i].nb_contains;
        updates += th[i].nb_add + th[i].nb_remove;
        expected += th[i].diff;
    }
    if (elapsed < 1)
        elapsed = 1;
    size = set_check();
    double txs = (double)(reads + updates), per_s = 1000.0 / (double)elapsed;
    printf("Set size      : %ld (expected: %ld)\n", size, expected);
    printf("Duration      : %ld (ms)\n", (long)elapsed);
    printf("#txs          : %lu (%f / s)\n", reads + updates, txs * per_s);
    printf("#read txs     : %lu (%f / s)\n", reads, reads * per_s);
    printf("#update txs   : %lu (%f / s)\n", updates, updates * per_s);
    printf("#aborts       : %lu (%f / s)\n", aborts, aborts * per_s);
    printf("intset %s i=%d r=%d u=%d n=%d m=%s txs/s=%.0f aborts%%=%.3f\n", type_flag[type],
           initial, range, update, nthreads, use_mutex ? "mutex" : "stm", txs * per_s,
           txs > 0 ? 100.0 * (double)aborts / txs : 0.0);
    if (size != expected) {
        printf("CHECK FAILED: size %ld, expected %ld\n", size, expected);
        return 1;
    }
    free(th);
    return 0;
}
