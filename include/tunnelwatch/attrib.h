/* attrib.h - attribution: which internal host did it.
 *
 * Internal networks are a CIDR set (a binary trie over address bits, v4 and v6 apart).
 * DNS answers that named a flagged destination are remembered in a bounded IP -> name map
 * (TTL honoured, capped and floored), so a later connection by IP - an SSH reverse tunnel
 * with no SNI, or ECH - is attributed to the host that made it, not to the resolver.
 */
#ifndef TW_ATTRIB_H
#define TW_ATTRIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

struct dnsmap *dnsmap_new(uint32_t max_entries);
void dnsmap_free(struct dnsmap *m);
/* Inserts or refreshes ip. At the cap the entry closest to expiry is replaced (counted). */
void dnsmap_put(struct dnsmap *m, const struct dnsmap_entry *e);
/* Returns the live entry for ip at time now_us, or NULL. */
const struct dnsmap_entry *dnsmap_get(struct dnsmap *m, const struct tw_addr *ip, int64_t now_us);
size_t dnsmap_size(const struct dnsmap *m);
uint64_t dnsmap_evictions(const struct dnsmap *m);

#endif /* TW_ATTRIB_H */
