// Poussr's Windows build where Windows differs: run under Wine (scripts/wine.sh) with the real clients.
// - paths with spaces and non-ASCII letters: the data folder, the config file, the certificate files;
// - a console's Ctrl-C, and the end of the Windows session (WM_ENDSESSION, sent by `wineboot --end-session`),
//   close poussr.exe's clients with 4200, as SIGTERM does on Linux;
// - the tray app (poussr-desktop.exe): a second launch with `--quit` reaches the first through its named pipe,
//   and the end of the session closes its clients with 4200;
// - `poussr.exe service install|start|stop|uninstall` through Wine's service control manager;
// - the installer run silently, then its uninstaller, which keeps %APPDATA%\Poussr unless asked.
// The protocol suites themselves run against the same build (scripts/test.sh windows).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import {
  closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { HUB_BIN, Hub, UNDER_WINE, randomCredentials } from '../hub.mjs';
import {
  connectPusher,
  eventually,
  inboxOf,
  openPusherSocket,
  serverSdk,
  subscribe,
  uniqueName,
  withTimeout,
} from '../wire.mjs';

const run = promisify(execFile);

/** `wine program args…`, bounded in time; resolves with `{stdout, stderr}`, rejects with them on failure. */
async function wine(program, args, { timeout = 90_000 } = {}) {
  try {
    return await run('wine', [program, ...args], { timeout, encoding: 'utf8' });
  } catch (err) {
    err.message += `\n--- stdout ---\n${err.stdout}\n--- stderr ---\n${err.stderr}`;
    throw err;
  }
}

/**
 * Runs a command that leaves programs running behind it (wineserver, services.exe) and resolves with its exit
 * code. Its output is not read: what it leaves behind holds the same pipes, which `execFile` would wait for.
 */
