/* decode.c - L2..L4 decoding of one captured frame into a struct dec_pkt.
 *
 * Design: one recursive-descent walk over a single byte cursor (cursor.h); every header is
 * read through it, so a false length can never reach past the captured bytes. Each network
 * layer narrows the cursor to the length its own header announces (IPv4 total length, IPv6
 * payload length, UDP length), which drops Ethernet padding and FCS trailers and lets us
 * tell a snaplen cut (payload_len < payload_wire_len) from a lie (DEC_BAD_*). Recursion only
 * happens through enter(), which counts encapsulation layers in out->tunnels and stops at
 * DEC_MAX_DEPTH, so hostile nesting (IP-in-IP-in-GRE-in-...) costs bounded stack and time.
 * VLAN tags, MPLS labels, IPv6 extension headers, NFLOG TLVs, radiotap presence words and PPI
 * fields are walked iteratively, each loop with its own cap. Link layers that wrap another link
 * layer (PPI around 802.11 or Ethernet, CAPWAP around 802.11) call a fixed decoder, never
 * dec_packet() again, so they cannot nest. UDP tunnels whose port can also be a client's
 * source port (GRE-in-UDP, AYIYA, Teredo, CAPWAP) are taken only when the tunnel port is the
 * lower of the two, as Wireshark tries the lower port first: a DNS query from port 5072 to 53
 * stays DNS. Teredo is taken only when an IPv6 packet fills the datagram exactly. Innermost IP
 * header and transport win. Checksums are not validated: a passive sensor sees offloaded checksums
 * on the capture host and would drop good traffic.
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
#define ETH_P_PPP     0x880b /* PPTP enhanced GRE (RFC 2637) */

#define PPP_IPV4    0x0021
#define PPP_IPV6    0x0057
#define PPP_MPLS_UC 0x0281
#define PPP_MPLS_MC 0x0283

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
#define UDP_PORT_TEREDO   3544 /* RFC 4380 */
#define UDP_PORT_GRE      4754 /* RFC 8086 GRE-in-UDP */
#define UDP_PORT_AYIYA    5072 /* draft-massar-v6ops-ayiya */
#define UDP_PORT_CAPWAP_D 5247 /* RFC 5415 data channel */

#define MAX_VLAN_TAGS  8  /* QinQ rarely stacks more than 2; 8 leaves room for odd labs */
#define MAX_MPLS_LABEL 16 /* real label stacks are a handful deep */
#define MAX_IP6_EXT    8  /* RFC 8200 sec. 4.1: each extension header at most once, ~8 kinds */
#define MAX_NFLOG_TLV  64
#define MAX_RT_PRESENT 8  /* radiotap presence words: 3 are seen with vendor namespaces */
#define MAX_PPI_FIELD  32 /* PPI field headers; a handful in real files */

static int dec_ether_type(struct cur *c, uint16_t type, struct dec_pkt *o);
static int dec_eth(struct cur *c, struct dec_pkt *o);
static int dec_ip4(struct cur *c, struct dec_pkt *o);
static int dec_ip6(struct cur *c, struct dec_pkt *o);
static int dec_ip_proto(struct cur *c, uint8_t proto, uint32_t wire, struct dec_pkt *o);
static int dec_mpls(struct cur *c, struct dec_pkt *o);

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
    case TW_DLT_PPP:
    case TW_DLT_PPP_HDLC:
    case TW_DLT_PPP_ETHER:
    case TW_DLT_C_HDLC:
    case TW_DLT_IEEE802_11:
    case TW_DLT_PRISM:
    case TW_DLT_RADIOTAP:
    case TW_DLT_AVS:
    case TW_DLT_PPI:
    case TW_DLT_IPNET:
        return true;
    default:
        return false;
    }
}

/* One more encapsulation layer. Every recursive path goes through here, which is what
 * bounds the recursion depth on hostile input. An outer VLAN tag describes the path the
 * tunnel took, not the inner network: it is forgotten, so one inner flow mirrored on several
 * VLANs (a CAPWAP or ERSPAN feed seen on each trunk) stays one flow; inner tags set it anew. */
