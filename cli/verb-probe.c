/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl probe: open a device bound to vfio-pci through a VFIO backend and prove DMA
 * remapping and interrupt delivery on it (a full self-test on QEMU's edu device); or
 * hand the two kernel handles to a command, as a VMM would receive them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "device.h"
#include "dma.h"
#include "interrupt-remap.h"
#include "iommu.h"
#include "irq.h"
#include "modules.h"
#include "probe.h"

#define PROBE_IRQ_RAISE    0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

/* The bad-input checks' IOVAs: clear of the DMA probe's (probe.h). */
#define IOVA_CHECKS 0x400000

#define IRQ_TIMEOUT_MS 2000
/* After an interrupt arrives, how long to watch for a spurious second one. */
#define IRQ_SETTLE_MS 50

struct probe {
        struct cli *c;
        FILE *out; /* text output: stdout, or stderr when a command owns stdout */
        char name[PCI_ADDR_STRLEN];
        json_object *doc, *checks, *warnings, *info;
        size_t n_checks, n_failed;
};

static void probe_done(struct probe *p)
{
        json_object_put(p->doc);
}

static json_object *jstr(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

static json_object *jhex(uint64_t v)
{
        char b[24];
        snprintf(b, sizeof(b), "0x%" PRIx64, v);
        return json_object_new_string(b);
}

static _printf_(4, 5) void check(struct probe *p, const char *id, bool ok, const char *fmt, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;
        json_object *e;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        p->n_checks++;
        p->n_failed += !ok;
        e = json_object_new_object();
        json_object_object_add(e, "id", json_object_new_string(id));
        json_object_object_add(e, "ok", json_object_new_boolean(ok));
        json_object_object_add(e, "detail", jstr(text));
        json_object_array_add(p->checks, e);
        if (!p->c->json)
                fprintf(p->out, "  %-4s %s: %s\n", ok ? "ok" : "FAIL", id, text ? text : "");
}

static _printf_(2, 3) void warn(struct probe *p, const char *fmt, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;

        const char *t;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        if (!text)
                return;
        /* The library shouts its warnings; one "warning:" is enough here. */
        t = strncmp(text, "WARNING: ", 9) == 0 ? text + 9 : text;
        json_object_array_add(p->warnings, json_object_new_string(t));
        fprintf(stderr, "vfioctl: warning: %s\n", t);
}

/* A fact about the device or the address space: a JSON member and a line of text. */
static _printf_(4, 5) void info(struct probe *p, const char *key, json_object *v, const char *fmt,
                                ...)
{
        va_list ap;

        json_object_object_add(p->info, key, v);
        if (p->c->json)
                return;
        fprintf(p->out, "  %s: ", key);
        va_start(ap, fmt);
        vfprintf(p->out, fmt, ap);
        va_end(ap);
        fputc('\n', p->out);
}

static int finish(struct probe *p, int exit_code)
{
        json_object_object_add(p->doc, "checks_run", json_object_new_int64((int64_t)p->n_checks));
        json_object_object_add(p->doc, "checks_failed",
                               json_object_new_int64((int64_t)p->n_failed));
        json_object_object_add(p->doc, "passed",
                               json_object_new_boolean(exit_code == 0 && p->n_failed == 0));
        cli_json_add_modules(p->c, p->doc);
        if (p->n_failed && exit_code == 0)
                exit_code = EXIT_FAILED;
        if (p->c->json) {
                if (print_json(p->doc, JSON_C_TO_STRING_PRETTY) == 0)
                        puts("");
                p->doc = NULL;
        } else if (exit_code == 0)
                fprintf(p->out, "%s: probe passed: %zu checks\n", p->name, p->n_checks);
        else if (p->n_checks)
                fprintf(p->out, "%s: probe FAILED: %zu of %zu checks failed\n", p->name,
                        p->n_failed, p->n_checks);
        return exit_code;
}

/* A failure that ends the probe: on stderr, and in the document as "error". */
static _printf_(3, 4) int fatal(struct probe *p, int exit_code, const char *fmt, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        fprintf(stderr, "vfioctl: probe: %s\n", text ? text : "out of memory");
        json_object_object_add(p->doc, "error", jstr(text));
        return finish(p, exit_code);
}

static void sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* "256M", "1G", "65536", "unlimited" -> bytes. */
static int parse_size(const char *s, rlim_t *ret)
{
        unsigned long long v;
        char *end;
        int shift = 0;

        if (strcmp(s, "unlimited") == 0 || strcmp(s, "infinity") == 0) {
                *ret = RLIM_INFINITY;
                return 0;
        }
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *s == '-')
                return -EINVAL;
        switch (*end) {
        case '\0':
                break;
        case 'K':
        case 'k':
                shift = 10;
                break;
        case 'M':
        case 'm':
                shift = 20;
                break;
        case 'G':
        case 'g':
                shift = 30;
                break;
        case 'T':
        case 't':
                shift = 40;
                break;
        default:
                return -EINVAL;
        }
        if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
                return -EINVAL;
        if (shift && v > (~0ull >> shift))
                return -ERANGE;
        *ret = (rlim_t)(v << shift);
        return 0;
}

static const char *size_text(rlim_t v, char buf[static 32])
{
        if (v == RLIM_INFINITY) {
                snprintf(buf, 32, "unlimited");
                return buf;
        }
        return dma_format_size(v, buf);
}

/* Sets this process's RLIMIT_MEMLOCK (inherited by what it executes). */
static int apply_memlock(struct probe *p, const char *value)
{
        struct rlimit rl;
        rlim_t want;
        char a[32];
        char q[300];

        if (parse_size(value, &want) < 0)
                return usage_error("probe: --memlock takes a size like 256M, 1G or unlimited, "
                                   "not '%s'",
                                   cli_quote(value, q));
        rl = (struct rlimit){want, want};
        if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
                /* Raising the hard limit needs CAP_SYS_RESOURCE: try the soft one alone. */
                struct rlimit cur;
                if (getrlimit(RLIMIT_MEMLOCK, &cur) < 0 || (want > cur.rlim_max)) {
                        fprintf(stderr,
                                "vfioctl: probe: cannot set RLIMIT_MEMLOCK to %s: %m (raising "
                                "it needs CAP_SYS_RESOURCE)\n",
                                size_text(want, a));
                        return EXIT_FAILED;
                }
                rl = (struct rlimit){want, cur.rlim_max};
                if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0) {
                        fprintf(stderr, "vfioctl: probe: cannot set RLIMIT_MEMLOCK to %s: %m\n",
                                size_text(want, a));
                        return EXIT_FAILED;
                }
        }
        json_object_object_add(p->doc, "memlock_set", json_object_new_string(size_text(want, a)));
        return 0;
}

