/* check_rules.c - Sigma loader and matcher: the SigmaHQ seed, every condition form,
 * wildcards, |all, field presence, unsupported constructs under both policies, YAML syntax
 * errors, indicator lists (label boundary), the shipped rule folder, and the overflow
 * fallback of the matcher. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/rules.h"
#include "tw_check.h"

#define SEED_ID    "19bf6fdb-7721-4f3d-867f-53467f6a5db6"
#define AGENT_ID   "dbdce361-c13c-467b-bbef-69d6ab576f43"
#define CLOUDFL_ID "c54244a6-87db-4a18-bf10-af93638648b4"
#define TS_ID      "4aff1713-be85-4164-a306-e82ae8a1080f"
#define ANY        (RF_DEST_HOST | RF_QUERY)

/* Loads text (YAML or, for a .txt name, an indicator list); errors land in *errs. */
static struct ruleset *load_text(enum rule_policy pol, const char *name, const char *text, int *rc,
                                 char **errs)
{
    struct ruleset *rs = ruleset_new(pol);
    ck_assert_ptr_nonnull(rs);
    size_t elen = 0;
    FILE *err = open_memstream(errs, &elen);
    ck_assert_ptr_nonnull(err);
    *rc = ruleset_load_mem(rs, name, (const uint8_t *)text, strlen(text), err);
    fclose(err);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    return rs;
}

static int match(const struct ruleset *rs, unsigned fields, const char *name, struct rule_hit *h,
                 size_t max)
{
    return ruleset_match(rs, fields, (const uint8_t *)name, strlen(name), h, max);
}

/* The id of the single rule that matches name, or "" (none) / "many". */
static const char *one(const struct ruleset *rs, unsigned fields, const char *name)
{
    struct rule_hit h[8];
    int n = match(rs, fields, name, h, 8);
    return n == 0 ? "" : n == 1 ? h[0].rule->id : "many";
}

/* ---- the seed --------------------------------------------------------------------------- */

START_TEST(test_seed)
{
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    int rc =
        ruleset_load(rs, tw_src_path("conf/rules/net_connection_lnx_ngrok_tunnel.yml"), stderr);
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    struct ruleset_summary s;
    ruleset_summary(rs, &s);
    ck_assert_uint_eq(s.rules, 1);
    ck_assert_uint_eq(s.patterns, 7);
    ck_assert_uint_eq(s.fields, RF_DEST_HOST);
    ck_assert_uint_eq(s.skipped, 0);
    const struct rule *r = ruleset_rule(rs, 0);
    ck_assert_str_eq(r->id, SEED_ID);
    ck_assert_str_eq(r->level, "high");
    ck_assert_uint_eq(r->n_tags, 8);
    /* attack.s0508 is a software id and the tactics are not techniques */
    static const char *tech[] = {"T1567", "T1568.002", "T1572", "T1090", "T1102"};
    ck_assert_uint_eq(r->n_techniques, 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(r->techniques[i], tech[i]);
    ck_assert_uint_eq(r->n_falsepositives, 1);
    ck_assert_str_eq(r->falsepositives[0], "Legitimate use of ngrok");
    static const char *names[] = {
        "tunnel.us.ngrok.com", "tunnel.eu.ngrok.com", "tunnel.ap.ngrok.com", "tunnel.au.ngrok.com",
        "tunnel.sa.ngrok.com", "tunnel.jp.ngrok.com", "tunnel.in.ngrok.com"};
    for (size_t i = 0; i < 7; i++) {
        struct rule_hit h[4];
        ck_assert_int_eq(match(rs, RF_DEST_HOST, names[i], h, 4), 1);
        ck_assert_str_eq(h[0].rule->id, SEED_ID);
        ck_assert_str_eq(h[0].rule->title, "Communication To Ngrok Tunneling Service - Linux");
        ck_assert_str_eq(h[0].pattern, names[i]);
    }
    /* contains is a substring match, case-insensitive, one trailing dot ignored */
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "xtunnel.us.ngrok.com.evil"), SEED_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "tunnel.us.ngrok.com."), SEED_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "TUNNEL.JP.NGROK.COM"), SEED_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "Tunnel.In.Ngrok.Com."), SEED_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "ngrok.com"), "");
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "tunnel.us.ngrok.co"), "");
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "example.com"), "");
    /* the rule looks at DestinationHostname: a query-only observation does not match */
    ck_assert_str_eq(one(rs, RF_QUERY, "tunnel.us.ngrok.com"), "");
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "", NULL, 0), 0);
    ruleset_free(rs);
}
END_TEST

/* Every prefix of the seed either loads or fails cleanly with TW_ECONF, never crashes. */
START_TEST(test_seed_prefixes)
{
    size_t len;
    uint8_t *buf =
        tw_read_file(tw_src_path("conf/rules/net_connection_lnx_ngrok_tunnel.yml"), &len);
    ck_assert_ptr_nonnull(buf);
    for (size_t k = 0; k < len; k++) {
        struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
        FILE *devnull = fopen("/dev/null", "w");
        int rc = ruleset_load_mem(rs, "prefix.yml", buf, k, devnull);
        fclose(devnull);
        ck_assert_msg(rc == TW_ECONF || rc == 0 || rc == 1, "prefix %zu: rc %d", k, rc);
        ck_assert_int_eq(ruleset_build(rs), TW_OK);
        ruleset_free(rs);
    }
    free(buf);
}
END_TEST

/* ---- conditions, modifiers, wildcards ---------------------------------------------------- */

static const char cond_tmpl[] = "title: Cond\n"
                                "id: 00000000-0000-4000-8000-000000000001\n"
                                "level: low\n"
                                "detection:\n"
                                "    sel_a:\n"
                                "        DestinationHostname|endswith: '.a.com'\n"
                                "    sel_b:\n"
                                "        DestinationHostname|contains: 'bad'\n"
                                "    filter:\n"
                                "        DestinationHostname|startswith: 'ok'\n"
                                "    condition: %s\n";

struct cond_case {
    const char *cond;
    const char *yes[3];
    const char *no[3];
};

