// The dashboard's console (the Live log and the Search pane), in Debian's headless Chromium driven by
// playwright-core, against a real hub: every kind of traffic of the hub's monitor feed, caused by real clients
// (pusher-js, the `pusher` SDK, a page of another origin in Chromium, a webhook target), shows as a row with
// the right fields (kind, source, channel, what, client, detail, hint); the kind chips and the channel and
// client picks filter exactly; and after a restart the Search pane finds, from the hub's store, what happened
// before it.
//
// One hub and one dashboard page serve the whole file (its log accumulates everything), so each test finds its
// rows through the log's own Text filter with a name of its own: the log draws only the rows in view, and a
// filter that leaves a handful makes every one of them drawn.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import Pusher from 'pusher-js';
import { startHub } from './hub.mjs';
import { Inbox, closeTimersOf, eventually, inboxOf, pusherOptions, serverSdk, subscribe, uniqueName, withTimeout } from './wire.mjs';

const TOKEN = 'console-token-0123456789';
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CLIENT_EVENTS_PER_SECOND = 2;
const WEBHOOK_ATTEMPTS = 3;
const PUSHER_JS = '/vendor/pusher-js@8.6.0/pusher.min.js'; // src/vendor.rs
const ALLOWED_ORIGIN = 'http://allowed.example';

let hub;
let browser;
let page; // the dashboard, on the Live log, open from the start
const pageErrors = [];
const clients = []; // pusher-js clients, disconnected at the end
let hooks; // the webhook target

/**
 * The app's webhook target: it records every request, and answers 500 to the first request that names
 * `failFirst.channel` (when set), 200 to everything else.
 */
