// Recovery of missed events (docs/protocol.md §6) with the real clients: pusher-js and laravel-echo with the
// add-on the hub serves at /poussr-recovery.js, through a TCP proxy the test owns, which cuts connections and
// refuses new ones for a while (a Wi-Fi drop), and across hub restarts and a SIGKILL on the same data folder.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { WebSocket } from 'ws';
import { Hub, startHub } from './hub.mjs';
import { TcpProxy } from './tcp-proxy.mjs';
import { loadRecovery, numbersOf, publishNumbers, pusherThrough, range, subscribed } from './recovering.mjs';
import {
  Inbox,
  closeTimersOf,
  eventually,
  inboxOf,
  openPusherSocket,
  publishV1,
  pusherOptions,
  serverSdk,
  uniqueName,
  withTimeout,
} from './wire.mjs';


test('pusher-js and laravel-echo with the add-on get a stream of 2,000 events once and in order through 4 Wi-Fi drops and a hub restart; without it, events are lost', async (t) => {
  const hub = await startHub();
  const proxies = [];
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    for (const c of clients) c.unrefTimers?.();
    for (const p of proxies) p.close();
    await hub.close();
  });
  const recovery = await loadRecovery(hub);
  const name = uniqueName('numbered');
  const proxy = () => {
    const p = new TcpProxy(hub.port);
    proxies.push(p);
    return p.listen();
  };
  const [withAddOn, without, forEcho] = await Promise.all([proxy(), proxy(), proxy()]);

  const a = pusherThrough(hub, withAddOn, { recovery });
  const b = pusherThrough(hub, without, { plain: true });
  clients.push(a, b);
  const echo = new Echo({ broadcaster: 'pusher', key: hub.key, ...pusherOptions(hub), wsPort: forEcho.port, Pusher });
  const echoPusher = echo.connector.pusher;
  echoPusher.unrefTimers = closeTimersOf(echoPusher);
  recovery.attach(echoPusher);
  clients.push(echoPusher);

  const chA = a.subscribe(name);
  const chB = b.subscribe(name);
  const recoveredA = numbersOf(chA);
  const lostB = numbersOf(chB);
  const viaEcho = [];
  const echoChannel = echo.channel(name);
  echoChannel.listen('.numbered', (data) => viaEcho.push(data.n));
  await Promise.all([subscribed(chA), subscribed(chB), subscribed(echoPusher.channel(name))]);

  const sdk = serverSdk(hub);
  const everyoneConnected = () =>
    eventually(() => clients.every((c) => c.connection.state === 'connected'), {
      timeout: 30_000,
      what: `every client to be back (${clients.map((c) => c.connection.state).join(', ')})`,
    });
  // Keyed by the first number of a batch (1, 11, 21, ...). A drop keeps the hub unreachable while 200 events
  // are published and until every client has noticed; each cut waits for the clients to be back from the one before, so that each one bites,
  // and events go on being published meanwhile.
  const cuts = { 301: 'drop', 501: 'back', 651: 'restart', 1001: 'drop', 1201: 'back', 1351: 'drop', 1551: 'back', 1701: 'drop', 1901: 'back' };
  await publishNumbers(sdk, name, 1, 2000, {
    beforeBatch: async (n) => {
      if (!cuts[n]) return;
      if (cuts[n] === 'back') {
        // The link comes back once every client has noticed it was gone.
        await eventually(() => clients.every((c) => c.connection.state !== 'connected'), {
          timeout: 30_000,
          what: 'every client to notice the drop',
        });
        for (const p of proxies) p.release();
        return;
      }
      await everyoneConnected();
      if (cuts[n] === 'drop') {
        for (const p of proxies) p.cut();
      } else {
        // On the same data folder: the history is still there for the clients coming back. The link holds
        // reconnections meanwhile, as the hub's address would once it listens again.
        for (const p of proxies) p.hold();
        await hub.restart();
        for (const p of proxies) {
          p.targetPort = hub.port;
          p.release();
        }
      }
    },
  });
  await eventually(() => recoveredA.got.at(-1) === 2000 && viaEcho.at(-1) === 2000, {
    timeout: 60_000,
    what: `every event to arrive (pusher-js at ${recoveredA.got.at(-1)}, laravel-echo at ${viaEcho.at(-1)})`,
  });
  assert.deepEqual(recoveredA.got, range(1, 2000), 'pusher-js with the add-on: every event once, in order');
  assert.deepEqual(viaEcho, range(1, 2000), 'laravel-echo with the add-on: every event once, in order');
  assert.equal(recoveredA.gaps.items.length, 0, `no gap: ${JSON.stringify(recoveredA.gaps.items)}`);
  for (const p of proxies) assert.ok(p.accepted >= 6, `each client came back 5 times (${p.accepted} connections)`);

  // The control: the same cuts, no add-on. Once it is back, an event after the stream proves it gets live
  // events again (so what it lacks was lost, not late); what it lacks proves the cuts bite.
  await everyoneConnected();
  const done = new Inbox('done on the plain client');
  chB.bind('done', () => done.push(true));
  assert.equal((await sdk.trigger(name, 'done', {})).status, 200);
  await done.next(10_000);
  const missing = 2000 - lostB.got.length;
  assert.ok(missing >= 5 * 100, `without the add-on, events are lost (${missing} missing)`);
  assert.deepEqual([...lostB.got].sort((x, y) => x - y), lostB.got, 'what it got came in order');
  assert.equal(lostB.gaps.items.length, 0, 'a client that did not opt in gets no Poussr frame');
});

