/* fuzz_sigma.c - the Sigma loader (libyaml) and indicator-list parser on arbitrary text, then
 * the matcher on a few names and on the input's first line. */
#include <string.h>

#include "tunnelwatch/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        (void)ruleset_match(rs, RF_DEST_HOST, data, nl ? (size_t)(nl - data) : size, h, 8);
    }
    ruleset_free(rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(RULE_POLICY_ERROR, "fuzz.yml", data, size);
    run(RULE_POLICY_SKIP, "fuzz.yml", data, size);
    run(RULE_POLICY_SKIP, "fuzz.txt", data, size);
    return 0;
}
