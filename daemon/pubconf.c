/* SPDX-License-Identifier: Apache-2.0 */
/* The node's public configuration: from the config file, or from the
 * networker (network.network@0.0.1 GetPublicConfig) as zos does. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "daemon/acme.h"
#include "daemon/daemon.h"
#include "daemon/dnsd.h"

static unsigned mask_prefix(const uint8_t *m, size_t n)
{
        unsigned bits = 0;

        for (size_t i = 0; i < n; i++) {
                uint8_t b = m[i];
                while (b & 0x80) {
                        bits++;
                        b = (uint8_t)(b << 1);
                }
                if (m[i] != 0xff)
                        break;
        }
        return bits;
}

static bool v4_from_bytes(const uint8_t *b, size_t n, struct in_addr *ret)
{
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        if (n == 4) {
                memcpy(ret, b, 4);
                return true;
        }
        if (n == 16 && memcmp(b, v4mapped, 12) == 0) {
                memcpy(ret, b + 12, 4);
                return true;
        }
        return false;
}

int gw_pubconf_from_proto(const struct proto_public_config *in, struct wl_public_config *out)
{
        struct wl_public_config pc = {};

        if (in->ipv4.has_ip && v4_from_bytes(in->ipv4.ip, in->ipv4.ip_len, &pc.ipv4)) {
                pc.has_ipv4 = true;
                pc.ipv4_prefix = 32;
                if (in->ipv4.has_mask)
                        pc.ipv4_prefix = (uint8_t)mask_prefix(
                                in->ipv4.mask_len == 16 ? in->ipv4.mask + 12 : in->ipv4.mask, 4);
        }
        if (in->has_gw4 && v4_from_bytes(in->gw4, in->gw4_len, &pc.gw4))
                pc.has_gw4 = true;
        if (in->ipv6.has_ip && in->ipv6.ip_len == 16) {
                pc.has_ipv6 = true;
                memcpy(&pc.ipv6, in->ipv6.ip, 16);
                pc.ipv6_prefix = in->ipv6.has_mask
                                         ? (uint8_t)mask_prefix(in->ipv6.mask, in->ipv6.mask_len)
                                         : 128;
        }
        if (in->has_gw6 && in->gw6_len == 16) {
                pc.has_gw6 = true;
                memcpy(&pc.gw6, in->gw6, 16);
        }
        if (in->domain.n > 0) {
                pc.domain = strndup(in->domain.s, in->domain.n);
                if (!pc.domain)
                        return -ENOMEM;
        }
        *out = pc;
        return 0;
}

struct pubconf_req {
        struct gw_daemon *d;
        gw_pubconf_cb *cb;
        void *userdata;
};

static void on_public_config(int r, const struct proto_response *resp, void *userdata)
{
        struct pubconf_req *req = userdata;
        struct proto_public_config ppc = {};
        struct wl_public_config pc = {};
        _cleanup_free_ char *err = NULL;
        int k;

        if (r < 0) {
                if (asprintf(&err, "failed to call network.network@0.0.1 GetPublicConfig: %s",
                             r == -ETIMEDOUT ? "no reply (timeout)" : strerror(-r)) < 0)
                        err = NULL;
                req->cb(r, err ? err : "out of memory", NULL, req->userdata);
                goto out;
        }
        if (resp->has_protocol_error || (resp->has_error && resp->error.n > 0)) {
                const struct proto_str *e =
                        resp->has_protocol_error ? &resp->protocol_error : &resp->error;
                err = strndup(e->s, e->n);
                req->cb(-EIO, err ? err : "out of memory", NULL, req->userdata);
                goto out;
        }
        k = resp->has_data ? proto_public_config_decode(resp->data.s, resp->data.n, &ppc)
                           : -EBADMSG;
        if (k >= 0)
                k = gw_pubconf_from_proto(&ppc, &pc);
        proto_public_config_done(&ppc);
        if (k < 0) {
                req->cb(k, "invalid reply from network.network@0.0.1 GetPublicConfig", NULL,
                        req->userdata);
                goto out;
        }
        /* A domain in the node config overrides the networker's. */
        if (req->d->cfg.pc.domain && *req->d->cfg.pc.domain) {
                free(pc.domain);
                pc.domain = strdup(req->d->cfg.pc.domain);
        }
        if (!pc.has_ipv4 && !pc.has_ipv6) {
                req->cb(-ENOENT, "no public configuration", NULL, req->userdata);
        } else {
                struct wl_public_config copy = {};

                /* Remembered for Info() and gw_pubconf_domain(); best effort. */
                if (wl_public_config_copy(&pc, &copy) >= 0) {
                        bool domain_changed = !streq_ptr(req->d->pc_cache.domain, copy.domain);

                        wl_public_config_done(&req->d->pc_cache);
                        req->d->pc_cache = copy;
                        /* The responder's zone and the wildcard kept for
                         * the domain follow the networker's. */
                        if (domain_changed && !req->d->stopping) {
                                gw_dnsd_apply(req->d);
                                gw_acme_apply(req->d);
                        }
                }
                req->cb(0, NULL, &pc, req->userdata);
        }
        wl_public_config_done(&pc);
out:
        free(req);
}

int gw_pubconf_get(struct gw_daemon *d, gw_pubconf_cb *cb, void *userdata,
                   struct proto_bus_pending **ret)
{
        struct pubconf_req *req;
        int r;

        if (ret)
                *ret = NULL;
        if (d->cfg.public_config == GW_PUBLIC_CONFIG_FILE) {
                if (!d->cfg.pc.has_ipv4 && !d->cfg.pc.has_ipv6)
                        cb(-ENOENT, "no public configuration", NULL, userdata);
                else
                        cb(0, NULL, &d->cfg.pc, userdata);
                return 0;
        }
        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->d = d;
        req->cb = cb;
        req->userdata = userdata;
        r = proto_bus_request(d->bus, "network", "network", "0.0.1", "GetPublicConfig", NULL, 0,
                              d->cfg.call_timeout_ms, on_public_config, req, ret);
        if (r < 0)
                free(req);
        return r;
}

const char *gw_pubconf_domain(const struct gw_daemon *d)
{
        if (d->cfg.pc.domain && *d->cfg.pc.domain)
                return d->cfg.pc.domain;
        if (d->cfg.public_config == GW_PUBLIC_CONFIG_BUS && d->pc_cache.domain &&
            *d->pc_cache.domain)
                return d->pc_cache.domain;
        return NULL;
}
