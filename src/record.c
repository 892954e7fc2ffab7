/* record.c - incidents and record output (see record.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/mem.h"
#include "tunnelwatch/record.h"

#define RECORD_MAX   65536      /* one JSON record; longer ones are dropped and counted */
#define DEFER_MAX    (4u << 20) /* bytes of record copies waiting for the formatter thread */
#define DEFER_NAP_NS 1000000L   /* its pause after a batch: a burst costs a wakeup a millisecond */

/* A record waiting for the formatter thread (recorder_opts.defer), in the ring. */
struct deferred {
    size_t size; /* bytes in the ring, this header included; a multiple of DEFER_ALIGN */
    bool to_file, to_redis;
    struct alert_rec *rec; /* in copy (alert_rec_copy_to); its rule held (rule_hold) */
    max_align_t copy[];
};

#define DEFER_ALIGN _Alignof(struct deferred)

/* The queue is a ring of DEFER_MAX bytes: the capture thread copies records in at head, the
 * formatter thread writes them out from tail. One mapping made at the start and faulted in
 * by the formatter thread, instead of an allocation per record that the formatter freed: the
 * two threads then fought over the heap's lock (a futex call each time, hundreds a second in
 * an alert burst), and the capture thread took the page faults of a growing heap. A record
 * that does not fit before the end of the ring starts again at its beginning (the bytes left
 * over are skipped); head and tail count bytes from the start and only grow. */
struct defer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* the thread: records came to an idle thread, or stop */
    pthread_cond_t done; /* producers: room freed, or everything written */
    uint8_t *ring;       /* DEFER_MAX bytes (tw_big_alloc) */
    size_t head, tail;   /* bytes queued so far, and written so far: [tail, head) waits */
    size_t pending;      /* records queued or being written */
    bool idle;           /* the thread waits on cv */
    bool stop;
};

struct recorder {
    struct recorder_opts o;
    struct jw jw;
    struct alert_ids ids;
    struct dedup *dedup;
    const char *file;
    struct tw_time now; /* time of the last hit or tick: stamps update records */
    struct recorder_stats st;
    bool failing;             /* the last write to the alerts file failed (said once) */
    struct pressure dedup_pr; /* incidents pushed out early, by the host that pushed */
    bool deferring;           /* defer runs: emit() queues copies to its thread */
    struct defer defer;
};

static void flush_update(void *ud, struct incident *in);
static bool defer_start(struct recorder *r);
static void defer_stop(struct recorder *r);

struct recorder *rec_new(const struct recorder_opts *o)
{
    struct recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->o = *o;
    r->dedup = dedup_new(o->cfg->alert.dedup_max, o->cfg->alert.dedup_window_s);
    if (!r->dedup) {
        free(r);
        return NULL;
    }
    jw_init(&r->jw, RECORD_MAX);
    alert_ids_init(&r->ids);
    dedup_set_flush(r->dedup, flush_update, r);
    r->deferring = o->defer && defer_start(r);
    return r;
}

void rec_free(struct recorder *r)
{
    if (!r)
        return;
    if (r->deferring)
        defer_stop(r); /* writes what is queued */
    dedup_free(r->dedup);
    jw_free(&r->jw);
    free(r);
}

void rec_set_cfg(struct recorder *r, const struct tw_cfg *cfg)
{
    r->o.cfg = cfg;
}

void rec_set_file(struct recorder *r, const char *file)
{
    r->file = file;
}

/* A record the alerts file did not take (full disk, a reader that went away): counted, and
 * said once until a write succeeds again. */
static void write_failed(struct recorder *r, int err)
{
    __atomic_add_fetch(&r->st.output_errors, 1, __ATOMIC_RELAXED); /* the formatter's */
    if (!r->failing && r->o.log)
        fprintf(r->o.log,
                "tunnelwatch: cannot write the alerts file: %s (records lost until it "
                "takes them again; counted as output_errors)\n",
                strerror(err));
    r->failing = true;
}

