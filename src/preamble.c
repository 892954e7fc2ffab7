/* preamble.c - proxy handshakes and STARTTLS-style upgrades ahead of a ClientHello.
 *
 * A small state machine over the client's bytes only. The server's answers are never needed:
 * each protocol's client side alone says what comes next (a SOCKS5 client's second message
 * starts with 1 for username/password or 5 for its request; after STARTTLS the client sends
 * either a ClientHello or, if the server refused, another command line). Each call walks at
 * most one message and the caller drops it (PRE_SKIP), so the caller's buffer never holds
 * more than one preamble message and the state is a few counters, not offsets.
 *
 * Safety over reach: a message is recognised only when its fixed bytes are all there (a
 * SOCKS5 method list, a TPKT length matching its X.224 length indicator, the exact LDAP
 * StartTLS OID), text protocols must open with one of their real client commands, and TLS is
 * claimed only where a handshake record header holding a ClientHello starts. Everything is
 * capped: bytes and messages per stream (PRE_MAX_BYTES, PRE_MAX_MSGS), bytes per message
 * (PRE_MAX_LINE, PRE_MAX_MSG, HTTP_HEAD_MAX) and stacked tunnels (PRE_MAX_LAYERS), so a
 * hostile client can hold a flow's buffer for a few KB at most and then is given up.
 */
#include <string.h>
#include <strings.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/http.h"
#include "tunnelwatch/preamble.h"

enum mode {
    M_START = 0,   /* anything: TLS, HTTP, or the first message of a known preamble */
    M_TLS_ONLY,    /* after an upgrade request: a ClientHello or nothing */
    M_LINES,       /* a text protocol's command lines (SMTP, POP3, IMAP, FTP) */
    M_XMPP,        /* an XMPP stream, waiting for <starttls/> */
    M_SOCKS5_AUTH, /* after the SOCKS5 greeting: username/password or the request */
    M_SOCKS5_REQ,  /* after username/password: the request */
    M_DEAD,        /* given up: PRE_NONE from now on */
};

#define F_TRIGGER  1 /* the last command line asked for TLS */
#define F_USERPASS 2 /* the SOCKS5 greeting offered username/password */

#define C_NO    (-1) /* candidate: these bytes are not this preamble */
#define C_MAYBE (-2) /* candidate: consistent so far, more bytes needed */

static const char *const kind_names[PRE_K__COUNT] = {
    "none", "connect", "socks4", "socks5", "proxy_v1", "proxy_v2", "smtp",
    "pop3", "imap",    "ftp",    "xmpp",   "ldap",     "pgsql",    "rdp"};

const char *pre_kind_name(int kind)
{
    return kind > 0 && kind < PRE_K__COUNT ? kind_names[kind] : "none";
}

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* 1 when buf starts with lit, 0 when the len bytes present are a proper prefix of it, -1
 * otherwise. */
static int lit_match(const uint8_t *b, size_t len, const char *lit, bool nocase)
{
    size_t m = strlen(lit);
    size_t n = min_sz(len, m);
    for (size_t i = 0; i < n; i++) {
        uint8_t x = b[i], y = (uint8_t)lit[i];
        if (nocase && x >= 'a' && x <= 'z')
            x = (uint8_t)(x - 'a' + 'A');
        if (x != y)
            return -1;
    }
    return len >= m ? 1 : 0;
}

/* A host name as a proxy carries it: 1-255 visible ASCII bytes. Anything else is not a
 * handshake we know (and would not be a usable observation). */
