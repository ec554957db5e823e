/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The state directory: one JSON file per accepted workload under
 * <root>/workloads/, written atomically and durably (temporary file, fsync,
 * rename, fsync of the directory) before the bus reply, plus
 * <root>/counters.json with the per-workload byte counters so Metrics stays
 * monotonic across restarts. */

#include <stdbool.h>
#include <stdint.h>

#include "workloads/workloads.h"

struct gw_state;

/* One workload's traffic counters (the values of its route's struct
 * proxy_counters). Files written before requests/status existed load with
 * those at zero. */
struct gw_counters {
        uint64_t request_bytes;  /* client -> backend */
        uint64_t response_bytes; /* backend -> client */
        uint64_t requests;       /* HTTP requests, or passthrough connections */
        uint64_t status[5];      /* HTTP responses by class: [0] = 1xx ... [4] = 5xx */
};

/* Create <root> and <root>/workloads (0700) when missing. */
int gw_state_open(const char *root, struct gw_state **ret);
struct gw_state *gw_state_free(struct gw_state *s);

/* Persist @p (replacing its previous file). Returns 0 or -errno. */
int gw_state_save(struct gw_state *s, const struct wl_proxy *p);
/* Remove a workload's file; a missing file is not an error. */
int gw_state_remove(struct gw_state *s, const char *id);

/* What gw_state_load() reports per file. A corrupt workload file (it does
 * not parse, is too large, or its name does not match its ID) is renamed to
 * "<name>.corrupt-<unix time>" (durably) so that it is neither lost nor
 * loaded again, and the farmer can ask for a re-deploy of that ID. */
struct gw_state_loaded {
        struct wl_proxy *p; /* the workload (ownership passes to the callback), or NULL */
        const char *error;  /* why the file is not usable (names the file), or NULL */
        const char *id;     /* p == NULL: the ID the file name says, or NULL if it says none */
        const char *aside;  /* p == NULL: the file's name after the move, or NULL (not moved:
                             * an I/O error that may pass) */
        bool earlier;       /* a file moved aside by an earlier start (error is NULL) */
};
typedef void gw_state_load_cb(const struct gw_state_loaded *l, void *userdata);
/* Load every workload file and report files moved aside earlier. Returns 0
 * or -errno when the directory cannot be read. */
int gw_state_load(struct gw_state *s, gw_state_load_cb *cb, void *userdata);
/* The workload ID encoded in a state file name ("wl-<id>.json", optionally
 * followed by ".corrupt-<time>"), or NULL (not such a name, or no memory). */
char *gw_state_id_from_file_name(const char *name);

/* Counters file: map of workload ID -> counters, for the workloads in @reg
 * (@get returns < 0 to leave one out). */
typedef int gw_counters_get_cb(const char *id, struct gw_counters *ret, void *userdata);
typedef void gw_counters_set_cb(const char *id, const struct gw_counters *c, void *userdata);
int gw_state_save_counters(struct gw_state *s, const struct wl_registry *reg,
                           gw_counters_get_cb *get, void *userdata);
int gw_state_load_counters(struct gw_state *s, gw_counters_set_cb *set, void *userdata);

/* Serialise/parse one workload (exposed for tests and fuzzing). */
char *gw_state_dump_proxy(const struct wl_proxy *p);
int gw_state_parse_proxy(const char *text, size_t len, struct wl_proxy **ret, char **reterr);
/* The file name used for workload @id ("wl-<percent-encoded id>.json"). */
char *gw_state_file_name(const char *id);
