/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dlfcn.h>
#include <errno.h>

#include "detail.h"
#include "dlopen-util.h"

static int fail(char **ret_detail, const char *soname, const char *what)
{
        const char *e = dlerror();

        return detail_errno(ret_detail, -EOPNOTSUPP, "cannot load %s (%s): %s", soname, what,
                            e ? e : "unknown error");
}

int dlopen_symbols(void **handle, const char *soname, const struct dlopen_symbol *symbols,
                   size_t n_symbols, char **ret_detail)
{
        void *h;

        if (*handle)
                return 0;
        /* Never unmapped, not even by the dlclose() below: no sym_ pointer ever dangles. */
        h = dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!h)
                return fail(ret_detail, soname, "dlopen");
        for (size_t i = 0; i < n_symbols; i++) {
                *symbols[i].ptr = dlsym(h, symbols[i].name);
                if (!*symbols[i].ptr) {
                        /* The message first: dlclose() may replace it. */
                        int r = fail(ret_detail, soname, symbols[i].name);
                        dlclose(h);
                        return r;
                }
        }
        *handle = h;
        return 0;
}
