// What the cluster tests share: a real redis-server of the test's own on a free loopback port, hubs of one
// cluster on it, their /health, and a TCP proxy the test controls (a load balancer that can be pointed
// elsewhere, or a network that silently drops everything).

import { spawn, execFile } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { startHub } from './hub.mjs';
import { eventually } from './wire.mjs';

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** redis-server on `port`, in memory only; resolves once it accepts connections. */
export async function startRedis(port) {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await eventually(() => output.includes('Ready to accept connections'), { timeout: 10_000, what: `redis-server ready:\n${output}` });
  return {
    child,
    port,
    /** Runs one command with redis-cli and returns its output, trimmed. */
    async cli(...args) {
      const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(port), '--raw', ...args]);
      return stdout.trim();
    },
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A hub of the cluster `prefix` on Redis at `redisPort` (`extra`: more top-level settings, `app`: the app's). */
export function startClusterHub({ credentials, redisPort, prefix, nodeTimeoutMs = 3000, extra = '', app }) {
  return startHub({
    credentials,
    config: `adapter = "redis"\nredis_url = "redis://127.0.0.1:${redisPort}"\nredis_prefix = "${prefix}"\nnode_timeout_ms = ${nodeTimeoutMs}\n${extra}`,
    ...(app === undefined ? {} : { app }),
  });
}

export async function health(hub) {
  const res = await fetch(`${hub.httpUrl}/health`);
  return res.json();
}

/** Resolves once every hub's link is up and each knows `others` other hubs. */
export async function linked(hubs, others = hubs.length - 1, timeout = 15_000) {
  await eventually(
    async () => {
      const all = await Promise.all(hubs.map(health));
      return all.every((h) => h.cluster?.link === 'up' && h.cluster.others.length === others);
    },
    { timeout, what: `${hubs.length} hubs linked, each aware of ${others} other(s)` },
  );
}

/**
 * A TCP proxy on a free loopback port that forwards to `targetPort`. `blackhole()` stops forwarding in both
 * directions without closing anything (no FIN, no reset: packets silently dropped, as a pulled cable or a
 * dropping firewall does), and accepts new connections the same way; `restore()` ends that: the connections
 * that were cut are closed, and new ones are forwarded again. `retarget(port)` sends new connections
 * elsewhere (a load balancer moving clients to another server); `cutAll()` closes every connection.
 */
export async function startTcpProxy(targetPort) {
  let target = targetPort;
  let holed = false;
  const pairs = new Set();
  const server = net.createServer((client) => {
    const pair = { client, upstream: null };
    pairs.add(pair);
    const forget = () => {
      pairs.delete(pair);
      client.destroy();
      pair.upstream?.destroy();
    };
    client.on('error', forget);
    client.on('close', forget);
    if (holed) {
      client.pause();
      pair.holed = true;
      return;
    }
    pair.upstream = net.connect(target, '127.0.0.1');
    pair.upstream.on('error', forget);
    pair.upstream.on('close', forget);
    client.pipe(pair.upstream);
    pair.upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    get connections() {
      return pairs.size;
    },
    blackhole() {
      holed = true;
      for (const pair of pairs) {
        pair.holed = true;
        if (pair.upstream) {
          pair.client.unpipe(pair.upstream);
          pair.upstream.unpipe(pair.client);
          pair.upstream.pause();
        }
        pair.client.pause();
      }
    },
    restore() {
      holed = false;
      for (const pair of [...pairs].filter((p) => p.holed)) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
    },
    retarget(port) {
      target = port;
    },
    cutAll() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
    },
    async close() {
      this.cutAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
