// laravel-echo (broadcaster 'pusher') against the hub, the way a Laravel front end uses it: Echo drives the real
// pusher-js, channel auth goes to a real app backend (tests/clients/backend.mjs, signing with the `pusher` SDK),
// and events come from the SDK's trigger. What a Laravel user changes is the host and port, nothing else.
//
// Under Node, Echo finds no `window.Pusher`: it needs the pusher-js class as the `Pusher` option (it then builds
// the client itself from Echo's options), or a ready pusher-js instance as the `client` option.
// Echo namespaces event names: `.listen('OrderShipped')` binds `App\Events\OrderShipped`, and a leading dot
// (`.listen('.order.shipped')`) means the raw name. `listenForWhisper('typing')` binds `client-typing`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { startHub } from './hub.mjs';
import { Inbox, eventually, pusherOptions, uniqueName, withTimeout } from './wire.mjs';

/** Sorts presence member infos ({name}) so lists compare regardless of order (anything else is kept as is). */
const byName = (list) =>
  Array.isArray(list) ? [...list].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) : list;

describe('laravel-echo with pusher-js', () => {
  let hub;
  let backend;

  before(async () => {
    backend = await startBackend();
    hub = await startHub();
    backend.attach(hub);
  });
  after(async () => {
    await hub?.close();
    await backend?.close();
  });

  /** Echo options for `user`: pusher-js settings for the hub, channel auth at the backend as that user. */
  function echoOptions(user) {
    return {
      broadcaster: 'pusher',
      key: hub.key,
      ...pusherOptions(hub),
      authEndpoint: `${backend.url}/pusher/auth`,
      auth: { headers: { 'x-user': user } },
    };
  }

  /** Waits until Echo reports 'connected'. */
  async function connected(echo) {
    await eventually(() => echo.connectionStatus() === 'connected', {
      timeout: 10_000,
      what: `Echo to connect (status ${echo.connectionStatus()})`,
    });
    return echo;
  }

  /** A connected Echo for `user`, built with the pusher-js class; disconnected when the test ends. */
  async function echoFor(t, user) {
    const echo = new Echo({ ...echoOptions(user), Pusher });
    t.after(() => echo.disconnect());
    return connected(echo);
  }

  /** Resolves once Echo's channel is subscribed; rejects on a subscription error. */
  function subscribed(channel) {
    return withTimeout(
      new Promise((resolve, reject) => {
        channel.subscribed(resolve);
        channel.error((err) => reject(new Error(`subscription to ${channel.name} failed: ${JSON.stringify(err)}`)));
      }),
      5000,
      `Echo's subscribed() on ${channel.name}`,
    );
  }

  /** Queues what Echo's `listen(event)` on `channel` delivers. */
  function listened(channel, event) {
    const inbox = new Inbox(`${event} on ${channel.name}`);
    channel.listen(event, (data) => inbox.push(data));
    return inbox;
  }

  /** Queues what `listenForWhisper(event)` delivers, with the metadata pusher-js passes along (user_id). */
  function whispers(channel, event) {
    const inbox = new Inbox(`whisper ${event} on ${channel.name}`);
    channel.listenForWhisper(event, (data, metadata) => inbox.push({ data, user_id: metadata?.user_id }));
    return inbox;
  }

  test('Echo connects through pusher-js and reports its socket id', async (t) => {
    const echo = await echoFor(t, 'alice');
    assert.equal(echo.connectionStatus(), 'connected');
    assert.match(echo.socketId(), /^\d+\.\d+$/);
    const other = await echoFor(t, 'bob');
    assert.notEqual(other.socketId(), echo.socketId(), 'socket ids are unique per connection');
  });

  test('channel().listen(".order.shipped") receives an SDK trigger with that raw name', async (t) => {
    const echo = await echoFor(t, 'alice');
    const name = uniqueName('orders');
    const channel = echo.channel(name);
    const shipped = listened(channel, '.order.shipped');
    await subscribed(channel);

    const payload = { id: 17, items: [{ sku: 'B-2', qty: 1 }], note: 'déjà "vu" \\ ok' };
    const res = await backend.sdk.trigger(name, 'order.shipped', payload);
    assert.equal(res.status, 200);

    assert.deepEqual(await shipped.next(), payload);
  });

  test('channel().listen("OrderShipped") receives the namespaced Laravel event name', async (t) => {
    const echo = await echoFor(t, 'alice');
    const name = uniqueName('laravel-orders');
    const channel = echo.channel(name);
    const namespaced = listened(channel, 'OrderShipped');
    const raw = listened(channel, '.OrderShipped');
    await subscribed(channel);

    // What Laravel broadcasts for `class OrderShipped implements ShouldBroadcast` in App\Events.
    await backend.sdk.trigger(name, 'App\\Events\\OrderShipped', { order: 1 });
    await backend.sdk.trigger(name, 'OrderShipped', { order: 2 });

    assert.deepEqual(await namespaced.next(), { order: 1 });
    assert.deepEqual(await raw.next(), { order: 2 });
    assert.deepEqual(namespaced.all, [{ order: 1 }], 'the namespaced listener got only the namespaced event');
  });

  test('Echo accepts a ready pusher-js instance as `client`', async (t) => {
    const client = new Pusher(hub.key, {
      ...pusherOptions(hub),
      authEndpoint: `${backend.url}/pusher/auth`,
      auth: { headers: { 'x-user': 'carol' } },
    });
    const echo = new Echo({ broadcaster: 'pusher', client });
    t.after(() => echo.disconnect());
    await connected(echo);
    assert.equal(echo.socketId(), client.connection.socket_id);

    const name = uniqueName('ready-client');
    const channel = echo.private(name);
    const updates = listened(channel, '.status.updated');
    await subscribed(channel);
    await backend.sdk.trigger(`private-${name}`, 'status.updated', { ok: true });
    assert.deepEqual(await updates.next(), { ok: true });
  });

  test('private() authorizes through the backend as the user and receives an SDK trigger', async (t) => {
    const echo = await echoFor(t, 'alice');
    const name = uniqueName('account');
    const channel = echo.private(name);
    assert.equal(channel.name, `private-${name}`);
    const paid = listened(channel, '.invoice.paid');
    await subscribed(channel);

    const auth = backend.authRequests.filter((r) => r.channel_name === `private-${name}`);
    assert.deepEqual(auth, [
      { path: '/pusher/auth', user: 'alice', socket_id: echo.socketId(), channel_name: `private-${name}` },
    ]);

    await backend.sdk.trigger(`private-${name}`, 'invoice.paid', { invoice: 'F-2024-001', amount: 12.5 });
    assert.deepEqual(await paid.next(), { invoice: 'F-2024-001', amount: 12.5 });
  });

  test('join(): here lists the members, joining and leaving report the other user', async (t) => {
    const room = uniqueName('room');
    const alice = await echoFor(t, 'alice');
    const aliceHere = new Inbox('alice here');
    const aliceJoining = new Inbox('alice joining');
    const aliceLeaving = new Inbox('alice leaving');
    const aliceChannel = alice
      .join(room)
      .here((members) => aliceHere.push(members))
      .joining((member) => aliceJoining.push(member))
      .leaving((member) => aliceLeaving.push(member))
      .error((err) => aliceHere.push({ subscriptionError: err }));
    assert.equal(aliceChannel.name, `presence-${room}`);
    assert.deepEqual(await aliceHere.next(), [{ name: 'alice' }], 'alice alone at first');

    const bob = await echoFor(t, 'bob');
    const bobHere = new Inbox('bob here');
    const bobJoining = new Inbox('bob joining');
    bob
      .join(room)
      .here((members) => bobHere.push(members))
      .joining((member) => bobJoining.push(member))
      .error((err) => bobHere.push({ subscriptionError: err }));
    assert.deepEqual(byName(await bobHere.next()), [{ name: 'alice' }, { name: 'bob' }], 'bob sees both');
    assert.deepEqual(await aliceJoining.next(), { name: 'bob' }, 'alice sees bob join');

    bob.leave(room);
    assert.deepEqual(await aliceLeaving.next(), { name: 'bob' }, 'alice sees bob leave');

    // The hub's member list agrees, and nothing else was reported.
    await eventually(
      async () => {
        const users = await (await backend.sdk.get({ path: `/channels/presence-${room}/users` })).json();
        return JSON.stringify(users) === JSON.stringify({ users: [{ id: 'alice' }] });
      },
      { what: 'the hub to list only alice' },
    );
    assert.deepEqual(aliceHere.all.length, 1, 'here() fires once');
    assert.deepEqual(aliceJoining.all, [{ name: 'bob' }]);
    assert.deepEqual(aliceLeaving.all, [{ name: 'bob' }]);
    assert.deepEqual(bobJoining.all, [], 'bob saw nobody join after him');
  });

  test('join(): a user with two Echo connections is one member', async (t) => {
    const room = uniqueName('tabs');
    const channelName = `presence-${room}`;
    const alice = await echoFor(t, 'alice');
    const joining = new Inbox('alice joining');
    const leaving = new Inbox('alice leaving');
    const marks = new Inbox('alice marks');
    const aliceHere = new Inbox('alice here');
    alice
      .join(room)
      .here((members) => aliceHere.push(members))
      .joining((member) => joining.push(member))
      .leaving((member) => leaving.push(member))
      .listen('.mark', (data) => marks.push(data))
      .error((err) => aliceHere.push({ subscriptionError: err }));
    assert.deepEqual(await aliceHere.next(), [{ name: 'alice' }]);

    const bobTab1 = await echoFor(t, 'bob');
    const tab1Here = new Inbox('bob tab 1 here');
    bobTab1
      .join(room)
      .here((members) => tab1Here.push(members))
      .error((err) => tab1Here.push({ subscriptionError: err }));
    assert.deepEqual(byName(await tab1Here.next()), [{ name: 'alice' }, { name: 'bob' }]);
    assert.deepEqual(await joining.next(), { name: 'bob' });

    const bobTab2 = await echoFor(t, 'bob');
    const tab2Here = new Inbox('bob tab 2 here');
    bobTab2
      .join(room)
      .here((members) => tab2Here.push(members))
      .error((err) => tab2Here.push({ subscriptionError: err }));
    assert.deepEqual(byName(await tab2Here.next()), [{ name: 'alice' }, { name: 'bob' }], 'bob is listed once');

    /** Once the hub counts `n` subscriptions, a trigger reaches alice after anything it sent her before. */
    const settle = async (n, label) => {
      await eventually(
        async () => {
          const info = await (
            await backend.sdk.get({ path: `/channels/${channelName}`, params: { info: 'subscription_count' } })
          ).json();
          return info.subscription_count === n;
        },
        { what: `${n} subscriptions on ${channelName}` },
      );
      await backend.sdk.trigger(channelName, 'mark', { label });
      assert.deepEqual(await marks.next(), { label });
    };

    await settle(3, 'after the second tab');
    assert.deepEqual(joining.all, [{ name: 'bob' }], 'the second tab of bob is no new member');

    bobTab1.disconnect();
    await settle(2, 'after the first tab left');
    assert.deepEqual(leaving.all, [], 'bob still has a tab open');

    bobTab2.disconnect();
    assert.deepEqual(await leaving.next(), { name: 'bob' }, 'bob left with his last tab');
    await settle(1, 'after the last tab left');
    assert.deepEqual(leaving.all, [{ name: 'bob' }]);
  });

  test('whisper on a private channel reaches the other client and is not echoed to the sender', async (t) => {
    const name = uniqueName('chat');
    const alice = await echoFor(t, 'alice');
    const bob = await echoFor(t, 'bob');
    const aliceChannel = alice.private(name);
    const bobChannel = bob.private(name);
    const aliceGot = whispers(aliceChannel, 'typing');
    const bobGot = whispers(bobChannel, 'typing');
    const aliceMarks = listened(aliceChannel, '.mark');
    const bobMarks = listened(bobChannel, '.mark');
    await Promise.all([subscribed(aliceChannel), subscribed(bobChannel)]);

    aliceChannel.whisper('typing', { name: 'alice', typing: true, text: 'héllo "there"' });
    assert.deepEqual(await bobGot.next(), {
      data: { name: 'alice', typing: true, text: 'héllo "there"' },
      user_id: undefined,
    });

    // The hub relayed the whisper before it handles this trigger, so an echo would reach alice before the mark.
    await backend.sdk.trigger(`private-${name}`, 'mark', { n: 1 });
    assert.deepEqual(await aliceMarks.next(), { n: 1 });
    assert.deepEqual(aliceGot.all, [], 'alice does not get her own whisper back');

    bobChannel.whisper('typing', { name: 'bob', typing: false });
    assert.deepEqual(await aliceGot.next(), { data: { name: 'bob', typing: false }, user_id: undefined });
    await backend.sdk.trigger(`private-${name}`, 'mark', { n: 2 });
    assert.deepEqual(await bobMarks.take(2), [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(bobGot.all.length, 1, 'bob does not get his own whisper back');
  });

  test('whisper on a presence channel carries the sender user_id and is not echoed to the sender', async (t) => {
    const room = uniqueName('presence-chat');
    const alice = await echoFor(t, 'alice');
    const bob = await echoFor(t, 'bob');
    const aliceChannel = alice.join(room);
    const bobChannel = bob.join(room);
    const aliceGot = whispers(aliceChannel, 'typing');
    const bobGot = whispers(bobChannel, 'typing');
    const aliceMarks = listened(aliceChannel, '.mark');
    const bobMarks = listened(bobChannel, '.mark');
    await Promise.all([subscribed(aliceChannel), subscribed(bobChannel)]);

    aliceChannel.whisper('typing', { typing: true });
    assert.deepEqual(await bobGot.next(), { data: { typing: true }, user_id: 'alice' });
    await backend.sdk.trigger(`presence-${room}`, 'mark', { n: 1 });
    assert.deepEqual(await aliceMarks.next(), { n: 1 });
    assert.deepEqual(aliceGot.all, [], 'alice does not get her own whisper back');

    bobChannel.whisper('typing', { typing: false });
    assert.deepEqual(await aliceGot.next(), { data: { typing: false }, user_id: 'bob' });
    await backend.sdk.trigger(`presence-${room}`, 'mark', { n: 2 });
    assert.deepEqual(await bobMarks.take(2), [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(bobGot.all.length, 1, 'bob does not get his own whisper back');
  });
});
