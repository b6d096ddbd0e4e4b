// pusher-js (the real Node build) and the `pusher` server SDK against the hub: what a Pusher user changes is
// the host and port, nothing else.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHub } from './hub.mjs';
import {
  connectPusher,
  eventually,
  inboxOf,
  serverSdk,
  subscribe,
  uniqueName,
} from './wire.mjs';

describe('pusher-js and the pusher server SDK', () => {
  let hub;
  let sdk;

  before(async () => {
    hub = await startHub();
    sdk = serverSdk(hub);
  });
  after(() => hub?.close());

  /** A connected pusher-js client, disconnected when the test ends. */
  async function client(t) {
    const c = await connectPusher(hub);
    t.after(() => c.disconnect());
    return c;
  }

  test('pusher-js connects and gets a socket id', async (t) => {
    const c = await client(t);
    assert.equal(c.connection.state, 'connected');
    assert.match(c.connection.socket_id, /^\d+\.\d+$/);
    const other = await client(t);
    assert.notEqual(other.connection.socket_id, c.connection.socket_id, 'socket ids are unique per connection');
  });

  test('a trigger on one channel delivers the object payload', async (t) => {
    const c = await client(t);
    const name = uniqueName('orders');
    const channel = await subscribe(c, name);
    const inbox = inboxOf(channel, 'order-created');
    const payload = { id: 42, items: [{ sku: 'A-1', qty: 2 }], note: 'éà "quoted" \\ ü', ok: true, none: null };

    const res = await sdk.trigger(name, 'order-created', payload);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});

    assert.deepEqual(await inbox.next(), payload);
  });

  test('one trigger on several channels reaches each of them', async (t) => {
    const c = await client(t);
    const names = [uniqueName('multi-a'), uniqueName('multi-b'), uniqueName('multi-c')];
    const inboxes = [];
    for (const name of names) inboxes.push(inboxOf(await subscribe(c, name), 'fanned'));

    const res = await sdk.trigger(names, 'fanned', { n: 1 });
    assert.equal(res.status, 200);

    for (const inbox of inboxes) assert.deepEqual(await inbox.next(), { n: 1 });
  });

  test('triggerBatch delivers every event of the batch', async (t) => {
    const c = await client(t);
    const first = uniqueName('batch-1');
    const second = uniqueName('batch-2');
    const inbox1 = inboxOf(await subscribe(c, first), 'batched');
    const inbox2 = inboxOf(await subscribe(c, second), 'batched');

    const res = await sdk.triggerBatch([
      { channel: first, name: 'batched', data: { i: 1 } },
      { channel: second, name: 'batched', data: { i: 2 } },
      { channel: first, name: 'batched', data: { i: 3 } },
    ]);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {});

    assert.deepEqual(await inbox1.take(2), [{ i: 1 }, { i: 3 }]);
    assert.deepEqual(await inbox2.next(), { i: 2 });
  });

  test('socket_id excludes that connection only', async (t) => {
    const excluded = await client(t);
    const included = await client(t);
    const name = uniqueName('exclusion');
    const excludedInbox = inboxOf(await subscribe(excluded, name), 'said');
    const includedInbox = inboxOf(await subscribe(included, name), 'said');

    await sdk.trigger(name, 'said', { n: 1 }, { socket_id: excluded.connection.socket_id });
    await sdk.trigger(name, 'said', { n: 2 });

    assert.deepEqual(await includedInbox.take(2), [{ n: 1 }, { n: 2 }]);
    // Events on one channel arrive in order, so if the first event the excluded client sees is n=2,
    // it never got n=1.
    assert.deepEqual(await excludedInbox.next(), { n: 2 });
    assert.deepEqual(excludedInbox.all, [{ n: 2 }]);
  });

  test('GET /channels lists occupied channels and filters by prefix', async (t) => {
    const c = await client(t);
    const prefix = uniqueName('listed');
    const a = `${prefix}-a`;
    const b = `${prefix}-b`;
    const elsewhere = uniqueName('unlisted');
    await subscribe(c, a);
    await subscribe(c, b);
    await subscribe(c, elsewhere);

    const all = await (await sdk.get({ path: '/channels' })).json();
    assert.equal(typeof all.channels, 'object', `body: ${JSON.stringify(all)}`);
    for (const name of [a, b, elsewhere]) assert.ok(name in all.channels, `${name} listed in ${JSON.stringify(all)}`);

    const filtered = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } })).json();
    assert.deepEqual(Object.keys(filtered.channels).sort(), [a, b]);

    // A channel whose last subscriber left is no longer occupied, so it is no longer listed.
    c.unsubscribe(b);
    await eventually(
      async () => {
        const now = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } })).json();
        return Object.keys(now.channels).length === 1 && a in now.channels;
      },
      { timeout: 3000, what: `${b} to leave the channel list after its only subscriber unsubscribed` },
    );
  });

  test('GET /channels/NAME reports subscription_count', async (t) => {
    const name = uniqueName('counted');
    for (let i = 0; i < 3; i++) await subscribe(await client(t), name);

    const res = await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } });
    assert.equal(res.status, 200);
    const info = await res.json();
    assert.equal(info.occupied, true, JSON.stringify(info));
    assert.equal(info.subscription_count, 3, JSON.stringify(info));

    const empty = await (await sdk.get({ path: `/channels/${uniqueName('nobody')}` })).json();
    assert.equal(empty.occupied, false, JSON.stringify(empty));
  });

  test('trigger with info=subscription_count returns the channels info', async (t) => {
    const name = uniqueName('info');
    await subscribe(await client(t), name);
    await subscribe(await client(t), name);

    const res = await sdk.trigger(name, 'with-info', { x: 1 }, { info: 'subscription_count' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { channels: { [name]: { subscription_count: 2 } } });
  });
});
