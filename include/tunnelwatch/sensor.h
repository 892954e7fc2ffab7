/* sensor.h - the running sensor: capture sources, the engine(s), outputs, Redis, signals.
 *
 * Phases, in main()'s order: sensor_new() takes the configuration and rules; sensor_start()
 * opens the inputs, the alerts file, the live capture (as root), writes the pid file, drops
 * privileges, starts the metrics listener, the Redis publisher and the engine, and installs
 * the signal handlers; sensor_run() reads every input (replays) or the interface (live, one
 * thread or capture workers on PACKET_FANOUT) until the end or a stop signal, with the
 * heartbeat, metrics, SIGUSR1 statistics and SIGHUP reloads between batches; sensor_stop()
 * ends every flow, writes the summaries and evidence, flushes or spools the queue and prints
 * the statistics. sensor_free() releases everything that exists, whatever phase failed.
 */
#ifndef TW_SENSOR_H
#define TW_SENSOR_H

#include "tunnelwatch/cfg.h"
#include "tunnelwatch/cli.h"
#include "tunnelwatch/rules.h"

struct sensor;

/* Takes ownership of cfg (calloc'ed) and rules; a borrows the command line until
 * sensor_free. NULL when out of memory (cfg and rules are freed then). */
struct sensor *sensor_new(const struct cli_args *a, struct tw_cfg *cfg, struct ruleset *rules);
/* 0, or the exit status (1 runtime, 2 configuration), reported on stderr. */
int sensor_start(struct sensor *s);
/* 0, or the exit status: 1 when an input could not be read, 2 for a bad filter. */
int sensor_run(struct sensor *s);
/* Ends the run; status is what sensor_run returned. Returns the process's exit status. */
int sensor_stop(struct sensor *s, int status);
void sensor_free(struct sensor *s);

#endif /* TW_SENSOR_H */
