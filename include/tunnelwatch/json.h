/* json.h - small streaming JSON writer for alert records and the SOC page's responses.
 *
 * Appends to a growable buffer owned by struct jw (capped: TW_ELIMIT past cap; the error
 * latches, later appends do nothing). Strings that come off the wire are escaped byte by
 * byte: quotes, backslash and control characters as \uXXXX, and bytes that are not valid
 * UTF-8 as U+FFFD, so every line parses. Keys are dotted ECS names written flat
 * ("source.ip"), as ECS allows. The keyed calls (jw_str, ...) place commas themselves;
 * jw_append and jw_quote write exactly what they are given, for callers that lay out arrays
 * and bare values by hand (tunnelwatch-web).
 */
#ifndef TW_JSON_H
#define TW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

struct jw {
    char *buf;
    size_t len, cap, max;
    bool need_comma;
    /* Also escape <, > and & (as \u003c, \u003e, \u0026) so that the text stays inert even
     * if a browser is made to read it as HTML. Off after jw_init; jw_reset keeps it. */
    bool html_safe;
    int err;
};

void jw_init(struct jw *w, size_t max);
void jw_free(struct jw *w);
void jw_reset(struct jw *w);
void jw_begin(struct jw *w); /* { */
void jw_end(struct jw *w);   /* } */
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *key, const char *s);
void jw_strn(struct jw *w, const char *key, const uint8_t *s, size_t n);
void jw_u64(struct jw *w, const char *key, uint64_t v);
void jw_i64(struct jw *w, const char *key, int64_t v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_addr(struct jw *w, const char *key, const struct tw_addr *a);
/* Array of strings. */
void jw_strv(struct jw *w, const char *key, char *const *v, size_t n);
/* Array of numbers. */
void jw_u64v(struct jw *w, const char *key, const uint64_t *v, size_t n);
/* Raw value (already JSON), e.g. a nested object built elsewhere. */
void jw_raw(struct jw *w, const char *key, const char *json);
/* Appends escaped s (no quotes) to w: for callers composing strings. */
void jw_escape(struct jw *w, const uint8_t *s, size_t n);
/* Appends s quoted and escaped, with no key and no comma: an array item or a bare value. */
void jw_quote(struct jw *w, const uint8_t *s, size_t n);
/* Appends n bytes as they are (punctuation, or text that is already JSON). */
void jw_append(struct jw *w, const char *s, size_t n);

/* Length (1..4) of the valid UTF-8 sequence at the start of s (RFC 3629: no overlong form,
 * no surrogate, at most U+10FFFF), 0 when it is not one or n is 0. */
size_t jw_utf8_len(const uint8_t *s, size_t n);
/* Encodes code point cp (at most U+10FFFF) as UTF-8 into out; returns the length (1..4). */
size_t jw_utf8_put(uint32_t cp, char out[4]);

/* Reading (for text from outside: Redis, other sensors): one JSON object, cb called for each
 * top-level member. type is 's' (val is the decoded string, which may hold any byte a \u
 * escape gives, NUL included; vlen is its length), 'n' number, 'b' true/false, 'z' null, 'a'
 * array, 'o' object (val is the raw text). cb returns 0 to go on. The whole text is validated
 * (RFC 8259), nesting capped at JSON_WALK_DEPTH; n past max is refused before anything is
 * allocated; flags: JSON_WALK_*. Returns TW_OK, TW_EBAD, TW_ELIMIT, TW_ENOMEM or cb's non-zero
 * value. */
#define JSON_WALK_DEPTH  16
#define JSON_WALK_STRICT 0x1 /* a lone surrogate escape is refused (else read as U+FFFD) */
typedef int (*json_member_cb)(void *ctx, const char *key, size_t klen, char type, const char *val,
                              size_t vlen);
int json_walk(const char *s, size_t n, size_t max, unsigned flags, json_member_cb cb,
              void *ctx) TW_WUR;

#endif /* TW_JSON_H */
