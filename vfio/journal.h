/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The journal: for each device vfiod has changed, what it was before. A record is
 * written (atomically, fsynced) before the kernel is touched and removed only after a
 * restore is verified, so a crash at any point leaves enough to put the device back.
 *
 * The journal is a store of typed records: a directory of JSON objects, one file per
 * device and record kind, named "<address><suffix>.json", each naming its device in an
 * "address" member, all behind one lock. Device bindings are one kind (below, in
 * journal-binding.c); sriov/ keeps its PF records as another. */

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "pci-addr.h"
#include "root.h"

#define VFIOD_STATE_DIR_DEFAULT "var/lib/vfiod"

struct journal {
        const struct root *root;
        int dirfd;  /* <state dir>/journal */
        char *path; /* root-relative, for messages */
};

/* Opens (creating if needed) STATE_DIR/journal below the root and locks it (flock,
 * exclusive, waiting) until journal_free(); state_dir is root-relative (a leading '/' is
 * ignored) or NULL for the default. */
int journal_open(const struct root *root, const char *state_dir, struct journal **ret);
struct journal *journal_free(struct journal *j);

static inline void journal_freep(struct journal **j)
{
        journal_free(*j);
}

/* A kind of record: the suffix of its file names and the most bytes a valid one takes. */
struct journal_kind {
        const char *suffix; /* "" for device bindings, ".sriov" for SR-IOV PFs */
        size_t max_size;
};

/* A new record object for device a: {"address": "<a>"}, to which the kind's own members
 * are added. NULL when out of memory. */
json_object *journal_record_new(const struct pci_addr *a);

/* Writes o as the record of kind k for device a, replacing any: a reader finds the old
 * record or the new one, never a mix, and the new one survives a crash once this returns.
 * o stays the caller's. */
int journal_record_put(struct journal *j, const struct journal_kind *k, const struct pci_addr *a,
                       json_object *o);

/* Reads the record of kind k for device a: -ENOENT if none, -EFBIG beyond the kind's
 * size, -EBADMSG if it is not a JSON object whose "address" names a (corrupt, or cut by a
 * crash of something other than this store). The caller puts *ret. */
int journal_record_get(struct journal *j, const struct journal_kind *k, const struct pci_addr *a,
                       json_object **ret);

/* Removes the record (no error if absent) and syncs the directory. */
int journal_record_remove(struct journal *j, const struct journal_kind *k,
                          const struct pci_addr *a);

/* The addresses of all records of kind k, valid or not (a corrupt record still names its
 * device by its file name). Sorted. */
int journal_record_list(struct journal *j, const struct journal_kind *k, struct pci_addr **ret,
                        size_t *ret_n);

/* Whether the journal below state_dir has a record of kind k for a, looked up without
 * the lock (a hint: what holds the lock may be adding or removing it right now). */
bool journal_record_exists(const struct root *root, const char *state_dir,
                           const struct journal_kind *k, const struct pci_addr *a);

/* Removes the temporary files a crash left while a record was being written
 * (".<address><suffix>.json.tmp", regular files only; nothing else is touched) and lists
 * their names in *ret_removed (NULL-terminated, NULL: none). Call it with the journal
 * open, which keeps every writer out. */
int journal_remove_temporaries(struct journal *j, char ***ret_removed);

/* ---- device bindings (journal-binding.c) -------------------------------------------- */

/* "<address>.json": what a device was bound to before vfiod bound it. */
extern const struct journal_kind journal_kind_binding;

enum journal_state {
        JOURNAL_BINDING,   /* bind started, outcome not verified */
        JOURNAL_ASSIGNED,  /* bound to vfio-pci and verified */
        JOURNAL_RESTORING, /* restore started, outcome not verified */
        _JOURNAL_STATE_MAX,
        _JOURNAL_STATE_INVALID = -EINVAL,
};

const char *journal_state_to_string(enum journal_state s);
enum journal_state journal_state_from_string(const char *s);

struct journal_entry {
        struct pci_addr addr;
        enum journal_state state;
        char *original_driver;   /* NULL: it had none */
        char *original_override; /* NULL: it had none */
        char *driver;            /* the VFIO driver vfiod binds it to; NULL in a record from
                                  * before variants were chosen: vfio-pci */
        bool persist;
};

void journal_entry_done(struct journal_entry *e);

/* Whether the journal below state_dir has an entry for addr, looked up without the lock
 * (a hint: what holds the lock may be adding or removing it right now). */
bool journal_has_entry(const struct root *root, const char *state_dir, const struct pci_addr *addr);

/* Writes or replaces the entry for e->addr. */
int journal_put(struct journal *j, const struct journal_entry *e);

/* Reads the entry for addr: -ENOENT if none, -EBADMSG if it is corrupt or truncated. */
int journal_get(struct journal *j, const struct pci_addr *addr, struct journal_entry *ret);

/* Removes the entry (no error if absent) and syncs the directory. */
int journal_remove(struct journal *j, const struct pci_addr *addr);

/* The addresses of all entries, valid or not (a corrupt entry still names its device
 * by its file name). Sorted. */
int journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n);
