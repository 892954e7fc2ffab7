/* check_cfg.c - unit tests of the configuration module: defaults, the shipped files,
 * every kind of problem with its FILE:LINE, --set, CIDRs, prefixes, print/reload. */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tunnelwatch/cfg.h"
#include "tw_check.h"

/* ---- helpers ---- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tw_cfg_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

/* Writes text to tmpdir/name; returns the path (malloc). */
static char *write_tmp(const char *name, const char *text, size_t len)
{
    if (!tmpdir[0])
        make_tmpdir();
    size_t n = strlen(tmpdir) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
    return path;
}

struct run {
    int n;      /* problems: load + validate */
    char *msgs; /* all messages */
    char *path;
};

/* Loads text (written to a file) over defaults, then validates; messages collected. */
static struct run load_text(struct tw_cfg *cfg, const char *text, bool validate)
{
    struct run r = {0, NULL, write_tmp("t.conf", text, strlen(text))};
    size_t len;
    FILE *err = open_memstream(&r.msgs, &len);
    cfg_defaults(cfg);
    r.n = cfg_load(cfg, r.path, err);
    ck_assert_int_ge(r.n, 0);
    if (validate)
        r.n += cfg_validate(cfg, err);
    fclose(err);
    return r;
}

static void run_free(struct run *r)
{
    unlink(r->path);
    free(r->path);
    free(r->msgs);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static char *print_to_string(const struct tw_cfg *cfg, bool skip_header)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    cfg_print(cfg, f);
    fclose(f);
    if (skip_header) {
        char *nl = strchr(buf, '\n');
        memmove(buf, nl + 1, strlen(nl + 1) + 1);
    }
    return buf;
}

static char *read_text(const char *rel)
{
    size_t len;
    uint8_t *b = tw_read_file(tw_src_path(rel), &len);
    ck_assert_msg(b != NULL, "cannot read %s", rel);
    char *s = realloc(b, len + 1);
    s[len] = '\0';
    return s;
}

static struct tw_addr addr(const char *s)
{
    struct tw_addr a;
    ck_assert_int_eq(tw_addr_parse(s, &a), TW_OK);
    return a;
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    struct tw_cfg c;
    cfg_defaults(&c);
    char host[256] = "";
    gethostname(host, sizeof(host));
    ck_assert_str_eq(c.sensor_name, host);
    ck_assert_ptr_null(c.capture.interface);
    ck_assert_int_eq(c.capture.snaplen, 262144);
    ck_assert_int_eq(c.capture.buffer_mib, 64);
    ck_assert(c.capture.promisc);
    ck_assert_uint_eq(c.n_internal, 4);
    struct tw_addr in = addr("172.20.1.1"), out = addr("8.8.8.8"), v6 = addr("fd12::1");
    bool hit_in = false, hit_out = false, hit_v6 = false;
    for (size_t i = 0; i < c.n_internal; i++) {
        hit_in |= cfg_cidr_contains(&c.internal[i], &in);
        hit_out |= cfg_cidr_contains(&c.internal[i], &out);
        hit_v6 |= cfg_cidr_contains(&c.internal[i], &v6);
    }
    ck_assert(hit_in && !hit_out && hit_v6);
    ck_assert_uint_eq(c.rules.n_paths, 1);
    ck_assert_str_eq(c.rules.paths[0], "conf/rules");
    ck_assert(!c.rules.skip_unsupported);
    ck_assert(c.rules.dns_query_as_destination);
    ck_assert_uint_eq(c.n_allow, 0);
    ck_assert_uint_eq(c.flow.max_flows, 262144);
    ck_assert_uint_eq(c.flow.idle_timeout_s, 120);
    ck_assert_uint_eq(c.flow.tcp_close_timeout_s, 10);
    ck_assert_uint_eq(c.alert.dedup_window_s, 3600);
    ck_assert_str_eq(c.output.schema, "ecs");
    ck_assert_ptr_null(c.output.alerts_file);
    ck_assert_str_eq(c.redis.url, "redis://127.0.0.1:6379/0");
    ck_assert(c.redis.mode_stream && c.redis.mode_channel && !c.redis.mode_list);
    ck_assert_str_eq(c.redis.stream_key, "tunnelwatch:alerts");
    ck_assert_int_eq(c.redis.stream_maxlen, 100000);
    ck_assert_str_eq(c.redis.spool_dir, "/var/spool/tunnelwatch");
    ck_assert_uint_eq(c.redis.spool_max_mib, 256);
    ck_assert_uint_eq(c.redis.heartbeat_s, 10);
    ck_assert_ptr_null(c.redis.password);
    ck_assert_ptr_null(c.metrics.listen);
    cfg_free(&c);
    cfg_free(&c); /* a second free is harmless */
}
END_TEST

/* ---- shipped files ---- */

