// TLS from the hub itself (docs/tls.md): pusher-js with forceTLS, the `pusher` SDK over https, plain and TLS
// on one port, a certificate renewed under 100 connected clients, hostile handshakes, webhooks to an https
// receiver and Redis over TLS. Node trusts the suite's CA through NODE_EXTRA_CA_CERTS (see tls.mjs); nothing
// here turns certificate checks off.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { randomCredentials, startHub } from './hub.mjs';
import { certFolder, createCert, fingerprintOf, servedFingerprint, tlsDir, tlsEnv } from './tls.mjs';
import { Inbox, RawSocket, closeTimersOf, eventually, serverSdk, uniqueName, withTimeout } from './wire.mjs';

const PUSHER_QUERY = 'protocol=7&client=js&version=8.4.0&flash=false';

/** The `pusher` SDK over https (host `localhost`, which the certificate names). */
function tlsSdk(hub) {
  return serverSdk(hub, { host: 'localhost', useTLS: true });
}

async function httpsJson(hub, path) {
  const res = await fetch(`https://localhost:${hub.port}${path}`);
  assert.equal(res.status, 200, `GET ${path} over https`);
  return res.json();
}

/** A pusher-js client over wss:// that is connected; `user` is who the backend authorizes it as. */
async function tlsClient(t, hub, backend, user) {
  const auth = (path) => ({ endpoint: `${backend.url}${path}`, transport: 'ajax', headers: { 'x-user': user } });
  const client = new Pusher(hub.key, {
    wsHost: 'localhost',
    wsPort: hub.port,
    wssPort: hub.port,
    forceTLS: true,
    enabledTransports: ['ws'],
    cluster: 'mt1',
    disableStats: true,
    channelAuthorization: auth('/pusher/auth'),
    userAuthentication: auth('/pusher/user-auth'),
  });
  const release = closeTimersOf(client);
  t.after(() => {
    client.disconnect();
    release();
  });
  const states = [];
  client.connection.bind('state_change', ({ current }) => states.push(current));
  await withTimeout(
    new Promise((resolve, reject) => {
      client.connection.bind('connected', resolve);
      client.connection.bind('failed', () => reject(new Error('pusher-js says the connection failed')));
    }),
    10_000,
    `pusher-js over wss to connect (states: ${states.join(' -> ')})`,
  );
  return client;
}

async function subscribed(client, name) {
  const channel = client.subscribe(name);
  await withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', resolve);
      channel.bind('pusher:subscription_error', (e) => reject(new Error(`${name}: ${JSON.stringify(e)}`)));
    }),
    5000,
    `subscription to ${name}`,
  );
  return channel;
}

/** A raw Pusher socket over `scheme` (ws or wss) subscribed to `channel`. */
async function rawSubscriber(hub, scheme, channel) {
  const host = scheme === 'wss' ? 'localhost' : '127.0.0.1';
  const socket = await RawSocket.open(`${scheme}://${host}:${hub.port}/app/${hub.key}?${PUSHER_QUERY}`);
  const hello = await socket.next();
  assert.equal(hello.event, 'pusher:connection_established', JSON.stringify(hello));
  socket.send({ event: 'pusher:subscribe', data: { channel } });
  const ok = await socket.next();
  assert.equal(ok.event, 'pusher_internal:subscription_succeeded', JSON.stringify(ok));
  return socket;
}

