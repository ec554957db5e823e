/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared by acme/jws.c, csr.c and cert.c (and their unit tests): the
 * EVP_PKEY behind a struct acme_key (the *_freep cleanups come from
 * ssl/ssl-util.h). Not part of the module's API. */

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
#include "ssl/ssl-util.h"

struct acme_key;

/* The key's EVP_PKEY, borrowed: valid as long as @k. */
EVP_PKEY *acme__key_pkey(const struct acme_key *k);

/* Drain BoringSSL's error queue (so a later, unrelated check on this
 * thread does not see our failure) and map it: -ENOMEM for an allocation
 * failure, else @fallback. */
int acme__ssl_error(int fallback);
