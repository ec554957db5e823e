/* SPDX-License-Identifier: Apache-2.0 */
/* ACME Renewal Information (RFC 9773): GET <renewalInfo>/<certID>. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acme/client-internal.h"
#include "common/list.h"
#include "common/macros.h"

struct acme_ari_req {
        struct acme_ari_req *prev, *next; /* in client->aris */
        struct acme_client *c;
        char *cert_id;
        acme_ari_cb *cb;
        void *ud;
        struct acme__call call;
};

void acme_renewal_info_done(struct acme_renewal_info *ri)
{
        if (!ri)
                return;
        free(ri->explanation_url);
        *ri = (struct acme_renewal_info){};
}

static int ari_prepare(struct acme__call *call)
{
        struct acme_ari_req *req = container_of(call, struct acme_ari_req, call);
        const char *base = call->c->dir.renewal_info;
        char *url;

        if (!base)
                return acme__call_fail(call, -EOPNOTSUPP,
                                       "the directory has no renewalInfo (no ARI at this CA)");
        if (asprintf(&url, "%s%s%s", base, base[strlen(base) - 1] == '/' ? "" : "/", req->cert_id) <
            0)
                return acme__call_fail(call, -ENOMEM, "out of memory");
        free(call->url);
        call->url = url;
        return 0;
}

static void ari_free(struct acme_ari_req *req)
{
        acme__call_clear(&req->call);
        free(req->cert_id);
        free(req);
}

static void ari_unlink(struct acme_ari_req *req)
{
        LIST_REMOVE(req->c->aris, req);
        req->c->n_aris--;
}

/* RFC 9773 §4.2: {"suggestedWindow":{"start":…,"end":…},"explanationURL":…} */
static int ari_parse(struct acme__call *call, const struct acme_http_response *resp,
                     const json_t *o, struct acme_renewal_info *ri)
{
        const json_t *w = json_object_get(o, "suggestedWindow");
        const char *expl = acme__json_str(o, "explanationURL");
        uint64_t ra;

        if (acme__parse_rfc3339(acme__json_str(w, "start"), &ri->start) < 0 ||
            acme__parse_rfc3339(acme__json_str(w, "end"), &ri->end) < 0)
                return acme__call_fail(call, -EBADMSG,
                                       "renewalInfo without a suggestedWindow of RFC 3339 times");
        if (ri->end < ri->start)
                return acme__call_fail(call, -EBADMSG, "renewalInfo window ends before it starts");
        if (acme__url_ok(expl)) {
                ri->explanation_url = strdup(expl);
                if (!ri->explanation_url)
                        return acme__call_fail(call, -ENOMEM, "out of memory");
        }
        if (acme__retry_after(resp, acme__now(call->c), &ra) >= 0)
                ri->retry_after_s = ra;
        return 0;
}

static void on_ari_reply(struct acme__call *call, int r, const struct acme_http_response *resp,
                         json_t *json)
{
        struct acme_ari_req *req = container_of(call, struct acme_ari_req, call);
        struct acme_renewal_info ri = {};
        struct acme_problem problem = {};
        acme_ari_cb *cb = req->cb;
        void *ud = req->ud;

        if (r >= 0)
                r = ari_parse(call, resp, json, &ri);
        json_decref(json);
        if (r < 0) {
                problem = call->problem;
                call->problem = (struct acme_problem){};
                if (!problem.where)
                        problem.where = strdup("renewalInfo");
        }
        ari_unlink(req);
        ari_free(req);
        cb(ud, r, r >= 0 ? &ri : NULL, r < 0 ? &problem : NULL);
        acme_renewal_info_done(&ri);
        acme_problem_done(&problem);
}

int acme_ari_fetch(struct acme_client *c, const char *cert_id, acme_ari_cb *cb, void *ud,
                   struct acme_ari_req **ret)
{
        struct acme_ari_req *req;
        int r;

        if (!c || c->freed || !cb || !acme__cert_id_ok(cert_id))
                return -EINVAL;
        if (c->n_aris >= ACME_ARI_MAX)
                return -EAGAIN;
        req = calloc(1, sizeof(*req));
        if (!req)
                return -ENOMEM;
        req->c = c;
        req->cb = cb;
        req->ud = ud;
        acme__call_init(&req->call, c, on_ari_reply);
        req->cert_id = strdup(cert_id);
        r = req->cert_id ? acme__call_target(&req->call, NULL, NULL, "renewalInfo %s", cert_id)
                         : -ENOMEM;
        if (r < 0) {
                ari_free(req);
                return r;
        }
        req->call.auth = ACME_CALL_GET;
        req->call.idempotent = true;
        req->call.accept = "application/json";
        req->call.prepare = ari_prepare;
        LIST_PREPEND(c->aris, req);
        c->n_aris++;
        acme__call_start(&req->call);
        if (ret)
                *ret = req;
        return 0;
}

void acme_ari_cancel(struct acme_ari_req *req)
{
        if (!req)
                return;
        ari_unlink(req);
        ari_free(req);
}