describe('a TLS-only hub', () => {
  let hub;
  let backend;

  before(async () => {
    backend = await startBackend();
    hub = await startHub({ env: tlsEnv(tlsDir(), { only: true }) });
    backend.attach(hub);
  });

  after(async () => {
    await backend?.close();
    await hub?.close();
  });

  test('pusher-js with forceTLS gets public, private and presence events triggered by the pusher SDK over https', async (t) => {
    const alice = await tlsClient(t, hub, backend, 'alice');
    const names = { public: uniqueName('tls'), private: uniqueName('private-tls'), presence: uniqueName('presence-tls') };
    const inboxes = {};
    const channels = {};
    for (const [kind, name] of Object.entries(names)) {
      channels[kind] = await subscribed(alice, name);
      inboxes[kind] = new Inbox(`${kind} events`);
      channels[kind].bind('greeting', (data) => inboxes[kind].push(data));
    }
    const joined = new Inbox('member_added');
    channels.presence.bind('pusher:member_added', (member) => joined.push(member));
    const bob = await tlsClient(t, hub, backend, 'bob');
    await subscribed(bob, names.presence);
    assert.equal((await joined.next()).id, 'bob');

    const res = await tlsSdk(hub).trigger(Object.values(names), 'greeting', { over: 'https' });
    assert.equal(res.status, 200);
    for (const kind of Object.keys(names)) {
      assert.deepEqual(await inboxes[kind].next(), { over: 'https' }, `${kind} channel`);
    }
  });

  test('plain HTTP and ws:// get a 400 that says to use https, except the CA for devices', async () => {
    const res = await fetch(`http://127.0.0.1:${hub.port}/health`);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /TLS only on this port: use https:\/\/ and wss:\/\//);
    const socket = new RawSocket(`ws://127.0.0.1:${hub.port}/app/${hub.key}?${PUSHER_QUERY}`);
    const refused = await withTimeout(
      new Promise((resolve) => socket.ws.on('unexpected-response', (_req, response) => resolve(response.statusCode))),
      5000,
      'the ws:// handshake to be answered',
    );
    assert.equal(refused, 400);
    socket.ws.terminate();
    // Except the CA, which a device fetches before it can trust an https download.
    const ca = await fetch(`http://127.0.0.1:${hub.port}/poussr-ca.crt`);
    assert.equal(ca.status, 200);
    assert.equal(await ca.text(), readFileSync(join(tlsDir(), 'ca.pem'), 'utf8'));
    // The port still serves TLS.
    assert.equal((await httpsJson(hub, '/health')).status, 'ok');
  });
});

