// The tab bar over the panes: which pane shows, what each pane does when it is shown, and the counts after
// Channels and Clients.

import { $, setText } from './dom.js';
import { onBatch, requestRender } from './feed.js';

const shown = new Map(); // pane name -> what to do when it is shown
let current = 'overview';

/** Calls fn each time the pane `name` is shown. */
export function onShow(name, fn) {
  shown.set(name, fn);
}

export function currentPane() {
  return current;
}

export function showPane(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    if (tab.dataset.pane === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  for (const pane of document.querySelectorAll('.pane')) pane.hidden = pane.id !== 'pane-' + name;
  current = name;
  shown.get(name)?.();
  requestRender();
}

export function initTabs() {
  for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => showPane(tab.dataset.pane));
  onBatch((batch) => {
    setText($('count-clients'), '(' + batch.stats.connections + ')');
    setText($('count-channels'), '(' + batch.stats.channels + ')');
  });
}
