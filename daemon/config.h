/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The node configuration file (INI, parsed with inih). See
 * docs/configuration.md and dist/gatewayd.conf.example. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "workloads/workloads.h"

enum gw_public_config_source {
        GW_PUBLIC_CONFIG_FILE, /* the four public_* / gateway_* keys */
        GW_PUBLIC_CONFIG_BUS,  /* network.network@0.0.1 GetPublicConfig */
};

enum gw_name_validation {
        GW_NAME_VALIDATION_BUS, /* api-gateway.api-gateway@0.0.1, as zos does */
        GW_NAME_VALIDATION_OFF, /* trust the caller */
};

#define GW_ACME_DIRECTORY_DEFAULT "https://acme-v02.api.letsencrypt.org/directory"

/* The overlay networks the gateway namespace reaches, each through a link
 * of its own: [namespace] <name>_link, <name>_address, <name>_router. */
enum gw_overlay {
        GW_OVERLAY_YGG,      /* Yggdrasil, 200::/7; required while the namespace is managed */
        GW_OVERLAY_MYCELIUM, /* Mycelium, 400::/7; optional */
        _GW_OVERLAY_MAX,
};

struct gw_overlay_info {
        const char *name;       /* key prefix, the link's name inside, reports: "ygg" */
        const char *title;      /* "Yggdrasil", for messages */
        const char *prefix_str; /* "200::/7" */
        struct in6_addr prefix; /* the overlay's addresses: routed via its router */
        uint8_t prefixlen;
        bool required; /* needed whenever public_link is set */
};

/* Indexed by enum gw_overlay. */
extern const struct gw_overlay_info gw_overlays[_GW_OVERLAY_MAX];

struct gw_overlay_config {
        char *link; /* "veth:<host>" | "macvlan:<parent>" | "move:<ifname>"; NULL: not
                     * configured (then none of its keys is set) */
        bool has_address;
        struct in6_addr address; /* the gateway's address on the overlay */
        uint8_t prefix;
        bool has_router;
        struct in6_addr router; /* next hop for the overlay's prefix */
};

/* [limits]: timeouts and client limits of the proxy (docs/configuration.md
 * has each default and why). Durations in ms; a 0 rate or per-client limit
 * is "off". Applied on SIGHUP, except the three marked "restart". */
struct gw_limits {
        unsigned handshake_timeout_ms;    /* 10 s: accept -> TLS done; :80 first request */
        unsigned request_head_timeout_ms; /* 30 s: first byte -> complete head */
        unsigned body_timeout_ms;         /* 30 s: the period of body_min_rate */
        unsigned body_min_rate;           /* 256 B/s over body_timeout; 0: any byte */
        unsigned send_timeout_ms;         /* 60 s: the period of send_min_rate */
        unsigned send_min_rate;           /* 256 B/s over send_timeout; 0: any byte */
        unsigned keepalive_timeout_ms;    /* 60 s: idle between requests */
        unsigned connect_timeout_ms;      /* 5 s: per backend attempt */
        unsigned response_timeout_ms;     /* 60 s: request sent -> response head */
        unsigned tunnel_idle_timeout_ms;  /* 300 s: tunnels, passthrough, response stalls */
        unsigned drain_timeout_ms;        /* 30 s: SIGTERM -> in-flight work cut */
        unsigned max_head_size;           /* 16 KiB (restart) */
        unsigned max_headers;             /* 100 (restart) */
        unsigned max_connections;         /* 0: from the open-file limit */
        unsigned connections_per_client;  /* 1024 per port; 0: off */
        unsigned new_connections_per_sec; /* 256; 0: off */
        unsigned pool_size;               /* idle per backend per worker; 0: the proxy's own
                                           * policy (restart) */
};

struct gw_config {
        char *path; /* file it was read from */

        /* [gateway] */
        bool enabled;
        enum gw_public_config_source public_config;
        struct wl_public_config pc; /* domain + addresses (domain also used in bus mode) */

        /* [names] */
        enum gw_name_validation name_validation;
        unsigned revalidate_interval_sec; /* hourly contract check; default 3600 */