describe('plain and TLS on one port', () => {
  let hub;

  before(async () => {
    hub = await startHub({ env: tlsEnv() });
  });

  after(async () => {
    await hub?.close();
  });

  test('both schemes serve the same hub, and /health describes the certificate', async () => {
    const plain = await (await fetch(`${hub.httpUrl}/health`)).json();
    const secure = await httpsJson(hub, '/health');
    const byIp = await (await fetch(`https://127.0.0.1:${hub.port}/health`)).json();
    assert.equal(plain.tls.certificate.sha256, secure.tls.certificate.sha256);
    assert.equal(byIp.status, 'ok', 'the certificate names 127.0.0.1 too');
    const { tls } = secure;
    assert.equal(tls.certificate.sha256, fingerprintOf(join(tlsDir(), 'cert.pem')));
    assert.equal(tls.ca.sha256, fingerprintOf(join(tlsDir(), 'ca.pem')));
    assert.deepEqual(tls.certificate.names, ['localhost', '127.0.0.1']);
    assert.ok(tls.days_left > 300, `days_left ${tls.days_left}`);
    assert.equal(tls.warning, null);
    assert.equal(tls.plain, true);
  });

  test('the CA is offered over plain HTTP for devices to install', async () => {
    const res = await fetch(`${hub.httpUrl}/poussr-ca.crt`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-x509-ca-cert');
    assert.equal(await res.text(), readFileSync(join(tlsDir(), 'ca.pem'), 'utf8'));
  });

  test('a ws:// and a wss:// subscriber get the same event', async (t) => {
    const channel = uniqueName('both');
    const plain = await rawSubscriber(hub, 'ws', channel);
    const secure = await rawSubscriber(hub, 'wss', channel);
    t.after(() => {
      plain.close();
      secure.close();
    });
    await tlsSdk(hub).trigger(channel, 'news', { n: 1 });
    for (const socket of [plain, secure]) {
      const frame = await socket.next();
      assert.equal(frame.event, 'news');
      assert.deepEqual(JSON.parse(frame.data), { n: 1 });
    }
  });
});

describe('a new certificate while 100 clients stay connected', () => {
  let hub;
  let dir;
  const sockets = [];
  const channel = uniqueName('reload');

  before(async () => {
    dir = certFolder();
    hub = await startHub({ env: tlsEnv(dir) });
    for (let i = 0; i < 100; i += 1) sockets.push(await rawSubscriber(hub, 'wss', channel));
  });

  after(async () => {
    for (const s of sockets) s.close();
    await hub?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('new handshakes get the new certificate, nobody is dropped, and a bad pair is refused without harm', async () => {
    const closed = [];
    sockets.forEach((s, i) => s.closed.then(() => closed.push(i)));
    const first = fingerprintOf(join(dir, 'cert.pem'));
    assert.equal(await servedFingerprint(hub.port), first);

    const second = createCert(dir);
    assert.notEqual(second, first);
    await eventually(async () => (await servedFingerprint(hub.port)) === second, {
      timeout: 15_000,
      what: 'new TLS connections to be given the new certificate',
    });
    const health = await httpsJson(hub, '/health');
    assert.equal(health.tls.certificate.sha256, second);
    assert.equal(health.tls.reload_error, null);

    await tlsSdk(hub).trigger(channel, 'after-reload', { n: 1 });
    for (const socket of sockets) assert.equal((await socket.next()).event, 'after-reload');
    assert.deepEqual(closed, [], 'no client was dropped');
    assert.equal(health.connections, 100);

    // A certificate that does not go with the key: refused, the current one stays.
    writeFileSync(join(dir, 'cert.pem'), readFileSync(join(tlsDir(), 'cert.pem')));
    const refused = await eventually(async () => (await httpsJson(hub, '/health')).tls.reload_error, {
      timeout: 15_000,
      what: 'the hub to report the bad pair',
    });
    assert.match(refused, /is not the key of the certificate/);
    assert.equal(await servedFingerprint(hub.port), second);

    const third = createCert(dir);
    await eventually(async () => (await servedFingerprint(hub.port)) === third, { timeout: 15_000, what: 'the third certificate' });
    await tlsSdk(hub).trigger(channel, 'after-third', { n: 2 });
    for (const socket of sockets) assert.equal((await socket.next()).event, 'after-third');
    assert.deepEqual(closed, []);
  });
});

describe('hostile TLS input', () => {
  let hub;
  let good;
  const channel = uniqueName('hostile');

  before(async () => {
    hub = await startHub({ env: tlsEnv(), config: '[limits]\nhandshake_timeout_secs = 2\n' });
    good = await rawSubscriber(hub, 'wss', channel);
  });

  after(async () => {
    good?.close();
    await hub?.close();
  });

  /**
   * A raw TCP connection to the hub that sends `bytes`; resolves with what the hub sent once the hub closed
   * it, and fails if the hub has not closed it within 15 s (the test's handshake timeout is 2 s).
   */
  function rawTcp(bytes) {
    const socket = net.connect(hub.port, '127.0.0.1', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
    const received = [];
    socket.on('data', (d) => received.push(d));
    socket.on('error', () => {});
    const closed = new Promise((resolve) => socket.on('close', () => resolve(Buffer.concat(received))));
    return withTimeout(closed, 15_000, 'the hub to close the connection').finally(() => socket.destroy());
  }

  async function goodStillServed(event) {
    await tlsSdk(hub).trigger(channel, event, {});
    const frame = await good.next();
    assert.equal(frame.event, event, 'the good client got the next event and nothing else');
  }

  test('a garbage ClientHello is answered with an alert or a close, and nobody else notices', async () => {
    for (const garbage of [
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20]), randomBytes(32)]),
      Buffer.concat([Buffer.from([0x16]), randomBytes(4096)]),
      Buffer.from([0x16, 0x03, 0x03, 0xff, 0xff]),
    ]) {
      const answer = await rawTcp(garbage);
      // Either nothing, or a TLS alert record (content type 21).
      assert.ok(answer.length === 0 || answer[0] === 0x15, `answer: ${answer.toString('hex').slice(0, 40)}`);
    }
    await goodStillServed('after-garbage');
  });

  test('a handshake that never finishes is cut off at the handshake timeout', async () => {
    // Each resolves only when the hub closes the connection (rawTcp fails otherwise).
    assert.equal((await rawTcp(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))).length, 0);
    assert.equal((await rawTcp(Buffer.alloc(0))).length, 0, 'a connection that sends nothing');
    await goodStillServed('after-slowloris');
  });

  test('a TLS client that does not trust the certificate fails its own handshake only', async () => {
    const error = await new Promise((resolve) => {
      https
        .get({ host: 'localhost', port: hub.port, path: '/health', ca: [readFileSync(join(certFolderOther(), 'ca.pem'))] }, () =>
          resolve(null),
        )
        .on('error', resolve);
    });
    assert.ok(error, 'a client that trusts another CA must refuse the certificate');
    assert.match(String(error.code), /UNABLE_TO_VERIFY|SELF_SIGNED|CERT/);
    await goodStillServed('after-untrusted');
  });
});

/** A folder with a CA of its own (not the suite's): certificates it signs are not trusted. */
const otherFolders = [];
function certFolderOther() {
  const dir = certFolder();
  createCert(dir, ['localhost'], { newCa: true });
  otherFolders.push(dir);
  return dir;
}
after(() => {
  for (const dir of otherFolders) rmSync(dir, { recursive: true, force: true });
});

