// The tray and its window: the window is a program of its own (`poussr-window`) that the tray
// starts and that ends when it closes, so the hub never restarts and no client is dropped; a crash of WebKit
// never reaches the hub; start at login writes the XDG autostart entry, and a start from it comes up hidden
// and serving. Every folder is the test's own (HOME, XDG_CONFIG_HOME, XDG_DATA_HOME): nothing touches the
// real login.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  APP, BIN, closeWindows, configDir, freePort, health, launch, openPane, previousAppGone, useDriver, waitFor,
  waitText, webProcesses, windowClasses, windowProcesses,
} from './app.mjs';

// The app WebDriver starts inherits this: its autostart entry goes to a folder of this file's own.
const XDG = mkdtempSync(path.join(tmpdir(), 'poussr-xdg-'));
process.env.XDG_CONFIG_HOME = XDG;
const ENTRY = path.join(XDG, 'autostart', 'poussr.desktop');

useDriver();

/** Ticks or unticks a box the way a click does, without focusing it (see fillField in app.mjs). */
function tick(browser, id, on) {
  return browser.execute((el, value) => {
    const box = document.getElementById(el);
    if (box.checked !== value) box.click();
    return box.checked;
  }, id, on);
}

/** Starts the app outside WebDriver; its log (RUST_LOG=info), its window process's included, is kept. */
function start(args, env) {
  const child = spawn(BIN, args, { env: { ...process.env, RUST_LOG: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.log = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (child.log += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (child.log += d));
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return child;
}

/**
 * The program and arguments of a desktop entry's Exec line, read as the Desktop Entry Specification says: the
 * string escapes first (`\\` is one backslash), then the quoting (`\"` in a quoted argument), then `%%`.
 */
function execLine(entry) {
  const line = entry.split('\n').find((l) => l.startsWith('Exec='));
  const value = line.slice('Exec='.length).replace(/\\(.)/g, (_, c) => ({ s: ' ', n: '\n', t: '\t', r: '\r' })[c] ?? c);
  const m = value.match(/^"((?:[^"\\]|\\.)*)"(.*)$/);
  assert.ok(m, `a quoted program in ${line}`);
  return [m[1].replace(/\\(.)/g, '$1').replace(/%%/g, '%'), m[2].trim().split(/\s+/).filter(Boolean)];
}

/** How many times a window of the app loaded its page (the window process logs it). */
function pagesLoaded(app) {
  return app.log.split("the window's page is loaded").length - 1;
}

/** A Pusher client on `port`, subscribed to `channel`; resolves once subscribed. */
async function client(port, channel) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
  ws.frames = [];
  ws.closedWith = null;
  ws.on('message', (m) => ws.frames.push(JSON.parse(m)));
  ws.on('close', (code) => (ws.closedWith = code));
  ws.on('error', () => {});
  await waitFor('a connection', () => ws.frames.some((f) => f.event === 'pusher:connection_established'));
  ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel } }));
  await waitFor('a subscription', () => ws.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'));
  return ws;
}

test('the Settings switch creates and removes the XDG autostart entry', async () => {
  const port = await freePort();
  const browser = await launch(configDir(port));
  try {
    await waitText(browser, '#state', `Running on port ${port}`);
    await openPane(browser, 'settings');
    // A folder given with --config-dir never touches the login: no entry at first.
    await waitText(browser, '#start-at-login-hint', `Would be written to: ${ENTRY}`);
    assert.equal(existsSync(ENTRY), false);
    assert.equal(await tick(browser, 'start-at-login', true), true);
    await (await browser.$('#apply-settings')).click();
    await waitText(browser, '#settings-result', 'Applied');
    await waitText(browser, '#start-at-login-hint', `Entry: ${ENTRY}`);
    const [program, args] = execLine(readFileSync(ENTRY, 'utf8'));
    assert.equal(program, BIN);
    assert.deepEqual(args, ['--hidden']);

    assert.equal(await tick(browser, 'start-at-login', false), false);
    await (await browser.$('#apply-settings')).click();
    await waitFor('the entry to be removed', () => !existsSync(ENTRY));
    await waitText(browser, '#start-at-login-hint', 'Would be written to:');
  } finally {
    await browser.deleteSession();
  }
});

