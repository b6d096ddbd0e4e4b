// The hub announces itself over mDNS / DNS-SD, checked with python-zeroconf, a resolver nobody here wrote.
// Nothing here touches the machine's own interfaces: two network namespaces of the test's own, "hub" and
// "device", are joined by one veth pair (a two-machine LAN). The hubs run in "hub", the resolver in "device".
// The namespaces are deleted, and everything in them killed, when the test ends.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { killNamespaceSync, namespaces, run } from './netns.mjs';
import { Inbox, withTimeout } from './wire.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.POUSSR_TEST_PYTHON || 'python3';
const HUB_IP = '10.214.0.1';
const DEVICE_IP = '10.214.0.2';

const id = randomBytes(3).toString('hex');
const HUB_NS = `poussr-md-h${id}`;
const DEVICE_NS = `poussr-md-d${id}`;
let browser; // the resolver's process
let events; // what it reports, one object each
const hubs = [];

/** The host name the hub announces: its machine's name as one DNS label (src/discovery.rs). */
function announcedHost() {
  const label = hostname().split('.')[0].toLowerCase().replace(/[^a-z0-9]/g, '-').slice(0, 50).replace(/^-+|-+$/g, '');
  return `poussr-${label || 'hub'}.local.`;
}

/**
 * A hub in the "hub" namespace. The test suite's POUSSR_NO_MDNS is lifted for it, unless `off` says how to
 * switch mDNS off: 'config' (`mdns = false`) or 'env' (POUSSR_NO_MDNS=true, the variable of `--no-mdns`).
 */
async function hubInNamespace(bind, off) {
  const env = off === 'env' ? ['POUSSR_NO_MDNS=true'] : ['-u', 'POUSSR_NO_MDNS'];
  const hub = await startHub({
    bind,
    prefix: ['ip', 'netns', 'exec', HUB_NS, 'env', ...env],
    config: off === 'config' ? 'mdns = false\n' : '',
  });
  hubs.push(hub);
  return hub;
}

before(async () => {
  const ip = (...args) => run('ip', args, { timeout: 10_000 });
  for (const ns of [HUB_NS, DEVICE_NS]) {
    await ip('netns', 'add', ns);
    namespaces.add(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  await ip('-n', HUB_NS, 'link', 'add', 'md0', 'type', 'veth', 'peer', 'name', 'md1', 'netns', DEVICE_NS);
  await ip('-n', HUB_NS, 'addr', 'add', `${HUB_IP}/24`, 'dev', 'md0');
  await ip('-n', DEVICE_NS, 'addr', 'add', `${DEVICE_IP}/24`, 'dev', 'md1');
  await ip('-n', HUB_NS, 'link', 'set', 'md0', 'up');
  await ip('-n', DEVICE_NS, 'link', 'set', 'md1', 'up');

  events = new Inbox('mDNS events');
  browser = spawn('ip', ['netns', 'exec', DEVICE_NS, PYTHON, join(HERE, 'python', 'zeroconf_browse.py'), DEVICE_IP], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  browser.stdout.setEncoding('utf8').on('data', (chunk) => {
    out += chunk;
    let nl;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (line.trim()) events.push(JSON.parse(line));
    }
  });
  browser.stderr.setEncoding('utf8').on('data', (chunk) => (err += chunk));
  browser.on('exit', (code) => events.push({ event: 'exit', code, stderr: err }));
  const first = await withTimeout(events.next(), 15_000, 'the resolver to start');
  assert.equal(first.event, 'browsing', JSON.stringify(first));
});

after(async () => {
  for (const hub of hubs) await hub.close();
  browser?.stdin.end();
  browser?.kill('SIGKILL');
  killNamespaceSync(HUB_NS);
  killNamespaceSync(DEVICE_NS);
});

/**
 * The resolver's next "added" or "removed" event; an "updated" one of the same hub (its records seen again) is
 * skipped. Any hub but the one on `port` fails the test.
 */
async function nextAbout(port, what) {
  for (;;) {
    const e = await withTimeout(events.next(), 15_000, what);
    if (e.event === 'exit') assert.fail(`the resolver exited: ${JSON.stringify(e)}`);
    if (e.event === 'unresolved') assert.fail(`the resolver saw ${e.name} but could not resolve it within 5 s`);
    if (e.event === 'removed') return e;
    if (e.port !== port) assert.fail(`an announcement of another hub (port ${e.port}) arrived: ${JSON.stringify(e)}`);
    if (e.event === 'added') return e;
  }
}

test('a LAN device finds the hub with its port, address, name and TXT record, and sees it go at quit', async () => {
  // Three hubs that must stay silent are started first: one on loopback (no other machine could use it) and
  // two with mDNS switched off. The announcing hub starts last; its announcement is the first the device
  // receives, so none of the others was announced before it (nextAbout fails on any other port).
  await hubInNamespace('127.0.0.1');
  await hubInNamespace('0.0.0.0', 'config');
  await hubInNamespace('0.0.0.0', 'env');
  const hub = await hubInNamespace('0.0.0.0');
  const found = await nextAbout(hub.port, 'the announcement');
  assert.equal(found.event, 'added', JSON.stringify(found));
  assert.equal(found.name, `Poussr on ${announcedHost().slice('poussr-'.length, -'.local.'.length)}._poussr._tcp.local.`);
  assert.equal(found.port, hub.port);
  assert.equal(found.server, announcedHost());
  assert.deepEqual(found.addresses, [HUB_IP], 'only the address a device can reach, never loopback');
  assert.deepEqual(found.txt, {
    txtvers: '1', key: hub.key, protocol: '7', v1: '/v1/ws', tls: '0', check: '/check', version: found.txt.version,
  });
  assert.match(found.txt.version, /^\d+\.\d+\.\d+/);

  // What the device found works: the check page's info, from the "device" namespace at the found address.
  const { stdout } = await run('ip', ['netns', 'exec', DEVICE_NS, 'curl', '-sS', '--max-time', '5',
    `http://${found.addresses[0]}:${found.port}/check/info`], { timeout: 10_000 });
  assert.equal(JSON.parse(stdout).key, hub.key);

  await hub.stop();
  const gone = await nextAbout(hub.port, 'the goodbye at quit');
  assert.deepEqual(gone, { event: 'removed', name: found.name });
});
