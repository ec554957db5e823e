/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Gateway workloads: types, the zos validation rules (with zos's exact
 * error texts and order), workload-ID parsing, the network-ID derivation
 * and the domain registry. Pure: no I/O, no clock, no libuv. Steps that need
 * I/O (public config, name contract, DNS) are done by daemon/ between the
 * pure stages below, in the order protocol-zbus-gateway.md §4.1/§4.2 gives.
 *
 * Error texts are returned as malloc()ed strings in *reterr (the exact text
 * zos puts in Output.Error); the int return is 0 or a -errno
 * (-EINVAL for a refused workload, -ENOMEM, -E2BIG for a limit). */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what the bus may send (every remotely growable resource has one). */
#define WL_ID_MAX       256    /* bytes in a workload ID */
#define WL_NAME_MAX     253    /* bytes in a name or FQDN */
#define WL_BACKENDS_MAX 64     /* backends per workload */
#define WL_BACKEND_MAX  512    /* bytes per backend string */
#define WL_NETWORK_MAX  64     /* bytes in a network name */
#define WL_REGISTRY_MAX 200000 /* workloads per node */

enum wl_kind {
        WL_KIND_NAME, /* name proxy: <name>.<node domain> */
        WL_KIND_FQDN, /* FQDN proxy: the user's own domain */
        _WL_KIND_MAX,
};

const char *wl_kind_to_string(enum wl_kind k); /* "name" / "fqdn" */
int wl_kind_from_string(const char *s);        /* enum value or -EINVAL */

/* The node's public configuration (file or networker GetPublicConfig). */
struct wl_public_config {
        bool has_ipv4;
        struct in_addr ipv4; /* public IPv4 of the gateway */
        uint8_t ipv4_prefix;
        bool has_gw4;
        struct in_addr gw4;
        bool has_ipv6;
        struct in6_addr ipv6;
        uint8_t ipv6_prefix;
        bool has_gw6;
        struct in6_addr gw6;
        char *domain; /* managed domain; NULL or "" when the node has none */
};

void wl_public_config_done(struct wl_public_config *pc);
/* Deep copy. Returns 0 or -ENOMEM. */
int wl_public_config_copy(const struct wl_public_config *src, struct wl_public_config *dst);

/* A gateway workload as the bus delivers it (GatewayNameProxy / GatewayFQDNProxy),
 * plus what the gateway derives. Owned strings; free with wl_proxy_free(). */
struct wl_proxy {
        char *id; /* workload ID exactly as sent */
        enum wl_kind kind;
        char *name; /* name proxies: the reserved name; NULL for FQDN proxies */
        char *fqdn; /* FQDN proxies: as sent; name proxies: name + "." + domain once known */
        char **backends;
        size_t n_backends;
        bool tls_passthrough;
        char *network;         /* NULL = not set (Go nil); "" is a set, empty name */
        char net_id[16];       /* derived network ID when network != NULL, else "" */
        uint64_t created_usec; /* first accepted (wall clock, set by daemon/) */
        uint64_t updated_usec; /* last accepted change (set by daemon/) */
};

struct wl_proxy *wl_proxy_new(void);
struct wl_proxy *wl_proxy_free(struct wl_proxy *p); /* accepts NULL, returns NULL */
static inline void wl_proxy_freep(struct wl_proxy **p)
{
        wl_proxy_free(*p);
}
/* Deep copy. Returns NULL on OOM. */
struct wl_proxy *wl_proxy_dup(const struct wl_proxy *p);
/* Same public name, flags, network and backends (in order)? */
bool wl_proxy_same_spec(const struct wl_proxy *a, const struct wl_proxy *b);

/* ---- workload ID (§5): Go fmt.Sscanf(id, "%d-%d-%s") semantics ---- */
struct wl_id {
        uint32_t twin;
        uint64_t contract;
        char name[WL_ID_MAX + 1];
};
/* Returns 0, or -EINVAL with *reterr = the scan error text without the
 * "invalid workload id: " prefix (e.g. "unexpected EOF", "expected integer",
 * "EOF"), or -E2BIG when Go would accept the ID but the scanned name does not
 * fit in ret->name. Edge cases are documented in wlid.c. */
int wl_id_parse(const char *id, struct wl_id *ret, char **reterr);

/* ---- network ID (§4.6): base58(md5("<twin>:<name>"))[:13] ---- */
/* Writes a NUL-terminated ID (at most 13 chars) to @ret (>= 14 bytes). */
void wl_net_id(uint32_t twin, const char *network, char *ret);

/* ---- staged checks ---- */

