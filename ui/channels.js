// The Channels pane: the occupied channels with their kind, subscribers, presence members and traffic. It is
// read from the admin API again when the feed says something changed, at most once a second.

import { api } from './api.js';
import { $, cell } from './dom.js';
import { onBatch } from './feed.js';
import { openChannel, refreshChannel } from './channel.js';
import { onShow } from './tabs.js';

// The feed events after which the channel list may differ.
const CHANGES = ['subscribed', 'unsubscribed', 'connection_closed', 'event_published', 'member_added', 'member_removed'];


export const channels = {
  list: [],
  stale: true, // the list shown may be out of date
};

function ago(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  return Math.floor(s / 3600) + ' h ago';
}

export async function loadChannels() {
  channels.stale = false;
  try {
    channels.list = (await api('/admin/api/channels')).channels;
  } catch {
    return;
  }
  const list = channels.list;
  $('channel-suggestions').replaceChildren(...list.map((c) => Object.assign(document.createElement('option'), { value: c.name })));
  $('channels-empty').hidden = list.length > 0;
  $('channels-table').hidden = list.length === 0;
  $('channels-body').replaceChildren(
    ...list.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.channel = c.name;
      const name = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'linkish';
      b.textContent = c.name;
      b.title = 'Open the page of ' + c.name;
      b.addEventListener('click', () => openChannel(c.name, c));
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
        cell(c.events, 'num events'), cell(c.deliveries, 'num'), cell(c.history_events ?? 0, 'num kept'), cell(ago(c.last_event_ms)));
      return tr;
    }),
  );
  refreshChannel(list);
}

export function initChannels() {
  onShow('channels', loadChannels);
  onBatch((batch) => {
    if (batch.events.some((e) => CHANGES.includes(e.type))) channels.stale = true;
  });
}
