/* summary.c - the per-host investigation summary (see summary.h). A table of the hosts that
 * hit a rule, a handful in a real case but thousands when a broad Sigma rule fires on benign
 * traffic: rows are small (their names and rule ids are kept once each in a string arena that
 * grows with what is there), and a hashed index finds a host's row. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "siphash_int.h"
#include "tunnelwatch/json.h"
#include "tunnelwatch/summary.h"

#define SUMMARY_HOSTS 4096
#define SUMMARY_ITEMS 8

struct host_sum {
    struct tw_addr host;
    uint64_t hits, alerts, flows, bytes_out, bytes_in;
    struct tw_time first, last;
    uint32_t rules[SUMMARY_ITEMS], names[SUMMARY_ITEMS]; /* offsets into the arena */
    uint64_t frames[SUMMARY_ITEMS];
    uint8_t n_rules, n_names, n_frames;
};

/* Open-addressing index over hosts[]: a flood of Sigma hits can bring thousands of hosts, and
 * every flagged flow's end looks its host up. Slots hold index + 1 (0: empty). */
#define SUMMARY_SLOTS (2 * SUMMARY_HOSTS)

struct summary {
    struct host_sum *hosts; /* grows with the hosts that hit a rule, up to SUMMARY_HOSTS */
    uint32_t n, cap;
    uint16_t slot[SUMMARY_SLOTS];
    char *arena; /* NUL-terminated names and rule ids */
    uint32_t alen, acap;
    uint64_t k[2]; /* addr_slot's key */
};

#define RULE_WIDTH 64  /* a rule id is kept to 63 bytes */
#define NAME_WIDTH 128 /* a name to 127 */
/* the arena never outgrows what fixed-width rows would have taken */
#define ARENA_MAX ((uint32_t)SUMMARY_HOSTS * SUMMARY_ITEMS * (RULE_WIDTH + NAME_WIDTH))

_Static_assert(SUMMARY_HOSTS < UINT16_MAX, "slots hold a host index + 1 in 16 bits");

/* Keyed, as every table of addresses from the wire: the hosts are whoever sends traffic that
 * hits a rule, so a fixed hash would let them line up one long probe run. */
static uint32_t addr_slot(const struct summary *s, const struct tw_addr *h)
{
    return (uint32_t)tw_siphash13_addr(s->k, h->family, h->a) & (SUMMARY_SLOTS - 1);
}

struct summary *summary_new(void)
{
    struct summary *s = calloc(1, sizeof(struct summary));
    uint8_t key[16];
    if (s && getrandom(key, sizeof(key), 0) == (ssize_t)sizeof(key)) {
        s->k[0] = tw_le64(key);
        s->k[1] = tw_le64(key + 8);
    } else if (s) { /* no entropy source: still per process */
        s->k[0] = (uint64_t)(uintptr_t)s;
        s->k[1] = (uint64_t)(uintptr_t)&key;
    }
    return s;
}

void summary_free(struct summary *s)
{
    if (!s)
        return;
    free(s->hosts);
    free(s->arena);
    free(s);
}

/* The host's row, created on first use; NULL once the table is full. */
static struct host_sum *row(struct summary *s, const struct tw_addr *h)
{
    uint32_t k = addr_slot(s, h);
    for (; s->slot[k]; k = (k + 1) & (SUMMARY_SLOTS - 1))
        if (tw_addr_eq(&s->hosts[s->slot[k] - 1].host, h))
            return &s->hosts[s->slot[k] - 1];
    if (s->n == s->cap) {
        uint32_t nc = s->cap ? s->cap * 2 : 16;
        struct host_sum *nh = nc <= SUMMARY_HOSTS ? realloc(s->hosts, nc * sizeof(*nh)) : NULL;
        if (!nh)
            return NULL; /* the table is full (or memory is): later hosts are not summarised */
        s->hosts = nh;
        s->cap = nc;
    }
    struct host_sum *r = &s->hosts[s->n++];
    s->slot[k] = (uint16_t)s->n; /* load <= 1/2: the probe always ends at an empty slot */
    memset(r, 0, sizeof(*r));
    r->host = *h;
    return r;
}