static const struct cond_case cond_cases[] = {
    {"sel_a", {"x.a.com", "X.A.COM.", NULL}, {"bad.com", "a.com", "x.a.com.evil"}},
    {"sel_a and sel_b", {"bad.a.com", NULL, NULL}, {"x.a.com", "bad.net", NULL}},
    {"sel_a or sel_b", {"bad.net", "x.a.com", NULL}, {"example.org", NULL, NULL}},
    {"sel_a and not filter", {"x.a.com", NULL, NULL}, {"ok.a.com", "bad.net", NULL}},
    {"(sel_a or sel_b) and not filter",
     {"bad.net", "x.a.com", NULL},
     {"okbad.net", "ok.a.com", NULL}},
    {"sel_a or sel_b and filter", {"x.a.com", "okbad.net", NULL}, {"bad.net", NULL, NULL}},
    {"1 of sel_*", {"bad.net", "x.a.com", NULL}, {"ok.net", NULL, NULL}},
    {"all of sel_*", {"bad.a.com", NULL, NULL}, {"bad.net", "x.a.com", NULL}},
    {"1 of them", {"ok.net", "bad.net", "x.a.com"}, {"example.org", NULL, NULL}},
    {"all of them", {"okbad.a.com", NULL, NULL}, {"bad.a.com", "ok.a.com", NULL}},
    {"not sel_a", {"example.org", "bad.net", NULL}, {"x.a.com", NULL, NULL}},
    {"not (sel_a or sel_b)", {"example.org", NULL, NULL}, {"x.a.com", "bad.net", NULL}},
    {"not not sel_b", {"bad.net", NULL, NULL}, {"x.a.com", NULL, NULL}},
};

START_TEST(test_conditions)
{
    const struct cond_case *c = &cond_cases[_i];
    char yaml[1024], *errs = NULL;
    snprintf(yaml, sizeof(yaml), cond_tmpl, c->cond);
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "cond.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 1, "condition '%s': rc %d: %s", c->cond, rc, errs);
    struct rule_hit h[2];
    for (int i = 0; i < 3; i++) {
        if (c->yes[i])
            ck_assert_msg(match(rs, RF_DEST_HOST, c->yes[i], h, 2) == 1, "'%s' should match '%s'",
                          c->cond, c->yes[i]);
        if (c->no[i])
            ck_assert_msg(match(rs, RF_DEST_HOST, c->no[i], h, 2) == 0,
                          "'%s' should not match '%s'", c->cond, c->no[i]);
    }
    free(errs);
    ruleset_free(rs);
}
END_TEST

static struct ruleset *one_rule(const char *detection)
{
    char yaml[2048], *errs = NULL;
    snprintf(yaml, sizeof(yaml),
             "title: Modifiers\nid: 00000000-0000-4000-8000-000000000002\nlevel: medium\n"
             "detection:\n%s",
             detection);
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "mod.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, errs);
    free(errs);
    return rs;
}

START_TEST(test_wildcards)
{
    struct ruleset *rs = one_rule("    sel:\n"
                                  "        DestinationHostname:\n"
                                  "            - 'connect.*.ngrok-agent.com'\n"
                                  "            - 'a?c.net'\n"
                                  "            - 'lit\\*star.org'\n"
                                  "    condition: sel\n");
    ck_assert_str_ne(one(rs, ANY, "connect.eu.ngrok-agent.com"), "");
    ck_assert_str_ne(one(rs, ANY, "CONNECT.us-cal-1.NGROK-AGENT.COM."), "");
    ck_assert_str_eq(one(rs, ANY, "connect.ngrok-agent.com"), "");
    ck_assert_str_eq(one(rs, ANY, "xconnect.eu.ngrok-agent.com"), ""); /* equals: anchored */
    ck_assert_str_ne(one(rs, ANY, "abc.net"), "");
    ck_assert_str_eq(one(rs, ANY, "ac.net"), ""); /* ? is exactly one byte */
    ck_assert_str_eq(one(rs, ANY, "abbc.net"), "");
    ck_assert_str_ne(one(rs, ANY, "LIT*STAR.org"), ""); /* \* is a literal star */
    ck_assert_str_eq(one(rs, ANY, "litxstar.org"), "");
    ruleset_free(rs);

    /* a value that is only '*' has no literal anchor and matches any non-empty name */
    rs = one_rule("    sel:\n        QueryName: '*'\n    condition: sel\n");
    ck_assert_str_ne(one(rs, RF_QUERY, "anything.example"), "");
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "anything.example"), ""); /* other field */
    ruleset_free(rs);

    /* wildcard inside contains/startswith/endswith */
    rs = one_rule("    sel:\n        DestinationHostname|contains: 'tun*ngrok'\n"
                  "    sel2:\n        DestinationHostname|startswith: 'x?y'\n"
                  "    sel3:\n        DestinationHostname|endswith: '.l?.com'\n"
                  "    condition: 1 of sel*\n");
    ck_assert_str_ne(one(rs, ANY, "my-tunnel.eu.ngrok.io"), "");
    ck_assert_str_eq(one(rs, ANY, "ngrok.tun"), "");
    ck_assert_str_ne(one(rs, ANY, "x-y.example"), "");
    ck_assert_str_eq(one(rs, ANY, "a.x-y.example"), "");
    ck_assert_str_ne(one(rs, ANY, "a.lt.com"), "");
    ck_assert_str_eq(one(rs, ANY, "a.lt.com.evil"), "");
    ruleset_free(rs);
}
END_TEST

