/* fuzz_json.c - libFuzzer target for the JSON writer's escaping: arbitrary bytes as a key
 * and a value must give an object with no raw control byte and only valid UTF-8 (RFC 3629),
 * so every alert line parses whatever a hostname holds; and exactly the bytes a plain
 * byte-by-byte escaper writes (the writer looks at eight bytes a step). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f)
            abort();
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t l = c >= 0xc2 && c <= 0xdf   ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!l || l > n - i)
            abort();
        uint32_t cp = c & (l == 2 ? 0x1fu : l == 3 ? 0x0fu : 0x07u);
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                abort();
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if ((l == 3 && cp < 0x800) || (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            abort();
        i += l;
    }
}

/* The escaping rules one byte at a time, appended at *o. */
static void ref_quote(char **o, const uint8_t *s, size_t n, int html)
{
    *(*o)++ = '"';
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        int markup = html && (c == '<' || c == '>' || c == '&');
        if (c == '"' || c == '\\') {
            *(*o)++ = '\\';
            *(*o)++ = (char)c;
            i++;
        } else if (c < 0x20 || c == 0x7f || markup) {
            *o += sprintf(*o, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            *(*o)++ = (char)c;
            i++;
        } else {
            size_t l = jw_utf8_len(s + i, n - i);
            if (l == 0) {
                *o += sprintf(*o, "\\ufffd");
                i++;
            } else {
                memcpy(*o, s + i, l);
                *o += l;
                i += l;
            }
        }
    }
    *(*o)++ = '"';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int html = size && (data[0] & 0x20);
    /* the first byte splits the input into a key (NUL-terminated copy) and a value */
    size_t kl = size ? data[0] % 32 : 0;
    if (kl + 1 > size)
        kl = 0;
    char key[32];
    memcpy(key, data + (size ? 1 : 0), kl);
    key[kl] = '\0';
    const uint8_t *v = data + (size ? 1 + kl : 0);
    size_t vl = size ? size - 1 - kl : 0;
    struct jw w;
    jw_init(&w, size > 600 ? 4096 : 0); /* large inputs also exercise the cap */
    w.html_safe = html;
    jw_begin(&w);
    jw_strn(&w, key, v, vl);
    jw_end(&w);
    if (w.err != TW_OK && w.err != TW_ELIMIT)
        abort();
    if (w.buf) {
        if (strlen(w.buf) != w.len || (w.max && w.len >= w.max))
            abort();
        check_utf8((const uint8_t *)w.buf, w.len);
        if (w.err == TW_OK && (w.buf[0] != '{' || w.buf[w.len - 1] != '}'))
            abort();
        if (w.err == TW_OK) {
            char *want = malloc(8 * (kl + vl) + 16), *o = want;
            if (!want)
                abort();
            *o++ = '{';
            ref_quote(&o, (const uint8_t *)key, strlen(key), html);
            *o++ = ':';
            ref_quote(&o, v, vl, html);
            *o++ = '}';
            if ((size_t)(o - want) != w.len || memcmp(want, w.buf, w.len) != 0)
                abort();
            free(want);
        }
    }
    jw_free(&w);
    return 0;
}
