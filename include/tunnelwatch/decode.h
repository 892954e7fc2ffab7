/* decode.h - link, network and transport decoding of one captured frame.
 *
 * dec_packet() walks L2..L4 (Ethernet, 802.1Q/QinQ, MPLS, PPP/PPPoE, Cisco HDLC, IEEE 802.11
 * data frames (bare, radiotap, PPI, Prism, AVS), SLL/SLL2, IPNET, raw, null/loop; GRE with
 * ERSPAN II/III and PPTP's PPP; UDP tunnels VXLAN, Geneve, MPLS-in-UDP, GTP-U, GRE-in-UDP,
 * AYIYA, Teredo, CAPWAP data; IPv4 with options, IPv6 with extension headers; TCP/UDP)
 * and fills a struct dec_pkt whose pointers are views into the frame: valid until the
 * pcap callback returns. Nothing is allocated. When tunnels are stacked, the innermost
 * IP header and its transport win. Every outcome other than DEC_OK is a counted reason.
 */
#ifndef TW_DECODE_H
#define TW_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

/* libpcap DLT values we accept (numbers are stable across platforms except RAW). */
#define TW_DLT_NULL       0
#define TW_DLT_EN10MB     1
#define TW_DLT_PPP        9
#define TW_DLT_RAW        12 /* OpenBSD-style value some writers use */
#define TW_DLT_RAW14      14
#define TW_DLT_PPP_HDLC   50 /* DLT_PPP_SERIAL: PPP in HDLC-like framing (or Cisco HDLC) */
#define TW_DLT_PPP_ETHER  51 /* PPPoE session header without the Ethernet header */
#define TW_DLT_C_HDLC     104
#define TW_DLT_IEEE802_11 105
#define TW_DLT_LOOP       108
#define TW_DLT_LINUX_SLL  113
#define TW_DLT_PRISM      119 /* Prism (or AVS) header + 802.11 */
#define TW_DLT_RADIOTAP   127 /* radiotap header + 802.11 */
#define TW_DLT_AVS        163 /* AVS header + 802.11 */
#define TW_DLT_PPI        192 /* PPI header + 802.11 or Ethernet */
#define TW_DLT_RAW101     101 /* LINKTYPE_RAW */
#define TW_DLT_IPNET      226 /* Solaris ipnet */
#define TW_DLT_IPV4       228
#define TW_DLT_IPV6       229
#define TW_DLT_NFLOG      239 /* Linux NFLOG: TLVs, the packet is the NFULA_PAYLOAD TLV */
#define TW_DLT_SLL2       276

#define DEC_MAX_DEPTH 8 /* encapsulation layers before we give up (DEC_DEPTH) */

enum dec_reason {
    DEC_OK = 0,
    DEC_FRAG,       /* an IP fragment: l3 view and frag fields are set, transport is not */
    DEC_NOT_IP,     /* ARP, LLDP, STP, 802.11 management/protected frames...: not an error */
    DEC_TRUNC,      /* frame shorter than a header says (snaplen cut or bad length) */
    DEC_BAD_L2,     /* malformed link header */
    DEC_BAD_IP4,    /* IPv4 version/IHL/total length inconsistent */
    DEC_BAD_IP6,    /* IPv6 header or extension chain malformed */
    DEC_BAD_TCP,    /* TCP data offset < 5 or past the segment */
    DEC_BAD_UDP,    /* UDP length inconsistent */
    DEC_BAD_TUNNEL, /* GRE/ERSPAN/VXLAN/MPLS/AYIYA/CAPWAP... header malformed */
    DEC_DEPTH,      /* more nested encapsulations than DEC_MAX_DEPTH */
    DEC_OTHER_L4,   /* ICMP, SCTP, ...: counted, not parsed */
    DEC_UNSUP_LINK, /* link type we do not decode */
    DEC__COUNT
};

const char *dec_reason_name(int reason);

struct dec_pkt {
    struct tw_addr src, dst; /* innermost IP addresses */
    uint16_t sport, dport;   /* 0 unless TCP/UDP */
    uint8_t proto;           /* IP protocol of the innermost transport (6, 17, ...) */
    uint8_t tcp_flags;       /* TH_* bits */
    uint16_t vlan;           /* innermost 802.1Q VLAN id, 0 if none (keys flows) */
    uint32_t seq, ack;       /* TCP only */
    uint32_t tcp_win;
    const uint8_t *payload; /* transport payload actually captured */
    uint32_t payload_len;
    uint32_t payload_wire_len; /* payload length the IP/UDP header announces (>= payload_len
                                * when snaplen cut the frame) */
    uint32_t ip_len;           /* IP total length on the wire (header + payload) */
    /* Fragment fields, valid when dec_packet returned DEC_FRAG. */
    uint32_t frag_id;
    uint32_t frag_off; /* byte offset of this fragment */
    bool frag_more;
    const uint8_t *frag_data; /* fragment payload (captured bytes) */
    uint32_t frag_len;
    uint32_t frag_wire_len; /* fragment payload length the IP header announces (>= frag_len) */
    uint8_t tunnels;        /* encapsulation layers crossed (GRE, VXLAN, IP-in-IP...) */
    const uint8_t *l3;      /* innermost IP header (captured bytes), for nDPI */
    uint32_t l3_len;        /* captured bytes from l3 on, at most ip_len */
};

#define TW_TH_FIN 0x01
#define TW_TH_SYN 0x02
#define TW_TH_RST 0x04
#define TW_TH_PSH 0x08
#define TW_TH_ACK 0x10

/* True when dec_packet() can decode frames of this link type. */
bool dec_linktype_supported(int dlt);

/* Decodes one frame. caplen is the number of bytes in data. Returns a dec_reason. */
int dec_packet(int dlt, const uint8_t *data, uint32_t caplen, struct dec_pkt *out);
/* The same without the one-pass path for plain Ethernet/IPv4/IPv6/TCP/UDP frames: the general walk
 * alone, which dec_packet must equal on every input (the decode fuzzer compares them). */
int dec_packet_general(int dlt, const uint8_t *data, uint32_t caplen, struct dec_pkt *out);

/* Decodes an IP payload whose protocol is proto (normally 6 or 17) over a reassembled
 * datagram: fills the transport fields of out. Tunnel protocols (4, 41, 47, UDP 4789, 3544...)
 * are followed as in dec_packet(), so an inner IP header then overwrites the addresses;
 * otherwise they are left as they are. len is what is captured, wire_len what the IP header
 * announced (len when reassembled). Returns a dec_reason. */
int dec_transport(uint8_t proto, const uint8_t *l4, uint32_t len, uint32_t wire_len,
                  struct dec_pkt *out);

#endif /* TW_DECODE_H */
