// Webhooks (docs/protocol.md §4): the hub POSTs `{"time_ms": N, "events": [...]}` to the app's backend, signed with
// X-Pusher-Key and X-Pusher-Signature (hex HMAC-SHA256 of the raw body with the app secret). The receiver is a
// real backend (tests/clients/backend.mjs) that checks every request with the `pusher` SDK's
// `webhook({headers, rawBody}).isValid()`; the activity comes from pusher-js clients and the SDK.
//
// The hub may put several events in one request, so the tests look at the events of all requests, flattened.
// Every channel name is unique, so each test looks only at the events of its own channels.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { startHub } from './hub.mjs';
import { Inbox, eventually, inboxOf, pusherOptions, sentinel, subscribe, uniqueName, withTimeout } from './wire.mjs';

/** The `[[apps.webhooks]]` table of one target. */
function webhookTable(url, events) {
  return `[[apps.webhooks]]\nurl = "${url}"\n${events ? `events = ${JSON.stringify(events)}\n` : ''}`;
}

/**
 * Asserts that one webhook request is what docs/protocol.md §4 says: valid for the SDK, the app key, our own
 * recomputation of the signature, JSON content type, and a `{time_ms, events}` body with at least one event.
 */
function assertWellFormed(hub, request, index) {
  const what = `webhook request #${index} (${request.rawBody})`;
  assert.equal(request.valid, true, `${what}: the SDK's webhook().isValid()`);
  assert.equal(request.headers['x-pusher-key'], hub.key, `${what}: X-Pusher-Key`);
  const expected = createHmac('sha256', hub.secret).update(request.rawBody, 'utf8').digest('hex');
  assert.equal(request.headers['x-pusher-signature'], expected, `${what}: X-Pusher-Signature`);
  assert.match(request.headers['content-type'] ?? '', /^application\/json/, `${what}: content type`);
  assert.ok(request.body && typeof request.body === 'object', `${what}: a JSON object body`);
  assert.ok(Number.isInteger(request.body.time_ms), `${what}: time_ms is an integer`);
  assert.ok(Math.abs(request.body.time_ms - Date.now()) < 5 * 60_000, `${what}: time_ms is now, in milliseconds`);
  assert.ok(Array.isArray(request.body.events) && request.body.events.length > 0, `${what}: a non-empty events array`);
  for (const event of request.body.events) assert.equal(typeof event.name, 'string', `${what}: every event has a name`);
}

/** Every event of every request `backend` received so far, in arrival order; each request is checked first. */
function allEvents(hub, backend) {
  const out = [];
  backend.webhooks.all.forEach((request, i) => {
    assertWellFormed(hub, request, i);
    out.push(...request.body.events);
  });
  return out;
}

/** The events about `channel`, in arrival order. */
function eventsOf(hub, backend, channel) {
  return allEvents(hub, backend).filter((e) => e.channel === channel);
}

/** Waits until the events about `channel` include one matching `predicate`; returns that event. */
async function waitForEvent(hub, backend, channel, predicate, what, timeout = 5000) {
  return eventually(() => eventsOf(hub, backend, channel).find(predicate), {
    timeout,
    what: `${what} (events of ${channel} so far: ${JSON.stringify(eventsOf(hub, backend, channel))})`,
  });
}

/**
 * Proves that no more webhooks are on their way, without waiting for time to pass: subscribes `client` to a
 * fresh channel and waits for its channel_occupied webhook (and unsubscribes). The hub sends a target's
 * webhooks one request at a time, in the order it emitted them, and retries a failed request before it sends
 * the next: every webhook of what the hub did before this subscription has arrived by then. Returns the
 * marker channel's name.
 */
async function webhookSentinel(hub, backend, client) {
  const marker = uniqueName('marker');
  await subscribe(client, marker);
  await waitForEvent(hub, backend, marker, (e) => e.name === 'channel_occupied', `channel_occupied of ${marker}`);
  client.unsubscribe(marker);
  return marker;
}

/** A connected pusher-js client whose channel auth goes to `backend` as `user`; disconnected when `t` ends. */
async function connectAs(t, hub, backend, user) {
  const client = new Pusher(hub.key, {
    ...pusherOptions(hub),
    authEndpoint: `${backend.url}/pusher/auth`,
    auth: { headers: { 'x-user': user } },
  });
  t.after(() => client.disconnect());
  await withTimeout(
    new Promise((resolve, reject) => {
      client.connection.bind('connected', resolve);
      client.connection.bind('failed', () => reject(new Error('pusher-js says the connection failed')));
    }),
    10_000,
    `pusher-js (${user}) to connect`,
  );
  return client;
}

