/* fuzz_sigma.c - the Sigma loader (its fast YAML path and libyaml) and indicator-list parser on
 * arbitrary text, then the matcher on a few names and on the input's first line, an
 * observation of every kind carrying every field (the line as each text field), and the rule
 * self-test. Differential: whatever the fast path (yml.c) loads, libyaml must load to the same
 * document, node for node. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/rules.h"
#include "tunnelwatch/yml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void differential(const uint8_t *data, size_t size)
{
    struct yml_doc fast;
    yaml_document_t lib;
    if (yml_load(&fast, data, size) != YML_OK)
        return;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        abort();
    yaml_parser_set_input_string(&p, data, size);
    if (!yaml_parser_load(&p, &lib))
        abort(); /* the fast path took what libyaml refuses */
    if (!yml_same(&fast.doc, &lib))
        abort();
    yaml_document_t next;
    if (yaml_parser_load(&p, &next)) {
        if (yaml_document_get_root_node(&next))
            abort(); /* a second document the fast path did not see */
        yaml_document_delete(&next);
    }
    yaml_document_delete(&lib);
    yml_free(&fast);
    yaml_parser_delete(&p);
}

static void run(enum rule_policy pol, const char *name, const uint8_t *data, size_t size)
{
    static const char *const names[] = {"tunnel.us.ngrok.com", "a.b.example.com.", "x", "A?*"};
    struct ruleset *rs = ruleset_new(pol);
    if (!rs)
        return;
    int rc = ruleset_load_mem(rs, name, data, size, NULL);
    if (rc >= TW_ECONF && ruleset_build(rs) == TW_OK) {
        struct rule_hit h[8];
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            (void)ruleset_match(rs, RF_DEST_HOST | RF_QUERY, (const uint8_t *)names[i],
                                strlen(names[i]), h, 8);
        const uint8_t *nl = memchr(data, '\n', size);
        size_t ll = nl ? (size_t)(nl - data) : size;
        (void)ruleset_match(rs, RF_DEST_HOST, data, ll, h, 8);
        struct rule_obs o;
        memset(&o, 0, sizeof(o));
        struct rule_span line = {data, ll};
        o.name = data;
        o.name_len = ll;
        o.name_fields = RF_DEST_HOST | RF_QUERY;
        o.has_flow = o.initiated = true;
        o.src.family = 4;
        o.dst.family = 6;
        o.sport = 4444;
        o.dport = 443;
        o.proto = 6;
        o.qtype = 16;
        o.method = o.target = o.user_agent = o.host = o.cookie = o.referer = line;
        o.status = 200;
        for (int k = 0; k < ROK__COUNT; k++) {
            o.kind = (enum rule_obs_kind)k;
            (void)ruleset_match_obs(rs, &o, h, 8);
        }
        static FILE *null;
        if (!null)
            null = fopen("/dev/null", "w");
        if (null)
            (void)ruleset_selftest(rs, null);
    }
    ruleset_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    differential(data, size);
    run(RULE_POLICY_ERROR, "fuzz.yml", data, size);
    run(RULE_POLICY_SKIP, "fuzz.yml", data, size);
    run(RULE_POLICY_SKIP, "fuzz.txt", data, size);
    return 0;
}
