// Starts and stops the real hub binary for the client tests.
//
// Each test file runs its own hub on 127.0.0.1 with a port chosen by the OS, random credentials and a fresh
// data directory, so files never share state and a leftover hub from another run cannot answer for this one.

import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertBuilt, cargoBinary } from '../cargo-bin.mjs';

const bin = cargoBinary('poussr', 'POUSSR_BIN');

/** The hub binary: $POUSSR_BIN, else the debug build in cargo's target directory for this checkout. */
export const HUB_BIN = bin.path;

/**
 * The Windows build (`POUSSR_BIN=…/poussr.exe`, see scripts/wine.sh) runs under Wine: the command is
 * `wine poussr.exe …`, and that process becomes the program itself, so its pid, signals and exit are the hub's.
 * Windows has no SIGTERM. Wine turns SIGINT into the console's Ctrl-C (CTRL_C_EVENT), which `poussr.exe serve`
 * answers as `poussr serve` answers SIGTERM on Linux: clients are closed with 4200, then it exits 0.
 */
export const UNDER_WINE = process.platform !== 'win32' && HUB_BIN.toLowerCase().endsWith('.exe');

/** The signal that asks the hub to stop gracefully: SIGTERM, or SIGINT (a console Ctrl-C) under Wine. */
export const STOP_SIGNAL = UNDER_WINE ? 'SIGINT' : 'SIGTERM';

/** The command line that runs the hub with `args`: `[command, argv]`. */
export function hubCommand(args) {
  return UNDER_WINE ? ['wine', [HUB_BIN, ...args]] : [HUB_BIN, args];
}

/** Throws at once, naming the path and how to build it, when there is no hub binary at HUB_BIN. */
export function assertHubBinExists() {
  assertBuilt(bin, 'hub binary', 'cargo build --bin poussr');
}

const READY_LINE = /listening on https?:\/\/[^\s]*:(\d+)/;
const START_TIMEOUT_MS = 15_000;
// The hub gives its sessions up to 5 s to close; under Wine everything is slower.
const STOP_GRACE_MS = UNDER_WINE ? 15_000 : 5_000;

// Hubs still running, killed if this test process dies before its `after` hooks ran, so that no test run
// leaves a hub holding a port behind it.
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Random credentials per run: the hub must not rely on any fixed, well-known ones. */
export function randomCredentials() {
  return {
    appId: String(randomInt(100_000, 999_999_999)),
    key: randomBytes(10).toString('hex'),
    secret: randomBytes(16).toString('hex'),
  };
}

/**
 * A hub process. `start()` can be called again after `stop()`: it comes back on the same port with the same
 * credentials and data directory, which is what a restart looks like to clients.
 */
