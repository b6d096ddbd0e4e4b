// A hub restart must look like a blip to pusher-js: the hub closes clients with 4200 ("reconnect now"), and
// pusher-js comes back on its own, re-subscribes on its own, and receives what is published afterwards.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHub } from './hub.mjs';
import {
  Inbox,
  connectPusher,
  inboxOf,
  openPusherSocket,
  serverSdk,
  subscribe,
  uniqueName,
} from './wire.mjs';

test('pusher-js reconnects and re-subscribes after the hub restarts on the same port', async (t) => {
  let client;
  let raw;
  const hub = await startHub();
  // One cleanup, in order: clients first, then the hub.
  t.after(async () => {
    client?.disconnect();
    raw?.close();
    await hub.close();
  });

  client = await connectPusher(hub);
  const name = uniqueName('survives-restart');
  const channel = await subscribe(client, name);
  const events = inboxOf(channel, 'after-restart');
  const firstSocketId = client.connection.socket_id;

  // Every later 'connected' and 'subscription_succeeded' goes to an inbox, so none is missed while we restart.
  const reconnections = new Inbox('pusher-js connected');
  client.connection.bind('connected', () => reconnections.push(client.connection.socket_id));
  const resubscriptions = new Inbox('re-subscriptions');
  channel.bind('pusher:subscription_succeeded', () => resubscriptions.push(true));

  // A raw socket beside pusher-js, to see the close code the hub uses on shutdown.
  raw = await openPusherSocket(hub);

  const port = hub.port;
  await hub.restart();
  assert.equal(hub.port, port, 'the hub came back on the same port');

  const closed = await raw.waitClosed();
  assert.equal(closed.code, 4200, `close code on shutdown: ${JSON.stringify(closed)}`);

  // pusher-js retries at once; if the hub is not back yet it waits for its "unavailable" timer (about 15 s).
  const secondSocketId = await reconnections.next(30_000);
  assert.match(secondSocketId, /^\d+\.\d+$/);
  assert.notEqual(secondSocketId, firstSocketId, 'a new connection has a new socket id');
  assert.equal(client.connection.state, 'connected');
  assert.ok(!client.states.includes('failed'), `pusher-js never gave up (states: ${client.states.join(' -> ')})`);

  await resubscriptions.next(5000);
  const res = await serverSdk(hub).trigger(name, 'after-restart', { restarted: true });
  assert.equal(res.status, 200);
  assert.deepEqual(await events.next(), { restarted: true });
});

test('a SIGTERM right after the ready line is still a graceful shutdown (exit 0)', async (t) => {
  // The ready line tells scripts (and service managers) the hub is up; from then on SIGTERM must mean
  // "close clients with 4200 and exit", never the default kill. Repeated because the window is small.
  for (let i = 0; i < 8; i++) {
    const hub = await startHub();
    t.after(() => hub.close());
    await hub.stop();
    assert.deepEqual(
      { code: hub.exitCode, signal: hub.exitSignal },
      { code: 0, signal: null },
      `start ${i + 1}: the hub exited gracefully on SIGTERM\n${hub.output()}`,
    );
  }
});