/** Waits until the hub counts `n` subscriptions on `channel`, i.e. it has handled every (un)subscribe so far. */
async function subscriptionCount(backend, channel, n) {
  await eventually(
    async () => {
      const res = await backend.sdk.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } });
      const info = await res.json();
      return (info.subscription_count ?? 0) === n;
    },
    { what: `${n} subscriptions on ${channel}` },
  );
}

/** Counts the events of `list` that match `fields`. */
function count(list, fields) {
  return list.filter((e) => Object.entries(fields).every(([k, v]) => e[k] === v)).length;
}

describe('webhooks: every kind, with its fields', () => {
  let hub;
  let backend;

  before(async () => {
    backend = await startBackend();
    hub = await startHub({ app: webhookTable(backend.webhookUrl) });
    backend.attach(hub);
  });
  after(async () => {
    await hub?.close();
    await backend?.close();
  });

  test('a request is signed, names the app key and carries {time_ms, events}', async (t) => {
    const client = await connectAs(t, hub, backend, 'alice');
    const name = uniqueName('signed');
    await subscribe(client, name);
    await waitForEvent(hub, backend, name, (e) => e.name === 'channel_occupied', 'channel_occupied');
    // allEvents() checked every request so far with assertWellFormed; check the count too.
    assert.ok(backend.webhooks.all.length >= 1);
  });

  test('channel_occupied when the first subscriber comes, channel_vacated when the last leaves', async (t) => {
    const first = await connectAs(t, hub, backend, 'alice');
    const second = await connectAs(t, hub, backend, 'bob');
    const name = uniqueName('occupancy');

    await subscribe(first, name);
    const occupied = await waitForEvent(hub, backend, name, (e) => e.name === 'channel_occupied', 'channel_occupied');
    assert.deepEqual(occupied, { name: 'channel_occupied', channel: name });

    await subscribe(second, name);
    first.unsubscribe(name);
    await subscriptionCount(backend, name, 1);
    await webhookSentinel(hub, backend, first);
    assert.deepEqual(
      eventsOf(hub, backend, name),
      [{ name: 'channel_occupied', channel: name }],
      'a second subscriber, and the first leaving while the second stays, send nothing',
    );

    second.unsubscribe(name);
    const vacated = await waitForEvent(hub, backend, name, (e) => e.name === 'channel_vacated', 'channel_vacated');
    assert.deepEqual(vacated, { name: 'channel_vacated', channel: name });
    await webhookSentinel(hub, backend, first);
    assert.deepEqual(eventsOf(hub, backend, name), [
      { name: 'channel_occupied', channel: name },
      { name: 'channel_vacated', channel: name },
    ]);
  });

  test('member_added / member_removed: one each per user, however many connections it has', async (t) => {
    const alice1 = await connectAs(t, hub, backend, 'alice');
    const alice2 = await connectAs(t, hub, backend, 'alice');
    const bob = await connectAs(t, hub, backend, 'bob');
    const name = `presence-${uniqueName('members')}`;
    const added = (user) => (e) => e.name === 'member_added' && e.user_id === user;
    const removed = (user) => (e) => e.name === 'member_removed' && e.user_id === user;

    await subscribe(alice1, name);
    assert.deepEqual(await waitForEvent(hub, backend, name, added('alice'), 'member_added alice'), {
      name: 'member_added',
      channel: name,
      user_id: 'alice',
    });
    await subscribe(alice2, name);
    await subscribe(bob, name);
    assert.deepEqual(await waitForEvent(hub, backend, name, added('bob'), 'member_added bob'), {
      name: 'member_added',
      channel: name,
      user_id: 'bob',
    });

    alice1.unsubscribe(name);
    await subscriptionCount(backend, name, 2);
    await webhookSentinel(hub, backend, alice1);
    assert.equal(count(eventsOf(hub, backend, name), { name: 'member_removed' }), 0, 'alice still has a connection');

    alice2.unsubscribe(name);
    assert.deepEqual(await waitForEvent(hub, backend, name, removed('alice'), 'member_removed alice'), {
      name: 'member_removed',
      channel: name,
      user_id: 'alice',
    });
    bob.unsubscribe(name);
    assert.deepEqual(await waitForEvent(hub, backend, name, removed('bob'), 'member_removed bob'), {
      name: 'member_removed',
      channel: name,
      user_id: 'bob',
    });
    await waitForEvent(hub, backend, name, (e) => e.name === 'channel_vacated', 'channel_vacated');
    await webhookSentinel(hub, backend, alice1);

    const events = eventsOf(hub, backend, name);
    const kinds = events.map((e) => (e.user_id ? `${e.name} ${e.user_id}` : e.name));
    assert.deepEqual(
      kinds,
      ['channel_occupied', 'member_added alice', 'member_added bob', 'member_removed alice', 'member_removed bob', 'channel_vacated'],
      `the events of ${name}: ${JSON.stringify(events)}`,
    );
  });

  test('client_event on a private channel: event, data, socket_id of the sender, no user_id', async (t) => {
    const alice = await connectAs(t, hub, backend, 'alice');
    const bob = await connectAs(t, hub, backend, 'bob');
    const name = `private-${uniqueName('typing')}`;
    const aliceChannel = await subscribe(alice, name);
    const bobGot = inboxOf(await subscribe(bob, name), 'client-typing');
    const payload = { text: 'héllo "you"', typing: true, n: 3 };

    assert.equal(aliceChannel.trigger('client-typing', payload), true, 'pusher-js sent the client event');
    assert.deepEqual(await bobGot.next(), payload, 'bob received it');

    const event = await waitForEvent(hub, backend, name, (e) => e.name === 'client_event', 'client_event');
    assert.equal(typeof event.data, 'string', `data is the relayed JSON string: ${JSON.stringify(event)}`);
    assert.deepEqual(JSON.parse(event.data), payload);
    assert.deepEqual(event, {
      name: 'client_event',
      channel: name,
      event: 'client-typing',
      data: event.data,
      socket_id: alice.connection.socket_id,
    });
  });

  test('client_event on a presence channel also names the sending user', async (t) => {
    const alice = await connectAs(t, hub, backend, 'alice');
    const bob = await connectAs(t, hub, backend, 'bob');
    const name = `presence-${uniqueName('typing')}`;
    const aliceChannel = await subscribe(alice, name);
    const bobGot = new Inbox('client-moved on bob');
    const bobChannel = await subscribe(bob, name);
    bobChannel.bind('client-moved', (data, metadata) => bobGot.push({ data, user_id: metadata?.user_id }));

    assert.equal(aliceChannel.trigger('client-moved', { x: 1, y: 2 }), true);
    assert.deepEqual(await bobGot.next(), { data: { x: 1, y: 2 }, user_id: 'alice' });

    const event = await waitForEvent(hub, backend, name, (e) => e.name === 'client_event', 'client_event');
    assert.equal(typeof event.data, 'string', `data is the relayed JSON string: ${JSON.stringify(event)}`);
    assert.deepEqual(JSON.parse(event.data), { x: 1, y: 2 });
    assert.deepEqual(event, {
      name: 'client_event',
      channel: name,
      event: 'client-moved',
      data: event.data,
      socket_id: alice.connection.socket_id,
      user_id: 'alice',
    });
  });

  test('cache_miss when a client subscribes to an empty cache channel, not once it has an event', async (t) => {
    const first = await connectAs(t, hub, backend, 'alice');
    const name = uniqueName('cache-prices');
    const channel = first.subscribe(name);
    const missed = new Inbox('pusher:cache_miss');
    channel.bind('pusher:cache_miss', () => missed.push(true));
    await missed.next();

    const event = await waitForEvent(hub, backend, name, (e) => e.name === 'cache_miss', 'cache_miss');
    assert.deepEqual(event, { name: 'cache_miss', channel: name });

    // Once the channel has an event, a new subscriber gets it from the cache: no cache miss.
    await backend.sdk.trigger(name, 'price', { eur: 10 });
    const second = await connectAs(t, hub, backend, 'bob');
    const secondChannel = second.subscribe(name);
    const prices = inboxOf(secondChannel, 'price');
    secondChannel.bind('pusher:cache_miss', () => missed.push(true));
    assert.deepEqual(await prices.next(), { eur: 10 });
    // A cache miss would have come with the subscription, before an event triggered now; its webhook before the
    // sentinel's.
    await sentinel(backend.sdk, [secondChannel]);
    await webhookSentinel(hub, backend, second);
    assert.equal(missed.all.length, 1, 'the second subscriber had no cache miss');
    assert.equal(count(eventsOf(hub, backend, name), { name: 'cache_miss' }), 1, 'one cache_miss webhook');
  });

  test('every request of this hub was valid, signed and well-formed', () => {
    assert.ok(backend.webhooks.all.length > 0);
    allEvents(hub, backend); // asserts on every request
  });
});

