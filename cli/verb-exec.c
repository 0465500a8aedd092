/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfioctl exec: acquire devices from vfiod as a lease held by this process, then become
 * the VMM. The pid stays the same across execve(), so the daemon's lease, tied to this
 * process's pidfd, follows the VMM and ends when it exits. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-daemon.h"
#include "dev-node.h"
#include "pci-addr.h"
#include "strv.h"

#define QEMU_IOMMUFD_ID "vfiod-iommufd0"

/* Every --device value, split at commas, in canonical form; duplicates refused. */
static int exec_devices(struct cli *c, char ***ret, size_t *ret_n)
{
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = 0;
        char q[300];

        STRV_FOREACH (v, c->lists[OPT_DEVICE]) {
                _cleanup_free_ char *copy = strdup(*v);
                char *save = NULL;

                if (!copy)
                        return -ENOMEM;
                for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                        struct pci_addr a;
                        char buf[PCI_ADDR_STRLEN];

                        if (pci_addr_parse(w, &a) < 0)
                                return usage_error("exec: '%s' is not a PCI address (expected "
                                                   "DDDD:BB:DD.F or BB:DD.F in hexadecimal)",
                                                   cli_quote(w, q));
                        pci_addr_format(&a, buf);
                        STRV_FOREACH (d, l)
                                if (strcmp(*d, buf) == 0)
                                        return usage_error("exec: %s is given twice", buf);
                        if (strv_push(&l, &n, buf) < 0)
                                return -ENOMEM;
                }
        }
        if (n == 0)
                return usage_error("exec: name the devices to acquire with --device DEVICE");
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static bool is_qemu(const char *path)
{
        const char *base = strrchr(path, '/');

        return strncmp(base ? base + 1 : path, "qemu-system", 11) == 0;
}

/* With type1, devices of one group come as copies of one group handle: a VMM must set
 * each group on the container once, so they share one fd number. */
