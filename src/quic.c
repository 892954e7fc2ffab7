/* quic.c - QUIC client Initial decryption and CRYPTO stream reassembly.
 *
 * A passive sensor sees the client's first flight only, so this module does exactly what a
 * server does with it (RFC 9001 5): derive the Initial keys from the Destination Connection
 * ID, remove header protection, open the AEAD, and collect CRYPTO frame data until a whole
 * ClientHello is there. Trade-offs:
 * - Keys are cached per connection ID (the original one, plus the one that last worked, for
 *   clients that changed DCID after a Retry), so a connection costs one derivation and a
 *   hostile DCID per datagram costs at most one derivation per datagram.
 * - HKDF is written here over SHA-256 (RFC 5869 with the TLS 1.3 HkdfLabel of RFC 8446 7.1):
 *   every output is at most one hash long, so Expand is a single HMAC, and it works for a
 *   zero-length DCID, which some KDF front-ends refuse.
 * - The CRYPTO stream is kept in a fixed buffer with a bitmap of the bytes seen; the first
 *   copy of a byte wins, so duplicates and overlaps cost nothing and cannot grow memory.
 *   Marking is per byte, so the work per packet is bounded by the packet's own length.
 * - The plaintext of a packet is decrypted into a stack buffer (QUIC_PACKET_MAX); EVP
 *   contexts are made once in quic_initial_new(), so the packet path does not allocate
 *   (key derivation, once per connection ID, may allocate inside OpenSSL).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/quic.h"

/* Most coalesced packets walked in one datagram: a real one holds at most three (Initial,
 * 0-RTT, Handshake); the cap keeps a datagram of tiny packets from looping long. */
#define QUIC_COALESCED_MAX 16
#define QUIC_CID_MAX       20
#define QUIC_TAG_LEN       16
#define QUIC_VARINT_MAX    ((UINT64_C(1) << 62) - 1)

/* One version we can decrypt: RFC 9001 5.2 (v1), RFC 9369 3.3 (v2), the drafts' salts,
 * Facebook's mvfst versions (draft-22 and draft-27 salts) and Google QUIC T050/T051 (TLS 1.3
 * in Google QUIC framing, each with its own salt). */
struct quic_version {
    uint32_t first, last; /* version range sharing salt and labels */
    uint8_t salt[20];
    const char *prefix;   /* "quic " or "quicv2 " (RFC 9369 3.3.2) */
    uint8_t initial_type; /* long-header type bits of Initial (RFC 9369 3.2) */
    uint8_t retry_type;
    bool gquic; /* Google QUIC frame types: PING 0x07, CRYPTO 0x08 */
};

#define SALT_V1                                                                                    \
    {                                                                                              \
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,  \
            0xad, 0xcc, 0xbb, 0x7f, 0x0a                                                           \
    }
#define SALT_D29                                                                                   \
    {                                                                                              \
        0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11,  \
            0xe0, 0x43, 0x90, 0xa8, 0x99                                                           \
    }
#define SALT_D23                                                                                   \
    {                                                                                              \
        0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63,  \
            0x65, 0xbe, 0xf9, 0xf5, 0x02                                                           \
    }
#define SALT_D22                                                                                   \
    {                                                                                              \
        0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb, 0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51, 0x9e,  \
            0xbd, 0x7a, 0x02, 0x64, 0x4a                                                           \
    }

/* The order of the first entries is the order in which an unknown version tries the salts
 * (TRIAL_COUNT of them, one per distinct salt): draft-29 first, as tshark uses it for the
 * reserved 0x?a?a?a?a versions, then v1 and the older drafts, then Google's. */
enum { VI_D29, VI_V1, VI_D23, VI_D22, VI_T051, VI_T050, TRIAL_COUNT };

static const struct quic_version versions[] = {
    [VI_D29] = {0xff00001du, 0xff000020u, SALT_D29, "quic ", 0, 3, false}, /* draft-29..32 */
    [VI_V1] = {QUIC_VERSION_1, QUIC_VERSION_1, SALT_V1, "quic ", 0, 3, false},
    [VI_D23] = {0xff000017u, 0xff00001cu, SALT_D23, "quic ", 0, 3, false}, /* draft-23..28 */
    [VI_D22] = {0xff000016u, 0xff000016u, SALT_D22, "quic ", 0, 3, false},
    [VI_T051] = {QUIC_VERSION_T051,
                 QUIC_VERSION_T051,
                 {0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50,
                  0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d},
                 "quic ",
                 0,
                 3,
                 true},
    [VI_T050] = {QUIC_VERSION_T050,
                 QUIC_VERSION_T050,
                 {0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80,
                  0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c, 0x60, 0x48, 0x83, 0x10},
                 "quic ",
                 0,
                 3,
                 true},
    {QUIC_VERSION_2,
     QUIC_VERSION_2,
     {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
      0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9},
     "quicv2 ",
     1,
     0,
     false},
    /* mvfst (Facebook): 0xfaceb001 is draft-22, 0xfaceb002 draft-27, 0xfaceb00e the
     * experimental draft-27 variant; other mvfst versions go through the trial below */
    {0xfaceb001u, 0xfaceb001u, SALT_D22, "quic ", 0, 3, false},
    {0xfaceb002u, 0xfaceb002u, SALT_D23, "quic ", 0, 3, false},
    {0xfaceb00eu, 0xfaceb00eu, SALT_D23, "quic ", 0, 3, false},
};

