/*
 * chan.c - stm_chan: one sender broadcasting events to readers of
 * different speeds, and a reader that subscribes late.
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 *
 * The sender sends events 0..EVENTS-1, then sets `closed`.  A fast and a
 * slow reader subscribe before the first event; a late reader subscribes
 * half-way.  Each reader takes the next event, or else (stm_or_else)
 * stops when the channel is closed and it has everything.  Every reader
 * must see a gap-free, in-order run of events: all of them for the
 * first two, a suffix for the late one.  Messages all readers have passed
 * are freed as they go.  Exits 0 iff every reader saw what it should.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <stm.h>

enum { EVENTS = 20000 };

static stm_chan *events;
static stm_tvar closed = STM_TVAR_INIT(0);

struct reader {
    const char *name;
    stm_chan_reader *r;
    unsigned work; /* busy work per event: the slow reader's slowness */
    intptr_t first, last;
    long got, gaps;
};

static int next_event(stm_tx *tx, void *arg)
{
    struct reader *rd = arg;
    intptr_t v = stm_chan_recv(tx, rd->r); /* retries while nothing new */
    return (int)v;
}

static int if_closed(stm_tx *tx, void *arg)
{
    (void)arg;
    if (!stm_read(tx, &closed))
        stm_retry(tx);
    return -1; /* closed and nothing left */
}

static int next_or_end(stm_tx *tx, void *arg)
{
    return stm_or_else(tx, next_event, if_closed, arg);
}

static void *reader(void *arg)
{
    struct reader *rd = arg;
    int v;
    while ((v = stm_atomically(next_or_end, rd)) >= 0) {
        if (rd->got == 0)
            rd->first = v;
        else if (v != rd->last + 1)
            rd->gaps++;
        rd->last = v;
        rd->got++;
        for (volatile unsigned i = 0; i < rd->work; i++) {
        }
    }
    return NULL;
}

static int subscribe(stm_tx *tx, void *arg)
{
    struct reader *rd = arg;
    rd->r = stm_chan_subscribe(tx, events);
    return 0;
}

static int unsubscribe(stm_tx *tx, void *arg)
{
    struct reader *rd = arg;
    stm_chan_unsubscribe(tx, rd->r);
    return 0;
}

static int send_event(stm_tx *tx, void *arg)
{
    stm_chan_send(tx, events, (intptr_t)arg);
    return 0;
}

static int close_chan(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, &closed, 1);
    return 0;
}

int main(void)
{
    events = stm_chan_new();
    if (!events) {
        perror("stm_chan_new");
        return 1;
    }
    struct reader rd[3] = {{.name = "fast"}, {.name = "slow", .work = 3000}, {.name = "late"}};
    pthread_t t[3];
    for (int i = 0; i < 2; i++) {
        stm_atomically(subscribe, &rd[i]);
        pthread_create(&t[i], NULL, reader, &rd[i]);
    }
    for (intptr_t e = 0; e < EVENTS; e++) {
        if (e == EVENTS / 2) {
            stm_atomically(subscribe, &rd[2]);
            pthread_create(&t[2], NULL, reader, &rd[2]);
        }
        stm_atomically(send_event, (void *)e);
    }
    stm_atomically(close_chan, NULL);
    long bad = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        printf("%s reader: events %ld..%ld, %ld received, %ld gaps\n", rd[i].name,
               (long)rd[i].first, (long)rd[i].last, rd[i].got, rd[i].gaps);
        bad += rd[i].gaps != 0 || rd[i].last != EVENTS - 1;
        stm_atomically(unsubscribe, &rd[i]);
    }
    bad += rd[0].got != EVENTS || rd[1].got != EVENTS || rd[2].first != EVENTS / 2;
    stm_chan_free(events);
    printf("%s\n", bad ? "FAILED" : "every reader saw its events in order, none missing: OK");
    stm_shutdown();
    return bad ? 1 : 0;
}