START_TEST(test_shipped_conf)
{
    struct tw_cfg c, d;
    size_t len;
    char *msgs;
    FILE *err = open_memstream(&msgs, &len);
    cfg_defaults(&c);
    int n = cfg_load(&c, tw_src_path("conf/tunnelwatch.conf"), err);
    n += cfg_validate(&c, err);
    fclose(err);
    ck_assert_msg(n == 0, "shipped conf: %d problems:\n%s", n, msgs);
    free(msgs);
    /* rules resolved beside the config file, absolute */
    ck_assert_uint_eq(c.rules.n_paths, 1);
    ck_assert(c.rules.paths[0][0] == '/');
    ck_assert(strstr(c.rules.paths[0], "/conf/rules") != NULL);
    /* the shipped values are the defaults: same printout once the rule path is the same */
    cfg_defaults(&d);
    ck_assert_int_eq(cfg_set(&d, "rules.paths=", stderr), 0);
    char set[PATH_MAX + 16];
    snprintf(set, sizeof(set), "rules.paths=%s", c.rules.paths[0]);
    ck_assert_int_eq(cfg_set(&d, set, stderr), 0);
    char *pc = print_to_string(&c, true), *pd = print_to_string(&d, true);
    ck_assert_str_eq(pc, pd);
    free(pc);
    free(pd);
    cfg_free(&c);
    cfg_free(&d);
}
END_TEST

START_TEST(test_test_conf)
{
    struct tw_cfg c;
    size_t len;
    char *msgs;
    FILE *err = open_memstream(&msgs, &len);
    cfg_defaults(&c);
    int n = cfg_load(&c, tw_src_path("conf/test.conf"), err);
    n += cfg_validate(&c, err);
    fclose(err);
    ck_assert_msg(n == 0, "test.conf: %d problems:\n%s", n, msgs);
    free(msgs);
    ck_assert_str_eq(c.sensor_name, "tw-test");
    ck_assert_str_eq(c.redis.url, "redis://127.0.0.1:6379/0");
    ck_assert(strncmp(c.redis.spool_dir, "/tmp/", 5) == 0);
    ck_assert_uint_eq(c.rules.n_paths, 1);
    size_t pl = strlen(c.rules.paths[0]);
    ck_assert(pl > 11 && strcmp(c.rules.paths[0] + pl - 11, "/conf/rules") == 0);
    ck_assert_int_eq(access(c.rules.paths[0], R_OK), 0);
    cfg_free(&c);
}
END_TEST

/* The commented allowlist examples of the shipped file, uncommented, load cleanly. */
static char *shipped_with_examples(void)
{
    char *text = read_text("conf/tunnelwatch.conf");
    size_t n = strlen(text);
    char *out = calloc(1, n + 1);
    bool in_block = false;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (strncmp(line, "# allowlist = (", 15) == 0)
            in_block = true;
        if (in_block && line[0] == '#') {
            /* "# text\n" -> "text\n"; a bare "#\n" -> "" */
            size_t cut = ll >= 2 ? 2 : ll;
            strncat(out, line + cut, ll - cut);
        } else if (strncmp(line, "allowlist = ();", 15) != 0)
            strncat(out, line, ll);
        if (in_block && strncmp(line, "# );", 4) == 0)
            in_block = false;
        line += ll;
    }
    free(text);
    return out;
}

START_TEST(test_shipped_examples)
{
    struct tw_cfg c;
    char *text = shipped_with_examples();
    ck_assert(strstr(text, "\nallowlist = (\n") != NULL);
    /* the examples refer to rules/ beside the file: give the temp folder one */
    make_tmpdir();
    char rules[128];
    snprintf(rules, sizeof(rules), "%s/rules", tmpdir);
    ck_assert_int_eq(mkdir(rules, 0700), 0);
    struct run r = load_text(&c, text, true);
    ck_assert_msg(r.n == 0, "%d problems:\n%s", r.n, r.msgs);
    ck_assert_uint_eq(c.n_allow, 5);
    static const char *const names[] = {"staging-deploy", "admin-debug", "metrics-cron",
                                        "ci-runners", "partner-gateway"};
    for (size_t i = 0; i < 5; i++) {
        ck_assert_str_eq(c.allow[i].name, names[i]);
        ck_assert(c.allow[i].reason && strlen(c.allow[i].reason) > 10);
        ck_assert(
            c.allow[i].n_src + c.allow[i].n_dst_names + c.allow[i].n_rules + c.allow[i].n_ja4 > 0);
    }
    ck_assert_int_eq(c.allow[0].from_min, 60);
    ck_assert_int_eq(c.allow[0].to_min, 180);
    ck_assert_uint_eq(c.allow[0].days_mask, (1u << 0) | (1u << 6)); /* sun, sat */
    ck_assert_uint_eq(c.allow[1].days_mask, 0x3e);                  /* mon-fri */
    ck_assert_uint_eq(c.allow[2].days_mask, 0x7f);                  /* every day */
    ck_assert_str_eq(c.allow[1].ja4[0], "t13d1516h2_8daaf6152771_e5627efa2ab1");
    struct tw_addr runner = addr("fd00:40::9"), other = addr("fd00:41::9");
    ck_assert(cfg_cidr_contains(&c.allow[3].src[1], &runner));
    ck_assert(!cfg_cidr_contains(&c.allow[3].src[1], &other));
    ck_assert_uint_eq(c.allow[0].n_dst_names, 2);
    ck_assert_str_eq(c.allow[0].dst_names[1], "tunnel.eu.ngrok.com");
    run_free(&r);
    rmdir(rules);
    cfg_free(&c);
    free(text);
}
END_TEST

/* ---- each kind of problem, with its line ---- */

struct bad_case {
    const char *text;
    const char *want; /* after "PATH:" */
};

