/* decode.c - L2..L4 decoding of one captured frame into a struct dec_pkt.
 *
 * Design: one recursive-descent walk over a single byte cursor (cursor.h); every header is
 * read through it, so a false length can never reach past the captured bytes. Each network
 * layer narrows the cursor to the length its own header announces (IPv4 total length, IPv6
 * payload length, UDP length), which drops Ethernet padding and FCS trailers and lets us
 * tell a snaplen cut (payload_len < payload_wire_len) from a lie (DEC_BAD_*). Recursion only
 * happens through enter(), which counts encapsulation layers in out->tunnels and stops at
 * DEC_MAX_DEPTH, so hostile nesting (IP-in-IP-in-GRE-in-...) costs bounded stack and time.
 * VLAN tags, MPLS labels, IPv6 extension headers and NFLOG TLVs are walked iteratively, each
 * loop with its own cap. Innermost IP header and transport win. Checksums are not validated:
 * a passive sensor sees offloaded checksums on the capture host and would drop good traffic.
 */
#include <string.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/decode.h"

#define ETH_P_IPV4    0x0800
#define ETH_P_IPV6    0x86dd
#define ETH_P_8021Q   0x8100
#define ETH_P_8021AD  0x88a8
#define ETH_P_QINQ1   0x9100
#define ETH_P_QINQ2   0x9200
#define ETH_P_MPLS_UC 0x8847
#define ETH_P_MPLS_MC 0x8848
#define ETH_P_PPPOE_S 0x8864
#define ETH_P_TEB     0x6558 /* transparent Ethernet bridging (GRE, NVGRE, Geneve) */
#define ETH_P_ERSPAN2 0x88be
#define ETH_P_ERSPAN3 0x22eb

#define IPP_HOPOPTS  0
#define IPP_IPIP     4
#define IPP_TCP      6
#define IPP_UDP      17
#define IPP_IPV6     41
#define IPP_ROUTING  43
#define IPP_FRAGMENT 44
#define IPP_GRE      47
#define IPP_AH       51
#define IPP_DSTOPTS  60
#define IPP_MOBILITY 135
#define IPP_HIP      139
#define IPP_SHIM6    140

#define UDP_PORT_VXLAN    4789
#define UDP_PORT_GENEVE   6081
#define UDP_PORT_MPLS_UDP 6635
#define UDP_PORT_GTPU     2152

#define MAX_VLAN_TAGS  8  /* QinQ rarely stacks more than 2; 8 leaves room for odd labs */
#define MAX_MPLS_LABEL 16 /* real label stacks are a handful deep */
#define MAX_IP6_EXT    8  /* RFC 8200 sec. 4.1: each extension header at most once, ~8 kinds */
#define MAX_NFLOG_TLV  64

static int dec_ether_type(struct cur *c, uint16_t type, struct dec_pkt *o);
static int dec_eth(struct cur *c, struct dec_pkt *o);
static int dec_ip4(struct cur *c, struct dec_pkt *o);
static int dec_ip6(struct cur *c, struct dec_pkt *o);
static int dec_ip_proto(struct cur *c, uint8_t proto, uint32_t wire, struct dec_pkt *o);

const char *dec_reason_name(int reason)
{
    static const char *const names[DEC__COUNT] = {
        [DEC_OK] = "ok",
        [DEC_FRAG] = "fragment",
        [DEC_NOT_IP] = "not_ip",
        [DEC_TRUNC] = "truncated",
        [DEC_BAD_L2] = "bad_l2",
        [DEC_BAD_IP4] = "bad_ipv4",
        [DEC_BAD_IP6] = "bad_ipv6",
        [DEC_BAD_TCP] = "bad_tcp",
        [DEC_BAD_UDP] = "bad_udp",
        [DEC_BAD_TUNNEL] = "bad_tunnel",
        [DEC_DEPTH] = "too_deep",
        [DEC_OTHER_L4] = "other_l4",
        [DEC_UNSUP_LINK] = "unsupported_link",
    };
    if (reason < 0 || reason >= DEC__COUNT)
        return "unknown";
    return names[reason];
}