describe('webhooks: the events filter', () => {
  let hub;
  let backend;

  before(async () => {
    backend = await startBackend();
    hub = await startHub({ app: webhookTable(backend.webhookUrl, ['channel_occupied']) });
    backend.attach(hub);
  });
  after(async () => {
    await hub?.close();
    await backend?.close();
  });

  test('events = ["channel_occupied"] sends only channel_occupied', async (t) => {
    const alice = await connectAs(t, hub, backend, 'alice');
    const bob = await connectAs(t, hub, backend, 'bob');
    const publicName = uniqueName('filtered');
    const presenceName = `presence-${uniqueName('filtered')}`;
    const privateName = `private-${uniqueName('filtered')}`;
    const cacheName = uniqueName('cache-filtered');

    // Something of every kind: occupied and vacated, members coming and going, a client event, a cache miss.
    await subscribe(alice, publicName);
    alice.unsubscribe(publicName);
    await subscribe(alice, presenceName);
    await subscribe(bob, presenceName);
    bob.unsubscribe(presenceName);
    alice.unsubscribe(presenceName);
    const aliceChannel = await subscribe(alice, privateName);
    const bobGot = inboxOf(await subscribe(bob, privateName), 'client-ping');
    aliceChannel.trigger('client-ping', { n: 1 });
    assert.deepEqual(await bobGot.next(), { n: 1 });
    const cache = alice.subscribe(cacheName);
    const missed = new Inbox('pusher:cache_miss');
    cache.bind('pusher:cache_miss', () => missed.push(true));
    await missed.next();
    alice.unsubscribe(privateName);
    bob.unsubscribe(privateName);
    await subscriptionCount(backend, privateName, 0);

    // Last, a marker channel: once its occupied event is in, every webhook of the above has arrived too (its
    // vacated event is not one this app sends).
    const marker = await webhookSentinel(hub, backend, alice);

    const events = allEvents(hub, backend);
    assert.deepEqual(
      [...new Set(events.map((e) => e.name))],
      ['channel_occupied'],
      `only channel_occupied arrives: ${JSON.stringify(events)}`,
    );
    for (const channel of [publicName, presenceName, privateName, cacheName, marker]) {
      assert.deepEqual(
        events.filter((e) => e.channel === channel),
        [{ name: 'channel_occupied', channel }],
        `one channel_occupied for ${channel}`,
      );
    }
  });
});

