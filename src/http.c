/* http.c - HTTP/1.x request head: request line and the Host header.
 *
 * Only the first request of a flow is read, and only up to its blank line. The request
 * line is checked as soon as it is complete (or as soon as its method cannot be a token),
 * so a flow that is not HTTP is given up early instead of buffering HTTP_HEAD_MAX bytes.
 * The head is then searched for its end before any header is trusted, so a Host value is
 * never taken from a head that might still be continued by the next segment. Bare LF line
 * ends are accepted (RFC 9112 2.2 allows a recipient to), obsolete line folding is not
 * (RFC 9112 5.2: a request with it may be rejected). The Host view keeps IPv6 brackets
 * ("[2001:db8::1]:8080" -> "[2001:db8::1]") and drops the port.
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
static int check_request_line(const uint8_t *p, size_t n, bool complete)
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
    /* request-target: no spaces or controls; the version is the last 8 bytes */
    static const char ver[] = "HTTP/1.";
    if (n < i + 1 + 1 + 1 + 8)
        return TW_EBAD;
    const uint8_t *v = p + n - 8;
    if (memcmp(v, ver, 7) != 0 || v[7] < '0' || v[7] > '9' || v[-1] != ' ')
        return TW_EBAD;
    for (const uint8_t *t = p + i + 1; t < v - 1; t++)
        if (*t <= ' ' || *t == 0x7F)
            return TW_EBAD;
    if (v - 1 == p + i + 1)
        return TW_EBAD; /* empty request-target */
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

int http_parse_host(const uint8_t *buf, size_t len, const uint8_t **host, size_t *host_len)
{
    *host = NULL;
    *host_len = 0;
    /* nothing past HTTP_HEAD_MAX is looked at: the head must end before it */
    size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
    struct cur c = cur_init(buf, lim);

    size_t adv = 0;
    long l = line_len(c.p, cur_left(&c), &adv);
    int err = check_request_line(c.p, l < 0 ? cur_left(&c) : (size_t)l, l >= 0);
    if (err == TW_ETRUNC && len >= HTTP_HEAD_MAX)
        return TW_ELIMIT;
    if (err)
        return err;
    cur_skip(&c, adv);

    /* find the end of the head first: header lines are bounded by lim */
    const uint8_t *hdr = c.p;
    bool found = false;
    while (cur_left(&c) > 0) {
        l = line_len(c.p, cur_left(&c), &adv);
        if (l < 0)
            break;
        cur_skip(&c, adv);
        if (l == 0) {
            found = true;
            break;
        }
    }
    if (!found)
        return len >= HTTP_HEAD_MAX ? TW_ELIMIT : TW_ETRUNC;

    /* RFC 9112 5: field-line = field-name ":" OWS field-value OWS */
    struct cur h = cur_init(hdr, (size_t)(c.p - hdr));
    bool have = false;
    const uint8_t *hv = NULL;
    size_t hn = 0;
    while (cur_left(&h) > 0) {
        l = line_len(h.p, cur_left(&h), &adv);
        const uint8_t *p = h.p;
        cur_skip(&h, adv);
        if (l <= 0)
            break;
        /* obs-fold: a line starting with whitespace continues the previous one */
        if (p[0] == ' ' || p[0] == '\t')
            return TW_EBAD;
        const uint8_t *colon = memchr(p, ':', (size_t)l);
        if (!colon || colon == p)
            return TW_EBAD;
        for (const uint8_t *t = p; t < colon; t++)
            if (!is_tchar(*t))
                return TW_EBAD; /* also refuses "Host :", RFC 9112 5.1 */
        if (have || colon - p != 4 || strncasecmp((const char *)p, "host", 4) != 0)
            continue;
        have = true; /* the first Host counts; RFC 9110 7.2 forbids more than one */
        host_view(colon + 1, (size_t)(p + l - colon - 1), &hv, &hn);
    }
    /* only a head that parsed to its end yields a Host */
    *host = hv;
    *host_len = hn;
    return TW_OK;
}