static const struct bad_case bad_cases[] = {
    /* unknown keys, at every level, with a suggestion */
    {"capture = {\n  snaplne = 1500;\n};\n",
     "2: capture.snaplne: unknown key (did you mean capture.snaplen?)"},
    {"\n\nsnaplen = 1500;\n", "3: snaplen: unknown key (did you mean capture.snaplen?)"},
    {"capturre = { snaplen = 1500; };\n", "1: capturre: unknown key (did you mean capture?)"},
    {"redis = {\n spool = {\n  dri = \"/x\";\n };\n};\n",
     "3: redis.spool.dri: unknown key (did you mean redis.spool.dir?)"},
    {"allowlist = (\n { reason = \"r\";\n   src = [\"10.0.0.1\"];\n   dts = [\"a.b\"]; }\n);\n",
     "4: allowlist[0].dts: unknown key (did you mean dst?)"},
    /* wrong types */
    {"capture = {\n  snaplen = \"1500\";\n};\n",
     "2: capture.snaplen: expected an integer, got a string"},
    {"capture = { promiscuous = 1; };\n",
     "1: capture.promiscuous: expected true or false, got an integer"},
    {"output = {\n schema = 5;\n};\n", "2: output.schema: expected a string, got an integer"},
    {"flow = { max_flows = 1.5; };\n", "1: flow.max_flows: expected an integer, got a float"},
    {"networks = {\n internal = 5;\n};\n", "2: networks.internal: expected a list of strings"},
    {"capture = 5;\n", "1: capture: expected a group { ... }, got an integer"},
    /* bad CIDRs and IPs */
    {"networks = {\n internal = [ \"10.0.0.0/8\",\n  \"10.0.0.0/33\" ];\n};\n",
     "3: networks.internal: \"10.0.0.0/33\" is not a CIDR"},
    {"networks = { internal = [ \"10.1.0.0/8\" ]; };\n",
     "1: networks.internal: \"10.1.0.0/8\" has host bits set (did you mean 10.0.0.0/8?)"},
    {"networks = {\n\n resolvers = [ \"10.0.0.300\" ];\n};\n",
     "3: networks.resolvers: \"10.0.0.300\" is not an IP address"},
    {"allowlist = ( { reason = \"r\";\n  src = [ \"ci-runner-1\" ]; } );\n",
     "2: allowlist[0].src: \"ci-runner-1\" is not a CIDR"},
    /* impossible limits */
    {"capture = {\n snaplen = 95;\n};\n", "2: capture.snaplen: 95 is out of range (96..262144)"},
    {"capture = {\n snaplen = 262145;\n};\n",
     "2: capture.snaplen: 262145 is out of range (96..262144)"},
    {"flow = {\n max_flows = 0;\n};\n", "2: flow.max_flows: 0 is out of range"},
    {"redis = { stream_maxlen = 99999999999L; };\n",
     "1: redis.stream_maxlen: 99999999999 is out of range"},
    {"redis = { heartbeat_s = 0; };\n", "1: redis.heartbeat_s: 0 is out of range"},
    {"flow = {\n idle_timeout_s = 60;\n tcp_close_timeout_s = 90;\n};\n",
     "3: flow.tcp_close_timeout_s: 90 is longer than flow.idle_timeout_s (60)"},
    {"alert = {\n dns_ttl_cap_s = 60;\n dns_ttl_min_s = 120;\n};\n",
     "3: alert.dns_ttl_min_s: 120 is above alert.dns_ttl_cap_s (60)"},
    {"redis = {\n\n modes = [];\n};\n", "3: redis.modes: empty"},
    {"redis = { modes = [ \"stream\", \"pubsub\" ]; };\n",
     "1: redis.modes: unknown mode \"pubsub\""},
    {"networks = {\n internal = [];\n};\n", "2: networks.internal: empty"},
    /* enums and strings */
    {"output = {\n schema = \"cef\";\n};\n", "2: output.schema: \"cef\": unknown schema"},
    {"rules = { on_unsupported = \"warn\"; };\n",
     "1: rules.on_unsupported: \"warn\": use \"error\" or \"skip\""},
    {"redis = { url = \"http://127.0.0.1\"; };\n",
     "1: redis.url: \"http://127.0.0.1\": use redis://"},
    {"metrics = {\n listen = \"127.0.0.1\";\n};\n",
     "2: metrics.listen: \"127.0.0.1\": use HOST:PORT"},
    {"sensor = { name = \"my sensor\"; };\n", "1: sensor.name: \"my sensor\": use letters"},
    {"capture = {\n bpf = \"port 53 and and\";\n};\n", "2: capture.bpf: bad filter:"},
    /* unreadable rule path */
    {"rules = {\n paths = [ \"/nonexistent/tw-rules\" ];\n};\n",
     "2: rules.paths: /nonexistent/tw-rules: not readable"},
    /* allowlist entries */
    {"allowlist = (\n { name = \"x\"; src = [ \"10.0.0.1\" ]; }\n);\n",
     "2: allowlist[0]: missing reason"},
    {"allowlist = (\n { name = \"x\"; reason = \"y\"; window = \"01:00-02:00\"; }\n);\n",
     "2: allowlist[0]: no criterion"},
    {"allowlist = ( { reason = \"y\"; src = [\"10.0.0.1\"];\n window = \"1:00-3:00\"; } );\n",
     "2: allowlist[0].window: \"1:00-3:00\": use \"HH:MM-HH:MM\""},
    {"allowlist = ( { reason = \"y\"; src = [\"10.0.0.1\"];\n window = \"23:00-24:30\"; } );\n",
     "2: allowlist[0].window:"},
    {"allowlist = ( { reason = \"y\"; src = [\"10.0.0.1\"];\n days = \"sat,sunday\"; } );\n",
     "2: allowlist[0].days: \"sat,sunday\""},
    {"allowlist = ( { reason = \"y\";\n ja4 = [\"t13d1516h2_8daaf615\"]; } );\n",
     "2: allowlist[0].ja4: \"t13d1516h2_8daaf615\" is not a JA4"},
    {"allowlist = ( { reason = \"y\";\n dst = [\"bad name.com\"]; } );\n",
     "2: allowlist[0].dst: \"bad name.com\" is not a host"},
    {"allowlist = { name = \"x\"; };\n", "1: allowlist: expected a list"},
    /* password_env that is not set */
    {"redis = {\n password_env = \"TW_CFG_TEST_UNSET_VAR\";\n};\n",
     "2: redis.password_env: environment variable TW_CFG_TEST_UNSET_VAR is not set"},
    /* syntax errors */
    {"capture = {\n snaplen = = 1500;\n};\n", "2: syntax error: "},
    {"sensor = { name = \"x\"; };\ncapture = { snaplen = ; };\n", "2: syntax error: "},
};

