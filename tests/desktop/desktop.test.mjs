// The real Poussr window, driven over WebDriver (helpers in app.mjs): it starts, moves, shows a port that is
// taken, publishes from its form, saves webhook and client-event settings, and quits cleanly on SIGTERM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Key } from 'webdriverio';
import WebSocket from 'ws';
import {
  APP, BIN, configDir, fillField, freePort, health, launch, openPane, previousAppGone, reachable, screenshot, textOf,
  useDriver, waitFor, waitInner, waitText,
} from './app.mjs';

// The app WebDriver starts inherits this: its Downloads folder (where the live log's recordings go) is a folder of
// this file's own, named in the XDG user-dirs file of a config folder of its own.
const XDG = mkdtempSync(path.join(tmpdir(), 'poussr-xdg-'));
const DOWNLOADS = path.join(XDG, 'downloads');
mkdirSync(DOWNLOADS);
writeFileSync(path.join(XDG, 'user-dirs.dirs'), `XDG_DOWNLOAD_DIR="${DOWNLOADS}"\n`);
process.env.XDG_CONFIG_HOME = XDG;

useDriver();

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
    // Record writes what the log shows as a recording (JSON Lines with its header) to the Downloads folder (the
    // window's program does it itself) and says where.
    await (await browser.$('#log-export')).click();
    await waitText(browser, '#notice', 'Recorded ');
    const exported = (await textOf(browser, '#notice')).match(/^Recorded \d+ entr(?:y|ies) to (.+\.jsonl)$/);
    assert.ok(exported, await textOf(browser, '#notice'));
    assert.equal(path.dirname(exported[1]), DOWNLOADS);
    const [header, ...lines] = readFileSync(exported[1], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual([header.format, header.version], ['poussr-recording', 1]);
    assert.ok(lines.some((l) => l.event === 'from-window' && l.channel === 'desk-orders'), JSON.stringify(lines));
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

      // The hub calls webhooks over http:// or https:// only; another scheme is refused and nothing is saved.
      assert.equal(await fill('webhook-url', 'ftp://backend.example/hook'), 'ftp://backend.example/hook');
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
