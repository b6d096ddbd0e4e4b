// The kinds of traffic the console shows, one filter chip and one colour each, and how a monitor entry of
// each type reads in a row: its channel, its client, what happened, the detail, and a hint when the hub saw a
// classic mistake. The hub names the kinds the same way (src/monitor/mod.rs, Kind).

export const KINDS = [
  { id: 'connection', label: 'Connections' },
  { id: 'subscription', label: 'Subscriptions' },
  { id: 'event', label: 'Events' },
  { id: 'client_event', label: 'Client events' },
  { id: 'presence', label: 'Presence' },
  { id: 'webhook', label: 'Webhooks' },
  { id: 'http', label: 'HTTP refusals' },
  { id: 'refusal', label: 'Refusals & limits' },
];

const SOURCES = { api: 'API', v1: 'v1 REST', client: 'client', dashboard: 'dashboard', check: 'check page', history: 'history', replay: 'replay' };

/** The kind of a monitor entry (the hub adds `kind` to searched entries; live ones are classified here). */
export function kindOf(e) {
  if (e.kind) return e.kind;
  switch (e.type) {
    case 'connection_opened':
    case 'connection_closed':
    case 'signed_in':
      return 'connection';
    case 'subscribed':
    case 'unsubscribed':
    case 'subscription_refused':
      return 'subscription';
    case 'event_published':
      return e.source === 'client' || (e.source === 'history' && e.event.startsWith('client-')) ? 'client_event' : 'event';
    case 'member_added':
    case 'member_removed':
      return 'presence';
    case 'webhook':
      return 'webhook';
    case 'http_refused':
      return 'http';
    default:
      return 'refusal';
  }
}

function closeText(code) {
  return code == null ? 'no close code' : 'code ' + code;
}

/**
 * How an entry reads in a row: { channel, client, what, detail, hint }. `client` is a socket id when the entry
 * concerns a connection (clicking it filters the log to that client), else the remote address.
 */
export function describe(e) {
  const socket = e.socket_id || '';
  switch (e.type) {
    case 'event_published':
      return { channel: e.channel, client: socket, what: e.event, detail: e.data, hint: e.hint, source: SOURCES[e.source] || e.source };
    case 'connection_opened':
      return { channel: '', client: socket, what: 'connected', detail: `${e.remote} · ${e.protocol === 'pusher' ? 'Pusher' : 'Poussr v1'} · ${e.user_agent || 'no user agent'}` };
    case 'connection_closed':
      return { channel: '', client: socket, what: 'closed (' + closeText(e.code) + ')', detail: e.reason };
    case 'connection_refused':
      return {
        channel: '',
        client: '',
        what: 'refused (' + e.code + ')',
        detail: [e.remote, e.app_key ? 'key ' + e.app_key : '', e.origin ? 'origin ' + e.origin : '', e.reason].filter(Boolean).join(' · '),
        hint: e.hint,
      };
    case 'signed_in':
      return { channel: '', client: socket, what: 'signed in', detail: 'user ' + e.user_id };
    case 'subscribed':
      return { channel: e.channel, client: socket, what: 'subscribed', detail: '' };
    case 'unsubscribed':
      return { channel: e.channel, client: socket, what: 'unsubscribed', detail: '' };
    case 'subscription_refused':
      return { channel: e.channel, client: socket, what: 'subscription refused (' + e.status + ')', detail: e.reason };
    case 'member_added':
      return { channel: e.channel, client: socket, what: 'member joined', detail: 'user ' + e.user_id };
    case 'member_removed':
      return { channel: e.channel, client: socket, what: 'member left', detail: 'user ' + e.user_id };
    case 'webhook': {
      const answer = e.status ? 'answered ' + e.status : e.reason || 'no answer';
      const outcome = e.outcome === 'delivered' ? 'delivered' : e.outcome === 'retrying' ? 'failed, retrying' : 'failed, gave up';
      return {
        channel: '',
        client: '',
        what: `webhook ${outcome} (attempt ${e.attempt} of ${e.attempts})`,
        detail: `${e.url} ${answer} · ${e.events.join(', ')}`,
      };
    }
    case 'http_refused':
      return { channel: '', client: '', what: `${e.method} refused (${e.status})`, detail: `${e.path} from ${e.remote}: ${e.reason}` };
    case 'error':
      return { channel: '', client: socket, what: e.code ? 'refused (' + e.code + ')' : 'refused', detail: e.message };
    default:
      return { channel: '', client: socket, what: e.type, detail: '' };
  }
}

/** Text an entry matches the Text filter on: everything it shows. */
export function haystack(e) {
  const d = describe(e);
  return (d.channel + ' ' + d.client + ' ' + d.what + ' ' + d.detail + ' ' + (d.hint || '') + ' ' + (e.remote || '')).toLowerCase();
}

/**
 * Fills `container` with one toggle chip per kind (all on), and calls onChange(selected kinds) when one is
 * toggled. Alt+click (or a double click) shows that kind alone. Returns { selected(), setCounts(counts) }.
 */
export function kindChips(container, onChange) {
  const chips = KINDS.map((k) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'chip k-' + k.id;
    b.dataset.kind = k.id;
    b.setAttribute('aria-pressed', 'true');
    b.title = 'Show or hide ' + k.label.toLowerCase() + ' (double-click: only these)';
    const dot = Object.assign(document.createElement('span'), { className: 'dot' });
    const label = Object.assign(document.createElement('span'), { textContent: k.label });
    const count = Object.assign(document.createElement('span'), { className: 'chip-count' });
    b.append(dot, label, count);
    container.append(b);
    return b;
  });
  const selected = () => chips.filter((b) => b.getAttribute('aria-pressed') === 'true').map((b) => b.dataset.kind);
  container.addEventListener('click', (e) => {
    const chip = e.target.closest('.chip');
    if (!chip) return;
    if (e.altKey) for (const b of chips) b.setAttribute('aria-pressed', String(b === chip));
    else chip.setAttribute('aria-pressed', String(chip.getAttribute('aria-pressed') !== 'true'));
    onChange(selected());
  });
  container.addEventListener('dblclick', (e) => {
    const chip = e.target.closest('.chip');
    if (!chip) return;
    for (const b of chips) b.setAttribute('aria-pressed', String(b === chip));
    onChange(selected());
  });
  return {
    selected,
    setCounts(counts) {
      for (const b of chips) {
        const text = counts[b.dataset.kind] ? counts[b.dataset.kind].toLocaleString() : '';
        const el = b.lastChild;
        if (el.textContent !== text) el.textContent = text;
      }
    },
  };
}
