/* check_json.c - unit tests for the JSON writer in src/json.c: escaping of quotes,
 * backslash, control bytes and DEL, U+FFFD for invalid UTF-8 (RFC 3629), valid multi-byte
 * sequences kept, the size cap, and every output accepted by a real JSON parser
 * (/usr/bin/python3's json module, fed through popen); the html_safe mode, the bare
 * jw_quote/jw_append calls and the exported UTF-8 check and encoder that tunnelwatch-web
 * uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tunnelwatch/json.h"
#include "tw_check.h"

/* Escapes n bytes as the value of {"k": ...} and returns the object text (static). */
static const char *obj(const uint8_t *s, size_t n)
{
    static char out[4096];
    struct jw w;
    jw_init(&w, 0);
    jw_begin(&w);
    jw_strn(&w, "k", s, n);
    jw_end(&w);
    ck_assert_int_eq(w.err, TW_OK);
    ck_assert_uint_lt(w.len, sizeof(out));
    memcpy(out, w.buf, w.len + 1);
    ck_assert_uint_eq(strlen(out), w.len);
    jw_free(&w);
    return out;
}

#define OBJ(lit) obj((const uint8_t *)(lit), sizeof(lit) - 1)

/* Lines of JSON, one object per line, all parsed by python3; true when it accepts all. */
static bool python_accepts(const char *lines)
{
    FILE *p = popen("/usr/bin/python3 -c 'import json,sys\n"
                    "for l in sys.stdin.buffer.read().split(b\"\\n\"):\n"
                    "    l and json.loads(l.decode(\"utf-8\", \"strict\"))' 2>/dev/null",
                    "w");
    ck_assert_ptr_nonnull(p);
    fputs(lines, p);
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Strict UTF-8 (RFC 3629) and no raw byte below 0x20 or DEL. */
static bool clean_utf8(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = c >= 0xc2 && c <= 0xdf   ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!l || i + l > n)
            return false;
        uint32_t cp = c & (l == 2 ? 0x1f : l == 3 ? 0x0f : 0x07);
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((l == 3 && cp < 0x800) || (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += l;
    }
    return true;
}

START_TEST(quotes_backslash)
{
    ck_assert_str_eq(OBJ("a\"b\\c/d"), "{\"k\":\"a\\\"b\\\\c/d\"}");
    ck_assert_str_eq(OBJ(""), "{\"k\":\"\"}");
    ck_assert(python_accepts(OBJ("\"\"\\\\\"")));
}
END_TEST

START_TEST(control_and_del)
{
    ck_assert_str_eq(OBJ("a\x01"
                         "b\n\t\x1f\x7f"),
                     "{\"k\":\"a\\u0001b\\u000a\\u0009\\u001f\\u007f\"}");
    static const uint8_t nul[] = {'x', 0, 'y'};
    ck_assert_str_eq(obj(nul, 3), "{\"k\":\"x\\u0000y\"}");
}
END_TEST

START_TEST(invalid_utf8)
{
    /* lone continuation byte */
    ck_assert_str_eq(OBJ("a\x80z"), "{\"k\":\"a\\ufffdz\"}");
    /* overlong encoding of '/' */
    ck_assert_str_eq(OBJ("\xc0\xaf"), "{\"k\":\"\\ufffd\\ufffd\"}");
    /* overlong 3-byte form of U+007F */
    ck_assert_str_eq(OBJ("\xe0\x81\xbf"), "{\"k\":\"\\ufffd\\ufffd\\ufffd\"}");
    /* UTF-16 surrogate U+D800 */
    ck_assert_str_eq(OBJ("\xed\xa0\x80"), "{\"k\":\"\\ufffd\\ufffd\\ufffd\"}");
    /* beyond U+10FFFF */
    ck_assert_str_eq(OBJ("\xf4\x90\x80\x80"), "{\"k\":\"\\ufffd\\ufffd\\ufffd\\ufffd\"}");
    /* truncated sequences, at the end and followed by ASCII */
    ck_assert_str_eq(OBJ("\xe2\x82"), "{\"k\":\"\\ufffd\\ufffd\"}");
    ck_assert_str_eq(OBJ("\xf0\x9f\x98"
                         "A"),
                     "{\"k\":\"\\ufffd\\ufffd\\ufffdA\"}");
    /* bytes that never start a sequence */
    ck_assert_str_eq(OBJ("\xf5\xff\xfe"), "{\"k\":\"\\ufffd\\ufffd\\ufffd\"}");
}
END_TEST

/* The escaper looks at eight bytes a step where it can: every byte value, at every position
 * of a word and across word ends, in both modes, comes out as the byte-by-byte rules say. */
START_TEST(every_byte_every_position)
{
    for (int html = 0; html < 2; html++)
        for (unsigned b = 0; b < 256; b++)
            for (size_t pos = 0; pos < 19; pos++) {
                uint8_t in[19];
                memset(in, 'a', sizeof(in));
                in[pos] = (uint8_t)b;
                char want[64], mid[8];
                if (b == '"' || b == '\\')
                    snprintf(mid, sizeof(mid), "\\%c", (char)b);
                else if (b < 0x20 || b == 0x7f || (html && (b == '<' || b == '>' || b == '&')))
                    snprintf(mid, sizeof(mid), "\\u%04x", b);
                else if (b < 0x80)
                    snprintf(mid, sizeof(mid), "%c", (char)b);
                else
                    snprintf(mid, sizeof(mid), "\\ufffd"); /* a lone byte is no UTF-8 */
                snprintf(want, sizeof(want), "\"%.*s%s%.*s\"", (int)pos, "aaaaaaaaaaaaaaaaaaa", mid,
                         (int)(sizeof(in) - pos - 1), "aaaaaaaaaaaaaaaaaaa");
                struct jw w;
                jw_init(&w, 0);
                w.html_safe = html;
                jw_quote(&w, in, sizeof(in));
                ck_assert_msg(strcmp(w.buf, want) == 0, "byte 0x%02x at %zu (html %d): %s, want %s",
                              b, pos, html, w.buf, want);
                jw_free(&w);
            }
}
END_TEST

START_TEST(valid_utf8_kept)
{
    /* é (U+00E9), € (U+20AC), U+FFFF, 😀 (U+1F600), U+10FFFF */
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbf \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char want[128];
    snprintf(want, sizeof(want), "{\"k\":\"%s\"}", s);
    ck_assert_str_eq(obj((const uint8_t *)s, strlen(s)), want);
    /* a punycode IDN stays ASCII */
    ck_assert_str_eq(OBJ("xn--bcher-kva.example"), "{\"k\":\"xn--bcher-kva.example\"}");
}
END_TEST

START_TEST(random_bytes_parse)
{
    /* 2000 strings of random bytes (fixed seed), biased towards the interesting ones */
    static const uint8_t pool[] = {0x00, 0x01, 0x1f, '"',  '\\', 0x7f, 0x80, 0xbf, 0xc0, 0xc1,
                                   0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 'a'};
    size_t cap = 4u << 20, used = 0;
    char *all = malloc(cap);
    ck_assert_ptr_nonnull(all);
    srand(12345);
    for (int i = 0; i < 2000; i++) {
        uint8_t b[64];
        size_t n = (size_t)(rand() % 64);
        for (size_t k = 0; k < n; k++)
            b[k] = rand() % 2 ? pool[rand() % (int)sizeof(pool)] : (uint8_t)rand();
        const char *o = obj(b, n);
        size_t l = strlen(o);
        ck_assert(clean_utf8(o, l));
        ck_assert_uint_lt(used + l + 1, cap);
        memcpy(all + used, o, l);
        used += l;
        all[used++] = '\n';
    }
    all[used] = '\0';
    ck_assert(python_accepts(all));
    free(all);
}
END_TEST

/* The checker itself must reject what is not JSON, or the tests above prove nothing. */
START_TEST(checker_rejects)
{
    ck_assert(!python_accepts("{\"k\":\"a\x01\"}\n"));
    ck_assert(!python_accepts("{\"k\":\"\xc0\xaf\"}\n"));
    ck_assert(!python_accepts("{\"k\":\"a\"\n"));
    ck_assert(python_accepts("{\"k\":\"a\"}\n"));
    ck_assert(!clean_utf8("\xed\xa0\x80", 3));
    ck_assert(!clean_utf8("\x7f", 1));
}
END_TEST

START_TEST(values_and_commas)
{
    struct jw w;
    jw_init(&w, 0);
    jw_begin(&w);
    jw_u64(&w, "u", 18446744073709551615ULL);
    jw_i64(&w, "i", -9223372036854775807LL - 1);
    jw_bool(&w, "t", true);
    jw_bool(&w, "f", false);
    char s1[] = "a\"", s2[] = "b";
    char *v[] = {s1, s2};
    jw_strv(&w, "arr", v, 2);
    jw_strv(&w, "empty", v, 0);
    jw_str(&w, "null_skipped", NULL);
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse("2001:db8::1", &a), TW_OK);
    jw_addr(&w, "ip", &a);
    struct tw_addr unset;
    memset(&unset, 0, sizeof(unset));
    jw_addr(&w, "unset", &unset);
    jw_key(&w, "obj");
    jw_begin(&w);
    jw_str(&w, "x", "y");
    jw_end(&w);
    jw_raw(&w, "raw", "[1,2]");
    jw_str(&w, "dotted.key", "z");
    jw_end(&w);
    ck_assert_int_eq(w.err, TW_OK);
    ck_assert_str_eq(w.buf, "{\"u\":18446744073709551615,\"i\":-9223372036854775808,\"t\":true,"
                            "\"f\":false,\"arr\":[\"a\\\"\",\"b\"],\"empty\":[],"
                            "\"ip\":\"2001:db8::1\",\"obj\":{\"x\":\"y\"},\"raw\":[1,2],"
                            "\"dotted.key\":\"z\"}");
    char line[1024];
    snprintf(line, sizeof(line), "%s\n", w.buf);
    ck_assert(python_accepts(line));
    /* reset reuses the buffer */
    jw_reset(&w);
    ck_assert_uint_eq(w.len, 0);
    jw_begin(&w);
    jw_end(&w);
    ck_assert_str_eq(w.buf, "{}");
    jw_free(&w);
    jw_free(&w); /* twice is harmless */
}
END_TEST

