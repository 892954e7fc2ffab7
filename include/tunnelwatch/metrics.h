/* metrics.h - opt-in Prometheus text endpoint (GET /metrics) served by its own thread.
 *
 * The capture thread never waits on a socket: once a second it formats its counters
 * (metrics_format) and hands the text to metrics_publish(), which copies it into a new
 * immutable snapshot and swaps a pointer under a mutex held for a few instructions. The
 * listener thread takes a reference to the current snapshot under the same mutex and writes
 * it to clients with non-blocking sockets, each client bounded in time and request size, so
 * a client that connects and sends nothing, or sends megabytes of headers, costs the capture
 * thread nothing. HTTP/1.0 only, one request per connection (Connection: close).
 *
 * Listen addresses: "HOST:PORT" with HOST an IPv4 address, "[IPv6]", "localhost" or "*"
 * (all IPv4 addresses). Loopback only (127.0.0.0/8, ::1, localhost) unless allow_remote:
 * the endpoint has no authentication. PORT 0 binds an ephemeral port (tests); see
 * metrics_port().
 */
#ifndef TW_METRICS_H
#define TW_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "tunnelwatch/tw.h"

/* Largest snapshot metrics_publish() accepts (TW_ELIMIT beyond). */
#define METRICS_SNAPSHOT_MAX (1u << 20)

struct metrics;

/* Binds and listens on `listen` and starts the listener thread (all signals blocked in it,
 * so they keep going to the main thread). Until the first metrics_publish() the endpoint
 * answers 503. NULL with a one-line reason in err on failure (bad address, non-loopback
 * without allow_remote, bind error); nothing is left allocated. Call it before dropping
 * privileges if PORT < 1024. */
struct metrics *metrics_new(const char *listen, bool allow_remote, char *err, size_t errlen);
/* The bound TCP port (useful after PORT 0). */
int metrics_port(const struct metrics *m);
/* Replaces the served text with a copy of prom_text. Never blocks on the network; returns
 * TW_OK, TW_ELIMIT (longer than METRICS_SNAPSHOT_MAX, old snapshot kept) or TW_ENOMEM. */
int metrics_publish(struct metrics *m, const char *prom_text);
/* Stops the thread (wakes it through a pipe), closes every socket, frees. NULL is a no-op. */
void metrics_free(struct metrics *m);

/* Turns stats lines "field\tvalue\n" (engine_stats_text(), the heartbeat fields and
 * metrics_pub_lines()) into Prometheus exposition text (format 0.0.4), one # HELP and one
 * # TYPE per family, samples of a family together:
 *   names_<kind>          -> tunnelwatch_names_total{kind="<kind>"}
 *   parse_errors_<proto>  -> tunnelwatch_parse_errors_total{protocol="<proto>"}
 *   decode_<reason>       -> tunnelwatch_decode_skipped_total{reason="<reason>"}
 *   allowlist_<entry>     -> tunnelwatch_allowlist_suppressed_total{entry="<entry>"}
 *   alerts_raised/_updates/_suppressed -> tunnelwatch_alerts_total{outcome="raised|update|
 *                            suppressed"}
 *   alerts_enqueued/_delivered/_spooled/_dropped (publisher) ->
 *                            tunnelwatch_redis_records_total{outcome="..."}
 *   alerts_queued         -> tunnelwatch_redis_queue_records (gauge)
 *   uptime_s              -> tunnelwatch_uptime_seconds (gauge)
 *   version               -> tunnelwatch_build_info{version="..."} 1 (gauge)
 *   fields ending in _active, _queued, _connected, _entries, _peak, and spool_bytes,
 *   spool_records         -> tunnelwatch_<field> (gauge)
 *   every other field     -> tunnelwatch_<field>_total (counter; a trailing _total is kept
 *                            once), e.g. packets, bytes, kernel_drops, flows_evicted
 * A field may carry its own labels, "field{k=v,k2=v2}\tvalue" (values unquoted, no ',' '}'
 * inside), e.g. "alerts{rule=19bf...,outcome=raised}\t3"; they are quoted and escaped.
 * heartbeat_unix_s and lines that are not "field<TAB>number" (other than version) are skipped.
 * Returns the length written (always NUL-terminated when n > 0), or n when out was too
 * small: the text is then cut at a line boundary. */
size_t metrics_format(const char *stats_lines, char *out, size_t n);

struct pub_stats;
/* Writes the publisher's counters as stats lines with the heartbeat's field names
 * (alerts_enqueued, alerts_queued, ..., redis_connected), to append to engine_stats_text()
 * before metrics_format(). Returns the length written (snprintf semantics). */
size_t metrics_pub_lines(const struct pub_stats *ps, char *out, size_t n);

#endif /* TW_METRICS_H */
