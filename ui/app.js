// Poussr's window. The same files run in the desktop app (where Tauri gives the hub's address and admin
// token) and, served by the hub, in a browser. Everything about the hub is read from its admin API.
//
// This module starts the page and keeps it up to date; each pane lives in its own module.

import { api, conn, connect, tauri } from './api.js';
import { channels, initChannels, loadChannels } from './channels.js';
import { clients, initClients, loadClients } from './clients.js';
import { $, setState, showNotice } from './dom.js';
import { feedOpen, openFeed, requestRender } from './feed.js';
import { initLiveLog, loadLogHistory } from './livelog.js';
import { initOverview, renderError, renderOverview } from './overview.js';
import { initChannelPage } from './channel.js';
import { initPublish } from './publish.js';
import { initReplay } from './replay.js';
import { initSearch } from './search.js';
import { initSettings } from './settings.js';
import { currentPane, initTabs, showPane } from './tabs.js';

let timer = null;

/** The sign-in screen (browser only): shown when the token is missing or refused; nothing else is shown. */
function showSignIn(message) {
  $('signin').hidden = false;
  document.querySelector('.tabs').hidden = true;
  for (const pane of document.querySelectorAll('.pane')) pane.hidden = true;
  $('signin-result').textContent = message || '';
  setState('offline', 'Signed out');
  $('signin-token').focus();
}

async function refresh() {
  if (conn.status && conn.status.state === 'error') {
    renderError(conn.status);
    return;
  }
  if (!conn.token) {
    showSignIn();
    return;
  }
  try {
    renderOverview(await api('/admin/api/overview'));
    if (!feedOpen()) openFeed();
    loadLogHistory();
    // The channel list also fills the Publish form's suggestions; the client list is only for its pane,
    // which loads it when it opens.
    if (channels.stale || currentPane() === 'channels') await loadChannels();
    if (currentPane() === 'clients') await loadClients();
  } catch (e) {
    if (e.status === 401 && !tauri) {
      sessionStorage.removeItem('poussr-token');
      conn.token = null;
      showSignIn('That token was refused: ' + e.message);
      return;
    }
    setState('offline', 'Hub unreachable');
    $('running').hidden = true;
    showNotice('Cannot reach the hub at ' + conn.base + ': ' + e.message);
  }
}

/** Panes built from snapshots are refreshed at most once a second, and only when visible and changed. */
function refreshPanes() {
  if (document.visibilityState !== 'visible') return;
  if (currentPane() === 'channels' && channels.stale) loadChannels();
  if (currentPane() === 'clients' && clients.stale) loadClients();
  if (currentPane() === 'overview') requestRender();
}

/** Refreshes every 2 s while the window is visible, and not at all while it is hidden. */
function schedule() {
  clearInterval(timer);
  timer = null;
  if (document.visibilityState === 'visible') {
    refresh();
    timer = setInterval(refresh, 2000);
  }
}

function wire() {
  initTabs();
  initOverview();
  initChannels();
  initClients();
  initLiveLog();
  initSearch();
  initChannelPage();
  initPublish();
  initReplay();
  initSettings({ refresh });
  document.addEventListener('visibilitychange', schedule);
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    conn.token = $('signin-token').value.trim();
    sessionStorage.setItem('poussr-token', conn.token);
    $('signin').hidden = true;
    document.querySelector('.tabs').hidden = false;
    showPane('overview');
    refresh();
  });
  setInterval(refreshPanes, 1000);
  requestRender();
}

wire();
connect()
  .then(schedule)
  .catch((e) => {
    setState('error', 'Error');
    showNotice(String((e && e.message) || e));
  });