START_TEST(test_modifiers)
{
    struct ruleset *rs = one_rule("    sel:\n"
                                  "        DestinationHostname|contains|all:\n"
                                  "            - 'tunnel'\n"
                                  "            - 'ngrok'\n"
                                  "    eq:\n"
                                  "        DestinationHostname: 'exact.example'\n"
                                  "    sw:\n"
                                  "        DestinationHostname|startswith: 'pre.'\n"
                                  "    condition: sel or eq or sw\n");
    struct rule_hit h[2];
    ck_assert_int_eq(match(rs, ANY, "tunnel.ngrok.x", h, 2), 1);
    ck_assert_int_eq(match(rs, ANY, "ngrok-tunnel", h, 2), 1);
    ck_assert_int_eq(match(rs, ANY, "tunnel.x", h, 2), 0); /* |all needs both */
    ck_assert_int_eq(match(rs, ANY, "exact.example.", h, 2), 1);
    ck_assert_str_eq(h[0].pattern, "exact.example");
    ck_assert_int_eq(match(rs, ANY, "exact.example..", h, 2), 0); /* one dot only */
    ck_assert_int_eq(match(rs, ANY, "x.exact.example", h, 2), 0);
    ck_assert_int_eq(match(rs, ANY, "exact.example.com", h, 2), 0);
    ck_assert_int_eq(match(rs, ANY, "PRE.host", h, 2), 1);
    ck_assert_int_eq(match(rs, ANY, "a.pre.host", h, 2), 0);
    ruleset_free(rs);

    /* a list of maps is an OR of maps; each map is an AND; fields must be present */
    rs = one_rule("    sel:\n"
                  "        - DestinationHostname|endswith: '.a.com'\n"
                  "          dst_host|startswith: 'x'\n"
                  "        - QueryName: 'b.com'\n"
                  "    condition: sel\n");
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "x1.a.com", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "y1.a.com", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_QUERY, "b.com", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "b.com", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_QUERY, "x1.a.com", h, 2), 0);
    const struct rule *r = ruleset_rule(rs, 0);
    ck_assert_uint_eq(r->fields, RF_DEST_HOST | RF_QUERY);
    ruleset_free(rs);

    /* field aliases */
    rs = one_rule("    s1:\n        destination.domain: 'a.example'\n"
                  "    s2:\n        dns.question.name: 'b.example'\n"
                  "    s3:\n        query|endswith: '.c.example'\n"
                  "    condition: 1 of them\n");
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "a.example", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_QUERY, "b.example", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_QUERY, "x.c.example", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "x.c.example", h, 2), 0);
    ruleset_free(rs);
}
END_TEST

/* ---- unsupported constructs and syntax errors ------------------------------------------- */

struct bad_case {
    const char *detection;
    const char *construct; /* must appear in the message */
};

static const struct bad_case bad_cases[] = {
    {"    sel:\n        DestinationHostname|windash: '-ngrok'\n    condition: sel\n", "|windash"},
    {"    sel:\n        DestinationHostname|base64: 'ngrok'\n    condition: sel\n", "|base64"},
    {"    sel:\n        Image|endswith: '/ngrok'\n    condition: sel\n", "Image"},
    {"    keywords:\n        - 'ngrok'\n    condition: keywords\n", "keyword"},
    {"    sel:\n        DestinationHostname: 'a'\n    condition: sel | count() > 5\n",
     "aggregation"},
    {"    sel:\n        DestinationHostname: 'a'\n    s2:\n        QueryName: 'b'\n"
     "    condition: sel near s2\n",
     "near"},
    {"    sel:\n        DestinationHostname: 'a'\n    condition: sel and other\n", "other"},
    {"    sel:\n        DestinationHostname: 'a'\n    timeframe: 5m\n    condition: sel\n",
     "timeframe"},
};

START_TEST(test_unsupported)
{
    const struct bad_case *b = &bad_cases[_i];
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "title: Bad Rule\nid: 00000000-0000-4000-8000-0000000000bb\nlevel: high\n"
             "detection:\n%s---\n"
             "title: Good Rule\nid: 00000000-0000-4000-8000-0000000000aa\n"
             "detection:\n    sel:\n        DestinationHostname: 'good.example'\n"
             "    condition: sel\n",
             b->detection);
    /* error policy: loading fails, one line naming file, rule and construct */
    char *errs = NULL;
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "rules/bad.yml", yaml, &rc, &errs);
    ck_assert_int_eq(rc, TW_ECONF);
    ck_assert_msg(strstr(errs, "rules/bad.yml:") && strstr(errs, "Bad Rule") &&
                      strstr(errs, "0000000000bb") && strstr(errs, b->construct) &&
                      strstr(errs, "error"),
                  "message: %s", errs);
    ck_assert_ptr_eq(strchr(errs, '\n'), errs + strlen(errs) - 1); /* one line */
    free(errs);
    ruleset_free(rs);
    /* skip policy: a warning, the bad rule skipped and counted, the good one kept */
    rs = load_text(RULE_POLICY_SKIP, "rules/bad.yml", yaml, &rc, &errs);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errs, "warning") && strstr(errs, "Bad Rule") &&
                      strstr(errs, b->construct) && strstr(errs, "skipped"),
                  "message: %s", errs);
    struct ruleset_summary s;
    ruleset_summary(rs, &s);
    ck_assert_uint_eq(s.rules, 1);
    ck_assert_uint_eq(s.skipped, 1);
    ck_assert_str_eq(one(rs, ANY, "good.example"), "00000000-0000-4000-8000-0000000000aa");
    ck_assert_str_eq(one(rs, ANY, "a"), "");
    free(errs);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_yaml_syntax)
{
    const char *yaml = "title: Broken\n"
                       "id: x\n"
                       "detection:\n"
                       "    sel:\n"
                       "        DestinationHostname: ['a', 'b'\n"
                       "    condition: sel\n";
    for (int pol = 0; pol < 2; pol++) {
        char *errs = NULL;
        int rc;
        struct ruleset *rs = load_text((enum rule_policy)pol, "dir/broken.yml", yaml, &rc, &errs);
        ck_assert_int_eq(rc, TW_ECONF);
        /* libyaml notices the unclosed flow sequence on line 6 */
        ck_assert_msg(strstr(errs, "dir/broken.yml:6:") && strstr(errs, "YAML"), "message: %s",
                      errs);
        free(errs);
        ruleset_free(rs);
    }
}
END_TEST

/* ---- indicator lists -------------------------------------------------------------------- */