/* Puts the two handles at fds 3 and 4 without close-on-exec, for a command to inherit.
 * Both move to high numbers first: either may sit at 3 or 4 now, and dup2() onto itself
 * would keep O_CLOEXEC. */
static int place_handles(int ifd, int dfd)
{
        _cleanup_close_ int hi = fcntl(ifd, F_DUPFD_CLOEXEC, 10);
        _cleanup_close_ int hd = fcntl(dfd, F_DUPFD_CLOEXEC, 10);

        if (hi < 0 || hd < 0)
                return negative_errno();
        if (dup2(hi, 3) < 0 || dup2(hd, 4) < 0)
                return negative_errno();
        return 0;
}

/* Opens the IOMMU handle (fd 3) and the device handle (fd 4) unconfigured, as a VMM
 * expects them, and executes argv. Returns only on failure. */
static int hand_over(struct probe *p, const struct pci_addr *a, enum vfio_backend b, unsigned flags,
                     char **argv)
{
        _cleanup_close_ int ifd = -EBADF, dfd = -EBADF;
        _cleanup_free_ char *why = NULL, *path = NULL;
        struct rlimit rl;
        char lim[32];
        bool per_process = false;
        int q;

        q = vfio_iommu_open_raw(p->c->root, b, flags, &ifd, &per_process, &why);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "%s", why ? why : strerror(-q));
        q = vfio_device_open_raw(p->c->root, a, b, &dfd, &path, &why);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "%s", why ? why : strerror(-q));

        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                fprintf(stderr,
                        "vfioctl: probe: note: %s runs with RLIMIT_MEMLOCK %s: the kernel "
                        "charges every page mapped for DMA (for a VMM, all of its guest RAM) "
                        "against it%s; raise it with --memlock SIZE if that is too small\n",
                        argv[0], size_text(rl.rlim_cur, lim),
                        b != VFIO_BACKEND_IOMMUFD ? ""
                        : per_process ? " (per process: IOMMU_OPTION_RLIMIT_MODE is set)"
                                      : " (summed over every process of its user: "
                                        "IOMMU_OPTION_RLIMIT_MODE could not be set)");
        fprintf(stderr, "vfioctl: probe: executing %s with fd 3 = /%s, fd 4 = /%s (%s)\n", argv[0],
                b == VFIO_BACKEND_IOMMUFD ? "dev/iommu" : "dev/vfio/vfio", path,
                vfio_backend_to_string(b));
        fflush(stdout);
        fflush(stderr);
        q = place_handles(ifd, dfd);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "cannot place the handles at fds 3 and 4: %s",
                             strerror(-q));
        execvp(argv[0], argv);
        return fatal(p, 127, "cannot execute %s: %m", argv[0]);
}

static int parse_fds(const char *s, int *ret_iommu, int *ret_device)
{
        int a, b, n = 0;

        if (!s || sscanf(s, "%d,%d%n", &a, &b, &n) != 2 || s[n] != '\0' || a < 0 || b < 0 || a == b)
                return -EINVAL;
        if (fcntl(a, F_GETFD) < 0 || fcntl(b, F_GETFD) < 0)
                return -EBADF;
        /* Inherited handles must not leak further into anything this process starts. */
        fcntl(a, F_SETFD, FD_CLOEXEC);
        fcntl(b, F_SETFD, FD_CLOEXEC);
        *ret_iommu = a;
        *ret_device = b;
        return 0;
}

