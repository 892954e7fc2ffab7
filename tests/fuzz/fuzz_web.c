/* fuzz_web.c - libFuzzer target for tunnelwatch-web's window (src/web/webwin.c): the input is a
 * script of lines, each one operation on a small window (8 records, 5 remembered ids, 4
 * timeline buckets) so that eviction, dedup and the seen-id cap happen all the time:
 *   a<json>  add the record under the next stream id     A<json>  add it with no stream id
 *   t<c>     move the clock on by c minutes (c a byte)     e        expire at the clock
 *   q<text>  render alerts and hosts filtered by text (q, host and rule), sorted by text's length
 *   s<name>  a heartbeat hash for sensor name
 * After every operation the aggregates must agree with the records (web_win_check), and every
 * rendering must be valid JSON with no raw '<'. Records come from Redis, so their JSON is
 * hostile: the strict parser, the aggregates and the renderers all see it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webcore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void valid(struct jw *b)
{
    if (b->err)
        abort();
    size_t n = b->len + 8;
    char *s = malloc(n);
    if (!s)
        return;
    snprintf(s, n, "{\"v\":%s}", b->buf ? b->buf : "null");
    if (web_json_walk(s, strlen(s), NULL, NULL) != TW_OK || memchr(b->buf, '<', b->len))
        abort();
    free(s);
}

static void render(struct web_win *w, const char *text, size_t n, int64_t now)
{
    struct web_query q = {.f = {.q = text}, .limit = 1 + n % 5, .offset = n % 3, .sort = n % 4};
    struct jw b;
    for (int k = 0; k < 3; k++) {
        if (k == 1)
            q.f = (struct web_filter){.host = text, .rule = n % 2 ? text : NULL};
        if (k == 2)
            q.f = (struct web_filter){.level = text, .sensor = text};
        web_out_init(&b, 1 << 20);
        (void)web_json_alerts(w, &q, now, &b);
        valid(&b);
        jw_free(&b);
        web_out_init(&b, 1 << 20);
        (void)web_json_hosts(w, &q, now, &b);
        valid(&b);
        jw_free(&b);
    }
    web_out_init(&b, 1 << 20);
    (void)web_json_facets(w, &b);
    valid(&b);
    jw_free(&b);
}

static void sensor(struct web_sensors *s, const char *name, size_t n, int64_t now)
{
    char hb[24];
    snprintf(hb, sizeof(hb), "%lld", (long long)(now / 1000000 - (int64_t)(n % 7) * 300));
    const char *keys[] = {"heartbeat_unix_s", "packets"}, *vals[] = {hb, name};
    (void)web_sensors_update(s, name, keys, vals, n % 3 ? 2 : 1, now / 1000000);
    web_sensors_expire(s, now / 1000000);
    struct jw b;
    web_out_init(&b, 1 << 20);
    (void)web_json_sensors(s, now / 1000000, &b);
    valid(&b);
    jw_free(&b);
}

static void op(struct web_win *w, struct web_sensors *s, char *line, size_t n, int64_t *now,
               unsigned *sid)
{
    char id[32];
    switch (line[0]) {
    case 'a': {
        snprintf(id, sizeof(id), "%u-0", ++*sid);
        (void)web_win_add(w, id, line + 1, n - 1, *now);
        struct web_pressure pr; /* a sensor-health record goes to its sensor's row too */
        if (web_pressure_parse(line + 1, n - 1, &pr) == TW_OK)
            (void)web_sensors_pressure(s, &pr, *now / 1000000);
        break;
    }
    case 'A':
        (void)web_win_add(w, NULL, line + 1, n - 1, *now);
        break;
    case 't':
        *now += (int64_t)(n > 1 ? (uint8_t)line[1] : 1) * 60 * 1000000;
        break;
    case 'e':
        web_win_expire(w, *now);
        break;
    case 'q':
        render(w, line + 1, n - 1, *now);
        break;
    case 's':
        sensor(s, line + 1, n - 1, *now);
        break;
    default:
        break;
    }
    if (web_win_check(w) != TW_OK)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct web_win_opts o = {.max_entries = 8,
                             .seen_max = 5,
                             .max_age_us = 3600 * 1000000LL,
                             .max_skew_us = 300 * 1000000LL,
                             .tl_buckets = 4,
                             .tl_bucket_s = 60};
    struct web_win *w = web_win_new(&o);
    struct web_sensors *s = web_sensors_new(4, 30, 600);
    char *copy = malloc(size + 1);
    if (!w || !s || !copy)
        goto out;
    memcpy(copy, data, size);
    copy[size] = '\0';
    int64_t now = 1709294400000000; /* 2024-03-01T12:00:00Z */
    unsigned sid = 0;
    for (char *line = copy, *end; line < copy + size; line = end + 1) {
        end = memchr(line, '\n', (size_t)(copy + size - line));
        if (!end)
            end = copy + size;
        *end = '\0';
        if (end > line)
            op(w, s, line, (size_t)(end - line), &now, &sid);
    }
    render(w, "", 0, now);
out:
    web_win_free(w);
    web_sensors_free(s);
    free(copy);
    return 0;
}
