/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl probe: open a device bound to vfio-pci through a VFIO backend and prove DMA
 * remapping and interrupt delivery on it (a full self-test on a test device such as
 * QEMU's edu); or hand the two kernel handles to a command, as a VMM would receive them.
 * The tests are vfio/selftest.h's; this file opens the device, and shows what they
 * found as text or as a JSON document. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "device.h"
#include "dma.h"
#include "interrupt-remap.h"
#include "iommu.h"
#include "migration.h"
#include "modules.h"
#include "selftest.h"
#include "detail.h"
#include "irq.h"
#include "format-util.h"

struct probe {
        struct cli *c;
        FILE *out; /* text output: stdout, or stderr when a command owns stdout */
        char name[PCI_ADDR_STRLEN];
        struct pci_addr addr;
        enum vfio_backend backend, want;
        unsigned flags;
        bool noiommu, handover, fds;
        int ifd, dfd;    /* the inherited handles (--fds) */
        char driver[64]; /* the device's driver, as the scan found it */
        json_object *doc, *checks, *warnings, *info;
        struct vfio_selftest st; /* every check and warning, in order */
};

static void probe_done(struct probe *p)
{
        json_object_put(p->doc);
        vfio_selftest_done(&p->st);
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

/* The text rendering of a result, as it is recorded: a check on the text output (none
 * in JSON mode), a warning on stderr. */
static void show_result(const struct vfio_selftest_result *r, void *userdata)
{
        struct probe *p = userdata;

        if (r->kind == VFIO_SELFTEST_WARNING)
                fprintf(stderr, "vfioctl: warning: %s\n", r->detail);
        else if (!p->c->json)
                fprintf(p->out, "  %-4s %s: %s\n", r->ok ? "ok" : "FAIL", r->id,
                        r->detail ? r->detail : "");
}

/* The JSON rendering of the results: the "checks" and "warnings" arrays. */
static void render_results(struct probe *p)
{
        for (size_t i = 0; i < p->st.n_results; i++) {
                const struct vfio_selftest_result *r = &p->st.results[i];
                json_object *e;

                if (r->kind == VFIO_SELFTEST_WARNING) {
                        json_object_array_add(p->warnings, json_object_new_string(r->detail));
                        continue;
                }
                e = json_object_new_object();
                json_object_object_add(e, "id", json_object_new_string(r->id));
                json_object_object_add(e, "ok", json_object_new_boolean(r->ok));
                json_object_object_add(e, "detail", jstr(r->detail));
                json_object_array_add(p->checks, e);
        }
}

static _printf_(2, 3) void warn(struct probe *p, const char *fmt, ...)
{
        _cleanup_free_ char *text = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&text, fmt, ap) < 0)
                text = NULL;
        va_end(ap);
        if (!text)
                return;
        /* The library shouts its warnings; one "warning:" is enough here. */
        vfio_selftest_warn(&p->st, "%s", strncmp(text, "WARNING: ", 9) == 0 ? text + 9 : text);
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
        render_results(p);
        json_object_object_add(p->doc, "checks_run",
                               json_object_new_int64((int64_t)p->st.n_checks));
        json_object_object_add(p->doc, "checks_failed",
                               json_object_new_int64((int64_t)p->st.n_failed));
        json_object_object_add(p->doc, "passed",
                               json_object_new_boolean(exit_code == 0 && p->st.n_failed == 0));
        cli_json_add_modules(p->c, p->doc);
        if (p->st.n_failed && exit_code == 0)
                exit_code = EXIT_FAILED;
        if (p->c->json) {
                if (print_json(p->doc, JSON_C_TO_STRING_PRETTY) == 0)
                        puts("");
                p->doc = NULL;
        } else if (exit_code == 0)
                fprintf(p->out, "%s: probe passed: %zu checks\n", p->name, p->st.n_checks);
        else if (p->st.n_checks)
                fprintf(p->out, "%s: probe FAILED: %zu of %zu checks failed\n", p->name,
                        p->st.n_failed, p->st.n_checks);
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
        return format_size(v, buf);
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
                return fatal(p, EXIT_FAILED, "%s", detail_or_strerror(why, q));
        q = vfio_device_open_raw(p->c->root, a, b, &dfd, &path, &why);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "%s", detail_or_strerror(why, q));

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

