// The monitor feed (a WebSocket of batches, about ten a second: events, skipped count and the hub's totals)
// and the frame loop that draws what it brings. Panes subscribe to batches with onBatch and draw in onFrame.

import { conn, connect, tauri } from './api.js';

const batchHandlers = [];
const frameHandlers = [];

const feed = {
  socket: null,
  retry: 1000,
};

/** Calls fn(batch) for every feed batch, in the order the handlers were added. */
export function onBatch(fn) {
  batchHandlers.push(fn);
}

/** Calls fn(now) in every animation frame that follows a requestRender. */
export function onFrame(fn) {
  frameHandlers.push(fn);
}

export function feedOpen() {
  return feed.socket !== null;
}

export function openFeed() {
  const url = conn.base.replace(/^http/, 'ws') + '/admin/api/feed?token=' + encodeURIComponent(conn.token);
  const ws = new WebSocket(url);
  feed.socket = ws;
  ws.onopen = () => (feed.retry = 1000);
  ws.onmessage = (m) => {
    const batch = JSON.parse(m.data);
    for (const fn of batchHandlers) fn(batch);
    if (batch.events.length || batch.skipped) requestRender();
  };
  ws.onclose = () => {
    feed.socket = null;
    // Reconnect with backoff: the hub may be restarting on a new port (the desktop tells the new base URL).
    setTimeout(async () => {
      if (tauri) await connect().catch(() => {});
      if (conn.token && document.visibilityState === 'visible') openFeed();
    }, feed.retry);
    feed.retry = Math.min(feed.retry * 2, 15000);
  };
}

let dirty = false;
let framePending = false;

/** Asks for one animation frame; nothing runs per frame while nothing changes (an idle window costs ~0 CPU). */
export function requestRender() {
  dirty = true;
  if (!framePending) {
    framePending = true;
    requestAnimationFrame(frame);
  }
}

/** One animation frame: draw what changed. Data arrives ~10 times a second; drawing is at most once a frame. */
function frame(now) {
  framePending = false;
  if (!dirty) return;
  dirty = false;
  for (const fn of frameHandlers) fn(now);
}
