/* cli.c - the command line, the configuration it makes, the rules (see cli.h). */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tunnelwatch/alert.h"
#include "tunnelwatch/cli.h"

static void usage(FILE *out)
{
    fputs("usage: tunnelwatch [-i IFACE | -r FILE...] [options] [BPF expression]\n"
          "Passive sensor: flags DNS, TLS/QUIC SNI and HTTP Host names matched by Sigma rules.\n"
          "  -i IFACE            capture live on IFACE        -D, --list-interfaces\n"
          "  -r FILE             read a pcap/pcapng (repeatable, - = stdin, a folder = its "
          "captures)\n"
          "  -c CONF             configuration file           -R RULES  rule file or folder "
          "(repeatable)\n"
          "  -F FILE             BPF expression from FILE     -B MiB    kernel buffer size\n"
          "  -s SNAPLEN          snapshot length              -Z USER   drop privileges to USER\n"
          "  -T, --check-config  validate, print the effective configuration, exit\n"
          "  --selftest-rules    match each rule against observations built from its own values\n"
          "  --set KEY=VALUE     override any configuration key (repeatable)\n"
          "  --names             print every hostname observation as TSV (investigation)\n"
          "  --alerts FILE|-     write alert records (JSON lines)\n"
          "  --schema ecs|asim   alert field names (default ecs)\n"
          "  --summary FILE      per-host summary as JSON at the end of a replay\n"
          "  --write-evidence F  write every incident's packets to pcap F\n"
          "  --redis URL|none    redis://[user:pass@]host:port/db or unix:///path.sock\n"
          "  --realtime[=SPEED]  replay at the recorded pace (SPEED times faster)\n"
          "  --workers N         live capture threads (PACKET_FANOUT)\n"
          "  --max-packets N     stop after N packets        --pidfile FILE\n"
          "  -v, -q              more / less output           -V, --version   -h, --help\n"
          "Exit status: 0 ok, 1 runtime failure, 2 usage/configuration/rule error.\n",
          out);
}

enum {
    OPT_SET = 256,
    OPT_NAMES,
    OPT_ALERTS,
    OPT_SCHEMA,
    OPT_SUMMARY,
    OPT_EVIDENCE,
    OPT_REDIS,
    OPT_REALTIME,
    OPT_MAXPKT,
    OPT_PIDFILE,
    OPT_WORKERS,
    OPT_SELFTEST,
};

static const struct option long_opts[] = {
    {"interface", required_argument, NULL, 'i'},
    {"read", required_argument, NULL, 'r'},
    {"config", required_argument, NULL, 'c'},
    {"rules", required_argument, NULL, 'R'},
    {"list-interfaces", no_argument, NULL, 'D'},
    {"check-config", no_argument, NULL, 'T'},
    {"selftest-rules", no_argument, NULL, OPT_SELFTEST},
    {"set", required_argument, NULL, OPT_SET},
    {"names", no_argument, NULL, OPT_NAMES},
    {"alerts", required_argument, NULL, OPT_ALERTS},
    {"schema", required_argument, NULL, OPT_SCHEMA},
    {"summary", required_argument, NULL, OPT_SUMMARY},
    {"write-evidence", required_argument, NULL, OPT_EVIDENCE},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"realtime", optional_argument, NULL, OPT_REALTIME},
    {"max-packets", required_argument, NULL, OPT_MAXPKT},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options that take one string, kept as given (the configuration checks the values). */
static const struct {
    int opt;
    size_t off;
} string_opts[] = {
    {'i', offsetof(struct cli_args, iface)},
    {'c', offsetof(struct cli_args, conf)},
    {'F', offsetof(struct cli_args, bpf_file)},
    {'B', offsetof(struct cli_args, buffer_mib)},
    {'s', offsetof(struct cli_args, snaplen)},
    {'Z', offsetof(struct cli_args, user)},
    {OPT_ALERTS, offsetof(struct cli_args, alerts)},
    {OPT_SCHEMA, offsetof(struct cli_args, schema)},
    {OPT_SUMMARY, offsetof(struct cli_args, summary)},
    {OPT_EVIDENCE, offsetof(struct cli_args, evidence)},
    {OPT_REDIS, offsetof(struct cli_args, redis)},
    {OPT_PIDFILE, offsetof(struct cli_args, pidfile)},
    {OPT_WORKERS, offsetof(struct cli_args, workers)},
};