function detached(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

/** The Windows spelling of a Linux path under Wine (its Z: drive is the root folder). */
const windowsPath = (path) => `Z:${path.replaceAll('/', '\\')}`;

/** A folder whose path has spaces and letters outside ASCII, as a Windows user name often does. */
function awkwardFolder(t) {
  const root = mkdtempSync(join(tmpdir(), 'poussr wine '));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'Dossier partagé', 'José Müller 東京');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs `promise` with a bound, saying what it waited for. */
const bounded = (promise, what, ms = 30_000) => withTimeout(promise, ms, what);

/** A port that is free on 127.0.0.1 now. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the Windows build under Wine', { skip: !UNDER_WINE && 'POUSSR_BIN is not a Windows build' }, () => {
  after(async () => {
    // Nothing of this suite may outlive it: Wine's own processes for this prefix end too.
    await run('wineserver', ['-k']).catch(() => {});
  });

  test('a data folder, a config file and certificates in paths with spaces and non-ASCII letters', async (t) => {
    const dir = awkwardFolder(t);
    const tlsDir = process.env.POUSSR_TEST_TLS_DIR;
    assert.ok(tlsDir, 'POUSSR_TEST_TLS_DIR is set (scripts/test.sh)');
    copyFileSync(join(tlsDir, 'cert.pem'), join(dir, 'certificat à jour.pem'));
    copyFileSync(join(tlsDir, 'key.pem'), join(dir, 'clé privée.pem'));
    // The config file names its files the Windows way: drive letter and backslashes.
    const config = join(dir, 'réglages poussr.toml');
    const hub = new Hub();
    rmSync(hub.dataDir, { recursive: true, force: true });
    hub.dataDir = join(dir, 'données');
    hub.configPath = config;
    writeFileSync(
      config,
      `[tls]\ncert = '${windowsPath(join(dir, 'certificat à jour.pem'))}'\nkey = '${windowsPath(join(dir, 'clé privée.pem'))}'\n`,
    );
    await hub.start();
    t.after(() => hub.stop());

    const client = await connectPusher(hub);
    t.after(() => client.disconnect());
    const name = uniqueName('awkward-paths');
    const events = inboxOf(await subscribe(client, name), 'hello');
    const res = await serverSdk(hub).trigger(name, 'hello', { city: 'Zürich' });
    assert.equal(res.status, 200);
    assert.deepEqual(await events.next(), { city: 'Zürich' });
    // The history store was made in the non-ASCII folder, and TLS is served from the files named there.
    assert.ok(existsSync(join(hub.dataDir, 'history', 'history.sqlite')), 'the history is in the data folder');
    const health = await (await fetch(`https://127.0.0.1:${hub.port}/health`)).json();
    assert.equal(health.tls.expired, false, JSON.stringify(health.tls));
  });

  test('Ctrl-C in the console closes clients with 4200, and poussr.exe exits 0', async (t) => {
    const hub = new Hub();
    await hub.start();
    t.after(() => hub.close());
    const raw = await openPusherSocket(hub);
    await hub.stop(); // SIGINT, which Wine delivers as the console's CTRL_C_EVENT
    const closed = await raw.waitClosed();
    assert.equal(closed.code, 4200, JSON.stringify(closed));
    assert.deepEqual({ code: hub.exitCode, signal: hub.exitSignal }, { code: 0, signal: null }, hub.output());
  });

  test('the installer installs silently for this user; its uninstaller removes it and keeps %APPDATA%\\Poussr', async (t) => {
    const setup = process.env.POUSSR_SETUP;
    assert.ok(setup && process.env.WINEPREFIX, 'POUSSR_SETUP and WINEPREFIX are set (scripts/test.sh windows)');
    const home = join(process.env.WINEPREFIX, 'drive_c', 'users', userInfo().username);
    const program = join(home, 'AppData', 'Local', 'Programs', 'Poussr');
    const startMenu = join(home, 'AppData', 'Roaming', 'Microsoft', 'Windows', 'Start Menu', 'Programs', 'Poussr.lnk');
    const settings = join(home, 'AppData', 'Roaming', 'Poussr', 'Poussr', 'config', 'settings.json');
    const query = (key) => run('wine', ['reg', 'query', key], { encoding: 'utf8' }).then((r) => r.stdout, () => '');
    const uninstallKey = 'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Poussr';
    const runKey = 'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run';
    t.after(async () => {
      // A failure half-way must not leave the prefix installed for the next run.
      if (existsSync(join(program, 'uninstall.exe'))) {
        await wine(join(program, 'uninstall.exe'), ['/S']).catch(() => {});
        await eventually(async () => !(await query(uninstallKey)), { timeout: 30_000, interval: 250 }).catch(() => {});
      }
      rmSync(program, { recursive: true, force: true });
      rmSync(join(home, 'AppData', 'Roaming', 'Poussr'), { recursive: true, force: true });
    });

    await wine(setup, ['/S']);
    for (const file of ['poussr-desktop.exe', 'poussr-window.exe', 'poussr.exe', 'WebView2Loader.dll', 'LICENSE.txt', 'uninstall.exe']) {
      assert.ok(existsSync(join(program, file)), `${file} is installed in %LOCALAPPDATA%\\Programs\\Poussr`);
    }
    assert.ok(existsSync(startMenu), 'a Start-menu shortcut');
    assert.ok(existsSync(join(home, 'Desktop', 'Poussr.lnk')), 'a desktop shortcut (on by default)');
    assert.match(await query(uninstallKey), /UninstallString\s+REG_SZ\s+"C:\\users\\.*\\Poussr\\uninstall\.exe"/i, 'listed in Apps');
    const written = (await query(runKey)).match(/Poussr\s+REG_SZ\s+(".*poussr-desktop\.exe" --hidden)\r?\n/);
    assert.ok(written, 'starts hidden at sign-in');

    // The app's own switch (Settings, or --autostart from a script) agrees with the installer: it reads that
    // value as on, removes it, and writes it back the same, letter for letter.
    const desktop = join(program, 'poussr-desktop.exe');
    assert.match((await wine(desktop, ['--autostart', 'status'])).stdout, /^start at login: on \(HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Poussr\)/);
    assert.match((await wine(desktop, ['--autostart', 'off'])).stdout, /^start at login: off/);
    assert.doesNotMatch(await query(runKey), /Poussr/, 'the value is gone');
    assert.match((await wine(desktop, ['--autostart', 'on'])).stdout, /^start at login: on/);
    assert.equal((await query(runKey)).match(/Poussr\s+REG_SZ\s+(".*" --hidden)\r?\n/)?.[1], written[1]);
    // Switched off in Task Manager (its StartupApproved value, first byte odd): off; turning it on clears that.
    const approved = 'HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\StartupApproved\\Run';
    await run('wine', ['reg', 'add', approved, '/v', 'Poussr', '/t', 'REG_BINARY', '/d', '030000000000000000000000', '/f']);
    assert.match((await wine(desktop, ['--autostart', 'status'])).stdout, /^start at login: off/);
    assert.match((await wine(desktop, ['--autostart', 'on'])).stdout, /^start at login: on/);
    assert.doesNotMatch(await query(approved), /Poussr/, 'Task Manager\'s switch is cleared');
    const version = await wine(join(program, 'poussr.exe'), ['--version']);
    assert.match(version.stdout, /^poussr \d+\.\d+\.\d+/, 'the installed poussr.exe runs');

    // The operator's settings, which the uninstaller must keep unless asked.
    mkdirSync(join(settings, '..'), { recursive: true });
    writeFileSync(settings, '{"port": 6001}');
    // The uninstaller copies itself to %TEMP% and returns at once: wait for what it does.
    await wine(join(program, 'uninstall.exe'), ['/S']);
    await eventually(async () => !existsSync(program) && !(await query(uninstallKey)), {
      timeout: 30_000,
      interval: 250,
      what: 'the uninstaller to remove the program and its Apps entry',
    });
    assert.ok(!existsSync(startMenu) && !existsSync(join(home, 'Desktop', 'Poussr.lnk')), 'the shortcuts are gone');
    assert.doesNotMatch(await query(runKey), /Poussr/, 'no start at sign-in any more');
    assert.equal(readFileSync(settings, 'utf8'), '{"port": 6001}', 'the settings in %APPDATA%\\Poussr stay');
  });

  test('the end of the Windows session (WM_ENDSESSION) closes clients with 4200, and poussr.exe exits 0', async (t) => {
    assert.ok(process.env.DISPLAY, 'DISPLAY is set: Wine makes windows on an X display (scripts/test.sh starts Xvfb)');
    const hub = new Hub({ env: { RUST_LOG: 'info' } });
    await hub.start();
    t.after(() => hub.close());
    const raw = await openPusherSocket(hub);
    // What Windows does at a logoff or shutdown: every top-level window gets WM_QUERYENDSESSION, then
    // WM_ENDSESSION. poussr.exe hears it in its hidden window (a console program that loaded user32 gets no
    // logoff or shutdown console event).
    assert.equal(await bounded(detached('wine', ['wineboot', '--end-session']), 'wineboot --end-session'), 0);
    const closed = await raw.waitClosed(15_000);
    assert.equal(closed.code, 4200, JSON.stringify(closed));
    await eventually(() => hub.exitCode !== undefined, { timeout: 15_000, what: 'poussr.exe to exit' });
    assert.equal(hub.exitCode, 0, hub.output());
    assert.match(hub.stderr, /shutting down, the system is shutting down/, hub.output());
  });

  /**
   * poussr-desktop.exe (the tray app) started hidden in a folder of its own, on 127.0.0.1, with a raw Pusher
   * client connected: `{ desktop, dir, raw, exited, log }`.
   */
  async function startTray(t) {
    const stage = process.env.POUSSR_WINDOWS_STAGE;
    assert.ok(stage && process.env.DISPLAY, 'POUSSR_WINDOWS_STAGE and DISPLAY are set (scripts/test.sh windows)');
    const desktop = join(stage, 'poussr-desktop.exe');
    const dir = awkwardFolder(t);
    const port = await freePort();
    const creds = randomCredentials();
    writeFileSync(join(dir, 'settings.json'), JSON.stringify({
      bind: '127.0.0.1', port, app: { id: creds.appId, key: creds.key, secret: creds.secret },
    }));
    // The tray's log goes to a file: its output is not a pipe that what Wine leaves running could hold open.
    const logFile = join(dir, 'tray.log');
    const out = openSync(logFile, 'w');
    const tray = spawn('wine', [desktop, '--hidden', '--config-dir', windowsPath(dir)], {
      stdio: ['ignore', out, out], env: { ...process.env, POUSSR_NO_MDNS: '1', RUST_LOG: 'info' },
    });
    closeSync(out);
    const exited = new Promise((resolve) => tray.on('exit', (code, signal) => resolve({ code, signal })));
    t.after(() => tray.kill('SIGKILL'));
    await eventually(() => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false),
      { timeout: 60_000, interval: 250, what: `the tray's hub on port ${port}` });
    const raw = await openPusherSocket({ wsUrl: `ws://127.0.0.1:${port}`, key: creds.key });
    return { desktop, dir, raw, exited, log: () => readFileSync(logFile, 'utf8') };
  }

  test('the tray app: a second launch with --quit reaches the first through its pipe, which closes clients with 4200 and exits 0', async (t) => {
    const { desktop, dir, raw, exited, log } = await startTray(t);
    // What the installer does before it replaces the program: the second launch hands --quit over and exits.
    await wine(desktop, ['--quit', '--config-dir', windowsPath(dir)], { timeout: 30_000 });
    const closed = await raw.waitClosed(15_000);
    assert.equal(closed.code, 4200, JSON.stringify(closed));
    assert.deepEqual(await bounded(exited, 'the tray to exit', 15_000), { code: 0, signal: null }, log());
    assert.match(log(), /started hidden: in the tray, the hub serving/);
  });

  test('the tray app: the end of the Windows session closes clients with 4200, and it exits 0', async (t) => {
    const { raw, exited, log } = await startTray(t);
    assert.equal(await bounded(detached('wine', ['wineboot', '--end-session']), 'wineboot --end-session'), 0);
    const closed = await raw.waitClosed(15_000);
    assert.equal(closed.code, 4200, JSON.stringify(closed));
    assert.deepEqual(await bounded(exited, 'the tray to exit', 15_000), { code: 0, signal: null }, log());
    assert.match(log(), /the system is shutting down: closing clients with 4200 and quitting/);
  });

  test('poussr.exe service install, start, stop and uninstall, through the service control manager', async (t) => {
    // Wine's service manager lives as long as its wineserver, which ends a few seconds after its last program
    // (and then ends the services, and starts the automatic ones at the next start). One wineserver that
    // stays up for this test is a machine that stays on; the suite's `after` ends it.
    await run('wineserver', ['-k']).catch(() => {});
    assert.equal(await detached('wineserver', ['-p']), 0, 'a persistent wineserver starts');
    assert.equal(await detached('wine', ['wineboot']), 0, 'the prefix boots (its service manager starts)');
    const dir = awkwardFolder(t);
    const port = await freePort();
    const creds = randomCredentials();
    const flags = ['--bind', '127.0.0.1', '--port', String(port), '--app-id', creds.appId, '--app-key', creds.key,
      '--app-secret', creds.secret, '--data-dir', dir];
    const installed = await wine(HUB_BIN, ['service', 'install', ...flags]);
    t.after(() => wine(HUB_BIN, ['service', 'uninstall']).catch(() => {}));
    assert.match(installed.stdout, /service is installed/, installed.stdout);
    assert.match(installed.stdout, /service run --bind 127\.0\.0\.1/, 'it shows the command line it registered');

    // Installing twice says so, and how to change the flags.
    const again = await wine(HUB_BIN, ['service', 'install', ...flags]).then(() => null, (err) => err);
    assert.ok(again, 'a second install is refused');
    assert.match(again.stderr, /already installed.*poussr service uninstall/, again.stderr);

    const started = await wine(HUB_BIN, ['service', 'start']);
    assert.match(started.stdout, /service is running/, started.stdout);
    const hub = { ...creds, port, httpUrl: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}` };
    const raw = await openPusherSocket(hub);
    const client = await connectPusher(hub);
    t.after(() => client.disconnect());
    const name = uniqueName('service');
    const events = inboxOf(await subscribe(client, name), 'from-service');
    await serverSdk(hub).trigger(name, 'from-service', { ok: true });
    assert.deepEqual(await events.next(), { ok: true });

    const stopped = await wine(HUB_BIN, ['service', 'stop']);
    assert.match(stopped.stdout, /service is stopped/, stopped.stdout);
    const closed = await raw.waitClosed();
    assert.equal(closed.code, 4200, `a service stop closes clients with 4200: ${JSON.stringify(closed)}`);
    const log = readFileSync(join(dir, 'poussr.log'), 'utf8');
    assert.match(log, /shutting down, the service was stopped/, log);

    const removed = await wine(HUB_BIN, ['service', 'uninstall']);
    assert.match(removed.stdout, /service is removed/, removed.stdout);
    const gone = await wine(HUB_BIN, ['service', 'start']).then(() => null, (err) => err);
    assert.match(gone?.stderr ?? '', /there is no Poussr service/, 'start after uninstall says what to do');
  });
});
