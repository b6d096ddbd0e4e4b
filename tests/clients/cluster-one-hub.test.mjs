// The cluster behaves as one hub (docs/operations.md, "Several hubs as one"), with a real redis-server,
// pusher-js and the `pusher` SDK:
// - one order: triggers awaited one after another, alternating between two hubs, arrive in that order on both;
// - recovery on another hub: pusher-js with the recovery add-on, moved to another hub by a load balancer
//   when its hub dies, gets every event published meanwhile from the cluster's history;
// - current answers: right after a subscription succeeds on one hub, the other's channel list, channel info,
//   users and presence member list include it (and an unsubscription the first hub has counted is gone);
// - a hub killed with SIGKILL is cleaned up once: exactly one member_removed and one channel_vacated webhook,
//   also when the survivor that took the clean-up died before it was done;
// - a silent partition between a hub and Redis (a proxy that drops everything, no reset) is reported within
//   a few seconds, local delivery goes on, and the hub comes back by itself.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { randomCredentials } from './hub.mjs';
import { freePort, health, linked, startClusterHub, startRedis } from './redis.mjs';
import { TcpProxy } from './tcp-proxy.mjs';
import { loadRecovery, numbersOf, publishNumbers, pusherThrough, range, subscribed } from './recovering.mjs';
import { Inbox, closeTimersOf, eventually, pusherOptions, sentinel, serverSdk, subscribe, uniqueName, withTimeout } from './wire.mjs';

const NODE_TIMEOUT_MS = 3000;

