/* check_http.c - unit tests for the HTTP/1.x request head parser: Host with and without
 * port, IPv6 literals, incomplete heads, non-HTTP input, the head size cap, every prefix;
 * http_parse_request's pipelining (Content-Length bodies, unknown lengths) and CONNECT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/http.h"
#include "tw_check.h"

/* Runs the parser over s; on TW_OK, host is copied into out. */
static int host_of(const char *s, size_t n, char *out, size_t cap)
{
    const uint8_t *h = NULL;
    size_t hl = 0;
    uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
    memcpy(copy, s, n);
    int rc = http_parse_host(copy, n, &h, &hl);
    out[0] = '\0';
    if (rc == TW_OK) {
        ck_assert(hl < cap);
        ck_assert(hl == 0 || (h >= copy && h + hl <= copy + n));
        if (hl > 0)
            memcpy(out, h, hl);
        out[hl] = '\0';
    } else {
        ck_assert(h == NULL && hl == 0); /* no Host from a head that failed */
    }
    free(copy);
    return rc;
}

#define HOST(s, out) host_of(s, strlen(s), out, sizeof(out))

/* GET /index.html HTTP/1.1 CRLF, Host: www.example.com:8080 CRLF, User-Agent: t CRLF, CRLF */
static const char req[] = "GET /index.html HTTP/1.1\r\n"
                          "Host: www.example.com:8080\r\n"
                          "User-Agent: t\r\n"
                          "\r\n";

