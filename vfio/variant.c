/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detail.h"
#include "fd-util.h"
#include "modules.h"
#include "sysfs-pci.h"
#include "topology.h"
#include "variant.h"

/* Debian's modules.alias is about 1.5 MB; what is bigger than this is not one. */
#define MODULES_ALIAS_MAX (64u * 1024 * 1024)

struct vfio_alias {
        char *pattern; /* "vfio_pci:v000015B3d0000101Esv*sd*bc*sc*i*" */
        char *module;  /* "mlx5_vfio_pci" */
        unsigned wildcards, literals;
};

struct vfio_aliases {
        struct vfio_alias *v;
        size_t n;
        char *missing; /* why there are none to read ("no lib/modules/X/modules.alias"), or NULL */
};

struct vfio_aliases *vfio_aliases_free(struct vfio_aliases *al)
{
        if (!al)
                return NULL;
        for (size_t i = 0; i < al->n; i++) {
                free(al->v[i].pattern);
                free(al->v[i].module);
        }
        free(al->v);
        free(al->missing);
        free(al);
        return NULL;
}

void vfio_candidate_done(struct vfio_candidate *c)
{
        free(c->driver);
        free(c->module);
        free(c->alias);
        free(c->reason);
        *c = (struct vfio_candidate){0};
}

/* How specific a pattern is: each '*', '?' or bracket expression is one wildcard; every
 * other character is a literal one. */
static void pattern_weigh(struct vfio_alias *a)
{
        for (const char *p = a->pattern; *p; p++) {
                if (*p == '*' || *p == '?')
                        a->wildcards++;
                else if (*p == '[' && strchr(p + 2, ']')) {
                        a->wildcards++;
                        p = strchr(p + 2, ']');
                } else {
                        if (*p == '\\' && p[1])
                                p++;
                        a->literals++;
                }
        }
}

static bool module_name_is_plausible(const char *m)
{
        size_t n = strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
        return n > 0 && n < 256 && m[n] == '\0';
}

/* Takes one "alias vfio_pci:PATTERN MODULE" line (cut at its end); others are not ours. */
static int aliases_add_line(struct vfio_aliases *al, char *line)
{
        char *save = NULL, *word = strtok_r(line, " \t", &save);
        char *pattern = strtok_r(NULL, " \t", &save), *module = strtok_r(NULL, " \t", &save);
        struct vfio_alias *v;

        if (!word || strcmp(word, "alias") != 0 || !pattern || !module ||
            strncmp(pattern, "vfio_pci:", 9) != 0 || !module_name_is_plausible(module))
                return 0;
        /* vfio_pci itself may list a catch-all alias of this form (newer kernels mark
         * its id table override-only): that is the generic driver, never a variant. */
        if (strcmp(module, "vfio_pci") == 0)
                return 0;
        v = reallocarray(al->v, al->n + 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        al->v = v;
        v = &al->v[al->n];
        *v = (struct vfio_alias){.pattern = strdup(pattern), .module = strdup(module)};
        if (!v->pattern || !v->module) {
                free(v->pattern);
                free(v->module);
                return -ENOMEM;
        }
        pattern_weigh(v);
        al->n++;
        return 0;
}

/* The vfio_pci lines of a modules.alias. A handful of its tens of thousands of lines are
 * vfio_pci's (depmod writes them "alias PATTERN MODULE", one space each): the file is
 * mapped, not copied, and memmem() finds them, which keeps this cheap enough for every
 * bind; reading and cutting every line cost milliseconds on a real host. */
static int aliases_read(const struct root *root, const char *path, struct vfio_aliases *al)
{
        static const char key[] = "alias vfio_pci:";
        _cleanup_close_ int fd = root_openat(root, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        const char *text, *p, *end;
        struct stat st;
        int r = 0;

        if (fd < 0)
                return fd;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t)st.st_size > MODULES_ALIAS_MAX)
                return -EFBIG;
        if (st.st_size == 0)
                return 0;
        text = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (text == MAP_FAILED)
                return -errno;
        end = text + st.st_size;
        for (p = text; r >= 0 && p < end;) {
                const char *hit = memmem(p, (size_t)(end - p), key, sizeof(key) - 1), *eol;
                char *line;

                if (!hit)
                        break;
                eol = memchr(hit, '\n', (size_t)(end - hit));
                if (!eol)
                        eol = end;
                if (hit == text || hit[-1] == '\n') {
                        line = strndup(hit, (size_t)(eol - hit));
                        r = line ? aliases_add_line(al, line) : -ENOMEM;
                        free(line);
                }
                p = eol < end ? eol + 1 : end;
        }
        munmap((void *)text, (size_t)st.st_size);
        return r;
}

