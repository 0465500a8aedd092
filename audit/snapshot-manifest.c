/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The manifest: a snapshot's first member, listing every entry with its type, size and
 * link target, written at capture and checked against the tree when a snapshot is opened
 * (the validator). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "detail.h"
#include "macro.h"
#include "snapshot-internal.h"

/* Manifest fields are words: bytes that are not printable ASCII, spaces and backslashes
 * are written as \xNN. */
static void put_escaped(FILE *f, const char *s, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch <= 0x20 || ch >= 0x7f || ch == '\\')
                        fprintf(f, "\\x%02x", ch);
                else
                        fputc(ch, f);
        }
}

int snapshot_manifest_build(const struct snapshot_entries *l, const char *source, char **ret,
                            size_t *ret_len)
{
        char *s = NULL, created[32];
        size_t len = 0;
        struct tm tm;
        time_t now = time(NULL);
        FILE *f = open_memstream(&s, &len);

        if (!f)
                return -ENOMEM;
        strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        fprintf(f, "vfiod-snapshot 1\ncreated %s\n", created);
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->e[i].path, "proc/version") == 0 && l->e[i].data) {
                        fputs("kernel ", f);
                        put_escaped(f, l->e[i].data, strcspn(l->e[i].data, "\n"));
                        fputc('\n', f);
                }
        fputs("source ", f);
        put_escaped(f, source, strlen(source));
        fprintf(f, "\nentries %zu\n", l->n);
        for (size_t i = 0; i < l->n; i++) {
                const struct snapshot_entry *e = &l->e[i];
                if (e->type == 'f')
                        fprintf(f, "f %zu ", e->size);
                else
                        fprintf(f, "%c ", e->type);
                put_escaped(f, e->path, strlen(e->path));
                if (e->type == 'l') {
                        fputc(' ', f);
                        put_escaped(f, e->data, strlen(e->data));
                }
                fputc('\n', f);
        }
        fprintf(f, "end %zu\n", l->n);
        if (fclose(f) != 0 || !s) {
                free(s);
                return -ENOMEM;
        }
        *ret = s;
        *ret_len = len;
        return 0;
}

/* ---- the validator -------------------------------------------------------------- */

static char *unescape(const char *s)
{
        char *out = malloc(strlen(s) + 1), *o = out;

        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned v;
                if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1 && v > 0) {
                        *o++ = (char)v;
                        s += 3;
                } else
                        *o++ = *s;
        }
        *o = '\0';
        return out;
}

/* Whether the entry is there as the manifest says; a reason when not. */
static const char *entry_check(const struct root *r, char type, const char *path, size_t size,
                               const char *target)
{
        _cleanup_close_ int fd = root_openat(r, path, O_PATH | O_NOFOLLOW);
        struct stat st;
        char buf[PATH_MAX];
        ssize_t n;

        if (fd < 0)
                return fd == -ENOENT ? "missing" : "unreadable";
        if (fstat(fd, &st) < 0)
                return "unreadable";
        switch (type) {
        case 'd':
                return S_ISDIR(st.st_mode) ? NULL : "not a directory";
        case 'l':
                if (!S_ISLNK(st.st_mode))
                        return "not a symbolic link";
                n = readlinkat(fd, "", buf, sizeof(buf) - 1);
                if (n < 0)
                        return "unreadable";
                buf[n] = '\0';
                return strcmp(buf, target) == 0 ? NULL : "points elsewhere";
        default:
                if (!S_ISREG(st.st_mode))
                        return "not a regular file";
                return (size_t)st.st_size == size ? NULL : "wrong size (truncated?)";
        }
}

int snapshot_manifest_validate(struct snapshot *s, char **ret_detail)
{
        _cleanup_(root_freep) struct root *r = NULL;
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ char *first = NULL;
        size_t declared = 0, seen = 0, bad = 0, end = SIZE_MAX;
        char *save = NULL;
        bool header = false;
        int k;

        k = root_open(s->dir, &r);
        if (k < 0) {
                return detail_errno(ret_detail, k, "cannot open %s: %s", s->dir, strerror(-k));
        }
        k = root_read_file(r, SNAPSHOT_MANIFEST, 256u << 20, &buf, NULL);
        if (k == -ENOENT) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "no %s: not a vfioctl snapshot, or one that lost its "
                                    "first member",
                                    SNAPSHOT_MANIFEST);
        }
        if (k < 0) {
                return detail_errno(ret_detail, k, "cannot read %s: %s", SNAPSHOT_MANIFEST,
                                    strerror(-k));
        }
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char type = line[0], *rest = line + 2, *path, *target = NULL;
                _cleanup_free_ char *upath = NULL, *utarget = NULL;
                unsigned long long size = 0;
                const char *why;

                if (!header) {
                        if (strcmp(line, "vfiod-snapshot 1") != 0) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s is not a version 1 snapshot manifest",
                                                    SNAPSHOT_MANIFEST);
                        }
                        header = true;
                        continue;
                }
                if (strncmp(line, "created ", 8) == 0) {
                        free(s->created);
                        s->created = unescape(line + 8);
                        continue;
                }
                if (strncmp(line, "kernel ", 7) == 0) {
                        free(s->kernel);
                        s->kernel = unescape(line + 7);
                        continue;
                }
                if (strncmp(line, "source ", 7) == 0)
                        continue;
                if (sscanf(line, "entries %zu", &declared) == 1)
                        continue;
                if (sscanf(line, "end %zu", &end) == 1)
                        break;
                if ((type != 'f' && type != 'l' && type != 'd') || line[1] != ' ') {
                        return detail_errno(ret_detail, -EBADMSG, "%s: unreadable line '%.80s'",
                                            SNAPSHOT_MANIFEST, line);
                }
                if (type == 'f') {
                        char *sp = strchr(rest, ' ');
                        if (!sp || sscanf(rest, "%llu", &size) != 1) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s: unreadable line '%.80s'",
                                                    SNAPSHOT_MANIFEST, line);
                        }
                        rest = sp + 1;
                }
                path = rest;
                if (type == 'l') {
                        target = strchr(rest, ' ');
                        if (!target) {
                                return detail_errno(ret_detail, -EBADMSG,
                                                    "%s: unreadable line '%.80s'",
                                                    SNAPSHOT_MANIFEST, line);
                        }
                        *target++ = '\0';
                        utarget = unescape(target);
                }
                upath = unescape(path);
                if (!upath || (type == 'l' && !utarget))
                        return -ENOMEM;
                seen++;
                why = entry_check(r, type, upath, (size_t)size, utarget);
                if (why && bad++ == 0 && asprintf(&first, "%s: %s", upath, why) < 0)
                        return -ENOMEM;
        }
        if (!header || end == SIZE_MAX || end != seen || declared != seen) {
                return detail_errno(ret_detail, -EBADMSG,
                                    "%s is truncated or damaged (%zu of %zu entries, %s)",
                                    SNAPSHOT_MANIFEST, seen, declared,
                                    end == SIZE_MAX ? "no end line" : "counts disagree");
        }
        s->n_entries = seen;
        if (bad > 0) {
                return detail_errno(
                        ret_detail, -EUCLEAN,
                        "incomplete: %zu of the %zu entries its manifest lists are missing or "
                        "differ (first: %s)",
                        bad, seen, first);
        }
        return 0;
}
