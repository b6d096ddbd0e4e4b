// Poussr's window. The same files run in the desktop app (where Tauri gives the hub's address and admin
// token) and, served by the hub, in a browser. Everything about the hub is read from its admin API.

import { Chart } from './chart.js';
import { Log, pretty } from './log.js';

const tauri = window.__TAURI__;
const $ = (id) => document.getElementById(id);

/** Sets an element's text only when it changes: an unchanged write still costs WebKit a layout and a paint. */
function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

const state = {
  base: null, // the hub's URL, e.g. http://127.0.0.1:6001
  token: null, // the admin token
  status: null, // the desktop's view of the hub: running / error, with the reason
  overview: null, // the last /admin/api/overview answer
  snippet: 'pusher_js',
  timer: null,
  pane: 'overview',
  feed: null, // the monitor feed WebSocket
  feedRetry: 1000,
  channels: [],
  clients: [],
  stale: { channels: true, clients: true },
};

const chart = new Chart(document.getElementById('chart'));
const log = new Log(document.getElementById('log-view'), document.getElementById('log-spacer'), showDetail, () => requestRender());

/** Calls a desktop command; null when running in a browser. */
async function invoke(command, args) {
  if (!tauri) return null;
  return tauri.core.invoke(command, args);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const res = await fetch(state.base + path, {
    ...options,
    headers: { Authorization: 'Bearer ' + state.token, ...(options.body ? { 'Content-Type': 'application/json' } : {}) },
  });
  const body = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error || 'HTTP ' + res.status);
  return body;
}

/** Learns where the hub is: from the desktop, or from the page's own address and ?token=. */
async function connect() {
  if (tauri) {
    const c = await invoke('connection');
    state.status = c.status;
    state.token = c.admin_token;
    state.base = c.status.base_url;
    showNotice(c.notice);
  } else {
    state.base = location.origin;
    state.token = new URLSearchParams(location.search).get('token') || sessionStorage.getItem('poussr-token');
    if (state.token) sessionStorage.setItem('poussr-token', state.token);
    state.status = { state: 'running' };
    $('tab-settings').hidden = true;
  }
}

/** The sign-in screen (browser only): shown when the token is missing or refused; nothing else is shown. */
function showSignIn(message) {
  $('signin').hidden = false;
  document.querySelector('.tabs').hidden = true;
  for (const pane of document.querySelectorAll('.pane')) pane.hidden = true;
  $('signin-result').textContent = message || '';
  setState('offline', 'Signed out');
  $('signin-token').focus();
}

function showNotice(text) {
  $('notice').hidden = !text;
  $('notice').textContent = text || '';
}

function setState(kind, text) {
  const el = $('state');
  if (el.dataset.state !== kind) el.dataset.state = kind;
  setText(el, text);
}

async function refresh() {
  if (state.status && state.status.state === 'error') {
    renderError(state.status);
    return;
  }
  if (!state.token) {
    showSignIn();
    return;
  }
  try {
    state.overview = await api('/admin/api/overview');
    renderOverview(state.overview);
    if (!state.feed) openFeed();
    if (state.stale.channels || state.pane === 'channels') await loadChannels();
    if (state.stale.clients || state.pane === 'clients') await loadClients();
  } catch (e) {
    if (e.status === 401 && !tauri) {
      sessionStorage.removeItem('poussr-token');
      state.token = null;
      showSignIn('That token was refused: ' + e.message);
      return;
    }
    setState('offline', 'Hub unreachable');
    $('running').hidden = true;
    showNotice('Cannot reach the hub at ' + state.base + ': ' + e.message);
  }
}

function renderError(status) {
  setState('error', 'Not running');
  $('running').hidden = true;
  $('start-error').hidden = false;
  $('start-error-message').textContent = status.error ? status.error.message : 'The hub is stopped.';
  const input = $('retry-port');
  if (!input.value && status.listen) input.value = suggestPort(status.listen);
}

/** The port after the one that failed, as a first suggestion. */
function suggestPort(listen) {
  const port = Number(String(listen).split(':').pop());
  return port && port < 65535 ? port + 1 : 6002;
}

