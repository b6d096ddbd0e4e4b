// The check page: connects to the hub that served it with the hub's own pusher-js, shows the connection's
// state, and lists the events of one channel as they arrive. Any device on the LAN can open it.
'use strict';

const $ = (id) => document.getElementById(id);
const MAX_EVENTS = 200;
let pusher = null;
let channel = null;
let info = null;
let onEvent = null; // the channel's handler, removed before listening again

function showProblem(text) {
  $('problem').hidden = !text;
  $('problem').textContent = text || '';
}

function setState(state, text) {
  $('state').dataset.state = state;
  $('state').textContent = text;
}

const STATES = {
  initialized: 'Starting…',
  connecting: 'Connecting…',
  connected: 'Connected',
  unavailable: 'Unavailable: the hub cannot be reached; retrying',
  failed: 'Failed: this browser has no WebSocket support',
  disconnected: 'Disconnected',
};

function connect() {
  const tls = location.protocol === 'https:';
  const port = Number(location.port) || (tls ? 443 : 80);
  $('address').textContent = (tls ? 'wss://' : 'ws://') + location.host;
  $('library').textContent = 'pusher-js ' + info.pusher_js + ', served by the hub';
  pusher = new Pusher(info.key, {
    wsHost: location.hostname,
    wsPort: port,
    wssPort: port,
    forceTLS: tls,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    cluster: 'mt1',
  });
  pusher.connection.bind('state_change', ({ current }) => {
    setState(current, STATES[current] || current);
    $('socket-id').textContent = current === 'connected' ? pusher.connection.socket_id : '–';
    if (current === 'connected') showProblem('');
  });
  pusher.connection.bind('error', (e) => {
    const error = e && e.error && e.error.data;
    if (error && error.message) showProblem('The hub refused the connection: ' + error.message + ' (' + error.code + ')');
  });
  listen($('channel').value);
}

function listen(name) {
  name = name.trim();
  if (!name) return;
  if (channel) {
    // pusher-js keeps the same channel object for a subscription still pending: unbind first, so that
    // listening again never lists an event twice.
    channel.unbind_global(onEvent);
    channel.unbind('pusher:subscription_succeeded');
    channel.unbind('pusher:subscription_error');
    pusher.unsubscribe(channel.name);
  }
  channel = pusher.subscribe(name);
  $('channel-hint').textContent = 'Listening on ' + name + '…';
  channel.bind('pusher:subscription_succeeded', () => {
    $('channel-hint').textContent = 'Listening on ' + name + '. Every event published to it shows below.';
  });
  channel.bind('pusher:subscription_error', (e) => {
    const why = e && (e.error || e.status) ? ' (' + (e.error || e.status) + ')' : '';
    $('channel-hint').textContent = 'Cannot listen on ' + name + why + '. Private and presence channels need your app\'s sign-in.';
  });
  onEvent = (event, data) => {
    if (!event.startsWith('pusher:')) addEvent(name, event, data);
  };
  channel.bind_global(onEvent);
  history.replaceState(null, '', '?channel=' + encodeURIComponent(name));
}

function addEvent(channelName, event, data) {
  const li = document.createElement('li');
  const title = document.createElement('span');
  title.className = 'name';
  title.textContent = event;
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString() + ' · ' + channelName;
  const pre = document.createElement('pre');
  pre.textContent = typeof data === 'string' ? data : JSON.stringify(data, null, 2);
  li.append(title, time, pre);
  const list = $('events');
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  $('events-empty').hidden = true;
  const count = $('event-count');
  count.textContent = String(Number(count.textContent) + 1);
}

async function publish() {
  const button = $('publish');
  button.disabled = true;
  $('publish-result').textContent = 'Publishing…';
  try {
    const response = await fetch('/check/publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: channel ? channel.name : $('channel').value.trim() }),
    });
    const body = await response.json().catch(() => ({}));
    $('publish-result').textContent = response.ok
      ? 'Published; it reached ' + body.delivered + ' connection' + (body.delivered === 1 ? '' : 's') + '.'
      : 'Not published: ' + (body.error || response.status + ' ' + response.statusText);
  } catch (e) {
    $('publish-result').textContent = 'Not published: the hub cannot be reached (' + e.message + ')';
  } finally {
    button.disabled = false;
  }
}

async function start() {
  if (!window.Pusher) {
    setState('failed', 'pusher-js did not load');
    showProblem('The hub\'s copy of pusher-js could not be loaded or did not match its integrity hash. Reload the page.');
    return;
  }
  try {
    const response = await fetch('/check/info', { cache: 'no-store' });
    if (!response.ok) throw new Error(response.status + ' ' + response.statusText);
    info = await response.json();
  } catch (e) {
    setState('unavailable', 'The hub did not answer');
    showProblem('Cannot read /check/info: ' + e.message + '. Reload the page.');
    return;
  }
  const wanted = new URLSearchParams(location.search).get('channel');
  $('channel').value = wanted || info.channel;
  const button = $('publish');
  button.disabled = !info.publish;
  button.title = info.publish ? 'Publishes the event "' + info.event + '" to this channel'
    : 'The hub\'s operator has not allowed this page to publish (Settings → Let the check page publish a test event)';
  if (!info.publish) $('publish-result').textContent = 'Publishing from this page is off on this hub.';
  button.addEventListener('click', publish);
  $('channel-form').addEventListener('submit', (e) => {
    e.preventDefault();
    listen($('channel').value);
  });
  connect();
}

start();
