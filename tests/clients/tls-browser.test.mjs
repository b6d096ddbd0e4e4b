// Debian's Chromium over https:// and wss://, trusting the suite's CA the way a user on Linux does: through
// the NSS database in $HOME/.pki/nssdb (certutil), never with --ignore-certificate-errors or Playwright's
// ignoreHTTPSErrors. A second Chromium with an empty NSS database is refused the same pages, so the trust is
// proved to come from that database. An https test page (served by Node with a certificate from the suite's
// CA) connects pusher-js to the hub with wss://, joins a public and a private channel and receives events
// triggered by the `pusher` SDK over https; the dashboard is opened over https and its live feed (a WebSocket)
// runs over wss://.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import Pusher from 'pusher-js';
import { startHub } from './hub.mjs';
import { certFolder, fingerprintOf, servedFingerprint, tlsDir, tlsEnv } from './tls.mjs';
import { eventually, inboxOf, serverSdk, subscribe, uniqueName, withTimeout } from './wire.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PUSHER_JS = join(HERE, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.min.js');
const TOKEN = '0123456789abcdef0123';
// The same switches as dashboard.test.mjs. None of them touches certificate checks.
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];
// What Chromium refuses a certificate with when no CA it trusts signed it (and only then: a wrong name or date
// has errors of its own).
const CERT_REFUSED = /net::ERR_CERT_AUTHORITY_INVALID/;

let hub;
let pageServer; // { url, server, state: { config, authRequests } }
let pageCertDir;
let trusting; // a Chromium whose NSS database trusts the suite's CA
let untrusting; // the same Chromium with an empty NSS database
const homes = [];

/** The CN of the suite's CA, as Chromium reports a certificate's issuer. */
function caName() {
  const subject = new X509Certificate(readFileSync(join(tlsDir(), 'ca.pem'))).subject;
  return /CN=([^\n]+)/.exec(subject)[1];
}

/**
 * Launches Debian's Chromium with a throwaway HOME whose NSS database ($HOME/.pki/nssdb, where Chromium on Linux
 * reads the user's trusted certificates) is new and empty, with `trust` (a CA file) added to it when given.
 * Playwright gives every launch a fresh profile (user data dir) of its own, removed when the browser closes.
 */
async function launchChromium(trust) {
  const home = mkdtempSync(join(tmpdir(), 'poussr-chromium-home-'));
  homes.push(home);
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  const certutil = (...args) => execFileSync('certutil', ['-d', `sql:${nssdb}`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  certutil('-N', '--empty-password');
  if (trust) {
    certutil('-A', '-t', 'C,,', '-n', 'Poussr test CA', '-i', trust);
    assert.match(certutil('-L'), /Poussr test CA\s+C,,/, 'the CA is in the NSS database, trusted to issue server certificates');
  } else {
    assert.doesNotMatch(certutil('-L'), /Poussr/, 'the NSS database of the control is empty');
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    env: { ...process.env, HOME: home },
    headless: true,
  });
}

/** The https test page: pusher-js (loaded from this same server) joins `config.channels` over wss:// and keeps what arrives. */
function testPage(config) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Poussr over wss</title></head>
<body>
<p id="state">loading</p>
<script src="/pusher.min.js"></script>
<script>
  const config = ${JSON.stringify(config)};
  window.received = [];
  window.subscribed = [];
  window.failures = [];
  window.states = [];
  const pusher = new Pusher(config.key, {
    wsHost: 'localhost',
    wssPort: config.port,
    forceTLS: true,
    enabledTransports: ['ws', 'wss'],
    cluster: 'mt1',
    disableStats: true,
    channelAuthorization: { endpoint: '/pusher/auth', transport: 'ajax' },
  });
  window.pusher = pusher;
  pusher.connection.bind('state_change', ({ current }) => {
    window.states.push(current);
    document.getElementById('state').textContent = current;
  });
  pusher.connection.bind('error', (e) => window.failures.push({ connection: JSON.stringify(e) }));
  for (const name of config.channels) {
    const channel = pusher.subscribe(name);
    channel.bind('pusher:subscription_succeeded', () => window.subscribed.push(name));
    channel.bind('pusher:subscription_error', (e) => window.failures.push({ channel: name, error: JSON.stringify(e) }));
    channel.bind(config.event, (data) => window.received.push({ channel: name, data }));
  }
</script>
</body></html>`;
}

/**
 * An https server on 127.0.0.1 (certificate from the suite's CA, for localhost) serving the test page at /,
 * pusher-js at /pusher.min.js and channel authorization at /pusher/auth (signed with the `pusher` SDK): the
 * page's XHR stays on its own https origin, so nothing is mixed content.
 */
async function startPageServer() {
  pageCertDir = certFolder(['localhost', '127.0.0.1']);
  const sdk = serverSdk(hub);
  const state = { authRequests: [], config: null };
  const server = createServer(
    { cert: readFileSync(join(pageCertDir, 'cert.pem')), key: readFileSync(join(pageCertDir, 'key.pem')) },
    (req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url, 'https://localhost');
        if (req.method === 'GET' && url.pathname === '/') {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(testPage(state.config));
        } else if (req.method === 'GET' && url.pathname === '/pusher.min.js') {
          res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
          res.end(readFileSync(PUSHER_JS));
        } else if (req.method === 'POST' && url.pathname === '/pusher/auth') {
          const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
          const request = { socket_id: form.get('socket_id'), channel_name: form.get('channel_name') };
          state.authRequests.push(request);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(sdk.authorizeChannel(request.socket_id, request.channel_name)));
        } else {
          res.writeHead(404);
          res.end();
        }
      });
    },
  );
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, state, url: `https://localhost:${server.address().port}/` };
}