function renderOverview(o) {
  setState('running', 'Running on port ' + o.port);
  $('start-error').hidden = true;
  $('running').hidden = false;
  const list = $('addresses');
  const key = o.addresses.join(' ') + ':' + o.port;
  if (list.dataset.key !== key) list.dataset.key = key;
  else return renderOverviewRest(o);
  list.replaceChildren(
    ...o.addresses.map((ip) => {
      const host = ip.includes(':') ? '[' + ip + ']' : ip;
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = host + ':' + o.port;
      li.append(code, copyButton(() => code.textContent, 'Copy address ' + code.textContent));
      return li;
    }),
  );
  renderOverviewRest(o);
}

function renderOverviewRest(o) {
  const localOnly = o.addresses.every((ip) => ip === '127.0.0.1' || ip === '::1');
  setText($('addresses-hint'), localOnly
    ? 'Poussr listens on this machine only. To serve the network, listen on 0.0.0.0 (Settings).'
    : 'Every address of this machine that other machines on the network can reach.');
  setText($('app-id'), o.app.id);
  setText($('app-key'), o.app.key);
  const secret = $('app-secret');
  secret.dataset.secret = o.app.secret;
  if ($('reveal-secret').getAttribute('aria-pressed') === 'true') secret.textContent = o.app.secret;
  setText($('stat-connections'), o.stats.connections);
  setText($('stat-channels'), o.stats.channels);
  setText($('stat-events'), o.stats.events_published);
  setText($('stat-deliveries'), o.stats.deliveries);
  const hooks = o.stats.webhooks;
  const hookLine = $('webhook-stats');
  if (hookLine.hidden !== !hooks.targets) hookLine.hidden = !hooks.targets;
  if (hooks.targets) {
    let text = 'Webhooks: ' + hooks.sent.toLocaleString() + ' sent · ' + hooks.queued.toLocaleString() + ' waiting';
    if (hooks.failed) text += ' · ' + hooks.failed.toLocaleString() + ' given up after retries';
    if (hooks.dropped) text += ' · ' + hooks.dropped.toLocaleString() + ' dropped (the target was too slow or down)';
    setText(hookLine, text);
  }
  renderCluster(o.cluster, o.stats.connections);
  setText($('snippet'), o.snippets[state.snippet]);
  setText($('clients-snippet'), o.snippets.pusher_js);
  setText($('log-snippet'), o.snippets.curl);
}

/** The cluster card: the Redis link, this hub and the others with their clients (hidden for a hub alone). */
function renderCluster(c, here) {
  const card = $('cluster-card');
  if (card.hidden !== !c) card.hidden = !c;
  if (!c) return;
  const link = $('cluster-link');
  link.className = 'cluster-link ' + (c.link === 'up' ? 'ok' : 'bad');
  setText(link, c.link === 'up'
    ? 'Linked through Redis (prefix ' + c.prefix + ')'
    : 'Redis link down' + (c.error ? ': ' + c.error : '') + ' — this hub keeps serving its own clients');
  const rows = [{ name: 'This hub', id: c.node, connections: here, self: true }, ...c.others];
  $('cluster-nodes').replaceChildren(
    ...rows.map((n) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = n.self ? 'This hub' : n.name || n.id;
      name.title = 'node ' + n.id;
      const count = document.createElement('span');
      count.className = 'muted';
      count.textContent = n.connections.toLocaleString() + (n.connections === 1 ? ' client' : ' clients');
      li.append(name, ' ', count);
      return li;
    }),
  );
  const total = rows.reduce((sum, n) => sum + n.connections, 0);
  setText($('cluster-note'), rows.length + ' hubs, ' + total.toLocaleString() + ' clients in all. Sent to the others: '
    + c.published.toLocaleString() + ' · received: ' + c.received.toLocaleString()
    + (c.dropped ? ' · dropped while the link was down: ' + c.dropped.toLocaleString() : ''));
}

// ---- The monitor feed ----

