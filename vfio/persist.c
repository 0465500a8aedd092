/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "persist.h"

static int addr_compare(const void *a, const void *b)
{
        return pci_addr_compare(a, b);
}

int persist_load(const struct root *root, struct pci_addr **ret, size_t *ret_n, char **ret_detail)
{
        _cleanup_free_ char *buf = NULL;
        _cleanup_free_ struct pci_addr *l = NULL;
        size_t n = 0, lineno = 0;
        char *save = NULL;
        int r = root_read_file(root, VFIOD_PERSIST_FILE, 1 << 20, &buf, NULL);

        if (r == -ENOENT) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (r < 0)
                return r;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *hash = strchr(line, '#'), *end;
                struct pci_addr a, *nl;

                lineno++;
                if (hash)
                        *hash = '\0';
                line += strspn(line, " \t");
                end = line + strlen(line);
                while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
                        *--end = '\0';
                if (!*line)
                        continue;
                if (pci_addr_parse(line, &a) < 0) {
                        if (ret_detail && asprintf(ret_detail, "/%s: '%s' is not a PCI address",
                                                   VFIOD_PERSIST_FILE, line) < 0)
                                *ret_detail = NULL;
                        return -EBADMSG;
                }
                nl = realloc(l, (n + 1) * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n++] = a;
        }
        if (n > 1)
                qsort(l, n, sizeof(*l), addr_compare);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static bool contains(const struct pci_addr *l, size_t n, const struct pci_addr *a)
{
        for (size_t i = 0; i < n; i++)
                if (pci_addr_equal(&l[i], a))
                        return true;
        return false;
}

int persist_update(const struct root *root, const struct pci_addr *add, size_t n_add,
                   const struct pci_addr *remove, size_t n_remove, char **ret_detail)
{
        _cleanup_free_ struct pci_addr *cur = NULL;
        _cleanup_free_ char *out = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        size_t n = 0, size = 0;
        FILE *f;
        int r;

        r = persist_load(root, &cur, &n, ret_detail);
        if (r < 0)
                return r;
        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Devices vfiod assigns to vfio-pci at boot (vfioctl bind --persist).\n", f);
        for (size_t i = 0; i < n; i++) {
                char buf[PCI_ADDR_STRLEN];
                if (!contains(remove, n_remove, &cur[i]))
                        fprintf(f, "%s\n", pci_addr_format(&cur[i], buf));
        }
        for (size_t i = 0; i < n_add; i++) {
                char buf[PCI_ADDR_STRLEN];
                if (!contains(cur, n, &add[i]) && !contains(add, i, &add[i]))
                        fprintf(f, "%s\n", pci_addr_format(&add[i], buf));
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        dirfd = root_mkdir_p(root, "etc/vfiod");
        if (dirfd < 0)
                return dirfd;
        return dir_write_atomic(dirfd, "assign.conf", out, size);
}
