/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "format-util.h"
#include "macro.h"

char *format_size(uint64_t bytes, char buf[static FORMAT_SIZE_MAX])
{
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        size_t u = 0;
        uint64_t whole = bytes;

        while (whole >= 1024 && u + 1 < ELEMENTSOF(units)) {
                whole /= 1024;
                u++;
        }
        if (u == 0 || bytes % ((uint64_t)1 << (10 * u)) == 0)
                snprintf(buf, FORMAT_SIZE_MAX, "%" PRIu64 " %s", whole, units[u]);
        else
                snprintf(buf, FORMAT_SIZE_MAX, "%.1f %s",
                         (double)bytes / (double)((uint64_t)1 << (10 * u)), units[u]);
        return buf;
}
