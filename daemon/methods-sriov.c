/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SetNumVFs and ConfigureVF: each runs as a job, in a worker process. */

#include "methods-internal.h"

/* ---- SR-IOV ------------------------------------------------------------------------- */

/* A carve: the PF's VF count set, the VFs on the driver asked for (in the worker). */
struct sriov_job {
        struct pci_addr pf;
        int numvfs;
        enum sriov_driver driver;
        /* The scan the call was checked against: read in the worker only (its copy of
         * the daemon's memory keeps it, whatever the loop does meanwhile). */
        const struct topology *topology;
};

static int sriov_job_work(struct server *s, void *data, char **ret_why)
{
        struct sriov_job *sj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        /* VFs for vfio-pci need it before the carve, which it would otherwise undo half
         * way. */
        int r = sj->driver == SRIOV_DRIVER_VFIO && sj->numvfs > 0
                        ? modules_need(s, VFIO_MODULE_BIT(VFIO_MODULE_VFIO_PCI), ret_why)
                        : 0;
        if (r >= 0)
                r = open_journal(s, &j);
        if (r >= 0)
                r = sriov_pf_set_numvfs(s->root, j, sj->topology, &sj->pf, sj->numvfs, sj->driver,
                                        ret_why);
        return r;
}

static void sriov_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct sriov_job *sj = j->data;
        server_invalidate(s);
        s->have_iommufd = -1;
        if (r >= 0)
                server_broadcast(s, "device-changed", &sj->pf, 0);
        if (!j->conn)
                return;
        if (r < 0) {
                (void)errno_error(j->conn, "sriov", &sj->pf, r, why);
                return;
        }
        struct sriov_pf info;
        json_object *p = json_object_new_object(), *vfs = json_object_new_array();
        if (!p || !vfs) {
                json_object_put(p);
                json_object_put(vfs);
                (void)conn_errorf(j->conn, "io.vfiod.OperationFailed", "operation", "sriov", NULL);
                return;
        }
        json_object_object_add(p, "vfs", vfs);
        if (sriov_pf_read(s->root, &sj->pf, &info) == 0)
                for (int i = 0; i < info.numvfs; i++) {
                        struct pci_addr a;
                        char buf[PCI_ADDR_STRLEN];
                        if (sriov_vf_address(&info, i, &a) == 0)
                                json_object_array_add(
                                        vfs, json_object_new_string(pci_addr_format(&a, buf)));
                }
        (void)conn_reply(j->conn, p, NULL, 0);
}

int method_set_numvfs(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addr pf;
                int64_t numvfs;
                char driver[32];
        } p;
        static const struct param table[] = {
                {"pf", PARAM_ADDRESS, true, offsetof(typeof(p), pf)},
                {"numvfs", PARAM_INT, true, offsetof(typeof(p), numvfs), .max = 65535},
                {"driver", PARAM_STRING, false, offsetof(typeof(p), driver), .size = 32},
        };
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        struct pci_addr pf = p.pf;
        int64_t n = p.numvfs;
        enum sriov_driver driver =
                p.driver[0] ? sriov_driver_from_string(p.driver) : SRIOV_DRIVER_VFIO;
        if (driver < 0)
                return params_invalid(c, "driver");

        const struct topology *t;
        r = server_topology_for(s, &pf, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        const struct pci_device *d;
        if (device_allowed(c, POLICY_OP_SRIOV, t, &pf, &d, NULL))
                return 0;
        for (size_t i = 0; i < d->n_virtfn; i++) {
                const struct pci_device *vf = topology_device(t, d->virtfn[i]);
                struct lease *l = vf ? lease_of_device(s, &vf->addr) : NULL;
                if (l)
                        return busy(c, d->name, "VF %s is leased to pid %d", vf->name, (int)l->pid);
        }

        struct sriov_job *sj = calloc(1, sizeof(*sj));
        if (!sj)
                return -ENOMEM;
        sj->pf = pf;
        sj->numvfs = (int)n;
        sj->driver = driver;
        sj->topology = t;
        /* The PF and the VFs it has now are busy while it runs. */
        _cleanup_free_ struct pci_addr *busy_set = calloc(1 + d->n_virtfn, sizeof(*busy_set));
        size_t n_busy = 0;
        if (!busy_set) {
                free(sj);
                return -ENOMEM;
        }
        busy_set[n_busy++] = pf;
        for (size_t i = 0; i < d->n_virtfn; i++) {
                const struct pci_device *vf = topology_device(t, d->virtfn[i]);
                if (vf)
                        busy_set[n_busy++] = vf->addr;
        }
        if (devices_taken(c, busy_set, n_busy)) {
                free(sj);
                return 0;
        }
        return call_job(c, "sriov", busy_set, n_busy, sriov_job_work, sriov_job_done, sj, free);
}