/* Repeatable options, collected into lists. */
static char **list_for(struct cli_args *a, int c, size_t **n, size_t *cap)
{
    switch (c) {
    case 'r':
        *n = &a->n_reads;
        *cap = TW_ARRAY_LEN(a->reads);
        return a->reads;
    case 'R':
        *n = &a->n_rules;
        *cap = TW_ARRAY_LEN(a->rules);
        return a->rules;
    case OPT_SET:
        *n = &a->n_sets;
        *cap = TW_ARRAY_LEN(a->sets);
        return a->sets;
    default:
        return NULL;
    }
}

static int parse_realtime(struct cli_args *a, const char *arg)
{
    a->realtime = true;
    a->speed = 1.0;
    if (!arg)
        return 0;
    char *end;
    a->speed = strtod(arg, &end);
    if (*end || !(a->speed > 0)) {
        fprintf(stderr, "tunnelwatch: --realtime: SPEED must be a positive number\n");
        return 2;
    }
    return 0;
}

static int parse_max_packets(struct cli_args *a, const char *arg)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (errno || end == arg || *end || arg[0] == '-') {
        fprintf(stderr, "tunnelwatch: --max-packets: expected a number\n");
        return 2;
    }
    a->max_packets = v;
    return 0;
}

/* Options without an argument, and the two with their own syntax. */
static int other_opt(struct cli_args *a, int c, const char *arg)
{
    switch (c) {
    case 'D':
        a->list = true;
        return 0;
    case 'T':
        a->check = true;
        return 0;
    case OPT_SELFTEST:
        a->selftest = true;
        return 0;
    case OPT_NAMES:
        a->names = true;
        return 0;
    case 'v':
        a->verbosity++;
        return 0;
    case 'q':
        a->verbosity--;
        return 0;
    case OPT_REALTIME:
        return parse_realtime(a, arg);
    case OPT_MAXPKT:
        return parse_max_packets(a, arg);
    case 'V':
        printf("tunnelwatch %s (%s)\n", TW_VERSION, pcap_lib_version());
        exit(0);
    case 'h':
        usage(stdout);
        exit(0);
    default:
        fprintf(stderr, "tunnelwatch: try 'tunnelwatch -h'\n");
        return 2;
    }
}

static int one_opt(struct cli_args *a, int c, char *arg)
{
    for (size_t i = 0; i < TW_ARRAY_LEN(string_opts); i++)
        if (string_opts[i].opt == c) {
            *(const char **)(void *)((char *)a + string_opts[i].off) = arg;
            return 0;
        }
    size_t *n, cap;
    char **list = list_for(a, c, &n, &cap);
    if (!list)
        return other_opt(a, c, arg);
    if (*n == cap) {
        fprintf(stderr, "tunnelwatch: too many -%c/--set arguments\n", c < 256 ? c : 's');
        return 2;
    }
    list[(*n)++] = arg;
    return 0;
}

/* Trailing words form the BPF expression, as with tcpdump. */
static int join_words(struct cli_args *a, int first, int argc, char **argv)
{
    size_t len = 0;
    for (int i = first; i < argc; i++)
        len += strlen(argv[i]) + 1;
    if (!len)
        return 0;
    a->bpf = calloc(1, len);
    if (!a->bpf)
        return 1;
    size_t o = 0;
    for (int i = first; i < argc; i++) {
        size_t w = strlen(argv[i]);
        if (i > first)
            a->bpf[o++] = ' ';
        memcpy(a->bpf + o, argv[i], w); /* len counts every word and separator */
        o += w;
    }
    return 0;
}

