/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Numbers as people read them in messages. */

#include <stdint.h>

/* Room for the longest size format_size() writes, NUL included. */
#define FORMAT_SIZE_MAX 32

/* "123 B", "4 KiB", "2 MiB", "1.5 GiB": whole units when exact, else one decimal of the
 * largest unit not above the size. Returns buf. */
char *format_size(uint64_t bytes, char buf[static FORMAT_SIZE_MAX]);
