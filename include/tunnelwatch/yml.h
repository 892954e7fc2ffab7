/* yml.h - a fast loader for the plain subset of YAML that Sigma rule files are written in.
 *
 * libyaml costs about 170 instructions per input byte (a character-by-character scanner and a
 * token queue with an allocation per token); loading SigmaHQ's network rules took longer than
 * replaying a 50 MB capture. yml_load builds the same yaml_document_t libyaml's loader would
 * (same node order and ids, values, styles, tags and start lines) for one document of block
 * mappings, block sequences, one-line plain / quoted scalars, multi-line plain scalars and
 * literal block scalars, in ASCII. Anything else it declines, and the caller loads the file
 * with libyaml as before: the subset is chosen so that declining is always safe, never
 * guessing. yml_same compares two documents (the differential tests and fuzz target).
 *
 * Ownership: on YML_OK the caller owns *out and frees it with yml_free (not
 * yaml_document_delete: values, tags and child lists live in one arena); otherwise nothing is
 * left allocated.
 */
#ifndef TW_YML_H
#define TW_YML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "tunnelwatch/tw.h"

enum yml_rc {
    YML_OK = 0,      /* *doc holds the document */
    YML_DECLINE = 1, /* outside the subset: load it with libyaml */
    YML_ENOMEM = TW_ENOMEM,
};

struct yml_chunk;

/* A document yml_load built: doc reads as any libyaml document (yaml_document_get_node, ...). */
struct yml_doc {
    yaml_document_t doc;
    struct yml_chunk *arena;
};

int yml_load(struct yml_doc *out, const uint8_t *data, size_t len) TW_WUR;
void yml_free(struct yml_doc *d);

/* True when a and b have the same nodes (types, scalar values and styles, tags, start lines,
 * children), node for node. */
bool yml_same(yaml_document_t *a, yaml_document_t *b);

#endif /* TW_YML_H */
