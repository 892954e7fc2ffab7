/* publish.h - Redis publisher: its own thread, a bounded in-memory queue, an on-disk spool.
 *
 * The capture thread calls pub_enqueue(), which copies the record and never waits: when the
 * queue is full the record goes to the spool (append-only segment files, size-capped, fsync'd
 * in batches). The publisher thread (hiredis 0.14, command timeouts, SIGPIPE ignored,
 * reconnect with jittered exponential backoff 1 s .. 60 s) pipelines XADD / PUBLISH / RPUSH
 * batches; a record leaves the queue or the spool only once Redis acknowledged it. On start
 * and on reconnect the spool is replayed in order before queued records. Past the spool cap the
 * oldest spooled records are dropped, counted, and logged once per interval. Delivery is
 * at-least-once; records carry event.id for consumers to de-duplicate. With Redis Sentinel
 * the master is asked of the sentinels and followed through failovers; with wait_replicas a
 * record is acknowledged only once replicas have it.
 *
 * Ordering: records stay in the queue while it has room; once it is full, the queue's content
 * and every newer record go to the spool until the spool has drained, so delivery follows
 * enqueue order across outages and restarts. The capture thread never does disk or network
 * I/O: past the queue, records wait in a second bounded hand-off list (spill_max) that the
 * publisher thread writes to the spool between Redis round trips.
 *
 * Signals: pub_start() sets SIGPIPE to SIG_IGN for the process (a Redis peer closing the
 * socket must not kill the sensor; write errors come back as EPIPE instead).
 *
 * Errors: one line on stderr per distinct error state ("tunnelwatch: redis: ..."), not per
 * retry; the password is never printed.
 */
#ifndef TW_PUBLISH_H
#define TW_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define PUB_MODE_STREAM  0x1
#define PUB_MODE_CHANNEL 0x2
#define PUB_MODE_LIST    0x4

struct pub_opts {
    const char *url;              /* redis://[user:password@]host:port/db or unix:///path.sock */
    const char *user;             /* ACL user, NULL for none (overrides the URL's) */
    const char *password;         /* NULL for none (overrides the URL's); never logged */
    unsigned modes;               /* PUB_MODE_* bits */
    const char *stream_key;       /* default tunnelwatch:alerts */
    const char *channel_key;      /* default tunnelwatch:alerts */
    const char *list_key;         /* default tunnelwatch:alerts:list */
    long stream_maxlen;           /* XADD MAXLEN ~ N; default 100000 */
    size_t queue_max;             /* records held in memory; default 10000 */
    const char *spool_dir;        /* NULL: no spool (records past the queue are dropped, counted) */
    uint64_t spool_max_bytes;     /* default 256 MiB */
    int timeout_ms;               /* connect and command timeout; default 2000 */
    int batch;                    /* records per pipeline; default 256 */
    const char *sensor_name;      /* heartbeat hash tunnelwatch:sensor:NAME */
    const char *heartbeat_prefix; /* default tunnelwatch:sensor: */
    int heartbeat_s;              /* 0 = off; default 10 */
    int backoff_min_ms;           /* first reconnect delay; default 1000 */
    int backoff_max_ms;           /* delay cap (doubling, jittered to [d/2, d]); default 60000 */
    uint64_t spool_segment_bytes; /* 0: spool_max_bytes / 8 (see spool.h) */
    size_t spill_max;             /* records waiting to be spooled; 0: max(queue_max, 16384). It
                                     must absorb alert rate x timeout_ms: the thread that writes
                                     the spool is the one that waits for Redis replies */
    /* Redis Sentinel: n_sentinels "host:port" ("[v6]:port") items, asked in turn for the
     * address of master_name; url then gives only the db and credentials. The publisher asks
     * again after any error and every heartbeat_s (or 10 s), and moves to the new master of a
     * failover; a server that says it is not a master is left. */
    const char *const *sentinels;
    size_t n_sentinels;
    const char *master_name;
    /* > 0: a batch counts as delivered only when "WAIT wait_replicas wait_timeout_ms" says
     * that many replicas have it; otherwise it stays queued and is sent again (at-least-once:
     * consumers de-duplicate by event.id). */
    int wait_replicas;
    int wait_timeout_ms; /* default 1000 */
};

