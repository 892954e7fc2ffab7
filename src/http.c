/* http.c - HTTP/1.x request head (request line, Host and a few fields) and response head
 * (status line and body length).
 *
 * One request head is read at a time, up to its blank line. The request
 * line is checked as soon as it is complete (or as soon as its method cannot be a token),
 * so a flow that is not HTTP is given up early instead of buffering HTTP_HEAD_MAX bytes.
 * The head is then searched for its end before any header is trusted, so a Host value is
 * never taken from a head that might still be continued by the next segment. Bare LF line
 * ends are accepted (RFC 9112 2.2 allows a recipient to), obsolete line folding is not
 * (RFC 9112 5.2: a request with it may be rejected). The request line is split on whitespace
 * runs, as RFC 9112 3 lets a recipient do (and as tshark and many servers do). The Host view
 * keeps IPv6 brackets
 * ("[2001:db8::1]:8080" -> "[2001:db8::1]") and drops the port. For pipelining the parser
 * says where the next request starts: after the head, plus a Content-Length body; with
 * Transfer-Encoding (chunked) the length is left unknown rather than walking the chunks.
 */
#include <string.h>
#include <strings.h>

#include "tunnelwatch/cursor.h"
#include "tunnelwatch/http.h"

#define HTTP_METHOD_MAX 32 /* longest method token we wait for */

static const char *const methods[] = {"GET",       "POST",   "HEAD",    "PUT",       "DELETE",
                                      "OPTIONS",   "PATCH",  "CONNECT", "TRACE",     "PROPFIND",
                                      "PROPPATCH", "MKCOL",  "COPY",    "MOVE",      "LOCK",
                                      "UNLOCK",    "REPORT", "SEARCH",  "MKCALENDAR"};

bool http_looks_like_request(const uint8_t *buf, size_t len)
{
    /* true when the bytes present are consistent with "<known method> " */
    if (len == 0)
        return false;
    for (size_t i = 0; i < TW_ARRAY_LEN(methods); i++) {
        size_t m = strlen(methods[i]);
        size_t n = len < m ? len : m;
        if (memcmp(buf, methods[i], n) != 0)
            continue;
        if (len <= m || buf[m] == ' ')
            return true;
    }
    return false;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 * "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Length of the line at p (without its CR LF or LF), or -1 when no LF within n bytes. */
static long line_len(const uint8_t *p, size_t n, size_t *advance)
{
    const uint8_t *lf = memchr(p, '\n', n);
    if (!lf)
        return -1;
    size_t l = (size_t)(lf - p);
    *advance = l + 1;
    if (l > 0 && p[l - 1] == '\r')
        l--;
    return (long)l;
}

/* RFC 9112 3: request-line = method SP request-target SP HTTP-version, where
 * HTTP-version = "HTTP/" DIGIT "." DIGIT. Only 1.x is ours (2 and 3 are binary). */
static int check_request_line(const uint8_t *p, size_t n, bool complete, size_t *toff, size_t *tlen)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i]))
        i++;
    if (i == n)
        /* a method longer than any real one is not worth waiting for */
        return !complete && n <= HTTP_METHOD_MAX ? TW_ETRUNC : TW_EBAD;
    if (i == 0 || p[i] != ' ')
        return TW_EBAD;
    if (!complete)
        return TW_ETRUNC;
    /* the version is the last 8 bytes, after a space */
    static const char ver[] = "HTTP/1.";
    if (n < i + 1 + 1 + 1 + 8)
        return TW_EBAD;
    const uint8_t *v = p + n - 8;
    if (memcmp(v, ver, 7) != 0 || v[7] < '0' || v[7] > '9' || v[-1] != ' ')
        return TW_EBAD;
    /* RFC 9112 3: a recipient may split the line on whitespace runs instead of single spaces.
     * tshark does, and so do servers that attack tools aim at (runs of spaces after the method,
     * unencoded spaces inside the target), so the target is everything between the method's
     * and the version's whitespace; controls still refuse the line */
    const uint8_t *t = p + i, *e = v - 1;
    while (t < e && (*t == ' ' || *t == '\t'))
        t++;
    while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e == t)
        return TW_EBAD; /* empty request-target */
    for (const uint8_t *q = t; q < e; q++)
        if ((*q < ' ' && *q != '\t') || *q == 0x7F)
            return TW_EBAD;
    *toff = (size_t)(t - p);
    *tlen = (size_t)(e - t);
    return TW_OK;
}