static void report_ranges(struct probe *p, struct vfio_iommu *m)
{
        _cleanup_free_ char *why = NULL, *text = NULL;
        const struct iova_range *r;
        size_t n, len = 0;
        uint64_t page;
        json_object *a;
        FILE *f;

        if (vfio_dma_get_ranges(m, &r, &n, &page, &why) < 0) {
                check(p, "iommu.ranges", false, "%s", why);
                return;
        }
        a = json_object_new_array();
        f = open_memstream(&text, &len);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_new_object();
                json_object_object_add(e, "start", jhex(r[i].start));
                json_object_object_add(e, "last", jhex(r[i].last));
                json_object_array_add(a, e);
                if (f)
                        fprintf(f, "%s0x%" PRIx64 "-0x%" PRIx64, i ? ", " : "", r[i].start,
                                r[i].last);
        }
        if (f)
                fclose(f);
        json_object_object_add(p->info, "iommu_page_size", json_object_new_int64((int64_t)page));
        info(p, "iova_ranges", a, "%s (page size %" PRIu64 ")", n ? strna(text) : "none", page);
}

static const char *irq_index_name(unsigned i)
{
        static const char *const names[] = {"INTx", "MSI", "MSI-X", "error", "request"};
        return i < ELEMENTSOF(names) ? names[i] : "other";
}

static void report_device(struct probe *p, struct vfio_device *d)
{
        const struct vfio_device_info *di = vfio_device_get_info(d);
        _cleanup_free_ struct vfio_hot_reset_dep *deps = NULL;
        _cleanup_free_ char *why = NULL;
        json_object *irqs = json_object_new_array(), *o;
        struct vfio_region_info bar0;
        bool by_devid = false;
        size_t n = 0;
        int q;

        o = json_object_new_object();
        json_object_object_add(o, "regions", json_object_new_int64(di->num_regions));
        json_object_object_add(o, "irqs", json_object_new_int64(di->num_irqs));
        json_object_object_add(o, "reset",
                               json_object_new_boolean(di->flags & VFIO_DEVICE_FLAGS_RESET));
        info(p, "device_info", o, "%u regions, %u IRQ indexes, function reset %s", di->num_regions,
             di->num_irqs, (di->flags & VFIO_DEVICE_FLAGS_RESET) ? "available" : "unavailable");

        if (vfio_device_get_region_info(d, VFIO_PCI_BAR0_REGION_INDEX, &bar0, &why) >= 0) {
                o = json_object_new_object();
                json_object_object_add(o, "size", json_object_new_int64((int64_t)bar0.size));
                json_object_object_add(
                        o, "mmap",
                        json_object_new_boolean(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP));
                info(p, "bar0", o, "%" PRIu64 " bytes%s", (uint64_t)bar0.size,
                     (bar0.flags & VFIO_REGION_INFO_FLAG_MMAP) ? ", mmap" : "");
        }

        for (unsigned i = 0; i < di->num_irqs && i <= VFIO_PCI_MSIX_IRQ_INDEX; i++) {
                struct vfio_irq_info ii;
                if (vfio_device_get_irq_info(d, i, &ii, NULL) < 0)
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "index", json_object_new_string(irq_index_name(i)));
                json_object_object_add(o, "count", json_object_new_int64(ii.count));
                json_object_object_add(o, "eventfd",
                                       json_object_new_boolean(ii.flags & VFIO_IRQ_INFO_EVENTFD));
                json_object_object_add(o, "noresize",
                                       json_object_new_boolean(ii.flags & VFIO_IRQ_INFO_NORESIZE));
                json_object_array_add(irqs, o);
        }
        info(p, "irq_info", irqs, "%zu indexes (INTx, MSI, MSI-X)", json_object_array_length(irqs));

        q = vfio_device_get_hot_reset_info(d, &deps, &n, &by_devid, &why);
        o = json_object_new_object();
        if (q < 0) {
                json_object_object_add(o, "error", jstr(why ? why : strerror(-q)));
                info(p, "hot_reset", o, "%s", why ? why : strerror(-q));
        } else {
                json_object *a = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        char s[PCI_ADDR_STRLEN];
                        json_object_array_add(
                                a, json_object_new_string(pci_addr_format(&deps[i].addr, s)));
                }
                json_object_object_add(o, "by_devid", json_object_new_boolean(by_devid));
                json_object_object_add(o, "devices", a);
                info(p, "hot_reset", o, "a bus reset would reset %zu device%s", n,
                     n == 1 ? "" : "s");
        }

        q = vfio_device_ioctl_reset(d, &why);
        if (q == -ENOTTY)
                info(p, "reset", json_object_new_string("unavailable"), "%s", why);
        else
                check(p, "device.reset", q >= 0, "%s",
                      q >= 0 ? "VFIO_DEVICE_RESET succeeded" : why);
}

