/* rcluster.c - Redis Cluster's key slots, slot map and redirections (see rcluster.h). */
#include "tunnelwatch/rcluster.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/tw.h"

/* CRC16/XMODEM (polynomial 0x1021, initial 0), bit by bit: keys are short. */
static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

uint16_t rc_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16((const uint8_t *)open + 1, (size_t)(close - open - 1)) % RC_SLOTS;
    }
    return crc16((const uint8_t *)key, len) % RC_SLOTS;
}

/* A node entry [host, port, id, ...] of a CLUSTER SLOTS range. */
static bool node_of(const redisReply *e, struct hostport *hp)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[0]->len >= sizeof(hp->host) || e->element[1]->integer < 1 ||
        e->element[1]->integer > 65535)
        return false;
    memcpy(hp->host, e->element[0]->str, e->element[0]->len);
    hp->host[e->element[0]->len] = '\0';
    hp->port = (int)e->element[1]->integer;
    return true;
}

static int node_index(struct rc_map *m, const struct hostport *hp)
{
    for (size_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].port == hp->port && strcmp(m->nodes[i].host, hp->host) == 0)
            return (int)i;
    if (m->n_nodes >= RC_NODES_MAX)
        return -1;
    m->nodes[m->n_nodes] = *hp;
    return (int)m->n_nodes++;
}

int rc_map_from_reply(const struct redisReply *r, struct rc_map *m)
{
    m->n_ranges = m->n_nodes = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return TW_EBAD;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        struct hostport hp;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || !node_of(e->element[2], &hp))
            return TW_EBAD;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        if (lo < 0 || hi < lo || hi >= RC_SLOTS)
            return TW_EBAD;
        int k = node_index(m, &hp);
        if (k < 0 || m->n_ranges >= TW_ARRAY_LEN(m->ranges))
            continue;
        m->ranges[m->n_ranges].lo = (uint16_t)lo;
        m->ranges[m->n_ranges].hi = (uint16_t)hi;
        m->ranges[m->n_ranges].node = (uint8_t)k;
        m->n_ranges++;
    }
    return TW_OK;
}

const struct hostport *rc_owner(const struct rc_map *m, uint16_t slot)
{
    for (size_t i = 0; i < m->n_ranges; i++)
        if (slot >= m->ranges[i].lo && slot <= m->ranges[i].hi)
            return &m->nodes[m->ranges[i].node];
    return NULL;
}

bool rc_redirect(const char *err, bool *ask, uint16_t *slot, struct hostport *to)
{
    size_t skip;
    if (strncmp(err, "MOVED ", 6) == 0)
        *ask = false, skip = 6;
    else if (strncmp(err, "ASK ", 4) == 0)
        *ask = true, skip = 4;
    else
        return false;
    char *end;
    long s = strtol(err + skip, &end, 10);
    if (end == err + skip || *end != ' ' || s < 0 || s >= RC_SLOTS)
        return false;
    const char *addr = end + 1, *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(to->host))
        return false;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
        return false;
    memcpy(to->host, addr, (size_t)(colon - addr));
    to->host[colon - addr] = '\0';
    to->port = (int)port;
    *slot = (uint16_t)s;
    return true;
}
