/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detail.h"
#include "macro.h"
#include "persist.h"

static int entry_compare(const void *a, const void *b)
{
        const struct persist_entry *x = a, *y = b;
        return pci_addr_compare(&x->addr, &y->addr);
}

/* A kernel driver's name as driver_override takes it; the udev rule writes it there. */
static bool driver_name_valid(const char *s)
{
        size_t n = strlen(s);
        return n > 0 && n < sizeof(((struct persist_entry *)NULL)->driver) &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int bad_line(char **ret_detail, size_t lineno, const char *what, const char *word)
{
        if (ret_detail &&
            asprintf(ret_detail, "line %zu: '%.64s' is not %s", lineno, word, what) < 0)
                *ret_detail = NULL;
        return -EBADMSG;
}

int persist_parse(const char *text, struct persist_entry **ret, size_t *ret_n, char **ret_detail)
{
        _cleanup_free_ char *buf = strdup(text);
        _cleanup_free_ struct persist_entry *l = NULL;
        size_t n = 0, lineno = 0;

        if (!buf)
                return -ENOMEM;
        for (char *line = buf, *next; line && *line; line = next) {
                char *hash, *words[3] = {NULL}, *save = NULL;
                struct persist_entry e = {0}, *nl;
                size_t n_words = 0;

                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                lineno++;
                hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                for (char *w = strtok_r(line, " \t\r", &save); w && n_words < 3;
                     w = strtok_r(NULL, " \t\r", &save))
                        words[n_words++] = w;
                if (n_words == 0)
                        continue;
                if (pci_addr_parse(words[0], &e.addr) < 0)
                        return bad_line(ret_detail, lineno, "a PCI address", words[0]);
                if (n_words == 3)
                        return bad_line(ret_detail, lineno, "a driver name", words[2]);
                if (n_words == 2) {
                        if (!driver_name_valid(words[1]))
                                return bad_line(ret_detail, lineno, "a driver name", words[1]);
                        snprintf(e.driver, sizeof(e.driver), "%s", words[1]);
                }
                nl = realloc(l, (n + 1) * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n++] = e;
        }
        if (n > 1)
                qsort(l, n, sizeof(*l), entry_compare);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

int persist_load(const struct root *root, struct persist_entry **ret, size_t *ret_n,
                 char **ret_detail)
{
        _cleanup_free_ char *buf = NULL, *why = NULL;
        int r = root_read_file(root, VFIOD_PERSIST_FILE, 1 << 20, &buf, NULL);

        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        r = persist_parse(buf, ret, ret_n, &why);
        if (r == -EBADMSG)
                return detail_errno(ret_detail, r, "/%s: %s", VFIOD_PERSIST_FILE, strna(why));
        return r;
}

static ssize_t find(const struct pci_addr *l, size_t n, const struct pci_addr *a)
{
        for (size_t i = 0; i < n; i++)
                if (pci_addr_equal(&l[i], a))
                        return (ssize_t)i;
        return -1;
}

static bool contains(const struct pci_addr *l, size_t n, const struct pci_addr *a)
{
        return find(l, n, a) >= 0;
}

static void write_entry(FILE *f, const struct pci_addr *a, const char *driver)
{
        char buf[PCI_ADDR_STRLEN];
        fprintf(f, "%s%s%s\n", pci_addr_format(a, buf), driver && *driver ? " " : "",
                driver ? driver : "");
}

int persist_update(const struct root *root, const struct pci_addr *add, const char *const *drivers,
                   size_t n_add, const struct pci_addr *remove, size_t n_remove, char **ret_detail)
{
        _cleanup_free_ struct persist_entry *cur = NULL;
        _cleanup_free_ char *out = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        size_t n = 0, size = 0;
        FILE *f;
        int r;

        for (size_t i = 0; drivers && i < n_add; i++)
                if (drivers[i] && !driver_name_valid(drivers[i]))
                        return detail_errno(ret_detail, -EINVAL, "'%s' is not a driver name",
                                            drivers[i]);
        r = persist_load(root, &cur, &n, ret_detail);
        if (r < 0)
                return r;
        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Devices vfiod assigns to vfio-pci at boot (vfioctl bind --persist): an\n"
              "# address a line, and the VFIO driver --driver chose, if any.\n",
              f);
        for (size_t i = 0; i < n; i++)
                if (!contains(remove, n_remove, &cur[i].addr) &&
                    !contains(add, n_add, &cur[i].addr))
                        write_entry(f, &cur[i].addr, cur[i].driver);
        for (size_t i = 0; i < n_add; i++)
                if (find(add, n_add, &add[i]) == (ssize_t)i) /* the first of repeats */
                        write_entry(f, &add[i], drivers ? drivers[i] : NULL);
        if (fclose(f) != 0)
                return -ENOMEM;
        dirfd = root_mkdir_p(root, "etc/vfiod");
        if (dirfd < 0)
                return dirfd;
        return dir_write_atomic(dirfd, "assign.conf", out, size);
}