test('a fresh install starts at login; from its entry Poussr comes up hidden and serving, and opens on request', async (t) => {
  await previousAppGone();
  const home = mkdtempSync(path.join(tmpdir(), 'poussr-home-'));
  const port = await freePort();
  // No --config-dir: the settings go to the (test's) XDG folders, as after an install.
  const env = {
    HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), XDG_DATA_HOME: path.join(home, '.local', 'share'),
    POUSSR_BIND: '127.0.0.1', POUSSR_PORT: String(port),
  };
  const entry = path.join(home, '.config', 'autostart', 'poussr.desktop');
  const first = start([], env);
  t.after(() => first.kill('SIGKILL'));
  await waitFor('/health at the first launch', () => health(port), 30000);
  await waitFor('the entry written at the first launch', () => existsSync(entry));
  await waitFor('the window of the first launch', () => windowProcesses(first.pid).length === 1);
  start(['--quit'], env);
  assert.deepEqual(await first.exited, { code: 0, signal: null });

  // Started as the login would start it.
  await previousAppGone();
  const [program, args] = execLine(readFileSync(entry, 'utf8'));
  const login = start(args, { ...env, PATH: process.env.PATH });
  assert.equal(program, BIN);
  t.after(() => login.kill('SIGKILL'));
  await waitFor('the hidden start to finish', () => login.log.includes('started hidden'), 30000);
  assert.equal((await health(port)).status, 'ok');
  assert.deepEqual(windowProcesses(login.pid), [], 'no window');
  assert.deepEqual(webProcesses(login.pid), [], 'no WebKit at all');
  // The tray is a program without Tauri: WebKit's libraries are not even mapped into it.
  const webkitMapped = (pid) => /libwebkit2gtk|libjavascriptcoregtk/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  assert.equal(webkitMapped(login.pid), false, 'the tray never loads WebKit');

  // The checks above can fail: asked to open (a second launch, as the menu's Open Poussr), a window comes,
  // and its program has WebKit.
  start([], env);
  await waitFor('the window after Open Poussr', () => windowProcesses(login.pid).length === 1, 30000);
  const [shown] = windowProcesses(login.pid);
  await waitFor('WebKit in the window process', () => webkitMapped(shown.pid), 30000);
  assert.equal(webkitMapped(login.pid), false, 'and still not in the tray');
  // The window is another program, but to the desktop it is Poussr's: its class is the launcher's
  // StartupWMClass, the tray's program name, so the dock shows it under Poussr's icon.
  await waitFor('the window on the display', () => windowClasses().length === 1, 30000);
  assert.deepEqual(windowClasses(), [path.basename(BIN)]);
  start(['--quit'], env);
  assert.deepEqual(await login.exited, { code: 0, signal: null });
  await waitFor('the window process to end with the app', () => !existsSync(`/proc/${shown.pid}`), 15000);
});

test('with 100 clients, the window opens and closes 5 times: no client is dropped, the hub never restarts', async (t) => {
  await previousAppGone();
  const port = await freePort();
  const env = { XDG_CONFIG_HOME: XDG };
  const app = start(['--config-dir', configDir(port), '--hidden'], env);
  t.after(() => app.kill('SIGKILL'));
  await waitFor('/health', () => health(port), 30000);
  const clients = [];
  for (let i = 0; i < 100; i++) clients.push(await client(port, 'tray-cycle'));
  const before = await health(port);
  const since = Date.now();
  for (let round = 1; round <= 5; round++) {
    start([], env); // Open Poussr
    await waitFor(`window ${round} to load its page`, () => pagesLoaded(app) === round, 30000);
    assert.equal(windowProcesses(app.pid).length, 1);
    assert.ok(closeWindows() >= 1, 'a window titled Poussr was there to close');
    await waitFor(`window ${round} to close`, () => windowProcesses(app.pid).length === 0 && webProcesses(app.pid).length === 0, 30000);
  }
  const after = await health(port);
  assert.equal(after.connections, 100, 'every client is still connected');
  // The same hub all along: a restarted one would count its uptime from the restart.
  assert.ok(after.uptime_secs >= before.uptime_secs + Math.floor((Date.now() - since) / 1000) - 1,
    `the hub's uptime went on (${before.uptime_secs} s, then ${after.uptime_secs} s ${Date.now() - since} ms later)`);
  assert.deepEqual(clients.filter((c) => c.closedWith !== null).map((c) => c.closedWith), []);
  // And each still receives: an event published now reaches all 100.
  const res = await fetch(`http://127.0.0.1:${port}/v1/channels/tray-cycle/events?name=after`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 201);
  await waitFor('the event at every client', () => clients.every((c) => c.frames.some((f) => f.event === 'after')));
  for (const c of clients) c.terminate();
  start(['--quit'], env);
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});

test('killing the window’s WebKit process never reaches the hub, and the window comes back working', async (t) => {
  await previousAppGone();
  const port = await freePort();
  const app = start(['--config-dir', configDir(port)], {});
  t.after(() => app.kill('SIGKILL'));
  await waitFor('the window to load its page', () => pagesLoaded(app) === 1, 30000);
  const ws = await client(port, 'crash');
  const killed = webProcesses(app.pid);
  assert.ok(killed.length > 0, 'the window has a WebKit web process');
  for (const web of killed) process.kill(web.pid, 'SIGKILL');
  // The window process loads the page again in a new web process; the hub and its client never noticed.
  await waitFor('the page loaded again', () => pagesLoaded(app) === 2, 30000);
  assert.match(app.log, /WebKit's web process ended \(Crashed\); loading the page again/);
  assert.ok(webProcesses(app.pid).some((p) => !killed.some((k) => k.pid === p.pid)), 'a new web process');
  assert.equal((await health(port)).connections, 1);
  assert.equal(ws.closedWith, null);

  // The whole window process killed: the hub goes on, and Open Poussr brings a new window.
  const [windowProcess] = windowProcesses(app.pid);
  process.kill(windowProcess.pid, 'SIGKILL');
  // The tray says when it has seen the window process end (a killed process sends no "closing" line).
  await waitFor('the tray to see the window process end', () => app.log.includes('the window process ended with'), 15000);
  assert.equal((await health(port)).connections, 1);
  start([], {}); // Open Poussr
  await waitFor('the new window to load its page', () => pagesLoaded(app) === 3, 30000);
  assert.ok(windowProcesses(app.pid).some((p) => p.pid !== windowProcess.pid), 'a new window process');
  assert.equal(ws.closedWith, null);
  ws.terminate();
  start(['--quit'], {});
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});