/* -F FILE: the filter expression; comments after '#' are allowed, as in tcpdump -F. */
static char *read_filter_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "tunnelwatch: -F %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = calloc(1, 65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '#')
            while (i < n && buf[i] != '\n')
                buf[i++] = ' ';
    return buf;
}

int cli_parse(int argc, char **argv, struct cli_args *a)
{
    int c, r;
    while ((c = getopt_long(argc, argv, "i:r:c:R:F:B:s:Z:DTvqVh", long_opts, NULL)) != -1)
        if ((r = one_opt(a, c, optarg)) != 0)
            return r;
    if (join_words(a, optind, argc, argv))
        return 1;
    if (a->bpf_file) {
        free(a->bpf);
        a->bpf = read_filter_file(a->bpf_file);
        if (!a->bpf)
            return 2;
    }
    return 0;
}

void cli_args_free(struct cli_args *a)
{
    free(a->bpf);
    a->bpf = NULL;
}

/* -R paths replace the configured ones (absolute, so a reload after a chdir still works). */
static void set_rule_paths(struct tw_cfg *cfg, const struct cli_args *a)
{
    for (size_t i = 0; i < cfg->rules.n_paths; i++)
        free(cfg->rules.paths[i]);
    cfg->rules.n_paths = 0;
    for (size_t i = 0; i < a->n_rules; i++) {
        cfg->rules.paths[cfg->rules.n_paths] = realpath(a->rules[i], NULL);
        if (!cfg->rules.paths[cfg->rules.n_paths])
            cfg->rules.paths[cfg->rules.n_paths] = strdup(a->rules[i]);
        cfg->rules.n_paths++;
    }
}

/* Applies the command-line flags over the configuration, as --set lines. */
static int apply_flags(struct tw_cfg *cfg, const struct cli_args *a)
{
    static const struct {
        size_t off;
        const char *key;
    } keys[] = {
        {offsetof(struct cli_args, iface), "capture.interface"},
        {offsetof(struct cli_args, snaplen), "capture.snaplen"},
        {offsetof(struct cli_args, buffer_mib), "capture.buffer_mib"},
        {offsetof(struct cli_args, workers), "capture.workers"},
        {offsetof(struct cli_args, alerts), "output.alerts_file"},
        {offsetof(struct cli_args, schema), "output.schema"},
        {offsetof(struct cli_args, summary), "output.summary_file"},
        {offsetof(struct cli_args, evidence), "output.evidence_file"},
        {offsetof(struct cli_args, redis), "redis.url"},
    };
    int problems = 0;
    char line[PATH_MAX + 64];
    for (size_t i = 0; i < a->n_sets; i++)
        problems += cfg_set(cfg, a->sets[i], stderr);
    for (size_t i = 0; i < TW_ARRAY_LEN(keys); i++) {
        const char *v = *(const char *const *)(const void *)((const char *)a + keys[i].off);
        if (!v)
            continue;
        if (keys[i].off == offsetof(struct cli_args, snaplen) && !strcmp(v, "0"))
            v = "262144"; /* -s 0: the whole frame, as with tcpdump */
        snprintf(line, sizeof(line), "%s=%s", keys[i].key, v);
        problems += cfg_set(cfg, line, stderr);
    }
    if (a->n_rules)
        set_rule_paths(cfg, a);
    if (a->bpf) {
        free(cfg->capture.bpf);
        cfg->capture.bpf = strdup(a->bpf);
    }
    cfg->log.verbosity += a->verbosity;
    return problems;
}

/* When neither -c nor -R names rules, use conf/rules beside the binary's source tree or the
 * installed /etc/tunnelwatch/rules, whichever exists. */
