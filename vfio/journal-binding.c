/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal's device binding records: the driver and driver_override a device had
 * before vfiod bound it, the VFIO driver it went to, and how far the change went. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "macro.h"
#include "string-table.h"

const struct journal_kind journal_kind_binding = {
        .suffix = "",
        .max_size = 64 * 1024,
};

static const char *const journal_state_table[_JOURNAL_STATE_MAX] = {
        [JOURNAL_BINDING] = "binding",
        [JOURNAL_ASSIGNED] = "assigned",
        [JOURNAL_RESTORING] = "restoring",
};

DEFINE_STRING_TABLE_LOOKUP(journal_state, enum journal_state);

void journal_entry_done(struct journal_entry *e)
{
        free(e->original_driver);
        free(e->original_override);
        free(e->driver);
        e->original_driver = e->original_override = e->driver = NULL;
}

bool journal_has_entry(const struct root *root, const char *state_dir, const struct pci_addr *addr)
{
        return journal_record_exists(root, state_dir, &journal_kind_binding, addr);
}

static json_object *string_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

int journal_put(struct journal *j, const struct journal_entry *e)
{
        json_object *o = journal_record_new(&e->addr);
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "state",
                               json_object_new_string(journal_state_to_string(e->state)));
        json_object_object_add(o, "original_driver", string_or_null(e->original_driver));
        json_object_object_add(o, "original_override", string_or_null(e->original_override));
        json_object_object_add(o, "driver", string_or_null(e->driver));
        json_object_object_add(o, "persist", json_object_new_boolean(e->persist));
        r = journal_record_put(j, &journal_kind_binding, &e->addr, o);
        json_object_put(o);
        return r;
}

/* A string member that must be there; NULL only where nullable allows a JSON null. */
static int get_string(json_object *o, const char *key, bool nullable, char **ret)
{
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v))
                return -EBADMSG;
        if (!v) {
                if (!nullable)
                        return -EBADMSG;
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

int journal_get(struct journal *j, const struct pci_addr *addr, struct journal_entry *ret)
{
        _cleanup_free_ char *state = NULL;
        struct journal_entry e = {.addr = *addr};
        json_object *o, *v;
        int r = journal_record_get(j, &journal_kind_binding, addr, &o);

        if (r < 0)
                return r;
        r = get_string(o, "state", false, &state);
        if (r >= 0 && (e.state = journal_state_from_string(state)) < 0)
                r = -EBADMSG;
        if (r >= 0)
                r = get_string(o, "original_driver", true, &e.original_driver);
        if (r >= 0)
                r = get_string(o, "original_override", true, &e.original_override);
        /* Records written before variants were chosen have none: they went to vfio-pci. */
        if (r >= 0 && json_object_object_get_ex(o, "driver", &v))
                r = get_string(o, "driver", true, &e.driver);
        if (r >= 0 && json_object_object_get_ex(o, "persist", &v))
                e.persist = json_object_get_boolean(v);
        json_object_put(o);
        if (r < 0) {
                journal_entry_done(&e);
                return r;
        }
        *ret = e;
        return 0;
}

int journal_remove(struct journal *j, const struct pci_addr *addr)
{
        return journal_record_remove(j, &journal_kind_binding, addr);
}

int journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n)
{
        return journal_record_list(j, &journal_kind_binding, ret, ret_n);
}