struct tw_cfg;

/* Fills po from cfg's redis section as the sensor runs it: the password from the environment
 * variable named by redis.password_env when that variable is set, else redis.password; the
 * modes, keys, stream length, queue, spool (an empty dir: no spool), timeout and heartbeat;
 * every other field 0 (pub_new's default). The strings point into cfg and the environment:
 * keep both unchanged until pub_new() has copied them. TW_OK, or TW_EBAD for a NULL argument.
 * Whether Redis is wanted at all (redis.url "none", replay without -c) is the caller's call. */
int pub_opts_from_cfg(const struct tw_cfg *cfg, struct pub_opts *po);

/* Parsed form of pub_opts.url. */
struct pub_url {
    bool is_unix;
    char host[256];     /* IPv6 without brackets */
    int port;           /* default 6379 */
    char path[108];     /* unix socket */
    int db;             /* default 0 */
    char user[128];     /* empty: none */
    char password[256]; /* empty: none; %XX decoded */
};

/* Parses redis://[[user]:password@]host[:port][/db] (host may be [v6]) or
 * unix:///path.sock[?db=N]. TW_OK or TW_ECONF with a one-line reason in err. */
int pub_parse_url(const char *url, struct pub_url *out, char *err, size_t errlen) TW_WUR;

struct pub_stats {
    uint64_t enqueued;    /* records handed to pub_enqueue */
    uint64_t delivered;   /* acknowledged by Redis (stream, or the first mode configured) */
    uint64_t spooled;     /* written to the spool */
    uint64_t dropped;     /* lost past the spool cap (or no spool and full queue) */
    uint64_t queued;      /* in memory now */
    uint64_t spool_bytes; /* on disk now */
    uint64_t reconnects;
    uint64_t errors;         /* Redis error replies and I/O errors */
    uint64_t no_subscribers; /* PUBLISH replies of 0 */
    uint64_t spool_records;  /* waiting in the spool now */
    uint64_t spool_torn;     /* torn/corrupt spool tails skipped */
    uint64_t failovers;      /* Sentinel: moves to another master */
    uint64_t wait_short;     /* batches WAIT did not confirm on enough replicas */
    uint64_t redirects;      /* Redis Cluster: MOVED/ASK replies followed */
    uint64_t blobs_sent;     /* pub_put_blob values Redis took */
    uint64_t blobs_failed;   /* ... it refused, or lost with the connection */
    bool connected;
};

struct pub;

/* Validates opts (URL syntax, spool dir writable) without connecting; NULL with a one-line
 * reason in err on failure. */
struct pub *pub_new(const struct pub_opts *opts, char *err, size_t errlen);
/* Starts the thread; first delivers any spool left by an earlier run. */
int pub_start(struct pub *p) TW_WUR;
/* Copies rec (one JSON object, no newline). Never blocks. Returns TW_OK (queued or spooled)
 * or TW_ELIMIT (dropped, counted). */
int pub_enqueue(struct pub *p, const char *rec, size_t len);
/* A binary value for SET key value EX ttl_s (the evidence's Redis copies, evidence.h), copied;
 * never blocks. Only the latest value of a key waits (a newer one replaces it); at most
 * PUB_BLOBS_MAX keys wait. Best effort, not spooled: sent between record batches on the
 * records' connection (in a cluster, to the key's master), lost if Redis fails them. false:
 * not taken (queue of keys full, out of memory, stopping). */
#define PUB_BLOBS_MAX 64
bool pub_put_blob(struct pub *p, const char *key, const uint8_t *data, size_t n, uint32_t ttl_s);
/* Replaces the heartbeat fields (lines "field\tvalue\n"), copied; the thread adds its own
 * delivery counters and writes the hash every heartbeat_s seconds with EXPIRE 3 x heartbeat_s. */
void pub_set_heartbeat(struct pub *p, const char *fields);
void pub_get_stats(struct pub *p, struct pub_stats *out);
/* Stops the thread: tries to deliver what is queued for at most flush_ms, spools the rest. */
void pub_stop(struct pub *p, int flush_ms);
void pub_free(struct pub *p);

#endif /* TW_PUBLISH_H */