describe('webhooks: retries', () => {
  let hub;
  let backend;

  before(async () => {
    backend = await startBackend();
    // Remember, for every request, when it came and what the backend answered.
    const push = backend.webhooks.push.bind(backend.webhooks);
    backend.webhooks.push = (request) => push({ ...request, at: Date.now(), answered: backend.webhookStatus });
    hub = await startHub({ app: webhookTable(backend.webhookUrl) });
    backend.attach(hub);
  });
  after(async () => {
    await hub?.close();
    await backend?.close();
  });

  test('a backend that answers 500 for a while still gets every event, retried with a backoff', async (t) => {
    const client = await connectAs(t, hub, backend, 'alice');
    const name = uniqueName('retried');
    const about = (request, kind) => request.body?.events?.some((e) => e.channel === name && e.name === kind);

    backend.webhookStatus = 500;
    await subscribe(client, name);
    const attempts = await eventually(
      () => {
        const list = backend.webhooks.all.filter((r) => about(r, 'channel_occupied'));
        return list.length >= 2 && list;
      },
      { timeout: 5000, what: 'the hub to retry the channel_occupied request after a 500' },
    );
    assert.ok(attempts.every((r) => r.answered === 500));
    const pause = attempts[1].at - attempts[0].at;
    assert.ok(pause >= 250, `the hub waited before retrying (${pause} ms), it did not hammer the backend`);
    client.unsubscribe(name);
    await subscriptionCount(backend, name, 0);

    backend.webhookStatus = 200;
    await eventually(
      () =>
        backend.webhooks.all.some((r) => r.answered === 200 && about(r, 'channel_occupied')) &&
        backend.webhooks.all.some((r) => r.answered === 200 && about(r, 'channel_vacated')),
      { timeout: 10_000, what: 'channel_occupied and channel_vacated to be delivered once the backend answers 200' },
    );
    // A retry of a request that got its 200 would come before the next request.
    await webhookSentinel(hub, backend, client);
    const delivered = backend.webhooks.all.filter((r) => r.answered === 200);
    assert.equal(delivered.filter((r) => about(r, 'channel_occupied')).length, 1, 'no retry after a 200');
    assert.equal(delivered.filter((r) => about(r, 'channel_vacated')).length, 1, 'no retry after a 200');
    backend.webhooks.all.forEach((request, i) => assertWellFormed(hub, request, i));
    // The retries did not shuffle the events: the occupied event arrived before the vacated one.
    const events = delivered.flatMap((r) => r.body.events).filter((e) => e.channel === name);
    assert.deepEqual(events, [
      { name: 'channel_occupied', channel: name },
      { name: 'channel_vacated', channel: name },
    ]);
  });
});