START_TEST(test_error_kinds)
{
    const struct bad_case *bc = &bad_cases[_i];
    struct tw_cfg c;
    unsetenv("TW_CFG_TEST_UNSET_VAR");
    make_tmpdir();
    char rules[128];
    snprintf(rules, sizeof(rules), "%s/rules", tmpdir);
    ck_assert_int_eq(mkdir(rules, 0700), 0);
    struct run r = load_text(&c, bc->text, true);
    char want[512];
    snprintf(want, sizeof(want), "%s:%s", r.path, bc->want);
    ck_assert_msg(r.n == 1, "case %d: %d problems, want 1:\n%s", _i, r.n, r.msgs);
    ck_assert_msg(strncmp(r.msgs, want, strlen(want)) == 0, "case %d: got\n%swant\n%s", _i, r.msgs,
                  want);
    ck_assert_int_eq(count_lines(r.msgs), 1);
    run_free(&r);
    rmdir(rules);
    cfg_free(&c);
}
END_TEST

START_TEST(test_all_errors_one_run)
{
    static const char text[] =
        "capture = {\n"                                               /* 1 */
        "  snaplen = 10;\n"                                           /* 2: range */
        "  snaplne = 1500;\n"                                         /* 3: unknown */
        "};\n"                                                        /* 4 */
        "networks = {\n"                                              /* 5 */
        "  internal = [ \"10.0.0.0/8\", \"1.2.3/24\" ];\n"            /* 6 */
        "};\n"                                                        /* 7 */
        "flow = {\n"                                                  /* 8 */
        "  idle_timeout_s = 5;\n"                                     /* 9 */
        "  tcp_close_timeout_s = 6;\n"                                /* 10: > idle (validate) */
        "};\n"                                                        /* 11 */
        "output = { schema = \"xml\"; };\n"                           /* 12 */
        "rules = { paths = [ \"missing-dir\" ]; };\n"                 /* 13 */
        "allowlist = ( { name = \"n\"; src = [\"10.0.0.1\"]; } );\n"; /* 14 */
    struct tw_cfg c;
    struct run r = load_text(&c, text, true);
    ck_assert_msg(r.n == 7, "%d problems:\n%s", r.n, r.msgs);
    ck_assert_int_eq(count_lines(r.msgs), 7);
    static const char *const want[] = {
        ":2: capture.snaplen:", ":3: capture.snaplne:", ":6: networks.internal:",
        ":12: output.schema:",  ":14: allowlist[0]:",   ":10: flow.tcp_close_timeout_s:",
        ":13: rules.paths:"};
    for (size_t i = 0; i < TW_ARRAY_LEN(want); i++) {
        char w[256];
        snprintf(w, sizeof(w), "%s%s", r.path, want[i]);
        ck_assert_msg(strstr(r.msgs, w) != NULL, "missing %s in\n%s", w, r.msgs);
    }
    /* a bad value does not replace the default */
    ck_assert_int_eq(c.capture.snaplen, 262144);
    ck_assert_str_eq(c.output.schema, "ecs");
    run_free(&r);
    cfg_free(&c);
}
END_TEST

START_TEST(test_missing_file)
{
    struct tw_cfg c;
    cfg_defaults(&c);
    char *msgs;
    size_t len;
    FILE *err = open_memstream(&msgs, &len);
    ck_assert_int_eq(cfg_load(&c, "/nonexistent/tw.conf", err), TW_EIO);
    fclose(err);
    ck_assert(strstr(msgs, "/nonexistent/tw.conf: cannot read") == msgs);
    free(msgs);
    cfg_free(&c);
}
END_TEST

/* ---- cfg_set ---- */

static int set(struct tw_cfg *c, const char *a, char **msgs)
{
    size_t len;
    FILE *err = open_memstream(msgs, &len);
    int n = cfg_set(c, a, err);
    fclose(err);
    return n;
}

