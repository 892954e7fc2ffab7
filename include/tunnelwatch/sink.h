/* sink.h - the alerts file's writer: its own thread and a bounded queue of JSON lines.
 *
 * Capture never waits on the alerts file. sink_put() copies one record and its newline into a
 * byte ring under a mutex (so lines of several capture workers never interleave) and returns;
 * the writer thread writes the ring to the file. What does not fit in the ring is dropped and
 * counted (dropped); what a write refuses (a full disk, a reader that went away) is counted
 * (output_errors); each condition is said once on the log stream, until it clears.
 *
 * Lossless mode (replays to a regular file or to standard output): sink_put() waits for room
 * instead of dropping, so a replay writes every record, in order, as it always did. A FIFO is
 * never lossless: its reader may never come.
 *
 * A FIFO is opened without blocking: with no reader yet (or after the reader went away) the
 * writer thread tries again every 100 ms while records queue up to the cap. A stalled reader
 * costs only the ring. sink_reopen() (SIGHUP, logrotate) opens the path again from the writer
 * thread; records queued before it go to the new file.
 *
 * Ownership: the sink owns its ring, its descriptor (not standard output's) and a copy of the
 * path. sink_put() may be called from any thread once sink_open() returned; the rest from the
 * thread that opened it.
 */
#ifndef TW_SINK_H
#define TW_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tunnelwatch/tw.h"

struct sink_opts {
    const char *path; /* appended to (created 0666 & ~umask); "-" is standard output */
    size_t cap;       /* ring bytes (output.alerts_queue_kib); a longer record is dropped */
    bool lossless;    /* wait for room rather than drop (ignored for a FIFO) */
    FILE *log;        /* one line per condition, or NULL */
};

struct sink_stats {
    uint64_t records;       /* taken into the queue */
    uint64_t dropped;       /* did not fit in the queue, or still queued at the exit deadline */
    uint64_t output_errors; /* lost to a failed write (full disk, reader gone) */
    uint64_t queued_bytes;  /* in the ring now */
    bool connected;         /* a descriptor is open (a FIFO has a reader) */
};

struct sink;

/* NULL with a one-line reason in err. A FIFO without a reader is not an error. */
struct sink *sink_open(const struct sink_opts *o, char *err, size_t errlen);
/* Starts the writer thread (after the privilege drop: it must not keep capabilities).
 * TW_OK or TW_ENOMEM. */
int sink_start(struct sink *s);
/* Queues line (without its newline; one is added). TW_OK, or TW_ELIMIT: dropped, counted. */
int sink_put(struct sink *s, const char *line, size_t len);
/* Asks the writer thread to open the path again (SIGHUP); nothing for standard output. */
void sink_reopen(struct sink *s);
/* Stops taking records and lets the writer drain the queue for at most wait_ms from now
 * (< 0: until empty; a lossless sink always drains); the rest is dropped (counted). Returns
 * at once, so that the Redis publisher can drain in the same time. */
void sink_stop(struct sink *s, int wait_ms);
/* sink_stop(s, -1) unless stopped, then waits for the writer thread to end. The counters
 * are final after it. */
void sink_close(struct sink *s);
void sink_free(struct sink *s);
void sink_get_stats(struct sink *s, struct sink_stats *st);

#endif /* TW_SINK_H */