/** An https server that records the webhook calls it gets, with a certificate from `dir`. */
async function httpsReceiver(dir) {
  const calls = new Inbox(`webhook calls to ${dir}`);
  const server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      calls.push(JSON.parse(body));
      res.writeHead(200).end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { calls, url: `https://localhost:${server.address().port}/hook`, close: () => new Promise((r) => server.close(r)) };
}

describe('webhooks to https receivers', () => {
  let hub;
  let trusted;
  let untrusted;
  const dirs = [];

  before(async () => {
    dirs.push(certFolder(['localhost']));
    trusted = await httpsReceiver(dirs[0]);
    dirs.push(certFolderOther());
    untrusted = await httpsReceiver(dirs[1]);
    hub = await startHub({
      env: { POUSSR_TLS_CA: join(tlsDir(), 'ca.pem') },
      app: `[[apps.webhooks]]\nurl = "${trusted.url}"\n[[apps.webhooks]]\nurl = "${untrusted.url}"\n`,
      config: '[limits]\nwebhook_attempts = 1\n',
    });
  });

  after(async () => {
    await hub?.close();
    await trusted?.close();
    await untrusted?.close();
    for (const dir of dirs.slice(0, 1)) rmSync(dir, { recursive: true, force: true });
  });

  test('a receiver with a certificate from the configured CA gets them; one from an unknown CA is refused', async (t) => {
    const channel = uniqueName('hooked');
    const socket = await rawSubscriber(hub, 'ws', channel);
    t.after(() => socket.close());
    const call = await trusted.calls.next(10_000);
    assert.deepEqual(
      call.events.map((e) => [e.name, e.channel]),
      [['channel_occupied', channel]],
    );
    const health = await eventually(
      async () => {
        const h = await (await fetch(`${hub.httpUrl}/health`)).json();
        return h.webhooks.failed >= 1 && h;
      },
      { timeout: 15_000, what: 'the delivery to the untrusted receiver to fail' },
    );
    assert.equal(health.webhooks.sent, 1);
    assert.equal(untrusted.calls.all.length, 0, 'the untrusted receiver got nothing');
  });
});

describe('Redis over TLS', () => {
  let redis;
  let redisDir;
  let a;
  let b;

  before(async () => {
    redisDir = certFolder(['localhost']);
    const port = await new Promise((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = s.address();
        s.close(() => resolve(p));
      });
    });
    const child = spawn(
      'redis-server',
      [
        '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--tls-cert-file', join(redisDir, 'cert.pem'), '--tls-key-file', join(redisDir, 'key.pem'),
        '--tls-ca-cert-file', join(redisDir, 'ca.pem'), '--tls-auth-clients', 'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (output += c));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    redis = { stop: async () => { child.kill('SIGKILL'); await exited; } };
    await eventually(() => output.includes('Ready to accept connections'), { timeout: 10_000, what: () => `redis-server with TLS:\n${output}` });
    const credentials = randomCredentials();
    const config = `adapter = "redis"\nredis_url = "rediss://localhost:${port}"\nredis_prefix = "${uniqueName('tls')}"\n`;
    const env = { POUSSR_TLS_CA: join(tlsDir(), 'ca.pem') };
    a = await startHub({ credentials, config, env });
    b = await startHub({ credentials, config, env });
    await eventually(
      async () => {
        const [ha, hb] = await Promise.all([a, b].map(async (h) => (await fetch(`${h.httpUrl}/health`)).json()));
        return ha.cluster?.link === 'up' && hb.cluster?.link === 'up' && ha.cluster.others.length === 1 && hb.cluster.others.length === 1;
      },
      { timeout: 15_000, what: 'both hubs linked over rediss:// and aware of each other' },
    );
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
    rmSync(redisDir, { recursive: true, force: true });
  });

  test('an event published on one hub reaches a subscriber of the other through Redis over TLS', async (t) => {
    const channel = uniqueName('rediss');
    const socket = await rawSubscriber(b, 'ws', channel);
    t.after(() => socket.close());
    await serverSdk(a).trigger(channel, 'across', { via: 'rediss' });
    const frame = await socket.next();
    assert.equal(frame.event, 'across');
    assert.deepEqual(JSON.parse(frame.data), { via: 'rediss' });
  });
});
