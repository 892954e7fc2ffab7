/* tls.c - TLS ClientHello: record reassembly, SNI, ALPN, versions, ECH flag, JA4.
 *
 * The record layer may split a ClientHello over several records and the records over
 * several TCP segments; tls_hello_from_records() copies the handshake bytes of
 * consecutive records into a bounded caller buffer until one whole handshake message is
 * there, and says TW_ETRUNC until then, so the caller can wait for the next segment. The
 * parser then reads that one message with nested cursors: every vector is its own
 * sub-cursor, so a lying inner length can never reach past its parent.
 *
 * JA4 follows the FoxIO specification (technical_details/JA4.md): GREASE values (RFC 8701,
 * 0x?a?a) are ignored everywhere, counts are capped at 99, the cipher list and the
 * extension list (without SNI and ALPN) are sorted as 4-digit hex and hashed with SHA-256,
 * truncated to 12 hex digits; signature algorithms keep their order. The lists kept for JA4
 * are capped (a real hello has about 20 extensions); past a cap the walk still finds the
 * SNI but the result is TW_ELIMIT with no JA4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/tls.h"

#define TLS_REC_HANDSHAKE   22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_REC_MAX         (16384 + 2048) /* RFC 8446 5.2: ciphertext bound; plaintext less */
#define TLS_MAX_CIPHERS     512            /* kept for JA4; more is refused */
#define TLS_MAX_EXT         128
#define TLS_MAX_SIGALGS     128

#define EXT_SERVER_NAME    0x0000
#define EXT_SIG_ALGS       0x000d
#define EXT_ALPN           0x0010
#define EXT_SUPPORTED_VERS 0x002b
#define EXT_ECH            0xfe0d

/* RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA */
static bool is_grease(uint16_t v)
{
    return (v & 0x0F0F) == 0x0A0A && (v >> 8) == (v & 0xFF);
}

bool tls_looks_like_hello(const uint8_t *stream, size_t len)
{
    /* type handshake, version 3.x, then (if present) handshake type ClientHello */
    if (len < 1 || stream[0] != TLS_REC_HANDSHAKE)
        return false;
    if (len >= 2 && stream[1] != 3)
        return false;
    if (len >= 3 && stream[2] > 4)
        return false;
    if (len >= 6 && stream[5] != TLS_HS_CLIENT_HELLO)
        return false;
    return true;
}

/* RFC 8446 5.1 record: ContentType type(1) ProtocolVersion legacy_record_version(2)
 * uint16 length, opaque fragment[length]. A handshake message (4: msg_type(1) length(3)
 * body) may span several records, which carry nothing else in between. */
long tls_hello_from_records(const uint8_t *stream, size_t len, uint8_t *out, size_t outcap)
{
    struct cur c = cur_init(stream, len);
    size_t have = 0;

    /* each record consumes at least 5 stream bytes, so the stream length bounds the loop */
    for (;;) {
        uint8_t type = cur_u8(&c);
        uint8_t major = cur_u8(&c);
        cur_skip(&c, 1);
        uint16_t rlen = cur_u16be(&c);
        if (c.err)
            return c.err;
        /* anything but handshake records before the hello is complete means this is not
         * (or no longer) a ClientHello we can read */
        if (type != TLS_REC_HANDSHAKE || major != 3 || rlen > TLS_REC_MAX)
            return TW_EBAD;
        /* RFC 8446 5.1: zero-length handshake fragments are not allowed */
        if (rlen == 0)
            return TW_EBAD;
        size_t take = cur_left(&c) < rlen ? cur_left(&c) : rlen;
        if (take > outcap - have)
            return TW_ELIMIT;
        memcpy(out + have, c.p, take);
        have += take;
        cur_skip(&c, take);
        if (have >= 1 && out[0] != TLS_HS_CLIENT_HELLO)
            return TW_EBAD;
        if (have >= 4) {
            size_t mlen = 4 + ((size_t)out[1] << 16 | (size_t)out[2] << 8 | out[3]);
            if (mlen > outcap)
                return TW_ELIMIT;
            if (have >= mlen)
                return (long)mlen;
        }
        if (take < rlen)
            return TW_ETRUNC;
    }
}

