/* cli.h - the command line and what it makes: arguments, the configuration, the rules.
 *
 * cli_parse() reads argv into struct cli_args (tcpdump habits: -i, -r repeatable, -c, -R,
 * -F, -B, -s, -Z, a trailing BPF expression, --set KEY=VALUE). Flags that are configuration
 * keys become --set lines applied over the file (cli_load_config), so the configuration
 * checks every value and range in one place. The same steps rebuild the configuration and
 * rules on SIGHUP. The struct borrows argv's strings; bpf is owned (cli_args_free).
 */
#ifndef TW_CLI_H
#define TW_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/rules.h"

struct cli_args {
    const char *iface;
    char *reads[256];
    size_t n_reads;
    const char *conf;
    char *rules[CFG_MAX_LIST];
    size_t n_rules;
    char *sets[256];
    size_t n_sets;
    const char *bpf_file;
    char *bpf;                                  /* the trailing words or -F's file, owned */
    const char *buffer_mib, *snaplen, *workers; /* checked by the configuration */
    const char *user, *pidfile;
    bool names, check, list, realtime;
    bool selftest; /* --selftest-rules */
    double speed;
    const char *alerts, *schema, *summary, *evidence, *redis;
    uint64_t max_packets;
    int verbosity;
};

/* 0, or the exit status (2: usage error, reported; -h and -V print and exit 0 themselves). */
int cli_parse(int argc, char **argv, struct cli_args *a);
void cli_args_free(struct cli_args *a);
/* Fills cfg: defaults, the file (-c), --set lines and the flags over it, the default rule
 * folder when none is named, then every check. 0 when valid, else the exit status (2), with
 * every problem reported to err. */
int cli_load_config(const struct cli_args *a, struct tw_cfg *cfg, FILE *err);
/* The rule set of cfg's rule paths, built. NULL with *status the exit status (2 for a rule
 * error, 1 out of memory), the reason reported to err. */
struct ruleset *cli_load_rules(const struct tw_cfg *cfg, FILE *err, int *status);
/* -T: the effective configuration and the rule summary. */
void cli_print_check(const struct tw_cfg *cfg, const struct ruleset *rules, FILE *out);
/* The field map (part of -T): one comment line per Sigma field name and logsource. */
void cli_print_field_map(FILE *out);

#endif /* TW_CLI_H */
