// The Overview pane: whether the hub runs (or why not, with a port to retry on), the addresses clients use,
// the app credentials, the live totals and chart, the cluster card and the client snippets.

import { invoke, tauri } from './api.js';
import { Chart } from './chart.js';
import { $, setText, setState, showNotice } from './dom.js';
import { onBatch, onFrame } from './feed.js';
import { applySettings } from './settings.js';
import { markSelected, tablist } from './tabs.js';

const chart = new Chart($('chart'));
let overview = null; // the last /admin/api/overview answer
let snippet = 'pusher_js';
let chartDrawn = 0;

export function renderError(status) {
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

export function renderOverview(o) {
  overview = o;
  setState('running', 'Running on port ' + o.port);
  $('start-error').hidden = true;
  $('running').hidden = false;
  const list = $('addresses');
  // The check page's links change with TLS too (http or https).
  const key = o.addresses.join(' ') + ':' + o.port + ' ' + (o.check_links || []).map((l) => l.url).join(' ');
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
  renderCheckLinks(o.check_links || []);
  $('check-local').hidden = !o.addresses.every((ip) => ip === '127.0.0.1' || ip === '::1');
  renderOverviewRest(o);
}

/** One QR code per address, each linking to the hub's check page there. */
function renderCheckLinks(links) {
  $('check-links').replaceChildren(
    ...links.map((link) => {
      const li = document.createElement('li');
      const img = document.createElement('img');
      img.className = 'qr';
      img.width = 232;
      img.height = 232;
      img.alt = 'QR code of ' + link.url;
      if (link.qr) img.src = link.qr;
      const a = document.createElement('code');
      a.className = 'check-url';
      a.textContent = link.url;
      li.append(img, a, copyButton(() => link.url, 'Copy ' + link.url));
      return li;
    }),
  );
}

function renderOverviewRest(o) {
  const mdns = o.mdns;
  if ($('mdns-line').hidden !== !mdns) $('mdns-line').hidden = !mdns;
  if (mdns) setText($('mdns-name'), mdns.host + ':' + mdns.port);
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
  renderTls(o.tls, o);
  setText($('snippet'), o.snippets[snippet]);
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

/** A date from seconds since 1970, as the operator's locale writes it. */
function day(unix) {
  return new Date(unix * 1000).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** The TLS card: what the certificate names and until when, the CA to install on devices (hidden without TLS). */
function renderTls(t, o) {
  const card = $('tls-card');
  if (card.hidden !== !t) card.hidden = !t;
  if (!t) return;
  setText($('tls-summary'), 'https:// and wss:// on port ' + o.port + (t.plain ? ', beside http:// and ws://.' : ' only.'));
  const warning = $('tls-warning');
  if (warning.hidden !== !t.warning) warning.hidden = !t.warning;
  setText(warning, t.warning || '');
  const reload = $('tls-reload-error');
  if (reload.hidden !== !t.reload_error) reload.hidden = !t.reload_error;
  setText(reload, t.reload_error ? 'The certificate files changed but cannot be used: ' + t.reload_error : '');
  setText($('tls-names'), t.certificate.names.join(', ') || t.certificate.subject);
  setText($('tls-expiry'), t.expired
    ? 'EXPIRED on ' + day(t.certificate.not_after)
    : 'valid until ' + day(t.certificate.not_after) + ' (' + t.days_left + ' days)');
  const ca = t.ca;
  $('tls-ca-box').hidden = !ca;
  setText($('tls-ca-subject'), ca ? ca.subject : 'none configured');
  setText($('tls-ca-fingerprint'), ca ? 'SHA-256 ' + ca.sha256 : '');
  setText($('tls-ca-expiry'), ca ? 'valid until ' + day(ca.not_after) : '');
  const links = $('tls-ca-links');
  const key = ca ? o.addresses.join(' ') + ':' + o.port : '';
  if (links.dataset.key === key) return;
  links.dataset.key = key;
  links.replaceChildren(
    ...(ca ? o.addresses : []).map((ip) => {
      const host = ip.includes(':') ? '[' + ip + ']' : ip;
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = 'http://' + host + ':' + o.port + '/poussr-ca.crt';
      li.append(code, copyButton(() => code.textContent, 'Copy the CA link ' + code.textContent));
      return li;
    }),
  );
}

async function exportCa() {
  const result = $('export-ca-result');
  result.className = 'result';
  try {
    const path = await invoke('export_ca');
    result.className = 'result ok';
    result.textContent = 'Saved as ' + path;
  } catch (e) {
    result.className = 'result bad';
    result.textContent = (e && e.message) || String(e);
  }
}

function selectSnippet(tab) {
  snippet = tab.dataset.snippet;
  markSelected(tab);
  $('snippet-panel').setAttribute('aria-labelledby', tab.id);
  if (overview) $('snippet').textContent = overview.snippets[snippet];
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

export function initOverview() {
  onBatch((batch) => chart.add(batch.at_ms, batch.stats));
  // The chart moves once a second at most.
  onFrame((now) => {
    if (now - chartDrawn > 1000) {
      chartDrawn = now;
      setText($('rate-now'), '· now ' + Math.round(chart.rateNow()).toLocaleString() + ' events/s');
      chart.draw();
    }
  });
  tablist(document.querySelector('.snippet-tabs'), selectSnippet);
  $('export-ca').hidden = !tauri;
  $('export-ca').addEventListener('click', exportCa);
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
  // The hub failed to start (desktop only): start it on the port typed here, the other settings as saved.
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
}
