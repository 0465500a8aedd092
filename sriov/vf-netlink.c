/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "string-table.h"
#include "vf-netlink.h"

#define RTNL_REPLY_TIMEOUT_S 5

static void mnl_socket_closep(struct mnl_socket **s)
{
        if (*s)
                mnl_socket_close(*s);
}

static int open_rtnl(struct mnl_socket **ret)
{
        struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        /* An answer the kernel never sends must end in an error, not a hang. */
        struct timeval tmo = {.tv_sec = RTNL_REPLY_TIMEOUT_S};

        if (!nl)
                return negative_errno();
        if (setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) < 0 ||
            mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int r = negative_errno();
                mnl_socket_close(nl);
                return r;
        }
        *ret = nl;
        return 0;
}

/* Sends one request and reads until its ACK, feeding replies to cb. Every request asks
 * for an ACK: libmnl ends the receive loop only on an ACK, NLMSG_DONE or an error, and
 * the reply to a plain (non-dump) RTM_GETLINK is a lone RTM_NEWLINK with neither, so
 * without the ACK the loop would wait for ever on the next recvfrom. */
static int transact(struct mnl_socket *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
        /* A PF with many VFs answers with a large message; a short buffer truncates it. */
        static char buf[64 * 1024];
        unsigned portid = mnl_socket_get_portid(nl);
        ssize_t n;
        int r;

        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return negative_errno();
        do {
                n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
                if (n < 0)
                        return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
                r = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
        } while (r > 0);
        return r < 0 ? negative_errno() : 0;
}

struct get_ctx {
        int vf;
        struct vf_config *cfg;
        bool found;
};

static void parse_vf_info(const struct nlattr *info, struct get_ctx *g)
{
        struct vf_config c = {.vf = -1};
        const struct nlattr *a;

        mnl_attr_for_each_nested(a, info)
        {
                const void *p = mnl_attr_get_payload(a);
                uint16_t len = mnl_attr_get_payload_len(a);

                switch (mnl_attr_get_type(a)) {
                case IFLA_VF_MAC:
                        if (len >= sizeof(struct ifla_vf_mac)) {
                                const struct ifla_vf_mac *m = p;
                                c.vf = (int)m->vf;
                                memcpy(c.mac, m->mac, 6);
                                c.have |= VF_FIELD_MAC;
                        }
                        break;
                case IFLA_VF_VLAN:
                        if (len >= sizeof(struct ifla_vf_vlan)) {
                                const struct ifla_vf_vlan *v = p;
                                c.vlan = (uint16_t)v->vlan;
                                c.qos = (uint8_t)v->qos;
                                c.have |= VF_FIELD_VLAN;
                        }
                        break;
                case IFLA_VF_TRUST:
                        if (len >= sizeof(struct ifla_vf_trust)) {
                                const struct ifla_vf_trust *t = p;
                                /* -1 (all ones) means the driver does not implement it */
                                if (t->setting != (uint32_t)-1) {
                                        c.trust = t->setting;
                                        c.have |= VF_FIELD_TRUST;
                                }
                        }
                        break;
                case IFLA_VF_SPOOFCHK:
                        if (len >= sizeof(struct ifla_vf_spoofchk)) {
                                const struct ifla_vf_spoofchk *s = p;
                                if (s->setting != (uint32_t)-1) {
                                        c.spoofchk = s->setting;
                                        c.have |= VF_FIELD_SPOOFCHK;
                                }
                        }
                        break;
                case IFLA_VF_LINK_STATE:
                        if (len >= sizeof(struct ifla_vf_link_state)) {
                                const struct ifla_vf_link_state *l = p;
                                c.link_state = (enum vf_link_state)l->link_state;
                                c.have |= VF_FIELD_LINK_STATE;
                        }
                        break;
                case IFLA_VF_RATE:
                        if (len >= sizeof(struct ifla_vf_rate)) {
                                const struct ifla_vf_rate *r = p;
                                c.min_rate = r->min_tx_rate;
                                c.max_rate = r->max_tx_rate;
                                c.have |= VF_FIELD_RATE;
                        }
                        break;
                default:
                        break;
                }
        }
        if (c.vf == g->vf) {
                *g->cfg = c;
                g->found = true;
        }
}

