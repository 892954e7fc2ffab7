/* main.c - tunnelwatch's entry point: the phases of a run, in order.
 *
 *   parse arguments (cli.c) -> load the configuration (cli.c) -> reserve heap (mem.c) ->
 *   load the rules (cli.c) -> -T prints them, or start the sensor (sensor.c: inputs, outputs,
 *   capture, privilege drop, metrics, Redis, engine, signals) -> run it -> stop it (flow ends,
 *   summaries, evidence, queue flush).
 *
 * Exit codes: 0 ok, 1 runtime failure (unreadable or truncated capture, alerts that could not
 * be delivered in a replay), 2 usage, configuration or rule error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/capture.h"
#include "tunnelwatch/cli.h"
#include "tunnelwatch/mem.h"
#include "tunnelwatch/sensor.h"

/* Heap grown and faulted in at the start, off the capture thread (mem.h: tw_heap_reserve). */
#define HEAP_RESERVE ((size_t)16 << 20)

static int list_interfaces(void)
{
    char err[1024];
    if (cap_list_interfaces(stdout, err, sizeof(err)) == TW_OK)
        return 0;
    fprintf(stderr, "tunnelwatch: %s\n", err);
    return 1;
}

/* start -> run -> stop; the sensor owns cfg and rules from here on. */
static int run_sensor(const struct cli_args *a, struct tw_cfg *cfg, struct ruleset *rules,
                      struct sensor_sig *sig)
{
    struct sensor *s = sensor_new(a, cfg, rules, sig);
    if (!s)
        return 1;
    int status = sensor_start(s);
    if (status == 0)
        status = sensor_run(s);
    status = sensor_stop(s, status);
    sensor_free(s);
    return status;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    memset(&a, 0, sizeof(a));
    int status = cli_parse(argc, argv, &a);
    if (status || a.list) {
        cli_args_free(&a);
        return status ? status : list_interfaces();
    }
    struct tw_cfg *cfg = calloc(1, sizeof(*cfg));
    struct ruleset *rules = NULL;
    struct sensor_sig *sig = NULL;
    status = cfg ? cli_load_config(&a, cfg, stderr) : 1;
    if (status == 0 && !a.check && !a.selftest) {
        tw_heap_reserve(HEAP_RESERVE); /* the rules load into it already */
        sig = sensor_sig_begin(&a, cfg);
    }
    if (status == 0)
        rules = cli_load_rules(cfg, stderr, &status);
    if (rules && a.check) {
        cli_print_check(cfg, rules, stdout);
    } else if (rules && a.selftest) {
        status = ruleset_selftest(rules, stdout) ? 1 : 0;
    } else if (rules) {
        status = run_sensor(&a, cfg, rules, sig);
        cfg = NULL; /* freed by the sensor */
        rules = NULL;
        sig = NULL;
    }
    sensor_sig_free(sig); /* the rules did not load: before cfg, which it reads */
    ruleset_free(rules);
    if (cfg)
        cfg_free(cfg);
    free(cfg);
    cli_args_free(&a);
    return status;
}