START_TEST(max_cap)
{
    struct jw w;
    jw_init(&w, 64);
    jw_begin(&w);
    jw_str(&w, "a", "0123456789");
    ck_assert_int_eq(w.err, TW_OK);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    jw_str(&w, "b", big);
    ck_assert_int_eq(w.err, TW_ELIMIT);
    ck_assert_uint_le(w.cap, 64);
    ck_assert_uint_lt(w.len, 64);
    ck_assert_uint_eq(strlen(w.buf), w.len);
    /* the error is sticky */
    jw_end(&w);
    ck_assert_int_eq(w.err, TW_ELIMIT);
    /* escaping expands: 20 control bytes need 120 output bytes */
    jw_reset(&w);
    uint8_t ctl[20];
    memset(ctl, 1, sizeof(ctl));
    jw_begin(&w);
    jw_strn(&w, "c", ctl, sizeof(ctl));
    ck_assert_int_eq(w.err, TW_ELIMIT);
    /* exactly at the cap: 63 characters plus the NUL fit */
    jw_reset(&w);
    char fit[64];
    memset(fit, 'y', sizeof(fit));
    fit[63 - 8] = '\0'; /* {"k":"..."} adds 8 */
    jw_begin(&w);
    jw_str(&w, "k", fit);
    jw_end(&w);
    ck_assert_int_eq(w.err, TW_OK);
    ck_assert_uint_eq(w.len, 63);
    jw_free(&w);
}
END_TEST

