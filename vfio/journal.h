/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The journal: for each device vfiod has changed, what it was before. An entry is
 * written (atomically, fsynced) before the kernel is touched and removed only after a
 * restore is verified, so a crash at any point leaves enough to put the device back. */

#include <stdbool.h>

#include "pci-addr.h"
#include "root.h"

#define VFIOD_STATE_DIR_DEFAULT "var/lib/vfiod"

enum journal_state {
        JOURNAL_BINDING,   /* bind started, outcome not verified */
        JOURNAL_ASSIGNED,  /* bound to vfio-pci and verified */
        JOURNAL_RESTORING, /* restore started, outcome not verified */
        _JOURNAL_STATE_MAX,
        _JOURNAL_STATE_INVALID = -22,
};

const char *journal_state_to_string(enum journal_state s);
enum journal_state journal_state_from_string(const char *s);

struct journal_entry {
        struct pci_addr addr;
        enum journal_state state;
        char *original_driver;   /* NULL: it had none */
        char *original_override; /* NULL: it had none */
        bool persist;
};

void journal_entry_done(struct journal_entry *e);

struct journal {
        const struct root *root;
        int dirfd;  /* <state dir>/journal */
        char *path; /* root-relative, for messages */
};

/* Opens (creating if needed) STATE_DIR/journal below the root and locks it (flock,
 * exclusive, waiting) until journal_free(); state_dir is root-relative (a leading '/' is
 * ignored) or NULL for the default. */
int journal_open(const struct root *root, const char *state_dir, struct journal **ret);
/* Whether the journal below state_dir has an entry for addr, looked up without the lock
 * (a hint: what holds the lock may be adding or removing it right now). */
bool journal_has_entry(const struct root *root, const char *state_dir, const struct pci_addr *addr);
struct journal *journal_free(struct journal *j);

static inline void journal_freep(struct journal **j)
{
        journal_free(*j);
}

/* Writes or replaces the entry for e->addr. */
int journal_put(struct journal *j, const struct journal_entry *e);

/* Reads the entry for addr: -ENOENT if none, -EBADMSG if it is corrupt or truncated. */
int journal_get(struct journal *j, const struct pci_addr *addr, struct journal_entry *ret);

/* Removes the entry (no error if absent) and syncs the directory. */
int journal_remove(struct journal *j, const struct pci_addr *addr);

/* The addresses of all entries, valid or not (a corrupt entry still names its device
 * by its file name). Sorted. */
int journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n);

/* The same for entries named "<address><suffix>" (other modules' entry kinds). */
int journal_list_suffix(struct journal *j, const char *suffix, struct pci_addr **ret,
                        size_t *ret_n);

/* Removes the temporary files a crash left while an entry was being written
 * (".<address><suffix>.tmp", suffix ending in ".json", regular files only; nothing else
 * is touched) and lists their names in *ret_removed (NULL-terminated, NULL: none). Call
 * it with the journal open, which keeps every writer out. */
int journal_remove_temporaries(struct journal *j, char ***ret_removed);
