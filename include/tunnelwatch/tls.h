/* tls.h - TLS ClientHello parser (RFC 8446 section 4.1.2, RFC 6066 SNI, RFC 7301 ALPN),
 * with the JA4 client fingerprint (FoxIO JA4 specification).
 *
 * Two layers: tls_hello_from_records() joins the handshake bytes of consecutive TLS
 * records (record-layer fragmentation) into a caller buffer and says whether the whole
 * ClientHello is there yet; tls_parse_hello() parses one complete handshake message.
 * Results are views into the caller's buffer, except the fixed-size text fields.
 */
#ifndef TW_TLS_H
#define TW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define TLS_HELLO_MAX 16384 /* bounded reassembly of one ClientHello */

struct tls_hello {
    const uint8_t *sni; /* first host_name of server_name, view; NULL if absent */
    size_t sni_len;
    char alpn[64];           /* first ALPN protocol, printable, "" if none */
    uint16_t legacy_version; /* client_version field */
    uint16_t max_version;    /* highest non-GREASE supported_versions entry, else legacy */
    bool has_ech;            /* encrypted_client_hello (0xfe0d) present: sni is the outer,
                              * public name */
    char ja4[40];            /* JA4 fingerprint, e.g. t13d1516h2_8daaf6152771_e5627efa2ab1 */
};

/* stream: bytes of the client direction from the first TLS record on. Copies the payload of
 * consecutive handshake records into out (cap outcap) until one complete handshake message
 * is there. Returns the message length (> 0), TW_ETRUNC when more stream bytes are needed,
 * TW_EBAD when the stream is not TLS handshake records, TW_ELIMIT when the message exceeds
 * outcap. */
long tls_hello_from_records(const uint8_t *stream, size_t len, uint8_t *out, size_t outcap);

/* Quick check used to decide whether a flow's first bytes look like a TLS handshake: true
 * when the len bytes present (at least 1) are consistent with a handshake record holding a
 * ClientHello. */
bool tls_looks_like_hello(const uint8_t *stream, size_t len);

/* msg: one complete handshake message, starting at its type byte (1 = ClientHello).
 * quic selects the JA4 transport letter ('q' instead of 't'). Returns TW_OK; TW_ETRUNC when
 * msg is shorter than its length field says (no field is valid then: a cut hello gives no
 * name); TW_EBAD when malformed; TW_ELIMIT when a JA4 list cap was hit, in which case sni,
 * alpn and versions are valid but ja4 is "". */
int tls_parse_hello(const uint8_t *msg, size_t len, bool quic, struct tls_hello *out) TW_WUR;

/* Same, JA4 only when want_ja4 (two SHA-256 and two sorts: the costliest part of a parse, and
 * only alerts need it). Without it out->ja4 is "". */
int tls_parse_hello_opt(const uint8_t *msg, size_t len, bool quic, bool want_ja4,
                        struct tls_hello *out) TW_WUR;

#endif /* TW_TLS_H */
