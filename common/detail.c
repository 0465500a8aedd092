/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "detail.h"

int detail_errno(char **ret, int r, const char *fmt, ...)
{
        va_list ap;
        int saved = errno; /* for a %m in fmt */

        if (!ret)
                return r;
        free(*ret);
        *ret = NULL;
        errno = saved;
        va_start(ap, fmt);
        if (vasprintf(ret, fmt, ap) < 0)
                *ret = NULL;
        va_end(ap);
        return r;
}
