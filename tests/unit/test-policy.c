/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's policy (daemon/policy.c): parsing, every selector kind, users, groups,
 * deny by default, and the errors bad files get. Devices come from a small topology
 * built here: a GPU, an SR-IOV NIC PF with three VFs, an NVMe drive, a host bridge (type 0
 * header, class 0600) and a root port (type 1 header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "policy.h"

enum { GPU, PF, VF0, VF1, VF2, NVME, HOST_BRIDGE, ROOT_PORT, N_DEVICES };

static struct pci_device devices[N_DEVICES];
static int pf_virtfn[] = {VF0, VF1, VF2};
static struct topology topo = {.devices = devices, .n_devices = N_DEVICES};

static void device_init(int i, const char *addr, uint16_t vendor, uint16_t device, uint32_t class)
{
        struct pci_device *d = &devices[i];
        assert_int_equal(pci_addr_parse(addr, &d->addr), 0);
        pci_addr_format(&d->addr, d->name);
        d->vendor = vendor;
        d->device = device;
        d->class = class;
        d->have_ids = true;
        d->physfn = -1;
}

static int topology_setup(void **state)
{
        device_init(GPU, "0000:00:02.0", 0x8086, 0xa780, 0x030000);
        device_init(PF, "0000:02:00.0", 0x8086, 0x10c9, 0x020000);
        device_init(VF0, "0000:02:10.0", 0x8086, 0x10ca, 0x020000);
        device_init(VF1, "0000:02:10.2", 0x8086, 0x10ca, 0x020000);
        device_init(VF2, "0000:02:10.4", 0x8086, 0x10ca, 0x020000);
        device_init(NVME, "0000:03:00.0", 0x144d, 0xa808, 0x010802);
        device_init(HOST_BRIDGE, "0000:00:00.0", 0x8086, 0xa700, 0x060000);
        device_init(ROOT_PORT, "0000:00:01.0", 0x8086, 0xa70d, 0x060400);
        devices[ROOT_PORT].is_bridge = true;
        devices[PF].virtfn = pf_virtfn;
        devices[PF].n_virtfn = ELEMENTSOF(pf_virtfn);
        devices[VF0].physfn = devices[VF1].physfn = devices[VF2].physfn = PF;
        return 0;
}

static const struct policy_client nobody = {.uid = 65534, .gid = 65534};
static const struct policy_client someone = {.uid = 1000, .gid = 1000};

static struct policy *parse(const char *text)
{
        struct policy *p = NULL;
        char *detail = NULL;
        int r = policy_parse(text, &p, &detail);
        if (r < 0)
                fail_msg("policy_parse: %s: %s", strerror(-r), detail ? detail : "");
        free(detail);
        return p;
}

/* The devices of the topology that rule text grants op to client c on, as a bitmask. */
static unsigned granted(const char *text, const struct policy_client *c, enum policy_op op)
{
        _cleanup_(policy_freep) struct policy *p = parse(text);
        unsigned mask = 0;
        for (int i = 0; i < N_DEVICES; i++)
                if (policy_check(p, c, op, &topo, &devices[i]))
                        mask |= 1u << i;
        return mask;
}

#define BIT(i)  (1u << (i))
#define ALL     (BIT(N_DEVICES) - 1)
#define BRIDGES (BIT(HOST_BRIDGE) | BIT(ROOT_PORT))
#define ACQUIRE "{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"acquire\"],\"devices\":["

static void nothing_is_granted_without_a_rule(void **state)
{
        _cleanup_(policy_freep) struct policy *p = parse("{\"rules\":[]}");
        for (enum policy_op op = 0; op < _POLICY_OP_MAX; op++) {
                assert_null(policy_check(p, &nobody, op, &topo, NULL));
                assert_null(policy_check(p, &nobody, op, &topo, &devices[GPU]));
        }
        assert_null(policy_check(NULL, &nobody, POLICY_OP_LIST, &topo, NULL));
}

static void a_rule_grants_only_its_operations(void **state)
{
        _cleanup_(policy_freep) struct policy *p =
                parse("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\",\"audit\","
                      "\"monitor\"]}]}");
        assert_non_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, NULL));
        assert_non_null(policy_check(p, &nobody, POLICY_OP_AUDIT, &topo, NULL));
        assert_non_null(policy_check(p, &nobody, POLICY_OP_MONITOR, &topo, &devices[NVME]));
        assert_null(policy_check(p, &nobody, POLICY_OP_BIND, &topo, &devices[NVME]));
        assert_null(policy_check(p, &nobody, POLICY_OP_ACQUIRE, &topo, &devices[NVME]));
        assert_null(policy_check(p, &nobody, POLICY_OP_SRIOV, &topo, &devices[PF]));
}

