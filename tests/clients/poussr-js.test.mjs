// poussr.js, the v1 browser client, as the hub serves it at /poussr.js, run in Node with the `ws` package's
// WebSocket: the original API, plus reconnect, unsubscribe and disconnect.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import { WebSocket } from 'ws';
import { startHub } from './hub.mjs';
import { Inbox, eventually, publishV1, uniqueName } from './wire.mjs';

const SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/http/poussr.js');

/**
 * A `ws` WebSocket that counts how many sockets the client opened, to see reconnects (and their absence);
 * `sockets` holds them, to wait for one's close.
 */
function countingWebSocket() {
  const opened = [];
  const sockets = [];
  class Counting extends WebSocket {
    constructor(url, ...rest) {
      super(url, ...rest);
      opened.push(url);
      sockets.push(this);
    }
  }
  return { Impl: Counting, opened, sockets };
}

/**
 * Timers that fire only when the test says so. A client loaded with this clock schedules its reconnects here,
 * so a test can see that one is pending, or that none is, and fire them all at once: "no reconnect, ever" is
 * then proved without waiting for the client's backoff to run out.
 */
function manualClock() {
  const pending = new Map();
  let nextId = 1;
  return {
    setTimeout(callback, _delay, ...args) {
      const id = nextId++;
      pending.set(id, () => callback(...args));
      return id;
    },
    clearTimeout(id) {
      pending.delete(id);
    },
    pending() {
      return pending.size;
    },
    /** Fires every pending timer now; returns how many there were. */
    fireAll() {
      const due = [...pending.values()];
      pending.clear();
      for (const fire of due) fire();
      return due.length;
    },
  };
}