function openFeed() {
  const url = state.base.replace(/^http/, 'ws') + '/admin/api/feed?token=' + encodeURIComponent(state.token);
  const ws = new WebSocket(url);
  state.feed = ws;
  ws.onopen = () => (state.feedRetry = 1000);
  ws.onmessage = (m) => {
    const batch = JSON.parse(m.data);
    chart.add(batch.at_ms, batch.stats);
    log.add(batch.events, batch.skipped);
    for (const e of batch.events) {
      if (e.type !== 'event_published') state.stale.clients = true;
      if (['subscribed', 'unsubscribed', 'connection_closed', 'event_published', 'member_added', 'member_removed'].includes(e.type)) {
        state.stale.channels = true;
      }
    }
    setText($('count-clients'), '(' + batch.stats.connections + ')');
    setText($('count-channels'), '(' + batch.stats.channels + ')');
    if (batch.events.length || batch.skipped) requestRender();
  };
  ws.onclose = () => {
    state.feed = null;
    // Reconnect with backoff: the hub may be restarting on a new port (the desktop tells the new base URL).
    setTimeout(async () => {
      if (tauri) await connect().catch(() => {});
      if (state.token && document.visibilityState === 'visible') openFeed();
    }, state.feedRetry);
    state.feedRetry = Math.min(state.feedRetry * 2, 15000);
  };
}

let feedDirty = false;
let framePending = false;
let chartDrawn = 0;

/** Asks for one animation frame; nothing runs per frame while nothing changes (an idle window costs ~0 CPU). */
function requestRender() {
  feedDirty = true;
  if (!framePending) {
    framePending = true;
    requestAnimationFrame(frame);
  }
}

/** One animation frame: draw what changed. Data arrives ~10 times a second; drawing is at most once a frame. */
function frame(now) {
  framePending = false;
  if (!feedDirty) return;
  feedDirty = false;
  log.render();
  setText($('log-count'), log.list().length.toLocaleString() + ' shown of ' + log.total.toLocaleString() + ' received');
  setText($('log-skipped'), log.skipped ? '· ' + log.skipped.toLocaleString() + ' skipped (the window fell behind)' : '');
  if ($('log-empty').hidden !== log.total > 0) $('log-empty').hidden = log.total > 0;
  // The chart moves once a second at most.
  if (now - chartDrawn > 1000) {
    chartDrawn = now;
    setText($('rate-now'), '· now ' + Math.round(chart.rateNow()).toLocaleString() + ' events/s');
    chart.draw();
  }
}

/** Panes built from snapshots are refreshed at most once a second, and only when visible and changed. */
function refreshPanes() {
  if (document.visibilityState !== 'visible') return;
  if (state.pane === 'channels' && state.stale.channels) loadChannels();
  if (state.pane === 'clients' && state.stale.clients) loadClients();
  if (state.pane === 'overview') requestRender();
}

// ---- Channels and clients ----

function ago(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  return Math.floor(s / 3600) + ' h ago';
}

function duration(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

async function loadChannels() {
  state.stale.channels = false;
  try {
    state.channels = (await api('/admin/api/channels')).channels;
  } catch {
    return;
  }
  $('channel-suggestions').replaceChildren(...state.channels.map((c) => Object.assign(document.createElement('option'), { value: c.name })));
  $('channels-empty').hidden = state.channels.length > 0;
  $('channels-table').hidden = state.channels.length === 0;
  $('channels-body').replaceChildren(
    ...state.channels.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.channel = c.name;
      const name = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'linkish';
      b.textContent = c.name;
      b.title = 'Show the events of ' + c.name + ' in the live log';
      b.addEventListener('click', () => {
        $('filter-channel').value = c.name;
        applyFilter();
        showPane('log');
      });
      name.append(b);
      const kind = document.createElement('td');
      kind.append(Object.assign(document.createElement('span'), { className: 'kind', textContent: c.kind }));
      const members = cell(c.kind === 'presence' ? String(c.user_count ?? 0) : '—', 'num members');
      if (c.members && c.members.length) {
        const shown = c.members.slice(0, 8).join(', ') + (c.members.length > 8 ? ', …' : '');
        members.append(Object.assign(document.createElement('span'), { className: 'member-ids', textContent: shown }));
        members.title = c.members.join(', ');
      }
      tr.append(name, kind, cell(c.subscription_count, 'num subs'), members,
        cell(c.events, 'num events'), cell(c.deliveries, 'num'), cell(ago(c.last_event_ms)));
      return tr;
    }),
  );
}

