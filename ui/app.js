// Poussr's window. The same files run in the desktop app (where Tauri gives the hub's address and admin
// token) and, served by the hub, in a browser. Everything about the hub is read from its admin API.

const tauri = window.__TAURI__;
const $ = (id) => document.getElementById(id);

const state = {
  base: null, // the hub's URL, e.g. http://127.0.0.1:6001
  token: null, // the admin token
  status: null, // the desktop's view of the hub: running / error, with the reason
  overview: null, // the last /admin/api/overview answer
  snippet: 'pusher_js',
  timer: null,
};

/** Calls a desktop command; null when running in a browser. */
async function invoke(command, args) {
  if (!tauri) return null;
  return tauri.core.invoke(command, args);
}

async function api(path) {
  const res = await fetch(state.base + path, { headers: { Authorization: 'Bearer ' + state.token } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status);
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
  }
}

function showNotice(text) {
  $('notice').hidden = !text;
  $('notice').textContent = text || '';
}

function setState(kind, text) {
  const el = $('state');
  el.dataset.state = kind;
  el.textContent = text;
}

async function refresh() {
  if (state.status && state.status.state === 'error') {
    renderError(state.status);
    return;
  }
  try {
    state.overview = await api('/admin/api/overview');
    renderOverview(state.overview);
  } catch (e) {
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
  const localOnly = o.addresses.every((ip) => ip === '127.0.0.1' || ip === '::1');
  $('addresses-hint').textContent = localOnly
    ? 'Poussr listens on this machine only. To serve the network, listen on 0.0.0.0 (Settings).'
    : 'Every address of this machine that other machines on the network can reach.';
  $('app-id').textContent = o.app.id;
  $('app-key').textContent = o.app.key;
  const secret = $('app-secret');
  secret.dataset.secret = o.app.secret;
  if ($('reveal-secret').getAttribute('aria-pressed') === 'true') secret.textContent = o.app.secret;
  $('stat-connections').textContent = o.stats.connections;
  $('stat-channels').textContent = o.stats.channels;
  $('stat-events').textContent = o.stats.events_published;
  $('stat-deliveries').textContent = o.stats.deliveries;
  $('snippet').textContent = o.snippets[state.snippet];
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
  if (name === 'settings') loadSettings();
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

function formInput() {
  return {
    bind: $('bind').value,
    port: Number($('port').value),
    allow_anonymous_publish: $('allow-anonymous-publish').checked,
    allow_remote_dashboard: $('allow-remote-dashboard').checked,
  };
}

// ---- Wiring ----

function wire() {
  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => showPane(tab.dataset.pane));
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
