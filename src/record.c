/* record.c - incidents and record output (see record.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/record.h"

#define RECORD_MAX 65536 /* one JSON record; longer ones are dropped and counted */

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
};

static void flush_update(void *ud, struct incident *in);

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
    return r;
}

void rec_free(struct recorder *r)
{
    if (!r)
        return;
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
    r->st.output_errors++;
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

static void emit(struct recorder *r, const struct alert_rec *rec0, bool to_file, bool to_redis)
{
    struct alert_rec tmp;
    const struct alert_rec *rec = with_evidence(r, rec0, &tmp);
    if (alert_format(&r->jw, rec, r->o.schema) != TW_OK) {
        r->st.dropped++;
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
