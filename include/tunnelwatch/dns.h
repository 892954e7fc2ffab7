/* dns.h - DNS message parser (RFC 1035 section 4, RFC 3596 AAAA).
 *
 * dns_parse() reads one DNS message (UDP payload, or a TCP message without its 2-byte
 * length prefix) into a caller-owned struct dns_msg. Names are decoded to dotted text in
 * the struct itself (no allocation). Compression pointers must point strictly backwards
 * (a loop is impossible by construction), names are capped at 255 wire bytes and labels
 * and pointer hops are capped. Questions and answers beyond the struct's capacity are
 * counted in *_trunc, not stored.
 */
#ifndef TW_DNS_H
#define TW_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define DNS_MAX_Q  8  /* questions kept per message */
#define DNS_MAX_AN 32 /* answer records kept per message (A, AAAA, CNAME only) */
/* Text form of a name: up to 255 wire bytes; a non-printable byte may render as \DDD (4
 * bytes), so 4 * 255 + NUL. */
#define DNS_NAME_TEXT 1024

#define DNS_T_A     1
#define DNS_T_CNAME 5
#define DNS_T_AAAA  28

struct dns_q {
    char name[DNS_NAME_TEXT]; /* dotted, no trailing dot, "" for the root */
    uint16_t qtype, qclass;
};

struct dns_rr {
    char name[DNS_NAME_TEXT];
    uint16_t type;
    uint32_t ttl;
    struct tw_addr addr;        /* A / AAAA */
    char target[DNS_NAME_TEXT]; /* CNAME */
};

struct dns_msg {
    uint16_t id, flags;
    uint8_t qr, opcode, rcode;
    uint16_t qdcount, ancount;
    uint16_t n_q, n_an; /* stored */
    uint16_t q_trunc;   /* questions present but not stored */
    struct dns_q q[DNS_MAX_Q];
    struct dns_rr an[DNS_MAX_AN];
};

/* Parses msg[0..len). Returns TW_OK when the header and every question parsed (answers
 * are best effort: a malformed answer section keeps the questions and the answers before
 * it), TW_ETRUNC when the message is cut short before the questions end, TW_EBAD when
 * malformed (bad label type, forward/self/looping pointer, name > 255 bytes), TW_ELIMIT
 * past the pointer-hop cap. On any return, q[0..n_q) are the questions that parsed
 * completely before the error (tshark also shows those of a cut UDP message).
 * Name text is tshark 4.0's rendering of dns.qry.name (see dns.c); the root is "" (tshark
 * prints "<Root>"), which callers reporting names skip. */
int dns_parse(const uint8_t *msg, size_t len, struct dns_msg *out) TW_WUR;

#endif /* TW_DNS_H */
