/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detail.h"
#include "macro.h"
#include "root.h"
#include "string-table.h"

static const char *const policy_op_table[_POLICY_OP_MAX] = {
        [POLICY_OP_LIST] = "list",   [POLICY_OP_BIND] = "bind",
        [POLICY_OP_SRIOV] = "sriov", [POLICY_OP_ACQUIRE] = "acquire",
        [POLICY_OP_AUDIT] = "audit", [POLICY_OP_MONITOR] = "monitor",
};

DEFINE_STRING_TABLE_LOOKUP(policy_op, enum policy_op);

static const char *const release_action_table[_RELEASE_ACTION_MAX] = {
        [RELEASE_POOL] = "pool",
        [RELEASE_RESTORE] = "restore",
};

DEFINE_STRING_TABLE_LOOKUP(release_action, enum release_action);

static void rule_done(struct policy_rule *r)
{
        free(r->uids);
        free(r->gids);
        free(r->selectors);
}

struct policy *policy_free(struct policy *p)
{
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        free(p);
        return NULL;
}

static int parse_id(const char *s, unsigned long *ret)
{
        if (!str_is_decimal(s) || strlen(s) > 10)
                return -EINVAL;
        unsigned long v = strtoul(s, NULL, 10);
        if (v >= UINT32_MAX) /* (uid_t)-1 means "no id" to the kernel */
                return -ERANGE;
        *ret = v;
        return 0;
}

static int append_id(void **array, size_t *n, size_t size, unsigned long id)
{
        void *p = reallocarray(*array, *n + 1, size);
        if (!p)
                return -ENOMEM;
        *array = p;
        if (size == sizeof(uid_t))
                ((uid_t *)p)[*n] = (uid_t)id;
        else
                ((gid_t *)p)[*n] = (gid_t)id;
        (*n)++;
        return 0;
}