/* Waits for one interrupt on the vector and then watches for a second: the count. */
static uint64_t irq_count(struct irq_set *s, uint32_t vector)
{
        uint64_t n = 0, more = 0;

        if (irq_set_wait(s, vector, IRQ_TIMEOUT_MS, &n) < 0)
                return 0;
        if (n > 0) {
                sleep_ms(IRQ_SETTLE_MS);
                if (irq_set_wait(s, vector, 0, &more) == 0)
                        n += more;
        }
        return n;
}

static void *anon_page(size_t n)
{
        void *b = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return b == MAP_FAILED ? NULL : b;
}

static const char *msi_text(uint64_t n, char buf[static 64])
{
        snprintf(buf, 64, "the MSI eventfd fired %" PRIu64 " time%s", n, n == 1 ? "" : "s");
        return buf;
}

/* The DMA part of the edu test (the library's DMA fault probe, with interrupts): a round
 * trip through the device, then a write to an IOVA that was mapped and is no more. Each
 * step is a check of its own. */
static void edu_dma_test(struct probe *p, struct vfio_iommu *m, volatile void *bar,
                         struct irq_set *msi, const struct pci_addr *addr)
{
        _cleanup_(vfio_probe_result_done) struct vfio_probe_result res = {0};
        json_object *o = json_object_new_object(), *per;
        char t[64];
        bool untouched;

        vfio_probe_edu_dma(p->c->root, m, bar, irq_set_eventfd(msi, 0), addr, &res);
        if (res.stop == VFIO_PROBE_STOP_SETUP) {
                check(p, "dma.setup", false, "%s", strna(res.stop_detail));
                goto out;
        }
        check(p, "dma.map_user", res.stop != VFIO_PROBE_STOP_MAP_USER, "%s",
              res.stop == VFIO_PROBE_STOP_MAP_USER
                      ? strna(res.stop_detail)
                      : "4 KiB of anonymous memory mapped at IOVA 0x100000, device-readable");
        if (res.stop == VFIO_PROBE_STOP_MAP_USER)
                goto out;
        check(p, "dma.map_memfd", res.stop != VFIO_PROBE_STOP_MAP_MEMFD, "%s",
              res.stop == VFIO_PROBE_STOP_MAP_MEMFD
                      ? strna(res.stop_detail)
                      : "memfd page 1 mapped at IOVA 0x200000, device-writable");
        if (res.stop == VFIO_PROBE_STOP_MAP_MEMFD)
                goto out;

        check(p, "dma.to_device", res.to_device, "%s",
              res.to_device ? "edu read 4 KiB from IOVA 0x100000 into its buffer"
                            : "the DMA did not complete");
        check(p, "dma.to_device.msi", res.msi[0] == 1, "%s", msi_text(res.msi[0], t));
        check(p, "dma.to_ram", res.to_ram, "%s",
              res.to_ram ? "edu wrote its buffer to IOVA 0x200000" : "the DMA did not complete");
        check(p, "dma.to_ram.msi", res.msi[1] == 1, "%s", msi_text(res.msi[1], t));
        check(p, "dma.round_trip", res.round_trip, "%s",
              res.round_trip ? "the 4 KiB came back intact"
                             : "the data differs after the round trip");
        check(p, "dma.memfd_backing", res.memfd_backing, "%s",
              res.memfd_backing ? "the memfd holds the data at offset 4096"
                                : "the memfd does not hold the data");

        check(p, "dma.fault.setup", !res.fault_setup_error, "%s",
              res.fault_setup_error ? res.fault_setup_error
                                    : "IOVA 0x300000 mapped and unmapped again");
        untouched = res.fault_changed == 0;
        check(p, "dma.fault.untouched", untouched && res.fault_done, "%s",
              !res.fault_done ? "the DMA did not complete"
              : untouched     ? "a DMA to the unmapped IOVA 0x300000 left the memory untouched"
                              : "memory behind the unmapped IOVA was written");
        check(p, "dma.fault.msi", res.msi[2] == 1, "%s", msi_text(res.msi[2], t));
        if (res.kmsg)
                check(p, "dma.fault.logged", res.fault_line, "%s%s",
                      res.fault_line ? res.fault_line
                                     : "no IOMMU fault naming the device and IOVA 0x300000 in "
                                       "the kernel log, twice in 3 s",
                      res.fault_retried ? " (on a second try: the kernel rate-limits these)" : "");
        else
                warn(p, "cannot read the kernel log (/dev/kmsg): the IOMMU fault cannot be "
                        "confirmed here (look for it in dmesg)");

