// Bad input gets the documented answer (docs/protocol.md §2 and §3), and never disturbs anyone else: a
// well-behaved pusher-js client on the same hub receives a numbered stream of SDK events throughout, and the
// last test checks that it got every one of them, in order.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startHub } from './hub.mjs';
import {
  RawSocket,
  assertJsonError,
  assertSdkRejects,
  connectPusher,
  eventually,
  inboxOf,
  openPusherSocket,
  publishV1,
  pusherUrl,
  serverSdk,
  signedUrl,
  startTicker,
  subscribe,
  uniqueName,
} from './wire.mjs';


/** Asserts a `pusher:error` frame in the canonical shape: `data` an object with a message (and `code`). */
function assertPusherError(frame, code, what) {
  assert.equal(frame.event, 'pusher:error', `${what}: ${JSON.stringify(frame)}`);
  assert.equal(typeof frame.data, 'object', `${what}: data is an object: ${JSON.stringify(frame)}`);
  assert.notEqual(frame.data, null, `${what}: data present`);
  assert.equal(typeof frame.data.message, 'string', `${what}: data.message: ${JSON.stringify(frame)}`);
  if (code !== undefined) assert.equal(frame.data.code, code, `${what}: data.code: ${JSON.stringify(frame)}`);
}

describe('bad input, while a good client keeps receiving', () => {
  let hub;
  let sdk;
  let steady;
  let ticks;
  let ticker;
  let channel;

  before(async () => {
    hub = await startHub();
    sdk = serverSdk(hub);
    steady = await connectPusher(hub);
    channel = uniqueName('steady');
    ticks = inboxOf(await subscribe(steady, channel), 'tick');
    ticker = startTicker(sdk, channel, ticks, { onBeat: true });
    ticker.beat();
    // The stream is live before the first bad input arrives.
    await eventually(() => ticks.all.length > 0, { what: 'the first event of the stream' });
  });
  after(async () => {
    await ticker?.stop();
    steady?.disconnect();
    await hub?.close();
  });
  // One stream event per test, triggered as the test begins: it is on its way while the bad input arrives.
  beforeEach(() => ticker.beat());

  /** A raw protocol-7 socket, closed when the test ends. */
  async function rawPusher(t) {
    const socket = await openPusherSocket(hub);
    t.after(() => socket.close());
    return socket;
  }

  /** Sends a ping and expects the pong as the very next frame: the socket is open and still served. */
  async function assertStillServed(socket, what) {
    socket.send({ event: 'pusher:ping', data: {} });
    const pong = await socket.next();
    assert.equal(pong.event, 'pusher:pong', `${what}: a ping still gets a pong, got ${JSON.stringify(pong)}`);
    assert.ok(socket.isOpen, `${what}: the socket is still open`);
  }

  // --- WebSocket, protocol 7 -------------------------------------------------------------------------------

  test('invalid JSON gets pusher:error and the socket stays open', async (t) => {
    const socket = await rawPusher(t);
    socket.send('{"event": "pusher:subscribe", this is not json');
    assertPusherError(await socket.next(), undefined, 'invalid JSON');
    await assertStillServed(socket, 'after invalid JSON');
  });

  test('an unknown pusher: event gets pusher:error and the socket stays open', async (t) => {
    const socket = await rawPusher(t);
    socket.send({ event: 'pusher:foo', data: {} });
    assertPusherError(await socket.next(), undefined, 'pusher:foo');
    await assertStillServed(socket, 'after pusher:foo');
  });

  test('a client may not send pusher_internal: events', async (t) => {
    const socket = await rawPusher(t);
    socket.send({ event: 'pusher_internal:subscription_succeeded', channel: 'steady', data: '{}' });
    assertPusherError(await socket.next(), undefined, 'pusher_internal: from a client');
  });

  test('invalid channel names get pusher:subscription_error with status 400', async (t) => {
    const socket = await rawPusher(t);
    for (const channel of ['bad name!', 'a'.repeat(200), 'b'.repeat(165), 'slash/not-allowed']) {
      socket.send({ event: 'pusher:subscribe', data: { channel } });
      const frame = await socket.next();
      const what = `subscribe to ${JSON.stringify(channel.length > 20 ? `${channel.length} chars` : channel)}`;
      assert.equal(frame.event, 'pusher:subscription_error', `${what}: ${JSON.stringify(frame)}`);
      assert.equal(frame.channel, channel, `${what}: channel`);
      assert.equal(typeof frame.data, 'object', `${what}: data is an object`);
      assert.equal(frame.data.status, 400, `${what}: status: ${JSON.stringify(frame)}`);
    }
    // The longest valid name, to show the limit is 164 and not lower.
    const longest = 'c'.repeat(164);
    socket.send({ event: 'pusher:subscribe', data: { channel: longest } });
    const ok = await socket.next();
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', `164-char name: ${JSON.stringify(ok)}`);
    assert.equal(ok.channel, longest);
  });

  test('private and presence channels without valid auth are refused, never silent', async (t) => {
    const socket = await rawPusher(t);
    const attempts = [
      { channel: 'private-x' },
      { channel: 'private-y', auth: `${hub.key}:${'0'.repeat(64)}` },
      { channel: 'presence-x' },
      { channel: 'presence-y', auth: `${hub.key}:${'0'.repeat(64)}`, channel_data: '{"user_id":"7"}' },
    ];
    for (const data of attempts) {
      socket.send({ event: 'pusher:subscribe', data });
      const frame = await socket.next();
      const what = `subscribe ${JSON.stringify(data)}`;
      assert.equal(frame.event, 'pusher:subscription_error', `${what}: ${JSON.stringify(frame)}`);
      assert.equal(frame.channel, data.channel, `${what}: channel`);
      assert.equal(typeof frame.data, 'object', `${what}: data is an object`);
      assert.equal(typeof frame.data.status, 'number', `${what}: data.status: ${JSON.stringify(frame)}`);
    }
    await assertStillServed(socket, 'after refused subscriptions');
  });

  test('an oversized frame gets pusher:error, then close 1009', async (t) => {
    const socket = await rawPusher(t);
    const huge = JSON.stringify({ event: 'pusher:ping', data: { padding: 'x'.repeat(200 * 1024) } });
    socket.send(huge);
    const closed = await socket.waitClosed();
    const first = socket.frames.all[1]; // [0] is pusher:connection_established
    assert.ok(first, `a pusher:error frame came before the close (close: ${JSON.stringify(closed)})`);
    assertPusherError(first, undefined, 'oversized frame');
    assert.equal(closed.code, 1009, `close code: ${JSON.stringify(closed)}`);
  });

  test('an unknown app key gets pusher:error 4001, then close 4001', async () => {
    const socket = new RawSocket(pusherUrl(hub, { key: 'wrongkey' }));
    const closed = await socket.waitClosed();
    assert.ok(socket.frames.all.length > 0, `a frame came before the close (close: ${JSON.stringify(closed)})`);
    assertPusherError(socket.frames.all[0], 4001, 'wrong key');
    assert.equal(closed.code, 4001, `close code: ${JSON.stringify(closed)}`);
  });

  for (const [what, url, code] of [
    ['a WebSocket on an unknown path', (h) => `${h.wsUrl}/nope`, 4005],
    ['no protocol version', (h) => pusherUrl(h, { query: 'client=js&version=8.4.0' }), 4008],
    ['a malformed protocol version', (h) => pusherUrl(h, { query: 'protocol=abc' }), 4006],
    ['an unsupported protocol version', (h) => pusherUrl(h, { query: 'protocol=3' }), 4007],
  ]) {
    test(`${what} is closed with ${code}`, async () => {
      const socket = new RawSocket(url(hub));
      const closed = await socket.waitClosed();
      assert.equal(closed.code, code, `close code: ${JSON.stringify(closed)}; errors: ${socket.errors.map((e) => e.message)}`);
      // docs/protocol.md §5.2: the error frame, when sent, carries the same code as the close.
      for (const frame of socket.frames.all) assertPusherError(frame, code, `${what}: frame before the close`);
    });
  }

  // --- HTTP API, protocol 7 --------------------------------------------------------------------------------

  const eventBody = (overrides = {}) => JSON.stringify({ name: 'e', data: '{}', channels: ['http-checks'], ...overrides });
  const post = (url, body) => fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });

  test('a request signed by hand per docs/protocol.md §3 is accepted (so the rejections below mean something)', async () => {
    const body = eventBody();
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body), body);
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(await res.json(), {});
  });

  test('an unsigned publish is 401', async () => {
    const res = await post(`${hub.httpUrl}/apps/${hub.appId}/events`, eventBody());
    await assertJsonError(res, 401, 'unsigned');
  });

  test('a body changed after signing is 401', async () => {
    const signedFor = eventBody({ data: '{"amount":1}' });
    const sent = eventBody({ data: '{"amount":1000}' });
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, signedFor), sent);
    await assertJsonError(res, 401, 'tampered body');
  });

  test('a stale auth_timestamp is 401', async () => {
    const body = eventBody();
    const timestamp = Math.floor(Date.now() / 1000) - 700;
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body, { timestamp }), body);
    await assertJsonError(res, 401, 'stale timestamp');
  });

  test('a wrong auth_key is 401', async () => {
    const body = eventBody();
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body, { key: 'not-the-key' }), body);
    await assertJsonError(res, 401, 'wrong auth_key');
  });

  test('a signature made with the wrong secret is 401', async () => {
    const body = eventBody();
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body, { secret: 'not-the-secret' }), body);
    await assertJsonError(res, 401, 'wrong secret');
  });

  test('an unknown app id is 404', async () => {
    const body = eventBody();
    const path = `/apps/${hub.appId}0/events`;
    const res = await post(signedUrl(hub, 'POST', path, body), body);
    await assertJsonError(res, 404, 'unknown app');
  });

  test('data over 10 KB is 413 through the SDK', async () => {
    await assertSdkRejects(sdk.trigger('http-checks', 'big', 'x'.repeat(11 * 1024)), 413, 'data over 10 KB');
    // Under the limit is fine, so the 413 is about size and nothing else.
    const res = await sdk.trigger('http-checks', 'big', 'x'.repeat(9 * 1024));
    assert.equal(res.status, 200);
  });

  test('an invalid channel name is 400', async () => {
    const body = eventBody({ channels: ['bad name!'] });
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body), body);
    await assertJsonError(res, 400, 'invalid channel name');
  });

  test('a missing event name is 400', async () => {
    const body = JSON.stringify({ data: '{}', channels: ['http-checks'] });
    const res = await post(signedUrl(hub, 'POST', `/apps/${hub.appId}/events`, body), body);
    await assertJsonError(res, 400, 'missing name');
  });

  // --- HTTP, Poussr v1 -------------------------------------------------------------------------------------

  test('a v1 publish without ?name is 400 with a JSON error', async () => {
    await assertJsonError(await publishV1(hub, 'users', undefined, '{}'), 400, 'v1 without name');
  });

  test('a v1 body over 10 KB is 413 with a JSON error', async () => {
    await assertJsonError(await publishV1(hub, 'users', 'big', 'x'.repeat(11 * 1024)), 413, 'v1 body over 10 KB');
  });

  // --- and through all of it -------------------------------------------------------------------------------

  test('the good client received every event of the stream, in order', async () => {
    await ticker.finish(steady.channel(channel), { atLeast: 5 });
    assert.equal(steady.connection.state, 'connected');
    assert.equal(hub.exitCode, undefined, `the hub is still running\n${hub.output()}`);
  });
});
