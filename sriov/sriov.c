/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "bind.h"
#include "checkpoint.h"
#include "detail.h"
#include "device.h"
#include "macro.h"
#include "sriov.h"
#include "string-table.h"
#include "sysfs-pci.h"
#include "variant.h"

#define VF_LINK_TIMEOUT_MS 5000

static const char *const sriov_driver_table[_SRIOV_DRIVER_MAX] = {
        [SRIOV_DRIVER_VFIO] = "vfio-pci",
        [SRIOV_DRIVER_HOST] = "host",
};

DEFINE_STRING_TABLE_LOOKUP(sriov_driver, enum sriov_driver);

static int pf_dir(const struct root *root, const struct pci_addr *pf)
{
        char p[128], addr[PCI_ADDR_STRLEN];

        snprintf(p, sizeof(p), "sys/bus/pci/devices/%s", pci_addr_format(pf, addr));
        return root_openat(root, p, O_PATH | O_DIRECTORY);
}

static int pf_write(const struct root *root, const struct pci_addr *pf, const char *attr, int v)
{
        char p[160], addr[PCI_ADDR_STRLEN], val[16];

        snprintf(p, sizeof(p), "sys/bus/pci/devices/%s/%s", pci_addr_format(pf, addr), attr);
        snprintf(val, sizeof(val), "%d", v);
        return root_write_string(root, p, val);
}

int sriov_pf_read(const struct root *root, const struct pci_addr *pf, struct sriov_pf *ret)
{
        _cleanup_close_ int fd = pf_dir(root, pf);
        int64_t total, num, offset, stride, autoprobe;
        uint64_t vfdev;
        int r;

        if (fd < 0)
                return fd == -ENOENT ? -ENODEV : fd;
        r = dir_read_int(fd, "sriov_totalvfs", &total);
        if (r == -ENOENT)
                return -ENOTSUP;
        if (r >= 0)
                r = dir_read_int(fd, "sriov_numvfs", &num);
        if (r >= 0)
                r = dir_read_int(fd, "sriov_offset", &offset);
        if (r >= 0)
                r = dir_read_int(fd, "sriov_stride", &stride);
        if (r >= 0)
                r = dir_read_hex(fd, "sriov_vf_device", &vfdev);
        if (r >= 0)
                r = dir_read_int(fd, "sriov_drivers_autoprobe", &autoprobe);
        if (r < 0)
                return r;
        *ret = (struct sriov_pf){.addr = *pf,
                                 .totalvfs = (int)total,
                                 .numvfs = (int)num,
                                 .offset = (unsigned)offset,
                                 .stride = (unsigned)stride,
                                 .vf_device = (unsigned)vfdev,
                                 .autoprobe = autoprobe != 0};
        return 0;
}

int sriov_vf_address(const struct sriov_pf *pf, int index, struct pci_addr *ret)
{
        unsigned rid;

        if (index < 0 || index >= pf->totalvfs || pf->offset == 0)
                return -EINVAL;
        rid = (unsigned)pf->addr.bus << 8 | (unsigned)pf->addr.dev << 3 | pf->addr.fn;
        rid += pf->offset + (unsigned)index * pf->stride;
        if (rid > 0xffff)
                return -ERANGE;
        *ret = (struct pci_addr){.domain = pf->addr.domain,
                                 .bus = (uint8_t)(rid >> 8),
                                 .dev = (uint8_t)((rid >> 3) & 0x1f),
                                 .fn = (uint8_t)(rid & 7)};
        return 0;
}

/* ---- a PF on vfio-pci: enable_sriov and the VF token ---------------------------------- */

static bool vfio_pci_sriov_allowed(const struct root *root)
{
        _cleanup_free_ char *v = NULL;

        return root_read_line(root, "sys/module/vfio_pci/parameters/enable_sriov", &v) >= 0 &&
               (strcmp(v, "Y") == 0 || strcmp(v, "1") == 0);
}

