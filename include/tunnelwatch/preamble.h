/* preamble.h - what comes before a ClientHello (or an HTTP request) on a TCP stream.
 *
 * Real networks put a preamble before the TLS handshake: a proxy handshake (HTTP CONNECT,
 * SOCKS4/4a/5, the PROXY protocol v1/v2 of load balancers) or a plaintext start that upgrades
 * to TLS (SMTP/IMAP STARTTLS, POP3 STLS, FTP AUTH TLS, XMPP <starttls/>, LDAP StartTLS,
 * PostgreSQL SSLRequest, RDP's X.224 Connection Request). pre_scan() is a pure, bounded state
 * machine over the client's contiguous stream bytes only: it walks one preamble message per
 * call and says what the next bytes are.
 *
 * Contract: the caller keeps one struct pre_state per flow direction, zeroed at the start of
 * the stream (a zeroed state is the initial state), and calls pre_scan() with the contiguous
 * bytes that follow everything already skipped:
 *   PRE_NEED_MORE  nothing decided: call again when more bytes are in (same buf start).
 *   PRE_SKIP       out->off bytes of preamble are complete: drop them (the next call's buf
 *                  starts at buf + out->off) and call again at once, the rest may be in.
 *   PRE_TLS_AT     a TLS ClientHello record starts at buf + out->off (only ever said when the
 *                  record header and handshake type are there: never a guess).
 *   PRE_HTTP_AT    an HTTP/1.x request (not CONNECT) starts at buf + out->off.
 *   PRE_NONE       not a known preamble, or a cap was hit: give the stream up.
 * out->authority (a CONNECT target's host, a SOCKS4a/SOCKS5 domain, the XMPP stream's `to`,
 * PROXY v2's AUTHORITY TLV) and out->host (a CONNECT request's Host header) are set on the
 * PRE_SKIP that completes that message; they are views into buf, valid until the caller drops
 * or changes those bytes. The state holds no pointers and nothing to free.
 */
#ifndef TW_PREAMBLE_H
#define TW_PREAMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define PRE_MAX_BYTES  16384 /* preamble bytes skipped before giving up (whole stream) */
#define PRE_MAX_MSGS   32    /* preamble messages (lines, handshakes) skipped before giving up */
#define PRE_MAX_LINE   1024  /* longest text line of a STARTTLS protocol we wait for */
#define PRE_MAX_MSG    4096  /* longest binary preamble message (PROXY v2, XMPP chunk) */
#define PRE_MAX_LAYERS 4     /* stacked tunnels: PROXY, CONNECT, a CONNECT retried after 407 */

enum pre_verdict {
    PRE_NEED_MORE = 0,
    PRE_SKIP = 1,
    PRE_TLS_AT = 2,
    PRE_HTTP_AT = 3,
    PRE_NONE = 4,
};

/* Which preamble a PRE_SKIP belongs to (for counters; pre_kind_name() gives its name). */
enum pre_kind {
    PRE_K_NONE = 0,
    PRE_K_CONNECT,
    PRE_K_SOCKS4,
    PRE_K_SOCKS5,
    PRE_K_PROXY_V1,
    PRE_K_PROXY_V2,
    PRE_K_SMTP,
    PRE_K_POP3,
    PRE_K_IMAP,
    PRE_K_FTP,
    PRE_K_XMPP,
    PRE_K_LDAP,
    PRE_K_PGSQL,
    PRE_K_RDP,
    PRE_K__COUNT
};

/* Per-direction scanner state: 8 bytes, zero = start of stream. Fields are private. */
struct pre_state {
    uint16_t bytes; /* preamble bytes skipped so far */
    uint8_t msgs;   /* preamble messages skipped so far */
    uint8_t layers; /* tunnel preambles completed */
    uint8_t mode;   /* what the next bytes may be */
    uint8_t kind;   /* enum pre_kind of the text protocol in progress */
    uint8_t flags;
    uint8_t pad;
};

struct pre_result {
    size_t off;   /* PRE_SKIP: bytes to drop; PRE_TLS_AT/PRE_HTTP_AT: where it starts */
    uint8_t kind; /* enum pre_kind of the message skipped (PRE_SKIP) */
    /* tunnel target host (no port; IPv6 in brackets as sent), NULL when none */
    const uint8_t *authority;
    size_t authority_len;
    uint16_t port; /* tunnel target port when known (CONNECT, SOCKS, PROXY), else 0 */
    /* CONNECT: the request's Host header value without port, NULL when absent */
    const uint8_t *host;
    size_t host_len;
};

/* Scans buf (the client's stream bytes after everything skipped so far; len may be 0) and
 * returns an enum pre_verdict, out filled as described above. Reads at most len bytes; per
 * call at most max(HTTP_HEAD_MAX, PRE_MAX_MSG) of them are examined. */
int pre_scan(struct pre_state *st, const uint8_t *buf, size_t len, struct pre_result *out) TW_WUR;

/* "connect", "socks5", "smtp", ... ("none" for PRE_K_NONE or out of range). */
const char *pre_kind_name(int kind);

#endif /* TW_PREAMBLE_H */
