/* attrib.h - attribution: which internal host did it.
 *
 * struct attrib owns the decision (attrib_decide): the internal host an observation is
 * blamed on, and how (client, inbound, resolver, external, dns_answer). It keeps the internal
 * networks (a CIDR set: a binary trie over address bits, v4 and v6 apart), the configured
 * resolvers and the internal hosts it learned are resolvers (3 DNS answers served), and the
 * bounded IP -> name map of flagged DNS answers (TTL honoured, capped and floored), so a
 * later connection by IP - an SSH reverse tunnel with no SNI, or ECH - is attributed to the
 * host that made it, not to the resolver.
 */
#ifndef TW_ATTRIB_H
#define TW_ATTRIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/pressure.h"
#include "tunnelwatch/tw.h"

struct netset;

struct netset *netset_new(void);
void netset_free(struct netset *n);
/* Adds addr/bits; returns TW_OK, TW_EBAD (bits too large) or TW_ENOMEM. */
int netset_add(struct netset *n, const struct tw_addr *addr, unsigned bits) TW_WUR;
bool netset_contains(const struct netset *n, const struct tw_addr *a);
size_t netset_count(const struct netset *n);

/* IP -> name map of flagged names seen in DNS answers. */
struct dnsmap;

struct dnsmap_entry {
    struct tw_addr ip;
    char name[256];          /* the name queried (the flagged one, not the CNAME target) */
    struct tw_addr resolver; /* who sent the answer */
    struct tw_addr asker;    /* who received it */
    int64_t expires_us;
    uint64_t frame;
    char sensor[65]; /* the sensor that saw the answer, "" this one (fleet.h) */
};

struct dnsmap *dnsmap_new(uint32_t max_entries);
void dnsmap_free(struct dnsmap *m);
/* Inserts or refreshes ip. At the cap the entry closest to expiry is replaced (counted),
 * one the same asker received first. */
void dnsmap_put(struct dnsmap *m, const struct dnsmap_entry *e);
/* Returns the live entry for ip at time now_us, or NULL. */
const struct dnsmap_entry *dnsmap_get(struct dnsmap *m, const struct tw_addr *ip, int64_t now_us);
size_t dnsmap_size(const struct dnsmap *m);
uint64_t dnsmap_evictions(const struct dnsmap *m);
/* Evictions since the engine's last health record (owned by m). */
struct pressure *dnsmap_pressure(struct dnsmap *m);

/* ---------- the decision ---------- */

struct attrib;

/* Who is blamed, and why. attribution is a static string. */
struct attrib_verdict {
    struct tw_addr host;
    const char *attribution; /* client | inbound | resolver | external | dns_answer */
};

/* NULL when out of memory. dns_map_max bounds the IP -> name map. */
struct attrib *attrib_new(uint32_t dns_map_max);
void attrib_free(struct attrib *a);
/* Takes the internal networks and resolvers of cfg (borrowed: cfg must outlive its use, the
 * caller keeps a replaced configuration alive). TW_OK, or TW_ENOMEM / TW_EBAD with the old
 * networks kept. Learned resolvers and the DNS map survive a reload. */
int attrib_configure(struct attrib *a, const struct tw_cfg *cfg);
bool attrib_is_internal(const struct attrib *a, const struct tw_addr *ip);
/* A host answered DNS from port 53: an internal host becomes a resolver at its third answer
 * (one forged response must not relabel a host's own queries as a resolver's). */
void attrib_note_dns_server(struct attrib *a, const struct tw_addr *ip);
bool attrib_is_resolver(const struct attrib *a, const struct tw_addr *ip);
/* The verdict for an observation made by `from` towards `to`: a DNS query's packet source
 * and destination (dns_query true: a resolver's own query says "resolver"), otherwise the
 * flow's client and server. The internal side is blamed: from when it is internal (client),
 * to when only it is (inbound), else from (external). */
struct attrib_verdict attrib_decide(const struct attrib *a, const struct tw_addr *from,
                                    const struct tw_addr *to, bool dns_query);
/* The map of flagged DNS answers (owned by a). */
struct dnsmap *attrib_dnsmap(struct attrib *a);

#endif /* TW_ATTRIB_H */