static int cmp_u16(const void *a, const void *b)
{
    uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
    return (x > y) - (x < y);
}

/* Sorts a JA4 list in place. A Chrome hello has ~16 ciphers and ~16 extensions, where qsort's
 * merge sort with a comparison callback cost 4% of the whole sensor on the benchmark mix, so
 * short lists get an insertion sort; long ones (a hostile hello may carry up to
 * TLS_MAX_CIPHERS) still go to qsort, which keeps the worst case n log n. */
static void sort_u16(uint16_t *v, size_t n)
{
    if (n > 48) {
        qsort(v, n, sizeof(v[0]), cmp_u16);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        uint16_t x = v[i];
        size_t k = i;
        while (k > 0 && v[k - 1] > x) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = x;
    }
}

/* Appends "xxxx,xxxx,..." (lowercase 4-digit hex) to buf at *n; buf is sized by the caller
 * for 5 bytes per value. */
static void hex_list(char *buf, size_t *n, const uint16_t *v, size_t cnt)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < cnt; i++) {
        if (i > 0)
            buf[(*n)++] = ',';
        for (int s = 12; s >= 0; s -= 4)
            buf[(*n)++] = hex[(v[i] >> s) & 0xF];
    }
}

/* SHA-256, FIPS 180-4 section 6.2, for the JA4 hashes only (not a general-purpose API).
 * In-house rather than EVP_Digest(): with OpenSSL 3 every EVP_Digest() call allocates a
 * context and fetches the implementation from the provider, which cost ~4% of the whole
 * sensor on the benchmark mix for two 1 KB inputs per hello. Pure function, no state. */
static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t st[8], const uint8_t b[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = st[0], b1 = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6],
             h = st[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b1) ^ (a & c) ^ (b1 & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b1;
        b1 = a;
        a = t1 + t2;
    }
    st[0] += a;
    st[1] += b1;
    st[2] += c;
    st[3] += d;
    st[4] += e;
    st[5] += f;
    st[6] += g;
    st[7] += h;
}

