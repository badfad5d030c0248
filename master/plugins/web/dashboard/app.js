// Yard operator dashboard: vanilla JS, no dependencies. Fed by the SSE stream
// GET /api/v1/events (one `snapshot` per interval); everything from the server goes into the
// DOM through textContent, never innerHTML. DOM work happens once per animation frame, at
// most once per snapshot, whatever the task rate.
(function () {
  'use strict';

  var API = '/api/v1';
  var WINDOW_US = 120e6;        // charts show at most the last two minutes
  var MIN_WINDOW_US = 30e6;     // and at least 30 s (a fresh page fills it as data comes)
  var MAX_SAMPLES = 1000;       // safety cap on the chart buffer
  var MAX_TYPES = 20;           // rows in "active by type"
  var DEAD_LIMIT = 100;         // dead letters listed
  var TOKEN_KEY = 'yard.token';

  function $(id) { return document.getElementById(id); }

  // ---------------------------------------------------------------- token and requests

  var token = '';
  try { token = localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { token = ''; }

  function storeToken(t) {
    token = t;
    try {
      if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage disabled: keep it for this page only */ }
  }

  // `#token=...` in the URL: store it, then take it out of the address bar and history.
  function fragmentToken() {
    var h = location.hash;
    if (!h || h.length < 2) return false;
    var t = new URLSearchParams(h.slice(1)).get('token');
    if (t === null) return false;
    storeToken(t.trim());
    history.replaceState(null, '', location.pathname + location.search);
    return true;
  }
  fragmentToken();

  function describeError(status, data, text) {
    if (data && data.error && typeof data.error === 'object') {
      return 'Error ' + status + ' ' + String(data.error.code || '') + ': ' +
        String(data.error.message || '');
    }
    return 'Error ' + status + (text ? ': ' + String(text).slice(0, 200) : '');
  }

  // Returns {status, ok, data, error}; status 0 when the request did not get an answer.
  function api(method, path, body) {
    var headers = {};
    if (token) headers['Authorization'] = 'Bearer ' + token;
    var init = { method: method, headers: headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(API + path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (res.status === 401) needToken();
        return {
          status: res.status, ok: res.ok, data: data,
          error: res.ok ? '' : describeError(res.status, data, text)
        };
      });
    }, function (err) {
      return { status: 0, ok: false, data: null, error: 'No answer from the server (' + err.message + ')' };
    });
  }

  function needToken() {
    var form = $('token-form');
    if (!form.hidden) return;
    form.hidden = false;
    setMsg($('token-msg'), token ? 'The stored token was refused.' : '', 'error');
    $('token-input').focus();
  }

  // ---------------------------------------------------------------- formatting helpers

  function setText(el, text) {
    text = String(text);
    if (el.textContent !== text) el.textContent = text;
  }

  function setMsg(el, text, kind) {
    el.className = 'msg' + (kind ? ' ' + kind : '');
    el.textContent = text;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }

  function fmtInt(v) { return String(Math.round(num(v))); }

  function fmtRate(v) {
    if (v === null || v === undefined) return '–';
    v = num(v);
    return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
  }

  function fmtShort(v) {
    var a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return +(v / 1e3).toFixed(0) + 'k';
    if (a >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
    if (a >= 10 || a === 0) return String(Math.round(v));
    return String(+v.toPrecision(2));
  }

  function fmtDur(us) {
    us = num(us);
    if (us < 0) us = 0;
    if (us < 1000) return (us / 1000).toFixed(3) + ' ms';
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + ' ms';
    if (us < 60e6) return (us / 1e6).toFixed(2) + ' s';
    var s = Math.round(us / 1e6);
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
  }

  function pad(n, w) { n = String(n); while (n.length < w) n = '0' + n; return n; }

  function fmtTime(us) {
    if (!us) return '–';
    var d = new Date(us / 1000);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1, 2) + '-' + pad(d.getDate(), 2) + ' ' +
      pad(d.getHours(), 2) + ':' + pad(d.getMinutes(), 2) + ':' + pad(d.getSeconds(), 2) + '.' +
      pad(d.getMilliseconds(), 3);
  }

  function fmtAgo(us, nowUs) {
    if (!us) return '';
    var s = Math.max(0, (nowUs - us) / 1e6);
    if (s < 60) return Math.round(s) + 's ago';
    if (s < 3600) return Math.round(s / 60) + 'm ago';
    if (s < 86400) return Math.round(s / 3600) + 'h ago';
    return Math.round(s / 86400) + 'd ago';
  }

  function badge(text) {
    var b = el('span', 'badge ' + String(text).replace(/[^a-z]/g, ''), text);
    return b;
  }

  function setBadge(b, text) {
    text = String(text || '?');
    if (b.textContent !== text) {
      b.textContent = text;
      b.className = 'badge ' + text.replace(/[^a-z]/g, '');
    }
  }

  // A link that opens a task in the lookup panel.
  function taskLink(id) {
    var a = el('a', 'id', id);
    a.href = '#';
    a.dataset.task = String(id);
    return a;
  }

  // Keeps container's children in the order of `keys`, creating, updating and removing the
  // node of each key; nodes are reused across snapshots.
  function reconcile(container, map, keys, create, update) {
    var wanted = new Set(keys);
    map.forEach(function (node, k) {
      if (!wanted.has(k)) { node.remove(); map.delete(k); }
    });
    var prev = null;
    for (var i = 0; i < keys.length; i++) {
      var k = keys[i];
      var node = map.get(k);
      if (!node) { node = create(k); map.set(k, node); }
      update(node, k);
      var expected = prev ? prev.nextSibling : container.firstChild;
      if (node !== expected) container.insertBefore(node, expected);
      prev = node;
    }
  }

  // ---------------------------------------------------------------- live stream

  var es = null;
  var retryTimer = null;
  var retryMs = 500;            // doubles to 10 s while the stream is refused
  var live = false;

  function setConn(isLive) {
    live = isLive;
    var c = $('conn');
    setText(c, isLive ? 'live' : 'reconnecting');
    c.className = 'conn ' + (isLive ? 'live' : 'down');
  }

  function connect() {
    clearTimeout(retryTimer);
    if (es) es.close();
    var url = API + '/events' + (token ? '?access_token=' + encodeURIComponent(token) : '');
    var src = new EventSource(url);
    es = src;
    src.onopen = function () {
      if (es !== src) return;
      retryMs = 500;
      setConn(true);
    };
    src.addEventListener('snapshot', function (ev) {
      if (es !== src) return;
      var s;
      try { s = JSON.parse(ev.data); } catch (e) { return; }
      if (s && typeof s === 'object') onSnapshot(s);
    });
    src.onerror = function () {
      if (es !== src) return;
      setConn(false);
      // The browser retries a dropped stream itself, but gives up on a refused one (401,
      // 503): then probe with a plain request (a 401 brings up the token form) and retry.
      if (src.readyState === EventSource.CLOSED) {
        scheduleReconnect(retryMs);
        retryMs = Math.min(10000, retryMs * 2);
      }
    };
  }

  function scheduleReconnect(ms) {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(function () {
      api('GET', '/queue').then(function (r) {
        if (r.status === 401) return;   // wait for a token: the token form reconnects
        connect();
      });
    }, ms);
  }

  // ---------------------------------------------------------------- snapshots

  var samples = [];          // {t, sub, ok, bad, p50, p90, p99}
  var latest = null;         // the snapshot to render on the next frame
  var frameQueued = false;
  var chartsDirty = false;

  function onSnapshot(s) {
    var rates = s.rates || {};
    var lat = s.latency_ms || {};
    var t = num(s.t_us) || Date.now() * 1000;
    var hasLat = num(lat.count) > 0;
    if (samples.length && t <= samples[samples.length - 1].t) samples.length = 0; // clock reset
    samples.push({
      t: t, sub: num(rates.submitted), ok: num(rates.succeeded), bad: num(rates.failed),
      p50: hasLat ? num(lat.p50) : null, p90: hasLat ? num(lat.p90) : null,
      p99: hasLat ? num(lat.p99) : null
    });
    while (samples.length > MAX_SAMPLES || (samples.length && samples[0].t < t - WINDOW_US - 5e6)) {
      samples.shift();
    }
    latest = s;
    chartsDirty = true;
    queueFrame();
  }

  function queueFrame() {
    if (frameQueued) return;
    frameQueued = true;
    requestAnimationFrame(frame);
  }

  function frame() {
    frameQueued = false;
    if (latest) {
      var s = latest;
      latest = null;
      render(s);
    }
    if (chartsDirty) {
      chartsDirty = false;
      drawCharts();
    }
  }

  var lastDeadCount = null;

  function render(s) {
    var c = s.counters || {};
    var q = s.queue || {};
    var workers = Array.isArray(s.workers) ? s.workers : [];
    var now = num(s.t_us) || Date.now() * 1000;
    setText($('stat-submitted'), fmtInt(c['tasks.submitted']));
    setText($('stat-succeeded'), fmtInt(c['tasks.succeeded']));
    setText($('stat-failed'), fmtInt(c['tasks.failed']));
    // `dead` is absent when the master could not count them this time: keep the last count.
    var dead = typeof s.dead === 'number' ? s.dead : lastDeadCount;
    setText($('stat-dead'), dead === null ? '–' : fmtInt(dead) + (s.dead_more === true ? '+' : ''));
    setText($('stat-active'), fmtInt(q.active !== undefined ? q.active : c['tasks.active']));
    setText($('stat-rate'), fmtRate(num((s.rates || {}).succeeded)));
    setText($('stat-workers'), String(workers.length));
    setText($('snap-time'), 'updated ' + fmtTime(now).slice(11, 19));

    renderQueue(q);
    renderWorkers(workers);
    renderJobs(Array.isArray(s.jobs) ? s.jobs : []);
    renderFailures(Array.isArray(s.failures) ? s.failures : [], now);

    if (dead !== null) {
      setText($('dead-summary'), dead + (s.dead_more === true ? '+' : '') + ' total' +
        (dead > DEAD_LIMIT ? ', first ' + DEAD_LIMIT + ' listed' : ''));
      if (lastDeadCount !== null && dead !== lastDeadCount) deadChanged();
      lastDeadCount = dead;
    }
  }

  // ---------------------------------------------------------------- queue

  var prioRows = new Map();
  var typeRows = new Map();

  function bars(container, map, entries) {
    var max = 1;
    entries.forEach(function (e) { if (e[1] > max) max = e[1]; });
    reconcile(container, map, entries.map(function (e) { return e[0]; }), function (k) {
      var row = el('div', 'bar');
      row._name = row.appendChild(el('span', 'name', k));
      row._name.title = k;
      var track = row.appendChild(el('span', 'track'));
      row._fill = track.appendChild(el('span', 'fill'));
      row._n = row.appendChild(el('span', 'n'));
      return row;
    }, function (row, k) {
      var v = 0;
      for (var i = 0; i < entries.length; i++) if (entries[i][0] === k) { v = entries[i][1]; break; }
      setText(row._n, fmtInt(v));
      row._fill.style.width = (100 * v / max).toFixed(1) + '%';
    });
  }

  function renderQueue(q) {
    setText($('queue-summary'), fmtInt(q.queued) + ' queued · ' + fmtInt(q.ready) + ' ready · ' +
      fmtInt(q.running) + ' running · ' + fmtInt(q.scheduled) + ' scheduled');
    var bp = q.by_priority || {};
    var prio = Object.keys(bp).map(function (k) { return ['priority ' + k, num(bp[k]), +k]; })
      .filter(function (e) { return e[1] > 0; })
      .sort(function (a, b) { return a[2] - b[2]; });
    if (!prio.length) prio = [['(empty)', 0]];
    bars($('queue-priority'), prioRows, prio);
    var bt = q.by_type || {};
    var types = Object.keys(bt).map(function (k) { return [k, num(bt[k])]; })
      .filter(function (e) { return e[1] > 0; })
      .sort(function (a, b) { return b[1] - a[1] || (a[0] < b[0] ? -1 : 1); });
    if (types.length > MAX_TYPES) {
      var rest = types.slice(MAX_TYPES).reduce(function (a, e) { return a + e[1]; }, 0);
      types = types.slice(0, MAX_TYPES);
      types.push(['(' + (Object.keys(bt).length - MAX_TYPES) + ' more)', rest]);
    }
    if (!types.length) types = [['(none)', 0]];
    bars($('queue-type'), typeRows, types);
  }

  // ---------------------------------------------------------------- workers

  var workerRows = new Map();

  function renderWorkers(workers) {
    var byId = new Map();
    workers.forEach(function (w) { if (w && w.id !== undefined) byId.set(String(w.id), w); });
    var ids = Array.from(byId.keys()).sort();
    reconcile($('workers').tBodies[0], workerRows, ids, function (id) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-worker', id);
      tr._id = tr.appendChild(el('td', '', id));
      tr._host = tr.appendChild(el('td'));
      tr._health = tr.appendChild(el('td')).appendChild(badge('?'));
      var load = tr.appendChild(el('td'));
      var meter = load.appendChild(el('span', 'meter'));
      tr._meter = meter.appendChild(el('span'));
      tr._load = load.appendChild(el('span'));
      tr._done = tr.appendChild(el('td', 'num'));
      tr._failed = tr.appendChild(el('td', 'num'));
      tr._rate = tr.appendChild(el('td', 'num'));
      tr._handlers = tr.appendChild(el('td', 'handlers'));
      return tr;
    }, function (tr, id) {
      var w = byId.get(id);
      setText(tr._host, String(w.host || '') + (w.pid ? ' (' + w.pid + ')' : ''));
      setBadge(tr._health, w.health);
      var slots = num(w.slots), inflight = num(w.inflight);
      setText(tr._load, inflight + ' / ' + slots);
      tr._meter.style.width = (slots ? Math.min(100, 100 * inflight / slots) : 0).toFixed(0) + '%';
      setText(tr._done, fmtInt(w.completed));
      setText(tr._failed, fmtInt(w.failed));
      setText(tr._rate, fmtRate(w.rate_per_s));
      var h = Array.isArray(w.handlers) ? w.handlers.join(', ') : String(w.handlers || '');
      setText(tr._handlers, h.length > 120 ? h.slice(0, 117) + '…' : h);
      tr._handlers.title = h;
      tr.title = 'last seen ' + num(w.last_seen_ms) + ' ms ago, credit ' + num(w.credit);
    });
    $('workers-empty').hidden = ids.length > 0;
  }

  // ---------------------------------------------------------------- jobs

  var jobRows = new Map();

  function renderJobs(jobs) {
    var byId = new Map();
    jobs.slice(0, 50).forEach(function (j) { if (j && j.id !== undefined) byId.set(String(j.id), j); });
    var ids = Array.from(byId.keys()).sort(function (a, b) { return +b - +a; }).slice(0, 20);
    reconcile($('jobs'), jobRows, ids, function (id) {
      var d = el('div', 'job');
      d.setAttribute('data-job', id);
      var head = d.appendChild(el('div', 'head'));
      head.appendChild(el('span', 'muted', 'job'));
      head.appendChild(el('span', '', id));
      d._type = head.appendChild(el('span'));
      d._state = head.appendChild(badge('?'));
      d._count = head.appendChild(el('span', 'count'));
      var bar = d.appendChild(el('div', 'progress'));
      d._ok = bar.appendChild(el('span', 'p-ok'));
      d._bad = bar.appendChild(el('span', 'p-bad'));
      d._can = bar.appendChild(el('span', 'p-can'));
      d._run = bar.appendChild(el('span', 'p-run'));
      return d;
    }, function (d, id) {
      var j = byId.get(id);
      var p = j.progress || {};
      var parts = num(j.parts) || (num(p.queued) + num(p.running) + num(p.succeeded) + num(p.failed) + num(p.cancelled)) || 1;
      setText(d._type, String(j.type || '') + (j.aggregate ? ' → ' + j.aggregate : ''));
      setBadge(d._state, j.state);
      var done = num(p.succeeded) + num(p.failed) + num(p.cancelled);
      setText(d._count, done + ' / ' + num(j.parts) + (num(p.failed) ? ' (' + num(p.failed) + ' failed)' : ''));
      d._ok.style.width = (100 * num(p.succeeded) / parts) + '%';
      d._bad.style.width = (100 * num(p.failed) / parts) + '%';
      d._can.style.width = (100 * num(p.cancelled) / parts) + '%';
      d._run.style.width = (100 * num(p.running) / parts) + '%';
      d.title = 'queued ' + num(p.queued) + ', running ' + num(p.running) + ', succeeded ' +
        num(p.succeeded) + ', failed ' + num(p.failed) + ', cancelled ' + num(p.cancelled);
    });
    $('jobs-empty').hidden = ids.length > 0;
  }

  // ---------------------------------------------------------------- failures

  var failureRows = new Map();

  function renderFailures(failures, now) {
    var byId = new Map();
    failures.slice(0, 20).forEach(function (t) { if (t && t.id !== undefined) byId.set(String(t.id), t); });
    var ids = Array.from(byId.keys());
    reconcile($('failures'), failureRows, ids, function (id) {
      var li = el('li');
      li.appendChild(taskLink(id));
      li._type = li.appendChild(el('span'));
      li._state = li.appendChild(badge('?'));
      li._err = li.appendChild(el('span', 'err'));
      li._when = li.appendChild(el('span', 'when'));
      return li;
    }, function (li, id) {
      var t = byId.get(id);
      setText(li._type, t.type || '');
      setBadge(li._state, t.state);
      var err = String(t.error || '');
      setText(li._err, err.length > 300 ? err.slice(0, 297) + '…' : err);
      li._err.title = err;
      setText(li._when, fmtAgo(num(t.finished_us), now));
    });
    $('failures-empty').hidden = ids.length > 0;
  }

  // ---------------------------------------------------------------- dead letters

  var deadLoading = false, deadAgain = false, deadTimer = null, deadLast = 0;

  function deadChanged() {
    // Reload when the count moves, at most every 5 s.
    if (deadTimer) return;
    var wait = Math.max(0, 5000 - (Date.now() - deadLast));
    deadTimer = setTimeout(function () { deadTimer = null; loadDead(); }, wait);
  }

  function loadDead() {
    if (deadLoading) { deadAgain = true; return Promise.resolve(); }
    deadLoading = true;
    deadLast = Date.now();
    return api('GET', '/dead?limit=' + DEAD_LIMIT).then(function (r) {
      deadLoading = false;
      if (!r.ok) {
        setMsg($('dead-msg'), r.error, 'error');
      } else {
        renderDead(r.data && Array.isArray(r.data.tasks) ? r.data.tasks : []);
      }
      if (deadAgain) { deadAgain = false; loadDead(); }
    });
  }

  function renderDead(tasks) {
    var tbody = $('dead').tBodies[0];
    var rows = document.createDocumentFragment();
    tasks.slice(0, DEAD_LIMIT).forEach(function (t) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-dead', String(t.id));
      tr.appendChild(el('td')).appendChild(taskLink(t.id));
      tr.appendChild(el('td', '', t.type || ''));
      var tries = tr.appendChild(el('td', 'num', num(t.failures) + ' / ' + num(t.max_attempts)));
      tries.title = 'failed attempts of those allowed; dispatched ' + num(t.attempt) + ' times in all';
      var err = String(t.error || '');
      var td = tr.appendChild(el('td', 'err', err.length > 200 ? err.slice(0, 197) + '…' : err));
      td.title = err;
      tr.appendChild(el('td', '', fmtTime(num(t.finished_us)).slice(5)));
      var b = tr.appendChild(el('td')).appendChild(el('button', 'small', 'Requeue'));
      b.type = 'button';
      b.dataset.requeue = String(t.id);
      rows.appendChild(tr);
    });
    tbody.replaceChildren(rows);
    if (!tasks.length) {
      var tr = tbody.appendChild(document.createElement('tr'));
      var td = tr.appendChild(el('td', 'muted', 'No dead letters.'));
      td.colSpan = 6;
    }
  }

  function requeue(id, button) {
    button.disabled = true;
    api('POST', '/dead/' + encodeURIComponent(id) + '/requeue').then(function (r) {
      if (r.ok) {
        setMsg($('dead-msg'), 'Task ' + id + ' requeued.', 'ok');
        loadDead();
      } else {
        button.disabled = false;
        setMsg($('dead-msg'), r.error, 'error');
      }
    });
  }

  // ---------------------------------------------------------------- task lookup

  function lookup(id) {
    var out = $('lookup-result');
    id = String(id).trim();
    if (!/^[0-9]+$/.test(id)) {
      out.replaceChildren(el('p', 'msg error', 'A task id is a number.'));
      return Promise.resolve();
    }
    out.replaceChildren(el('p', 'msg muted', 'Loading task ' + id + '…'));
    return api('GET', '/tasks/' + id).then(function (r) {
      if ($('lookup-id').value.trim() !== id) return;   // a newer lookup is under way
      if (!r.ok) {
        out.replaceChildren(el('p', 'msg error', r.error));
        return;
      }
      out.replaceChildren(renderTask(r.data || {}));
    });
  }

  function renderTask(t) {
    var frag = document.createDocumentFragment();
    var dl = frag.appendChild(el('dl', 'fields'));
    function field(name, value, cls) {
      if (value === undefined || value === null || value === '') return;
      dl.appendChild(el('dt', '', name));
      var dd = dl.appendChild(el('dd', cls || ''));
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
    }
    field('id', t.id);
    field('type', t.type);
    field('state', badge(t.state || '?'));
    field('priority', t.priority);
    field('key', t.key);
    field('attempt', t.attempt);
    if (t.max_attempts !== undefined) field('failures', num(t.failures) + ' of ' + t.max_attempts + ' allowed');
    field('worker', t.worker);
    field('timeout', t.timeout_ms !== undefined ? t.timeout_ms + ' ms' : undefined);
    if (t.job_id !== undefined) field('job', t.job_id + (t.reduce ? ' (reduce)' : t.part !== undefined ? ' part ' + t.part : ''));
    field('idempotency key', t.idempotency_key);
    field('requires', Array.isArray(t.requirements) ? t.requirements.join(', ') : t.requirements);
    if (t.run_after_us) field('run after', fmtTime(t.run_after_us));
    if (t.deadline_us) field('deadline', fmtTime(t.deadline_us));
    field('error', t.error, 'pre');
    if (t.result !== undefined) field('result', clip(t.result), 'pre');
    if (t.result_base64 !== undefined) field('result (base64)', clip(t.result_base64), 'pre');
    if (t.payload !== undefined) field('payload', clip(t.payload), 'pre');

    frag.appendChild(el('h3', '', 'history'));
    var history = Array.isArray(t.history) ? t.history : synthHistory(t);
    var ol = frag.appendChild(el('ol', 'timeline'));
    ol.id = 'lookup-timeline';
    var prevAt = 0;
    history.forEach(function (h) {
      var ev = String(h.event || '?');
      var li = ol.appendChild(el('li', ev.replace(/[^a-z]/g, '')));
      li.setAttribute('data-event', ev);
      var label = ev;
      if (ev === 'dispatched' && h.worker) label = 'dispatched to worker ' + h.worker;
      li.appendChild(el('span', 'ev', label));
      var at = num(h.at_us);
      li.appendChild(el('span', 'at', fmtTime(at)));
      if (prevAt && at) li.appendChild(el('span', 'gap', '+' + fmtDur(at - prevAt)));
      if (at) prevAt = at;
      if (ev === 'dispatched' && h.attempt !== undefined) li.appendChild(el('span', 'detail', 'attempt ' + h.attempt));
      if (h.error) li.appendChild(el('span', 'detail err', h.error));
    });
    if (history.length >= 2) {
      var first = num(history[0].at_us), last = num(history[history.length - 1].at_us);
      if (first && last) {
        frag.appendChild(el('p', 'muted', history[0].event + ' → ' + history[history.length - 1].event + ': ' + fmtDur(last - first)));
      }
    }
    return frag;
  }

  function clip(v) {
    v = typeof v === 'string' ? v : JSON.stringify(v);
    return v.length > 4000 ? v.slice(0, 4000) + '… (' + v.length + ' characters)' : v;
  }

  function synthHistory(t) {
    var h = [];
    if (t.submitted_us) h.push({ event: 'submitted', at_us: t.submitted_us });
    if (t.dispatched_us) h.push({ event: 'dispatched', at_us: t.dispatched_us, worker: t.worker, attempt: t.attempt });
    if (t.finished_us) h.push({ event: t.state, at_us: t.finished_us, error: t.error });
    return h;
  }

  // ---------------------------------------------------------------- submit

  function submitTasks() {
    var out = $('submit-result');
    var type = $('submit-type').value.trim();
    if (!type) { setMsg(out, 'A task needs a type.', 'error'); return Promise.resolve(); }
    var spec = { type: type, payload: $('submit-payload').value };
    var key = $('submit-key').value.trim();
    if (key) spec.key = key;
    var pr = $('submit-priority').value.trim();
    if (pr !== '') {
      if (!/^[0-9]$/.test(pr)) { setMsg(out, 'Priority is 0 (highest) to 9 (lowest).', 'error'); return Promise.resolve(); }
      spec.priority = +pr;
    }
    var count = parseInt($('submit-count').value, 10);
    if (!(count >= 1 && count <= 10000)) { setMsg(out, 'Count is 1 to 10000.', 'error'); return Promise.resolve(); }
    var body = spec;
    if (count > 1) {
      body = { tasks: [] };
      for (var i = 0; i < count; i++) body.tasks.push(spec);
    }
    var button = $('submit-form').querySelector('button[type=submit]');
    button.disabled = true;
    setMsg(out, 'Submitting…', '');
    return api('POST', '/tasks', body).then(function (r) {
      button.disabled = false;
      if (!r.ok) { setMsg(out, r.error, 'error'); return; }
      var d = r.data || {};
      var ids = Array.isArray(d.ids) ? d.ids : (d.id !== undefined ? [d.id] : []);
      setMsg(out, '', 'ok');
      if (ids.length === 1) {
        out.appendChild(document.createTextNode('Submitted task '));
        out.appendChild(taskLink(ids[0]));
      } else {
        out.appendChild(document.createTextNode('Submitted ' + ids.length + ' tasks: ids '));
        var shown = ids.length > 10 ? ids.slice(0, 5) : ids;
        shown.forEach(function (id, i) {
          if (i) out.appendChild(document.createTextNode(', '));
          out.appendChild(taskLink(id));
        });
        if (ids.length > 10) {
          out.appendChild(document.createTextNode(' … '));
          out.appendChild(taskLink(ids[ids.length - 1]));
        }
      }
    });
  }

  // ---------------------------------------------------------------- charts

  var colors = null;

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function niceCeil(v) {
    if (!(v > 0)) return 0.25;
    var e = Math.pow(10, Math.floor(Math.log10(v)));
    var f = v / e;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * e;
  }

  function drawCharts() {
    if (!colors) {
      colors = {
        sub: cssVar('--sub'), ok: cssVar('--ok'), bad: cssVar('--bad'), p50: cssVar('--p50'),
        p90: cssVar('--p90'), p99: cssVar('--p99'), line: cssVar('--line'), muted: cssVar('--muted')
      };
    }
    drawChart($('chart-rate'), [['sub', colors.sub], ['ok', colors.ok], ['bad', colors.bad]], fmtShort);
    drawChart($('chart-latency'), [['p50', colors.p50], ['p90', colors.p90], ['p99', colors.p99]], fmtMs);
  }

  function fmtMs(v) {
    return v >= 1000 ? fmtShort(v / 1000) + ' s' : fmtShort(v) + ' ms';
  }

  function drawChart(canvas, series, fmtAxis) {
    var dpr = window.devicePixelRatio || 1;
    var w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    var pw = Math.round(w * dpr), ph = Math.round(h * dpr);
    if (canvas.width !== pw || canvas.height !== ph) { canvas.width = pw; canvas.height = ph; }
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);

    var L = 52, R = 8, T = 8, B = 20;
    var cw = w - L - R, ch = h - T - B;
    var tEnd = samples.length ? samples[samples.length - 1].t : Date.now() * 1000;
    var span = samples.length ? tEnd - samples[0].t : 0;
    var win = Math.min(WINDOW_US, Math.max(MIN_WINDOW_US, Math.ceil(span / 30e6) * 30e6));
    var tStart = tEnd - win;
    var max = 0;
    samples.forEach(function (s) {
      if (s.t < tStart) return;
      series.forEach(function (sr) { var v = s[sr[0]]; if (v !== null && v > max) max = v; });
    });
    var top = 4 * niceCeil(max * 1.05 / 4);   // four grid steps of a round size

    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    ctx.strokeStyle = colors.line;
    ctx.fillStyle = colors.muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var i = 0; i <= 4; i++) {
      var y = T + ch - (ch * i) / 4;
      ctx.beginPath();
      ctx.moveTo(L, Math.round(y) + 0.5);
      ctx.lineTo(L + cw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(fmtAxis((top * i) / 4), L - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    var winS = win / 1e6, step = winS <= 30 ? 10 : winS <= 60 ? 15 : 30;
    for (var sec = winS; sec >= 0; sec -= step) {
      var x = L + cw * (1 - sec / winS);
      ctx.fillText(sec ? '-' + sec + 's' : 'now', Math.min(Math.max(x, L + 12), L + cw - 12), T + ch + 5);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(L, T, cw, ch);
    ctx.clip();
    ctx.lineWidth = 1.6;
    ctx.lineJoin = 'round';
    series.forEach(function (sr) {
      ctx.strokeStyle = sr[1];
      ctx.beginPath();
      var pen = false;
      for (var j = 0; j < samples.length; j++) {
        var s = samples[j];
        var v = s[sr[0]];
        if (v === null) { pen = false; continue; }
        var px = L + cw * (s.t - tStart) / win;
        var py = T + ch - ch * (v / top);
        if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        pen = true;
      }
      ctx.stroke();
    });
    ctx.restore();
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    setConn(false);
    $('lookup-form').addEventListener('submit', function (e) {
      e.preventDefault();
      lookup($('lookup-id').value);
    });
    $('submit-form').addEventListener('submit', function (e) {
      e.preventDefault();
      submitTasks();
    });
    $('dead-refresh').addEventListener('click', function () {
      setMsg($('dead-msg'), '', '');
      loadDead();
    });
    $('dead').addEventListener('click', function (e) {
      var b = e.target.closest('button[data-requeue]');
      if (b) requeue(b.dataset.requeue, b);
    });
    // Any task id link opens the task in the lookup panel.
    document.addEventListener('click', function (e) {
      var a = e.target.closest('a[data-task]');
      if (!a) return;
      e.preventDefault();
      $('lookup-id').value = a.dataset.task;
      lookup(a.dataset.task);
      $('lookup-form').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    });
    $('token-form').addEventListener('submit', function (e) {
      e.preventDefault();
      storeToken($('token-input').value.trim());
      $('token-input').value = '';
      $('token-form').hidden = true;
      setMsg($('token-msg'), '', '');
      connect();
      loadDead();
    });
    $('token-clear').addEventListener('click', function () {
      storeToken('');
      setMsg($('token-msg'), 'Stored token removed.', 'ok');
    });
    $('token-button').addEventListener('click', function () {
      var f = $('token-form');
      f.hidden = !f.hidden;
      if (!f.hidden) { setMsg($('token-msg'), token ? 'A token is stored; enter another to replace it.' : '', ''); $('token-input').focus(); }
    });
    window.addEventListener('hashchange', function () {
      if (!fragmentToken()) return;
      $('token-form').hidden = true;
      connect();
      loadDead();
    });
    window.addEventListener('resize', function () { chartsDirty = true; queueFrame(); });
    chartsDirty = true;
    queueFrame();
    connect();
    loadDead();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
