/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark (run in the lab by bench/lab-daemon.sh): what a VMM waits for when it asks
 * vfiod for a device. Four measurements in one run, each with CLIENTS threads doing
 * ROUNDS timed operations, interleaved in blocks so that drift hits all alike:
 *
 *   daemon  Acquire (iommufd) + Release through libvfiod-client on vfiod's socket;
 *   raw     the same two exchanges with no protocol behind them: a one-threaded epoll
 *           server in a process of its own (as vfiod is: a switch between processes
 *           costs more than one between threads, under TCG a whole TLB flush) on a UNIX
 *           stream socket answers a request with two fds (SCM_RIGHTS) and a second
 *           request with none, with messages of the same sizes;
 *   raw-kernel  the same, the raw server making the daemon's kernel calls for the
 *           device named in the request before it answers (/dev/iommu and the cdev
 *           node, as "kernel" opens them; the fds sent, its copies closed; the client closes
 *           them): minus "raw", the kernel's part of "daemon" as the daemon pays it, in
 *           a server process, after a switch, queued behind the other clients' work;
 *   kernel  the opens the daemon makes for a lease, done directly (vfio_iommu_open_raw
 *           and the cdev by its node, then close): the part of "daemon" that is the
 *           kernel's, not the protocol's (the reset of a released device is vfio-pci's,
 *           at the last close of a device a VMM opened: the bench opens none).
 *
 * Client i works on DEVICE[i % N]; clients sharing a device take turns (a lock held
 * around the timed operation, in every mode alike, so the three see the same
 * concurrency). Prints one line per mode, and one for the Acquire part of the daemon
 * samples (mode=daemon-acquire): mode=... clients=... n=... p50_us=... p99_us=...
 *
 * usage: daemon-bench [--root DIR] SOCKET CLIENTS ROUNDS DEVICE...
 * (--root: the device nodes below DIR, as vfiod --root reads them; bench/host-daemon.sh) */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dev-node.h"
#include "device.h"
#include "iommu.h"
#include "macro.h"
#include "pci-addr.h"
#include "vfiod-client.h"

#define BLOCKS_MAX  40 /* interleaved blocks per mode, at most */
#define MAX_DEVICES 16
#define MAX_CLIENTS 256

enum mode { MODE_DAEMON, MODE_RAW, MODE_RAW_KERNEL, MODE_KERNEL, _MODE_MAX };
/* One more series: the Acquire part of each "daemon" sample. */
#define SERIES_ACQUIRE _MODE_MAX
static const char *const mode_names[_MODE_MAX + 1] = {"daemon", "raw", "raw-kernel", "kernel",
                                                      "daemon-acquire"};

struct bench {
        const char *socket;
        char raw_socket[108];
        unsigned clients, rounds;
        const char *devices[MAX_DEVICES];
        struct pci_addr addrs[MAX_DEVICES];
        char cdev_node[MAX_DEVICES][VFIO_CDEV_PATH_MAX]; /* dev/vfio/devices/vfioN */
        pthread_mutex_t device_lock[MAX_DEVICES];
        unsigned n_devices;
        struct root *root;
        pthread_barrier_t start, done;
        enum mode mode; /* of the current block */
        unsigned blocks, per_block;
        bool stop;
};

struct client {
        struct bench *b;
        unsigned index;
        struct vfiod_client *daemon;
        int raw; /* connected to the raw server */
        uint64_t *samples[_MODE_MAX + 1];
        size_t n_samples[_MODE_MAX + 1];
        int error;
        char *detail;
};

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- raw: the transport alone -------------------------------------------------------- */

/* The sizes of the varlink messages of an Acquire+Release of one iommufd device. */
#define RAW_CALL1  96
#define RAW_REPLY1 144
#define RAW_CALL2  56
#define RAW_REPLY2 18

static int send_msg(int fd, const char *buf, size_t len, const int *fds, size_t n_fds)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int) * 2)];
        } control = {};
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (n_fds > 0) {
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -EIO;
}

/* Reads one NUL-terminated message; the fds that came with it are closed (as a client
 * closes its lease's fds), their number returned through *ret_n_fds. A client waits for
 * the reply in poll() first, as libvfiod-client does (a reader blocked in recvmsg() is
 * also woken when the peer's read frees what it sent); the server reads what epoll
 * found. */