static int parse_principals(json_object *list, bool users, struct policy_rule *rule, size_t idx,
                            char **ret_detail)
{
        const char *what = users ? "users" : "groups";
        if (!json_object_is_type(list, json_type_array))
                return detail_errno(ret_detail, -EINVAL, "rule %zu: \"%s\" must be a list", idx,
                                    what);
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *e = json_object_array_get_idx(list, i);
                unsigned long id;
                if (json_object_is_type(e, json_type_int)) {
                        int64_t v = json_object_get_int64(e);
                        if (v < 0 || v >= UINT32_MAX)
                                return detail_errno(ret_detail, -EINVAL,
                                                    "rule %zu: bad id %" PRId64 " in \"%s\"", idx,
                                                    v, what);
                        id = (unsigned long)v;
                } else if (json_object_is_type(e, json_type_string)) {
                        const char *name = json_object_get_string(e);
                        if (users && strcmp(name, "*") == 0) {
                                rule->any_user = true;
                                continue;
                        }
                        if (parse_id(name, &id) < 0) {
                                if (users) {
                                        struct passwd *pw = getpwnam(name);
                                        if (!pw)
                                                return detail_errno(ret_detail, -ENOENT,
                                                                    "rule %zu: no such user \"%s\"",
                                                                    idx, name);
                                        id = pw->pw_uid;
                                } else {
                                        struct group *gr = getgrnam(name);
                                        if (!gr)
                                                return detail_errno(
                                                        ret_detail, -ENOENT,
                                                        "rule %zu: no such group \"%s\"", idx,
                                                        name);
                                        id = gr->gr_gid;
                                }
                        }
                } else
                        return detail_errno(ret_detail, -EINVAL,
                                            "rule %zu: \"%s\" holds names or numeric ids", idx,
                                            what);
                int r = users ? append_id((void **)&rule->uids, &rule->n_uids, sizeof(uid_t), id)
                              : append_id((void **)&rule->gids, &rule->n_gids, sizeof(gid_t), id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_rule(json_object *o, size_t idx, struct policy_rule *rule, char **ret_detail)
{
        if (!json_object_is_type(o, json_type_object))
                return detail_errno(ret_detail, -EINVAL, "rule %zu is not an object", idx);

        *rule = (struct policy_rule){.all_devices = true,
                                     .on_release = RELEASE_RESTORE,
                                     .memlock = POLICY_MEMLOCK_UNSET};
        bool have_who = false;
        json_object_object_foreach(o, key, val)
        {
                int r;
                if (strcmp(key, "users") == 0 || strcmp(key, "groups") == 0) {
                        r = parse_principals(val, key[0] == 'u', rule, idx, ret_detail);
                        if (r < 0)
                                return r;
                        have_who = true;
                } else if (strcmp(key, "operations") == 0) {
                        if (!json_object_is_type(val, json_type_array))
                                return detail_errno(ret_detail, -EINVAL,
                                                    "rule %zu: \"operations\" must be a list", idx);
                        for (size_t i = 0; i < json_object_array_length(val); i++) {
                                const char *s =
                                        json_object_get_string(json_object_array_get_idx(val, i));
                                enum policy_op op = policy_op_from_string(s);
                                if (op < 0)
                                        return detail_errno(ret_detail, -EINVAL,
                                                            "rule %zu: unknown operation \"%s\" "
                                                            "(list, bind, sriov, "
                                                            "acquire, audit, monitor)",
                                                            idx, strna(s));
                                rule->ops |= 1u << op;
                        }
                } else if (strcmp(key, "devices") == 0) {
                        if (!json_object_is_type(val, json_type_array))
                                return detail_errno(ret_detail, -EINVAL,
                                                    "rule %zu: \"devices\" must be a list", idx);
                        size_t n = json_object_array_length(val);
                        rule->all_devices = false;
                        rule->selectors = calloc(n ? n : 1, sizeof(*rule->selectors));
                        if (!rule->selectors)
                                return -ENOMEM;
                        for (size_t i = 0; i < n; i++) {
                                json_object *e = json_object_array_get_idx(val, i);
                                const char *s = json_object_is_type(e, json_type_string)
                                                        ? json_object_get_string(e)
                                                        : NULL;
                                if (!s || strcmp(s, "*") == 0) {
                                        if (s) {
                                                rule->all_devices = true;
                                                continue;
                                        }
                                        return detail_errno(ret_detail, -EINVAL,
                                                            "rule %zu: devices are strings", idx);
                                }
                                if (pci_selector_parse(s, &rule->selectors[rule->n_selectors]) < 0)
                                        return detail_errno(ret_detail, -EINVAL,
                                                            "rule %zu: bad device selector \"%s\" "
                                                            "(" PCI_SELECTOR_FORMS " or \"*\")",
                                                            idx, s);
                                rule->n_selectors++;
                        }
                } else if (strcmp(key, "on_release") == 0) {
                        rule->on_release = release_action_from_string(json_object_get_string(val));
                        if (rule->on_release < 0)
                                return detail_errno(
                                        ret_detail, -EINVAL,
                                        "rule %zu: \"on_release\" is \"pool\" or \"restore\"", idx);
                } else if (strcmp(key, "memlock") == 0) {
                        if (json_object_is_type(val, json_type_string) &&
                            strcmp(json_object_get_string(val), "unlimited") == 0)
                                rule->memlock = POLICY_MEMLOCK_UNLIMITED;
                        else if (json_object_is_type(val, json_type_int) &&
                                 json_object_get_int64(val) >= 0)
                                rule->memlock = json_object_get_int64(val);
                        else
                                return detail_errno(ret_detail, -EINVAL,
                                                    "rule %zu: \"memlock\" is a number of bytes or "
                                                    "\"unlimited\"",
                                                    idx);
                } else if (strcmp(key, "comment") == 0) {
                        continue;
                } else
                        return detail_errno(ret_detail, -EINVAL, "rule %zu: unknown key \"%s\"",
                                            idx, key);
        }
        if (!have_who)
                return detail_errno(ret_detail, -EINVAL,
                                    "rule %zu names no \"users\" or \"groups\"", idx);
        if (rule->ops == 0)
                return detail_errno(ret_detail, -EINVAL, "rule %zu grants no \"operations\"", idx);
        return 0;
}

int policy_parse(const char *text, struct policy **ret, char **ret_detail)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *root = json_tokener_parse_ex(tok, text, (int)strlen(text));
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (!root || jerr != json_tokener_success) {
                json_object_put(root);
                return detail_errno(ret_detail, -EBADMSG, "not valid JSON: %s",
                                    json_tokener_error_desc(jerr));
        }

        int r;
        json_object *rules;
        struct policy *p = calloc(1, sizeof(*p));
        if (!p) {
                r = -ENOMEM;
                goto finish;
        }
        if (!json_object_is_type(root, json_type_object) ||
            !json_object_object_get_ex(root, "rules", &rules) ||
            !json_object_is_type(rules, json_type_array)) {
                r = detail_errno(ret_detail, -EBADMSG, "expected an object with a \"rules\" list");
                goto finish;
        }
        size_t n = json_object_array_length(rules);
        p->rules = calloc(n ? n : 1, sizeof(*p->rules));
        if (!p->rules) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                r = parse_rule(json_object_array_get_idx(rules, i), i + 1, &p->rules[i],
                               ret_detail);
                p->n_rules = i + 1;
                if (r < 0)
                        goto finish;
        }
        *ret = TAKE_PTR(p);
        r = 0;
finish:
        policy_free(p);
        json_object_put(root);
        return r;
}

