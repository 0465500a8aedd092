/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A NIC VF's settings, as the PF driver holds them, over rtnetlink (RTM_GETLINK with
 * RTEXT_FILTER_VF, RTM_SETLINK with IFLA_VFINFO_LIST). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

enum vf_field {
        VF_FIELD_MAC = 1u << 0,
        VF_FIELD_VLAN = 1u << 1, /* vlan and qos together */
        VF_FIELD_TRUST = 1u << 2,
        VF_FIELD_SPOOFCHK = 1u << 3,
        VF_FIELD_LINK_STATE = 1u << 4,
        VF_FIELD_RATE = 1u << 5, /* min and max together */
};

enum vf_link_state {
        VF_LINK_STATE_AUTO = 0,
        VF_LINK_STATE_ENABLE = 1,
        VF_LINK_STATE_DISABLE = 2,
        _VF_LINK_STATE_INVALID = -EINVAL,
};

struct vf_config {
        int vf;
        unsigned have; /* VF_FIELD_* the driver reported */
        uint8_t mac[6];
        uint16_t vlan; /* 0: none */
        uint8_t qos;
        bool trust;
        bool spoofchk;
        enum vf_link_state link_state;
        uint32_t min_rate, max_rate; /* Mbit/s, 0: unlimited */
};

/* Reads VF vf of the PF interface ifname. -ENOENT when the driver lists no such VF. */
int vf_netlink_get(const char *ifname, int vf, struct vf_config *ret);

/* Applies the fields of want named in `fields`, in one RTM_SETLINK. The driver's errno
 * comes back (-EOPNOTSUPP for a setting it does not implement). */
int vf_netlink_set(const char *ifname, const struct vf_config *want, unsigned fields);

/* "02:11:22:33:44:55" */
int vf_mac_parse(const char *s, uint8_t ret[6]);
const char *vf_link_state_to_string(enum vf_link_state s);
/* "auto", "enable", "disable"; _VF_LINK_STATE_INVALID for anything else. */
enum vf_link_state vf_link_state_from_string(const char *s);