static void default_rules(struct tw_cfg *cfg)
{
    for (size_t i = 0; i < cfg->rules.n_paths; i++)
        if (access(cfg->rules.paths[i], R_OK) == 0)
            return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *cands[3] = {"/etc/tunnelwatch/rules", NULL, NULL};
    char c1[PATH_MAX + 32], c2[PATH_MAX + 32];
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe);
        snprintf(c1, sizeof(c1), "%s/../conf/rules", dir);
        snprintf(c2, sizeof(c2), "%s/../../conf/rules", dir);
        cands[1] = c1;
        cands[2] = c2;
    }
    for (int i = 0; i < 3; i++) {
        if (cands[i] && access(cands[i], R_OK) == 0) {
            for (size_t k = 0; k < cfg->rules.n_paths; k++)
                free(cfg->rules.paths[k]);
            cfg->rules.paths[0] = realpath(cands[i], NULL);
            cfg->rules.n_paths = cfg->rules.paths[0] ? 1 : 0;
            return;
        }
    }
}

int cli_load_config(const struct cli_args *a, struct tw_cfg *cfg, FILE *err)
{
    cfg_defaults(cfg);
    int problems = 0;
    if (a->conf) {
        int lr = cfg_load(cfg, a->conf, err); /* prints its own reason when unreadable */
        if (lr < 0)
            return 2;
        problems += lr;
    }
    problems += apply_flags(cfg, a);
    if (!a->conf && !a->n_rules)
        default_rules(cfg);
    problems += cfg_validate(cfg, err); /* every problem in one run */
    if (!problems)
        return 0;
    fprintf(err, "tunnelwatch: %d configuration problem%s\n", problems, problems > 1 ? "s" : "");
    return 2;
}

struct ruleset *cli_load_rules(const struct tw_cfg *cfg, FILE *err, int *status)
{
    struct ruleset *rs =
        ruleset_new(cfg->rules.skip_unsupported ? RULE_POLICY_SKIP : RULE_POLICY_ERROR);
    if (!rs) {
        *status = 1;
        return NULL;
    }
    ruleset_set_drop_filters(rs, cfg->rules.drop_process_filters);
    for (size_t i = 0; i < cfg->rules.n_paths; i++) {
        if (ruleset_load(rs, cfg->rules.paths[i], err) < 0) {
            ruleset_free(rs);
            *status = 2;
            return NULL;
        }
    }
    if (ruleset_build(rs) != TW_OK) {
        fprintf(err, "tunnelwatch: cannot build the rule matcher\n");
        ruleset_free(rs);
        *status = 1;
        return NULL;
    }
    alert_prepare_rules(rs);
    return rs;
}

void cli_print_check(const struct tw_cfg *cfg, const struct ruleset *rules, FILE *out)
{
    struct ruleset_summary rsum;
    ruleset_summary(rules, &rsum);
    cfg_print(cfg, out);
    fprintf(out, "# rules: %zu rules, %zu patterns, %zu files, %zu skipped; fields:%s%s\n",
            rsum.rules, rsum.patterns, rsum.files, rsum.skipped,
            rsum.fields & RF_DEST_HOST ? " DestinationHostname" : "",
            rsum.fields & RF_QUERY ? " QueryName" : "");
    for (size_t i = 0; i < ruleset_rule_count(rules); i++) {
        const struct rule *ru = ruleset_rule(rules, i);
        fprintf(out, "#   %s  %-8s %s%s\n", ru->id, ru->level ? ru->level : "-", ru->title,
                ru->relaxed ? " (relaxed: process filters dropped)" : "");
    }
    cli_print_field_map(out);
    const char *why;
    size_t n;
    for (size_t i = 0; ruleset_skip_reason(rules, i, &why, &n); i++)
        fprintf(out, "%s%5zu  %s\n", i ? "#" : "# skipped, by reason:\n#", n, why);
}

void cli_print_field_map(FILE *out)
{
    const char *name;
    char ls[160];
    unsigned bit;
    fprintf(out, "# field map: Sigma field, logsource, what the wire shows\n");
    for (size_t i = 0; ruleset_field_map(i, &name, ls, sizeof(ls), &bit); i++)
        fprintf(out, "#   %-22s %-34s %s\n", name, ls, ruleset_field_doc(bit));
}
