/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The entry point libFuzzer calls; fuzz-main.c calls it for each file given when the
 * harness is built without libFuzzer (the seed corpus as a regression test). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