START_TEST(test_indicator_list)
{
    const char *list = "# id: 5d1c6e1e-0000-4000-8000-000000000042\n"
                       "# title: Test feed\n"
                       "# level: high\n"
                       "# tags: attack.command-and-control, attack.t1572\n"
                       "# field: dest_host\n"
                       "michigan.org\n"
                       "\n"
                       "  *.Example.NET.   # trailing comment\n";
    char *errs = NULL;
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "feed.txt", list, &rc, &errs);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, errs);
    const struct rule *r = ruleset_rule(rs, 0);
    ck_assert_str_eq(r->id, "5d1c6e1e-0000-4000-8000-000000000042");
    ck_assert_str_eq(r->title, "Test feed");
    ck_assert_str_eq(r->level, "high");
    ck_assert_uint_eq(r->n_tags, 2);
    ck_assert_uint_eq(r->n_techniques, 1);
    ck_assert_str_eq(r->techniques[0], "T1572");
    ck_assert_uint_eq(r->fields, RF_DEST_HOST);
    struct rule_hit h[2];
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "michigan.org", h, 2), 1);
    ck_assert_str_eq(h[0].pattern, "michigan.org");
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "a.michigan.org", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "A.B.MICHIGAN.ORG.", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "michigan.org.", h, 2), 1);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "higan.org", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "xmichigan.org", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "michigan.org.evil", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "org", h, 2), 0);
    ck_assert_int_eq(match(rs, RF_QUERY, "michigan.org", h, 2), 0); /* field: dest_host */
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "www.example.net", h, 2), 1);
    ck_assert_str_eq(h[0].pattern, "example.net");
    free(errs);
    ruleset_free(rs);

    /* a line that is not a domain */
    rs = load_text(RULE_POLICY_ERROR, "bad.txt", "# title: T\nok.example\nnot a domain\n", &rc,
                   &errs);
    ck_assert_int_eq(rc, TW_ECONF);
    ck_assert_msg(strstr(errs, "bad.txt:3:") != NULL, "message: %s", errs);
    free(errs);
    ruleset_free(rs);
    /* an empty label, a character no name has: refused at their line (checked while the
     * name is copied); underscores, digits and hyphens are names */
    static const char *const bad[] = {"a..example", "x.exa mple", "x.ex@mple", "x.\xc3\xa9.org"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "ok.example\n_srv-1.Example9.org\n%s\n", bad[i]);
        rs = load_text(RULE_POLICY_ERROR, "bad.txt", text, &rc, &errs);
        ck_assert_int_eq(rc, TW_ECONF);
        ck_assert_msg(strstr(errs, "bad.txt:3:") != NULL, "%s: %s", bad[i], errs);
        free(errs);
        ruleset_free(rs);
    }
}
END_TEST

/* ---- the shipped folder ----------------------------------------------------------------- */

START_TEST(test_shipped_rules)
{
    /* each file on its own, then the folder, under the error policy */
    const char *dir = tw_src_path("conf/rules");
    char dirbuf[4096];
    snprintf(dirbuf, sizeof(dirbuf), "%s", dir);
    DIR *d = opendir(dirbuf);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".yml") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof(path), "%s/%s", dirbuf, e->d_name);
        struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
        ck_assert_msg(ruleset_load(rs, path, stderr) == 1, "%s does not load", e->d_name);
        ck_assert_int_eq(ruleset_build(rs), TW_OK);
        const struct rule *r = ruleset_rule(rs, 0);
        ck_assert_msg(r->n_techniques >= 2 && r->n_falsepositives >= 1 && r->level,
                      "%s: tags/falsepositives/level", e->d_name);
        ruleset_free(rs);
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 12);

    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_int_eq(ruleset_load(rs, dirbuf, stderr), files);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    /* the agent endpoint is the local rule's, not the seed's */
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "connect.ngrok-agent.com"), AGENT_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "connect.eu.ngrok-agent.com."), AGENT_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "bin.equinox.io"), AGENT_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "tunnel.us.ngrok.com"), SEED_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "abc.trycloudflare.com"), CLOUDFL_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "region1.v2.argotunnel.com"), CLOUDFL_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "xtrycloudflare.com"), ""); /* label boundary */
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "host.tail1234.ts.net"), TS_ID);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "bts.net"), "");
    static const char *hit_names[] = {"x.ngrok-free.app",
                                      "loca.lt",
                                      "a.serveo.net",
                                      "x.lhr.life",
                                      "a.pinggy.io",
                                      "free.pinggy.net",
                                      "bore.pub",
                                      "share.zrok.io",
                                      "abc-8000.euw.devtunnels.ms",
                                      "global.rel.tunnels.api.visualstudio.com"};
    for (size_t i = 0; i < TW_ARRAY_LEN(hit_names); i++)
        ck_assert_msg(strcmp(one(rs, RF_DEST_HOST, hit_names[i]), "") != 0 &&
                          strcmp(one(rs, RF_DEST_HOST, hit_names[i]), "many") != 0,
                      "%s: no single hit", hit_names[i]);
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "ngrok.com"), "");
    ck_assert_str_eq(one(rs, RF_DEST_HOST, "example.com"), "");
    ruleset_free(rs);
}
END_TEST

/* ---- the matcher's fallback when a name touches more than its scratch holds ------------- */

START_TEST(test_overflow_fallback)
{
    /* 69 rules, each 'contains' a distinct 2- or 3-byte piece of one name: more rules than
     * the per-call touched list holds */
    static const char nm[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t cap = 1 << 16, len = 0;
    char *yaml = malloc(cap);
    int nrules = 0;
    for (size_t w = 2; w <= 3; w++)
        for (size_t i = 0; i + w <= sizeof(nm) - 1; i++, nrules++)
            len += (size_t)snprintf(yaml + len, cap - len,
                                    "title: R%d\nid: r%d\ndetection:\n  s:\n"
                                    "    DestinationHostname|contains: '%.*s'\n"
                                    "  condition: s\n---\n",
                                    nrules, nrules, (int)w, nm + i);
    /* plus one rule whose |all needs 300 values, all present in the name */
    len += (size_t)snprintf(yaml + len, cap - len,
                            "title: Many\nid: many\ndetection:\n  s:\n"
                            "    DestinationHostname|contains|all:\n");
    int k = 0;
    for (size_t w = 1; w <= sizeof(nm) - 1 && k < 300; w++)
        for (size_t i = 0; i + w <= sizeof(nm) - 1 && k < 300; i++, k++)
            len += (size_t)snprintf(yaml + len, cap - len, "      - '%.*s'\n", (int)w, nm + i);
    snprintf(yaml + len, cap - len, "  condition: s\n");
    char *errs = NULL;
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "many.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == nrules + 1, "rc %d: %s", rc, errs);
    struct rule_hit h[128];
    int n = match(rs, ANY, nm, h, 128);
    ck_assert_int_eq(n, nrules + 1);
    for (int i = 0; i < n; i++)
        ck_assert_ptr_eq(h[i].rule, ruleset_rule(rs, (size_t)i)); /* in rule order */
    /* the |all rule fails when one value is missing, also on the fallback path */
    /* without the leading 'a': 'ab' and 'abc' are gone, and 'Many' lacks its value 'a' */
    ck_assert_int_eq(match(rs, ANY, nm + 1, h, 128), nrules - 2);
    for (int i = 0; i < nrules - 2; i++)
        ck_assert_ptr_nonnull(strstr(nm + 1, h[i].pattern));
    free(errs);
    free(yaml);
    ruleset_free(rs);
}
END_TEST

/* ---- observations: the field map, field kinds, logsources ------------------------------ */

/* A loaded one-rule set (error policy unless skip); the rule's id is "00..01". */
static struct ruleset *obs_rules(const char *logsource, const char *detection, bool drop)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "title: T\nid: 00000000-0000-4000-8000-000000000001\nlevel: high\n"
             "logsource:\n%sdetection:\n%s",
             logsource, detection);
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_ptr_nonnull(rs);
    ruleset_set_drop_filters(rs, drop);
    ck_assert_int_eq(ruleset_load_mem(rs, "obs.yml", (const uint8_t *)yaml, strlen(yaml), stderr),
                     1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    return rs;
}