static void share_group_fds(struct vfiod_lease *l)
{
        for (size_t i = 1; i < l->n_devices; i++)
                for (size_t k = 0; k < i; k++) {
                        struct stat a, b;
                        if (fstat(l->devices[i].fd, &a) < 0 || fstat(l->devices[k].fd, &b) < 0 ||
                            a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                                continue;
                        safe_close(l->devices[i].fd);
                        l->devices[i].fd = l->devices[k].fd;
                        break;
                }
}

/* Undoes share_group_fds() so that each handle is closed once. */
static void unshare_group_fds(struct vfiod_lease *l)
{
        for (size_t i = l->n_devices; i-- > 1;)
                for (size_t k = 0; k < i; k++)
                        if (l->devices[i].fd == l->devices[k].fd) {
                                l->devices[i].fd = -EBADF;
                                break;
                        }
}

static int keep_open_across_exec(int fd)
{
        if (fd >= 0 && fcntl(fd, F_SETFD, 0) < 0)
                return negative_errno();
        return 0;
}

static bool lease_has_handles(const struct vfiod_lease *l)
{
        return l->iommufd >= 0 || l->container >= 0;
}

static bool requested(char **devices, const char *address)
{
        STRV_FOREACH (d, devices)
                if (strcmp(*d, address) == 0)
                        return true;
        return false;
}

/* The VMM's command line: its own arguments, then for QEMU the iommufd object and one
 * vfio-pci device per handle, or with type1 one vfio-pci device per requested device,
 * which QEMU opens by its group node (granted to this uid for the lease). Also sets the
 * VFIOD_* variables every VMM can read. */
static int exec_command(struct cli *c, const struct vfiod_lease *l, char **want, bool qemu,
                        char ***ret)
{
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_(strv_freep) char **pairs = NULL;
        _cleanup_free_ char *devices = NULL;
        size_t n = 0, n_pairs = 0, len = 1;
        char id[32], num[32];

        for (size_t i = 0; i < c->n_args; i++)
                if (strv_push(&argv, &n, c->args[i]) < 0)
                        return -ENOMEM;
        bool handles = lease_has_handles(l);
        if (qemu && handles &&
            (strv_push(&argv, &n, "-object") < 0 ||
             strv_pushf(&argv, &n, "iommufd,id=%s,fd=%d", QEMU_IOMMUFD_ID, l->iommufd) < 0))
                return -ENOMEM;
        for (size_t i = 0; i < l->n_devices; i++) {
                const struct vfiod_acquired *d = &l->devices[i];
                cli_qemu_id(d->address, id);
                if (qemu && handles &&
                    (strv_push(&argv, &n, "-device") < 0 ||
                     strv_pushf(&argv, &n, "vfio-pci,iommufd=%s,fd=%d,id=%s", QEMU_IOMMUFD_ID,
                                d->fd, id) < 0))
                        return -ENOMEM;
                /* A group's other members come with a type1 lease; QEMU gets what was
                 * asked for. */
                if (qemu && !handles && requested(want, d->address) &&
                    (strv_push(&argv, &n, "-device") < 0 ||
                     strv_pushf(&argv, &n, "vfio-pci,host=%s,id=%s", d->address, id) < 0))
                        return -ENOMEM;
                if ((handles ? strv_pushf(&pairs, &n_pairs, "%s=%d", d->address, d->fd)
                             : strv_pushf(&pairs, &n_pairs, "%s=/dev/vfio/%d", d->address,
                                          d->group)) < 0)
                        return -ENOMEM;
                len += strlen(pairs[i]) + 1;
        }
        devices = calloc(len, 1);
        if (!devices)
                return -ENOMEM;
        STRV_FOREACH (p, pairs) {
                if (*devices)
                        strcat(devices, ",");
                strcat(devices, *p);
        }

        snprintf(num, sizeof(num), "%" PRIu64, l->id);
        if (setenv("VFIOD_LEASE", num, 1) < 0 || setenv("VFIOD_BACKEND", l->backend, 1) < 0 ||
            setenv("VFIOD_DEVICES", devices, 1) < 0)
                return negative_errno();
        unsetenv("VFIOD_IOMMUFD");
        unsetenv("VFIOD_CONTAINER");
        snprintf(num, sizeof(num), "%d", l->iommufd >= 0 ? l->iommufd : l->container);
        if (handles && setenv(l->iommufd >= 0 ? "VFIOD_IOMMUFD" : "VFIOD_CONTAINER", num, 1) < 0)
                return negative_errno();
        *ret = TAKE_PTR(argv);
        return 0;
}

static int report_json(const struct vfiod_lease *l, char **argv, bool qemu, const char *reason)
{
        json_object *o = cli_lease_json(l), *cmd = json_object_new_array();
        json_object *devs;
        char id[32];

        if (!o || !cmd || !json_object_object_get_ex(o, "devices", &devs)) {
                json_object_put(o);
                json_object_put(cmd);
                return -ENOMEM;
        }
        json_object_object_add(o, "iommufd",
                               l->iommufd >= 0 ? json_object_new_int(l->iommufd) : NULL);
        json_object_object_add(o, "container",
                               l->container >= 0 ? json_object_new_int(l->container) : NULL);
        json_object_object_add(o, "backend_reason", json_object_new_string(reason));
        for (size_t i = 0; i < l->n_devices; i++) {
                json_object *d = json_object_array_get_idx(devs, i);
                json_object_object_add(d, "fd",
                                       l->devices[i].fd >= 0 ? json_object_new_int(l->devices[i].fd)
                                                             : NULL);
                cli_qemu_id(l->devices[i].address, id);
                json_object_object_add(d, "qemu_id", qemu ? json_object_new_string(id) : NULL);
        }
        STRV_FOREACH (a, argv)
                json_object_array_add(cmd, json_object_new_string(*a));
        json_object_object_add(o, "command", cmd);
        /* One line, before the VMM writes anything: a reader takes the first line. */
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return 0;
}

static void report_text(const struct vfiod_lease *l, char **argv, size_t n_own, bool qemu,
                        const char *reason)
{
        char m[FORMAT_SIZE_MAX], node[VFIO_CDEV_PATH_MAX];

        fprintf(stderr, "vfioctl: exec: backend %s: %s\n", l->backend, reason);
        fprintf(stderr, "vfioctl: exec: lease %" PRIu64 " (%s, RLIMIT_MEMLOCK %s)", l->id,
                l->backend, cli_memlock_text(l->memlock, m));
        if (lease_has_handles(l))
                fprintf(stderr, ": %s fd %d", l->iommufd >= 0 ? "iommufd" : "container",
                        l->iommufd >= 0 ? l->iommufd : l->container);
        else
                fputs(": no handles, the group nodes are open to this uid", stderr);
        for (size_t i = 0; i < l->n_devices; i++) {
                if (l->devices[i].fd >= 0)
                        fprintf(stderr, ", %s fd %d (group %d", l->devices[i].address,
                                l->devices[i].fd, l->devices[i].group);
                else
                        fprintf(stderr, ", %s (/dev/vfio/%d", l->devices[i].address,
                                l->devices[i].group);
                if (l->devices[i].cdev >= 0)
                        fprintf(stderr, ", /%s", vfio_cdev_path(l->devices[i].cdev, node));
                fputc(')', stderr);
        }
        fprintf(stderr, "\nvfioctl: exec: executing %s", argv[0]);
        if (qemu)
                for (char **a = argv + n_own; *a; a++)
                        fprintf(stderr, " %s", *a);
        else
                fprintf(stderr, " with VFIOD_DEVICES=%s", getenv("VFIOD_DEVICES"));
        fputc('\n', stderr);
}

/* Both backends charge what a VMM maps for DMA to RLIMIT_MEMLOCK; a policy that does not
 * raise it leaves a limit that a VMM's guest RAM usually exceeds. */
static void memlock_note(const struct vfiod_lease *l, const char *vmm)
{
        struct rlimit rl;
        char m[FORMAT_SIZE_MAX];

        if (l->memlock != -2 || getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
                return;
        fprintf(stderr,
                "vfioctl: exec: note: the daemon's policy leaves RLIMIT_MEMLOCK at %s: the "
                "kernel charges all memory %s maps for DMA (a guest's RAM) against it; if "
                "it fails with 'Cannot allocate memory', the policy rule needs \"memlock\"\n",
                cli_memlock_text((int64_t)rl.rlim_cur, m), vmm);
}

/* Makes the lease's handles survive execve() and executes the VMM; returns (an exit
 * status) only on failure. */
static int exec_lease(struct cli *c, struct vfiod_lease *l, char **want, bool qemu,
                      const char *reason)
{
        _cleanup_(strv_freep) char **argv = NULL;
        char q[300];
        int r;

        r = keep_open_across_exec(l->iommufd);
        if (r >= 0)
                r = keep_open_across_exec(l->container);
        for (size_t i = 0; r >= 0 && i < l->n_devices; i++)
                r = keep_open_across_exec(l->devices[i].fd);
        if (r < 0) {
                fprintf(stderr, "vfioctl: exec: cannot keep the handles open for %s: %s\n",
                        cli_quote(c->args[0], q), strerror(-r));
                return EXIT_FAILED;
        }
        r = exec_command(c, l, want, qemu, &argv);
        if (r >= 0 && c->json)
                r = report_json(l, argv, qemu, reason);
        else if (r >= 0)
                report_text(l, argv, c->n_args, qemu, reason);
        if (r < 0) {
                fprintf(stderr, "vfioctl: exec: %s\n", strerror(-r));
                return EXIT_FAILED;
        }
        memlock_note(l, c->args[0]);
        fflush(stdout);
        fflush(stderr);

        execvp(argv[0], argv);
        r = errno;
        fprintf(stderr, "vfioctl: exec: cannot execute %s: %s\n", cli_quote(argv[0], q),
                strerror(r));
        return r == ENOENT ? 127 : 126;
}

int verb_exec(struct cli *c)
{
        _cleanup_(vfiod_client_freep) struct vfiod_client *client = NULL;
        _cleanup_(vfiod_lease_freep) struct vfiod_lease *l = NULL;
        _cleanup_(strv_freep) char **devices = NULL;
        const char *backend = c->values[OPT_BACKEND];
        bool qemu = is_qemu(c->args[0]), open_nodes = cli_has(c, OPT_OPEN_NODES);
        size_t n_devices = 0;
        char q[300];
        int r;

        r = exec_devices(c, &devices, &n_devices);
        if (r == -ENOMEM) {
                fputs("vfioctl: exec: out of memory\n", stderr);
                return EXIT_FAILED;
        }
        if (r != 0)
                return r;
        if (backend && strcmp(backend, "iommufd") != 0 && strcmp(backend, "type1") != 0)
                return usage_error("exec: --backend takes iommufd or type1, not '%s'",
                                   cli_quote(backend, q));
        /* A group node can be open only once: a program that opens it itself must get
         * no handle to it. Only type1 leases grant the nodes. */
        if (open_nodes && backend && strcmp(backend, "type1") != 0)
                return usage_error("exec: --open-nodes goes with the type1 backend only");
        if (open_nodes)
                backend = "type1";

        r = cli_daemon_connect("exec", &client);
        if (r != 0)
                return r;
        /* QEMU takes handed-over handles only with iommufd; with type1 it opens the group
         * nodes itself, which the lease opens to this uid. */
        r = cli_daemon_acquire("exec", client, devices, n_devices, backend, -EBADF,
                               qemu || open_nodes ? VFIOD_ACQUIRE_NO_GROUP_FDS : 0, &l);
        if (r != 0)
                return r;

        share_group_fds(l);
        r = exec_lease(c, l, devices, qemu, cli_backend_reason(c, l->backend, backend != NULL));
        /* Still here: the VMM did not start. The lease would end with this process; end
         * it now, while the daemon can still say so if that fails. */
        unshare_group_fds(l);
        uint64_t id = l->id;
        /* Close the handles first: the daemon gives the device back to a driver, which
         * the kernel holds up while any handle to it is open. */
        l = vfiod_lease_free(l);
        (void)cli_daemon_release("exec", client, id);
        return r;
}
