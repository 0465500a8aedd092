/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark (run in the lab by bench/lab-dma.sh): DMA map+unmap throughput through
 * vfiod's API (vfio_dma_map/unmap: checks, table) against the bare ioctls on the very
 * same container or IOAS, interleaved operation by operation within one process, over
 * several rounds (the medians are printed). Two patterns:
 * "pair" maps and unmaps one chunk at a time; "batch" maps N chunks at consecutive
 * IOVAs, then unmaps them one by one. Prints one line per pattern with the median
 * nanoseconds per map+unmap of each side and the API's overhead: the median over the
 * rounds of each round's time ratio.
 *
 * usage: dma-bench DEVICE type1|iommufd CHUNK_BYTES N ROUNDS */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#include "detail.h"
#include "device.h"
#include "dma.h"
#include "iommu.h"
#include "vfio-uapi.h"

#define IOVA_BASE 0x1000000ull

struct bench {
        struct vfio_iommu *m;
        enum vfio_backend backend;
        uint8_t *buf;
        uint64_t chunk;
        unsigned n;
};

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int direct_map(struct bench *b, void *va, uint64_t iova)
{
        int fd = vfio_iommu_fd(b->m);

        if (b->backend == VFIO_BACKEND_TYPE1) {
                struct vfio_iommu_type1_dma_map map = {
                        .argsz = sizeof(map),
                        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
                        .vaddr = (uintptr_t)va,
                        .iova = iova,
                        .size = b->chunk,
                };
                return ioctl(fd, VFIO_IOMMU_MAP_DMA, &map) < 0 ? -errno : 0;
        }
        struct iommu_ioas_map map = {
                .size = sizeof(map),
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                         IOMMU_IOAS_MAP_WRITEABLE,
                .ioas_id = vfio_iommu_ioas(b->m),
                .user_va = (uintptr_t)va,
                .length = b->chunk,
                .iova = iova,
        };
        return ioctl(fd, IOMMU_IOAS_MAP, &map) < 0 ? -errno : 0;
}

static int direct_unmap(struct bench *b, uint64_t iova)
{
        int fd = vfio_iommu_fd(b->m);

        if (b->backend == VFIO_BACKEND_TYPE1) {
                struct vfio_iommu_type1_dma_unmap unmap = {
                        .argsz = sizeof(unmap),
                        .iova = iova,
                        .size = b->chunk,
                };
                return ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0 ? -errno : 0;
        }
        struct iommu_ioas_unmap unmap = {
                .size = sizeof(unmap),
                .ioas_id = vfio_iommu_ioas(b->m),
                .iova = iova,
                .length = b->chunk,
        };
        return ioctl(fd, IOMMU_IOAS_UNMAP, &unmap) < 0 ? -errno : 0;
}

static int api_map(struct bench *b, void *va, uint64_t iova)
{
        return vfio_dma_map(b->m, va, iova, b->chunk, VFIO_DMA_READ_WRITE, NULL);
}

static int api_unmap(struct bench *b, uint64_t iova)
{
        return vfio_dma_unmap(b->m, iova, b->chunk, NULL);
}

struct side {
        int (*map)(struct bench *b, void *va, uint64_t iova);
        int (*unmap)(struct bench *b, uint64_t iova);
};

/* Times one operation (a map, an unmap, or a map+unmap pair). */
static int timed(uint64_t *acc, int r1, uint64_t t0)
{
        *acc += now_ns() - t0;
        return r1;
}

/* One round: n map+unmap of each side, interleaved operation by operation (the side
 * going first alternates) so that any drift of the machine hits both alike. One side
 * works at IOVA_BASE, the other n chunks above it, and swap exchanges them (rounds
 * alternate it, as the kernel's cost can depend on the place). Fills the nanoseconds
 * per map+unmap of each side; -1 on any failure. */
