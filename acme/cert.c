/* SPDX-License-Identifier: Apache-2.0 */
#include "acme/cert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bytestring.h>
#include <openssl/err.h>
#include <openssl/nid.h>
#include <openssl/pem.h>

#include "acme/crypto-internal.h"
#include "common/base64.h"
#include "common/strbuf.h"

#define ISSUER_PART_MAX 128 /* bytes kept of the issuer's O and CN each */

/* Read every certificate of @pem. */
static int read_chain(const char *pem, size_t len, STACK_OF(X509) * *ret)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;

        if (!pem || len == 0)
                return -EINVAL;
        if (len > ACME_CERT_PEM_MAX)
                return -E2BIG;
        chain = sk_X509_new_null();
        bio = BIO_new_mem_buf(pem, (ssize_t)len);
        if (!chain || !bio)
                return acme__ssl_error(-ENOMEM);
        for (;;) {
                X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                uint32_t e;

                if (!x) {
                        e = ERR_peek_last_error();
                        /* No further "-----BEGIN": the normal end. */
                        if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
                            ERR_GET_REASON(e) == PEM_R_NO_START_LINE && sk_X509_num(chain) > 0) {
                                ERR_clear_error();
                                break;
                        }
                        return acme__ssl_error(-EINVAL);
                }
                if (sk_X509_num(chain) >= ACME_CERT_CHAIN_MAX) {
                        X509_free(x);
                        return -E2BIG;
                }
                if (!sk_X509_push(chain, x)) {
                        X509_free(x);
                        return acme__ssl_error(-ENOMEM);
                }
        }
        *ret = TAKE_PTR(chain);
        return 0;
}

/* Seconds since the epoch of @t (ASN1_TIME_diff copes with both UTCTime
 * and GeneralizedTime, and with years past 2038). */
static int time_of(const ASN1_TIME *t, int64_t *ret)
{
        _cleanup_(ASN1_TIME_freep) ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
        int days, secs;

        if (!epoch)
                return acme__ssl_error(-ENOMEM);
        if (!t || !ASN1_TIME_diff(&days, &secs, epoch, t))
                return acme__ssl_error(-EINVAL);
        *ret = (int64_t)days * 86400 + secs;
        return 0;
}

