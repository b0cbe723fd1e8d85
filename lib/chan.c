/*
 * chan.c - stm_chan: a transactional broadcast channel.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * Built on the public API only (include/stm.h): embedded TVars, stm_alloc,
 * stm_free and stm_retry.  Nothing here needs the library's internals.
 *
 * Messages form a singly linked list whose `next` links are embedded
 * TVars; `tail` points at the last message sent (at first, a sentinel).
 * A reader's `pos` points at the last message it received (at first, the
 * tail when it subscribed); receiving reads pos->next.  So a sender writes
 * only tail->next and `tail`, and meets a reader only when that reader has
 * caught up and waits on tail->next (which is how it is woken).
 *
 * Reclamation: each message has `refs`, the number of readers that have
 * not yet moved past it.  A message is made with refs = the number of
 * subscribers (every one of them will pass it); subscribing adds one to
 * the tail's refs.  A reader that moves on from a message takes one off
 * and frees it when it reaches 0.  refs never decreases towards the tail,
 * so the messages freed are always a prefix of the list.  With no
 * subscriber at all, a send frees the old tail itself (nobody holds it).
 * Cost: two readers that leave the same message at the same time conflict
 * on its refs; a fast and a slow reader, far apart, do not.  Unsubscribing
 * takes one off every message the reader had not received yet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

struct cnode {
    stm_tvar next; /* struct cnode *, NULL at the tail */
    stm_tvar refs; /* readers that have not moved past this message */
    intptr_t value;
    uint64_t seq; /* messages sent up to and including this one */
};

struct stm_chan {
    _Alignas(64) stm_tvar tail; /* struct cnode *: the last message */
    stm_tvar nreaders;          /* subscribers */
    stm_tvar readers;           /* struct stm_chan_reader *: all of them */
};

struct stm_chan_reader {
    stm_tvar pos;   /* struct cnode *: the last message received */
    stm_tvar rnext; /* struct stm_chan_reader *: the channel's list */
    stm_chan *ch;
};

static _Noreturn void chan_misuse(const char *func, const char *what)
{
    fprintf(stderr, "libstm: %s: %s\n", func, what);
    fflush(stderr);
    abort();
}

static void check_tx(stm_tx *tx, const void *obj, const char *func, const char *what)
{
    if (tx == NULL)
        chan_misuse(func, "called outside a transaction (the stm_tx handle is NULL)");
    if (obj == NULL)
        chan_misuse(func, what);
}