static int run(struct bench *b, bool batch, bool swap, double *ret_api, double *ret_direct)
{
        static const struct side both[2] = {{api_map, api_unmap}, {direct_map, direct_unmap}};
        /* DMA_BENCH_AA=1 times the bare ioctls against themselves: what the harness
         * itself contributes (it should come out near 0). */
        static const struct side aa[2] = {{direct_map, direct_unmap}, {direct_map, direct_unmap}};
        const struct side *sides = getenv("DMA_BENCH_AA") ? aa : both;
        uint64_t acc[2] = {0, 0}, span = (uint64_t)b->n * b->chunk;

        for (int phase = 0; phase < (batch ? 2 : 1); phase++)
                for (unsigned i = 0; i < b->n; i++)
                        for (int k = 0; k < 2; k++) {
                                int w = (int)((i + (unsigned)k) % 2); /* who goes now */
                                const struct side *s = &sides[w];
                                uint64_t off = batch ? (uint64_t)i * b->chunk : 0;
                                uint64_t iova = IOVA_BASE + ((w != 0) != swap ? span : 0) + off;
                                uint64_t t0 = now_ns();
                                int r;

                                if (!batch) {
                                        r = s->map(b, b->buf + off, iova);
                                        if (r >= 0)
                                                r = s->unmap(b, iova);
                                } else if (phase == 0)
                                        r = s->map(b, b->buf + off, iova);
                                else
                                        r = s->unmap(b, iova);
                                if (timed(&acc[w], r, t0) < 0)
                                        return -1;
                        }
        *ret_api = (double)acc[0] / b->n;
        *ret_direct = (double)acc[1] / b->n;
        return 0;
}

static int cmp_double(const void *x, const void *y)
{
        double a = *(const double *)x, c = *(const double *)y;
        return a < c ? -1 : a > c;
}

static double median(double *v, unsigned n)
{
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
        struct vfio_iommu *m = NULL;
        struct vfio_device *d = NULL;
        struct root *root = NULL;
        struct pci_addr a;
        struct bench b = {0};
        char *why = NULL;
        unsigned rounds;
        double *ta, *td, *tr;
        int r;

        if (argc != 6 || pci_addr_parse(argv[1], &a) < 0 ||
            (b.backend = vfio_backend_from_string(argv[2])) < 0 ||
            b.backend == VFIO_BACKEND_NOIOMMU) {
                fprintf(stderr, "usage: dma-bench DEVICE type1|iommufd CHUNK_BYTES N ROUNDS\n");
                return 2;
        }
        b.chunk = strtoull(argv[3], NULL, 0);
        b.n = (unsigned)strtoul(argv[4], NULL, 0);
        rounds = (unsigned)strtoul(argv[5], NULL, 0);
        if (b.chunk == 0 || b.n == 0 || rounds == 0 || b.chunk * b.n > (1ull << 29)) {
                fprintf(stderr, "dma-bench: bad CHUNK_BYTES, N or ROUNDS\n");
                return 2;
        }
        ta = calloc(rounds, sizeof(*ta));
        td = calloc(rounds, sizeof(*td));
        tr = calloc(rounds, sizeof(*tr));
        r = root_open(NULL, &root);
        if (r >= 0)
                r = vfio_iommu_new(root, b.backend, 0, &m, &why);
        if (r >= 0)
                r = vfio_device_open(m, &a, &d, &why);
        if (r < 0 || !ta || !td || !tr) {
                fprintf(stderr, "dma-bench: %s\n", detail_or_strerror(why, r));
                return 1;
        }
        b.m = m;
        /* Both sides map the same memory, at different IOVAs. */
        b.buf = mmap(NULL, b.chunk * b.n, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (b.buf == MAP_FAILED) {
                perror("dma-bench: mmap");
                return 1;
        }
        /* The API reads the IOVA ranges on its first map: do that outside the timing. */
        if (api_map(&b, b.buf, IOVA_BASE) < 0 || api_unmap(&b, IOVA_BASE) < 0) {
                fprintf(stderr, "dma-bench: warm-up map failed\n");
                return 1;
        }

        for (int batch = 0; batch <= 1; batch++) {
                for (unsigned i = 0; i < rounds; i++)
                        if (run(&b, batch, i % 2, &ta[i], &td[i]) < 0) {
                                fprintf(stderr, "dma-bench: a map or unmap failed in round %u\n",
                                        i);
                                return 1;
                        }
                /* Each round interleaves both sides, so its ratio is a fair sample;
                 * the median ratio shrugs off rounds a busy host disturbed. */
                for (unsigned i = 0; i < rounds; i++)
                        tr[i] = ta[i] / td[i];
                double ma = median(ta, rounds), md = median(td, rounds);
                double mr = median(tr, rounds);
                printf("backend=%s chunk=%" PRIu64 " pattern=%s n=%u rounds=%u api_ns=%.0f "
                       "direct_ns=%.0f api_ops=%.0f direct_ops=%.0f overhead_pct=%.2f\n",
                       argv[2], b.chunk, batch ? "batch" : "pair", b.n, rounds, ma, md, 1e9 / ma,
                       1e9 / md, (mr - 1.0) * 100.0);
        }
        vfio_device_free(d);
        vfio_iommu_free(m);
        root_free(root);
        munmap(b.buf, b.chunk * b.n);
        free(ta);
        free(td);
        free(tr);
        free(why);
        return 0;
}
