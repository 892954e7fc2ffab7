/* fuzz_engine.c - libFuzzer target for the whole packet path through the public engine API:
 * decode -> flow -> extract (TCP reassembly, preambles, TLS, HTTP, DNS, QUIC) -> rules ->
 * records. Each input runs on a fresh engine (engine_new ... engine_finish, engine_free) with
 * small tables, so LeakSanitizer sees everything the engine failed to release.
 *
 * Input: a sequence of records [len: u16 big-endian][flags: u8][payload: len bytes]; a short
 * last record is cut to what is left. Every packet is copied into a buffer of exactly its
 * size (ASan sees a read past its end) and freed after the engine has it.
 *   flags & 0x01  template mode: the payload is a TCP (or UDP) payload the harness wraps in
 *                 IPv4 + TCP/UDP headers between 10.1.0.23:40000 and 3.134.39.220:PORT, with
 *                 sequence and acknowledgement numbers carried per port and direction, so
 *                 consecutive records form one stream. Otherwise the payload is a raw IPv4
 *                 (or IPv6) packet, link type LINKTYPE_RAW.
 *   flags & 0x02  template: UDP instead of TCP.   raw: link type 12 instead of 101.
 *   flags & 0x04  template: SYN (SYN+ACK from the server).   raw: the wire length exceeds the
 *                 captured length (a snapped packet).
 *   flags & 0x08  template: sent by the server.
 *   flags & 0x30  time before the packet: +1 ms, +2 s, +15 s or +150 s (the last two also
 *                 run engine_tick after the packet, so idle and close expiry happen).
 *   flags & 0x40  template: the payload's first byte is a control byte, not sent:
 *                   & 0x0f  port index into ports[] (sticky for later template records)
 *                   & 0x30  1: FIN, 2: RST, 3: the segment lies 16 * B bytes ahead of the
 *                           direction's sequence, B the next payload byte (also not sent)
 *                   & 0x40  the direction's sequence does not advance past the segment (a
 *                           retransmission; with 3, an early segment whose gap comes later)
 *                   & 0x80  no ACK flag (and no acknowledgement number)
 *   flags & 0x80  the packet is queued for one engine_packets() call with the following
 *                 queued packets (flushed at the first record without 0x80, after
 *                 ENGINE_BATCH packets, and at the end).
 * The low bit of the input's last byte picks the record schema (1: ASIM, 0: ECS). nDPI is off
 * (flow.ndpi=false): its per-engine set-up would cost ~100 ms a run; dpi.c is not reached.
 * The rule set (an indicator list of ngrok domains and one Sigma rule, both loaded from
 * memory) is built once; the alerts and --names output go to memory streams, so record
 * formatting runs too. Seeds: tests/fuzz/corpus/engine/ (tests/fuzz/make_engine_seeds.py).
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define F_TEMPLATE 0x01
#define F_UDP      0x02 /* raw: link type 12 */
#define F_SYN      0x04 /* raw: snapped */
#define F_SERVER   0x08
#define F_TIME     0x30
#define F_CTL      0x40
#define F_BATCH    0x80

#define C_PORT   0x0f
#define C_KIND   0x30
#define C_RETX   0x40
#define C_NO_ACK 0x80

#define NPORTS 16
/* TLS, HTTP, proxies, mail and chat STARTTLS, DNS on and off port 53, QUIC, anything */
static const uint16_t ports[NPORTS] = {443, 80, 8080, 3128, 1080, 25,   587,  110,
                                       143, 21, 5222, 389,  53,   5300, 3389, 4433};

static const char indicators[] = "# title: ngrok tunnel endpoints (fuzz)\n"
                                 "# level: high\n"
                                 "# tags: attack.t1572\n"
                                 "# field: any\n"
                                 "tunnel.us.ngrok.com\n"
                                 "tunnel.eu.ngrok.com\n"
                                 "*.ngrok-free.app\n"
                                 "ngrok.io\n";

static const char sigma[] = "title: Connection to a tunnel service (fuzz)\n"
                            "id: 6c1f1e8e-0000-4000-8000-00000000f022\n"
                            "status: test\n"
                            "tags:\n"
                            "    - attack.t1572\n"
                            "logsource:\n"
                            "    category: network_connection\n"
                            "detection:\n"
                            "    selection:\n"
                            "        DestinationHostname|endswith:\n"
                            "            - '.trycloudflare.com'\n"
                            "            - '.loca.lt'\n"
                            "    filter:\n"
                            "        DestinationHostname|contains: 'ok.example'\n"
                            "    condition: selection and not filter\n"
                            "level: medium\n";

