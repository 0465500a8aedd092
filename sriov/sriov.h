/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* SR-IOV physical functions: the VF model, carving VFs straight onto vfio-pci (or onto
 * the host driver), and VF netdev settings, all journaled so a crash or a release puts
 * back the PF's VF count, its autoprobe setting and every VF setting it changed. */

#include <errno.h>
#include <stdbool.h>

#include "journal.h"
#include "topology.h"
#include "vf-netlink.h"

struct sriov_pf {
        struct pci_addr addr;
        int totalvfs, numvfs;
        unsigned offset, stride, vf_device;
        bool autoprobe;
};

/* Reads the PF's sriov_* attributes. -ENOTSUP if the device is not an SR-IOV PF. */
int sriov_pf_read(const struct root *root, const struct pci_addr *pf, struct sriov_pf *ret);

/* VF index -> address, by the capability's First VF Offset and VF Stride. */
int sriov_vf_address(const struct sriov_pf *pf, int index, struct pci_addr *ret);

/* The journal's record of a PF vfiod changed. */
struct sriov_journal_entry {
        struct pci_addr addr;
        int original_numvfs;
        bool original_autoprobe;
        struct vf_config *saved; /* original settings of the VFs vfiod configured */
        size_t n_saved;
        /* A PF on vfio-pci: the VF token vfiod set on it (a UUID string), or NULL. */
        char *vf_token;
};

/* The record's own part of the journal (sriov-journal.c): "<address>.sriov.json" records,
 * with the store's guarantees (journal.h). */
void sriov_journal_entry_done(struct sriov_journal_entry *e);
/* Writes or replaces the record of e->addr. */
int sriov_journal_put(struct journal *j, const struct sriov_journal_entry *e);
/* Reads the PF's record: -ENOENT if none, -EBADMSG if it is corrupt or truncated. */
int sriov_journal_get(struct journal *j, const struct pci_addr *pf,
                      struct sriov_journal_entry *ret);
/* Removes the record (no error if absent). */
int sriov_journal_remove(struct journal *j, const struct pci_addr *pf);
/* The PFs that have a record, sorted. */
int sriov_journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n);

enum sriov_driver {
        SRIOV_DRIVER_VFIO, /* autoprobe off, each VF bound to its VFIO driver (variant.h) */
        SRIOV_DRIVER_HOST, /* autoprobe on: the PF's VF driver takes them */
        _SRIOV_DRIVER_MAX,
        _SRIOV_DRIVER_INVALID = -EINVAL,
};

/* "vfio-pci" or "host", as --driver and the API's "driver" spell them. */
const char *sriov_driver_to_string(enum sriov_driver d);
/* The reverse; _SRIOV_DRIVER_INVALID for any other name. */
enum sriov_driver sriov_driver_from_string(const char *s);

/* The VF token vfiod holds for a PF on vfio-pci (see sriov_pf_set_numvfs), from the
 * journal: *ret is NULL when there is none. */
int sriov_pf_vf_token(struct journal *j, const struct pci_addr *pf, char **ret);

/* Sets the PF's VF count to n. A change between two non-zero counts goes through 0;
 * refused while any existing VF is in use by the host or open through VFIO. With
 * SRIOV_DRIVER_VFIO no host driver ever probes a VF, and each is bound to vfio-pci or the
 * variant driver modules.alias names for it (its module loaded when absent). On any
 * failure the PF is put back as it was. n == 0 releases: VF settings restored, VFs
 * removed, autoprobe restored, the journal entry dropped.
 * A PF bound to vfio-pci carves through vfio-pci's own sriov_configure, which the kernel
 * allows only with vfio-pci's enable_sriov parameter on (refused up front otherwise).
 * vfio-pci then lets a VF be opened only with the PF's VF token: vfiod makes a random
 * token, records it in the PF's journal entry, sets it on the PF (VFIO_DEVICE_FEATURE
 * PCI_VF_TOKEN, through a short open of the PF) before the VFs appear, and drops it with
 * the entry when the VFs go. -EBUSY when another VFIO user has the PF open: that user
 * owns the token. */
int sriov_pf_set_numvfs(const struct root *root, struct journal *j, const struct topology *t,
                        const struct pci_addr *pf, int n, enum sriov_driver driver,
                        char **ret_detail);

/* Applies VF settings through the PF's interface, saving the VF's original settings in
 * the journal first (once). */
int sriov_vf_configure(const struct root *root, struct journal *j, const struct topology *t,
                       const struct pci_addr *pf, const struct vf_config *want, unsigned fields,
                       char **ret_detail);

/* Puts VF vf's saved original settings back and forgets them. */
int sriov_vf_release(struct journal *j, const struct topology *t, const struct pci_addr *pf, int vf,
                     char **ret_detail);

/* Returns a PF recorded in the journal to its original VF count, autoprobe and VF
 * settings (crash recovery). */
int sriov_pf_restore(const struct root *root, struct journal *j, const struct pci_addr *pf,
                     char **ret_detail);
