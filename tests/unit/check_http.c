/* check_http.c - unit tests for the HTTP/1.x request head parser: Host with and without
 * port, IPv6 literals, incomplete heads, non-HTTP input, the head size cap, every prefix. */
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
    /* no Host (HTTP/1.0): TW_OK with an empty view */
    ck_assert_int_eq(HOST("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", h), TW_OK);
    ck_assert_str_eq(h, "");
    /* the first Host wins; "X-Host" is not Host */
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nX-Host: evil\r\nHost: a\r\nHost: b\r\n\r\n", h),
                     TW_OK);
    ck_assert_str_eq(h, "a");
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
    ck_assert_int_eq(HOST("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", h), TW_EBAD);
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
    return s;
}
