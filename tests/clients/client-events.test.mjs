// Client events and user sign-in with the real pusher-js (its Node build), the `pusher` server SDK and raw
// WebSockets (docs/protocol.md §2 and §3):
//
// - `client-*` events between pusher-js clients on private and presence channels: relayed to the other members
//   with the same data, never echoed to the sender, and carrying the sender's `user_id` on presence channels;
// - client events the hub must refuse (public channel, encrypted channel, a channel the socket has not joined,
//   `pusher_internal:` events, more than 10 per second, an app with `client_events = false`): each gets its
//   documented answer while a witness pusher-js client keeps receiving a numbered SDK stream, checked complete
//   and in order at the end of every test;
// - a client event of an app that keeps them in its history, when the store cannot write (every file of the
//   hub limited in size, like a full disk): its sender gets `pusher:error`, nobody gets the event, and a
//   publish through the SDK is answered 503 with the reason;
// - user sign-in: `pusher.signin()` through the backend's user-auth endpoint, `sendToUser`, bad signatures,
//   `#server-to-user-` channels of somebody else, and `terminateUserConnections`.
//
// Channel authorization and user authentication go through a real application backend (backend.mjs) that
// signs with the SDK, reached by pusher-js's own `ajax` auth transport (which, in the Node build, is an
// XMLHttpRequest emulation over node:http).

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { startHub } from './hub.mjs';
import {
  Inbox,
  SENTINEL_EVENT,
  assertNextIsSentinel,
  closeTimersOf,
  eventually,
  inboxOf,
  openPusherSocket,
  pusherOptions,
  sentinel,
  sleep,
  startTicker,
  subscribe,
  uniqueName,
  withTimeout,
} from './wire.mjs';