static bool is_name(const uint8_t *p, size_t n)
{
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

/* Drops n bytes of preamble (mode next from then on), within PRE_MAX_BYTES per stream. */
static int skip_bytes(struct pre_state *st, struct pre_result *out, size_t n, int kind, int next)
{
    if (n > (size_t)(PRE_MAX_BYTES - st->bytes))
        return PRE_NONE;
    st->bytes = (uint16_t)(st->bytes + n);
    st->mode = (uint8_t)next;
    out->off = n;
    out->kind = (uint8_t)kind;
    return PRE_SKIP;
}

/* Completes one preamble message of n bytes; the next call starts after it in mode next.
 * The per-stream caps are checked here, once for every protocol. */
static int skip_msg(struct pre_state *st, struct pre_result *out, size_t n, int kind, int next)
{
    if (st->msgs >= PRE_MAX_MSGS)
        return PRE_NONE;
    int r = skip_bytes(st, out, n, kind, next);
    if (r == PRE_SKIP)
        st->msgs++;
    return r;
}

/* A tunnel's handshake is complete: whatever follows starts afresh (TLS, HTTP or another
 * preamble), up to PRE_MAX_LAYERS deep. */
static int skip_tunnel(struct pre_state *st, struct pre_result *out, size_t n, int kind)
{
    if (st->layers >= PRE_MAX_LAYERS)
        return PRE_NONE;
    int r = skip_msg(st, out, n, kind, M_START);
    if (r == PRE_SKIP) {
        st->layers++;
        st->flags = 0;
        st->kind = PRE_K_NONE;
    }
    return r;
}

/* RFC 8446 5.1 record header + 4 handshake header: type 22, legacy version 3.x (x <= 4),
 * a length that can hold a handshake header and no more than a record may (2^14 + 2048),
 * then handshake type 1 (ClientHello). Only when all six bytes agree is it TLS. */
static int tls_check(const uint8_t *b, size_t len)
{
    if (len >= 1 && b[0] != 0x16)
        return C_NO;
    if (len >= 2 && b[1] != 3)
        return C_NO;
    if (len >= 3 && b[2] > 4)
        return C_NO;
    if (len >= 5) {
        unsigned rl = (unsigned)b[3] << 8 | b[4];
        if (rl < 4 || rl > 16384 + 2048)
            return C_NO;
    }
    if (len >= 6 && b[5] != 1)
        return C_NO;
    return len >= 6 ? PRE_TLS_AT : C_MAYBE;
}

/* Mode M_TLS_ONLY (and after a STARTTLS line): the ClientHello, or give up. */
static int want_tls(const uint8_t *b, size_t len, struct pre_result *out)
{
    int r = tls_check(b, len);
    if (r == C_MAYBE)
        return PRE_NEED_MORE;
    if (r == C_NO)
        return PRE_NONE;
    out->off = 0;
    return PRE_TLS_AT;
}

/* ---------- HTTP CONNECT (RFC 9110 9.3.6) ---------- */

static int cand_http(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (!http_looks_like_request(b, len))
        return C_NO;
    /* the longest method in http.c is 10 bytes: its space comes within 11 */
    if (!memchr(b, ' ', min_sz(len, 11)))
        return C_MAYBE;
    if (lit_match(b, len, "CONNECT ", false) != 1) {
        out->off = 0;
        return PRE_HTTP_AT;
    }
    struct http_req rq;
    int e = http_parse_request(b, len, &rq);
    if (e == TW_ETRUNC)
        return PRE_NEED_MORE;
    if (e != TW_OK || !rq.connect)
        return PRE_NONE;
    if (is_name(rq.authority, rq.authority_len)) {
        out->authority = rq.authority;
        out->authority_len = rq.authority_len;
    }
    out->port = rq.port;
    out->host = rq.host;
    out->host_len = rq.host_len;
    return skip_tunnel(st, out, rq.head_len, PRE_K_CONNECT);
}

/* ---------- SOCKS ---------- */

/* SOCKS4 (and 4a): VN=4 CD=1 (CONNECT) DSTPORT(2) DSTIP(4) USERID NUL; 4a sends DSTIP
 * 0.0.0.x (x != 0) and the host name, NUL-terminated, after the user id. BIND (CD=2) is not
 * followed: its stream carries what the server accepted, not a ClientHello. */
static int cand_socks4(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (b[0] != 4)
        return C_NO;
    if (len >= 2 && b[1] != 1)
        return C_NO;
    if (len < 8)
        return C_MAYBE;
    uint16_t port = (uint16_t)(b[2] << 8 | b[3]);
    if (port == 0)
        return C_NO;
    bool v4a = b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] != 0;
    /* the user id: up to 255 bytes, no control characters */
    size_t i = 8;
    while (i < len && i < 8 + 256 && b[i] != 0) {
        if (b[i] < 0x20 || b[i] == 0x7f)
            return C_NO;
        i++;
    }
    if (i == 8 + 256)
        return C_NO;
    if (i == len)
        return C_MAYBE;
    i++; /* NUL */
    if (v4a) {
        size_t d = i;
        while (i < len && i < d + 256 && b[i] != 0)
            i++;
        if (i == d + 256)
            return C_NO;
        if (i == len)
            return C_MAYBE;
        if (!is_name(b + d, i - d))
            return C_NO;
        out->authority = b + d;
        out->authority_len = i - d;
        i++;
    }
    out->port = port;
    return skip_tunnel(st, out, i, PRE_K_SOCKS4);
}