/* Adds v[0..n) (n < width) to a list of at most SUMMARY_ITEMS distinct strings. */
static void add_distinct(struct summary *s, uint32_t *items, uint8_t *count, const char *v,
                         size_t n)
{
    for (uint8_t i = 0; i < *count; i++)
        if (!strncmp(s->arena + items[i], v, n) && s->arena[items[i] + n] == '\0')
            return;
    if (*count == SUMMARY_ITEMS)
        return;
    if (s->alen + n + 1 > s->acap) {
        uint32_t nc = s->acap ? s->acap * 2 : 4096;
        while (nc < s->alen + n + 1)
            nc *= 2;
        if (nc > ARENA_MAX)
            nc = ARENA_MAX;
        char *na = s->alen + n + 1 <= nc ? realloc(s->arena, nc) : NULL;
        if (!na)
            return; /* bounded: the item is left out of the summary */
        s->arena = na;
        s->acap = nc;
    }
    memcpy(s->arena + s->alen, v, n);
    s->arena[s->alen + n] = '\0';
    items[(*count)++] = s->alen;
    s->alen += (uint32_t)n + 1;
}

void summary_hit(struct summary *s, const struct tw_addr *host, const char *rule_id,
                 const uint8_t *name, size_t name_len, uint64_t frame, struct tw_time ts,
                 bool alert)
{
    struct host_sum *h = row(s, host);
    if (!h)
        return;
    h->hits++;
    h->alerts += alert;
    if (!h->first.sec)
        h->first = ts;
    h->last = ts;
    const char *rid = rule_id ? rule_id : "?";
    size_t rn = strlen(rid);
    add_distinct(s, h->rules, &h->n_rules, rid, rn < RULE_WIDTH - 1 ? rn : RULE_WIDTH - 1);
    /* a name stops at its first NUL, as the C string it was copied into did */
    const uint8_t *z = memchr(name, 0, name_len);
    size_t n = z ? (size_t)(z - name) : name_len;
    add_distinct(s, h->names, &h->n_names, (const char *)name,
                 n < NAME_WIDTH - 1 ? n : NAME_WIDTH - 1);
    if (h->n_frames < SUMMARY_ITEMS)
        h->frames[h->n_frames++] = frame;
}

void summary_flow(struct summary *s, const struct tw_addr *host)
{
    struct host_sum *h = row(s, host);
    if (h)
        h->flows++;
}

void summary_bytes(struct summary *s, const struct tw_addr *host, uint64_t out, uint64_t in)
{
    struct host_sum *h = row(s, host);
    if (!h)
        return;
    h->bytes_out += out;
    h->bytes_in += in;
}

/* The table's text, written out in pieces of up to TBUF_CAP bytes (out is usually stderr,
 * which is unbuffered: a write(2) per fprintf would be tens of thousands of system calls for
 * a few thousand hosts). Rows are formatted by hand, as fprintf's "%-39s %6lu ..." would: all
 * of SigmaHQ on the 1 GB bench mix prints 3,300 rows, and fprintf into a growing memory
 * stream took 2.5 ms of the sensor's exit. */
#define TBUF_CAP (64u << 10)

struct tbuf {
    FILE *out;
    size_t len;
    char b[TBUF_CAP];
};

static void tb_flush(struct tbuf *t)
{
    if (t->len)
        (void)fwrite(t->b, 1, t->len, t->out);
    t->len = 0;
}

static void tb_put(struct tbuf *t, const char *p, size_t n)
{
    if (t->len + n > TBUF_CAP) {
        tb_flush(t);
        if (n > TBUF_CAP) {
            (void)fwrite(p, 1, n, t->out);
            return;
        }
    }
    memcpy(t->b + t->len, p, n);
    t->len += n;
}

static void tb_str(struct tbuf *t, const char *p)
{
    tb_put(t, p, strlen(p));
}

/* p padded with spaces to width: on the right (left-justified, "%-Ns") or the left ("%Ns"). */
static void tb_pad(struct tbuf *t, const char *p, size_t width, bool left)
{
    static const char spaces[] = "                                        "; /* 40 */
    size_t n = strlen(p), pad = n < width ? width - n : 0;
    for (size_t k = 0; !left && k < pad; k += sizeof(spaces) - 1)
        tb_put(t, spaces, pad - k < sizeof(spaces) - 1 ? pad - k : sizeof(spaces) - 1);
    tb_put(t, p, n);
    for (size_t k = 0; left && k < pad; k += sizeof(spaces) - 1)
        tb_put(t, spaces, pad - k < sizeof(spaces) - 1 ? pad - k : sizeof(spaces) - 1);
}