START_TEST(test_set_types)
{
    struct tw_cfg c;
    char *m;
    cfg_defaults(&c);
#define SET_OK(a)                                                                                  \
    do {                                                                                           \
        ck_assert_msg(set(&c, a, &m) == 0, "%s: %s", a, m);                                        \
        free(m);                                                                                   \
    } while (0)
    SET_OK("capture.snaplen=1500");
    ck_assert_int_eq(c.capture.snaplen, 1500);
    SET_OK("flow.max_flows=0x10000");
    ck_assert_uint_eq(c.flow.max_flows, 65536);
    SET_OK("redis.spool.max_mib=1024");
    ck_assert_uint_eq(c.redis.spool_max_mib, 1024);
    SET_OK("redis.stream_maxlen=5000");
    ck_assert_int_eq(c.redis.stream_maxlen, 5000);
    SET_OK("log.verbosity=-1");
    ck_assert_int_eq(c.log.verbosity, -1);
    SET_OK("capture.promiscuous=false");
    ck_assert(!c.capture.promisc);
    SET_OK("capture.promisc=yes"); /* alias */
    ck_assert(c.capture.promisc);
    SET_OK("capture.interface=eth1");
    ck_assert_str_eq(c.capture.interface, "eth1");
    SET_OK("capture.interface=");
    ck_assert_ptr_null(c.capture.interface);
    SET_OK("capture.bpf=udp port 53 or tcp port 443");
    ck_assert_str_eq(c.capture.bpf, "udp port 53 or tcp port 443");
    SET_OK("redis.spool_dir=/var/spool/tw");
    ck_assert_str_eq(c.redis.spool_dir, "/var/spool/tw");
    SET_OK("redis.spool.dir=/srv/spool");
    ck_assert_str_eq(c.redis.spool_dir, "/srv/spool");
    SET_OK("redis.spool.dir=");
    ck_assert_str_eq(c.redis.spool_dir, ""); /* "" disables the spool, kept as "" */
    SET_OK("networks.internal=10.0.0.0/8, 192.168.0.0/16,2001:db8::/32");
    ck_assert_uint_eq(c.n_internal, 3);
    struct tw_addr a6 = addr("2001:db8:1::1");
    ck_assert(cfg_cidr_contains(&c.internal[2], &a6));
    SET_OK("networks.resolvers=10.0.0.53,fd00::53");
    ck_assert_uint_eq(c.n_resolvers, 2);
    ck_assert_int_eq(c.resolvers[1].family, 6);
    SET_OK("networks.resolvers=");
    ck_assert_uint_eq(c.n_resolvers, 0);
    SET_OK("rules.paths=a,b/c");
    ck_assert_uint_eq(c.rules.n_paths, 2);
    ck_assert_str_eq(c.rules.paths[1], "b/c"); /* command line: relative to the cwd */
    SET_OK("rules.on_unsupported=skip");
    ck_assert(c.rules.skip_unsupported);
    SET_OK("redis.modes=list");
    ck_assert(!c.redis.mode_stream && !c.redis.mode_channel && c.redis.mode_list);
    SET_OK("output.schema=asim");
    ck_assert_str_eq(c.output.schema, "asim");
    SET_OK("sensor.name=edge-7");
    ck_assert_str_eq(c.sensor_name, "edge-7");
    SET_OK("metrics.listen=[::1]:9917");
    ck_assert_str_eq(c.metrics.listen, "[::1]:9917");
    cfg_free(&c);
}
END_TEST

START_TEST(test_set_errors)
{
    static const struct {
        const char *set, *want;
    } cases[] = {
        {"nope.key=1", "--set nope.key: unknown key\n"},
        {"capture.snaplne=1",
         "--set capture.snaplne: unknown key (did you mean capture.snaplen?)\n"},
        {"capture.snaplen", "--set capture.snaplen: expected KEY=VALUE\n"},
        {"capture.snaplen=15x", "--set capture.snaplen: expected an integer, got \"15x\"\n"},
        {"capture.snaplen=", "--set capture.snaplen: expected an integer"},
        {"capture.snaplen=50", "--set capture.snaplen: 50 is out of range (96..262144)\n"},
        {"flow.max_flows=-1", "--set flow.max_flows: -1 is out of range"},
        {"capture.promiscuous=maybe", "--set capture.promiscuous: expected true or false"},
        {"networks.internal=10.0.0.0/8,banana",
         "--set networks.internal: \"banana\" is not a CIDR"},
        {"networks.resolvers=1.2.3.4.5", "--set networks.resolvers: \"1.2.3.4.5\" is not an IP"},
        {"output.schema=json", "--set output.schema: \"json\": unknown schema"},
        {"redis.modes=stream,fanout", "--set redis.modes: unknown mode \"fanout\""},
        {"redis.sentinels=127.0.0.1:26379,sentinel-b",
         "--set redis.sentinels: item 2 \"sentinel-b\": not host:port"},
        {"redis.sentinels=[::1]:99999", "--set redis.sentinels: item 1 \"[::1]:99999\": bad port"},
        {"allowlist=x", "--set allowlist: cannot be set with --set"},
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(cases); i++) {
        struct tw_cfg c;
        char *m;
        cfg_defaults(&c);
        ck_assert_msg(set(&c, cases[i].set, &m) == 1, "%s: no problem", cases[i].set);
        ck_assert_msg(strncmp(m, cases[i].want, strlen(cases[i].want)) == 0, "%s: got %s",
                      cases[i].set, m);
        ck_assert_int_eq(count_lines(m), 1);
        /* the old value stays */
        ck_assert_int_eq(c.capture.snaplen, 262144);
        ck_assert_uint_eq(c.n_internal, 4);
        free(m);
        cfg_free(&c);
    }
}
END_TEST