bool dec_linktype_supported(int dlt)
{
    switch (dlt) {
    case TW_DLT_NULL:
    case TW_DLT_EN10MB:
    case TW_DLT_RAW:
    case TW_DLT_RAW14:
    case TW_DLT_RAW101:
    case TW_DLT_LOOP:
    case TW_DLT_LINUX_SLL:
    case TW_DLT_IPV4:
    case TW_DLT_IPV6:
    case TW_DLT_NFLOG:
    case TW_DLT_SLL2:
        return true;
    default:
        return false;
    }
}

/* One more encapsulation layer. Every recursive path goes through here, which is what
 * bounds the recursion depth on hostile input. */
static int enter(struct dec_pkt *o)
{
    if (o->tunnels >= DEC_MAX_DEPTH)
        return DEC_DEPTH;
    o->tunnels++;
    return DEC_OK;
}

/* A header ran past the bytes we hold: a snaplen cut when fewer bytes were captured than the
 * enclosing header announced, otherwise the inner header lies about its size. */
static int cut_or(int bad, uint32_t captured, uint32_t wire)
{
    return captured < wire ? DEC_TRUNC : bad;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Dispatches on the IP version nibble (raw IP link types, MPLS payload, ERSPAN III IP). */
static int dec_ip_any(struct cur *c, struct dec_pkt *o, int bad)
{
    if (!cur_need(c, 1))
        return DEC_TRUNC;
    switch (c->p[0] >> 4) {
    case 4:
        return dec_ip4(c, o);
    case 6:
        return dec_ip6(c, o);
    default:
        return bad;
    }
}

/* RFC 6790 / RFC 3032 sec. 2.1: MPLS label stack entries, 4 bytes each:
 *   label(20) | TC(3) | S(1) | TTL(8)
 * After bottom-of-stack (S=1) nothing says what follows: like tcpdump we guess from the first
 * nibble (4 IPv4, 6 IPv6, 0 a pseudowire control word (RFC 4385) before an Ethernet frame). */
static int dec_mpls(struct cur *c, struct dec_pkt *o)
{
    int rc = enter(o);
    if (rc != DEC_OK)
        return rc;
    int n = 0;
    for (;;) {
        uint32_t lse = cur_u32be(c);
        if (c->err)
            return DEC_TRUNC;
        if (lse & 0x100)
            break;
        /* a stack with no bottom would otherwise walk the whole frame */
        if (++n >= MAX_MPLS_LABEL)
            return DEC_BAD_TUNNEL;
    }
    if (!cur_need(c, 1))
        return DEC_TRUNC;
    switch (c->p[0] >> 4) {
    case 4:
        return dec_ip4(c, o);
    case 6:
        return dec_ip6(c, o);
    case 0:
        cur_skip(c, 4); /* control word */
        if (c->err)
            return DEC_TRUNC;
        return dec_eth(c, o);
    default:
        return DEC_NOT_IP;
    }
}

/* RFC 2516 sec. 4: PPPoE session header, then a PPP protocol number (RFC 1661).
 *   ver(4)|type(4) | code(8) | session id(16) | length(16) | PPP protocol(16) */
static int dec_pppoe(struct cur *c, struct dec_pkt *o)
{
    uint8_t vt = cur_u8(c);
    cur_skip(c, 3);
    uint16_t len = cur_u16be(c);
    uint16_t ppp = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (vt != 0x11 || len < 2)
        return DEC_BAD_L2;
    if (ppp == 0x0021)
        return dec_ip4(c, o);
    if (ppp == 0x0057)
        return dec_ip6(c, o);
    return DEC_NOT_IP;
}

/* IEEE 802.1Q / 802.1ad: tag = TCI(16: PCP 3, DEI 1, VID 12) | inner EtherType(16). Stacked
 * tags (QinQ with 0x88a8, 0x9100, 0x9200 or repeated 0x8100) are walked in a loop; the
 * innermost VID keys flows. */
static int dec_ether_type(struct cur *c, uint16_t type, struct dec_pkt *o)
{
    int tags = 0;
    while (type == ETH_P_8021Q || type == ETH_P_8021AD || type == ETH_P_QINQ1 ||
           type == ETH_P_QINQ2) {
        /* hostile frames can be nothing but tags */
        if (++tags > MAX_VLAN_TAGS)
            return DEC_BAD_L2;
        uint16_t tci = cur_u16be(c);
        type = cur_u16be(c);
        if (c->err)
            return DEC_TRUNC;
        o->vlan = tci & 0x0fff;
    }
    switch (type) {
    case ETH_P_IPV4:
        return dec_ip4(c, o);
    case ETH_P_IPV6:
        return dec_ip6(c, o);
    case ETH_P_MPLS_UC:
    case ETH_P_MPLS_MC:
        return dec_mpls(c, o);
    case ETH_P_PPPOE_S:
        return dec_pppoe(c, o);
    case ETH_P_TEB: {
        int rc = enter(o);
        return rc != DEC_OK ? rc : dec_eth(c, o);
    }
    default:
        return DEC_NOT_IP;
    }
}

/* IEEE 802.3: dst(6) | src(6) | EtherType or length(2). A length (<= 1500) means 802.2 LLC;
 * only SNAP (AA AA 03 + OUI(3) + EtherType) carries IP, everything else (STP...) is not IP. */
static int dec_eth(struct cur *c, struct dec_pkt *o)
{
    cur_skip(c, 12);
    uint16_t type = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (type <= 1500) {
        const uint8_t *llc = cur_bytes(c, 3);
        if (!llc)
            return DEC_TRUNC;
        if (llc[0] != 0xaa || llc[1] != 0xaa || llc[2] != 0x03)
            return DEC_NOT_IP;
        cur_skip(c, 3);
        type = cur_u16be(c);
        if (c->err)
            return DEC_TRUNC;
    } else if (type < 0x0600) {
        /* 1501..1535 is neither a length nor an EtherType */
        return DEC_BAD_L2;
    }
    return dec_ether_type(c, type, o);
}

/* RFC 791 sec. 3.1: IPv4 header.
 *   ver(4)|IHL(4) | TOS | total length(16) | id(16) | flags(3)|frag offset(13) | TTL |
 *   protocol | checksum(16) | src(32) | dst(32) | options (IHL*4 - 20)
 * The payload is what total length announces; bytes past it are link padding. */
static int dec_ip4(struct cur *c, struct dec_pkt *o)
{
    const uint8_t *l3 = c->p;
    uint8_t vihl = cur_u8(c);
    if (c->err)
        return DEC_TRUNC;
    if (vihl >> 4 != 4)
        return DEC_BAD_IP4;
    uint32_t hl = (uint32_t)(vihl & 0x0f) * 4;
    if (hl < 20)
        return DEC_BAD_IP4;
    cur_skip(c, 1);
    uint32_t tot = cur_u16be(c);
    uint16_t id = cur_u16be(c);
    uint16_t off = cur_u16be(c);
    cur_skip(c, 1);
    uint8_t proto = cur_u8(c);
    cur_skip(c, 2);
    const uint8_t *src = cur_bytes(c, 4);
    const uint8_t *dst = cur_bytes(c, 4);
    cur_skip(c, hl - 20); /* options are not interpreted */
    if (c->err)
        return DEC_TRUNC;
    uint32_t avail = (uint32_t)cur_left(c);
    if (tot == 0) {
        /* TSO/GSO: the capturing host saw the segment before the NIC split it and some
         * stacks leave total length 0; the captured bytes are all we know */
        tot = hl + avail;
    }
    if (tot < hl)
        return DEC_BAD_IP4;
    uint32_t wire = tot - hl;
    struct cur p = cur_sub(c, min_u32(avail, wire));

    memset(&o->src, 0, sizeof(o->src));
    memset(&o->dst, 0, sizeof(o->dst));
    o->src.family = o->dst.family = 4;
    memcpy(o->src.a, src, 4);
    memcpy(o->dst.a, dst, 4);
    o->ip_len = tot;
    o->proto = proto;
    o->l3 = l3;
    o->l3_len = hl + min_u32(avail, wire);

    uint32_t foff = (uint32_t)(off & 0x1fff) * 8;
    bool more = (off & 0x2000) != 0;
    if (more || foff != 0) {
        /* RFC 791: a datagram is at most 65535 bytes; a fragment ending past that is the
         * "ping of death" and would overflow a reassembly buffer */
        if (foff + wire > 65535)
            return DEC_BAD_IP4;
        o->frag_id = id;
        o->frag_off = foff;
        o->frag_more = more;
        o->frag_data = p.p;
        o->frag_len = (uint32_t)cur_left(&p);
        o->frag_wire_len = wire;
        return DEC_FRAG;
    }
    return dec_ip_proto(&p, proto, wire, o);
}

/* RFC 8200 sec. 3: IPv6 header (40 bytes) then an extension header chain (sec. 4).
 *   ver(4)|class(8)|flow(20) | payload length(16) | next header | hop limit | src | dst
 * Generic extension (hop-by-hop 0, routing 43, destination 60, mobility 135, HIP 139,
 * shim6 140): next(8) | hdr ext len(8, 8-octet units not counting the first) | data.
 * Fragment 44 (sec. 4.5): next | reserved | offset(13)|res(2)|M(1) | identification(32).
 * AH 51 (RFC 4302 sec. 2): next | payload len (4-octet units minus 2) | ... */
static int dec_ip6(struct cur *c, struct dec_pkt *o)
{
    const uint8_t *l3 = c->p;
    uint32_t vtf = cur_u32be(c);
    if (c->err)
        return DEC_TRUNC;
    if (vtf >> 28 != 6)
        return DEC_BAD_IP6;
    uint32_t plen = cur_u16be(c);
    uint8_t nh = cur_u8(c);
    cur_skip(c, 1);
    const uint8_t *src = cur_bytes(c, 16);
    const uint8_t *dst = cur_bytes(c, 16);
    if (c->err)
        return DEC_TRUNC;
    uint32_t avail = (uint32_t)cur_left(c);
    /* payload length 0: a jumbogram (RFC 2675) or a TSO super-packet; use what we hold */
    uint32_t wire = plen ? plen : avail;
    uint32_t held = min_u32(avail, wire);
    struct cur p = cur_sub(c, held);

    o->src.family = o->dst.family = 6;
    memcpy(o->src.a, src, 16);
    memcpy(o->dst.a, dst, 16);
    o->ip_len = 40 + wire;
    o->l3 = l3;
    o->l3_len = 40 + held;

    for (int n = 0;; n++) {
        o->proto = nh;
        uint32_t used = held - (uint32_t)cur_left(&p);
        if (nh != IPP_HOPOPTS && nh != IPP_ROUTING && nh != IPP_DSTOPTS && nh != IPP_MOBILITY &&
            nh != IPP_HIP && nh != IPP_SHIM6 && nh != IPP_AH && nh != IPP_FRAGMENT)
            return dec_ip_proto(&p, nh, wire - used, o);
        /* a chain of repeated headers is legal to parse but never seen in real traffic */
        if (n >= MAX_IP6_EXT)
            return DEC_BAD_IP6;
        uint8_t next = cur_u8(&p);
        uint8_t len = cur_u8(&p);
        if (p.err)
            return cut_or(DEC_BAD_IP6, held, wire);
        if (nh == IPP_FRAGMENT) {
            /* len was the reserved byte here */
            uint16_t offm = cur_u16be(&p);
            uint32_t id = cur_u32be(&p);
            if (p.err)
                return cut_or(DEC_BAD_IP6, held, wire);
            uint32_t foff = offm & 0xfff8u;
            bool more = (offm & 1) != 0;
            if (foff == 0 && !more) {
                /* RFC 6946 atomic fragment: a whole datagram, keep decoding */
                nh = next;
                continue;
            }
            uint32_t fwire = wire - (used + 8);
            if (foff + fwire > 65535)
                return DEC_BAD_IP6;
            o->proto = next;
            o->frag_id = id;
            o->frag_off = foff;
            o->frag_more = more;
            o->frag_data = p.p;
            o->frag_len = (uint32_t)cur_left(&p);
            o->frag_wire_len = fwire;
            return DEC_FRAG;
        }
        size_t sz = nh == IPP_AH ? ((size_t)len + 2) * 4 : ((size_t)len + 1) * 8;
        cur_skip(&p, sz - 2);
        if (p.err)
            return cut_or(DEC_BAD_IP6, held, wire);
        nh = next;
    }
}

/* RFC 793 sec. 3.1: sport | dport | seq | ack | data offset(4)|res|flags | window | csum | urg
 * | options (data offset*4 - 20). */
static int dec_tcp(struct cur *c, uint32_t wire, struct dec_pkt *o)
{
    uint32_t held = (uint32_t)cur_left(c);
    uint16_t sport = cur_u16be(c);
    uint16_t dport = cur_u16be(c);
    uint32_t seq = cur_u32be(c);
    uint32_t ack = cur_u32be(c);
    uint16_t offfl = cur_u16be(c);
    uint16_t win = cur_u16be(c);
    cur_skip(c, 4);
    if (c->err)
        return cut_or(DEC_BAD_TCP, held, wire);
    uint32_t hl = (uint32_t)(offfl >> 12) * 4;
    if (hl < 20 || hl > wire)
        return DEC_BAD_TCP;
    cur_skip(c, hl - 20);
    if (c->err)
        return DEC_TRUNC; /* hl <= wire, so the options were cut by the snaplen */
    o->proto = IPP_TCP;
    o->sport = sport;
    o->dport = dport;
    o->seq = seq;
    o->ack = ack;
    o->tcp_flags = (uint8_t)(offfl & 0xff);
    o->tcp_win = win;
    o->payload = c->p;
    o->payload_len = (uint32_t)cur_left(c);
    o->payload_wire_len = wire - hl;
    return DEC_OK;
}

/* RFC 7348 sec. 5: VXLAN header: flags(8, I=0x08) | reserved(24) | VNI(24) | reserved(8),
 * then an Ethernet frame. */
static int dec_vxlan(struct cur *c, struct dec_pkt *o)
{
    uint8_t flags = cur_u8(c);
    cur_skip(c, 7);
    if (c->err)
        return DEC_TRUNC;
    if (!(flags & 0x08))
        return DEC_BAD_TUNNEL;
    return dec_eth(c, o);
}

/* RFC 8926 sec. 3.4: Geneve: ver(2)|opt len(6, 4-octet units) | O|C|rsvd | protocol type(16)
 * | VNI(24) | reserved(8) | options. Protocol type is an EtherType (0x6558: Ethernet). */
static int dec_geneve(struct cur *c, struct dec_pkt *o)
{
    uint8_t vo = cur_u8(c);
    cur_skip(c, 1);
    uint16_t type = cur_u16be(c);
    cur_skip(c, 4);
    cur_skip(c, (size_t)(vo & 0x3f) * 4);
    if (c->err)
        return DEC_TRUNC;
    if (vo >> 6 != 0)
        return DEC_BAD_TUNNEL;
    if (type == ETH_P_TEB)
        return dec_eth(c, o);
    return dec_ether_type(c, type, o);
}

/* 3GPP TS 29.281 sec. 5: GTPv1-U header: flags(8: version 3 bits = 1, PT, rsvd, E, S, PN) |
 * message type(8, 255 = G-PDU) | length(16) | TEID(32) | when E, S or PN: sequence(16) |
 * N-PDU(8) | next extension type(8), then extension headers: length(8, 4-octet units) |
 * content | next type(8). A G-PDU carries a user IP packet (mobile core mirror ports). */
static int dec_gtpu(struct cur *c, struct dec_pkt *o)
{
    uint8_t flags = cur_u8(c);
    uint8_t type = cur_u8(c);
    cur_skip(c, 6);
    if (c->err)
        return DEC_TRUNC;
    if ((flags >> 5) != 1 || !(flags & 0x10))
        return DEC_BAD_TUNNEL;
    if (type != 255)
        return DEC_NOT_IP; /* echo, error indication, end marker: no user packet */
    if (flags & 0x07) {
        cur_skip(c, 3);
        uint8_t next = cur_u8(c);
        /* each extension consumes at least 4 bytes of the packet: the chain is bounded by
         * the packet length, and capped anyway */
        for (int n = 0; next != 0; n++) {
            if (n == 8)
                return DEC_BAD_TUNNEL;
            uint8_t len = cur_u8(c);
            if (c->err || len == 0)
                return c->err ? DEC_TRUNC : DEC_BAD_TUNNEL;
            cur_skip(c, (size_t)len * 4 - 2);
            next = cur_u8(c);
        }
        if (c->err)
            return DEC_TRUNC;
    }
    return dec_ip_any(c, o, DEC_BAD_TUNNEL);
}

/* RFC 768: sport | dport | length | checksum. Length covers header and data; it may be less
 * than the IP payload (trailing bytes ignored) but never more. UDP tunnels are recognised by
 * their IANA destination port: VXLAN 4789, Geneve 6081, MPLS-in-UDP 6635 (RFC 7510), and
 * GTP-U 2152 when both ports are 2152 (as GTP-U peers send). */
static int dec_udp(struct cur *c, uint32_t wire, struct dec_pkt *o)
{
    uint32_t held = (uint32_t)cur_left(c);
    uint16_t sport = cur_u16be(c);
    uint16_t dport = cur_u16be(c);
    uint32_t ulen = cur_u16be(c);
    cur_skip(c, 2);
    if (c->err)
        return cut_or(DEC_BAD_UDP, held, wire);
    if (ulen < 8 || ulen > wire)
        return DEC_BAD_UDP;
    o->proto = IPP_UDP;
    o->sport = sport;
    o->dport = dport;
    uint32_t pwire = ulen - 8;
    struct cur p = cur_sub(c, min_u32((uint32_t)cur_left(c), pwire));
    o->payload = p.p;
    o->payload_len = (uint32_t)cur_left(&p);
    o->payload_wire_len = pwire;
    if (dport == UDP_PORT_VXLAN || dport == UDP_PORT_GENEVE || dport == UDP_PORT_MPLS_UDP ||
        (dport == UDP_PORT_GTPU && sport == UDP_PORT_GTPU)) {
        int rc = enter(o);
        if (rc != DEC_OK)
            return rc;
        if (dport == UDP_PORT_GTPU)
            return dec_gtpu(&p, o);
        if (dport == UDP_PORT_VXLAN)
            return dec_vxlan(&p, o);
        if (dport == UDP_PORT_GENEVE)
            return dec_geneve(&p, o);
        o->tunnels--; /* dec_mpls counts its own layer */
        return dec_mpls(&p, o);
    }
    return DEC_OK;
}

/* ERSPAN (draft-foschiano-erspan-03) after a GRE header.
 * Type II (sec. 4.1): ver(4)=1 | VLAN(12) | COS(3)|En(2)|T(1)|session(10) | rsvd(12)|index(20)
 * Type III (sec. 4.2): ver(4)=2 | VLAN(12) | COS(3)|BSO(2)|T(1)|session(10) | timestamp(32) |
 *   SGT(16) | P(1)|FT(5)|HW id(6)|D(1)|Gra(2)|O(1) | [platform subheader(64) when O]
 * FT 0 is an Ethernet frame, 2 an IP packet. */
static int dec_erspan(struct cur *c, uint16_t type, struct dec_pkt *o)
{
    uint32_t w0 = cur_u32be(c);
    if (type == ETH_P_ERSPAN2) {
        cur_skip(c, 4);
        if (c->err)
            return DEC_TRUNC;
        if (w0 >> 28 != 1)
            return DEC_BAD_TUNNEL;
        return dec_eth(c, o);
    }
    cur_skip(c, 4 + 2);
    uint16_t w2 = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (w0 >> 28 != 2)
        return DEC_BAD_TUNNEL;
    if (w2 & 1)
        cur_skip(c, 8);
    if (c->err)
        return DEC_TRUNC;
    unsigned ft = (w2 >> 10) & 0x1f;
    if (ft == 0)
        return dec_eth(c, o);
    if (ft == 2)
        return dec_ip_any(c, o, DEC_BAD_TUNNEL);
    return DEC_NOT_IP;
}

/* RFC 2784 sec. 2.1 with RFC 2890 sec. 2: GRE header.
 *   C(1)|R(1)|K(1)|S(1)|reserved0(9)|ver(3) | protocol type(16) |
 *   [checksum(16) | reserved1(16)] when C | [key(32)] when K | [sequence(32)] when S
 * Version 1 is PPTP's enhanced GRE (PPP inside): not decoded. The R bit (RFC 1701 source
 * routing) must be zero per RFC 2784. ERSPAN type I is 0x88be without S and has no header. */
static int dec_gre(struct cur *c, struct dec_pkt *o)
{
    int rc = enter(o);
    if (rc != DEC_OK)
        return rc;
    uint16_t flags = cur_u16be(c);
    uint16_t type = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if ((flags & 7) == 1)
        return DEC_NOT_IP;
    if ((flags & 7) != 0 || (flags & 0x4000))
        return DEC_BAD_TUNNEL;
    if (flags & 0x8000)
        cur_skip(c, 4);
    if (flags & 0x2000)
        cur_skip(c, 4);
    if (flags & 0x1000)
        cur_skip(c, 4);
    if (c->err)
        return DEC_TRUNC;
    if (type == ETH_P_ERSPAN2 && !(flags & 0x1000))
        return dec_eth(c, o);
    if (type == ETH_P_ERSPAN2 || type == ETH_P_ERSPAN3)
        return dec_erspan(c, type, o);
    if (type == ETH_P_TEB)
        return dec_eth(c, o);
    return dec_ether_type(c, type, o);
}

/* c holds the captured part of an IP payload whose announced length is wire. */
static int dec_ip_proto(struct cur *c, uint8_t proto, uint32_t wire, struct dec_pkt *o)
{
    int rc;
    o->proto = proto;
    switch (proto) {
    case IPP_TCP:
        return dec_tcp(c, wire, o);
    case IPP_UDP:
        return dec_udp(c, wire, o);
    case IPP_IPIP:
        rc = enter(o);
        return rc != DEC_OK ? rc : dec_ip4(c, o);
    case IPP_IPV6:
        rc = enter(o);
        return rc != DEC_OK ? rc : dec_ip6(c, o);
    case IPP_GRE:
        return dec_gre(c, o);
    default:
        return DEC_OTHER_L4;
    }
}

/* Host-order 16-bit read: NFLOG TLV fields are in the capturing host's order, and libpcap
 * swaps them to ours when it reads a file written on the other endianness. */
static uint16_t cur_u16host(struct cur *c)
{
    const uint8_t *b = cur_bytes(c, 2);
    uint16_t v = 0;
    if (b)
        memcpy(&v, b, 2);
    return v;
}

/* NFLOG (LINKTYPE_NFLOG, https://www.tcpdump.org/linktypes/LINKTYPE_NFLOG.html):
 *   family(8) | version(8) | resource id(16, BE) | TLVs: length(16) | type(16) | value,
 *   padded to 4 bytes; length counts the 4-byte TLV header. NFULA_PAYLOAD (9) is the packet. */
static int dec_nflog(struct cur *c, struct dec_pkt *o)
{
    uint8_t family = cur_u8(c);
    cur_skip(c, 3);
    if (c->err)
        return DEC_TRUNC;
    for (int n = 0; n < MAX_NFLOG_TLV && cur_left(c) > 0; n++) {
        uint16_t len = cur_u16host(c);
        uint16_t type = cur_u16host(c);
        if (c->err)
            return DEC_TRUNC;
        if (len < 4)
            return DEC_BAD_L2;
        size_t vlen = (size_t)len - 4;
        if (type == 9) {
            /* a snaplen cut inside the payload TLV is still worth decoding */
            size_t take = vlen < cur_left(c) ? vlen : cur_left(c);
            struct cur p = cur_sub(c, take);
            if (family == 2)
                return dec_ip4(&p, o);
            if (family == 10)
                return dec_ip6(&p, o);
            return dec_ip_any(&p, o, DEC_NOT_IP);
        }
        size_t pad = (4 - (len & 3)) & 3;
        cur_skip(c, vlen);
        if (c->err)
            return DEC_TRUNC;
        cur_skip(c, pad < cur_left(c) ? pad : cur_left(c));
    }
    return DEC_NOT_IP;
}

/* BSD loopback (DLT_NULL, host order; DLT_LOOP, network order): a 4-byte address family.
 * Files travel between hosts, so either order is accepted, as tcpdump does: a value with
 * its upper 16 bits set was written in the other order. AF_INET is 2 everywhere; AF_INET6
 * is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS) or 10 (Linux). */
static int dec_null(struct cur *c, struct dec_pkt *o)
{
    uint32_t af = cur_u32be(c);
    if (c->err)
        return DEC_TRUNC;
    if (af & 0xffff0000u)
        af = __builtin_bswap32(af);
    switch (af) {
    case 2:
        return dec_ip4(c, o);
    case 10:
    case 24:
    case 28:
    case 30:
        return dec_ip6(c, o);
    default:
        return DEC_NOT_IP;
    }
}

int dec_packet(int dlt, const uint8_t *data, uint32_t caplen, struct dec_pkt *out)
{
    memset(out, 0, sizeof(*out));
    struct cur c = cur_init(data, data ? caplen : 0);
    uint16_t type;
    switch (dlt) {
    case TW_DLT_EN10MB:
        return dec_eth(&c, out);
    case TW_DLT_LINUX_SLL:
        /* SLL: packet type(16) | ARPHRD type(16) | addr len(16) | addr(64) | protocol(16) */
        cur_skip(&c, 14);
        type = cur_u16be(&c);
        if (c.err)
            return DEC_TRUNC;
        return dec_ether_type(&c, type, out);
    case TW_DLT_SLL2:
        /* SLL2: protocol(16) | reserved(16) | ifindex(32) | ARPHRD(16) | pkt type(8) |
         * addr len(8) | addr(64) */
        type = cur_u16be(&c);
        cur_skip(&c, 18);
        if (c.err)
            return DEC_TRUNC;
        return dec_ether_type(&c, type, out);
    case TW_DLT_RAW:
    case TW_DLT_RAW14:
    case TW_DLT_RAW101:
        return dec_ip_any(&c, out, DEC_BAD_L2);
    case TW_DLT_IPV4:
        return dec_ip4(&c, out);
    case TW_DLT_IPV6:
        return dec_ip6(&c, out);
    case TW_DLT_NULL:
    case TW_DLT_LOOP:
        return dec_null(&c, out);
    case TW_DLT_NFLOG:
        return dec_nflog(&c, out);
    default:
        return DEC_UNSUP_LINK;
    }
}

int dec_transport(uint8_t proto, const uint8_t *l4, uint32_t len, uint32_t wire_len,
                  struct dec_pkt *out)
{
    struct cur c = cur_init(l4, l4 ? len : 0);
    if (wire_len < len)
        wire_len = len;
    out->sport = out->dport = 0;
    out->payload = NULL;
    out->payload_len = out->payload_wire_len = 0;
    return dec_ip_proto(&c, proto, wire_len, out);
}
