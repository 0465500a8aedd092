/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The names of an enum's values, kept in one array indexed by value, and the two lookups
 * made from that array. A module writes
 *
 *         static const char *const color_table[] = {
 *                 [COLOR_RED] = "red",
 *                 [COLOR_BLUE] = "blue",
 *         };
 *         DEFINE_STRING_TABLE_LOOKUP(color, enum color);
 *
 * and has color_to_string() and color_from_string(), declared in its header. Values
 * without a name (holes in the array, values outside it) map to NULL, or to the fallback
 * of the _FALLBACK form; names without a value map to -EINVAL, which is what each enum's
 * _FOO_INVALID member equals. */

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#include "macro.h"

/* The index of s among table[0..n) (NULL entries never match), or -EINVAL; s may be
 * NULL. */
ssize_t string_table_lookup(const char *const *table, size_t n, const char *s);

#define DEFINE_STRING_TABLE_TO_STRING_FALLBACK(name, type, fallback)                     \
        const char *name##_to_string(type v)                                             \
        {                                                                                \
                size_t i = (size_t)v;                                                    \
                return i < ELEMENTSOF(name##_table) && name##_table[i] ? name##_table[i] \
                                                                       : (fallback);     \
        }

#define DEFINE_STRING_TABLE_TO_STRING(name, type) \
        DEFINE_STRING_TABLE_TO_STRING_FALLBACK(name, type, NULL)

#define DEFINE_STRING_TABLE_FROM_STRING(name, type)                                          \
        type name##_from_string(const char *s)                                               \
        {                                                                                    \
                return (type)string_table_lookup(name##_table, ELEMENTSOF(name##_table), s); \
        }

#define DEFINE_STRING_TABLE_LOOKUP(name, type)    \
        DEFINE_STRING_TABLE_TO_STRING(name, type) \
        DEFINE_STRING_TABLE_FROM_STRING(name, type)