START_TEST(test_set_then_validate)
{
    struct tw_cfg c;
    char *m;
    cfg_defaults(&c);
    ck_assert_int_eq(set(&c, "flow.tcp_close_timeout_s=3000", &m), 0);
    free(m);
    ck_assert_int_eq(set(&c, "rules.paths=/nonexistent-tw", &m), 0);
    free(m);
    c.capture.workers = 0; /* direct assignment bypasses cfg_set: validate catches it */
    size_t len;
    FILE *err = open_memstream(&m, &len);
    ck_assert_int_eq(cfg_validate(&c, err), 3);
    fclose(err);
    ck_assert(strstr(m, "--set flow.tcp_close_timeout_s: 3000 is longer") != NULL);
    ck_assert(strstr(m, "--set rules.paths: /nonexistent-tw: not readable") != NULL);
    ck_assert(strstr(m, "capture.workers: (default value) 0 is out of range") != NULL);
    free(m);
    cfg_free(&c);
}
END_TEST

/* ---- CIDR ---- */

START_TEST(test_cidr)
{
    struct cfg_cidr c;
    struct tw_addr a;
    ck_assert_int_eq(cfg_parse_cidr("10.0.0.0/8", &c), TW_OK);
    ck_assert_uint_eq(c.bits, 8);
    a = addr("10.255.1.2");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("11.0.0.0");
    ck_assert(!cfg_cidr_contains(&c, &a));
    a = addr("::ffff:10.1.2.3"); /* v4-mapped IPv6 is the IPv4 host */
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("::a01:203"); /* not mapped: another family */
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("172.16.0.0/12", &c), TW_OK);
    a = addr("172.31.255.255");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("172.32.0.0");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("0.0.0.0/0", &c), TW_OK);
    a = addr("255.255.255.255");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("::1");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("192.0.2.7/32", &c), TW_OK);
    a = addr("192.0.2.7");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("192.0.2.6");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("192.0.2.9", &c), TW_OK); /* bare address = host */
    ck_assert_uint_eq(c.bits, 32);

    ck_assert_int_eq(cfg_parse_cidr("::/0", &c), TW_OK);
    a = addr("2001:db8::1");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("10.0.0.1");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("2001:db8::1/128", &c), TW_OK);
    a = addr("2001:db8::1");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("2001:db8::2");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("fe80::/10", &c), TW_OK);
    a = addr("febf::1");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("fec0::1");
    ck_assert(!cfg_cidr_contains(&c, &a));

    ck_assert_int_eq(cfg_parse_cidr("2001:db8::/33", &c), TW_OK);
    a = addr("2001:db8:7fff::1");
    ck_assert(cfg_cidr_contains(&c, &a));
    a = addr("2001:db8:8000::1");
    ck_assert(!cfg_cidr_contains(&c, &a));

    static const char *const bad[] = {
        "",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/ 8",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "10.1.0.0/8",
        "10.0.0/8",
        "10.0.0.256/32",
        "banana",
        "::/129",
        "2001:db8::1/64",
        "::1/1000",
        "10.0.0.0/0x8",
        " 10.0.0.0/8",
        "1::2::3/64",
    };
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++)
        ck_assert_msg(cfg_parse_cidr(bad[i], &c) == TW_EBAD, "accepted \"%s\"", bad[i]);
}
END_TEST

/* ---- hostile text: every prefix of the shipped files ---- */

static void prefixes_of(const char *rel)
{
    char *text = read_text(rel);
    size_t n = strlen(text);
    make_tmpdir();
    char path[128];
    snprintf(path, sizeof(path), "%s/p.conf", tmpdir);
    for (size_t k = 0; k <= n; k++) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fwrite(text, 1, k, f);
        fclose(f);
        struct tw_cfg c;
        cfg_defaults(&c);
        char *msgs;
        size_t len;
        FILE *err = open_memstream(&msgs, &len);
        int p = cfg_load(&c, path, err);
        ck_assert_msg(p >= 0, "prefix %zu: %d", k, p);
        p += cfg_validate(&c, err);
        fclose(err);
        /* either clean, or one "PATH..." message per problem */
        ck_assert_int_eq(count_lines(msgs), p);
        for (char *line = msgs; *line; line = strchr(line, '\n') + 1)
            ck_assert_msg(strncmp(line, path, strlen(path)) == 0, "prefix %zu: %s", k, line);
        free(msgs);
        cfg_free(&c);
    }
    unlink(path);
    free(text);
}

START_TEST(test_prefixes_shipped)
{
    prefixes_of("conf/tunnelwatch.conf");
}
END_TEST

START_TEST(test_prefixes_test_conf)
{
    prefixes_of("conf/test.conf");
}
END_TEST

/* ---- print / reload ---- */

