// The check page (/check) and the client libraries the hub serves (/vendor/…), in Debian's Chromium (driven
// by playwright-core) against a real hub, with the `pusher` SDK publishing. Every request the browser makes
// is recorded and anything not addressed to the hub (or the test's own intranet page) is refused: a page of an
// offline LAN must need nothing else.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { startHub } from './hub.mjs';
import { assertJsonError, eventually, serverSdk, uniqueName } from './wire.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TOKEN = 'check-page-token-0123456789';

let hub; // allows the check page's test event
let closedHub; // does not, and admits one foreign origin only
let browser;

before(async () => {
  hub = await startHub({ env: { POUSSR_ALLOW_CHECK_PUBLISH: 'true', POUSSR_ADMIN_TOKEN: TOKEN } });
  closedHub = await startHub({ config: 'allowed_origins = ["http://intranet.example"]\n' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic', '--no-proxy-server',
      // No name resolves: a page that tried a CDN would fail here even if the route below let it through.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
});

after(async () => {
  await browser?.close();
  await hub?.close();
  await closedHub?.close();
});

/**
 * A browser context that lets requests reach `origins` only, and records every request and WebSocket of its
 * pages; `offLimits` lists what was refused. Script errors fail the test.
 */
async function isolatedPage(t, origins) {
  const context = await browser.newContext({ serviceWorkers: 'block' });
  t.after(() => context.close());
  const seen = { requests: [], sockets: [], offLimits: [], errors: [], console: [] };
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (origins.includes(new URL(url).origin)) return route.continue();
    seen.offLimits.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (r) => seen.requests.push(r.url()));
  const page = await context.newPage();
  page.on('websocket', (ws) => seen.sockets.push(ws.url()));
  page.on('pageerror', (e) => seen.errors.push(e.message));
  page.on('console', (m) => seen.console.push(m.text()));
  return { page, seen };
}

/** Serves `html` at http://127.0.0.1:<port>/, like an intranet application's page. */
async function intranetPage(t, html) {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
    res.end(req.url === '/' ? html : 'not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}`;
}

/** The text of the events the check page lists, newest first. */
function listed(page) {
  return page.locator('#events li').allInnerTexts();
}

describe('the check page', () => {
  test('connects with the hub’s own pusher-js, lists events as they arrive, and publishes its test event', async (t) => {
    const { page, seen } = await isolatedPage(t, [hub.httpUrl]);
    await page.goto(`${hub.httpUrl}/check`);
    await page.locator('#state[data-state="connected"]').waitFor();
    assert.equal(await page.locator('#address').innerText(), `ws://127.0.0.1:${hub.port}`);
    assert.match(await page.locator('#socket-id').innerText(), /^\d+\.\d+$/);
    assert.equal(await page.locator('#library').innerText(), 'pusher-js 8.6.0, served by the hub');
    assert.equal(await page.locator('#channel').inputValue(), 'poussr-check');
    await page.locator('#channel-hint', { hasText: 'Listening on poussr-check.' }).waitFor();

    // From a backend, through the signed API.
    const sdk = serverSdk(hub);
    await sdk.trigger('poussr-check', 'order-created', { id: 41 });
    await eventually(async () => (await listed(page)).some((e) => e.startsWith('order-created') && e.includes('"id": 41')), {
      timeout: 15_000, what: 'the SDK event listed on the check page',
    });

    // The page's own button.
    await page.getByRole('button', { name: 'Publish a test event' }).click();
    await page.locator('#publish-result', { hasText: 'Published; it reached 1 connection.' }).waitFor();
    await eventually(async () => (await listed(page))[0]?.startsWith('check'), { timeout: 15_000, what: 'the test event listed' });
    const first = (await listed(page))[0];
    assert.match(first, /"from": "127\.0\.0\.1"/);
    assert.match(first, /A test event from the check page/);
    assert.equal(await page.locator('#event-count').innerText(), '2');

    // Another channel: only its events show from now on. The old channel's event is published first; the
    // new channel's, published after it, proves the old one is not coming.
    const other = uniqueName('line-4');
    await page.locator('#channel').fill(other);
    await page.getByRole('button', { name: 'Listen' }).click();
    await page.locator('#channel-hint', { hasText: `Listening on ${other}.` }).waitFor();
    assert.equal(new URL(page.url()).searchParams.get('channel'), other);
    await sdk.trigger('poussr-check', 'stale', {});
    await sdk.trigger(other, 'fresh', {});
    await eventually(async () => (await listed(page))[0]?.startsWith('fresh'), { timeout: 15_000, what: 'the new channel’s event' });
    assert.ok(!(await listed(page)).some((e) => e.startsWith('stale')), 'the old channel is no longer listened to');

    // Listen pressed twice in a row (the second while the first subscription is pending): each event once.
    await page.getByRole('button', { name: 'Listen' }).click();
    await page.getByRole('button', { name: 'Listen' }).click();
    await page.locator('#channel-hint', { hasText: `Listening on ${other}.` }).waitFor();
    await sdk.trigger(other, 'once', {});
    await sdk.trigger(other, 'sentinel', {});
    await eventually(async () => (await listed(page))[0]?.startsWith('sentinel'), { timeout: 15_000, what: 'the sentinel' });
    assert.equal((await listed(page)).filter((e) => e.startsWith('once')).length, 1, 'listed once');

    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.offLimits, [], 'no request left the hub');
    assert.ok(seen.requests.includes(`${hub.httpUrl}/vendor/pusher-js@8.6.0/pusher.min.js`), seen.requests.join('\n'));
    assert.ok(seen.requests.every((url) => new URL(url).origin === hub.httpUrl), seen.requests.join('\n'));
    assert.ok(seen.sockets.length > 0 && seen.sockets.every((url) => url.startsWith(`ws://127.0.0.1:${hub.port}/app/${hub.key}?`)),
      seen.sockets.join('\n'));
  });

  test('says publishing is off when the operator has not allowed it, and connects whatever allowed_origins says', async (t) => {
    const { page, seen } = await isolatedPage(t, [closedHub.httpUrl]);
    await page.goto(`${closedHub.httpUrl}/check?channel=orders`);
    // The hub admits only http://intranet.example, but its own page is its own origin.
    await page.locator('#state[data-state="connected"]').waitFor();
    assert.equal(await page.locator('#channel').inputValue(), 'orders');
    assert.equal(await page.getByRole('button', { name: 'Publish a test event' }).isDisabled(), true);
    assert.equal(await page.locator('#publish-result').innerText(), 'Publishing from this page is off on this hub.');
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.offLimits, []);

    // A page of a foreign origin is still refused, so the exception above is only for the hub's own pages.
    const refused = await new Promise((resolve, reject) => {
      const ws = new WebSocket(`${closedHub.wsUrl}/app/${closedHub.key}?protocol=7`, { origin: 'http://elsewhere.example' });
      ws.on('unexpected-response', (req, res) => {
        res.resume();
        req.destroy();
        resolve(res.statusCode);
      });
      ws.on('open', () => reject(new Error('a foreign origin was admitted')));
      ws.on('error', () => {});
    });
    assert.equal(refused, 403);
  });

  test('its requests: what it needs to connect, and a test event only as allowed', async () => {
    const info = await (await fetch(`${hub.httpUrl}/check/info`)).json();
    assert.deepEqual(info, { version: info.version, key: hub.key, publish: true, channel: 'poussr-check', event: 'check',
      pusher_js: '8.6.0' });
    assert.equal((await (await fetch(`${closedHub.httpUrl}/check/info`)).json()).publish, false);

    const post = (on, body) => fetch(`${on.httpUrl}/check/publish`, { method: 'POST', body,
      headers: { 'content-type': 'application/json' } });
    const off = await assertJsonError(await post(closedHub, '{"channel":"orders"}'), 403, 'publishing not allowed');
    assert.match(off.error, /allow_check_publish/);
    const privateChannel = await assertJsonError(await post(hub, '{"channel":"private-orders"}'), 400, 'a private channel');
    assert.match(privateChannel.error, /public channels only/);
    await assertJsonError(await post(hub, '{"channel":"orders","event":"x"}'), 400, 'more than a channel');
    await assertJsonError(await post(hub, 'orders'), 400, 'not JSON');
    await assertJsonError(await post(hub, '{"channel":"bad name!"}'), 400, 'an invalid channel name');
    // Only the hub's own page may send it: a JSON body (a form post from a page elsewhere is refused), and no
    // foreign Origin.
    const form = await fetch(`${hub.httpUrl}/check/publish`, { method: 'POST', body: '{"channel":"orders"}',
      headers: { 'content-type': 'text/plain' } });
    await assertJsonError(form, 415, 'a body that does not say it is JSON');
    const foreign = await fetch(`${hub.httpUrl}/check/publish`, { method: 'POST', body: '{"channel":"orders"}',
      headers: { 'content-type': 'application/json', origin: 'http://elsewhere.example' } });
    assert.match((await assertJsonError(foreign, 403, 'a foreign origin')).error, /hub's own check page/);
    // Once a second per device: the page's button in the first test may have just used this second.
    const ok = await eventually(async () => {
      const res = await post(hub, '{"channel":"nobody-listens"}');
      return res.status === 429 ? (await res.text(), false) : res;
    }, { timeout: 15_000, interval: 200, what: 'a test event accepted' });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { delivered: 0, event: 'check' });
    const again = await assertJsonError(await post(hub, '{"channel":"nobody-listens"}'), 429, 'a second one at once');
    assert.match(again.error, /one test event a second per device/);
    const page = await fetch(`${hub.httpUrl}/check`);
    assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
    assert.equal((await fetch(`${hub.httpUrl}/check/nope.js`)).status, 404);
  });
});