static int vf_token_new(char **ret)
{
        uint8_t u[16];
        char *s;

        if (getrandom(u, sizeof(u), 0) != sizeof(u))
                return -EIO;
        u[6] = (u[6] & 0x0f) | 0x40; /* version 4: random */
        u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
        if (asprintf(&s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                     u[12], u[13], u[14], u[15]) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* Sets the VF token of a PF bound to vfio-pci: opens the PF through VFIO for the one
 * VFIO_DEVICE_FEATURE call. The kernel keeps the token while the PF stays bound. */
static int pf_set_vf_token(const struct root *root, const struct pci_addr *pf, const char *token,
                           char **ret_detail)
{
        _cleanup_(vfio_iommu_freep) struct vfio_iommu *m = NULL;
        _cleanup_(vfio_device_freep) struct vfio_device *d = NULL;
        /* struct vfio_device_feature followed by the 16 bytes of the UUID */
        uint32_t buf[(sizeof(struct vfio_device_feature) + 16) / sizeof(uint32_t)] = {0};
        struct vfio_device_feature *f = (struct vfio_device_feature *)buf;
        enum vfio_backend b;
        int r;

        f->argsz = sizeof(buf);
        f->flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN;
        for (int i = 0, k = 0; i < 16; i++, k += 2) {
                unsigned byte;
                if (token[k] == '-')
                        k++;
                if (sscanf(token + k, "%2x", &byte) != 1)
                        return -EINVAL;
                f->data[i] = (uint8_t)byte;
        }
        r = vfio_backend_detect(root, pf, &b, ret_detail);
        if (r >= 0)
                r = vfio_iommu_new(root, b, 0, &m, ret_detail);
        if (r >= 0)
                r = vfio_device_open(m, pf, &d, ret_detail);
        if (r < 0)
                return r;
        if (ioctl(vfio_device_fd(d), VFIO_DEVICE_FEATURE, f) < 0) {
                r = negative_errno();
                return detail_errno(ret_detail, r, "VFIO_DEVICE_FEATURE PCI_VF_TOKEN: %s",
                                    strerror(-r));
        }
        return 0;
}

/* ---- carving -------------------------------------------------------------------------- */

/* Whether a VF may go away: not used by the host, and its VFIO group not open (the
 * kernel allows one opener of a group, and refuses it while a cdev user holds the
 * device, so EBUSY here means a VMM has it). */
static int vf_check_free(const struct root *root, const struct topology *t,
                         const struct pci_device *vf, char **ret_detail)
{
        char p[64];
        int fd;

        if (vf->in_use) {
                return detail_errno(ret_detail, -EBUSY, "VF %s is in use by the host: %s", vf->name,
                                    vf->in_use);
        }
        if (vf->iommu_group < 0 || !driver_is_vfio(vf->driver))
                return 0;
        snprintf(p, sizeof(p), "dev/vfio/%d", vf->iommu_group);
        fd = root_openat(root, p, O_RDWR);
        if (fd == -EBUSY) {
                return detail_errno(ret_detail, -EBUSY,
                                    "VF %s is assigned: its VFIO group %d is open", vf->name,
                                    vf->iommu_group);
        }
        if (fd >= 0)
                close(fd);
        return 0;
}

static int wait_for_vfs(const struct root *root, const struct pci_addr *pf, int n)
{
        _cleanup_close_ int fd = pf_dir(root, pf);
        struct timespec step = {.tv_nsec = 10 * 1000 * 1000};

        if (fd < 0)
                return fd;
        for (int waited = 0; waited <= VF_LINK_TIMEOUT_MS; waited += 10) {
                int k = 0;
                for (; k < n; k++) {
                        char name[32];
                        snprintf(name, sizeof(name), "virtfn%d", k);
                        if (faccessat(fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                                break;
                }
                if (k == n)
                        return 0;
                nanosleep(&step, NULL);
        }
        return -ETIMEDOUT;
}

/* Removes every VF binding entry of the PF's current VFs from the journal: the VFs are
 * about to disappear with their count. */
static void forget_vf_bindings(struct journal *j, const struct sriov_pf *pf)
{
        for (int k = 0; k < pf->numvfs; k++) {
                struct pci_addr vf;
                if (sriov_vf_address(pf, k, &vf) >= 0)
                        (void)journal_remove(j, &vf);
        }
}

static int write_numvfs(const struct root *root, const struct pci_addr *pf, int n,
                        char **ret_detail)
{
        char addr[PCI_ADDR_STRLEN];
        struct sriov_pf now;
        int r = pf_write(root, pf, "sriov_numvfs", checkpoint_sriov_numvfs(n));

        pci_addr_format(pf, addr);
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: writing %d to sriov_numvfs failed: %s",
                                    addr, n, strerror(-r));
        }
        r = sriov_pf_read(root, pf, &now);
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: cannot read sriov_numvfs back: %s", addr,
                                    strerror(-r));
        }
        if (now.numvfs != n) {
                return detail_errno(
                        ret_detail, -EIO,
                        "%s: asked for %d VFs, the kernel enabled %d (a partial enable: the PF "
                        "driver set up fewer)",
                        addr, n, now.numvfs);
        }
        return n > 0 ? wait_for_vfs(root, pf, n) : 0;
}

