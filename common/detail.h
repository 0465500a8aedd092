/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one-line detail that library functions leave for people next to their -errno. */

#include <string.h>

#include "macro.h"

/* Replaces *ret (when ret is not NULL) with the formatted text and returns r, so that a
 * failure reads "return detail_errno(ret_detail, -EINVAL, ...)". Allocation failure of
 * the text leaves *ret NULL: the errno still tells the story. A %m in fmt reads the errno
 * of the moment of the call. */
int detail_errno(char **ret, int r, const char *fmt, ...) _printf_(3, 4);

/* The detail a callee left, or else the errno text of r (negative): for a message that
 * says why in both cases. */
static inline const char *detail_or_strerror(const char *detail, int r)
{
        return detail ? detail : strerror(-r);
}