        json_object_object_add(o, "bytes", json_object_new_int64(VFIO_PROBE_BYTES));
        json_object_object_add(o, "iova_src", jhex(VFIO_PROBE_IOVA_SRC));
        json_object_object_add(o, "iova_dst", jhex(VFIO_PROBE_IOVA_DST));
        json_object_object_add(o, "iova_fault", jhex(VFIO_PROBE_IOVA_FAULT));
        per = json_object_new_array();
        for (size_t i = 0; i < ELEMENTSOF(res.msi); i++)
                json_object_array_add(per, json_object_new_int64((int64_t)res.msi[i]));
        json_object_object_add(o, "msi_per_dma", per);
        json_object_object_add(o, "fault_untouched", json_object_new_boolean(untouched));
        json_object_object_add(o, "fault_message", jstr(res.fault_line));
out:
        json_object_object_add(p->doc, "dma", o);
}

static const char *errno_name(int e)
{
        const char *n = e ? strerrorname_np(e) : "0";
        return n ? n : "?";
}

/* One refused request: the expected errno, and a message. */
static void expect(struct probe *p, json_object *a, const char *id, int got, int want,
                   const char *why)
{
        json_object *e = json_object_new_object();

        json_object_object_add(e, "case", json_object_new_string(id));
        json_object_object_add(e, "errno", json_object_new_string(errno_name(-got)));
        json_object_object_add(e, "message", jstr(why));
        json_object_array_add(a, e);
        check(p, id, got == want, "%s%s%s%s (expected %s)", got ? "-" : "", errno_name(-got),
              why && got ? ": " : "", why && got ? why : "", errno_name(-want));
}

/* Bad requests are refused with the right errno and a message, and leave nothing
 * behind: the same range maps again afterwards. */
static void dma_input_test(struct probe *p, struct vfio_iommu *m)
{
        _cleanup_free_ char *why = NULL;
        const struct iova_range *r;
        json_object *a = json_object_new_array();
        uint64_t pg = 4096, base = IOVA_CHECKS, outside = 0;
        uint8_t *buf;
        size_t n = 0;
        int q;

        json_object_object_add(p->doc, "bad_input", a);
        if (vfio_dma_get_ranges(m, &r, &n, &pg, &why) < 0 || !(buf = anon_page(8 * pg))) {
                check(p, "input.setup", false, "%s", why ? why : "out of memory");
                return;
        }
#define TRY(id, call, want)                     \
        do {                                    \
                free(why);                      \
                why = NULL;                     \
                q = (call);                     \
                expect(p, a, id, q, want, why); \
        } while (0)
        TRY("input.map", vfio_dma_map(m, buf, base, 2 * pg, VFIO_DMA_READ_WRITE, &why), 0);
        TRY("input.overlap",
            vfio_dma_map(m, buf + 2 * pg, base + pg, 2 * pg, VFIO_DMA_READ_WRITE, &why), -EEXIST);
        TRY("input.unaligned_iova",
            vfio_dma_map(m, buf + 4 * pg, base + 8 * pg + pg / 2, pg, VFIO_DMA_READ_WRITE, &why),
            -EINVAL);
        TRY("input.unaligned_size",
            vfio_dma_map(m, buf + 4 * pg, base + 8 * pg, pg / 2, VFIO_DMA_READ_WRITE, &why),
            -EINVAL);
        /* Outside: the first hole between ranges (the MSI window on x86), or past the
         * end of the last range. */
        if (n > 1)
                outside = r[0].last + 1;
        else if (n == 1 && r[0].last < UINT64_MAX - pg)
                outside = (r[0].last + 1) & ~(pg - 1);
        if (n > 0 && outside)
                TRY("input.outside_ranges",
                    vfio_dma_map(m, buf + 4 * pg, outside, pg, VFIO_DMA_READ_WRITE, &why), -ERANGE);
        else
                check(p, "input.outside_ranges", true,
                      "skipped: the IOVA ranges leave no address outside them");
        TRY("input.unmap_never_mapped", vfio_dma_unmap(m, base + 0x100000, pg, &why), -ENOENT);
        TRY("input.unmap_split", vfio_dma_unmap(m, base, pg, &why), -EINVAL);
        TRY("input.unmap", vfio_dma_unmap(m, base, 2 * pg, &why), 0);
        /* Had a refused request left a mapping in the kernel, this would be -EEXIST. */
        TRY("input.no_leak", vfio_dma_map(m, buf, base, 2 * pg, VFIO_DMA_READ_WRITE, &why), 0);
        TRY("input.no_leak_unmap", vfio_dma_unmap(m, base, 2 * pg, &why), 0);
#undef TRY
        check(p, "input.table_empty", vfio_dma_table(m)->n == 0,
              "%zu mapping%s left in the handle's table", vfio_dma_table(m)->n,
              vfio_dma_table(m)->n == 1 ? "" : "s");
        munmap(buf, 8 * pg);
}