async function loadClients() {
  state.stale.clients = false;
  try {
    state.clients = (await api('/admin/api/clients')).clients;
  } catch {
    return;
  }
  $('clients-empty').hidden = state.clients.length > 0;
  $('clients-table').hidden = state.clients.length === 0;
  $('clients-body').replaceChildren(
    ...state.clients.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.socketId = c.socket_id;
      const ua = cell(c.user_agent || '—', 'ua');
      ua.title = c.user_agent || '';
      const action = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'small';
      b.textContent = 'Disconnect';
      b.setAttribute('aria-label', 'Disconnect ' + c.socket_id);
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          await api('/admin/api/clients/' + encodeURIComponent(c.socket_id), { method: 'DELETE' });
          state.stale.clients = true;
        } catch (e) {
          showNotice('Disconnect failed: ' + e.message);
          b.disabled = false;
        }
      });
      action.append(b);
      tr.append(cell(c.socket_id), cell(c.remote), ua, cell(c.protocol === 'pusher' ? 'Pusher' : 'Poussr v1'),
        cell(c.user_id || '—', 'user'), cell(c.channels.join(', ') || '—', 'channels'), cell(duration(c.connected_at_ms)),
        cell(c.messages_in, 'num'), cell(c.messages_out, 'num'), action);
      return tr;
    }),
  );
}

// ---- Live log ----

function showDetail(e) {
  $('log-detail').hidden = !e;
  if (!e) return;
  $('detail-title').textContent = e.event + ' on ' + e.channel + ' — ' + new Date(e.at_ms).toLocaleString() + ', delivered to ' + e.delivered;
  $('detail-body').textContent = pretty(e.data);
}

function applyFilter() {
  log.setFilter({ channel: $('filter-channel').value.trim(), event: $('filter-event').value.trim(), text: $('filter-text').value.trim() });
  requestRender();
}

async function exportLog() {
  const text = log.jsonl();
  const name = 'poussr-log-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jsonl';
  if (tauri) {
    try {
      const path = await invoke('save_export', { name, text });
      showNotice('Exported ' + log.list().length + ' events to ' + path);
    } catch (e) {
      showNotice('Export failed: ' + (e.message || e));
    }
    return;
  }
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ---- Publish ----

function checkData() {
  const status = $('pub-data-status');
  const text = $('pub-data').value;
  try {
    JSON.parse(text);
    status.className = 'hint ok';
    status.textContent = 'Valid JSON.';
  } catch (e) {
    status.className = 'hint warn';
    status.textContent = 'Not JSON (' + e.message + '). It will be sent as a raw string, which Poussr v1 clients accept; Pusher clients get the string.';
  }
}

async function publish(e) {
  e.preventDefault();
  const result = $('pub-result');
  result.className = 'result';
  result.textContent = 'Publishing…';
  try {
    const r = await api('/admin/api/publish', {
      method: 'POST',
      body: JSON.stringify({ channel: $('pub-channel').value.trim(), event: $('pub-event').value.trim(), data: $('pub-data').value }),
    });
    result.className = 'result ok';
    result.textContent = 'Published: delivered to ' + r.delivered + (r.delivered === 1 ? ' subscriber.' : ' subscribers.');
  } catch (err) {
    result.className = 'result bad';
    result.textContent = 'Not published: ' + err.message;
  }
}

async function copy(text, button) {
  try {
    if (tauri) await invoke('copy_text', { text });
    else await navigator.clipboard.writeText(text);
    if (button) {
      const label = button.textContent;
      button.textContent = 'Copied';
      button.classList.add('copied');
      setTimeout(() => {
        button.textContent = label;
        button.classList.remove('copied');
      }, 1200);
    }
  } catch (e) {
    showNotice('Copy failed: ' + (e.message || e));
  }
}

function copyButton(text, label) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'copy';
  b.textContent = 'Copy';
  b.setAttribute('aria-label', label);
  b.addEventListener('click', () => copy(text(), b));
  return b;
}