START_TEST(test_host)
{
    char h[256];
    ck_assert_int_eq(HOST(req, h), TW_OK);
    ck_assert_str_eq(h, "www.example.com");
    ck_assert_int_eq(HOST("POST /x HTTP/1.0\r\nhOsT:   tunnel.us.ngrok.com \t\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "tunnel.us.ngrok.com");
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "[2001:db8::1]");
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "[::1]");
    /* bare LF line ends */
    ck_assert_int_eq(HOST("GET / HTTP/1.1\nX-A: b\nHost: a.b\n\n", h), TW_OK);
    ck_assert_str_eq(h, "a.b");
    /* obs-fold: a folded field value (gtk-gnutella sends one) does not hide the Host */
    ck_assert_int_eq(
        HOST("GET / HTTP/1.1\r\nX: a;\r\n\tb; c\r\n folded\r\nHost: h.ngrok.io\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "h.ngrok.io");
    /* no Host (HTTP/1.0): TW_OK with an empty view */
    ck_assert_int_eq(HOST("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "");
    /* the first Host wins; "X-Host" is not Host */
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nX-Host: evil\r\nHost: a\r\nHost: b\r\n\r\n", h),
                     TW_OK);
    ck_assert_str_eq(h, "a");
    /* whitespace runs in the request line, spaces inside the target (ndpi__http-manipulated,
     * ndpi__WebattackRCE: tshark reads them, and so do the servers such tools aim at) */
    ck_assert_int_eq(
        HOST("GET                  /a_long_uri HTTP/1.1\r\nHost: www.lan:8080\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "www.lan");
    ck_assert_int_eq(HOST("GET /cgi-bin/x;cat /etc/passwd|?data=Download HTTP/1.1\r\nHost: "
                          "127.0.0.1\r\n\r\n",
                          h),
                     TW_OK);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(HOST("GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", h), TW_EBAD);
    ck_assert_int_eq(HOST("GET \t HTTP/1.1\r\nHost: a\r\n\r\n", h), TW_EBAD);
    /* CONNECT with an authority target */
    ck_assert_int_eq(HOST("CONNECT t.ngrok.io:443 HTTP/1.1\r\nHost: t.ngrok.io:443\r\n\r\n", h),
                     TW_OK);
    ck_assert_str_eq(h, "t.ngrok.io");
}
END_TEST

START_TEST(test_every_prefix)
{
    char h[256];
    size_t n = strlen(req);
    for (size_t k = 0; k < n; k++)
        ck_assert_int_eq(host_of(req, k, h, sizeof(h)), TW_ETRUNC);
    /* the Host line is complete long before the blank line: still not reported */
    ck_assert_int_eq(host_of(req, n - 2, h, sizeof(h)), TW_ETRUNC);
    ck_assert_str_eq(h, "");
}
END_TEST

START_TEST(test_not_http)
{
    char h[256];
    ck_assert_int_eq(HOST("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", h), TW_EBAD);
    ck_assert_int_eq(HOST("SSH-2.0-OpenSSH_9.2\r\n", h), TW_EBAD);
    ck_assert_int_eq(HOST("\x16\x03\x01\x02\x00\x01", h), TW_EBAD); /* TLS: decided early */
    ck_assert_int_eq(HOST("GET / HTTP/2\r\n\r\n", h), TW_EBAD);
    ck_assert_int_eq(HOST("GET  HTTP/1.1\r\n\r\n", h), TW_EBAD);
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nHost : a\r\n\r\n", h), TW_EBAD);
    /* whitespace before the first field line: refused (RFC 9112 2.2) */
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\n folded\r\nHost: a\r\n\r\n", h), TW_EBAD);
    /* a bad line after a good Host still refuses the head (found by fuzz_http) */
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nHost: a\r\n\x01x: y\r\n\r\n", h), TW_EBAD);
    /* the request line decides before the head ends */
    ck_assert_int_eq(HOST("GET / FTP/1.1\r\nHost: a", h), TW_EBAD);
    ck_assert(http_looks_like_request((const uint8_t *)"GET /", 5));
    ck_assert(http_looks_like_request((const uint8_t *)"PO", 2));
    ck_assert(!http_looks_like_request((const uint8_t *)"GETX /", 6));
    ck_assert(!http_looks_like_request((const uint8_t *)"\x16\x03", 2));
}
END_TEST

START_TEST(test_head_cap)
{
    /* a head that never ends within HTTP_HEAD_MAX bytes is given up (TW_ELIMIT) */
    size_t n = HTTP_HEAD_MAX + 100;
    char *s = malloc(n + 1);
    memcpy(s, "GET / HTTP/1.1\r\nX: ", 19);
    memset(s + 19, 'a', n - 19);
    s[n] = '\0';
    char h[256];
    ck_assert_int_eq(host_of(s, n, h, sizeof(h)), TW_ELIMIT);
    ck_assert_int_eq(host_of(s, HTTP_HEAD_MAX - 1, h, sizeof(h)), TW_ETRUNC);
    /* a blank line past the cap does not count */
    memcpy(s + HTTP_HEAD_MAX + 10, "\r\n\r\n", 4);
    ck_assert_int_eq(host_of(s, n, h, sizeof(h)), TW_ELIMIT);
    free(s);
}
END_TEST

START_TEST(test_capture_split)
{
    /* ndpi__http_ua_splitted_in_two_pkts: the head spans two segments; the first alone is
     * incomplete, both together give the Host of the tshark truth */
    size_t n1, n;
    uint8_t *a = tw_read_file(
        tw_src_path("tests/fuzz/corpus/http/ndpi__http_ua_splitted_in_two_pkts_f3.bin"), &n1);
    uint8_t *b = tw_read_file(
        tw_src_path("tests/fuzz/corpus/http/ndpi__http_ua_splitted_joined_f3_f4.bin"), &n);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    char h[256];
    ck_assert_int_eq(host_of((const char *)a, n1, h, sizeof(h)), TW_ETRUNC);
    ck_assert_int_eq(host_of((const char *)b, n, h, sizeof(h)), TW_OK);
    ck_assert_str_eq(h, "va.origin.startappservice.com");
    free(a);
    free(b);
}
END_TEST

/* Walks a pipelined stream request by request; writes "host|host|..." (or "-" for none),
 * and returns the offset where the walk stopped. */
static size_t walk(const char *s, size_t n, char *out, size_t cap)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    size_t off = 0;
    out[0] = '\0';
    for (;;) {
        struct http_req r;
        int rc = http_parse_request(copy + off, n - off, &r);
        if (rc != TW_OK)
            break;
        ck_assert_uint_gt(r.head_len, 0);
        ck_assert_uint_le(r.head_len, n - off);
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%.*s", l ? "|" : "", r.host ? (int)r.host_len : 1,
                 r.host ? (const char *)r.host : "-");
        if (!r.next_known || r.next > n - off || r.connect)
            break;
        off += r.next;
    }
    free(copy);
    return off;
}

#define WALK(s, out) walk(s, strlen(s), out, sizeof(out))

START_TEST(test_pipelined)
{
    char h[256];
    /* GET, then POST with a 5-byte body "hello", then GET to the ngrok tunnel: all in one
     * segment */
    static const char p3[] =
        "GET /a HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: api.example.com\r\nContent-Length: 5\r\n\r\n"
        "hello"
        "GET /c HTTP/1.1\r\nHost: tunnel.us.ngrok.com\r\n\r\n";
    ck_assert_uint_eq(WALK(p3, h), strlen(p3)); /* all three consumed */
    ck_assert_str_eq(h, "www.example.com|api.example.com|tunnel.us.ngrok.com");
    struct http_req r;
    ck_assert_int_eq(http_parse_request((const uint8_t *)p3, strlen(p3), &r), TW_OK);
    ck_assert_uint_eq(r.head_len, 42);
    ck_assert(r.next_known && r.next == 42 && !r.connect && r.authority == NULL);
    ck_assert_int_eq((int)r.target_len, 2);
    ck_assert(memcmp(r.target, "/a", 2) == 0);
    /* the body is not all there yet: next lies past the buffer */
    ck_assert_int_eq(http_parse_request((const uint8_t *)p3 + 42, 64, &r), TW_OK);
    ck_assert(r.next_known && r.next == 62 + 5 && r.next > 64);
    /* Transfer-Encoding: the length is unknown, the walk stops after that request */
    ck_assert_uint_eq(WALK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "0\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n",
                           h),
                      0);
    ck_assert_str_eq(h, "a");
    ck_assert_int_eq(http_parse_request((const uint8_t *)"POST / HTTP/1.1\r\nTransfer-Encoding: "
                                                         "chunked\r\nContent-Length: 3\r\n\r\n",
                                        66, &r),
                     TW_OK);
    ck_assert(!r.next_known);
    /* differing Content-Lengths, a list, a sign, a huge number: unknown (RFC 9112 6.3) */
    static const char *const bad_cl[] = {"5\r\nContent-Length: 6", "5, 5", "+5", "-1", "",
                                         "1234567890123456"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad_cl); i++) {
        char rq[128];
        int n =
            snprintf(rq, sizeof(rq), "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad_cl[i]);
        ck_assert_int_eq(http_parse_request((const uint8_t *)rq, (size_t)n, &r), TW_OK);
        ck_assert_msg(!r.next_known, "Content-Length '%s'", bad_cl[i]);
    }
    /* the same value twice is fine, whitespace around it too */
    ck_assert_int_eq(http_parse_request((const uint8_t *)"POST / HTTP/1.1\r\nContent-Length:  "
                                                         "7 \r\ncontent-length: 7\r\n\r\n",
                                        59, &r),
                     TW_OK);
    ck_assert(r.next_known && r.next == 59 + 7);
    /* a second request that is still incomplete: the walk stops at it */
    ck_assert_uint_eq(WALK("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n", h),
                      27);
    ck_assert_str_eq(h, "a");
    /* no Host (HTTP/1.0 style) in the middle */
    WALK("GET / HTTP/1.0\r\nHost: a\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nHost: c\r\n\r\n",
         h);
    ck_assert_str_eq(h, "a|-|c");
}
END_TEST

START_TEST(test_connect)
{
    struct http_req r;
    char h[256];
    static const char c1[] = "CONNECT secure.newegg.com:443 HTTP/1.1\r\n"
                             "Host: secure.newegg.com:443\r\n\r\n\x16\x03\x01";
    ck_assert_int_eq(http_parse_request((const uint8_t *)c1, sizeof(c1) - 1, &r), TW_OK);
    ck_assert(r.connect);
    ck_assert_int_eq((int)r.authority_len, 17);
    ck_assert(memcmp(r.authority, "secure.newegg.com", 17) == 0);
    ck_assert_uint_eq(r.port, 443);
    ck_assert_int_eq((int)r.host_len, 17);
    ck_assert(memcmp(r.host, "secure.newegg.com", 17) == 0);
    ck_assert_uint_eq(r.head_len, sizeof(c1) - 1 - 3);
    ck_assert(r.next_known && r.next == r.head_len); /* the tunnel starts after the head */
    /* the walk stops at a CONNECT: what follows is the tunnel, not a request */
    ck_assert_uint_eq(WALK("CONNECT a:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n", h),
                      0);
    ck_assert_str_eq(h, "-");
    /* IPv6 literal, no Host header */
    static const char c2[] = "CONNECT [::1]:443 HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(http_parse_request((const uint8_t *)c2, sizeof(c2) - 1, &r), TW_OK);
    ck_assert(r.connect && r.host == NULL && r.port == 443);
    ck_assert_int_eq((int)r.authority_len, 5);
    ck_assert(memcmp(r.authority, "[::1]", 5) == 0);
    /* odd ports read as 0, the host is kept */
    static const char *const odd[] = {"a.b", "a.b:", "a.b:99999", "a.b:44x", "a.b:123456"};
    for (size_t i = 0; i < TW_ARRAY_LEN(odd); i++) {
        char rq[64];
        int n = snprintf(rq, sizeof(rq), "CONNECT %s HTTP/1.1\r\n\r\n", odd[i]);
        ck_assert_int_eq(http_parse_request((const uint8_t *)rq, (size_t)n, &r), TW_OK);
        ck_assert_msg(r.port == 0 && r.authority_len == 3, "%s", odd[i]);
    }
    ck_assert_int_eq(
        http_parse_request((const uint8_t *)"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", 39, &r),
        TW_OK);
    ck_assert_uint_eq(r.port, 8443);
    ck_assert_int_eq((int)r.authority_len, 13);
    /* not CONNECT: no authority even for an authority-looking target */
    ck_assert_int_eq(
        http_parse_request((const uint8_t *)"OPTIONS a.b:443 HTTP/1.1\r\n\r\n", 28, &r), TW_OK);
    ck_assert(!r.connect && r.authority == NULL && r.port == 0);
    /* the target view skips the whitespace runs around it */
    ck_assert_int_eq(http_parse_request((const uint8_t *)"GET   /a b  HTTP/1.1\r\n\r\n", 24, &r),
                     TW_OK);
    ck_assert_int_eq((int)r.target_len, 4);
    ck_assert(memcmp(r.target, "/a b", 4) == 0);
    /* every prefix of a CONNECT head is incomplete, and leaves nothing behind */
    for (size_t k = 0; k < sizeof(c1) - 1 - 3; k++) {
        ck_assert_int_eq(http_parse_request((const uint8_t *)c1, k, &r), TW_ETRUNC);
        ck_assert(r.host == NULL && r.authority == NULL && r.head_len == 0 && !r.connect);
    }
}
END_TEST

/* GET /a?b HTTP/1.1 with User-Agent, Cookie, Referer (OWS around values), a second UA ignored */
START_TEST(test_request_fields)
{
    static const char head[] = "POST  /up.php?x=1 HTTP/1.1\r\nHost: h.example:8080\r\n"
                               "User-Agent:  rclone/v1.62 \r\nCookie: a=b; c=d\r\n"
                               "Referer:\thttp://r.example/\r\nUser-Agent: second\r\n"
                               "Content-Length: 0\r\n\r\n";
    struct http_req r;
    ck_assert_int_eq(http_parse_request((const uint8_t *)head, strlen(head), &r), TW_OK);
    ck_assert_int_eq((int)r.method_len, 4);
    ck_assert(!memcmp(r.method, "POST", 4));
    ck_assert_int_eq((int)r.target_len, 11);
    ck_assert(!memcmp(r.target, "/up.php?x=1", 11));
    ck_assert_int_eq((int)r.user_agent_len, 12);
    ck_assert(!memcmp(r.user_agent, "rclone/v1.62", 12));
    ck_assert_int_eq((int)r.cookie_len, 8);
    ck_assert(!memcmp(r.cookie, "a=b; c=d", 8));
    ck_assert_int_eq((int)r.referer_len, 17);
    ck_assert(!memcmp(r.referer, "http://r.example/", 17));
    static const char bare[] = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(http_parse_request((const uint8_t *)bare, strlen(bare), &r), TW_OK);
    ck_assert_ptr_null(r.user_agent);
    ck_assert_ptr_null(r.cookie);
    ck_assert_ptr_null(r.referer);
    ck_assert_int_eq((int)r.method_len, 3);
}
END_TEST

/* Response heads: status, body length (Content-Length, none for HEAD/1xx/204/304, unknown
 * for chunked or read-to-close), refusals as early as the bytes show them. */
START_TEST(test_response)
{
    struct http_resp r;
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 404 X\r\n\r\n";
    size_t n = strlen(ok);
    ck_assert_int_eq(http_parse_response((const uint8_t *)ok, n, false, &r), TW_OK);
    ck_assert_uint_eq(r.status, 200);
    ck_assert(r.next_known);
    ck_assert_uint_eq(r.next, r.head_len + 2);
    ck_assert_int_eq(http_parse_response((const uint8_t *)ok + r.next, n - r.next, false, &r),
                     TW_OK);
    ck_assert_uint_eq(r.status, 404);
    ck_assert(!r.next_known); /* no length: the body runs to the close */
    ck_assert_int_eq(http_parse_response((const uint8_t *)ok, n, true, &r), TW_OK);
    ck_assert_uint_eq(r.next, r.head_len); /* HEAD: no body */
    for (size_t i = 1; i < strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"); i++)
        ck_assert_int_eq(http_parse_response((const uint8_t *)ok, i, false, &r), TW_ETRUNC);
    static const char *const none[] = {"HTTP/1.1 100 Continue\r\n\r\n",
                                       "HTTP/1.0 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                                       "HTTP/1.1 204 No Content\nContent-Length: 9\n\n"};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(http_parse_response((const uint8_t *)none[i], strlen(none[i]), false, &r),
                         TW_OK);
        ck_assert(r.next_known && r.next == r.head_len);
    }
    const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n";
    ck_assert_int_eq(http_parse_response((const uint8_t *)ch, strlen(ch), false, &r), TW_OK);
    ck_assert(!r.next_known);
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",  "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 X\r\n\r\n", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nbad line\r\n\r\n",
        "HTTP/1.1 600 X\r\n\r\n", "HTTP/1.1x200\r\n\r\n"};
    for (size_t i = 0; i < 8; i++)
        ck_assert_msg(http_parse_response((const uint8_t *)bad[i], strlen(bad[i]), false, &r) ==
                          TW_EBAD,
                      "%s", bad[i]);
    ck_assert_int_eq(http_parse_response((const uint8_t *)"HTTX", 4, false, &r), TW_EBAD);
    ck_assert_uint_eq(r.status, 0);
    uint8_t big[HTTP_HEAD_MAX + 10];
    memset(big, 'a', sizeof(big));
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 21);
    ck_assert_int_eq(http_parse_response(big, sizeof(big), false, &r), TW_ELIMIT);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("http_parse_host");
    tcase_add_test(tc, test_host);
    tcase_add_test(tc, test_every_prefix);
    tcase_add_test(tc, test_not_http);
    tcase_add_test(tc, test_head_cap);
    tcase_add_test(tc, test_capture_split);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("http_parse_request");
    tcase_add_test(tr, test_pipelined);
    tcase_add_test(tr, test_connect);
    tcase_add_test(tr, test_request_fields);
    suite_add_tcase(s, tr);
    TCase *tp = tcase_create("http_parse_response");
    tcase_add_test(tp, test_response);
    suite_add_tcase(s, tp);
    return s;
}