        /* [dns] */
        char *resolver; /* normalised "IPv4:port" or "[IPv6]:port"; default "8.8.8.8:53" */
        unsigned resolver_timeout_ms; /* default 10000 */

        uint16_t dns_listen_port; /* _acme-challenge responder; default 53; 0: off */

        /* [acme] */
        bool acme_enabled;    /* default yes (effective only while [gateway] enabled) */
        char *acme_directory; /* https:// directory URL; default Let's Encrypt production */
        char *acme_email;     /* account contact, or NULL */
        char *acme_ca_file;   /* extra CA for the ACME server's TLS, or NULL */
        char *acme_profile;   /* ACME profile name, or NULL */

        /* [bus] */
        unsigned call_timeout_ms; /* outgoing zbus calls (api-gateway, network); default 60000 */
        unsigned max_payload;     /* bytes per request popped from Redis; default 1 MiB */

        /* [namespace] */
        char *netns_dir;      /* where named network namespaces live; default /run/netns */
        char *ns_name;        /* the gateway namespace; default "gateway" */
        char *ns_public_link; /* "veth:<host>" | "macvlan:<parent>" | "move:<ifname>"; NULL:
                               * the namespace is not managed (no [namespace] links set) */
        struct gw_overlay_config overlays[_GW_OVERLAY_MAX]; /* by enum gw_overlay */

        /* [proxy] */
        uint16_t http_port;     /* default 80; 0 = no :80 listener */
        uint16_t https_port;    /* default 443; 0 = no :443 listener */
        unsigned proxy_workers; /* engine threads; 0 (default) = one per CPU; needs a restart */
        struct sockaddr_storage proxy_address; /* listen address, port 0; default "::" */
        socklen_t proxy_address_len;
        bool http_plain; /* :80 proxies terminated names instead of 308 (bench/); default no */

        /* [limits] */
        struct gw_limits limits;

        /* [metrics] */
        struct sockaddr_storage metrics_listen; /* Prometheus text; default 127.0.0.1:8082 */
        socklen_t metrics_listen_len;           /* 0: off (listen = empty) */

        /* [log] */
        int log_level;         /* syslog level; default LOG_INFO */
        char *log_access;      /* "stderr", "journal" or an absolute path; NULL (default): off */
        bool log_access_query; /* the access log keeps query strings; default no */
};

/* "::", "203.0.113.10:443", "[::1]:8082" (@port 0: the address alone).
 * Returns @buf. */
const char *gw_sockaddr_to_string(const struct sockaddr *sa, char *buf, size_t size);

/* "file"/"bus" and "bus"/"off", as written in the file; NULL for other values. */
const char *gw_public_config_source_to_string(enum gw_public_config_source s);
const char *gw_name_validation_to_string(enum gw_name_validation v);

/* Fill @c with defaults (enabled = no, no domain, validation = bus,
 * resolver 8.8.8.8:53, ...). Returns 0 or -ENOMEM. */
int gw_config_init(struct gw_config *c);
void gw_config_done(struct gw_config *c);

/* Parse @path into @ret (which must be unset; it is initialised here). Unknown
 * sections/keys and bad values are errors. On failure returns -EINVAL (or
 * -errno for I/O, -ENOMEM) and sets *reterr to every error of the file, one
 * per line ('\n' between them, none at the end), in line order, each
 * "<file>:<line>: [<section>] <key>: <reason>"; checks across keys come last
 * and have no line when they are about a missing key ("<file>: [gateway]
 * ..."). At most 100 are listed, then "<file>: N more errors not shown". An
 * I/O error is one line, "<file>: <strerror>". @ret is left unset (no need to
 * call gw_config_done). A missing file is -ENOENT, a file that is not a
 * regular file -EBADF, one over 1 MiB -EFBIG. The caller owns *reterr
 * (free()); it is NULL on -ENOMEM. @reterr may be NULL. */
int gw_config_load(const char *path, struct gw_config *ret, char **reterr);

/* Parse from a memory buffer (for tests and fuzzing); @name is used in errors. */
int gw_config_load_string(const char *name, const char *text, struct gw_config *ret, char **reterr);
