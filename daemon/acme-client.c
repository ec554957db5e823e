/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/mem.h>

#include "acme/cert.h"
#include "acme/client.h"
#include "acme/http.h"
#include "acme/jws.h"
#include "acme/schedule.h"
#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/list.h"
#include "common/log.h"
#include "common/macros.h"
#include "common/siphash.h"
#include "common/strbuf.h"
#include "daemon/acme-internal.h"
#include "daemon/acme.h"
#include "daemon/certs.h"
#include "daemon/daemon.h"
#include "daemon/dns.h"
#include "daemon/dnsd.h"
#include "gw-version.h"
#include "proto/codec.h"
#include "workloads/workloads.h"

/* ======================================================================
 * Account and client
 * ====================================================================== */

int gw_acme__load_account(struct gw_acme *m)
{
        _cleanup_free_ char *path = NULL, *pem = NULL, *meta_path = NULL, *meta = NULL;
        bool new_key = false;
        size_t len;
        int r;

        if (asprintf(&path, "%s/account.key", m->dir) < 0)
                return -ENOMEM;
        r = read_file_full(path, 64 * 1024, &pem, &len);
        if (r >= 0) {
                r = acme_key_from_pem(pem, len, &m->account_key);
                OPENSSL_cleanse(pem, len);
                if (r < 0) {
                        _cleanup_free_ char *aside = NULL;

                        /* Never silently replace an account key: keep the file. */
                        if (asprintf(&aside, "%s.corrupt-%lld", path, (long long)gw_acme__now()) >=
                                    0 &&
                            rename(path, aside) >= 0)
                                log_warning("The ACME account key %s is damaged; moved aside to "
                                            "%s, a new account is made",
                                            path, aside);
                        else
                                return log_error_errno(r, "The ACME account key %s is damaged: %m",
                                                       path);
                }
        } else if (r != -ENOENT) {
                return log_error_errno(r, "Failed to read the ACME account key %s: %m", path);
        }
        if (!m->account_key) {
                _cleanup_free_ char *out = NULL;
                size_t n = 0;

                r = acme_key_generate(&m->account_key);
                if (r >= 0)
                        r = acme_key_to_pem(m->account_key, &out, &n);
                if (r >= 0)
                        r = write_file_atomic(m->dir, "account.key", out, n, 0600);
                if (out)
                        OPENSSL_cleanse(out, n);
                if (r < 0) {
                        /* Not used unless stored: a restart would make
                         * another account. */
                        m->account_key = acme_key_free(m->account_key);
                        return log_error_errno(r, "Failed to create the ACME account key: %m");
                }
                log_info("Created a new ACME account key in %s", path);
                new_key = true;
        }

        /* The account URL belongs to one directory and one key: a new key
         * (the old one was damaged) signing under the old key's account
         * URL has every request refused, so it registers anew. Files
         * written before the key was recorded in them are trusted only
         * with the key they were written with, which a new key is not. */
        if (asprintf(&meta_path, "%s/account.json", m->dir) < 0)
                return -ENOMEM;
        if (read_file_full(meta_path, 64 * 1024, &meta, &len) >= 0) {
                json_t *o = json_loadb(meta, len, 0, NULL);
                const char *dir = NULL, *url = NULL, *key = NULL;

                if (o &&
                    json_unpack(o, "{s:s, s:s, s?s}", "directory", &dir, "url", &url, "key",
                                &key) == 0 &&
                    (key ? streq(key, acme_key_thumbprint(m->account_key)) : !new_key)) {
                        m->account_dir = strdup(dir);
                        m->account_url = strdup(url);
                }
                json_decref(o);
        }
        return 0;
}

static void on_account(void *ud, const char *account_url)
{
        struct gw_acme *m = ud;
        const char *dir = m->d->cfg.acme_directory;
        json_t *o;
        char *text;
        int r = -ENOMEM;

        log_info("ACME account at %s: %s", dir, account_url);
        free(m->account_url);
        free(m->account_dir);
        m->account_url = strdup(account_url);
        m->account_dir = strdup(dir);
        o = json_pack("{s:s, s:s, s:s}", "directory", dir, "url", account_url, "key",
                      acme_key_thumbprint(m->account_key));
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (text)
                r = write_file_atomic(m->dir, "account.json", text, strlen(text), 0600);
        free(text);
        if (r < 0)
                log_warning_errno(r, "Failed to save the ACME account URL: %m");
}

/* The daemon's c-ares resolver behind the HTTPS client's hook. A SIGHUP
 * that changes [dns] replaces d->dns, and gw_dns_free() drops the old
 * one's queries without calling back (and frees them): requests are kept
 * in a list so gw_acme_apply() can ask the new resolver again. */
struct resolve_req {
        struct gw_acme *m;
        struct resolve_req *prev, *next; /* in m->resolves */
        acme_resolve_done_cb *done;
        void *done_ud;
        struct gw_dns *dns; /* the resolver asked; its query dies with it */
        struct gw_dns_query *q;
        char *host;
};

static void resolve_req_free(struct resolve_req *rr)
{
        LIST_REMOVE(rr->m->resolves, rr);
        free(rr->host);
        free(rr);
}

