/* quic.h - QUIC Initial packets: key derivation, header protection, AEAD decryption and
 * CRYPTO frame reassembly (RFC 9000 17.2.2 and 19.6, RFC 9001 5, RFC 9369 for v2; draft-29
 * salts accepted).
 *
 * A struct quic_initial lives in the flow (the client direction); it remembers the client's
 * original Destination Connection ID, from which the Initial keys derive, and reassembles
 * CRYPTO frame data (in or out of order, across packets and coalesced packets) into a
 * bounded buffer until a whole ClientHello handshake message is there. OpenSSL 3 EVP does
 * the crypto.
 */
#ifndef TW_QUIC_H
#define TW_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define QUIC_CRYPTO_MAX 16384

struct quic_initial; /* opaque, quic_initial_new() / quic_initial_free() */

/* True when a UDP payload starts with a long-header Initial of a version we decrypt. */
bool quic_looks_like_initial(const uint8_t *udp, size_t len);

struct quic_initial *quic_initial_new(void);
void quic_initial_free(struct quic_initial *q);

/* Feeds one client UDP datagram (may hold coalesced packets). Returns the length (> 0) of
 * the complete ClientHello handshake message, available from quic_initial_hello(); TW_ETRUNC
 * when more Initial packets are needed; TW_EBAD when the datagram is not a decryptable client
 * Initial (counted by the caller); TW_ELIMIT when CRYPTO data passes QUIC_CRYPTO_MAX. */
long quic_initial_feed(struct quic_initial *q, const uint8_t *udp, size_t len);

/* The reassembled ClientHello (valid while q lives and until the next feed). */
const uint8_t *quic_initial_hello(const struct quic_initial *q);

/* Low-level pieces, exposed for the RFC 9001 Appendix A unit tests. version is the QUIC
 * version field. Returns TW_OK or TW_EBAD (unknown version). */
int quic_derive_client_keys(uint32_t version, const uint8_t *dcid, size_t dcid_len,
                            uint8_t key[16], uint8_t iv[12], uint8_t hp[16]) TW_WUR;

#endif /* TW_QUIC_H */