/* RFC 9110 7.2: Host = uri-host [ ":" port ]; uri-host may be an IP-literal "[...]". */
static void host_view(const uint8_t *v, size_t n, const uint8_t **host, size_t *host_len)
{
    /* OWS around the field value (RFC 9110 5.5) */
    while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n > 0 && v[0] == '[') {
        const uint8_t *rb = memchr(v, ']', n);
        if (rb)
            n = (size_t)(rb - v) + 1;
    } else {
        const uint8_t *colon = memchr(v, ':', n);
        if (colon)
            n = (size_t)(colon - v);
    }
    *host = v;
    *host_len = n;
}

/* RFC 9112 3.2.3: authority-form = uri-host ":" port (CONNECT only). The host keeps IPv6
 * brackets, as the Host view does; a port that is not 1-5 digits <= 65535 reads as 0. */
static void authority_view(const uint8_t *t, size_t n, struct http_req *out)
{
    size_t hl = n;
    const uint8_t *colon = NULL;
    if (n > 0 && t[0] == '[') {
        const uint8_t *rb = memchr(t, ']', n);
        hl = rb ? (size_t)(rb - t) + 1 : n;
        if (hl < n && t[hl] == ':')
            colon = t + hl;
    } else {
        colon = memchr(t, ':', n);
        if (colon)
            hl = (size_t)(colon - t);
    }
    out->authority = t;
    out->authority_len = hl;
    out->port = 0;
    if (!colon)
        return;
    size_t pl = n - (size_t)(colon + 1 - t);
    unsigned v = 0;
    if (pl == 0 || pl > 5)
        return;
    for (size_t i = 0; i < pl; i++) {
        uint8_t d = colon[1 + i];
        if (d < '0' || d > '9')
            return;
        v = v * 10 + (unsigned)(d - '0');
    }
    if (v <= 65535)
        out->port = (uint16_t)v;
}

/* RFC 9112 6.3: Content-Length = 1*DIGIT. Returns false for anything else (a list, a sign,
 * more digits than any buffer could hold), which makes the body length unknown. */
static bool content_length(const uint8_t *v, size_t n, size_t *cl)
{
    while (n > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || n > 15) /* 15 digits: far beyond any buffer, and no overflow below */
        return false;
    size_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *cl = x;
    return true;
}

/* The header fields that matter here, read from one request head. */
struct head_fields {
    const uint8_t *host;
    size_t host_len;
    const uint8_t *ua, *cookie, *referer;
    size_t ua_len, cookie_len, referer_len;
    bool have_host, have_cl, body_unknown;
    size_t cl;
};

/* A field value without its surrounding OWS (RFC 9110 5.6.3: SP / HTAB); never NULL. */
static void ows_view(const uint8_t *v, size_t n, const uint8_t **out, size_t *out_len)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
        n--;
    *out = v;
    *out_len = n;
}

/* One field line (RFC 9112 5: field-name ":" OWS field-value OWS). TW_OK or TW_EBAD. first:
 * no field line came before it. */