static void show_ranges(struct probe *p)
{
        _cleanup_free_ char *text = NULL;
        const struct iova_range *r;
        size_t n, len = 0;
        uint64_t page;
        json_object *a;
        FILE *f;

        if (vfio_selftest_ranges(&p->st, &r, &n, &page) < 0)
                return;
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

static void show_device_info(struct probe *p, struct vfio_device *d)
{
        const struct vfio_device_info *di = vfio_device_get_info(d);
        _cleanup_free_ char *why = NULL;
        struct vfio_region_info bar0;
        json_object *o = json_object_new_object();

        json_object_object_add(o, "regions", json_object_new_int64(di->num_regions));
        json_object_object_add(o, "irqs", json_object_new_int64(di->num_irqs));
        json_object_object_add(o, "reset",
                               json_object_new_boolean(di->flags & VFIO_DEVICE_FLAGS_RESET));
        info(p, "device_info", o, "%u regions, %u IRQ indexes, function reset %s", di->num_regions,
             di->num_irqs, (di->flags & VFIO_DEVICE_FLAGS_RESET) ? "available" : "unavailable");

        if (vfio_device_get_region_info(d, VFIO_PCI_BAR0_REGION_INDEX, &bar0, &why) < 0)
                return;
        o = json_object_new_object();
        json_object_object_add(o, "size", json_object_new_int64((int64_t)bar0.size));
        json_object_object_add(o, "mmap",
                               json_object_new_boolean(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP));
        info(p, "bar0", o, "%" PRIu64 " bytes%s", (uint64_t)bar0.size,
             (bar0.flags & VFIO_REGION_INFO_FLAG_MMAP) ? ", mmap" : "");
}

static void show_irq_info(struct probe *p, struct vfio_device *d)
{
        const struct vfio_device_info *di = vfio_device_get_info(d);
        json_object *irqs = json_object_new_array();

        for (unsigned i = 0; i < di->num_irqs && i <= VFIO_PCI_MSIX_IRQ_INDEX; i++) {
                struct vfio_irq_info ii;
                json_object *o;

                if (vfio_device_get_irq_info(d, i, &ii, NULL) < 0)
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "index", json_object_new_string(irq_index_to_string(i)));
                json_object_object_add(o, "count", json_object_new_int64(ii.count));
                json_object_object_add(o, "eventfd",
                                       json_object_new_boolean(ii.flags & VFIO_IRQ_INFO_EVENTFD));
                json_object_object_add(o, "noresize",
                                       json_object_new_boolean(ii.flags & VFIO_IRQ_INFO_NORESIZE));
                json_object_array_add(irqs, o);
        }
        info(p, "irq_info", irqs, "%zu indexes (INTx, MSI, MSI-X)", json_object_array_length(irqs));
}

static void show_hot_reset(struct probe *p, struct vfio_device *d)
{
        _cleanup_free_ struct vfio_hot_reset_dep *deps = NULL;
        _cleanup_free_ char *why = NULL;
        json_object *o = json_object_new_object(), *a;
        bool by_devid = false;
        size_t n = 0;
        int q;

        q = vfio_device_get_hot_reset_info(d, &deps, &n, &by_devid, &why);
        if (q < 0) {
                json_object_object_add(o, "error", jstr(detail_or_strerror(why, q)));
                info(p, "hot_reset", o, "%s", detail_or_strerror(why, q));
                return;
        }
        a = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                char s[PCI_ADDR_STRLEN];
                json_object_array_add(a, json_object_new_string(pci_addr_format(&deps[i].addr, s)));
        }
        json_object_object_add(o, "by_devid", json_object_new_boolean(by_devid));
        json_object_object_add(o, "devices", a);
        info(p, "hot_reset", o, "a bus reset would reset %zu device%s", n, n == 1 ? "" : "s");
}

/* What the kernel says about the device, then its function reset (a check when it has
 * one, a fact when not). */
static void show_device(struct probe *p, struct vfio_device *d)
{
        _cleanup_free_ char *why = NULL;

        show_device_info(p, d);
        show_irq_info(p, d);
        show_hot_reset(p, d);
        if (vfio_selftest_reset(&p->st, &why) == -ENOTTY)
                info(p, "reset", json_object_new_string("unavailable"), "%s", why);
}

/* Whether the kernel can migrate the device: its VFIO driver's migration states and who
 * tracks the pages it writes. */
static void show_migration(struct probe *p, struct vfio_iommu *m, struct vfio_device *d)
{
        struct vfio_migration mi;

        vfio_migration_ask(m, d, p->driver[0] ? p->driver : NULL, &mi);
        info(p, "live_migration", vfio_migration_to_json(&mi), "%s: %s",
             vfio_migration_verdict(&mi), mi.why);
}