describe('a cluster that behaves as one hub', () => {
  let redis;
  let backend;
  let a;
  let b;
  const hubs = [];
  const clients = [];
  const releases = [];
  const credentials = randomCredentials();
  const prefix = uniqueName('one');

  /** A hub of this cluster (through `redisPort`, a proxy's port for some), sending webhooks to the backend. */
  async function node(redisPort = redis.port) {
    const hub = await startClusterHub({
      credentials,
      redisPort,
      prefix,
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      app: `[[apps.webhooks]]\nurl = "${backend.webhookUrl}"\n`,
    });
    hubs.push(hub);
    return hub;
  }

  /** A pusher-js client on `hub`, authorized by the backend as `user`. */
  async function client(hub, user = 'anonymous') {
    const auth = { endpoint: `${backend.url}/pusher/auth`, transport: 'ajax', headers: { 'x-user': user } };
    const c = new Pusher(hub.key, { ...pusherOptions(hub), channelAuthorization: auth });
    clients.push(c);
    releases.push(closeTimersOf(c));
    await eventually(() => c.connection.state === 'connected', { what: `pusher-js connected to ${hub.httpUrl}` });
    return c;
  }

  /**
   * A pusher-js client with the recovery add-on, through `proxy` (anything with the `port` to connect to) in
   * front of `hub`, subscribed to `name`: the numbers it gets of the `numbered` events, and what it is told was
   * not recovered.
   */
  async function countingClient(hub, proxy, name) {
    const c = pusherThrough(hub, proxy, { recovery: await loadRecovery(hub) });
    clients.push(c);
    releases.push(c.unrefTimers);
    const channel = c.subscribe(name);
    const { got, gaps } = numbersOf(channel);
    await subscribed(channel);
    return { client: c, channel, got, gaps };
  }

  before(async () => {
    redis = await startRedis(await freePort());
    backend = await startBackend();
    a = await node();
    b = await node();
    backend.attach(a);
    await linked([a, b]);
  });

  after(async () => {
    for (const c of clients) c.disconnect();
    for (const release of releases) release();
    for (const hub of hubs) await hub.close();
    await backend?.close();
    await redis?.stop();
  });

  test('one order: 25 runs of 50 triggers alternating between two hubs, each in order on both', async () => {
    const onA = await client(a);
    const onB = await client(b);
    const sdks = [serverSdk(a), serverSdk(b)];
    for (let run = 0; run < 25; run++) {
      const channel = uniqueName(`order-${run}`);
      const got = [new Inbox(`run ${run} on A`), new Inbox(`run ${run} on B`)];
      const chs = [await subscribe(onA, channel), await subscribe(onB, channel)];
      chs.forEach((ch, i) => ch.bind('step', (d) => got[i].push(d.n)));
      for (let n = 0; n < 50; n++) {
        // Each trigger is answered before the next begins, on the other hub.
        assert.equal((await sdks[n % 2].trigger(channel, 'step', { n })).status, 200);
      }
      await withTimeout(Promise.all(got.map((g) => g.reached(50))), 20_000, `run ${run}: 50 events on each hub`);
      await sentinel(sdks[0], chs);
      for (const g of got) assert.deepEqual(g.all, [...Array(50).keys()], `${g.label}: each once, in trigger order`);
      onA.unsubscribe(channel);
      onB.unsubscribe(channel);
    }
  });

  test('one order: the client events of one connection arrive in order on the other hub', async () => {
    const channel = `private-${uniqueName('typing')}`;
    const sender = await subscribe(await client(a, 'alice'), channel);
    const heard = new Inbox('client events on B');
    (await subscribe(await client(b, 'bob'), channel)).bind('client-key', (d) => heard.push(d.n));
    // Within the default rate of 10 a second: each sent once the previous has arrived, 10 in all.
    for (let n = 0; n < 10; n++) {
      assert.ok(sender.trigger('client-key', { n }));
      assert.equal(await heard.next(), n);
    }
  });

  test('current answers: right after subscribing on A, B lists the channel, counts it and names its users (20 times)', async () => {
    const sdkB = serverSdk(b);
    const sdkA = serverSdk(a);
    for (let i = 0; i < 20; i++) {
      const channel = `presence-${uniqueName(`now-${i}`)}`;
      const user = `user-${i}`;
      const c = await client(a, user);
      await subscribe(c, channel);
      // No waiting: the subscription has succeeded, so every hub counts it.
      const [list, info, users] = await Promise.all([
        sdkB.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }).then((r) => r.json()),
        sdkB.get({ path: `/channels/${channel}`, params: { info: 'user_count,subscription_count' } }).then((r) => r.json()),
        sdkB.get({ path: `/channels/${channel}/users` }).then((r) => r.json()),
      ]);
      assert.deepEqual(list.channels[channel], { user_count: 1 }, `run ${i}: B's channel list`);
      assert.deepEqual(info, { occupied: true, user_count: 1, subscription_count: 1 }, `run ${i}: B's channel info`);
      assert.deepEqual(users, { users: [{ id: user }] }, `run ${i}: B's users`);
      // A member joining on B is told of the member on A at once.
      const other = await subscribe(await client(b, `other-${i}`), channel);
      assert.deepEqual(Object.keys(other.members.members).sort(), [`other-${i}`, user].sort(), `run ${i}: the members B lists`);
      // Once A counts the unsubscription, so does B.
      c.unsubscribe(channel);
      await eventually(
        async () => (await (await sdkA.get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } })).json()).subscription_count === 1,
        { what: `run ${i}: A counts the unsubscription` },
      );
      const after = await (await sdkB.get({ path: `/channels/${channel}`, params: { info: 'user_count,subscription_count' } })).json();
      assert.deepEqual(after, { occupied: true, user_count: 1, subscription_count: 1 }, `run ${i}: B after the unsubscription`);
      c.disconnect();
    }
  });

  test('pusher-js with the recovery add-on recovers on another hub what was published while its hub was dead', async () => {
    const doomed = await node();
    await linked([a, b, doomed]);
    // The load balancer: the client's connections go to the doomed hub, then to B.
    const balancer = await new TcpProxy(doomed.port).listen();
    const channel = uniqueName('failover');
    const { client: c, channel: ch, got, gaps } = await countingClient(doomed, balancer, channel);
    await publishNumbers(serverSdk(a), channel, 1, 30);
    await eventually(() => got.length === 30, { what: '30 events before the hub dies' });

    // The doomed hub dies; until the client is back (on B), 100 events are published through A and B.
    const doomedId = (await health(doomed)).cluster.node;
    balancer.hold();
    balancer.retarget(b.port);
    doomed.child.kill('SIGKILL');
    await eventually(() => c.connection.state !== 'connected', { what: 'the client to notice its hub died' });
    await publishNumbers(serverSdk(b), channel, 31, 80);
    await publishNumbers(serverSdk(a), channel, 81, 130);
    balancer.release();
    await eventually(() => got.length >= 130, { timeout: 20_000, what: '130 events, the last 100 recovered on B' });
    assert.equal(c.connection.state, 'connected');
    assert.equal(balancer.accepted, 2, 'one connection to the dead hub, then one to B');
    await publishNumbers(serverSdk(b), channel, 131, 140);
    await sentinel(serverSdk(a), [ch]);
    assert.deepEqual(got, range(1, 140), 'every event once, in order');
    assert.deepEqual(gaps.items, [], 'nothing reported as not recovered');
    balancer.close();
    // Its clean-up done (its key expired, a survivor looked), so that it does not overlap the next test.
    await eventually(async () => (await redis.cli('GET', `${prefix}:cleaned:${doomedId}`)) !== '', {
      timeout: NODE_TIMEOUT_MS + 10_000,
      what: 'the dead hub cleaned up after',
    });
    await doomed.close();
  });

  test('what cannot be recovered on another hub is said plainly: poussr:not_recovered, then live events', async () => {
    const balancer = await new TcpProxy(a.port).listen();
    const channel = uniqueName('gone');
    const { client: c, channel: ch, got, gaps } = await countingClient(a, balancer, channel);
    await publishNumbers(serverSdk(a), channel, 1, 10);
    await eventually(() => got.length === 10, { what: '10 events on A' });
    // The client is cut off and moved to B; meanwhile the channel's kept events are deleted from Redis.
    balancer.cut();
    balancer.retarget(b.port);
    await eventually(() => c.connection.state !== 'connected', { what: 'the client cut off' });
    await publishNumbers(serverSdk(b), channel, 11, 20);
    assert.equal(await redis.cli('UNLINK', `${prefix}:history:${credentials.appId}:${channel}`), '1');
    balancer.release();
    const why = await gaps.next(20_000);
    assert.equal(why.reason, 'evicted', JSON.stringify(why));
    assert.equal(why.serial, 10, 'the position it had');
    await publishNumbers(serverSdk(a), channel, 21, 25);
    await eventually(() => got.length >= 15, { what: 'the live events after the gap' });
    assert.deepEqual(got, [...range(1, 10), ...range(21, 25)], 'nothing of the gap, then live events in order');
    balancer.close();
  });

  test('a hub killed with SIGKILL is cleaned up once: one member_removed, one channel_vacated', async (t) => {
    const third = await node();
    await linked([a, b, third]);
    const room = `presence-${uniqueName('gone')}`;
    await subscribe(await client(third, 'dave'), room);
    const usersOn = async (hub) => (await (await serverSdk(hub).get({ path: `/channels/${room}/users` })).json()).users;
    assert.deepEqual(await usersOn(a), [{ id: 'dave' }]);
    const thirdId = (await health(third)).cluster.node;
    const cleanedUp = async () => Promise.all([a, b].map(async (h) => (await health(h)).cluster.cleaned_up));
    const before = await cleanedUp();
    third.child.kill('SIGKILL');
    const killedAt = Date.now();

    const webhookEvents = () => backend.webhooks.all.flatMap((w) => w.body?.events ?? []);
    const ofRoom = (name) => webhookEvents().filter((e) => e.channel === room && e.name === name);
    await eventually(() => ofRoom('member_removed').length >= 1 && ofRoom('channel_vacated').length >= 1, {
      timeout: NODE_TIMEOUT_MS + 15_000,
      what: `the member_removed and channel_vacated webhooks of ${room}`,
    });
    t.diagnostic(`the dead hub's webhooks arrived ${Date.now() - killedAt} ms after the kill`);
    // The hub that held the lease marked the dead one done: nobody else will send anything for it.
    const done = `${prefix}:cleaned:${thirdId}`;
    await eventually(async () => (await redis.cli('GET', done)) !== '', { what: `${done} set` });
    const winnerId = await redis.cli('GET', done);
    const [idA, idB] = await Promise.all([a, b].map(async (h) => (await health(h)).cluster.node));
    assert.ok([idA, idB].includes(winnerId), `a survivor cleaned up (${winnerId})`);
    const winner = winnerId === idA ? a : b;
    const counts = (await cleanedUp()).map((n, i) => n - before[i]);
    assert.deepEqual(counts.sort(), [0, 1], 'one hub cleaned up after the dead one');
    // A webhook of the winner sent after those: it sends in order, so they have all arrived by then.
    const marker = uniqueName('marker');
    const markerClient = await client(winner);
    await subscribe(markerClient, marker);
    await eventually(() => webhookEvents().some((e) => e.channel === marker && e.name === 'channel_occupied'), {
      what: `the winner's channel_occupied of ${marker}`,
    });
    assert.deepEqual(ofRoom('member_removed').map((e) => e.user_id), ['dave'], 'one member_removed');
    assert.equal(ofRoom('channel_vacated').length, 1, 'one channel_vacated');
    markerClient.disconnect();
    await third.close();
  });

  test('if the hub that took a dead hub\'s clean-up dies before it is done, another takes over', async () => {
    const fourth = await node();
    await linked([a, b, fourth]);
    const room = `presence-${uniqueName('taken-over')}`;
    await subscribe(await client(fourth, 'erin'), room);
    const fourthId = (await health(fourth)).cluster.node;
    // A survivor that took the lease, then died without cleaning up: its lease outlives the dead hub's key.
    const lease = `${prefix}:cleanup:${fourthId}`;
    assert.equal(await redis.cli('SET', lease, 'a-hub-that-died', 'PX', String(NODE_TIMEOUT_MS + 3000)), 'OK');
    fourth.child.kill('SIGKILL');

    const done = `${prefix}:cleaned:${fourthId}`;
    await eventually(async () => (await redis.cli('GET', done)) !== '', {
      timeout: NODE_TIMEOUT_MS + 15_000,
      what: `${done} set once the lease ran out`,
    });
    const winnerId = await redis.cli('GET', done);
    const [idA, idB] = await Promise.all([a, b].map(async (h) => (await health(h)).cluster.node));
    assert.ok([idA, idB].includes(winnerId), `a live survivor took over (${winnerId})`);
    const winner = winnerId === idA ? a : b;
    const webhookEvents = () => backend.webhooks.all.flatMap((w) => w.body?.events ?? []);
    const marker = uniqueName('marker');
    const markerClient = await client(winner);
    await subscribe(markerClient, marker);
    await eventually(() => webhookEvents().some((e) => e.channel === marker && e.name === 'channel_occupied'), {
      what: `the winner's channel_occupied of ${marker}`,
    });
    const ofRoom = (name) => webhookEvents().filter((e) => e.channel === room && e.name === name);
    assert.deepEqual(ofRoom('member_removed').map((e) => e.user_id), ['erin'], 'one member_removed');
    assert.equal(ofRoom('channel_vacated').length, 1, 'one channel_vacated');
    markerClient.disconnect();
    await fourth.close();
  });

  test('a silent partition between a hub and Redis is reported, local delivery goes on, and it heals', async (t) => {
    const proxy = await new TcpProxy(redis.port).listen();
    const cut = await node(proxy.port);
    try {
      await linked([a, b, cut]);
      const channel = `private-${uniqueName('partition')}`;
      const sender = await subscribe(await client(cut, 'sender'), channel);
      const onCut = new Inbox('on the cut-off hub');
      const onA = new Inbox('on A');
      const chCut = await subscribe(await client(cut, 'local'), channel);
      chCut.bind('e', (d) => onCut.push(`e${d.n}`));
      chCut.bind('client-note', (d) => onCut.push(`note${d.n}`));
      const chA = await subscribe(await client(a, 'far'), channel);
      chA.bind('e', (d) => onA.push(`e${d.n}`));
      chA.bind('client-note', (d) => onA.push(`note${d.n}`));
      // A client with the recovery add-on on the cut-off hub, counting positions on another channel.
      const numbered = uniqueName('numbered');
      const { channel: chNumbered, got, gaps } = await countingClient(cut, { port: cut.port }, numbered);
      await publishNumbers(serverSdk(a), numbered, 1, 5);
      await eventually(() => got.length === 5, { what: '5 numbered events before the partition' });

      proxy.blackhole();
      const cutAt = Date.now();
      await eventually(async () => (await health(cut)).cluster.link === 'down', { timeout: 10_000, what: 'the link reported down' });
      const noticed = Date.now() - cutAt;
      t.diagnostic(`the silent partition was reported after ${noticed} ms`);
      assert.ok(noticed <= 6000, `reported down after ${noticed} ms (the keep-alive notices within 3 s)`);
      const down = await health(cut);
      assert.match(down.cluster.error, /ping|did not answer|in time|timed out|come back|lost/i, down.cluster.error);

      // Local delivery goes on: a client event (not kept) reaches the other client of the same hub.
      assert.ok(sender.trigger('client-note', { n: 1 }));
      assert.equal(await onCut.next(), 'note1', 'delivered on the cut-off hub while its link is down');
      // An event the history keeps cannot get its cluster-wide position: refused, clearly, and delivered nowhere.
      const refused = await serverSdk(cut).trigger(channel, 'e', { n: 0 }).then(
        () => null,
        (e) => e,
      );
      assert.equal(refused?.status, 503, 'a kept event is refused while the link is down');
      assert.match(refused.body, /link to the cluster is down.*delivered nowhere/s, refused.body);
      // Published on A meanwhile: the cut-off hub never hears of them.
      await publishNumbers(serverSdk(a), numbered, 6, 15);

      proxy.restore();
      await eventually(async () => (await health(cut)).cluster.link === 'up', { timeout: 20_000, what: 'the link back up' });
      // What the cut-off hub kept for the others reaches them, and the others' events reach it again.
      assert.equal(await onA.next(10_000), 'note1', 'the client event of the partition reaches A');
      assert.equal((await serverSdk(a).trigger(channel, 'e', { n: 2 })).status, 200);
      assert.equal(await onCut.next(10_000), 'e2', 'delivery from the cluster resumed');
      assert.equal(await onA.next(), 'e2');
      assert.equal((await serverSdk(cut).trigger(channel, 'e', { n: 3 })).status, 200, 'kept events are accepted again');
      await sentinel(serverSdk(a), [chA, chCut]);
      assert.deepEqual([onA.all, onCut.all], [['note1', 'e2', 'e3'], ['note1', 'e2', 'e3']], 'each once, nothing refused delivered');
      // The counting client was asked to reconnect when the link came back, and recovered what it missed.
      await publishNumbers(serverSdk(cut), numbered, 16, 20);
      await eventually(() => got.length >= 20, { timeout: 20_000, what: '20 numbered events, 6..15 recovered' });
      await sentinel(serverSdk(a), [chNumbered]);
      assert.deepEqual(got, range(1, 20), 'every numbered event once, in order');
      assert.deepEqual(gaps.items, [], 'nothing reported as not recovered');
    } finally {
      await cut.close();
      proxy.close();
    }
  });
});
