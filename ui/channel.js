// A channel's page, in the Channels pane: its subscribers (click one to see its traffic), its presence members,
// its event rate over the last five minutes, its stored events, and a Publish form pre-filled for it.
//
// The rate is counted from the feed while the window is open; the minutes before the window opened are
// filled in once from the history.

import { api } from './api.js';
import { $, cell, setText } from './dom.js';
import { onBatch } from './feed.js';
import { filterLogTo } from './livelog.js';
import { pretty } from './log.js';
import { showPane } from './tabs.js';

const BUCKET = 10_000; // ms
const BUCKETS = 30; // five minutes
const MAX_CHANNELS = 2000; // counted at once; more and the least recently active are forgotten

const counts = new Map(); // channel -> Map(bucket start -> events)
const openedAt = Date.now();
let open = null; // the channel shown

function count(channel, at) {
  let m = counts.get(channel);
  if (!m) {
    if (counts.size >= MAX_CHANNELS) counts.delete(counts.keys().next().value);
    m = new Map();
  } else {
    counts.delete(channel); // moved to the end: the Map's order is then the least recently active first
  }
  counts.set(channel, m);
  const b = Math.floor(at / BUCKET) * BUCKET;
  m.set(b, (m.get(b) || 0) + 1);
  if (m.size > BUCKETS + 2) {
    const oldest = Date.now() - (BUCKETS + 1) * BUCKET;
    for (const k of m.keys()) if (k < oldest) m.delete(k);
  }
}

function drawRate(channel) {
  const m = counts.get(channel) || new Map();
  const now = Math.floor(Date.now() / BUCKET) * BUCKET;
  const values = [];
  for (let i = BUCKETS - 1; i >= 0; i--) values.push(m.get(now - i * BUCKET) || 0);
  const max = Math.max(1, ...values);
  const bars = $('channel-page-bars');
  if (bars.children.length !== BUCKETS) {
    bars.replaceChildren(...values.map(() => document.createElement('span')));
  }
  values.forEach((v, i) => {
    const el = bars.children[i];
    el.style.height = Math.round((v / max) * 100) + '%';
    el.title = v + ' events';
  });
  const last = values[BUCKETS - 1] + values[BUCKETS - 2];
  setText($('channel-page-rate'), '— ' + (last / 20).toFixed(1) + ' events/s now, ' + values.reduce((a, b) => a + b, 0) + ' in 5 min');
}

function idList(el, ids, onClick) {
  el.replaceChildren(
    ...ids.map((id) => {
      const li = document.createElement('li');
      if (onClick) {
        const b = Object.assign(document.createElement('button'), { type: 'button', className: 'linkish', textContent: id });
        b.title = 'Show the traffic of ' + id + ' in the live log';
        b.addEventListener('click', () => onClick(id));
        li.append(b);
      } else {
        li.textContent = id;
      }
      return li;
    }),
  );
  if (!ids.length) el.append(Object.assign(document.createElement('li'), { className: 'muted', textContent: 'none' }));
}

const STORED_EVERY = 10_000; // ms: the stored events are read again at most this often (a search of the history)
let storedAt = 0;
let stored = { entries: [] };

/** Reads what the page shows from the hub: subscribers, members, stored events. */
async function load(channel, info) {
  const fresh = Date.now() - storedAt > STORED_EVERY || stored.channel !== channel;
  const [clients, found] = await Promise.all([
    api('/admin/api/clients').catch(() => ({ clients: [] })),
    fresh
      ? api('/admin/api/search?kinds=event,client_event&limit=100&channel=' + encodeURIComponent(channel)).catch((e) => ({ entries: [], error: e.message }))
      : stored,
  ]);
  if (fresh) {
    stored = { ...found, channel };
    storedAt = Date.now();
  }
  if (open !== channel) return;
  const subs = clients.clients.filter((c) => c.channels.includes(channel)).map((c) => c.socket_id);
  setText($('channel-page-subs-count'), '(' + subs.length + ')');
  idList($('channel-page-subs'), subs, (id) => filterLogTo('client', id));
  const members = (info && info.members) || [];
  setText($('channel-page-members-count'), info && info.kind === 'presence' ? '(' + members.length + ')' : '(not a presence channel)');
  idList($('channel-page-members'), members);
  const mine = found.entries.filter((e) => e.channel === channel);
  // The minutes before the window opened come from the history, once.
  if (!counts.has(channel) || !counts.get(channel).backfilled) {
    for (const e of mine) if (e.at_ms < openedAt && e.at_ms > Date.now() - BUCKETS * BUCKET) count(channel, e.at_ms);
    const m = counts.get(channel);
    if (m) m.backfilled = true;
  }
  setText($('channel-page-stored-note'), found.error ? '— ' + found.error : '(' + mine.length + (mine.length === 100 ? '+, newest first' : ', newest first') + ')');
  $('channel-page-stored').replaceChildren(
    ...mine.slice(0, 50).map((e) => {
      const tr = document.createElement('tr');
      const data = cell(e.data.slice(0, 160), 'data');
      data.title = pretty(e.data).slice(0, 2000);
      tr.append(cell(new Date(e.at_ms).toLocaleString()), cell(e.event), data);
      return tr;
    }),
  );
  drawRate(channel);
}

/** Opens the page of `channel`, with `info` (its row of /admin/api/channels) when known. */
export function openChannel(channel, info) {
  open = channel;
  storedAt = 0; // opening a page reads its stored events now
  $('channel-page').hidden = false;
  setText($('channel-page-name'), channel);
  setText($('channel-page-kind'), info ? info.kind : '');
  $('channel-page').dataset.channel = channel;
  load(channel, info);
}

/** Called when the channel list was read again: the open page follows. */
export function refreshChannel(list) {
  if (!open || $('channel-page').hidden) return;
  load(open, list.find((c) => c.name === open));
}

export function initChannelPage() {
  onBatch((batch) => {
    for (const e of batch.events) if (e.type === 'event_published') count(e.channel, e.at_ms);
    if (open && !$('channel-page').hidden) drawRate(open);
  });
  $('channel-page-close').addEventListener('click', () => {
    open = null;
    $('channel-page').hidden = true;
  });
  $('channel-page-log').addEventListener('click', () => filterLogTo('channel', open));
  $('channel-page-publish').addEventListener('click', () => {
    $('pub-channel').value = open;
    showPane('publish');
    $('pub-event').focus();
  });
}
