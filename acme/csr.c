/* SPDX-License-Identifier: Apache-2.0 */
#include "acme/csr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/nid.h>
#include <openssl/obj.h>

#include "acme/crypto-internal.h"
#include "acme/jws.h"

#define DNS_NAME_MAX 253

static bool name_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > DNS_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '*'))
                        return false;
        }
        return true;
}

static int add_san(STACK_OF(X509_EXTENSION) * exts, const char *const *names, size_t n,
                   bool critical)
{
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = NULL;

        if (!gens)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(GENERAL_NAME_freep) GENERAL_NAME *gen = GENERAL_NAME_new();
                _cleanup_(ASN1_IA5STRING_freep) ASN1_IA5STRING *dns = ASN1_IA5STRING_new();

                if (!gen || !dns || !ASN1_STRING_set(dns, names[i], (int)strlen(names[i])))
                        return -ENOMEM;
                GENERAL_NAME_set0_value(gen, GEN_DNS, TAKE_PTR(dns));
                if (!sk_GENERAL_NAME_push(gens, gen))
                        return -ENOMEM;
                gen = NULL;
        }
        ext = X509V3_EXT_i2d(NID_subject_alt_name, critical, gens);
        if (!ext || !sk_X509_EXTENSION_push(exts, ext))
                return -ENOMEM;
        ext = NULL;
        return 0;
}

int acme_csr_new(const struct acme_key *key, const char *const *names, size_t n, uint8_t **ret,
                 size_t *ret_len)
{
        _cleanup_(X509_REQ_freep) X509_REQ *req = NULL;
        _cleanup_(X509_NAME_freep) X509_NAME *subject = NULL;
        _cleanup_(sk_X509_EXTENSION_pop_freep) STACK_OF(X509_EXTENSION) *exts = NULL;
        _cleanup_(OPENSSL_freep) uint8_t *der = NULL;
        EVP_PKEY *pkey = acme__key_pkey(key);
        bool cn;
        uint8_t *out;
        int len, r;

        if (n == 0 || n > ACME_CSR_MAX_NAMES)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!name_ok(names[i]))
                        return -EINVAL;
        cn = strlen(names[0]) <= ACME_CSR_CN_MAX;

        req = X509_REQ_new();
        subject = X509_NAME_new();
        exts = sk_X509_EXTENSION_new_null();
        if (!req || !subject || !exts)
                return acme__ssl_error(-ENOMEM);
        if (cn && !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                              (const uint8_t *)names[0], -1, -1, 0))
                return acme__ssl_error(-ENOMEM);
        r = add_san(exts, names, n, !cn);
        if (r < 0)
                return acme__ssl_error(r);
        if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
            !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, pkey) ||
            !X509_REQ_add_extensions(req, exts))
                return acme__ssl_error(-ENOMEM);
        if (!X509_REQ_sign(req, pkey, EVP_sha256()))
                return acme__ssl_error(-EIO);
        len = i2d_X509_REQ(req, &der);
        if (len <= 0)
                return acme__ssl_error(-ENOMEM);
        /* Hand out malloc() memory, not OPENSSL_malloc()'s. */
        out = malloc((size_t)len);
        if (!out)
                return -ENOMEM;
        memcpy(out, der, (size_t)len);
        *ret = out;
        *ret_len = (size_t)len;
        return 0;
}