/* edu: BAR0 registers, MSI without DMA, DMA when there is an IOMMU, then INTx. */
static void edu_test(struct probe *p, struct vfio_device *d, struct vfio_iommu *m,
                     const struct pci_addr *addr, bool noiommu)
{
        _cleanup_(irq_set_freep) struct irq_set *msi = NULL, *intx = NULL;
        _cleanup_free_ char *why = NULL;
        volatile void *bar = NULL;
        uint64_t bar_size = 0, n;
        uint32_t id, live;
        int q;

        q = vfio_device_map_region(d, VFIO_PCI_BAR0_REGION_INDEX, &bar, &bar_size, &why);
        check(p, "edu.bar0_mmap", q >= 0 && bar_size >= EDU_BAR_MIN, "%s",
              q < 0 ? why : "BAR0 mapped into the process");
        if (q < 0 || bar_size < EDU_BAR_MIN)
                return;
        q = vfio_device_enable_command(d, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, &why);
        check(p, "edu.bus_master", q >= 0, "%s",
              q >= 0 ? "memory decoding and bus mastering on" : why);

        id = mmio_read32(bar, EDU_REG_ID);
        check(p, "edu.id", (id & 0xffff) == 0x00ed, "identification register 0x%08x", id);
        mmio_write32(bar, EDU_REG_LIVENESS, 0x5aa5c33c);
        live = mmio_read32(bar, EDU_REG_LIVENESS);
        check(p, "edu.liveness", live == (uint32_t)~0x5aa5c33cu,
              "wrote 0x5aa5c33c, read back 0x%08x", live);

        q = irq_set_enable(vfio_device_fd(d), VFIO_PCI_MSI_IRQ_INDEX, 1, &msi, &why);
        check(p, "irq.msi_enable", q >= 0, "%s", q >= 0 ? "MSI vector 0 wired to an eventfd" : why);
        if (q < 0)
                return;
        mmio_write32(bar, EDU_REG_IRQ_RAISE, PROBE_IRQ_RAISE);
        n = irq_count(msi, 0);
        mmio_write32(bar, EDU_REG_IRQ_ACK, PROBE_IRQ_RAISE);
        check(p, "irq.msi", n == 1,
              "an interrupt raised by the device fired the eventfd %" PRIu64 " time%s", n,
              n == 1 ? "" : "s");

        if (noiommu)
                check(p, "dma.skipped", true,
                      "no-IOMMU mode: no DMA mapping attempted, no DMA started");
        else {
                edu_dma_test(p, m, bar, msi, addr);
                dma_input_test(p, m);
        }

        /* INTx: the kernel masks it on each interrupt; ack the device, then unmask. */
        msi = irq_set_free(msi);
        q = irq_set_enable(vfio_device_fd(d), VFIO_PCI_INTX_IRQ_INDEX, 1, &intx, &why);
        check(p, "irq.intx_enable", q >= 0, "%s", q >= 0 ? "INTx wired to an eventfd" : why);
        if (q < 0)
                return;
        mmio_write32(bar, EDU_REG_IRQ_RAISE, PROBE_IRQ_RAISE);
        n = irq_count(intx, 0);
        mmio_write32(bar, EDU_REG_IRQ_ACK, PROBE_IRQ_RAISE);
        q = irq_set_unmask(intx, &why);
        check(p, "irq.intx", n == 1 && q >= 0, "the eventfd fired %" PRIu64 " time%s%s%s", n,
              n == 1 ? "" : "s", q < 0 ? "; " : ", unmasked", q < 0 ? why : "");
}

/* Any other device: MSI-X wiring and resizing, the part of the test that needs no
 * knowledge of the device. */
static void generic_irq_test(struct probe *p, struct vfio_device *d)
{
        _cleanup_(irq_set_freep) struct irq_set *s = NULL;
        _cleanup_free_ char *why = NULL;
        struct vfio_irq_info ii;
        bool in_place = false;
        uint32_t grow;
        int q;

        if (vfio_device_get_irq_info(d, VFIO_PCI_MSIX_IRQ_INDEX, &ii, NULL) < 0 || ii.count == 0)
                return;
        q = irq_set_enable(vfio_device_fd(d), VFIO_PCI_MSIX_IRQ_INDEX, 1, &s, &why);
        check(p, "irq.msix_enable", q >= 0, "%s", q >= 0 ? "1 MSI-X vector enabled" : why);
        if (q < 0)
                return;
        grow = ii.count < 4 ? ii.count : 4;
        q = irq_set_resize(s, grow, &in_place, &why);
        check(p, "irq.msix_resize", q >= 0 && irq_set_count(s) == grow, "%s%s",
              q >= 0 ? "resized to the new count " : why,
              q < 0      ? ""
              : in_place ? "in place (dynamic MSI-X allocation)"
                         : "by disabling and enabling again (NORESIZE)");
        q = irq_set_disable(s, &why);
        check(p, "irq.msix_disable", q >= 0, "%s", q >= 0 ? "MSI-X disabled" : why);
}

