/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "cdi-export.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "cdi.h"
#include "inventory.h"
#include "job.h"
#include "macro.h"
#include "methods-internal.h"
#include "pools.h"
#include "server.h"

/* Logs a failure to export, unless it is the one logged last. */
static void export_failed(struct cdi_export *e, const char *what)
{
        if (!what)
                what = "CDI spec: cannot be written";
        if (e->failed && strcmp(e->failed, what) == 0)
                return;
        log_msg(LOG_ERR, "%s", what);
        free(e->failed);
        e->failed = strdup(what);
}

static bool leaving_has(const struct pci_addr *leaving, size_t n, const struct pci_addr *a)
{
        for (size_t i = 0; i < n; i++)
                if (pci_addr_equal(&leaving[i], a))
                        return true;
        return false;
}

void cdi_export_now(struct server *s, const struct pci_addr *leaving, size_t n)
{
        struct cdi_export *e = &s->cdi;
        if (!e->config)
                return;
        (void)sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
        const struct topology *t;
        int r = server_topology(s, &t);
        if (r < 0) {
                export_failed(e, "CDI spec: cannot scan the bus: left as it was");
                return;
        }
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *inv = NULL;
        r = fleet_inventory_build(s->root, t, e->config, &inv);
        if (r < 0) {
                export_failed(e, "CDI spec: cannot list the exported devices: left as it was");
                return;
        }
        /* What stays: a shallow copy of the devices nobody is taking away. */
        struct fleet_inventory shown = {.devices =
                                                calloc(inv->n_devices + 1, sizeof(*inv->devices))};
        if (!shown.devices) {
                export_failed(e, "CDI spec: out of memory: left as it was");
                return;
        }
        for (size_t i = 0; i < inv->n_devices; i++) {
                const struct pci_addr *a = &inv->devices[i].addr;
                if (leaving_has(leaving, n, a) || lease_of_device(s, a) || job_of_device(s, a))
                        continue;
                shown.devices[shown.n_devices++] = inv->devices[i];
        }
        json_object *spec = cdi_spec_build(e->config, &shown);
        const char *text = spec ? json_object_to_json_string_ext(
                                          spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE)
                                : NULL;
        size_t n_shown = shown.n_devices;
        free(shown.devices);
        if (!text) {
                json_object_put(spec);
                export_failed(e, "CDI spec: out of memory: left as it was");
                return;
        }
        const char *want = n_shown > 0 ? text : "";
        if (e->written && strcmp(e->written, want) == 0) {
                json_object_put(spec);
                return;
        }
        _cleanup_free_ char *detail = NULL;
        r = cdi_spec_publish(s->cfg.cdi_dir, e->config, text, n_shown, NULL, &detail);
        if (r < 0) {
                export_failed(e, detail_or_strerror(detail, r));
                json_object_put(spec);
                return;
        }
        free(e->failed);
        e->failed = NULL;
        free(e->written);
        e->written = strdup(want);
        json_object_put(spec);
        log_msg(LOG_DEBUG, "CDI spec: %zu device(s) in %s", n_shown, s->cfg.cdi_dir);
}

static int on_export_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
        cdi_export_now(userdata, NULL, 0);
        return 0;
}

void cdi_export_changed(struct server *s)
{
        struct cdi_export *e = &s->cdi;
        if (!e->config)
                return;
        if (!e->timer &&
            sd_event_add_time_relative(s->event, &e->timer, CLOCK_MONOTONIC, CDI_EXPORT_DELAY_USEC,
                                       0, on_export_timer, s) < 0) {
                export_failed(e, "CDI spec: cannot set a timer: updated at the next operation");
                return;
        }
        int enabled = SD_EVENT_OFF;
        (void)sd_event_source_get_enabled(e->timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return; /* a write is due already */
        (void)sd_event_source_set_time_relative(e->timer, CDI_EXPORT_DELAY_USEC);
        (void)sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
}

void cdi_export_start(struct server *s)
{
        struct cdi_export *e = &s->cdi;
        if (!s->cfg.cdi_dir)
                return;
        _cleanup_free_ char *detail = NULL;
        int r = fleet_config_load(s->cfg.pools_path, &e->config, &detail);
        if (r < 0) {
                /* fleet_config_load()'s detail names the file. */
                if (detail)
                        log_msg(LOG_ERR,
                                "%s: no CDI spec is written until vfiod is restarted with a "
                                "pool file that parses",
                                detail);
                else
                        log_msg(LOG_ERR,
                                "%s: %s: no CDI spec is written until vfiod is restarted with a "
                                "pool file that parses",
                                s->cfg.pools_path, r == -ENOENT ? "no such file" : strerror(-r));
                return;
        }
        cdi_export_now(s, NULL, 0);
}

void cdi_export_done(struct server *s)
{
        struct cdi_export *e = &s->cdi;
        e->timer = sd_event_source_disable_unref(e->timer);
        e->config = fleet_config_free(e->config);
        free(e->written);
        free(e->failed);
        e->written = e->failed = NULL;
}