int policy_load(const char *path, struct policy **ret, char **ret_detail)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        /* Policies are small: a megabyte is a mistake, not a policy. */
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = fd_read_all(fd, 1024 * 1024, &text, &len);
        if (r == -EFBIG)
                return detail_errno(ret_detail, r, "%s is larger than 1 MiB", path);
        if (r < 0)
                return r;
        if (strlen(text) != len)
                return detail_errno(ret_detail, -EBADMSG, "%s holds a NUL byte", path);
        return policy_parse(text, ret, ret_detail);
}

static bool rule_matches_client(const struct policy_rule *r, const struct policy_client *c)
{
        if (r->any_user)
                return true;
        for (size_t i = 0; i < r->n_uids; i++)
                if (r->uids[i] == c->uid)
                        return true;
        for (size_t i = 0; i < r->n_gids; i++) {
                if (r->gids[i] == c->gid)
                        return true;
                for (size_t k = 0; k < c->n_groups; k++)
                        if (r->gids[i] == c->groups[k])
                                return true;
        }
        return false;
}

const struct policy_rule *policy_check(const struct policy *p, const struct policy_client *c,
                                       enum policy_op op, const struct topology *t,
                                       const struct pci_device *d)
{
        if (!p || op < 0 || op >= _POLICY_OP_MAX)
                return NULL;
        /* No rule binds a bridge or hands one out: "*" or "8086:*" would take the host
         * bridge with the rest. */
        if (d && (op == POLICY_OP_BIND || op == POLICY_OP_ACQUIRE) && pci_device_is_bridge(d))
                return NULL;
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct policy_rule *r = &p->rules[i];
                if (!(r->ops & (1u << op)) || !rule_matches_client(r, c))
                        continue;
                if (!d || r->all_devices)
                        return r;
                for (size_t k = 0; k < r->n_selectors; k++)
                        if (pci_selector_matches(&r->selectors[k], t, d))
                                return r;
        }
        return NULL;
}

bool policy_grants_every_device(const struct policy *p, const struct policy_client *c,
                                enum policy_op op)
{
        if (!p || op < 0 || op >= _POLICY_OP_MAX)
                return false;
        for (size_t i = 0; i < p->n_rules; i++) {
                const struct policy_rule *r = &p->rules[i];
                if ((r->ops & (1u << op)) && r->all_devices && rule_matches_client(r, c))
                        return true;
        }
        return false;
}