static int restore_vf_settings(const struct topology *t, const struct pci_addr *pf,
                               const struct sriov_journal_entry *e)
{
        const struct pci_device *d = topology_find_device(t, pf);
        int r = 0;

        if (!d || d->n_netdevs == 0)
                return e->n_saved ? -ENODEV : 0;
        for (size_t i = 0; i < e->n_saved; i++) {
                int k = vf_netlink_set(d->netdevs[0].name, &e->saved[i], e->saved[i].have);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}

/* Back to `numvfs` VFs with `autoprobe`, whatever the current count. */
static int pf_reset_to(const struct root *root, struct journal *j, const struct pci_addr *pf,
                       int numvfs, bool autoprobe, char **ret_detail)
{
        struct sriov_pf now;
        int r = sriov_pf_read(root, pf, &now), current;

        if (r < 0)
                return r;
        current = now.numvfs;
        if (current != numvfs && current != 0) {
                /* The kernel changes a non-zero count only through 0. */
                forget_vf_bindings(j, &now);
                r = write_numvfs(root, pf, 0, ret_detail);
                if (r < 0)
                        return r;
                current = 0;
        }
        r = pf_write(root, pf, "sriov_drivers_autoprobe", autoprobe);
        if (r < 0) {
                return detail_errno(ret_detail, r, "cannot restore sriov_drivers_autoprobe: %s",
                                    strerror(-r));
        }
        return current != numvfs ? write_numvfs(root, pf, numvfs, ret_detail) : 0;
}

/* A change of a PF's VF count under way: the PF as it was read before the change and its
 * journal record, which together say how to put it back. */
struct carve {
        const struct root *root;
        const struct pci_addr *addr;
        const struct pci_device *pfd; /* in the topology; NULL when the scan has not seen it */
        char name[PCI_ADDR_STRLEN];
        struct sriov_pf pf;           /* before the change */
        struct sriov_journal_entry e; /* the PF's record, read or made by carve_record() */
        bool had_entry;               /* the record was there before this change */
        bool on_vfio;                 /* the PF is bound to vfio-pci */
};

static void carve_done(struct carve *c)
{
        sriov_journal_entry_done(&c->e);
}

/* Whether the PF may go to n VFs, reading what the later steps need; changes nothing. */
static int carve_check(const struct root *root, struct journal *j, const struct topology *t,
                       struct carve *c, int n, char **ret_detail)
{
        int r = sriov_pf_read(root, c->addr, &c->pf);

        if (r == -ENOTSUP || r == -ENODEV)
                return detail_errno(ret_detail, r, "%s: %s", c->name,
                                    r == -ENODEV ? "no such PCI device"
                                                 : "is not an SR-IOV physical function");
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot read its SR-IOV attributes: %s",
                                    c->name, strerror(-r));
        if (n < 0 || n > c->pf.totalvfs)
                return detail_errno(ret_detail, -EINVAL,
                                    "%s: %d VFs asked, the device supports 0 to %d", c->name, n,
                                    c->pf.totalvfs);
        /* Existing VFs that would go away must be free. */
        if (c->pfd && c->pf.numvfs != n)
                for (size_t i = 0; i < c->pfd->n_virtfn; i++) {
                        r = vf_check_free(root, t, &t->devices[c->pfd->virtfn[i]], ret_detail);
                        if (r < 0)
                                return r;
                }
        r = sriov_journal_get(j, c->addr, &c->e);
        c->had_entry = r >= 0;
        if (r == -EBADMSG)
                return detail_errno(ret_detail, r,
                                    "%s: its journal entry is corrupt; run 'vfioctl restore --all'",
                                    c->name);
        c->on_vfio = c->pfd && driver_is_vfio(c->pfd->driver);
        if (n > 0 && c->on_vfio && !vfio_pci_sriov_allowed(root))
                return detail_errno(ret_detail, -EPERM,
                                    "%s: is bound to vfio-pci, which enables VFs only with its "
                                    "enable_sriov parameter on: echo Y > "
                                    "/sys/module/vfio_pci/parameters/enable_sriov (or boot with "
                                    "vfio_pci.enable_sriov=1)",
                                    c->name);
        return 0;
}