/** A pusher-js client with the add-on through a new proxy, subscribed to `name`; cleaned up by `t`. */
async function recoveringClient(t, hub, name) {
  const recovery = await loadRecovery(hub);
  const proxy = await new TcpProxy(hub.port).listen();
  const client = pusherThrough(hub, proxy, { recovery });
  t.after(() => {
    client.disconnect();
    client.unrefTimers();
    proxy.close();
  });
  const channel = client.subscribe(name);
  const received = numbersOf(channel);
  await subscribed(channel);
  return { client, proxy, channel, ...received };
}

test('after a SIGKILL mid-stream and a restart on the same data folder, every event answered 2xx is recovered', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const name = uniqueName('killed');
  const { client, proxy, got, gaps } = await recoveringClient(t, hub, name);
  // A request in flight when the hub is killed must end: under Wine its connection can stay open without an
  // answer (wineserver holds the sockets), so each request has a deadline.
  const sdk = serverSdk(hub, { timeout: 5000 });

  // One publisher, each trigger awaited; the hub is killed while it runs, from outside it.
  const acked = [];
  let n = 0;
  const publishing = (async () => {
    for (;;) {
      n += 1;
      try {
        const res = await sdk.trigger(name, 'numbered', { n });
        if (res.status === 200) acked.push(n);
      } catch {
        return; // the hub is gone: the request in flight may or may not have been kept
      }
    }
  })();
  await eventually(() => acked.length >= 300 && got.length >= 100, { timeout: 20_000, what: '300 events answered' });
  proxy.hold();
  await hub.kill();
  // The killed hub's connections are gone with it: on Linux the kernel closes them at once; under Wine the
  // close can come late (wineserver holds the sockets too), and the client would only notice at its next
  // ping. Dropping them at the proxy, as a load balancer that saw the backend die does, makes both the same.
  proxy.cut();
  await publishing;
  const lastTried = n;
  await hub.start();
  proxy.targetPort = hub.port;
  proxy.release();
  // Published after the restart: the live stream goes on after what is recovered.
  for (let k = lastTried + 1; k <= lastTried + 5; k++) {
    assert.equal((await sdk.trigger(name, 'numbered', { n: k })).status, 200);
  }
  await eventually(() => got.at(-1) === lastTried + 5, { timeout: 30_000, what: `the event after the restart (at ${got.at(-1)})` });
  assert.equal(client.connection.state, 'connected');
  assert.equal(gaps.items.length, 0, `nothing reported lost: ${JSON.stringify(gaps.items)}`);
  const received = new Set(got);
  const lost = acked.filter((k) => !received.has(k));
  assert.deepEqual(lost, [], `every event answered 2xx before the kill arrived (${acked.length} answered)`);
  for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `in order, once each: ${got[i - 1]} then ${got[i]}`);
});

