/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Facts about an issued certificate chain the daemon needs to schedule
 * renewals and report what it serves: the leaf's validity, names and
 * issuer, and its ARI certificate identifier (RFC 9773 §4.1). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct acme_key;

#define ACME_CERT_CHAIN_MAX 8    /* certificates in a chain (leaf + intermediates) */
#define ACME_CERT_NAMES_MAX 1000 /* SAN dNSName entries in a leaf */
#define ACME_CERT_PEM_MAX   (1024 * 1024)

struct acme_cert_info {
        int64_t not_before; /* leaf notBefore, Unix seconds */
        int64_t not_after;  /* leaf notAfter, Unix seconds */
        char **dns_names;   /* the leaf's SAN dNSName entries, in order; owned */
        size_t n_dns_names; /* their number */
        char *issuer;       /* "O=<o>, CN=<cn>" of the leaf's issuer (either part may be
                             * missing), control bytes shown as '?'; owned */
        char *ari_id;       /* base64url(AKI keyIdentifier) "." base64url(serial DER content);
                             * NULL when the leaf has no authority key identifier; owned */
        size_t n_certs;     /* certificates in the chain, leaf first */
};

/* Parse the PEM chain at @pem (the leaf is the first CERTIFICATE block).
 * Returns 0 with *ret filled (acme_cert_info_done() frees it), -EINVAL
 * when there is no certificate or one does not parse, or a dNSName is
 * not printable ASCII (text outside the PEM blocks is ignored, RFC 7468
 * §2), -E2BIG for more than ACME_CERT_CHAIN_MAX certificates, more than
 * ACME_CERT_NAMES_MAX names or more than ACME_CERT_PEM_MAX bytes, or
 * -ENOMEM. *ret is untouched on failure. */
int acme_cert_info_parse(const char *pem, size_t len, struct acme_cert_info *ret);
void acme_cert_info_done(struct acme_cert_info *ci);

/* Is @key the private key of the chain's leaf? Returns 1, 0, or -EINVAL /
 * -ENOMEM as acme_cert_info_parse(). */
int acme_cert_matches_key(const char *pem, size_t len, const struct acme_key *key);
