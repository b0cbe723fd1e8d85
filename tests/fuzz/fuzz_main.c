/*
 * fuzz_main.c - the libFuzzer entry point (clang -fsanitize=fuzzer).
 *
 * Copyright (c) 2026 The libstm authors.  MIT licensed; see COPYING.
 */
#include "fuzz_stm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return stm_fuzz_one(data, size);
}