/* First 12 hex digits of SHA-256(s), or twelve zeros for an empty input (JA4 spec). */
static void sha12(const char *s, size_t n, char out[13])
{
    static const char hex[] = "0123456789abcdef";
    if (n == 0) {
        memcpy(out, "000000000000", 13);
        return;
    }
    uint32_t st[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const uint8_t *p = (const uint8_t *)s;
    size_t left = n;
    for (; left >= 64; left -= 64, p += 64)
        sha256_block(st, p);
    /* padding (5.1.1): 0x80, zeros, then the bit length in 64 bits big-endian */
    uint8_t last[128] = {0};
    memcpy(last, p, left);
    last[left] = 0x80;
    size_t tail = left + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        last[tail - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
    sha256_block(st, last);
    if (tail == 128)
        sha256_block(st, last + 64);
    for (int i = 0; i < 6; i++) {
        uint8_t byte = (uint8_t)(st[i / 4] >> (24 - 8 * (i % 4)));
        out[2 * i] = hex[byte >> 4];
        out[2 * i + 1] = hex[byte & 0xF];
    }
    out[12] = '\0';
}

static const char *ja4_version(uint16_t v)
{
    switch (v) {
    case 0x0304:
        return "13";
    case 0x0303:
        return "12";
    case 0x0302:
        return "11";
    case 0x0301:
        return "10";
    case 0x0300:
        return "s3";
    case 0x0002:
        return "s2";
    case 0xfeff:
        return "d1";
    case 0xfefd:
        return "d2";
    case 0xfefc:
        return "d3";
    default:
        return "00";
    }
}

static bool is_alnum(uint8_t ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* What the extension walk collects for JA4, beyond struct tls_hello. */
struct ja4_in {
    uint16_t ciphers[TLS_MAX_CIPHERS];
    size_t n_ciphers;
    uint16_t ext[TLS_MAX_EXT]; /* non-GREASE */
    size_t n_ext;
    uint16_t sigalgs[TLS_MAX_SIGALGS];
    size_t n_sigalgs;
    const uint8_t *alpn; /* first ALPN value, raw */
    size_t alpn_len;
    bool over; /* a cap was hit: no JA4 */
    bool want; /* JA4 wanted: the lists are kept, else only counted as far as the caps need */
};

/* RFC 6066 3: ServerNameList server_name_list<1..2^16-1>; each: NameType(1) then for
 * host_name(0) HostName<1..2^16-1>. Keeps the first host_name. */
static int ext_sni(struct cur e, struct tls_hello *out)
{
    struct cur list = cur_sub(&e, cur_u16be(&e));
    /* each entry consumes at least 3 bytes: bounded by the extension length */
    while (list.err == TW_OK && cur_left(&list) > 0) {
        uint8_t type = cur_u8(&list);
        uint16_t n = cur_u16be(&list);
        const uint8_t *name = cur_bytes(&list, n);
        if (list.err)
            return TW_EBAD;
        if (type == 0 && !out->sni && n > 0) {
            out->sni = name;
            out->sni_len = n;
        }
    }
    return list.err ? TW_EBAD : TW_OK;
}

/* RFC 7301 3.1: ProtocolNameList protocol_name_list<2..2^16-1>; ProtocolName<1..2^8-1>. */
static int ext_alpn(struct cur e, struct tls_hello *out, struct ja4_in *j)
{
    struct cur list = cur_sub(&e, cur_u16be(&e));
    uint8_t n = cur_u8(&list);
    const uint8_t *p = cur_bytes(&list, n);
    if (list.err || n == 0)
        return TW_EBAD;
    j->alpn = p;
    j->alpn_len = n;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof(out->alpn); i++)
        out->alpn[k++] = p[i] >= 0x20 && p[i] < 0x7F ? (char)p[i] : '?';
    out->alpn[k] = '\0';
    return TW_OK;
}

/* RFC 8446 4.2.1: ProtocolVersion versions<2..254> (client). */
static int ext_versions(struct cur e, struct tls_hello *out)
{
    struct cur list = cur_sub(&e, cur_u8(&e));
    uint16_t best = 0;
    while (list.err == TW_OK && cur_left(&list) >= 2) {
        uint16_t v = cur_u16be(&list);
        if (!is_grease(v) && v > best)
            best = v;
    }
    if (list.err || cur_left(&list) != 0)
        return TW_EBAD;
    if (best)
        out->max_version = best;
    return TW_OK;
}

/* RFC 8446 4.2.3: SignatureScheme supported_signature_algorithms<2..2^16-2>. */
static int ext_sigalgs(struct cur e, struct ja4_in *j)
{
    struct cur list = cur_sub(&e, cur_u16be(&e));
    /* without JA4, a list that cannot reach the cap only marks the first one with a
     * non-GREASE value as read (later ones are ignored, as when they are kept) */
    if (!j->want && list.err == TW_OK && cur_left(&list) <= 2 * TLS_MAX_SIGALGS) {
        while (cur_left(&list) >= 2 && j->n_sigalgs == 0)
            if (!is_grease(cur_u16be(&list)))
                j->n_sigalgs = 1;
        return TW_OK;
    }
    while (list.err == TW_OK && cur_left(&list) >= 2) {
        uint16_t v = cur_u16be(&list);
        if (is_grease(v))
            continue;
        /* a cap keeps the JA4 input bounded; a real hello lists about 10 */
        if (j->n_sigalgs == TLS_MAX_SIGALGS) {
            j->over = true;
            break;
        }
        j->sigalgs[j->n_sigalgs++] = v;
    }
    return list.err || cur_left(&list) != 0 ? TW_EBAD : TW_OK;
}

static int ja4_build(bool quic, const struct tls_hello *h, struct ja4_in *j, char *out, size_t cap)
{
    /* 5 bytes per value plus '_' */
    char buf[5 * (TLS_MAX_EXT + TLS_MAX_SIGALGS) + 8];
    char hb[13], hc[13];
    size_t n = 0;
    bool has_sni = false;
    uint16_t ext[TLS_MAX_EXT];
    size_t n_ext = 0;
    for (size_t i = 0; i < j->n_ext; i++) {
        if (j->ext[i] == EXT_SERVER_NAME)
            has_sni = true;
        else if (j->ext[i] != EXT_ALPN)
            ext[n_ext++] = j->ext[i];
    }

    char alpn2[3] = "00";
    if (j->alpn_len > 0) {
        uint8_t first = j->alpn[0], last = j->alpn[j->alpn_len - 1];
        if (is_alnum(first) && is_alnum(last)) {
            alpn2[0] = (char)first;
            alpn2[1] = (char)last;
        } else {
            /* spec: non-alphanumeric -> first and last characters of the hex form */
            static const char hex[] = "0123456789abcdef";
            alpn2[0] = hex[first >> 4];
            alpn2[1] = hex[last & 0xF];
        }
    }

    sort_u16(j->ciphers, j->n_ciphers);
    char cbuf[5 * TLS_MAX_CIPHERS + 1];
    hex_list(cbuf, &n, j->ciphers, j->n_ciphers);
    sha12(cbuf, n, hb);

    sort_u16(ext, n_ext);
    n = 0;
    hex_list(buf, &n, ext, n_ext);
    if (j->n_sigalgs > 0) {
        buf[n++] = '_';
        hex_list(buf, &n, j->sigalgs, j->n_sigalgs);
    }
    sha12(buf, n_ext > 0 ? n : 0, hc);

    size_t nc = j->n_ciphers > 99 ? 99 : j->n_ciphers;
    size_t ne = j->n_ext > 99 ? 99 : j->n_ext;
    int w = snprintf(out, cap, "%c%s%c%02zu%02zu%s_%s_%s", quic ? 'q' : 't',
                     ja4_version(h->max_version), has_sni ? 'd' : 'i', nc, ne, alpn2, hb, hc);
    return w > 0 && (size_t)w < cap ? TW_OK : TW_ELIMIT;
}

/* The fixed part of the ClientHello body h: legacy_version, random, legacy_session_id, then
 * cipher_suites (non-GREASE ones kept for JA4) and legacy_compression_methods. Leaves h at
 * the extensions. TW_OK or TW_EBAD. */
static inline int hello_fixed(struct cur *h, struct tls_hello *out, struct ja4_in *j)
{
    out->legacy_version = cur_u16be(h);
    out->max_version = out->legacy_version;
    cur_skip(h, 32);
    uint8_t sid = cur_u8(h);
    /* RFC 8446: at most 32 bytes; more means this is not a ClientHello */
    if (sid > 32)
        return TW_EBAD;
    cur_skip(h, sid);
    uint16_t cslen = cur_u16be(h);
    struct cur cs = cur_sub(h, cslen);
    struct cur comp = cur_sub(h, cur_u8(h));
    if (h->err)
        return TW_EBAD; /* the outer length said the message was all there */
    if (cslen % 2 != 0 || cur_left(&comp) == 0)
        return TW_EBAD;
    /* without JA4 the suites matter only for the cap, which a shorter list cannot reach */
    if (!j->want && cslen / 2 <= TLS_MAX_CIPHERS)
        return TW_OK;
    while (cur_left(&cs) > 0) {
        uint16_t v = cur_u16be(&cs);
        if (is_grease(v))
            continue;
        /* more suites than any client sends: keep parsing for the SNI, give up on JA4 */
        if (j->n_ciphers == TLS_MAX_CIPHERS)
            j->over = true;
        else
            j->ciphers[j->n_ciphers++] = v;
    }
    return TW_OK;
}

/* One non-GREASE extension of type et, body e: recorded for JA4, then read if it is one we
 * extract. A malformed body is contained by its sub-cursor. A bad server_name refuses the
 * hello (no half-read name: TW_EBAD); a bad ALPN, version or signature list only loses that
 * field, as tshark still shows the rest (TW_OK). */
static inline int hello_extension(uint16_t et, struct cur e, struct tls_hello *out,
                                  struct ja4_in *j)
{
    if (j->n_ext == TLS_MAX_EXT)
        j->over = true;
    else
        j->ext[j->n_ext++] = et;
    switch (et) {
    case EXT_SERVER_NAME:
        return ext_sni(e, out) ? TW_EBAD : TW_OK;
    case EXT_ALPN:
        if (!j->alpn)
            (void)ext_alpn(e, out, j);
        break;
    case EXT_SUPPORTED_VERS:
        (void)ext_versions(e, out);
        break;
    case EXT_SIG_ALGS:
        if (j->n_sigalgs == 0)
            (void)ext_sigalgs(e, j);
        break;
    case EXT_ECH:
        out->has_ech = true;
        break;
    default:
        break;
    }
    return TW_OK;
}

/* Extension extensions<8..2^16-1>, when the hello has any (old SSL 3.0 / TLS 1.0 hellos
 * end before). TW_OK or TW_EBAD. */
static inline int hello_extensions(struct cur *h, struct tls_hello *out, struct ja4_in *j)
{
    if (cur_left(h) == 0)
        return TW_OK;
    struct cur exts = cur_sub(h, cur_u16be(h));
    if (h->err)
        return TW_EBAD;
    /* each extension consumes at least 4 bytes of a message of at most 16 MiB; the walk
     * goes on past TLS_MAX_EXT so that no padding of extensions can hide the SNI, but
     * only TLS_MAX_EXT are kept for JA4. The headers are read straight (this loop runs for
     * every extension of every hello): left is what remains of the vector, checked before
     * each read, and each body becomes its own cursor. */
    const uint8_t *p = exts.p;
    size_t left = cur_left(&exts);
    while (left > 0) {
        if (left < 4)
            return TW_EBAD;
        uint16_t et = (uint16_t)(p[0] << 8 | p[1]);
        size_t el = (size_t)p[2] << 8 | p[3];
        if (el > left - 4)
            return TW_EBAD;
        struct cur e = cur_init(p + 4, el);
        p += 4 + el;
        left -= 4 + el;
        if (is_grease(et))
            continue;
        if (hello_extension(et, e, out, j) != TW_OK)
            return TW_EBAD;
    }
    return TW_OK;
}

/* RFC 8446 4.1.2 (and RFC 5246 7.4.1.2):
 *   Handshake: msg_type(1) = 1, length(3), then ClientHello:
 *   ProtocolVersion legacy_version(2); Random random(32);
 *   opaque legacy_session_id<0..32>; CipherSuite cipher_suites<2..2^16-2>;
 *   opaque legacy_compression_methods<1..2^8-1>; Extension extensions<8..2^16-1>
 *   (absent in old SSL 3.0 / TLS 1.0 hellos); Extension: type(2) extension_data<0..2^16-1>.
 */
int tls_parse_hello(const uint8_t *msg, size_t len, bool quic, struct tls_hello *out)
{
    return tls_parse_hello_opt(msg, len, quic, true, out);
}

int tls_parse_hello_opt(const uint8_t *msg, size_t len, bool quic, bool want_ja4,
                        struct tls_hello *out)
{
    memset(out, 0, sizeof(*out));
    struct cur c = cur_init(msg, len);
    uint8_t type = cur_u8(&c);
    struct cur h = cur_sub(&c, cur_u24be(&c));
    if (c.err)
        return c.err;
    if (type != TLS_HS_CLIENT_HELLO)
        return TW_EBAD;

    struct ja4_in j;
    j.n_ciphers = j.n_ext = j.n_sigalgs = 0;
    j.alpn = NULL;
    j.alpn_len = 0;
    j.over = false;
    j.want = want_ja4;

    if (hello_fixed(&h, out, &j) != TW_OK || hello_extensions(&h, out, &j) != TW_OK)
        return TW_EBAD;
    if (j.over)
        return TW_ELIMIT;
    if (!want_ja4)
        return TW_OK;
    return ja4_build(quic, out, &j, out->ja4, sizeof(out->ja4));
}
