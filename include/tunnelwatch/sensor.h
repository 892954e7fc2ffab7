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
struct sensor_sig;

/* The identity on disk of what a SIGHUP reload would read (the configuration file, every rule
 * file and folder: name, size, mtime, inode), for its "unchanged" test, taken on a thread of
 * its own while the rules load: a folder of rule files costs a system call or two a file, on
 * the way to the first packet otherwise. Taken before the load, so a file changed meanwhile
 * only makes the next SIGHUP reload. a and cfg must outlive it: it is ended by sensor_new's
 * sensor (or sensor_sig_free). NULL with -Z USER (a folder root may read and USER may not
 * would differ from what a reload sees: sensor_start takes it after the drop), or when the
 * thread cannot start (sensor_start then takes the signature itself). */
struct sensor_sig *sensor_sig_begin(const struct cli_args *a, const struct tw_cfg *cfg);
/* Waits for it and frees it; NULL does nothing. */
void sensor_sig_free(struct sensor_sig *sig);

/* Takes ownership of cfg (calloc'ed), rules and sig (may be NULL); a borrows the command line
 * until sensor_free. NULL when out of memory (cfg, rules and sig are freed then). */
struct sensor *sensor_new(const struct cli_args *a, struct tw_cfg *cfg, struct ruleset *rules,
                          struct sensor_sig *sig);
/* 0, or the exit status (1 runtime, 2 configuration), reported on stderr. */
int sensor_start(struct sensor *s);
/* 0, or the exit status: 1 when an input could not be read, 2 for a bad filter. */
int sensor_run(struct sensor *s);
/* Ends the run; status is what sensor_run returned. Returns the process's exit status. */
int sensor_stop(struct sensor *s, int status);
void sensor_free(struct sensor *s);

#endif /* TW_SENSOR_H */
