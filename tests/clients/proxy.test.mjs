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
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { HUB_BIN, assertHubBinExists, randomCredentials } from './hub.mjs';
import { Inbox, eventually, uniqueName, withTimeout } from './wire.mjs';

const run = promisify(execFile);

const NGINX_BIN = '/usr/sbin/nginx';
const ADMIN_TOKEN = '0123456789abcdef0123';
/** nginx's address on the namespace's "network", and the client that stands for another machine. */
const PROXY_IP = '10.213.0.1';
const REMOTE_IP = '10.213.0.2';
/**
 * nginx's listeners. The namespace is this file's own and holds nothing else, so fixed ports cannot clash;
 * the hubs take theirs from the OS (ephemeral ports, far above these).
 */
const PORT_REMOTE = 8080; // on PROXY_IP, to the hub that trusts 127.0.0.1
const PORT_LOCAL = 8081; // on 127.0.0.1, to the same hub
const PORT_UNTRUSTED = 8082; // on PROXY_IP and 127.0.0.1, to the hub that trusts no proxy
const PUSHER_QUERY = 'protocol=7&client=js&version=8.4.0&flash=false';
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const AGENT_CALL_TIMEOUT_MS = 15_000;

// What this file started, cleaned up if the process dies before its `after` hook ran: processes are killed
// by their id, and the namespace's remaining processes (nginx's workers) with them before it is deleted.
const children = new Set();
const namespaces = new Set();
process.on('exit', () => {
  for (const child of children) child.kill(child.nginx ? 'SIGTERM' : 'SIGKILL');
  for (const ns of namespaces) killNamespaceSync(ns);
});

function killNamespaceSync(ns) {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 }).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace any more
  }
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // already deleted
  }
  namespaces.delete(ns);
}

/** A fresh namespace: `lo` up, and a veth pair (both ends inside) carrying PROXY_IP and REMOTE_IP. */
async function createNamespace() {
  const ns = `poussr-px-${randomBytes(4).toString('hex')}`;
  const ip = (...args) => run('ip', args, { timeout: 10_000 });
  await ip('netns', 'add', ns);
  namespaces.add(ns);
  try {
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'add', 'px0', 'type', 'veth', 'peer', 'name', 'px1');
    await ip('-n', ns, 'addr', 'add', `${PROXY_IP}/24`, 'dev', 'px0');
    await ip('-n', ns, 'addr', 'add', `${REMOTE_IP}/24`, 'dev', 'px1');
    await ip('-n', ns, 'link', 'set', 'px0', 'up');
    await ip('-n', ns, 'link', 'set', 'px1', 'up');
  } catch (err) {
    killNamespaceSync(ns);
    throw new Error(`could not set up the network namespace ${ns}: ${err.message}\n${err.stderr ?? ''}`);
  }
  return ns;
}

/**
 * A process run with `ip netns exec NS command ...` (which execs the command: the pid, the signals and the
 * exit are the command's own). Its output is kept for failure messages and `waitFor`.
 */
class NsProcess {
  constructor(ns, label, command, args, { stdin = false, env = {} } = {}) {
    this.label = label;
    this.stdout = '';
    this.stderr = '';
    this.exitCode = undefined;
    this.exitSignal = undefined;
    this.child = spawn('ip', ['netns', 'exec', ns, command, ...args], {
      env: { ...process.env, ...env },
      stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    children.add(this.child);
    this.exited = new Promise((resolve) => {
      const ended = (code, signal) => {
        children.delete(this.child);
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      };
      this.child.on('exit', ended);
      this.child.on('error', (err) => {
        this.stderr += `\n(could not run ${command}: ${err.message})`;
        if (this.child.pid === undefined) ended(null, null);
      });
    });
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      this.stdout += chunk;
    });
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
  }

  get running() {
    return this.exitCode === undefined;
  }

  output() {
    return `--- ${this.label} stdout ---\n${this.stdout}\n--- ${this.label} stderr ---\n${this.stderr}`;
  }

  /** Resolves with the match once `regex` matches the stdout; fails if the process exits first. */
  waitFor(regex, timeout, what) {
    const seen = new Promise((resolve, reject) => {
      const check = () => {
        const match = regex.exec(this.stdout);
        if (match) {
          this.child.stdout.off('data', check);
          resolve(match);
        }
      };
      this.child.stdout.on('data', check);
      check();
      this.exited.then(() =>
        reject(new Error(`${this.label} exited (code ${this.exitCode}, signal ${this.exitSignal}) before ${what}\n${this.output()}`)),
      );
    });
    return withTimeout(seen, timeout, `${what}\n${this.output()}`);
  }

