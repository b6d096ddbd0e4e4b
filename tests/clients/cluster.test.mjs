// Hubs that share their traffic through Redis (`adapter = "redis"`): a real redis-server on a free
// loopback port, two hubs on it, and real clients on each. What is published on one hub reaches the
// subscribers of the other exactly once; socket_id exclusion, client events and terminate_connections work
// across hubs; each hub sees the other, and a hub killed with SIGKILL leaves the cluster when its key
// expires; a Redis restart is survived without restarting the hubs.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { randomCredentials } from './hub.mjs';
import { freePort, health, startClusterHub, startRedis } from './redis.mjs';
import {
  Inbox,
  assertSdkRejects,
  closeTimersOf,
  eventually,
  openPusherSocket,
  pusherOptions,
  sentinel,
  serverSdk,
  subscribe,
  uniqueName,
  withTimeout,
} from './wire.mjs';

const NODE_TIMEOUT_MS = 3000;
const ADMIN_TOKEN = 'cluster-admin-token-0123456789';

/**
 * Resolves once `observer` has read a heartbeat record that `target` wrote after this call began, without
 * waiting for time to pass: a fresh channel occupied on `target` shows up in `observer`'s channel list, which
 * counts the other hubs' channels from their records. What a hub does with a record it read (announcing the
 * members that came or went) it does right as it reads it.
 */
async function heartbeatSeen(observer, target) {
  const marker = uniqueName('heartbeat');
  const socket = await openPusherSocket(target);
  try {
    socket.send({ event: 'pusher:subscribe', data: { channel: marker } });
    const ok = await socket.next();
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', `subscribe ${marker}: ${JSON.stringify(ok)}`);
    await eventually(
      async () => {
        const res = await serverSdk(observer).get({ path: '/channels', params: { filter_by_prefix: marker } });
        return marker in ((await res.json()).channels ?? {});
      },
      { timeout: 10_000, what: `${observer.httpUrl} to read a heartbeat of ${target.httpUrl} (with ${marker})` },
    );
  } finally {
    socket.close();
  }
}

/** The ids of the other hubs `hub` knows. */
async function othersOf(hub) {
  return (await health(hub)).cluster.others.map((n) => n.id).sort();
}

