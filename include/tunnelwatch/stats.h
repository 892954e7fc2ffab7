/* stats.h - the sensor's counters as one typed table.
 *
 * Each module reports its counters into a struct tw_stats (name, counter or gauge, value), in
 * a fixed order; capture workers' tables are summed entry by entry; the heartbeat, the
 * Prometheus endpoint and SIGUSR1 all render the same table (stats_text). Names are the
 * heartbeat's field names (packets, names_tls_sni, parse_errors_dns, allowlist_<entry>...).
 */
#ifndef TW_STATS_H
#define TW_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TW_STATS_MAX 160 /* entries: the fixed counters plus one per allowlist entry */
#define TW_STAT_NAME 168

struct tw_stat {
    char name[TW_STAT_NAME];
    bool gauge; /* a level (flows_active), not a count since start */
    uint64_t v;
};

struct tw_stats {
    size_t n;
    struct tw_stat s[TW_STATS_MAX];
};

/* Appends one entry (dropped when the table is full). */
void stats_put(struct tw_stats *st, const char *name, bool gauge, uint64_t v);
/* Adds b into acc: entries of the same name (in the same place when both come from the same
 * code, as capture workers' do) are summed; entries acc lacks are appended. */
void stats_add(struct tw_stats *acc, const struct tw_stats *b);
/* The value of the entry called name, 0 when absent. */
uint64_t stats_get(const struct tw_stats *st, const char *name);
/* "name\tvalue\n" lines; returns the length (snprintf semantics, cut at buffer end). */
size_t stats_text(const struct tw_stats *st, char *buf, size_t n);

#endif /* TW_STATS_H */
