// Recordings played again (docs/recording.md): `poussr replay` through the signed HTTP API, and the admin
// API's replay through the hub, received by real pusher-js clients. Pacing, the channel map, refused
// recordings (nothing published), pause / resume / stop, and the `replay` source on the monitor feed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { hubCommand, startHub } from './hub.mjs';
import { Inbox, RawSocket, connectPusher, eventually, sentinel, serverSdk, subscribe, uniqueName, withTimeout } from './wire.mjs';

const TOKEN = 'replay-test-admin-token-0123456789';
const CLI_TIMEOUT_MS = 90_000;

/** The text of a recording: the header, then one line per entry (an object, or a string written as is). */
function recordingText(entries, { version = 1 } = {}) {
  const header = JSON.stringify({ format: 'poussr-recording', version, recorded_at_ms: Date.now(), filter: null });
  return [header, ...entries.map((e) => (typeof e === 'string' ? e : JSON.stringify(e)))].join('\n') + '\n';
}

/** An `event_published` entry as the monitor feed writes it. */
function published(at_ms, channel, event, data) {
  return { type: 'event_published', at_ms, app_id: '1', channel, event, data, source: 'api', socket_id: null, delivered: 1 };
}

/** `n` events on `channel` named `event`, data `{"n": i}`, `gap(i)` ms after the one before. */
function paced(n, channel, event, gap) {
  const entries = [];
  let at = 1_700_000_000_000;
  for (let i = 0; i < n; i += 1) {
    if (i > 0) at += gap(i);
    entries.push(published(at, channel, event, JSON.stringify({ n: i })));
  }
  return entries;
}

/** Every event a pusher-js channel receives, in order, with its arrival time. */
function everyEvent(channel) {
  const inbox = new Inbox(`every event on ${channel.name}`);
  channel.bind_global((event, data) => inbox.push({ event, data, at: performance.now() }));
  return inbox;
}