  /** `signal`, then SIGKILL if it has not exited within 5 s. */
  async stop(signal = 'SIGTERM') {
    if (this.running) {
      this.child.kill(signal);
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** A hub in the namespace on 127.0.0.1 with an OS-chosen port; `trustedProxy` adds `--trusted-proxy`. */
async function startNsHub(ns, dir, name, { trustedProxy, config = '' }) {
  const hub = { ...randomCredentials(), dataDir: join(dir, name) };
  const configPath = join(dir, `${name}.toml`);
  writeFileSync(configPath, `admin_token = "${ADMIN_TOKEN}"\n${config}`);
  const args = [
    'serve',
    '--bind', '127.0.0.1',
    '--port', '0',
    '--app-id', hub.appId,
    '--app-key', hub.key,
    '--app-secret', hub.secret,
    '--data-dir', hub.dataDir,
    '--config', configPath,
  ];
  if (trustedProxy) args.push('--trusted-proxy', trustedProxy);
  hub.process = new NsProcess(ns, `hub ${name}`, HUB_BIN, args, { env: { RUST_LOG: 'warn' } });
  const [, port] = await hub.process.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/, START_TIMEOUT_MS, `hub ${name}'s "listening on" line`);
  hub.port = Number(port);
  return hub;
}

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

/**
 * The agent in the namespace: runs HTTP requests and WebSockets from the local address it is told, and
 * reports answers and frames on stdout. It exits when its stdin closes.
 */
const AGENT_SOURCE = String.raw`
import http from 'node:http';
import readline from 'node:readline';
const { WebSocket } = await import(process.env.PX_WS_MODULE);
const sockets = new Map();
const out = (message) => process.stdout.write(JSON.stringify(message) + '\n');

function request(cmd) {
  return new Promise((resolve, reject) => {
    const headers = { ...(cmd.headers ?? {}) };
    if (cmd.body !== undefined) headers['Content-Length'] = Buffer.byteLength(cmd.body);
    const req = http.request(
      { host: cmd.host, port: cmd.port, path: cmd.path, method: cmd.method, headers, localAddress: cmd.localAddress, agent: false, timeout: 10000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => { body += chunk; });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(cmd.body);
  });
}

function open(cmd) {
  const sock = cmd.sock;
  const ws = new WebSocket(cmd.url, { localAddress: cmd.localAddress, handshakeTimeout: 10000 });
  sockets.set(sock, ws);
  ws.on('open', () => out({ sock, type: 'open' }));
  ws.on('message', (data) => out({ sock, type: 'frame', text: data.toString() }));
  ws.on('unexpected-response', (req, res) => {
    out({ sock, type: 'error', message: 'handshake answered ' + res.statusCode });
    req.destroy();
  });
  ws.on('error', (err) => out({ sock, type: 'error', message: err.message }));
  ws.on('close', (code, reason) => {
    sockets.delete(sock);
    out({ sock, type: 'close', code, reason: reason.toString() });
  });
}

async function handle(cmd) {
  switch (cmd.op) {
    case 'http':
      return request(cmd);
    case 'ws':
      open(cmd);
      return true;
    case 'send':
      sockets.get(cmd.sock)?.send(cmd.text);
      return true;
    case 'close':
      sockets.get(cmd.sock)?.terminate();
      return true;
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = JSON.parse(line);
  handle(cmd).then(
    (result) => out({ id: cmd.id, result }),
    (err) => out({ id: cmd.id, error: String(err?.message ?? err) }),
  );
});
lines.on('close', () => {
  for (const ws of sockets.values()) ws.terminate();
  process.exit(0);
});
out({ ready: true });
`;

/** The test side of the agent. */
class Agent {
  constructor(ns) {
    this.process = new NsProcess(ns, 'client agent', process.execPath, ['--input-type=module', '-e', AGENT_SOURCE], {
      stdin: true,
      env: { PX_WS_MODULE: import.meta.resolve('ws') },
    });
    this.calls = new Map();
    this.sockets = new Map();
    this.nextId = 0;
    let buffered = '';
    this.process.child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.trim() !== '') this.dispatch(JSON.parse(line));
      }
    });
    this.process.exited.then(() => {
      for (const { reject } of this.calls.values()) reject(new Error(`the client agent exited\n${this.process.output()}`));
      this.calls.clear();
    });
    this.process.child.stdin.on('error', () => {}); // an agent that died is reported by its calls
  }

  ready() {
    return this.process.waitFor(/"ready":true/, START_TIMEOUT_MS, 'the client agent to start');
  }

  dispatch(message) {
    if (message.id !== undefined) {
      const call = this.calls.get(message.id);
      this.calls.delete(message.id);
      if (!call) return;
      if ('error' in message) call.reject(new Error(`${call.what}: ${message.error}`));
      else call.resolve(message.result);
    } else if (message.sock !== undefined) {
      this.sockets.get(message.sock)?.event(message);
    }
  }

  call(command, what) {
    const id = this.nextId++;
    const answered = new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, what });
    });
    this.process.child.stdin.write(`${JSON.stringify({ id, ...command })}\n`);
    return withTimeout(answered, AGENT_CALL_TIMEOUT_MS, what).finally(() => this.calls.delete(id));
  }

  /** An HTTP request from `localAddress`: `{status, headers, body}`. */
  http({ host, port, path, method = 'GET', headers = {}, body, localAddress = '127.0.0.1' }) {
    return this.call({ op: 'http', host, port, path, method, headers, body, localAddress }, `${method} http://${host}:${port}${path} from ${localAddress}`);
  }

  /** A WebSocket to `url` from `localAddress`; frames queue in its inbox as they come. */
  socket(url, localAddress) {
    const socket = new NsSocket(this, `s${this.nextId++}`, url, localAddress);
    this.sockets.set(socket.id, socket);
    this.call({ op: 'ws', sock: socket.id, url, localAddress }, `open ${url}`).catch((err) => socket.event({ type: 'error', message: err.message }));
    return socket;
  }

  async close() {
    if (this.process.running) this.process.child.stdin.end();
    await withTimeout(this.process.exited, STOP_GRACE_MS, 'the client agent to exit').catch(() => this.process.stop('SIGKILL'));
  }
}