static struct rule_span sp(const char *s)
{
    struct rule_span r = {(const uint8_t *)s, s ? strlen(s) : 0};
    if (!s)
        r.p = NULL;
    return r;
}

static void obs_flow(struct rule_obs *o, enum rule_obs_kind kind, const char *name, const char *dst,
                     uint16_t dport)
{
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->name = (const uint8_t *)name;
    o->name_len = name ? strlen(name) : 0;
    o->name_fields = name ? RF_DEST_HOST : 0;
    o->has_flow = o->initiated = true;
    ck_assert_int_eq(tw_addr_parse("10.0.0.5", &o->src), TW_OK);
    ck_assert_int_eq(tw_addr_parse(dst, &o->dst), TW_OK);
    o->sport = 50000;
    o->dport = dport;
    o->proto = 6;
}

static int hits_obs(const struct ruleset *rs, const struct rule_obs *o, struct rule_hit *h)
{
    return ruleset_match_obs(rs, o, h, 4);
}

START_TEST(test_obs_initiated)
{
    struct ruleset *rs = obs_rules("    category: network_connection\n",
                                   "    selection:\n        Initiated: 'true'\n"
                                   "        DestinationHostname|endswith: '.localto.net'\n"
                                   "    condition: selection\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_TLS_SNI, "a.localto.net", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ck_assert(h[0].fields & RF_INITIATED);
    ck_assert(h[0].fields & RF_DEST_HOST);
    ck_assert(!h[0].relaxed);
    obs_flow(&o, ROK_TLS_SNI, "localto.net.example", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    /* no flow, no Initiated: a bare name does not satisfy it */
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "a.localto.net", h, 4), 0);
    ruleset_free(rs);
}
END_TEST

/* A rule whose selections use fields of different observations ('DestinationHostname or
 * QueryName', the catch-all of the tests) runs on each observation that carries one of them:
 * the field an observation lacks matches nothing, the other still does. */
