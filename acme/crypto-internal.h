/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared by acme/jws.c, csr.c and cert.c (and their unit tests): scoped
 * cleanups for the BoringSSL types they use, in one place, and the
 * EVP_PKEY behind a struct acme_key. Not part of the module's API. */

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/macros.h"

struct acme_key;

/* The key's EVP_PKEY, borrowed: valid as long as @k. */
EVP_PKEY *acme__key_pkey(const struct acme_key *k);

#define ACME_DEFINE_FREEP(type, fn)                                                                \
        static inline void fn##p(type **p)                                                         \
        {                                                                                          \
                fn(*p);                                                                            \
        }

ACME_DEFINE_FREEP(EVP_PKEY, EVP_PKEY_free)
ACME_DEFINE_FREEP(EC_KEY, EC_KEY_free)
ACME_DEFINE_FREEP(ECDSA_SIG, ECDSA_SIG_free)
ACME_DEFINE_FREEP(BIO, BIO_free)
ACME_DEFINE_FREEP(BIGNUM, BN_free)
ACME_DEFINE_FREEP(X509, X509_free)
ACME_DEFINE_FREEP(X509_REQ, X509_REQ_free)
ACME_DEFINE_FREEP(X509_NAME, X509_NAME_free)
ACME_DEFINE_FREEP(ASN1_TIME, ASN1_TIME_free)
ACME_DEFINE_FREEP(GENERAL_NAMES, GENERAL_NAMES_free)
ACME_DEFINE_FREEP(GENERAL_NAME, GENERAL_NAME_free)
ACME_DEFINE_FREEP(ASN1_IA5STRING, ASN1_IA5STRING_free)
ACME_DEFINE_FREEP(X509_EXTENSION, X509_EXTENSION_free)
ACME_DEFINE_FREEP(uint8_t, OPENSSL_free)

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

/* Drain BoringSSL's error queue (so a later, unrelated check on this
 * thread does not see our failure) and map it: -ENOMEM for an allocation
 * failure, else @fallback. */
int acme__ssl_error(int fallback);