/* SetNamedProxy §4.1 steps 1-2: backends not empty, workload ID parses. */
int wl_check_name_request(const struct wl_proxy *p, char **reterr);
/* SetNamedProxy §4.1 step 4 (after the daemon's public-config step 3): the node
 * has a domain. On success sets p->fqdn = name + "." + domain. */
int wl_check_name_node(struct wl_proxy *p, const struct wl_public_config *pc, char **reterr);
/* SetFQDNProxy §4.2 step 1: backends not empty. */
int wl_check_fqdn_request(const struct wl_proxy *p, char **reterr);
/* SetFQDNProxy §4.2 step 3: not under the managed domain (plain suffix test,
 * ignoring ASCII case; zos compares case-sensitively). */
int wl_check_fqdn_node(const struct wl_proxy *p, const struct wl_public_config *pc, char **reterr);
/* setupRouting §4.3 step 1: zos.ValidateBackends with go-multierror text:
 * all syntax errors first, then (only if there are none) the first backend on
 * the node's own public IP as a plain error. @pc may be NULL (no public IPs). */
int wl_validate_backends(const struct wl_proxy *p, const struct wl_public_config *pc,
                         char **reterr);
/* Parse a validated backend into address + port (passthrough "ip:port";
 * otherwise "http://ip[:port]/..." with port 80 by default). IPv4 comes back
 * as ::ffff:a.b.c.d in an AF_INET6 sockaddr. Returns 0 or -EINVAL (@ret
 * untouched) for anything wl_validate_backends() would refuse. */
int wl_backend_address(const char *backend, bool passthrough, struct sockaddr_in6 *ret);

/* ---- registry and plans ---- */

struct wl_registry;

struct wl_registry *wl_registry_new(void);
struct wl_registry *wl_registry_free(struct wl_registry *r);
size_t wl_registry_size(const struct wl_registry *r);
const struct wl_proxy *wl_registry_get(const struct wl_registry *r, const char *id);
const struct wl_proxy *wl_registry_get_by_domain(const struct wl_registry *r, const char *fqdn);
/* Iterate in no particular order; @cb returns < 0 to stop (that value is returned). */
int wl_registry_foreach(const struct wl_registry *r,
                        int (*cb)(const struct wl_proxy *p, void *userdata), void *userdata);

enum wl_plan_type {
        WL_PLAN_NOOP,    /* identical re-send: nothing to change */
        WL_PLAN_ADD,     /* new workload */
        WL_PLAN_REPLACE, /* same ID, changed spec (backends, name, flags) */
        WL_PLAN_REMOVE,  /* delete an existing workload */
        _WL_PLAN_TYPE_MAX,
};
const char *wl_plan_type_to_string(enum wl_plan_type t);

struct wl_plan {
        enum wl_plan_type type;
        const struct wl_proxy *old; /* registry's current entry (REPLACE/REMOVE/NOOP), borrowed */
        struct wl_proxy *new;       /* owned by the plan until committed (ADD/REPLACE); for a
                                     * NOOP of wl_plan_set() the (identical) request, which
                                     * commit/done free; NULL for delete plans */
};
void wl_plan_done(struct wl_plan *plan);

/* setupRouting §4.3 steps 1-2 plus the network-ID derivation of §4.6 step 1:
 * validate backends, refuse "domain already registered: <fqdn>" when another
 * workload ID holds p->fqdn (domains compare ignoring ASCII case), treat the
 * same ID + same spec as NOOP and the same ID with a new spec as REPLACE (a
 * REPLACE keeps old->created_usec when p's is 0). Takes ownership of @p on
 * success (it moves into the plan), not on failure. -E2BIG when the registry
 * is full (new IDs only). p->fqdn must be set (wl_check_name_node()). */
int wl_plan_set(const struct wl_registry *r, struct wl_proxy *p, const struct wl_public_config *pc,
                struct wl_plan *ret, char **reterr);
/* DeleteNamedProxy: REMOVE when known, NOOP otherwise (always succeeds). */
int wl_plan_delete(const struct wl_registry *r, const char *id, struct wl_plan *ret);
/* Apply a plan to the registry (after the daemon persisted it). Takes the
 * plan's proxy; the plan is emptied. Returns 0, -ENOMEM, or -ESTALE when the
 * registry changed since the plan was made (ID or domain taken, entry gone);
 * on error the registry is unchanged and the plan still owns its proxy. */
int wl_registry_commit(struct wl_registry *r, struct wl_plan *plan);
/* Insert a restored workload (from the state dir), bypassing validation but
 * still refusing duplicate IDs/domains (-EEXIST). Takes @p on success. */
int wl_registry_restore(struct wl_registry *r, struct wl_proxy *p);
