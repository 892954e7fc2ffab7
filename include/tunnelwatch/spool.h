/* spool.h - on-disk FIFO of alert records for the Redis publisher (outage spool).
 *
 * A spool is a directory of append-only segment files seg-<16 hex seq>.log plus a lock file.
 * Each record is [u32 len LE][u32 CRC-32 (IEEE) of the payload LE][payload]. Segments rotate
 * at seg_bytes; the whole spool is capped at max_bytes, and past the cap the OLDEST segments
 * are deleted, their unread records counted as dropped (per-segment record counts make that
 * count exact). Appends are fdatasync'd in batches (every sync_every records, or by
 * spool_tick() once sync_ms passed), so a crash loses at most one batch; a torn or corrupt tail
 * found at open (short header, short payload, bad CRC) is truncated away and counted.
 *
 * Reading is peek + commit: spool_peek() returns views of the next records without consuming
 * them, spool_commit() consumes them once the caller's consumer (Redis) acknowledged them, so a
 * crash in between re-delivers (at-least-once). Fully consumed segments are deleted.
 *
 * One process owns a spool dir: spool_open() takes flock(LOCK_EX | LOCK_NB) on <dir>/lock and
 * fails with a clear message when another process holds it. A struct spool is not thread-safe;
 * the publisher thread is its only user.
 */
#ifndef TW_SPOOL_H
#define TW_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "tunnelwatch/tw.h"

/* A record longer than this is refused (TW_ELIMIT); it also bounds what a corrupt length
 * field can make spool_open() or spool_peek() read. */
#define SPOOL_REC_MAX (1u << 20)

struct spool_opts {
    const char *dir;     /* created (mode 0700) if missing */
    uint64_t max_bytes;  /* cap on all segments; 0 = 256 MiB */
    uint64_t seg_bytes;  /* rotate past this; 0 = max_bytes / 8 clamped to [4 KiB, 64 MiB] */
    unsigned sync_every; /* fdatasync after this many appends; 0 = 64 */
    int sync_ms;         /* spool_tick() syncs pending appends older than this; 0 = 1000 */
};

struct spool_stats {
    uint64_t records;  /* unread records on disk */
    uint64_t bytes;    /* bytes of all segments (read parts of the head segment included) */
    uint64_t segments; /* segment files */
    uint64_t appended; /* records appended since open */
    uint64_t dropped;  /* unread records deleted past the cap, or refused as too large */
    uint64_t torn;     /* torn/corrupt tails truncated at open */
    uint64_t syncs;    /* fdatasync calls */
};

/* A record returned by spool_peek(): a view valid until the next spool_* call. */
struct spool_rec {
    const char *data;
    size_t len;
};

struct spool;

/* Opens (or creates) dir, takes the lock, scans existing segments (truncating torn tails).
 * NULL with a one-line reason in err on failure. */
struct spool *spool_open(const struct spool_opts *opts, char *err, size_t errlen);
/* Appends one record. TW_OK; TW_ELIMIT (too large for the record cap or the spool cap:
 * dropped, counted); TW_EIO. May delete the oldest segments to stay under the cap. */
int spool_append(struct spool *s, const void *rec, size_t len) TW_WUR;
/* fdatasync()s the active segment if it holds unsynced appends. */
int spool_sync(struct spool *s);
/* Syncs if unsynced appends are older than sync_ms; now_ms is a CLOCK_MONOTONIC time. */
void spool_tick(struct spool *s, int64_t now_ms);
/* Up to max records from the head, in append order, into out[]; returns how many (>= 0) or
 * TW_EIO. A batch never spans two segments. Views stay valid until the next spool_* call. */
int spool_peek(struct spool *s, struct spool_rec *out, size_t max) TW_WUR;
/* Consumes the first n records that the last spool_peek() returned. */
int spool_commit(struct spool *s, size_t n) TW_WUR;
/* Unread records. */
uint64_t spool_pending(const struct spool *s);
void spool_get_stats(const struct spool *s, struct spool_stats *out);
/* Syncs, releases the lock, frees. spool_close(NULL) does nothing. */
void spool_close(struct spool *s);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32()); crc32("123456789") = 0xCBF43926. */
uint32_t spool_crc32(const void *buf, size_t len);

#endif /* TW_SPOOL_H */