int vfio_aliases_load(const struct root *root, struct vfio_aliases **ret, char **ret_detail)
{
        struct vfio_aliases *al = calloc(1, sizeof(*al));
        _cleanup_free_ char *release = NULL, *path = NULL;
        int r;

        if (!al)
                return -ENOMEM;
        r = root_kernel_release(root, &release);
        if (r < 0) {
                vfio_aliases_free(al);
                if (r == -ENOMEM)
                        return r;
                /* Without a release there is no modules directory to look in. */
                if (!(al = calloc(1, sizeof(*al))) ||
                    asprintf(&al->missing,
                             "the kernel release is unknown (/proc/sys/kernel/"
                             "osrelease: %s)",
                             strerror(-r)) < 0) {
                        vfio_aliases_free(al);
                        return -ENOMEM;
                }
                *ret = al;
                return 0;
        }
        if (asprintf(&path, "lib/modules/%s/modules.alias", release) < 0) {
                vfio_aliases_free(al);
                return -ENOMEM;
        }
        r = aliases_read(root, path, al);
        if (r == -ENOENT) {
                if (asprintf(&al->missing, "no /%s", path) < 0) {
                        vfio_aliases_free(al);
                        return -ENOMEM;
                }
                *ret = al;
                return 0;
        }
        if (r < 0) {
                vfio_aliases_free(al);
                return r == -ENOMEM ? r
                                    : detail_errno(ret_detail, r, "cannot read /%s: %s", path,
                                                   strerror(-r));
        }
        *ret = al;
        return 0;
}

/* Whether a beats b as the choice for a device both match. libvirt (since 10.0, in
 * virPCIDeviceFindBestVFIOVariant()) decides so: of all vfio_pci aliases that match the
 * modalias, the one with the fewest wildcard fields wins, and of equals the one found
 * first in modules.alias. Kernel-made PCI aliases have one '*' per wildcard field, so
 * counting '*' is counting fields. Hand-written patterns may carry literal prefixes
 * ("d00001*"), hence the second key here: of equal wildcards, more literal characters
 * say more about the device. */
static bool alias_beats(const struct vfio_alias *a, const struct vfio_alias *b)
{
        if (a->wildcards != b->wildcards)
                return a->wildcards < b->wildcards;
        return a->literals > b->literals;
}

static int candidate_plain(struct vfio_candidate *ret, const char *why)
{
        *ret = (struct vfio_candidate){.driver = strdup(VFIO_PCI_DRIVER),
                                       .module = strdup("vfio_pci"),
                                       .reason = strdup(why)};
        if (!ret->driver || !ret->module || !ret->reason) {
                vfio_candidate_done(ret);
                return -ENOMEM;
        }
        return 0;
}

