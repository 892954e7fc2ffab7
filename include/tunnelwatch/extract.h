/* extract.h - per-flow name extraction: the parsers a flow's bytes go through.
 *
 * struct extractor is the shared part (the reassembly budget, the ClientHello buffer, error
 * counters, the callbacks); struct xflow is one flow's part, embedded in the engine's
 * per-flow state. For each packet, extract_packet() picks at most one parser per flow
 * direction: DNS on port 53 (UDP, or TCP with its length prefix), a QUIC Initial on other UDP
 * ports, a TLS ClientHello or HTTP requests on TCP, also after a proxy handshake (CONNECT,
 * SOCKS, PROXY protocol) or a STARTTLS upgrade (preamble.h). Parsers see the contiguous prefix
 * of a bounded reassembly buffer; once the name is out the buffer is freed, so a long flow
 * costs only its counters afterwards. Names come out as observations (on_name); whole DNS
 * messages go to on_dns, because what a DNS message means (queries, answers, resolvers)
 * is the engine's business.
 */
#ifndef TW_EXTRACT_H
#define TW_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/decode.h"
#include "tunnelwatch/flow.h"
#include "tunnelwatch/preamble.h"
#include "tunnelwatch/stream.h"
#include "tunnelwatch/tls.h"

/* NK_DNS_ANSWER (a flow to an address a flagged answer named) and NK_PROXY_TARGET (the target
 * of a CONNECT or SOCKS handshake, when no Host header carries the same name) are matched
 * against the rules but are not --names rows: tshark shows neither as a name. */
enum name_kind {
    NK_DNS_QUERY,
    NK_TLS_SNI,
    NK_QUIC_SNI,
    NK_HTTP_HOST,
    NK_DNS_ANSWER,
    NK_PROXY_TARGET,
    NK__COUNT,
    NK_FLOW = NK__COUNT /* a new flow matched by rules on flow facts alone: no name, not counted */
};

/* "dns_query", "tls_sni", "quic_sni", "http_host", "dns_answer", "proxy_target"; "flow" */
const char *name_kind_str(enum name_kind k);

struct dnsmap_entry;
struct http_req;

/* One observed name. Everything is borrowed for the duration of the callback: name points
 * into the packet, the reassembly buffer, the hello buffer or a DNS message; p is the packet
 * that completed it; f its flow (NULL never, but a DNS message may come without a flow). */
struct obs {
    enum name_kind kind;
    const uint8_t *name;
    size_t len;
    const struct dec_pkt *p;
    struct flow *f;
    const struct tls_hello *hello; /* TLS/QUIC: the parsed ClientHello (JA4 not computed) */
    const uint8_t *hello_msg;      /* its bytes, for JA4 once a rule hits */
    size_t hello_len;
    const struct dnsmap_entry *dns; /* NK_DNS_ANSWER: the answer that named the address */
    const struct http_req *http;    /* NK_HTTP_HOST of a parsed request: its fields, or NULL */
    uint16_t qtype;                 /* NK_DNS_QUERY: the question's type */
    uint16_t status; /* non-zero: not a new name but the response (this status) to the request
                      * in http, seen again when its response head arrives (want_responses);
                      * not counted, not a --names row */
};

struct extract_ops {
    void (*on_name)(void *ud, const struct obs *ob);
    /* A whole DNS message (UDP datagram or one length-prefixed TCP message) of flow f. */
    void (*on_dns)(void *ud, const struct dec_pkt *p, struct flow *f, const uint8_t *msg,
                   size_t len);
    void *ud;
    /* Asked at each parsed HTTP request (NULL: never): true when the rules want the response
     * status, so the request head is kept (a copy, up to HTTP_PEND_MAX per flow and
     * HTTP_PEND_BYTES in all) until its response comes and on_name sees it again with
     * obs.status set. */
    bool (*want_responses)(void *ud);
};

#define HTTP_PEND_MAX   8          /* requests of one flow awaiting their response */
#define HTTP_PEND_BYTES (8u << 20) /* request heads kept, over every flow */

struct extract_stats {
    uint64_t err_tls, err_quic, err_http;
    uint64_t reasm_limit;    /* reassembly caps hit */
    uint64_t http_pend_lost; /* requests whose response status is not read: a cap, an
                              * unparsable response, a response without a request */
};

struct extractor {
    struct extract_ops ops;
    struct reasm_pool pool; /* flow.reasm_total_mib: every buffer and QUIC state (stream.h);
                             * the engine sets pool.now_us before each packet */
    uint32_t reasm_bytes;   /* flow.reasm_bytes: per direction */
    uint8_t *hello_buf;     /* TLS_HELLO_MAX: the ClientHello joined from its records */
    size_t pend_bytes;      /* request heads kept for their responses (HTTP_PEND_BYTES) */
    struct extract_stats st;
};

enum xapp { XAPP_UNKNOWN = 0, XAPP_TLS, XAPP_HTTP, XAPP_DNS, XAPP_QUIC, XAPP_NONE };

struct quic_initial;
struct http_pend;

/* One flow's extraction state; zeroed when the flow starts. */
struct xflow {
    uint8_t app; /* enum xapp */
    bool done;   /* nothing more to extract */
    uint8_t quic_pkts;
    uint8_t hellos;    /* TLS ClientHellos read on this stream */
    bool quic_ok;      /* an Initial of this flow decrypted */
    bool seen_set;     /* seen_seq is valid */
    uint32_t seen_seq; /* HTTP: client bytes before this were parsed (retransmissions of them
                        * are not new requests) */
    struct stream st[2];
    union { /* a flow is UDP or TCP: one pointer serves both (no growth of every flow) */
        struct quic_initial *quic; /* UDP: the QUIC Initial state */
        struct http_pend *pend;    /* app XAPP_HTTP only: requests awaiting their responses
                                    * (want_responses) */
    };
    struct reasm_hold qh; /* the QUIC state's share of the pool */
    struct pre_state pre; /* what precedes the ClientHello or request (zero = start) */
};

/* TW_OK or TW_ENOMEM. reasm_total_mib bounds every reassembly buffer and QUIC state;
 * stall_ms and src_pct say what gives way under pressure (reasm_pool_init). */
int extract_init(struct extractor *x, const struct extract_ops *ops, uint32_t reasm_bytes,
                 uint64_t reasm_total_mib, uint32_t stall_ms, uint32_t src_pct);
void extract_fini(struct extractor *x);
/* A packet of flow f in direction dir (0 client -> server). */
void extract_packet(struct extractor *x, struct xflow *xf, const struct dec_pkt *p, struct flow *f,
                    int dir);
/* Frees the flow's buffers and QUIC state (flow end). */
void extract_release(struct extractor *x, struct xflow *xf);
/* Our parsers' name for the flow's protocol ("TLS", "HTTP", "DNS", "QUIC"), NULL if none. */
const char *extract_label(const struct xflow *xf);

#endif /* TW_EXTRACT_H */
