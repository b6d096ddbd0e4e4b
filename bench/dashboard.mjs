// The dashboard under load: a publisher sends 10,000 events/s for 10 s to the subscribers while every other
// kind of traffic flows too (connections opening and closing, subscriptions, presence joins and leaves, client
// events, refused connections, refused API requests, webhooks), once with no viewer and once with the
// dashboard's live log open in Chromium with every kind shown. Reports the window's responsiveness (frame times
// from requestAnimationFrame, input latency from the Event Timing API while typing in the filter) and what the
// viewer costs the hub's fan-out (deliveries/s with and without it). The hub keeps its history and its console
// journal on disk in both runs.
//
// Usage: node bench/dashboard.mjs [path/to/poussr]   (a release build: target/release/poussr)

import { spawn } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const BIN = process.argv[2] || new URL('../target/release/poussr', import.meta.url).pathname;
const RATE = Number(process.env.RATE || 10000); // events per second
const SECONDS = Number(process.env.SECONDS || 10);
const SUBSCRIBERS = Number(process.env.SUBSCRIBERS || 10);
const BATCH = 10; // events per batch_events request
const CHURN = Number(process.env.CHURN || 50); // connection cycles per second (each: open, subscribe, join, client event, leave, close)
const APP = { id: '1', key: 'benchkey', secret: 'benchsecret' };
const TOKEN = 'bench-admin-token-0123456789';

/** A webhook target that answers 200, except every tenth request (500), so that retries show too. */
function webhookTarget() {
  let n = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n += 1;
      res.writeHead(n % 10 === 0 ? 500 : 200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, count: () => n })));
}

async function startHub(webhookPort) {
  const dir = mkdtempSync(join(tmpdir(), 'poussr-bench-'));
  const config = join(dir, 'poussr.toml');
  writeFileSync(config, `admin_token = "${TOKEN}"

[[apps]]
id = "${APP.id}"
key = "${APP.key}"
secret = "${APP.secret}"
client_events = true

[[apps.webhooks]]
url = "http://127.0.0.1:${webhookPort}/hook"

[limits]
client_events_per_second = 100
`);
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--bind', '127.0.0.1', '--port', '0', '--config', config, '--data-dir', dir],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn', POUSSR_NO_MDNS: '1' } });
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /listening on http:\/\/[^\s]*:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error('hub exited ' + code)));
  });
}

async function subscribers(port, n) {
  const subs = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
    const sub = { ws, count: 0 };
    await new Promise((resolve, reject) => {
      ws.on('message', (m) => {
        // Counted without parsing: the load generator must not be what saturates first.
        if (m.length > 16 && m[10] === 0x74 && m.includes('"event":"tick"')) sub.count += 1;
        else {
          const f = JSON.parse(m);
          if (f.event === 'pusher:connection_established') ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'bench' } }));
          else if (f.event === 'pusher_internal:subscription_succeeded') resolve();
        }
      });
      ws.on('error', reject);
    });
    subs.push(sub);
  }
  return subs;
}

/** The hub's CPU time so far, in seconds (utime + stime from /proc). */
function hubCpu(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function signedPath(path, body) {
  const params = { auth_key: APP.key, auth_timestamp: String(Math.floor(Date.now() / 1000)), auth_version: '1.0', body_md5: createHash('md5').update(body).digest('hex') };
  const query = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const sig = createHmac('sha256', APP.secret).update(`POST\n${path}\n${query}`).digest('hex');
  return `${path}?${query}&auth_signature=${sig}`;
}

/** The auth signature of a presence subscription (docs/protocol.md §2.7). */
function presenceAuth(socketId, channel, channelData) {
  return APP.key + ':' + createHmac('sha256', APP.secret).update(`${socketId}:${channel}:${channelData}`).digest('hex');
}

/**
 * Every other kind of traffic, for SECONDS: CHURN connection cycles a second (each opens a connection, joins a
 * presence channel, sends a client event, leaves and closes; the hub sends webhooks for the channels and
 * members), plus, as often, a connection with a key of no app (refused) and an API request with a bad
 * signature (refused). Returns how many of each were made.
 */
async function churn(port) {
  const made = { cycles: 0, refusedConnections: 0, refusedRequests: 0 };
  const end = performance.now() + SECONDS * 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const cycle = (i) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${APP.key}?protocol=7`);
    const channel = `presence-churn-${i % 20}`;
    const done = () => { ws.terminate(); resolve(); };
    ws.on('message', (m) => {
      const f = JSON.parse(m);
      if (f.event === 'pusher:connection_established') {
        const socketId = JSON.parse(f.data).socket_id;
        const channelData = JSON.stringify({ user_id: `u${i}` });
        ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: presenceAuth(socketId, channel, channelData), channel_data: channelData } }));
      } else if (f.event === 'pusher_internal:subscription_succeeded') {
        ws.send(JSON.stringify({ event: 'client-typing', channel, data: { i } }));
        ws.send(JSON.stringify({ event: 'pusher:unsubscribe', data: { channel } }));
        ws.close();
      }
    });
    ws.on('close', done);
    ws.on('error', done);
  });
  const refusedConnection = () => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/no-such-key?protocol=7`);
    ws.on('close', resolve);
    ws.on('error', resolve);
  });
  const refusedRequest = () => new Promise((resolve) => {
    const body = JSON.stringify({ name: 'x', channels: ['bench'], data: '{}' });
    const path = signedPath(`/apps/${APP.id}/events`, body).replace(/auth_signature=[0-9a-f]+/, 'auth_signature=' + '0'.repeat(64));
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', resolve);
    req.end(body);
  });
  const pending = new Set();
  const start = performance.now();
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - start) / 1000) * CHURN);
    while (made.cycles < due && pending.size < 200) {
      for (const p of [cycle(made.cycles), refusedConnection(), refusedRequest()]) {
        pending.add(p);
        p.then(() => pending.delete(p));
      }
      made.cycles += 1;
      made.refusedConnections += 1;
      made.refusedRequests += 1;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
  agent.destroy();
  return made;
}