/* n == 0: VF settings back, VFs gone, autoprobe as it was, the record dropped. */
static int carve_release(const struct root *root, struct journal *j, const struct topology *t,
                         struct carve *c, char **ret_detail)
{
        int r;

        if (c->had_entry)
                (void)restore_vf_settings(t, c->addr, &c->e);
        forget_vf_bindings(j, &c->pf);
        r = pf_reset_to(root, j, c->addr, 0,
                        c->had_entry ? c->e.original_autoprobe : c->pf.autoprobe, ret_detail);
        if (r >= 0 && c->had_entry)
                r = sriov_journal_remove(j, c->addr);
        return r;
}

/* Writes the PF's original count and autoprobe to the journal before anything changes
 * (kept from an earlier change when there is a record), with a new VF token for a PF on
 * vfio-pci that has none. */
static int carve_record(struct journal *j, struct carve *c, char **ret_detail)
{
        bool new_token = c->on_vfio && !c->e.vf_token;
        int r = 0;

        if (c->had_entry && !new_token)
                return 0;
        if (!c->had_entry)
                c->e = (struct sriov_journal_entry){.addr = *c->addr,
                                                    .original_numvfs = c->pf.numvfs,
                                                    .original_autoprobe = c->pf.autoprobe};
        if (new_token)
                r = vf_token_new(&c->e.vf_token);
        if (r >= 0)
                r = sriov_journal_put(j, &c->e);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: cannot write the journal: %s", c->name,
                                    strerror(-r));
        checkpoint(CHECKPOINT_SRIOV, c->root, c->addr);
        return 0;
}

/* Binds each new VF to its VFIO driver: vfio-pci, or the variant modules.alias names
 * for it (vfio/variant.h), loaded first when it is not there. The VFs exist only now, so
 * their modaliases are read now. */
static int carve_bind_vfs(const struct root *root, struct journal *j, const struct carve *c, int n,
                          char **ret_detail)
{
        _cleanup_(vfio_aliases_freep) struct vfio_aliases *al = NULL;
        int r = vfio_aliases_load(root, &al, ret_detail);

        for (int i = 0; r >= 0 && i < n; i++) {
                struct vfio_candidate cand = {0};
                struct pci_addr vf;

                r = sriov_vf_address(&c->pf, i, &vf);
                if (r >= 0)
                        r = vfio_candidate_find(root, al, &vf, &cand, ret_detail);
                if (r >= 0)
                        r = vfio_driver_need(root, cand.driver, cand.module, NULL, ret_detail);
                if (r >= 0)
                        r = vfio_device_bind(root, j, &vf, cand.driver, false, ret_detail);
                vfio_candidate_done(&cand);
                if (r >= 0)
                        checkpoint(CHECKPOINT_SRIOV, c->root, c->addr);
        }
        return r;
}

