/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "card.h"
#include "fd-util.h"
#include "macro.h"

/* The most a sysfs rom file returns is the ROM BAR's size; 16 MiB is more than any. */
#define ROM_MAX               (16u << 20)
#define ROM_RESOURCE          6
#define IORESOURCE_ROM_SHADOW (1u << 1)
#define IORESOURCE_IO         0x100u

size_t topology_card_functions(const struct topology *t, const struct pci_device *d, size_t *idx,
                               size_t max)
{
        size_t n = 0;

        /* t->devices is in address order, so the slot's functions come out in order. A
         * VF is a card of its own: VFs of one PF share slots without being one device. */
        for (size_t i = 0; i < t->n_devices; i++) {
                const struct pci_device *f = &t->devices[i];
                const struct pci_addr *a = &f->addr;
                if (f != d && (d->physfn >= 0 || f->physfn >= 0))
                        continue;
                if (a->domain != d->addr.domain || a->bus != d->addr.bus || a->dev != d->addr.dev)
                        continue;
                if (n < max)
                        idx[n] = i;
                n++;
        }
        return n;
}

/* The device's sysfs resource file, read once: start, end and flags of each line
 * (the six BARs, then the ROM), zero where a line is missing or cannot be parsed. */
struct resources {
        uint64_t start, end, flags;
};

static int read_resources(const struct root *r, const struct pci_device *d,
                          struct resources res[ROM_RESOURCE + 1])
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        const char *line;
        int q;

        memset(res, 0, sizeof(*res) * (ROM_RESOURCE + 1));
        if (asprintf(&path, "%s/resource", d->sysfs_path) < 0)
                return -ENOMEM;
        q = root_read_file(r, path, 4096, &text, NULL);
        if (q < 0)
                return q;
        line = text;
        for (int k = 0; k <= ROM_RESOURCE && line; k++) {
                struct resources *e = &res[k];
                if (sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64, &e->start, &e->end,
                           &e->flags) != 3)
                        *e = (struct resources){0};
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return 0;
}

static uint16_t le16(const uint8_t *p)
{
        return (uint16_t)(p[0] | p[1] << 8);
}

const char *pci_rom_code_type_to_string(uint8_t t)
{
        switch (t) {
        case 0:
                return "x86 BIOS";
        case 1:
                return "Open Firmware";
        case 2:
                return "PA-RISC";
        case 3:
                return "UEFI";
        default:
                return "unknown";
        }
}

void pci_rom_parse(const uint8_t *p, size_t n, const struct pci_device *d, struct pci_rom *ret)
{
        size_t off;

        ret->bytes = n;
        ret->signature = n >= 0x1a && p[0] == 0x55 && p[1] == 0xaa;
        if (!ret->signature) {
                snprintf(ret->warning, sizeof(ret->warning),
                         "no 0x55aa signature in the %zu bytes read: the ROM is blank or not "
                         "decoded; a guest's firmware needs a romfile for this device",
                         n);
                return;
        }
        off = le16(p + 0x18);
        ret->pcir = off + 0x16 <= n && memcmp(p + off, "PCIR", 4) == 0;
        if (!ret->pcir) {
                snprintf(ret->warning, sizeof(ret->warning),
                         "no PCI data structure (PCIR) at offset 0x%zx: the ROM is damaged", off);
                return;
        }
        ret->pcir_vendor = le16(p + off + 4);
        ret->pcir_device = le16(p + off + 6);
        ret->ids_match =
                d->have_ids && ret->pcir_vendor == d->vendor && ret->pcir_device == d->device;
        ret->image_size = (uint32_t)le16(p + off + 0x10) * 512;
        ret->code_type = p[off + 0x14];
        ret->last_image = p[off + 0x15] & 0x80;
        if (d->have_ids && !ret->ids_match)
                snprintf(ret->warning, sizeof(ret->warning),
                         "the ROM's PCI data structure names %04x:%04x, not the device's "
                         "%04x:%04x",
                         ret->pcir_vendor, ret->pcir_device, d->vendor, d->device);
        else if (ret->shadow)
                snprintf(ret->warning, sizeof(ret->warning),
                         "the kernel reads the firmware's shadow copy at 0x%" PRIx64
                         ", which the firmware may have changed: a guest's firmware may need "
                         "the card's own ROM as a romfile",
                         ret->start);
}

/* Reads the ROM through sysfs: enabled for the read, disabled after. */
static int read_rom(const struct root *r, const struct pci_device *d, struct pci_rom *ret)
{
        _cleanup_free_ char *path = NULL, *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;
        int q;

        if (asprintf(&path, "%s/rom", d->sysfs_path) < 0)
                return -ENOMEM;
        q = root_write_string(r, path, "1");
        if (q < 0)
                return q;
        fd = root_openat(r, path, O_RDONLY | O_CLOEXEC);
        q = fd < 0 ? fd : fd_read_all(fd, ROM_MAX, &buf, &n);
        (void)root_write_string(r, path, "0");
        if (q == -ENOMEM)
                return q;
        if (q < 0) {
                ret->read_errno = -q;
                return 0;
        }
        ret->read = true;
        pci_rom_parse((const uint8_t *)buf, n, d, ret);
        return 0;
}

int pci_rom_inspect(const struct root *r, const struct pci_device *d, bool content,
                    struct pci_rom *ret)
{
        struct resources res[ROM_RESOURCE + 1];
        const struct resources *rom = &res[ROM_RESOURCE];
        int q;