static void tb_u64(struct tbuf *t, uint64_t v, size_t width)
{
    char d[24], *e = d + sizeof(d) - 1, *q = e;
    *e = '\0';
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    tb_pad(t, q, width, false);
}

static void print_row(const struct summary *s, const struct host_sum *h, struct tbuf *t)
{
    char a[TW_ADDR_STRLEN], t1[40], t2[40];
    tw_time_rfc3339(h->first, t1, sizeof(t1));
    tw_time_rfc3339(h->last, t2, sizeof(t2));
    t1[19] = t2[19] = '\0';
    tb_pad(t, tw_addr_str(&h->host, a, sizeof(a)), 39, true);
    tb_put(t, " ", 1);
    tb_u64(t, h->alerts, 6);
    tb_put(t, " ", 1);
    tb_u64(t, h->hits, 6);
    tb_put(t, " ", 1);
    tb_u64(t, h->flows, 5);
    tb_put(t, " ", 1);
    tb_u64(t, h->bytes_out, 12);
    tb_put(t, " ", 1);
    tb_pad(t, t1, 20, true);
    tb_put(t, " ", 1);
    tb_pad(t, t2, 20, true);
    tb_put(t, "  ", 2);
    for (uint8_t k = 0; k < h->n_names; k++) {
        if (k)
            tb_put(t, ",", 1);
        tb_str(t, s->arena + h->names[k]);
    }
    tb_put(t, " / ", 3);
    for (uint8_t k = 0; k < h->n_rules; k++) {
        if (k)
            tb_put(t, ",", 1);
        tb_str(t, s->arena + h->rules[k]);
    }
    tb_put(t, " / ", 3);
    for (uint8_t k = 0; k < h->n_frames; k++) {
        if (k)
            tb_put(t, ",", 1);
        tb_u64(t, h->frames[k], 0);
    }
    tb_put(t, "\n", 1);
}

static void json_row(const struct summary *s, struct jw *w, const struct host_sum *h)
{
    jw_reset(w);
    jw_begin(w);
    jw_addr(w, "host", &h->host);
    jw_u64(w, "alerts", h->alerts);
    jw_u64(w, "hits", h->hits);
    jw_u64(w, "flows", h->flows);
    jw_u64(w, "bytes_out", h->bytes_out);
    jw_u64(w, "bytes_in", h->bytes_in);
    char t[40];
    jw_str(w, "first_seen", tw_time_rfc3339(h->first, t, sizeof(t)));
    jw_str(w, "last_seen", tw_time_rfc3339(h->last, t, sizeof(t)));
    char *v[SUMMARY_ITEMS];
    for (uint8_t k = 0; k < h->n_rules; k++)
        v[k] = s->arena + h->rules[k];
    jw_strv(w, "rules", v, h->n_rules);
    for (uint8_t k = 0; k < h->n_names; k++)
        v[k] = s->arena + h->names[k];
    jw_strv(w, "names", v, h->n_names);
    jw_u64v(w, "frames", h->frames, h->n_frames);
    jw_end(w);
}

static void print_table(const struct summary *s, FILE *out)
{
    struct tbuf *t = malloc(sizeof(*t));
    if (!t) { /* out of memory: one line says so */
        fprintf(out, "(summary of %" PRIu32 " hosts not printed: out of memory)\n", s->n);
        return;
    }
    t->out = out;
    t->len = 0;
    char head[256];
    int n = snprintf(head, sizeof(head), "\n%-39s %6s %6s %5s %12s %-20s %-20s  %s\n",
                     "internal host", "alerts", "hits", "flows", "bytes out", "first seen",
                     "last seen", "names / rules / frames");
    tb_put(t, head, n > 0 ? (size_t)n : 0);
    for (uint32_t i = 0; i < s->n; i++)
        print_row(s, &s->hosts[i], t);
    if (s->n == 0)
        tb_str(t, "(no internal host reached a flagged name)\n");
    tb_flush(t);
    fflush(out);
    free(t);
}

void summary_print(const struct summary *s, FILE *out, FILE *json_out)
{
    if (out)
        print_table(s, out);
    if (json_out) {
        struct jw w;
        jw_init(&w, 0);
        for (uint32_t i = 0; i < s->n; i++) {
            json_row(s, &w, &s->hosts[i]);
            fputs(w.buf, json_out);
            fputc('\n', json_out);
        }
        jw_free(&w);
    }
}