static int recv_msg(int fd, char *buf, size_t size, bool wait, size_t *ret_n_fds)
{
        size_t got = 0, n_fds = 0;
        while (got == 0 || buf[got - 1] != 0) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(int) * 4)];
                } control = {};
                struct iovec iov = {.iov_base = buf + got, .iov_len = size - got};
                struct msghdr mh = {.msg_iov = &iov,
                                    .msg_iovlen = 1,
                                    .msg_control = &control,
                                    .msg_controllen = sizeof(control)};
                if (got == size)
                        return -EMSGSIZE;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (wait && poll(&p, 1, -1) < 0 && errno != EINTR)
                        return negative_errno();
                ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
                if (n <= 0)
                        return n == 0 ? -ECONNRESET : negative_errno();
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                for (size_t i = 0; i < k; i++)
                                        safe_close(((int *)CMSG_DATA(c))[i]);
                                n_fds += k;
                        }
                got += (size_t)n;
        }
        if (ret_n_fds)
                *ret_n_fds = n_fds;
        return 0;
}

/* The kernel's part of a lease of device dev: /dev/iommu (with the daemon's accounting
 * request) and the device's cdev, opened by the node the bench found at start, as the
 * daemon opens it by the number it keeps. */
static int kernel_open(const struct bench *b, unsigned dev, int fds[2], char **ret_detail)
{
        bool accounting;
        if (dev >= b->n_devices)
                return -EINVAL;
        int r = vfio_iommu_open_raw(b->root, VFIO_BACKEND_IOMMUFD, VFIO_IOMMU_PROCESS_ACCOUNTING,
                                    &fds[0], &accounting, ret_detail);
        if (r < 0)
                return r;
        fds[1] = root_openat(b->root, b->cdev_node[dev], O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fds[1] < 0) {
                r = fds[1];
                fds[0] = safe_close(fds[0]);
        }
        return r;
}

/* One process, one thread, one epoll loop, like the daemon: the first message of each
 * pair is answered with two fds, the second with none. A first message that starts with
 * 'k' and a device index ('a' + index) is answered with that device's kernel handles,
 * opened for it. Returns when lfd is shut down. */
static void raw_server(const struct bench *b, int lfd)
{
        int ep = epoll_create1(EPOLL_CLOEXEC);
        int fds[2] = {open("/dev/null", O_RDONLY | O_CLOEXEC),
                      open("/dev/null", O_RDONLY | O_CLOEXEC)};
        char reply1[RAW_REPLY1], reply2[RAW_REPLY2], buf[4096];
        memset(reply1, 'r', sizeof(reply1));
        memset(reply2, 'r', sizeof(reply2));
        reply1[sizeof(reply1) - 1] = reply2[sizeof(reply2) - 1] = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
        if (ep < 0 || fds[0] < 0 || fds[1] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
                return;
        bool second[4096] = {};
        for (;;) {
                struct epoll_event e[64];
                int n = epoll_wait(ep, e, 64, -1);
                for (int i = 0; i < n; i++) {
                        int fd = e[i].data.fd;
                        if (fd == lfd) {
                                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                                if (c == -1 && errno == EINVAL)
                                        goto out; /* shut down: the run is over */
                                struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                                if (c >= 0 &&
                                    (c >= 4096 || epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) < 0))
                                        safe_close(c);
                                continue;
                        }
                        if (recv_msg(fd, buf, sizeof(buf), false, NULL) < 0) {
                                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                                safe_close(fd);
                                continue;
                        }
                        int kfds[2];
                        if (second[fd])
                                (void)send_msg(fd, reply2, sizeof(reply2), NULL, 0);
                        else if (buf[0] != 'k')
                                (void)send_msg(fd, reply1, sizeof(reply1), fds, 2);
                        else if (kernel_open(b, (unsigned)(buf[1] - 'a'), kfds, NULL) < 0)
                                (void)send_msg(fd, reply1, sizeof(reply1), NULL, 0);
                        else {
                                (void)send_msg(fd, reply1, sizeof(reply1), kfds, 2);
                                safe_close(kfds[0]);
                                safe_close(kfds[1]);
                        }
                        second[fd] = !second[fd];
                }
        }
out:
        safe_close(fds[0]);
        safe_close(fds[1]);
        safe_close(ep);
}

static int raw_connect(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                safe_close(fd);
                return r;
        }
        return fd;
}

static int op_raw(struct client *c, unsigned dev, bool kernel)
{
        char call1[RAW_CALL1], call2[RAW_CALL2], buf[4096];
        size_t n_fds;
        memset(call1, 'c', sizeof(call1));
        memset(call2, 'c', sizeof(call2));
        call1[sizeof(call1) - 1] = call2[sizeof(call2) - 1] = 0;
        if (kernel) {
                call1[0] = 'k';
                call1[1] = (char)('a' + dev);
        }
        int r = send_msg(c->raw, call1, sizeof(call1), NULL, 0);
        if (r >= 0)
                r = recv_msg(c->raw, buf, sizeof(buf), true, &n_fds);
        if (r >= 0 && n_fds != 2)
                r = -EBADMSG;
        if (r >= 0)
                r = send_msg(c->raw, call2, sizeof(call2), NULL, 0);
        if (r >= 0)
                r = recv_msg(c->raw, buf, sizeof(buf), true, &n_fds);
        return r;
}