/** A WebSocket the agent holds: like RawSocket in wire.mjs, with frames parsed and queued. */
class NsSocket {
  constructor(agent, id, url, localAddress) {
    this.agent = agent;
    this.id = id;
    this.url = url;
    this.what = `${url} from ${localAddress}`;
    this.frames = new Inbox(`frames of ${this.what}`);
    this.errors = [];
    this.isOpen = false;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpened = resolve;
      this.closed.then(({ code }) => reject(new Error(`${this.what} closed before opening (code ${code}; ${this.errors.join('; ')})`)));
    });
    this.opened.catch(() => {}); // observed by tests that expect the open to fail
  }

  event(message) {
    if (message.type === 'open') {
      this.isOpen = true;
      this.resolveOpened();
    } else if (message.type === 'frame') {
      let frame;
      try {
        frame = JSON.parse(message.text);
      } catch {
        frame = { unparsable: message.text };
      }
      this.frames.push(frame);
    } else if (message.type === 'error') {
      this.errors.push(message.message);
      if (!this.agent.process.running) this.resolveClosed({ code: 1006, reason: 'the agent is gone' });
    } else if (message.type === 'close') {
      this.isOpen = false;
      this.agent.sockets.delete(this.id);
      this.resolveClosed({ code: message.code, reason: message.reason });
    }
  }

  send(value) {
    return this.agent.call({ op: 'send', sock: this.id, text: typeof value === 'string' ? value : JSON.stringify(value) }, `send on ${this.what}`);
  }

  next(timeout = 5000) {
    return this.frames.next(timeout);
  }

  waitClosed(timeout = 5000) {
    return withTimeout(this.closed, timeout, `${this.what} to close`);
  }

  close() {
    if (!this.agent.process.running) return Promise.resolve();
    return this.agent.call({ op: 'close', sock: this.id }, `close ${this.what}`).catch(() => {});
  }
}

/** `data` of a Pusher frame, parsed when it came as a JSON string. */
function dataOf(frame) {
  return typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data;
}

/** The IP of a `SocketAddr` as the hub prints it: `10.1.2.3:0` → `10.1.2.3`, `[::1]:80` → `::1`. */
function ipOf(remote) {
  return remote.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
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
