/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl snapshot: capture what the audit reads, for an offline audit elsewhere. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "detail.h"
#include "snapshot.h"

int verb_snapshot(struct cli *c)
{
        struct snapshot_stats stats = {0};
        _cleanup_free_ char *detail = NULL;
        const char *out = c->args[0];
        /* With the archive on standard output, the report goes to standard error. */
        FILE *report = strcmp(out, "-") == 0 ? stderr : stdout;
        int r;

        if (c->root->is_host && geteuid() != 0)
                fputs("vfioctl: warning: snapshot: not running as root: configuration space is "
                      "captured only up to 64 bytes, so an audit of this snapshot cannot judge "
                      "ACS or ATS\n",
                      stderr);
        r = snapshot_write(c->root, out, &stats, &detail);
        if (r < 0) {
                fprintf(stderr, "vfioctl: snapshot: %s\n", detail_or_strerror(detail, r));
                return EXIT_FAILED;
        }
        for (size_t i = 0; i < stats.n_warnings; i++)
                fprintf(stderr, "vfioctl: warning: snapshot: cannot read %s\n", stats.warnings[i]);
        if (c->json && report == stdout) {
                json_object *o = json_object_new_object(), *w = json_object_new_array();

                for (size_t i = 0; w && i < stats.n_warnings; i++)
                        json_object_array_add(w, json_object_new_string(stats.warnings[i]));
                if (o) {
                        json_object_object_add(o, "schema",
                                               json_object_new_string("vfiod.snapshot/1"));
                        json_object_object_add(o, "path", json_object_new_string(out));
                        json_object_object_add(o, "files",
                                               json_object_new_int64((int64_t)stats.files));
                        json_object_object_add(o, "links",
                                               json_object_new_int64((int64_t)stats.links));
                        json_object_object_add(o, "directories",
                                               json_object_new_int64((int64_t)stats.dirs));
                        json_object_object_add(o, "bytes",
                                               json_object_new_int64((int64_t)stats.bytes));
                        json_object_object_add(o, "warnings", w);
                } else
                        json_object_put(w);
                r = print_json(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
                if (r == 0)
                        putchar('\n');
        } else
                fprintf(report, "%s: %zu files, %zu links, %zu directories, %zu KiB of content\n",
                        strcmp(out, "-") == 0 ? "snapshot" : out, stats.files, stats.links,
                        stats.dirs, (stats.bytes + 1023) / 1024);
        snapshot_stats_done(&stats);
        return r;
}
