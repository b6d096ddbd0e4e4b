// The hub behind Debian's real nginx, configured as docs/tls.md shows it ("Behind a reverse proxy"), with
// clients on loopback and on another address. The other address lives in a network namespace this file
// creates for itself (`poussr-px-<random>`, with a veth pair whose two ends both stay inside it): nginx, the
// hubs and every client run in it, so no traffic touches the machine's own interfaces. The test process
// itself is outside the namespace; it talks to the clients through an agent (a small Node script started with
// `ip netns exec`) over stdin/stdout, one JSON object a line.
//
// Checked: the Clients pane (the admin API) shows each client's own address and not nginx's; the per-address
// connection limit counts each real client, not nginx; anonymous Poussr v1 publishing is refused to a
// client elsewhere that comes through the trusted proxy (even one that writes `X-Forwarded-For: 127.0.0.1`
// itself) and allowed to one on this machine; and a hub that does not trust the proxy never treats a
// request carrying a forwarding header as this machine, while a direct loopback request still is.


import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { assertHubBinExists } from './hub.mjs';
import {
  ADMIN_TOKEN, Agent, NGINX_BIN, NsProcess, PORT_LOCAL, PORT_REMOTE, PORT_UNTRUSTED, PROXY_IP, PUSHER_QUERY, REMOTE_IP,
  START_TIMEOUT_MS, createNamespace, dataOf, ipOf, killNamespaceSync, run, startNsHub,
} from './netns.mjs';
import { eventually, uniqueName, withTimeout } from './wire.mjs';

/** The proxy block of docs/tls.md, to the hub on `port`. */
function proxyTo(port) {
  return `
    location / {
      proxy_pass http://127.0.0.1:${port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1h;
      proxy_buffering off;
    }`;
}

/** A whole nginx configuration that writes nothing outside `dir`. */
function nginxConfig(dir, trustingPort, untrustingPort) {
  return `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;

  map $http_upgrade $connection_upgrade { default upgrade; '' close; }

  server {
    listen ${PROXY_IP}:${PORT_REMOTE};
    listen 127.0.0.1:${PORT_LOCAL};
    ${proxyTo(trustingPort)}
  }

  server {
    listen ${PROXY_IP}:${PORT_UNTRUSTED};
    listen 127.0.0.1:${PORT_UNTRUSTED};
    ${proxyTo(untrustingPort)}
  }
}
`;
}


