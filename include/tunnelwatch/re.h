/* re.h - a small regular-expression matcher in linear time (Thompson NFA, Pike VM), for
 * Sigma's `|re` modifier.
 *
 * Syntax (a subset of PCRE, as Sigma rules use it): literals and `\` escapes, `.`, classes
 * `[a-z0-9\-]`, `[^...]`, `\d \w \s` (and upper-case negations), `\xHH`, groups `(...)` and
 * `(?:...)`, alternation `|`, quantifiers `* + ? {m} {m,} {m,n}` (a lazy `?` after one is
 * accepted: a yes/no search does not depend on it), anchors `^ $`, and a leading `(?i)`.
 * Backreferences, lookaround and other `(?...)` forms are refused (TW_EBAD). Matching is a
 * search (the pattern may match anywhere) and never backtracks: O(len(text) * len(program)).
 * Limits: pattern 4096 bytes, {m,n} bounds 1000, program 4096 instructions after repetitions
 * are expanded (TW_ELIMIT beyond), nesting 64.
 *
 * Ownership: re_compile allocates the program; re_free releases it. A compiled program is
 * read-only: any number of threads may search with it (each search uses its stack).
 */
#ifndef TW_RE_H
#define TW_RE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

#define RE_MAX_PATTERN 4096
#define RE_MAX_PROG    4096
#define RE_MAX_REPEAT  1000

struct re;

/* Compiles pat[0..n); icase: match ASCII letters in any case (as a leading (?i)). On error
 * returns TW_EBAD (syntax or unsupported construct), TW_ELIMIT or TW_ENOMEM, with a short
 * reason in err. */
int re_compile(const char *pat, size_t n, bool icase, struct re **out, char *err,
               size_t errlen) TW_WUR;
void re_free(struct re *re);

/* Whether the pattern matches somewhere in s[0..n). Small programs without anchors (at most
 * 64 byte sets) run bit-parallel, the others on the Pike VM; both give the same answer. */
bool re_search(const struct re *re, const uint8_t *s, size_t n);
/* The Pike VM alone (tests and fuzzing compare the two). */
bool re_search_nfa(const struct re *re, const uint8_t *s, size_t n);

/* A short text the pattern matches (built from the pattern itself: first choices, minimum
 * repetitions; at most 1023 bytes), its length in *len (it may hold NUL bytes, and is
 * NUL-terminated too); for rule self-tests. */
const char *re_sample(const struct re *re, size_t *len);

#endif /* TW_RE_H */