static void on_resolved(const char *error, char **addrs, size_t n, void *userdata)
{
        struct resolve_req *rr = userdata;
        acme_resolve_done_cb *done = rr->done;
        void *done_ud = rr->done_ud;

        /* Gone before the call: @done may start another lookup. */
        resolve_req_free(rr);
        done(done_ud, error ? -ENOENT : 0, error ? NULL : addrs, error ? 0 : n);
}

static int resolve(void *resolve_ud, const char *host, acme_resolve_done_cb *done, void *done_ud,
                   void **ret_handle)
{
        struct gw_daemon *d = resolve_ud;
        struct resolve_req *rr;
        int r;

        if (!d->dns || !d->acme)
                return -ENOTCONN;
        rr = calloc(1, sizeof(*rr));
        if (!rr)
                return -ENOMEM;
        rr->host = strdup(host);
        if (!rr->host) {
                free(rr);
                return -ENOMEM;
        }
        rr->m = d->acme;
        rr->done = done;
        rr->done_ud = done_ud;
        rr->dns = d->dns;
        LIST_PREPEND(rr->m->resolves, rr);
        *ret_handle = rr;
        r = gw_dns_lookup(d->dns, host, on_resolved, rr, &rr->q);
        if (r < 0) {
                resolve_req_free(rr);
                return r;
        }
        return 0;
}

static void resolve_cancel(void *resolve_ud, void *handle)
{
        struct gw_daemon *d = resolve_ud;
        struct resolve_req *rr = handle;

        /* A query of a replaced resolver is freed already. */
        if (rr->dns == d->dns)
                gw_dns_query_cancel(rr->q);
        resolve_req_free(rr);
}

/* After a SIGHUP replaced the resolver: lookups the old one took with it
 * are made again with the new one (or fail, which the HTTPS client
 * reports like any failed lookup). */
void gw_acme__resolves_retry(struct gw_acme *m)
{
        struct gw_dns *dns = m->d->dns;

        /* From the head each time: a failure's callback may start or cancel
         * other lookups. */
        for (;;) {
                struct resolve_req *rr = m->resolves;
                int r = -ENOTCONN;

                while (rr && rr->dns == dns)
                        rr = rr->next;
                if (!rr)
                        return;
                log_debug("Looking up %s again with the new resolver", rr->host);
                rr->dns = dns;
                rr->q = NULL;
                if (dns)
                        r = gw_dns_lookup(dns, rr->host, on_resolved, rr, &rr->q);
                if (r < 0) {
                        acme_resolve_done_cb *done = rr->done;
                        void *done_ud = rr->done_ud;

                        resolve_req_free(rr);
                        done(done_ud, r, NULL, 0);
                }
        }
}

void gw_acme__client_close(struct gw_acme *m)
{
        size_t state = 0;
        const char *key;
        void *v;

        /* Orders belong to the client: cancel them first (hooks remove the
         * challenges), then the client, then its transport. */
        while (hashmap_iterate(m->certs, &state, &key, &v)) {
                struct mcert *c = v;

                if (c->order) {
                        acme_order_cancel(c->order);
                        c->order = NULL;
                        m->in_flight--;
                }
                if (c->ari) {
                        acme_ari_cancel(c->ari);
                        c->ari = NULL;
                }
        }
        acme_client_free(m->client);
        m->client = NULL;
        acme_http_free(m->http);
        m->http = NULL;
        m->client_sig = mfree(m->client_sig);
}

int gw_acme__client_open(struct gw_acme *m)
{
        const struct gw_config *cfg = &m->d->cfg;
        _cleanup_free_ char *sig = NULL, *err = NULL;
        int r;

        if (asprintf(&sig, "%s|%s|%s", cfg->acme_directory, strempty(cfg->acme_email),
                     strempty(cfg->acme_ca_file)) < 0)
                return -ENOMEM;
        if (m->client && streq(sig, m->client_sig))
                return 0;
        gw_acme__client_close(m);

        struct acme_http_config hc = {
                .loop = m->d->loop,
                .ca_file = cfg->acme_ca_file,
                .resolve = resolve,
                .resolve_cancel = resolve_cancel,
                .resolve_ud = m->d,
                .user_agent = "gatewayd/" GATEWAYD_VERSION,
        };
        r = acme_http_new(&hc, &m->http, &err);
        if (r < 0)
                return log_error_errno(r, "ACME is off: the HTTPS client cannot start: %s",
                                       err ? err : strerror(-r));
        struct acme_client_config cc = {
                .loop = m->d->loop,
                .http = acme_http_ops_default(),
                .http_transport = m->http,
                .directory_url = cfg->acme_directory,
                .account_key = m->account_key,
                .account_url = m->account_dir && streq(m->account_dir, cfg->acme_directory)
                                       ? m->account_url
                                       : NULL,
                .email = cfg->acme_email,
                .on_account = on_account,
                .ud = m,
        };
        r = acme_client_new(&cc, &m->client);
        if (r < 0) {
                acme_http_free(m->http);
                m->http = NULL;
                return log_error_errno(r, "ACME is off: cannot make the client: %m");
        }
        m->client_sig = TAKE_PTR(sig);
        m->no_ari_until = 0;
        return 0;
}