/** Publishes RATE events/s for SECONDS through batch_events, over keep-alive connections. */
async function publish(port) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const requests = (RATE * SECONDS) / BATCH;
  const perTick = RATE / BATCH / 100; // a tick every 10 ms
  let sent = 0;
  let inflight = 0;
  let failed = 0;
  const start = performance.now();
  await new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(requests, Math.round(((performance.now() - start) / 10) * perTick));
      while (sent < due && inflight < 64) {
        const seq = sent++;
        const batch = Array.from({ length: BATCH }, (_, k) => ({ channel: 'bench', name: 'tick', data: JSON.stringify({ seq: seq * BATCH + k, pad: 'x'.repeat(60) }) }));
        const body = JSON.stringify({ batch });
        inflight += 1;
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: signedPath(`/apps/${APP.id}/batch_events`, body), agent, headers: { 'content-type': 'application/json' } }, (res) => {
          if (res.statusCode !== 200) failed += 1;
          res.resume();
          res.on('end', () => { inflight -= 1; });
        });
        req.on('error', () => { failed += 1; inflight -= 1; });
        req.end(body);
      }
      if (sent >= requests && inflight === 0) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  agent.destroy();
  return { seconds: (performance.now() - start) / 1000, events: sent * BATCH, failed };
}

async function scenario(withViewer, browser) {
  const hook = await webhookTarget();
  const { child, port } = await startHub(hook.port);
  const subs = await subscribers(port, SUBSCRIBERS);
  let page;
  if (withViewer) {
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    await page.addInitScript(() => {
      window.__frames = [];
      window.__inputs = [];
      let last = performance.now();
      const frame = (t) => { window.__frames.push([t, t - last]); last = t; requestAnimationFrame(frame); };
      requestAnimationFrame(frame);
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) window.__inputs.push([e.startTime, e.name, e.duration]);
      }).observe({ type: 'event', durationThreshold: 16, buffered: true });
    });
    await page.goto(`http://127.0.0.1:${port}/dashboard/?token=${TOKEN}`);
    await page.click('button[data-pane="log"]');
    await page.waitForTimeout(1000);
  }
  const typing = withViewer ? (async () => {
    // An operator typing in the filter box during the burst: one key every 250 ms, then deleting it.
    const end = Date.now() + SECONDS * 1000;
    while (Date.now() < end) {
      await page.focus('#filter-event');
      await page.keyboard.type('t');
      await page.waitForTimeout(125);
      await page.keyboard.press('Backspace');
      await page.waitForTimeout(125);
    }
  })() : Promise.resolve();
  const before = subs.reduce((a, s) => a + s.count, 0);
  const cpu0 = hubCpu(child.pid);
  const [pub, churned] = await Promise.all([publish(port), churn(port)]);
  await typing;
  // Let the last deliveries arrive.
  const expected = pub.events * SUBSCRIBERS;
  const deadline = Date.now() + 10000;
  while (subs.reduce((a, s) => a + s.count, 0) - before < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const delivered = subs.reduce((a, s) => a + s.count, 0) - before;
  const hubCpuSeconds = hubCpu(child.pid) - cpu0;
  const result = { hubCpuSeconds, publishSeconds: pub.seconds, events: pub.events, failed: pub.failed, delivered, expected, deliveriesPerSecond: delivered / pub.seconds, churned, webhooks: hook.count() };
  if (withViewer) {
    const { frames, inputs, skipped, shown, kinds } = await page.evaluate(() => ({
      frames: window.__frames, inputs: window.__inputs,
      skipped: document.getElementById('log-skipped').textContent, shown: document.getElementById('log-count').textContent,
      kinds: [...document.querySelectorAll('#log-kinds .chip')].map((c) => c.dataset.kind + ' ' + (c.querySelector('.chip-count').textContent || '0')),
    }));
    result.kinds = kinds;
    const t0 = frames.length ? frames[0][0] + 2000 : 0; // steady state: after the first 2 s
    const steady = frames.filter(([t]) => t > t0).map(([, d]) => d).sort((a, b) => a - b);
    result.frames = steady.length;
    result.framesOver50 = steady.filter((d) => d > 50).length;
    result.frameP99 = steady[Math.floor(steady.length * 0.99)] || 0;
    result.frameMax = steady[steady.length - 1] || 0;
    const keys = inputs.filter(([, name]) => ['keydown', 'keyup', 'keypress', 'input', 'beforeinput'].includes(name)).map(([, , d]) => d).sort((a, b) => a - b);
    result.inputSlowEvents = keys.length; // only events over 16 ms are reported by the Event Timing API
    result.inputMax = keys.length ? keys[keys.length - 1] : 0;
    result.skipped = skipped;
    result.shown = shown;
    await page.close();
  }
  for (const s of subs) s.ws.terminate();
  hook.server.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  return result;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
const alone = await scenario(false, browser);
const watched = await scenario(true, browser);
await browser.close();

const cost = 100 * (1 - watched.deliveriesPerSecond / alone.deliveriesPerSecond);
const f = (n) => Math.round(n).toLocaleString('en-US');
console.log(`## Dashboard under load

Measured ${new Date().toISOString().slice(0, 10)} by \`bench/dashboard.mjs\` on ${cpus().length} cores (${cpus()[0].model}), release hub on 127.0.0.1,
publisher, ${SUBSCRIBERS} WebSocket subscribers and headless Chromium all on the same machine. The publisher sends
${f(RATE)} events/s (100-byte payloads, \`batch_events\` of ${BATCH}) for ${SECONDS} s. Meanwhile every other kind of traffic
flows: ${CHURN} connection cycles a second (open, join a presence channel, a client event, leave, close; with their
webhooks to a local target that fails one request in ten), ${CHURN} refused connections (unknown key) and ${CHURN} refused
API requests (bad signature) a second. The hub keeps its history and console journal on disk. The dashboard shows the
live log with every kind on while an operator types in its filter box every 250 ms. Baseline: the same run with no
dashboard open.

| figure | goal | no viewer (baseline) | dashboard open |
|---|---|---|---|
| events published | — | ${f(alone.events)} in ${alone.publishSeconds.toFixed(1)} s | ${f(watched.events)} in ${watched.publishSeconds.toFixed(1)} s |
| deliveries to subscribers | all | ${f(alone.delivered)} of ${f(alone.expected)} | ${f(watched.delivered)} of ${f(watched.expected)} |
| fan-out, deliveries/s | viewer costs < 10 % | ${f(alone.deliveriesPerSecond)} | ${f(watched.deliveriesPerSecond)} (${cost.toFixed(1)} % less) |
| hub CPU time for the run | — | ${alone.hubCpuSeconds.toFixed(2)} s | ${watched.hubCpuSeconds.toFixed(2)} s (${(100 * (watched.hubCpuSeconds / alone.hubCpuSeconds - 1)).toFixed(1)} % more: the monitor feed) |
| frames over 50 ms (steady state) | none | — | ${watched.framesOver50} of ${watched.frames} (p99 ${watched.frameP99.toFixed(1)} ms, max ${watched.frameMax.toFixed(1)} ms) |
| input latency (Event Timing) | < 100 ms | — | ${watched.inputSlowEvents ? `max ${watched.inputMax.toFixed(0)} ms (${watched.inputSlowEvents} key events over 16 ms)` : 'every key event under 16 ms'} |
| other traffic | — | ${f(alone.churned.cycles)} cycles, ${f(alone.webhooks)} webhook requests | ${f(watched.churned.cycles)} cycles, ${f(watched.webhooks)} webhook requests |
| log | — | — | ${watched.shown} ${watched.skipped} |
| entries by kind | every kind | — | ${watched.kinds.join(', ')} |
`);