describe('record and replay', () => {
  let hub;
  let sdk;
  let dir;
  let files = 0;

  before(async () => {
    // No history: a kept event is delivered once it is on the disk (history.sync = full), and an fsync on a
    // busy machine takes from under a millisecond to tens of them, which is the disk's pace, not replay's.
    hub = await startHub({ config: `admin_token = "${TOKEN}"\n`, app: '[apps.history]\nenabled = false\n' });
    sdk = serverSdk(hub);
    dir = mkdtempSync(join(tmpdir(), 'poussr-replay-'));
  });
  after(async () => {
    await hub?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function writeRecording(text) {
    files += 1;
    const path = join(dir, `recording-${files}.jsonl`);
    writeFileSync(path, text);
    return path;
  }

  /** Runs `poussr replay FILE ARGS…` against the hub, the credentials given in the environment. */
  function cli(file, args = []) {
    const [command, argv] = hubCommand(['replay', file, '--url', hub.httpUrl, ...args]);
    const child = spawn(command, argv, {
      env: { ...process.env, POUSSR_APP_ID: hub.appId, POUSSR_APP_KEY: hub.key, POUSSR_APP_SECRET: hub.secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const ended = new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
    return withTimeout(ended, CLI_TIMEOUT_MS, `poussr replay ${file}`).catch((err) => {
      child.kill('SIGKILL');
      throw err;
    });
  }

  function admin(method, path, body) {
    return fetch(`${hub.httpUrl}/admin/api/replay${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function adminJson(method, path, body, status) {
    const res = await admin(method, path, body);
    const text = await res.text();
    assert.equal(res.status, status, `${method} /admin/api/replay${path}: ${text}`);
    return JSON.parse(text);
  }

  async function client(t) {
    const c = await connectPusher(hub);
    t.after(() => c.disconnect());
    return c;
  }

  /** The monitor feed, open and known to be watching (a probe event published after it opened came through). */
  async function feed(t) {
    const socket = await RawSocket.open(`${hub.wsUrl}/admin/api/feed?token=${TOKEN}`);
    t.after(() => socket.close());
    const probe = uniqueName('probe');
    const published = () => socket.frames.all.flatMap((batch) => batch.events ?? []).filter((e) => e.type === 'event_published');
    await eventually(
      async () => {
        await sdk.trigger(probe, 'probe', {});
        return published().some((e) => e.channel === probe);
      },
      { timeout: 10_000, interval: 200, what: 'the feed to show a probe event' },
    );
    return { on: (channel) => published().filter((e) => e.channel === channel) };
  }

  test('a recording played at 2× with poussr replay arrives in order, its gaps halved', async (t) => {
    const c = await client(t);
    const watch = await feed(t);
    const name = uniqueName('paced');
    const inbox = everyEvent(await subscribe(c, name));
    const gaps = [0];
    const entries = paced(200, name, 'tick', () => {
      const gap = randomInt(40, 201);
      gaps.push(gap);
      return gap;
    });
    // Other entries are skipped: they change neither what is published nor its pace.
    entries.splice(50, 0, { type: 'connection_opened', at_ms: entries[49].at_ms, socket_id: '1.2' });
    const run = await cli(writeRecording(recordingText(entries)), ['--speed', '2']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /replayed 200\/200 events to http:\/\/127\.0\.0\.1:\d+ in [\d.]+ s at 2× \(1 entry of another type skipped\)/);
    await withTimeout(inbox.reached(200), 10_000, 'the 200 replayed events');
    const got = inbox.all;
    assert.deepEqual(got.map((e) => e.event), Array(200).fill('tick'));
    assert.deepEqual(got.map((e) => e.data.n), [...Array(200).keys()], 'the original order, at pusher-js');

    // The pace is measured where replay sets it: when the hub published each event (the monitor feed's at_ms,
    // stamped as the event is fanned out). What pusher-js adds on top (the WebSocket, this process's event loop)
    // is delivery, not replay, and is reported below rather than asserted.
    await eventually(async () => watch.on(name).length === 200, { timeout: 10_000, what: 'the 200 events on the feed' });
    const stamped = watch.on(name);
    assert.deepEqual(stamped.map((e) => JSON.parse(e.data).n), [...Array(200).keys()], 'the original order, at the hub');
    assert.ok(stamped.every((e) => e.source === 'replay'), 'marked as replayed');
    const check = (times) => {
      const off = [];
      const deviations = [];
      for (let i = 1; i < 200; i += 1) {
        const expected = gaps[i] / 2;
        const actual = times[i] - times[i - 1];
        deviations.push(Math.abs(actual - expected));
        if (Math.abs(actual - expected) > Math.max(expected * 0.1, 5)) off.push({ i, expected, actual: Number(actual.toFixed(2)) });
      }
      deviations.sort((a, b) => a - b);
      const q = (p) => deviations[Math.min(deviations.length - 1, Math.floor(p * deviations.length))];
      return { off, median: q(0.5), summary: `median ${q(0.5).toFixed(2)}, p95 ${q(0.95).toFixed(2)}, worst ${q(1).toFixed(2)} ms; ${off.length} of 199 gaps beyond 10% or 5 ms` };
    };
    const atHub = check(stamped.map((e) => e.at_ms));
    const atClient = check(got.map((e) => e.at));
    t.diagnostic(`gap deviation at 2×, as the hub published: ${atHub.summary}; as pusher-js received: ${atClient.summary}`);
    // Held to the bound, within 10% or 5 ms of half the original: the typical gap (the median), and
    // three gaps in four. Not every gap: on a shared 2-core machine the operating system delays a few
    // publishes by more (measured with another test suite running beside: 2 to 15 of 199 gaps beyond, the
    // worst 10 to 43 ms, the median 0.5 to 1 ms; a late event makes two gaps wrong, its own and the next,
    // and the absolute schedule puts the one after it back in place). Every gap: POUSSR_STRICT_PACING=1.
    assert.ok(atHub.median <= 5, `the median gap deviation ${atHub.median.toFixed(2)} ms is within 5 ms`);
    assert.ok(atHub.off.length <= 50, `at most a quarter of the gaps beyond 10% or 5 ms: ${JSON.stringify(atHub.off)}`);
    if (process.env.POUSSR_STRICT_PACING === '1') {
      assert.deepEqual(atHub.off, [], 'every gap, as the hub published, within 10% or 5 ms of half the original');
    }
    // The whole span is half the original within 2%: the schedule is absolute, so delays do not add up.
    const span = stamped[199].at_ms - stamped[0].at_ms;
    const expectedSpan = gaps.reduce((a, b) => a + b, 0) / 2;
    assert.ok(Math.abs(span - expectedSpan) <= expectedSpan * 0.02, `span ${span.toFixed(1)} ms, expected ${expectedSpan} ms`);
  });

  test('poussr replay --map publishes on the mapped channel only', async (t) => {
    const c = await client(t);
    const original = uniqueName('orders');
    const mapped = uniqueName('test-orders');
    const onOriginal = everyEvent(await subscribe(c, original));
    const onMapped = everyEvent(await subscribe(c, mapped));
    const run = await cli(writeRecording(recordingText(paced(5, original, 'created', () => 10))), ['--speed', '10', '--map', `${original}=${mapped}`]);
    assert.equal(run.code, 0, run.stderr);
    await withTimeout(onMapped.reached(5), 10_000, 'the mapped events');
    assert.deepEqual(onMapped.all.map((e) => [e.event, e.data.n]), [0, 1, 2, 3, 4].map((n) => ['created', n]));
    await sentinel(sdk, [c.channel(original)]);
    assert.deepEqual(onOriginal.all.map((e) => e.event), ['test-sentinel'], 'nothing but the sentinel on the original channel');
  });

  /** Runs the CLI on a refused recording of events on a fresh channel: it fails, and nothing was published. */
  async function refusedByCli(t, text, reason) {
    const c = await client(t);
    const name = uniqueName('refused');
    const inbox = everyEvent(await subscribe(c, name));
    const run = await cli(writeRecording(text(name)), ['--speed', '10']);
    assert.equal(run.code, 1, `exit code (stderr: ${run.stderr})`);
    assert.ok(run.stderr.includes(reason), `the reason, line included: ${run.stderr}`);
    assert.match(run.stderr, /nothing was published/);
    await sentinel(sdk, [c.channel(name)]);
    assert.deepEqual(inbox.all.map((e) => e.event), ['test-sentinel'], 'the sentinel arrived first and alone');
  }

  test('a damaged recording is refused by poussr replay with its line, and nothing is published', async (t) => {
    await refusedByCli(
      t,
      (name) => {
        const lines = paced(6, name, 'created', () => 10);
        lines[3] = '{"type":"event_published","at_ms":';
        return recordingText(lines);
      },
      'line 5: not JSON: EOF while parsing a value (column 34); nothing was published',
    );
  });

  test('a recording of another version is refused by poussr replay on line 1, and nothing is published', async (t) => {
    await refusedByCli(
      t,
      (name) => recordingText(paced(3, name, 'created', () => 10), { version: 2 }),
      'line 1: this is a Poussr recording of version 2; this Poussr reads version 1; nothing was published',
    );
  });

  test('the admin API plays, pauses, resumes and stops a replay, one at a time, and refuses a bad recording', async (t) => {
    const c = await client(t);
    const name = uniqueName('admin-replay');
    const channel = await subscribe(c, name);
    const inbox = everyEvent(channel);
    const replayed = () => inbox.all.filter((e) => e.event === 'step');
    assert.equal((await adminJson('GET', '', undefined, 200)).state, 'idle');

    const recording = recordingText(paced(60, name, 'step', () => 100));
    const started = await adminJson('POST', '', { recording, speed: 1, name: 'steps.jsonl', app_id: hub.appId }, 202);
    assert.deepEqual(
      { ...started, elapsed_ms: 0, sent: 0 },
      { state: 'playing', sent: 0, total: 60, skipped: 0, failed: 0, speed: 1, elapsed_ms: 0, duration_ms: 5900, error: null, name: 'steps.jsonl' },
    );
    await withTimeout(inbox.reached(3), 10_000, 'the first replayed events');

    const second = await admin('POST', '', { recording, speed: 2, app_id: hub.appId });
    assert.equal(second.status, 409);
    assert.match((await second.json()).error, /^a replay is already playing \(\d+ of 60 events sent\); stop it before starting another$/);

    const paused = await adminJson('POST', '/pause', undefined, 200);
    assert.equal(paused.state, 'paused');
    assert.ok(paused.sent >= 3 && paused.sent < 60, `sent when paused: ${paused.sent}`);
    // That a pause holds over time is proved on the player itself, with tokio's clock paused (src/replay/tests.rs);
    // here: once paused, the progress stands, and a sentinel published after it arrives right after the events
    // sent before the pause.
    const still = await adminJson('GET', '', undefined, 200);
    assert.deepEqual(still, paused, 'the progress does not move while paused');
    await sentinel(sdk, [channel]);
    assert.equal(replayed().length, paused.sent, 'every event sent before the pause arrived, and none after');
    assert.equal(inbox.all.at(-1).event, 'test-sentinel');
    assert.equal((await admin('POST', '/pause')).status, 409, 'a paused replay cannot be paused');

    const resumed = await adminJson('POST', '/resume', undefined, 200);
    assert.equal(resumed.state, 'playing');
    await withTimeout(inbox.reached(paused.sent + 3), 10_000, 'events after the resume');
    const stopped = await adminJson('POST', '/stop', undefined, 200);
    assert.equal(stopped.state, 'stopped');
    assert.ok(stopped.sent > paused.sent && stopped.sent < 60, `sent when stopped: ${stopped.sent}`);
    await sentinel(sdk, [channel]);
    assert.deepEqual(replayed().map((e) => e.data.n), [...Array(stopped.sent).keys()], 'in order, none lost, none after the stop');
    assert.equal((await admin('POST', '/stop')).status, 409, 'a stopped replay cannot be stopped');
    assert.equal((await admin('POST', '/resume')).status, 409, 'a stopped replay cannot be resumed');

    const bad = paced(4, name, 'step', () => 10);
    bad[2] = { ...bad[2], data: { n: 2 } };
    const refused = await admin('POST', '', { recording: recordingText(bad) });
    assert.equal(refused.status, 400);
    assert.deepEqual(await refused.json(), { error: 'line 4: "data" must be a string' });
    const tooFast = await admin('POST', '', { recording, speed: 11 });
    assert.equal(tooFast.status, 400);
    assert.deepEqual(await tooFast.json(), { error: 'the speed must be between 0.5 and 10 (×), not 11' });
    assert.equal((await adminJson('GET', '', undefined, 200)).state, 'stopped', 'a refused recording replaces nothing');
    const before = inbox.all.length;
    await sentinel(sdk, [channel]);
    assert.deepEqual(inbox.all.slice(before).map((e) => e.event), ['test-sentinel'], 'nothing of the refused recordings');
  });

  test('replayed events show as "replay" on the monitor feed, from poussr replay and from the admin API', async (t) => {
    const watch = await feed(t);
    const fromCli = uniqueName('feed-cli');
    const run = await cli(writeRecording(recordingText(paced(3, fromCli, 'e', () => 5))), ['--speed', '10']);
    assert.equal(run.code, 0, run.stderr);
    const fromAdmin = uniqueName('feed-admin');
    await adminJson('POST', '', { recording: recordingText(paced(3, fromAdmin, 'e', () => 5)), speed: 10, app_id: hub.appId }, 202);
    await eventually(() => watch.on(fromCli).length === 3 && watch.on(fromAdmin).length === 3, {
      timeout: 10_000,
      what: () => `3 events of each replay on the feed (${watch.on(fromCli).length} and ${watch.on(fromAdmin).length})`,
    });
    for (const channel of [fromCli, fromAdmin]) {
      assert.deepEqual(
        watch.on(channel).map((e) => [e.event, e.data, e.source]),
        [0, 1, 2].map((n) => ['e', JSON.stringify({ n }), 'replay']),
        channel,
      );
    }
    const direct = uniqueName('feed-api');
    await sdk.trigger(direct, 'e', {});
    await eventually(() => watch.on(direct).length === 1, { what: 'the direct trigger on the feed' });
    assert.equal(watch.on(direct)[0].source, 'api', 'a request without X-Poussr-Replay is the API');
  });
});