/* RFC 1928 3: VER=5 NMETHODS METHODS[NMETHODS]. Method numbers are 0-9 (IANA) or
 * 0x80-0xFE (private); 0xFF is "no acceptable method", which a client never offers. */
static int cand_socks5(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (b[0] != 5)
        return C_NO;
    if (len < 2)
        return C_MAYBE;
    size_t n = b[1];
    if (n == 0)
        return C_NO;
    bool userpass = false;
    for (size_t i = 0; i < n; i++) {
        if (2 + i >= len)
            return C_MAYBE;
        uint8_t m = b[2 + i];
        if ((m > 9 && m < 0x80) || m == 0xff)
            return C_NO;
        userpass |= m == 2;
    }
    int r = skip_msg(st, out, 2 + n, PRE_K_SOCKS5, M_SOCKS5_AUTH);
    if (r == PRE_SKIP)
        st->flags = userpass ? F_USERPASS : 0;
    return r;
}

/* RFC 1929 2: VER=1 ULEN UNAME[ULEN] PLEN PASSWD[PLEN], sent only when offered (method 2). */
static int socks5_auth(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    struct cur c = cur_init(b, len);
    cur_skip(&c, 1);
    uint8_t ul = cur_u8(&c);
    cur_skip(&c, ul);
    uint8_t pl = cur_u8(&c);
    cur_skip(&c, pl);
    if (c.err)
        return PRE_NEED_MORE;
    if (ul == 0)
        return PRE_NONE;
    return skip_msg(st, out, (size_t)(c.p - b), PRE_K_SOCKS5, M_SOCKS5_REQ);
}

/* RFC 1928 4: VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT; ATYP 1 = IPv4 (4), 3 = domain (length
 * byte + name), 4 = IPv6 (16). Only CONNECT (1) carries the client's stream; BIND and UDP
 * ASSOCIATE do not. */
static int socks5_req(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (b[0] != 5 || (len >= 2 && b[1] != 1) || (len >= 3 && b[2] != 0))
        return PRE_NONE;
    struct cur c = cur_init(b, len);
    cur_skip(&c, 3);
    uint8_t atyp = cur_u8(&c);
    const uint8_t *name = NULL;
    size_t nl = 0;
    if (c.err)
        return PRE_NEED_MORE;
    if (atyp == 1) {
        cur_skip(&c, 4);
    } else if (atyp == 4) {
        cur_skip(&c, 16);
    } else if (atyp == 3) {
        nl = cur_u8(&c);
        name = cur_bytes(&c, nl);
    } else {
        return PRE_NONE;
    }
    uint16_t port = cur_u16be(&c);
    if (c.err)
        return PRE_NEED_MORE;
    if (atyp == 3) {
        if (!is_name(name, nl))
            return PRE_NONE;
        out->authority = name;
        out->authority_len = nl;
    }
    out->port = port;
    return skip_tunnel(st, out, (size_t)(c.p - b), PRE_K_SOCKS5);
}

