/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Scoped cleanups for the BoringSSL types the tree uses, in one place
 * (systemd's openssl-util.h): `_cleanup_(X509_freep) X509 *x = NULL;`.
 * Header-only; it compiles only where BoringSSL's headers are on the
 * include path, i.e. in the modules docs/ARCHITECTURE.md lets use BoringSSL
 * (proxy, acme, daemon) and their tests. Each helper accepts NULL, like the
 * function it wraps. */

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/macros.h"

/* `fn##p(type **p)` calling fn(*p). */
#define SSL_DEFINE_FREEP(type, fn)                                                                 \
        static inline void fn##p(type **p)                                                         \
        {                                                                                          \
                fn(*p);                                                                            \
        }

SSL_DEFINE_FREEP(ASN1_BIT_STRING, ASN1_BIT_STRING_free)
SSL_DEFINE_FREEP(ASN1_IA5STRING, ASN1_IA5STRING_free)
SSL_DEFINE_FREEP(ASN1_INTEGER, ASN1_INTEGER_free)
SSL_DEFINE_FREEP(ASN1_TIME, ASN1_TIME_free)
SSL_DEFINE_FREEP(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free)
SSL_DEFINE_FREEP(BIGNUM, BN_free)
SSL_DEFINE_FREEP(BIO, BIO_free)
SSL_DEFINE_FREEP(CRYPTO_BUFFER, CRYPTO_BUFFER_free)
SSL_DEFINE_FREEP(EC_KEY, EC_KEY_free)
SSL_DEFINE_FREEP(ECDSA_SIG, ECDSA_SIG_free)
SSL_DEFINE_FREEP(EVP_PKEY, EVP_PKEY_free)
SSL_DEFINE_FREEP(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free)
SSL_DEFINE_FREEP(GENERAL_NAME, GENERAL_NAME_free)
SSL_DEFINE_FREEP(GENERAL_NAMES, GENERAL_NAMES_free)
SSL_DEFINE_FREEP(SSL, SSL_free)
SSL_DEFINE_FREEP(SSL_CTX, SSL_CTX_free)
SSL_DEFINE_FREEP(X509, X509_free)
SSL_DEFINE_FREEP(X509_EXTENSION, X509_EXTENSION_free)
SSL_DEFINE_FREEP(X509_NAME, X509_NAME_free)
SSL_DEFINE_FREEP(X509_REQ, X509_REQ_free)
SSL_DEFINE_FREEP(X509_STORE, X509_STORE_free)
/* For buffers BoringSSL allocated (i2d_*, ASN1_STRING_to_UTF8, ...). */
SSL_DEFINE_FREEP(uint8_t, OPENSSL_free)

static inline void sk_X509_pop_freep(STACK_OF(X509) * *p)
{
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}
static inline void sk_X509_EXTENSION_pop_freep(STACK_OF(X509_EXTENSION) * *p)
{
        if (*p)
                sk_X509_EXTENSION_pop_free(*p, X509_EXTENSION_free);
}
