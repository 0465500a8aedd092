/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "fd-util.h"
#include "macro.h"
#include "string-table.h"
#include "strv.h"

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
        e->original_driver = e->original_override = NULL;
}

int journal_open(const struct root *root, const char *state_dir, struct journal **ret)
{
        _cleanup_free_ char *path = NULL;
        struct journal *j;
        int fd;

        if (!state_dir)
                state_dir = VFIOD_STATE_DIR_DEFAULT;
        while (*state_dir == '/')
                state_dir++;
        if (asprintf(&path, "%s/journal", state_dir) < 0)
                return -ENOMEM;
        fd = root_mkdir_p(root, path);
        if (fd < 0)
                return fd;
        /* One changer at a time: two binds racing on one device would each record the
         * other's half-done state as the original. Released when the fd closes, also on
         * a crash. */
        if (flock(fd, LOCK_EX) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        j = calloc(1, sizeof(*j));
        if (!j) {
                close(fd);
                return -ENOMEM;
        }
        j->root = root;
        j->dirfd = fd;
        j->path = TAKE_PTR(path);
        *ret = j;
        return 0;
}

static void entry_name(const struct pci_addr *a, char buf[static PCI_ADDR_STRLEN + 8]);

bool journal_has_entry(const struct root *root, const char *state_dir, const struct pci_addr *addr)
{
        char name[PCI_ADDR_STRLEN + 8], path[PATH_MAX];
        if (!state_dir)
                state_dir = VFIOD_STATE_DIR_DEFAULT;
        while (*state_dir == '/')
                state_dir++;
        entry_name(addr, name);
        if (snprintf(path, sizeof(path), "%s/journal/%s", state_dir, name) >= (int)sizeof(path))
                return true; /* cannot tell: as if it had */
        return root_exists(root, path);
}

struct journal *journal_free(struct journal *j)
{
        if (!j)
                return NULL;
        safe_close(j->dirfd);
        free(j->path);
        free(j);
        return NULL;
}

static void entry_name(const struct pci_addr *a, char buf[static PCI_ADDR_STRLEN + 8])
{
        char addr[PCI_ADDR_STRLEN];
        snprintf(buf, PCI_ADDR_STRLEN + 8, "%s.json", pci_addr_format(a, addr));
}

int journal_put(struct journal *j, const struct journal_entry *e)
{
        char name[PCI_ADDR_STRLEN + 8], addr[PCI_ADDR_STRLEN];
        json_object *o = json_object_new_object();
        const char *s;
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "address",
                               json_object_new_string(pci_addr_format(&e->addr, addr)));
        json_object_object_add(o, "state",
                               json_object_new_string(journal_state_to_string(e->state)));
        json_object_object_add(o, "original_driver",
                               e->original_driver ? json_object_new_string(e->original_driver)
                                                  : NULL);
        json_object_object_add(o, "original_override",
                               e->original_override ? json_object_new_string(e->original_override)
                                                    : NULL);
        json_object_object_add(o, "persist", json_object_new_boolean(e->persist));
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        entry_name(&e->addr, name);
        r = s ? dir_write_atomic(j->dirfd, name, s, strlen(s)) : -ENOMEM;
        json_object_put(o);
        return r;
}

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
        char name[PCI_ADDR_STRLEN + 8];
        _cleanup_free_ char *buf = NULL, *a = NULL, *state = NULL;
        struct journal_entry e = {.addr = *addr};
        struct pci_addr parsed;
        json_object *o, *v;
        int r;

        entry_name(addr, name);
        r = dir_read_file(j->dirfd, name, 64 * 1024, &buf, NULL);
        if (r < 0)
                return r;
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        r = get_string(o, "address", false, &a);
        if (r >= 0 && (pci_addr_parse(a, &parsed) < 0 || !pci_addr_equal(&parsed, addr)))
                r = -EBADMSG;
        if (r >= 0)
                r = get_string(o, "state", false, &state);
        if (r >= 0 && (e.state = journal_state_from_string(state)) < 0)
                r = -EBADMSG;
        if (r >= 0)
                r = get_string(o, "original_driver", true, &e.original_driver);
        if (r >= 0)
                r = get_string(o, "original_override", true, &e.original_override);
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
        char name[PCI_ADDR_STRLEN + 8];

        entry_name(addr, name);
        if (unlinkat(j->dirfd, name, 0) < 0 && errno != ENOENT)
                return negative_errno();
        return fsync(j->dirfd) < 0 ? negative_errno() : 0;
}

static int addr_compare(const void *a, const void *b)
{
        return pci_addr_compare(a, b);
}

int journal_list(struct journal *j, struct pci_addr **ret, size_t *ret_n)
{
        return journal_list_suffix(j, ".json", ret, ret_n);
}

int journal_list_suffix(struct journal *j, const char *suffix, struct pci_addr **ret, size_t *ret_n)
{
        size_t slen = strlen(suffix);
        _cleanup_free_ struct pci_addr *l = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        size_t n = 0;
        int r = dir_stream_dup(j->dirfd, &d);

        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                char base[PCI_ADDR_STRLEN];
                size_t len = strlen(de->d_name);
                struct pci_addr a, *nl;

                /* "<address><suffix>"; temporaries start with '.' and are skipped. */
                if (len <= slen || len - slen >= sizeof(base) ||
                    strcmp(de->d_name + len - slen, suffix) != 0)
                        continue;
                memcpy(base, de->d_name, len - slen);
                base[len - slen] = '\0';
                if (pci_addr_parse(base, &a) < 0)
                        continue;
                nl = realloc(l, (n + 1) * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                l = nl;
                l[n++] = a;
        }
        if (n > 1)
                qsort(l, n, sizeof(*l), addr_compare);
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

/* Whether name is a temporary file of an entry: dir_write_replace()'s ".NAME.tmp", NAME an
 * entry's "<address><suffix>" with a suffix that ends in ".json". */
static bool journal_name_is_temporary(const char *name)
{
        static const char end[] = ".json.tmp";
        size_t len = strlen(name);
        char base[PCI_ADDR_STRLEN];
        struct pci_addr a;

        if (name[0] != '.' || len < sizeof(end) || strcmp(name + len - (sizeof(end) - 1), end) != 0)
                return false;
        /* The address holds one '.': the suffix starts at the next. */
        const char *dot = strchr(name + 1, '.');
        const char *suffix = dot ? strchr(dot + 1, '.') : NULL;
        if (!suffix || (size_t)(suffix - name - 1) >= sizeof(base))
                return false;
        memcpy(base, name + 1, (size_t)(suffix - name - 1));
        base[suffix - name - 1] = '\0';
        return pci_addr_parse(base, &a) == 0;
}

int journal_remove_temporaries(struct journal *j, char ***ret_removed)
{
        _cleanup_(strv_freep) char **removed = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        size_t n = 0;
        int r = dir_stream_dup(j->dirfd, &d);

        if (r < 0)
                return r;
        FOREACH_DIRENT (de, d) {
                struct stat st;

                if (!journal_name_is_temporary(de->d_name) ||
                    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (errno != ENOENT)
                                return negative_errno();
                        continue;
                }
                r = strv_push(&removed, &n, de->d_name);
                if (r < 0)
                        return r;
        }
        *ret_removed = TAKE_PTR(removed);
        return 0;
}