        *ret = (struct pci_rom){0};
        q = read_resources(r, d, res);
        if (q == -ENOMEM)
                return q;
        if (q < 0 || rom->end <= rom->start)
                return 0;
        ret->present = true;
        ret->start = rom->start;
        ret->bar_size = rom->end - rom->start + 1;
        ret->shadow = rom->flags & IORESOURCE_ROM_SHADOW;
        if (!content) {
                ret->skipped = "the daemon does not read ROMs (vfioctl show does)";
                return 0;
        }
        if (d->driver && driver_is_vfio(d->driver)) {
                ret->skipped = "on a VFIO driver: its holder may be using the ROM BAR";
                return 0;
        }
        q = read_rom(r, d, ret);
        if (q == -ENOMEM)
                return q;
        if (q < 0)
                ret->read_errno = -q;
        if (ret->read_errno)
                snprintf(ret->warning, sizeof(ret->warning),
                         "the ROM could not be read (%s): a guest's firmware that runs it may "
                         "hang; give the guest a romfile, or no ROM (QEMU's rombar=0)",
                         strerror(ret->read_errno));
        return 0;
}

size_t pci_rebar_list(const struct root *r, const struct pci_device *d, struct pci_rebar *ret)
{
        struct resources res[ROM_RESOURCE + 1];
        bool have_res = false;
        size_t n = 0;

        for (int bar = 0; bar < 6; bar++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                uint64_t sizes;
                if (asprintf(&path, "%s/resource%d_resize", d->sysfs_path, bar) < 0)
                        break;
                if (root_read_line(r, path, &text) < 0 || sscanf(text, "%" SCNx64, &sizes) != 1)
                        continue;
                /* Only a device with a resizable BAR needs its resource file. */
                if (!have_res && read_resources(r, d, res) < 0)
                        memset(res, 0, sizeof(res));
                have_res = true;
                ret[n] = (struct pci_rebar){.bar = bar, .sizes = sizes};
                if (res[bar].end > res[bar].start)
                        ret[n].current = res[bar].end - res[bar].start + 1;
                n++;
        }
        return n;
}

static bool is_framebuffer(const char *name)
{
        static const char *const fbs[] = {
                "efifb", "vesafb", "simplefb", "simpledrm", "simple-framebuffer", "BOOTFB"};

        for (size_t i = 0; i < ELEMENTSOF(fbs); i++)
                if (strncmp(name, fbs[i], strlen(fbs[i])) == 0)
                        return true;
        return false;
}

int pci_framebuffers_in(const char *iomem, const uint64_t bars[6][2], struct pci_framebuffer *ret,
                        size_t max, size_t *ret_n)
{
        bool any_address = false;
        size_t n = 0;

        for (const char *line = iomem; line && *line;) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);
                char buf[160], *name;
                uint64_t start, end;

                if (len < sizeof(buf)) {
                        memcpy(buf, line, len);
                        buf[len] = '\0';
                        name = strstr(buf, " : ");
                        if (name && sscanf(buf, " %" SCNx64 "-%" SCNx64, &start, &end) == 2) {
                                name += 3;
                                any_address |= end != 0;
                                for (int b = 0; b < 6 && is_framebuffer(name); b++) {
                                        if (bars[b][1] <= bars[b][0] || start < bars[b][0] ||
                                            end > bars[b][1])
                                                continue;
                                        if (n < max) {
                                                ret[n] = (struct pci_framebuffer){
                                                        .start = start, .end = end, .bar = b};
                                                snprintf(ret[n].name, sizeof(ret[n].name), "%s",
                                                         name);
                                        }
                                        n++;
                                        break;
                                }
                        }
                }
                line = nl ? nl + 1 : NULL;
        }
        if (!any_address)
                return -EPERM;
        *ret_n = n;
        return 0;
}

int pci_framebuffers(const struct root *r, const struct pci_device *d, struct pci_framebuffer *ret,
                     size_t max, size_t *ret_n)
{
        _cleanup_free_ char *iomem = NULL;
        struct resources res[ROM_RESOURCE + 1];
        uint64_t bars[6][2] = {{0}};
        int q;

        *ret_n = 0;
        q = read_resources(r, d, res);
        if (q == -ENOMEM)
                return q;
        for (int b = 0; q >= 0 && b < 6; b++)
                /* I/O port BARs are not in /proc/iomem's address space. */
                if (!(res[b].flags & IORESOURCE_IO)) {
                        bars[b][0] = res[b].start;
                        bars[b][1] = res[b].end;
                }
        q = root_read_file(r, "proc/iomem", 1u << 20, &iomem, NULL);
        if (q < 0)
                return q;
        return pci_framebuffers_in(iomem, bars, ret, max, ret_n);
}

const char *pci_reset_hint(const struct pci_device *d)
{
        if (!d->have_ids)
                return NULL;
        /* AMD's discrete GPUs from Polaris to Navi 1x do not come back from a bus reset
         * or from their own (the "AMD reset bug"): a guest that restarts finds the GPU
         * hung. The out-of-tree vendor-reset module adds device-specific resets. */
        if (d->vendor == 0x1002 && (d->class >> 16) == 0x03)
                return "AMD GPUs up to Navi 1x often fail to come back from a reset (the 'AMD "
                       "reset bug'): a guest that reboots finds the GPU hung; the vendor-reset "
                       "module adds a device-specific reset for them";
        return NULL;
}