test('a gap larger than what is kept gives poussr:not_recovered with the reason, then live events flow', async (t) => {
  const hub = await startHub({ app: '[apps.history]\nmax_events_per_channel = 10' });
  t.after(() => hub.close());
  const name = uniqueName('evicted');
  const { proxy, channel, got, gaps } = await recoveringClient(t, hub, name);
  const sdk = serverSdk(hub);
  assert.equal((await sdk.trigger(name, 'numbered', { n: 1 })).status, 200);
  await eventually(() => got.length === 1, { what: 'the first event' });

  proxy.cut(); // released below, once the gap is made
  for (let k = 2; k <= 31; k++) assert.equal((await sdk.trigger(name, 'numbered', { n: k })).status, 200);
  const live = inboxOf(channel, 'live');
  proxy.release();
  const why = await gaps.next(30_000);
  assert.equal(why.reason, 'evicted', JSON.stringify(why));
  assert.equal(why.serial, 1);
  assert.equal(why.oldest, 22, 'the 10 newest of 31 are kept');
  assert.match(why.message, /10 events per channel/);
  assert.equal((await sdk.trigger(name, 'live', { ok: true })).status, 200);
  assert.deepEqual(await live.next(10_000), { ok: true });
  assert.deepEqual(got, [1], 'nothing of the gap is replayed in part');

  // A store that is gone (here: deleted while the hub was down) is another history: the epoch changed.
  proxy.hold();
  await hub.stop();
  rmSync(join(hub.dataDir, 'history'), { recursive: true, force: true });
  await hub.start();
  proxy.targetPort = hub.port;
  proxy.release();
  const changed = await gaps.next(30_000);
  assert.equal(changed.reason, 'epoch_changed', JSON.stringify(changed));
  assert.equal((await sdk.trigger(name, 'live', { again: true })).status, 200);
  assert.deepEqual(await live.next(10_000), { again: true });
});

test('a raw client that does not ask gets exactly the frames it always got; one that asks gets positions', async (t) => {
  const hub = await startHub();
  const plain = await openPusherSocket(hub);
  const asking = await openPusherSocket(hub);
  t.after(async () => {
    plain.close();
    asking.close();
    await hub.close();
  });
  const name = uniqueName('frames');
  plain.send({ event: 'pusher:subscribe', data: { channel: name } });
  asking.send({ event: 'pusher:subscribe', data: { channel: name, poussr_resume: {} } });
  const succeeded = { event: 'pusher_internal:subscription_succeeded', channel: name, data: '{}' };
  assert.deepEqual(await plain.next(), succeeded);
  assert.deepEqual(await asking.next(), succeeded);
  const start = await asking.next();
  assert.equal(start.event, 'pusher_internal:poussr_position');
  const { epoch, serial, client_events: clientEvents } = JSON.parse(start.data);
  assert.deepEqual({ serial, clientEvents }, { serial: 0, clientEvents: false });
  assert.match(epoch, /^[0-9a-f]{16}$/);

  const sdk = serverSdk(hub);
  // Not for the asking socket: it gets the event's position instead, the plain one gets the event.
  await sdk.trigger(name, 'first', { a: 1 }, { socket_id: asking.socketId });
  await sdk.trigger(name, 'second', { b: 2 });
  assert.deepEqual(await plain.next(), { event: 'first', channel: name, data: '{"a":1}' });
  assert.deepEqual(await plain.next(), { event: 'second', channel: name, data: '{"b":2}' });
  assert.deepEqual(plain.texts.slice(1), [
    JSON.stringify(succeeded),
    JSON.stringify({ event: 'first', channel: name, data: '{"a":1}' }),
    JSON.stringify({ event: 'second', channel: name, data: '{"b":2}' }),
  ]);
  assert.deepEqual(await asking.next(), {
    event: 'pusher_internal:poussr_position',
    channel: name,
    data: JSON.stringify({ epoch, serial: 1 }),
  });
  assert.deepEqual(await asking.next(), { event: 'second', channel: name, data: '{"b":2}' });

  // Resuming from serial 0 gives both again, the first as a position if the client says it was its socket.
  const again = await openPusherSocket(hub);
  t.after(() => again.close());
  again.send({
    event: 'pusher:subscribe',
    data: { channel: name, poussr_resume: { epoch, serial: 0, socket_ids: [asking.socketId] } },
  });
  assert.deepEqual(await again.next(), succeeded);
  assert.deepEqual(JSON.parse((await again.next()).data), { epoch, serial: 0, client_events: false });
  assert.deepEqual(JSON.parse((await again.next()).data), { epoch, serial: 1 });
  assert.deepEqual(await again.next(), { event: 'second', channel: name, data: '{"b":2}' });
});