START_TEST(test_obs_mixed_fields)
{
    struct ruleset *rs = obs_rules("    category: network_connection\n",
                                   "    dest:\n        DestinationHostname|endswith: '.a.test'\n"
                                   "    query:\n        QueryName|endswith: '.b.test'\n"
                                   "    condition: dest or query\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_TLS_SNI, "x.a.test", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    obs_flow(&o, ROK_TLS_SNI, "x.b.test", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0); /* a TLS name is no query name */
    obs_flow(&o, ROK_DNS_QUERY, "x.b.test", "198.51.100.53", 53);
    o.name_fields = RF_DEST_HOST | RF_QUERY; /* a query name is both, as the engine says */
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ruleset_free(rs);
}
END_TEST

/* ruleset_flow_may on o's flow: the engine's test before it builds a flow observation. */
static bool flow_may(const struct ruleset *rs, const struct rule_obs *o)
{
    return ruleset_flow_may(rs, &o->src, &o->dst, o->dport);
}

START_TEST(test_obs_ports_cidr)
{
    struct ruleset *rs = obs_rules("    category: network_connection\n",
                                   "    selection:\n        Initiated: 'true'\n"
                                   "        DestinationPort:\n            - 4444\n"
                                   "            - 8081\n"
                                   "    filter:\n        DestinationIp|cidr:\n"
                                   "            - '10.0.0.0/8'\n            - 'fd00::/8'\n"
                                   "    condition: selection and not filter\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    ck_assert(ruleset_wants(rs, ROK_FLOW));
    ck_assert(!ruleset_wants(rs, ROK_TLS_SNI));
    obs_flow(&o, ROK_FLOW, NULL, "198.51.100.1", 4444);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ck_assert_str_eq(h[0].pattern, "");
    obs_flow(&o, ROK_FLOW, NULL, "10.9.8.7", 4444);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    obs_flow(&o, ROK_FLOW, NULL, "fd00::1", 8081);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    obs_flow(&o, ROK_FLOW, NULL, "2001:db8::1", 8081);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    obs_flow(&o, ROK_FLOW, NULL, "198.51.100.1", 4445);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    /* the port gate answers before the engine builds an observation */
    ck_assert(!flow_may(rs, &o));
    ck_assert(!flow_may(NULL, &o));
    obs_flow(&o, ROK_FLOW, NULL, "198.51.100.1", 4444);
    ck_assert(flow_may(rs, &o));
    /* once per flow: a name observation of the same flow does not repeat it */
    obs_flow(&o, ROK_TLS_SNI, "x.example", "198.51.100.1", 4444);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

/* A rule on addresses alone (a firewall rule's dst_ip / src_ip lists) is evaluated on every
 * new flow behind an address gate: the listed addresses and networks fire, on the side the
 * rule names, and nothing else does, also beside a flow rule without a gate. */
START_TEST(test_obs_address_gate)
{
    static const char *const two_rules[] = {
        "",
        "---\ntitle: Ports\nid: 00000000-0000-4000-8000-000000000002\nlevel: low\n"
        "logsource:\n    category: network_connection\ndetection:\n"
        "    selection:\n        Initiated: 'true'\n    filter:\n        DestinationPort: 443\n"
        "    condition: selection and not filter\n",
    };
    for (int variant = 0; variant < 2; variant++) {
        char yaml[2048];
        snprintf(yaml, sizeof(yaml),
                 "title: Addr\nid: 00000000-0000-4000-8000-000000000001\nlevel: high\n"
                 "logsource:\n    category: firewall\ndetection:\n    selection:\n"
                 "        - dst_ip:\n              - '203.0.113.7'\n              - '2001:db8::7'\n"
                 "        - src_ip|cidr: '198.51.100.0/25'\n    condition: selection\n%s",
                 two_rules[variant]);
        int rc;
        char *errs = NULL;
        struct ruleset *rs = load_text(RULE_POLICY_ERROR, "gate.yml", yaml, &rc, &errs);
        ck_assert_msg(rc == 1 + variant, "%s", errs);
        free(errs);
        struct rule_obs o;
        struct rule_hit h[4];
        ck_assert(ruleset_wants(rs, ROK_FLOW));
        obs_flow(&o, ROK_FLOW, NULL, "203.0.113.7", 443);
        ck_assert_int_eq(hits_obs(rs, &o, h), 1);
        ck_assert_str_eq(h[0].rule->title, "Addr");
        ck_assert(flow_may(rs, &o));
        obs_flow(&o, ROK_FLOW, NULL, "2001:db8::7", 443);
        ck_assert_int_eq(hits_obs(rs, &o, h), 1);
        obs_flow(&o, ROK_FLOW, NULL, "203.0.113.8", 443);
        ck_assert_int_eq(hits_obs(rs, &o, h), 0);
        obs_flow(&o, ROK_FLOW, NULL, "2001:db8::8", 443);
        ck_assert_int_eq(hits_obs(rs, &o, h), 0);
        /* the engine asks first: only the gated rule shuts the flow out before any work */
        ck_assert(flow_may(rs, &o) == (variant == 1));
        /* the client side: src_ip in the /25 */
        obs_flow(&o, ROK_FLOW, NULL, "192.0.2.1", 443);
        ck_assert_int_eq(tw_addr_parse("198.51.100.127", &o.src), TW_OK);
        ck_assert_int_eq(hits_obs(rs, &o, h), 1);
        ck_assert(flow_may(rs, &o));
        ck_assert_int_eq(tw_addr_parse("198.51.100.128", &o.src), TW_OK);
        ck_assert_int_eq(hits_obs(rs, &o, h), 0);
        /* the listed server address as the client is not dst_ip */
        ck_assert_int_eq(tw_addr_parse("203.0.113.7", &o.src), TW_OK);
        ck_assert_int_eq(hits_obs(rs, &o, h), 0);
        /* beside it, a rule on flow facts with no gate still fires where it should */
        obs_flow(&o, ROK_FLOW, NULL, "192.0.2.1", 8443);
        ck_assert_int_eq(hits_obs(rs, &o, h), variant);
        ck_assert(flow_may(rs, &o) == (variant == 1));
        obs_flow(&o, ROK_FLOW, NULL, "203.0.113.7", 8443);
        ck_assert_int_eq(hits_obs(rs, &o, h), 1 + variant);
        ruleset_free(rs);
    }
}
END_TEST

/* A rule runs on the observations that can satisfy the selection its condition needs: a
 * proxy rule on URL extensions whose filter lists host suffixes is not run on TLS names (its
 * filter's '.com' would otherwise have it evaluated on every TLS name in .com), while a rule
 * whose selection a TLS name can satisfy still runs there. */
START_TEST(test_obs_needed_kinds)
{
    struct ruleset *rs = obs_rules("    category: proxy\n",
                                   "    selection:\n        c-uri-extension: 'exe'\n"
                                   "    filter:\n        cs-host|endswith:\n"
                                   "            - '.com'\n            - '.org'\n"
                                   "    condition: selection and not filter\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    ck_assert(ruleset_wants(rs, ROK_HTTP_REQUEST));
    ck_assert(!ruleset_wants(rs, ROK_TLS_SNI));
    ck_assert(!ruleset_wants(rs, ROK_QUIC_SNI));
    obs_flow(&o, ROK_HTTP_REQUEST, "files.example", "198.51.100.1", 80);
    o.host = sp("files.example");
    o.target = sp("/tool.exe");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    o.host = sp("files.example.com");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    obs_flow(&o, ROK_TLS_SNI, "files.example.com", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);

    rs = obs_rules("    category: proxy\n",
                   "    selection:\n        cs-host|endswith: '.example'\n"
                   "    filter:\n        c-uri-extension: 'txt'\n"
                   "    condition: selection and not filter\n",
                   false);
    ck_assert(ruleset_wants(rs, ROK_TLS_SNI));
    obs_flow(&o, ROK_TLS_SNI, "files.example", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1); /* no URL on TLS: the filter does not exclude */
    obs_flow(&o, ROK_HTTP_REQUEST, "files.example", "198.51.100.1", 80);
    o.host = sp("files.example");
    o.target = sp("/notes.txt");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_proxy)
{
    struct ruleset *rs = obs_rules("    category: proxy\n",
                                   "    ua:\n        c-useragent|startswith: 'rclone/v'\n"
                                   "        cs-method: 'GET'\n"
                                   "    uri:\n        c-uri|startswith: 'http'\n"
                                   "        c-uri|contains: '://files.example/'\n"
                                   "        c-uri-extension: 'exe'\n"
                                   "    condition: ua or uri\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_HTTP_REQUEST, "files.example", "198.51.100.1", 80);
    o.method = sp("GET");
    o.host = sp("files.example");
    o.target = sp("/dl/tool.exe?x=1");
    o.user_agent = sp("curl/8.0");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1); /* the URL http://files.example/dl/tool.exe?x=1 */
    ck_assert(h[0].fields & RF_URL);
    o.target = sp("/dl/tool.exe.txt");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    o.user_agent = sp("rclone/v1.62");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ck_assert_str_eq(h[0].pattern, "GET"); /* the first value found, fields in bit order */
    o.method = sp("POST");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    /* a TLS hello carries no User-Agent */
    obs_flow(&o, ROK_TLS_SNI, "files.example", "198.51.100.1", 443);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_null_cased_lt)
{
    struct ruleset *rs = obs_rules("    category: proxy\n",
                                   "    sel:\n        cs-host|cased|endswith: '.Example'\n"
                                   "        c-useragent: null\n"
                                   "    condition: sel\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_HTTP_REQUEST, "a.Example", "198.51.100.1", 80);
    o.method = sp("GET");
    o.target = sp("/");
    o.host = sp("a.Example");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    o.user_agent = sp("");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1); /* empty counts as null */
    o.user_agent = sp("x");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    o.user_agent = sp(NULL);
    o.host = sp("a.example");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0); /* cased */
    ruleset_free(rs);
    rs = obs_rules("    category: firewall\n",
                   "    sel:\n        dst_port|lt: 1024\n        src_port|gte: 50000\n"
                   "    condition: sel\n",
                   false);
    obs_flow(&o, ROK_FLOW, NULL, "198.51.100.1", 1023);
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    o.dport = 1024;
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_zeek_dns)
{
    struct ruleset *rs = obs_rules("    product: zeek\n    service: dns\n",
                                   "    sel:\n        query|endswith: '.pool.example'\n"
                                   "        qtype_name: 'txt'\n        id.resp_p: 53\n"
                                   "    condition: sel\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_DNS_QUERY, "x.pool.example.", "192.0.2.53", 53);
    o.name_fields = RF_QUERY | RF_DEST_HOST;
    o.proto = 17;
    o.qtype = 16;
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ck_assert(h[0].fields & RF_QTYPE);
    o.qtype = 1;
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_process_filters)
{
    const char *yaml = "title: P\nid: 00000000-0000-4000-8000-000000000002\nlevel: high\n"
                       "logsource:\n    category: network_connection\n"
                       "detection:\n    selection:\n        DestinationHostname: 'p.example'\n"
                       "    filter:\n        Image|endswith: '\\chrome.exe'\n"
                       "    condition: selection and not filter\n";
    char *errs = NULL;
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_SKIP, "p.yml", yaml, &rc, &errs);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(errs, "filter 'filter' uses process field 'Image'"), "%s", errs);
    free(errs);
    ruleset_free(rs);
    rs = ruleset_new(RULE_POLICY_ERROR);
    ruleset_set_drop_filters(rs, true);
    ck_assert_int_eq(ruleset_load_mem(rs, "p.yml", (const uint8_t *)yaml, strlen(yaml), stderr), 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    const struct rule *r = ruleset_rule(rs, 0);
    ck_assert(r->relaxed);
    ck_assert_str_eq(r->level, "medium");
    struct rule_hit h[4];
    ck_assert_int_eq(match(rs, RF_DEST_HOST, "p.example", h, 4), 1);
    ck_assert(h[0].relaxed);
    ruleset_free(rs);
    /* a process field the condition requires is never observable */
    yaml = "title: P\nid: 00000000-0000-4000-8000-000000000003\n"
           "logsource:\n    category: network_connection\n"
           "detection:\n    selection:\n        Image|endswith: '\\x.exe'\n"
           "        DestinationHostname: 'p.example'\n    condition: selection\n";
    rs = load_text(RULE_POLICY_SKIP, "p.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 0 && strstr(errs, "field 'Image' is not observable"), "%s", errs);
    free(errs);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_logsource_map)
{
    /* DestinationPort is in the network_connection map, not in proxy's */
    const char *yaml = "title: L\nid: 00000000-0000-4000-8000-000000000004\n"
                       "logsource:\n    category: proxy\n"
                       "detection:\n    sel:\n        DestinationPort: 80\n    condition: sel\n";
    char *errs = NULL;
    int rc;
    struct ruleset *rs = load_text(RULE_POLICY_SKIP, "l.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 0 && strstr(errs, "field 'DestinationPort' is not observable"), "%s", errs);
    free(errs);
    ruleset_free(rs);
    /* Initiated: 'false' (an inbound connection) is not what the sensor sees */
    yaml = "title: L\nid: 00000000-0000-4000-8000-000000000005\n"
           "logsource:\n    category: network_connection\n"
           "detection:\n    sel:\n        Initiated: 'false'\n    condition: sel\n";
    rs = load_text(RULE_POLICY_SKIP, "l.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 0 && strstr(errs, "'Initiated'"), "%s", errs);
    free(errs);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_re)
{
    struct ruleset *rs = obs_rules("    category: proxy\n",
                                   "    sel:\n        c-uri|re: '\\?d=[0-9]{1,3}\\.[0-9]{1,3}$'\n"
                                   "    sel2:\n        cs-host|re|i: '^API\\.'\n"
                                   "    condition: 1 of sel*\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_HTTP_REQUEST, "h.example", "198.51.100.1", 80);
    o.method = sp("GET");
    o.host = sp("h.example");
    o.target = sp("/x.zip?d=10.22");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    o.target = sp("/x.zip?d=10.22.3");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    o.host = sp("api.example");
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ruleset_free(rs);
    /* a pattern the matcher refuses skips its rule, naming it */
    const char *yaml = "title: R\nid: 00000000-0000-4000-8000-000000000006\n"
                       "logsource:\n    category: proxy\n"
                       "detection:\n    sel:\n        c-uri|re: '(a)\\1'\n    condition: sel\n";
    char *errs = NULL;
    int rc;
    rs = load_text(RULE_POLICY_SKIP, "r.yml", yaml, &rc, &errs);
    ck_assert_msg(rc == 0 && strstr(errs, "regular expression"), "%s", errs);
    free(errs);
    ruleset_free(rs);
}
END_TEST

START_TEST(test_obs_selftest)
{
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    ck_assert_int_ge(ruleset_load(rs, tw_src_path("conf/rules"), stderr), 1);
    ck_assert_int_eq(ruleset_build(rs), TW_OK);
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    ck_assert_int_eq(ruleset_selftest(rs, f), 0);
    fclose(f);
    ck_assert_msg(strstr(out, " 0 failed"), "%s", out);
    free(out);
    ruleset_free(rs);
}
END_TEST

/* A rule file ending with a bare '---' (an empty document, as YAML readers take it) loads;
 * so does one with an empty document between two rules. */
static const char *const dash_cases[] = {
    "title: a\nid: 11111111-1111-4111-8111-111111111111\ndetection:\n  s:\n"
    "    QueryName|endswith: .a.test\n  condition: s\n---\n",
    "---\ntitle: a\nid: 11111111-1111-4111-8111-111111111111\ndetection:\n  s:\n"
    "    QueryName|endswith: .a.test\n  condition: s\n---\n---\n",
};

START_TEST(test_trailing_document_marker)
{
    int rc;
    char *errs = NULL;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "dash.yml", dash_cases[_i], &rc, &errs);
    ck_assert_msg(rc == 1, "rc %d: %s", rc, errs);
    ck_assert_str_eq(one(rs, ANY, "x.a.test"), "11111111-1111-4111-8111-111111111111");
    free(errs);
    ruleset_free(rs);
}
END_TEST

/* 200 KB of nested flow sequences: refused at once with the reason, not parsed for 40 s. */
START_TEST(test_deep_nesting)
{
    size_t d = 100000, n = 0;
    char *y = malloc(2 * d + 64);
    ck_assert_ptr_nonnull(y);
    n += (size_t)sprintf(y, "title: deep\nid: x\ndetection:\n  s: ");
    memset(y + n, '[', d);
    memset(y + n + d, ']', d);
    y[n + 2 * d] = '\0';
    int rc;
    char *errs = NULL;
    struct ruleset *rs = load_text(RULE_POLICY_SKIP, "deep.yml", y, &rc, &errs);
    ck_assert_int_eq(rc, TW_ECONF);
    ck_assert_msg(strstr(errs, "deep.yml: error: YAML nested deeper than"), "%s", errs);
    free(errs);
    free(y);
    ruleset_free(rs);
}
END_TEST

/* A hit's rule keeps its set alive after the set's own reference is dropped (rules.h). */
START_TEST(test_refcount)
{
    int rc;
    char *errs = NULL;
    struct ruleset *rs = load_text(RULE_POLICY_ERROR, "a.yml", dash_cases[0], &rc, &errs);
    struct rule_hit h[2];
    ck_assert_int_eq(match(rs, ANY, "x.a.test", h, 2), 1);
    ck_assert_ptr_eq(h[0].rule->set, rs);
    const struct rule *held = rule_hold(h[0].rule);
    ck_assert_ptr_eq(ruleset_hold(rs), rs);
    ruleset_free(rs);
    ruleset_release(rs);
    ck_assert_str_eq(held->id, "11111111-1111-4111-8111-111111111111"); /* ASan: still alive */
    ck_assert_str_eq(one(held->set, ANY, "x.a.test"), held->id);
    rule_release(held); /* the last reference: freed (ASan's leak check sees it) */
    rule_hold(NULL);
    rule_release(NULL);
    free(errs);
}
END_TEST

/* sc-status: a rule on the status runs on the response only (with the request's fields), and
 * a request-only rule never on the response (it ran at the request). The port gate of a flow
 * rule with fixed ports changes nothing. */
START_TEST(test_obs_status)
{
    struct ruleset *rs = obs_rules("    category: proxy\n",
                                   "    selection:\n        cs-method: 'GET'\n"
                                   "        cs-uri|contains: '/oauth/idp'\n"
                                   "        sc-status|lt: 300\n    condition: selection\n",
                                   false);
    struct ruleset *rq = obs_rules("    category: proxy\n",
                                   "    selection:\n        cs-uri|contains: '/oauth/idp'\n"
                                   "    condition: selection\n",
                                   false);
    struct rule_obs o;
    struct rule_hit h[4];
    obs_flow(&o, ROK_HTTP_REQUEST, "gw.example.net", "198.51.100.1", 80);
    o.method = sp("GET");
    o.target = sp("/oauth/idp/x");
    o.host = sp("gw.example.net");
    ck_assert(ruleset_wants(rs, ROK_HTTP_RESPONSE));
    ck_assert(!ruleset_wants(rq, ROK_HTTP_RESPONSE));
    ck_assert_int_eq(hits_obs(rs, &o, h), 0); /* no status at the request */
    ck_assert_int_eq(hits_obs(rq, &o, h), 1);
    o.kind = ROK_HTTP_RESPONSE;
    o.status = 200;
    ck_assert_int_eq(hits_obs(rs, &o, h), 1);
    ck_assert(h[0].fields & RF_STATUS);
    ck_assert_int_eq(hits_obs(rq, &o, h), 0); /* not twice */
    o.status = 404;
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    o.status = 200;
    o.method = sp("POST");
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
    ruleset_free(rq);
    rs = obs_rules("    category: network_connection\n",
                   "    selection:\n        Initiated: 'true'\n        DestinationPort:\n"
                   "            - 4444\n            - 888\n    filter:\n"
                   "        DestinationIp|cidr: '10.0.0.0/8'\n"
                   "    condition: selection and not filter\n",
                   false);
    for (unsigned port = 880; port < 4450; port++) {
        obs_flow(&o, ROK_FLOW, NULL, "198.51.100.1", (uint16_t)port);
        ck_assert_int_eq(hits_obs(rs, &o, h), port == 4444 || port == 888);
    }
    obs_flow(&o, ROK_FLOW, NULL, "10.1.1.1", 4444);
    ck_assert_int_eq(hits_obs(rs, &o, h), 0);
    ruleset_free(rs);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("rules");
    /* every case under ASan on a loaded 2-vCPU machine: the prefix loop builds a ruleset
     * (and starts its DFA thread) some 2,000 times, 1.7 s there alone, near Check's 4 s */
    TCase *tc = tcase_create("seed");
    tcase_add_test(tc, test_seed);
    tcase_add_test(tc, test_seed_prefixes);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("sigma");
    tcase_add_loop_test(tc, test_conditions, 0, (int)TW_ARRAY_LEN(cond_cases));
    tcase_add_test(tc, test_wildcards);
    tcase_add_test(tc, test_modifiers);
    tcase_add_loop_test(tc, test_unsupported, 0, (int)TW_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_yaml_syntax);
    tcase_add_loop_test(tc, test_trailing_document_marker, 0, (int)TW_ARRAY_LEN(dash_cases));
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_refcount);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("lists");
    tcase_add_test(tc, test_indicator_list);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("shipped");
    tcase_add_test(tc, test_shipped_rules);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("match");
    tcase_add_test(tc, test_overflow_fallback);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("obs");
    tcase_add_test(tc, test_obs_initiated);
    tcase_add_test(tc, test_obs_mixed_fields);
    tcase_add_test(tc, test_obs_ports_cidr);
    tcase_add_test(tc, test_obs_proxy);
    tcase_add_test(tc, test_obs_null_cased_lt);
    tcase_add_test(tc, test_obs_zeek_dns);
    tcase_add_test(tc, test_obs_process_filters);
    tcase_add_test(tc, test_obs_logsource_map);
    tcase_add_test(tc, test_obs_selftest);
    tcase_add_test(tc, test_obs_re);
    tcase_add_test(tc, test_obs_status);
    tcase_add_test(tc, test_obs_address_gate);
    tcase_add_test(tc, test_obs_needed_kinds);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}
