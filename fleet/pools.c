/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "pools.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detail.h"
#include "macro.h"
#include "root.h"
#include "string-table.h"

static const char *const fleet_pool_backend_table[_FLEET_POOL_BACKEND_MAX] = {
        [FLEET_POOL_BACKEND_AUTO] = "auto",
        [FLEET_POOL_BACKEND_IOMMUFD] = "iommufd",
        [FLEET_POOL_BACKEND_TYPE1] = "type1",
};

DEFINE_STRING_TABLE_LOOKUP(fleet_pool_backend, enum fleet_pool_backend);

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* kubelet takes "domain/name" where name is a qualified name; a pool name also goes into
 * environment variable names, so it is kept to a lower-case DNS label. */
static bool pool_name_is_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
                        return false;
        return true;
}

/* Vendor: a domain name ("vfiod.io"); class: letters, digits, '-', '_', '.'; as the CDI
 * specification has them. */
bool fleet_cdi_kind_is_valid(const char *s)
{
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || slash == s || !slash[1] || strlen(s) > 253)
                return false;
        if (!is_alnum(s[0]) || !is_alnum(slash[-1]))
                return false;
        for (const char *p = s; p < slash; p++)
                if (!is_alnum(*p) && *p != '.' && *p != '-')
                        return false;
        if (!is_alnum(slash[1]))
                return false;
        for (const char *p = slash + 1; *p; p++)
                if (!is_alnum(*p) && *p != '.' && *p != '-' && *p != '_')
                        return false;
        return true;
}

static void pool_done(struct fleet_pool *p)
{
        free(p->name);
        free(p->resource);
        free(p->selectors);
}

struct fleet_config *fleet_config_free(struct fleet_config *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_pools; i++)
                pool_done(&c->pools[i]);
        free(c->pools);
        free(c->cdi_kind);
        free(c);
        return NULL;
}

static int parse_pool(json_object *o, size_t idx, struct fleet_pool *pool, char **ret_detail)
{
        json_object *name = NULL, *devices = NULL, *resource = NULL, *backend = NULL;

        if (!json_object_is_type(o, json_type_object))
                return detail_errno(ret_detail, -EINVAL, "pool %zu is not an object", idx);
        json_object_object_foreach(o, key, val)
        {
                if (strcmp(key, "name") == 0)
                        name = val;
                else if (strcmp(key, "devices") == 0)
                        devices = val;
                else if (strcmp(key, "resource") == 0)
                        resource = val;
                else if (strcmp(key, "backend") == 0)
                        backend = val;
                else if (strcmp(key, "comment") != 0)
                        return detail_errno(ret_detail, -EINVAL,
                                            "pool %zu: unknown key \"%s\" (name, resource, "
                                            "backend, devices, comment)",
                                            idx, key);
        }
        if (!name || !json_object_is_type(name, json_type_string) ||
            !pool_name_is_valid(json_object_get_string(name)))
                return detail_errno(ret_detail, -EINVAL,
                                    "pool %zu: \"name\" must be a lower-case DNS label "
                                    "(a-z, 0-9, '-', at most 63 characters), like \"igb-vf\"",
                                    idx);
        const char *n = json_object_get_string(name);
        pool->name = strdup(n);
        if (!pool->name)
                return -ENOMEM;

        if (resource) {
                const char *s = json_object_get_string(resource);
                const char *slash =
                        json_object_is_type(resource, json_type_string) ? strchr(s, '/') : NULL;
                /* Same shape as a CDI kind: a domain, a slash, a name. */
                if (!slash || !fleet_cdi_kind_is_valid(s) || strchr(slash + 1, '/'))
                        return detail_errno(ret_detail, -EINVAL,
                                            "pool \"%s\": \"resource\" must be DOMAIN/NAME, "
                                            "like \"" FLEET_RESOURCE_DOMAIN "/%s\"",
                                            n, n);
                pool->resource = strdup(s);
        } else if (asprintf(&pool->resource, FLEET_RESOURCE_DOMAIN "/%s", n) < 0)
                pool->resource = NULL;
        if (!pool->resource)
                return -ENOMEM;

        if (backend) {
                enum fleet_pool_backend b =
                        json_object_is_type(backend, json_type_string)
                                ? fleet_pool_backend_from_string(json_object_get_string(backend))
                                : _FLEET_POOL_BACKEND_INVALID;
                if (b < 0)
                        return detail_errno(ret_detail, -EINVAL,
                                            "pool \"%s\": \"backend\" is \"auto\", \"iommufd\" "
                                            "or \"type1\"",
                                            n);
                pool->backend = b;
        }

        if (!devices || !json_object_is_type(devices, json_type_array) ||
            json_object_array_length(devices) == 0)
                return detail_errno(ret_detail, -EINVAL,
                                    "pool \"%s\": \"devices\" must be a non-empty list of "
                                    "selectors (" PCI_SELECTOR_FORMS ")",
                                    n);
        size_t k = json_object_array_length(devices);
        pool->selectors = calloc(k, sizeof(*pool->selectors));
        if (!pool->selectors)
                return -ENOMEM;
        for (size_t i = 0; i < k; i++) {
                json_object *e = json_object_array_get_idx(devices, i);
                const char *s =
                        json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
                if (!s || pci_selector_parse(s, &pool->selectors[i]) < 0)
                        return detail_errno(
                                ret_detail, -EINVAL,
                                "pool \"%s\": bad device selector %s%s%s (" PCI_SELECTOR_FORMS ")",
                                n, s ? "\"" : "", s ? s : json_object_to_json_string(e),
                                s ? "\"" : "");
                pool->n_selectors = i + 1;
        }
        return 0;
}