static const struct quic_version *version_find(uint32_t v)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(versions); i++)
        if (v >= versions[i].first && v <= versions[i].last)
            return &versions[i];
    return NULL;
}

/* An unknown version is read with the v1 layout (RFC 8999 invariants, Initial type 0) and
 * only when the packet looks like a client's first Initial: RFC 9000 7.2 (a DCID of at least
 * 8 bytes) and 14.1 (the datagram is padded to at least 1200 bytes). Version 0 is Version
 * Negotiation, never an Initial. */
#define QUIC_TRIAL_DCID_MIN  8
#define QUIC_TRIAL_DGRAM_MIN 1200

/* Client Initial keys for one (version, DCID). */
struct quic_keys {
    bool valid;
    const struct quic_version *ver; /* salt, labels and frame types the keys came from */
    uint32_t version;
    uint8_t dcid_len;
    uint8_t dcid[QUIC_CID_MAX];
    uint8_t key[16], iv[12], hp[16];
};

/* EVP contexts, made once and re-keyed per use. */
struct quic_evp {
    EVP_CIPHER_CTX *gcm;
    EVP_CIPHER_CTX *ecb;
    EVP_MD_CTX *md;
};

struct quic_initial {
    struct quic_evp evp;
    struct quic_keys orig;  /* from the first DCID that decrypted */
    struct quic_keys cur;   /* keys that last decrypted, when not orig (Retry) */
    struct quic_keys trial; /* cache for the packet's own DCID */
    uint64_t next_pn;       /* largest packet number seen + 1 (RFC 9000 A.3) */
    size_t contig;          /* stream bytes [0, contig) are all present */
    size_t msg_off;         /* where the next handshake message starts */
    size_t hello_off, hello_len;
    bool limit;   /* CRYPTO data passed the cap during this feed */
    bool derived; /* trial keys were derived during this feed */
    /* An unknown version: the salt that opened it (unk_ver), or unk_failed once every salt
     * was tried on one packet and none opened (then the flow's unknown Initials are
     * skipped: at most TRIAL_COUNT derivations and decryptions per flow). */
    uint32_t unk_version;
    const struct quic_version *unk_ver;
    bool unk_failed;
    uint8_t have[QUIC_CRYPTO_MAX / 8];
    uint8_t buf[QUIC_CRYPTO_MAX];
};

/* ---- crypto helpers ---------------------------------------------------------------- */

static void evp_free(struct quic_evp *e)
{
    EVP_CIPHER_CTX_free(e->gcm);
    EVP_CIPHER_CTX_free(e->ecb);
    EVP_MD_CTX_free(e->md);
    e->gcm = e->ecb = NULL;
    e->md = NULL;
}

static int evp_init(struct quic_evp *e, int enc)
{
    e->gcm = EVP_CIPHER_CTX_new();
    e->ecb = EVP_CIPHER_CTX_new();
    e->md = EVP_MD_CTX_new();
    if (!e->gcm || !e->ecb || !e->md ||
        EVP_CipherInit_ex(e->gcm, EVP_aes_128_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_EncryptInit_ex(e->ecb, EVP_aes_128_ecb(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(e->ecb, 0) != 1) {
        evp_free(e);
        return TW_ENOMEM;
    }
    return TW_OK;
}

/* HMAC-SHA256 (RFC 2104) of the concatenation m1 || m2 || m3; keys here are <= 64 bytes. */
static int hmac_sha256(EVP_MD_CTX *md, const uint8_t *key, size_t klen, const uint8_t *m1,
                       size_t n1, const uint8_t *m2, size_t n2, const uint8_t *m3, size_t n3,
                       uint8_t out[32])
{
    uint8_t pad[64], inner[32];
    unsigned int ilen = 0, olen = 0;
    if (klen > sizeof(pad))
        return TW_EBAD;
    memset(pad, 0x36, sizeof(pad));
    for (size_t i = 0; i < klen; i++)
        pad[i] ^= key[i];
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, pad, sizeof(pad)) != 1 || EVP_DigestUpdate(md, m1, n1) != 1 ||
        EVP_DigestUpdate(md, m2, n2) != 1 || EVP_DigestUpdate(md, m3, n3) != 1 ||
        EVP_DigestFinal_ex(md, inner, &ilen) != 1)
        return TW_EBAD;
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] ^= 0x36 ^ 0x5c;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, pad, sizeof(pad)) != 1 ||
        EVP_DigestUpdate(md, inner, sizeof(inner)) != 1 ||
        EVP_DigestFinal_ex(md, out, &olen) != 1 || olen != 32)
        return TW_EBAD;
    return TW_OK;
}

