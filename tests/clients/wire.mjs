// Small helpers shared by the client tests: waiting for things with a deadline, a raw WebSocket that queues
// the frames it receives, pusher-js and SDK clients pointed at a test hub, and a Pusher request signer
// written from docs/protocol.md §3 (so tests can send requests the SDK would refuse to build).

import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import { WebSocket } from 'ws';

export { sleep };

/** Rejects after `ms` with a message saying what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Polls `check` (sync or async) until it returns a truthy value; returns that value. `what` names what is
 * awaited in the timeout error; a function is called then, so the message can say how things stand.
 */
export async function eventually(check, { timeout = 5000, interval = 50, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) {
      const label = typeof what === 'function' ? what() : what;
      throw new Error(`timed out after ${timeout} ms waiting for ${label} (last: ${JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

/** A unique name per call, so tests never see each other's channels. */
let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/**
 * An ordered queue of received items. `next()` takes the oldest item, waiting for one if needed, so a test
 * can assert exactly what arrived and in which order.
 */
export class Inbox {
  constructor(label = 'inbox') {
    this.label = label;
    this.items = [];
    this.all = [];
    this.waiters = [];
    this.counts = [];
  }

  push(item) {
    this.all.push(item);
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
    const reached = this.counts.filter((c) => c.count <= this.all.length);
    this.counts = this.counts.filter((c) => c.count > this.all.length);
    for (const c of reached) c.resolve();
  }

  /** Resolves once `count` items have arrived in all (at once if they have); it has no deadline of its own. */
  reached(count) {
    if (this.all.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.counts.push({ count, resolve }));
  }

  next(timeout = 5000) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    let resolveItem;
    const arrived = new Promise((resolve) => {
      resolveItem = resolve;
      this.waiters.push(resolve);
    });
    return withTimeout(arrived, timeout, `the next item of ${this.label}`).catch((err) => {
      // Forget the waiter, or the item that arrives later would vanish into a finished test.
      this.waiters = this.waiters.filter((w) => w !== resolveItem);
      throw err;
    });
  }

  /** Resolves with `n` items or fails on timeout. */
  async take(n, timeout = 5000) {
    const out = [];
    const deadline = Date.now() + timeout;
    while (out.length < n) out.push(await this.next(Math.max(1, deadline - Date.now())));
    return out;
  }
}

/**
 * A raw `ws` WebSocket that parses every text frame and queues it in `frames`. `opened` resolves on open,
 * `closed` resolves with `{code, reason}` whenever the socket closes (including a refused handshake, 1006).
 */
export class RawSocket {
  constructor(url, options = {}) {
    this.url = url;
    this.ws = new WebSocket(url, options);
    this.frames = new Inbox(`frames of ${url}`);
    this.texts = [];
    this.errors = [];
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString();
      this.texts.push(text);
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { unparsable: text, isBinary };
      }
      this.frames.push(frame);
    });
    this.ws.on('error', (err) => this.errors.push(err));
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.closed.then(({ code }) =>
        reject(new Error(`${url} closed before opening (code ${code}; ${this.errors.map((e) => e.message).join('; ')})`)),
      );
    });
    this.opened.catch(() => {}); // observed by tests that expect the open to fail
  }

  static async open(url, options) {
    const socket = new RawSocket(url, options);
    await withTimeout(socket.opened, 5000, `${url} to open`);
    return socket;
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(value) {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  next(timeout) {
    return this.frames.next(timeout);
  }

  /** Skips frames until one matches `predicate` (for frames whose order does not matter to the test). */
  async nextMatching(predicate, timeout = 5000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const frame = await this.frames.next(Math.max(1, deadline - Date.now()));
      if (predicate(frame)) return frame;
    }
  }

  /** Resolves with the close `{code, reason}`, failing after `timeout`. */
  waitClosed(timeout = 5000) {
    return withTimeout(this.closed, timeout, `${this.url} to close`);
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** The Pusher protocol 7 URL of `hub`, as pusher-js builds it. */
export function pusherUrl(hub, { key = hub.key, query = 'protocol=7&client=js&version=8.4.0&flash=false' } = {}) {
  return `${hub.wsUrl}/app/${key}${query === '' ? '' : `?${query}`}`;
}

/** A raw protocol-7 socket that has received `pusher:connection_established`; returns it with its socket id. */
export async function openPusherSocket(hub) {
  const socket = await RawSocket.open(pusherUrl(hub));
  const hello = await socket.next();
  assert.equal(hello.event, 'pusher:connection_established', `first frame: ${JSON.stringify(hello)}`);
  socket.socketId = JSON.parse(hello.data).socket_id;
  return socket;
}

/** The pusher-js options that point it at a test hub (cluster is required by the typings and ignored). */
export function pusherOptions(hub) {
  return {
    wsHost: '127.0.0.1',
    wsPort: hub.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
  };
}

/**
 * Lets the test process exit on time after the hub closed a pusher-js client: when the hub closes a connection
 * with a 40xx code, pusher-js calls close() on a socket that is already closed, and faye-websocket (the WebSocket
 * of its Node build) arms a 30 s close timer that nothing clears, which would hold the process open. Call it
 * right after creating the client; it returns a function, to call once the client is disconnected, that unrefs
 * those timers.
 */
export function closeTimersOf(client) {
  const sockets = new Set();
  client.connection.bind('connected', () => {
    const socket = client.connection.connection?.transport?.socket;
    if (socket) sockets.add(socket);
  });
  return () => {
    for (const socket of sockets) socket._closeTimer?.unref?.();
  };
}

/** A pusher-js client in state 'connected'. Disconnect it when done (`t.after(() => client.disconnect())`). */
export async function connectPusher(hub) {
  const client = new Pusher(hub.key, pusherOptions(hub));
  const states = [];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        client.connection.bind('connected', resolve);
        client.connection.bind('failed', () => reject(new Error('pusher-js says the connection failed')));
        client.connection.bind('error', (err) => reject(new Error(`pusher-js connection error: ${JSON.stringify(err)}`)));
      }),
      10_000,
      'pusher-js to connect',
    );
  } catch (err) {
    client.disconnect();
    err.message += ` (states: ${states.join(' -> ')})`;
    throw err;
  }
  client.states = states;
  return client;
}

/** Subscribes and waits for `pusher:subscription_succeeded`; rejects on `pusher:subscription_error`. */
export async function subscribe(client, channelName) {
  const channel = client.subscribe(channelName);
  await withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (err) =>
        reject(new Error(`subscription to ${channelName} failed: ${JSON.stringify(err)}`)),
      );
    }),
    5000,
    `pusher:subscription_succeeded on ${channelName}`,
  );
  return channel;
}

/** The event name of `sentinel()`. */
export const SENTINEL_EVENT = 'test-sentinel';

/**
 * Proves that nothing more is on its way to some pusher-js clients, without waiting for time to pass: triggers
 * one sentinel event through `sdk` on each of the (pusher-js) `channels` and waits until every one of them has
 * received it. A hub writes what it queued for a connection in the order it queued it, so whatever it had
 * queued for these connections before the trigger (an echo, a duplicate, a refused event relayed after all)
 * has been received by then. Call it once the thing that must not arrive would already have been queued
 * (the hub answered the request that would have caused it). The timeout is a deadline, generous for a machine
 * busy with other work (a build beside the tests once made a cluster's sentinel take over 5 s): a sentinel that
 * arrives ends the wait at once.
 */
export async function sentinel(sdk, channels, { timeout = 15_000 } = {}) {
  const id = uniqueName('sentinel');
  const arrivals = channels.map(
    (channel) =>
      new Promise((resolve) => {
        const handler = (data) => {
          if (data?.id !== id) return;
          channel.unbind(SENTINEL_EVENT, handler);
          resolve();
        };
        channel.bind(SENTINEL_EVENT, handler);
      }),
  );
  const names = [...new Set(channels.map((c) => c.name))];
  for (const name of names) {
    const res = await sdk.trigger(name, SENTINEL_EVENT, { id });
    assert.equal(res.status, 200, `the sentinel trigger on ${name}`);
  }
  await withTimeout(Promise.all(arrivals), timeout, `the sentinel event on ${names.join(', ')}`);
}

/**
 * Triggers a sentinel event on `channel` and asserts that it is the very next frame of each raw socket of
 * `sockets` (`[what, socket]` pairs, each subscribed to `channel`): anything the hub had queued for one of them
 * before would have come first.
 */
export async function assertNextIsSentinel(sdk, channel, sockets, { timeout = 3000 } = {}) {
  const id = uniqueName('sentinel');
  assert.equal((await sdk.trigger(channel, SENTINEL_EVENT, { id })).status, 200, `the sentinel trigger on ${channel}`);
  for (const [what, socket] of sockets) {
    const next = await socket.next(timeout);
    assert.equal(next.event, SENTINEL_EVENT, `${what}: the sentinel is the next frame, got ${JSON.stringify(next)}`);
  }
}

/** Queues every `eventName` event the channel receives. */
export function inboxOf(channel, eventName) {
  const inbox = new Inbox(`${eventName} on ${channel.name}`);
  channel.bind(eventName, (data) => inbox.push(data));
  return inbox;
}

/** The `pusher` server SDK, configured for `hub`; `extra` adds SDK options (e.g. `encryptionMasterKeyBase64`). */
export function serverSdk(hub, extra = {}) {
  return new PusherServer({
    appId: hub.appId,
    key: hub.key,
    secret: hub.secret,
    host: '127.0.0.1',
    port: String(hub.port),
    useTLS: false,
    ...extra,
  });
}

/**
 * A signed Pusher HTTP API URL built by hand from docs/protocol.md §3, so tests can tamper with any part of it.
 * `path` is the full path (`/apps/{id}/events`); `body` the exact string that will be sent, if any.
 */
export function signedUrl(hub, method, path, body, { params = {}, key = hub.key, secret = hub.secret, timestamp } = {}) {
  const query = {
    auth_key: key,
    auth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    ...params,
  };
  if (body !== undefined) query.body_md5 = createHash('md5').update(body, 'utf8').digest('hex');
  const canonical = Object.keys(query)
    .map((k) => [k.toLowerCase(), query[k]])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const signature = createHmac('sha256', secret).update(`${method}\n${path}\n${canonical}`).digest('hex');
  return `${hub.httpUrl}${path}?${canonical}&auth_signature=${signature}`;
}

/** POSTs a Poussr v1 event with fetch; returns the Response. */
export function publishV1(hub, channel, name, body) {
  const query = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
  return fetch(`${hub.httpUrl}/v1/channels/${encodeURIComponent(channel)}/events${query}`, { method: 'POST', body });
}

/** Asserts that `res` has `status` and a JSON body `{"error": "<non-empty string>"}`; returns the body. */
export async function assertJsonError(res, status, what) {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: status (body: ${text})`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${what}: content type`);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: the error body is not JSON: ${text}`);
  }
  assert.equal(typeof body.error, 'string', `${what}: body.error is a string (body: ${text})`);
  assert.notEqual(body.error.trim(), '', `${what}: body.error is not empty`);
  return body;
}

