/*
 * fuzz_libfuzzer.c — libFuzzer entry point: the input is a step sequence for fz_run_input().
 * Build with clang -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt does, as
 * ptmon_fuzz_libfuzzer, when the compiler is clang). FZ_FIXED (default: all) selects the
 * known bugs whose full checks run (fuzz.h).
 *
 * SPDX-License-Identifier: Apache-2.0
 */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)fz_run_input(data, size, fz_parse_fixed(getenv("FZ_FIXED")));
    return 0;
}
