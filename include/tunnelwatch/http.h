/* http.h - HTTP/1.x request line and Host header (RFC 9112 section 3, RFC 9110 7.2).
 *
 * Looks only at the first request of a flow: method, request-target, version, then
 * headers until the blank line. The Host value is returned as a view without the port
 * and surrounding whitespace.
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

#endif /* TW_HTTP_H */