function hmacHex(secret, text) {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** `data` of a frame the hub sent, decoded when it is a JSON string. */
function dataOf(frame) {
  if (typeof frame.data !== 'string') return frame.data;
  try {
    return JSON.parse(frame.data);
  } catch {
    return frame.data;
  }
}

/**
 * A pusher-js client of `user` (the `x-user` header the backend reads), authorizing channels and signing in
 * through `backend`, in state 'connected'. Disconnected when the test ends. Extras for the tests:
 * `errors` (an Inbox of every `pusher:error` data), `messages` (every event the connection received),
 * `problems` (every connection 'error' event) and `states` (every state it went through).
 */
async function connectClient(t, hub, backend, user = 'anonymous') {
  const auth = (path) => ({ endpoint: `${backend.url}${path}`, transport: 'ajax', headers: { 'x-user': user } });
  const client = new Pusher(hub.key, {
    ...pusherOptions(hub),
    channelAuthorization: auth('/pusher/auth'),
    userAuthentication: auth('/pusher/user-auth'),
  });
  const releaseCloseTimers = closeTimersOf(client);
  t.after(() => {
    client.disconnect();
    releaseCloseTimers();
  });
  client.user_name = user;
  client.states = [];
  client.problems = [];
  client.messages = [];
  client.errors = new Inbox(`pusher:error of ${user}`);
  client.connection.bind('state_change', ({ current }) => client.states.push(current));
  client.connection.bind('error', (err) => client.problems.push(err));
  client.connection.bind('message', (event) => client.messages.push(event));
  client.bind('pusher:error', (data) => client.errors.push(data));
  await withTimeout(
    new Promise((resolve, reject) => {
      if (client.connection.state === 'connected') resolve();
      client.connection.bind('connected', resolve);
      client.connection.bind('failed', () => reject(new Error('pusher-js says the connection failed')));
    }),
    10_000,
    `pusher-js (${user}) to connect (states: ${client.states.join(' -> ')})`,
  );
  return client;
}

/** The events named `name` a client received on its connection, in order (whatever channel they came on). */
function received(client, name) {
  return client.messages.filter((m) => m.event === name);
}

/** Every close code pusher-js reported through its connection 'error' events. */
function reportedCodes(client) {
  return client.problems.map((p) => p?.data?.code ?? p?.error?.data?.code).filter((c) => c !== undefined);
}

/** Waits for the next `pusher:error` of a pusher-js client; asserts it is non-fatal and its message says `why`. */
async function nextSoftError(client, why, what) {
  const error = await client.errors.next(3000).catch((err) => {
    throw new Error(`${what}: no pusher:error (${err.message}); messages: ${JSON.stringify(client.messages)}`);
  });
  assert.equal(typeof error, 'object', `${what}: pusher:error data is an object: ${JSON.stringify(error)}`);
  assert.equal(error.code ?? null, null, `${what}: a non-fatal error has no code: ${JSON.stringify(error)}`);
  assert.equal(typeof error.message, 'string', `${what}: pusher:error message: ${JSON.stringify(error)}`);
  assert.match(error.message, why, `${what}: the message says why: ${JSON.stringify(error)}`);
  return error;
}

/** Asserts a raw `pusher:error` frame with `code` (undefined: any) and data an object with a message. */
function assertPusherErrorFrame(frame, code, what) {
  assert.equal(frame.event, 'pusher:error', `${what}: ${JSON.stringify(frame)}`);
  assert.equal(typeof frame.data, 'object', `${what}: data is an object: ${JSON.stringify(frame)}`);
  assert.notEqual(frame.data, null, `${what}: data present: ${JSON.stringify(frame)}`);
  assert.equal(typeof frame.data.message, 'string', `${what}: data.message: ${JSON.stringify(frame)}`);
  if (code !== undefined) assert.equal(frame.data.code, code, `${what}: data.code: ${JSON.stringify(frame)}`);
}

/** A raw protocol-7 socket (RawSocket with `socketId`), closed when the test ends. */
async function rawSocket(t, hub) {
  const socket = await openPusherSocket(hub);
  t.after(() => socket.close());
  return socket;
}

/** Subscribes a raw socket to a private channel with an auth computed here, and waits for the success. */
async function rawSubscribePrivate(socket, hub, channel) {
  const auth = `${hub.key}:${hmacHex(hub.secret, `${socket.socketId}:${channel}`)}`;
  socket.send({ event: 'pusher:subscribe', data: { channel, auth } });
  const frame = await socket.next();
  assert.equal(frame.event, 'pusher_internal:subscription_succeeded', `subscribe ${channel}: ${JSON.stringify(frame)}`);
  assert.equal(frame.channel, channel);
}

/** The `pusher:signin` frame of `userData` for a raw socket, signed with `secret` (the app's unless told). */
function signinFrame(hub, socketId, userData, { secret = hub.secret, signedUserData } = {}) {
  const user_data = JSON.stringify(userData);
  const signed = signedUserData === undefined ? user_data : JSON.stringify(signedUserData);
  const auth = `${hub.key}:${hmacHex(secret, `${socketId}::user::${signed}`)}`;
  return { event: 'pusher:signin', data: { auth, user_data } };
}

/** Signs a pusher-js client in and waits until its `#server-to-user-` channel is joined. */
async function signIn(client) {
  const outcome = new Promise((resolve, reject) => {
    client.bind('pusher:signin_success', resolve);
    client.user.bind('pusher:signin_error', (err) => reject(new Error(`signin error: ${JSON.stringify(err)}`)));
  });
  client.signin();
  const success = await withTimeout(outcome, 5000, `pusher:signin_success for ${client.user_name}`).catch((err) => {
    err.message += `; errors: ${JSON.stringify(client.errors.all)}; messages: ${JSON.stringify(client.messages)}`;
    throw err;
  });
  await eventually(() => client.user.serverToUserChannel?.subscribed, {
    timeout: 5000,
    what: `${client.user_name}'s #server-to-user- channel to be joined (messages: ${JSON.stringify(client.messages)})`,
  });
  return success;
}

/**
 * A pusher-js client on `hub` that receives `{n: 0}`, `{n: 1}`, ... triggered one after the other through the
 * SDK for as long as the test runs, each once the one before has arrived. `check()` stops the stream and asserts that every event arrived once, in
 * order, and that the witness never lost its connection.
 */
async function startWitness(t, hub, backend) {
  const client = await connectClient(t, hub, backend, 'witness');
  const socketId = client.connection.socket_id;
  const name = uniqueName('witness');
  const channel = await subscribe(client, name);
  const ticks = inboxOf(channel, 'tick');
  const stream = startTicker(backend.sdk, name, ticks, { maxErrors: 5 });
  t.after(() => stream.stop());
  await eventually(() => ticks.all.length >= 3, { timeout: 5000, what: 'the witness stream to flow' });
  return {
    async check() {
      await stream.finish(channel);
      assert.equal(client.connection.state, 'connected', 'the witness is still connected');
      assert.equal(client.connection.socket_id, socketId, 'the witness never reconnected');
    },
  };
}

// -------------------------------------------------------------------------------------------------------------

describe('client events between pusher-js clients', () => {
  let hub;
  let backend;

  before(async () => {
    hub = await startHub();
    backend = await startBackend({ hub });
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('on a private channel: relayed to the other members with the same data, not echoed', async (t) => {
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const carol = await connectClient(t, hub, backend, 'carol');
    const name = uniqueName('private-chat');
    const aliceChannel = await subscribe(alice, name);
    const inboxes = [];
    const receivers = [];
    for (const client of [bob, carol]) {
      const channel = await subscribe(client, name);
      const inbox = new Inbox(`client-typing of ${client.user_name}`);
      channel.bind('client-typing', (data) => inbox.push(data));
      inboxes.push(inbox);
      receivers.push(channel);
    }
    const echoed = [];
    aliceChannel.bind('client-typing', (data) => echoed.push(data));

    const payload = { typing: true, who: 'alice', text: 'éà "quoted" \\ ü 🎉', nested: { list: [1, 2.5, null] } };
    assert.equal(aliceChannel.trigger('client-typing', payload), true, 'pusher-js sent the client event');
    for (const inbox of inboxes) assert.deepEqual(await inbox.next(), payload, `${inbox.label}: same object`);

    // Several events from one sender arrive in the order they were sent.
    for (let n = 0; n < 5; n++) aliceChannel.trigger('client-typing', { n });
    for (const inbox of inboxes) {
      assert.deepEqual(await inbox.take(5), [0, 1, 2, 3, 4].map((n) => ({ n })), `${inbox.label}: in order`);
    }

    // The hub has relayed all six (bob and carol got them): an echo or a duplicate would be queued before this.
    await sentinel(backend.sdk, [aliceChannel, ...receivers]);
    assert.deepEqual(echoed, [], 'the sender did not get its own client event back');
    assert.deepEqual(received(alice, 'client-typing'), [], 'nothing named client-typing reached the sender');
    assert.deepEqual(alice.errors.all, [], 'no pusher:error for valid client events');
    for (const inbox of inboxes) assert.equal(inbox.all.length, 6, `${inbox.label}: each event once`);
  });

  test('on a presence channel: the receiver gets the sender user_id as metadata', async (t) => {
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('presence-room');
    const aliceChannel = await subscribe(alice, name);
    const bobChannel = await subscribe(bob, name);
    await eventually(() => aliceChannel.members.count === 2, { what: 'alice to see bob in the room' });

    const atBob = new Inbox('client-wave at bob');
    bobChannel.bind('client-wave', (data, metadata) => atBob.push({ data, metadata }));
    const atAlice = new Inbox('client-wave at alice');
    aliceChannel.bind('client-wave', (data, metadata) => atAlice.push({ data, metadata }));

    aliceChannel.trigger('client-wave', { hello: 'bob' });
    const fromAlice = await atBob.next();
    assert.deepEqual(fromAlice.data, { hello: 'bob' });
    assert.equal(fromAlice.metadata?.user_id, 'alice', `metadata at bob: ${JSON.stringify(fromAlice.metadata)}`);

    bobChannel.trigger('client-wave', { hello: 'alice' });
    const fromBob = await atAlice.next();
    assert.deepEqual(fromBob.data, { hello: 'alice' });
    assert.equal(fromBob.metadata?.user_id, 'bob', `metadata at alice: ${JSON.stringify(fromBob.metadata)}`);

    await sentinel(backend.sdk, [aliceChannel, bobChannel]);
    assert.equal(atAlice.all.length, 1, `alice got only bob's wave, not her own echo: ${JSON.stringify(atAlice.all)}`);
    assert.equal(atBob.all.length, 1, `bob got only alice's wave, not his own echo: ${JSON.stringify(atBob.all)}`);
  });
});

// -------------------------------------------------------------------------------------------------------------

describe('client events the hub refuses, while a witness keeps receiving', () => {
  let hub;
  let backend;

  before(async () => {
    hub = await startHub();
    backend = await startBackend({ hub, encryptionMasterKeyBase64: randomBytes(32).toString('base64') });
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('on a public channel: pusher:error, not relayed, and the socket stays usable', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const socketId = alice.connection.socket_id;
    const lobby = uniqueName('lobby');
    const aliceLobby = await subscribe(alice, lobby);
    const bobLobby = await subscribe(bob, lobby);
    const chat = uniqueName('private-after');
    const aliceChat = await subscribe(alice, chat);
    const bobChat = await subscribe(bob, chat);
    const chatAtBob = new Inbox('client-ok at bob');
    bobChat.bind('client-ok', (data) => chatAtBob.push(data));

    aliceLobby.trigger('client-shout', { loud: true });
    await nextSoftError(alice, /public|private|presence/i, 'client event on a public channel');

    // Still the same, usable connection: server events and valid client events still flow.
    const afterAtAlice = new Inbox('after at alice');
    aliceLobby.bind('after', (data) => afterAtAlice.push(data));
    const afterAtBob = new Inbox('after at bob');
    bobLobby.bind('after', (data) => afterAtBob.push(data));
    const res = await backend.sdk.trigger(lobby, 'after', { still: 'here' });
    assert.equal(res.status, 200);
    assert.deepEqual(await afterAtAlice.next(), { still: 'here' });
    assert.deepEqual(await afterAtBob.next(), { still: 'here' });
    aliceChat.trigger('client-ok', { fine: true });
    assert.deepEqual(await chatAtBob.next(), { fine: true }, 'a valid client event after the refused one');

    // alice had her pusher:error, so the hub was done with the refused event: had it relayed it, bob would have
    // had it before this.
    await sentinel(backend.sdk, [aliceLobby, bobLobby, aliceChat, bobChat]);
    assert.deepEqual(received(bob, 'client-shout'), [], 'the refused event was not relayed');
    assert.equal(alice.connection.state, 'connected', `alice states: ${alice.states.join(' -> ')}`);
    assert.equal(alice.connection.socket_id, socketId, 'alice kept her connection');
    assert.ok(
      !alice.states.some((s) => ['disconnected', 'unavailable', 'failed'].includes(s)) &&
        alice.states.filter((s) => s === 'connected').length === 1,
      `alice was never disconnected (states: ${alice.states.join(' -> ')})`,
    );
    assert.equal(alice.errors.all.length, 1, `exactly one pusher:error: ${JSON.stringify(alice.errors.all)}`);
    await witness.check();
  });

  test('on a private-encrypted- channel: pusher:error and not relayed', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('private-encrypted-vault');
    await subscribe(alice, name);
    const bobChannel = await subscribe(bob, name);

    // pusher-js refuses `trigger` on encrypted channels itself, so the frame is sent below its channel API.
    alice.send_event('client-secret', { nonce: 'AAAA', ciphertext: 'BBBB' }, name);
    await nextSoftError(alice, /encrypt/i, 'client event on an encrypted channel');

    // The hub was done with the refused event (alice had her error): a relay would reach bob before this.
    await sentinel(backend.sdk, [bobChannel]);
    assert.deepEqual(received(bob, 'client-secret'), [], 'the refused event was not relayed');
    assert.equal(alice.connection.state, 'connected', 'no close for a refused client event');
    await witness.check();
  });

  test('on a private channel the socket has not joined: pusher:error and not relayed', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const mallory = await connectClient(t, hub, backend, 'mallory');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('private-members-only');
    const bobChannel = await subscribe(bob, name);

    mallory.send_event('client-sneak', { from: 'outside' }, name);
    await nextSoftError(mallory, /subscri|join|member/i, 'client event on a channel the socket has not joined');

    await sentinel(backend.sdk, [bobChannel]);
    assert.deepEqual(received(bob, 'client-sneak'), [], 'the refused event was not relayed');
    assert.equal(mallory.connection.state, 'connected', 'no close for a refused client event');
    await witness.check();
  });

  test('pusher_internal:member_added sent by a client: pusher:error and no member added', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('presence-guarded');
    await subscribe(alice, name);
    const bobChannel = await subscribe(bob, name);
    assert.equal(bobChannel.members.count, 2, 'bob sees alice and himself');
    const added = [];
    bobChannel.bind('pusher:member_added', (member) => added.push(member));

    alice.send_event('pusher_internal:member_added', { user_id: 'mallory', user_info: { name: 'mallory' } }, name);
    await nextSoftError(alice, /pusher_internal|internal|reserved/i, 'pusher_internal: from a client');

    await sentinel(backend.sdk, [bobChannel]);
    assert.deepEqual(added, [], 'bob saw no member added');
    assert.equal(bobChannel.members.count, 2, 'bob still sees two members');
    assert.equal(bobChannel.members.get('mallory'), null, 'nobody called mallory joined');
    assert.deepEqual(received(bob, 'pusher_internal:member_added'), [], 'the forged frame was not relayed');
    assert.equal(alice.connection.state, 'connected', 'no close for a refused event');
    await witness.check();
  });

  test('more than 10 client events within a second: pusher:error 4301, then close 4301', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('private-flood');
    const bobChannel = await subscribe(bob, name);
    let relayed = 0;
    bobChannel.bind('client-flood', () => {
      relayed += 1;
    });
    const socket = await rawSocket(t, hub);
    await rawSubscribePrivate(socket, hub, name);
    const seenBefore = socket.frames.all.length;

    for (let n = 0; n < 11; n++) socket.send({ event: 'client-flood', channel: name, data: { n } });

    const error = await socket.nextMatching((f) => f.event === 'pusher:error', 3000).catch((err) => {
      throw new Error(`no pusher:error after 11 client events (${err.message}); frames: ${JSON.stringify(socket.frames.all)}`);
    });
    assertPusherErrorFrame(error, 4301, 'over the client event rate');
    assert.match(error.data.message, /rate|limit|too many|more than|second|slow down/i, `the message says why: ${JSON.stringify(error)}`);
    const closed = await socket.waitClosed(3000);
    assert.equal(closed.code, 4301, `close code: ${JSON.stringify(closed)}; frames: ${JSON.stringify(socket.frames.all)}`);
    assert.deepEqual(
      socket.frames.all.slice(seenBefore).map((f) => f.event),
      ['pusher:error'],
      'no echo of the client events, only the error',
    );
    assert.ok(relayed <= 10, `at most 10 of the events were relayed (${relayed})`);
    assert.equal(bob.connection.state, 'connected', 'the other member is not affected');
    await witness.check();
  });

  test('10 client events per second, in bursts or spread out, are all relayed and the socket stays open', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('private-steady');
    const bobChannel = await subscribe(bob, name);
    const atBob = new Inbox('client-beat at bob');
    bobChannel.bind('client-beat', (data) => atBob.push(data));
    const socket = await rawSocket(t, hub);
    await rawSubscribePrivate(socket, hub, name);
    const seenBefore = socket.frames.all.length;

    let n = 0;
    const send = () => {
      socket.send({ event: 'client-beat', channel: name, data: { n } });
      n += 1;
    };
    // Two bursts of 10, more than a second apart, then 10 more at one every 110 ms: never over 10 in a second.
    // Time must pass here: the limit is per one-second window, and these waits keep each window at 10 or fewer.
    for (let i = 0; i < 10; i++) send();
    await sleep(1200);
    for (let i = 0; i < 10; i++) send();
    await sleep(1200);
    for (let i = 0; i < 10; i++) {
      send();
      await sleep(110);
    }

    const got = await atBob.take(30, 5000).catch((err) => {
      throw new Error(`${err.message}; bob got ${JSON.stringify(atBob.all)}; sender frames: ${JSON.stringify(socket.frames.all)}`);
    });
    assert.deepEqual(got.map((d) => d.n), Array.from({ length: 30 }, (_, i) => i), 'all 30, in order');
    // The hub has handled all 30 (bob got them): an error, a close or an echo for the sender would come before a
    // server event queued now, and a 31st event at bob would too.
    await sentinel(backend.sdk, [bobChannel]);
    const next = await socket.next();
    assert.equal(next.event, SENTINEL_EVENT, `the sender's next frame is the sentinel: ${JSON.stringify(next)}`);
    assert.ok(socket.isOpen, 'the sender was not closed');
    assert.deepEqual(
      socket.frames.all.slice(seenBefore).map((f) => f.event),
      [SENTINEL_EVENT],
      'the sender got no error and no echo',
    );
    assert.equal(atBob.all.length, 30, 'bob got each client event once');
    socket.send({ event: 'pusher:ping', data: {} });
    assert.equal((await socket.next()).event, 'pusher:pong', 'the sender is still served');
    await witness.check();
  });
});

