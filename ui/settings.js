// The Settings pane (desktop only): the form over the app's saved settings, applied through the desktop,
// which restarts the hub on what was applied. In a browser the form is shown disabled.

import { api, conn, invoke, tauri } from './api.js';
import { $, showNotice } from './dom.js';
import { onShow } from './tabs.js';

let defaults = null; // the settings "Reset to defaults" puts in the form
let refresh = async () => {}; // reads the hub again once settings are applied

async function loadSettings() {
  loadHistory();
  if (!tauri) {
    $('settings-result').textContent = 'Settings are changed in the desktop app or in the hub\'s config file.';
    $('settings-form').querySelectorAll('input, button').forEach((el) => (el.disabled = true));
    return;
  }
  const view = await invoke('get_settings');
  fillSettings(view.effective);
  fillStartAtLogin(view.start_at_login);
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
  defaults = view.defaults;
}

/** Start at login is the OS's own entry, read when the pane opens; its place is said under the box. */
function fillStartAtLogin(login) {
  $('start-at-login').checked = login.enabled;
  $('start-at-login').dataset.was = String(login.enabled);
  $('start-at-login-hint').textContent = login.error
    ? 'Cannot read the login entry: ' + login.error
    : (login.enabled ? 'Entry: ' : 'Would be written to: ') + login.location;
}

function fillSettings(s) {
  $('bind').value = s.bind;
  $('port').value = s.port;
  $('allow-anonymous-publish').checked = s.allow_anonymous_publish;
  $('allow-remote-dashboard').checked = s.allow_remote_dashboard;
  $('allow-check-publish').checked = s.allow_check_publish;
  $('mdns').checked = s.mdns !== false;
  const app = s.app || { client_events: true, webhooks: [] };
  $('client-events').checked = app.client_events !== false;
  $('allowed-origins').value = (s.allowed_origins || []).join(' ');
  $('adapter').value = s.adapter || 'local';
  $('redis-url').value = s.redis_url || '';
  $('redis-prefix').value = s.redis_prefix || '';
  showRedisFields();
  const hook = (app.webhooks || [])[0];
  $('webhook-url').value = hook ? hook.url : '';
  const tls = s.tls || {};
  $('tls-cert').value = tls.cert || '';
  $('tls-key').value = tls.key || '';
  $('tls-ca').value = tls.ca || '';
  const kinds = hook && hook.events && hook.events.length ? hook.events : null;
  for (const box of document.querySelectorAll('input[name="webhook_event"]')) box.checked = !kinds || kinds.includes(box.value);
}

/** Applies settings through the desktop and says how it went in resultEl; true when they were applied. */
export async function applySettings(input, resultEl) {
  resultEl.className = 'result';
  resultEl.textContent = 'Applying…';
  try {
    const c = await invoke('apply_settings', { input });
    conn.status = c.status;
    conn.base = c.status.base_url;
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
    allow_check_publish: $('allow-check-publish').checked,
    mdns: $('mdns').checked,
    client_events: $('client-events').checked,
    allowed_origins: $('allowed-origins').value.trim(),
    adapter: $('adapter').value,
    redis_url: $('redis-url').value.trim(),
    redis_prefix: $('redis-prefix').value.trim(),
    webhook_url: $('webhook-url').value.trim(),
    webhook_events: [...document.querySelectorAll('input[name="webhook_event"]:checked')].map((b) => b.value),
    tls_cert: $('tls-cert').value.trim(),
    tls_key: $('tls-key').value.trim(),
    tls_ca: $('tls-ca').value.trim(),
    // Sent only when changed: the entry belongs to the OS, and may have been changed there meanwhile.
    start_at_login: $('start-at-login').checked === ($('start-at-login').dataset.was === 'true')
      ? undefined : $('start-at-login').checked,
  };
}

