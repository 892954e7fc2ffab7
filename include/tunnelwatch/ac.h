/* ac.h - Aho-Corasick multi-pattern matcher over bytes, case-insensitive (ASCII).
 *
 * Build once (ac_add ... ac_build, or ac_build_background), then read-only to callers: any
 * number of threads may search.
 * Memory-compact for large pattern sets (a million patterns must load in seconds and in a
 * few hundred MB). Each pattern carries a caller id; hits report id and end offset.
 */
#ifndef TW_AC_H
#define TW_AC_H

#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

struct ac;

struct ac *ac_new(void);
void ac_free(struct ac *ac);
/* Adds a pattern (copied, folded to lower case). Returns TW_OK, TW_EBAD (empty) or TW_ENOMEM. */
int ac_add(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id) TW_WUR;
/* ac_add with tag bits of the caller's (ac_add's are 0xff): ac_search_tagged reports the
 * pattern only to a search whose mask shares a bit with them. */
int ac_add_tagged(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id, uint8_t tag) TW_WUR;
/* Where a pattern may match (ac_add_anchored): AC_AT_START only at the start of the text,
 * AC_AT_END only at its end (both: the whole text). A search reports it nowhere else, and a
 * node whose patterns all end at the text's end costs a mid-text visit no more than a node
 * without any (a Sigma value with |endswith, whose other matches its check would refuse). */
enum { AC_AT_START = 1, AC_AT_END = 2 };
int ac_add_anchored(struct ac *ac, const uint8_t *pat, size_t len, uint32_t id, uint8_t tag,
                    unsigned at) TW_WUR;
/* Builds the automaton; small ones (see ac.c) also get a DFA that searches faster. */
int ac_build(struct ac *ac) TW_WUR;
/* ac_build without the DFA: the compact search path only. It exists for the tests and the
 * fuzzer, which compare the two paths hit by hit; the sensor calls ac_build. */
int ac_build_compact(struct ac *ac) TW_WUR;
/* ac_build of n automata whose DFAs are built on one thread: each is searchable at once (the
 * compact path, with the same hits) and takes its DFA when it is ready. The sensor's rule
 * automata, so that the DFAs' build (milliseconds) is off the path to the first packet.
 * Freeing one of them waits for the thread. */
int ac_build_background(struct ac *const *acs, size_t n) TW_WUR;
size_t ac_pattern_count(const struct ac *ac);
size_t ac_memory(const struct ac *ac); /* bytes held */

/* Called for each hit; end is the offset just past the match in text. Return non-zero to stop. */
typedef int (*ac_hit_fn)(void *ud, uint32_t id, size_t end);

/* Searches text; returns the number of hits reported (>= 0). */
int ac_search(const struct ac *ac, const uint8_t *text, size_t len, ac_hit_fn fn, void *ud);
/* The same, reporting only the patterns whose tag shares a bit with mask; a node none of
 * whose patterns is asked for costs no more than a node without any (ac_search: mask 0xff). */
int ac_search_tagged(const struct ac *ac, const uint8_t *text, size_t len, uint8_t mask,
                     ac_hit_fn fn, void *ud);

#endif /* TW_AC_H */