function showPane(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    if (tab.dataset.pane === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  for (const pane of document.querySelectorAll('.pane')) pane.hidden = pane.id !== 'pane-' + name;
  state.pane = name;
  if (name === 'settings') loadSettings();
  if (name === 'channels') loadChannels();
  if (name === 'clients') loadClients();
  if (name === 'log') log.reset();
  requestRender();
}

function selectSnippet(name) {
  state.snippet = name;
  for (const b of document.querySelectorAll('.snippet-tabs [role="tab"]')) {
    const on = b.dataset.snippet === name;
    b.setAttribute('aria-selected', String(on));
    b.tabIndex = on ? 0 : -1;
    if (on) $('snippet-panel').setAttribute('aria-labelledby', b.id);
  }
  if (state.overview) $('snippet').textContent = state.overview.snippets[name];
}

// ---- Settings (desktop only) ----

async function loadSettings() {
  if (!tauri) {
    $('settings-result').textContent = 'Settings are changed in the desktop app or in the hub\'s config file.';
    $('settings-form').querySelectorAll('input, button').forEach((el) => (el.disabled = true));
    return;
  }
  const view = await invoke('get_settings');
  fillSettings(view.effective);
  $('settings-file').textContent = view.file;
  const options = ['0.0.0.0', '127.0.0.1', ...view.machine_addresses.filter((a) => a !== '127.0.0.1')];
  $('machine-addresses').replaceChildren(
    ...options.map((a) => Object.assign(document.createElement('option'), { value: a })),
  );
  const o = view.overrides;
  const note = $('override-note');
  note.hidden = !(o.bind || o.port);
  note.textContent =
    'For this launch, ' +
    [o.bind && 'POUSSR_BIND=' + o.bind, o.port && 'POUSSR_PORT=' + o.port].filter(Boolean).join(' and ') +
    ' override the saved settings (' + view.saved.bind + ':' + view.saved.port + '). Applying saves what is in the form.';
  state.defaults = view.defaults;
}

function fillSettings(s) {
  $('bind').value = s.bind;
  $('port').value = s.port;
  $('allow-anonymous-publish').checked = s.allow_anonymous_publish;
  $('allow-remote-dashboard').checked = s.allow_remote_dashboard;
  const app = s.app || { client_events: true, webhooks: [] };
  $('client-events').checked = app.client_events !== false;
  $('allowed-origins').value = (s.allowed_origins || []).join(' ');
  $('adapter').value = s.adapter || 'local';
  $('redis-url').value = s.redis_url || '';
  $('redis-prefix').value = s.redis_prefix || '';
  showRedisFields();
  const hook = (app.webhooks || [])[0];
  $('webhook-url').value = hook ? hook.url : '';
  const kinds = hook && hook.events && hook.events.length ? hook.events : null;
  for (const box of document.querySelectorAll('input[name="webhook_event"]')) box.checked = !kinds || kinds.includes(box.value);
}

async function applySettings(input, resultEl) {
  resultEl.className = 'result';
  resultEl.textContent = 'Applying…';
  try {
    const c = await invoke('apply_settings', { input });
    state.status = c.status;
    state.base = c.status.base_url;
    showNotice(c.notice);
    resultEl.className = 'result ok';
    resultEl.textContent = 'Applied: Poussr now listens on ' + c.status.listen + '.';
    await refresh();
    return true;
  } catch (e) {
    resultEl.className = 'result bad';
    resultEl.textContent = (e && e.message) || String(e);
    return false;
  }
}

/** The Redis fields matter only for a hub in a cluster. */
function showRedisFields() {
  const redis = $('adapter').value === 'redis';
  for (const f of document.querySelectorAll('.redis-only')) f.hidden = !redis;
}

function formInput() {
  return {
    bind: $('bind').value,
    port: Number($('port').value),
    allow_anonymous_publish: $('allow-anonymous-publish').checked,
    allow_remote_dashboard: $('allow-remote-dashboard').checked,
    client_events: $('client-events').checked,
    allowed_origins: $('allowed-origins').value.trim(),
    adapter: $('adapter').value,
    redis_url: $('redis-url').value.trim(),
    redis_prefix: $('redis-prefix').value.trim(),
    webhook_url: $('webhook-url').value.trim(),
    webhook_events: [...document.querySelectorAll('input[name="webhook_event"]:checked')].map((b) => b.value),
  };
}

// ---- Wiring ----

function wire() {
  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => showPane(tab.dataset.pane));
  $('adapter').addEventListener('change', showRedisFields);
  for (const b of document.querySelectorAll('.snippet-tabs [role="tab"]')) {
    b.addEventListener('click', () => selectSnippet(b.dataset.snippet));
    b.addEventListener('keydown', (e) => {
      const tabs = [...document.querySelectorAll('.snippet-tabs [role="tab"]')];
      const i = tabs.indexOf(b);
      const next = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
      if (next) {
        next.focus();
        selectSnippet(next.dataset.snippet);
      }
    });
  }
  for (const b of document.querySelectorAll('[data-copy-from]')) {
    b.addEventListener('click', () => copy($(b.dataset.copyFrom).textContent, b));
  }
  $('copy-secret').addEventListener('click', (e) => copy($('app-secret').dataset.secret, e.currentTarget));
  $('copy-snippet').addEventListener('click', (e) => copy($('snippet').textContent, e.currentTarget));
  $('reveal-secret').addEventListener('click', (e) => {
    const b = e.currentTarget;
    const shown = b.getAttribute('aria-pressed') !== 'true';
    b.setAttribute('aria-pressed', String(shown));
    b.textContent = shown ? 'Hide' : 'Reveal';
    $('app-secret').textContent = shown ? $('app-secret').dataset.secret : '••••••••••••';
  });
  $('settings-form').addEventListener('submit', (e) => {
    e.preventDefault();
    applySettings(formInput(), $('settings-result'));
  });
  $('reset-settings').addEventListener('click', () => state.defaults && fillSettings(state.defaults));
  $('open-folder').addEventListener('click', () =>
    invoke('open_config_folder').catch((e) => showNotice(e.message || String(e))),
  );
  $('port-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const view = await invoke('get_settings');
    const input = {
      bind: view.effective.bind,
      port: Number($('retry-port').value),
      allow_anonymous_publish: view.effective.allow_anonymous_publish,
      allow_remote_dashboard: view.effective.allow_remote_dashboard,
    };
    await applySettings(input, $('port-form-result'));
  });
  document.addEventListener('visibilitychange', schedule);
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('signin-token').value.trim();
    sessionStorage.setItem('poussr-token', state.token);
    $('signin').hidden = true;
    document.querySelector('.tabs').hidden = false;
    showPane('overview');
    refresh();
  });
  $('log-pause').addEventListener('click', (e) => {
    const b = e.currentTarget;
    const paused = b.getAttribute('aria-pressed') !== 'true';
    b.setAttribute('aria-pressed', String(paused));
    b.textContent = paused ? 'Resume' : 'Pause';
    $('log-paused').hidden = !paused;
    log.setPaused(paused);
    requestRender();
  });
  $('log-clear').addEventListener('click', () => {
    log.clear();
    requestRender();
  });
  // Re-filtering thousands of kept events takes a moment: the typed key shows at once, the filter follows
  // when typing pauses.
  let filterTimer = null;
  for (const id of ['filter-channel', 'filter-event', 'filter-text']) {
    $(id).addEventListener('input', () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(applyFilter, 150);
    });
  }
  $('log-export').addEventListener('click', exportLog);
  $('detail-close').addEventListener('click', () => log.select(null));
  $('pub-data').addEventListener('input', checkData);
  $('publish-form').addEventListener('submit', publish);
  const max = Number(localStorage.getItem('poussr-log-max'));
  if (max >= 100) log.max = max;
  $('log-max').value = log.max;
  $('log-max').addEventListener('change', (e) => {
    const n = Math.round(Number(e.currentTarget.value));
    if (n >= 100) {
      log.max = n;
      localStorage.setItem('poussr-log-max', String(n));
      log.add([], 0);
      requestRender();
    }
  });
  checkData();
  setInterval(refreshPanes, 1000);
  requestRender();
}

/** Refreshes every 2 s while the window is visible, and not at all while it is hidden. */
function schedule() {
  clearInterval(state.timer);
  state.timer = null;
  if (document.visibilityState === 'visible') {
    refresh();
    state.timer = setInterval(refresh, 2000);
  }
}

wire();
connect()
  .then(schedule)
  .catch((e) => {
    setState('error', 'Error');
    showNotice(String((e && e.message) || e));
  });
