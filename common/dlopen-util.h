/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Libraries loaded with dlopen() on first use instead of being linked: a linked library
 * and everything it links are mapped and relocated at every start of every program that
 * links the module, though only one rare operation calls it. A module lists the functions
 * it calls in an X-macro and declares a pointer for each in its header,
 *
 *         #define FOO_SYMBOLS(X) X(foo_new) X(foo_free)
 *         FOO_SYMBOLS(DLOPEN_SYMBOL_DECLARE)
 *         int foo_dlopen(char **ret_detail);
 *
 * defines them and the loader in its .c file,
 *
 *         DEFINE_DLOPEN(foo_dlopen, "libfoo.so.1", FOO_SYMBOLS)
 *
 * and calls sym_foo_new() once foo_dlopen() succeeded. It still includes the library's
 * own header: each pointer takes the type of the prototype there, so that calls through it
 * are checked as direct calls would be. */

#include <stddef.h>

#include "macro.h"

struct dlopen_symbol {
        const char *name;
        void **ptr; /* the sym_ pointer: dlsym() hands out a function's address as a void * */
};

/* Loads soname once per process (*handle keeps it; it is never unloaded, so the pointers
 * stay valid) and points each symbol's pointer at its function. 0 when it is loaded, now
 * or before; -EOPNOTSUPP when the library or one of the symbols is missing, the detail
 * "cannot load SONAME (dlopen|SYMBOL): " and dlerror()'s message. */
int dlopen_symbols(void **handle, const char *soname, const struct dlopen_symbol *symbols,
                   size_t n_symbols, char **ret_detail);

#define DLOPEN_SYMBOL_DECLARE(name) extern typeof(name) *sym_##name;
#define DLOPEN_SYMBOL_DEFINE(name)  typeof(name) *sym_##name;
#define DLOPEN_SYMBOL_ENTRY(name)   {#name, (void **)&sym_##name},

#define DEFINE_DLOPEN(fn, soname, SYMBOLS)                                                        \
        SYMBOLS(DLOPEN_SYMBOL_DEFINE)                                                             \
        int fn(char **ret_detail)                                                                 \
        {                                                                                         \
                static const struct dlopen_symbol symbols[] = {SYMBOLS(DLOPEN_SYMBOL_ENTRY)};     \
                static void *handle;                                                              \
                return dlopen_symbols(&handle, soname, symbols, ELEMENTSOF(symbols), ret_detail); \
        }