START_TEST(test_print_reload)
{
    struct tw_cfg c, d;
    char *text = shipped_with_examples();
    struct run r = load_text(&c, text, false);
    ck_assert_msg(r.n == 0, "%s", r.msgs);
    char *m;
    static const char *const sets[] = {
        "capture.interface=eth1",
        "capture.bpf=tcp port 443 or udp port 53",
        "capture.snaplen=1514",
        "networks.resolvers=10.0.0.53,fd00::53",
        "networks.internal=10.0.0.0/8,0.0.0.0/0,::/0,2001:db8::1/128",
        "output.alerts_file=/tmp/a \"quoted\" \\ file\tx",
        "redis.modes=channel,list",
        "redis.stream_maxlen=1000000000",
        "redis.spool.max_mib=4096",
        "rules.on_unsupported=skip",
        "log.verbosity=-1",
        "metrics.listen=127.0.0.1:9917",
        "redis.user=tw",
        "alert.dedup_window_s=0",
        "rules.dns_query_as_destination=false",
        "capture.immediate=true"};
    for (size_t i = 0; i < TW_ARRAY_LEN(sets); i++) {
        ck_assert_msg(set(&c, sets[i], &m) == 0, "%s: %s", sets[i], m);
        free(m);
    }
    ck_assert_int_eq(c.redis.stream_maxlen, 1000000000L);
    char *p1 = print_to_string(&c, false);
    char *path2 = write_tmp("printed.conf", p1, strlen(p1));
    size_t len;
    FILE *err = open_memstream(&m, &len);
    cfg_defaults(&d);
    int n = cfg_load(&d, path2, err);
    fclose(err);
    ck_assert_msg(n == 0, "reload: %s\n%s", m, p1);
    free(m);
    char *a = print_to_string(&c, true), *b = print_to_string(&d, true);
    ck_assert_str_eq(a, b);
    /* spot checks on the reloaded values, not only on the text */
    ck_assert_str_eq(d.output.alerts_file, "/tmp/a \"quoted\" \\ file\tx");
    ck_assert_uint_eq(d.n_allow, 5);
    ck_assert_str_eq(d.allow[4].ja4[0], c.allow[4].ja4[0]);
    ck_assert_int_eq(d.allow[0].from_min, 60);
    ck_assert_uint_eq(d.allow[1].days_mask, 0x3e);
    ck_assert(!d.redis.mode_stream && d.redis.mode_channel && d.redis.mode_list);
    ck_assert_int_eq(d.redis.stream_maxlen, 1000000000L);
    ck_assert_uint_eq(d.n_internal, 4);
    ck_assert_uint_eq(d.internal[3].bits, 128);
    ck_assert(d.rules.skip_unsupported && !d.rules.dns_query_as_destination);
    ck_assert_str_eq(d.rules.paths[0], c.rules.paths[0]);
    free(a);
    free(b);
    free(p1);
    unlink(path2);
    free(path2);
    run_free(&r);
    cfg_free(&c);
    cfg_free(&d);
    free(text);
}
END_TEST

START_TEST(test_password)
{
    struct tw_cfg c;
    char *m;
    cfg_defaults(&c);
    ck_assert_int_eq(set(&c, "redis.password=hunter2-secret", &m), 0);
    free(m);
    ck_assert_str_eq(c.redis.password, "hunter2-secret");
    char *p = print_to_string(&c, false);
    ck_assert(strstr(p, "hunter2") == NULL);
    ck_assert(strstr(p, "password = \"********\";") != NULL);
    free(p);
    cfg_free(&c);

    setenv("TW_CFG_TEST_PW", "from-env-s3cret", 1);
    struct run r = load_text(&c, "redis = {\n password_env = \"TW_CFG_TEST_PW\";\n};\n", false);
    ck_assert_msg(r.n == 0, "%s", r.msgs);
    ck_assert_str_eq(c.redis.password, "from-env-s3cret");
    p = print_to_string(&c, false);
    ck_assert(strstr(p, "s3cret") == NULL);
    ck_assert(strstr(p, "password_env = \"TW_CFG_TEST_PW\";") != NULL);
    free(p);
    run_free(&r);
    cfg_free(&c);

    r = load_text(&c, "redis = {\n password = \"x\";\n password_env = \"TW_CFG_TEST_PW\";\n};\n",
                  false);
    ck_assert_int_eq(r.n, 1);
    ck_assert(strstr(r.msgs, ":3: redis.password_env: give redis.password or") != NULL);
    run_free(&r);
    cfg_free(&c);
}
END_TEST