describe('the hub behind nginx', { timeout: 180_000 }, () => {
  let dir;
  let ns;
  let agent;
  let trusting; // --trusted-proxy 127.0.0.1, max_connections_per_address = 2
  let untrusting; // no trusted proxy
  let nginx;

  before(async () => {
    assertHubBinExists();
    assert.ok(existsSync(NGINX_BIN), `${NGINX_BIN} is missing: scripts/deps.sh installs nginx`);
    dir = mkdtempSync(join(tmpdir(), 'poussr-proxy-'));
    // nginx's workers run as nobody: they may need to reach their temp directories.
    chmodSync(dir, 0o755);
    ns = await createNamespace();
    agent = new Agent(ns);
    await agent.ready();
    trusting = await startNsHub(ns, dir, 'trusting', {
      trustedProxy: '127.0.0.1',
      config: '[limits]\nmax_connections_per_address = 2\n',
    });
    untrusting = await startNsHub(ns, dir, 'untrusting', {});
    const confPath = join(dir, 'nginx.conf');
    writeFileSync(confPath, nginxConfig(dir, trusting.port, untrusting.port));
    nginx = new NsProcess(ns, 'nginx', NGINX_BIN, ['-p', `${dir}/`, '-c', confPath, '-e', `${dir}/error.log`]);
    nginx.child.nginx = true;
    // nginx says nothing once it listens: each listener answers the hub's /health through it when it does.
    const listeners = [
      [PROXY_IP, PORT_REMOTE, REMOTE_IP],
      ['127.0.0.1', PORT_LOCAL, '127.0.0.1'],
      ['127.0.0.1', PORT_UNTRUSTED, '127.0.0.1'],
      [PROXY_IP, PORT_UNTRUSTED, REMOTE_IP],
    ];
    for (const [host, port, localAddress] of listeners) {
      await eventually(
        async () => {
          if (!nginx.running) throw new Error(`nginx exited (code ${nginx.exitCode})\n${nginx.output()}\n${errorLog()}`);
          return agent.http({ host, port, path: '/health', localAddress }).then((res) => res.status === 200, () => false);
        },
        { timeout: START_TIMEOUT_MS, what: () => `nginx on ${host}:${port} to pass /health on\n${nginx.output()}\n${errorLog()}` },
      );
    }
  });

  after(async () => {
    const steps = [
      () => agent?.close(),
      () => nginx?.stop('SIGTERM'),
      () => trusting?.process.stop(),
      () => untrusting?.process.stop(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        console.error(`cleanup: ${err.message}`);
      }
    }
    if (ns) killNamespaceSync(ns);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function errorLog() {
    try {
      return `--- nginx error.log ---\n${readFileSync(join(dir, 'error.log'), 'utf8')}`;
    } catch {
      return '(no nginx error.log)';
    }
  }

  const viaRemote = () => `ws://${PROXY_IP}:${PORT_REMOTE}/app/${trusting.key}?${PUSHER_QUERY}`;
  const viaLocal = () => `ws://127.0.0.1:${PORT_LOCAL}/app/${trusting.key}?${PUSHER_QUERY}`;
  const direct = (hub) => `ws://127.0.0.1:${hub.port}/app/${hub.key}?${PUSHER_QUERY}`;

  /** A Pusher protocol 7 socket from `localAddress` that has received `pusher:connection_established`. */
  async function openPusher(t, url, localAddress) {
    const socket = agent.socket(url, localAddress);
    t.after(() => socket.close());
    await withTimeout(socket.opened, 10_000, `${socket.what} to open`);
    const hello = await socket.next();
    assert.equal(hello.event, 'pusher:connection_established', `${socket.what}: first frame ${JSON.stringify(hello)}`);
    socket.socketId = dataOf(hello).socket_id;
    return socket;
  }

  async function subscribeTo(socket, channel) {
    await socket.send({ event: 'pusher:subscribe', data: { channel } });
    const ok = await socket.next();
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', `subscribe ${channel}: ${JSON.stringify(ok)}`);
    assert.equal(ok.channel, channel);
  }

  /** The admin API's client list (the Clients pane), asked of `hub` directly on loopback. */
  async function adminClients(hub) {
    const res = await agent.http({
      host: '127.0.0.1',
      port: hub.port,
      path: '/admin/api/clients',
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(res.status, 200, `GET /admin/api/clients: ${res.body}`);
    return JSON.parse(res.body).clients;
  }

  /** Waits until `hub` has let go of every connection (those of the test before are closed by its end). */
  async function idle(hub) {
    let last;
    await eventually(
      async () => {
        last = await adminClients(hub);
        return last.length === 0;
      },
      { what: () => `the hub to have no connection left (has ${JSON.stringify(last)})` },
    );
  }

  /** An anonymous (or `headers`-carrying) Poussr v1 publish of `body` as `name` on `channel`. */
  function publishV1({ host, port, localAddress }, channel, name, body, headers = {}) {
    return agent.http({
      host,
      port,
      localAddress,
      method: 'POST',
      path: `/v1/channels/${encodeURIComponent(channel)}/events?name=${encodeURIComponent(name)}`,
      headers: { 'Content-Type': 'text/plain', ...headers },
      body,
    });
  }

  /** Asserts a 401 with a JSON error that says the Authorization header is what is missing. */
  function assertNeedsAuthorization(res, what) {
    assert.equal(res.status, 401, `${what}: status (body: ${res.body})`);
    assert.match(res.headers['content-type'] ?? '', /application\/json/, `${what}: content type`);
    const body = JSON.parse(res.body);
    assert.equal(typeof body.error, 'string', `${what}: body.error (body: ${res.body})`);
    assert.match(body.error, /Authorization/, `${what}: the error names the header to send`);
  }

  const remoteThroughNginx = { host: PROXY_IP, port: PORT_REMOTE, localAddress: REMOTE_IP };
  const localThroughNginx = { host: '127.0.0.1', port: PORT_LOCAL, localAddress: '127.0.0.1' };

  test("the Clients pane shows each client's own address, not nginx's", async (t) => {
    await idle(trusting);
    const remote = await openPusher(t, viaRemote(), REMOTE_IP);
    const local = await openPusher(t, viaLocal(), '127.0.0.1');

    const clients = await adminClients(trusting);
    const bySocket = new Map(clients.map((c) => [c.socket_id, c]));
    const remoteRow = bySocket.get(remote.socketId);
    const localRow = bySocket.get(local.socketId);
    assert.ok(remoteRow, `the client from ${REMOTE_IP} is listed: ${JSON.stringify(clients)}`);
    assert.ok(localRow, `the client from 127.0.0.1 is listed: ${JSON.stringify(clients)}`);
    // nginx reaches the hub from 127.0.0.1; its own address on the client's side is PROXY_IP.
    assert.notEqual(ipOf(remoteRow.remote), '127.0.0.1', `not nginx's address: ${JSON.stringify(remoteRow)}`);
    assert.notEqual(ipOf(remoteRow.remote), PROXY_IP, `not nginx's listening address: ${JSON.stringify(remoteRow)}`);
    assert.equal(ipOf(remoteRow.remote), REMOTE_IP, `the real client: ${JSON.stringify(remoteRow)}`);
    assert.equal(ipOf(localRow.remote), '127.0.0.1', `the local client: ${JSON.stringify(localRow)}`);
  });

  test('the per-address limit counts each real client, not nginx', async (t) => {
    await idle(trusting);
    await openPusher(t, viaRemote(), REMOTE_IP);
    await openPusher(t, viaRemote(), REMOTE_IP);

    const third = agent.socket(viaRemote(), REMOTE_IP);
    t.after(() => third.close());
    const refusal = await third.next();
    assert.equal(refusal.event, 'pusher:error', `the third from ${REMOTE_IP} is refused: ${JSON.stringify(refusal)}`);
    const { code, message } = dataOf(refusal);
    assert.equal(code, 4100, `the refusal's code: ${JSON.stringify(refusal)}`);
    assert.ok(message.includes(REMOTE_IP), `the refusal names the client's address: ${message}`);
    assert.equal((await third.waitClosed()).code, 4100, 'the close code, through nginx');

    // Through the same nginx, whose connections to the hub all come from 127.0.0.1: a third connection
    // from nginx's address, which the limit would refuse if it counted nginx.
    const local = await openPusher(t, viaLocal(), '127.0.0.1');
    const remotes = (await adminClients(trusting)).filter((c) => ipOf(c.remote) === REMOTE_IP);
    assert.equal(remotes.length, 2, `the two first from ${REMOTE_IP} are still there: ${JSON.stringify(remotes)}`);
    assert.ok(local.isOpen, 'the local client is still connected');
  });

  test('anonymous v1 publishing: refused to a client elsewhere, allowed to this machine, through nginx', async (t) => {
    await idle(trusting);
    const channel = uniqueName('proxy-v1');
    const subscriber = await openPusher(t, direct(trusting), '127.0.0.1');
    await subscribeTo(subscriber, channel);

    const refused = await publishV1(remoteThroughNginx, channel, 'from-elsewhere', '{"n":1}');
    assertNeedsAuthorization(refused, `anonymous publish from ${REMOTE_IP} through nginx`);
    // A client elsewhere that names itself 127.0.0.1: nginx appends its real address, the nearest hop.
    const spoofed = await publishV1(remoteThroughNginx, channel, 'spoofed', '{"n":2}', { 'X-Forwarded-For': '127.0.0.1' });
    assertNeedsAuthorization(spoofed, `anonymous publish from ${REMOTE_IP} claiming to be 127.0.0.1`);
    // The same claim in the header nginx does not write (it passes it through untouched): never read.
    const spoofedStandard = await publishV1(remoteThroughNginx, channel, 'spoofed', '{"n":2}', { Forwarded: 'for=127.0.0.1' });
    assertNeedsAuthorization(spoofedStandard, `anonymous publish from ${REMOTE_IP} with Forwarded: for=127.0.0.1`);

    const sentinelRes = await publishV1(localThroughNginx, channel, 'sentinel', '{"n":3}');
    assert.equal(sentinelRes.status, 201, `anonymous publish from 127.0.0.1 through nginx: ${sentinelRes.body}`);
    const first = await subscriber.next();
    assert.deepEqual(
      [first.event, first.channel, first.data],
      ['sentinel', channel, '{"n":3}'],
      `the first event the subscriber gets is the sentinel (the refused ones never went out): ${JSON.stringify(first)}`,
    );

    // The refusal is about the token alone: the same client with the app secret is let through.
    const withSecret = await publishV1(remoteThroughNginx, channel, 'with-secret', '{"n":4}', { Authorization: `Bearer ${trusting.secret}` });
    assert.equal(withSecret.status, 201, `publish from ${REMOTE_IP} with the app secret: ${withSecret.body}`);
    const second = await subscriber.next();
    assert.deepEqual([second.event, second.data], ['with-secret', '{"n":4}'], JSON.stringify(second));
  });

  test('a hub that does not trust the proxy never takes a forwarded request for this machine', async (t) => {
    await idle(untrusting);
    const channel = uniqueName('proxy-untrusted');
    const subscriber = await openPusher(t, direct(untrusting), '127.0.0.1');
    await subscribeTo(subscriber, channel);

    // From 127.0.0.1 through nginx on 127.0.0.1, with nginx's X-Forwarded-For: 127.0.0.1.
    const refused = await publishV1({ host: '127.0.0.1', port: PORT_UNTRUSTED, localAddress: '127.0.0.1' }, channel, 'forwarded', '{"n":1}');
    assertNeedsAuthorization(refused, 'anonymous publish through an untrusted nginx on loopback');

    const sentinelRes = await publishV1({ host: '127.0.0.1', port: untrusting.port, localAddress: '127.0.0.1' }, channel, 'sentinel', '{"n":2}');
    assert.equal(sentinelRes.status, 201, `anonymous publish straight to the hub on loopback: ${sentinelRes.body}`);
    const first = await subscriber.next();
    assert.deepEqual(
      [first.event, first.channel, first.data],
      ['sentinel', channel, '{"n":2}'],
      `the first event the subscriber gets is the sentinel (the refused one never went out): ${JSON.stringify(first)}`,
    );

    // Its header ignored, a client elsewhere through it is nginx itself (127.0.0.1 to the hub).
    const throughUntrusted = await openPusher(t, `ws://${PROXY_IP}:${PORT_UNTRUSTED}/app/${untrusting.key}?${PUSHER_QUERY}`, REMOTE_IP);
    const row = (await adminClients(untrusting)).find((c) => c.socket_id === throughUntrusted.socketId);
    assert.ok(row, `the client from ${REMOTE_IP} through the untrusted nginx is listed`);
    assert.equal(ipOf(row.remote), '127.0.0.1', `the untrusted proxy's address, not the one its header names: ${JSON.stringify(row)}`);
  });
});
