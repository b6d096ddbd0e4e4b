// Tabs, after the WAI-ARIA tabs pattern: the shared keyboard and selection code of any tab list, and the tab
// bar over the panes (which pane shows, what each pane does when shown, the counts after Channels and Clients).

import { $, setText } from './dom.js';
import { onBatch, requestRender } from './feed.js';

/**
 * Makes `list` (role="tablist", holding role="tab" elements) work as tabs: a click, Left and Right (wrapping
 * around), Home and End select a tab and call select(tab); keys also move the focus to it. Hidden tabs are
 * skipped. The selected tab alone is in the Tab order (see markSelected).
 */
export function tablist(list, select) {
  list.addEventListener('click', (e) => {
    const tab = e.target.closest('[role="tab"]');
    if (tab) select(tab);
  });
  list.addEventListener('keydown', (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;
    const tabs = [...list.querySelectorAll('[role="tab"]')].filter((t) => !t.hidden);
    const i = tabs.indexOf(e.target.closest('[role="tab"]'));
    if (i < 0) return;
    const to = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1
      : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : null;
    if (to === null) return;
    e.preventDefault();
    const tab = tabs[(to + tabs.length) % tabs.length];
    tab.focus();
    select(tab);
  });
}

/** Marks `tab` as the selected one of its list: aria-selected, and tabindex 0 on it, -1 on the others. */
export function markSelected(tab) {
  for (const t of tab.closest('[role="tablist"]').querySelectorAll('[role="tab"]')) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
  }
}

// ---- The panes ----

const shown = new Map(); // pane name -> what to do when it is shown
let current = 'overview';

/** Calls fn each time the pane `name` is shown. */
export function onShow(name, fn) {
  shown.set(name, fn);
}

export function currentPane() {
  return current;
}

/** Shows the pane `name` (overview, channels, clients, log, publish, settings) and selects its tab. */
export function showPane(name) {
  markSelected($('tab-' + name));
  for (const pane of document.querySelectorAll('.pane')) pane.hidden = pane.id !== 'pane-' + name;
  current = name;
  shown.get(name)?.();
  requestRender();
}

/** A count in at most four characters, the room style.css keeps for it: 999, 1.2k, 12k, then 99k+. */
export function shortCount(n) {
  if (n < 1000) return String(n);
  if (n < 10000) return Math.floor(n / 100) / 10 + 'k';
  if (n < 100000) return Math.floor(n / 1000) + 'k';
  return '99k+';
}

/**
 * Shows n (null: nothing) after the tab of `pane` (channels or clients), in a box of fixed width, so that a
 * count appearing or growing never moves the tabs; a shortened count has the exact one as its tooltip.
 */
export function setCount(pane, n) {
  const el = $('count-' + pane);
  setText(el, n === null ? '' : shortCount(n));
  const exact = n !== null && n >= 1000 ? n.toLocaleString() : '';
  if (el.title !== exact) el.title = exact;
}

export function initTabs() {
  tablist(document.querySelector('.tabs'), (tab) => showPane(tab.dataset.pane));
  onBatch((batch) => {
    setCount('clients', batch.stats.connections);
    setCount('channels', batch.stats.channels);
  });
}
