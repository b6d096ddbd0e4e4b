// The Live log pane: the kind chips, the toolbar (pause, clear, filters, record, how many entries to keep), the
// status line and the entry detail, around the virtual list of log.js.

import { api } from './api.js';
import { $, setText } from './dom.js';
import { onBatch, onFrame, requestRender } from './feed.js';
import { describe, kindChips } from './kinds.js';
import { Log, pretty, size } from './log.js';
import { saveFile } from './save.js';
import { onShow, showPane } from './tabs.js';

const log = new Log($('log-view'), $('log-spacer'), showDetail, () => requestRender(), pick);
let chips = null;
let exactChannel = false; // the channel filter came from a click: that channel only, not every name containing it
let client = '';

/** The detail under the log: the whole entry, pretty-printed, and its hint. */
export function detail(prefix, e) {
  $(prefix + '-detail').hidden = !e;
  if (!e) return;
  const d = describe(e);
  let title;
  if (e.type === 'event_published') {
    title = e.event + ' on ' + e.channel + ' — ' + new Date(e.at_ms).toLocaleString() + ' — ' + size(e.data.length) +
      (e.source === 'history' ? ', from the history (position ' + e.serial + ')'
        : e.source === 'replay' ? ', replayed from a recording, delivered to ' + e.delivered
        : ', delivered to ' + e.delivered);
  } else {
    title = d.what + (d.channel ? ' on ' + d.channel : '') + ' — ' + new Date(e.at_ms).toLocaleString();
  }
  $(prefix + '-detail-title').textContent = title;
  $(prefix + '-detail-hint').hidden = !d.hint;
  $(prefix + '-detail-hint').textContent = d.hint || '';
  $(prefix + '-detail-body').textContent = e.type === 'event_published' ? pretty(e.data) : JSON.stringify(e, null, 2);
}

function showDetail(e) {
  detail('log', e);
}

/** Filters the log by the chips, the Channel, Event and Text fields, and the picked client. */
export function applyFilter() {
  log.setFilter({
    kinds: chips ? chips.selected() : undefined,
    channel: $('filter-channel').value.trim(),
    exact: exactChannel,
    client,
    event: $('filter-event').value.trim(),
    text: $('filter-text').value.trim(),
  });
  requestRender();
}

/** Shows only the traffic of one channel (exactly that name) or of one client, in the live log. */
export function filterLogTo(what, value) {
  if (what === 'channel') {
    $('filter-channel').value = value;
    exactChannel = true;
  } else {
    client = value;
    $('filter-client').textContent = value;
    $('filter-client-pill').hidden = false;
  }
  applyFilter();
  showPane('log');
}

function pick(what, value) {
  filterLogTo(what, value);
}

async function record() {
  const text = log.recording();
  const count = log.list().length;
  const name = 'poussr-recording-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jsonl';
  await saveFile(name, text, count);
}

function render() {
  log.render();
  setText($('log-count'), log.list().length.toLocaleString() + ' shown of ' + log.total.toLocaleString() + ' received');
  setText($('log-skipped'), log.skipped ? '· ' + log.skipped.toLocaleString() + ' skipped (the window fell behind)' : '');
  if ($('log-empty').hidden !== log.total > 0) $('log-empty').hidden = log.total > 0;
  chips.setCounts(log.counts);
}

let historyLoaded = false;

/** Once per window: the log opens with the most recent kept events, so that after a restart the operator still sees what happened. */
export async function loadLogHistory() {
  if (historyLoaded) return;
  historyLoaded = true;
  let events;
  try {
    events = (await api('/admin/api/history/recent?limit=' + Math.min(log.max, 1000))).events;
  } catch {
    historyLoaded = false; // tried again on the next refresh
    return;
  }
  log.prepend(
    events.reverse().map((e) => ({
      type: 'event_published',
      at_ms: e.at_ms,
      app_id: e.app_id,
      channel: e.channel,
      event: e.event,
      data: e.data,
      source: 'history',
      serial: e.serial,
      delivered: null,
    })),
  );
  requestRender();
}

export function initLiveLog() {
  chips = kindChips($('log-kinds'), applyFilter);
  onBatch((batch) => log.add(batch.events, batch.skipped));
  onFrame(render);
  onShow('log', () => log.reset());
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
  // Re-filtering thousands of kept entries takes a moment: the typed key shows at once, the filter follows
  // when typing pauses.
  let filterTimer = null;
  for (const id of ['filter-channel', 'filter-event', 'filter-text']) {
    $(id).addEventListener('input', () => {
      if (id === 'filter-channel') exactChannel = false;
      clearTimeout(filterTimer);
      filterTimer = setTimeout(applyFilter, 150);
    });
  }
  $('filter-client-clear').addEventListener('click', () => {
    client = '';
    $('filter-client-pill').hidden = true;
    applyFilter();
  });
  $('log-export').addEventListener('click', record);
  $('detail-close').addEventListener('click', () => log.select(null));
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
}