START_TEST(html_safe)
{
    struct jw w;
    jw_init(&w, 4096);
    /* default: markup characters are plain JSON text */
    jw_quote(&w, (const uint8_t *)"<a&b>", 5);
    ck_assert_str_eq(w.buf, "\"<a&b>\"");
    /* html_safe: <, >, & become \u00XX; the rest is escaped as always */
    jw_reset(&w);
    w.html_safe = true;
    jw_quote(&w, (const uint8_t *)"<script>\"&\x01\xff", 12);
    ck_assert_str_eq(w.buf, "\"\\u003cscript\\u003e\\\"\\u0026\\u0001\\ufffd\"");
    /* reset keeps the mode; keys are escaped the same way */
    jw_reset(&w);
    ck_assert(w.html_safe);
    jw_begin(&w);
    jw_str(&w, "k<", "x>y");
    jw_end(&w);
    ck_assert_str_eq(w.buf, "{\"k\\u003c\":\"x\\u003ey\"}");
    char line[256];
    snprintf(line, sizeof(line), "%s\n", w.buf);
    ck_assert(python_accepts(line));
    jw_free(&w);
}
END_TEST

START_TEST(append_and_quote)
{
    struct jw w;
    jw_init(&w, 0);
    jw_append(&w, "[", 1);
    jw_quote(&w, (const uint8_t *)"a\"", 2);
    jw_append(&w, ",", 1);
    jw_quote(&w, (const uint8_t *)"", 0);
    jw_append(&w, "]", 1);
    ck_assert_int_eq(w.err, TW_OK);
    ck_assert_str_eq(w.buf, "[\"a\\\"\",\"\"]");
    jw_free(&w);
    /* the cap holds for raw appends too, and latches */
    jw_init(&w, 16);
    jw_append(&w, "0123456789", 10);
    ck_assert_int_eq(w.err, 0);
    jw_append(&w, "0123456789", 10);
    ck_assert_int_eq(w.err, TW_ELIMIT);
    ck_assert_uint_eq(w.len, 10);
    jw_append(&w, "x", 1);
    ck_assert_int_eq(w.err, TW_ELIMIT);
    jw_free(&w);
}
END_TEST

