/* fuzz_rcluster.c - libFuzzer target for what the publisher reads of a Redis Cluster node:
 * the input is fed to hiredis' reply reader as a server's bytes; each whole reply goes to
 * rc_map_from_reply (a CLUSTER SLOTS reply) and, when it is an error or a string, its text to
 * rc_redirect (a MOVED/ASK reply). The map must stay within its caps and every range must
 * name a known node; a parsed redirect must carry a slot and a port in range. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/rcluster.h"
#include "tunnelwatch/tw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const redisReply *r, struct rc_map *m)
{
    if (rc_map_from_reply(r, m) == TW_OK) {
        if (m->n_nodes > RC_NODES_MAX || m->n_ranges > TW_ARRAY_LEN(m->ranges))
            abort();
        for (size_t i = 0; i < m->n_ranges; i++)
            if (m->ranges[i].node >= m->n_nodes || m->ranges[i].hi >= RC_SLOTS ||
                m->ranges[i].lo > m->ranges[i].hi)
                abort();
        for (uint32_t s = 0; s < RC_SLOTS; s += 997)
            (void)rc_owner(m, (uint16_t)s);
    }
    if ((r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING) && r->str) {
        bool ask;
        uint16_t slot;
        struct hostport to;
        if (rc_redirect(r->str, &ask, &slot, &to) &&
            (slot >= RC_SLOTS || to.port < 1 || to.port > 65535 || !to.host[0]))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return 0;
    static struct rc_map m;
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        void *r = NULL;
        for (int k = 0; k < 64 && redisReaderGetReply(rd, &r) == REDIS_OK && r; k++) {
            check(r, &m);
            freeReplyObject(r);
            r = NULL;
        }
    }
    redisReaderFree(rd);
    return 0;
}
