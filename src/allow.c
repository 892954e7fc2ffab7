/* allow.c - allowlist evaluation (see allow.h).
 *
 * The list is short (operators write it by hand), so entries are scanned in order; the
 * time window is evaluated in the sensor's local time zone from the packet timestamp, so a
 * replayed capture is judged by when it happened, not by when it is replayed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tunnelwatch/allow.h"

bool tw_domain_match(const uint8_t *name, size_t len, const char *domain)
{
    size_t dl = strlen(domain);
    if (dl && domain[dl - 1] == '.')
        dl--;
    if (len && name[len - 1] == '.')
        len--;
    if (dl == 0 || len < dl)
        return false;
    if (strncasecmp((const char *)name + (len - dl), domain, dl) != 0)
        return false;
    return len == dl || name[len - dl - 1] == '.';
}

int allow_parse_window(const char *s, int *from_min, int *to_min)
{
    int h1, m1, h2, m2, end = 0;
    if (sscanf(s, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &end) != 4 || s[end] != '\0')
        return TW_EBAD;
    if (h1 < 0 || h1 > 23 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 ||
        (h2 == 24 && m2 != 0))
        return TW_EBAD;
    *from_min = h1 * 60 + m1;
    *to_min = h2 * 60 + m2;
    return TW_OK;
}

static bool in_window(const struct cfg_allow *e, struct tw_time ts)
{
    struct tm tm;
    time_t t = (time_t)ts.sec;
    if (!localtime_r(&t, &tm))
        return false;
    if (e->days_mask && !(e->days_mask & (1u << tm.tm_wday)))
        return false;
    if (e->from_min >= 0 && e->to_min >= 0 && e->from_min != e->to_min) { /* equal: no window */
        int now = tm.tm_hour * 60 + tm.tm_min, from = e->from_min, to = e->to_min;
        /* a window like 22:00-02:00 wraps midnight */
        if (from <= to ? (now < from || now >= to) : (now < from && now >= to))
            return false;
    }
    return true;
}

int allow_match(const struct cfg_allow *entries, size_t n, const struct allow_query *q)
{
    for (size_t i = 0; i < n; i++) {
        const struct cfg_allow *e = &entries[i];
        if (e->n_src) {
            bool ok = false;
            for (size_t k = 0; k < e->n_src && !ok; k++)
                ok = cfg_cidr_contains(&e->src[k], q->host);
            if (!ok)
                continue;
        }
        if (e->n_dst_names) {
            bool ok = false;
            for (size_t k = 0; k < e->n_dst_names && !ok; k++)
                ok = tw_domain_match(q->name, q->name_len, e->dst_names[k]);
            if (!ok)
                continue;
        }
        if (e->n_rules) {
            bool ok = false;
            for (size_t k = 0; k < e->n_rules && !ok && q->rule; k++)
                ok = (q->rule->id && !strcasecmp(e->rules[k], q->rule->id)) ||
                     (q->rule->title && !strcasecmp(e->rules[k], q->rule->title));
            if (!ok)
                continue;
        }
        if (e->n_ja4) {
            bool ok = false;
            for (size_t k = 0; k < e->n_ja4 && !ok && q->ja4; k++)
                ok = !strcmp(e->ja4[k], q->ja4);
            if (!ok)
                continue;
        }
        if (!in_window(e, q->ts))
            continue;
        return (int)i;
    }
    return -1;
}
