/* check_record.c - the recorder's formatter thread (recorder_opts.defer): records leave in the
 * order they were made, each whole and once, whether rec_drain or rec_free flushes them; the
 * bytes equal those of a recorder that formats inline; a copy outlives the caller's buffers.
 * Names of every length make the copies' sizes vary, so the queue's ring wraps at every kind
 * of offset (a mark, a tail too short for one, an exact fit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/record.h"
#include "tunnelwatch/rules.h"
#include "tw_check.h"

static struct ruleset *one_rule(void)
{
    static const char yaml[] = "title: T\nid: 00000000-0000-4000-8000-0000000000bb\nlevel: high\n"
                               "logsource:\n    category: dns\ndetection:\n    selection:\n"
                               "        query|endswith: '.example'\n    condition: selection\n";
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_ptr_nonnull(rs);
    ck_assert_int_eq(ruleset_load_mem(rs, "r.yml", (const uint8_t *)yaml, strlen(yaml), stderr), 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    return rs;
}

/* Hit i's name: distinct, 16 to 243 bytes long. */
static void name_of(int i, char *name, size_t n)
{
    int pad = (i * 37) % 228;
    snprintf(name, n, "host-%05d-%.*s.example", i, pad,
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
             "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
}

/* n hits with distinct names (each a new incident), made in a buffer overwritten after each
 * call, as the engine's packet buffers are; the recorder then freed or drained. Returns the
 * alerts written, one per line. */
static char *run(struct tw_cfg *cfg, const struct rule *ru, bool defer, int n, bool drain,
                 size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    ck_assert_ptr_nonnull(f);
    struct recorder_opts o;
    memset(&o, 0, sizeof(o));
    o.cfg = cfg;
    o.alerts_out = f;
    o.defer = defer;
    struct recorder *r = rec_new(&o);
    ck_assert_ptr_nonnull(r);
    char name[256];
    for (int i = 0; i < n; i++) {
        name_of(i, name, sizeof(name));
        struct alert_rec rec;
        memset(&rec, 0, sizeof(rec));
        rec.ts = (struct tw_time){1700000000 + i, 0};
        rec.rule = ru;
        rec.pattern = ".example";
        rec.kind = "dns_query";
        rec.name = (const uint8_t *)name;
        rec.name_len = strlen(name);
        ck_assert_int_eq(tw_addr_parse("10.0.0.7", &rec.cli), TW_OK);
        ck_assert_int_eq(tw_addr_parse("10.0.0.53", &rec.srv), TW_OK);
        rec.host = rec.cli;
        rec.proto = 17;
        rec.attribution = "client";
        rec.observer = "s1";
        bool is_new = false;
        ck_assert_ptr_nonnull(rec_hit(r, &rec, false, &is_new));
        ck_assert(is_new);
        memset(name, 'x', sizeof(name) - 1); /* the caller's bytes change at once */
    }
    if (drain)
        rec_drain(r);
    struct recorder_stats st;
    rec_stats(r, &st);
    ck_assert_uint_eq(st.alerts, (uint64_t)n);
    ck_assert_uint_eq(st.dropped, 0);
    rec_free(r);
    fclose(f);
    return out;
}

/* The lines of text with their event ids taken out (they differ between recorders). */
static char *without_ids(const char *text)
{
    char *c = strdup(text);
    static const char key[] = "\"event.id\":\"";
    size_t n = strlen(c), k = sizeof(key) - 1;
    /* memmem over the bytes left: strstr would measure the rest of the text at each call */
    for (char *p = memmem(c, n, key, k); p; p = memmem(p + 1, n - (size_t)(p + 1 - c), key, k))
        memset(p + 12, '-', 33);
    return c;
}

START_TEST(deferred_in_order)
{
    struct tw_cfg cfg;
    cfg_defaults(&cfg);
    struct ruleset *rs = one_rule();
    const struct rule *ru = ruleset_rule(rs, 0);
    int n = 16000; /* over 10 MiB of copies: the ring wraps several times, the caller waits */
    size_t la = 0, lb = 0, lc = 0;
    char *inline_out = run(&cfg, ru, false, n, false, &la);
    char *drained = run(&cfg, ru, true, n, true, &lb);
    char *freed = run(&cfg, ru, true, n, false, &lc);
    char *a = without_ids(inline_out), *b = without_ids(drained), *c = without_ids(freed);
    ck_assert_str_eq(a, b);
    ck_assert_str_eq(a, c);
    /* each line whole and in the order made */
    const char *p = drained;
    for (int i = 0; i < n; i++) {
        char name[256], want[300];
        name_of(i, name, sizeof(name));
        snprintf(want, sizeof(want), "\"destination.domain\":\"%s\"", name);
        const char *nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_msg(memmem(p, (size_t)(nl - p), want, strlen(want)), "line %d", i);
        p = nl + 1;
    }
    ck_assert_str_eq(p, "");
    free(a);
    free(b);
    free(c);
    free(inline_out);
    free(drained);
    free(freed);
    ruleset_free(rs);
    cfg_free(&cfg);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("record");
    TCase *tc = tcase_create("defer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, deferred_in_order);
    suite_add_tcase(s, tc);
    return s;
}
