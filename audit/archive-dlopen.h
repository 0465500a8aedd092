/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libarchive, loaded on first use. Linked normally, it and its dependencies (compression
 * libraries, libxml2, ICU, the C++ runtime) are mapped and relocated at every start of
 * every program that links the audit module, which costs more than most of vfioctl's
 * verbs do on a slow machine; only snapshots need it. Call sites use the sym_ pointers
 * after archive_dlopen() succeeded (dlopen-util.h). */

#include <archive.h>
#include <archive_entry.h>

#include "dlopen-util.h"

#define ARCHIVE_SYMBOLS(X)                 \
        X(archive_entry_filetype)          \
        X(archive_entry_free)              \
        X(archive_entry_hardlink)          \
        X(archive_entry_new)               \
        X(archive_entry_pathname)          \
        X(archive_entry_set_filetype)      \
        X(archive_entry_set_mtime)         \
        X(archive_entry_set_pathname)      \
        X(archive_entry_set_perm)          \
        X(archive_entry_set_size)          \
        X(archive_entry_set_symlink)       \
        X(archive_entry_size)              \
        X(archive_entry_symlink)           \
        X(archive_error_string)            \
        X(archive_read_data)               \
        X(archive_read_free)               \
        X(archive_read_new)                \
        X(archive_read_next_header)        \
        X(archive_read_open_filename)      \
        X(archive_read_support_filter_all) \
        X(archive_read_support_format_tar) \
        X(archive_write_add_filter_gzip)   \
        X(archive_write_add_filter_xz)     \
        X(archive_write_add_filter_zstd)   \
        X(archive_write_close)             \
        X(archive_write_data)              \
        X(archive_write_free)              \
        X(archive_write_header)            \
        X(archive_write_new)               \
        X(archive_write_open_fd)           \
        X(archive_write_set_format_pax_restricted)

ARCHIVE_SYMBOLS(DLOPEN_SYMBOL_DECLARE)

/* Loads libarchive and resolves every symbol above, once per process. -EOPNOTSUPP with
 * the loader's message in *ret_detail when the library or a symbol is missing. */
int archive_dlopen(char **ret_detail);