#define U8LEN(lit) jw_utf8_len((const uint8_t *)(lit), sizeof(lit) - 1)

START_TEST(utf8_len)
{
    ck_assert_uint_eq(jw_utf8_len((const uint8_t *)"a", 0), 0);
    ck_assert_uint_eq(U8LEN("a"), 1);
    ck_assert_uint_eq(U8LEN("\xc3\xa9"), 2);         /* U+00E9 */
    ck_assert_uint_eq(U8LEN("\xe2\x82\xac"), 3);     /* U+20AC */
    ck_assert_uint_eq(U8LEN("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
    ck_assert_uint_eq(U8LEN("\xc3\xa9z"), 2);        /* only the first sequence counts */
    ck_assert_uint_eq(U8LEN("\xc3"), 0);             /* truncated */
    ck_assert_uint_eq(U8LEN("\xc1\xbf"), 0);         /* overlong */
    ck_assert_uint_eq(U8LEN("\xe0\x9f\xbf"), 0);     /* overlong 3-byte */
    ck_assert_uint_eq(U8LEN("\xed\xa0\x80"), 0);     /* surrogate */
    ck_assert_uint_eq(U8LEN("\xf4\x90\x80\x80"), 0); /* above U+10FFFF */
    ck_assert_uint_eq(U8LEN("\x80"), 0);             /* continuation byte */
    ck_assert_uint_eq(U8LEN("\xc3\x28"), 0);         /* bad continuation */
}
END_TEST

START_TEST(utf8_put)
{
    static const struct {
        uint32_t cp;
        const char *want;
    } t[] = {
        {0x41, "A"},
        {0x7f, "\x7f"},
        {0x80, "\xc2\x80"},
        {0xe9, "\xc3\xa9"},
        {0x7ff, "\xdf\xbf"},
        {0x800, "\xe0\xa0\x80"},
        {0xfffd, "\xef\xbf\xbd"},
        {0x10000, "\xf0\x90\x80\x80"},
        {0x1f600, "\xf0\x9f\x98\x80"},
        {0x10ffff, "\xf4\x8f\xbf\xbf"},
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(t); i++) {
        char out[4];
        size_t n = jw_utf8_put(t[i].cp, out);
        ck_assert_uint_eq(n, strlen(t[i].want));
        ck_assert(memcmp(out, t[i].want, n) == 0);
        /* what the encoder writes, the checker accepts whole */
        ck_assert_uint_eq(jw_utf8_len((const uint8_t *)out, n), n);
    }
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("jw_escape");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, quotes_backslash);
    tcase_add_test(tc, control_and_del);
    tcase_add_test(tc, invalid_utf8);
    tcase_add_test(tc, every_byte_every_position);
    tcase_add_test(tc, valid_utf8_kept);
    tcase_add_test(tc, random_bytes_parse);
    tcase_add_test(tc, checker_rejects);
    suite_add_tcase(s, tc);
    tc = tcase_create("jw_values");
    tcase_add_test(tc, values_and_commas);
    tcase_add_test(tc, max_cap);
    tcase_add_test(tc, append_and_quote);
    suite_add_tcase(s, tc);
    tc = tcase_create("jw_html_utf8");
    tcase_add_test(tc, html_safe);
    tcase_add_test(tc, utf8_len);
    tcase_add_test(tc, utf8_put);
    suite_add_tcase(s, tc);
    return s;
}