static int enter(struct dec_pkt *o)
{
    if (o->tunnels >= DEC_MAX_DEPTH)
        return DEC_DEPTH;
    o->tunnels++;
    o->vlan = 0;
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

/* RFC 1661 sec. 2: PPP protocol field, then the datagram. The field is two octets, or one
 * when Protocol-Field-Compression was negotiated (sec. 6.5): a valid number has an even high
 * octet and an odd low octet, so an odd first octet is a compressed field. An even low octet
 * is no protocol at all. */
static int dec_ppp_proto(struct cur *c, struct dec_pkt *o)
{
    uint16_t proto = cur_u8(c);
    if (!(proto & 1))
        proto = (uint16_t)(proto << 8 | cur_u8(c));
    if (c->err)
        return DEC_TRUNC;
    if (!(proto & 1))
        return DEC_BAD_L2;
    switch (proto) {
    case PPP_IPV4:
        return dec_ip4(c, o);
    case PPP_IPV6:
        return dec_ip6(c, o);
    case PPP_MPLS_UC:
    case PPP_MPLS_MC:
        return dec_mpls(c, o);
    default:
        return DEC_NOT_IP; /* LCP, IPCP, CCP, VJ-compressed TCP, multilink fragments... */
    }
}

/* RFC 1662 sec. 3.1: PPP in HDLC-like framing: address 0xff | control 0x03 | protocol. The
 * two bytes are absent when Address-and-Control-Field-Compression was negotiated (RFC 1661
 * sec. 6.6), and a protocol field never starts with 0xff, so their presence is plain. */
static int dec_ppp(struct cur *c, struct dec_pkt *o)
{
    if (!cur_need(c, 2))
        return DEC_TRUNC;
    if (c->p[0] == 0xff && c->p[1] == 0x03)
        cur_skip(c, 2);
    return dec_ppp_proto(c, o);
}

/* Cisco HDLC (LINKTYPE_C_HDLC, https://www.tcpdump.org/linktypes/LINKTYPE_C_HDLC.html):
 *   address(8: 0x0f unicast, 0x8f broadcast) | control(8) | protocol(16, an EtherType)
 * SLARP (0x8035) and CDP (0x2000) are keepalives and neighbour announcements: not IP. */
static int dec_chdlc(struct cur *c, struct dec_pkt *o)
{
    uint8_t addr = cur_u8(c);
    cur_skip(c, 1);
    uint16_t type = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (addr != 0x0f && addr != 0x8f)
        return DEC_BAD_L2;
    return dec_ether_type(c, type, o);
}

/* DLT_PPP and DLT_PPP_SERIAL: PPP with or without address/control; libpcap documents that
 * these link types can also hold Cisco HDLC frames, told apart by their address byte. */
static int dec_ppp_link(struct cur *c, struct dec_pkt *o)
{
    if (!cur_need(c, 2))
        return DEC_TRUNC;
    if ((c->p[0] == 0x0f || c->p[0] == 0x8f) && c->p[1] == 0x00)
        return dec_chdlc(c, o);
    return dec_ppp(c, o);
}

/* RFC 2516 sec. 4: PPPoE session header, then a PPP protocol number (RFC 1661).
 *   ver(4)|type(4) | code(8) | session id(16) | length(16) | PPP protocol(16) */
static int dec_pppoe(struct cur *c, struct dec_pkt *o)
{
    uint8_t vt = cur_u8(c);
    cur_skip(c, 3);
    uint16_t len = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (vt != 0x11 || len < 2)
        return DEC_BAD_L2;
    return dec_ppp_proto(c, o);
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

/* IEEE 802.2 LLC: only SNAP (RFC 1042: DSAP 0xaa | SSAP 0xaa | control 0x03 | OUI(24) |
 * EtherType(16)) carries IP; everything else (STP, NetBIOS...) is not IP. */
static int dec_llc(struct cur *c, struct dec_pkt *o)
{
    const uint8_t *llc = cur_bytes(c, 3);
    if (!llc)
        return DEC_TRUNC;
    if (llc[0] != 0xaa || llc[1] != 0xaa || llc[2] != 0x03)
        return DEC_NOT_IP;
    cur_skip(c, 3);
    uint16_t type = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    return dec_ether_type(c, type, o);
}

/* IEEE 802.3: dst(6) | src(6) | EtherType or length(2). A length (<= 1500) means 802.2 LLC. */
static int dec_eth(struct cur *c, struct dec_pkt *o)
{
    cur_skip(c, 12);
    uint16_t type = cur_u16be(c);
    if (c->err)
        return DEC_TRUNC;
    if (type <= 1500)
        return dec_llc(c, o);
    if (type < 0x0600)
        return DEC_BAD_L2; /* 1501..1535 is neither a length nor an EtherType */
    return dec_ether_type(c, type, o);
}

/* Little-endian reads: radiotap and PPI headers are little-endian by definition. */
static uint16_t cur_u16le(struct cur *c)
{
    const uint8_t *b = cur_bytes(c, 2);
    return b ? (uint16_t)(b[0] | (unsigned)b[1] << 8) : 0;
}

static uint32_t cur_u32le(struct cur *c)
{
    const uint8_t *b = cur_bytes(c, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
             : 0;
}

/* Narrows c to all but its last 4 bytes (a frame check sequence). */
static int strip_fcs(struct cur *c)
{
    if (cur_left(c) < 4)
        return DEC_TRUNC;
    c->end -= 4;
    return DEC_OK;
}

/* IEEE 802.11-2020 sec. 9.2.4 / 9.3.2: MAC header of a data frame.
 *   frame control(16: version(2) type(2) subtype(4) | ToDS FromDS MoreFrag Retry PwrMgt
 *   MoreData Protected +HTC) | duration(16) | addr1 | addr2 | addr3 | sequence control(16) |
 *   [addr4 when ToDS and FromDS] | [QoS control(16) in QoS subtypes (bit 3 of subtype)] |
 *   [HT control(32) when QoS and +HTC] | body: LLC/SNAP, or A-MSDU subframes when QoS control
 *   bit 7 says so (DA(6) | SA(6) | length(16) | LLC... padded to 4; the first is decoded).
 * Management and control frames, subtypes without a body (null data) and protected frames
 * (the body is encrypted) are not IP. pad: radiotap's "data pad" flag, the header is padded
 * to a multiple of 4 bytes. may_swap: CAPWAP, where Cisco access points send the frame
 * control bytes swapped (Wireshark's default there): take the order whose version is 0 and
 * whose type is data. Fragments are not reassembled (rare on real networks): a first fragment
 * decodes as a cut packet, later ones fail the LLC check. */
static int dec_wlan(struct cur *c, bool pad, bool may_swap, struct dec_pkt *o)
{
    const uint8_t *fc = cur_bytes(c, 2);
    if (!fc)
        return DEC_TRUNC;
    uint8_t f0 = fc[0], f1 = fc[1];
    if (may_swap && (f0 & 0x0f) != 0x08 && (f1 & 0x0f) == 0x08) {
        f0 = fc[1];
        f1 = fc[0];
    }
    if (f0 & 3)
        return DEC_BAD_L2; /* only protocol version 0 exists */
    if (((f0 >> 2) & 3) != 2)
        return DEC_NOT_IP; /* management, control, extension */
    unsigned sub = f0 >> 4;
    bool qos = (sub & 8) != 0;
    size_t hl = 24 + ((f1 & 3) == 3 ? 6 : 0);
    cur_skip(c, hl - 2);
    uint8_t qc = 0;
    if (qos) {
        size_t htc = (f1 & 0x80) ? 4 : 0;
        qc = cur_u8(c);
        cur_skip(c, 1 + htc);
        hl += 2 + htc;
    }
    if (c->err)
        return DEC_TRUNC;
    if (sub & 4)
        return DEC_NOT_IP; /* null data, CF-Ack/Poll without data: no body */
    if (f1 & 0x40)
        return DEC_NOT_IP; /* protected: WEP/TKIP/CCMP payload */
    if (pad) {
        cur_skip(c, ((hl + 3) & ~(size_t)3) - hl);
        if (c->err)
            return DEC_TRUNC;
    }
    if (qos && (qc & 0x80)) {
        cur_skip(c, 12);
        uint16_t len = cur_u16be(c);
        if (c->err)
            return DEC_TRUNC;
        struct cur m = cur_sub(c, len < cur_left(c) ? len : cur_left(c));
        return dec_llc(&m, o);
    }
    return dec_llc(c, o);
}

/* Radiotap (https://www.radiotap.org): version(8) = 0 | pad(8) | length(16, whole header) |
 * presence words(32 each, another follows while bit 31 is set) | fields, each aligned to its
 * own size from the start of the header, in bit order. All little-endian. Only field 0 (TSFT,
 * u64) and field 1 (flags, u8) are needed: flags 0x10 means a 4-byte FCS ends the frame, 0x20
 * that the 802.11 header is padded to 4 bytes. */
static int dec_radiotap(struct cur *c, struct dec_pkt *o)
{
    const uint8_t *start = c->p;
    uint8_t ver = cur_u8(c);
    cur_skip(c, 1);
    uint16_t len = cur_u16le(c);
    if (c->err)
        return DEC_TRUNC;
    if (ver != 0 || len < 8)
        return DEC_BAD_L2;
    struct cur h = cur_sub(c, (size_t)len - 4);
    if (c->err)
        return DEC_TRUNC;
    uint32_t present = cur_u32le(&h);
    uint32_t word = present;
    for (int n = 1; word & 0x80000000u; n++) {
        /* a header of nothing but extension bits would otherwise run to its end */
        if (n >= MAX_RT_PRESENT)
            return DEC_BAD_L2;
        word = cur_u32le(&h);
    }
    uint8_t flags = 0;
    if (present & 1) {
        size_t off = (size_t)(h.p - start);
        cur_skip(&h, ((off + 7) & ~(size_t)7) - off + 8);
    }
    if (present & 2)
        flags = cur_u8(&h);
    if (h.err)
        return DEC_BAD_L2; /* the fields the header announces do not fit its length */
    if ((flags & 0x10) && strip_fcs(c) != DEC_OK)
        return DEC_TRUNC;
    return dec_wlan(c, (flags & 0x20) != 0, false, o);
}

/* PPI (Per-Packet Information header, CACE Technologies spec 1.0.10), little-endian:
 *   version(8) = 0 | flags(8, bit 0: fields 32-bit aligned) | length(16, whole header) |
 *   DLT(32) | fields: type(16) | length(16) | data
 * Field 2 (802.11-Common): TSF(64) | flags(16, bit 0: the frame ends in an FCS) | ...
 * The frame after the header is 802.11 or Ethernet; any other DLT is not decoded, and PPI
 * inside PPI is refused so that the link layer cannot recurse. */
static int dec_ppi(struct cur *c, struct dec_pkt *o)
{
    uint8_t ver = cur_u8(c);
    uint8_t pflags = cur_u8(c);
    uint16_t len = cur_u16le(c);
    uint32_t dlt = cur_u32le(c);
    if (c->err)
        return DEC_TRUNC;
    if (ver != 0 || len < 8)
        return DEC_BAD_L2;
    struct cur f = cur_sub(c, (size_t)len - 8);
    if (c->err)
        return DEC_TRUNC;
    bool fcs = false;
    for (int n = 0; cur_left(&f) > 0; n++) {
        if (n >= MAX_PPI_FIELD)
            return DEC_BAD_L2;
        uint16_t type = cur_u16le(&f);
        uint16_t flen = cur_u16le(&f);
        const uint8_t *d = cur_bytes(&f, flen);
        if (f.err)
            return DEC_BAD_L2;
        if (type == 2 && flen >= 10)
            fcs = (d[8] & 1) != 0;
        if (pflags & 1) {
            size_t padn = (size_t)(4 - (flen & 3)) & 3;
            cur_skip(&f, padn < cur_left(&f) ? padn : cur_left(&f));
        }
    }
    if (fcs && strip_fcs(c) != DEC_OK)
        return DEC_TRUNC;
    if (dlt == TW_DLT_IEEE802_11)
        return dec_wlan(c, false, false, o);
    if (dlt == TW_DLT_EN10MB)
        return dec_eth(c, o);
    return DEC_UNSUP_LINK;
}

/* AVS capture header (LINKTYPE_IEEE802_11_AVS), big-endian: version(32, 0x8021100n) |
 * length(32, whole header) | ... radio fields, then the 802.11 frame. */
static int dec_avs(struct cur *c, struct dec_pkt *o)
{
    uint32_t ver = cur_u32be(c);
    uint32_t len = cur_u32be(c);
    if (c->err)
        return DEC_TRUNC;
    if ((ver & 0xfffffff0u) != 0x80211000u || len < 8)
        return DEC_BAD_L2;
    cur_skip(c, len - 8);
    if (c->err)
        return DEC_TRUNC;
    return dec_wlan(c, false, false, o);
}

/* Prism capture header (LINKTYPE_IEEE802_11_PRISM): msgcode(32) | msglen(32, whole header,
 * 144 from Linux drivers) | device name(16) | DID items, in the capturing host's byte order.
 * Some drivers write an AVS header under this link type; its magic tells it apart (as
 * Wireshark and tcpdump do). */
static int dec_prism(struct cur *c, struct dec_pkt *o)
{
    if (!cur_need(c, 8))
        return DEC_TRUNC;
    uint32_t magic =
        (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    if ((magic & 0xfffffff0u) == 0x80211000u)
        return dec_avs(c, o);
    cur_skip(c, 4);
    uint32_t len = cur_u32le(c);
    if (len > 0xffff)
        len = __builtin_bswap32(len); /* written on a big-endian host */
    if (len < 8 || len > 0xffff)
        return DEC_BAD_L2;
    cur_skip(c, len - 8);
    if (c->err)
        return DEC_TRUNC;
    return dec_wlan(c, false, false, o);
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

static int dec_gre(struct cur *c, struct dec_pkt *o);

/* draft-massar-v6ops-ayiya-02 sec. 5 (AYIYA, "Anything In Anything"), UDP port 5072:
 *   IDLen(4: identity is 2^IDLen bytes) | IDType(4) | SigLen(4: signature is 4*SigLen bytes) |
 *   HshMeth(4) | AutMeth(4) | OpCode(4) | next header(8, an IP protocol) | epoch(32) |
 *   identity | signature | payload
 * Only OpCode 1 (forward) carries a packet; heartbeats, echo and MOTD are not IP. */
static int dec_ayiya(struct cur *c, struct dec_pkt *o)
{
    uint8_t id = cur_u8(c);
    uint8_t sig = cur_u8(c);
    uint8_t op = cur_u8(c);
    uint8_t nh = cur_u8(c);
    cur_skip(c, 4);
    cur_skip(c, ((size_t)1 << (id >> 4)) + (size_t)(sig >> 4) * 4);
    if (c->err)
        return DEC_TRUNC;
    if ((op & 0x0f) != 1)
        return DEC_NOT_IP;
    if (nh == IPP_IPIP)
        return dec_ip4(c, o);
    if (nh == IPP_IPV6)
        return dec_ip6(c, o);
    return DEC_NOT_IP; /* 59: no next header */
}

/* RFC 4380 sec. 5.1.1: Teredo, UDP port 3544: [authentication indicator: 0x0001 | ID-len(8) |
 * AU-len(8) | client id | authentication value | nonce(64) | confirmation(8)] | [origin
 * indication: 0x0000 | obfuscated port(16) | obfuscated IPv4 address(32)] | IPv6 packet.
 * The port also carries other UDP traffic, so the tunnel is taken only when a version-6
 * header whose payload length fills the rest of the datagram follows (wire: the datagram's
 * payload length); otherwise the UDP payload stays as it is and DEC_OK is returned. The
 * headers are read on a copy of c, which is only used once the packet is known to be IPv6. */
static int dec_teredo(struct cur *c, uint32_t wire, struct dec_pkt *o)
{
    struct cur t = *c;
    if (cur_left(&t) >= 2 && t.p[0] == 0 && t.p[1] == 1) {
        cur_skip(&t, 2);
        uint8_t idl = cur_u8(&t);
        uint8_t aul = cur_u8(&t);
        cur_skip(&t, (size_t)idl + aul + 9);
    }
    if (cur_left(&t) >= 2 && t.p[0] == 0 && t.p[1] == 0)
        cur_skip(&t, 8);
    if (!cur_need(&t, 40) || t.p[0] >> 4 != 6)
        return DEC_OK;
    size_t used = (size_t)(t.p - c->p);
    size_t plen = (size_t)t.p[4] << 8 | t.p[5];
    if (used + 40 + plen != wire)
        return DEC_OK;
    int rc = enter(o);
    return rc != DEC_OK ? rc : dec_ip6(&t, o);
}

/* RFC 5415 sec. 4.3: CAPWAP header (data channel, UDP port 5247), big-endian:
 *   preamble: version(4) = 0 | type(4: 0 clear, 1 DTLS-encrypted) | HLEN(5, the whole header
 *   in 4-byte words, radio MAC and wireless info included) | RID(5) | WBID(5) | T | F | L | W |
 *   M | K | flags(3) | fragment id(16) | fragment offset(13) | reserved(3)
 * T=1: a frame of the binding WBID (1 = IEEE 802.11 without FCS, RFC 5416 sec. 3); T=0: an
 * 802.3 frame. K: a keep-alive without frame. F: a fragment; only the one at offset 0 starts
 * with a frame header (decoded as a cut packet), the others are not IP. */
static int dec_capwap(struct cur *c, struct dec_pkt *o)
{
    uint32_t w = cur_u32be(c);
    uint16_t foff = (uint16_t)(cur_u32be(c) >> 3);
    if (c->err)
        return DEC_TRUNC;
    if (w >> 24 == 0x01)
        return DEC_NOT_IP; /* DTLS */
    if (w >> 24 != 0)
        return DEC_BAD_TUNNEL;
    size_t hlen = (size_t)((w >> 19) & 0x1f) * 4;
    if (hlen < 8)
        return DEC_BAD_TUNNEL;
    cur_skip(c, hlen - 8);
    if (c->err)
        return DEC_TRUNC;
    if ((w & 0x08) || ((w & 0x80) && foff != 0))
        return DEC_NOT_IP;
    if (!(w & 0x100))
        return dec_eth(c, o);
    if (((w >> 9) & 0x1f) == 1)
        return dec_wlan(c, false, true, o);
    return DEC_NOT_IP; /* other wireless bindings (EPCGlobal...) */
}

/* RFC 768: sport | dport | length | checksum. Length covers header and data; it may be less
 * than the IP payload (trailing bytes ignored) but never more. UDP tunnels are recognised by
 * their IANA destination port: VXLAN 4789, Geneve 6081, MPLS-in-UDP 6635 (RFC 7510), and
 * GTP-U 2152 when both ports are 2152 (as GTP-U peers send); GRE-in-UDP 4754, AYIYA 5072,
 * CAPWAP data 5247 and Teredo 3544 by the lower of the two ports (see the file comment). */
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
    int rc;
    switch (sport < dport ? sport : dport) {
    case UDP_PORT_GRE:
        return dec_gre(&p, o); /* counts its own layer */
    case UDP_PORT_AYIYA:
        rc = enter(o);
        return rc != DEC_OK ? rc : dec_ayiya(&p, o);
    case UDP_PORT_CAPWAP_D:
        rc = enter(o);
        return rc != DEC_OK ? rc : dec_capwap(&p, o);
    case UDP_PORT_TEREDO:
        return dec_teredo(&p, pwire, o);
    default:
        return DEC_OK;
    }
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

/* RFC 2637 sec. 4.1: PPTP's enhanced GRE (version 1), after flags and protocol type:
 *   C(1)=0|R(1)=0|K(1)=1|S(1)|s(1)=0|recur(3)=0|A(1)|flags(4)=0|ver(3)=1 | type 0x880b |
 *   payload length(16) | call id(16) | [sequence(32)] when S | [acknowledgment(32)] when A |
 *   a PPP frame (address/control and protocol field possibly compressed).
 * A packet with payload length 0 only acknowledges: not IP. */
static int dec_gre_pptp(struct cur *c, uint16_t flags, uint16_t type, struct dec_pkt *o)
{
    if (type != ETH_P_PPP || (flags & 0xef78) != 0x2000)
        return DEC_BAD_TUNNEL;
    uint16_t plen = cur_u16be(c);
    cur_skip(c, 2);
    if (flags & 0x1000)
        cur_skip(c, 4);
    if (flags & 0x0080)
        cur_skip(c, 4);
    if (c->err)
        return DEC_TRUNC;
    if (plen == 0)
        return DEC_NOT_IP;
    /* a payload length past the captured bytes is a snaplen cut; IP shows it */
    struct cur p = cur_sub(c, plen < cur_left(c) ? plen : cur_left(c));
    return dec_ppp(&p, o);
}

/* RFC 2784 sec. 2.1 with RFC 2890 sec. 2: GRE header.
 *   C(1)|R(1)|K(1)|S(1)|reserved0(9)|ver(3) | protocol type(16) |
 *   [checksum(16) | reserved1(16)] when C | [key(32)] when K | [sequence(32)] when S
 * Version 1 is PPTP's enhanced GRE (PPP inside). The R bit (RFC 1701 source routing) must be
 * zero per RFC 2784. ERSPAN type I is 0x88be without S and has no header. */
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
        return dec_gre_pptp(c, flags, type, o);
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

/* Solaris ipnet (LINKTYPE_IPNET): version(8) | family(8: 2 IPv4, 26 IPv6) | htype(16) |
 * packet length(32) | ifindex(32) | group ifindex(32) | source zone(32) | dest zone(32). */
static int dec_ipnet(struct cur *c, struct dec_pkt *o)
{
    cur_skip(c, 1);
    uint8_t family = cur_u8(c);
    cur_skip(c, 22);
    if (c->err)
        return DEC_TRUNC;
    if (family == 2)
        return dec_ip4(c, o);
    if (family == 26)
        return dec_ip6(c, o);
    return DEC_NOT_IP;
}

static uint16_t rd16(const uint8_t *b)
{
    return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t rd32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The most common frames in one pass: Ethernet, at most one 802.1Q tag, IPv4 without options
 * and not a fragment or IPv6 without extension headers (and a payload length), then TCP with
 * its whole header captured or UDP on a port that carries no tunnel. The checks and the fields
 * are the general walk's (dec_eth, dec_ether_type, dec_ip4, dec_ip6, dec_tcp, dec_udp) for
 * that shape, so the result is the same; any other frame, or anything the general walk would
 * refuse, returns -1 and is decoded by the general walk from its start
 * (tests/fuzz/fuzz_decode.c compares the two). */

/* TCP at l4, held bytes captured of wire. */
static inline int dec_fast_tcp(const uint8_t *tcp, uint32_t held, uint32_t wire, struct dec_pkt *o)
{
    if (held < 20)
        return -1;
    uint32_t hl = (uint32_t)(tcp[12] >> 4) * 4;
    if (hl < 20 || hl > held)
        return -1;
    o->proto = IPP_TCP;
    o->sport = rd16(tcp);
    o->dport = rd16(tcp + 2);
    o->seq = rd32(tcp + 4);
    o->ack = rd32(tcp + 8);
    o->tcp_flags = tcp[13];
    o->tcp_win = rd16(tcp + 14);
    o->payload = tcp + hl;
    o->payload_len = held - hl;
    o->payload_wire_len = wire - hl;
    return DEC_OK;
}

/* UDP at l4 whose ports carry no tunnel (those go to the general walk's decapsulation). */
static inline int dec_fast_udp(const uint8_t *udp, uint32_t held, uint32_t wire, struct dec_pkt *o)
{
    if (held < 8)
        return -1;
    uint16_t sport = rd16(udp), dport = rd16(udp + 2), low = sport < dport ? sport : dport;
    uint32_t ulen = rd16(udp + 4);
    if (ulen < 8 || ulen > wire || dport == UDP_PORT_VXLAN || dport == UDP_PORT_GENEVE ||
        dport == UDP_PORT_MPLS_UDP || (dport == UDP_PORT_GTPU && sport == UDP_PORT_GTPU) ||
        low == UDP_PORT_GRE || low == UDP_PORT_AYIYA || low == UDP_PORT_CAPWAP_D ||
        low == UDP_PORT_TEREDO)
        return -1;
    o->proto = IPP_UDP;
    o->sport = sport;
    o->dport = dport;
    o->payload = udp + 8;
    o->payload_len = min_u32(held - 8, ulen - 8);
    o->payload_wire_len = ulen - 8;
    return DEC_OK;
}

static inline int dec_fast_l4(uint8_t proto, const uint8_t *l4, uint32_t held, uint32_t wire,
                              struct dec_pkt *o)
{
    if (proto == IPP_TCP)
        return dec_fast_tcp(l4, held, wire, o);
    if (proto == IPP_UDP)
        return dec_fast_udp(l4, held, wire, o);
    return -1;
}

/* ip: the IP header at the end of an Ethernet header, avail bytes captured from it. */
static int dec_fast_ip(uint16_t type, const uint8_t *ip, uint32_t avail, struct dec_pkt *o)
{
    if (type == ETH_P_IPV4) {
        if (avail < 20 || ip[0] != 0x45 || (rd16(ip + 6) & 0x3fff))
            return -1;
        uint32_t tot = rd16(ip + 2);
        if (tot < 20 + 8)
            return -1; /* 0 (TSO) and short lengths: the general walk's cases */
        uint32_t wire = tot - 20, held = min_u32(avail - 20, wire);
        o->src.family = o->dst.family = 4;
        memcpy(o->src.a, ip + 12, 4);
        memcpy(o->dst.a, ip + 16, 4);
        o->ip_len = tot;
        o->l3 = ip;
        o->l3_len = 20 + held;
        return dec_fast_l4(ip[9], ip + 20, held, wire, o);
    }
    if (type != ETH_P_IPV6 || avail < 40 || ip[0] >> 4 != 6)
        return -1;
    uint32_t wire = rd16(ip + 4), held = min_u32(avail - 40, wire);
    if (wire == 0)
        return -1; /* a jumbogram or a TSO super-packet: the general walk's case */
    o->src.family = o->dst.family = 6;
    memcpy(o->src.a, ip + 8, 16);
    memcpy(o->dst.a, ip + 24, 16);
    o->ip_len = 40 + wire;
    o->l3 = ip;
    o->l3_len = 40 + held;
    return dec_fast_l4(ip[6], ip + 40, held, wire, o);
}

static int dec_fast(const uint8_t *d, uint32_t caplen, struct dec_pkt *o)
{
    uint32_t off = 14;
    if (caplen < 14)
        return -1;
    uint16_t type = rd16(d + 12);
    if (type == ETH_P_8021Q) {
        if (caplen < 18)
            return -1;
        o->vlan = rd16(d + 14) & 0x0fff;
        type = rd16(d + 16);
        off = 18;
    }
    return dec_fast_ip(type, d + off, caplen - off, o);
}

int dec_packet(int dlt, const uint8_t *data, uint32_t caplen, struct dec_pkt *out)
{
    if (dlt == TW_DLT_EN10MB && data) {
        memset(out, 0, sizeof(*out));
        if (dec_fast(data, caplen, out) == DEC_OK)
            return DEC_OK;
    }
    return dec_packet_general(dlt, data, caplen, out);
}

int dec_packet_general(int dlt, const uint8_t *data, uint32_t caplen, struct dec_pkt *out)
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
    case TW_DLT_PPP:
    case TW_DLT_PPP_HDLC:
        return dec_ppp_link(&c, out);
    case TW_DLT_PPP_ETHER:
        return dec_pppoe(&c, out);
    case TW_DLT_C_HDLC:
        return dec_chdlc(&c, out);
    case TW_DLT_IEEE802_11:
        return dec_wlan(&c, false, false, out);
    case TW_DLT_RADIOTAP:
        return dec_radiotap(&c, out);
    case TW_DLT_PPI:
        return dec_ppi(&c, out);
    case TW_DLT_PRISM:
        return dec_prism(&c, out);
    case TW_DLT_AVS:
        return dec_avs(&c, out);
    case TW_DLT_IPNET:
        return dec_ipnet(&c, out);
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