/* Makes the change: the VF token on a PF on vfio-pci, the count (through 0, autoprobe set
 * while there are no VFs), then each VF bound to vfio-pci when they are for VFIO. Stops at
 * the first failure and leaves undoing it to carve_rollback(). */
static int carve_apply(const struct root *root, struct journal *j, const struct topology *t,
                       struct carve *c, int n, enum sriov_driver driver, char **ret_detail)
{
        int r;

        if (c->on_vfio) {
                _cleanup_free_ char *why = NULL;
                r = pf_set_vf_token(root, c->addr, c->e.vf_token, &why);
                if (r < 0)
                        return detail_errno(
                                ret_detail, r, "%s: cannot set the VF token on the PF: %s%s",
                                c->name, detail_or_strerror(why, r),
                                r == -EBUSY ? " (another VFIO user has the PF open and owns its "
                                              "VF token; carve from there, or close it)"
                                            : "");
        }
        if (c->pf.numvfs != n) {
                if (c->pf.numvfs != 0) {
                        /* The VFs go away with their settings: put the originals back now,
                         * while the PF driver still holds them. */
                        if (c->e.n_saved) {
                                (void)restore_vf_settings(t, c->addr, &c->e);
                                sriov_journal_entry_done(&c->e);
                                (void)sriov_journal_put(j, &c->e);
                        }
                        forget_vf_bindings(j, &c->pf);
                        r = write_numvfs(root, c->addr, 0, ret_detail);
                        if (r < 0)
                                return r;
                        checkpoint(CHECKPOINT_SRIOV, c->root, c->addr);
                }
                /* Off before the VFs exist: the kernel then probes no driver for them, and
                 * only the driver_override set by the bind below lets vfio-pci take each. */
                r = pf_write(root, c->addr, "sriov_drivers_autoprobe", driver == SRIOV_DRIVER_HOST);
                if (r < 0)
                        return detail_errno(ret_detail, r,
                                            "%s: cannot set sriov_drivers_autoprobe: %s", c->name,
                                            strerror(-r));
                checkpoint(CHECKPOINT_SRIOV, c->root, c->addr);
                r = write_numvfs(root, c->addr, n, ret_detail);
                if (r < 0)
                        return r;
                checkpoint(CHECKPOINT_SRIOV, c->root, c->addr);
                c->pf.numvfs = n;
        }
        if (driver == SRIOV_DRIVER_VFIO)
                return carve_bind_vfs(root, j, c, n, ret_detail);
        return 0;
}

/* After a failed carve_apply(): the PF back to its recorded count and autoprobe, and the
 * record dropped. When that fails too the record stays for 'vfioctl restore', and the
 * detail tells both failures. */
static void carve_rollback(const struct root *root, struct journal *j, const struct carve *c,
                           char **ret_detail)
{
        _cleanup_free_ char *why = NULL;
        struct sriov_pf now;
        char *both = NULL;

        if (sriov_pf_read(root, c->addr, &now) >= 0)
                forget_vf_bindings(j, &now);
        if (pf_reset_to(root, j, c->addr, c->e.original_numvfs, c->e.original_autoprobe, &why) >=
            0) {
                (void)sriov_journal_remove(j, c->addr);
                return;
        }
        if (ret_detail && *ret_detail && why &&
            asprintf(&both, "%s; undoing failed too: %s (kept in the journal)", *ret_detail, why) >=
                    0) {
                free(*ret_detail);
                *ret_detail = both;
        }
}

int sriov_pf_set_numvfs(const struct root *root, struct journal *j, const struct topology *t,
                        const struct pci_addr *pfa, int n, enum sriov_driver driver,
                        char **ret_detail)
{
        _cleanup_(carve_done) struct carve c = {
                .root = root, .addr = pfa, .pfd = topology_find_device(t, pfa)};
        int r;

        pci_addr_format(pfa, c.name);
        r = carve_check(root, j, t, &c, n, ret_detail);
        if (r < 0)
                return r;
        if (n == 0)
                return carve_release(root, j, t, &c, ret_detail);
        r = carve_record(j, &c, ret_detail);
        if (r < 0)
                return r;
        r = carve_apply(root, j, t, &c, n, driver, ret_detail);
        if (r < 0)
                carve_rollback(root, j, &c, ret_detail);
        return r;
}