static void users_match_by_name_number_or_star(void **state)
{
        static const char *const texts[] = {
                "{\"rules\":[{\"users\":[\"nobody\"],\"operations\":[\"list\"]}]}",
                "{\"rules\":[{\"users\":[65534],\"operations\":[\"list\"]}]}",
                "{\"rules\":[{\"users\":[\"65534\"],\"operations\":[\"list\"]}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_(policy_freep) struct policy *p = parse(texts[i]);
                assert_non_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, NULL));
                assert_null(policy_check(p, &someone, POLICY_OP_LIST, &topo, NULL));
        }
        _cleanup_(policy_freep) struct policy *p =
                parse("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"]}]}");
        assert_non_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, NULL));
        assert_non_null(policy_check(p, &someone, POLICY_OP_LIST, &topo, NULL));
}

static void groups_match_the_primary_or_a_supplementary_group(void **state)
{
        _cleanup_(policy_freep) struct policy *p =
                parse("{\"rules\":[{\"groups\":[\"nogroup\", 4242],\"operations\":[\"bind\"]}]}");
        const gid_t extra[] = {27, 4242};
        struct policy_client in_extra = {.uid = 1000, .gid = 1000, .groups = extra, .n_groups = 2};
        struct policy_client root_group = {.uid = 1000, .gid = 0};
        assert_non_null(policy_check(p, &nobody, POLICY_OP_BIND, &topo, &devices[GPU]));
        assert_non_null(policy_check(p, &in_extra, POLICY_OP_BIND, &topo, &devices[GPU]));
        assert_null(policy_check(p, &someone, POLICY_OP_BIND, &topo, &devices[GPU]));
        assert_null(policy_check(p, &root_group, POLICY_OP_BIND, &topo, &devices[GPU]));
        /* A group rule is not a user rule: uid 4242 is no member of gid 4242. */
        struct policy_client uid_4242 = {.uid = 4242, .gid = 100};
        assert_null(policy_check(p, &uid_4242, POLICY_OP_BIND, &topo, &devices[GPU]));
}

