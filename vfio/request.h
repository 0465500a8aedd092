/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Asking the process that has a VFIO device open to give it back.
 *
 * vfio-pci has an interrupt for this: the device request (VFIO_PCI_REQ_IRQ_INDEX). A VMM
 * that wants to hear it sets an eventfd on that index; QEMU does, and answers by
 * unplugging the device from its guest, then closing the device's files. The kernel
 * itself signals it when the device is being unbound, and again every ten seconds for
 * as long as the unbind waits for the files to close; nothing can take such an unbind
 * back once it has begun.
 *
 * The index also takes a trigger without an eventfd (DATA_NONE, count 1), which signals
 * the eventfd the holder set: the same request, without the unbind. Any file of the
 * device may send it, so vfiod takes a copy of the holder's own file (pidfd_getfd(),
 * which needs the right to ptrace the holder) and triggers the request through it: the
 * holder is asked, and nothing else changes, whether it answers or not. */

#include <sys/types.h>

#include "pci-addr.h"
#include "root.h"

/* An open file of a device's VFIO node in some process. */
struct vfio_device_file {
        pid_t pid;
        int fd;     /* its number in that process */
        bool group; /* the device's group node (type1); else its cdev (iommufd) */
};

/* Finds a process that has device a's cdev or group node open, by the fd links under
 * proc/ below the root: in process pid only when pid > 0, else in any. 1 and *ret, 0
 * when none has, or -errno when proc cannot be read. Processes that vanish while looked
 * at are skipped. */
int vfio_device_file_find(const struct root *r, const struct pci_addr *a, pid_t pid,
                          struct vfio_device_file *ret);

/* Sends device a's request to the process that has it open: pid first, else any that
 * has (*ret_pid says which). 0 once signalled; -ENOENT when no process has the device
 * open; -ENOTCONN when the holder listens for no request (it set no eventfd on the
 * index, or has not bound its file or opened the device yet); -ESTALE when the file
 * found is not the device's node (then nothing is sent through it); other -errno when
 * its file cannot be reached (-EPERM: no right to ptrace it). A sentence in
 * *ret_detail. */
int vfio_device_request(const struct root *r, const struct pci_addr *a, pid_t pid, pid_t *ret_pid,
                        char **ret_detail);