stm_chan *stm_chan_new(void)
{
    stm_chan *ch = aligned_alloc(64, sizeof *ch);
    struct cnode *s = malloc(sizeof *s);
    if (ch == NULL || s == NULL) {
        free(ch);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    stm_tvar_init(&s->next, 0);
    stm_tvar_init(&s->refs, 0);
    s->value = 0;
    s->seq = 0;
    stm_tvar_init(&ch->tail, (intptr_t)s);
    stm_tvar_init(&ch->nreaders, 0);
    stm_tvar_init(&ch->readers, 0);
    return ch;
}

static void node_destroy(struct cnode *n)
{
    stm_tvar_destroy(&n->next);
    stm_tvar_destroy(&n->refs);
}

void stm_chan_free(stm_chan *ch)
{
    if (ch == NULL)
        return;
    /* the oldest message still held is the earliest reader's */
    struct cnode *start = (struct cnode *)stm_tvar_peek(&ch->tail);
    stm_chan_reader *r = (stm_chan_reader *)stm_tvar_peek(&ch->readers);
    while (r != NULL) {
        struct cnode *p = (struct cnode *)stm_tvar_peek(&r->pos);
        if (p->seq < start->seq)
            start = p;
        stm_chan_reader *next = (stm_chan_reader *)stm_tvar_peek(&r->rnext);
        stm_tvar_destroy(&r->pos);
        stm_tvar_destroy(&r->rnext);
        free(r);
        r = next;
    }
    while (start != NULL) {
        struct cnode *next = (struct cnode *)stm_tvar_peek(&start->next);
        node_destroy(start);
        free(start);
        start = next;
    }
    stm_tvar_destroy(&ch->tail);
    stm_tvar_destroy(&ch->nreaders);
    stm_tvar_destroy(&ch->readers);
    free(ch);
}

void stm_chan_send(stm_tx *tx, stm_chan *ch, intptr_t v)
{
    check_tx(tx, ch, "stm_chan_send", "the channel is NULL");
    struct cnode *t = stm_read_ptr(tx, &ch->tail);
    intptr_t readers = stm_read(tx, &ch->nreaders);
    struct cnode *n = stm_alloc(tx, sizeof *n);
    stm_tvar_init(&n->next, 0);
    stm_tvar_init(&n->refs, readers);
    n->value = v;
    n->seq = t->seq + 1;
    stm_write_ptr(tx, &ch->tail, n);
    if (readers == 0) {
        /* no subscriber: nobody receives this message, and nobody holds
         * the old tail (its refs are 0), so it goes; a later subscriber
         * starts after the new tail */
        node_destroy(t);
        stm_free(tx, t);
    } else {
        stm_write_ptr(tx, &t->next, n);
    }
}

stm_chan_reader *stm_chan_subscribe(stm_tx *tx, stm_chan *ch)
{
    check_tx(tx, ch, "stm_chan_subscribe", "the channel is NULL");
    struct cnode *t = stm_read_ptr(tx, &ch->tail);
    stm_chan_reader *r = stm_alloc(tx, sizeof *r);
    stm_tvar_init(&r->pos, (intptr_t)t);
    stm_tvar_init(&r->rnext, stm_read(tx, &ch->readers));
    r->ch = ch;
    stm_write(tx, &t->refs, stm_read(tx, &t->refs) + 1);
    stm_write(tx, &ch->nreaders, stm_read(tx, &ch->nreaders) + 1);
    stm_write_ptr(tx, &ch->readers, r);
    return r;
}

/* Take one reader off `p`, which it no longer holds; frees `p` when it was
 * the last and `p` is not the tail (next != NULL). */
static void release(stm_tx *tx, struct cnode *p, struct cnode *next)
{
    intptr_t refs = stm_read(tx, &p->refs) - 1;
    if (refs == 0 && next != NULL) {
        node_destroy(p);
        stm_free(tx, p);
    } else {
        stm_write(tx, &p->refs, refs);
    }
}

static bool recv(stm_tx *tx, stm_chan_reader *r, intptr_t *out)
{
    struct cnode *p = stm_read_ptr(tx, &r->pos);
    struct cnode *n = stm_read_ptr(tx, &p->next);
    if (n == NULL)
        return false;
    *out = n->value;
    stm_write_ptr(tx, &r->pos, n);
    release(tx, p, n);
    return true;
}

intptr_t stm_chan_recv(stm_tx *tx, stm_chan_reader *r)
{
    check_tx(tx, r, "stm_chan_recv", "the reader is NULL");
    intptr_t v;
    if (!recv(tx, r, &v))
        stm_retry(tx);
    return v;
}

bool stm_chan_try_recv(stm_tx *tx, stm_chan_reader *r, intptr_t *out)
{
    check_tx(tx, r, "stm_chan_try_recv", "the reader is NULL");
    if (out == NULL)
        chan_misuse("stm_chan_try_recv", "the output pointer is NULL");
    return recv(tx, r, out);
}

void stm_chan_unsubscribe(stm_tx *tx, stm_chan_reader *r)
{
    if (tx == NULL)
        chan_misuse("stm_chan_unsubscribe",
                    "called outside a transaction (the stm_tx handle is NULL)");
    if (r == NULL)
        return;
    stm_chan *ch = r->ch;
    /* let go of every message not yet received, and the one at pos */
    struct cnode *p = stm_read_ptr(tx, &r->pos);
    while (p != NULL) {
        struct cnode *next = stm_read_ptr(tx, &p->next);
        release(tx, p, next);
        p = next;
    }
    stm_tvar *link = &ch->readers;
    for (;;) {
        stm_chan_reader *cur = stm_read_ptr(tx, link);
        if (cur == r)
            break;
        if (cur == NULL)
            chan_misuse("stm_chan_unsubscribe",
                        "the reader is not subscribed (unsubscribed twice?)");
        link = &cur->rnext;
    }
    stm_write(tx, link, stm_read(tx, &r->rnext));
    stm_write(tx, &ch->nreaders, stm_read(tx, &ch->nreaders) - 1);
    stm_tvar_destroy(&r->pos);
    stm_tvar_destroy(&r->rnext);
    stm_free(tx, r);
}