/* The figures of the DMA fault probe, when it ran: empty when it stopped early. */
static void render_dma(struct probe *p)
{
        const struct vfio_probe_result *res = &p->st.dma;
        json_object *o, *per;

        if (!p->st.dma_ran)
                return;
        o = json_object_new_object();
        if (res->stop == VFIO_PROBE_RAN) {
                json_object_object_add(o, "bytes", json_object_new_int64(VFIO_PROBE_BYTES));
                json_object_object_add(o, "iova_src", jhex(VFIO_PROBE_IOVA_SRC));
                json_object_object_add(o, "iova_dst", jhex(VFIO_PROBE_IOVA_DST));
                json_object_object_add(o, "iova_fault", jhex(VFIO_PROBE_IOVA_FAULT));
                per = json_object_new_array();
                for (size_t i = 0; i < ELEMENTSOF(res->msi); i++)
                        json_object_array_add(per, json_object_new_int64((int64_t)res->msi[i]));
                json_object_object_add(o, "msi_per_dma", per);
                json_object_object_add(o, "fault_untouched",
                                       json_object_new_boolean(res->fault_changed == 0));
                json_object_object_add(o, "fault_message", jstr(res->fault_line));
        }
        json_object_object_add(p->doc, "dma", o);
}

/* The bad requests, when they were tried: each with the errno it got. */
static void render_inputs(struct probe *p)
{
        json_object *a;

        if (!p->st.inputs_ran)
                return;
        a = json_object_new_array();
        for (size_t i = 0; i < p->st.n_inputs; i++) {
                const struct vfio_selftest_input *in = &p->st.inputs[i];
                json_object *e = json_object_new_object();

                json_object_object_add(e, "case", json_object_new_string(in->id));
                json_object_object_add(e, "errno",
                                       json_object_new_string(vfio_selftest_errno_name(-in->got)));
                json_object_object_add(e, "message", jstr(in->message));
                json_object_array_add(a, e);
        }
        json_object_object_add(p->doc, "bad_input", a);
}

static int parse_args(struct probe *p)
{
        struct cli *c = p->c;
        char buf[300];

        if (pci_addr_parse(c->args[0], &p->addr) < 0)
                return usage_error("probe: '%s' is not a PCI address (expected DDDD:BB:DD.F or "
                                   "BB:DD.F in hexadecimal)",
                                   cli_quote(c->args[0], buf));
        if (cli_has(c, OPT_BACKEND)) {
                p->want = vfio_backend_from_string(c->values[OPT_BACKEND]);
                if (p->want != VFIO_BACKEND_TYPE1 && p->want != VFIO_BACKEND_IOMMUFD)
                        return usage_error("probe: --backend takes type1 or iommufd, not '%s'",
                                           cli_quote(c->values[OPT_BACKEND], buf));
        }
        if (p->handover && p->fds)
                return usage_error("probe: --fds and a COMMAND exclude each other");
        /* Inherited handles cannot say which kind they are: the sender must. */
        if (p->fds && p->want == _VFIO_BACKEND_INVALID)
                return usage_error("probe: --fds needs --backend type1 or iommufd");
        if (p->fds && parse_fds(c->values[OPT_FDS], &p->ifd, &p->dfd) < 0)
                return usage_error("probe: --fds takes two open file descriptors, IOMMU,DEVICE "
                                   "(like 3,4), not '%s'",
                                   cli_quote(c->values[OPT_FDS], buf));
        return 0;
}

/* The document's frame, in the order its members are shown. */
static void probe_start(struct probe *p)
{
        pci_addr_format(&p->addr, p->name);
        p->st.observe = show_result;
        p->st.userdata = p;
        p->doc = json_object_new_object();
        p->checks = json_object_new_array();
        p->warnings = json_object_new_array();
        p->info = json_object_new_object();
        json_object_object_add(p->doc, "schema", json_object_new_string("vfiod.probe/1"));
        json_object_object_add(p->doc, "device", json_object_new_string(p->name));
        json_object_object_add(p->doc, "warnings", p->warnings);
        json_object_object_add(p->doc, "info", p->info);
        json_object_object_add(p->doc, "checks", p->checks);
}

/* Binding is not this verb's job: the device must be on vfio-pci already. Picks the
 * backend; the no-IOMMU one only when asked for. */