// -------------------------------------------------------------------------------------------------------------

describe('an app with client_events = false', () => {
  let hub;
  let backend;

  before(async () => {
    hub = await startHub({ app: 'client_events = false' });
    backend = await startBackend({ hub });
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('a client event gets pusher:error and is not relayed; server events still flow', async (t) => {
    const witness = await startWitness(t, hub, backend);
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('private-quiet');
    const aliceChannel = await subscribe(alice, name);
    const bobChannel = await subscribe(bob, name);

    aliceChannel.trigger('client-typing', { typing: true });
    await nextSoftError(alice, /turned off|switched off|disabled|not enabled/i, 'client events turned off');

    const notes = new Inbox('server-note at bob');
    bobChannel.bind('server-note', (data) => notes.push(data));
    const res = await backend.sdk.trigger(name, 'server-note', { from: 'server' });
    assert.equal(res.status, 200);
    assert.deepEqual(await notes.next(), { from: 'server' }, 'server events still reach the channel');

    // Triggered after alice had her error: a relayed client-typing would have reached bob before server-note.
    await sentinel(backend.sdk, [bobChannel]);
    assert.deepEqual(received(bob, 'client-typing'), [], 'the client event was not relayed');
    assert.equal(alice.connection.state, 'connected', 'no close for a refused client event');
    await witness.check();
  });
});

// -------------------------------------------------------------------------------------------------------------

describe('a kept client event when the history store cannot write', () => {
  let hub;
  let backend;

  before(async () => {
    // No file of the hub may grow past 192 KiB: the store's write-ahead log soon cannot, like a full disk.
    hub = await startHub({ app: '[apps.history]\nclient_events = true', fileSizeLimit: 192 * 1024 });
    backend = await startBackend({ hub });
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('its sender gets pusher:error, nobody gets it, and a publish is answered 503 with the reason', async (t) => {
    const alice = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const name = uniqueName('presence-kept');
    const aliceChannel = await subscribe(alice, name);
    const bobChannel = await subscribe(bob, name);
    await eventually(() => bobChannel.members.count === 2, { what: 'bob to see alice in the room' });
    const atBob = new Inbox('client-note at bob');
    bobChannel.bind('client-note', (data) => atBob.push(data));
    aliceChannel.trigger('client-note', { n: 0 });
    assert.deepEqual(await atBob.next(), { n: 0 }, 'while the store writes, a kept client event is relayed');

    // 10 KB events on another channel until the store cannot take more (bounded: 192 KiB is about 19 of them).
    const filler = uniqueName('filler');
    const big = 'x'.repeat(10_000);
    let refused = null;
    for (let i = 0; i < 200 && refused === null; i++) {
      refused = await backend.sdk.trigger(filler, 'filler', { i, big }).then(
        () => null,
        (err) => err,
      );
    }
    assert.notEqual(refused, null, 'a publish was refused once the store could not write');
    assert.equal(refused.status, 503, `status of the refused publish (${refused.message}; body: ${refused.body})`);
    assert.match(JSON.parse(refused.body).error, /could not be kept/, 'the answer says why');
    // A commit writes whole pages: a small event may still fit where a big one did not. Small events on the
    // room itself until one is refused too: a client event there needs the same pages.
    let small = null;
    for (let i = 0; i < 200 && small === null; i++) {
      small = await backend.sdk.trigger(name, 'small', { i }).then(
        () => null,
        (err) => err,
      );
    }
    assert.equal(small?.status, 503, `a small event on the room is refused too (${small?.body})`);

    aliceChannel.trigger('client-note', { n: 1 });
    const error = await nextSoftError(alice, /client-note was not relayed/, 'a client event the store refused');
    assert.doesNotMatch(error.message, /history\.sqlite|\//, 'no path of the hub\'s machine goes to a client');
    // Carol joins after alice had her error: bob sees her after the refused event, had it been relayed.
    const carol = await connectClient(t, hub, backend, 'carol');
    await subscribe(carol, name);
    await eventually(() => bobChannel.members.count === 3, { what: 'bob to see carol join' });
    assert.deepEqual(atBob.all, [{ n: 0 }], 'the refused client event reached nobody');
    assert.equal(alice.connection.state, 'connected', 'no close for a refused client event');
    const health = await (await fetch(`${hub.httpUrl}/health`)).json();
    assert.ok(health.history.write_errors >= 2, `write errors counted: ${JSON.stringify(health.history)}`);
  });
});

// -------------------------------------------------------------------------------------------------------------

describe('user sign-in', () => {
  let hub;
  let backend;

  before(async () => {
    hub = await startHub();
    backend = await startBackend({ hub });
  });
  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('pusher.signin() through the user-auth endpoint gets pusher:signin_success', async (t) => {
    const alice = await connectClient(t, hub, backend, 'alice');
    const success = await signIn(alice);
    assert.equal(typeof success.user_data, 'string', `signin_success data: ${JSON.stringify(success)}`);
    assert.deepEqual(JSON.parse(success.user_data), { id: 'alice', name: 'alice' });
    assert.equal(alice.user.user_data?.id, 'alice', 'pusher-js knows who it is');
    assert.ok(
      backend.authRequests.some((r) => r.path === '/pusher/user-auth' && r.user === 'alice' && r.socket_id === alice.connection.socket_id),
      'pusher-js asked the backend to sign alice in',
    );
    assert.deepEqual(alice.errors.all, []);
  });

  test('sendToUser reaches every connection of alice and not bob', async (t) => {
    const alice1 = await connectClient(t, hub, backend, 'alice');
    const alice2 = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    const inboxes = new Map();
    for (const client of [alice1, alice2, bob]) {
      await signIn(client);
      const inbox = new Inbox(`notice at ${client.user_name} ${client.connection.socket_id}`);
      client.user.bind('notice', (data) => inbox.push(data));
      inboxes.set(client, inbox);
    }

    const res = await backend.sdk.sendToUser('alice', 'notice', { text: 'for alice only', n: 1 });
    assert.equal(res.status, 200);
    assert.deepEqual(await inboxes.get(alice1).next(), { text: 'for alice only', n: 1 });
    assert.deepEqual(await inboxes.get(alice2).next(), { text: 'for alice only', n: 1 });

    const toBob = await backend.sdk.sendToUser('bob', 'notice', { text: 'for bob', n: 2 });
    assert.equal(toBob.status, 200);
    assert.deepEqual(await inboxes.get(bob).next(), { text: 'for bob', n: 2 }, "bob's own notice");

    // A last notice to alice, sent after bob's: had bob's reached her tabs, it would come before this one.
    const last = await backend.sdk.sendToUser('alice', 'notice', { text: 'last', n: 3 });
    assert.equal(last.status, 200);
    assert.deepEqual(await inboxes.get(alice1).next(), { text: 'last', n: 3 }, "alice's next notice is the last");
    assert.deepEqual(await inboxes.get(alice2).next(), { text: 'last', n: 3 }, "alice's second tab: the last");
    assert.deepEqual(inboxes.get(bob).all, [{ text: 'for bob', n: 2 }], "bob never got alice's notice");
    assert.equal(inboxes.get(alice1).all.length, 2, "alice never got bob's notice");
    assert.equal(inboxes.get(alice2).all.length, 2, "alice's second tab never got bob's notice");
  });

  test('a pusher:signin with a bad signature gets pusher:error 4009 and close 4009', async (t) => {
    const cases = [
      ['signed with another secret', (socket) => signinFrame(hub, socket.socketId, { id: 'alice' }, { secret: randomBytes(16).toString('hex') })],
      ['user_data changed after signing', (socket) => signinFrame(hub, socket.socketId, { id: 'alice' }, { signedUserData: { id: 'bob' } })],
      ['signed for another socket', (socket) => signinFrame(hub, '1234.5678', { id: 'alice' })],
    ];
    for (const [what, frame] of cases) {
      const socket = await rawSocket(t, hub);
      socket.send(frame(socket));
      const error = await socket.next(3000).catch((err) => {
        throw new Error(`${what}: no frame (${err.message})`);
      });
      assertPusherErrorFrame(error, 4009, what);
      assert.match(error.data.message, /sign|auth|invalid|unauthori/i, `${what}: the message says why: ${JSON.stringify(error)}`);
      const closed = await socket.waitClosed(3000);
      assert.equal(closed.code, 4009, `${what}: close code ${JSON.stringify(closed)}; frames: ${JSON.stringify(socket.frames.all)}`);
    }
  });

  test("subscribing to #server-to-user-alice without being alice gets subscription_error 403", async (t) => {
    const alice = await connectClient(t, hub, backend, 'alice');
    await signIn(alice);
    const notices = new Inbox('notice at alice');
    alice.user.bind('notice', (data) => notices.push(data));

    const anonymous = await rawSocket(t, hub);
    const bob = await rawSocket(t, hub);
    bob.send(signinFrame(hub, bob.socketId, { id: 'bob' }));
    const signedIn = await bob.next(3000);
    assert.equal(signedIn.event, 'pusher:signin_success', `raw signin as bob: ${JSON.stringify(signedIn)}`);
    assert.equal(JSON.parse(dataOf(signedIn).user_data).id, 'bob');

    for (const [what, socket] of [['a socket that never signed in', anonymous], ['a socket signed in as bob', bob]]) {
      socket.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-alice' } });
      const frame = await socket.next(3000);
      assert.equal(frame.event, 'pusher:subscription_error', `${what}: ${JSON.stringify(frame)}`);
      assert.equal(frame.channel, '#server-to-user-alice', `${what}: ${JSON.stringify(frame)}`);
      assert.equal(dataOf(frame)?.status, 403, `${what}: status: ${JSON.stringify(frame)}`);
      assert.ok(socket.isOpen, `${what}: a refused subscription does not close the socket`);
    }
    // Both join a public channel, for the sentinel below.
    const after = uniqueName('after');
    for (const socket of [anonymous, bob]) {
      socket.send({ event: 'pusher:subscribe', data: { channel: after } });
      const frame = await socket.next(3000);
      assert.equal(frame.event, 'pusher_internal:subscription_succeeded', `subscribe ${after}: ${JSON.stringify(frame)}`);
    }

    // Neither of them gets what is sent to alice; alice does.
    const res = await backend.sdk.sendToUser('alice', 'notice', { secret: 'for alice' });
    assert.equal(res.status, 200);
    assert.deepEqual(await notices.next(), { secret: 'for alice' });
    // An event sent after alice's notice: had they been given her notice, it would come before this.
    const others = [['never signed in', anonymous], ['bob', bob]];
    await assertNextIsSentinel(backend.sdk, after, others);
    for (const [what, socket] of others) {
      assert.deepEqual(socket.frames.items, [], `${what} got nothing of alice's: ${JSON.stringify(socket.frames.items)}`);
    }
  });

  test('terminateUserConnections closes every connection of alice and leaves bob connected', async (t) => {
    const alice1 = await connectClient(t, hub, backend, 'alice');
    const alice2 = await connectClient(t, hub, backend, 'alice');
    const bob = await connectClient(t, hub, backend, 'bob');
    for (const client of [alice1, alice2, bob]) await signIn(client);
    const bobSocketId = bob.connection.socket_id;
    const bobNotices = new Inbox('notice at bob');
    bob.user.bind('notice', (data) => bobNotices.push(data));
    // A raw socket signed in as alice, to see the exact frames and close code.
    const raw = await rawSocket(t, hub);
    raw.send(signinFrame(hub, raw.socketId, { id: 'alice' }));
    const signedIn = await raw.next(3000);
    assert.equal(signedIn.event, 'pusher:signin_success', `raw signin as alice: ${JSON.stringify(signedIn)}`);

    assert.equal(typeof backend.sdk.terminateUserConnections, 'function', 'the SDK has terminateUserConnections');
    const res = await backend.sdk.terminateUserConnections('alice');
    assert.equal(res.status, 200);

    const closed = await raw.waitClosed(3000).catch((err) => {
      throw new Error(`${err.message}; raw alice frames: ${JSON.stringify(raw.frames.all)}`);
    });
    assert.equal(closed.code, 4009, `raw alice close: ${JSON.stringify(closed)}; frames: ${JSON.stringify(raw.frames.all)}`);
    const errorFrame = raw.frames.all.find((f) => f.event === 'pusher:error');
    assert.ok(errorFrame, `pusher:error before the close: ${JSON.stringify(raw.frames.all)}`);
    assertPusherErrorFrame(errorFrame, 4009, 'terminated');

    for (const [what, client] of [['alice tab 1', alice1], ['alice tab 2', alice2]]) {
      await eventually(() => ['disconnected', 'failed'].includes(client.connection.state), {
        timeout: 3000,
        what: `${what} to be disconnected (states: ${client.states.join(' -> ')})`,
      });
      assert.ok(reportedCodes(client).includes(4009), `${what}: pusher-js saw 4009 (${JSON.stringify(client.problems)})`);
    }
    // 4009 is in the "do not reconnect" range: pusher-js stays down. pusher-js 8 comes back only through a retry
    // it has scheduled (its connection manager's retryTimer, set by retryIn) or an attempt under way (its
    // runner): with neither left, no reconnect can ever come, and no time needs to pass to show it.
    for (const [what, client] of [['alice tab 1', alice1], ['alice tab 2', alice2]]) {
      const manager = client.connection;
      assert.equal(typeof manager.retryIn, 'function', 'pusher-js schedules its reconnects with retryIn');
      assert.equal(manager.retryTimer ?? null, null, `${what}: no reconnect is scheduled`);
      assert.equal(manager.runner ?? null, null, `${what}: no connection attempt is under way`);
      assert.ok(['disconnected', 'failed'].includes(client.connection.state), `${what} did not come back: ${client.states.join(' -> ')}`);
      assert.equal(client.states.filter((s) => s === 'connected').length, 1, `${what} never reconnected: ${client.states.join(' -> ')}`);
    }

    assert.equal(bob.connection.state, 'connected', `bob states: ${bob.states.join(' -> ')}`);
    assert.equal(bob.connection.socket_id, bobSocketId, 'bob kept his connection');
    assert.deepEqual(reportedCodes(bob), [], 'bob saw no error');
    const toBob = await backend.sdk.sendToUser('bob', 'notice', { still: 'signed in' });
    assert.equal(toBob.status, 200);
    assert.deepEqual(await bobNotices.next(), { still: 'signed in' }, 'bob is still signed in and served');
  });
});