test("the history API lists a channel's kept events after a serial, a page at a time, through the pusher SDK's signed get", async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const sdk = serverSdk(hub);
  const name = uniqueName('listed');
  const events = (body) => body.events.map((e) => [e.serial, e.event, JSON.parse(e.data).n]);
  const get = async (params) => {
    const res = await sdk.get({ path: `/channels/${name}/events`, params });
    return res.json();
  };
  const empty = await get({});
  assert.deepEqual(empty, { channel: name, epoch: null, last_serial: 0, events: [], next_after: null });

  for (let n = 1; n <= 5; n++) assert.equal((await sdk.trigger(name, 'numbered', { n }, n === 3 ? { socket_id: '1.1' } : {})).status, 200);
  const first = await get({ limit: 2 });
  assert.deepEqual(events(first), [[1, 'numbered', 1], [2, 'numbered', 2]]);
  assert.equal(first.last_serial, 5);
  assert.equal(first.next_after, 2);
  const second = await get({ after: first.next_after, limit: 2, epoch: first.epoch });
  assert.deepEqual(events(second), [[3, 'numbered', 3], [4, 'numbered', 4]]);
  assert.equal(second.events[0].socket_id, '1.1', 'the socket the event was not for is listed');
  assert.ok(second.events[0].published_at_ms > 0);
  const last = await get({ after: second.next_after });
  assert.deepEqual(events(last), [[5, 'numbered', 5]]);
  assert.equal(last.next_after, null, 'the last page says so');

  await assert.rejects(sdk.get({ path: `/channels/${name}/events`, params: { epoch: '0000000000000000' } }), (err) => {
    assert.equal(err.status, 409);
    assert.match(err.body, /epoch/);
    return true;
  });
  await assert.rejects(sdk.get({ path: `/channels/${name}/events`, params: { limit: 5000 } }), (err) => err.status === 400);
  // Unsigned, it is refused like every API call.
  assert.equal((await fetch(`${hub.httpUrl}/apps/${hub.appId}/channels/${name}/events`)).status, 401);
});

test('a damaged history store is moved aside at start with a clear message, and the hub keeps serving', async (t) => {
  const hub = new Hub();
  t.after(() => hub.close());
  mkdirSync(join(hub.dataDir, 'history'), { recursive: true });
  writeFileSync(join(hub.dataDir, 'history', 'history.sqlite'), 'not a database '.repeat(1000));
  await hub.start();
  const health = await (await fetch(`${hub.httpUrl}/health`)).json();
  assert.equal(health.history.state, 'on');
  assert.match(health.history.notice, /damaged.*moved aside to .*history\.sqlite\.damaged-\d+/);
  assert.match(hub.stderr, /damaged/, 'the log says it too');
  assert.ok(readdirSync(join(hub.dataDir, 'history')).some((f) => f.startsWith('history.sqlite.damaged-')));
  const name = uniqueName('after-damage');
  assert.equal((await serverSdk(hub).trigger(name, 'numbered', { n: 1 })).status, 200);
  const page = await (await serverSdk(hub).get({ path: `/channels/${name}/events`, params: {} })).json();
  assert.deepEqual(page.events.map((e) => e.serial), [1]);
});