static int choose_backend(struct probe *p)
{
        _cleanup_free_ char *why = NULL;
        int q;

        q = vfio_backend_detect(p->c->root, &p->addr, &p->backend, &why);
        if (q < 0)
                return fatal(p, q == -ENODEV ? EXIT_USAGE : EXIT_FAILED, "%s", why);
        if (p->backend == VFIO_BACKEND_NOIOMMU) {
                if (!p->noiommu || p->want == VFIO_BACKEND_IOMMUFD)
                        return fatal(p, EXIT_FAILED,
                                     "%s is in a no-IOMMU group: vfio's unsafe mode, where the "
                                     "device can DMA anywhere in memory and nothing isolates it; "
                                     "%s",
                                     p->name,
                                     p->want == VFIO_BACKEND_IOMMUFD
                                             ? "iommufd cannot open it (only the legacy group "
                                               "path can, with --noiommu)"
                                             : "pass --noiommu to open it anyway (no DMA mapping "
                                               "is ever made then)");
                p->flags |= VFIO_IOMMU_ALLOW_NOIOMMU;
        } else {
                if (p->noiommu)
                        warn(p, "--noiommu has no effect: %s is behind an IOMMU", p->name);
                p->noiommu = false;
                if (p->want != _VFIO_BACKEND_INVALID)
                        p->backend = p->want;
        }
        json_object_object_add(p->doc, "backend",
                               json_object_new_string(vfio_backend_to_string(p->backend)));
        json_object_object_add(p->doc, "unsafe", json_object_new_boolean(p->noiommu));
        if (!p->c->json)
                fprintf(p->out, "%s: backend %s%s\n", p->name, vfio_backend_to_string(p->backend),
                        p->noiommu ? " (UNSAFE: no IOMMU)" : "");
        if (p->noiommu)
                warn(p,
                     "%s is opened in vfio's no-IOMMU mode: it can read and write all of "
                     "memory, its interrupts are not isolated and the kernel is tainted; no "
                     "DMA mapping is attempted",
                     p->name);
        return 0;
}

/* Interrupt isolation, before the kernel is asked (it refuses too, less clearly). */
static int check_interrupts(struct probe *p, const struct topology *t, const struct pci_device *pd)
{
        _cleanup_free_ char *why = NULL;
        struct interrupt_remap_status irs;
        json_object *o = json_object_new_object();
        int q;

        interrupt_remap_status_get(p->c->root, t, pd, &irs);
        json_object_object_add(o, "isolation", jstr(irq_isolation_to_string(irs.isolation)));
        json_object_object_add(o, "unit", jstr(irs.unit));
        json_object_object_add(o, "posted", json_object_new_boolean(irs.posted));
        json_object_object_add(o, "why", jstr(irs.why));
        info(p, "interrupts", o, "%s (%s)", irq_isolation_to_string(irs.isolation), irs.why);
        if (p->noiommu)
                return 0;
        q = interrupt_remap_check_assignment(&irs, p->name, p->backend == VFIO_BACKEND_IOMMUFD,
                                             cli_has(p->c, OPT_ALLOW_UNSAFE_INTERRUPTS), &why);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "%s", why);
        if (why)
                warn(p, "%s", why);
        if (irs.isolation == IRQ_ISOLATION_NONE)
                json_object_object_add(p->doc, "unsafe", json_object_new_boolean(true));
        return 0;
}

/* Everything up to opening: memlock, backend, modules, the device and its interrupts. */
static int prepare(struct probe *p)
{
        _cleanup_free_ char *why = NULL;
        const struct pci_device *pd;
        struct topology *t;
        int q, r;

        if (cli_has(p->c, OPT_MEMLOCK) && (r = apply_memlock(p, p->c->values[OPT_MEMLOCK])))
                return r;
        r = choose_backend(p);
        if (r)
                return r;
        /* The backend's IOMMU side, which distribution kernels leave unloaded; handles
         * passed in were opened by someone for whom it was there. */
        if (!p->fds) {
                q = cli_modules_need(p->c, vfio_modules_for_backend(p->backend), &why);
                if (q < 0)
                        return fatal(p, EXIT_FAILED, "%s: %s", p->name, detail_or_strerror(why, q));
        }
        r = cli_topology_unnamed(p->c, &t);
        if (r)
                return r;
        pd = topology_find_device(t, &p->addr);
        if (!pd)
                return fatal(p, EXIT_USAGE, "%s: no such PCI device", p->name);
        snprintf(p->driver, sizeof(p->driver), "%s", pd->driver ? pd->driver : "");
        return check_interrupts(p, t, pd);
}