export class Hub {
  /**
   * @param {object} [options]
   * @param {number} [options.port]   0 (default) lets the OS choose; kept across restarts once known
   * @param {string} [options.config] TOML text written to a file and passed as --config
   * @param {string} [options.app]    TOML settings of the hub's own app (e.g. `client_events = false` or
   *                                  `[[apps.webhooks]]` tables), written under an `[[apps]]` table that
   *                                  carries the test credentials
   * @param {object} [options.env]    extra environment variables (RUST_LOG defaults to warn)
   * @param {string} [options.bind]   the address to listen on (127.0.0.1 by default)
   * @param {string[]} [options.prefix] a command the hub runs under, e.g. `['ip', 'netns', 'exec', ns]`
   * @param {object} [options.credentials] `{appId, key, secret}` instead of random ones
   * @param {number} [options.fileSizeLimit] bytes any file the hub writes may grow to (RLIMIT_FSIZE, set by a
   *                                  shell that then becomes the hub, with SIGXFSZ ignored so that a write past
   *                                  it fails with EFBIG instead of killing the hub): a disk that fills up
   */
  constructor(options = {}) {
    // Hubs of one cluster share their app: give them the same `credentials`.
    Object.assign(this, options.credentials ?? randomCredentials());
    this.port = options.port ?? 0;
    this.dataDir = mkdtempSync(join(tmpdir(), 'poussr-test-'));
    this.configPath = null;
    if (options.config !== undefined || options.app !== undefined) {
      // Top-level settings first: TOML puts every key after a table header into that table.
      let text = options.config ?? '';
      if (options.app !== undefined) {
        text += `\n[[apps]]\nid = "${this.appId}"\nkey = "${this.key}"\nsecret = "${this.secret}"\n${options.app}\n`;
      }
      this.configPath = join(this.dataDir, 'poussr.toml');
      writeFileSync(this.configPath, text);
    }
    this.env = options.env ?? {};
    // Where it listens, and what it runs under (e.g. `ip netns exec NS`): loopback, directly, by default.
    this.bind = options.bind ?? '127.0.0.1';
    this.prefix = options.prefix ?? [];
    this.fileSizeLimit = options.fileSizeLimit;
    this.child = null;
    this.stdout = '';
    this.stderr = '';
    this.exitCode = undefined;
    this.exitSignal = undefined;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** What the hub printed so far, for failure messages. */
  output() {
    return `--- hub stdout ---\n${this.stdout}\n--- hub stderr ---\n${this.stderr}`;
  }

  async start() {
    if (this.child) throw new Error('hub already running');
    assertHubBinExists();
    const args = [
      'serve',
      '--bind', this.bind,
      '--port', String(this.port),
      '--app-id', this.appId,
      '--app-key', this.key,
      '--app-secret', this.secret,
      '--data-dir', this.dataDir,
    ];
    if (this.configPath) args.push('--config', this.configPath);

    // `exec` makes the shell become the hub: the pid, the signals and the exit are the hub's own.
    const [bareCmd, bareArgv] = hubCommand(args);
    const [hubCmd, hubArgv] = this.prefix.length ? [this.prefix[0], [...this.prefix.slice(1), bareCmd, ...bareArgv]] : [bareCmd, bareArgv];
    const [command, argv] =
      this.fileSizeLimit === undefined
        ? [hubCmd, hubArgv]
        : ['sh', ['-c', `trap '' XFSZ; ulimit -f ${Math.ceil(this.fileSizeLimit / 512)}; exec "$0" "$@"`, hubCmd, ...hubArgv]];
    const child = spawn(command, argv, {
      env: { ...process.env, RUST_LOG: 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    running.add(child);
    this.exitCode = undefined;
    this.exitSignal = undefined;
    // One promise for the exit, shared by start() (a hub that dies while starting) and stop(). A process that
    // could not be spawned at all emits 'error' and never 'exit': that ends it too, or stop() would wait forever.
    this.exited = new Promise((resolveExit) => {
      const ended = (code, signal) => {
        running.delete(child);
        this.exitCode = code;
        this.exitSignal = signal;
        resolveExit();
      };
      child.on('exit', ended);
      child.on('error', () => {
        if (child.pid === undefined) ended(null, null);
      });
    });
    // Output accumulates over restarts (for failure messages); this start's ready line is searched after `from`.
    const from = this.stdout.length;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });

    const port = await new Promise((resolveReady, rejectReady) => {
      const fail = (why) => {
        clearTimeout(timer);
        rejectReady(new Error(`hub did not start (${HUB_BIN} ${args.join(' ')}): ${why}\n${this.output()}`));
      };
      const timer = setTimeout(() => fail(`no "listening on" line within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      child.stdout.on('data', (chunk) => {
        this.stdout += chunk;
        const match = READY_LINE.exec(this.stdout.slice(from));
        if (match) {
          clearTimeout(timer);
          resolveReady(Number(match[1]));
        }
      });
      child.on('error', (err) => fail(`could not run ${HUB_BIN}: ${err.message}`));
      this.exited.then(() => fail(`exited early with code ${this.exitCode} signal ${this.exitSignal}`));
    }).catch(async (err) => {
      await this.stop();
      throw err;
    });
    this.port = port;
    return this;
  }

  /** SIGTERM (SIGINT under Wine), then SIGKILL if the hub has not exited within 5 s (15 s under Wine). */
  async stop() {
    const child = this.child;
    if (!child) return;
    if (this.exitCode === undefined) {
      child.kill(STOP_SIGNAL);
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.child = null;
  }

  /** SIGKILL: the hub gets no chance to close anything (a crash, a power switch for the process). */
  async kill() {
    const child = this.child;
    if (!child) return;
    if (this.exitCode === undefined) {
      child.kill('SIGKILL');
      await this.exited;
    }
    this.child = null;
  }

  /** Stop, then start again on the same port. */
  async restart() {
    await this.stop();
    await this.start();
    return this;
  }

  /** Stop and remove the data directory: what every test's `after` calls. */
  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** Starts a hub; pair it with `after(() => hub.close())`. */
export async function startHub(options) {
  const hub = new Hub(options);
  try {
    await hub.start();
  } catch (err) {
    rmSync(hub.dataDir, { recursive: true, force: true });
    throw err;
  }
  return hub;
}
