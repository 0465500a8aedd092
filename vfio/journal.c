/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The journal as a store of typed records: where it lives, its lock, and the file of each
 * record. What a record holds is its kind's business (journal-binding.c, sriov/). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "journal.h"
#include "macro.h"
#include "strv.h"

/* "<address><suffix>.json" with the longest suffix a kind has, and some room. */
#define RECORD_NAME_MAX (PCI_ADDR_STRLEN + 32)

static const char *state_dir_relative(const char *state_dir)
{
        if (!state_dir)
                state_dir = VFIOD_STATE_DIR_DEFAULT;
        while (*state_dir == '/')
                state_dir++;
        return state_dir;
}

int journal_open(const struct root *root, const char *state_dir, struct journal **ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct journal *j;

        if (asprintf(&path, "%s/journal", state_dir_relative(state_dir)) < 0)
                return -ENOMEM;
        fd = root_mkdir_p(root, path);
        if (fd < 0)
                return fd;
        /* One changer at a time: two binds racing on one device would each record the
         * other's half-done state as the original. Released when the fd closes, also on
         * a crash. */
        if (flock(fd, LOCK_EX) < 0)
                return negative_errno();
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->root = root;
        j->dirfd = TAKE_FD(fd);
        j->path = TAKE_PTR(path);
        *ret = j;
        return 0;
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

static char *record_name(const struct journal_kind *k, const struct pci_addr *a,
                         char buf[static RECORD_NAME_MAX])
{
        char addr[PCI_ADDR_STRLEN];

        snprintf(buf, RECORD_NAME_MAX, "%s%s.json", pci_addr_format(a, addr), k->suffix);
        return buf;
}

json_object *journal_record_new(const struct pci_addr *a)
{
        json_object *o = json_object_new_object();
        char addr[PCI_ADDR_STRLEN];

        if (o)
                json_object_object_add(o, "address",
                                       json_object_new_string(pci_addr_format(a, addr)));
        return o;
}

int journal_record_put(struct journal *j, const struct journal_kind *k, const struct pci_addr *a,
                       json_object *o)
{
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        char name[RECORD_NAME_MAX];

        if (!s)
                return -ENOMEM;
        return dir_write_atomic(j->dirfd, record_name(k, a, name), s, strlen(s));
}

int journal_record_get(struct journal *j, const struct journal_kind *k, const struct pci_addr *a,
                       json_object **ret)
{
        _cleanup_free_ char *buf = NULL;
        char name[RECORD_NAME_MAX];
        struct pci_addr named;
        json_object *o, *v;
        int r;

        r = dir_read_file(j->dirfd, record_name(k, a, name), k->max_size, &buf, NULL);
        if (r < 0)
                return r;
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, "address", &v) ||
            !json_object_is_type(v, json_type_string) ||
            pci_addr_parse(json_object_get_string(v), &named) < 0 || !pci_addr_equal(&named, a)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int journal_record_remove(struct journal *j, const struct journal_kind *k, const struct pci_addr *a)
{
        char name[RECORD_NAME_MAX];

        if (unlinkat(j->dirfd, record_name(k, a, name), 0) < 0 && errno != ENOENT)
                return negative_errno();
        return fsync(j->dirfd) < 0 ? negative_errno() : 0;
}

bool journal_record_exists(const struct root *root, const char *state_dir,
                           const struct journal_kind *k, const struct pci_addr *a)
{
        char name[RECORD_NAME_MAX], path[PATH_MAX];

        if (snprintf(path, sizeof(path), "%s/journal/%s", state_dir_relative(state_dir),
                     record_name(k, a, name)) >= (int)sizeof(path))
                return true; /* cannot tell: as if it had */
        return root_exists(root, path);
}

static int addr_compare(const void *a, const void *b)
{
        return pci_addr_compare(a, b);
}

int journal_record_list(struct journal *j, const struct journal_kind *k, struct pci_addr **ret,
                        size_t *ret_n)
{
        _cleanup_free_ struct pci_addr *l = NULL;
        _cleanup_closedir_ DIR *d = NULL;
        char suffix[32];
        size_t n = 0, slen;
        int r = dir_stream_dup(j->dirfd, &d);

        if (r < 0)
                return r;
        slen = (size_t)snprintf(suffix, sizeof(suffix), "%s.json", k->suffix);
        FOREACH_DIRENT (de, d) {
                char base[PCI_ADDR_STRLEN];
                size_t len = strlen(de->d_name);
                struct pci_addr a, *nl;

                /* "<address><suffix>.json"; temporaries start with '.' and are skipped, and
                 * another kind's records leave no address before this kind's suffix. */
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

/* Whether name is a temporary file of a record: dir_write_replace()'s ".NAME.tmp", NAME a
 * record's "<address><suffix>.json". */
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
