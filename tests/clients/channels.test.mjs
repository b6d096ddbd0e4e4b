// Private, presence, encrypted and cache channels (docs/protocol.md §2 and §3) with the clients a Pusher user has:
// pusher-js (its Node build) authorized by a real app backend (backend.mjs, which signs with the `pusher`
// SDK), the `pusher` SDK for triggers and HTTP API calls, and raw WebSockets whose signatures are computed
// here, for the frames pusher-js would never send and for checking exact frame shapes.
//
// pusher-js notes, from node_modules/pusher-js:
// - the Node build (`import Pusher from 'pusher-js'`) exports PusherWithEncryption, which sets `nacl`
//   (a bundled tweetnacl) itself: encrypted channels need no extra option. `pusher-js/with-encryption` points
//   at the *web* build and throws "self is not defined" under Node, so it is not used.
// - the `ajax` authorization transport works under Node: the Node runtime bundles an XMLHttpRequest
//   emulation on top of node:http, and custom `headers` are sent (the backend reads `x-user`).

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { startHub } from './hub.mjs';
import {
  assertSdkRejects,
  eventually,
  inboxOf,
  openPusherSocket,
  pusherOptions,
  serverSdk,
  sleep,
  uniqueName,
  withTimeout,
} from './wire.mjs';

/** The presence `user_info` the backend gives each user (non-ASCII on purpose). */
const userInfo = (user) => ({ name: user, badge: `★ ${user} ü` });

