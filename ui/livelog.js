// The Live log pane: the toolbar (pause, clear, filters, export, how many events to keep), the status line
// and the event detail, around the virtual list of log.js.

import { api, invoke, tauri } from './api.js';
import { $, setText, showNotice } from './dom.js';
import { onBatch, onFrame, requestRender } from './feed.js';
import { Log, pretty } from './log.js';
import { onShow } from './tabs.js';

const log = new Log($('log-view'), $('log-spacer'), showDetail, () => requestRender());

function showDetail(e) {
  $('log-detail').hidden = !e;
  if (!e) return;
  $('detail-title').textContent = e.event + ' on ' + e.channel + ' — ' + new Date(e.at_ms).toLocaleString() +
    (e.source === 'history' ? ', from the history (position ' + e.serial + ')' : ', delivered to ' + e.delivered);
  $('detail-body').textContent = pretty(e.data);
}

/** Filters the log by what the Channel, Event and Text fields hold. */
export function applyFilter() {
  log.setFilter({ channel: $('filter-channel').value.trim(), event: $('filter-event').value.trim(), text: $('filter-text').value.trim() });
  requestRender();
}

async function exportLog() {
  const text = log.jsonl();
  const name = 'poussr-log-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jsonl';
  if (tauri) {
    try {
      const path = await invoke('save_export', { name, text });
      showNotice('Exported ' + log.list().length + ' events to ' + path);
    } catch (e) {
      showNotice('Export failed: ' + (e.message || e));
    }
    return;
  }
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }));
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function render() {
  log.render();
  setText($('log-count'), log.list().length.toLocaleString() + ' shown of ' + log.total.toLocaleString() + ' received');
  setText($('log-skipped'), log.skipped ? '· ' + log.skipped.toLocaleString() + ' skipped (the window fell behind)' : '');
  if ($('log-empty').hidden !== log.total > 0) $('log-empty').hidden = log.total > 0;
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
  // Re-filtering thousands of kept events takes a moment: the typed key shows at once, the filter follows
  // when typing pauses.
  let filterTimer = null;
  for (const id of ['filter-channel', 'filter-event', 'filter-text']) {
    $(id).addEventListener('input', () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(applyFilter, 150);
    });
  }
  $('log-export').addEventListener('click', exportLog);
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