/* HKDF-Expand-Label(secret, prefix label, "", n) of RFC 8446 7.1, n <= 32 (one block):
 * HkdfLabel = uint16 length || opaque label<7..255> = "tls13 " + label || opaque ctx<0>. */
static int expand_label(EVP_MD_CTX *md, const uint8_t secret[32], const char *prefix,
                        const char *label, uint8_t *out, size_t n)
{
    uint8_t info[64], t[32];
    size_t pl = strlen(prefix), ll = strlen(label), k = 0;
    if (n > sizeof(t) || 6 + pl + ll + 5 > sizeof(info))
        return TW_EBAD;
    info[k++] = 0;
    info[k++] = (uint8_t)n;
    info[k++] = (uint8_t)(6 + pl + ll);
    memcpy(info + k, "tls13 ", 6);
    k += 6;
    memcpy(info + k, prefix, pl);
    k += pl;
    memcpy(info + k, label, ll);
    k += ll;
    info[k++] = 0;
    static const uint8_t one = 1;
    if (hmac_sha256(md, secret, 32, info, k, &one, 1, NULL, 0, t) != TW_OK)
        return TW_EBAD;
    memcpy(out, t, n);
    return TW_OK;
}

/* RFC 9001 5.2: initial_secret = HKDF-Extract(salt, dcid); client_initial_secret =
 * HKDF-Expand-Label(initial_secret, "client in", "", 32); then key, iv and hp (5.1, 5.4). */
static int derive(EVP_MD_CTX *md, const struct quic_version *ver, uint32_t version,
                  const uint8_t *dcid, size_t dcid_len, struct quic_keys *k)
{
    uint8_t initial[32], client[32];
    k->valid = false;
    if (dcid_len > QUIC_CID_MAX)
        return TW_EBAD;
    if (hmac_sha256(md, ver->salt, sizeof(ver->salt), dcid, dcid_len, NULL, 0, NULL, 0, initial) !=
            TW_OK ||
        expand_label(md, initial, "", "client in", client, 32) != TW_OK ||
        expand_label(md, client, ver->prefix, "key", k->key, 16) != TW_OK ||
        expand_label(md, client, ver->prefix, "iv", k->iv, 12) != TW_OK ||
        expand_label(md, client, ver->prefix, "hp", k->hp, 16) != TW_OK)
        return TW_EBAD;
    k->ver = ver;
    k->version = version;
    k->dcid_len = (uint8_t)dcid_len;
    if (dcid_len)
        memcpy(k->dcid, dcid, dcid_len);
    k->valid = true;
    return TW_OK;
}

static bool keys_match(const struct quic_keys *k, uint32_t version, const uint8_t *dcid,
                       size_t dcid_len)
{
    return k->valid && k->version == version && k->dcid_len == dcid_len &&
           (dcid_len == 0 || memcmp(k->dcid, dcid, dcid_len) == 0);
}

/* RFC 9001 5.4.3: mask = AES-ECB(hp, sample). */
static int hp_mask(EVP_CIPHER_CTX *ecb, const uint8_t hp[16], const uint8_t *sample,
                   uint8_t mask[16])
{
    int n = 0;
    if (EVP_EncryptInit_ex(ecb, NULL, NULL, hp, NULL) != 1 ||
        EVP_EncryptUpdate(ecb, mask, &n, sample, 16) != 1 || n != 16)
        return TW_EBAD;
    return TW_OK;
}

