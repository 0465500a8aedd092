/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "preferred.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "detail.h"
#include "macro.h"

/* The available devices of one PF (or of one device that is no VF). */
struct pf_group {
        const struct fleet_device *first; /* any device of the group: pf, numa, root */
        size_t free;
        bool near[3]; /* a chosen device shares its PF, NUMA node, root complex */
};

struct state {
        const struct fleet_inventory *inv;
        unsigned char *avail, *chosen; /* per inventory index */
        struct pf_group *groups;
        size_t n_groups;
};

static int index_of(const struct fleet_inventory *inv, const char *name)
{
        const struct fleet_device *d = name ? fleet_inventory_find(inv, name) : NULL;
        return d ? (int)(d - inv->devices) : -1;
}

static bool same_pf(const struct fleet_device *a, const struct fleet_device *b)
{
        return strcmp(a->pf, b->pf) == 0;
}

static bool same_numa(const struct fleet_device *a, const struct fleet_device *b)
{
        return a->numa_node == b->numa_node;
}

static bool same_root(const struct fleet_device *a, const struct fleet_device *b)
{
        return strcmp(a->pcie_root, b->pcie_root) == 0;
}

/* Negative when group a is the better one to draw need devices from next. */
static int group_compare(const struct pf_group *a, const struct pf_group *b, size_t need,
                         int target_numa, bool have_target)
{
        for (size_t k = 0; k < ELEMENTSOF(a->near); k++) {
                bool x = a->near[k], y = b->near[k];
                if (k == 1 && have_target) {
                        x = x || a->first->numa_node == target_numa;
                        y = y || b->first->numa_node == target_numa;
                }
                if (x != y)
                        return x ? -1 : 1;
        }
        bool fa = a->free >= need, fb = b->free >= need;
        if (fa != fb)
                return fa ? -1 : 1;
        if (a->free != b->free)
                return (fa ? a->free < b->free : a->free > b->free) ? -1 : 1;
        return strcmp(a->first->pf, b->first->pf);
}

/* How many PFs of NUMA node numa cover need, largest first; SIZE_MAX when they cannot. */
static size_t pfs_needed(const struct state *s, int numa, size_t need)
{
        _cleanup_free_ size_t *sizes = calloc(s->n_groups ? s->n_groups : 1, sizeof(*sizes));
        size_t n = 0, total = 0, count = 0;

        if (!sizes)
                return SIZE_MAX;
        for (size_t i = 0; i < s->n_groups; i++)
                if (s->groups[i].first->numa_node == numa)
                        sizes[n++] = s->groups[i].free;
        while (total < need) {
                size_t best = SIZE_MAX;
                for (size_t i = 0; i < n; i++)
                        if (sizes[i] > 0 && (best == SIZE_MAX || sizes[i] > sizes[best]))
                                best = i;
                if (best == SIZE_MAX)
                        return SIZE_MAX;
                total += sizes[best];
                sizes[best] = 0;
                count++;
        }
        return count;
}

/* The groups of the available devices not chosen yet, and how near each is to those
 * chosen. */
static void groups_build(struct state *s)
{
        s->n_groups = 0;
        for (size_t i = 0; i < s->inv->n_devices; i++) {
                const struct fleet_device *d = &s->inv->devices[i];
                size_t g;
                if (!s->avail[i] || s->chosen[i])
                        continue;
                for (g = 0; g < s->n_groups; g++)
                        if (same_pf(s->groups[g].first, d))
                                break;
                if (g == s->n_groups)
                        s->groups[s->n_groups++] = (struct pf_group){.first = d};
                s->groups[g].free++;
        }
        for (size_t i = 0; i < s->inv->n_devices; i++) {
                const struct fleet_device *d = &s->inv->devices[i];
                if (!s->chosen[i])
                        continue;
                for (size_t g = 0; g < s->n_groups; g++) {
                        struct pf_group *p = &s->groups[g];
                        p->near[0] = p->near[0] || same_pf(p->first, d);
                        p->near[1] = p->near[1] || same_numa(p->first, d);
                        p->near[2] = p->near[2] || same_root(p->first, d);
                }
        }
}

/* The inventory indices of n names into *ret (free() it); -ENOENT names the first
 * unknown one. */
