/* json.c - streaming JSON writer (see json.h): the one capped buffer, string escaper and
 * UTF-8 check that the sensor's records and tunnelwatch-web's responses share.
 *
 * UTF-8 validation follows RFC 3629 (no overlongs, no surrogates, max U+10FFFF); anything
 * else becomes U+FFFD so that a hostile hostname can never produce an unparsable line.
 * Escaping copies runs of plain printable ASCII in one go and looks at the rest byte by byte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/json.h"

void jw_init(struct jw *w, size_t max)
{
    memset(w, 0, sizeof(*w));
    w->max = max;
}

void jw_free(struct jw *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void jw_reset(struct jw *w)
{
    w->len = 0;
    w->need_comma = false;
    w->err = TW_OK;
    if (w->buf)
        w->buf[0] = '\0';
}

/* Grows the buffer for n more bytes and a NUL; false (w->err set) when it cannot. */
static bool grow(struct jw *w, size_t n)
{
    if (w->err)
        return false;
    if (w->len + n + 1 <= w->cap)
        return true;
    size_t ncap = w->cap ? w->cap : 1024;
    while (ncap < w->len + n + 1)
        ncap *= 2;
    if (w->max && ncap > w->max) {
        if (w->len + n + 1 > w->max) {
            w->err = TW_ELIMIT;
            return false;
        }
        ncap = w->max;
    }
    char *nb = realloc(w->buf, ncap);
    if (!nb) {
        w->err = TW_ENOMEM;
        return false;
    }
    w->buf = nb;
    w->cap = ncap;
    return true;
}

