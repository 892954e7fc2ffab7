/* summary.h - the investigation summary: per internal host, what it reached.
 *
 * A bounded table (SUMMARY_HOSTS hosts; later hosts are not summarised) of the internal
 * hosts that hit a rule: hits, alerts, flagged flows, bytes sent and received through them,
 * first and last seen, and up to SUMMARY_ITEMS distinct rules, names and evidence frames. At
 * the end of a replay it is printed as a table (stderr) and as JSON lines (--summary).
 */
#ifndef TW_SUMMARY_H
#define TW_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

struct summary;

struct summary *summary_new(void);
void summary_free(struct summary *s);
/* A rule hit by host at time ts (frame: the evidence frame); alert: it raised a new alert. */
void summary_hit(struct summary *s, const struct tw_addr *host, const char *rule_id,
                 const uint8_t *name, size_t name_len, uint64_t frame, struct tw_time ts,
                 bool alert);
/* A flow of host was flagged. */
void summary_flow(struct summary *s, const struct tw_addr *host);
/* A flagged flow of host ended: bytes host sent (out) and received (in). */
void summary_bytes(struct summary *s, const struct tw_addr *host, uint64_t out, uint64_t in);
/* A table to out, JSON lines to json_out (either may be NULL). */
void summary_print(const struct summary *s, FILE *out, FILE *json_out);

#endif /* TW_SUMMARY_H */