START_TEST(test_rule_paths_relative)
{
    struct tw_cfg c;
    make_tmpdir();
    char sub[128], real[PATH_MAX], want[PATH_MAX + 16];
    snprintf(sub, sizeof(sub), "%s/myrules", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    ck_assert_ptr_nonnull(realpath(tmpdir, real));
    /* relative to the config file's folder, whatever the cwd */
    ck_assert_int_eq(chdir("/"), 0);
    struct run r = load_text(&c, "rules = { paths = [ \"myrules\", \"/etc\" ]; };\n", true);
    ck_assert_msg(r.n == 0, "%s", r.msgs);
    snprintf(want, sizeof(want), "%s/myrules", real);
    ck_assert_str_eq(c.rules.paths[0], want);
    ck_assert_str_eq(c.rules.paths[1], "/etc");
    run_free(&r);
    cfg_free(&c);
    /* no rules.paths: rules/ beside the file */
    r = load_text(&c, "sensor = { name = \"s\"; };\n", false);
    snprintf(want, sizeof(want), "%s/rules", real);
    ck_assert_str_eq(c.rules.paths[0], want);
    run_free(&r);
    cfg_free(&c);
    rmdir(sub);
}
END_TEST

/* ---- cfg_load_table: another program's key table (tunnelwatch-web's) ---- */

struct tbl {
    char name[8];
    int64_t n;
    char url[32];
};

static const struct cfg_tkey tbl_keys[] = {
    {"name", CFG_T_STR, offsetof(struct tbl, name), sizeof(((struct tbl *)0)->name), 0, 0},
    {"grp.n", CFG_T_I64, offsetof(struct tbl, n), sizeof(int64_t), 1, 10},
    {"grp.sub.url", CFG_T_STR, offsetof(struct tbl, url), sizeof(((struct tbl *)0)->url), 0, 0},
};

/* Loads text into t (which keeps what the file does not set); messages collected. */
static struct run load_table_text(struct tbl *t, const char *text)
{
    struct run r = {0, NULL, write_tmp("tbl.conf", text, strlen(text))};
    size_t len;
    FILE *err = open_memstream(&r.msgs, &len);
    r.n = cfg_load_table(tbl_keys, TW_ARRAY_LEN(tbl_keys), t, r.path, err);
    fclose(err);
    return r;
}

START_TEST(test_table_ok)
{
    struct tbl t = {"def", 3, "u"};
    struct run r = load_table_text(&t, "name = \"abc\";\n"
                                       "grp = {\n"
                                       "  sub = { url = \"redis://x\"; };\n"
                                       "};\n");
    ck_assert_int_eq(r.n, 0);
    ck_assert_str_eq(r.msgs, "");
    ck_assert_str_eq(t.name, "abc");
    ck_assert_int_eq(t.n, 3); /* not in the file: kept */
    ck_assert_str_eq(t.url, "redis://x");
    run_free(&r);
    r = load_table_text(&t, "grp = { n = 10; };\n");
    ck_assert_int_eq(r.n, 0);
    ck_assert_int_eq(t.n, 10);
    ck_assert_str_eq(t.name, "abc");
    run_free(&r);
}
END_TEST

START_TEST(test_table_problems)
{
    struct tbl t = {"def", 3, "u"};
    struct run r = load_table_text(&t, "name = \"abcdefgh\";\n" /* 1: 8 bytes, room for 7 */
                                       "grp = {\n"
                                       "  n = 50;\n"  /* 3 */
                                       "  nn = 1;\n"  /* 4 */
                                       "  sub = 3;\n" /* 5 */
                                       "};\n"
                                       "nmae = \"x\";\n" /* 7 */
                                       "other = 1;\n"    /* 8 */
                                       "grp.n = \"5\";\n");
    char want[1024];
    snprintf(want, sizeof(want),
             "%1$s:1: name: too long (8 bytes, at most 7)\n"
             "%1$s:3: grp.n: 50 is out of range (1..10)\n"
             "%1$s:4: grp.nn: unknown key (did you mean grp.n?)\n"
             "%1$s:5: grp.sub: expected a group { ... }, got an integer\n"
             "%1$s:7: nmae: unknown key (did you mean name?)\n"
             "%1$s:8: other: unknown key\n",
             r.path);
    /* libconfig refuses a dotted name: the last line is a syntax error, reported alone */
    ck_assert_int_eq(r.n, 1);
    ck_assert_ptr_nonnull(strstr(r.msgs, ":9: syntax error: "));
    run_free(&r);
    r = load_table_text(&t, "name = \"abcdefgh\";\n"
                            "grp = {\n"
                            "  n = 50;\n"
                            "  nn = 1;\n"
                            "  sub = 3;\n"
                            "};\n"
                            "nmae = \"x\";\n"
                            "other = 1;\n");
    ck_assert_int_eq(r.n, 6);
    ck_assert_str_eq(r.msgs, want);
    /* nothing assigned from a line with a problem */
    ck_assert_str_eq(t.name, "def");
    ck_assert_int_eq(t.n, 3);
    run_free(&r);
    /* wrong types */
    r = load_table_text(&t, "name = 5;\ngrp = { n = \"5\"; };\n");
    snprintf(want, sizeof(want),
             "%1$s:1: name: expected a string, got an integer\n"
             "%1$s:2: grp.n: expected an integer, got a string\n",
             r.path);
    ck_assert_int_eq(r.n, 2);
    ck_assert_str_eq(r.msgs, want);
    run_free(&r);
    /* a missing file */
    char *msgs;
    size_t len;
    FILE *err = open_memstream(&msgs, &len);
    ck_assert_int_eq(
        cfg_load_table(tbl_keys, TW_ARRAY_LEN(tbl_keys), &t, "/nonexistent/tbl.conf", err), TW_EIO);
    fclose(err);
    ck_assert_str_eq(msgs, "/nonexistent/tbl.conf: cannot read: No such file or directory\n");
    free(msgs);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_test(tc, test_shipped_conf);
    tcase_add_test(tc, test_test_conf);
    tcase_add_test(tc, test_shipped_examples);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_password);
    tcase_add_test(tc, test_rule_paths_relative);
    suite_add_tcase(s, tc);

    tc = tcase_create("problems");
    tcase_add_loop_test(tc, test_error_kinds, 0, (int)TW_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_all_errors_one_run);
    suite_add_tcase(s, tc);

    tc = tcase_create("set");
    tcase_add_test(tc, test_set_types);
    tcase_add_test(tc, test_set_errors);
    tcase_add_test(tc, test_set_then_validate);
    suite_add_tcase(s, tc);

    tc = tcase_create("cidr");
    tcase_add_test(tc, test_cidr);
    suite_add_tcase(s, tc);

    tc = tcase_create("prefixes");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_prefixes_shipped);
    tcase_add_test(tc, test_prefixes_test_conf);
    suite_add_tcase(s, tc);

    tc = tcase_create("table");
    tcase_add_test(tc, test_table_ok);
    tcase_add_test(tc, test_table_problems);
    suite_add_tcase(s, tc);
    tc = tcase_create("print");
    tcase_add_test(tc, test_print_reload);
    suite_add_tcase(s, tc);
    return s;
}
