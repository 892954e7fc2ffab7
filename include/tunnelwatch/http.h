/* http.h - HTTP/1.x request line and Host header (RFC 9112 section 3, RFC 9110 7.2).
 *
 * Reads one request head at a time: method, request-target, version, then headers until the
 * blank line. The Host value is returned as a view without the port and surrounding
 * whitespace. http_parse_request() also says where the next request of a pipelined
 * (keep-alive) connection starts and, for CONNECT, which authority the tunnel goes to.
 */
#ifndef TW_HTTP_H
#define TW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define HTTP_HEAD_MAX 8192 /* request head bytes we wait for before giving up */

/* True when the len bytes present (at least 1) are consistent with the start of an
 * HTTP/1.x request: a known method and a space. */
bool http_looks_like_request(const uint8_t *buf, size_t len);

/* Returns TW_OK with *host and *host_len set (host_len may be 0 when there is no Host header),
 * TW_ETRUNC when the head is not complete yet, TW_EBAD when it is not an HTTP/1.x request
 * (decided as soon as the request line is complete), TW_ELIMIT when no blank line comes
 * within HTTP_HEAD_MAX bytes. The view points into buf; "[v6]:port" gives "[v6]". */
int http_parse_host(const uint8_t *buf, size_t len, const uint8_t **host, size_t *host_len) TW_WUR;

/* One parsed request head. Every pointer is a view into the caller's buffer, valid as long as
 * that buffer is. */
struct http_req {
    const uint8_t *host; /* Host value without port (as http_parse_host), NULL when absent */
    size_t host_len;
    const uint8_t *target; /* request-target as sent */
    size_t target_len;
    const uint8_t *method; /* the method token */
    size_t method_len;
    /* the first User-Agent, Cookie and Referer values without surrounding whitespace (a
     * continuation line is not part of the view), NULL when absent */
    const uint8_t *user_agent, *cookie, *referer;
    size_t user_agent_len, cookie_len, referer_len;
    bool connect; /* method CONNECT: the bytes after the head are the tunnel */
    /* CONNECT only: the authority-form target's host without its port ("[::1]" keeps its
     * brackets, like the Host view) and the port (0 when absent or not a number <= 65535) */
    const uint8_t *authority;
    size_t authority_len;
    uint16_t port;
    size_t head_len; /* bytes of the head, blank line included */
    bool next_known; /* false when the body length is unknown (Transfer-Encoding, or a
                      * Content-Length that is not one plain number) */
    size_t next;     /* when next_known: offset of the next request (head + Content-Length
                      * body; for CONNECT the head only). May be > len: the body is not
                      * all in the buffer yet. */
};

/* Parses the request head at buf. Returns TW_OK (out filled), TW_ETRUNC, TW_EBAD or TW_ELIMIT
 * exactly as http_parse_host does; on error out is zeroed. Pipelining: after TW_OK with
 * next_known and next <= len, the next request starts at buf + next. */
int http_parse_request(const uint8_t *buf, size_t len, struct http_req *out) TW_WUR;

/* One parsed response head (RFC 9112 4: status-line, then fields up to the blank line). */
struct http_resp {
    uint16_t status; /* 100..599 */
    size_t head_len; /* bytes of the head, blank line included */
    bool next_known; /* false when the body runs to the connection's close or is chunked */
    size_t next;     /* when next_known: offset of the next response (head, plus the
                      * Content-Length body unless the status or a HEAD request has none,
                      * RFC 9112 6.3 items 1-2). May be > len. */
};

/* Parses the response head at buf; to_head: it answers a HEAD request (no body). Returns
 * TW_OK (out filled), TW_ETRUNC (not complete yet), TW_EBAD (not an HTTP/1.x status line, or
 * a malformed field line: decided as soon as the bytes present show it), TW_ELIMIT (no blank
 * line within HTTP_HEAD_MAX bytes). On error out is zeroed. */
int http_parse_response(const uint8_t *buf, size_t len, bool to_head, struct http_resp *out) TW_WUR;

#endif /* TW_HTTP_H */
