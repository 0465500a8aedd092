/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Boot-time assignments: etc/vfiod/assign.conf below the root, one device per line,
 * "ADDRESS [DRIVER]" ('#' starts a comment). DRIVER, where 'bind --driver --persist'
 * recorded one, is the VFIO driver the device goes to at boot; without it, the one a
 * bind chooses (its candidate). The dist/ udev rule and vfiod-assign.service read it. */

#include <stddef.h>

#include "pci-addr.h"
#include "root.h"

#define VFIOD_PERSIST_FILE "etc/vfiod/assign.conf"

struct persist_entry {
        struct pci_addr addr;
        char driver[64]; /* forced with --driver; "" for none */
};

/* The recorded devices, sorted by address; an absent file is an empty list. -EBADMSG
 * names the first bad line in *ret_detail (not an address, a driver name with other
 * characters than letters, digits, '_' and '-', or more words). */
int persist_load(const struct root *root, struct persist_entry **ret, size_t *ret_n,
                 char **ret_detail);

/* The same from the file's text; *ret_detail says "line N: ..." for a bad line. */
int persist_parse(const char *text, struct persist_entry **ret, size_t *ret_n, char **ret_detail);

/* Adds or removes devices, rewriting the file atomically. drivers (NULL: none for any)
 * gives each added device its forced driver, NULL for none; a device added again takes
 * the new one. */
int persist_update(const struct root *root, const struct pci_addr *add, const char *const *drivers,
                   size_t n_add, const struct pci_addr *remove, size_t n_remove, char **ret_detail);