static int header_field(const uint8_t *p, size_t l, struct head_fields *f, bool first)
{
    /* obs-fold: a line starting with whitespace continues the previous field's value (RFC 9112
     * 5.2: a recipient may read it as a space; real clients send it, tshark reads it); before
     * any field it is whitespace after the request line, which is refused (RFC 9112 2.2) */
    if (p[0] == ' ' || p[0] == '\t')
        return first ? TW_EBAD : TW_OK;
    const uint8_t *colon = memchr(p, ':', l);
    if (!colon || colon == p)
        return TW_EBAD;
    for (const uint8_t *t = p; t < colon; t++)
        if (!is_tchar(*t))
            return TW_EBAD; /* also refuses "Host :", RFC 9112 5.1 */
    size_t nl = (size_t)(colon - p);
    const uint8_t *v = colon + 1;
    size_t vn = (size_t)(p + l - v);
    if (nl == 4 && strncasecmp((const char *)p, "host", 4) == 0) {
        if (!f->have_host) /* the first Host counts; RFC 9110 7.2 forbids more than one */
            host_view(v, vn, &f->host, &f->host_len);
        f->have_host = true;
    } else if (nl == 10 && strncasecmp((const char *)p, "user-agent", 10) == 0) {
        if (!f->ua)
            ows_view(v, vn, &f->ua, &f->ua_len);
    } else if (nl == 6 && strncasecmp((const char *)p, "cookie", 6) == 0) {
        if (!f->cookie)
            ows_view(v, vn, &f->cookie, &f->cookie_len);
    } else if (nl == 7 && strncasecmp((const char *)p, "referer", 7) == 0) {
        if (!f->referer)
            ows_view(v, vn, &f->referer, &f->referer_len);
    } else if (nl == 17 && strncasecmp((const char *)p, "transfer-encoding", 17) == 0) {
        f->body_unknown = true; /* RFC 9112 6.3: it overrides Content-Length; chunks unread */
    } else if (nl == 14 && strncasecmp((const char *)p, "content-length", 14) == 0) {
        size_t x = 0;
        /* differing or malformed values: RFC 9112 6.3 item 5, the length is unknown */
        if (!content_length(v, vn, &x) || (f->have_cl && x != f->cl))
            f->body_unknown = true;
        f->have_cl = true;
        f->cl = x;
    }
    return TW_OK;
}

/* The header lines of a head whose end is known (hdr..end). */
static int header_fields(const uint8_t *hdr, size_t n, struct head_fields *f)
{
    struct cur h = cur_init(hdr, n);
    size_t adv = 0;
    while (cur_left(&h) > 0) {
        long l = line_len(h.p, cur_left(&h), &adv);
        const uint8_t *p = h.p;
        cur_skip(&h, adv);
        if (l <= 0)
            break;
        if (header_field(p, (size_t)l, f, p == hdr) != TW_OK)
            return TW_EBAD;
    }
    return TW_OK;
}

/* Skips header lines up to the blank line; false when it is not within the cursor. */
static bool head_end(struct cur *c)
{
    size_t adv = 0;
    while (cur_left(c) > 0) {
        long l = line_len(c->p, cur_left(c), &adv);
        if (l < 0)
            return false;
        cur_skip(c, adv);
        if (l == 0)
            return true;
    }
    return false;
}

int http_parse_request(const uint8_t *buf, size_t len, struct http_req *out)
{
    memset(out, 0, sizeof(*out));
    /* nothing past HTTP_HEAD_MAX is looked at: the head must end before it */
    size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    struct cur c = cur_init(buf, lim);
    size_t adv = 0;
    long l = line_len(c.p, cur_left(&c), &adv);
    size_t toff = 0, target_len = 0;
    int err = check_request_line(c.p, l < 0 ? cur_left(&c) : (size_t)l, l >= 0, &toff, &target_len);
    if (err == TW_ETRUNC && len >= HTTP_HEAD_MAX)
        return TW_ELIMIT;
    if (err)
        return err;
    const uint8_t *target = c.p + toff;
    bool connect = memcmp(c.p, "CONNECT ", 8) == 0; /* the line is longer than 8 bytes */
    cur_skip(&c, adv);
    /* find the end of the head first: header lines are bounded by lim */
    const uint8_t *hdr = c.p;
    if (!head_end(&c))
        return len >= HTTP_HEAD_MAX ? TW_ELIMIT : TW_ETRUNC;
    size_t head_len = (size_t)(c.p - buf);
    struct head_fields f;
    memset(&f, 0, sizeof(f));
    if (header_fields(hdr, (size_t)(c.p - hdr), &f) != TW_OK)
        return TW_EBAD;
    /* only a head that parsed to its end yields anything */
    out->host = f.host;
    out->host_len = f.host_len;
    out->target = target;
    out->target_len = target_len;
    out->method = buf;
    while (out->method_len < toff && is_tchar(buf[out->method_len]))
        out->method_len++; /* the line starts with the method token (checked above) */
    out->user_agent = f.ua;
    out->user_agent_len = f.ua_len;
    out->cookie = f.cookie;
    out->cookie_len = f.cookie_len;
    out->referer = f.referer;
    out->referer_len = f.referer_len;
    out->connect = connect;
    out->head_len = head_len;
    if (connect) {
        authority_view(target, target_len, out);
        /* RFC 9110 9.3.6: a CONNECT request has no content; the tunnel starts after the head */
        out->next_known = true;
        out->next = head_len;
    } else if (!f.body_unknown) {
        out->next_known = true;
        out->next = head_len + f.cl; /* cl has at most 15 digits: no overflow */
    }
    return TW_OK;
}

