/*
 * map.c - stm_map: a transactional hash map of intptr_t keys and values.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Built on the public API only (include/stm.h): embedded TVars, stm_alloc,
 * stm_free and stm_tvar_destroy.  Nothing here needs the library's
 * internals.
 *
 * Layout.  A table is a power-of-two array of bucket TVars, each the head
 * of a chain of nodes; a node holds its key and hash (fixed) and two
 * embedded TVars, `next` and `value`.  Updating the value of a key that is
 * there writes that node's `value` only, so it conflicts with nothing but
 * users of the same key; inserting or deleting a key writes one link of
 * its bucket's chain.
 *
 * Size.  No shared counter: NSTRIPE counters, one per thread slot (a
 * thread takes slot k % NSTRIPE on its first use of any map), so writers
 * on different threads never meet there; stm_map_len() sums them.  The
 * growth decision is a guess from the writer's own stripe (times the
 * number of slots in use): it only says when to grow, never what the map
 * holds.
 *
 * Growth without stopping anyone.  Growing makes a table twice as large
 * and moves the old one to `old`; from then on both are live.  Old bucket
 * i splits into new buckets i and i + n_old, which stay empty until old
 * bucket i has been moved: the move relinks its nodes into them and sets
 * the old bucket to MOVED.  A writer moves the bucket of its key first
 * (if not yet moved), and then two more buckets picked with a shared,
 * non-transactional cursor (a hint only: a bucket whose move is discarded
 * is caught later).  A reader looks in the old bucket while it is not
 * MOVED, else in the new one, and moves nothing, so lookups stay
 * read-only.  The writer that finds the cursor past the end checks every
 * old bucket, moves what is left and retires the old table (clearing
 * `old`).  Starting and finishing a resize write `table`/`old`, which
 * every operation reads: those two commits conflict with everything
 * running; each bucket move conflicts with the users of that bucket only.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stm.h>

enum {
    NSTRIPE = 16,     /* size counters */
    MIN_BUCKETS = 16, /* a new map's table */
    LOAD = 2,         /* grow past LOAD keys per bucket (estimated) */
    HELP = 2,         /* buckets a writer moves besides its own */
};

struct mnode {
    stm_tvar next;  /* struct mnode * */
    stm_tvar value; /* intptr_t */
    intptr_t key;
    uint64_t hash;
};

struct mtable {
    size_t n;           /* buckets, a power of two */
    atomic_size_t help; /* cursor for moving the previous table into this */
    stm_tvar b[];       /* struct mnode *, or MOVED in a retired table */
};

struct stripe {
    _Alignas(64) stm_tvar count;
};

struct stm_map {
    stm_tvar table; /* struct mtable *: where keys go */
    stm_tvar old;   /* struct mtable * being moved into `table`, or NULL */
    bool has_ops;
    struct stm_map_ops ops;
    struct stripe count[NSTRIPE];
};

/* What the public stm_map_iter holds. */
struct iter {
    uintptr_t chain; /* the chain being walked (see chain_head) */
    uintptr_t node;  /* the next node to return, or 0 */
    uintptr_t state; /* 0 fresh, 1 walking, 2 done */
};
_Static_assert(sizeof(struct iter) <= sizeof(stm_map_iter), "stm_map_iter too small");

static const char moved_mark;
#define MOVED ((intptr_t)&moved_mark)

static atomic_uint slots_taken;
static _Thread_local unsigned my_slot; /* 1 + slot; 0: none yet */

static unsigned slot(void)
{
    if (my_slot == 0)
        my_slot = 1 + atomic_fetch_add_explicit(&slots_taken, 1, memory_order_relaxed);
    return (my_slot - 1) % NSTRIPE;
}

static unsigned slots_in_use(void)
{
    unsigned n = atomic_load_explicit(&slots_taken, memory_order_relaxed);
    return n < 1 ? 1 : n > NSTRIPE ? NSTRIPE : n;
}

static _Noreturn void map_misuse(const char *func, const char *what)
{
    fprintf(stderr, "libstm: %s: %s\n", func, what);
    fflush(stderr);
    abort();
}