/**
 * A page in a new context of `browser`, recording its script errors and the WebSockets it opens (URL, frames
 * received). The context is closed after the test: closing the page itself can hang for good in this Chromium
 * when it is still showing a certificate error page, closing its context does not.
 */
async function openPage(t, browser) {
  const context = await browser.newContext();
  t.after(() => withTimeout(context.close(), 15_000, 'the browser context to close'));
  const page = await context.newPage();
  const errors = [];
  const sockets = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), frames: 0, closed: false };
    sockets.push(socket);
    ws.on('framereceived', () => (socket.frames += 1));
    ws.on('close', () => (socket.closed = true));
  });
  t.after(() => assert.deepEqual(errors, [], 'no script errors in the page'));
  return { page, errors, sockets };
}

/** Opens a dashboard pane through its tab, as dashboard.test.mjs does. */
async function openPane(page, name) {
  await page.getByRole('tablist', { name: 'Panes' }).getByRole('tab', { name }).click();
  await page.getByRole('tabpanel', { name }).waitFor();
}

/** Asserts that `response` came over TLS with a certificate for localhost issued by the suite's CA. */
async function assertSuiteCertificate(response, what) {
  assert.ok(response, `${what}: a response`);
  assert.equal(response.status(), 200, `${what}: status`);
  const details = await response.securityDetails();
  assert.ok(details, `${what}: Chromium reports TLS security details`);
  assert.equal(details.subjectName, 'localhost', `${what}: the certificate's subject (${JSON.stringify(details)})`);
  assert.equal(details.issuer, caName(), `${what}: the certificate's issuer (${JSON.stringify(details)})`);
  assert.match(details.protocol, /^TLS 1\.[23]$/, `${what}: the TLS version (${JSON.stringify(details)})`);
}

