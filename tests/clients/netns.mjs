// A network namespace of a test's own, for clients that must not be on loopback: `poussr-px-<random>`,
// with `lo` up and a veth pair whose two ends both stay inside it (PROXY_IP and REMOTE_IP), so no traffic
// touches the machine's own interfaces. Processes run in it with `ip netns exec`; the test talks to its
// clients through an agent (a small Node script in the namespace) over stdin/stdout, one JSON object a line.
// Everything started here is stopped when the test process exits, even early.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HUB_BIN, randomCredentials } from './hub.mjs';
import { Inbox, withTimeout } from './wire.mjs';

export const run = promisify(execFile);

export const NGINX_BIN = '/usr/sbin/nginx';
export const ADMIN_TOKEN = '0123456789abcdef0123';
/** nginx's address on the namespace's "network", and the client that stands for another machine. */
export const PROXY_IP = '10.213.0.1';
export const REMOTE_IP = '10.213.0.2';
/**
 * nginx's listeners. The namespace is this file's own and holds nothing else, so fixed ports cannot clash;
 * the hubs take theirs from the OS (ephemeral ports, far above these).
 */
export const PORT_REMOTE = 8080; // on PROXY_IP, to the hub that trusts 127.0.0.1
export const PORT_LOCAL = 8081; // on 127.0.0.1, to the same hub
export const PORT_UNTRUSTED = 8082; // on PROXY_IP and 127.0.0.1, to the hub that trusts no proxy
export const PUSHER_QUERY = 'protocol=7&client=js&version=8.4.0&flash=false';
export const START_TIMEOUT_MS = 15_000;
export const STOP_GRACE_MS = 5_000;
export const AGENT_CALL_TIMEOUT_MS = 15_000;

// What this file started, cleaned up if the process dies before its `after` hook ran: processes are killed
// by their id, and the namespace's remaining processes (nginx's workers) with them before it is deleted.
export const children = new Set();
export const namespaces = new Set();
process.on('exit', () => {
  for (const child of children) child.kill(child.nginx ? 'SIGTERM' : 'SIGKILL');
  for (const ns of namespaces) killNamespaceSync(ns);
});

export function killNamespaceSync(ns) {
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
export async function createNamespace() {
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
export class NsProcess {
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
      // Its exit is awaited, with a deadline: a process that ignores the signal is killed.
      await withTimeout(this.exited, STOP_GRACE_MS, `${this.label} to exit`).catch(() => {
        this.child.kill('SIGKILL');
        return this.exited;
      });
    }
  }
}

/** A hub in the namespace on 127.0.0.1 with an OS-chosen port; `trustedProxy` adds `--trusted-proxy`. */
export async function startNsHub(ns, dir, name, { trustedProxy, config = '' }) {
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

/**
 * The agent in the namespace: runs HTTP requests and WebSockets from the local address it is told, and
 * reports answers and frames on stdout. It exits when its stdin closes.
 */
export const AGENT_SOURCE = String.raw`
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
export class Agent {
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
export class NsSocket {
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
export function dataOf(frame) {
  return typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data;
}

/** The IP of a `SocketAddr` as the hub prints it: `10.1.2.3:0` → `10.1.2.3`, `[::1]:80` → `::1`. */
export function ipOf(remote) {
  return remote.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
}

