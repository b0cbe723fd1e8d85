/* consumer.c - built by tests/cmake-consumer with find_package(stm).
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING. */
#include <stdio.h>
#include <stm.h>

static stm_tvar n = STM_TVAR_INIT(41);

static int bump(stm_tx *tx, void *arg)
{
    (void)arg;
    stm_write(tx, &n, stm_read(tx, &n) + 1);
    return (int)stm_read(tx, &n);
}

int main(void)
{
    int r = stm_atomically(bump, NULL);
    printf("consumer_c: %d\n", r);
    stm_shutdown();
    return r == 42 ? 0 : 1;
}