static void free_names(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static int san_names(X509 *leaf, char ***ret, size_t *ret_n)
{
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = NULL;
        char **names = NULL;
        size_t n = 0, count;
        int crit = -1;

        gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
        if (!gens) {
                /* crit == -1: no SAN; anything else: present but malformed. */
                ERR_clear_error();
                if (crit != -1)
                        return -EINVAL;
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        count = sk_GENERAL_NAME_num(gens);
        for (size_t i = 0; i < count; i++) {
                const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
                const unsigned char *d;
                size_t len;
                char **nn;

                if (g->type != GEN_DNS)
                        continue;
                d = ASN1_STRING_get0_data(g->d.dNSName);
                len = (size_t)ASN1_STRING_length(g->d.dNSName);
                for (size_t j = 0; j < len; j++)
                        if (d[j] <= 0x20 || d[j] >= 0x7f)
                                goto invalid;
                if (n >= ACME_CERT_NAMES_MAX) {
                        free_names(names, n);
                        return -E2BIG;
                }
                nn = realloc(names, (n + 1) * sizeof(*names));
                if (!nn)
                        goto nomem;
                names = nn;
                names[n] = memdup_suffix0(d, len);
                if (!names[n])
                        goto nomem;
                n++;
        }
        *ret = names;
        *ret_n = n;
        return 0;
invalid:
        free_names(names, n);
        return -EINVAL;
nomem:
        free_names(names, n);
        return -ENOMEM;
}

/* Append the first @nid entry of @name, if any, as "<label>=<value>". */
static int put_name_part(struct strbuf *b, const X509_NAME *name, int nid, const char *label)
{
        _cleanup_(OPENSSL_freep) uint8_t *utf8 = NULL;
        int i = X509_NAME_get_index_by_NID(name, nid, -1);
        int len, r;

        if (i < 0)
                return 0;
        len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        if (len < 0)
                return acme__ssl_error(-EINVAL);
        if (len > ISSUER_PART_MAX)
                len = ISSUER_PART_MAX;
        r = strbuf_printf(b, "%s%s=", b->len ? ", " : "", label);
        for (int j = 0; r >= 0 && j < len; j++)
                r = strbuf_putc(b, utf8[j] < 0x20 || utf8[j] == 0x7f ? '?' : (char)utf8[j]);
        return r;
}

static int issuer_of(X509 *leaf, char **ret)
{
        _cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
        const X509_NAME *name = X509_get_issuer_name(leaf);
        int r;

        r = put_name_part(&b, name, NID_organizationName, "O");
        if (r >= 0)
                r = put_name_part(&b, name, NID_commonName, "CN");
        if (r >= 0 && b.len == 0)
                r = strbuf_puts(&b, "(issuer without O or CN)");
        if (r < 0)
                return r;
        *ret = strbuf_steal(&b);
        return 0;
}

/* RFC 9773 §4.1: base64url(keyIdentifier of the AKI) "." base64url(the
 * DER content octets of the serial, leading 0x00 included). */
static int ari_id_of(X509 *leaf, char **ret)
{
        const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
        _cleanup_(OPENSSL_freep) uint8_t *der = NULL;
        _cleanup_free_ char *a = NULL, *s = NULL;
        CBS cbs, content;
        int len, r;

        if (!aki) {
                ERR_clear_error();
                *ret = NULL;
                return 0;
        }
        len = i2d_ASN1_INTEGER(X509_get0_serialNumber(leaf), &der);
        if (len <= 0)
                return acme__ssl_error(-EINVAL);
        CBS_init(&cbs, der, (size_t)len);
        if (!CBS_get_asn1(&cbs, &content, CBS_ASN1_INTEGER) || CBS_len(&content) == 0)
                return -EINVAL;
        r = base64url_encode(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), &a);
        if (r >= 0)
                r = base64url_encode(CBS_data(&content), CBS_len(&content), &s);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s.%s", a, s) < 0)
                return -ENOMEM;
        return 0;
}

int acme_cert_info_parse(const char *pem, size_t len, struct acme_cert_info *ret)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        struct acme_cert_info ci = {};
        X509 *leaf;
        int r;

        r = read_chain(pem, len, &chain);
        if (r < 0)
                return r;
        leaf = sk_X509_value(chain, 0);
        ci.n_certs = sk_X509_num(chain);
        r = time_of(X509_get0_notBefore(leaf), &ci.not_before);
        if (r >= 0)
                r = time_of(X509_get0_notAfter(leaf), &ci.not_after);
        if (r >= 0)
                r = san_names(leaf, &ci.dns_names, &ci.n_dns_names);
        if (r >= 0)
                r = issuer_of(leaf, &ci.issuer);
        if (r >= 0)
                r = ari_id_of(leaf, &ci.ari_id);
        if (r < 0) {
                acme_cert_info_done(&ci);
                return r;
        }
        *ret = ci;
        return 0;
}

void acme_cert_info_done(struct acme_cert_info *ci)
{
        if (!ci)
                return;
        free_names(ci->dns_names, ci->n_dns_names);
        free(ci->issuer);
        free(ci->ari_id);
        *ci = (struct acme_cert_info){};
}

int acme_cert_matches_key(const char *pem, size_t len, const struct acme_key *key)
{
        _cleanup_(sk_X509_pop_freep) STACK_OF(X509) *chain = NULL;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pub = NULL;
        int r;

        r = read_chain(pem, len, &chain);
        if (r < 0)
                return r;
        pub = X509_get_pubkey(sk_X509_value(chain, 0));
        if (!pub)
                return acme__ssl_error(-EINVAL);
        /* 1: equal; 0: different; -1/-2: different types. */
        r = EVP_PKEY_cmp(pub, acme__key_pkey(key));
        ERR_clear_error();
        return r == 1;
}