int verb_probe(struct cli *c)
{
        _cleanup_(vfio_iommu_freep) struct vfio_iommu *m = NULL;
        _cleanup_(vfio_device_freep) struct vfio_device *d = NULL;
        _cleanup_free_ char *why = NULL;
        struct probe p = {.c = c, .out = c->n_args > 1 ? stderr : stdout};
        struct interrupt_remap_status irs;
        const struct pci_device *pd;
        struct topology *t;
        struct pci_addr a;
        enum vfio_backend b = _VFIO_BACKEND_INVALID, want = _VFIO_BACKEND_INVALID;
        unsigned flags = 0;
        bool noiommu = cli_has(c, OPT_NOIOMMU), handover = c->n_args > 1;
        bool fds = cli_has(c, OPT_FDS);
        int ifd = -EBADF, dfd = -EBADF, q, r;
        uint32_t vd = 0;
        char buf[300];

        if (pci_addr_parse(c->args[0], &a) < 0)
                return usage_error("probe: '%s' is not a PCI address (expected DDDD:BB:DD.F or "
                                   "BB:DD.F in hexadecimal)",
                                   cli_quote(c->args[0], buf));
        if (cli_has(c, OPT_BACKEND)) {
                want = vfio_backend_from_string(c->values[OPT_BACKEND]);
                if (want != VFIO_BACKEND_TYPE1 && want != VFIO_BACKEND_IOMMUFD)
                        return usage_error("probe: --backend takes type1 or iommufd, not '%s'",
                                           cli_quote(c->values[OPT_BACKEND], buf));
        }
        if (handover && fds)
                return usage_error("probe: --fds and a COMMAND exclude each other");
        /* Inherited handles cannot say which kind they are: the sender must. */
        if (fds && want == _VFIO_BACKEND_INVALID)
                return usage_error("probe: --fds needs --backend type1 or iommufd");
        if (fds && parse_fds(c->values[OPT_FDS], &ifd, &dfd) < 0)
                return usage_error("probe: --fds takes two open file descriptors, IOMMU,DEVICE "
                                   "(like 3,4), not '%s'",
                                   cli_quote(c->values[OPT_FDS], buf));

        pci_addr_format(&a, p.name);
        p.doc = json_object_new_object();
        p.checks = json_object_new_array();
        p.warnings = json_object_new_array();
        p.info = json_object_new_object();
        json_object_object_add(p.doc, "schema", json_object_new_string("vfiod.probe/1"));
        json_object_object_add(p.doc, "device", json_object_new_string(p.name));
        json_object_object_add(p.doc, "warnings", p.warnings);
        json_object_object_add(p.doc, "info", p.info);
        json_object_object_add(p.doc, "checks", p.checks);

        if (cli_has(c, OPT_MEMLOCK) && (r = apply_memlock(&p, c->values[OPT_MEMLOCK]))) {
                probe_done(&p);
                return r;
        }

        /* Binding is not this verb's job: the device must be on vfio-pci already. */
        q = vfio_backend_detect(c->root, &a, &b, &why);
        if (q < 0) {
                r = fatal(&p, q == -ENODEV ? EXIT_USAGE : EXIT_FAILED, "%s", why);
                probe_done(&p);
                return r;
        }
        if (b == VFIO_BACKEND_NOIOMMU) {
                if (!noiommu || want == VFIO_BACKEND_IOMMUFD) {
                        r = fatal(&p, EXIT_FAILED,
                                  "%s is in a no-IOMMU group: vfio's unsafe mode, where the "
                                  "device can DMA anywhere in memory and nothing isolates it; "
                                  "%s",
                                  p.name,
                                  want == VFIO_BACKEND_IOMMUFD
                                          ? "iommufd cannot open it (only the legacy group path "
                                            "can, with --noiommu)"
                                          : "pass --noiommu to open it anyway (no DMA mapping is "
                                            "ever made then)");
                        probe_done(&p);
                        return r;
                }
                flags |= VFIO_IOMMU_ALLOW_NOIOMMU;
        } else {
                if (noiommu)
                        warn(&p, "--noiommu has no effect: %s is behind an IOMMU", p.name);
                noiommu = false;
                if (want != _VFIO_BACKEND_INVALID)
                        b = want;
        }
        json_object_object_add(p.doc, "backend", json_object_new_string(vfio_backend_to_string(b)));
        json_object_object_add(p.doc, "unsafe", json_object_new_boolean(noiommu));
        if (!c->json)
                fprintf(p.out, "%s: backend %s%s\n", p.name, vfio_backend_to_string(b),
                        noiommu ? " (UNSAFE: no IOMMU)" : "");
        if (noiommu)
                warn(&p,
                     "%s is opened in vfio's no-IOMMU mode: it can read and write all of "
                     "memory, its interrupts are not isolated and the kernel is tainted; no "
                     "DMA mapping is attempted",
                     p.name);

        /* The backend's IOMMU side, which distribution kernels leave unloaded; handles
         * passed in were opened by someone for whom it was there. */
        if (!fds) {
                q = cli_modules_need(c, vfio_modules_for_backend(b), &why);
                if (q < 0) {
                        r = fatal(&p, EXIT_FAILED, "%s: %s", p.name, why ? why : strerror(-q));
                        probe_done(&p);
                        return r;
                }
        }

        r = cli_topology_unnamed(c, &t);
        if (r) {
                probe_done(&p);
                return r;
        }
        pd = topology_find_device(t, &a);
        if (!pd) {
                r = fatal(&p, EXIT_USAGE, "%s: no such PCI device", p.name);
                probe_done(&p);
                return r;
        }

        /* Interrupt isolation, before the kernel is asked (it refuses too, less clearly). */
        interrupt_remap_status_get(c->root, t, pd, &irs);
        {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "isolation",
                                       jstr(irq_isolation_to_string(irs.isolation)));
                json_object_object_add(o, "unit", jstr(irs.unit));
                json_object_object_add(o, "posted", json_object_new_boolean(irs.posted));
                json_object_object_add(o, "why", jstr(irs.why));
                info(&p, "interrupts", o, "%s (%s)", irq_isolation_to_string(irs.isolation),
                     irs.why);
        }
        if (!noiommu) {
                q = interrupt_remap_check_assignment(&irs, p.name, b == VFIO_BACKEND_IOMMUFD,
                                                     cli_has(c, OPT_ALLOW_UNSAFE_INTERRUPTS), &why);
                if (q < 0) {
                        r = fatal(&p, EXIT_FAILED, "%s", why);
                        probe_done(&p);
                        return r;
                }
                if (why) {
                        warn(&p, "%s", why);
                        free(why);
                        why = NULL;
                }
                if (irs.isolation == IRQ_ISOLATION_NONE)
                        json_object_object_add(p.doc, "unsafe", json_object_new_boolean(true));
        }

        if (handover) {
                flags |= VFIO_IOMMU_PROCESS_ACCOUNTING;
                r = hand_over(&p, &a, b, flags, c->args + 1);
                probe_done(&p);
                return r;
        }

        if (fds)
                q = vfio_iommu_new_from_fd(c->root, ifd, b, flags, &m, &why);
        else
                q = vfio_iommu_new(c->root, b, flags, &m, &why);
        if (q < 0) {
                if (fds)
                        safe_close(dfd);
                r = fatal(&p, EXIT_FAILED, "%s", why ? why : strerror(-q));
                probe_done(&p);
                return r;
        }
        if (fds)
                q = vfio_device_open_fd(m, dfd, &a, &d, &why);
        else
                q = vfio_device_open(m, &a, &d, &why);
        if (q < 0) {
                r = fatal(&p, EXIT_FAILED, "%s", why ? why : strerror(-q));
                probe_done(&p);
                return r;
        }
        free(why); /* the no-IOMMU warning, already given */
        why = NULL;
        {
                json_object *o = json_object_new_object();
                json_object_object_add(o, "fds_inherited", json_object_new_boolean(fds));
                json_object_object_add(o, "group",
                                       vfio_device_group(d) >= 0
                                               ? json_object_new_int(vfio_device_group(d))
                                               : NULL);
                json_object_object_add(
                        o, "cdev",
                        vfio_device_cdev(d) >= 0 ? json_object_new_int(vfio_device_cdev(d)) : NULL);
                json_object_object_add(o, "ioas",
                                       b == VFIO_BACKEND_IOMMUFD
                                               ? json_object_new_int64(vfio_iommu_ioas(m))
                                               : NULL);
                json_object_object_add(o, "process_accounting",
                                       json_object_new_boolean(vfio_iommu_process_accounting(m)));
                info(&p, "opened", o, "%s%s", fds ? "from inherited file descriptors, " : "",
                     b == VFIO_BACKEND_IOMMUFD ? "device cdev bound to an iommufd IOAS"
                                               : "group attached to a container");
        }
        check(&p, "device.open", true, "opened through %s", vfio_backend_to_string(b));

        report_device(&p, d);
        if (!noiommu)
                report_ranges(&p, m);

        /* Config space says what the device is, whatever the snapshot could read. */
        if (vfio_device_region_read(d, VFIO_PCI_CONFIG_REGION_INDEX, 0, &vd, sizeof(vd)) < 0)
                vd = 0;
        json_object_object_add(p.doc, "ids", jhex(vd));
        if ((vd & 0xffff) == EDU_VENDOR && (vd >> 16) == EDU_DEVICE)
                edu_test(&p, d, m, &a, noiommu);
        else {
                if (!noiommu)
                        dma_input_test(&p, m);
                generic_irq_test(&p, d);
        }
        if (noiommu) {
                /* The library refuses without asking the kernel: prove it. */
                q = vfio_dma_map(m, &p, 0, 4096, VFIO_DMA_READ_WRITE, &why);
                check(&p, "dma.noiommu_refused", q == -EOPNOTSUPP, "%s", why ? why : strerror(-q));
        }

        d = vfio_device_free(d);
        r = finish(&p, 0);
        probe_done(&p);
        return r;
}
