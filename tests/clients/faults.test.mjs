// Faults: the hub process restarted under 1,000 connected pusher-js clients. They must all come back —
// reconnected, re-subscribed and receiving — without a single connection attempt being refused.
//
// pusher-js reconnects at once after the hub's 4200, and if that first attempt is refused (no process
// listens during the restart) it waits for its transport timeout, 15 s, before trying again. So a
// restart that closes the port costs every client 15 s. With socket activation (systemd's .socket unit,
// LISTEN_FDS) the port stays open across the restart and the attempts wait in its queue for the new
// process: that is the setup this test runs, with socket-holder.py standing in for systemd.
//
// What is checked is what saves the 15 s: throughout the restart the port takes connections (a probe
// connects to it again and again until the new hub is up, and none of its attempts may be refused), and
// every client is back on its very next attempt (exactly one new socket id each). How long the restart
// took is printed, not asserted: it depends on the machine, and speed is measured in benchmarks.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Pusher from 'pusher-js';
import { HUB_BIN, assertHubBinExists, randomCredentials } from './hub.mjs';
import { eventually, pusherOptions, serverSdk, uniqueName } from './wire.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CLIENTS = 1000;
/** How long the test waits for the clients before it gives up: a deadline, not a claim about speed. */
const DEADLINE_MS = 60_000;

/**
 * Probes `port` until stopped, one connection at a time. Each probe asks `GET /health` and lasts until the
 * hub has answered and closed it, so a probe made while no hub runs waits in the listen queue and is answered
 * by the next one: the gap of a restart is covered by a connection held across it. After an answer the next
 * probe starts at the clients' next change of state (`nextChange()`), so the probe samples the port while they
 * reconnect into it and never takes more than one place in the listen queue; after a probe cut without an
 * answer (a hub going down under it), the next starts at once, since that is the moment a released port
 * would refuse. `stop()` resolves with how many connected, how many of those were answered, the errors of
 * those that could not connect, and how many were cut.
 */
function probePort(port, nextChange) {
  const result = { connected: 0, answered: 0, refused: [], cut: 0 };
  let running = true;
  let stopped;
  const stopping = new Promise((resolve) => {
    stopped = resolve;
  });
  const probe = () =>
    new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let connected = false;
      socket.once('connect', () => {
        connected = true;
        result.connected += 1;
        // The hub answers and closes (Connection: close); the socket then ends its side too.
        socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      });
      let head = '';
      socket.on('data', (chunk) => {
        if (head.length < 12) head += chunk.toString('latin1');
      });
      socket.once('error', (err) => {
        if (!connected) result.refused.push(err.code ?? err.message);
      });
      socket.once('close', () => {
        if (!connected) return resolve('refused');
        const answered = head.startsWith('HTTP/1.1 200');
        if (answered) result.answered += 1;
        else result.cut += 1;
        resolve(answered ? 'answered' : 'cut');
      });
    });
  const loop = (async () => {
    while (running) {
      // The change is awaited from before the probe: changes during a probe are not lost, only merged.
      const changed = nextChange();
      if ((await probe()) === 'cut') continue;
      await Promise.race([changed, stopping]);
    }
  })();
  return {
    stop: async () => {
      running = false;
      stopped();
      await loop;
      return result;
    },
  };
}