static void check_args(stm_tx *tx, stm_map *m, const char *func)
{
    if (tx == NULL)
        map_misuse(func, "called outside a transaction (the stm_tx handle is NULL)");
    if (m == NULL)
        map_misuse(func, "the map is NULL");
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static uint64_t hash_of(stm_map *m, intptr_t key)
{
    return m->has_ops ? mix(m->ops.hash(key)) : mix((uint64_t)key);
}

static bool same(stm_map *m, struct mnode *x, intptr_t key, uint64_t h)
{
    return x->hash == h && (m->has_ops ? m->ops.equal(x->key, key) : x->key == key);
}

static void table_init(struct mtable *t, size_t n)
{
    t->n = n;
    atomic_init(&t->help, 0);
    for (size_t i = 0; i < n; i++)
        stm_tvar_init(&t->b[i], 0);
}

stm_map *stm_map_new(const struct stm_map_ops *ops)
{
    if (ops != NULL && (ops->hash == NULL || ops->equal == NULL)) {
        errno = EINVAL;
        return NULL;
    }
    stm_map *m = aligned_alloc(64, sizeof *m);
    struct mtable *t = malloc(sizeof *t + MIN_BUCKETS * sizeof(stm_tvar));
    if (m == NULL || t == NULL) {
        free(m);
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    table_init(t, MIN_BUCKETS);
    stm_tvar_init(&m->table, (intptr_t)t);
    stm_tvar_init(&m->old, 0);
    m->has_ops = ops != NULL;
    if (ops != NULL)
        m->ops = *ops;
    else
        memset(&m->ops, 0, sizeof m->ops);
    for (int i = 0; i < NSTRIPE; i++)
        stm_tvar_init(&m->count[i].count, 0);
    return m;
}

static void free_chain(struct mnode *x)
{
    while (x != NULL) {
        struct mnode *next = (struct mnode *)stm_tvar_peek(&x->next);
        stm_tvar_destroy(&x->next);
        stm_tvar_destroy(&x->value);
        free(x);
        x = next;
    }
}

static void free_table(struct mtable *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        intptr_t h = stm_tvar_peek(&t->b[i]);
        if (h != MOVED)
            free_chain((struct mnode *)h);
        stm_tvar_destroy(&t->b[i]);
    }
    free(t);
}

void stm_map_free(stm_map *m)
{
    if (m == NULL)
        return;
    free_table((struct mtable *)stm_tvar_peek(&m->old));
    free_table((struct mtable *)stm_tvar_peek(&m->table));
    stm_tvar_destroy(&m->table);
    stm_tvar_destroy(&m->old);
    for (int i = 0; i < NSTRIPE; i++)
        stm_tvar_destroy(&m->count[i].count);
    free(m);
}

/* ---- growth ------------------------------------------------------------ */

/* Move old bucket i (whose chain starts at `head`) into t. */
static void move_bucket(stm_tx *tx, struct mtable *t, struct mtable *o, size_t i, intptr_t head)
{
    struct mnode *x = (struct mnode *)head;
    while (x != NULL) {
        struct mnode *next = stm_read_ptr(tx, &x->next);
        stm_tvar *to = &t->b[x->hash & (t->n - 1)];
        stm_write(tx, &x->next, stm_read(tx, to));
        stm_write_ptr(tx, to, x);
        x = next;
    }
    stm_write(tx, &o->b[i], MOVED);
}

/* Move whatever is left of o and retire it. */
static void finish_growth(stm_tx *tx, stm_map *m, struct mtable *t, struct mtable *o)
{
    for (size_t i = 0; i < o->n; i++) {
        intptr_t head = stm_read(tx, &o->b[i]);
        if (head != MOVED)
            move_bucket(tx, t, o, i, head);
    }
    stm_write_ptr(tx, &m->old, NULL);
    for (size_t i = 0; i < o->n; i++)
        stm_tvar_destroy(&o->b[i]);
    stm_free(tx, o);
}

/* A writer's share of moving o into t. */
static void help_growth(stm_tx *tx, stm_map *m, struct mtable *t, struct mtable *o)
{
    for (int k = 0; k < HELP; k++) {
        size_t i = atomic_fetch_add_explicit(&t->help, 1, memory_order_relaxed);
        if (i >= o->n) {
            finish_growth(tx, m, t, o);
            return;
        }
        intptr_t head = stm_read(tx, &o->b[i]);
        if (head != MOVED)
            move_bucket(tx, t, o, i, head);
    }
}

static void grow(stm_tx *tx, stm_map *m, struct mtable *t)
{
    size_t n = t->n * 2;
    struct mtable *nt = stm_alloc(tx, sizeof *nt + n * sizeof(stm_tvar));
    table_init(nt, n);
    stm_write_ptr(tx, &m->old, t);
    stm_write_ptr(tx, &m->table, nt);
}

/* ---- finding a key --------------------------------------------------------- */

struct where {
    struct mtable *t, *o;
    stm_tvar *bucket; /* the chain the key is in, if anywhere */
    stm_tvar *link;   /* the TVar that points at the node (or at NULL) */
    struct mnode *node;
    size_t walked;
};

static void find(stm_tx *tx, stm_map *m, intptr_t key, uint64_t h, bool writer, struct where *w)
{
    w->t = stm_read_ptr(tx, &m->table);
    w->o = stm_read_ptr(tx, &m->old);
    w->bucket = &w->t->b[h & (w->t->n - 1)];
    if (w->o != NULL) {
        size_t i = h & (w->o->n - 1);
        intptr_t head = stm_read(tx, &w->o->b[i]);
        if (head != MOVED) {
            if (writer)
                move_bucket(tx, w->t, w->o, i, head);
            else
                w->bucket = &w->o->b[i];
        }
    }
    w->walked = 0;
    w->link = w->bucket;
    for (;;) {
        struct mnode *x = stm_read_ptr(tx, w->link);
        if (x == NULL || same(m, x, key, h)) {
            w->node = x;
            return;
        }
        w->link = &x->next;
        w->walked++;
    }
}

static void count_add(stm_tx *tx, stm_map *m, intptr_t d, struct where *w)
{
    stm_tvar *c = &m->count[slot()].count;
    intptr_t n = stm_read(tx, c) + d;
    stm_write(tx, c, n);
    if (w->o != NULL) {
        help_growth(tx, m, w->t, w->o);
        return;
    }
    /* grow on the estimated size, or on a long chain in a table that is
     * not nearly empty (which a poor hash alone cannot cause) */
    size_t est = n > 0 ? (size_t)n * slots_in_use() : 0;
    if (est > LOAD * w->t->n || (w->walked >= 8 && est > w->t->n / 2))
        grow(tx, m, w->t);
}

bool stm_map_get(stm_tx *tx, stm_map *m, intptr_t key, intptr_t *value)
{
    check_args(tx, m, "stm_map_get");
    struct where w;
    find(tx, m, key, hash_of(m, key), false, &w);
    if (w.node == NULL)
        return false;
    if (value != NULL)
        *value = stm_read(tx, &w.node->value);
    return true;
}

bool stm_map_put(stm_tx *tx, stm_map *m, intptr_t key, intptr_t value)
{
    check_args(tx, m, "stm_map_put");
    uint64_t h = hash_of(m, key);
    struct where w;
    find(tx, m, key, h, true, &w);
    if (w.node != NULL) {
        stm_write(tx, &w.node->value, value);
        return false;
    }
    struct mnode *x = stm_alloc(tx, sizeof *x);
    stm_tvar_init(&x->next, 0);
    stm_tvar_init(&x->value, value);
    x->key = key;
    x->hash = h;
    stm_write_ptr(tx, w.link, x); /* append at the end of the chain */
    count_add(tx, m, 1, &w);
    return true;
}

bool stm_map_del(stm_tx *tx, stm_map *m, intptr_t key)
{
    check_args(tx, m, "stm_map_del");
    struct where w;
    find(tx, m, key, hash_of(m, key), true, &w);
    struct mnode *x = w.node;
    if (x == NULL)
        return false;
    stm_write(tx, w.link, stm_read(tx, &x->next));
    stm_tvar_destroy(&x->next);
    stm_tvar_destroy(&x->value);
    stm_free(tx, x);
    count_add(tx, m, -1, &w);
    return true;
}

size_t stm_map_len(stm_tx *tx, stm_map *m)
{
    check_args(tx, m, "stm_map_len");
    intptr_t n = 0;
    for (int i = 0; i < NSTRIPE; i++)
        n += stm_read(tx, &m->count[i].count);
    return (size_t)n;
}

/* ---- iteration ---------------------------------------------------------------- */

/* The first node of chain c (0 <= c < t->n): while a growth is under way,
 * chain c < n_old is old bucket c, or new bucket c once that was moved;
 * chain c >= n_old is new bucket c once old bucket c - n_old was moved,
 * else empty (its keys are still in the old bucket). */
static struct mnode *chain_head(stm_tx *tx, struct mtable *t, struct mtable *o, size_t c)
{
    if (o != NULL) {
        intptr_t head = stm_read(tx, &o->b[c & (o->n - 1)]);
        if (head != MOVED)
            return c < o->n ? (struct mnode *)head : NULL;
    }
    return stm_read_ptr(tx, &t->b[c]);
}

void stm_map_iter_init(stm_map_iter *it)
{
    if (it == NULL)
        map_misuse("stm_map_iter_init", "the iterator is NULL");
    memset(it, 0, sizeof *it);
}

bool stm_map_next(stm_tx *tx, stm_map *m, stm_map_iter *it, intptr_t *key, intptr_t *value)
{
    check_args(tx, m, "stm_map_next");
    if (it == NULL)
        map_misuse("stm_map_next", "the iterator is NULL");
    struct iter *s = (struct iter *)(void *)it;
    if (s->state == 2)
        return false;
    struct mtable *t = stm_read_ptr(tx, &m->table);
    struct mtable *o = stm_read_ptr(tx, &m->old);
    struct mnode *x;
    if (s->state == 0) {
        s->state = 1;
        s->chain = 0;
        x = chain_head(tx, t, o, 0);
    } else {
        x = (struct mnode *)s->node;
    }
    while (x == NULL) {
        if (++s->chain >= t->n) {
            s->state = 2;
            return false;
        }
        x = chain_head(tx, t, o, s->chain);
    }
    if (key != NULL)
        *key = x->key;
    if (value != NULL)
        *value = stm_read(tx, &x->value);
    s->node = (uintptr_t)stm_read_ptr(tx, &x->next);
    return true;
}