/** The hub's admin API over https (Node trusts the suite's CA through NODE_EXTRA_CA_CERTS). */
async function adminApi(path) {
  const res = await fetch(`https://localhost:${hub.port}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

before(async () => {
  hub = await startHub({ env: tlsEnv(), config: `admin_token = "${TOKEN}"\n` });
  pageServer = await startPageServer();
  trusting = await launchChromium(join(tlsDir(), 'ca.pem'));
  untrusting = await launchChromium(null);
});

after(async () => {
  // Each step on its own, so that one that fails does not leave the others running.
  for (const stop of [
    () => trusting && withTimeout(trusting.close(), 15_000, 'Chromium to close'),
    () => untrusting && withTimeout(untrusting.close(), 15_000, 'the control Chromium to close'),
    () =>
      pageServer &&
      new Promise((resolve) => {
        pageServer.server.close(resolve);
        pageServer.server.closeAllConnections();
      }),
    () => hub?.close(),
  ]) {
    await Promise.resolve().then(stop).catch((err) => console.error('cleanup:', err));
  }
  for (const dir of [...homes, pageCertDir]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Debian Chromium over https and wss, trusting the CA through its NSS database', () => {
  test('the hub serves the suite certificate, and /health says so', async () => {
    const expected = fingerprintOf(join(tlsDir(), 'cert.pem'));
    assert.equal(await servedFingerprint(hub.port), expected, 'the certificate the hub presents');
    const res = await fetch(`https://localhost:${hub.port}/health`);
    assert.equal(res.status, 200);
    const health = await res.json();
    assert.ok(health.tls, `/health has a tls object: ${JSON.stringify(health)}`);
    assert.equal(health.tls.certificate.sha256, expected, `/health tls: ${JSON.stringify(health.tls)}`);
    assert.equal(health.tls.plain, true);
  });

  test('without the CA in its NSS database, the same Chromium refuses the test page and the dashboard', async (t) => {
    const { page } = await openPage(t, untrusting);
    // The browser itself works: plain http from the hub loads.
    const plain = await page.goto(`${hub.httpUrl}/health`, { timeout: 10_000 });
    assert.equal(plain.status(), 200, 'plain http /health loads in the control browser');
    for (const url of [pageServer.url, `https://localhost:${hub.port}/dashboard/?token=${TOKEN}`]) {
      await assert.rejects(page.goto(url, { timeout: 10_000 }), CERT_REFUSED, `${url} is refused for its certificate`);
    }
  });

  test('an https page connects pusher-js over wss://, joins a public and a private channel, and receives SDK events sent over https', async (t) => {
    const publicName = uniqueName('tls-public');
    const privateName = uniqueName('private-tls');
    const event = 'tls-greeting';
    pageServer.state.config = { key: hub.key, port: hub.port, channels: [publicName, privateName], event };
    const { page, sockets, errors } = await openPage(t, trusting);
    const response = await page.goto(pageServer.url, { timeout: 10_000 });
    await assertSuiteCertificate(response, 'the test page');
    assert.ok(page.url().startsWith('https://localhost:'), page.url());

    const state = () => page.evaluate(() => ({ states: window.states, subscribed: window.subscribed, failures: window.failures }));
    await page
      .waitForFunction(() => window.subscribed?.length === 2, null, { timeout: 10_000 })
      .catch(async (err) => {
        throw new Error(`${err.message}; page: ${JSON.stringify(await state())}; errors: ${errors}; sockets: ${JSON.stringify(sockets)}`);
      });
    const socketId = await page.evaluate(() => window.pusher.connection.socket_id);
    assert.match(socketId, /^\d+\.\d+$/);

    // The connection is wss://: what Chromium opened, and what pusher-js's transport holds.
    const wsUrl = `wss://localhost:${hub.port}/app/${hub.key}?`;
    await eventually(() => sockets.length >= 1, { what: 'the page to have opened a WebSocket' });
    assert.deepEqual(sockets.filter((s) => !s.url.startsWith(wsUrl)).map((s) => s.url), [], `every WebSocket of the page is ${wsUrl}…`);
    const transportUrl = await page.evaluate(() => window.pusher.connection.connection.transport.socket.url);
    assert.ok(transportUrl.startsWith(wsUrl), `pusher-js's socket: ${transportUrl}`);
    // The hub has that connection, from Chromium, on both channels.
    const { clients } = await adminApi('/admin/api/clients');
    const mine = clients.find((c) => c.socket_id === socketId);
    assert.ok(mine, `the hub lists ${socketId}: ${JSON.stringify(clients)}`);
    assert.match(mine.user_agent ?? '', /Chrome\//, `the connection is Chromium's: ${JSON.stringify(mine)}`);
    assert.deepEqual([...mine.channels].sort(), [privateName, publicName].sort());
    // The private channel was authorized by the page's own https origin, for this socket.
    assert.deepEqual(pageServer.state.authRequests.filter((r) => r.channel_name === privateName), [
      { socket_id: socketId, channel_name: privateName },
    ]);

    // Events from the SDK over https reach the page, on both channels.
    const sdk = serverSdk(hub, { host: 'localhost', useTLS: true });
    const res = await sdk.trigger([publicName, privateName], event, { n: 1, text: 'héllo over TLS' });
    assert.equal(res.status, 200);
    assert.equal((await sdk.trigger(privateName, event, { n: 2 })).status, 200);
    await page
      .waitForFunction(() => window.received.length >= 3, null, { timeout: 10_000 })
      .catch(async (err) => {
        throw new Error(`${err.message}; received: ${JSON.stringify(await page.evaluate(() => window.received))}`);
      });
    const received = await page.evaluate(() => window.received);
    const sorted = (list) => [...list].sort((a, b) => (a.channel + a.data.n < b.channel + b.data.n ? -1 : 1));
    assert.deepEqual(sorted(received), sorted([
      { channel: publicName, data: { n: 1, text: 'héllo over TLS' } },
      { channel: privateName, data: { n: 1, text: 'héllo over TLS' } },
      { channel: privateName, data: { n: 2 } },
    ]));
    assert.deepEqual(await page.evaluate(() => window.failures), []);
    assert.equal(await page.evaluate(() => window.pusher.connection.state), 'connected');
  });

  test('the dashboard over https: the overview and Clients show the hub, and the live feed runs over wss://', async (t) => {
    const { page, sockets } = await openPage(t, trusting);
    const response = await page.goto(`https://localhost:${hub.port}/dashboard/?token=${TOKEN}`, { timeout: 10_000 });
    await assertSuiteCertificate(response, 'the dashboard');
    assert.ok(page.url().startsWith(`https://localhost:${hub.port}/dashboard/`), page.url());

    // The overview is read from the admin API over https.
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor({ timeout: 10_000 });
    await page.locator('#app-key').filter({ hasText: hub.key }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#app-key').innerText(), hub.key);
    // The feed writes the tab counts with every batch: once one shows, the feed (a WebSocket) is open.
    await page.locator('#count-clients').filter({ hasText: /\d/ }).waitFor({ timeout: 10_000 });
    const feedUrl = `wss://localhost:${hub.port}/admin/api/feed?`;
    await eventually(() => sockets.some((s) => s.url.startsWith(feedUrl) && s.frames > 0), {
      what: () => `a feed WebSocket over wss that brought batches (sockets: ${JSON.stringify(sockets)})`,
    });
    const feed = sockets.filter((s) => s.url.startsWith(feedUrl));
    assert.equal(feed.length, 1, `one feed WebSocket: ${JSON.stringify(sockets)}`);
    assert.deepEqual(sockets.filter((s) => !s.url.startsWith('wss://')).map((s) => s.url), [], 'no plain ws:// from an https page');

    // A pusher-js client (Node, over wss) that joins shows in Clients, with its channel.
    const client = new Pusher(hub.key, {
      wsHost: 'localhost', wssPort: hub.port, forceTLS: true, enabledTransports: ['ws', 'wss'], cluster: 'mt1', disableStats: true,
    });
    t.after(() => client.disconnect());
    await withTimeout(
      new Promise((resolve, reject) => {
        client.connection.bind('connected', resolve);
        client.connection.bind('failed', () => reject(new Error('pusher-js over wss: failed')));
      }),
      10_000,
      'pusher-js (Node) to connect over wss',
    );
    const name = uniqueName('tls-dash');
    const inbox = inboxOf(await subscribe(client, name), 'tls-logged');
    await openPane(page, 'Clients');
    await page.locator(`tr[data-socket-id="${client.connection.socket_id}"]`).filter({ hasText: name }).waitFor({ timeout: 10_000 });

    // An event published by the SDK over https reaches the client and shows in the live log, through the feed.
    const sdk = serverSdk(hub, { host: 'localhost', useTLS: true });
    assert.equal((await sdk.trigger(name, 'tls-logged', { via: 'https' })).status, 200);
    assert.deepEqual(await inbox.next(5000), { via: 'https' });
    await openPane(page, 'Live log');
    const row = page.locator('.log-row', { hasText: 'tls-logged' });
    await row.waitFor({ timeout: 10_000 });
    assert.match(await row.innerText(), new RegExp(name));
    assert.equal(feed[0].closed, false, 'the feed is still open');
  });
});