/* Copies the fields of src named in `fields` into dst. */
static void vf_config_merge(struct vf_config *dst, const struct vf_config *src, unsigned fields)
{
        if (fields & VF_FIELD_MAC)
                memcpy(dst->mac, src->mac, sizeof(dst->mac));
        if (fields & VF_FIELD_VLAN) {
                dst->vlan = src->vlan;
                dst->qos = src->qos;
        }
        if (fields & VF_FIELD_TRUST)
                dst->trust = src->trust;
        if (fields & VF_FIELD_SPOOFCHK)
                dst->spoofchk = src->spoofchk;
        if (fields & VF_FIELD_LINK_STATE)
                dst->link_state = src->link_state;
        if (fields & VF_FIELD_RATE) {
                dst->min_rate = src->min_rate;
                dst->max_rate = src->max_rate;
        }
        dst->have |= fields;
}

int sriov_vf_configure(const struct root *root, struct journal *j, const struct topology *t,
                       const struct pci_addr *pfa, const struct vf_config *want, unsigned fields,
                       char **ret_detail)
{
        const struct pci_device *pfd = topology_find_device(t, pfa);
        struct sriov_journal_entry e = {0};
        struct vf_config orig, *slot = NULL;
        char addr[PCI_ADDR_STRLEN];
        unsigned added;
        bool had;
        int r;

        pci_addr_format(pfa, addr);
        if (!pfd || pfd->sriov_totalvfs < 0) {
                return detail_errno(ret_detail, pfd ? -ENOTSUP : -ENODEV, "%s: %s", addr,
                                    pfd ? "is not an SR-IOV physical function"
                                        : "no such PCI device");
        }
        if (want->vf < 0 || want->vf >= pfd->sriov_numvfs) {
                return detail_errno(ret_detail, -EINVAL, "%s: VF %d does not exist (%d enabled)",
                                    addr, want->vf, pfd->sriov_numvfs);
        }
        if (pfd->n_netdevs == 0) {
                return detail_errno(ret_detail, -ENOTSUP,
                                    "%s: has no network interface to configure VFs through", addr);
        }
        r = vf_netlink_get(pfd->netdevs[0].name, want->vf, &orig);
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: cannot read VF %d of %s: %s", addr,
                                    want->vf, pfd->netdevs[0].name, strerror(-r));
        }
        r = sriov_journal_get(j, pfa, &e);
        had = r >= 0;
        if (r == -ENOENT) {
                struct sriov_pf pf;
                r = sriov_pf_read(root, pfa, &pf);
                e = (struct sriov_journal_entry){.addr = *pfa,
                                                 .original_numvfs = pf.numvfs,
                                                 .original_autoprobe = pf.autoprobe};
        }
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: cannot read the journal: %s", addr,
                                    strerror(-r));
        }
        /* The journal keeps, per VF, the original value of each field vfiod changed, so
         * a release writes back exactly those: a field the driver only reports (igb reports a
         * link state it cannot set) is never written. A field already saved keeps its first
         * original; the others are taken now, before this change. */
        for (size_t i = 0; i < e.n_saved; i++)
                if (e.saved[i].vf == want->vf)
                        slot = &e.saved[i];
        added = orig.have & fields & ~(slot ? slot->have : 0u);
        if (added) {
                if (!slot) {
                        struct vf_config *ns = realloc(e.saved, (e.n_saved + 1) * sizeof(*ns));
                        if (!ns) {
                                sriov_journal_entry_done(&e);
                                return -ENOMEM;
                        }
                        e.saved = ns;
                        slot = &e.saved[e.n_saved++];
                        *slot = (struct vf_config){.vf = want->vf};
                }
                vf_config_merge(slot, &orig, added);
                r = sriov_journal_put(j, &e);
                if (r < 0) {
                        detail_errno(ret_detail, r, "%s: cannot write the journal: %s", addr,
                                     strerror(-r));
                        sriov_journal_entry_done(&e);
                        return r;
                }
        }

        r = vf_netlink_set(pfd->netdevs[0].name, want, fields);
        if (r < 0) {
                detail_errno(ret_detail, r, "%s: %s refused the VF %d settings: %s%s", addr,
                             pfd->netdevs[0].name, want->vf, strerror(-r),
                             r == -EOPNOTSUPP ? " (the driver does not implement one of them)"
                                              : "");
                /* Put back whatever part was applied before the refusal; the fields this call
                 * added to the journal are original again, so they leave it. */
                (void)vf_netlink_set(pfd->netdevs[0].name, &orig, orig.have & fields);
                if (added) {
                        slot->have &= ~added;
                        if (slot->have == 0)
                                *slot = e.saved[--e.n_saved];
                        if (!had && e.n_saved == 0)
                                (void)sriov_journal_remove(j, pfa);
                        else
                                (void)sriov_journal_put(j, &e);
                }
        }
        sriov_journal_entry_done(&e);
        return r;
}