/* ---- daemon and kernel -------------------------------------------------------------- */

static int op_daemon(struct client *c, unsigned dev)
{
        const char *device = c->b->devices[dev];
        struct vfiod_lease *l = NULL;
        free(c->detail);
        c->detail = NULL;
        uint64_t t0 = now_ns();
        int r = vfiod_client_acquire(c->daemon, &device, 1, "iommufd", -1, &l, &c->detail);
        if (r < 0)
                return r;
        c->samples[SERIES_ACQUIRE][c->n_samples[SERIES_ACQUIRE]++] = now_ns() - t0;
        uint64_t id = l->id;
        bool fds_ok = l->iommufd >= 0 && l->n_devices == 1 && l->devices[0].fd >= 0;
        vfiod_lease_free(l);
        r = vfiod_client_release(c->daemon, id, &c->detail);
        return r < 0 ? r : fds_ok ? 0 : -EBADMSG;
}

static int op_kernel(struct client *c, unsigned dev)
{
        int fds[2];
        free(c->detail);
        c->detail = NULL;
        int r = kernel_open(c->b, dev, fds, &c->detail);
        if (r < 0)
                return r;
        safe_close(fds[0]);
        safe_close(fds[1]);
        return 0;
}

static int run_block(struct client *c)
{
        struct bench *b = c->b;
        unsigned dev = c->index % b->n_devices;
        for (unsigned i = 0; i < b->per_block; i++) {
                pthread_mutex_lock(&b->device_lock[dev]);
                uint64_t t0 = now_ns();
                int r = b->mode == MODE_DAEMON       ? op_daemon(c, dev)
                        : b->mode == MODE_RAW        ? op_raw(c, dev, false)
                        : b->mode == MODE_RAW_KERNEL ? op_raw(c, dev, true)
                                                     : op_kernel(c, dev);
                uint64_t t1 = now_ns();
                pthread_mutex_unlock(&b->device_lock[dev]);
                if (r < 0)
                        return r;
                c->samples[b->mode][c->n_samples[b->mode]++] = t1 - t0;
        }
        return 0;
}