/* The incident's key between workers and sensors: host|rule id|name. */
static void incident_key(const struct alert_rec *rec, char *key, size_t n)
{
    char host[TW_ADDR_STRLEN];
    snprintf(key, n, "%s|%s|%.*s", tw_addr_str(&rec->host, host, sizeof(host)), rec->rule->id,
             (int)(rec->name_len > 255 ? 255 : rec->name_len), (const char *)rec->name);
}

/* A new alert's Redis copy goes through the fleet's claim (fleet.h) with, for a sensor that
 * loses it, the same hit as an update record of the incident. jw holds the alert. */
static int claim_fleet(struct recorder *r, const struct alert_rec *rec)
{
    char key[TW_ADDR_STRLEN + 128 + 260], id[40];
    char *raised = malloc(r->jw.len);
    if (!raised)
        return TW_ENOMEM;
    size_t rlen = r->jw.len;
    memcpy(raised, r->jw.buf, rlen);
    incident_key(rec, key, sizeof(key));
    struct alert_rec u = *rec;
    alert_ids_next(&r->ids, id);
    u.type = ALERT_UPDATE;
    u.event_id = id;
    u.incident_id = rec->event_id;
    int rc = alert_format(&r->jw, &u, r->o.schema);
    if (rc == TW_OK)
        rc = fleet_claim(r->o.fleet, key, rec->event_id, raised, rlen, r->jw.buf, r->jw.len);
    if (rc != TW_OK)
        (void)pub_enqueue(r->o.pub, raised, rlen); /* the fleet could not take it: alone */
    free(raised);
    return TW_OK;
}

/* The Redis copy of a record: through the fleet when it dedups fleet-wide (fleet.h). */
static void to_pub(struct recorder *r, const struct alert_rec *rec)
{
    if (fleet_dedups(r->o.fleet)) {
        if (rec->type == ALERT_RAISED && claim_fleet(r, rec) == TW_OK)
            return;
        if (rec->incident_id &&
            fleet_relay(r->o.fleet, rec->incident_id, r->jw.buf, r->jw.len) == TW_OK)
            return;
    }
    (void)pub_enqueue(r->o.pub, r->jw.buf, r->jw.len);
}

/* The incident's pcap fields, from the evidence hook, on a copy of rec. */
static const struct alert_rec *with_evidence(struct recorder *r, const struct alert_rec *rec,
                                             struct alert_rec *tmp)
{
    const char *id = rec->type == ALERT_RAISED ? rec->event_id : rec->incident_id;
    if (!r->o.evidence || !id ||
        (rec->type != ALERT_RAISED && rec->type != ALERT_UPDATE && rec->type != ALERT_FLOW_END))
        return rec;
    *tmp = *rec;
    r->o.evidence(r->o.evidence_ud, tmp, id);
    return tmp;
}

/* Formats rec and writes it to the alerts file and Redis (on the formatter thread when
 * deferring). */