describe('poussr.js', () => {
  let hub;
  let servedResponse;
  let served;
  let Poussr;

  /**
   * The client as the hub serves it, evaluated as a CommonJS loader would, in this realm so that results
   * compare with deepEqual. Its timers are `clock`'s when one is given. If the hub does not serve it, the first
   * test reports that and the others still check the client itself.
   */
  function load(clock = { setTimeout, clearTimeout }) {
    const source = servedResponse.status === 200 ? served : readFileSync(SOURCE, 'utf8');
    const module = { exports: {} };
    new Function('module', 'setTimeout', 'clearTimeout', source)(module, clock.setTimeout, clock.clearTimeout);
    return module.exports;
  }

  before(async () => {
    hub = await startHub();
    servedResponse = await fetch(`${hub.httpUrl}/poussr.js`);
    served = await servedResponse.text();
    Poussr = load();
  });
  after(() => hub?.close());

  /** A client for `channel`, disconnected when the test ends; `Client` is the class, loaded with a clock. */
  function client(t, channel, Impl = WebSocket, Client = Poussr) {
    const p = new Client('127.0.0.1', hub.port, channel, { WebSocket: Impl });
    t.after(() => p.disconnect());
    return p;
  }

  async function publish(channel, name, body) {
    const res = await publishV1(hub, channel, name, body);
    assert.equal(res.status, 201, `publish: ${await res.clone().text()}`);
  }

  /**
   * Waits until the hub delivers to `p`. The client sends its subscribe on open and (like the original) tells
   * its page nothing when it succeeds, so probe events are published until one arrives.
   */
  async function untilSubscribed(p) {
    const probe = 'test-probe';
    let seen = false;
    const onProbe = () => {
      seen = true;
    };
    p.subscribe(probe, onProbe);
    try {
      // Polled: each round publishes a probe if none has arrived yet, and looks again after the interval.
      await eventually(
        async () => {
          if (!seen) await publish(p.channel_name(), probe, 'probe');
          return seen;
        },
        { timeout: 10_000, interval: 100, what: `poussr.js to be subscribed to ${p.channel_name()}` },
      );
    } finally {
      p.unsubscribe(probe, onProbe);
    }
  }

  test('GET /poussr.js serves this client as JavaScript', () => {
    assert.equal(servedResponse.status, 200);
    assert.match(servedResponse.headers.get('content-type') ?? '', /^(application|text)\/javascript\b/);
    assert.equal(served, readFileSync(SOURCE, 'utf8'), 'the hub serves src/http/poussr.js as it is in the tree');
    assert.equal(typeof Poussr, 'function');
  });

  test('in a browser-like global scope it defines window.Poussr with the original API', () => {
    const browser = vm.createContext({ console });
    vm.runInContext(readFileSync(SOURCE, 'utf8'), browser);
    assert.equal(typeof browser.Poussr, 'function');
    const p = new browser.Poussr('192.168.1.20', 6001, 'users');
    assert.equal(p.host(), '192.168.1.20');
    assert.equal(p.port(), 6001);
    assert.equal(p.channel_name(), 'users');
    assert.equal(p.connected(), false);
    for (const method of ['connect', 'subscribe', 'unsubscribe', 'disconnect']) {
      assert.equal(typeof p[method], 'function', method);
    }
  });

  test('connects, then delivers JSON data parsed and anything else as the raw string', async (t) => {
    const channel = uniqueName('users');
    const p = client(t, channel);
    assert.equal(p.connected(), false, 'not connected before connect()');
    p.connect();
    await eventually(() => p.connected(), { what: 'connected() to become true' });
    await untilSubscribed(p);

    const inbox = new Inbox('newuser');
    p.subscribe('newuser', (data) => inbox.push(data));
    await publish(channel, 'newuser', '{"name":"Fred","tags":["a","b"]}');
    await publish(channel, 'newuser', "{'name': 'Fred'}");
    await publish(channel, 'another-event', '"not for this callback"');
    await publish(channel, 'newuser', 'hello Fred');
    await publish(channel, 'newuser', '42');

    assert.deepEqual(await inbox.take(4), [{ name: 'Fred', tags: ['a', 'b'] }, "{'name': 'Fred'}", 'hello Fred', 42]);
  });

  test('unsubscribe removes one callback, or every callback of the event', async (t) => {
    const channel = uniqueName('unsub');
    const p = client(t, channel);
    p.connect();
    await untilSubscribed(p);

    const first = new Inbox('first');
    const second = new Inbox('second');
    const markers = new Inbox('marker');
    const onFirst = (d) => first.push(d);
    p.subscribe('e', onFirst);
    p.subscribe('e', (d) => second.push(d));
    p.subscribe('marker', (d) => markers.push(d));

    p.unsubscribe('e', onFirst);
    await publish(channel, 'e', '1');
    await publish(channel, 'marker', 'm1');
    assert.equal(await markers.next(), 'm1');
    assert.deepEqual(second.all, [1]);
    assert.deepEqual(first.all, []);

    p.unsubscribe('e');
    await publish(channel, 'e', '2');
    await publish(channel, 'marker', 'm2');
    assert.equal(await markers.next(), 'm2');
    assert.deepEqual(second.all, [1], 'no callback left on e');
  });

  test('reconnects and re-subscribes after the hub restarts on the same port', async (t) => {
    const channel = uniqueName('restart');
    const { Impl, opened } = countingWebSocket();
    const p = client(t, channel, Impl);
    p.connect();
    await untilSubscribed(p);
    assert.equal(opened.length, 1);
    assert.equal(opened[0], `ws://127.0.0.1:${hub.port}/v1/ws`);

    await hub.restart();
    await eventually(() => opened.length >= 2 && p.connected(), { timeout: 15_000, what: 'poussr.js to reconnect' });
    await untilSubscribed(p);

    const inbox = new Inbox('after restart');
    p.subscribe('newuser', (d) => inbox.push(d));
    await publish(channel, 'newuser', '{"back":true}');
    assert.deepEqual(await inbox.next(), { back: true });
  });

  test('disconnect() closes the socket and stops reconnecting', async (t) => {
    const channel = uniqueName('bye');
    const clock = manualClock();
    const { Impl, opened, sockets } = countingWebSocket();
    const p = client(t, channel, Impl, load(clock));
    p.connect();
    await eventually(() => p.connected(), { what: 'connected()' });

    const closed = once(sockets[0], 'close');
    p.disconnect();
    assert.equal(p.connected(), false, 'connected() is false as soon as disconnect() returns');
    // A reconnect would be scheduled when the socket's close arrives: once it has, nothing may be pending.
    await closed;
    assert.equal(clock.pending(), 0, 'no reconnect scheduled after disconnect()');
    assert.equal(clock.fireAll(), 0);
    assert.equal(opened.length, 1, 'no socket opened after disconnect()');
    assert.equal(p.connected(), false);
  });

  test('disconnect() also cancels a reconnect waiting for a hub that is down', async (t) => {
    const channel = uniqueName('bye-while-down');
    const clock = manualClock();
    const { Impl, opened } = countingWebSocket();
    const p = client(t, channel, Impl, load(clock));
    p.connect();
    await eventually(() => p.connected(), { what: 'connected()' });

    await hub.stop();
    await eventually(() => clock.pending() === 1, { what: 'a reconnect to be scheduled once the hub is gone' });
    assert.equal(p.connected(), false);
    p.disconnect();
    assert.equal(clock.pending(), 0, 'disconnect() cancelled the scheduled reconnect');
    await hub.start();
    // Were the reconnect still scheduled, firing the clock now would open a socket to the hub that is back.
    assert.equal(clock.fireAll(), 0);
    assert.equal(opened.length, 1, 'no socket opened after disconnect()');
    assert.equal(p.connected(), false);
  });
});