static void *client_thread(void *userdata)
{
        struct client *c = userdata;
        for (;;) {
                pthread_barrier_wait(&c->b->start);
                if (c->b->stop)
                        return NULL;
                if (c->error == 0) {
                        int r = run_block(c);
                        if (r < 0) {
                                c->error = r;
                                fprintf(stderr, "daemon-bench: client %u: %s: %s%s%s\n", c->index,
                                        mode_names[c->b->mode], strerror(-r), c->detail ? ": " : "",
                                        c->detail ? c->detail : "");
                        }
                }
                pthread_barrier_wait(&c->b->done);
        }
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double percentile_us(const uint64_t *v, size_t n, unsigned pct)
{
        size_t i = (n * pct + 99) / 100;
        return (double)v[i > 0 ? i - 1 : 0] / 1000.0;
}

int main(int argc, char **argv)
{
        static struct bench b;
        const char *root = NULL;
        if (argc > 2 && strcmp(argv[1], "--root") == 0) {
                root = argv[2];
                argc -= 2;
                argv += 2;
        }
        if (argc < 5) {
                fprintf(stderr,
                        "usage: daemon-bench [--root DIR] SOCKET CLIENTS ROUNDS DEVICE...\n");
                return 2;
        }
        b.socket = argv[1];
        b.clients = (unsigned)strtoul(argv[2], NULL, 10);
        b.rounds = (unsigned)strtoul(argv[3], NULL, 10);
        b.n_devices = (unsigned)(argc - 4);
        if (b.clients == 0 || b.clients > MAX_CLIENTS || b.rounds == 0 ||
            b.n_devices > MAX_DEVICES) {
                fprintf(stderr,
                        "daemon-bench: 1-%d clients, at least 1 round, at most %d devices\n",
                        MAX_CLIENTS, MAX_DEVICES);
                return 2;
        }
        for (unsigned i = 0; i < b.n_devices; i++) {
                b.devices[i] = argv[4 + i];
                if (pci_addr_parse(b.devices[i], &b.addrs[i]) < 0) {
                        fprintf(stderr, "daemon-bench: bad address %s\n", b.devices[i]);
                        return 2;
                }
                pthread_mutex_init(&b.device_lock[i], NULL);
        }
        int r = root_open(root, &b.root);
        if (r < 0) {
                fprintf(stderr, "daemon-bench: cannot open %s: %s\n", root ? root : "/",
                        strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < b.n_devices; i++) {
                int n;
                r = vfio_device_cdev_index(b.root, &b.addrs[i], &n);
                if (r < 0) {
                        fprintf(stderr, "daemon-bench: %s has no VFIO cdev: %s\n", b.devices[i],
                                strerror(-r));
                        return 1;
                }
                vfio_cdev_path(n, b.cdev_node[i]);
        }
        b.blocks = b.rounds < BLOCKS_MAX ? b.rounds : BLOCKS_MAX;
        b.per_block = b.rounds / b.blocks;

        /* The raw server, on a socket next to the daemon's. */
        snprintf(b.raw_socket, sizeof(b.raw_socket), "%s.raw-bench", b.socket);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", b.raw_socket);
        (void)unlink(b.raw_socket);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            listen(lfd, SOMAXCONN) < 0) {
                fprintf(stderr, "daemon-bench: %s: %m\n", b.raw_socket);
                return 1;
        }
        /* Forked before any thread exists; it serves until the socket is shut down. */
        pid_t server = fork();
        if (server < 0) {
                fprintf(stderr, "daemon-bench: fork: %m\n");
                return 1;
        }
        if (server == 0) {
                raw_server(&b, lfd);
                _exit(0);
        }

        struct client *clients = calloc(b.clients, sizeof(*clients));
        pthread_t *threads = calloc(b.clients, sizeof(*threads));
        if (!clients || !threads)
                return 1;
        pthread_barrier_init(&b.start, NULL, b.clients + 1);
        pthread_barrier_init(&b.done, NULL, b.clients + 1);
        for (unsigned i = 0; i < b.clients; i++) {
                struct client *c = &clients[i];
                c->b = &b;
                c->index = i;
                for (int m = 0; m <= _MODE_MAX; m++)
                        c->samples[m] = calloc(b.per_block * b.blocks, sizeof(uint64_t));
                r = vfiod_client_connect(b.socket, &c->daemon);
                if (r < 0) {
                        fprintf(stderr, "daemon-bench: %s: %s\n", b.socket, strerror(-r));
                        return 1;
                }
                c->raw = raw_connect(b.raw_socket);
                if (c->raw < 0) {
                        fprintf(stderr, "daemon-bench: %s: %s\n", b.raw_socket, strerror(-c->raw));
                        return 1;
                }
                pthread_create(&threads[i], NULL, client_thread, c);
        }

        /* A warm-up block of each mode, not counted, then the measured blocks. */
        for (int block = -1; block < (int)b.blocks; block++)
                for (int m = 0; m < _MODE_MAX; m++) {
                        b.mode = m;
                        pthread_barrier_wait(&b.start);
                        pthread_barrier_wait(&b.done);
                        if (block < 0)
                                for (unsigned i = 0; i < b.clients; i++) {
                                        clients[i].n_samples[m] = 0;
                                        clients[i].n_samples[SERIES_ACQUIRE] = 0;
                                }
                }
        b.stop = true;
        pthread_barrier_wait(&b.start);
        for (unsigned i = 0; i < b.clients; i++)
                pthread_join(threads[i], NULL);
        /* The clients' raw connections go first: the server sees them end, then its
         * listening socket is shut down (the socket is shared with the child). */
        for (unsigned i = 0; i < b.clients; i++)
                clients[i].raw = safe_close(clients[i].raw);
        shutdown(lfd, SHUT_RDWR);
        int status;
        if (waitpid(server, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fprintf(stderr, "daemon-bench: the raw server did not end cleanly\n");

        int failed = 0;
        for (unsigned i = 0; i < b.clients; i++)
                failed |= clients[i].error != 0;
        for (int m = 0; !failed && m <= _MODE_MAX; m++) {
                size_t n = 0;
                for (unsigned i = 0; i < b.clients; i++)
                        n += clients[i].n_samples[m];
                uint64_t *all = calloc(n ? n : 1, sizeof(*all));
                if (!all)
                        return 1;
                n = 0;
                for (unsigned i = 0; i < b.clients; i++) {
                        memcpy(all + n, clients[i].samples[m],
                               clients[i].n_samples[m] * sizeof(*all));
                        n += clients[i].n_samples[m];
                }
                qsort(all, n, sizeof(*all), cmp_u64);
                printf("mode=%s clients=%u devices=%u n=%zu p50_us=%.1f p99_us=%.1f\n",
                       mode_names[m], b.clients, b.n_devices, n, percentile_us(all, n, 50),
                       percentile_us(all, n, 99));
                free(all);
        }
        for (unsigned i = 0; i < b.clients; i++) {
                vfiod_client_free(clients[i].daemon);
                safe_close(clients[i].raw);
                for (int m = 0; m <= _MODE_MAX; m++)
                        free(clients[i].samples[m]);
                free(clients[i].detail);
        }
        free(clients);
        free(threads);
        safe_close(lfd);
        (void)unlink(b.raw_socket);
        root_free(b.root);
        return failed ? 1 : 0;
}
