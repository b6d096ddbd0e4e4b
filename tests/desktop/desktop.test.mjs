// The real Poussr window, driven over WebDriver: tauri-driver starts the desktop binary through
// WebKitWebDriver; webdriverio clicks and reads like an operator. Each test gets its own config folder
// and free ports on 127.0.0.1, and ends the app it started.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Key, remote } from 'webdriverio';
import WebSocket from 'ws';
import { assertBuilt, cargoBinary } from '../cargo-bin.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = desktopBinary();
const DRIVER = process.env.TAURI_DRIVER || 'tauri-driver';
const SHOTS = path.join(here, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let driver;
let driverPort;

/**
 * The app under test: $POUSSR_DESKTOP_BIN, else the debug build in cargo's target directory, as `cargo metadata`
 * tells it (so CARGO_TARGET_DIR is honoured). Without it, the run fails at once, saying where it looked.
 */
function desktopBinary() {
  const bin = cargoBinary('poussr-desktop', 'POUSSR_DESKTOP_BIN');
  assertBuilt(bin, 'desktop app', 'cargo build -p poussr-desktop');
  return bin.path;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function reachable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function waitFor(what, check, timeout = 15000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

async function health(port) {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
  return res.ok ? res.json() : null;
}

const APP = { id: '777', key: 'desktopkey1234567890', secret: 'desktopsecret12345678901234567890', enabled: true };

/** A config folder whose settings.json makes the app listen on 127.0.0.1:port. */
function configDir(port) {
  const dir = mkdtempSync(path.join(tmpdir(), 'poussr-desktop-'));
  writeFileSync(path.join(dir, 'settings.json'), JSON.stringify({ bind: '127.0.0.1', port, app: APP }, null, 2));
  return dir;
}

/** The app's single-instance name on the session bus (tauri-plugin-single-instance: `<identifier>.SingleInstance`). */
const INSTANCE_NAME = JSON.parse(readFileSync(path.resolve(here, '../../src-tauri/tauri.conf.json'), 'utf8')).identifier
  + '.SingleInstance';

/**
 * Whether the single-instance name is still owned on this session bus. The bus may still hold it for the app a
 * test ended after that process is gone from /proc; an app launched then hands over to it and exits.
 */
function instanceNameOwned() {
  try {
    const reply = execFileSync('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus',
      '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', `string:${INSTANCE_NAME}`],
    { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
    return /boolean true/.test(reply);
  } catch {
    return false; // no session bus to ask: then no other instance can be found through it either
  }
}

/** Whether a process of the app under test is still running (found by its program name in /proc). */
function appRunning() {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
      if (argv0 === BIN || path.basename(argv0) === path.basename(BIN)) return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}

/**
 * A second instance hands over to the first one (single instance) and exits at once, so the app a previous test
 * closed must be gone, and its name on the session bus released (seconds later, under load), before the next
 * one starts: else WebKitWebDriver waits for a window forever, or nothing answers on the new port.
 */
async function previousAppGone() {
  await waitFor('the previous app to exit', () => !appRunning(), 20000);
  await waitFor(`the bus to release ${INSTANCE_NAME}`, () => !instanceNameOwned(), 20000);
}

async function launch(dir) {
  await previousAppGone();
  return remote({
    hostname: '127.0.0.1',
    port: driverPort,
    logLevel: 'error',
    connectionRetryCount: 0,
    capabilities: {
      browserName: 'wry',
      'wdio:enforceWebDriverClassic': true,
      'tauri:options': { application: BIN, args: ['--config-dir', dir] },
    },
  });
}

/**
 * A screenshot once the window has painted what the DOM says: two frames later, a frame has been painted since
 * the DOM last changed (a fixed pause would be a guess).
 */
async function screenshot(browser, name) {
  await browser.execute(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await browser.saveScreenshot(path.join(SHOTS, name));
}

/**
 * Sets a field's value the way an input method does (value + input event) and returns what it holds.
 * Focusing a field with suggestions opens its popup in WebKitGTK, and while it is open WebKitWebDriver counts
 * nothing under it as interactable and typed keys can land in it; so fields are filled without focus.
 */
function fillField(browser, id, text) {
  return browser.execute((el, value) => {
    const field = document.getElementById(el);
    field.value = value;
    field.dispatchEvent(new Event('input', { bubbles: true }));
    return field.value;
  }, id, text);
}

/**
 * Opens a pane through its tab (role="tab", id tab-<pane>) and waits until that tab is selected and its pane shows.
 * The click waits for the window's script to have started (it changes the state pill from "Connecting…"): a click
 * before that is lost, there being nothing yet to handle it.
 */
async function openPane(browser, pane) {
  await waitFor('the window\'s script to start', () =>
    browser.execute(() => document.getElementById('state').dataset.state !== 'connecting'));
  await (await browser.$(`[role="tab"]#tab-${pane}`)).click();
  await waitFor(`the ${pane} pane`, () => browser.execute((id) => {
    const tab = document.getElementById(id);
    const panel = document.getElementById(tab.getAttribute('aria-controls'));
    return tab.getAttribute('aria-selected') === 'true' && panel.getAttribute('role') === 'tabpanel' && !panel.hidden;
  }, `tab-${pane}`));
}

async function textOf(browser, selector) {
  return (await browser.$(selector)).getText();
}

async function waitText(browser, selector, includes, timeout = 15000) {
  return waitFor(`${selector} to show "${includes}"`, async () => {
    const t = await textOf(browser, selector);
    if (t.includes(includes)) return t;
    throw new Error(`it shows ${JSON.stringify(t)}`);
  }, timeout);
}

/** Like waitText, for content WebDriver's getText does not see (rows laid out inside a `contain: strict` box). */
async function waitInner(browser, id, includes, timeout = 15000) {
  return waitFor(`#${id} to show "${includes}"`, async () => {
    const t = await browser.execute((el) => document.getElementById(el).innerText, id);
    return t.includes(includes) ? t : false;
  }, timeout);
}

before(async () => {
  driverPort = await freePort();
  const nativePort = await freePort();
  // Its output through pipes, not this process's own stdout and stderr: a driver that outlived this process
  // would keep those open, and the test runner would wait for their end forever.
  driver = spawn(DRIVER, ['--port', String(driverPort), '--native-port', String(nativePort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  driver.stdout.pipe(process.stdout);
  driver.stderr.pipe(process.stderr);
  await waitFor('tauri-driver to listen', () => reachable(driverPort), 20000);
});

// Stopped from outside (the runner's timeout sends SIGTERM, ^C sends SIGINT): the driver goes too, and stops
// WebKitWebDriver and the app with it.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    driver?.kill();
    process.exit(1);
  });
}

after(() => {
  driver?.kill();
});

test('the app starts, serves /health on its port and shows that it runs', async () => {
  const port = await freePort();
  const dir = configDir(port);
  const started = Date.now();
  const browser = await launch(dir);
  try {
    const h = await waitFor('/health', () => health(port));
    assert.equal(h.status, 'ok');
    console.log(`launch to /health: ${Date.now() - started} ms (WebDriver session start included)`);
    await waitText(browser, '#state', `Running on port ${port}`);
    const addresses = await textOf(browser, '#addresses');
    assert.match(addresses, new RegExp(`:${port}`));
    assert.equal(await textOf(browser, '#app-key'), APP.key);
    // The secret is hidden until the operator asks for it.
    assert.doesNotMatch(await textOf(browser, '#app-secret'), new RegExp(APP.secret));
    await (await browser.$('#reveal-secret')).click();
    await waitText(browser, '#app-secret', APP.secret);
    assert.match(await textOf(browser, '#snippet'), new RegExp(`new Pusher\\('${APP.key}'`));
    await (await browser.$('#reveal-secret')).click();
    // The chart is first drawn a second after the page loads (with the rate beside it): shown drawn.
    await waitInner(browser, 'rate-now', 'events/s');
    await screenshot(browser, 'overview.png');
    await openPane(browser, 'settings');
    await waitFor('the settings form', async () => (await (await browser.$('#port')).getValue()) === String(port));
    await screenshot(browser, 'settings.png');

    // The tab keys in the window's WebKit: Left and Right move and select (wrapping), Home and End go to the
    // ends; the selected tab alone is in the Tab order, and has the focus.
    const tabs = () => browser.execute(() => {
      const all = [...document.querySelectorAll('.tabs [role="tab"]')];
      return {
        selected: all.filter((t) => t.getAttribute('aria-selected') === 'true').map((t) => t.id),
        tabbable: all.filter((t) => t.tabIndex === 0).map((t) => t.id),
        focused: document.activeElement?.id,
        panes: [...document.querySelectorAll('.pane')].filter((p) => !p.hidden).map((p) => p.id),
      };
    });
    const selected = (pane) => ({ selected: [`tab-${pane}`], tabbable: [`tab-${pane}`], focused: `tab-${pane}`, panes: [`pane-${pane}`] });
    await browser.execute(() => document.getElementById('tab-settings').focus());
    for (const [key, pane] of [[Key.ArrowRight, 'overview'], [Key.ArrowLeft, 'settings'], [Key.Home, 'overview'],
      [Key.ArrowRight, 'channels'], [Key.End, 'settings'], [Key.ArrowLeft, 'publish']]) {
      await browser.keys([key]);
      await waitFor(`the ${pane} tab after a key`, async () => {
        assert.deepEqual(await tabs(), selected(pane));
        return true;
      }, 5000);
    }

    // The counts' room in this WebKit, with its fonts: the tabs keep their place from no count to "99k+".
    const moved = await browser.execute(async () => {
      const { setCount } = await import(new URL('tabs.js', location.href));
      const boxes = () => JSON.stringify([...document.querySelectorAll('.tabs [role="tab"]')]
        .map((tab) => Object.values(tab.getBoundingClientRect().toJSON())));
      setCount('channels', null);
      setCount('clients', null);
      const first = boxes();
      const moves = [];
      for (const n of [0, 42, 999, 1234, 99999, 123456]) {
        setCount('channels', n);
        setCount('clients', n);
        const el = document.getElementById('count-channels');
        if (boxes() !== first || el.scrollWidth > el.clientWidth) moves.push([n, el.textContent, boxes()]);
      }
      return { first, moves };
    });
    assert.deepEqual(moved.moves, [], `the tabs stay at ${moved.first}`);
  } finally {
    await browser.deleteSession();
  }
});

test('changing the port in Settings moves the hub, closes old clients with 4200, and is kept', async () => {
  const oldPort = await freePort();
  const newPort = await freePort();
  const dir = configDir(oldPort);
  let browser = await launch(dir);
  try {
    await waitFor('/health on the old port', () => health(oldPort));
    await waitText(browser, '#state', `Running on port ${oldPort}`);
    // A Pusher client on the old port, to see how it is closed.
    const ws = new WebSocket(`ws://127.0.0.1:${oldPort}/app/${APP.key}?protocol=7`);
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });

    await openPane(browser, 'settings');
    const portInput = await browser.$('#port');
    await waitFor('the settings form', async () => (await portInput.getValue()) === String(oldPort));
    await portInput.setValue(String(newPort));
    await (await browser.$('#apply-settings')).click();
    await waitText(browser, '#settings-result', 'Applied');

    assert.equal((await health(newPort)).status, 'ok');
    assert.equal(await reachable(oldPort), false, 'the old port is released');
    assert.equal(await closed, 4200, 'clients on the old port were told to reconnect');
    const saved = JSON.parse(readFileSync(path.join(dir, 'settings.json'), 'utf8'));
    assert.equal(saved.port, newPort);
  } finally {
    await browser.deleteSession();
  }
  await waitFor('the app to exit', async () => !(await reachable(newPort)));
  // Started again, it comes back on the new port.
  browser = await launch(dir);
  try {
    assert.equal((await waitFor('/health after restart', () => health(newPort))).status, 'ok');
    await waitText(browser, '#state', `Running on port ${newPort}`);
  } finally {
    await browser.deleteSession();
  }
});

test('a port taken at launch is shown in the window, and another port can be chosen there', async () => {
  const blocker = net.createServer();
  await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
  const taken = blocker.address().port;
  const other = await freePort();
  const browser = await launch(configDir(taken));
  try {
    await waitText(browser, '#state', 'Not running');
    const message = await waitText(browser, '#start-error-message', 'already in use');
    assert.match(message, new RegExp(String(taken)));
    await screenshot(browser, 'port-taken.png');
    const input = await browser.$('#retry-port');
    await input.setValue(String(other));
    await (await browser.$('#port-form button[type="submit"]')).click();
    await waitText(browser, '#state', `Running on port ${other}`);
    assert.equal((await health(other)).status, 'ok');
  } finally {
    await browser.deleteSession();
    blocker.close();
  }
});

test('the dashboard panes work in the window: a test event published from the form reaches a client, and is kept', async () => {
  const port = await freePort();
  const dir = configDir(port);
  const browser = await launch(dir);
  try {
    await waitFor('/health', () => health(port));
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
    const frames = [];
    ws.on('message', (m) => frames.push(JSON.parse(m)));
    await waitFor('the connection', () => frames.length > 0);
    ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'desk-orders' } }));
    await waitFor('the subscription', () => frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'));

    // The counts after Channels and Clients have their room kept, so the Publish tab is where it was whether
    // or not the window has learnt of the subscriber yet (once, a click landed on Live log as a count appeared).
    await openPane(browser, 'publish');
    // Filled without focus (see fillField), checked, and the Send event button clicked.
    const fill = (id, text) => fillField(browser, id, text);
    assert.equal(await fill('pub-channel', 'desk-orders'), 'desk-orders');
    assert.equal(await fill('pub-event', 'from-window'), 'from-window');
    assert.equal(await fill('pub-data', '{"n": 1}'), '{"n": 1}');
    const submit = await browser.$('#pub-submit');
    assert.equal(await submit.getText(), 'Send event');
    await submit.scrollIntoView({ block: 'center' });
    if (!(await submit.waitForClickable({ timeout: 5000 }).then(() => true, () => false))) {
      await screenshot(browser, 'publish-not-clickable.png');
      assert.fail('the Send event button cannot be clicked (see screenshots/publish-not-clickable.png)');
    }
    await submit.click();
    await waitText(browser, '#pub-result', 'delivered to 1 subscriber');
    const got = await waitFor('the event at the client', () => frames.find((f) => f.event === 'from-window'));
    assert.deepEqual(got, { event: 'from-window', channel: 'desk-orders', data: '{"n": 1}' });
    await screenshot(browser, 'publish.png');

    await openPane(browser, 'log');
    await waitInner(browser, 'log-view', 'from-window');
    await screenshot(browser, 'log.png');
    await openPane(browser, 'clients');
    await waitInner(browser, 'clients-body', 'desk-orders');
    await screenshot(browser, 'clients.png');
    await openPane(browser, 'channels');
    await waitInner(browser, 'channels-body', 'desk-orders');
    await waitInner(browser, 'count-channels', '1');
    await waitInner(browser, 'count-clients', '1');
    await screenshot(browser, 'channels.png');

    // The history keeps the event, in the app's own folder; Settings show it and clear it (two clicks).
    assert.ok(existsSync(path.join(dir, 'history', 'history.sqlite')), 'the store is beside the settings');
    await openPane(browser, 'settings');
    await waitText(browser, '#history-summary', '1 event kept in 1 channel');
    assert.match(await textOf(browser, '#history-summary'), /\d+(\.\d)? (B|KiB|MiB) on disk/);
    const clear = await browser.$('#clear-history');
    await clear.click();
    await waitText(browser, '#clear-history', 'Click again');
    await clear.click();
    await waitText(browser, '#history-result', 'Cleared');
    await waitText(browser, '#history-summary', '0 events kept');
    await screenshot(browser, 'settings-history.png');
    ws.close();
  } finally {
    await browser.deleteSession();
  }
});