/** Asserts the SDK call was rejected with `status` and a JSON `{error}` body. */
export async function assertSdkRejects(promise, status, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, `${what}: status (${err.message}; body: ${err.body})`);
    const body = JSON.parse(err.body);
    assert.equal(typeof body.error, 'string', `${what}: body.error (body: ${err.body})`);
    assert.notEqual(body.error.trim(), '', `${what}: body.error is not empty`);
    return true;
  });
}

/**
 * Triggers `{n: 0}`, `{n: 1}`, ... on `channel` until stopped, each once the one before has arrived in `inbox`
 * (where the test's client collects them): a stream paced by its own deliveries, one event in flight. It
 * remembers how many were accepted; an event that never arrives stalls the stream, and the test's final check
 * of the inbox against `sent` says which. Gives up after `maxErrors` failed triggers (the hub is gone).
 *
 * With `{ onBeat: true }` it also waits for the test: each `beat()` allows one more event, for a stream that
 * follows the steps of a suite (a beat per test, the event running alongside it) instead of running free, so
 * that it stays within a hub's publish budget however fast the steps are.
 */
export function startTicker(sdk, channel, inbox, { maxErrors = 20, onBeat = false } = {}) {
  const state = { sent: 0, errors: [], running: true };
  const beats = onBeat ? new Inbox('beats') : null;
  let stopped;
  const stopping = new Promise((resolve) => {
    stopped = resolve;
  });
  state.beat = () => beats?.push(true);
  state.done = (async () => {
    for (;;) {
      const attempts = state.sent + state.errors.length;
      await Promise.race([Promise.all([inbox.reached(state.sent), beats?.reached(attempts + 1)]), stopping]);
      if (!state.running) break;
      try {
        const res = await sdk.trigger(channel, 'tick', { n: state.sent });
        if (res.status === 200) state.sent += 1;
        else state.errors.push(`status ${res.status}`);
      } catch (err) {
        state.errors.push(`${err.message} ${err.status ?? ''} ${err.body ?? ''} ${err.error?.message ?? ''}`.trim());
        if (state.errors.length > maxErrors) break;
      }
    }
  })();
  state.stop = async () => {
    state.running = false;
    stopped();
    await state.done;
  };
  /**
   * Stops the stream and checks it: every trigger accepted, at least `atLeast` of them, and, once a sentinel
   * sent after the last has arrived on `subscribed` (the pusher-js channel whose events fill `inbox`), every
   * event in the inbox once and in order; a duplicate would have come before the sentinel.
   */
  state.finish = async (subscribed, { atLeast = 1 } = {}) => {
    await state.stop();
    assert.deepEqual(state.errors, [], 'every trigger of the stream was accepted');
    assert.ok(state.sent >= atLeast, `the stream ran during the tests (${state.sent} events)`);
    await sentinel(sdk, [subscribed]).catch((err) => {
      throw new Error(`${err.message}; got ${inbox.all.length} of ${state.sent} stream events`);
    });
    assert.deepEqual(inbox.all, Array.from({ length: state.sent }, (_, n) => ({ n })), 'every event of the stream, once, in order');
  };
  return state;
}