/** Presence members as pusher-js holds them, sorted by id: [{id, info}, ...]. */
function membersList(members) {
  const list = [];
  members.each((member) => list.push(member));
  return list.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** `users` of a GET /channels/NAME/users answer, sorted by id. */
function sortedUsers(body) {
  assert.ok(Array.isArray(body.users), `users is an array: ${JSON.stringify(body)}`);
  return [...body.users].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

const isSubscriptionOutcome = (channel) => (frame) =>
  frame.channel === channel &&
  (frame.event === 'pusher_internal:subscription_succeeded' || frame.event === 'pusher:subscription_error');

/** Asserts a `pusher:subscription_error` frame in the documented shape, with `status` and a meaningful message. */
function assertSubscriptionError(frame, channel, status, words, what) {
  const shown = JSON.stringify(frame);
  assert.equal(frame.event, 'pusher:subscription_error', `${what}: expected a subscription_error, got ${shown}`);
  assert.equal(frame.channel, channel, `${what}: channel of ${shown}`);
  assert.equal(typeof frame.data, 'object', `${what}: data is an object: ${shown}`);
  assert.notEqual(frame.data, null, `${what}: data present: ${shown}`);
  assert.equal(frame.data.status, status, `${what}: status of ${shown}`);
  assert.equal(typeof frame.data.type, 'string', `${what}: data.type of ${shown}`);
  assert.notEqual(frame.data.type, '', `${what}: data.type of ${shown}`);
  assert.equal(typeof frame.data.error, 'string', `${what}: data.error of ${shown}`);
  assert.match(frame.data.error, words, `${what}: the message says what is wrong: ${shown}`);
}

describe('private, presence, encrypted and cache channels', () => {
  let hub;
  let backend;
  let sdk;

  before(async () => {
    hub = await startHub();
    backend = await startBackend({ hub, encryptionMasterKeyBase64: randomBytes(32).toString('base64'), userInfo });
    sdk = backend.sdk;
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  /** `{app_key}:{hex HMAC-SHA256 of text}` with this hub's secret (or another one). */
  function sign(text, { key = hub.key, secret = hub.secret } = {}) {
    return `${key}:${createHmac('sha256', secret).update(text).digest('hex')}`;
  }

  /**
   * A pusher-js client in state 'connected' whose channel authorization goes to the backend as `user`
   * (or through `channelAuthorization` when given); disconnected when the test ends.
   */
  async function pusherClient(t, user, channelAuthorization) {
    const client = new Pusher(hub.key, {
      ...pusherOptions(hub),
      channelAuthorization: channelAuthorization ?? {
        endpoint: `${backend.url}/pusher/auth`,
        transport: 'ajax',
        headers: { 'x-user': user },
      },
    });
    t.after(() => client.disconnect());
    await withTimeout(
      new Promise((resolve, reject) => {
        client.connection.bind('connected', resolve);
        client.connection.bind('failed', () => reject(new Error(`${user}'s pusher-js connection failed`)));
      }),
      10_000,
      `${user}'s pusher-js to connect`,
    );
    return client;
  }

  /** The first of `pusher:subscription_succeeded` / `pusher:subscription_error` on a pusher-js channel. */
  function outcomeOf(channel) {
    return withTimeout(
      new Promise((resolve) => {
        channel.bind('pusher:subscription_succeeded', (data) => resolve({ ok: true, data }));
        channel.bind('pusher:subscription_error', (data) => resolve({ ok: false, data }));
      }),
      5000,
      `the outcome of the subscription to ${channel.name}`,
    );
  }

  /**
   * Subscribes with pusher-js, binding an inbox per event name *before* the subscription leaves (a cached
   * event arrives right after subscription_succeeded), and waits for success. For presence channels,
   * `members` is a snapshot of the members list given with subscription_succeeded.
   */
  async function join(client, name, events = []) {
    const channel = client.subscribe(name);
    const inboxes = {};
    for (const event of events) inboxes[event] = inboxOf(channel, event);
    const outcome = await outcomeOf(channel);
    if (!outcome.ok) assert.fail(`subscription to ${name} failed: ${JSON.stringify(outcome.data)}`);
    const members = outcome.data && typeof outcome.data.each === 'function'
      ? { count: outcome.data.count, me: outcome.data.me, list: membersList(outcome.data) }
      : null;
    return { channel, inboxes, members };
  }

  /** A raw protocol-7 socket (with `socketId`), closed when the test ends. */
  async function rawSocket(t) {
    const socket = await openPusherSocket(hub);
    t.after(() => socket.close());
    return socket;
  }

  /** Sends pusher:subscribe and returns the subscription_succeeded or subscription_error frame for it. */
  function rawSubscribe(socket, channel, extra = {}) {
    socket.send({ event: 'pusher:subscribe', data: { channel, ...extra } });
    return socket.nextMatching(isSubscriptionOutcome(channel));
  }

  /** Presence subscription from a raw socket, signed over the exact channel_data string. */
  function rawPresence(socket, channel, channelData) {
    return rawSubscribe(socket, channel, {
      auth: sign(`${socket.socketId}:${channel}:${channelData}`),
      channel_data: channelData,
    });
  }

  /** The socket is open, can subscribe to a public channel and receives an SDK trigger there. */
  async function assertStillUsable(socket, what) {
    assert.ok(socket.isOpen, `${what}: the socket is still open`);
    const name = uniqueName('after-error');
    const frame = await rawSubscribe(socket, name);
    assert.equal(frame.event, 'pusher_internal:subscription_succeeded', `${what}: public subscribe: ${JSON.stringify(frame)}`);
    await sdk.trigger(name, 'still-here', { ok: true });
    const event = await socket.nextMatching((f) => f.channel === name && f.event === 'still-here');
    assert.equal(event.data, '{"ok":true}', `${what}: the event after the error`);
  }

  /** Reads frames up to the first `event` frame on `channel`; returns the frames before it. */
  async function framesUntil(socket, channel, event) {
    const seen = [];
    for (;;) {
      const frame = await socket.next();
      if (frame.channel === channel && frame.event === event) return seen;
      seen.push(frame);
    }
  }

  /** Waits until GET /channels/NAME reports `count` subscriptions (0: not occupied). */
  function untilSubscriptions(name, count) {
    return eventually(
      async () => {
        const info = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
        return count === 0 ? info.occupied === false : info.subscription_count === count;
      },
      { timeout: 3000, what: `${name} to have ${count} subscriptions` },
    );
  }

  // ------------------------------------------------------------------------------------------------------
  describe('private channels', () => {
    test('pusher-js is authorized by the backend (ajax transport) and receives an SDK trigger', async (t) => {
      const alice = await pusherClient(t, 'alice');
      const name = uniqueName('private-orders');
      const { inboxes } = await join(alice, name, ['order-created']);

      const request = backend.authRequests.find((r) => r.channel_name === name);
      assert.deepEqual(
        request,
        { path: '/pusher/auth', user: 'alice', socket_id: alice.connection.socket_id, channel_name: name },
        'pusher-js asked the backend, with its socket id and the x-user header',
      );

      const payload = { id: 7, note: 'éà "quoted" \\ ü', items: [1, 2] };
      const res = await sdk.trigger(name, 'order-created', payload);
      assert.equal(res.status, 200);
      assert.deepEqual(await inboxes['order-created'].next(), payload);
    });

    test('a user the backend refuses gets pusher:subscription_error and never joins', async (t) => {
      backend.refused.add('mallory');
      t.after(() => backend.refused.delete('mallory'));
      const name = uniqueName('private-board');
      const alice = await pusherClient(t, 'alice');
      const aliceSide = await join(alice, name, ['memo']);

      const mallory = await pusherClient(t, 'mallory');
      const channel = mallory.subscribe(name);
      const memos = inboxOf(channel, 'memo');
      const outcome = await outcomeOf(channel);
      assert.equal(outcome.ok, false, `mallory's subscription must fail: ${JSON.stringify(outcome.data)}`);
      assert.equal(outcome.data.type, 'AuthError', JSON.stringify(outcome.data));
      assert.equal(outcome.data.status, 403, `the backend's status, as pusher-js reports it: ${JSON.stringify(outcome.data)}`);

      // Only alice is subscribed, and only alice gets the event.
      const info = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
      assert.equal(info.subscription_count, 1, JSON.stringify(info));
      await sdk.trigger(name, 'memo', { n: 1 });
      assert.deepEqual(await aliceSide.inboxes.memo.next(), { n: 1 });
      assert.deepEqual(memos.all, []);
      assert.equal(mallory.connection.state, 'connected', 'the refused client stays connected');
    });

    test('pusher-js reports the hub\'s 401 for a forged signature (customHandler)', async (t) => {
      const forged = `${hub.key}:${'0'.repeat(64)}`;
      const client = await pusherClient(t, 'forger', {
        customHandler: (_params, callback) => callback(null, { auth: forged }),
      });
      const name = uniqueName('private-forged');
      const outcome = await outcomeOf(client.subscribe(name));
      assert.equal(outcome.ok, false, `a forged signature must be refused: ${JSON.stringify(outcome.data)}`);
      assert.equal(outcome.data.status, 401, JSON.stringify(outcome.data));
      assert.match(outcome.data.error, /auth|signature/i, JSON.stringify(outcome.data));
      assert.equal(client.connection.state, 'connected', 'the client stays connected');
    });

    test('raw socket: missing, forged and misdirected auth get 401 and the socket stays usable', async (t) => {
      const socket = await rawSocket(t);
      const name = uniqueName('private-raw');
      const cases = [
        ['no auth at all', {}],
        ['an empty auth', { auth: '' }],
        ['a forged signature', { auth: `${hub.key}:${'0'.repeat(64)}` }],
        ['an auth without a colon', { auth: 'nonsense' }],
        ['a signature for another socket id', { auth: sign(`123.456:${name}`) }],
        ['a signature for another channel', { auth: sign(`${socket.socketId}:${name}-other`) }],
        ['a signature made with another secret', { auth: sign(`${socket.socketId}:${name}`, { secret: 'not-the-secret' }) }],
        ['a good signature under another key', { auth: sign(`${socket.socketId}:${name}`, { key: 'not-the-key' }) }],
      ];
      for (const [what, extra] of cases) {
        const frame = await rawSubscribe(socket, name, extra);
        assertSubscriptionError(frame, name, 401, /auth|signature/i, what);
        assert.ok(socket.isOpen, `${what}: the socket stays open`);
      }
      await assertStillUsable(socket, 'after the refused private subscriptions');

      // The refusals left no half-joined state behind: the right signature now works on the same channel.
      const ok = await rawSubscribe(socket, name, { auth: sign(`${socket.socketId}:${name}`) });
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));
      await sdk.trigger(name, 'finally', { in: true });
      const event = await socket.nextMatching((f) => f.channel === name && f.event === 'finally');
      assert.equal(event.data, '{"in":true}');
    });
  });

  // ------------------------------------------------------------------------------------------------------
  describe('presence channels', () => {
    test('a user with two connections is one member: one member_added, one member_removed', async (t) => {
      const name = uniqueName('presence-room');
      const bob = await pusherClient(t, 'bob');
      const bobSide = await join(bob, name, ['pusher:member_added', 'pusher:member_removed', 'tick']);
      assert.equal(bobSide.members.count, 1);
      assert.deepEqual(bobSide.members.me, { id: 'bob', info: userInfo('bob') });
      assert.deepEqual(bobSide.members.list, [{ id: 'bob', info: userInfo('bob') }]);
      const added = bobSide.inboxes['pusher:member_added'];
      const removed = bobSide.inboxes['pusher:member_removed'];
      const ticks = bobSide.inboxes.tick;

      const alice1 = await pusherClient(t, 'alice');
      const first = await join(alice1, name);
      const both = [
        { id: 'alice', info: userInfo('alice') },
        { id: 'bob', info: userInfo('bob') },
      ];
      assert.equal(first.members.count, 2);
      assert.deepEqual(first.members.me, { id: 'alice', info: userInfo('alice') });
      assert.deepEqual(first.members.list, both, 'subscription_succeeded lists both members with their user_info');
      assert.deepEqual(await added.next(), { id: 'alice', info: userInfo('alice') });

      const alice2 = await pusherClient(t, 'alice');
      const second = await join(alice2, name);
      assert.equal(second.members.count, 2, 'alice\'s second connection does not count twice');
      assert.deepEqual(second.members.list, both);

      // Events on a channel arrive in order: a member_added for the second connection would precede this tick.
      await sdk.trigger(name, 'tick', { n: 1 });
      assert.deepEqual(await ticks.next(), { n: 1 });
      assert.equal(added.all.length, 1, `exactly one member_added for alice: ${JSON.stringify(added.all)}`);
      assert.equal(bobSide.channel.members.count, 2);

      // alice closes one connection: she is still a member.
      alice1.disconnect();
      await untilSubscriptions(name, 2);
      await sdk.trigger(name, 'tick', { n: 2 });
      assert.deepEqual(await ticks.next(), { n: 2 });
      assert.deepEqual(removed.all, [], 'no member_removed while alice has a connection left');
      assert.equal(bobSide.channel.members.count, 2);

      // alice closes her last connection: exactly one member_removed.
      alice2.disconnect();
      assert.deepEqual(await removed.next(), { id: 'alice', info: userInfo('alice') });
      await sdk.trigger(name, 'tick', { n: 3 });
      assert.deepEqual(await ticks.next(), { n: 3 });
      assert.equal(removed.all.length, 1, `exactly one member_removed: ${JSON.stringify(removed.all)}`);
      assert.equal(bobSide.channel.members.count, 1);
      assert.deepEqual(membersList(bobSide.channel.members), [{ id: 'bob', info: userInfo('bob') }]);
      const users = await (await sdk.get({ path: `/channels/${name}/users` })).json();
      assert.deepEqual(sortedUsers(users), [{ id: 'bob' }]);
    });

    test('raw frames: subscription_succeeded, member_added and member_removed in the canonical shape', async (t) => {
      const name = uniqueName('presence-frames');
      const bob = await rawSocket(t);
      const bobData = JSON.stringify({ user_id: 'bob', user_info: { name: 'Bob', tags: ['a', 'ü'] } });
      const bobJoined = await rawPresence(bob, name, bobData);
      assert.equal(bobJoined.event, 'pusher_internal:subscription_succeeded', JSON.stringify(bobJoined));
      assert.equal(typeof bobJoined.data, 'string', `data is a JSON-encoded string: ${JSON.stringify(bobJoined)}`);
      assert.deepEqual(JSON.parse(bobJoined.data), {
        presence: { ids: ['bob'], hash: { bob: { name: 'Bob', tags: ['a', 'ü'] } }, count: 1 },
      });

      const carol = await rawSocket(t);
      const carolData = JSON.stringify({ user_id: 'carol', user_info: { name: 'Carol' } });
      const carolJoined = await rawPresence(carol, name, carolData);
      assert.equal(carolJoined.event, 'pusher_internal:subscription_succeeded', JSON.stringify(carolJoined));
      assert.equal(typeof carolJoined.data, 'string');
      const presence = JSON.parse(carolJoined.data).presence;
      assert.deepEqual([...presence.ids].sort(), ['bob', 'carol']);
      assert.deepEqual(presence.hash, { bob: { name: 'Bob', tags: ['a', 'ü'] }, carol: { name: 'Carol' } });
      assert.equal(presence.count, 2);

      const addedFrame = await bob.next();
      assert.equal(addedFrame.event, 'pusher_internal:member_added', JSON.stringify(addedFrame));
      assert.equal(addedFrame.channel, name);
      assert.equal(typeof addedFrame.data, 'string', `data is a JSON-encoded string: ${JSON.stringify(addedFrame)}`);
      assert.deepEqual(JSON.parse(addedFrame.data), { user_id: 'carol', user_info: { name: 'Carol' } });

      carol.close();
      const removedFrame = await bob.next();
      assert.equal(removedFrame.event, 'pusher_internal:member_removed', JSON.stringify(removedFrame));
      assert.equal(removedFrame.channel, name);
      assert.equal(typeof removedFrame.data, 'string', `data is a JSON-encoded string: ${JSON.stringify(removedFrame)}`);
      assert.deepEqual(JSON.parse(removedFrame.data), { user_id: 'carol' });
    });

    test('HTTP API: users, channel info, presence listing and trigger info', async (t) => {
      const name = uniqueName('presence-api');
      const lonely = uniqueName('presence-api-lonely');
      const plain = uniqueName('plain-api');
      const bob = await pusherClient(t, 'bob');
      await join(bob, name);
      await join(bob, lonely);
      await join(bob, plain);
      await join(await pusherClient(t, 'alice'), name);
      await join(await pusherClient(t, 'alice'), name);

      const usersRes = await sdk.get({ path: `/channels/${name}/users` });
      assert.equal(usersRes.status, 200);
      assert.deepEqual(sortedUsers(await usersRes.json()), [{ id: 'alice' }, { id: 'bob' }]);
      await assertSdkRejects(sdk.get({ path: `/channels/${plain}/users` }), 400, 'users of a public channel');

      const infoRes = await sdk.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } });
      assert.equal(infoRes.status, 200);
      const info = await infoRes.json();
      assert.equal(info.occupied, true, JSON.stringify(info));
      assert.equal(info.user_count, 2, `two users: ${JSON.stringify(info)}`);
      assert.equal(info.subscription_count, 3, `three connections: ${JSON.stringify(info)}`);

      const listRes = await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
      assert.equal(listRes.status, 200);
      const list = await listRes.json();
      assert.equal(typeof list.channels, 'object', JSON.stringify(list));
      assert.deepEqual(list.channels[name], { user_count: 2 }, JSON.stringify(list));
      assert.deepEqual(list.channels[lonely], { user_count: 1 }, JSON.stringify(list));
      for (const listed of Object.keys(list.channels)) assert.ok(listed.startsWith('presence-'), `${listed} in ${JSON.stringify(list)}`);

      const triggered = await sdk.trigger([name, lonely], 'counted', { x: 1 }, { info: 'subscription_count,user_count' });
      assert.equal(triggered.status, 200);
      assert.deepEqual(await triggered.json(), {
        channels: {
          [name]: { subscription_count: 3, user_count: 2 },
          [lonely]: { subscription_count: 1, user_count: 1 },
        },
      });
      const single = await sdk.trigger(name, 'counted', { x: 2 }, { info: 'subscription_count' });
      assert.deepEqual(await single.json(), { channels: { [name]: { subscription_count: 3 } } });
    });
  });

  // ------------------------------------------------------------------------------------------------------
  describe('presence errors (raw WebSocket, signatures computed here)', () => {
    test('bad channel_data, a long user_id and a big user_info get 400; socket and channel keep working', async (t) => {
      const name = uniqueName('presence-strict');
      const bob = await pusherClient(t, 'bob');
      const bobSide = await join(bob, name, ['pusher:member_added', 'tick']);
      const socket = await rawSocket(t);

      const cases = [
        ['channel_data that is not JSON', 'not json {', /channel_data|json/i],
        ['channel_data that is a JSON array', '[1,2]', /channel_data|json|user_id|object/i],
        ['channel_data without user_id', JSON.stringify({ user_info: { name: 'nobody' } }), /user_id/i],
        ['a user_id of 129 characters', JSON.stringify({ user_id: 'u'.repeat(129), user_info: {} }), /user_id/i],
        ['a user_info over 1 KB', JSON.stringify({ user_id: 'big', user_info: { bio: 'x'.repeat(1100) } }), /user_info/i],
      ];
      for (const [what, channelData, words] of cases) {
        const frame = await rawPresence(socket, name, channelData);
        assertSubscriptionError(frame, name, 400, words, what);
        assert.ok(socket.isOpen, `${what}: the socket stays open`);
      }
      // A bad signature on a presence channel is an auth error.
      const goodData = JSON.stringify({ user_id: 'dave', user_info: { name: 'Dave' } });
      const forged = await rawSubscribe(socket, name, { auth: `${hub.key}:${'f'.repeat(64)}`, channel_data: goodData });
      assertSubscriptionError(forged, name, 401, /auth|signature/i, 'presence with a forged signature');
      await assertStillUsable(socket, 'after the refused presence subscriptions');

      // The same socket now joins the same channel properly, and a 128-character user_id is accepted.
      const joined = await rawPresence(socket, name, goodData);
      assert.equal(joined.event, 'pusher_internal:subscription_succeeded', JSON.stringify(joined));
      assert.equal(JSON.parse(joined.data).presence.count, 2, joined.data);
      const longId = 'l'.repeat(128);
      const other = await rawSocket(t);
      const longJoined = await rawPresence(other, name, JSON.stringify({ user_id: longId, user_info: { n: 1 } }));
      assert.equal(longJoined.event, 'pusher_internal:subscription_succeeded', `128 characters is within the limit: ${JSON.stringify(longJoined)}`);

      // bob saw exactly these two members arrive, none of the refused ones, and still receives events.
      await sdk.trigger(name, 'tick', { n: 1 });
      assert.deepEqual(await bobSide.inboxes.tick.next(), { n: 1 });
      assert.deepEqual(
        bobSide.inboxes['pusher:member_added'].all.map((m) => m.id),
        ['dave', longId],
        'only the accepted subscriptions were announced',
      );
      assert.equal(bobSide.channel.members.count, 3);
    });

    test('the 101st distinct member gets 403; a member\'s second connection still joins', async (t) => {
      const name = uniqueName('presence-crowd');
      const data = (user) => JSON.stringify({ user_id: user, user_info: { name: user } });
      const members = await Promise.all(Array.from({ length: 100 }, () => rawSocket(t)));
      // One after the other, so that the last one has seen every member join before it did.
      for (let i = 0; i < members.length; i++) {
        const frame = await rawPresence(members[i], name, data(`m${i}`));
        assert.equal(frame.event, 'pusher_internal:subscription_succeeded', `member ${i}: ${JSON.stringify(frame)}`);
      }

      const extra = await rawSocket(t);
      const refused = await rawPresence(extra, name, data('m100'));
      assertSubscriptionError(refused, name, 403, /member|limit|full|capacity|100|many/i, 'the 101st member');
      await assertStillUsable(extra, 'after the refused 101st member');

      const secondOfM0 = await rawSocket(t);
      const again = await rawPresence(secondOfM0, name, data('m0'));
      assert.equal(again.event, 'pusher_internal:subscription_succeeded', `m0's second connection: ${JSON.stringify(again)}`);
      const presence = JSON.parse(again.data).presence;
      assert.equal(presence.count, 100, 'still 100 members');
      assert.ok(!presence.ids.includes('m100'), 'the refused user is not a member');

      const users = sortedUsers(await (await sdk.get({ path: `/channels/${name}/users` })).json());
      assert.equal(users.length, 100);
      assert.ok(!users.some((u) => u.id === 'm100'), 'the refused user is not listed');

      // Everyone still receives events; the last member saw no membership change after it joined.
      await sdk.trigger(name, 'after-crowd', { ok: 1 });
      const seenByLast = await framesUntil(members[99], name, 'after-crowd');
      assert.deepEqual(
        seenByLast.filter((f) => f.event.startsWith('pusher_internal:member')),
        [],
        'no member_added/member_removed for the refused user or the second connection',
      );
      for (const socket of [members[0], secondOfM0]) {
        const event = await socket.nextMatching((f) => f.channel === name && f.event === 'after-crowd');
        assert.equal(event.data, '{"ok":1}');
      }
    });
  });

  // ------------------------------------------------------------------------------------------------------
  describe('encrypted channels', () => {
    test('pusher-js decrypts what the SDK encrypted; the hub relays the opaque payload untouched', async (t) => {
      const name = uniqueName('private-encrypted-vault');
      const alice = await pusherClient(t, 'alice');
      const { inboxes } = await join(alice, name, ['secret', 'replayed']);
      const raw = await rawSocket(t);
      const ok = await rawSubscribe(raw, name, { auth: sign(`${raw.socketId}:${name}`) });
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));

      const payload = { card: '4111-1111', note: 'éà "quoted" ü', n: 7 };
      const res = await sdk.trigger(name, 'secret', payload);
      assert.equal(res.status, 200);
      assert.deepEqual(await inboxes.secret.next(), payload, 'pusher-js decrypted the original payload');

      const frame = await raw.nextMatching((f) => f.channel === name && f.event === 'secret');
      assert.equal(typeof frame.data, 'string', `data is a JSON string: ${JSON.stringify(frame)}`);
      const opaque = JSON.parse(frame.data);
      assert.deepEqual(Object.keys(opaque).sort(), ['ciphertext', 'nonce'], frame.data);
      assert.equal(Buffer.from(opaque.nonce, 'base64').length, 24, 'a secretbox nonce');
      assert.equal(
        Buffer.from(opaque.ciphertext, 'base64').length,
        Buffer.byteLength(JSON.stringify(payload)) + 16,
        'secretbox ciphertext of the payload',
      );
      assert.ok(!frame.data.includes('4111'), 'the hub never sees the plaintext');

      // The bytes the raw socket got are the real ciphertext: published again verbatim (without the SDK's
      // encryption), pusher-js decrypts them to the same payload.
      await sdk.post({ path: '/events', body: { name: 'replayed', data: frame.data, channels: [name] } });
      assert.deepEqual(await inboxes.replayed.next(), payload);
    });
  });

  // ------------------------------------------------------------------------------------------------------
  describe('cache channels', () => {
    test('cache-: a late subscriber gets the last event at once, published while nobody listened', async (t) => {
      const name = uniqueName('cache-price');
      await sdk.trigger(name, 'price', { v: 1 });
      await sdk.trigger(name, 'price', { v: 2 });
      const beforeInfo = await (await sdk.get({ path: `/channels/${name}` })).json();
      assert.equal(beforeInfo.occupied, false, 'nobody was subscribed when the events were published');

      const client = await pusherClient(t, 'reader');
      const { inboxes } = await join(client, name, ['price', 'pusher:cache_miss']);
      assert.deepEqual(await inboxes.price.next(), { v: 2 }, 'the last event, not the first');
      await sdk.trigger(name, 'price', { v: 3 });
      assert.deepEqual(await inboxes.price.next(), { v: 3 });
      assert.deepEqual(inboxes.price.all, [{ v: 2 }, { v: 3 }]);
      assert.equal(inboxes['pusher:cache_miss'].all.length, 0, 'no cache_miss when there is a cached event');

      // On the wire: the cached event is a normal event frame, right after subscription_succeeded.
      const raw = await rawSocket(t);
      const ok = await rawSubscribe(raw, name);
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));
      assert.deepEqual(await raw.next(), { event: 'price', channel: name, data: '{"v":3}' });
    });

    test('cache-: nothing cached gives pusher:cache_miss; a plain channel never does', async (t) => {
      const client = await pusherClient(t, 'reader');
      const name = uniqueName('cache-empty');
      const { inboxes } = await join(client, name, ['pusher:cache_miss', 'news']);
      await inboxes['pusher:cache_miss'].next();
      await sdk.trigger(name, 'news', { n: 1 });
      assert.deepEqual(await inboxes.news.next(), { n: 1 });
      assert.equal(inboxes['pusher:cache_miss'].all.length, 1, 'one cache_miss per subscription');

      const raw = await rawSocket(t);
      const other = uniqueName('cache-empty-raw');
      const ok = await rawSubscribe(raw, other);
      assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));
      assert.deepEqual(await raw.next(), { event: 'pusher:cache_miss', channel: other });

      const plain = uniqueName('plain-no-cache');
      await sdk.trigger(plain, 'old', { n: 0 });
      const plainOk = await rawSubscribe(raw, plain);
      assert.equal(plainOk.event, 'pusher_internal:subscription_succeeded', JSON.stringify(plainOk));
      await sdk.trigger(plain, 'new', { n: 1 });
      assert.deepEqual(await raw.next(), { event: 'new', channel: plain, data: '{"n":1}' }, 'nothing cached, no cache_miss, on a plain channel');
    });

    test('the cache survives the channel becoming empty', async (t) => {
      const name = uniqueName('cache-survivor');
      const first = await pusherClient(t, 'first');
      const firstSide = await join(first, name, ['state']);
      await sdk.trigger(name, 'state', { s: 'kept' });
      assert.deepEqual(await firstSide.inboxes.state.next(), { s: 'kept' });
      first.disconnect();
      await untilSubscriptions(name, 0);

      const later = await pusherClient(t, 'later');
      const laterSide = await join(later, name, ['state', 'pusher:cache_miss']);
      assert.deepEqual(await laterSide.inboxes.state.next(), { s: 'kept' });
      assert.equal(laterSide.inboxes['pusher:cache_miss'].all.length, 0);
    });

    test('private-cache-, presence-cache- and private-encrypted-cache- replay to a late, authorized subscriber', async (t) => {
      const privateName = uniqueName('private-cache-doc');
      const presenceName = uniqueName('presence-cache-room');
      const encryptedName = uniqueName('private-encrypted-cache-safe');
      await sdk.trigger(privateName, 'saved', { doc: 1 });
      await sdk.trigger(presenceName, 'topic', { topic: 'ünïcode' });
      await sdk.trigger(encryptedName, 'sealed', { code: 'ab-12' });

      const alice = await pusherClient(t, 'alice');
      const privateSide = await join(alice, privateName, ['saved', 'pusher:cache_miss']);
      assert.deepEqual(await privateSide.inboxes.saved.next(), { doc: 1 });

      const presenceSide = await join(alice, presenceName, ['topic', 'pusher:cache_miss']);
      assert.deepEqual(await presenceSide.inboxes.topic.next(), { topic: 'ünïcode' });
      assert.deepEqual(presenceSide.members.list, [{ id: 'alice', info: userInfo('alice') }]);

      const encryptedSide = await join(alice, encryptedName, ['sealed', 'pusher:cache_miss']);
      assert.deepEqual(await encryptedSide.inboxes.sealed.next(), { code: 'ab-12' }, 'decrypted from the cache');

      for (const side of [privateSide, presenceSide, encryptedSide]) {
        assert.equal(side.inboxes['pusher:cache_miss'].all.length, 0, `no cache_miss on ${side.channel.name}`);
      }

      // And with nothing cached, a presence-cache- channel gives cache_miss to pusher-js too.
      const emptyPresence = await join(alice, uniqueName('presence-cache-empty'), ['pusher:cache_miss']);
      await emptyPresence.inboxes['pusher:cache_miss'].next();
    });
  });
});

