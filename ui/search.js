// The Search pane: what the hub kept on disk (published events in the history store, every other kind in the
// console journal), searched by kind, channel, event, text, client and time, a page at a time from the hub
// (never from what the window keeps), newest first; and the matches saved as a recording.

import { ApiError, conn } from './api.js';
import { $, setText } from './dom.js';
import { onFrame, requestRender } from './feed.js';
import { kindChips } from './kinds.js';
import { filterLogTo, detail } from './livelog.js';
import { Log } from './log.js';
import { saveFile } from './save.js';

const PAGE = 200;

const results = new Log($('search-view'), $('search-spacer'), (e) => detail('search', e), () => requestRender(), filterLogTo);
results.max = 1_000_000;
let chips = null;
let next = null; // the cursor of the next (older) page
let query = null; // the parameters of the search shown
let busy = false; // a page of older matches is being read
let asked = 0; // the number of the latest search: an answer to an earlier one is dropped

function localTime(id) {
  const v = $(id).value;
  if (!v) return '';
  const ms = new Date(v).getTime();
  return Number.isNaN(ms) ? '' : String(ms);
}

/** The search's parameters, from the form. */
function params() {
  const p = new URLSearchParams();
  p.set('kinds', chips.selected().join(','));
  for (const [name, id] of [['channel', 'search-channel'], ['event', 'search-event'], ['text', 'search-text'], ['socket_id', 'search-client']]) {
    const v = $(id).value.trim();
    if (v) p.set(name, v);
  }
  const from = localTime('search-from');
  const to = localTime('search-to');
  if (from) p.set('from_ms', from);
  if (to) p.set('to_ms', to);
  return p;
}

async function get(path) {
  const res = await fetch(conn.base + path, { headers: { Authorization: 'Bearer ' + conn.token } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error || 'HTTP ' + res.status);
  }
  return res;
}

function say(text, bad) {
  const el = $('search-status');
  el.className = 'result' + (bad ? ' bad' : '');
  el.textContent = text;
}

async function page(first) {
  if (!first && busy) return;
  const mine = first ? ++asked : asked;
  busy = true;
  const p = new URLSearchParams(query);
  p.set('limit', String(PAGE));
  if (!first && next) p.set('before', next);
  try {
    const body = await (await get('/admin/api/search?' + p)).json();
    if (mine !== asked) return; // a newer search was asked meanwhile
    if (first) {
      results.clear();
      results.follow = false;
    }
    results.add(body.entries, 0);
    results.follow = false;
    next = body.next;
    $('search-more').hidden = !next;
    const notes = (body.notes || []).join(' ');
    const n = results.total;
    say(n ? n.toLocaleString() + (next ? '+ matches (older ones: Load older matches)' : ' matches') + (notes ? ' — ' + notes : '')
      : 'Nothing matches.' + (notes ? ' ' + notes : ''));
  } catch (e) {
    if (mine === asked) say('Search failed: ' + e.message, true);
  } finally {
    if (mine === asked) busy = false;
    requestRender();
  }
}

async function recordMatches() {
  const p = query ? new URLSearchParams(query) : params();
  try {
    const text = await (await get('/admin/api/search/recording?' + p)).text();
    const count = Math.max(0, text.split('\n').filter(Boolean).length - 1);
    await saveFile('poussr-recording-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jsonl', text, count);
  } catch (e) {
    say('Recording failed: ' + e.message, true);
  }
}

export function initSearch() {
  chips = kindChips($('search-kinds'), () => {});
  onFrame(() => results.render());
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    query = params().toString();
    say('Searching…');
    page(true);
  });
  $('search-more').addEventListener('click', () => page(false));
  $('search-record').addEventListener('click', recordMatches);
  $('search-detail-close').addEventListener('click', () => results.select(null));
  setText($('search-status'), '');
}
