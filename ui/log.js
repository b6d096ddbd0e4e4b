// The log: keeps the last N entries in memory (every kind of traffic) and renders only the rows in view, so
// that thousands of entries a second neither grow memory nor slow the window. The live log and the search
// results are two of these.

import { describe, haystack, kindOf, KINDS } from './kinds.js';

const ROW = 28; // px, as in style.css (.log-row height)
const OVERSCAN = 8;

const SHORT = { connection: 'connection', subscription: 'subscription', presence: 'presence', webhook: 'webhook', http: 'HTTP', refusal: 'refusal' };

/** The recording format's header (docs/recording.md): the first line of every recording. */
export function recordingHeader(filter) {
  return JSON.stringify({ format: 'poussr-recording', version: 1, recorded_at_ms: Date.now(), filter });
}

function time(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export function size(n) {
  return n < 1024 ? n + ' B' : (n / 1024).toFixed(1) + ' KB';
}

export class Log {
  constructor(view, spacer, onSelect, onChange, onPick) {
    this.view = view;
    this.spacer = spacer;
    this.onSelect = onSelect;
    this.onChange = onChange; // asks the page for a frame in which to render
    this.onPick = onPick || (() => {}); // a click on a row's channel or client: onPick('channel' | 'client', value)
    this.max = 10000;
    this.all = []; // every kept event, oldest first
    this.shown = []; // the ones that pass the filter
    this.filter = { kinds: new Set(KINDS.map((k) => k.id)), channel: '', exact: false, client: '', event: '', text: '' };
    this.counts = Object.fromEntries(KINDS.map((k) => [k.id, 0])); // received, by kind
    this.paused = false;
    this.frozen = null; // what is shown while paused
    this.skipped = 0;
    this.total = 0;
    this.selected = null;
    this.follow = true; // keep the newest row in view while the operator has not scrolled up
    this.rows = new Map(); // index -> element, the rows now in the DOM
    this.dirty = true;
    view.addEventListener('scroll', () => {
      this.follow = view.scrollTop + view.clientHeight >= view.scrollHeight - ROW * 1.5;
      this.dirty = true;
      this.onChange();
    });
    view.addEventListener('click', (e) => {
      const pick = e.target.closest('[data-pick]');
      if (pick && pick.textContent) {
        this.onPick(pick.dataset.pick, pick.textContent);
        return;
      }
      const row = e.target.closest('.log-row');
      if (row) this.select(this.list()[Number(row.dataset.index)]);
    });
    view.addEventListener('keydown', (e) => this.key(e));
  }

  list() {
    return this.frozen || this.shown;
  }

  matches(e) {
    const f = this.filter;
    if (!f.kinds.has(kindOf(e))) return false;
    if (f.channel) {
      const c = (e.channel || '').toLowerCase();
      if (f.exact ? c !== f.channel : !c.includes(f.channel)) return false;
    }
    if (f.client && e.socket_id !== f.client) return false;
    if (f.event && !(e.type === 'event_published' && e.event.toLowerCase().includes(f.event))) return false;
    if (f.text) {
      const hit = e.type === 'event_published'
        ? e.data.toLowerCase().includes(f.text) || e.channel.toLowerCase().includes(f.text) || e.event.toLowerCase().includes(f.text)
        : haystack(e).includes(f.text);
      if (!hit) return false;
    }
    return true;
  }

  /** Adds the entries of a feed batch (or of a page of search results). */
  add(events, skipped) {
    this.skipped += skipped;
    for (const e of events) {
      const kind = kindOf(e);
      if (kind in this.counts) this.counts[kind] += 1;
      this.total += 1;
      this.all.push(e);
      if (this.matches(e)) this.shown.push(e);
    }
    // Trim in chunks, not one by one: one splice per batch keeps this cheap at high rates.
    if (this.all.length > this.max) {
      const drop = this.all.length - this.max;
      const dropped = this.all.splice(0, drop);
      const last = dropped[dropped.length - 1];
      const cut = this.shown.indexOf(last);
      if (cut >= 0) this.shown.splice(0, cut + 1);
      else if (this.shown.length && this.shown[0].at_ms <= last.at_ms) this.shown = this.all.filter((x) => this.matches(x));
      this.rows.forEach((el) => el.remove());
      this.rows.clear();
    }
    this.dirty = true;
  }

  /**
   * Puts kept events (from the history, oldest first) before what the feed brought: what happened before
   * the window opened. Those not older than the first live event are left out (the feed has them).
   */
  prepend(events) {
    const firstLive = this.all.length ? this.all[0].at_ms : Infinity;
    const older = events.filter((e) => e.at_ms < firstLive).slice(-Math.max(0, this.max - this.all.length));
    if (!older.length) return;
    this.all = older.concat(this.all);
    this.total += older.length;
    this.shown = this.all.filter((e) => this.matches(e));
    if (this.paused) this.frozen = this.shown.slice();
    this.reset();
  }

  setFilter(filter) {
    this.filter = {
      kinds: new Set(filter.kinds),
      channel: filter.channel.toLowerCase(),
      exact: Boolean(filter.exact),
      client: filter.client || '',
      event: filter.event.toLowerCase(),
      text: filter.text.toLowerCase(),
    };
    this.shown = this.all.filter((e) => this.matches(e));
    if (this.paused) this.frozen = this.shown.slice();
    this.reset();
  }

  setPaused(paused) {
    this.paused = paused;
    this.frozen = paused ? this.shown.slice() : null;
    this.reset();
  }

  clear() {
    this.all = [];
    this.shown = [];
    this.frozen = this.paused ? [] : null;
    this.skipped = 0;
    this.total = 0;
    for (const k in this.counts) this.counts[k] = 0;
    this.select(null);
    this.reset();
  }

  reset() {
    this.rows.forEach((el) => el.remove());
    this.rows.clear();
    this.follow = true;
    this.dirty = true;
  }

  select(e) {
    this.selected = e;
    for (const el of this.rows.values()) el.classList.toggle('selected', this.list()[Number(el.dataset.index)] === e);
    this.onSelect(e);
  }

  key(e) {
    const list = this.list();
    if (!list.length || !['ArrowDown', 'ArrowUp', 'Enter'].includes(e.key)) return;
    e.preventDefault();
    let i = this.selected ? list.indexOf(this.selected) : list.length - 1;
    if (e.key === 'ArrowDown') i = Math.min(list.length - 1, i + 1);
    if (e.key === 'ArrowUp') i = Math.max(0, i - 1);
    this.select(list[i]);
    const top = i * ROW;
    if (top < this.view.scrollTop) this.view.scrollTop = top;
    if (top + ROW * 2 > this.view.scrollTop + this.view.clientHeight) this.view.scrollTop = top + ROW * 2 - this.view.clientHeight;
  }

  /** What the filter shows, as a recording (docs/recording.md): the header, then one entry per line, oldest first. */
  recording() {
    const f = this.filter;
    const filter = { kinds: [...f.kinds], channel: f.channel, exact: f.exact, client: f.client, event: f.event, text: f.text };
    const lines = [recordingHeader(filter)];
    // Oldest first by time: entries from two publishers at once can reach the feed a millisecond out of order,
    // and a recording's times never go back (the sort is stable: equal times keep the feed's order).
    const entries = this.list().slice().sort((a, b) => a.at_ms - b.at_ms);
    for (const e of entries) lines.push(JSON.stringify({ ...e, kind: kindOf(e) }));
    return lines.join('\n') + '\n';
  }

  /** Draws the rows in view; called once per animation frame when something changed. */
  render() {
    if (!this.dirty || this.view.offsetParent === null) return;
    this.dirty = false;
    const list = this.list();
    this.view.setAttribute('aria-rowcount', String(list.length));
    this.spacer.style.height = list.length * ROW + 'px';
    if (this.follow) this.view.scrollTop = this.view.scrollHeight;
    const head = ROW; // the sticky header row
    const first = Math.max(0, Math.floor((this.view.scrollTop - head) / ROW) - OVERSCAN);
    const last = Math.min(list.length, Math.ceil((this.view.scrollTop + this.view.clientHeight) / ROW) + OVERSCAN);
    for (const [i, el] of this.rows) {
      if (i < first || i >= last) {
        el.remove();
        this.rows.delete(i);
      }
    }
    for (let i = first; i < last; i++) {
      if (this.rows.has(i)) continue;
      const e = list[i];
      const kind = kindOf(e);
      const d = describe(e);
      const el = document.createElement('div');
      el.className = 'log-row k-' + kind + (e === this.selected ? ' selected' : '') + (d.hint ? ' hinted' : '');
      el.setAttribute('role', 'row');
      el.dataset.index = String(i);
      el.dataset.kind = kind;
      el.style.top = head + i * ROW + 'px';
      const cells = [time(e.at_ms), d.source || SHORT[kind] || kind, d.channel, (d.hint ? '⚠ ' : '') + d.what, d.client, (d.detail || '').slice(0, 200)];
      cells.forEach((text, k) => {
        const span = document.createElement('span');
        span.setAttribute('role', 'gridcell');
        if (k === 1) span.className = 'kind-cell';
        if (k === 5) span.className = 'data';
        const pick = k === 2 && text ? 'channel' : k === 4 && e.socket_id ? 'client' : null;
        if (pick) {
          // Only the name itself is a link: a click elsewhere on the row selects the row.
          const link = document.createElement('span');
          link.dataset.pick = pick;
          link.title = 'Show only the traffic of ' + text;
          link.textContent = text;
          span.append(link);
        } else {
          span.textContent = text;
        }
        el.append(span);
      });
      if (d.hint) el.title = d.hint;
      this.view.append(el);
      this.rows.set(i, el);
    }
  }
}

/** Pretty-printed data: JSON when it parses, else the raw string. */
export function pretty(data) {
  try {
    return JSON.stringify(JSON.parse(data), null, 2);
  } catch {
    return data;
  }
}