static void write_record(struct recorder *r, const struct alert_rec *rec, bool to_file,
                         bool to_redis)
{
    if (alert_format(&r->jw, rec, r->o.schema) != TW_OK) {
        __atomic_add_fetch(&r->st.dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    if (to_file && r->o.alerts_sink)
        (void)sink_put(r->o.alerts_sink, r->jw.buf, r->jw.len); /* a loss is counted there */
    FILE *out = to_file && !r->o.alerts_sink ? r->o.alerts_out : NULL;
    if (out) {
        /* one locked write per record: capture workers share the file */
        flockfile(out);
        bool ok = fwrite(r->jw.buf, 1, r->jw.len, out) == r->jw.len && fputc('\n', out) != EOF &&
                  fflush(out) == 0;
        int err = errno;
        clearerr(out);
        funlockfile(out);
        if (!ok)
            write_failed(r, err);
        else
            r->failing = false;
    }
    if (to_redis && r->o.pub)
        to_pub(r, rec);
}

/* ---- the formatter thread (recorder_opts.defer) ---- */

/* The record at byte count at, and the count of the next one; a record never wraps: when the
 * bytes left before the ring's end cannot hold one, the producer skipped them. */
static struct deferred *ring_at(const struct defer *f, size_t *at)
{
    size_t off = *at % DEFER_MAX;
    if (DEFER_MAX - off < sizeof(struct deferred)) { /* too short for a header: skipped */
        *at += DEFER_MAX - off;
        off = 0;
    }
    struct deferred *d = (struct deferred *)(void *)(f->ring + off);
    if (d->size == 0) { /* the producer's mark: the rest of the ring was skipped */
        *at += DEFER_MAX - off;
        d = (struct deferred *)(void *)f->ring;
    }
    *at += d->size;
    return d;
}

/* Writes the records in [tail, end) and gives their bytes back. */
static void write_batch(struct recorder *r, size_t end)
{
    struct defer *f = &r->defer;
    size_t at = f->tail, n = 0; /* tail moves only here, on this thread */
    while (at < end) {
        struct deferred *d = ring_at(f, &at);
        write_record(r, d->rec, d->to_file, d->to_redis);
        rule_release(d->rec->rule);
        n++;
    }
    pthread_mutex_lock(&f->mu);
    f->tail = end;
    f->pending -= n;
    pthread_cond_broadcast(&f->done);
    pthread_mutex_unlock(&f->mu);
}

static void *defer_main(void *arg)
{
    struct recorder *r = arg;
    struct defer *f = &r->defer;
    tw_populate(f->ring, tw_big_footprint(DEFER_MAX)); /* here, not on the capture thread */
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (f->head == f->tail && !f->stop) {
            f->idle = true;
            pthread_cond_wait(&f->cv, &f->mu);
        }
        f->idle = false;
        if (f->head == f->tail)
            break; /* stopped, and everything written */
        size_t end = f->head;
        bool stopping = f->stop;
        pthread_mutex_unlock(&f->mu);
        write_batch(r, end);
        if (!stopping) {
            struct timespec nap = {0, DEFER_NAP_NS};
            nanosleep(&nap, NULL); /* let a burst gather: one wakeup for many records */
        }
        pthread_mutex_lock(&f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* Starts the formatter thread; false (records formatted inline) when it cannot. */
static bool defer_start(struct recorder *r)
{
    struct defer *f = &r->defer;
    if (!(f->ring = tw_big_alloc(DEFER_MAX)))
        return false;
    if (pthread_mutex_init(&f->mu, NULL)) {
        tw_big_free(f->ring, DEFER_MAX);
        return false;
    }
    pthread_cond_init(&f->cv, NULL);
    pthread_cond_init(&f->done, NULL);
    bool ok = tw_thread_start(&f->th, "tw-format", defer_main, r, false) == 0;
    if (!ok) {
        pthread_cond_destroy(&f->cv);
        pthread_cond_destroy(&f->done);
        pthread_mutex_destroy(&f->mu);
        tw_big_free(f->ring, DEFER_MAX);
    }
    return ok;
}

/* Queues a copy of rec in the ring; waits while the ring has no room for it, as formatting it
 * here would have taken that time. False when a copy would not fit even an empty ring's
 * quarter (the caller then writes the record itself). */
static bool defer_put(struct recorder *r, const struct alert_rec *rec, bool to_file, bool to_redis)
{
    size_t size = sizeof(struct deferred) + alert_rec_copy_size(rec);
    size = (size + DEFER_ALIGN - 1) & ~(DEFER_ALIGN - 1);
    if (size > DEFER_MAX / 4)
        return false;
    struct defer *f = &r->defer;
    pthread_mutex_lock(&f->mu);
    size_t off = f->head % DEFER_MAX;
    size_t skip = DEFER_MAX - off < size ? DEFER_MAX - off : 0; /* starts again at 0 */
    while (f->head - f->tail + skip + size > DEFER_MAX)
        pthread_cond_wait(&f->done, &f->mu);
    /* [head, head + skip + size) is free: the formatter reads only below head */
    if (skip >= sizeof(struct deferred))
        ((struct deferred *)(void *)(f->ring + off))->size = 0; /* the mark ring_at skips */
    struct deferred *d = (struct deferred *)(void *)(f->ring + (skip ? 0 : off));
    d->size = size;
    d->to_file = to_file;
    d->to_redis = to_redis;
    d->rec = alert_rec_copy_to(d->copy, rec);
    rule_hold(d->rec->rule);
    f->head += skip + size;
    f->pending++;
    if (f->idle) {
        f->idle = false;
        pthread_cond_signal(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return true;
}

void rec_drain(struct recorder *r)
{
    if (!r || !r->deferring)
        return;
    struct defer *f = &r->defer;
    pthread_mutex_lock(&f->mu);
    while (f->pending)
        pthread_cond_wait(&f->done, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static void defer_stop(struct recorder *r)
{
    struct defer *f = &r->defer;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->done);
    pthread_mutex_destroy(&f->mu);
    tw_big_free(f->ring, DEFER_MAX);
    r->deferring = false;
}

/* A record out: its pcap fields filled here (the engine's state), then formatted and written,
 * on the formatter thread when there is one. A record too large for the ring is written here
 * once the thread has written every record before it (in order, and the thread's buffer is
 * then free). */
static void emit(struct recorder *r, const struct alert_rec *rec0, bool to_file, bool to_redis)
{
    struct alert_rec tmp;
    const struct alert_rec *rec = with_evidence(r, rec0, &tmp);
    if (r->deferring && defer_put(r, rec, to_file, to_redis))
        return;
    rec_drain(r);
    write_record(r, rec, to_file, to_redis);
}

void rec_suppressed(struct recorder *r, struct alert_rec *rec)
{
    char id[40];
    r->st.suppressed++;
    alert_ids_next(&r->ids, id);
    rec->type = ALERT_SUPPRESSED;
    rec->event_id = id;
    const struct tw_cfg *c = r->o.cfg;
    if (c->log_suppressed || c->publish_suppressed)
        emit(r, rec, c->log_suppressed, c->publish_suppressed);
    rec->event_id = NULL; /* id lives in this call only */
}

static void log_alert(struct recorder *r, const struct alert_rec *rec)
{
    char a[TW_ADDR_STRLEN], b[TW_ADDR_STRLEN];
    size_t n = rec->name_len > 255 ? 255 : rec->name_len;
    fprintf(r->o.log, "tunnelwatch: ALERT %s [%s] %s -> %s %s %.*s (%s, frame %" PRIu64 ")\n",
            rec->rule->level ? rec->rule->level : "?", rec->rule->title,
            tw_addr_str(&rec->host, a, sizeof(a)), tw_addr_str(&rec->srv, b, sizeof(b)), rec->kind,
            (int)n, (const char *)rec->name, rec->attribution, rec->frame);
}

/* Another capture worker of this process raised this incident first (fleet_claim_local): the
 * hit goes out as an update of that worker's incident, whose id the incident takes. */
static bool claimed_elsewhere(struct recorder *r, struct incident *in, struct alert_rec *rec)
{
    char key[TW_ADDR_STRLEN + 128 + 260], owner[40], id[40];
    incident_key(rec, key, sizeof(key));
    alert_ids_next(&r->ids, in->id);
    if (fleet_claim_local(r->o.fleet, key, in->id, tw_time_us(rec->ts), owner))
        return false;
    memcpy(in->id, owner, sizeof(in->id));
    in->reported_count = in->count;
    alert_ids_next(&r->ids, id);
    rec->type = ALERT_UPDATE;
    rec->event_id = id;
    rec->incident_id = in->id;
    rec->count = in->count;
    rec->first_seen = rec->last_seen = rec->ts;
    emit(r, rec, true, true);
    rec->event_id = NULL; /* id lives in this call only */
    r->st.updates++;
    return true;
}

struct incident *rec_hit(struct recorder *r, struct alert_rec *rec, bool external, bool *is_new)
{
    r->now = rec->ts;
    *is_new = false;
    uint64_t ev = dedup_evictions(r->dedup);
    struct incident *in =
        dedup_hit(r->dedup, &rec->host, rec->rule, rec->name, rec->name_len, rec->ts, is_new);
    if (dedup_evictions(r->dedup) != ev)
        pressure_note(&r->dedup_pr, &rec->host, true); /* the newcomer's host made it give way */
    if (!in || !*is_new)
        return in;
    if (!external && r->o.fleet && claimed_elsewhere(r, in, rec)) {
        *is_new = false;
        return in;
    }
    if (external)
        r->st.external++;
    else
        r->st.alerts++;
    rec->type = external ? ALERT_EXTERNAL : ALERT_RAISED;
    if (external || !r->o.fleet)
        alert_ids_next(&r->ids, in->id); /* else claimed_elsewhere gave it one */
    rec->event_id = in->id;
    rec->count = 1;
    rec->first_seen = rec->last_seen = rec->ts;
    emit(r, rec, true, true);
    if (r->o.verbosity > 0 && r->o.log && !external)
        log_alert(r, rec);
    return in;
}

void rec_flow_end(struct recorder *r, struct alert_rec *rec)
{
    char id[40];
    alert_ids_next(&r->ids, id);
    rec->type = ALERT_FLOW_END;
    rec->event_id = id;
    emit(r, rec, true, true);
    rec->event_id = NULL; /* id lives in this call only */
    r->st.flow_ends++;
}

/* An incident's hits since its last record, as an update record. */
static void flush_update(void *ud, struct incident *in)
{
    struct recorder *r = ud;
    struct alert_rec rec;
    char id[40];
    memset(&rec, 0, sizeof(rec));
    alert_ids_next(&r->ids, id);
    rec.type = ALERT_UPDATE;
    rec.ts = r->now;
    rec.event_id = id;
    rec.incident_id = in->id;
    rec.rule = in->rule;
    rec.name = (const uint8_t *)in->name;
    rec.name_len = strlen(in->name);
    rec.host = in->host;
    rec.count = in->count;
    rec.first_seen = in->first;
    rec.last_seen = in->last;
    rec.observer = r->o.cfg->sensor_name;
    rec.file = r->file;
    emit(r, &rec, true, true);
    r->st.updates++;
}

void rec_tick(struct recorder *r, struct tw_time now, bool final)
{
    if (tw_time_us(now) > tw_time_us(r->now))
        r->now = now;
    dedup_each_due(r->dedup, r->now, final ? 0 : r->o.cfg->alert.update_interval_s, flush_update,
                   r);
    if (!final)
        dedup_expire(r->dedup, r->now);
}

void rec_stats(const struct recorder *r, struct recorder_stats *st)
{
    *st = r->st;
    st->dropped = __atomic_load_n(&r->st.dropped, __ATOMIC_RELAXED);
    st->output_errors = __atomic_load_n(&r->st.output_errors, __ATOMIC_RELAXED);
}

uint64_t rec_dedup_evictions(const struct recorder *r)
{
    return dedup_evictions(r->dedup);
}

struct pressure *rec_dedup_pressure(struct recorder *r)
{
    return &r->dedup_pr;
}

void rec_health(struct recorder *r, const struct alert_health *h, struct tw_time now)
{
    char id[40];
    struct alert_rec rec;
    memset(&rec, 0, sizeof(rec));
    alert_ids_next(&r->ids, id);
    rec.type = ALERT_HEALTH;
    rec.ts = now;
    rec.event_id = id;
    rec.observer = r->o.cfg->sensor_name;
    rec.health = h;
    emit(r, &rec, true, true);
    r->st.health++;
}
