// The Replay card of the Publish pane: a recording played again by the hub (POST /admin/api/replay, see
// docs/recording.md) at a chosen speed, with channels mapped; pause, resume and stop, and the progress, read
// from the hub while it plays.

import { api } from './api.js';
import { $ } from './dom.js';
import { onShow } from './tabs.js';

let polling = null;

/** `from=to` lines as a map; a line without `=` is an error that names it. */
function channelMap() {
  const map = {};
  const lines = $('replay-map').value.split('\n');
  lines.forEach((line, i) => {
    const l = line.trim();
    if (!l) return;
    const at = l.indexOf('=');
    if (at <= 0 || at === l.length - 1) throw new Error(`map line ${i + 1} must be from=to, not ${JSON.stringify(l)}`);
    map[l.slice(0, at).trim()] = l.slice(at + 1).trim();
  });
  return map;
}

function say(text, kind) {
  const el = $('replay-status');
  el.className = 'result' + (kind ? ' ' + kind : '');
  el.textContent = text;
}

function seconds(ms) {
  return (ms / 1000).toFixed(1) + ' s';
}

/** Shows a status from the hub; polls again while the replay plays or is paused. */
function show(s) {
  const active = s.state === 'playing' || s.state === 'paused';
  $('replay-start').disabled = active;
  $('replay-pause').disabled = !active;
  $('replay-stop').disabled = !active;
  $('replay-pause').textContent = s.state === 'paused' ? 'Resume' : 'Pause';
  const progress = $('replay-progress');
  progress.hidden = s.state === 'idle';
  progress.max = Math.max(1, s.total);
  progress.value = s.sent;
  const counts = `${s.sent} of ${s.total} events` + (s.skipped ? `, ${s.skipped} other ${s.skipped === 1 ? 'entry' : 'entries'} skipped` : '');
  const time = s.duration_ms ? ` · ${seconds(s.elapsed_ms || 0)} of ${seconds(s.duration_ms)} at ${s.speed}×` : '';
  switch (s.state) {
    case 'playing':
      say('Replaying: ' + counts + time);
      break;
    case 'paused':
      say('Paused: ' + counts + time);
      break;
    case 'done':
      say('Done: ' + counts + ' replayed.', 'ok');
      break;
    case 'stopped':
      say('Stopped: ' + counts + ' replayed.');
      break;
    case 'failed':
      say('Stopped by an error after ' + counts + ': ' + (s.error || 'unknown'), 'bad');
      break;
    default:
      say('');
  }
  clearTimeout(polling);
  if (active) polling = setTimeout(poll, 250);
}

async function poll() {
  try {
    show(await api('/admin/api/replay'));
  } catch (e) {
    say('Cannot read the replay: ' + e.message, 'bad');
  }
}

async function start(e) {
  e.preventDefault();
  const file = $('replay-file').files[0];
  if (!file) return;
  try {
    const body = { recording: await file.text(), speed: Number($('replay-speed').value), map: channelMap(), name: file.name };
    show(await api('/admin/api/replay', { method: 'POST', body: JSON.stringify(body) }));
  } catch (err) {
    say('Not replayed: ' + err.message, 'bad');
  }
}

async function control(action) {
  try {
    show(await api('/admin/api/replay/' + action, { method: 'POST' }));
  } catch (err) {
    say(err.message, 'bad');
  }
}

export function initReplay() {
  $('replay-form').addEventListener('submit', start);
  $('replay-pause').addEventListener('click', (e) => control(e.currentTarget.textContent === 'Resume' ? 'resume' : 'pause'));
  $('replay-stop').addEventListener('click', () => control('stop'));
  onShow('publish', poll);
}
