/* tunnelwatch-web page: polls /api/state and renders it with DOM calls only (textContent,
 * never innerHTML), so names that came off the wire always render as text. The server filters,
 * sorts and pages: the page shows the top hosts and one page of alerts, and sends back the
 * version it last got, so a poll with nothing new brings only the status. The view state
 * (filters, sorts and the open record) lives in the query string. */
'use strict';
(function () {
  var POLL_MS = 2000, PAGE = 50;
  var FILTERS = ['rule', 'level', 'sensor', 'host', 'q'];
  var VIEW = FILTERS.concat(['sort', 'hsort', 'open']);
  var state = { rule: '', level: '', sensor: '', host: '', q: '', sort: '', hsort: '', open: '' };
  var offset = 0, hoffset = 0, version = '', sv = '', sensors = [];
  var lastSeq = 0, firstRender = true, timer = null, inflight = 0;
  var evidenceDir = false; /* tunnelwatch-web reads the sensor's evidence.dir too */
  var INCIDENT_RE = /^[0-9a-f][0-9a-f-]{0,63}$/; /* what /api/evidence/ accepts */

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function td(text, cls) { return el('td', cls, text); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function fmtNum(n) { return n === null || n === undefined ? '-' : Number(n).toLocaleString('en-US'); }
  function fmtTime(t) { return t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-'; }
  function fmtBytes(n) {
    if (!n) return '0 B';
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }
  function fmtAge(s) {
    if (s < 0) s = 0;
    if (s < 120) return s + ' s ago';
    if (s < 7200) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  function readUrl() {
    var q = new URLSearchParams(location.search);
    VIEW.forEach(function (k) { state[k] = q.get(k) || ''; });
  }
  function writeUrl() {
    var q = new URLSearchParams();
    VIEW.forEach(function (k) { if (state[k]) q.set(k, state[k]); });
    var s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
  }
  function apiQuery() {
    var q = new URLSearchParams();
    FILTERS.concat(['sort', 'hsort']).forEach(function (k) { if (state[k]) q.set(k, state[k]); });
    if (offset) q.set('offset', offset);
    if (hoffset) q.set('hoffset', hoffset);
    q.set('limit', PAGE);
    q.set('hlimit', PAGE);
    q.set('since', version);
    q.set('sv', sv);
    return q.toString();
  }

  function banner(text) {
    var b = $('banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  function fillSelect(sel, values, current) {
    while (sel.options.length > 1) sel.remove(1);
    var seen = {};
    values.forEach(function (v) {
      var o = el('option', null, v.label);
      o.value = v.value;
      seen[v.value] = true;
      sel.appendChild(o);
    });
    if (current && !seen[current]) { /* a pasted filter for something not in the window */
      var o = el('option', null, current);
      o.value = current;
      sel.appendChild(o);
    }
    sel.value = current || '';
  }

  function renderFacets(f) {
    fillSelect($('f-rule'), f.rules.map(function (r) { return { value: r.id, label: r.name || r.id }; }), state.rule);
    fillSelect($('f-level'), f.levels.map(function (v) { return { value: v, label: v }; }), state.level);
    fillSelect($('f-sensor'), f.sensors.map(function (v) { return { value: v, label: v }; }), state.sensor);
  }

  function renderSensors(list, now) {
    var tb = $('sensors');
    clear(tb);
    if (!list.length) {
      var r = el('tr'); var c = td('no heartbeat yet', 'muted'); c.colSpan = 13; r.appendChild(c); tb.appendChild(r);
      return;
    }
    list.forEach(function (s) {
      var r = el('tr');
      r.dataset.sensor = s.name;
      r.appendChild(td(s.name, 'wrap'));
      r.appendChild(td(s.state, s.state));
      r.appendChild(td(s.hb_s ? fmtAge(now - s.hb_s) : 'no heartbeat time'));
      r.appendChild(td(s.pps.toFixed(1), 'num'));
      r.appendChild(td(fmtNum(s.packets), 'num'));
      r.appendChild(td(fmtNum(s.kernel_drops), 'num'));
      r.appendChild(td(fmtNum(s.alerts_raised), 'num'));
      r.appendChild(td(fmtNum(s.alerts_queued), 'num'));
      r.appendChild(td(fmtNum(s.alerts_spooled), 'num'));
      r.appendChild(td(fmtNum(s.alerts_dropped), 'num'));
      r.appendChild(td(s.redis_connected === 1 ? 'connected' : s.redis_connected === 0 ? 'disconnected' : '-'));
      r.appendChild(td(s.version || '-'));
      r.appendChild(td(s.pressure ? s.pressure + ' (' + fmtAge(s.pressure_age_s) + ')' : '-',
                       s.pressure ? 'pressure wrap' : ''));
      tb.appendChild(r);
    });
  }

  var SVGNS = 'http://www.w3.org/2000/svg';
  function timeline(counts, max, cls, bw, h) {
    var w = bw * counts.length;
    var svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('class', cls);
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    var bg = document.createElementNS(SVGNS, 'rect');
    bg.setAttribute('class', 'bg');
    bg.setAttribute('width', w);
    bg.setAttribute('height', h);
    svg.appendChild(bg);
    var total = 0;
    counts.forEach(function (n, i) {
      total += n;
      if (!n) return;
      var bh = Math.max(2, Math.round(h * n / max));
      var b = document.createElementNS(SVGNS, 'rect');
      b.setAttribute('class', 'bar');
      b.setAttribute('x', i * bw);
      b.setAttribute('y', h - bh);
      b.setAttribute('width', bw - 1);
      b.setAttribute('height', bh);
      var t = document.createElementNS(SVGNS, 'title');
      t.textContent = n + ' hit(s)';
      b.appendChild(t);
      svg.appendChild(b);
    });
    svg.setAttribute('aria-label', total + ' hits in the timeline');
    return svg;
  }

  function pager(prefix, total, off, shown) {
    $(prefix + '-range').textContent = total ? (off + 1) + '-' + (off + shown) + ' of ' + fmtNum(total) : '0';
    $(prefix + '-prev').disabled = off <= 0;
    $(prefix + '-next').disabled = off + shown >= total;
  }

  function renderOverview(h, st) {
    var tl = h.timeline, max = 1;
    tl.tl.forEach(function (n) { if (n > max) max = n; });
    var g = $('gtl');
    clear(g);
    g.appendChild(timeline(tl.tl, max, 'gtl', Math.max(3, Math.floor(720 / tl.buckets)), 40));
    var w = st.window;
    $('overview').textContent = fmtNum(w.records) + ' record(s), ' + fmtNum(w.alerts) + ' alert(s), ' +
      fmtNum(w.hosts) + ' host(s); ' + fmtNum(w.duplicates) + ' duplicate event id(s) dropped';
  }

  function hostRow(x, max) {
    var r = el('tr');
    r.dataset.host = x.host;
    var c = el('td');
    var a = el('a', 'hostlink', x.host);
    a.href = '?host=' + encodeURIComponent(x.host);
    a.addEventListener('click', function (ev) { ev.preventDefault(); setFilter('host', x.host); });
    c.appendChild(a);
    r.appendChild(c);
    r.appendChild(td(x.hits, 'num hits'));
    r.appendChild(td(x.alerts, 'num'));
    r.appendChild(td(fmtTime(x.first)));
    r.appendChild(td(fmtTime(x.last)));
    r.appendChild(td(x.rules.join(', '), 'wrap'));
    r.appendChild(td(x.names.join(', '), 'wrap names'));
    var bc = td(fmtBytes(x.bytes_out), 'num bytes');
    bc.title = x.bytes_out + ' bytes sent, ' + x.bytes_in + ' received through flagged flows';
    r.appendChild(bc);
    r.appendChild(td(x.flows, 'num'));
    var tc = el('td');
    tc.appendChild(timeline(x.tl, max, 'tl', 3, 18));
    r.appendChild(tc);
    return r;
  }

  function renderHosts(h) {
    var tb = $('hosts');
    clear(tb);
    var tl = h.timeline;
    $('tl-caption').textContent = '(timeline: ' + Math.round(tl.buckets * tl.bucket_s / 360) / 10 +
      ' h up to ' + fmtTime(h.ref) + (h.replay ? ', the newest record: a replay' : '') + ')';
    pager('h', h.total, h.offset, h.hosts.length);
    if (!h.hosts.length) {
      var r = el('tr'); var c = td('no host has reached a tunnelling service', 'muted'); c.colSpan = 10;
      r.appendChild(c); tb.appendChild(r);
      return;
    }
    var max = 1;
    h.hosts.forEach(function (x) { x.tl.forEach(function (n) { if (n > max) max = n; }); });
    h.hosts.forEach(function (x) { tb.appendChild(hostRow(x, max)); });
  }

  function alertRow(a) {
    var r = el('tr', 'alert-row');
    if (!firstRender && a.seq > lastSeq) r.classList.add('fresh');
    r.dataset.id = a.id;
    var t = td(fmtTime(a.time), a.skewed ? 'skew' : null);
    if (a.skewed) t.title = 'dated beyond the clock skew allowed: placed at its arrival';
    r.appendChild(t);
    r.appendChild(td(a.host, 'host'));
    r.appendChild(td(a.level || '-', 'lvl lvl-' + (a.level || 'none').replace(/[^a-z]/g, '')));
    var rc = td(a.rule || a.rule_id, 'wrap');
    rc.title = a.rule_id;
    r.appendChild(rc);
    r.appendChild(td(a.name, 'wrap name'));
    r.appendChild(td(a.evidence));
    r.appendChild(td(a.hits, 'num'));
    r.appendChild(td(a.sensor));
    r.addEventListener('click', function () { openRecord(a.id); });
    return r;
  }

  function renderAlerts(al) {
    var tb = $('alerts'), list = al.items;
    clear(tb);
    pager('a', al.total, al.offset, list.length);
    if (!list.length) {
      var r = el('tr'); var c = td('no alert yet', 'muted'); c.colSpan = 8; r.appendChild(c); tb.appendChild(r);
      return;
    }
    var newest = lastSeq;
    list.forEach(function (a) {
      tb.appendChild(alertRow(a));
      if (a.seq > newest) newest = a.seq;
    });
    lastSeq = newest;
    firstRender = false;
  }

  /* The record's evidence pcap: a download link when the sensor put a copy in Redis (or this
   * server reads the sensor's evidence directory), with the packets and bytes the record
   * gives; otherwise why there is none. Every value is text (textContent). */
  function str(v) { return typeof v === 'string' ? v : ''; }
  function renderEvidence(rec) {
    var box = $('record-evidence');
    clear(box);
    box.hidden = !rec;
    if (!rec) return;
    var inc = str(rec['tunnelwatch.incident_id']) ||
      (rec['event.action'] === 'raised' ? str(rec['event.id']) : '');
    var key = str(rec['tunnelwatch.evidence.redis_key']), path = str(rec['tunnelwatch.evidence.pcap']);
    var pk = rec['tunnelwatch.evidence.pcap_packets'], by = rec['tunnelwatch.evidence.pcap_bytes'];
    var facts = [];
    if (typeof pk === 'number') facts.push(fmtNum(pk) + ' packet(s)');
    if (typeof by === 'number') facts.push(fmtBytes(by) + (by >= 1024 ? ' (' + fmtNum(by) + ' bytes)' : ''));
    if (INCIDENT_RE.test(inc) && (key || (path && evidenceDir))) {
      var a = el('a', 'evidence-link', 'Download packets (pcap)');
      a.id = 'evidence-link';
      a.href = '/api/evidence/' + encodeURIComponent(inc) + '.pcap';
      a.setAttribute('download', inc + '.pcap');
      a.title = 'incident ' + inc + (key ? ', Redis key ' + key : ', from the sensor\'s evidence directory');
      box.appendChild(a);
      box.appendChild(el('span', 'muted', facts.length ?
        ' ' + facts.join(', ') + ' when this record was written (the download is the incident\'s pcap now)' :
        ' the incident\'s pcap'));
    } else if (path) {
      box.appendChild(el('span', 'muted', 'packets kept on the sensor' + (facts.length ? ' (' + facts.join(', ') + ')' : '') +
        ' at ' + path + '; no copy in Redis, so this page cannot offer them'));
    } else {
      box.appendChild(el('span', 'muted', 'evidence not kept: no packets were saved for this record'));
    }
  }

  function openRecord(id) {
    state.open = id;
    writeUrl();
    fetch('/api/record?id=' + encodeURIComponent(id), { cache: 'no-store' }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (rec) {
      var body = $('record-body');
      clear(body);
      $('record-title').textContent = 'Record ' + id;
      $('record-link').href = '/record?id=' + encodeURIComponent(id);
      renderEvidence(rec);
      if (!rec) {
        var tr = el('tr'); tr.appendChild(td('this record is no longer in the window', 'muted')); body.appendChild(tr);
      } else {
        Object.keys(rec).forEach(function (k) {
          var v = rec[k];
          var tr = el('tr');
          tr.appendChild(el('th', null, k));
          tr.appendChild(td(typeof v === 'string' ? v : JSON.stringify(v)));
          body.appendChild(tr);
        });
      }
      $('record').hidden = false;
    }).catch(function () { banner('cannot load the record: tunnelwatch-web unreachable'); });
  }
  function closeRecord() {
    state.open = '';
    writeUrl();
    $('record').hidden = true;
  }

  /* A new view: the next poll asks for everything. */
  function refetch() {
    version = '';
    firstRender = true;
    poll();
  }
  function setFilter(k, v) {
    state[k] = v;
    if (k === 'host' && $('f-host').value !== v) $('f-host').value = v;
    offset = hoffset = 0;
    writeUrl();
    refetch();
  }

  function render(s) {
    var st = s.status;
    evidenceDir = !!(st.evidence && st.evidence.dir);
    banner(st.redis_ok ? '' : 'Redis unreachable: ' + (st.redis_error || 'no connection') +
      ' (showing the last data received; retrying)');
    if (s.sensors) { sensors = s.sensors; sv = String(s.sv); }
    renderSensors(sensors, st.now_s);
    if (s.alerts) {
      renderFacets(s.facets);
      renderOverview(s.hosts, st);
      renderHosts(s.hosts);
      renderAlerts(s.alerts);
      version = s.version;
    }
    var w = st.window, sk = $('skew');
    sk.textContent = w.skewed ? fmtNum(w.skewed) + ' record(s) dated more than ' + w.max_skew_s +
      ' s ahead (clock skew): placed at their arrival' : '';
    sk.hidden = !w.skewed;
    $('summary').textContent = fmtNum(w.alerts) + ' alert(s), ' + fmtNum(w.hosts) + ' host(s), ' +
      sensors.length + ' sensor(s)' + (w.skewed ? ', clock skew: ' + fmtNum(w.skewed) : '');
    $('clock').textContent = 'updated ' + fmtTime(st.now);
    $('footer').textContent = 'stream ' + st.stream + ', group ' + st.group + ', window ' +
      w.records + '/' + w.max_entries + ' records over ' + w.hours +
      ' h; tunnelwatch-web ' + st.version;
    document.body.dataset.loaded = 'yes';
  }

  function poll() {
    if (timer) clearTimeout(timer);
    timer = null;
    var mine = ++inflight;
    fetch('/api/state?' + apiQuery(), { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (s) {
      if (mine === inflight) render(s); /* a newer view was asked for meanwhile */
    }).catch(function (e) {
      banner('tunnelwatch-web unreachable (' + e.message + '); retrying');
    }).then(function () {
      if (mine === inflight) timer = setTimeout(poll, POLL_MS);
    });
  }

  function page(which, dir) {
    if (which === 'a') offset = Math.max(0, offset + dir * PAGE);
    else hoffset = Math.max(0, hoffset + dir * PAGE);
    refetch();
  }

  document.addEventListener('DOMContentLoaded', function () {
    readUrl();
    ['rule', 'level', 'sensor', 'host', 'q'].forEach(function (k) {
      $('f-' + k).addEventListener('change', function (ev) { setFilter(k, ev.target.value.trim()); });
    });
    var debounce = null;
    $('f-q').addEventListener('input', function (ev) {
      clearTimeout(debounce);
      debounce = setTimeout(function () { setFilter('q', ev.target.value.trim()); }, 300);
    });
    $('f-host').value = state.host;
    $('f-q').value = state.q;
    ['sort', 'hsort'].forEach(function (k) {
      $(k === 'sort' ? 'asort' : 'hsort').value = state[k];
      $(k === 'sort' ? 'asort' : 'hsort').addEventListener('change', function (ev) { setFilter(k, ev.target.value); });
    });
    $('a-prev').addEventListener('click', function () { page('a', -1); });
    $('a-next').addEventListener('click', function () { page('a', 1); });
    $('h-prev').addEventListener('click', function () { page('h', -1); });
    $('h-next').addEventListener('click', function () { page('h', 1); });
    $('f-clear').addEventListener('click', function (ev) {
      ev.preventDefault();
      FILTERS.forEach(function (k) { state[k] = ''; });
      $('f-host').value = '';
      $('f-q').value = '';
      offset = hoffset = 0;
      writeUrl();
      refetch();
    });
    $('record-close').addEventListener('click', closeRecord);
    if (state.open) openRecord(state.open);
    poll();
  });
})();