static void an_address_selects_one_device(void **state)
{
        assert_int_equal(granted(ACQUIRE "\"0000:03:00.0\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(NVME));
        /* The short form names the same device. */
        assert_int_equal(granted(ACQUIRE "\"02:10.2\"]}]}", &nobody, POLICY_OP_ACQUIRE), BIT(VF1));
}

static void vendor_device_and_vendor_star_select_by_ids(void **state)
{
        assert_int_equal(granted(ACQUIRE "\"8086:10ca\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(VF0) | BIT(VF1) | BIT(VF2));
        assert_int_equal(granted(ACQUIRE "\"8086:10CA\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(VF0) | BIT(VF1) | BIT(VF2));
        assert_int_equal(granted(ACQUIRE "\"8086:*\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(GPU) | BIT(PF) | BIT(VF0) | BIT(VF1) | BIT(VF2));
        assert_int_equal(granted(ACQUIRE "\"1af4:*\"]}]}", &nobody, POLICY_OP_ACQUIRE), 0);
}

static void a_device_without_ids_matches_no_id_selector(void **state)
{
        devices[NVME].have_ids = false;
        unsigned m = granted(ACQUIRE "\"144d:*\", \"class:0108\"]}]}", &nobody, POLICY_OP_ACQUIRE);
        devices[NVME].have_ids = true;
        assert_int_equal(m, 0);
}

static void class_selects_by_base_and_sub_class_or_all_three_bytes(void **state)
{
        assert_int_equal(granted(ACQUIRE "\"class:0200\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(PF) | BIT(VF0) | BIT(VF1) | BIT(VF2));
        assert_int_equal(granted(ACQUIRE "\"class:0108\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(NVME));
        assert_int_equal(granted(ACQUIRE "\"class:010802\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(NVME));
        assert_int_equal(granted(ACQUIRE "\"class:010801\"]}]}", &nobody, POLICY_OP_ACQUIRE), 0);
        assert_int_equal(granted(ACQUIRE "\"class:0300\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(GPU));
}

static void vf_ranges_select_a_pfs_vfs_by_index(void **state)
{
        assert_int_equal(granted(ACQUIRE "\"0000:02:00.0/vf1-2\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(VF1) | BIT(VF2));
        assert_int_equal(granted(ACQUIRE "\"0000:02:00.0/vf0\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(VF0));
        assert_int_equal(granted(ACQUIRE "\"0000:02:00.0/vf*\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         BIT(VF0) | BIT(VF1) | BIT(VF2));
        /* Not the PF itself, and not another PF's VFs. */
        assert_int_equal(granted(ACQUIRE "\"0000:03:00.0/vf*\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         0);
        assert_int_equal(granted(ACQUIRE "\"0000:02:00.0/vf5-9\"]}]}", &nobody, POLICY_OP_ACQUIRE),
                         0);
}

static void a_star_or_no_devices_key_covers_every_device(void **state)
{
        assert_int_equal(granted(ACQUIRE "\"*\"]}]}", &nobody, POLICY_OP_ACQUIRE), ALL & ~BRIDGES);
        assert_int_equal(granted("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"acquire\"]}]}",
                                 &nobody, POLICY_OP_ACQUIRE),
                         ALL & ~BRIDGES);
        assert_int_equal(granted("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"]}]}",
                                 &nobody, POLICY_OP_LIST),
                         ALL);
        assert_int_equal(granted(ACQUIRE "]}]}", &nobody, POLICY_OP_ACQUIRE), 0);
}

static void the_first_granting_rule_sets_release_and_memlock(void **state)
{
        struct policy *p;
        p = parse("{\"rules\":["
                  "{\"users\":[65534],\"operations\":[\"acquire\"],\"devices\":[\"class:0200\"],"
                  " \"on_release\":\"pool\",\"memlock\":1073741824,\"comment\":\"NICs\"},"
                  "{\"users\":[\"*\"],\"operations\":[\"acquire\"],\"memlock\":\"unlimited\"}]}");
        const struct policy_rule *r =
                policy_check(p, &nobody, POLICY_OP_ACQUIRE, &topo, &devices[VF1]);
        assert_non_null(r);
        assert_int_equal(r->on_release, RELEASE_POOL);
        assert_int_equal(r->memlock, 1073741824);
        r = policy_check(p, &nobody, POLICY_OP_ACQUIRE, &topo, &devices[NVME]);
        assert_non_null(r);
        assert_int_equal(r->on_release, RELEASE_RESTORE);
        assert_int_equal(r->memlock, POLICY_MEMLOCK_UNLIMITED);
        r = policy_check(p, &someone, POLICY_OP_ACQUIRE, &topo, &devices[VF1]);
        assert_non_null(r);
        assert_int_equal(r->memlock, POLICY_MEMLOCK_UNLIMITED);
        policy_free(p);
}

static void defaults_are_restore_and_memlock_untouched(void **state)
{
        _cleanup_(policy_freep) struct policy *p =
                parse("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"acquire\"]}]}");
        const struct policy_rule *r =
                policy_check(p, &someone, POLICY_OP_ACQUIRE, &topo, &devices[GPU]);
        assert_non_null(r);
        assert_int_equal(r->on_release, RELEASE_RESTORE);
        assert_int_equal(r->memlock, POLICY_MEMLOCK_UNSET);
}

/* A vendor selector takes the host bridge's vendor too: bind and acquire never reach a
 * bridge of any kind, whatever the rule; the other operations see it like any device. */
static void no_rule_binds_or_hands_out_a_bridge(void **state)
{
        static const char *const rules[] = {
                "{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"bind\",\"acquire\"],"
                "\"devices\":[\"8086:*\"]}]}",
                "{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"bind\",\"acquire\"],"
                "\"devices\":[\"0000:00:00.0\",\"class:0600\",\"class:0604\",\"*\"]}]}",
        };
        for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
                assert_int_equal(granted(rules[i], &nobody, POLICY_OP_BIND) & BRIDGES, 0);
                assert_int_equal(granted(rules[i], &nobody, POLICY_OP_ACQUIRE) & BRIDGES, 0);
        }
        assert_int_equal(granted(rules[0], &nobody, POLICY_OP_BIND),
                         BIT(GPU) | BIT(PF) | BIT(VF0) | BIT(VF1) | BIT(VF2));
        assert_int_equal(granted("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\","
                                 "\"audit\",\"monitor\"],\"devices\":[\"8086:*\"]}]}",
                                 &nobody, POLICY_OP_MONITOR),
                         ALL & ~BIT(NVME));
        assert_true(pci_device_is_bridge(&devices[HOST_BRIDGE]));
        assert_true(pci_device_is_bridge(&devices[ROOT_PORT]));
        assert_false(pci_device_is_bridge(&devices[GPU]));
}

/* Only a rule for every device lets list, audit and monitor see the whole bus; a rule
 * that names devices scopes them to those, however many such rules grant. */
static void only_a_rule_for_every_device_grants_every_device(void **state)
{
        _cleanup_(policy_freep) struct policy *p =
                parse("{\"rules\":["
                      "{\"users\":[65534],\"operations\":[\"list\",\"monitor\"],"
                      " \"devices\":[\"0000:03:00.0\"]},"
                      "{\"users\":[65534],\"operations\":[\"audit\"],\"devices\":[\"*\"]},"
                      "{\"users\":[1000],\"operations\":[\"list\"]}]}");
        assert_false(policy_grants_every_device(p, &nobody, POLICY_OP_LIST));
        assert_false(policy_grants_every_device(p, &nobody, POLICY_OP_MONITOR));
        assert_true(policy_grants_every_device(p, &nobody, POLICY_OP_AUDIT));
        assert_true(policy_grants_every_device(p, &someone, POLICY_OP_LIST));
        assert_false(policy_grants_every_device(p, &someone, POLICY_OP_AUDIT));
        assert_false(policy_grants_every_device(NULL, &someone, POLICY_OP_LIST));
        /* The call itself is allowed; each device then by its own check. */
        assert_non_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, NULL));
        assert_non_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, &devices[NVME]));
        assert_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, &devices[GPU]));
}

static void without_a_device_only_users_and_operations_count(void **state)
{
        _cleanup_(policy_freep) struct policy *p = parse(ACQUIRE "\"0000:03:00.0\"]}]}");
        assert_non_null(policy_check(p, &nobody, POLICY_OP_ACQUIRE, &topo, NULL));
        assert_null(policy_check(p, &nobody, POLICY_OP_LIST, &topo, NULL));
}

static void bad_policies_are_refused_naming_the_problem(void **state)
{
        static const struct {
                const char *text, *detail;
        } cases[] = {
                {"not json", "not valid JSON"},
                {"{\"rules\":", "not valid JSON"},
                {"[]", "\"rules\" list"},
                {"{\"rules\":{}}", "\"rules\" list"},
                {"{\"rules\":[1]}", "rule 1 is not an object"},
                {"{\"rules\":[{\"operations\":[\"list\"]}]}", "names no \"users\" or \"groups\""},
                {"{\"rules\":[{\"users\":[\"*\"]}]}", "grants no \"operations\""},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"reboot\"]}]}",
                 "unknown operation \"reboot\""},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":\"list\"}]}",
                 "\"operations\" must be a list"},
                {"{\"rules\":[{\"users\":\"*\",\"operations\":[\"list\"]}]}",
                 "\"users\" must be a list"},
                {"{\"rules\":[{\"users\":[\"no-such-user-vfiod\"],\"operations\":[\"list\"]}]}",
                 "no such user \"no-such-user-vfiod\""},
                {"{\"rules\":[{\"groups\":[\"no-such-group-vfiod\"],\"operations\":[\"list\"]}]}",
                 "no such group \"no-such-group-vfiod\""},
                {"{\"rules\":[{\"users\":[-1],\"operations\":[\"list\"]}]}", "bad id -1"},
                {"{\"rules\":[{\"users\":[4294967295],\"operations\":[\"list\"]}]}", "bad id"},
                {"{\"rules\":[{\"users\":[true],\"operations\":[\"list\"]}]}",
                 "holds names or numeric ids"},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"],\"colour\":1}]}",
                 "unknown key \"colour\""},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"],\"on_release\":\"x\"}]}",
                 "\"on_release\" is"},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"],\"memlock\":-5}]}",
                 "\"memlock\" is"},
                {"{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"],\"devices\":\"*\"}]}",
                 "\"devices\" must be a list"},
                {ACQUIRE "7]}]}", "devices are strings"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct policy *p = NULL;
                char *detail = NULL;
                int r = policy_parse(cases[i].text, &p, &detail);
                if (r >= 0 || !detail || !strstr(detail, cases[i].detail))
                        fail_msg("%s: got %d \"%s\", wanted \"%s\"", cases[i].text, r,
                                 detail ? detail : "", cases[i].detail);
                assert_null(p);
                free(detail);
        }
}

static void bad_selectors_are_refused(void **state)
{
        static const char *const bad[] = {
                "class:02",
                "class:02000",
                "class:0200000",
                "class:zz00",
                "8086",
                "8086:",
                "8086:10c",
                "8086:10cab",
                "8086:zzzz",
                "80861:10ca",
                "00:02",
                "0000:02:00.0/vf",
                "0000:02:00.0/vf3-1",
                "0000:02:00.0/vf-1",
                "0000:02:00.0/x1",
                "0000:02:00.0/vf1x",
                "bogus/vf1",
                "0000:02:00.0/vf99999",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char text[256];
                snprintf(text, sizeof(text), ACQUIRE "\"%s\"]}]}", bad[i]);
                struct policy *p = NULL;
                char *detail = NULL;
                int r = policy_parse(text, &p, &detail);
                if (r != -EINVAL || !detail || !strstr(detail, bad[i]))
                        fail_msg("selector %s: got %d \"%s\"", bad[i], r, detail ? detail : "");
                free(detail);
        }
}

static void load_reads_a_file_and_refuses_what_is_not_a_policy(void **state)
{
        char dir[] = "/tmp/test-policy-XXXXXX", path[64];
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/policy.json", dir);
        struct policy *p = NULL;
        char *detail = NULL;
        assert_int_equal(policy_load(path, &p, &detail), -ENOENT);

        FILE *f = fopen(path, "w");
        fputs("{\"rules\":[{\"users\":[\"*\"],\"operations\":[\"list\"]}]}\n", f);
        fclose(f);
        assert_int_equal(policy_load(path, &p, &detail), 0);
        assert_int_equal(p->n_rules, 1);
        p = policy_free(p);

        f = fopen(path, "w");
        fwrite("{\"rules\":[]}\0", 1, 13, f);
        fclose(f);
        assert_int_equal(policy_load(path, &p, &detail), -EBADMSG);
        assert_non_null(strstr(detail, "NUL"));
        free(detail);
        detail = NULL;
        unlink(path);
        rmdir(dir);
}

static void names_round_trip(void **state)
{
        for (enum policy_op op = 0; op < _POLICY_OP_MAX; op++)
                assert_int_equal(policy_op_from_string(policy_op_to_string(op)), op);
        assert_int_equal(policy_op_from_string("List"), _POLICY_OP_INVALID);
        assert_int_equal(policy_op_from_string(NULL), _POLICY_OP_INVALID);
        assert_null(policy_op_to_string(_POLICY_OP_MAX));
        assert_int_equal(release_action_from_string("pool"), RELEASE_POOL);
        assert_int_equal(release_action_from_string("restore"), RELEASE_RESTORE);
        assert_int_equal(release_action_from_string("keep"), _RELEASE_ACTION_INVALID);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(nothing_is_granted_without_a_rule),
                cmocka_unit_test(a_rule_grants_only_its_operations),
                cmocka_unit_test(users_match_by_name_number_or_star),
                cmocka_unit_test(groups_match_the_primary_or_a_supplementary_group),
                cmocka_unit_test(an_address_selects_one_device),
                cmocka_unit_test(vendor_device_and_vendor_star_select_by_ids),
                cmocka_unit_test(a_device_without_ids_matches_no_id_selector),
                cmocka_unit_test(class_selects_by_base_and_sub_class_or_all_three_bytes),
                cmocka_unit_test(vf_ranges_select_a_pfs_vfs_by_index),
                cmocka_unit_test(a_star_or_no_devices_key_covers_every_device),
                cmocka_unit_test(the_first_granting_rule_sets_release_and_memlock),
                cmocka_unit_test(defaults_are_restore_and_memlock_untouched),
                cmocka_unit_test(no_rule_binds_or_hands_out_a_bridge),
                cmocka_unit_test(only_a_rule_for_every_device_grants_every_device),
                cmocka_unit_test(without_a_device_only_users_and_operations_count),
                cmocka_unit_test(bad_policies_are_refused_naming_the_problem),
                cmocka_unit_test(bad_selectors_are_refused),
                cmocka_unit_test(load_reads_a_file_and_refuses_what_is_not_a_policy),
                cmocka_unit_test(names_round_trip),
        };
        return cmocka_run_group_tests(tests, topology_setup, NULL);
}