/* ---------- PROXY protocol (haproxy's proxy-protocol.txt, versions 1 and 2) ---------- */

/* v1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") ... CRLF, at most 107 bytes in all. */
static int cand_proxy1(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    int m = lit_match(b, len, "PROXY ", false);
    if (m <= 0)
        return m < 0 ? C_NO : C_MAYBE;
    if (len >= 7 && lit_match(b + 6, len - 6, "TCP4 ", false) < 0 &&
        lit_match(b + 6, len - 6, "TCP6 ", false) < 0 &&
        lit_match(b + 6, len - 6, "UNKNOWN", false) < 0)
        return PRE_NONE;
    size_t lim = min_sz(len, 107);
    size_t i = 6;
    while (i < lim && b[i] != '\n') {
        if ((b[i] < 0x20 && b[i] != '\r') || b[i] >= 0x7f)
            return PRE_NONE;
        i++;
    }
    if (i == lim)
        return len >= 107 ? PRE_NONE : PRE_NEED_MORE;
    if (b[i - 1] != '\r' || i < 14) /* "PROXY UNKNOWN\r" is the shortest */
        return PRE_NONE;
    return skip_tunnel(st, out, i + 1, PRE_K_PROXY_V1);
}

/* v2: 12-byte signature, ver_cmd (0x20 LOCAL, 0x21 PROXY), fam (family << 4 | transport),
 * len(2), then the addresses (12 for INET, 36 for INET6, 216 for UNIX) and TLVs
 * type(1) length(2) value. TLV 0x02 (PP2_TYPE_AUTHORITY) is the host name the client asked
 * for, usually its SNI. */
static const uint8_t pp2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int cand_proxy2(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (memcmp(b, pp2_sig, min_sz(len, 12)) != 0)
        return C_NO;
    if (len < 16)
        return C_MAYBE;
    if ((b[12] & 0xf0) != 0x20 || (b[12] & 0x0f) > 1)
        return PRE_NONE;
    uint8_t fam = b[13] >> 4, tr = b[13] & 0x0f;
    size_t body = (size_t)b[14] << 8 | b[15];
    if (fam > 3 || tr > 2 || 16 + body > PRE_MAX_MSG)
        return PRE_NONE;
    if (len < 16 + body)
        return PRE_NEED_MORE;
    static const size_t addr_len[4] = {0, 12, 36, 216};
    if (body < addr_len[fam])
        return PRE_NONE;
    struct cur c = cur_init(b + 16, body);
    const uint8_t *a = cur_bytes(&c, addr_len[fam]);
    if (fam == 1 || fam == 2) /* src addr, dst addr, src port, dst port */
        out->port = (uint16_t)(a[addr_len[fam] - 2] << 8 | a[addr_len[fam] - 1]);
    /* TLVs: a malformed one ends the walk but not the header (its length was checked) */
    while (cur_left(&c) >= 3) {
        uint8_t type = cur_u8(&c);
        struct cur v = cur_sub(&c, cur_u16be(&c));
        if (c.err)
            break;
        if (type == 0x02 && !out->authority && is_name(v.p, cur_left(&v))) {
            out->authority = v.p;
            out->authority_len = cur_left(&v);
        }
    }
    return skip_tunnel(st, out, 16 + body, PRE_K_PROXY_V2);
}

/* ---------- upgrades to TLS ---------- */