int vfio_candidate_match(const struct root *root, const struct vfio_aliases *al,
                         const char *modalias, struct vfio_candidate *ret)
{
        _cleanup_free_ char *subject = NULL;
        const struct vfio_alias *best = NULL;
        struct vfio_candidate c = {0};
        size_t n = 0;

        if (strncmp(modalias, "pci:", 4) != 0)
                return -EBADMSG;
        if (asprintf(&subject, "vfio_pci:%s", modalias + 4) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < al->n; i++) {
                if (fnmatch(al->v[i].pattern, subject, 0) != 0)
                        continue;
                n++;
                if (!best || alias_beats(&al->v[i], best))
                        best = &al->v[i];
        }
        if (!best)
                return candidate_plain(ret, al->missing ? al->missing
                                                        : "no vfio_pci alias of a variant "
                                                          "driver matches");
        c.n_matches = n;
        c.module = strdup(best->module);
        c.alias = strdup(best->pattern);
        /* A loaded module says which driver it registers; depmod's module name is the
         * driver's own for every variant in Linux (KBUILD_MODNAME) otherwise. */
        if (vfio_module_pci_driver(root, best->module, &c.driver) < 0)
                c.driver = strdup(best->module);
        if (n == 1)
                (void)asprintf(&c.reason, "modules.alias %s, the only variant alias that matches",
                               best->pattern);
        else
                (void)asprintf(&c.reason, "modules.alias %s, the most specific of %zu that match",
                               best->pattern, n);
        if (!c.module || !c.alias || !c.driver || !c.reason) {
                vfio_candidate_done(&c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int vfio_candidate_find(const struct root *root, const struct vfio_aliases *al,
                        const struct pci_addr *a, struct vfio_candidate *ret, char **ret_detail)
{
        _cleanup_(vfio_aliases_freep) struct vfio_aliases *own = NULL;
        _cleanup_free_ char *modalias = NULL;
        char addr[PCI_ADDR_STRLEN];
        int r;

        pci_addr_format(a, addr);
        r = pci_sysfs_get_modalias(root, a, &modalias);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its modalias: %s", addr,
                                    r == -ENODEV ? "the device is gone" : strerror(-r));
        if (!al) {
                r = vfio_aliases_load(root, &own, ret_detail);
                if (r < 0)
                        return r;
                al = own;
        }
        r = vfio_candidate_match(root, al, modalias, ret);
        if (r == -EBADMSG)
                return detail_errno(ret_detail, r, "%s: its modalias is not a PCI one: %s", addr,
                                    modalias);
        return r;
}

int vfio_candidate_named(const struct root *root, const char *driver, struct vfio_candidate *ret,
                         char **ret_detail)
{
        struct vfio_candidate c = {0};
        int r;

        if (!module_name_is_plausible(driver) || !driver_is_vfio(driver))
                return detail_errno(ret_detail, -EINVAL,
                                    "'%s' is not vfio-pci or a vfio-pci variant driver (such as "
                                    "mlx5_vfio_pci)",
                                    driver);
        c.driver = strdup(driver);
        c.reason = strdup("named with --driver");
        if (!c.driver || !c.reason) {
                vfio_candidate_done(&c);
                return -ENOMEM;
        }
        r = vfio_driver_module(root, driver, &c.module);
        if (r < 0) {
                vfio_candidate_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int vfio_candidate_describe(const struct root *root, const struct pci_device *d,
                            struct vfio_candidate *ret)
{
        _cleanup_free_ char *why = NULL;
        int r;

        *ret = (struct vfio_candidate){0};
        if (pci_device_is_bridge(d))
                return (ret->reason = strdup("a bridge stays with the host")) ? 0 : -ENOMEM;
        r = vfio_candidate_find(root, NULL, &d->addr, ret, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return (ret->reason = strdup(detail_or_strerror(why, r))) ? 0 : -ENOMEM;
        return 0;
}

static json_object *string_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

json_object *vfio_candidate_to_json(const struct vfio_candidate *c)
{
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "name", string_or_null(c->driver));
        json_object_object_add(o, "module", string_or_null(c->module));
        json_object_object_add(o, "alias", string_or_null(c->alias));
        json_object_object_add(o, "matching_aliases", json_object_new_int64((int64_t)c->n_matches));
        json_object_object_add(o, "reason", string_or_null(c->reason));
        return o;
}
