/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The CDI spec of the exported pools, kept by the daemon when it is given a spec
 * directory (--cdi-dir). The daemon is the one that hands devices elsewhere, so it is the
 * one that can take a device out of the spec first: before a kernel operation starts on
 * a device (an unbind, a restore, the removal of VFs) and before a leased device's fds
 * leave, the spec is written without it, so that a container runtime never reads a spec
 * that offers a device vfiod is giving away. Devices coming back (a job done, a lease
 * ended, new VFs, any uevent) are written back in after a short delay that gathers a
 * burst of changes into one write. A spec that cannot be written (a directory that is a
 * symbolic link or read-only) and a configuration that does not parse are logged, once
 * each, and change nothing else: the daemon keeps serving. */

#include <stdbool.h>
#include <stddef.h>

#include "pci-addr.h"

struct server;
struct fleet_config;
typedef struct sd_event_source sd_event_source;

struct cdi_export {
        struct fleet_config *config; /* NULL: not exporting */
        sd_event_source *timer;      /* the delayed write */
        char *written;               /* the spec text last written ("" none) */
        char *failed;                /* the error last logged, not to repeat it */
};

/* Delay between a change that may bring devices back and the write that shows them. */
#define CDI_EXPORT_DELAY_USEC (100 * 1000)

/* Loads the pools (cfg.pools_path) when cfg.cdi_dir is set and writes the spec once.
 * Never fails the start: a bad configuration is logged and nothing is exported. */
void cdi_export_start(struct server *s);
void cdi_export_done(struct server *s);

/* Writes the spec now, without the devices leaving[0..n), the leased ones and those in
 * a kernel operation. */
void cdi_export_now(struct server *s, const struct pci_addr *leaving, size_t n);

/* Something changed that may bring devices back: the spec is written after
 * CDI_EXPORT_DELAY_USEC, from a fresh scan. */
void cdi_export_changed(struct server *s);
