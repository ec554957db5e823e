/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS client's TLS context: trust anchors read in-process from the
 * system roots file and/or a CA file, TLS 1.2+, peer verification on. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acme/http-internal.h"
#include "common/fileio.h"
#include "common/macros.h"
#include "ssl/ssl-util.h"

#define ROOTS_DEFAULT  "/etc/ssl/certs/ca-certificates.crt"
#define ROOTS_MAX_SIZE (16u << 20) /* a trust-anchor file larger than this is a mistake */

/* Add every certificate of the PEM file @path to @store. */
static int load_pem(X509_STORE *store, const char *what, const char *path, char **reterr)
{
        _cleanup_free_ char *data = NULL;
        size_t len, n = 0;
        BIO *bio;
        X509 *x;
        int r;

        r = read_file_full(path, ROOTS_MAX_SIZE, &data, &len);
        if (r == -EFBIG)
                r = -EINVAL;
        if (r < 0) {
                if (reterr && asprintf(reterr, "%s %s: %s", what, path, strerror(-r)) < 0)
                        *reterr = NULL;
                return r;
        }
        if (len > INT_MAX)
                return -EINVAL;
        bio = BIO_new_mem_buf(data, (int)len);
        if (!bio)
                return -ENOMEM;
        while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                /* A duplicate is not an error worth failing for. */
                if (X509_STORE_add_cert(store, x))
                        n++;
                X509_free(x);
        }
        BIO_free(bio);
        ERR_clear_error();
        if (n == 0) {
                if (reterr && asprintf(reterr, "%s %s: no certificate found", what, path) < 0)
                        *reterr = NULL;
                return -EINVAL;
        }
        return 0;
}

int acme_http__tls_ctx_new(const struct acme_http_config *cfg, SSL_CTX **ret, char **reterr)
{
        _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
        bool ca = cfg->ca_file && *cfg->ca_file;
        X509_STORE *store;
        int r;

        if (reterr)
                *reterr = NULL;
        if (cfg->no_system_roots && !ca) {
                if (reterr)
                        *reterr = strdup("no trust anchors: no_system_roots without a ca_file");
                return -EINVAL;
        }
        ctx = SSL_CTX_new(TLS_method());
        if (!ctx)
                return -ENOMEM;
        if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
                return -ENOMEM;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
        store = SSL_CTX_get_cert_store(ctx);
        if (!cfg->no_system_roots) {
                r = load_pem(store, "system roots",
                             cfg->system_roots ? cfg->system_roots : ROOTS_DEFAULT, reterr);
                if (r < 0)
                        return r;
        }
        if (ca) {
                r = load_pem(store, "ca_file", cfg->ca_file, reterr);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}