static int indices_of(const struct fleet_inventory *inv, const char *const *names, size_t n,
                      size_t **ret, char **ret_detail)
{
        _cleanup_free_ size_t *idx = calloc(n ? n : 1, sizeof(*idx));

        if (!idx)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int k = index_of(inv, names[i]);
                if (k < 0)
                        return detail_errno(ret_detail, -ENOENT, "no device \"%s\" in this pool",
                                            strna(names[i]));
                idx[i] = (size_t)k;
        }
        *ret = TAKE_PTR(idx);
        return 0;
}

int fleet_preferred_allocation(const struct fleet_inventory *inv, const char *const *available,
                               size_t n_available, const char *const *must, size_t n_must,
                               size_t size, const struct fleet_device ***ret, char **ret_detail)
{
        _cleanup_free_ size_t *a = NULL, *m = NULL;
        int r = indices_of(inv, available, n_available, &a, ret_detail);

        if (r >= 0)
                r = indices_of(inv, must, n_must, &m, ret_detail);
        if (r < 0)
                return r;
        return fleet_preferred_allocation_at(inv, a, n_available, m, n_must, size, ret, ret_detail);
}

int fleet_preferred_allocation_at(const struct fleet_inventory *inv, const size_t *available,
                                  size_t n_available, const size_t *must, size_t n_must,
                                  size_t size, const struct fleet_device ***ret, char **ret_detail)
{
        size_t n = inv->n_devices ? inv->n_devices : 1, n_avail = 0, n_chosen = 0;
        _cleanup_free_ unsigned char *avail = calloc(n, 1), *chosen = calloc(n, 1);
        _cleanup_free_ struct pf_group *groups = calloc(n, sizeof(*groups));
        _cleanup_free_ const struct fleet_device **out = NULL;
        struct state s = {.inv = inv, .avail = avail, .chosen = chosen, .groups = groups};

        if (!avail || !chosen || !groups)
                return -ENOMEM;
        for (size_t i = 0; i < n_available; i++) {
                size_t k = available[i];
                if (k >= inv->n_devices)
                        return -EINVAL;
                n_avail += !avail[k];
                avail[k] = 1;
        }
        for (size_t i = 0; i < n_must; i++) {
                size_t k = must[i];
                if (k >= inv->n_devices)
                        return -EINVAL;
                if (!avail[k])
                        return detail_errno(ret_detail, -EINVAL,
                                            "must-include device %s is not among the available "
                                            "ones",
                                            inv->devices[k].name);
                n_chosen += !chosen[k];
                chosen[k] = 1;
        }
        if (size == 0 || size < n_chosen || size > n_avail)
                return detail_errno(ret_detail, -EINVAL,
                                    "cannot choose %zu devices with %zu must-include among %zu "
                                    "available",
                                    size, n_chosen, n_avail);

        int target_numa = 0;
        bool have_target = false;
        while (n_chosen < size) {
                size_t need = size - n_chosen, best = 0;
                groups_build(&s);
                if (n_chosen == 0 && !have_target) {
                        bool one_fits = false;
                        for (size_t g = 0; g < s.n_groups; g++)
                                one_fits = one_fits || groups[g].free >= need;
                        size_t fewest = SIZE_MAX;
                        for (size_t g = 0; !one_fits && g < s.n_groups; g++) {
                                int numa = groups[g].first->numa_node;
                                size_t k = pfs_needed(&s, numa, need);
                                /* Fewest PFs; between equals, the lower node. */
                                if (k < fewest ||
                                    (k == fewest && k != SIZE_MAX && numa < target_numa)) {
                                        fewest = k;
                                        target_numa = numa;
                                }
                        }
                        have_target = fewest != SIZE_MAX;
                }
                for (size_t g = 1; g < s.n_groups; g++)
                        if (group_compare(&groups[g], &groups[best], need, target_numa,
                                          have_target) < 0)
                                best = g;
                size_t take = need < groups[best].free ? need : groups[best].free;
                for (size_t i = 0; take > 0 && i < inv->n_devices; i++)
                        if (avail[i] && !chosen[i] &&
                            same_pf(&inv->devices[i], groups[best].first)) {
                                chosen[i] = 1;
                                n_chosen++;
                                take--;
                        }
        }

        out = calloc(size, sizeof(*out));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0, k = 0; i < inv->n_devices; i++)
                if (chosen[i])
                        out[k++] = &inv->devices[i];
        *ret = TAKE_PTR(out);
        return 0;
}
