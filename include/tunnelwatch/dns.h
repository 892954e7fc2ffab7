/* dns.h - DNS message parser (RFC 1035 section 4, RFC 3596 AAAA).
 *
 * dns_parse() reads one DNS message (UDP payload, or a TCP message without its 2-byte
 * length prefix) into a caller-owned struct dns_msg. Names are decoded to dotted text in
 * the struct itself (no allocation). Compression pointers may point backwards or forwards
 * (as tshark and resolvers accept them); pointer hops are capped per name and per message
 * and names at 255 wire bytes, so a pointer loop ends quickly and is refused. Questions
 * beyond the struct's capacity are counted in q_trunc, not stored.
 *
 * dns_plausible() tells DNS from other payloads by structure alone, for flows on ports
 * other than 53; dns_answer_chain() follows a CNAME chain in the answers.
 */
#ifndef TW_DNS_H
#define TW_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define DNS_MAX_Q  8  /* questions kept per message */
#define DNS_MAX_AN 32 /* answer records kept per message (A, AAAA, CNAME only) */
/* dns_plausible() limits: questions per message, records in all other sections */
#define DNS_PLAUSIBLE_QD_MAX 4
#define DNS_PLAUSIBLE_RR_MAX 256
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

/* An answer record of class IN: its owner name, and the address (A / AAAA) or the target
 * (CNAME). Other types are skipped, not stored. */
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
 * malformed (bad label type, pointer past the message, name > 255 bytes), TW_ELIMIT past
 * a pointer-hop cap (a looping pointer ends there). On any return, q[0..n_q) are the questions that
 * parsed completely before the error (tshark also shows those of a cut UDP message). Name text is
 * tshark 4.0's rendering of dns.qry.name (see dns.c); the root is "" (tshark prints "<Root>"),
 * which callers reporting names skip. */
int dns_parse(const uint8_t *msg, size_t len, struct dns_msg *out) TW_WUR;

/* Whether msg[0..len) is a DNS message by structure (RFC 1035 4.1): standard QUERY opcode,
 * Z zero, 1..DNS_PLAUSIBLE_QD_MAX questions with non-empty names of printable ASCII and
 * plausible QTYPE/QCLASS; a query has no answer or authority records, at most 2 additional
 * ones, no AA/TC/RA/RCODE; every record of every section parses and the last one ends
 * exactly at len. *is_query (may be NULL) is set when it returns true. For flows on ports
 * other than 53 that no other parser claimed: a payload it refuses is not read as DNS. */
bool dns_plausible(const uint8_t *msg, size_t len, bool *is_query) TW_WUR;

/* The CNAME chain from the first question's name to answer record ai: fills chain with
 * indexes into m->an (the CNAME records in order, then ai) and returns their count, or 0
 * when record ai is not reached from the question name (or ai >= n_an). Names compare
 * without regard to ASCII case. At most n_an steps. */
int dns_answer_chain(const struct dns_msg *m, uint16_t ai, uint16_t chain[DNS_MAX_AN]) TW_WUR;

#endif /* TW_DNS_H */