/* A VF's settings, written through the PF's netdev in the worker. */
struct vf_job {
        struct pci_addr pf;
        struct vf_config want;
        unsigned fields;
        const struct topology *topology; /* as struct sriov_job's */
};

static int vf_job_work(struct server *s, void *data, char **ret_why)
{
        struct vf_job *vj = data;
        _cleanup_(journal_freep) struct journal *j = NULL;
        int r = open_journal(s, &j);
        if (r >= 0)
                r = sriov_vf_configure(s->root, j, vj->topology, &vj->pf, &vj->want, vj->fields,
                                       ret_why);
        return r;
}

static void vf_job_done(struct server *s, struct job *j, int r, const char *why)
{
        struct vf_job *vj = j->data;
        if (!j->conn)
                return;
        (void)(r < 0 ? errno_error(j->conn, "configure-vf", &vj->pf, r, why)
                     : conn_reply(j->conn, NULL, NULL, 0));
}

int method_configure_vf(struct conn *c, struct jspan params, int *fds, size_t n_fds)
{
        struct server *s = c->server;
        struct {
                struct pci_addr pf;
                int64_t vf, vlan, qos, max_rate, min_rate;
                char mac[64], link_state[32];
                int trust, spoof_check;
        } p;
#define F(name) offsetof(typeof(p), name)
        static const struct param table[] = {
                {"pf", PARAM_ADDRESS, true, F(pf)},
                {"vf", PARAM_INT, true, F(vf), .max = 65535},
                {"mac", PARAM_STRING, false, F(mac), .size = 64},
                {"vlan", PARAM_INT, false, F(vlan), .max = 4095},
                {"qos", PARAM_INT, false, F(qos), .max = 7},
                {"trust", PARAM_BOOL, false, F(trust)},
                {"spoof_check", PARAM_BOOL, false, F(spoof_check)},
                {"link_state", PARAM_STRING, false, F(link_state), .size = 32},
                {"max_rate", PARAM_INT, false, F(max_rate), .max = UINT32_MAX},
                {"min_rate", PARAM_INT, false, F(min_rate), .max = UINT32_MAX},
        };
#undef F
        int r = READ_PARAMS(c, params, table, &p);
        if (r != 0)
                return r < 0 ? r : 0;
        struct pci_addr pf = p.pf;
        struct vf_config want = {.vf = (int)p.vf};
        unsigned fields = 0;
        if (p.mac[0]) {
                if (vf_mac_parse(p.mac, want.mac) < 0)
                        return params_invalid(c, "mac");
                fields |= VF_FIELD_MAC;
        }
        if (p.qos >= 0 && p.vlan < 0)
                return params_invalid(c, "qos"); /* a priority needs its VLAN */
        if (p.vlan >= 0) {
                want.vlan = (uint16_t)p.vlan;
                want.qos = p.qos >= 0 ? (uint8_t)p.qos : 0;
                fields |= VF_FIELD_VLAN;
        }
        if (p.trust >= 0) {
                want.trust = p.trust;
                fields |= VF_FIELD_TRUST;
        }
        if (p.spoof_check >= 0) {
                want.spoofchk = p.spoof_check;
                fields |= VF_FIELD_SPOOFCHK;
        }
        if (p.link_state[0]) {
                int ls = vf_link_state_from_string(p.link_state);
                if (ls < 0)
                        return params_invalid(c, "link_state");
                want.link_state = ls;
                fields |= VF_FIELD_LINK_STATE;
        }
        if (p.max_rate >= 0 || p.min_rate >= 0) {
                want.max_rate = p.max_rate >= 0 ? (uint32_t)p.max_rate : 0;
                want.min_rate = p.min_rate >= 0 ? (uint32_t)p.min_rate : 0;
                fields |= VF_FIELD_RATE;
        }
        if (fields == 0)
                return params_invalid(c, "mac");

        const struct topology *t;
        r = server_topology_for(s, &pf, 1, &t);
        if (r < 0)
                return errno_error(c, "scan", NULL, r, NULL);
        if (device_allowed(c, POLICY_OP_SRIOV, t, &pf, NULL, NULL) || devices_taken(c, &pf, 1))
                return 0;
        struct vf_job *vj = calloc(1, sizeof(*vj));
        if (!vj)
                return -ENOMEM;
        *vj = (struct vf_job){.pf = pf, .want = want, .fields = fields, .topology = t};
        return call_job(c, "configure-vf", &pf, 1, vf_job_work, vf_job_done, vj, free);
}
