/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "macro.h"

/* NULL-terminated string vectors. */

/* Appends a copy of s; *n tracks the length. Returns 0 or -ENOMEM. */
int strv_push(char ***l, size_t *n, const char *s);

/* Appends a printf-formatted string. */
int strv_pushf(char ***l, size_t *n, const char *fmt, ...) _printf_(3, 4);

/* Frees every string and the vector; accepts NULL; returns NULL. */
char **strv_free(char **l);

static inline void strv_freep(char ***l)
{
        strv_free(*l);
}

#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)
