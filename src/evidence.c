/* evidence.c - the packets of flagged flows (see evidence.h). The replay's flow keys are a
 * flat array, sorted once before the second pass and searched per packet. */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/capture.h"
#include "tunnelwatch/decode.h"
#include "tunnelwatch/evidence.h"

/* A flagged flow's 5-tuple + VLAN, client side first. */
struct evkey {
    uint8_t cli[16], srv[16];
    uint16_t cport, sport, vlan;
    uint8_t fam, proto;
};

struct evidence {
    const char *path;
    struct evkey *keys;
    uint32_t n_keys;
    uint64_t over;
    pcap_t *dead; /* live: the open file */
    pcap_dumper_t *dump;
};

static int evkey_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct evkey));
}

static void evkey_of(struct evkey *k, const struct tw_addr *cli, const struct tw_addr *srv,
                     uint16_t cport, uint16_t sport, uint8_t proto, uint16_t vlan)
{
    memset(k, 0, sizeof(*k));
    memcpy(k->cli, cli->a, 16);
    memcpy(k->srv, srv->a, 16);
    k->cport = cport;
    k->sport = sport;
    k->vlan = vlan;
    k->fam = cli->family;
    k->proto = proto;
}

struct evidence *evidence_new(const char *path)
{
    struct evidence *ev = calloc(1, sizeof(*ev));
    if (ev)
        ev->path = path;
    return ev;
}

void evidence_close(struct evidence *ev)
{
    if (ev->dump)
        pcap_dump_close(ev->dump);
    if (ev->dead)
        pcap_close(ev->dead);
    ev->dump = NULL;
    ev->dead = NULL;
}

void evidence_free(struct evidence *ev)
{
    if (!ev)
        return;
    evidence_close(ev);
    free(ev->keys);
    free(ev);
}

void evidence_begin_live(struct evidence *ev, int dlt, FILE *log)
{
    if (ev->dump)
        return;
    ev->dead = pcap_open_dead(dlt, 262144);
    if (ev->dead)
        ev->dump = pcap_dump_open(ev->dead, ev->path);
    if (!ev->dump && log)
        fprintf(log, "tunnelwatch: cannot write evidence to %s\n", ev->path);
}

void evidence_flag(struct evidence *ev, const struct tw_addr *cli, const struct tw_addr *srv,
                   uint16_t cport, uint16_t sport, uint8_t proto, uint16_t vlan)
{
    if (!ev->keys)
        ev->keys = calloc(EVIDENCE_FLOWS_MAX, sizeof(*ev->keys));
    if (ev->keys && ev->n_keys < EVIDENCE_FLOWS_MAX)
        evkey_of(&ev->keys[ev->n_keys++], cli, srv, cport, sport, proto, vlan);
    else
        ev->over++;
}

void evidence_packet(struct evidence *ev, const struct pcap_pkthdr *h, const uint8_t *data)
{
    if (ev->dump)
        pcap_dump((u_char *)ev->dump, h, data);
}

/* True when the decoded packet belongs to a flagged flow, in either direction. */
static bool flagged(const struct evidence *ev, const struct dec_pkt *p)
{
    struct evkey k;
    evkey_of(&k, &p->src, &p->dst, p->sport, p->dport, p->proto, p->vlan);
    if (bsearch(&k, ev->keys, ev->n_keys, sizeof(k), evkey_cmp))
        return true;
    evkey_of(&k, &p->dst, &p->src, p->dport, p->sport, p->proto, p->vlan);
    return bsearch(&k, ev->keys, ev->n_keys, sizeof(k), evkey_cmp) != NULL;
}

struct pass {
    pcap_t *dead;
    pcap_dumper_t *dump;
    int dlt;
    int written;
    uint64_t other_dlt;
};

/* Writes one packet, opening the file with the first packet's link type. */
static int pass_write(struct pass *ps, const char *path, int dlt, const struct pcap_pkthdr *h,
                      const uint8_t *data, char *err, size_t errlen)
{
    if (!ps->dump) {
        ps->dlt = dlt;
        ps->dead = pcap_open_dead(dlt, 262144);
        ps->dump = ps->dead ? pcap_dump_open(ps->dead, path) : NULL;
        if (!ps->dump) {
            snprintf(err, errlen, "cannot write %s: %s", path,
                     ps->dead ? pcap_geterr(ps->dead) : "out of memory");
            return TW_EIO;
        }
    }
    if (dlt != ps->dlt) {
        ps->other_dlt++; /* a pcap file has one link type */
        return TW_OK;
    }
    pcap_dump((u_char *)ps->dump, h, data);
    ps->written++;
    return TW_OK;
}

static int pass_file(struct evidence *ev, struct pass *ps, const char *input, char *err,
                     size_t errlen)
{
    struct cap_src src;
    if (cap_open_file(&src, input, err, errlen) != TW_OK)
        return TW_OK; /* reported by the first pass */
    struct pcap_pkthdr h;
    const uint8_t *data;
    int dlt, r, rc = TW_OK;
    while (rc == TW_OK && (r = cap_next(&src, &h, &data, &dlt, err, errlen)) == 1) {
        struct dec_pkt p;
        if (!dec_linktype_supported(dlt) || dec_packet(dlt, data, h.caplen, &p) != DEC_OK ||
            (p.proto != 6 && p.proto != 17) || !flagged(ev, &p))
            continue;
        rc = pass_write(ps, ev->path, dlt, &h, data, err, errlen);
    }
    cap_close(&src);
    return rc;
}

int evidence_write(struct evidence *ev, char *const *inputs, char *err, size_t errlen)
{
    if (ev->n_keys == 0) {
        snprintf(err, errlen, "no flagged flow: %s not written", ev->path);
        return 0;
    }
    qsort(ev->keys, ev->n_keys, sizeof(*ev->keys), evkey_cmp);
    struct pass ps = {NULL, NULL, -1, 0, 0};
    int rc = TW_OK;
    for (size_t i = 0; inputs[i] && rc == TW_OK; i++)
        rc = pass_file(ev, &ps, inputs[i], err, errlen);
    if (ps.dump)
        pcap_dump_close(ps.dump);
    if (ps.dead)
        pcap_close(ps.dead);
    if (rc != TW_OK)
        return rc;
    snprintf(err, errlen, "%d packets of %u flagged flows written to %s%s%s", ps.written,
             ev->n_keys, ev->path, ps.other_dlt ? " (packets of another link type left out)" : "",
             ev->over ? " (more flagged flows than the evidence cap)" : "");
    return ps.written;
}
