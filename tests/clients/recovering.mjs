// What the recovery tests share: the add-on as the hub serves it, loaded into Node; pusher-js clients
// through a proxy; numbered events published in order, and what a channel got of them.

import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import { Inbox, closeTimersOf, pusherOptions, withTimeout } from './wire.mjs';

/** The add-on as the hub serves it, loaded the way Node loads it (module.exports). */
export async function loadRecovery(hub) {
  const res = await fetch(`${hub.httpUrl}/poussr-recovery.js`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /javascript/);
  const module = { exports: {} };
  new Function('module', 'exports', await res.text())(module, module.exports);
  return module.exports;
}

/** A pusher-js client through `proxy`, with the add-on unless `plain`; it never gives up reconnecting. */
export function pusherThrough(hub, proxy, { recovery, plain = false } = {}) {
  const client = new Pusher(hub.key, { ...pusherOptions(hub), wsPort: proxy.port });
  client.unrefTimers = closeTimersOf(client);
  if (!plain) recovery.attach(client);
  return client;
}

/** The numbers of the `numbered` events a channel gets, in arrival order, with an inbox of not-recovered events. */
export function numbersOf(channel) {
  const got = [];
  channel.bind('numbered', (data) => got.push(data.n));
  const gaps = new Inbox(`poussr:not_recovered on ${channel.name}`);
  channel.bind('poussr:not_recovered', (why) => gaps.push(why));
  return { got, gaps };
}

export function subscribed(channel) {
  return withTimeout(
    new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve)),
    10_000,
    `subscription to ${channel.name}`,
  );
}

/**
 * Publishes `numbered` events n = from..to on `channel`, ten per batch request, each request awaited (so in
 * order), as fast as the hub answers.
 */
export async function publishNumbers(sdk, channel, from, to, { beforeBatch } = {}) {
  const perBatch = 10;
  for (let n = from; n <= to; n += perBatch) {
    if (beforeBatch) await beforeBatch(n);
    const batch = [];
    for (let k = n; k < n + perBatch && k <= to; k++) batch.push({ channel, name: 'numbered', data: JSON.stringify({ n: k }) });
    const res = await sdk.triggerBatch(batch);
    assert.equal(res.status, 200);
  }
}

export function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