describe('webhooks: a hanging or dead target does not slow the hub', () => {
  let hub;
  let backend;
  let hanging;
  const hangingSockets = new Set();

  before(async () => {
    // A server that accepts connections, reads the request and never answers.
    hanging = createServer((socket) => {
      hangingSockets.add(socket);
      socket.on('data', () => {});
      socket.on('error', () => {});
      socket.on('close', () => hangingSockets.delete(socket));
    });
    await new Promise((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    // A port that was just free: nothing listens there.
    const closer = createServer();
    await new Promise((resolve) => closer.listen(0, '127.0.0.1', resolve));
    const closedPort = closer.address().port;
    await new Promise((resolve) => closer.close(resolve));

    backend = await startBackend();
    hub = await startHub({
      app: [
        webhookTable(`http://127.0.0.1:${hanging.address().port}/hook`),
        webhookTable(`http://127.0.0.1:${closedPort}/hook`),
        webhookTable(backend.webhookUrl),
      ].join('\n'),
    });
    backend.attach(hub);
  });
  after(async () => {
    await hub?.close();
    await backend?.close();
    for (const socket of hangingSockets) socket.destroy();
    await new Promise((resolve) => (hanging ? hanging.close(resolve) : resolve()));
  });

  test('subscribes succeed and a stream of 200 SDK triggers arrives promptly and in order', async (t) => {
    const client = await connectAs(t, hub, backend, 'alice');

    // Plenty of webhook events for the dead targets to hold up: 30 channels occupied and vacated.
    const churn = [];
    for (let i = 0; i < 30; i++) churn.push(uniqueName('churn'));
    const started = Date.now();
    for (const name of churn) await subscribe(client, name);
    for (const name of churn) client.unsubscribe(name);
    const subscribeMs = Date.now() - started;
    assert.ok(subscribeMs < 5000, `30 subscribes took ${subscribeMs} ms`);
    await eventually(() => hangingSockets.size > 0, { what: 'the hub to call the hanging target' });

    const stream = uniqueName('stream');
    const ticks = inboxOf(await subscribe(client, stream), 'tick');
    const begin = Date.now();
    for (let n = 0; n < 200; n++) {
      const res = await backend.sdk.trigger(stream, 'tick', { n });
      assert.equal(res.status, 200);
    }
    const received = await ticks.take(200, 10_000);
    const elapsed = Date.now() - begin;
    assert.deepEqual(
      received.map((d) => d.n),
      Array.from({ length: 200 }, (_, n) => n),
      'every event, in order',
    );
    assert.ok(elapsed < 10_000, `200 triggers delivered in ${elapsed} ms`);

    // The healthy target beside the dead ones still gets its events.
    await waitForEvent(hub, backend, stream, (e) => e.name === 'channel_occupied', 'channel_occupied of the stream');
    for (const name of churn) {
      await waitForEvent(hub, backend, name, (e) => e.name === 'channel_vacated', `channel_vacated of ${name}`);
    }
  });
});