/* RFC 9001 5.3: nonce = iv XOR packet number (left-padded to the iv's length). */
static void make_nonce(const uint8_t iv[12], uint64_t pn, uint8_t nonce[12])
{
    memcpy(nonce, iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(pn >> (8 * i));
}

/* RFC 9000 A.3: the full packet number nearest to the one expected. */
static uint64_t decode_pn(uint64_t expected, uint64_t truncated, size_t pn_len)
{
    uint64_t win = UINT64_C(1) << (8 * pn_len), hwin = win / 2;
    uint64_t cand = (expected & ~(win - 1)) | truncated;
    if (cand + hwin <= expected && cand < (UINT64_C(1) << 62) - win)
        return cand + win;
    if (cand > expected + hwin && cand >= win)
        return cand - win;
    return cand;
}

/* RFC 9001 5.3: AEAD_AES_128_GCM over the header (AAD) and ciphertext into out + hlen. */
static int gcm_open(EVP_CIPHER_CTX *gcm, const struct quic_keys *k, uint64_t pn, uint8_t *out,
                    size_t hlen, const uint8_t *ct, size_t ct_len, uint8_t tag[QUIC_TAG_LEN])
{
    uint8_t nonce[12];
    int n = 0, fin = 0;
    make_nonce(k->iv, pn, nonce);
    if (EVP_DecryptInit_ex(gcm, NULL, NULL, k->key, nonce) != 1 ||
        EVP_DecryptUpdate(gcm, NULL, &n, out, (int)hlen) != 1 ||
        EVP_DecryptUpdate(gcm, out + hlen, &n, ct, (int)ct_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_SET_TAG, QUIC_TAG_LEN, tag) != 1 ||
        EVP_DecryptFinal_ex(gcm, out + hlen + (size_t)n, &fin) != 1)
        return TW_EBAD; /* wrong keys or forged/corrupt packet */
    return TW_OK;
}

/* Removes header protection and opens the AEAD of one Initial packet pkt[0, pkt_len) whose
 * packet number starts at pn_off (RFC 9001 5.3, 5.4.1-5.4.2). The plaintext goes to
 * out + (header length); *pay and *pay_len locate it. out holds at least pkt_len bytes. */
static int open_packet(struct quic_evp *e, const struct quic_keys *k, uint64_t expected,
                       const uint8_t *pkt, size_t pn_off, size_t pkt_len, uint8_t *out,
                       const uint8_t **pay, size_t *pay_len, uint64_t *pn_out, bool strict)
{
    uint8_t mask[16], tag[QUIC_TAG_LEN];
    /* The sample is 16 bytes from pn_off + 4 whatever the pn length (5.4.2): a packet too
     * short for it cannot be opened. This also leaves room for the tag. */
    if (pn_off + 4 + 16 > pkt_len)
        return TW_EBAD;
    if (hp_mask(e->ecb, k->hp, pkt + pn_off + 4, mask) != TW_OK)
        return TW_EBAD;
    uint8_t first = (uint8_t)(pkt[0] ^ (mask[0] & 0x0f));
    /* RFC 9000 17.2: the two reserved bits are 0 once protection is off. A trial with a
     * guessed salt checks them first: a wrong salt fails here 3 times in 4, before GCM. */
    if (strict && (first & 0x0c))
        return TW_EBAD;
    size_t pn_len = (size_t)(first & 0x03) + 1, hlen = pn_off + pn_len;
    memcpy(out, pkt, hlen);
    out[0] = first;
    uint64_t tpn = 0;
    for (size_t i = 0; i < pn_len; i++) {
        out[pn_off + i] = (uint8_t)(pkt[pn_off + i] ^ mask[1 + i]);
        tpn = tpn << 8 | out[pn_off + i];
    }
    uint64_t pn = decode_pn(expected, tpn, pn_len);
    size_t ct_len = pkt_len - hlen - QUIC_TAG_LEN; /* >= 0: pn_len <= 4 and the check above */
    memcpy(tag, pkt + pkt_len - QUIC_TAG_LEN, QUIC_TAG_LEN);
    int rc = gcm_open(e->gcm, k, pn, out, hlen, pkt + hlen, ct_len, tag);
    /* A forged Initial with a huge packet number moves `expected` far from the client's
     * real numbers; retrying with the number as sent keeps such a flow readable. */
    if (rc != TW_OK && pn != tpn) {
        pn = tpn;
        rc = gcm_open(e->gcm, k, pn, out, hlen, pkt + hlen, ct_len, tag);
    }
    if (rc != TW_OK)
        return rc;
    *pay = out + hlen;
    *pay_len = ct_len;
    *pn_out = pn;
    return TW_OK;
}

/* ---- wire helpers ------------------------------------------------------------------ */

/* RFC 9000 16: variable-length integer, 1/2/4/8 bytes by the two top bits. */
static uint64_t cur_varint(struct cur *c)
{
    uint8_t b = cur_u8(c);
    size_t n = (size_t)1 << (b >> 6);
    uint64_t v = b & 0x3f;
    for (size_t i = 1; i < n; i++)
        v = v << 8 | cur_u8(c);
    return c->err ? 0 : v;
}

/* Skips a 62-bit length: compared with what is left before any narrowing to size_t. */
static void cur_skip64(struct cur *c, uint64_t n)
{
    if (n > cur_left(c)) {
        cur_need(c, SIZE_MAX); /* latches TW_ETRUNC */
        return;
    }
    cur_skip(c, (size_t)n);
}

/* ---- CRYPTO stream ----------------------------------------------------------------- */

static bool have_bit(const struct quic_initial *q, size_t i)
{
    return q->have[i >> 3] & (1u << (i & 7));
}

/* Stores stream bytes [off, off + n); bytes already present are kept (first copy wins), and
 * bytes at or past QUIC_CRYPTO_MAX are dropped with q->limit set. */
static void crypto_store(struct quic_initial *q, uint64_t off, const uint8_t *data, size_t n)
{
    if (n == 0)
        return;
    uint64_t end = off + n; /* no overflow: off and n are both < 2^62 */
    if (end > QUIC_CRYPTO_MAX) {
        q->limit = true;
        if (off >= QUIC_CRYPTO_MAX)
            return;
        end = QUIC_CRYPTO_MAX;
    }
    for (size_t i = (size_t)off; i < (size_t)end; i++) {
        if (!have_bit(q, i)) {
            q->buf[i] = data[i - (size_t)off];
            q->have[i >> 3] = (uint8_t)(q->have[i >> 3] | (1u << (i & 7)));
        }
    }
    while (q->contig < QUIC_CRYPTO_MAX && have_bit(q, q->contig))
        q->contig++;
}

/* RFC 9000 19: frames of one decrypted Initial payload. PADDING, PING, ACK, CRYPTO and
 * CONNECTION_CLOSE are the frames an Initial may carry (RFC 9000 12.4); anything else, or a
 * malformed frame, ends parsing of this packet and keeps what was stored before it.
 * Google QUIC T050/T051 (gquic) number its frames differently: PADDING 0x00, PING 0x07,
 * CRYPTO 0x08 (offset and length as IETF varints, as tshark dissects them); its ACK and
 * other frames have their own layouts, so they end parsing (a client's first Initial starts
 * with its CRYPTO frame). */
static void parse_frames(struct quic_initial *q, const uint8_t *p, size_t n, bool gquic)
{
    struct cur c = cur_init(p, n);
    /* each frame consumes at least one byte, so n bounds the loop */
    for (size_t guard = 0; guard < n && cur_left(&c) > 0 && c.err == TW_OK; guard++) {
        uint64_t type = cur_varint(&c);
        if (gquic) {
            if (type == 0x07)
                type = 0x01; /* PING */
            else if (type == 0x08)
                type = 0x06; /* CRYPTO */
            else if (type != 0x00)
                return;
        }
        switch (type) {
        case 0x00: /* PADDING: skip the whole run at once */
            while (cur_left(&c) > 0 && *c.p == 0)
                c.p++;
            break;
        case 0x01: /* PING */
            break;
        case 0x02:   /* ACK: Largest, Delay, Range Count, First Range, ranges */
        case 0x03: { /* ACK with ECN counts */
            (void)cur_varint(&c);
            (void)cur_varint(&c);
            uint64_t count = cur_varint(&c);
            (void)cur_varint(&c);
            /* each range is two varints (>= 2 bytes): a false count ends at the cursor */
            for (uint64_t i = 0; i < count && c.err == TW_OK; i++) {
                (void)cur_varint(&c);
                (void)cur_varint(&c);
            }
            if (type == 0x03)
                for (int i = 0; i < 3; i++)
                    (void)cur_varint(&c);
            break;
        }
        case 0x06: { /* CRYPTO: Offset, Length, Crypto Data */
            uint64_t off = cur_varint(&c), len = cur_varint(&c);
            if (c.err || len > cur_left(&c))
                return;
            /* RFC 9000 19.6: offset + length must stay below 2^62 */
            if (off > QUIC_VARINT_MAX - len)
                return;
            const uint8_t *data = cur_bytes(&c, (size_t)len);
            if (data)
                crypto_store(q, off, data, (size_t)len);
            break;
        }
        case 0x1c:   /* CONNECTION_CLOSE (transport): code, frame type, reason */
        case 0x1d: { /* CONNECTION_CLOSE (application): code, reason */
            (void)cur_varint(&c);
            if (type == 0x1c)
                (void)cur_varint(&c);
            cur_skip64(&c, cur_varint(&c));
            break;
        }
        default: /* not allowed in Initial, or unknown: its length is unknown */
            return;
        }
    }
}

/* RFC 8446 4: the next handshake message, msg_type(1) length(3), when all of it is here.
 * Returns its length, 0 when incomplete, TW_EBAD when it is not a ClientHello, TW_ELIMIT
 * when it cannot fit in the buffer. */
static long next_hello(struct quic_initial *q)
{
    size_t off = q->msg_off;
    if (q->contig < off + 4)
        return 0;
    if (q->buf[off] != 1) /* a client's Initial CRYPTO stream carries only ClientHellos */
        return TW_EBAD;
    size_t mlen = 4 + ((size_t)q->buf[off + 1] << 16 | (size_t)q->buf[off + 2] << 8 |
                       (size_t)q->buf[off + 3]);
    if (mlen > QUIC_CRYPTO_MAX - off)
        return TW_ELIMIT;
    if (q->contig < off + mlen)
        return 0;
    q->hello_off = off;
    q->hello_len = mlen;
    q->msg_off = off + mlen;
    return (long)mlen;
}

/* ---- packets ----------------------------------------------------------------------- */

/* Opens one Initial with the keys most likely to work: those that last worked, the
 * original DCID's, then the packet's own DCID (a client after Retry, RFC 9001 5.2). */
static int open_initial(struct quic_initial *q, const struct quic_version *ver, uint32_t version,
                        const uint8_t *dcid, size_t dcid_len, const uint8_t *pkt, size_t pn_off,
                        size_t pkt_len, uint8_t *out, const uint8_t **pay, size_t *pay_len)
{
    uint64_t pn = 0;
    struct quic_keys *tries[2] = {&q->cur, &q->orig};
    for (int i = 0; i < 2; i++) {
        if (!tries[i]->valid || tries[i]->version != version)
            continue;
        if (open_packet(&q->evp, tries[i], q->next_pn, pkt, pn_off, pkt_len, out, pay, pay_len, &pn,
                        false) == TW_OK)
            goto opened;
    }
    if (keys_match(&q->cur, version, dcid, dcid_len) ||
        keys_match(&q->orig, version, dcid, dcid_len))
        return TW_EBAD; /* those keys were tried above */
    if (!keys_match(&q->trial, version, dcid, dcid_len)) {
        /* One derivation per datagram: coalesced packets of one connection share a DCID
         * (RFC 9000 12.2), so more would only serve a hostile datagram's CPU bill. */
        if (q->derived)
            return TW_EBAD;
        q->derived = true;
        if (derive(q->evp.md, ver, version, dcid, dcid_len, &q->trial) != TW_OK)
            return TW_EBAD;
    }
    if (open_packet(&q->evp, &q->trial, q->next_pn, pkt, pn_off, pkt_len, out, pay, pay_len, &pn,
                    false) != TW_OK)
        return TW_EBAD;
    /* the first DCID that opens is the original one; a later one (Retry) becomes cur */
    if (!q->orig.valid)
        q->orig = q->trial;
    else
        q->cur = q->trial;
opened:
    if (pn + 1 > q->next_pn)
        q->next_pn = pn + 1;
    return TW_OK;
}

/* An Initial of an unknown version: each salt once (quic_initial_feed() lets one packet per
 * flow come here). The first salt whose keys open the packet becomes the flow's. */
static int open_trial(struct quic_initial *q, uint32_t version, const uint8_t *dcid,
                      size_t dcid_len, const uint8_t *pkt, size_t pn_off, size_t pkt_len,
                      uint8_t *out, const uint8_t **pay, size_t *pay_len)
{
    uint64_t pn = 0;
    for (size_t i = 0; i < TRIAL_COUNT; i++) {
        if (derive(q->evp.md, &versions[i], version, dcid, dcid_len, &q->trial) != TW_OK)
            break;
        if (open_packet(&q->evp, &q->trial, q->next_pn, pkt, pn_off, pkt_len, out, pay, pay_len,
                        &pn, true) != TW_OK)
            continue;
        q->unk_version = version;
        q->unk_ver = &versions[i];
        if (!q->orig.valid)
            q->orig = q->trial;
        else
            q->cur = q->trial;
        if (pn + 1 > q->next_pn)
            q->next_pn = pn + 1;
        return TW_OK;
    }
    q->trial.valid = false;
    q->unk_failed = true;
    return TW_EBAD;
}

/* The invariant part of a client's first Initial of an unknown version, read with the v1
 * layout: type Initial, DCID of 8..20 bytes, SCID <= 20, token and Length fields that fit in
 * a datagram of at least 1200 bytes, and room for a sample and tag. */
static bool trial_shape(const uint8_t *udp, size_t len)
{
    struct cur c = cur_init(udp, len);
    uint8_t first = cur_u8(&c);
    uint32_t version = cur_u32be(&c);
    uint8_t dcid_len = cur_u8(&c);
    cur_skip(&c, dcid_len);
    uint8_t scid_len = cur_u8(&c);
    cur_skip(&c, scid_len);
    cur_skip64(&c, cur_varint(&c)); /* token */
    uint64_t plen = cur_varint(&c);
    return c.err == TW_OK && len >= QUIC_TRIAL_DGRAM_MIN && (first & 0xc0) == 0xc0 &&
           ((first >> 4) & 3) == 0 && version != 0 && dcid_len >= QUIC_TRIAL_DCID_MIN &&
           dcid_len <= QUIC_CID_MAX && scid_len <= QUIC_CID_MAX && plen >= 4 + 16 &&
           plen <= cur_left(&c);
}

bool quic_looks_like_initial(const uint8_t *udp, size_t len)
{
    if (!udp) /* a cursor over NULL would do pointer arithmetic on NULL */
        return false;
    struct cur c = cur_init(udp, len);
    uint8_t first = cur_u8(&c);
    uint32_t version = cur_u32be(&c);
    uint8_t dcid_len = cur_u8(&c);
    if (c.err || !(first & 0x80))
        return false;
    const struct quic_version *ver = version_find(version);
    if (!ver)
        return trial_shape(udp, len);
    return ((first >> 4) & 3) == ver->initial_type && dcid_len <= QUIC_CID_MAX;
}

struct quic_initial *quic_initial_new(void)
{
    struct quic_initial *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    if (evp_init(&q->evp, 0) != TW_OK) {
        free(q);
        return NULL;
    }
    return q;
}

void quic_initial_free(struct quic_initial *q)
{
    if (!q)
        return;
    evp_free(&q->evp);
    free(q);
}

const uint8_t *quic_initial_hello(const struct quic_initial *q)
{
    return q->hello_len ? q->buf + q->hello_off : NULL;
}

/* RFC 9000 17.2 long header, and 17.2.2 Initial:
 *   first(1: 1 F TT ssss) version(4) dcid_len(1) dcid(<=20) scid_len(1) scid(<=20)
 *   [Initial: token_len(varint) token] length(varint) pn(1..4) payload(AEAD, 16-byte tag)
 * Coalesced packets follow each other (RFC 9000 12.2); a short header ends the walk. */
long quic_initial_feed(struct quic_initial *q, const uint8_t *udp, size_t len)
{
    uint8_t scratch[QUIC_PACKET_MAX];
    struct cur c = cur_init(udp, len);
    int opened = 0;
    bool too_big = false;
    q->limit = false;
    q->hello_len = 0;
    q->derived = false;
    if (!udp)
        return TW_EBAD;
    for (int npk = 0; npk < QUIC_COALESCED_MAX && cur_left(&c) > 0; npk++) {
        const uint8_t *start = c.p;
        uint8_t first = cur_u8(&c);
        if (!(first & 0x80)) /* short header: 1-RTT, runs to the datagram's end */
            break;
        uint32_t version = cur_u32be(&c);
        const struct quic_version *ver = version_find(version);
        bool trial = false;
        if (c.err)
            break;
        if (!ver) {
            /* an unknown version: read with the v1 layout, with the salt that opened it
             * before, or trying every salt on a packet shaped like a first Initial */
            if (q->unk_ver && q->unk_version == version) {
                ver = q->unk_ver;
            } else if (!q->unk_failed && !q->unk_ver && start == udp && trial_shape(udp, len)) {
                ver = &versions[VI_V1]; /* layout only */
                trial = true;
            } else {
                break;
            }
        }
        uint8_t dcid_len = cur_u8(&c);
        /* RFC 9000 17.2: in versions 1 and 2 a CID is at most 20 bytes */
        if (dcid_len > QUIC_CID_MAX)
            break;
        const uint8_t *dcid = cur_bytes(&c, dcid_len);
        uint8_t scid_len = cur_u8(&c);
        if (scid_len > QUIC_CID_MAX)
            break;
        cur_skip(&c, scid_len);
        unsigned type = (first >> 4) & 3;
        if (type == ver->retry_type) /* no Length field; a client never sends it */
            break;
        if (type == ver->initial_type)
            cur_skip64(&c, cur_varint(&c)); /* token */
        uint64_t plen = cur_varint(&c);
        if (c.err || plen > cur_left(&c)) /* cut by the capture, or a false length */
            break;
        size_t pn_off = (size_t)(c.p - start), pkt_len = pn_off + (size_t)plen;
        cur_skip(&c, (size_t)plen);
        if (type != ver->initial_type) /* 0-RTT or Handshake: not readable here */
            continue;
        if (pkt_len > sizeof(scratch)) {
            too_big = true;
            continue;
        }
        const uint8_t *pay = NULL;
        size_t pay_len = 0;
        if (trial ? open_trial(q, version, dcid, dcid_len, start, pn_off, pkt_len, scratch, &pay,
                               &pay_len) != TW_OK
                  : open_initial(q, ver, version, dcid, dcid_len, start, pn_off, pkt_len, scratch,
                                 &pay, &pay_len) != TW_OK)
            continue; /* not ours, or forged: a later coalesced packet may still open */
        opened++;
        parse_frames(q, pay, pay_len, (trial ? q->unk_ver : ver)->gquic);
    }
    if (opened == 0)
        return too_big ? TW_ELIMIT : TW_EBAD;
    long r = next_hello(q);
    if (r != 0)
        return r;
    return q->limit || too_big ? TW_ELIMIT : TW_ETRUNC;
}

/* ---- sealing (tests and fuzzers) --------------------------------------------------- */

int quic_derive_client_keys(uint32_t version, const uint8_t *dcid, size_t dcid_len, uint8_t key[16],
                            uint8_t iv[12], uint8_t hp[16])
{
    const struct quic_version *ver = version_find(version);
    if (!ver || dcid_len > QUIC_CID_MAX)
        return TW_EBAD;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return TW_ENOMEM;
    struct quic_keys k;
    int rc = derive(md, ver, version, dcid, dcid_len, &k);
    EVP_MD_CTX_free(md);
    if (rc != TW_OK)
        return rc;
    memcpy(key, k.key, 16);
    memcpy(iv, k.iv, 12);
    memcpy(hp, k.hp, 16);
    return TW_OK;
}

long quic_initial_seal(const struct quic_seal *s, const uint8_t *frames, size_t frames_len,
                       uint8_t *out, size_t cap)
{
    uint32_t version = s->version, pn = s->pn;
    const uint8_t *dcid = s->dcid;
    size_t dcid_len = s->dcid_len;
    const struct quic_version *ver = version_find(s->salt_version ? s->salt_version : version);
    if (!ver || dcid_len > QUIC_CID_MAX || s->key_dcid_len > QUIC_CID_MAX)
        return TW_EBAD;
    if (frames_len > 16000) /* Length is written as a 2-byte varint (< 16384) */
        return TW_ELIMIT;
    size_t pn_off = 1 + 4 + 1 + dcid_len + 1 + 1 + 2, hlen = pn_off + 4;
    size_t total = hlen + frames_len + QUIC_TAG_LEN, plen = 4 + frames_len + QUIC_TAG_LEN;
    if (total > cap)
        return TW_ELIMIT;
    struct quic_evp e;
    struct quic_keys k;
    if (evp_init(&e, 1) != TW_OK)
        return TW_ENOMEM;
    long rc = TW_EBAD;
    if (derive(e.md, ver, version, s->key_dcid, s->key_dcid_len, &k) != TW_OK)
        goto out;
    size_t i = 0;
    out[i++] = (uint8_t)(0xc0 | ver->initial_type << 4 | 0x03); /* 4-byte pn */
    for (int sh = 24; sh >= 0; sh -= 8)
        out[i++] = (uint8_t)(version >> sh);
    out[i++] = (uint8_t)dcid_len;
    if (dcid_len)
        memcpy(out + i, dcid, dcid_len);
    i += dcid_len;
    out[i++] = 0; /* SCID length */
    out[i++] = 0; /* token length */
    out[i++] = (uint8_t)(0x40 | plen >> 8);
    out[i++] = (uint8_t)plen;
    for (int sh = 24; sh >= 0; sh -= 8)
        out[i++] = (uint8_t)(pn >> sh);
    uint8_t nonce[12], mask[16];
    make_nonce(k.iv, pn, nonce);
    int n = 0, fin = 0;
    if (EVP_EncryptInit_ex(e.gcm, NULL, NULL, k.key, nonce) != 1 ||
        EVP_EncryptUpdate(e.gcm, NULL, &n, out, (int)hlen) != 1 ||
        (frames_len && EVP_EncryptUpdate(e.gcm, out + hlen, &n, frames, (int)frames_len) != 1) ||
        EVP_EncryptFinal_ex(e.gcm, out + hlen + frames_len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(e.gcm, EVP_CTRL_GCM_GET_TAG, QUIC_TAG_LEN, out + hlen + frames_len) !=
            1)
        goto out;
    if (hp_mask(e.ecb, k.hp, out + pn_off + 4, mask) != TW_OK)
        goto out;
    out[0] = (uint8_t)(out[0] ^ (mask[0] & 0x0f));
    for (size_t j = 0; j < 4; j++)
        out[pn_off + j] = (uint8_t)(out[pn_off + j] ^ mask[1 + j]);
    rc = (long)total;
out:
    evp_free(&e);
    return rc;
}
