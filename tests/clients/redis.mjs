// What the cluster tests share: a real redis-server of the test's own on a free loopback port, hubs of one
// cluster on it, and their /health.

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