test('webhook and client-event settings from the window are saved and used by the hub', async () => {
  // The webhook receiver: a backend on this machine that keeps every request, its headers and its raw body.
  const posts = [];
  const receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let json = null;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        // Kept as it came; the checks below then fail with what was received.
      }
      posts.push({ method: req.method, url: req.url, headers: req.headers, raw, json });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise((resolve, reject) => {
    receiver.once('error', reject);
    receiver.listen(0, '127.0.0.1', resolve);
  });
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  const port = await freePort();
  const dir = configDir(port);
  const saved = () => JSON.parse(readFileSync(path.join(dir, 'settings.json'), 'utf8'));
  let ws;
  try {
    const browser = await launch(dir);
    try {
      await waitFor('/health', () => health(port));
      // The same workarounds as the publish form: fields filled without focus (fillField), boxes ticked the same
      // way (checked + change event), and Apply clicked once WebKitWebDriver finds it clickable.
      const fill = (id, text) => fillField(browser, id, text);
      const tick = (selector, on) => browser.execute((sel, value) => {
        const box = document.querySelector(sel);
        box.checked = value;
        box.dispatchEvent(new Event('change', { bubbles: true }));
        return box.checked;
      }, selector, on);
      const hookBox = (kind) => `input[name="webhook_event"][value="${kind}"]`;
      const kinds = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event',
        'cache_miss'];
      const form = () => browser.execute(() => ({
        url: document.getElementById('webhook-url').value,
        clientEvents: document.getElementById('client-events').checked,
        events: [...document.querySelectorAll('input[name="webhook_event"]:checked')].map((b) => b.value),
      }));
      const apply = async () => {
        const button = await browser.$('#apply-settings');
        await button.waitForClickable({ timeout: 5000 });
        await button.click();
      };

      await openPane(browser, 'settings');
      await waitFor('the settings form', async () => (await (await browser.$('#port')).getValue()) === String(port));
      // Nothing about webhooks in the file yet: no URL, client events allowed, every kind ticked (= all of them).
      assert.deepEqual(await form(), { url: '', clientEvents: true, events: kinds });

      // The hub calls webhooks over plain http:// only; an https:// URL is refused and nothing is saved.
      assert.equal(await fill('webhook-url', 'https://backend.example/hook'), 'https://backend.example/hook');
      await apply();
      const refused = await waitText(browser, '#settings-result', 'http://');
      assert.doesNotMatch(refused, /Applied/);
      assert.match(await (await browser.$('#settings-result')).getAttribute('class'), /\bbad\b/);
      assert.equal(saved().app.webhooks, undefined, 'the refused webhook is not saved');
      assert.equal((await health(port)).status, 'ok', 'the hub still runs with the previous settings');

      // The receiver, for channel_occupied only, and client events turned off.
      assert.equal(await fill('webhook-url', hookUrl), hookUrl);
      for (const kind of kinds.filter((k) => k !== 'channel_occupied')) {
        assert.equal(await tick(hookBox(kind), false), false);
      }
      assert.equal(await tick(hookBox('channel_occupied'), true), true);
      assert.equal(await tick('#client-events', false), false);
      await apply();
      await waitText(browser, '#settings-result', 'Applied');
      await screenshot(browser, 'settings-webhook.png');
      const app = saved().app;
      assert.equal(app.client_events, false);
      assert.deepEqual(app.webhooks, [{ url: hookUrl, events: ['channel_occupied'] }]);
      assert.equal(app.key, APP.key, 'the app credentials are kept');
      assert.equal(app.secret, APP.secret);

      // The restarted hub uses them: a first subscriber to a channel makes it POST channel_occupied, signed.
      await waitFor('/health after Apply', () => health(port));
      ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
      const frames = [];
      ws.on('message', (m) => frames.push(JSON.parse(m)));
      ws.on('error', (e) => frames.push({ event: 'ws-error', data: String(e) }));
      await waitFor('the connection', () => frames.some((f) => f.event === 'pusher:connection_established'));
      ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'desk-hook' } }));
      await waitFor('the subscription', () =>
        frames.some((f) => f.event === 'pusher_internal:subscription_succeeded' && f.channel === 'desk-hook'));
      const occupied = (channel) =>
        posts.find((p) => p.json?.events?.some((e) => e.name === 'channel_occupied' && e.channel === channel));
      const post = await waitFor('the channel_occupied webhook', () => occupied('desk-hook'), 10000);
      assert.equal(post.method, 'POST');
      assert.equal(post.url, '/hook');
      assert.match(post.headers['content-type'], /^application\/json/);
      assert.equal(post.headers['x-pusher-key'], APP.key);
      const signature = createHmac('sha256', APP.secret).update(post.raw).digest('hex');
      assert.equal(post.headers['x-pusher-signature'], signature);

      // Only the ticked kind is sent: leaving desk-hook vacates it, then a second channel is occupied. The hub
      // queues its webhooks in order, so a channel_vacated would reach the receiver before that second POST.
      ws.send(JSON.stringify({ event: 'pusher:unsubscribe', data: { channel: 'desk-hook' } }));
      ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'desk-hook-2' } }));
      await waitFor('the second channel_occupied webhook', () => occupied('desk-hook-2'), 10000);
      const sent = posts.flatMap((p) => p.json?.events ?? [{ name: `unparsed body ${p.raw}` }]);
      assert.deepEqual([...new Set(sent.map((e) => e.name))], ['channel_occupied'], JSON.stringify(sent));

      // Client events are turned off: the hub answers one with a pusher:error (any channel; checked first).
      ws.send(JSON.stringify({ event: 'client-typing', channel: 'desk-hook-2', data: {} }));
      const error = await waitFor('the refused client event',
        () => frames.find((f) => f.event === 'pusher:error'), 5000);
      const message = (typeof error.data === 'string' ? JSON.parse(error.data) : error.data).message;
      assert.match(message, /turned off/);

      // Settings shown again come from what is saved: edits left without Apply are not kept.
      await fill('webhook-url', 'http://127.0.0.1:9/not-applied');
      for (const kind of kinds) await tick(hookBox(kind), true);
      await tick('#client-events', true);
      await openPane(browser, 'overview');
      await openPane(browser, 'settings');
      const expected = { url: hookUrl, clientEvents: false, events: ['channel_occupied'] };
      await waitFor('the form to show the saved settings', async () => {
        assert.deepEqual(await form(), expected);
        return true;
      });
    } finally {
      ws?.terminate();
      await browser.deleteSession();
    }
  } finally {
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
  }
});

test('SIGTERM (a logout, a shutdown) closes clients with 4200 and exits cleanly, like Quit', async () => {
  const port = await freePort();
  await previousAppGone();
  const app = spawn(BIN, ['--config-dir', configDir(port), '--hidden'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((resolve) => app.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitFor('/health', () => health(port));
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => { ws.once('message', resolve); ws.once('error', reject); });
    app.kill('SIGTERM');
    assert.equal(await closed, 4200);
    assert.deepEqual(await exited, { code: 0, signal: null });
  } finally {
    app.kill('SIGKILL');
  }
});
