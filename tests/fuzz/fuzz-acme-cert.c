/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate facts (acme/cert.c) from a PEM chain a CA sent: whatever
 * parses must come out bounded, printable and well-formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/cert.h"
#include "acme/jws.h"
#include "common/base64.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static struct acme_key *key;
        struct acme_cert_info ci;
        const char *dot;

        if (!key && acme_key_generate(&key) < 0)
                abort();
        if (acme_cert_info_parse((const char *)data, size, &ci) < 0) {
                CHECK(acme_cert_matches_key((const char *)data, size, key) <= 0);
                return 0;
        }
        CHECK(ci.n_certs >= 1 && ci.n_certs <= ACME_CERT_CHAIN_MAX);
        CHECK(ci.n_dns_names <= ACME_CERT_NAMES_MAX);
        for (size_t i = 0; i < ci.n_dns_names; i++) {
                CHECK(ci.dns_names[i]);
                for (const char *p = ci.dns_names[i]; *p; p++)
                        CHECK(*p > 0x20 && *p < 0x7f);
        }
        CHECK(ci.issuer);
        for (const char *p = ci.issuer; *p; p++)
                CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        if (ci.ari_id) {
                dot = strchr(ci.ari_id, '.');
                CHECK(dot && dot > ci.ari_id && dot[1]);
                CHECK(base64url_is_valid(ci.ari_id, (size_t)(dot - ci.ari_id)));
                CHECK(base64url_is_valid(dot + 1, strlen(dot + 1)));
        }
        /* A random key is never the leaf's (an undecodable leaf key: < 0). */
        CHECK(acme_cert_matches_key((const char *)data, size, key) <= 0);
        acme_cert_info_done(&ci);
        return 0;
}