/** *Create a certificate*: the local CA (made once, then kept) signs a certificate for this machine. */
async function createCertificate() {
  const result = $('certificate-result');
  result.className = 'result';
  result.textContent = 'Creating…';
  try {
    const c = await invoke('create_certificate');
    conn.status = c.status;
    conn.base = c.status.base_url;
    await refresh();
    const view = await invoke('get_settings');
    fillSettings(view.effective);
    const t = (await api('/admin/api/overview')).tls;
    const until = (unix) => new Date(unix * 1000).toLocaleDateString();
    result.className = 'result ok';
    result.textContent = 'Poussr now serves https:// and wss://. Certificate for ' + t.certificate.names.join(', ') +
      ', valid until ' + until(t.certificate.not_after) + '. Install the CA on the devices (Overview); its SHA-256 is ' +
      t.ca.sha256 + '.';
  } catch (e) {
    result.className = 'result bad';
    result.textContent = (e && e.message) || String(e);
  }
}

async function pickFile(button) {
  const path = await invoke('pick_file', { title: button.dataset.title }).catch((e) => {
    showNotice(e.message || String(e));
    return null;
  });
  if (path) $(button.dataset.pick).value = path;
}

/** `options.refresh` reads the hub again; it runs after settings are applied. */
export function initSettings(options) {
  refresh = options.refresh;
  onShow('settings', loadSettings);
  $('adapter').addEventListener('change', showRedisFields);
  $('settings-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await applySettings(formInput(), $('settings-result'))) fillStartAtLogin((await invoke('get_settings')).start_at_login);
  });
  $('reset-settings').addEventListener('click', () => defaults && fillSettings(defaults));
  $('create-certificate').addEventListener('click', createCertificate);
  for (const b of document.querySelectorAll('button.pick')) b.addEventListener('click', () => pickFile(b));
  $('clear-history').addEventListener('click', clearHistory);
  $('open-folder').addEventListener('click', () =>
    invoke('open_config_folder').catch((e) => showNotice(e.message || String(e))),
  );
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}

/** The History card: size on disk, counts, and Clear history (through the admin API, so also in a browser). */
export async function loadHistory() {
  let h;
  try {
    h = (await api('/admin/api/history')).history;
  } catch (e) {
    $('history-summary').textContent = 'The history could not be read: ' + (e.message || e);
    return;
  }
  const on = h.state === 'on';
  const n = (count, one, many) => count.toLocaleString() + ' ' + (count === 1 ? one : many);
  $('history-summary').textContent = on
    ? bytes(h.bytes_on_disk) + ' on disk · ' + n(h.events, 'event', 'events') + ' kept in ' + n(h.channels, 'channel', 'channels') +
      ' · ' + h.evicted.toLocaleString() + ' evicted since start' + (h.write_errors ? ' · ' + n(h.write_errors, 'failed write', 'failed writes') : '')
    : h.state === 'unavailable'
      ? 'No history is kept: the store could not be used.'
      : 'No history is kept.';
  const notice = h.error || h.notice || '';
  $('history-notice').hidden = !notice;
  $('history-notice').textContent = notice;
  $('history-path').textContent = h.path || '';
  $('clear-history').disabled = !on;
}

let armed = null; // the timer of a first click on Clear history, waiting for the second

async function clearHistory() {
  const button = $('clear-history');
  const result = $('history-result');
  if (!armed) {
    button.textContent = 'Click again to delete every kept event';
    armed = setTimeout(() => {
      armed = null;
      button.textContent = 'Clear history';
    }, 5000);
    return;
  }
  clearTimeout(armed);
  armed = null;
  button.textContent = 'Clear history';
  button.disabled = true;
  result.className = 'result';
  result.textContent = 'Clearing…';
  try {
    await api('/admin/api/history/clear', { method: 'POST' });
    result.textContent = 'Cleared. Clients that resume from before are told their events are gone.';
  } catch (e) {
    result.className = 'result error';
    result.textContent = 'Not cleared: ' + (e.message || e);
  }
  await loadHistory();
}