static const char *const settings[] = {"flow.max_flows=1024", "flow.frag_max=16",
                                       "flow.ndpi_max_flows=16", "alert.dedup_max=64",
                                       "alert.dns_map_max=256", "alert.update_interval_s=60",
                                       "flow.reasm_bytes=8192", "flow.ndpi=false",
                                       /* one source holds 10 KB: its buffers give way to each
                                        * other (stream.h), so reclaims happen here */
                                       "flow.reasm_source_pct=1", "flow.stall_ms=1"};

static struct ruleset *rules;
static struct tw_cfg cfg;
static bool dump; /* TW_FUZZ_DUMP set: the records and names go to stderr (seed checks) */

static void init_once(void)
{
    if (rules)
        return;
    dump = getenv("TW_FUZZ_DUMP") != NULL;
    cfg_defaults(&cfg);
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (cfg_set(&cfg, settings[i], stderr) != 0)
            abort();
    rules = ruleset_new(RULE_POLICY_ERROR);
    if (!rules ||
        ruleset_load_mem(rules, "ngrok.txt", (const uint8_t *)indicators, strlen(indicators),
                         stderr) != 1 ||
        ruleset_load_mem(rules, "tunnels.yml", (const uint8_t *)sigma, strlen(sigma), stderr) !=
            1 ||
        ruleset_build(rules) != TW_OK)
        abort();
}

