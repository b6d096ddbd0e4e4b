// The Clients pane: every connected client with its address, user agent, protocol, user, channels and
// traffic, and a Disconnect button. Read again when the feed says something changed, at most once a second.

import { api } from './api.js';
import { $, cell, showNotice } from './dom.js';
import { onBatch } from './feed.js';
import { filterLogTo } from './livelog.js';
import { onShow } from './tabs.js';

export const clients = {
  list: [],
  stale: true, // the list shown may be out of date
};

function duration(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function disconnectButton(socketId) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'small';
  b.textContent = 'Disconnect';
  b.setAttribute('aria-label', 'Disconnect ' + socketId);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api('/admin/api/clients/' + encodeURIComponent(socketId), { method: 'DELETE' });
      clients.stale = true;
    } catch (e) {
      showNotice('Disconnect failed: ' + e.message);
      b.disabled = false;
    }
  });
  return b;
}

export async function loadClients() {
  clients.stale = false;
  try {
    clients.list = (await api('/admin/api/clients')).clients;
  } catch {
    return;
  }
  const list = clients.list;
  $('clients-empty').hidden = list.length > 0;
  $('clients-table').hidden = list.length === 0;
  $('clients-body').replaceChildren(
    ...list.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.socketId = c.socket_id;
      const ua = cell(c.user_agent || '—', 'ua');
      ua.title = c.user_agent || '';
      const action = document.createElement('td');
      action.append(disconnectButton(c.socket_id));
      const id = document.createElement('td');
      const link = Object.assign(document.createElement('button'), { type: 'button', className: 'linkish', textContent: c.socket_id });
      link.title = 'Show the traffic of ' + c.socket_id + ' in the live log';
      link.addEventListener('click', () => filterLogTo('client', c.socket_id));
      id.append(link);
      tr.append(id, cell(c.remote), ua, cell(c.protocol === 'pusher' ? 'Pusher' : 'Poussr v1'),
        cell(c.user_id || '—', 'user'), cell(c.channels.join(', ') || '—', 'channels'), cell(duration(c.connected_at_ms)),
        cell(c.messages_in, 'num'), cell(c.messages_out, 'num'), action);
      return tr;
    }),
  );
}

export function initClients() {
  onShow('clients', loadClients);
  onBatch((batch) => {
    if (batch.events.some((e) => e.type !== 'event_published' && e.type !== 'webhook' && e.type !== 'http_refused')) clients.stale = true;
  });
}
