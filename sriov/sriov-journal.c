/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal's SR-IOV records: for each PF vfiod changed, its original VF count and
 * autoprobe, the original settings of the VFs it configured, and the VF token it set. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "sriov.h"

/* "<address>.sriov.json", next to the device binding records. */
static const struct journal_kind sriov_kind = {
        .suffix = ".sriov",
        .max_size = 1 << 20,
};

void sriov_journal_entry_done(struct sriov_journal_entry *e)
{
        free(e->saved);
        e->saved = NULL;
        e->n_saved = 0;
        free(e->vf_token);
        e->vf_token = NULL;
}

static json_object *vf_config_to_json(const struct vf_config *c)
{
        json_object *o = json_object_new_object();
        char mac[18];

        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", c->mac[0], c->mac[1], c->mac[2],
                 c->mac[3], c->mac[4], c->mac[5]);
        json_object_object_add(o, "vf", json_object_new_int(c->vf));
        json_object_object_add(o, "fields", json_object_new_int((int)c->have));
        json_object_object_add(o, "mac", json_object_new_string(mac));
        json_object_object_add(o, "vlan", json_object_new_int(c->vlan));
        json_object_object_add(o, "qos", json_object_new_int(c->qos));
        json_object_object_add(o, "trust", json_object_new_boolean(c->trust));
        json_object_object_add(o, "spoofchk", json_object_new_boolean(c->spoofchk));
        json_object_object_add(o, "link_state",
                               json_object_new_string(vf_link_state_to_string(c->link_state)));
        json_object_object_add(o, "min_rate", json_object_new_int64(c->min_rate));
        json_object_object_add(o, "max_rate", json_object_new_int64(c->max_rate));
        return o;
}

static int vf_config_from_json(json_object *o, struct vf_config *c)
{
        json_object *v;
        int ls;

        *c = (struct vf_config){0};
        if (!json_object_object_get_ex(o, "vf", &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        c->vf = json_object_get_int(v);
        if (!json_object_object_get_ex(o, "fields", &v))
                return -EBADMSG;
        c->have = (unsigned)json_object_get_int(v);
        if (!json_object_object_get_ex(o, "mac", &v) ||
            vf_mac_parse(json_object_get_string(v), c->mac) < 0)
                return -EBADMSG;
        if (json_object_object_get_ex(o, "vlan", &v))
                c->vlan = (uint16_t)json_object_get_int(v);
        if (json_object_object_get_ex(o, "qos", &v))
                c->qos = (uint8_t)json_object_get_int(v);
        if (json_object_object_get_ex(o, "trust", &v))
                c->trust = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "spoofchk", &v))
                c->spoofchk = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "link_state", &v) &&
            (ls = vf_link_state_from_string(json_object_get_string(v))) >= 0)
                c->link_state = (enum vf_link_state)ls;
        if (json_object_object_get_ex(o, "min_rate", &v))
                c->min_rate = (uint32_t)json_object_get_int64(v);
        if (json_object_object_get_ex(o, "max_rate", &v))
                c->max_rate = (uint32_t)json_object_get_int64(v);
        return 0;
}

int sriov_journal_put(struct journal *j, const struct sriov_journal_entry *e)
{
        json_object *o = journal_record_new(&e->addr), *saved = json_object_new_array();
        int r;

        if (!o || !saved) {
                json_object_put(o);
                json_object_put(saved);
                return -ENOMEM;
        }
        for (size_t i = 0; i < e->n_saved; i++)
                json_object_array_add(saved, vf_config_to_json(&e->saved[i]));
        json_object_object_add(o, "kind", json_object_new_string("sriov"));
        json_object_object_add(o, "original_numvfs", json_object_new_int(e->original_numvfs));
        json_object_object_add(o, "original_autoprobe",
                               json_object_new_boolean(e->original_autoprobe));
        json_object_object_add(o, "saved_vfs", saved);
        if (e->vf_token)
                json_object_object_add(o, "vf_token", json_object_new_string(e->vf_token));
        r = journal_record_put(j, &sriov_kind, &e->addr, o);
        json_object_put(o);
        return r;
}

/* The members of a record past its address; o stays the caller's. */
static int sriov_journal_entry_from_json(json_object *o, struct sriov_journal_entry *e)
{
        json_object *v, *saved;
        size_t n;
        int r = 0;

        if (!json_object_object_get_ex(o, "original_numvfs", &v) ||
            !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        e->original_numvfs = json_object_get_int(v);
        e->original_autoprobe = json_object_object_get_ex(o, "original_autoprobe", &v) &&
                                json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "vf_token", &v) &&
            json_object_is_type(v, json_type_string) &&
            !(e->vf_token = strdup(json_object_get_string(v))))
                return -ENOMEM;
        if (!json_object_object_get_ex(o, "saved_vfs", &saved) ||
            !json_object_is_type(saved, json_type_array))
                return 0;
        n = json_object_array_length(saved);
        e->saved = calloc(n ? n : 1, sizeof(*e->saved));
        if (!e->saved)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = vf_config_from_json(json_object_array_get_idx(saved, i), &e->saved[i]);
        e->n_saved = r >= 0 ? n : 0;
        return r;
}

int sriov_journal_get(struct journal *j, const struct pci_addr *pf, struct sriov_journal_entry *ret)
{
        struct sriov_journal_entry e = {.addr = *pf};
        json_object *o;
        int r = journal_record_get(j, &sriov_kind, pf, &o);

        if (r < 0)
                return r;
        r = sriov_journal_entry_from_json(o, &e);
        json_object_put(o);
        if (r < 0) {
                sriov_journal_entry_done(&e);
                return r;
        }
        *ret = e;
        return 0;
}

int sriov_journal_remove(struct journal *j, const struct pci_addr *pf)
{
        return journal_record_remove(j, &sriov_kind, pf);
}

int sriov_journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n)
{
        return journal_record_list(j, &sriov_kind, ret, ret_n);
}

int sriov_pf_vf_token(struct journal *j, const struct pci_addr *pf, char **ret)
{
        struct sriov_journal_entry e = {0};
        int r = sriov_journal_get(j, pf, &e);

        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e.vf_token);
        sriov_journal_entry_done(&e);
        return 0;
}