/** Runs the hub under socket-holder.py; resolves once the hub is listening. */
async function startHeldHub() {
  assertHubBinExists();
  const hub = { ...randomCredentials(), dataDir: mkdtempSync(join(tmpdir(), 'poussr-faults-')), output: '' };
  const args = ['serve', '--app-id', hub.appId, '--app-key', hub.key, '--app-secret', hub.secret, '--data-dir', hub.dataDir];
  hub.child = spawn('python3', [join(here, 'socket-holder.py'), HUB_BIN, ...args], {
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  hub.exited = new Promise((resolve) => hub.child.on('exit', resolve));
  hub.child.stdout.setEncoding('utf8');
  hub.child.stderr.setEncoding('utf8');
  hub.child.stderr.on('data', (chunk) => {
    hub.output += chunk;
  });
  hub.lines = [];
  hub.child.stdout.on('data', (chunk) => {
    hub.output += chunk;
    hub.lines.push(...chunk.split('\n'));
  });
  /** Waits for a line matching `re` among those not yet consumed. */
  hub.waitLine = async (re, ms = 15_000) => {
    let line;
    await eventually(
      () => {
        const i = hub.lines.findIndex((l) => re.test(l));
        if (i >= 0) line = hub.lines.splice(0, i + 1)[i];
        return i >= 0;
      },
      { timeout: ms, interval: 20, what: () => `a line matching ${re}:\n${hub.output}` },
    );
    return line;
  };
  hub.port = Number((await hub.waitLine(/^holding port \d+/)).split(' ')[2]);
  await hub.waitLine(/listening on http:/);
  hub.stop = async () => {
    hub.child.stdin.end('stop\n');
    const killer = setTimeout(() => hub.child.kill('SIGKILL'), 15_000);
    await hub.exited;
    clearTimeout(killer);
    rmSync(hub.dataDir, { recursive: true, force: true });
  };
  return hub;
}

test(`a hub restarted under ${CLIENTS} pusher-js clients has them all back, none of them refused`, async (t) => {
  const hub = await startHeldHub();
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await hub.stop();
  });
  const channel = uniqueName('restart');
  const sdk = serverSdk(hub);
  // Any client's change of state wakes whoever waits for the next one (the port probe).
  let wakeOnChange = () => {};
  const nextChange = () => new Promise((resolve) => (wakeOnChange = resolve));
  // Per client: the socket ids it had, its subscriptions, and the events it received.
  for (let i = 0; i < CLIENTS; i++) {
    const client = new Pusher(hub.key, pusherOptions(hub));
    client.record = { sockets: [], subscribed: 0, events: [], states: [] };
    client.connection.bind('connected', () => client.record.sockets.push(client.connection.socket_id));
    client.connection.bind('state_change', ({ current }) => {
      client.record.states.push(current);
      wakeOnChange();
    });
    const ch = client.subscribe(channel);
    ch.bind('pusher:subscription_succeeded', () => {
      client.record.subscribed += 1;
    });
    ch.bind('tick', (data) => client.record.events.push(data.phase));
    clients.push(client);
  }
  const everyone = (what, ok, ms) =>
    eventually(() => clients.every(ok), {
      timeout: ms,
      interval: 25,
      what: () => `every client to have ${what}: ${clients.filter((c) => !ok(c)).length} of ${CLIENTS} have not (hub output:\n${hub.output})`,
    });
  await everyone('subscribed', (c) => c.record.subscribed === 1, 30_000);
  assert.equal((await sdk.trigger(channel, 'tick', { phase: 'before' })).status, 200);
  await everyone('received the event before the restart', (c) => c.record.events.includes('before'), 10_000);

  const restartedAt = Date.now();
  hub.child.stdin.write('restart\n');
  const probe = probePort(hub.port, nextChange);
  await hub.waitLine(/^restarted$/);
  const probed = await probe.stop();
  t.diagnostic(
    `the port took ${probed.connected} probe connections during the restart, ${probed.answered} answered ` +
      `(${probed.cut} cut without an answer)`,
  );
  assert.deepEqual(probed.refused, [], 'no connection attempt was refused during the restart');
  assert.ok(probed.connected > 0, 'the probe ran while the hub restarted');
  const hubBackAfter = Date.now() - restartedAt;
  await everyone('reconnected and re-subscribed', (c) => c.record.sockets.length === 2 && c.record.subscribed === 2, DEADLINE_MS);
  const resubscribedAfter = Date.now() - restartedAt;
  assert.equal((await sdk.trigger(channel, 'tick', { phase: 'after' })).status, 200);
  await everyone('received the event after the restart', (c) => c.record.events.includes('after'), DEADLINE_MS);
  const backAfter = Date.now() - restartedAt;
  t.diagnostic(
    `all ${CLIENTS} clients back and receiving ${backAfter} ms after the restart began (the new hub started ` +
      `after ${hubBackAfter} ms, every client re-subscribed after ${resubscribedAfter} ms)`,
  );
  const waited = clients.filter((c) => c.record.states.includes('unavailable')).length;
  t.diagnostic(`${waited} clients went through pusher-js's 'unavailable' state`);
  const extra = clients.filter((c) => c.record.sockets.length !== 2).map((c) => c.record.sockets);
  assert.deepEqual(extra, [], 'every client came back on its first attempt: one new socket id each');

  // A last event: once every client has it, anything else the hub had queued for them (a duplicate) is in too.
  assert.equal((await sdk.trigger(channel, 'tick', { phase: 'end' })).status, 200);
  await everyone('received the last event', (c) => c.record.events.includes('end'), DEADLINE_MS);
  for (const c of clients) {
    assert.equal(c.connection.state, 'connected');
    assert.notEqual(c.record.sockets[0], c.record.sockets[1], 'a new connection after the restart');
    assert.deepEqual(c.record.events, ['before', 'after', 'end'], 'each event exactly once');
  }
});
