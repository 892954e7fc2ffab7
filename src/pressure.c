/* pressure.c - refusal/reclaim counts and a space-saving summary of their sources
 * (see pressure.h). With k counters, a new address takes the smallest counter over and
 * inherits its count as its error bound, so counts never fall and heavy hitters stay. */
#include <string.h>

#include "tunnelwatch/pressure.h"

void pressure_note(struct pressure *p, const struct tw_addr *src, bool reclaim)
{
    if (reclaim)
        p->reclaimed++;
    else
        p->refused++;
    if (!src || !src->family)
        return;
    p->noted++;
    int min = 0;
    for (int i = 0; i < p->n; i++) {
        if (tw_addr_eq(&p->top[i].addr, src)) {
            p->top[i].count++;
            return;
        }
        if (p->top[i].count < p->top[min].count)
            min = i;
    }
    if (p->n < PRESSURE_TOPK) {
        p->top[p->n].addr = *src;
        p->top[p->n].count = 1;
        p->top[p->n].err = 0;
        p->n++;
        return;
    }
    p->top[min].addr = *src;
    p->top[min].err = p->top[min].count;
    p->top[min].count++;
}

bool pressure_pending(const struct pressure *p)
{
    return p->refused || p->reclaimed;
}

int pressure_top(const struct pressure *p, struct pressure_src *out, int k)
{
    bool taken[PRESSURE_TOPK] = {false};
    int n = 0;
    for (; n < k && n < p->n; n++) {
        int best = -1;
        for (int i = 0; i < p->n; i++)
            if (!taken[i] && (best < 0 || p->top[i].count > p->top[best].count))
                best = i;
        taken[best] = true;
        out[n] = p->top[best];
    }
    return n;
}

void pressure_clear(struct pressure *p)
{
    memset(p, 0, sizeof(*p));
}