int fleet_config_parse(const char *text, struct fleet_config **ret, char **ret_detail)
{
        json_tokener *tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_object *root = json_tokener_parse_ex(tok, text, (int)strlen(text));
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        size_t consumed = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        if (!root || jerr != json_tokener_success) {
                json_object_put(root);
                return detail_errno(ret_detail, -EBADMSG, "not valid JSON: %s",
                                    json_tokener_error_desc(jerr));
        }
        if (text[consumed + strspn(text + consumed, " \t\r\n")]) {
                json_object_put(root);
                return detail_errno(ret_detail, -EBADMSG,
                                    "not valid JSON: text after the end of the document");
        }

        int r;
        json_object *pools = NULL;
        struct fleet_config *c = calloc(1, sizeof(*c));
        if (!c) {
                r = -ENOMEM;
                goto finish;
        }
        if (!json_object_is_type(root, json_type_object)) {
                r = detail_errno(ret_detail, -EINVAL, "expected an object with a \"pools\" list");
                goto finish;
        }
        json_object_object_foreach(root, key, val)
        {
                if (strcmp(key, "pools") == 0)
                        pools = val;
                else if (strcmp(key, "cdi_kind") == 0) {
                        const char *s = json_object_get_string(val);
                        if (!json_object_is_type(val, json_type_string) ||
                            !fleet_cdi_kind_is_valid(s)) {
                                r = detail_errno(ret_detail, -EINVAL,
                                                 "\"cdi_kind\" must be VENDOR/CLASS with VENDOR "
                                                 "a domain name, like \"" FLEET_CDI_KIND_DEFAULT
                                                 "\"");
                                goto finish;
                        }
                        free(c->cdi_kind);
                        if (!(c->cdi_kind = strdup(s))) {
                                r = -ENOMEM;
                                goto finish;
                        }
                } else if (strcmp(key, "comment") != 0) {
                        r = detail_errno(ret_detail, -EINVAL,
                                         "unknown key \"%s\" (pools, cdi_kind, comment)", key);
                        goto finish;
                }
        }
        if (!pools || !json_object_is_type(pools, json_type_array)) {
                r = detail_errno(ret_detail, -EINVAL, "expected an object with a \"pools\" list");
                goto finish;
        }
        if (!c->cdi_kind && !(c->cdi_kind = strdup(FLEET_CDI_KIND_DEFAULT))) {
                r = -ENOMEM;
                goto finish;
        }
        size_t n = json_object_array_length(pools);
        c->pools = calloc(n ? n : 1, sizeof(*c->pools));
        if (!c->pools) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < n; i++) {
                r = parse_pool(json_object_array_get_idx(pools, i), i + 1, &c->pools[i],
                               ret_detail);
                c->n_pools = i + 1;
                if (r < 0)
                        goto finish;
                for (size_t k = 0; k < i; k++)
                        if (strcmp(c->pools[k].name, c->pools[i].name) == 0 ||
                            strcmp(c->pools[k].resource, c->pools[i].resource) == 0) {
                                r = detail_errno(ret_detail, -EINVAL,
                                                 "pools %zu and %zu have the same name or "
                                                 "resource (\"%s\")",
                                                 k + 1, i + 1, c->pools[i].resource);
                                goto finish;
                        }
        }
        *ret = TAKE_PTR(c);
        r = 0;
finish:
        fleet_config_free(c);
        json_object_put(root);
        return r;
}

int fleet_config_load(const char *path, struct fleet_config **ret, char **ret_detail)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();

        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = fd_read_all(fd, 1024 * 1024, &text, &len);
        if (r == -EFBIG)
                return detail_errno(ret_detail, r, "%s is larger than 1 MiB", path);
        if (r < 0)
                return detail_errno(ret_detail, r, "cannot read %s: %s", path, strerror(-r));
        if (strlen(text) != len)
                return detail_errno(ret_detail, -EBADMSG, "%s holds a NUL byte", path);
        r = fleet_config_parse(text, ret, &why);
        if (r < 0)
                return detail_errno(ret_detail, r, "%s: %s", path, strna(why));
        return 0;
}

const struct fleet_pool *fleet_config_pool_of(const struct fleet_config *c,
                                              const struct topology *t, const struct pci_device *d)
{
        if (!c || pci_device_is_bridge(d))
                return NULL;
        for (size_t i = 0; i < c->n_pools; i++)
                for (size_t k = 0; k < c->pools[i].n_selectors; k++)
                        if (pci_selector_matches(&c->pools[i].selectors[k], t, d))
                                return &c->pools[i];
        return NULL;
}
