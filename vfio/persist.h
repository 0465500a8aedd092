/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Boot-time assignments: etc/vfiod/assign.conf below the root, one PCI address per line
 * ('#' starts a comment). The dist/ udev rule and vfiod-assign.service read it. */

#include <stddef.h>

#include "pci-addr.h"
#include "root.h"

#define VFIOD_PERSIST_FILE "etc/vfiod/assign.conf"

/* The recorded addresses, sorted; an absent file is an empty list. -EBADMSG names the
 * first bad line in *ret_detail. */
int persist_load(const struct root *root, struct pci_addr **ret, size_t *ret_n, char **ret_detail);

/* Adds or removes addresses, rewriting the file atomically. */
int persist_update(const struct root *root, const struct pci_addr *add, size_t n_add,
                   const struct pci_addr *remove, size_t n_remove, char **ret_detail);
