/* rcluster.h - what the Redis publisher needs of Redis Cluster: key slots, the slot map and
 * redirections (hiredis 0.14 has no cluster support of its own).
 *
 * Keys hash to one of 16384 slots (CRC16/XMODEM of the key, or of the part between the first
 * '{' and the next '}' when that part is not empty: a hash tag). A node answers a command on a
 * key of a slot it does not serve with "MOVED slot host:port" (the slot lives there now: ask
 * for the slot map again) or "ASK slot host:port" (the slot is being moved and this key has
 * gone already: that node, once, after ASKING).
 */
#ifndef TW_RCLUSTER_H
#define TW_RCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_SLOTS     16384
#define RC_NODES_MAX 64

struct hostport {
    char host[256]; /* IPv6 without brackets */
    int port;
};

/* The slot of a key (hash tags honoured). */
uint16_t rc_key_slot(const char *key, size_t len);

/* A CLUSTER SLOTS reply, reduced to what the publisher asks of it. */
struct rc_map {
    size_t n_ranges;
    struct {
        uint16_t lo, hi;
        uint8_t node; /* index in nodes */
    } ranges[RC_SLOTS < 1024 ? RC_SLOTS : 1024];
    size_t n_nodes;
    struct hostport nodes[RC_NODES_MAX]; /* masters, in reply order */
};

struct redisReply;
/* Fills m from a CLUSTER SLOTS reply. TW_OK, or TW_EBAD for a reply of another shape (ranges
 * and masters past the caps are left out, the rest kept). */
int rc_map_from_reply(const struct redisReply *r, struct rc_map *m);
/* The master serving slot, or NULL when no range covers it. */
const struct hostport *rc_owner(const struct rc_map *m, uint16_t slot);

/* "MOVED 3999 127.0.0.1:6381" or "ASK ..." error text: true with its parts. */
bool rc_redirect(const char *err, bool *ask, uint16_t *slot, struct hostport *to);

#endif /* TW_RCLUSTER_H */
