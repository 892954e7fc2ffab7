/* fleet.h - a fleet of sensors (and the capture workers of one) that act as one sensor.
 *
 * Shared attribution: an engine that maps a flagged DNS answer (IP -> name) shares the
 * binding (fleet_share). The other engines of the process get it at once through their own
 * bounded inbound queues; with Redis, the fleet thread also writes it as the key
 * <bind_prefix><ip> (expiring with the answer's clamped TTL) and publishes it on <channel>.
 * The thread subscribes to that channel on its own connection, and at start loads the keys
 * that are already there, so a sensor that sees only the flows learns the bindings another
 * sensor saw. A binding this process published comes back on the channel and is ignored (its
 * origin nonce). Each engine applies the queued bindings to its DNS map between batches
 * (fleet_drain), so the packet path stays single-threaded.
 *
 * Shared dedup: the recorder hands the Redis copy of a new alert to fleet_claim instead of the
 * publisher; the thread does SET <incident_prefix><host>|<rule>|<name> <event.id> NX EX
 * <window>. The winner's alert goes to the publisher; a loser sends an update record of the
 * winner's incident instead (its own hits as event.count). Later records of a lost incident
 * (updates, flow ends) go through fleet_relay, which puts the winner's id in place of the
 * local one.
 *
 * Never blocks capture: every queue is bounded. A binding that finds a queue full is dropped
 * and counted; a claim or relay that finds it full returns TW_ELIMIT and the caller sends the
 * record to the publisher itself (local dedup only, counted). Redis unreachable: local
 * attribution and dedup only (claims win, relays pass through), said once, fleet_state()
 * "local-only" until it is back.
 *
 * Threads: fleet_share/fleet_drain/fleet_pending by the engine owning the slot; fleet_claim
 * and fleet_relay by any recorder; the rest by the main thread.
 */
#ifndef TW_FLEET_H
#define TW_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/json.h"
#include "tunnelwatch/publish.h"
#include "tunnelwatch/tw.h"

#define FLEET_BINDING_MAX 4096 /* bytes of one binding's JSON; longer ones are refused */

/* One IP -> flagged name binding, as shared. Strings are NUL-terminated. */
struct fleet_binding {
    struct tw_addr ip;       /* the answered address */
    struct tw_addr client;   /* who received the answer (family 0: unknown) */
    struct tw_addr resolver; /* who sent it (family 0: unknown) */
    char name[256];          /* the flagged name */
    char rule[128];          /* the rule id that flagged it ("" unknown) */
    char sensor[65];         /* the sensor that saw the answer ("": this process) */
    char origin[17];         /* the publishing process's nonce (16 hex) */
    uint32_t ttl_s;          /* seconds the binding stays valid */
};

/* Parses one binding (a flat JSON object; untrusted: from Redis). Unknown keys are skipped;
 * "ip", "name" and "ttl" are required. TW_OK, TW_EBAD (malformed, missing field, a string
 * too long for its field) or TW_ELIMIT (longer than FLEET_BINDING_MAX). */
int fleet_binding_parse(const char *s, size_t n, struct fleet_binding *b) TW_WUR;
/* Writes b as JSON into w (reset first). */
void fleet_binding_format(struct jw *w, const struct fleet_binding *b);

struct fleet_opts {
    const char *url;      /* redis URL (pub_parse_url syntax); NULL: in-process only */
    const char *user;     /* ACL user or NULL (overrides the URL's) */
    const char *password; /* NULL: none (overrides the URL's); never logged */
    const char *sensor_name;
    const char *bind_prefix;     /* default tunnelwatch:bind: */
    const char *channel;         /* default tunnelwatch:bindings */
    const char *incident_prefix; /* default tunnelwatch:incident: */
    bool dedup;                  /* fleet-wide dedup (claims) */
    uint32_t dedup_window_s;     /* the claims' expiry */
    uint32_t ttl_cap_s;          /* received TTLs are capped at this */
    size_t queue_max;            /* each queue's capacity; default 4096 */
    int timeout_ms;              /* connect and command timeout; default 1000 */
    int sync_timeout_ms;         /* fleet_start waits this long for the first load */
    int n_slots;                 /* engines (capture workers); at least 1 */
    struct pub *pub;             /* where claimed and relayed records go (borrowed), or NULL */
    FILE *log;                   /* one line per state change, or NULL */
};

struct fleet_stats {
    uint64_t shared;         /* bindings learned here and shared */
    uint64_t published;      /* written to Redis */
    uint64_t received;       /* from Redis (channel or start-up load) */
    uint64_t own;            /* received back from this process: ignored */
    uint64_t bad;            /* received and refused by fleet_binding_parse */
    uint64_t applied;        /* taken by engines' DNS maps */
    uint64_t dropped;        /* bindings lost to a full queue */
    uint64_t claims_won;     /* new alerts this sensor raised fleet-wide */
    uint64_t claims_lost;    /* sent as updates of another sensor's incident */
    uint64_t bypassed;       /* claims and relays sent without the fleet (queue full) */
    uint64_t claims_evicted; /* workers' claims pushed out of their full table */
    uint64_t errors;         /* Redis errors and lost connections */
    bool ok;                 /* connected to Redis now */
};

struct fleet;

/* NULL with a one-line reason in err (bad URL, out of memory). */
struct fleet *fleet_new(const struct fleet_opts *o, char *err, size_t errlen);
/* Starts the thread (when there is a URL) and waits up to sync_timeout_ms for its first
 * connection and load, so a replay's first flows see the fleet's bindings. */
int fleet_start(struct fleet *f) TW_WUR;
/* Stops the thread; claims and relays still queued go to the publisher. */
void fleet_stop(struct fleet *f);
void fleet_free(struct fleet *f);

/* Engine side (slot = the engine's index, 0..n_slots-1). Copies b; never blocks. */
void fleet_share(struct fleet *f, int slot, const struct fleet_binding *b);
/* True when slot has bindings waiting (one atomic load). */
bool fleet_pending(struct fleet *f, int slot);
/* Calls fn for every binding waiting for slot (at most the queue's capacity); returns how
 * many. */
size_t fleet_drain(struct fleet *f, int slot, void (*fn)(void *ud, const struct fleet_binding *b),
                   void *ud);

/* Recorder side. True when new alerts should go through fleet_claim. */
bool fleet_dedups(const struct fleet *f);
/* A new alert's Redis copy: raised (the alert) and update (the same hit as an update record of
 * incident local_id, event.count 1). key: "host|rule|name". Copies all; TW_OK, or TW_ELIMIT
 * (queue full: send raised to the publisher yourself). */
int fleet_claim(struct fleet *f, const char *key, const char *local_id, const char *raised,
                size_t rlen, const char *update, size_t ulen);
/* A later record of incident local_id (update, flow end), sent with the winner's id in place
 * of local_id when another sensor won. TW_OK or TW_ELIMIT (send it yourself). */
/* Between the capture workers of this process (any thread): the first to raise an incident
 * (key: host|rule|name) within the dedup window owns it; true when id is the owner, else
 * false with the owner's event id in owner. Always true with a single engine or f NULL. */
bool fleet_claim_local(struct fleet *f, const char *key, const char *id, int64_t now_us,
                       char owner[40]);
int fleet_relay(struct fleet *f, const char *local_id, const char *rec, size_t len);

/* "ok" (Redis connected), "local-only" (configured, not reachable) or "in-process". */
const char *fleet_state(struct fleet *f);
void fleet_get_stats(struct fleet *f, struct fleet_stats *st);

#endif /* TW_FLEET_H */
