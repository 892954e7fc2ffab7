/* quic.h - QUIC Initial packets: key derivation, header protection, AEAD decryption and
 * CRYPTO frame reassembly (RFC 9000 17.2.2 and 19.6, RFC 9001 5, RFC 9369 for v2; draft-22
 * to draft-32, Facebook mvfst and Google QUIC T050/T051 salts accepted).
 *
 * A version we do not know (including the reserved 0x?a?a?a?a ones that force version
 * negotiation) is read with the v1 layout, and only from a packet shaped like a client's
 * first Initial (DCID >= 8 bytes, datagram >= 1200 bytes): every known salt is tried once
 * per flow, the AEAD tag decides, and the salt that opened is kept for the flow's later
 * packets. When none opens, the flow's unknown-version Initials are not tried again.
 *
 * A struct quic_initial lives in the flow (the client direction); it remembers the client's
 * original Destination Connection ID, from which the Initial keys derive, and reassembles
 * CRYPTO frame data (in or out of order, across packets and coalesced packets) into a
 * bounded buffer until a whole ClientHello handshake message is there. OpenSSL 3 EVP does
 * the crypto; its contexts are made once in quic_initial_new(), so feeding allocates
 * nothing. A struct quic_initial is about 20 KiB.
 */
#ifndef TW_QUIC_H
#define TW_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

/* Cap on the CRYPTO stream offsets kept (bytes [0, QUIC_CRYPTO_MAX) of the stream). */
#define QUIC_CRYPTO_MAX 16384
/* Longest Initial packet decrypted; a longer one is skipped (counted as TW_ELIMIT). */
#define QUIC_PACKET_MAX 16384

#define QUIC_VERSION_1    0x00000001u
#define QUIC_VERSION_2    0x6b3343cfu
#define QUIC_DRAFT_29     0xff00001du
#define QUIC_VERSION_T050 0x54303530u /* Google QUIC "T050" */
#define QUIC_VERSION_T051 0x54303531u /* Google QUIC "T051" */

struct quic_initial; /* opaque, quic_initial_new() / quic_initial_free() */

/* True when a UDP payload starts with a long-header Initial of a version we decrypt, or of
 * an unknown version when it is shaped like a client's first Initial (see above). */
bool quic_looks_like_initial(const uint8_t *udp, size_t len);

/* NULL when out of memory (nothing left allocated). */
struct quic_initial *quic_initial_new(void);
/* quic_initial_free(NULL) does nothing. */
void quic_initial_free(struct quic_initial *q);

/* Feeds one client UDP datagram (may hold coalesced packets). Returns the length (> 0) of a
 * ClientHello handshake message that this datagram completed, available from
 * quic_initial_hello(); each message is returned once, and a second ClientHello (after a
 * HelloRetryRequest) is the next message of the same CRYPTO stream. Otherwise TW_ETRUNC when
 * at least one Initial packet decrypted but no new ClientHello is complete (more packets
 * needed); TW_EBAD when the datagram held no decryptable client Initial, or the CRYPTO stream
 * does not start a ClientHello (counted by the caller); TW_ELIMIT when CRYPTO data passes
 * QUIC_CRYPTO_MAX or an Initial packet passes QUIC_PACKET_MAX. */
long quic_initial_feed(struct quic_initial *q, const uint8_t *udp, size_t len) TW_WUR;

/* The ClientHello of the last positive quic_initial_feed() (handshake header included;
 * valid while q lives and until the next feed). */
const uint8_t *quic_initial_hello(const struct quic_initial *q);

/* Low-level pieces, exposed for the RFC 9001 / RFC 9369 Appendix A unit tests. version is
 * a known QUIC version, whose salt is used. Returns TW_OK or TW_EBAD (unknown version, DCID
 * over 20 bytes). */
int quic_derive_client_keys(uint32_t version, const uint8_t *dcid, size_t dcid_len, uint8_t key[16],
                            uint8_t iv[12], uint8_t hp[16]) TW_WUR;

/* Test and fuzzing support: what quic_initial_seal() builds. Keys derive from key_dcid
 * (the client's original DCID), the header names dcid (they differ once the client has
 * switched to the server's CID); the SCID is empty, the token absent, pn is on 4 bytes.
 * salt_version, when not 0, is the known version whose salt, labels and layout are used
 * while the header carries `version` (an unknown or greased version). */
struct quic_seal {
    uint32_t version;
    const uint8_t *key_dcid;
    size_t key_dcid_len;
    const uint8_t *dcid;
    size_t dcid_len;
    uint32_t pn;
    uint32_t salt_version;
};

/* Builds a protected client Initial packet carrying `frames` as plaintext (the caller adds
 * any PADDING). Writes it to out; returns its length, TW_ELIMIT when it does not fit in cap
 * (or frames > 16000 bytes), TW_EBAD for an unknown version or a CID over 20 bytes. */
long quic_initial_seal(const struct quic_seal *s, const uint8_t *frames, size_t frames_len,
                       uint8_t *out, size_t cap) TW_WUR;

#endif /* TW_QUIC_H */