describe('two hubs sharing one Redis', () => {
  let redisPort;
  let redis;
  let a;
  let b;
  let backend;
  const clients = [];
  const releases = [];
  const credentials = randomCredentials();
  const prefix = uniqueName('cluster');

  const startNode = (clusterPrefix = prefix) =>
    startClusterHub({
      credentials,
      redisPort,
      prefix: clusterPrefix,
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      extra: `admin_token = "${ADMIN_TOKEN}"\n`,
    });

  /** A pusher-js client on `hub`, authorized by the backend as `user`; disconnected at the end. */
  async function client(hub, user = 'anonymous') {
    const auth = (path) => ({ endpoint: `${backend.url}${path}`, transport: 'ajax', headers: { 'x-user': user } });
    const c = new Pusher(hub.key, { ...pusherOptions(hub), channelAuthorization: auth('/pusher/auth'), userAuthentication: auth('/pusher/user-auth') });
    clients.push(c);
    releases.push(closeTimersOf(c));
    await eventually(() => c.connection.state === 'connected', { what: `pusher-js connected to ${hub.httpUrl}` });
    return c;
  }

  before(async () => {
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    a = await startNode();
    b = await startNode();
    backend = await startBackend();
    backend.attach(a);
    // Both links up, and each hub knows the other.
    await eventually(async () => {
      const [ha, hb] = await Promise.all([health(a), health(b)]);
      return ha.cluster?.link === 'up' && hb.cluster?.link === 'up' && ha.cluster.others.length === 1 && hb.cluster.others.length === 1;
    }, { timeout: 10_000, what: 'both hubs linked and aware of each other' });
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    for (const release of releases) release();
    await backend?.close();
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  /**
   * Proves that nothing more is on its way to the pusher-js `channels` (on either hub), without waiting for time
   * to pass: each hub reads a record of the other written after this call began (so what the heartbeats would
   * announce is announced), then an event published through each hub reaches every channel (so whatever either
   * hub had sent through Redis before it has been delivered: Redis passes messages on in the order it got them,
   * and a hub writes what it queued for a connection in order).
   */
  async function clusterSentinel(channels) {
    await Promise.all([heartbeatSeen(a, b), heartbeatSeen(b, a)]);
    await sentinel(serverSdk(a), channels);
    await sentinel(serverSdk(b), channels);
  }

  test('an event triggered on either hub reaches the subscribers of both, exactly once', async () => {
    const channel = uniqueName('news');
    const onA = await client(a);
    const onB = await client(b);
    const gotA = new Inbox('on A');
    const gotB = new Inbox('on B');
    const chA = await subscribe(onA, channel);
    const chB = await subscribe(onB, channel);
    chA.bind('tick', (d) => gotA.push(d.n));
    chB.bind('tick', (d) => gotB.push(d.n));
    for (let n = 0; n < 20; n++) {
      const hub = n % 2 ? a : b;
      assert.equal((await serverSdk(hub).trigger(channel, 'tick', { n })).status, 200);
    }
    // Every event exactly once on each hub, in the order the triggers were answered (one order for the
    // cluster: every hub delivers in the order Redis received the events). A deadline, not a duration.
    await eventually(() => gotA.all.length >= 20 && gotB.all.length >= 20, {
      timeout: 20_000,
      what: '20 events on each hub',
    });
    // An event delivered twice would arrive before an event either hub publishes now.
    await sentinel(serverSdk(a), [chA, chB]);
    await sentinel(serverSdk(b), [chA, chB]);
    for (const got of [gotA, gotB]) assert.deepEqual(got.all, [...Array(20).keys()], `${got.label}: each once, in order`);
  });

  test("the dashboard's overview shows the cluster: the link, the other hub and its clients", async () => {
    const res = await fetch(`${a.httpUrl}/admin/api/overview`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    const overview = await res.json();
    assert.equal(overview.cluster.link, 'up');
    assert.equal(overview.cluster.prefix, prefix);
    assert.equal(overview.cluster.others.length, 1);
    assert.equal(typeof overview.cluster.others[0].connections, 'number');
    assert.match(overview.cluster.others[0].name, /:\d+$/, 'named by host and port');
  });

  test('a hub with another prefix on the same Redis is another cluster', async () => {
    // Two hubs in the other cluster: the second one's events reach the first through Redis, which is what
    // shows that the first would have had this cluster's event by then.
    const stranger = await startNode(`${prefix}-other`);
    const stranger2 = await startNode(`${prefix}-other`);
    try {
      await eventually(
        async () => (await health(stranger)).cluster.link === 'up' && (await health(stranger2)).cluster.link === 'up',
        { timeout: 10_000, what: 'the other cluster linked to Redis' },
      );
      const channel = uniqueName('private-to-one-cluster');
      const outsider = await client(stranger);
      const got = new Inbox('on the other cluster');
      (await subscribe(outsider, channel)).bind('e', (d) => got.push(d));
      const insider = await client(b);
      const gotOnB = new Inbox('on B');
      (await subscribe(insider, channel)).bind('e', (d) => gotOnB.push(d));

      assert.equal((await serverSdk(a).trigger(channel, 'e', { n: 1 })).status, 200);
      assert.deepEqual(await gotOnB.next(), { n: 1 }, 'B got it through Redis');
      // Published through Redis after that one: a hub listening to this cluster would deliver n: 1 first.
      assert.equal((await serverSdk(stranger2).trigger(channel, 'e', { n: 2 })).status, 200);
      assert.deepEqual(await got.next(), { n: 2 }, "the other cluster's own event arrives first");
      assert.deepEqual(got.all, [{ n: 2 }], 'an event of this cluster does not reach the other');

      // Each has read the others' records since the other cluster's hubs wrote theirs.
      await Promise.all([heartbeatSeen(a, b), heartbeatSeen(stranger, stranger2)]);
      const [idB, idStranger2] = await Promise.all([b, stranger2].map(async (h) => (await health(h)).cluster.node));
      assert.deepEqual(await othersOf(a), [idB], 'the other cluster is not listed');
      assert.deepEqual(await othersOf(stranger), [idStranger2], 'this cluster is not listed by the other');
      outsider.disconnect();
      insider.disconnect();
    } finally {
      await stranger.close();
      await stranger2.close();
    }
  });

  test('socket_id exclusion holds across hubs', async () => {
    const channel = uniqueName('excl');
    const sender = await client(a);
    const witness = await client(a);
    const far = await client(b);
    const inboxes = [sender, witness, far].map(() => new Inbox('x'));
    const channels = [];
    for (const [i, c] of [sender, witness, far].entries()) {
      channels.push(await subscribe(c, channel));
      channels[i].bind('e', (d) => inboxes[i].push(d));
    }
    await serverSdk(b).trigger(channel, 'e', { n: 1 }, { socket_id: sender.connection.socket_id });
    assert.deepEqual(await inboxes[1].next(), { n: 1 });
    assert.deepEqual(await inboxes[2].next(), { n: 1 });
    // Published by the same hub after it: had the excluded socket been sent the first, it would have it first.
    await sentinel(serverSdk(b), [channels[0]]);
    assert.equal(inboxes[0].items.length, 0, 'the excluded socket on the other hub got nothing');
  });

  test('a client event sent on one hub reaches the channel members on the other', async () => {
    const channel = `private-${uniqueName('chat')}`;
    const alice = await client(a, 'alice');
    const bob = await client(b, 'bob');
    const chA = await subscribe(alice, channel);
    const chB = await subscribe(bob, channel);
    const heard = new Inbox('whispers on B');
    chB.bind('client-typing', (d) => heard.push(d));
    const echo = new Inbox('echo on A');
    chA.bind('client-typing', (d) => echo.push(d));
    assert.ok(chA.trigger('client-typing', { who: 'alice' }));
    assert.deepEqual(await heard.next(), { who: 'alice' });
    // B has it, so Redis had it: the event coming back to A would arrive before one B publishes now.
    await sentinel(serverSdk(b), [chA]);
    assert.equal(echo.items.length, 0, 'not echoed to the sender');
  });

  test('terminate_connections on one hub closes the user signed in on the other', async () => {
    const carol = await client(a, 'carol');
    const signedIn = new Promise((resolve) => carol.bind('pusher:signin_success', resolve));
    carol.signin();
    await withTimeout(signedIn, 5000, 'pusher:signin_success for carol');
    assert.equal(carol.user?.user_data?.id, 'carol', 'carol signed in');
    const closed = new Promise((resolve) => carol.connection.bind('state_change', ({ current }) => current !== 'connected' && resolve(current)));
    await serverSdk(b).terminateUserConnections('carol');
    assert.ok(['disconnected', 'unavailable', 'failed', 'connecting'].includes(await withTimeout(closed, 5000, 'carol closed')));
  });

  test('channel lists, counts and presence users answer for the whole cluster', async () => {
    const channel = `presence-${uniqueName('room')}`;
    await subscribe(await client(a, 'alice'), channel);
    await subscribe(await client(b, 'alice'), channel);
    await subscribe(await client(b, 'bob'), channel);
    const sdk = serverSdk(a);
    await eventually(async () => {
      const res = await sdk.get({ path: `/channels/${channel}`, params: { info: 'user_count,subscription_count' } });
      const body = await res.json();
      return body.occupied === true && body.subscription_count === 3 && body.user_count === 2;
    }, { timeout: 5000, what: 'A counts 3 subscriptions and 2 users over both hubs' });
    const users = await (await sdk.get({ path: `/channels/${channel}/users` })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['alice', 'bob']);
    const list = await (await serverSdk(b).get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
    assert.deepEqual(list.channels[channel], { user_count: 2 });
  });

  test('presence across hubs: a user on two hubs is one member, and others learn of joins and leaves once', async () => {
    const channel = `presence-${uniqueName('team')}`;
    const aliceA = await client(a, 'alice');
    const onA = await subscribe(aliceA, channel);
    const seenByAlice = new Inbox('member events seen by alice on A');
    onA.bind('pusher:member_added', (m) => seenByAlice.push(`+${m.id}`));
    onA.bind('pusher:member_removed', (m) => seenByAlice.push(`-${m.id}`));
    // Wait until B knows alice (its next heartbeat or her message), then bob joins on B.
    await eventually(async () => (await (await serverSdk(b).get({ path: `/channels/${channel}/users` })).json()).users.length === 1, { what: 'B sees alice' });
    const bob = await client(b, 'bob');
    const onB = await subscribe(bob, channel);
    assert.deepEqual(Object.keys(onB.members.members).sort(), ['alice', 'bob'], 'bob is told of alice on the other hub');
    assert.equal(await seenByAlice.next(), '+bob');
    const seenByBob = new Inbox('member events seen by bob on B');
    onB.bind('pusher:member_added', (m) => seenByBob.push(`+${m.id}`));
    onB.bind('pusher:member_removed', (m) => seenByBob.push(`-${m.id}`));

    // alice opens a second connection, on B: still one member, nobody is told anything.
    const aliceB = await client(b, 'alice');
    const secondTab = await subscribe(aliceB, channel);
    assert.equal(secondTab.members.count, 2);
    // What could tell them: B's message through Redis, each hub's next read of the other's record.
    await clusterSentinel([onA, onB]);
    assert.deepEqual([seenByAlice.items, seenByBob.items], [[], []], 'no member event for a second connection');

    // alice's first connection leaves: she is still there (on B).
    const counted = async (n) =>
      ((await (await serverSdk(a).get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } })).json())
        .subscription_count ?? 0) === n;
    aliceA.disconnect();
    await eventually(() => counted(2), { what: "A to see alice's first connection leave" });
    await clusterSentinel([onB]);
    assert.deepEqual(seenByBob.items, [], 'alice is still a member through her connection on B');
    // Her last connection leaves: bob learns it once.
    aliceB.disconnect();
    assert.equal(await seenByBob.next(3000), '-alice');
    await clusterSentinel([onB]);
    assert.deepEqual(seenByBob.items, []);
  });

  test('a hub killed with SIGKILL leaves the cluster when its key expires; Redis restarted, delivery resumes', async (t) => {
    const third = await startNode();
    await eventually(async () => (await health(a)).cluster.others.length === 2, { timeout: 5000, what: 'A sees the third hub' });
    // A member on the third hub, watched from A.
    const room = `presence-${uniqueName('lost')}`;
    const watcher = await subscribe(await client(a, 'watcher'), room);
    const events = new Inbox('member events on A');
    watcher.bind('pusher:member_added', (m) => events.push(`+${m.id}`));
    watcher.bind('pusher:member_removed', (m) => events.push(`-${m.id}`));
    await subscribe(await client(third, 'dave'), room);
    assert.equal(await events.next(), '+dave');
    third.child.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(async () => (await health(a)).cluster.others.length === 1, { timeout: NODE_TIMEOUT_MS + 3000, what: 'the killed hub leaves' });
    const gone = Date.now() - killedAt;
    t.diagnostic(`the killed hub left A's view ${gone} ms after the kill`);
    assert.ok(gone <= NODE_TIMEOUT_MS + 1500, `gone after ${gone} ms`);
    assert.equal(await events.next(NODE_TIMEOUT_MS + 2000), '-dave', "the killed hub's member is removed");
    await third.close();

    // Redis goes away: both hubs say so, and keep serving their own clients.
    const channel = uniqueName('survives');
    const onA = await client(a);
    const got = new Inbox('on A');
    (await subscribe(onA, channel)).bind('e', (d) => got.push(d.n));
    await redis.stop();
    await eventually(async () => (await health(a)).cluster.link === 'down', { timeout: 8000, what: "A says the link is down" });
    // The app keeps history, which is the cluster's: an event cannot get its position, and is refused clearly
    // (local delivery of what is not kept goes on: cluster-one-hub.test.mjs).
    await assertSdkRejects(serverSdk(a).trigger(channel, 'e', { n: 1 }), 503, 'a kept event while Redis is down');

    redis = await startRedis(redisPort);
    await eventually(async () => (await health(a)).cluster.link === 'up' && (await health(b)).cluster.link === 'up', { timeout: 15_000, what: 'both links back' });
    await eventually(async () => {
      await serverSdk(b).trigger(channel, 'e', { n: 2 });
      return got.items.includes(2) || got.all.includes(2);
    }, { timeout: 10_000, what: 'an event from B reaches A again' });
  });
});