int sriov_pf_restore(const struct root *root, struct journal *j, const struct pci_addr *pfa,
                     char **ret_detail)
{
        _cleanup_(topology_freep) struct topology *t = NULL;
        struct sriov_journal_entry e = {0};
        char addr[PCI_ADDR_STRLEN];
        int r = sriov_journal_get(j, pfa, &e);

        pci_addr_format(pfa, addr);
        if (r == -EBADMSG) {
                /* Unknown original: leave VFs as they are, drop the entry, say so. */
                (void)sriov_journal_remove(j, pfa);
                return detail_errno(ret_detail, r,
                                    "%s: SR-IOV journal entry is corrupt; VF count left as it is",
                                    addr);
        }
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: cannot read the journal: %s", addr,
                                    strerror(-r));
        }
        if (topology_scan(root, TOPOLOGY_SCAN_NO_NAMES, &t) >= 0)
                (void)restore_vf_settings(t, pfa, &e);
        r = pf_reset_to(root, j, pfa, e.original_numvfs, e.original_autoprobe, ret_detail);
        if (r == -ENODEV) {
                (void)sriov_journal_remove(j, pfa);
                detail_errno(ret_detail, r, "%s: the device is gone; journal entry dropped", addr);
        } else if (r >= 0)
                r = sriov_journal_remove(j, pfa);
        sriov_journal_entry_done(&e);
        return r;
}

int sriov_vf_release(struct journal *j, const struct topology *t, const struct pci_addr *pfa,
                     int vf, char **ret_detail)
{
        const struct pci_device *pfd = topology_find_device(t, pfa);
        struct sriov_journal_entry e = {0};
        char addr[PCI_ADDR_STRLEN];
        int r = sriov_journal_get(j, pfa, &e);

        pci_addr_format(pfa, addr);
        if (r < 0) {
                return detail_errno(ret_detail, r, "%s: %s", addr,
                                    r == -ENOENT ? "no saved VF settings in the journal"
                                                 : strerror(-r));
        }
        for (size_t i = 0; i < e.n_saved; i++) {
                if (e.saved[i].vf != vf)
                        continue;
                if (!pfd || pfd->n_netdevs == 0) {
                        r = detail_errno(ret_detail, -ENODEV, "%s: has no network interface now",
                                         addr);
                        break;
                }
                r = vf_netlink_set(pfd->netdevs[0].name, &e.saved[i], e.saved[i].have);
                if (r < 0) {
                        detail_errno(ret_detail, r, "%s: restoring VF %d through %s failed: %s",
                                     addr, vf, pfd->netdevs[0].name, strerror(-r));
                        break;
                }
                e.saved[i] = e.saved[--e.n_saved];
                r = sriov_journal_put(j, &e);
                sriov_journal_entry_done(&e);
                return r;
        }
        if (r >= 0) {
                r = detail_errno(ret_detail, -ENOENT, "%s: no saved settings for VF %d", addr, vf);
        }
        sriov_journal_entry_done(&e);
        return r;
}