int http_parse_host(const uint8_t *buf, size_t len, const uint8_t **host, size_t *host_len)
{
    struct http_req r;
    int err = http_parse_request(buf, len, &r);
    *host = err ? NULL : r.host;
    *host_len = err ? 0 : r.host_len;
    return err;
}

/* RFC 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ], HTTP-version =
 * "HTTP/" DIGIT "." DIGIT (only 1.x here). The n bytes present (the whole line when complete)
 * are checked as far as they go, so a server stream that is not HTTP is refused early. */
static int check_status_line(const uint8_t *p, size_t n, bool complete, uint16_t *status)
{
    static const char pre[] = "HTTP/1.";
    for (size_t i = 0; i < 7 && i < n; i++)
        if (p[i] != (uint8_t)pre[i])
            return TW_EBAD;
    if ((n > 7 && (p[7] < '0' || p[7] > '9')) || (n > 8 && p[8] != ' '))
        return TW_EBAD;
    for (size_t i = 9; i < 12 && i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return TW_EBAD;
    if (n > 12 && p[12] != ' ')
        return TW_EBAD; /* a fourth digit, or no space before the reason */
    if (!complete)
        return TW_ETRUNC;
    if (n < 12)
        return TW_EBAD;
    unsigned v = (unsigned)(p[9] - '0') * 100 + (unsigned)(p[10] - '0') * 10 + (p[11] - '0');
    if (v < 100 || v > 599)
        return TW_EBAD; /* RFC 9110 15: status codes are 100 to 599 */
    *status = (uint16_t)v;
    return TW_OK;
}

int http_parse_response(const uint8_t *buf, size_t len, bool to_head, struct http_resp *out)
{
    memset(out, 0, sizeof(*out));
    size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    struct cur c = cur_init(buf, lim);
    size_t adv = 0;
    long l = line_len(c.p, cur_left(&c), &adv);
    uint16_t status = 0;
    int err = check_status_line(c.p, l < 0 ? cur_left(&c) : (size_t)l, l >= 0, &status);
    if (err == TW_ETRUNC && len >= HTTP_HEAD_MAX)
        return TW_ELIMIT;
    if (err)
        return err;
    cur_skip(&c, adv);
    const uint8_t *hdr = c.p;
    if (!head_end(&c))
        return len >= HTTP_HEAD_MAX ? TW_ELIMIT : TW_ETRUNC;
    struct head_fields f;
    memset(&f, 0, sizeof(f));
    if (header_fields(hdr, (size_t)(c.p - hdr), &f) != TW_OK)
        return TW_EBAD;
    out->status = status;
    out->head_len = (size_t)(c.p - buf);
    if (to_head || status < 200 || status == 204 || status == 304) {
        out->next_known = true; /* RFC 9112 6.3 items 1-2: no content, whatever the fields say */
        out->next = out->head_len;
    } else if (!f.body_unknown && f.have_cl) {
        out->next_known = true;
        out->next = out->head_len + f.cl;
    }
    return TW_OK;
}