/* PostgreSQL SSLRequest: Int32 length 8, Int32 80877103 (0x04d2162f). */
static int cand_pgsql(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    static const uint8_t sslreq[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    if (memcmp(b, sslreq, min_sz(len, 8)) != 0)
        return C_NO;
    if (len < 8)
        return C_MAYBE;
    return skip_msg(st, out, 8, PRE_K_PGSQL, M_TLS_ONLY);
}

/* BER definite length (X.690 8.1.3): short form, or 0x81-0x84 and that many bytes. */
static size_t ber_len(struct cur *c)
{
    uint8_t l = cur_u8(c);
    if (l < 0x80)
        return l;
    if (l > 0x84) {
        c->err = TW_EBAD;
        return 0;
    }
    size_t v = 0;
    for (int i = 0; i < (l & 0x7f); i++)
        v = v << 8 | cur_u8(c);
    return v;
}

/* RFC 4511 4.14.1 StartTLS: LDAPMessage SEQUENCE (0x30) { messageID INTEGER (0x02),
 * ExtendedRequest [APPLICATION 23] (0x77) { requestName [0] (0x80) "1.3.6.1.4.1.1466.20037" },
 * controls [0] optional }. */
static int cand_ldap(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    static const char oid[] = "1.3.6.1.4.1.1466.20037";
    if (b[0] != 0x30)
        return C_NO;
    struct cur c = cur_init(b, len);
    cur_skip(&c, 1);
    size_t total = ber_len(&c);
    size_t hdr = (size_t)(c.p - b);
    if (c.err == TW_OK && (total < 2 + 1 + 2 + 2 + 22 || total > 512))
        return C_NO;
    if (cur_u8(&c) != 0x02 && c.err == TW_OK)
        return C_NO;
    uint8_t il = cur_u8(&c);
    if (c.err == TW_OK && (il == 0 || il > 4))
        return C_NO;
    cur_skip(&c, il);
    if (cur_u8(&c) != 0x77 && c.err == TW_OK)
        return C_NO;
    (void)ber_len(&c);
    if (cur_u8(&c) != 0x80 && c.err == TW_OK)
        return C_NO;
    if (cur_u8(&c) != 22 && c.err == TW_OK)
        return C_NO;
    size_t have = min_sz(cur_left(&c), 22);
    if (c.err == TW_EBAD || (c.err == TW_OK && memcmp(c.p, oid, have) != 0))
        return C_NO;
    if (c.err || have < 22)
        return C_MAYBE;
    if ((size_t)(c.p + 22 - b) > hdr + total)
        return C_NO; /* the OID must lie inside the message */
    if (len < hdr + total)
        return PRE_NEED_MORE;
    return skip_msg(st, out, hdr + total, PRE_K_LDAP, M_TLS_ONLY);
}

/* RDP: TPKT (RFC 1006 6) version 3, reserved 0, length(2) of the whole packet, carrying an
 * X.224 Connection Request (X.224 13.3): LI = length - 5, code 0xE0, DST-REF 0, SRC-REF,
 * class; then MS-RDPBCGR 2.2.1.1's cookie and RDP_NEG_REQ. When the client asked for TLS or
 * CredSSP its next bytes (after the server's Connection Confirm) are a ClientHello. */
static int cand_rdp(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if (b[0] != 3 || (len >= 2 && b[1] != 0))
        return C_NO;
    if (len < 8)
        return C_MAYBE;
    size_t tl = (size_t)b[2] << 8 | b[3];
    if (tl < 11 || tl > PRE_MAX_LINE || b[4] != tl - 5 || (b[5] & 0xf0) != 0xe0 || b[6] != 0 ||
        b[7] != 0)
        return C_NO;
    if (len < tl)
        return PRE_NEED_MORE;
    return skip_msg(st, out, tl, PRE_K_RDP, M_TLS_ONLY);
}

/* ---------- text protocols: SMTP, POP3, IMAP, FTP ---------- */

/* Commands a client may open with (RFC 5321 4.1.1, RFC 1939/2449, RFC 959/2389/4217), and
 * the protocol each names. AUTH, USER and NOOP are POP3 and FTP alike; the kind is settled
 * by the upgrade command. */
static const struct {
    const char *cmd;
    uint8_t kind;
} openers[] = {
    {"EHLO", PRE_K_SMTP}, {"HELO", PRE_K_SMTP}, {"LHLO", PRE_K_SMTP}, {"STARTTLS", PRE_K_SMTP},
    {"CAPA", PRE_K_POP3}, {"STLS", PRE_K_POP3}, {"APOP", PRE_K_POP3}, {"AUTH", PRE_K_POP3},
    {"USER", PRE_K_POP3}, {"NOOP", PRE_K_POP3}, {"FEAT", PRE_K_FTP},  {"SYST", PRE_K_FTP},
    {"OPTS", PRE_K_FTP},  {"PBSZ", PRE_K_FTP},
};

/* RFC 9051 6: an IMAP client opens with tag SP command; these can come before STARTTLS. */
static const char *const imap_openers[] = {"CAPABILITY", "STARTTLS",     "NOOP",  "ID",
                                           "LOGIN",      "AUTHENTICATE", "ENABLE"};

#define IMAP_TAG_MAX 16

static bool is_tag_char(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.';
}

/* A keyword then SP, CR or LF: 1 matched, 0 could still match, -1 cannot. */
static int word_match(const uint8_t *b, size_t len, const char *w)
{
    int m = lit_match(b, len, w, true);
    if (m <= 0)
        return m;
    size_t n = strlen(w);
    if (len == n)
        return 0;
    return b[n] == ' ' || b[n] == '\r' || b[n] == '\n' ? 1 : -1;
}

/* The protocol a first command line opens (a PRE_K_*), C_MAYBE or C_NO. */
static int text_opener(const uint8_t *b, size_t len)
{
    bool maybe = false;
    for (size_t i = 0; i < TW_ARRAY_LEN(openers); i++) {
        int m = word_match(b, len, openers[i].cmd);
        if (m == 1)
            return openers[i].kind;
        maybe |= m == 0;
    }
    size_t t = 0;
    while (t < len && t <= IMAP_TAG_MAX && is_tag_char(b[t]))
        t++;
    if (t == len && t <= IMAP_TAG_MAX)
        return C_MAYBE;
    if (t > 0 && t <= IMAP_TAG_MAX && b[t] == ' ') {
        for (size_t i = 0; i < TW_ARRAY_LEN(imap_openers); i++) {
            int m = word_match(b + t + 1, len - t - 1, imap_openers[i]);
            if (m == 1)
                return PRE_K_IMAP;
            maybe |= m == 0;
        }
    }
    return maybe ? C_MAYBE : C_NO;
}

/* Equal to w, ignoring case. */
static bool word_is(const uint8_t *p, size_t n, const char *w)
{
    return n == strlen(w) && strncasecmp((const char *)p, w, n) == 0;
}

/* The upgrade commands: SMTP "STARTTLS" (RFC 3207), POP3 "STLS" (RFC 2595), IMAP
 * "tag STARTTLS" (RFC 9051 6.2.1), FTP "AUTH TLS" / "AUTH SSL" / "AUTH TLS-C" / "AUTH TLS-P"
 * (RFC 4217 4, and the draft names clients still send). Returns the PRE_K_* or 0. */
static int trigger_kind(const uint8_t *p, size_t n)
{
    if (word_is(p, n, "STARTTLS"))
        return PRE_K_SMTP;
    if (word_is(p, n, "STLS"))
        return PRE_K_POP3;
    if (n > 5 && strncasecmp((const char *)p, "AUTH ", 5) == 0) {
        const uint8_t *a = p + 5;
        size_t an = n - 5;
        if (word_is(a, an, "TLS") || word_is(a, an, "SSL") || word_is(a, an, "TLS-C") ||
            word_is(a, an, "TLS-P"))
            return PRE_K_FTP;
        return 0;
    }
    const uint8_t *sp = memchr(p, ' ', n);
    if (!sp || sp == p || (size_t)(sp - p) > IMAP_TAG_MAX)
        return 0;
    for (const uint8_t *t = p; t < sp; t++)
        if (!is_tag_char(*t))
            return 0;
    return word_is(sp + 1, (size_t)(p + n - sp - 1), "STARTTLS") ? PRE_K_IMAP : 0;
}

/* One command line: visible text (UTF-8 allowed, as SMTPUTF8 and IMAP allow it), ended by
 * LF within PRE_MAX_LINE bytes. An upgrade command arms F_TRIGGER for the next call. */
static int text_line(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out,
                     int kind)
{
    size_t lim = min_sz(len, PRE_MAX_LINE);
    size_t i = 0;
    while (i < lim && b[i] != '\n') {
        if ((b[i] < 0x20 && b[i] != '\t' && b[i] != '\r') || b[i] == 0x7f)
            return PRE_NONE;
        i++;
    }
    if (i == lim)
        return len >= PRE_MAX_LINE ? PRE_NONE : PRE_NEED_MORE;
    size_t n = i;
    while (n > 0 && (b[n - 1] == '\r' || b[n - 1] == ' ' || b[n - 1] == '\t'))
        n--;
    int tk = trigger_kind(b, n);
    int r = skip_msg(st, out, i + 1, tk ? tk : kind, M_LINES);
    if (r == PRE_SKIP) {
        st->kind = (uint8_t)(tk ? tk : kind);
        st->flags = tk ? F_TRIGGER : 0;
    }
    return r;
}

/* Mode M_LINES: after an upgrade command, a ClientHello; otherwise (or if the server refused
 * and the client carries on in plaintext) the next command line. */
static int lines(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    if ((st->flags & F_TRIGGER) && b[0] == 0x16)
        return want_tls(b, len, out);
    return text_line(st, b, len, out, st->kind);
}

/* ---------- XMPP (RFC 6120 4.2, 5.4.2) ---------- */

/* Length of the leading run of visible text or XML whitespace (UTF-8 allowed) in b[0..n). */
static size_t xml_text_len(const uint8_t *b, size_t n)
{
    size_t i = 0;
    while (i < n &&
           !((b[i] < 0x20 && b[i] != '\t' && b[i] != '\r' && b[i] != '\n') || b[i] == 0x7f))
        i++;
    return i;
}

static const uint8_t *find(const uint8_t *h, size_t hn, const char *needle)
{
    return memmem(h, hn, needle, strlen(needle));
}

/* The stream header: optional "<?xml ...?>", then "<stream:stream ... to='domain' ...>". Its
 * `to` is the server domain the client asks for, an observation like SNI. */
static int cand_xmpp(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    int m1 = lit_match(b, len, "<?xml", false);
    int m2 = lit_match(b, len, "<stream:stream", false);
    if (m1 < 0 && m2 < 0)
        return C_NO;
    if (m1 < 1 && m2 < 1)
        return C_MAYBE;
    size_t lim = min_sz(len, PRE_MAX_LINE);
    size_t txt = xml_text_len(b, lim); /* the header is text; what follows it may not be */
    const uint8_t *s = find(b, txt, "<stream:stream");
    const uint8_t *gt = s ? memchr(s, '>', (size_t)(b + txt - s)) : NULL;
    if (!gt)
        return txt < lim || len >= PRE_MAX_LINE ? PRE_NONE : PRE_NEED_MORE;
    size_t tag = (size_t)(gt - s);
    const uint8_t *to = find(s, tag, " to=");
    if (!to)
        to = find(s, tag, "\tto=");
    if (!to)
        to = find(s, tag, "\nto=");
    if (to && to + 5 < gt && (to[4] == '\'' || to[4] == '"')) {
        const uint8_t *v = to + 5;
        const uint8_t *q = memchr(v, to[4], (size_t)(gt - v));
        if (q && is_name(v, (size_t)(q - v))) {
            out->authority = v;
            out->authority_len = (size_t)(q - v);
        }
    }
    return skip_msg(st, out, (size_t)(gt - b) + 1, PRE_K_XMPP, M_XMPP);
}

/* Mode M_XMPP: elements up to <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>; the
 * bytes before it are dropped up to their last '>' so the buffer stays small. */
static int xmpp(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    size_t lim = min_sz(len, PRE_MAX_MSG);
    size_t txt = xml_text_len(b, lim); /* the ClientHello may follow <starttls/> at once */
    const uint8_t *s = find(b, txt, "<starttls");
    if (s) {
        const uint8_t *e = find(s, (size_t)(b + txt - s), "/>");
        const uint8_t *e2 = find(s, (size_t)(b + txt - s), "</starttls>");
        if (e2 && (!e || e2 < e))
            e = e2 + 9; /* so that e + 2 is past "</starttls>" */
        if (e)
            return skip_msg(st, out, (size_t)(e + 2 - b), PRE_K_XMPP, M_TLS_ONLY);
    } else {
        size_t last = txt;
        while (last > 0 && b[last - 1] != '>')
            last--;
        /* drop whole elements, keep a part-received one; how many elements a segment holds
         * is up to the sender, so only the bytes count against the caps */
        if (last > 0)
            return skip_bytes(st, out, last, PRE_K_XMPP, M_XMPP);
    }
    return txt < lim || len >= PRE_MAX_MSG ? PRE_NONE : PRE_NEED_MORE;
}

/* ---------- start of stream ---------- */

typedef int (*cand_fn)(struct pre_state *, const uint8_t *, size_t, struct pre_result *);

static int start(struct pre_state *st, const uint8_t *b, size_t len, struct pre_result *out)
{
    static const cand_fn cands[] = {cand_http,  cand_socks4, cand_socks5, cand_proxy1, cand_proxy2,
                                    cand_pgsql, cand_ldap,   cand_rdp,    cand_xmpp};
    int r = tls_check(b, len);
    if (r == PRE_TLS_AT) {
        out->off = 0;
        return r;
    }
    bool maybe = r == C_MAYBE;
    for (size_t i = 0; i < TW_ARRAY_LEN(cands); i++) {
        r = cands[i](st, b, len, out);
        if (r >= 0)
            return r;
        maybe |= r == C_MAYBE;
    }
    r = text_opener(b, len);
    if (r > 0)
        return text_line(st, b, len, out, r);
    maybe |= r == C_MAYBE;
    return maybe ? PRE_NEED_MORE : PRE_NONE;
}

int pre_scan(struct pre_state *st, const uint8_t *buf, size_t len, struct pre_result *out)
{
    memset(out, 0, sizeof(*out));
    if (st->mode == M_DEAD)
        return PRE_NONE;
    if (len == 0)
        return PRE_NEED_MORE;
    int r;
    switch (st->mode) {
    case M_START:
        r = start(st, buf, len, out);
        break;
    case M_TLS_ONLY:
        r = want_tls(buf, len, out);
        break;
    case M_LINES:
        r = lines(st, buf, len, out);
        break;
    case M_XMPP:
        r = xmpp(st, buf, len, out);
        break;
    case M_SOCKS5_AUTH:
        if (buf[0] == 5)
            r = socks5_req(st, buf, len, out);
        else if (buf[0] == 1 && (st->flags & F_USERPASS))
            r = socks5_auth(st, buf, len, out);
        else
            r = PRE_NONE;
        break;
    case M_SOCKS5_REQ:
        r = socks5_req(st, buf, len, out);
        break;
    default:
        r = PRE_NONE;
        break;
    }
    if (r == PRE_NONE) {
        memset(out, 0, sizeof(*out));
        st->mode = M_DEAD;
    } else if (r == PRE_NEED_MORE) {
        /* nothing is reported before its message is complete */
        memset(out, 0, sizeof(*out));
    }
    return r;
}
