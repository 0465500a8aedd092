/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl cdi: the CDI spec of the exported pools, printed or written, offline. */
#include <stdio.h>
#include <string.h>

#include "cdi.h"
#include "detail.h"
#include "cli.h"
#include "inventory.h"
#include "pools.h"

int verb_cdi(struct cli *c)
{
        const char *config =
                cli_has(c, OPT_CONFIG) ? c->values[OPT_CONFIG] : FLEET_POOLS_PATH_DEFAULT;
        const char *out = c->values[OPT_OUTPUT];
        _cleanup_(fleet_config_freep) struct fleet_config *cfg = NULL;
        _cleanup_(fleet_inventory_freep) struct fleet_inventory *inv = NULL;
        _cleanup_free_ char *detail = NULL, *path = NULL;
        struct topology *t;
        json_object *spec;
        int r;

        r = fleet_config_load(config, &cfg, &detail);
        if (r == -ENOENT) {
                fprintf(stderr,
                        "vfioctl: cdi: %s does not exist: no pools are exported; write one (see "
                        "vfiod(8), \"Exported pools\") or pass --config FILE\n",
                        config);
                return EXIT_FAILED;
        }
        if (r < 0) {
                fprintf(stderr, "vfioctl: cdi: %s\n", detail_or_strerror(detail, r));
                return EXIT_FAILED;
        }
        r = cli_topology_unnamed(c, &t);
        if (r != 0)
                return r;
        r = fleet_inventory_build(c->root, t, cfg, &inv);
        if (r < 0) {
                fprintf(stderr, "vfioctl: cdi: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        spec = cdi_spec_build(cfg, inv);
        if (!out || !spec) {
                /* Without --output the spec itself is the document, with or without --json. */
                r = print_json(spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
                if (r == 0)
                        putchar('\n');
                return out ? EXIT_FAILED : r;
        }

        r = cdi_spec_publish(out, cfg,
                             json_object_to_json_string_ext(
                                     spec, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE),
                             inv->n_devices, &path, &detail);
        json_object_put(spec);
        if (r < 0) {
                fprintf(stderr, "vfioctl: cdi: %s\n", detail_or_strerror(detail, r));
                return EXIT_FAILED;
        }
        if (c->json) {
                json_object *o = json_object_new_object(), *names = json_object_new_array();
                _cleanup_free_ char *file = cdi_spec_file_name(cfg->cdi_kind);

                for (size_t i = 0; names && i < inv->n_devices; i++)
                        json_object_array_add(names, json_object_new_string(inv->devices[i].name));
                if (o) {
                        json_object_object_add(o, "schema", json_object_new_string("vfiod.cdi/1"));
                        json_object_object_add(o, "kind", json_object_new_string(cfg->cdi_kind));
                        json_object_object_add(o, "directory", json_object_new_string(out));
                        json_object_object_add(o, "file", json_object_new_string(strna(file)));
                        json_object_object_add(o, "written", json_object_new_boolean(path != NULL));
                        json_object_object_add(o, "devices", names);
                } else
                        json_object_put(names);
                r = print_json(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
                if (r == 0)
                        putchar('\n');
                return r;
        }
        if (path)
                printf("%s: %zu device%s of kind %s\n", path, inv->n_devices,
                       inv->n_devices == 1 ? "" : "s", cfg->cdi_kind);
        else
                printf("%s: no device exported: no spec of kind %s left there\n", out,
                       cfg->cdi_kind);
        return 0;
}
