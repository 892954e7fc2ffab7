/* stats.c - the typed counter table (see stats.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tunnelwatch/stats.h"

void stats_put(struct tw_stats *st, const char *name, bool gauge, uint64_t v)
{
    if (st->n == TW_STATS_MAX)
        return;
    struct tw_stat *e = &st->s[st->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->gauge = gauge;
    e->v = v;
}

static struct tw_stat *find(struct tw_stats *st, const char *name, size_t hint)
{
    if (hint < st->n && !strcmp(st->s[hint].name, name))
        return &st->s[hint];
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->s[i].name, name))
            return &st->s[i];
    return NULL;
}

void stats_add(struct tw_stats *acc, const struct tw_stats *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct tw_stat *e = find(acc, b->s[i].name, i);
        if (e)
            e->v += b->s[i].v;
        else
            stats_put(acc, b->s[i].name, b->s[i].gauge, b->s[i].v);
    }
}

uint64_t stats_get(const struct tw_stats *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->s[i].name, name))
            return st->s[i].v;
    return 0;
}

size_t stats_text(const struct tw_stats *st, char *buf, size_t n)
{
    size_t o = 0;
    if (n)
        buf[0] = '\0';
    for (size_t i = 0; i < st->n; i++) {
        int w =
            snprintf(buf + o, o < n ? n - o : 0, "%s\t%" PRIu64 "\n", st->s[i].name, st->s[i].v);
        if (w > 0)
            o += (size_t)w;
    }
    return o;
}