test('pysher, which knows nothing of recovery, sees exactly the frames it always saw from a hub that keeps history', async (t) => {
  const python = process.env.POUSSR_TEST_PYTHON;
  if (!python) {
    // scripts/test.sh installs pysher into a virtual environment and names its python here.
    assert.fail('POUSSR_TEST_PYTHON is not set: run the suite through scripts/test.sh (make test), which installs pysher');
  }
  const hub = await startHub();
  t.after(() => hub.close());
  const name = uniqueName('pysher');
  const child = spawn(python, [fileURLToPath(new URL('./python/pysher_listen.py', import.meta.url)), String(hub.port), hub.key, name, 'hello'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.after(() => child.kill());
  await eventually(() => out.includes('ready'), { timeout: 20_000, what: `pysher to subscribe (stderr: ${err})` });
  const sdk = serverSdk(hub);
  assert.equal((await sdk.trigger(name, 'before', { n: 1 })).status, 200);
  assert.equal((await sdk.trigger(name, 'hello', { n: 2 })).status, 200);
  const code = await withTimeout(exited, 30_000, 'pysher to exit').catch((e) => {
    throw new Error(`${e.message}; pysher printed: ${out} ${err}`);
  });
  assert.equal(code, 0, err);
  const result = JSON.parse(out.trim().split('\n').at(-1));
  assert.equal(result.data, '{"n":2}');
  // pysher pings as soon as it connects; the pong comes whenever the hub answers it.
  const frames = result.frames.map((f) => JSON.parse(f)).filter((f) => f.event !== 'pusher:pong');
  assert.deepEqual(
    frames.map((f) => f.event),
    ['pusher:connection_established', 'pusher_internal:subscription_succeeded', 'before', 'hello'],
  );
  assert.deepEqual(frames.slice(2), [
    { event: 'before', channel: name, data: '{"n":1}' },
    { event: 'hello', channel: name, data: '{"n":2}' },
  ]);
});

test('poussr.js (Poussr v1) recovers what it missed through a Wi-Fi drop and a hub restart, once each and in order', async (t) => {
  const hub = await startHub();
  const proxy = await new TcpProxy(hub.port).listen();
  const source = await (await fetch(`${hub.httpUrl}/poussr.js`)).text();
  const module = { exports: {} };
  new Function('module', source)(module);
  const Poussr = module.exports;
  const name = uniqueName('v1-numbered');
  const p = new Poussr('127.0.0.1', proxy.port, name, { WebSocket });
  const got = [];
  p.subscribe('numbered', (data) => got.push(data.n));
  t.after(async () => {
    p.disconnect();
    proxy.close();
    await hub.close();
  });
  p.connect();
  // The client tells its page nothing on subscribing; its position, once the hub has said it, shows it did.
  await eventually(() => p.position() !== null, { what: 'poussr.js to subscribe' });
  assert.equal(p.position().serial, 0);

  const publish = async (n) => {
    const res = await publishV1(hub, name, 'numbered', JSON.stringify({ n }));
    assert.equal(res.status, 201);
  };
  for (let n = 1; n <= 400; n++) {
    if (n === 101) proxy.cut();
    if (n === 151) proxy.release();
    if (n === 201) {
      await eventually(() => p.connected() && got.at(-1) === 200, { timeout: 30_000, what: 'poussr.js back from the drop' });
      proxy.hold();
      await hub.restart();
      proxy.targetPort = hub.port;
      proxy.release();
    }
    await publish(n);
  }
  await eventually(() => got.at(-1) === 400, { timeout: 30_000, what: `every event (at ${got.at(-1)})` });
  assert.deepEqual(got, range(1, 400));
  assert.equal(p.position().serial, 400);
});
