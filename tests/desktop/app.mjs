// The real Poussr window, driven over WebDriver: what every desktop test file shares. tauri-driver starts the
// desktop binary through WebKitWebDriver; webdriverio clicks and reads like an operator. Each test gets its
// own config folder and free ports on 127.0.0.1, and ends the app it started.

import { before, after } from 'node:test';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { remote } from 'webdriverio';
import { assertBuilt, cargoBinary } from '../cargo-bin.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = desktopBinary();
const DRIVER = process.env.TAURI_DRIVER || 'tauri-driver';
export const SHOTS = path.join(here, 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let driver;
let driverPort;

/**
 * The app under test: $POUSSR_DESKTOP_BIN, else the debug build in cargo's target directory, as `cargo metadata`
 * tells it (so CARGO_TARGET_DIR is honoured). Without it, the run fails at once, saying where it looked.
 */
export function desktopBinary() {
  const bin = cargoBinary('poussr-desktop', 'POUSSR_DESKTOP_BIN');
  assertBuilt(bin, 'desktop app', 'cargo build -p poussr-desktop');
  return bin.path;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function reachable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function waitFor(what, check, timeout = 15000) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

export async function health(port) {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
  return res.ok ? res.json() : null;
}

export const APP = { id: '777', key: 'desktopkey1234567890', secret: 'desktopsecret12345678901234567890', enabled: true };

/** A config folder whose settings.json makes the app listen on 127.0.0.1:port. */
export function configDir(port) {
  const dir = mkdtempSync(path.join(tmpdir(), 'poussr-desktop-'));
  writeFileSync(path.join(dir, 'settings.json'), JSON.stringify({ bind: '127.0.0.1', port, app: APP }, null, 2));
  return dir;
}

/** The app's single-instance name on the session bus (tauri-plugin-single-instance: `<identifier>.SingleInstance`). */
export const INSTANCE_NAME = JSON.parse(readFileSync(path.resolve(here, '../../src-tauri/tauri.conf.json'), 'utf8')).identifier
  + '.SingleInstance';

/**
 * Whether the single-instance name is still owned on this session bus. The bus may still hold it for the app a
 * test ended after that process is gone from /proc; an app launched then hands over to it and exits.
 */
export function instanceNameOwned() {
  try {
    const reply = execFileSync('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus',
      '/org/freedesktop/DBus', 'org.freedesktop.DBus.NameHasOwner', `string:${INSTANCE_NAME}`],
    { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
    return /boolean true/.test(reply);
  } catch {
    return false; // no session bus to ask: then no other instance can be found through it either
  }
}

/** Whether a process of the app under test is still running (found by its program name in /proc). */
export function appRunning() {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
      if (argv0 === BIN || path.basename(argv0) === path.basename(BIN)) return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}

/**
 * A second instance hands over to the first one (single instance) and exits at once, so the app a previous test
 * closed must be gone, and its name on the session bus released (seconds later, under load), before the next
 * one starts: else WebKitWebDriver waits for a window forever, or nothing answers on the new port.
 */
export async function previousAppGone() {
  await waitFor('the previous app to exit', () => !appRunning(), 20000);
  await waitFor(`the bus to release ${INSTANCE_NAME}`, () => !instanceNameOwned(), 20000);
}

export async function launch(dir) {
  await previousAppGone();
  return remote({
    hostname: '127.0.0.1',
    port: driverPort,
    logLevel: 'error',
    connectionRetryCount: 0,
    capabilities: {
      browserName: 'wry',
      'wdio:enforceWebDriverClassic': true,
      'tauri:options': { application: BIN, args: ['--config-dir', dir] },
    },
  });
}

/**
 * A screenshot once the window has painted what the DOM says: two frames later, a frame has been painted since
 * the DOM last changed (a fixed pause would be a guess).
 */
export async function screenshot(browser, name) {
  await browser.execute(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await browser.saveScreenshot(path.join(SHOTS, name));
}

/**
 * Sets a field's value the way an input method does (value + input event) and returns what it holds.
 * Focusing a field with suggestions opens its popup in WebKitGTK, and while it is open WebKitWebDriver counts
 * nothing under it as interactable and typed keys can land in it; so fields are filled without focus.
 */
export function fillField(browser, id, text) {
  return browser.execute((el, value) => {
    const field = document.getElementById(el);
    field.value = value;
    field.dispatchEvent(new Event('input', { bubbles: true }));
    return field.value;
  }, id, text);
}

/**
 * Opens a pane through its tab (role="tab", id tab-<pane>) and waits until that tab is selected and its pane shows.
 * The click waits for the window's script to have started (it changes the state pill from "Connecting…"): a click
 * before that is lost, there being nothing yet to handle it.
 */
export async function openPane(browser, pane) {
  await waitFor('the window\'s script to start', () =>
    browser.execute(() => document.getElementById('state').dataset.state !== 'connecting'));
  await (await browser.$(`[role="tab"]#tab-${pane}`)).click();
  await waitFor(`the ${pane} pane`, () => browser.execute((id) => {
    const tab = document.getElementById(id);
    const panel = document.getElementById(tab.getAttribute('aria-controls'));
    return tab.getAttribute('aria-selected') === 'true' && panel.getAttribute('role') === 'tabpanel' && !panel.hidden;
  }, `tab-${pane}`));
}

export async function textOf(browser, selector) {
  return (await browser.$(selector)).getText();
}

export async function waitText(browser, selector, includes, timeout = 15000) {
  return waitFor(`${selector} to show "${includes}"`, async () => {
    const t = await textOf(browser, selector);
    if (t.includes(includes)) return t;
    throw new Error(`it shows ${JSON.stringify(t)}`);
  }, timeout);
}

/** Like waitText, for content WebDriver's getText does not see (rows laid out inside a `contain: strict` box). */
export async function waitInner(browser, id, includes, timeout = 15000) {
  return waitFor(`#${id} to show "${includes}"`, async () => {
    const t = await browser.execute((el) => document.getElementById(el).innerText, id);
    return t.includes(includes) ? t : false;
  }, timeout);
}


/** Starts tauri-driver before the file's tests and stops it after (and on SIGTERM/SIGINT). */
export function useDriver() {
  before(async () => {
    driverPort = await freePort();
    const nativePort = await freePort();
    // Its output through pipes, not this process's own stdout and stderr: a driver that outlived this process
    // would keep those open, and the test runner would wait for their end forever.
    driver = spawn(DRIVER, ['--port', String(driverPort), '--native-port', String(nativePort)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    driver.stdout.pipe(process.stdout);
    driver.stderr.pipe(process.stderr);
    // tauri-driver listens at once but starts WebKitWebDriver beside it, and a request it cannot pass on yet is
    // answered by closing the socket (seen as UND_ERR_SOCKET on a first session under load): both must listen.
    await waitFor('tauri-driver to listen', () => reachable(driverPort), 20000);
    await waitFor('WebKitWebDriver to listen', () => reachable(nativePort), 20000);
  });

  // Stopped from outside (the runner's timeout sends SIGTERM, ^C sends SIGINT): the driver goes too, and stops
  // WebKitWebDriver and the app with it.
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      driver?.kill();
      process.exit(1);
    });
  }

  after(() => {
    driver?.kill();
  });
}

/** The processes of the tree under `root` (itself included): `{pid, comm, args}` from /proc. */
export function processTree(root) {
  const parent = new Map();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    try {
      out.push({
        pid,
        comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim(),
        args: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
      });
    } catch {
      continue;
    }
    for (const [child, p] of parent) if (p === pid) todo.push(child);
  }
  return out;
}

/** The window processes (`poussr-window`, which the tray starts) under the app `root`. */
export function windowProcesses(root) {
  return processTree(root).filter((p) => p.args.length > 0 && path.basename(p.args[0]) === 'poussr-window');
}

/** WebKit's web processes (the pages) under the app `root`. */
export function webProcesses(root) {
  return processTree(root).filter((p) => p.comm.startsWith('WebKitWebProces'));
}

/** Asks every window titled "Poussr" to close, as a window manager's close button does; how many it asked. */
export function closeWindows() {
  const python = process.env.POUSSR_TEST_PYTHON || 'python3';
  return Number(execFileSync(python, [path.join(here, 'close_window.py')], { encoding: 'utf8', timeout: 10000 }).trim());
}

/** The WM_CLASS instance names of the windows titled Poussr (what a launcher's StartupWMClass matches). */
export function windowClasses() {
  const python = process.env.POUSSR_TEST_PYTHON || 'python3';
  return execFileSync(python, [path.join(here, 'window_class.py')], { encoding: 'utf8', timeout: 10000 })
    .split('\n').filter(Boolean);
}