static int get_cb(const struct nlmsghdr *nlh, void *data)
{
        struct get_ctx *g = data;
        const struct nlattr *a;

        mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg))
        {
                const struct nlattr *info;

                if (mnl_attr_get_type(a) != IFLA_VFINFO_LIST)
                        continue;
                mnl_attr_for_each_nested(info, a) if (mnl_attr_get_type(info) == IFLA_VF_INFO)
                        parse_vf_info(info, g);
        }
        return MNL_CB_OK;
}

int vf_netlink_get(const char *ifname, int vf, struct vf_config *ret)
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct get_ctx g = {.vf = vf, .cfg = ret};
        struct nlmsghdr *nlh;
        struct ifinfomsg *ifm;
        unsigned idx = if_nametoindex(ifname);
        int r;

        if (idx == 0)
                return negative_errno();
        r = open_rtnl(&nl);
        if (r < 0)
                return r;
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_GETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = (unsigned)time(NULL);
        ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        ifm->ifi_index = (int)idx;
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_VF);
        r = transact(nl, nlh, get_cb, &g);
        if (r < 0)
                return r;
        return g.found ? 0 : -ENOENT;
}

int vf_netlink_set(const char *ifname, const struct vf_config *want, unsigned fields)
{
        _cleanup_(mnl_socket_closep) struct mnl_socket *nl = NULL;
        char buf[MNL_SOCKET_BUFFER_SIZE];
        struct nlattr *list, *info;
        struct nlmsghdr *nlh;
        struct ifinfomsg *ifm;
        unsigned idx = if_nametoindex(ifname);
        uint32_t vf = (uint32_t)want->vf;
        int r;

        if (idx == 0)
                return negative_errno();
        r = open_rtnl(&nl);
        if (r < 0)
                return r;
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = RTM_SETLINK;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        nlh->nlmsg_seq = (unsigned)time(NULL);
        ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        ifm->ifi_index = (int)idx;
        list = mnl_attr_nest_start(nlh, IFLA_VFINFO_LIST);
        info = mnl_attr_nest_start(nlh, IFLA_VF_INFO);
        if (fields & VF_FIELD_MAC) {
                struct ifla_vf_mac m = {.vf = vf};
                memcpy(m.mac, want->mac, 6);
                mnl_attr_put(nlh, IFLA_VF_MAC, sizeof(m), &m);
        }
        if (fields & VF_FIELD_VLAN) {
                struct ifla_vf_vlan v = {.vf = vf, .vlan = want->vlan, .qos = want->qos};
                mnl_attr_put(nlh, IFLA_VF_VLAN, sizeof(v), &v);
        }
        if (fields & VF_FIELD_TRUST) {
                struct ifla_vf_trust t = {.vf = vf, .setting = want->trust};
                mnl_attr_put(nlh, IFLA_VF_TRUST, sizeof(t), &t);
        }
        if (fields & VF_FIELD_SPOOFCHK) {
                struct ifla_vf_spoofchk s = {.vf = vf, .setting = want->spoofchk};
                mnl_attr_put(nlh, IFLA_VF_SPOOFCHK, sizeof(s), &s);
        }
        if (fields & VF_FIELD_LINK_STATE) {
                struct ifla_vf_link_state l = {.vf = vf, .link_state = want->link_state};
                mnl_attr_put(nlh, IFLA_VF_LINK_STATE, sizeof(l), &l);
        }
        if (fields & VF_FIELD_RATE) {
                struct ifla_vf_rate rt = {
                        .vf = vf, .min_tx_rate = want->min_rate, .max_tx_rate = want->max_rate};
                mnl_attr_put(nlh, IFLA_VF_RATE, sizeof(rt), &rt);
        }
        mnl_attr_nest_end(nlh, info);
        mnl_attr_nest_end(nlh, list);
        return transact(nl, nlh, NULL, NULL);
}

int vf_mac_parse(const char *s, uint8_t ret[6])
{
        unsigned b[6];
        char tail;

        if (!s || strlen(s) != 17 ||
            sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
                   &tail) != 6)
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                if (s[i * 3] == ' ' || s[i * 3 + 1] == ' ')
                        return -EINVAL;
                ret[i] = (uint8_t)b[i];
        }
        return 0;
}

static const char *const vf_link_state_table[] = {
        [VF_LINK_STATE_AUTO] = "auto",
        [VF_LINK_STATE_ENABLE] = "enable",
        [VF_LINK_STATE_DISABLE] = "disable",
};

DEFINE_STRING_TABLE_TO_STRING_FALLBACK(vf_link_state, enum vf_link_state, "unknown");
DEFINE_STRING_TABLE_FROM_STRING(vf_link_state, enum vf_link_state);