// --------------------------------------------------------------------------------------------------------
describe('cache expiry (cache_ttl_secs = 1)', () => {
  let hub;
  let sdk;

  before(async () => {
    hub = await startHub({ config: '[limits]\ncache_ttl_secs = 1\n' });
    sdk = serverSdk(hub);
  });
  after(() => hub?.close());

  /** Opens a raw socket, subscribes to `name` and returns the frame that follows subscription_succeeded. */
  async function firstFrameAfterSubscribing(t, name) {
    const socket = await openPusherSocket(hub);
    t.after(() => socket.close());
    socket.send({ event: 'pusher:subscribe', data: { channel: name } });
    const ok = await socket.nextMatching(isSubscriptionOutcome(name));
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));
    return socket.next();
  }

  test('the cached event is gone after its time to live', async (t) => {
    const name = uniqueName('cache-ttl');
    await sdk.trigger(name, 'flash', { v: 1 });
    assert.deepEqual(await firstFrameAfterSubscribing(t, name), { event: 'flash', channel: name, data: '{"v":1}' }, 'cached at first');

    // Time must pass here: the behaviour is the cache's time to live (1 s); 2.2 s leaves a wide margin.
    await sleep(2200);
    assert.deepEqual(await firstFrameAfterSubscribing(t, name), { event: 'pusher:cache_miss', channel: name }, 'expired after 2 s');
  });
});
