/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "kmod-dlopen.h"

/* The ABI the headers describe; the unversioned libkmod.so comes only with the headers
 * (libkmod-dev), so a host without them would not find it. */
DEFINE_DLOPEN(kmod_dlopen, "libkmod.so.2", KMOD_SYMBOLS)
