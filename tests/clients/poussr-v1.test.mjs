// The original Poussr v1 protocol over a raw WebSocket (`ws`), published to with the real curl binary:
// existing Poussr users must keep working unchanged (docs/protocol.md §1).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startHub } from './hub.mjs';
import { RawSocket, publishV1, serverSdk, uniqueName } from './wire.mjs';

const run = promisify(execFile);

describe('Poussr v1 over a raw WebSocket', () => {
  let hub;

  before(async () => {
    hub = await startHub();
  });
  after(() => hub?.close());

  /** An open v1 socket on `path`, closed when the test ends. */
  async function openV1(t, path = '/v1/ws') {
    const socket = await RawSocket.open(`${hub.wsUrl}${path}`);
    t.after(() => socket.close());
    return socket;
  }

  /** Subscribes the way the original client did (data as a JSON-encoded string) or as the README showed it. */
  async function subscribeV1(socket, channel, { dataAsObject = false } = {}) {
    const data = dataAsObject ? { channel } : JSON.stringify({ channel });
    socket.send({ event: 'poussr:subscribe', data });
    assert.deepEqual(await socket.next(), { event: 'poussr:subscription_succeeded', channel });
  }

  async function publish(channel, name, body) {
    const res = await publishV1(hub, channel, name, body);
    assert.equal(res.status, 201, `publish to ${channel}: ${await res.clone().text()}`);
    return res;
  }

  test('subscribe on / with data as a JSON string, as the original client sends it', async (t) => {
    const socket = await openV1(t, '/');
    await subscribeV1(socket, 'users');
  });

  test('subscribe on /v1/ws with data as an object, as the original README shows it', async (t) => {
    const socket = await openV1(t, '/v1/ws');
    await subscribeV1(socket, 'users', { dataAsObject: true });
  });

  test('the README curl example is delivered verbatim', async (t) => {
    const socket = await openV1(t, '/');
    await subscribeV1(socket, 'users');

    const { stdout } = await run('curl', [
      '-s',
      '-o', '/dev/null',
      '-w', '%{http_code}',
      '-X', 'POST',
      '-d', "{'name': 'Fred'}",
      `http://127.0.0.1:${hub.port}/v1/channels/users/events?name=newuser`,
    ], { timeout: 10_000 });
    assert.equal(stdout, '201');

    const frame = await socket.next();
    assert.deepEqual(frame, { event: 'newuser', channel: 'users', data: "{'name': 'Fred'}" });
  });

  test('a publish answers 201 with an empty body, even on a channel nobody joined', async () => {
    const res = await publishV1(hub, uniqueName('empty'), 'e', '{"a":1}');
    assert.equal(res.status, 201);
    assert.equal(await res.text(), '');
  });

  test('the body is delivered as the data string, byte for byte', async (t) => {
    const socket = await openV1(t);
    const channel = uniqueName('verbatim');
    await subscribeV1(socket, channel);
    const bodies = ['{"name":"Fred","age":7}', 'plain text, not JSON', '  {"spaced" : true }  ', 'ünïcödé ✓ "q" \\ \n line'];
    for (const body of bodies) await publish(channel, 'ev', body);
    for (const body of bodies) assert.deepEqual(await socket.next(), { event: 'ev', channel, data: body });
  });

  test('poussr:unsubscribe stops delivery on that channel only', async (t) => {
    const socket = await openV1(t);
    const left = uniqueName('left');
    const kept = uniqueName('kept');
    await subscribeV1(socket, left);
    await subscribeV1(socket, kept);

    socket.send({ event: 'poussr:unsubscribe', data: JSON.stringify({ channel: left }) });
    // Unsubscribe has no reply; a subscribe answered after it proves the hub has handled it.
    await subscribeV1(socket, uniqueName('barrier'));
    await publish(left, 'ev', 'should not arrive');
    await publish(kept, 'ev', 'arrives');
    // Frames of one socket arrive in publish order, so the kept event coming first proves the other never came.
    assert.deepEqual(await socket.next(), { event: 'ev', channel: kept, data: 'arrives' });
  });

  test('the original misspelled poussr::unsusbscribe is an alias', async (t) => {
    const socket = await openV1(t);
    const left = uniqueName('left-alias');
    const kept = uniqueName('kept-alias');
    await subscribeV1(socket, left);
    await subscribeV1(socket, kept);

    socket.send({ event: 'poussr::unsusbscribe', data: { channel: left } });
    await subscribeV1(socket, uniqueName('barrier'));
    await publish(left, 'ev', 'should not arrive');
    await publish(kept, 'ev', 'arrives');
    assert.deepEqual(await socket.next(), { event: 'ev', channel: kept, data: 'arrives' });
  });

  test('a second subscribe on the same socket adds a channel', async (t) => {
    const socket = await openV1(t);
    const first = uniqueName('first');
    const second = uniqueName('second');
    await subscribeV1(socket, first);
    await subscribeV1(socket, second);

    await publish(first, 'ev', '1');
    await publish(second, 'ev', '2');
    assert.deepEqual(await socket.next(), { event: 'ev', channel: first, data: '1' });
    assert.deepEqual(await socket.next(), { event: 'ev', channel: second, data: '2' });
  });

  test('an event triggered with the pusher SDK reaches a v1 socket on the same channel', async (t) => {
    const socket = await openV1(t);
    const channel = uniqueName('shared');
    await subscribeV1(socket, channel);
    const payload = { from: 'pusher sdk', n: 3 };

    const res = await serverSdk(hub).trigger(channel, 'sdk-event', payload);
    assert.equal(res.status, 200);

    // The SDK sends data as JSON.stringify(payload); the v1 frame carries that string as published.
    assert.deepEqual(await socket.next(), { event: 'sdk-event', channel, data: JSON.stringify(payload) });
  });
});
