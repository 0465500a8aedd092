/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "archive-dlopen.h"

/* The ABI the headers describe; libarchive has kept this soname since 3.0. */
#define ARCHIVE_SONAME "libarchive.so.13"

#define ARCHIVE_SYMBOL_DEFINE(name) typeof(name) *sym_##name;
ARCHIVE_SYMBOLS(ARCHIVE_SYMBOL_DEFINE)
#undef ARCHIVE_SYMBOL_DEFINE

static int fail(char **ret_detail, const char *what)
{
        const char *e = dlerror();

        if (ret_detail && asprintf(ret_detail, "cannot load %s (%s): %s", ARCHIVE_SONAME, what,
                                   e ? e : "unknown error") < 0)
                *ret_detail = NULL;
        return -EOPNOTSUPP;
}

int archive_dlopen(char **ret_detail)
{
        static void *handle;
        void *h;

        if (handle)
                return 0;
        /* Kept loaded for the rest of the process: the pointers stay valid. */
        h = dlopen(ARCHIVE_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!h)
                return fail(ret_detail, "dlopen");
#define ARCHIVE_SYMBOL_LOAD(name)                              \
        if (!(sym_##name = (typeof(name) *)dlsym(h, #name))) { \
                int r_ = fail(ret_detail, #name);              \
                dlclose(h);                                    \
                return r_;                                     \
        }
        ARCHIVE_SYMBOLS(ARCHIVE_SYMBOL_LOAD)
#undef ARCHIVE_SYMBOL_LOAD
        handle = h;
        return 0;
}
