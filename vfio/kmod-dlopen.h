/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libkmod, loaded on first use. Linked normally, it brings libzstd, liblzma and libcrypto
 * (for module signatures) into every start of vfioctl and vfiod, the largest share of
 * their relocations, yet it is needed only when a vfio module is absent and has to be
 * loaded: on most hosts, never. Call sites use the sym_ pointers after kmod_dlopen()
 * succeeded (dlopen-util.h). */

#include <libkmod.h>

#include "dlopen-util.h"

/* kmod_list_next is what libkmod's kmod_list_foreach() calls: loops spell it out with
 * sym_kmod_list_next(). */
#define KMOD_SYMBOLS(X)                    \
        X(kmod_get_dirname)                \
        X(kmod_list_next)                  \
        X(kmod_module_get_dependencies)    \
        X(kmod_module_get_initstate)       \
        X(kmod_module_get_module)          \
        X(kmod_module_get_name)            \
        X(kmod_module_get_path)            \
        X(kmod_module_new_from_lookup)     \
        X(kmod_module_probe_insert_module) \
        X(kmod_module_ref)                 \
        X(kmod_module_remove_module)       \
        X(kmod_module_unref)               \
        X(kmod_module_unref_list)          \
        X(kmod_new)                        \
        X(kmod_set_log_fn)                 \
        X(kmod_unref)

KMOD_SYMBOLS(DLOPEN_SYMBOL_DECLARE)

/* Loads libkmod and resolves every symbol above, once per process. -EOPNOTSUPP with the
 * loader's message in *ret_detail when the library or a symbol is missing. */
int kmod_dlopen(char **ret_detail);
