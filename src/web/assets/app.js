/* tunnelwatch-web page: polls /api/state and renders it with DOM calls only (textContent,
 * never innerHTML), so names that came off the wire always render as text. The view state
 * (filters and the open record) lives in the query string. */
'use strict';
(function () {
  var POLL_MS = 2000;
  var FILTERS = ['rule', 'level', 'sensor', 'host'];
  var state = { rule: '', level: '', sensor: '', host: '', open: '' };
  var lastSeq = 0, firstRender = true, timer = null;

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
    FILTERS.concat(['open']).forEach(function (k) { state[k] = q.get(k) || ''; });
  }
  function writeUrl() {
    var q = new URLSearchParams();
    FILTERS.concat(['open']).forEach(function (k) { if (state[k]) q.set(k, state[k]); });
    var s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
  }
  function apiQuery() {
    var q = new URLSearchParams();
    FILTERS.forEach(function (k) { if (state[k]) q.set(k, state[k]); });
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
    fillSelect($('f-host'), f.hosts.map(function (v) { return { value: v, label: v }; }), state.host);
  }

  function renderSensors(list) {
    var tb = $('sensors');
    clear(tb);
    if (!list.length) {
      var r = el('tr'); var c = td('no heartbeat yet', 'muted'); c.colSpan = 12; r.appendChild(c); tb.appendChild(r);
      return;
    }
    list.forEach(function (s) {
      var r = el('tr');
      r.dataset.sensor = s.name;
      r.appendChild(td(s.name));
      r.appendChild(td(s.up ? 'up' : 'down', s.up ? 'up' : 'down'));
      r.appendChild(td(fmtAge(s.age_s)));
      r.appendChild(td(s.pps.toFixed(1), 'num'));
      r.appendChild(td(fmtNum(s.packets), 'num'));
      r.appendChild(td(fmtNum(s.kernel_drops), 'num'));
      r.appendChild(td(fmtNum(s.alerts_raised), 'num'));
      r.appendChild(td(fmtNum(s.alerts_queued), 'num'));
      r.appendChild(td(fmtNum(s.alerts_spooled), 'num'));
      r.appendChild(td(fmtNum(s.alerts_dropped), 'num'));
      r.appendChild(td(s.redis_connected === 1 ? 'connected' : s.redis_connected === 0 ? 'disconnected' : '-'));
      r.appendChild(td(s.version || '-'));
      tb.appendChild(r);
    });
  }

  var SVGNS = 'http://www.w3.org/2000/svg';
  function timeline(counts, max) {
    var w = 3 * counts.length, h = 18;
    var svg = document.createElementNS(SVGNS, 'svg');
    svg.setAttribute('class', 'tl');
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
      b.setAttribute('x', i * 3);
      b.setAttribute('y', h - bh);
      b.setAttribute('width', 2);
      b.setAttribute('height', bh);
      var t = document.createElementNS(SVGNS, 'title');
      t.textContent = n + ' hit(s)';
      b.appendChild(t);
      svg.appendChild(b);
    });
    svg.setAttribute('aria-label', total + ' hits in the timeline');
    return svg;
  }

  function renderHosts(h) {
    var tb = $('hosts');
    clear(tb);
    var tl = h.timeline;
    $('tl-caption').textContent = '(timeline: ' + Math.round(tl.buckets * tl.bucket_s / 360) / 10 +
      ' h up to ' + fmtTime(h.ref) + (h.replay ? ', the newest record: a replay' : '') + ')';
    if (!h.hosts.length) {
      var r = el('tr'); var c = td('no host has reached a tunnelling service', 'muted'); c.colSpan = 10;
      r.appendChild(c); tb.appendChild(r);
      return;
    }
    var max = 1;
    h.hosts.forEach(function (x) { x.tl.forEach(function (n) { if (n > max) max = n; }); });
    h.hosts.forEach(function (x) {
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
      tc.appendChild(timeline(x.tl, max));
      r.appendChild(tc);
      tb.appendChild(r);
    });
  }

  function renderAlerts(list) {
    var tb = $('alerts');
    clear(tb);
    if (!list.length) {
      var r = el('tr'); var c = td('no alert yet', 'muted'); c.colSpan = 8; r.appendChild(c); tb.appendChild(r);
      return;
    }
    var newest = lastSeq;
    list.forEach(function (a) {
      var r = el('tr', 'alert-row');
      if (!firstRender && a.seq > lastSeq) r.classList.add('fresh');
      if (a.seq > newest) newest = a.seq;
      r.dataset.id = a.id;
      r.appendChild(td(fmtTime(a.time)));
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
      tb.appendChild(r);
    });
    lastSeq = newest;
    firstRender = false;
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

  function setFilter(k, v) {
    state[k] = v;
    writeUrl();
    firstRender = true;
    poll();
  }

  function render(s) {
    var st = s.status;
    banner(st.redis_ok ? '' : 'Redis unreachable: ' + (st.redis_error || 'no connection') +
      ' (showing the last data received; retrying)');
    renderFacets(s.facets);
    renderSensors(s.sensors);
    renderHosts(s.hosts);
    renderAlerts(s.alerts);
    var hits = s.hosts.hosts.reduce(function (n, h) { return n + h.hits; }, 0);
    $('summary').textContent = s.alerts.length + ' alert(s), ' + s.hosts.hosts.length +
      ' host(s), ' + hits + ' hit(s), ' + s.sensors.length + ' sensor(s)';
    $('clock').textContent = 'updated ' + fmtTime(st.now);
    $('footer').textContent = 'stream ' + st.stream + ', group ' + st.group + ', window ' +
      st.window.records + '/' + st.window.max_entries + ' records over ' + st.window.hours +
      ' h; tunnelwatch-web ' + st.version;
    document.body.dataset.loaded = 'yes';
  }

  function poll() {
    if (timer) clearTimeout(timer);
    fetch('/api/state?' + apiQuery(), { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(render).catch(function (e) {
      banner('tunnelwatch-web unreachable (' + e.message + '); retrying');
    }).then(function () { timer = setTimeout(poll, POLL_MS); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    readUrl();
    FILTERS.forEach(function (k) {
      $('f-' + k).addEventListener('change', function (ev) { setFilter(k, ev.target.value); });
    });
    $('f-clear').addEventListener('click', function (ev) {
      ev.preventDefault();
      FILTERS.forEach(function (k) { state[k] = ''; });
      writeUrl();
      firstRender = true;
      poll();
    });
    $('record-close').addEventListener('click', closeRecord);
    if (state.open) openRecord(state.open);
    poll();
  });
})();