/* Records write a few dozen short pieces each: the room check stays inline, the growth not. */
static inline void put(struct jw *w, const char *s, size_t n)
{
    if (__builtin_expect(w->err || w->len + n + 1 > w->cap, 0) && !grow(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void jw_append(struct jw *w, const char *s, size_t n)
{
    put(w, s, n);
}

static void puts_(struct jw *w, const char *s)
{
    put(w, s, strlen(s));
}

size_t jw_utf8_len(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t jw_utf8_put(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Bytes written as \u00XX: controls, DEL, and in html_safe mode the HTML markup starters. */
static bool needs_u_escape(const struct jw *w, uint8_t c)
{
    return c < 0x20 || c == 0x7f || (w->html_safe && (c == '<' || c == '>' || c == '&'));
}

/* Bytes copied as they are: printable ASCII but '"' and '\\' (bit 0), and not '<', '>',
 * '&' either (bit 1, html_safe). One table look-up a byte on the hot path. */
static const uint8_t plain_byte[256] =
    {
        [0x20 ... 0x21] = 3, [0x23 ... 0x25] = 3, ['&'] = 1, [0x27 ... 0x3b] = 3,
        ['<'] = 1,           ['='] = 3,           ['>'] = 1, [0x3f ... 0x5b] = 3,
        [0x5d ... 0x7e] = 3, /* '"' (0x22) and '\\' (0x5c) stay 0 */
};

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero when some byte of x is zero (exact for "some"; which byte is not said). */
static inline uint64_t zero_byte(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

/* Non-zero when some byte of the 8 at p is not plain printable ASCII (or is '"', '\\', or
 * in html_safe mode '<', '>', '&'): eight bytes a step for the common case. */
static inline uint64_t word_special(const uint8_t *p, bool html)
{
    uint64_t x;
    memcpy(&x, p, 8);
    uint64_t m = ((x - ONES * 0x20) & ~x & HIGHS) | (x & HIGHS) | zero_byte(x ^ (ONES * 0x7f)) |
                 zero_byte(x ^ (ONES * '"')) | zero_byte(x ^ (ONES * '\\'));
    if (html)
        m |=
            zero_byte(x ^ (ONES * '<')) | zero_byte(x ^ (ONES * '>')) | zero_byte(x ^ (ONES * '&'));
    return m;
}

/* Length of the run of bytes of s[0..n) copied as they are. */
static size_t plain_run(const struct jw *w, const uint8_t *s, size_t n)
{
    uint8_t want = w->html_safe ? 2 : 1;
    size_t i = 0;
    while (i + 8 <= n && !word_special(s + i, w->html_safe))
        i += 8;
    while (i < n && (plain_byte[s[i]] & want))
        i++;
    return i;
}

void jw_escape(struct jw *w, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* copy plain printable ASCII in one go */
        size_t run = i + plain_run(w, s + i, n - i);
        if (run > i) {
            put(w, (const char *)s + i, run - i);
            i = run;
            continue;
        }
        uint8_t c = s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(w, esc, 2);
            i++;
        } else if (needs_u_escape(w, c)) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(w, esc, 6);
            i++;
        } else {
            size_t l = jw_utf8_len(s + i, n - i);
            if (l == 0) {
                puts_(w, "\\ufffd");
                i++;
            } else {
                put(w, (const char *)s + i, l);
                i += l;
            }
        }
    }
}

void jw_begin(struct jw *w)
{
    put(w, "{", 1);
    w->need_comma = false;
}

void jw_end(struct jw *w)
{
    put(w, "}", 1);
    w->need_comma = true;
}

/* Writes pre, then s[0..n) quoted, then post (each short): one copy when s needs no escape,
 * as keys and most values do. */
static void quoted(struct jw *w, const char *pre, size_t npre, const uint8_t *s, size_t n,
                   const char *post, size_t npost)
{
    if (plain_run(w, s, n) == n && grow(w, npre + n + npost + 2)) {
        char *o = w->buf + w->len;
        memcpy(o, pre, npre);
        o += npre;
        *o++ = '"';
        memcpy(o, s, n);
        o += n;
        *o++ = '"';
        memcpy(o, post, npost);
        w->len += npre + n + npost + 2;
        w->buf[w->len] = '\0';
        return;
    }
    put(w, pre, npre);
    put(w, "\"", 1);
    jw_escape(w, s, n);
    put(w, "\"", 1);
    put(w, post, npost);
}

void jw_key(struct jw *w, const char *key)
{
    quoted(w, ",", w->need_comma, (const uint8_t *)key, strlen(key), ":", 1);
    w->need_comma = true;
}

void jw_quote(struct jw *w, const uint8_t *s, size_t n)
{
    quoted(w, "", 0, s, n, "", 0);
}

void jw_strn(struct jw *w, const char *key, const uint8_t *s, size_t n)
{
    jw_key(w, key);
    jw_quote(w, s, n);
}

void jw_str(struct jw *w, const char *key, const char *s)
{
    if (!s)
        return;
    jw_strn(w, key, (const uint8_t *)s, strlen(s));
}

/* Decimal digits of v, written backwards from end; returns the first. (snprintf costs about
 * a thousand instructions a number, and records hold many.) */
static char *dec(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

void jw_u64(struct jw *w, const char *key, uint64_t v)
{
    char b[24];
    jw_key(w, key);
    char *p = dec(v, b + sizeof(b));
    put(w, p, (size_t)(b + sizeof(b) - p));
}

void jw_i64(struct jw *w, const char *key, int64_t v)
{
    char b[24];
    jw_key(w, key);
    char *p = dec(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, b + sizeof(b));
    if (v < 0)
        *--p = '-';
    put(w, p, (size_t)(b + sizeof(b) - p));
}

void jw_bool(struct jw *w, const char *key, bool v)
{
    jw_key(w, key);
    puts_(w, v ? "true" : "false");
}

void jw_addr(struct jw *w, const char *key, const struct tw_addr *a)
{
    char b[TW_ADDR_STRLEN];
    if (!a->family)
        return;
    jw_str(w, key, tw_addr_str(a, b, sizeof(b)));
}

void jw_strv(struct jw *w, const char *key, char *const *v, size_t n)
{
    jw_key(w, key);
    put(w, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(w, ",", 1);
        jw_quote(w, (const uint8_t *)v[i], strlen(v[i]));
    }
    put(w, "]", 1);
}

void jw_u64v(struct jw *w, const char *key, const uint64_t *v, size_t n)
{
    char b[24];
    jw_key(w, key);
    put(w, "[", 1);
    for (size_t i = 0; i < n; i++)
        put(w, b, (size_t)snprintf(b, sizeof(b), "%s%llu", i ? "," : "", (unsigned long long)v[i]));
    put(w, "]", 1);
}

void jw_raw(struct jw *w, const char *key, const char *json)
{
    jw_key(w, key);
    puts_(w, json);
}

/* ---- reading: strict JSON (RFC 8259) ---- */

struct jp {
    struct cur c;
    int depth;
    char *scratch; /* decoded string goes here; sized for the whole input */
    size_t slen;
    unsigned flags; /* JSON_WALK_* */
};

static uint8_t jp_peek(const struct jp *p)
{
    return cur_left(&p->c) ? *p->c.p : 0;
}

static void jp_ws(struct jp *p)
{
    while (cur_left(&p->c)) {
        uint8_t c = *p->c.p;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->c.p++;
    }
}

static int hex4(struct cur *c, uint32_t *v)
{
    const uint8_t *h = cur_bytes(c, 4);
    if (!h)
        return TW_EBAD;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t d = h[i];
        uint32_t x;
        if (d >= '0' && d <= '9')
            x = (uint32_t)(d - '0');
        else if (d >= 'a' && d <= 'f')
            x = (uint32_t)(d - 'a' + 10);
        else if (d >= 'A' && d <= 'F')
            x = (uint32_t)(d - 'A' + 10);
        else
            return TW_EBAD;
        *v = *v << 4 | x;
    }
    return TW_OK;
}

/* RFC 8259 section 7: string = quotation-mark *char quotation-mark. Decodes into out (when not
 * NULL; the decoded form is never longer than the encoded one). */
static int jp_string(struct jp *p, char *out, size_t *outlen)
{
    size_t o = 0;
    if (cur_u8(&p->c) != '"')
        return TW_EBAD;
    for (;;) {
        uint8_t c = cur_u8(&p->c);
        if (p->c.err)
            return TW_EBAD;
        if (c == '"')
            break;
        /* why: raw control characters are not allowed inside a JSON string */
        if (c < 0x20)
            return TW_EBAD;
        if (c != '\\') {
            if (out)
                out[o] = (char)c;
            o++;
            continue;
        }
        uint8_t e = cur_u8(&p->c);
        char ch;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            ch = (char)e;
            break;
        case 'b':
            ch = '\b';
            break;
        case 'f':
            ch = '\f';
            break;
        case 'n':
            ch = '\n';
            break;
        case 'r':
            ch = '\r';
            break;
        case 't':
            ch = '\t';
            break;
        case 'u': {
            uint32_t cp;
            if (hex4(&p->c, &cp))
                return TW_EBAD;
            if (cp >= 0xd800 && cp <= 0xdbff && cur_left(&p->c) >= 6 && p->c.p[0] == '\\' &&
                p->c.p[1] == 'u') {
                struct cur save = p->c;
                uint32_t lo;
                cur_skip(&p->c, 2);
                if (hex4(&p->c, &lo) == TW_OK && lo >= 0xdc00 && lo <= 0xdfff)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else
                    p->c = save;
            }
            /* why: a lone surrogate has no UTF-8 form; show it as U+FFFD, or refuse it */
            if (cp >= 0xd800 && cp <= 0xdfff) {
                if (p->flags & JSON_WALK_STRICT)
                    return TW_EBAD;
                cp = 0xfffd;
            }
            char tmp[4];
            size_t l = jw_utf8_put(cp, tmp);
            if (out)
                memcpy(out + o, tmp, l);
            o += l;
            continue;
        }
        default:
            return TW_EBAD;
        }
        if (out)
            out[o] = ch;
        o++;
    }
    if (out)
        out[o] = '\0';
    if (outlen)
        *outlen = o;
    return TW_OK;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 section 6: number = [ minus ] int [ frac ] [ exp ] */
static int jp_number(struct jp *p)
{
    if (jp_peek(p) == '-')
        p->c.p++;
    if (jp_peek(p) == '0') {
        p->c.p++;
    } else if (is_digit(jp_peek(p))) {
        while (is_digit(jp_peek(p)))
            p->c.p++;
    } else {
        return TW_EBAD;
    }
    if (jp_peek(p) == '.') {
        p->c.p++;
        if (!is_digit(jp_peek(p)))
            return TW_EBAD;
        while (is_digit(jp_peek(p)))
            p->c.p++;
    }
    if (jp_peek(p) == 'e' || jp_peek(p) == 'E') {
        p->c.p++;
        if (jp_peek(p) == '+' || jp_peek(p) == '-')
            p->c.p++;
        if (!is_digit(jp_peek(p)))
            return TW_EBAD;
        while (is_digit(jp_peek(p)))
            p->c.p++;
    }
    return TW_OK;
}

static int jp_lit(struct jp *p, const char *lit)
{
    size_t n = strlen(lit);
    const uint8_t *b = cur_bytes(&p->c, n);
    return b && memcmp(b, lit, n) == 0 ? TW_OK : TW_EBAD;
}

static int jp_value(struct jp *p, char *type);

/* RFC 8259 section 4 (object) and 5 (array), skipped with validation. */
static int jp_container(struct jp *p, uint8_t close)
{
    /* why: nesting depth is attacker-controlled; recursion must stay shallow */
    if (++p->depth > JSON_WALK_DEPTH)
        return TW_ELIMIT;
    p->c.p++;
    jp_ws(p);
    if (jp_peek(p) == close) {
        p->c.p++;
        p->depth--;
        return TW_OK;
    }
    for (;;) {
        char t;
        jp_ws(p);
        if (close == '}') {
            if (jp_string(p, NULL, NULL))
                return TW_EBAD;
            jp_ws(p);
            if (cur_u8(&p->c) != ':')
                return TW_EBAD;
            jp_ws(p);
        }
        int rc = jp_value(p, &t);
        if (rc)
            return rc;
        jp_ws(p);
        uint8_t c = cur_u8(&p->c);
        if (p->c.err)
            return TW_EBAD;
        if (c == close)
            break;
        if (c != ',')
            return TW_EBAD;
    }
    p->depth--;
    return TW_OK;
}

static int jp_value(struct jp *p, char *type)
{
    switch (jp_peek(p)) {
    case '"':
        *type = 's';
        return jp_string(p, NULL, NULL);
    case '{':
        *type = 'o';
        return jp_container(p, '}');
    case '[':
        *type = 'a';
        return jp_container(p, ']');
    case 't':
        *type = 'b';
        return jp_lit(p, "true");
    case 'f':
        *type = 'b';
        return jp_lit(p, "false");
    case 'n':
        *type = 'z';
        return jp_lit(p, "null");
    default:
        *type = 'n';
        return jp_number(p);
    }
}

int json_walk(const char *s, size_t n, size_t max, unsigned flags, json_member_cb cb, void *ctx)
{
    /* the scratch buffers are sized from n: refuse what is past the caller's cap first */
    if (n > max)
        return TW_ELIMIT;
    struct jp p = {.c = cur_init((const uint8_t *)s, n), .depth = 1, .flags = flags};
    char *key = malloc(n + 1), *val = malloc(n + 1);
    int rc = TW_EBAD;
    if (!key || !val) {
        rc = TW_ENOMEM;
        goto out;
    }
    jp_ws(&p);
    if (cur_u8(&p.c) != '{')
        goto out;
    jp_ws(&p);
    if (jp_peek(&p) == '}') {
        p.c.p++;
    } else {
        for (;;) {
            size_t klen, vlen;
            char t;
            jp_ws(&p);
            if (jp_string(&p, key, &klen))
                goto out;
            jp_ws(&p);
            if (cur_u8(&p.c) != ':')
                goto out;
            jp_ws(&p);
            const uint8_t *start = p.c.p;
            if (jp_peek(&p) == '"') {
                t = 's';
                if (jp_string(&p, val, &vlen))
                    goto out;
            } else {
                rc = jp_value(&p, &t);
                if (rc)
                    goto out;
                rc = TW_EBAD;
                vlen = (size_t)(p.c.p - start);
                memcpy(val, start, vlen);
                val[vlen] = '\0';
            }
            int crc = cb ? cb(ctx, key, klen, t, val, vlen) : 0;
            if (crc) {
                rc = crc;
                goto out;
            }
            jp_ws(&p);
            uint8_t c = cur_u8(&p.c);
            if (p.c.err)
                goto out;
            if (c == '}')
                break;
            if (c != ',')
                goto out;
        }
    }
    jp_ws(&p);
    rc = cur_left(&p.c) == 0 ? TW_OK : TW_EBAD; /* nothing after the object */
out:
    free(key);
    free(val);
    return rc;
}