/* Opens the address space and the device into it, from inherited handles with --fds. */
static int open_device(struct probe *p, struct vfio_iommu **ret_m, struct vfio_device **ret_d)
{
        _cleanup_(vfio_iommu_freep) struct vfio_iommu *m = NULL;
        _cleanup_free_ char *why = NULL;
        int q;

        if (p->fds)
                q = vfio_iommu_new_from_fd(p->c->root, p->ifd, p->backend, p->flags, &m, &why);
        else
                q = vfio_iommu_new(p->c->root, p->backend, p->flags, &m, &why);
        if (q < 0) {
                if (p->fds)
                        safe_close(p->dfd);
                return fatal(p, EXIT_FAILED, "%s", detail_or_strerror(why, q));
        }
        if (p->fds)
                q = vfio_device_open_fd(m, p->dfd, &p->addr, ret_d, &why);
        else
                q = vfio_device_open(m, &p->addr, ret_d, &why);
        if (q < 0)
                return fatal(p, EXIT_FAILED, "%s", detail_or_strerror(why, q));
        /* The detail of a success is the no-IOMMU warning, already given. */
        *ret_m = TAKE_PTR(m);
        return 0;
}

static void show_opened(struct probe *p, struct vfio_iommu *m, struct vfio_device *d)
{
        bool iommufd = p->backend == VFIO_BACKEND_IOMMUFD;
        json_object *o = json_object_new_object();

        json_object_object_add(o, "fds_inherited", json_object_new_boolean(p->fds));
        json_object_object_add(o, "group",
                               vfio_device_group(d) >= 0 ? json_object_new_int(vfio_device_group(d))
                                                         : NULL);
        json_object_object_add(o, "cdev",
                               vfio_device_cdev(d) >= 0 ? json_object_new_int(vfio_device_cdev(d))
                                                        : NULL);
        json_object_object_add(o, "ioas",
                               iommufd ? json_object_new_int64(vfio_iommu_ioas(m)) : NULL);
        json_object_object_add(o, "process_accounting",
                               json_object_new_boolean(vfio_iommu_process_accounting(m)));
        info(p, "opened", o, "%s%s", p->fds ? "from inherited file descriptors, " : "",
             iommufd ? "device cdev bound to an iommufd IOAS" : "group attached to a container");
}

/* Opens the device and runs the self-test on it. */
static int test_device(struct probe *p)
{
        _cleanup_(vfio_iommu_freep) struct vfio_iommu *m = NULL;
        _cleanup_(vfio_device_freep) struct vfio_device *d = NULL;
        int r;

        r = open_device(p, &m, &d);
        if (r)
                return r;
        show_opened(p, m, d);
        vfio_selftest_check(&p->st, "device.open", true, "opened through %s",
                            vfio_backend_to_string(p->backend));
        p->st.root = p->c->root;
        p->st.m = m;
        p->st.d = d;
        p->st.addr = p->addr;
        p->st.noiommu = p->noiommu;

        show_device(p, d);
        show_migration(p, m, d);
        if (!p->noiommu)
                show_ranges(p);
        vfio_selftest_run(&p->st);
        json_object_object_add(p->doc, "ids", jhex(p->st.ids));
        render_dma(p);
        render_inputs(p);

        d = vfio_device_free(d);
        return finish(p, 0);
}

int verb_probe(struct cli *c)
{
        struct probe p = {
                .c = c,
                .out = c->n_args > 1 ? stderr : stdout,
                .backend = _VFIO_BACKEND_INVALID,
                .want = _VFIO_BACKEND_INVALID,
                .noiommu = cli_has(c, OPT_NOIOMMU),
                .handover = c->n_args > 1,
                .fds = cli_has(c, OPT_FDS),
                .ifd = -EBADF,
                .dfd = -EBADF,
        };
        int r;

        r = parse_args(&p);
        if (r)
                return r;
        probe_start(&p);
        r = prepare(&p);
        if (r == 0 && p.handover) {
                p.flags |= VFIO_IOMMU_PROCESS_ACCOUNTING;
                r = hand_over(&p, &p.addr, p.backend, p.flags, c->args + 1);
        } else if (r == 0)
                r = test_device(&p);
        probe_done(&p);
        return r;
}
