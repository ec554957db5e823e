/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Broker URLs as zbus parses them (protocol-zbus-gateway.md §1.1):
 * unix:///path, tcp://host:port, and the user part of the userinfo is the
 * AUTH password (tcp://SECRET@host:6379). */

#include <stdbool.h>

struct proto_broker {
        bool is_unix;
        char *path;     /* unix socket path */
        char *host;     /* tcp host (brackets stripped for IPv6) */
        int port;       /* tcp port */
        char *password; /* NULL when none; "" is an empty password */
};

/* Returns 0, -EINVAL with *reterr = "unknown scheme '<s>' expecting tcp or
 * unix" (or another reason), or -ENOMEM. */
int proto_broker_parse(const char *url, struct proto_broker *ret, char **reterr);
void proto_broker_done(struct proto_broker *b);

/* A random (v4) UUID in lower-case 8-4-4-4-12 form; @ret has >= 37 bytes. */
int proto_uuid4(char *ret);
