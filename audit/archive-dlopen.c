/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "archive-dlopen.h"

/* The ABI the headers describe; libarchive has kept this soname since 3.0. */
DEFINE_DLOPEN(archive_dlopen, "libarchive.so.13", ARCHIVE_SYMBOLS)
