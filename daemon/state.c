/* SPDX-License-Identifier: Apache-2.0 */
#include "daemon/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/strbuf.h"

#define STATE_VERSION  1
#define STATE_FILE_MAX (256 * 1024)
#define COUNTERS_MAX   (256 * 1024 * 1024)

struct gw_state {
        char *root;
        char *dir; /* <root>/workloads */
};

/* jansson provides json_decrefp() for its json_auto_t. */
#define _cleanup_json_ _cleanup_(json_decrefp)

int gw_state_open(const char *root, struct gw_state **ret)
{
        struct gw_state *s;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->root = strdup(root);
        if (!s->root || asprintf(&s->dir, "%s/workloads", root) < 0) {
                s->dir = NULL;
                gw_state_free(s);
                return -ENOMEM;
        }
        r = mkdir_p(s->dir, 0700);
        if (r < 0) {
                gw_state_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

struct gw_state *gw_state_free(struct gw_state *s)
{
        if (!s)
                return NULL;
        free(s->root);
        free(s->dir);
        free(s);
        return NULL;
}

char *gw_state_file_name(const char *id)
{
        struct strbuf b = STRBUF_INIT;
        int r = strbuf_puts(&b, "wl-");

        /* Keep names readable but never special: only [A-Za-z0-9_-] pass. */
        for (const unsigned char *p = (const unsigned char *)id; r >= 0 && *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')
                        r = strbuf_putc(&b, (char)*p);
                else
                        r = strbuf_printf(&b, "%%%02X", *p);
        }
        if (r >= 0)
                r = strbuf_puts(&b, ".json");
        if (r < 0) {
                strbuf_done(&b);
                return NULL;
        }
        return strbuf_steal(&b);
}

char *gw_state_dump_proxy(const struct wl_proxy *p)
{
        _cleanup_json_ json_t *o = NULL, *backends = NULL;

        backends = json_array();
        if (!backends)
                return NULL;
        for (size_t i = 0; i < p->n_backends; i++)
                if (json_array_append_new(backends, json_string(p->backends[i])) < 0)
                        return NULL;
        o = json_pack("{s:i, s:s, s:s, s:s?, s:s?, s:O, s:b, s:s?, s:I, s:I}", "version",
                      STATE_VERSION, "id", p->id, "kind", wl_kind_to_string(p->kind), "name",
                      p->name, "fqdn", p->fqdn, "backends", backends, "tls_passthrough",
                      (int)p->tls_passthrough, "network", p->network, "created_usec",
                      (json_int_t)p->created_usec, "updated_usec", (json_int_t)p->updated_usec);
        if (!o)
                return NULL;
        return json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

static int parse_fail(char **reterr, const char *why)
{
        if (reterr)
                *reterr = strdup(why);
        return -EBADMSG;
}

int gw_state_parse_proxy(const char *text, size_t len, struct wl_proxy **ret, char **reterr)
{
        _cleanup_(wl_proxy_freep) struct wl_proxy *p = NULL;
        _cleanup_json_ json_t *o = NULL;
        json_t *backends, *v, *jname = NULL, *jfqdn = NULL, *jnetwork = NULL;
        json_error_t jerr;
        const char *id = NULL, *kind = NULL, *name = NULL, *fqdn = NULL, *network = NULL;
        json_int_t version = 0, created = 0, updated = 0;
        int passthrough = 0, k;
        size_t i;

        o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!o) {
                if (reterr &&
                    asprintf(reterr, "invalid JSON at line %d: %s", jerr.line, jerr.text) < 0)
                        *reterr = NULL;
                return -EBADMSG;
        }
        if (json_unpack_ex(o, &jerr, 0, "{s:I, s:s, s:s, s?o, s?o, s:o, s:b, s?o, s?I, s?I}",
                           "version", &version, "id", &id, "kind", &kind, "name", &jname, "fqdn",
                           &jfqdn, "backends", &backends, "tls_passthrough", &passthrough,
                           "network", &jnetwork, "created_usec", &created, "updated_usec",
                           &updated) < 0) {
                if (reterr && asprintf(reterr, "unexpected content: %s", jerr.text) < 0)
                        *reterr = NULL;
                return -EBADMSG;
        }
        /* name, fqdn and network may be null (JSON) or absent. */
        if ((jname && !json_is_null(jname) && !(name = json_string_value(jname))) ||
            (jfqdn && !json_is_null(jfqdn) && !(fqdn = json_string_value(jfqdn))) ||
            (jnetwork && !json_is_null(jnetwork) && !(network = json_string_value(jnetwork))))
                return parse_fail(reterr, "name, fqdn and network must be strings or null");
        if (version != STATE_VERSION)
                return parse_fail(reterr, "unsupported state version");
        k = wl_kind_from_string(kind);
        if (k < 0)
                return parse_fail(reterr, "unknown workload kind");
        if (!json_is_array(backends) || json_array_size(backends) > WL_BACKENDS_MAX)
                return parse_fail(reterr, "backends must be a list");
        if (!fqdn || (k == WL_KIND_NAME && !name))
                return parse_fail(reterr, "missing name or fqdn");
        p = wl_proxy_new();
        if (!p)
                return -ENOMEM;
        p->kind = (enum wl_kind)k;
        p->tls_passthrough = passthrough;
        p->created_usec = (uint64_t)created;
        p->updated_usec = (uint64_t)updated;
        p->id = strdup(id);
        p->fqdn = strdup(fqdn);
        if (!p->id || !p->fqdn)
                return -ENOMEM;
        if (name && !(p->name = strdup(name)))
                return -ENOMEM;
        if (network && !(p->network = strdup(network)))
                return -ENOMEM;
        p->backends = calloc(json_array_size(backends) + 1, sizeof(char *));
        if (!p->backends)
                return -ENOMEM;
        json_array_foreach(backends, i, v)
        {
                if (!json_is_string(v))
                        return parse_fail(reterr, "backend must be a string");
                p->backends[i] = strdup(json_string_value(v));
                if (!p->backends[i])
                        return -ENOMEM;
                p->n_backends++;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int gw_state_save(struct gw_state *s, const struct wl_proxy *p)
{
        _cleanup_free_ char *text = NULL, *name = NULL;

        text = gw_state_dump_proxy(p);
        name = gw_state_file_name(p->id);
        if (!text || !name)
                return -ENOMEM;
        if (strlen(name) > 250)
                return -ENAMETOOLONG;
        return write_file_atomic(s->dir, name, text, strlen(text), 0600);
}

int gw_state_remove(struct gw_state *s, const char *id)
{
        _cleanup_free_ char *name = gw_state_file_name(id);
        _cleanup_close_ int dfd = -1;

        if (!name)
                return -ENOMEM;
        dfd = open(s->dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (unlinkat(dfd, name, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}

static int unhex(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

#define CORRUPT_SUFFIX ".corrupt-"

char *gw_state_id_from_file_name(const char *name)
{
        const char *end, *corrupt = strstr(name, ".json" CORRUPT_SUFFIX);
        struct strbuf b = STRBUF_INIT;
        int r = 0;

        if (strncmp(name, "wl-", 3) != 0)
                return NULL;
        end = corrupt ? corrupt : name + strlen(name) - 5;
        if (end < name + 3 || (!corrupt && !streq(end, ".json")))
                return NULL;
        for (const char *p = name + 3; r >= 0 && p < end; p++) {
                int hi, lo;

                if (*p != '%') {
                        r = strbuf_putc(&b, *p);
                        continue;
                }
                /* gw_state_file_name() writes %XX with upper-case digits. */
                if (end - p < 3 || (hi = unhex(p[1])) < 0 || (lo = unhex(p[2])) < 0 ||
                    (hi == 0 && lo == 0))
                        r = -EINVAL;
                else
                        r = strbuf_putc(&b, (char)(hi << 4 | lo));
                p += 2;
        }
        if (r < 0 || !b.data) {
                strbuf_done(&b);
                /* An empty ID cannot be saved: "wl-.json" is no workload's. */
                return NULL;
        }
        return strbuf_steal(&b);
}

/* Rename a corrupt file to <name>.corrupt-<time>, durably. Returns 0 with
 * the new name, or -errno (the file stays and is reported again next time). */
static int move_aside(struct gw_state *s, const char *name, char **ret)
{
        _cleanup_free_ char *aside = NULL;
        _cleanup_close_ int dfd = -1;

        if (asprintf(&aside, "%s" CORRUPT_SUFFIX "%lld", name, (long long)time(NULL)) < 0)
                return -ENOMEM;
        dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        /* Never replace an earlier copy (two corrupt starts in one second). */
        if (renameat2(dfd, name, dfd, aside, RENAME_NOREPLACE) < 0)
                return -errno;
        if (fsync(dfd) < 0)
                return -errno;
        *ret = TAKE_PTR(aside);
        return 0;
}

int gw_state_load(struct gw_state *s, gw_state_load_cb *cb, void *userdata)
{
        DIR *d;
        struct dirent *de;

        d = opendir(s->dir);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL, *err = NULL, *expect = NULL,
                                    *msg = NULL, *id = NULL, *aside = NULL;
                struct gw_state_loaded l = {};
                size_t len;
                size_t nl = strlen(de->d_name);
                int r;

                if (de->d_name[0] == '.')
                        continue;
                if (strstr(de->d_name, ".json" CORRUPT_SUFFIX)) {
                        id = gw_state_id_from_file_name(de->d_name);
                        l = (struct gw_state_loaded){
                                .id = id, .aside = de->d_name, .earlier = true};
                        cb(&l, userdata);
                        continue;
                }
                if (nl < 5 || strcmp(de->d_name + nl - 5, ".json") != 0)
                        continue;
                if (asprintf(&path, "%s/%s", s->dir, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
                r = read_file_full(path, STATE_FILE_MAX, &text, &len);
                if (r >= 0) {
                        r = gw_state_parse_proxy(text, len, &l.p, &err);
                        if (r >= 0) {
                                /* The file must be the one this ID would be
                                 * saved as, or a later save/delete would not
                                 * find it. */
                                expect = gw_state_file_name(l.p->id);
                                if (!expect || !streq(expect, de->d_name)) {
                                        l.p = wl_proxy_free(l.p);
                                        r = -EBADMSG;
                                        free(err);
                                        err = strdup("file name does not match the workload id");
                                }
                        }
                }
                if (r >= 0) {
                        cb(&l, userdata);
                        continue;
                }
                /* Corrupt (does not parse, too large, misnamed): set aside,
                 * never lost and never loaded again. Other read errors (EIO,
                 * ENOMEM, EBADF for a directory) may pass: left in place. */
                int k = 0;
                if (r == -EBADMSG || r == -EINVAL || r == -EFBIG)
                        k = move_aside(s, de->d_name, &aside);
                if (asprintf(&msg, "%s: %s%s%s%s%s", path, err ? err : strerror(-r),
                             aside ? " (moved aside to " : "", strempty(aside), aside ? ")" : "",
                             k < 0 ? " (could not move it aside)" : "") < 0)
                        msg = NULL;
                id = gw_state_id_from_file_name(de->d_name);
                l = (struct gw_state_loaded){
                        .error = msg ? msg : "out of memory", .id = id, .aside = aside};
                cb(&l, userdata);
        }
        closedir(d);
        return 0;
}

struct counters_ctx {
        json_t *o;
        gw_counters_get_cb *get;
        void *userdata;
        int r;
};

static int add_counter(const struct wl_proxy *p, void *userdata)
{
        struct counters_ctx *ctx = userdata;
        struct gw_counters c = {};
        json_t *v;

        if (ctx->get(p->id, &c, ctx->userdata) < 0)
                return 0;
        v = json_pack("{s:I, s:I, s:I, s:[I,I,I,I,I]}", "request_bytes",
                      (json_int_t)c.request_bytes, "response_bytes", (json_int_t)c.response_bytes,
                      "requests", (json_int_t)c.requests, "status", (json_int_t)c.status[0],
                      (json_int_t)c.status[1], (json_int_t)c.status[2], (json_int_t)c.status[3],
                      (json_int_t)c.status[4]);
        if (!v || json_object_set_new(ctx->o, p->id, v) < 0)
                return -ENOMEM;
        return 0;
}

int gw_state_save_counters(struct gw_state *s, const struct wl_registry *reg,
                           gw_counters_get_cb *get, void *userdata)
{
        _cleanup_json_ json_t *o = json_object();
        _cleanup_free_ char *text = NULL;
        struct counters_ctx ctx = {o, get, userdata, 0};
        int r;

        if (!o)
                return -ENOMEM;
        r = wl_registry_foreach(reg, add_counter, &ctx);
        if (r < 0)
                return r;
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(s->root, "counters.json", text, strlen(text), 0600);
}

int gw_state_load_counters(struct gw_state *s, gw_counters_set_cb *set, void *userdata)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_json_ json_t *o = NULL;
        const char *key;
        json_t *v;
        size_t len;
        int r;

        if (asprintf(&path, "%s/counters.json", s->root) < 0)
                return -ENOMEM;
        r = read_file_full(path, COUNTERS_MAX, &text, &len);
        if (r < 0)
                return r;
        o = json_loadb(text, len, 0, NULL);
        if (!json_is_object(o))
                return -EBADMSG;
        json_object_foreach(o, key, v)
        {
                json_int_t rq = 0, rs = 0, n = 0, st[5] = {};
                struct gw_counters c = {};

                if (json_unpack(v, "{s:I, s:I}", "request_bytes", &rq, "response_bytes", &rs) < 0 ||
                    rq < 0 || rs < 0)
                        continue;
                /* Optional (older files): a bad value leaves them at zero. */
                if (json_unpack(v, "{s?I, s?[IIIII]}", "requests", &n, "status", &st[0], &st[1],
                                &st[2], &st[3], &st[4]) < 0)
                        n = st[0] = st[1] = st[2] = st[3] = st[4] = 0;
                c.request_bytes = (uint64_t)rq;
                c.response_bytes = (uint64_t)rs;
                c.requests = n > 0 ? (uint64_t)n : 0;
                for (size_t i = 0; i < 5; i++)
                        c.status[i] = st[i] > 0 ? (uint64_t)st[i] : 0;
                set(key, &c, userdata);
        }
        return 0;
}