/* Template state: the next sequence number per port and direction, the current port. */
struct tpl {
    uint32_t seq[NPORTS][2];
    uint16_t ipid;
    unsigned port;
};

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static uint16_t ip_csum(const uint8_t *h)
{
    uint32_t s = 0;
    for (int i = 0; i < 20; i += 2)
        s += (uint32_t)(h[i] << 8 | h[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* Wraps pl[0..n) into IPv4 + TCP/UDP; returns a malloc'd packet of *len bytes, or NULL. */
static uint8_t *wrap(struct tpl *t, uint8_t flags, const uint8_t *pl, size_t n, size_t *len)
{
    uint8_t ctl = 0;
    if ((flags & F_CTL) && n > 0) {
        ctl = pl[0];
        pl++;
        n--;
        t->port = ctl & C_PORT;
    }
    uint32_t gap = 0, ahead = 0;
    if ((ctl & C_KIND) == C_KIND && n > 0) {
        gap = pl[0];
        pl++;
        n--;
    }
    const bool udp = flags & F_UDP, srv = flags & F_SERVER;
    const size_t l4 = udp ? 8 : 20;
    if (n > 65535 - 20 - l4)
        n = 65535 - 20 - l4;
    *len = 20 + l4 + n;
    uint8_t *b = calloc(1, *len);
    if (!b)
        return NULL;
    static const uint8_t cli[4] = {10, 1, 0, 23}, ser[4] = {3, 134, 39, 220};
    b[0] = 0x45;
    put16(b + 2, (uint32_t)*len);
    put16(b + 4, t->ipid++);
    b[6] = 0x40; /* DF */
    b[8] = srv ? 52 : 64;
    b[9] = udp ? 17 : 6;
    memcpy(b + 12, srv ? ser : cli, 4);
    memcpy(b + 16, srv ? cli : ser, 4);
    put16(b + 10, ip_csum(b));
    uint8_t *h = b + 20;
    const uint16_t cport = 40000, sport = ports[t->port];
    put16(h, srv ? sport : cport);
    put16(h + 2, srv ? cport : sport);
    if (udp) {
        put16(h + 4, (uint32_t)(8 + n));
    } else {
        uint32_t *seq = &t->seq[t->port][srv], ack = t->seq[t->port][!srv];
        uint8_t th = TW_TH_ACK | (n ? TW_TH_PSH : 0);
        if (flags & F_SYN)
            th = srv ? TW_TH_SYN | TW_TH_ACK : TW_TH_SYN;
        switch ((ctl & C_KIND) >> 4) {
        case 1:
            th |= TW_TH_FIN;
            break;
        case 2:
            th = TW_TH_RST | (th & TW_TH_ACK);
            break;
        case 3:
            ahead = 16u * gap;
            break;
        }
        if (ctl & C_NO_ACK)
            th &= (uint8_t)~TW_TH_ACK;
        *seq += ahead;
        put32(h + 4, *seq);
        put32(h + 8, th & TW_TH_ACK ? ack : 0);
        h[12] = 0x50;
        h[13] = th;
        put16(h + 14, 65535);
        if (ctl & C_RETX)
            *seq -= ahead;
        else
            *seq += (uint32_t)n + ((th & (TW_TH_SYN | TW_TH_FIN)) ? 1u : 0u);
    }
    memcpy(b + 20 + l4, pl, n);
    return b;
}

/* Packets queued for one engine_packets() call. */
struct queue {
    struct pcap_pkthdr h[ENGINE_BATCH];
    uint8_t *p[ENGINE_BATCH];
    size_t n;
};

static void flush(struct engine *e, struct queue *q)
{
    if (q->n)
        engine_packets(e, q->h, (const uint8_t *const *)q->p, q->n);
    for (size_t i = 0; i < q->n; i++)
        free(q->p[i]);
    q->n = 0;
}

static void run(struct engine *e, const uint8_t *data, size_t size)
{
    struct tpl t;
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < NPORTS; i++) {
        t.seq[i][0] = 0xfffffc00u + i * 0x11111u; /* client ISNs: some wrap past 2^32 */
        t.seq[i][1] = 0x20000000u + i * 0x01010101u;
    }
    struct queue q;
    q.n = 0;
    struct timeval now = {1700000000, 0};
    int dlt = TW_DLT_RAW101;
    engine_begin_input(e, "fuzz", dlt, false);
    size_t i = 0;
    while (i + 3 <= size) {
        size_t n = (size_t)(data[i] << 8 | data[i + 1]);
        const uint8_t flags = data[i + 2];
        i += 3;
        if (n > size - i)
            n = size - i;
        const uint8_t *pl = data + i;
        i += n;

        static const long step_us[4] = {1000, 2000000, 15000000, 150000000};
        long us = now.tv_usec + step_us[(flags & F_TIME) >> 4];
        now.tv_sec += us / 1000000;
        now.tv_usec = (suseconds_t)(us % 1000000);

        uint8_t *pkt;
        size_t len;
        bool snapped = false;
        if (flags & F_TEMPLATE) {
            pkt = wrap(&t, flags, pl, n, &len);
        } else {
            len = n;
            pkt = malloc(n ? n : 1);
            if (pkt)
                memcpy(pkt, pl, n);
            snapped = flags & F_SYN;
        }
        if (!pkt)
            break;
        int want = (flags & (F_TEMPLATE | F_UDP)) == F_UDP ? TW_DLT_RAW : TW_DLT_RAW101;
        if (want != dlt) {
            flush(e, &q); /* a batch is of one link type */
            engine_set_dlt(e, want);
            dlt = want;
        }
        struct pcap_pkthdr h = {now, (bpf_u_int32)len, (bpf_u_int32)len + (snapped ? 200 : 0)};
        if (flags & F_BATCH) {
            q.h[q.n] = h;
            q.p[q.n++] = pkt;
            if (q.n == ENGINE_BATCH)
                flush(e, &q);
        } else {
            flush(e, &q);
            engine_packet(e, &h, pkt);
            free(pkt);
        }
        if ((flags & F_TIME) >= 0x20) {
            flush(e, &q);
            engine_tick(e, (struct tw_time){now.tv_sec, (int32_t)now.tv_usec});
        }
    }
    flush(e, &q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    char *abuf = NULL, *nbuf = NULL;
    size_t alen = 0, nlen = 0;
    FILE *alerts = open_memstream(&abuf, &alen), *names = open_memstream(&nbuf, &nlen);
    if (!alerts || !names)
        abort();
    struct engine_opts eo;
    memset(&eo, 0, sizeof(eo));
    eo.cfg = &cfg;
    eo.alerts_out = alerts;
    eo.names_out = names;
    eo.schema = (size > 0 && (data[size - 1] & 1)) ? ALERT_ASIM : ALERT_ECS;
    eo.verbosity = -1;
    char err[256];
    struct engine *e = engine_new(&eo, rules, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "engine_new: %s\n", err);
        abort();
    }
    run(e, data, size);
    engine_finish(e);
    engine_free(e);
    fclose(alerts);
    fclose(names);
    if (dump)
        fprintf(stderr, "--- names\n%s--- records\n%s", nbuf, abuf);
    free(abuf);
    free(nbuf);
    return 0;
}