describe('the client libraries served by the hub', () => {
  test('an intranet page loads pusher-js and laravel-echo from the hub with their integrity hashes, as the Overview’s snippet says', async (t) => {
    // The laravel-echo snippet the Overview shows for this hub, pasted as is.
    const overview = await (await fetch(`${hub.httpUrl}/admin/api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    const snippet = overview.snippets.laravel_echo;
    assert.match(snippet, /integrity="sha384-[A-Za-z0-9+/]{64}" crossorigin="anonymous"/);
    const channel = uniqueName('orders');
    const origin = await intranetPage(t, `<!doctype html><html><head><meta charset="utf-8"></head><body>
${snippet.replaceAll("'orders'", `'${channel}'`)}
<script>
  window.got = [];
  echo.channel('${channel}').listen('.order-created', (data) => window.got.push(data));
  echo.connector.pusher.connection.bind('connected', () => { window.connected = true; });
</script></body></html>`);
    const { page, seen } = await isolatedPage(t, [origin, hub.httpUrl]);
    await page.goto(origin);
    await page.waitForFunction(() => window.connected === true);
    assert.equal(await page.evaluate(() => typeof window.Pusher), 'function');
    assert.equal(await page.evaluate(() => typeof window.Echo.default), 'function');
    // The subscription is confirmed before the event is published, so the event has somewhere to go.
    await page.waitForFunction((c) => window.echo.connector.pusher.channel(c)?.subscribed === true, channel);
    await serverSdk(hub).trigger(channel, 'order-created', { id: 7 });
    await page.waitForFunction(() => window.got.length === 1);
    assert.deepEqual(await page.evaluate(() => window.got), [{ id: 7 }]);
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.offLimits, [], 'nothing was asked of any other host');
    const fromHub = seen.requests.filter((url) => url.startsWith(hub.httpUrl)).map((url) => new URL(url).pathname);
    assert.deepEqual(fromHub.sort(), ['/vendor/laravel-echo@2.5.0/echo.iife.js', '/vendor/pusher-js@8.6.0/pusher.min.js']);
  });

  test('a page whose integrity hash does not match gets no library', async (t) => {
    const overview = await (await fetch(`${hub.httpUrl}/admin/api/overview`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    const tag = overview.snippets.pusher_js.split('\n')[0];
    const good = tag.match(/sha384-([A-Za-z0-9+/]{64})/)[1];
    const wrong = tag.replace(good, (good[0] === 'A' ? 'B' : 'A') + good.slice(1));
    const origin = await intranetPage(t, `<!doctype html><html><body>${wrong}
<script>window.loaded = typeof window.Pusher;</script></body></html>`);
    const { page, seen } = await isolatedPage(t, [origin, hub.httpUrl]);
    await page.goto(origin);
    await page.waitForFunction(() => window.loaded !== undefined);
    assert.equal(await page.evaluate(() => window.loaded), 'undefined', 'the browser refused the file');
    await eventually(() => seen.console.some((m) => /integrity/i.test(m)), {
      timeout: 15_000, what: () => `the integrity error in the console (seen: ${seen.console.join(' | ')})`,
    });
  });

  test('each file and licence is served for ever at its versioned path, with CORS', async () => {
    for (const [path, type] of [
      ['/vendor/pusher-js@8.6.0/pusher.min.js', 'text/javascript'],
      ['/vendor/laravel-echo@2.5.0/echo.iife.js', 'text/javascript'],
      ['/vendor/pusher-js@8.6.0/LICENCE.txt', 'text/plain'],
      ['/vendor/pusher-js@8.6.0/pusher.min.js.LICENSE.txt', 'text/plain'],
      ['/vendor/laravel-echo@2.5.0/LICENSE.md', 'text/plain'],
    ]) {
      const res = await fetch(`${hub.httpUrl}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type'), new RegExp(`^${type}`), path);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', path);
      assert.equal(res.headers.get('access-control-allow-origin'), '*', path);
      const body = await res.text();
      if (type === 'text/plain' && !path.endsWith('LICENSE.txt')) assert.match(body, /MIT License|Permission is hereby granted/, path);
    }
    const missing = await assertJsonError(await fetch(`${hub.httpUrl}/vendor/pusher-js@8.0.0/pusher.min.js`), 404, 'another version');
    assert.match(missing.error, /\/vendor\/pusher-js@8\.6\.0\/pusher\.min\.js/);
    await assertJsonError(await fetch(`${hub.httpUrl}/vendor/pusher-js@8.6.0/pusher.js`), 404, 'another file');
  });
});