async function startWebhookTarget() {
  const target = { requests: new Inbox('webhook requests'), failFirst: null, url: '' };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let status = 200;
      const fail = target.failFirst;
      if (fail && !fail.done && body.includes(JSON.stringify(fail.channel))) {
        fail.done = true;
        status = 500;
      }
      target.requests.push({ body, status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'not now');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  target.url = `http://127.0.0.1:${server.address().port}/hooks`;
  target.close = () => new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
  return target;
}

/**
 * A pusher-js client (Node build) whose private and presence subscriptions are authorized by `authorize`
 * (default: signed with the app's secret by the `pusher` SDK, as `user` on presence channels). Not awaited.
 */
function pusherClient({ key = hub.key, user = 'ann', authorize } = {}) {
  const sdk = serverSdk(hub);
  const sign = authorize ?? (({ socketId, channelName }) => channelName.startsWith('presence-')
    ? sdk.authorizeChannel(socketId, channelName, { user_id: user, user_info: { name: user } })
    : sdk.authorizeChannel(socketId, channelName));
  const client = new Pusher(key, {
    ...pusherOptions(hub),
    channelAuthorization: {
      customHandler: (params, callback) => {
        try {
          callback(null, sign(params));
        } catch (err) {
          callback(err, null);
        }
      },
    },
  });
  client.releaseTimers = closeTimersOf(client);
  clients.push(client);
  return client;
}

/** A pusher-js client in state 'connected'. */
async function connected(options) {
  const client = pusherClient(options);
  await withTimeout(
    new Promise((resolve, reject) => {
      client.connection.bind('connected', resolve);
      client.connection.bind('failed', () => reject(new Error('pusher-js says the connection failed')));
    }),
    10_000,
    'pusher-js to connect',
  );
  return client;
}

function done(client) {
  client.disconnect();
}

// --- the Live log, read as an operator reads it ----------------------------------------------------------

/** The rows the log draws, in order: their kind, hint and cells. */
function rowsIn(view) {
  return page.locator(`${view} .log-row`).evaluateAll((els) =>
    els
      .map((el) => {
        const cells = [...el.querySelectorAll('[role="gridcell"]')].map((c) => c.textContent);
        return {
          index: Number(el.dataset.index),
          kind: el.dataset.kind,
          hinted: el.classList.contains('hinted'),
          title: el.title,
          source: cells[1],
          channel: cells[2],
          what: cells[3],
          client: cells[4],
          detail: cells[5],
        };
      })
      .sort((a, b) => a.index - b.index),
  );
}

const rows = () => rowsIn('#log-view');

/**
 * Sets the Live log's Text filter to `text`. The log applies it when typing pauses: to know that the rows
 * drawn are those of the new filter, it first filters by a text that matches nothing and waits for the log
 * to say "0 shown", so that every row drawn afterwards comes from `text`.
 */
async function filterText(text) {
  const box = page.locator('#filter-text');
  if ((await box.inputValue()) === text) return;
  await box.fill('matches-nothing-' + randomBytes(6).toString('hex'));
  await page.locator('#log-count').filter({ hasText: /^0 shown/ }).waitFor({ timeout: 5000 });
  await box.fill(text);
}

/** Filters the log by `text` and waits for a drawn row that matches `predicate`; returns it. */
async function findRow(text, predicate, what, timeout = 10_000) {
  await filterText(text);
  let seen = [];
  return eventually(
    async () => {
      seen = await rows();
      return seen.find(predicate);
    },
    { timeout, what: () => `${what} (rows shown for "${text}": ${JSON.stringify(seen.map((r) => [r.kind, r.source, r.channel, r.what, r.client, r.detail]))})` },
  );
}

/** Selects a drawn row (a click on its What cell) and waits for its detail; returns the detail's texts. */
async function openDetail(row, titlePart) {
  await page.locator(`#log-view .log-row[data-index="${row.index}"] [role="gridcell"]`).nth(3).click();
  await page.locator('#log-detail-title').filter({ hasText: titlePart }).waitFor({ timeout: 5000 });
  return {
    title: await page.locator('#log-detail-title').textContent(),
    hint: (await page.locator('#log-detail-hint').isVisible()) ? await page.locator('#log-detail-hint').textContent() : null,
    body: await page.locator('#log-detail-body').textContent(),
  };
}

/** How many drawn rows of each kind. */
async function countByKind() {
  const out = {};
  for (const r of await rows()) out[r.kind] = (out[r.kind] ?? 0) + 1;
  return out;
}

/** Whether two counts by kind are the same (whatever the order of their keys). */
function sameCounts(a, b) {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.every((k) => (a[k] ?? 0) === (b[k] ?? 0));
}

/** Every filter of the Live log off: every chip on, no channel, event, text or client. */
async function resetFilters() {
  const off = page.locator('#log-kinds button.chip[aria-pressed="false"]');
  while ((await off.count()) > 0) await off.first().click();
  for (const id of ['#filter-channel', '#filter-event']) await page.locator(id).fill('');
  if (await page.locator('#filter-client-pill').isVisible()) await page.locator('#filter-client-clear').click();
  await filterText('');
}

async function openPane(name) {
  await page.getByRole('tablist', { name: 'Panes' }).getByRole('tab', { name }).click();
  await page.getByRole('tabpanel', { name }).waitFor();
}

// ----------------------------------------------------------------------------------------------------------

before(async () => {
  hooks = await startWebhookTarget();
  hub = await startHub({
    env: { POUSSR_ADMIN_TOKEN: TOKEN },
    config:
      `allowed_origins = ["${ALLOWED_ORIGIN}"]\n` +
      `[limits]\nclient_events_per_second = ${CLIENT_EVENTS_PER_SECOND}\nwebhook_attempts = ${WEBHOOK_ATTEMPTS}\n`,
    app: `client_events = true\n[[apps.webhooks]]\nurl = "${hooks.url}"\nevents = ["channel_occupied"]\n`,
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${hub.httpUrl}/dashboard/?token=${encodeURIComponent(TOKEN)}`);
  await page.locator('#state').filter({ hasText: 'Running' }).waitFor({ timeout: 15_000 });
  // Every feed batch writes the tab counts, and the hub listens for a feed's events before its first batch:
  // once a count shows, whatever happens reaches this page.
  await page.locator('#count-clients').filter({ hasText: /\d/ }).waitFor({ timeout: 15_000 });
  await openPane('Live log');
});

after(async () => {
  for (const client of clients) {
    client.disconnect();
    client.releaseTimers();
  }
  await browser?.close();
  await hub?.close();
  await hooks?.close();
  assert.deepEqual(pageErrors, [], 'no script errors in the dashboard');
});

describe('the Live log shows every kind of traffic with its fields', () => {
  test('pusher-js with a key of no app: a hinted refusal (4001) that names the key', async () => {
    const badKey = 'nokey' + randomBytes(8).toString('hex');
    const client = pusherClient({ key: badKey });
    // pusher-js reports the hub's pusher:error inside a WebSocketError.
    const error = await withTimeout(new Promise((resolve) => client.connection.bind('error', resolve)), 10_000, 'the 4001 error');
    done(client);
    assert.equal(error.error?.data?.code, 4001, JSON.stringify(error));
    assert.ok(error.error.data.message.includes(badKey), JSON.stringify(error));

    const row = await findRow(badKey, (r) => r.kind === 'refusal' && r.what.endsWith('refused (4001)'), 'the refused connection');
    assert.equal(row.what, '⚠ refused (4001)', 'the What cell is marked as hinted');
    assert.equal(row.source, 'refusal');
    assert.equal(row.hinted, true);
    assert.match(row.detail, /^127\.0\.0\.1:\d+ · key /);
    assert.ok(row.detail.includes(`key ${badKey}`), `the detail names the key: ${row.detail}`);
    assert.match(row.title, /belongs to no app/);
    assert.ok(row.title.includes(badKey), `the hint names the key: ${row.title}`);
    const detail = await openDetail(row, 'refused (4001)');
    assert.match(detail.hint, /belongs to no app/);
    assert.equal(JSON.parse(detail.body).app_key, badKey);
  });

  test('a hint reads as one sentence (no run of spaces from a broken line continuation)', async () => {
    const row = await findRow('nokey', (r) => r.kind === 'refusal' && r.hinted, 'a hinted refusal');
    assert.doesNotMatch(row.title, / {2,}/, `the hint: ${JSON.stringify(row.title)}`);
  });

  test('a private subscription with a wrong signature: refused (401), and a publish there is hinted', async () => {
    const channel = uniqueName('private-wrongsig');
    const client = pusherClient({ authorize: () => ({ auth: `${hub.key}:${'0'.repeat(64)}` }) });
    const refused = withTimeout(
      new Promise((resolve) => client.subscribe(channel).bind('pusher:subscription_error', resolve)),
      10_000,
      'pusher:subscription_error',
    );
    const error = await refused;
    assert.equal(error.status, 401, JSON.stringify(error));
    const socketId = client.connection.socket_id;

    const row = await findRow(channel, (r) => r.kind === 'subscription' && r.what === 'subscription refused (401)', 'the refused subscription');
    assert.equal(row.channel, channel);
    assert.equal(row.client, socketId);
    assert.equal(row.source, 'subscription');
    assert.notEqual(row.detail.trim(), '', 'the reason is shown');
    const detail = await openDetail(row, 'subscription refused (401)');
    assert.ok(detail.title.includes(`on ${channel}`), detail.title);
    assert.equal(JSON.parse(detail.body).reason, row.detail);
    done(client);

    // Nobody else is subscribed: a publish there reaches nobody, and the hint says why.
    assert.equal((await serverSdk(hub).trigger(channel, 'after-refusal', { n: 1 })).status, 200);
    const event = await findRow(channel, (r) => r.kind === 'event' && r.what.endsWith('after-refusal'), 'the event published there');
    assert.equal(event.what, '⚠ after-refusal');
    assert.equal(event.source, 'API');
    assert.equal(event.hinted, true);
    assert.ok(event.title.includes(`every subscription to ${channel} was refused (401)`), event.title);
    assert.match(event.title, /^nobody received it/);
  });

  test(`over ${CLIENT_EVENTS_PER_SECOND} client events a second: client_event rows, then a 4301 refusal and the close`, async () => {
    const channel = uniqueName('private-flood');
    const client = await connected();
    const socketId = client.connection.socket_id;
    const sub = await subscribe(client, channel);
    const receiver = await connected({ user: 'bob' });
    const relayed = inboxOf(await subscribe(receiver, channel), 'client-flood');
    const closed = withTimeout(
      new Promise((resolve) => client.connection.bind('error', (e) => e.data?.code === 4301 && resolve(e))),
      10_000,
      'the 4301 error',
    );
    for (let n = 0; n < CLIENT_EVENTS_PER_SECOND + 3; n++) sub.trigger('client-flood', { n });
    await closed;
    done(client);
    assert.deepEqual(await relayed.take(CLIENT_EVENTS_PER_SECOND), Array.from({ length: CLIENT_EVENTS_PER_SECOND }, (_, n) => ({ n })));
    done(receiver);

    await filterText(channel);
    let seen = [];
    await eventually(async () => {
      seen = await rows();
      return seen.some((r) => r.kind === 'refusal');
    }, { timeout: 10_000, what: () => `the 4301 refusal (rows: ${JSON.stringify(seen)})` });
    const flood = seen.filter((r) => r.kind === 'client_event');
    assert.deepEqual(flood.map((r) => [r.source, r.channel, r.what, r.client, JSON.parse(r.detail).n]),
      Array.from({ length: CLIENT_EVENTS_PER_SECOND }, (_, n) => ['client', channel, 'client-flood', socketId, n]),
      'the events within the rate, each a client event of this client');
    const refusal = seen.find((r) => r.kind === 'refusal');
    assert.equal(refusal.what, 'refused (4301)');
    assert.equal(refusal.client, socketId);
    assert.match(refusal.detail, /client-flood/);
    assert.ok(refusal.index > flood.at(-1).index, 'the refusal comes after the relayed events');

    const close = await findRow(socketId, (r) => r.kind === 'connection' && r.what.startsWith('closed'), 'the close of the flooding connection');
    assert.equal(close.what, 'closed (code 4301)');
    assert.equal(close.client, socketId);
  });

  test('a client event that only its sender was subscribed to is not said to have had no subscriber', async () => {
    const channel = uniqueName('private-solo');
    const client = await connected();
    const sub = await subscribe(client, channel);
    sub.trigger('client-solo', { n: 1 });
    const row = await findRow(channel, (r) => r.kind === 'client_event', 'the client event');
    done(client);
    assert.doesNotMatch(row.title, /no connection to this hub was subscribed/, `the hint: ${row.title}`);
    assert.ok(row.title.includes(`its sender (${row.client}) was the only connection`), `the hint: ${row.title}`);
  });

  test('a page of a foreign origin in Chromium: refused (403) with its origin', async (t) => {
    const html = `<!doctype html><meta charset="utf-8"><title>intranet</title>
<script src="${hub.httpUrl}${PUSHER_JS}"></script>
<script>
  window.pusher = new Pusher(${JSON.stringify(hub.key)}, { wsHost: '127.0.0.1', wsPort: ${hub.port}, forceTLS: false,
    enabledTransports: ['ws'], cluster: 'mt1', disableStats: true });
</script>`;
    const site = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${site.address().port}`;
    const context = await browser.newContext();
    t.after(async () => {
      await context.close();
      site.closeAllConnections?.();
      await new Promise((resolve) => site.close(resolve));
    });
    const foreign = await context.newPage();
    await foreign.goto(origin + '/');
    await foreign.waitForFunction(() => typeof window.Pusher === 'function', null, { timeout: 10_000 });

    const row = await findRow(origin, (r) => r.kind === 'refusal' && r.what.endsWith('refused (403)'), 'the refused handshake');
    await context.close(); // no more retries from that page
    assert.equal(row.source, 'refusal');
    assert.ok(row.detail.includes(`origin ${origin}`), `the detail names the origin: ${row.detail}`);
    assert.match(row.detail, /^127\.0\.0\.1:\d+ · /);
    assert.equal(row.hinted, true);
    assert.ok(row.title.includes('allowed_origins'), row.title);
  });

  test('the SDK with a bad secret (401) and with oversized data (413): HTTP refusal rows', async () => {
    const path = `/apps/${hub.appId}/events`;
    const channel = uniqueName('http-refused');
    await assert.rejects(serverSdk(hub, { secret: 'not-the-secret' }).trigger(channel, 'nope', { n: 1 }), (e) => e.status === 401);
    await assert.rejects(serverSdk(hub).trigger(channel, 'big', 'x'.repeat(12 * 1024)), (e) => e.status === 413);

    const unsigned = await findRow(path, (r) => r.kind === 'http' && r.what === 'POST refused (401)', 'the 401');
    assert.equal(unsigned.source, 'HTTP');
    assert.equal(unsigned.channel, '');
    assert.ok(unsigned.detail.startsWith(`${path} from 127.0.0.1:`), unsigned.detail);
    const big = await findRow(path, (r) => r.kind === 'http' && r.what === 'POST refused (413)', 'the 413');
    assert.ok(big.detail.startsWith(`${path} from 127.0.0.1:`), big.detail);
    const detail = await openDetail(big, 'POST refused (413)');
    const entry = JSON.parse(detail.body);
    assert.deepEqual([entry.type, entry.method, entry.path, entry.status], ['http_refused', 'POST', path, 413]);
    assert.notEqual(entry.reason.trim(), '');
  });

  test('a webhook answered 500, then 200: failed, retrying (attempt 1), then delivered (attempt 2)', async () => {
    const channel = uniqueName('wh-retry');
    hooks.failFirst = { channel, done: false };
    const client = await connected();
    await subscribe(client, channel);
    const name = JSON.stringify(channel);
    await eventually(() => hooks.requests.all.filter((r) => r.body.includes(name)).length >= 2, { timeout: 10_000, what: 'the webhook and its retry' });
    assert.deepEqual(hooks.requests.all.filter((r) => r.body.includes(name)).map((r) => r.status), [500, 200]);
    done(client);

    const failed = await findRow(channel, (r) => r.kind === 'webhook' && r.what.startsWith('webhook failed'), 'the failed attempt');
    assert.equal(failed.what, `webhook failed, retrying (attempt 1 of ${WEBHOOK_ATTEMPTS})`);
    assert.equal(failed.source, 'webhook');
    assert.ok(failed.detail.startsWith(`${hooks.url} answered 500 · `), failed.detail);
    assert.ok(failed.detail.includes(`channel_occupied ${channel}`), failed.detail);
    const delivered = await findRow(channel, (r) => r.kind === 'webhook' && r.what.startsWith('webhook delivered'), 'the delivery');
    assert.equal(delivered.what, `webhook delivered (attempt 2 of ${WEBHOOK_ATTEMPTS})`);
    assert.ok(delivered.detail.startsWith(`${hooks.url} answered 200 · `), delivered.detail);
    assert.ok(delivered.index > failed.index);
    const detail = await openDetail(failed, 'webhook failed');
    const entry = JSON.parse(detail.body);
    assert.deepEqual([entry.attempt, entry.attempts, entry.status, entry.outcome, entry.url], [1, WEBHOOK_ATTEMPTS, 500, 'retrying', hooks.url]);
  });

  test('connections, subscriptions, presence members, SDK and client events, and the publish hints', async () => {
    const presence = uniqueName('presence-room');
    const ann = await connected({ user: 'ann' });
    const bob = await connected({ user: 'bob' });
    const annId = ann.connection.socket_id;
    const bobId = bob.connection.socket_id;
    const annRoom = await subscribe(ann, presence);
    const bobRoom = await subscribe(bob, presence);
    const whispers = inboxOf(bobRoom, 'client-wave');
    const shipped = inboxOf(bobRoom, 'App\\Events\\OrderShipped');
    const news = inboxOf(bobRoom, 'news');
    await eventually(() => annRoom.members.count === 2, { what: 'ann to see bob' });

    const sdk = serverSdk(hub);
    assert.equal((await sdk.trigger(presence, 'news', { headline: 'hello' })).status, 200);
    assert.deepEqual(await news.next(), { headline: 'hello' });
    annRoom.trigger('client-wave', { from: 'ann' });
    assert.deepEqual(await whispers.next(), { from: 'ann' });
    assert.equal((await sdk.trigger(presence, 'App\\Events\\OrderShipped', { order: 7 })).status, 200);
    assert.deepEqual(await shipped.next(), { order: 7 });
    const empty = uniqueName('nobody-here');
    assert.equal((await sdk.trigger(empty, 'lonely', { alone: true })).status, 200);
    bob.unsubscribe(presence);
    bob.disconnect();

    // Connection opened and closed.
    const opened = await findRow(bobId, (r) => r.kind === 'connection' && r.what === 'connected', "bob's connection");
    assert.equal(opened.client, bobId);
    assert.match(opened.detail, /^127\.0\.0\.1:\d+ · Pusher · /);
    const closedRow = await findRow(bobId, (r) => r.kind === 'connection' && r.what.startsWith('closed'), "bob's close");
    assert.match(closedRow.what, /^closed \((code \d+|no close code)\)$/);
    assert.ok(closedRow.index > opened.index);

    // Subscribed, member joined, member left, unsubscribed: each on the channel, with the client.
    await filterText(presence);
    let seen = [];
    await eventually(async () => {
      seen = await rows();
      return seen.some((r) => r.what === 'unsubscribed') && seen.some((r) => r.what === 'member left');
    }, { timeout: 10_000, what: () => `bob leaving ${presence} (rows: ${JSON.stringify(seen)})` });
    const of = (id) => seen.filter((r) => r.client === id && ['subscription', 'presence'].includes(r.kind)).map((r) => [r.kind, r.source, r.channel, r.what, r.detail]);
    assert.deepEqual(of(annId), [
      ['subscription', 'subscription', presence, 'subscribed', ''],
      ['presence', 'presence', presence, 'member joined', 'user ann'],
    ]);
    assert.deepEqual(of(bobId), [
      ['subscription', 'subscription', presence, 'subscribed', ''],
      ['presence', 'presence', presence, 'member joined', 'user bob'],
      ['subscription', 'subscription', presence, 'unsubscribed', ''],
      ['presence', 'presence', presence, 'member left', 'user bob'],
    ]);

    // The SDK's event, the client event and the PHP class name, in order, with their sources.
    const events = seen.filter((r) => r.kind === 'event' || r.kind === 'client_event');
    assert.deepEqual(events.map((r) => [r.kind, r.source, r.channel, r.what, r.client, JSON.parse(r.detail)]), [
      ['event', 'API', presence, 'news', '', { headline: 'hello' }],
      ['client_event', 'client', presence, 'client-wave', annId, { from: 'ann' }],
      ['event', 'API', presence, '⚠ App\\Events\\OrderShipped', '', { order: 7 }],
    ]);
    assert.deepEqual(events.map((r) => r.hinted), [false, false, true], 'only the PHP class name is hinted');
    const php = events[2];
    assert.match(php.title, /looks like a PHP class name/);
    assert.match(php.title, /laravel-echo/);
    assert.ok(php.title.includes("'.App\\Events\\OrderShipped'"), php.title);
    const detail = await openDetail(php, 'App\\Events\\OrderShipped on ' + presence);
    assert.match(detail.hint, /laravel-echo's \.listen\('OrderShipped'\)/);
    assert.match(detail.title, /delivered to 2$/, 'ann and bob');

    // An event nobody received.
    const lonely = await findRow(empty, (r) => r.kind === 'event' && r.what.endsWith('lonely'), 'the event to an empty channel');
    assert.equal(lonely.what, '⚠ lonely');
    assert.equal(lonely.hinted, true);
    assert.match(lonely.title, /^nobody received it: no connection to this hub was subscribed/);
    const lonelyDetail = await openDetail(lonely, 'lonely on ' + empty);
    assert.match(lonelyDetail.title, /delivered to 0/);
    assert.match(lonelyDetail.hint, /nobody received it/);
  });
});

describe('the Live log filters', () => {
  test('a chip off hides exactly its rows, a double click shows only its kind; a channel or a client click filters to it', async () => {
    await resetFilters();
    const mark = uniqueName('chips');
    const room = `presence-${mark}`;
    const ann = await connected({ user: 'ann' });
    const bob = await connected({ user: 'bob' });
    const annId = ann.connection.socket_id;
    const annRoom = await subscribe(ann, room);
    const bobRoom = await subscribe(bob, room);
    await eventually(() => annRoom.members.count === 2, { what: 'ann to see bob' });
    const waves = inboxOf(bobRoom, 'client-wave');
    const news = inboxOf(bobRoom, 'news');
    const sdk = serverSdk(hub);
    assert.equal((await sdk.trigger(room, 'news', { n: 1 })).status, 200);
    assert.deepEqual(await news.next(), { n: 1 });
    annRoom.trigger('client-wave', { n: 2 });
    assert.deepEqual(await waves.next(), { n: 2 });
    // A refusal and an HTTP refusal that name the mark: a key of no app, a badly signed request about the room.
    const stranger = pusherClient({ key: `nokey-${mark}` });
    await withTimeout(new Promise((resolve) => stranger.connection.bind('error', resolve)), 10_000, 'the 4001 error');
    done(stranger);
    await assert.rejects(serverSdk(hub, { secret: 'not-the-secret' }).get({ path: `/channels/${room}` }), (e) => e.status === 401);

    // Each row whose text names the mark, by kind: no connection row does (they name socket ids).
    const expected = { subscription: 2, presence: 2, event: 1, client_event: 1, webhook: 1, refusal: 1, http: 1 };
    await filterText(mark);
    let counts = {};
    await eventually(async () => {
      counts = await countByKind();
      return sameCounts(counts, expected);
    }, { timeout: 10_000, what: () => `the rows of ${mark}: ${JSON.stringify(counts)}` });
    assert.deepEqual(counts, expected);
    await page.locator('#log-view .log-row.hinted').first().locator('[role="gridcell"]').nth(3).click();
    await page.locator('#log-detail-hint').waitFor();
    await page.screenshot({ path: join(SHOTS, 'console-log.png') });

    const chip = (kind) => page.locator(`#log-kinds button.chip[data-kind="${kind}"]`);
    const pressed = () => page.locator('#log-kinds button.chip').evaluateAll((els) => Object.fromEntries(els.map((b) => [b.dataset.kind, b.getAttribute('aria-pressed') === 'true'])));
    const expectCounts = async (want, what) => {
      let got = {};
      await eventually(async () => {
        got = await countByKind();
        return sameCounts(got, want);
      }, { what: () => `${what}: ${JSON.stringify(got)} (wanted ${JSON.stringify(want)})` });
    };
    const without = (kind) => Object.fromEntries(Object.entries(expected).filter(([k]) => k !== kind));
    for (const kind of Object.keys(expected)) {
      await chip(kind).click();
      assert.equal((await pressed())[kind], false, `the ${kind} chip is off`);
      await expectCounts(without(kind), `${kind} off`);
      await chip(kind).click();
      await expectCounts(expected, `${kind} back on`);
    }
    await chip('event').dblclick();
    assert.deepEqual(Object.entries(await pressed()).filter(([, on]) => on).map(([k]) => k), ['event'], 'only the Events chip is on');
    await expectCounts({ event: 1 }, 'events only');
    await chip('webhook').dblclick();
    await expectCounts({ webhook: 1 }, 'webhooks only');
    await resetFilters();

    // A click on a channel name: that channel exactly, not every name that contains it.
    const near = `${mark}-more`;
    assert.equal((await sdk.trigger(mark, 'exact', { n: 1 })).status, 200);
    assert.equal((await sdk.trigger(near, 'near', { n: 2 })).status, 200);
    assert.equal((await sdk.trigger(mark, 'exact', { n: 3 })).status, 200);
    await findRow(mark, (r) => r.channel === mark && r.detail === '{"n":3}', 'the second event on the channel');
    await page.locator(`#log-view .log-row [data-pick="channel"]`).filter({ hasText: new RegExp(`^${mark}$`) }).first().click();
    assert.equal(await page.locator('#filter-channel').inputValue(), mark);
    await filterText('');
    let seen = [];
    await eventually(async () => {
      seen = await rows();
      return seen.length === 2 && seen.every((r) => r.channel === mark);
    }, { what: () => `only the rows of ${mark}: ${JSON.stringify(seen.map((r) => [r.channel, r.what]))}` });
    assert.deepEqual(seen.map((r) => JSON.parse(r.detail).n), [1, 3]);
    assert.equal(await page.locator('#log-count').innerText().then((s) => s.startsWith('2 shown')), true);

    // A click on a socket id: that client's traffic only, and the pill says whose.
    await page.locator('#filter-channel').fill(''); // the channel filter goes; the text one is set anew below
    await findRow(annId, (r) => r.client === annId && r.kind === 'presence', "ann's member row");
    await page.locator(`#log-view .log-row [data-pick="client"]`).filter({ hasText: annId }).first().click();
    await page.locator('#filter-client-pill').waitFor();
    assert.equal(await page.locator('#filter-client').innerText(), annId);
    await filterText('');
    await eventually(async () => {
      seen = await rows();
      return seen.some((r) => r.kind === 'client_event') && seen.every((r) => r.client === annId);
    }, { what: () => `only ann's rows: ${JSON.stringify(seen.map((r) => [r.kind, r.client, r.what]))}` });
    const kinds = new Set(seen.map((r) => r.kind));
    for (const kind of ['connection', 'subscription', 'presence', 'client_event']) assert.ok(kinds.has(kind), `ann's ${kind} rows: ${JSON.stringify(seen)}`);
    // The chips and the client filter together: Connections off leaves ann's other rows.
    const annCounts = await countByKind();
    await chip('connection').click();
    await expectCounts({ ...annCounts, connection: 0 }, "ann's rows without connections");
    await chip('connection').click();
    await expectCounts(annCounts, "ann's rows again");
    await page.locator('#filter-client-clear').click();
    await page.locator('#filter-client-pill').waitFor({ state: 'hidden' });
    done(ann);
    done(bob);
    await resetFilters();
  });
});

describe('the Search pane, after a restart', () => {
  test('finds an event and a connection from before the restart, paged from the hub', async () => {
    const mark = uniqueName('kept');
    const needle = 'needle-' + randomBytes(4).toString('hex');
    const sdk = serverSdk(hub);
    // More events on the channel than one page of matches (200): the older ones come with "Load older matches".
    const BULK = 210;
    for (let i = 0; i < BULK; i += 10) {
      const batch = Array.from({ length: 10 }, (_, k) => ({ channel: mark, name: 'bulk', data: JSON.stringify({ i: i + k }) }));
      assert.equal((await sdk.triggerBatch(batch)).status, 200);
    }
    const client = await connected();
    const socketId = client.connection.socket_id;
    await subscribe(client, mark);
    assert.equal((await serverSdk(hub).trigger(mark, 'kept-event', { note: needle })).status, 200);
    await findRow(mark, (r) => r.kind === 'event' && r.what === 'kept-event', 'the event, live');
    done(client);
    await findRow(socketId, (r) => r.kind === 'connection' && r.what.startsWith('closed'), 'the close, live');

    await hub.restart();
    // The page's feed reconnects by itself; the search goes to the hub whatever the feed does.
    await openPane('Search');
    const pane = page.locator('#pane-search');
    await pane.getByLabel('Channel', { exact: true }).fill(mark);
    await pane.getByLabel('Event', { exact: true }).fill('kept-event');
    await pane.getByLabel('Text', { exact: true }).fill(needle);
    const [response] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/api/search', { timeout: 10_000 }),
      pane.getByRole('button', { name: 'Search', exact: true }).click(),
    ]);
    assert.equal(response.status(), 200, `the hub's search answered ${response.status()}: ${await response.text()}`);
    const query = new URL(response.url()).searchParams;
    assert.deepEqual([query.get('channel'), query.get('event'), query.get('text')], [mark, 'kept-event', needle]);
    let found = [];
    await eventually(async () => {
      found = await rowsIn('#search-view');
      return found.length > 0;
    }, { what: 'a match' });
    assert.deepEqual(found.map((r) => [r.kind, r.channel, r.what, JSON.parse(r.detail)]), [['event', mark, 'kept-event', { note: needle }]]);
    await page.locator('#search-status').filter({ hasText: /^1 match/ }).waitFor();
    assert.equal(await page.locator('#search-more').isVisible(), false);

    // Events only, by channel only: a page of 200, newest first, then the older ones on request.
    for (const id of ['#search-event', '#search-text']) await page.locator(id).fill('');
    await page.locator('#search-kinds button.chip[data-kind="event"]').dblclick();
    const [firstPage] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/api/search', { timeout: 10_000 }),
      pane.getByRole('button', { name: 'Search', exact: true }).click(),
    ]);
    assert.equal(firstPage.status(), 200);
    await page.locator('#search-status').filter({ hasText: /^200\+ matches/ }).waitFor();
    // The status is written at once, the rows in the next frame.
    const rowcount = (n) => page.locator(`#search-view[aria-rowcount="${n}"]`).waitFor({ timeout: 5000 });
    await rowcount(200);
    const newest = (await rowsIn('#search-view'))[0];
    assert.deepEqual([newest.what, JSON.parse(newest.detail)], ['kept-event', { note: needle }], 'newest first');
    const [older] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/api/search', { timeout: 10_000 }),
      page.getByRole('button', { name: 'Load older matches' }).click(),
    ]);
    assert.equal(older.status(), 200);
    assert.ok(new URL(older.url()).searchParams.get('before'), 'the next page is asked for with its cursor');
    await page.locator('#search-status').filter({ hasText: new RegExp(`^${BULK + 1} matches`) }).waitFor();
    await rowcount(BULK + 1);
    await page.locator('#search-more').waitFor({ state: 'hidden' });
    await page.locator('#search-view').evaluate((el) => { el.scrollTop = el.scrollHeight; });
    await eventually(async () => (await rowsIn('#search-view')).some((r) => r.detail === '{"i":0}'), { what: 'the oldest match drawn at the bottom' });

    // Connections only, by the client's socket id.
    await page.locator('#search-channel').fill('');
    await page.locator('#search-kinds button.chip[data-kind="connection"]').dblclick();
    await pane.getByLabel('Client', { exact: true }).fill(socketId);
    const [second] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin/api/search', { timeout: 10_000 }),
      pane.getByRole('button', { name: 'Search', exact: true }).click(),
    ]);
    assert.equal(second.status(), 200);
    const asked = new URL(second.url()).searchParams;
    assert.deepEqual([asked.get('kinds'), asked.get('socket_id')], ['connection', socketId]);
    await eventually(async () => {
      found = await rowsIn('#search-view');
      return found.length >= 2;
    }, { what: () => `the connection's rows: ${JSON.stringify(found)}` });
    assert.ok(found.every((r) => r.kind === 'connection' && r.client === socketId), JSON.stringify(found));
    assert.ok(found.some((r) => r.what === 'connected'), 'the connection opened');
    assert.ok(found.some((r) => r.what.startsWith('closed')), 'the connection closed');
    await page.screenshot({ path: join(SHOTS, 'console-search.png') });
  });
});
