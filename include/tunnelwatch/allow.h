/* allow.h - the allowlist: known-legitimate tunnel use, suppressed but never silently.
 *
 * Entries come from the configuration (struct cfg_allow). A hit is suppressed when every
 * criterion an entry sets holds: source CIDR of the internal host, destination name (the
 * name or any subdomain), rule (id or title), JA4 client fingerprint, local-time window and
 * days. Each entry counts its suppressions.
 */
#ifndef TW_ALLOW_H
#define TW_ALLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/rules.h"
#include "tunnelwatch/tw.h"

struct allow_query {
    const struct tw_addr *host;
    const uint8_t *name;
    size_t name_len;
    const struct rule *rule;
    const char *ja4; /* NULL when the observation has none */
    struct tw_time ts;
};

/* Returns the index of the first entry that suppresses q, or -1. */
int allow_match(const struct cfg_allow *entries, size_t n, const struct allow_query *q);

/* True when name equals domain or ends with "." domain (case-insensitive, trailing dots
 * ignored on both). */
bool tw_domain_match(const uint8_t *name, size_t len, const char *domain);

/* Parses "HH:MM-HH:MM" into minutes of the day; TW_OK or TW_EBAD. */
int allow_parse_window(const char *s, int *from_min, int *to_min) TW_WUR;

#endif /* TW_ALLOW_H */
