// The Windows installer that `make windows` builds (scripts/windows.sh, src-tauri/windows/poussr.nsi), read
// with 7-Zip (which opens NSIS installers) as an archive tool would: what it carries, and that the programs in
// it are the right kind of Windows program. Its run under Wine is in wine.test.mjs.
//
// POUSSR_SETUP is the installer; POUSSR_WINDOWS_STAGE the folder it was made from (scripts/test.sh sets both).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

const setup = process.env.POUSSR_SETUP;
const stage = process.env.POUSSR_WINDOWS_STAGE;

/** The installer's entries as 7-Zip lists them: `{path, size}`. */
function entries() {
  const text = execFileSync('7z', ['l', '-slt', '-ba', setup], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return text
    .split(/\r?\n\r?\n/)
    .map((block) => Object.fromEntries(block.split(/\r?\n/).map((line) => line.split(' = ')).filter((kv) => kv.length === 2)))
    .filter((e) => e.Path)
    .map((e) => ({ path: e.Path.replaceAll('\\', '/'), size: Number(e.Size) }));
}

/** The machine and subsystem of a Windows program (its PE header): x86-64 is 0x8664; GUI 2, console 3. */
function peHeader(bytes) {
  assert.equal(bytes.toString('latin1', 0, 2), 'MZ', 'a Windows program starts with MZ');
  const pe = bytes.readUInt32LE(0x3c);
  assert.equal(bytes.toString('latin1', pe, pe + 4), 'PE\0\0');
  const optional = pe + 24;
  return { machine: bytes.readUInt16LE(pe + 4), magic: bytes.readUInt16LE(optional), subsystem: bytes.readUInt16LE(optional + 68) };
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

describe('the Windows installer', () => {
  let list;
  let dir;

  before(() => {
    assert.ok(setup && stage, 'POUSSR_SETUP and POUSSR_WINDOWS_STAGE are set (scripts/test.sh windows)');
    list = entries();
    dir = mkdtempSync(join(tmpdir(), 'poussr-setup-'));
    execFileSync('7z', ['x', '-y', `-o${dir}`, setup], { stdio: 'ignore' });
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  /** The entry whose path ends with `name` (7-Zip writes NSIS's $INSTDIR as a folder of that name). */
  function entry(name) {
    const found = list.find((e) => e.path.toLowerCase().endsWith(`/${name.toLowerCase()}`) || e.path.toLowerCase() === name.toLowerCase());
    assert.ok(found, `${name} is in the installer; it has: ${list.map((e) => e.path).join(', ')}`);
    return found;
  }

  test('it carries the tray app, its window, the headless hub, WebView2Loader.dll, the licence, the icon and an uninstaller', () => {
    for (const name of ['poussr-desktop.exe', 'poussr-window.exe', 'poussr.exe', 'WebView2Loader.dll', 'LICENSE.txt', 'poussr.ico']) {
      assert.ok(entry(name).size > 0, `${name} is not empty`);
    }
    const uninstaller = list.find((e) => /uninstall.*\.exe$/i.test(e.path));
    assert.ok(uninstaller, `an uninstaller is in the installer; it has: ${list.map((e) => e.path).join(', ')}`);
  });

  test('the programs are the build that make windows staged, byte for byte', () => {
    for (const name of ['poussr-desktop.exe', 'poussr-window.exe', 'poussr.exe', 'WebView2Loader.dll']) {
      const packed = readFileSync(join(dir, entry(name).path));
      assert.equal(sha256(packed), sha256(readFileSync(join(stage, name))), `${name} in the installer is the staged one`);
    }
  });

  test('the tray app and its window are GUI programs (no console window) and poussr.exe a console one, all x86-64', () => {
    for (const name of ['poussr-desktop.exe', 'poussr-window.exe']) {
      const gui = peHeader(readFileSync(join(dir, entry(name).path)));
      assert.deepEqual(gui, { machine: 0x8664, magic: 0x20b, subsystem: 2 }, `${name}: PE32+, x86-64, Windows GUI`);
    }
    const hub = peHeader(readFileSync(join(dir, entry('poussr.exe').path)));
    assert.deepEqual(hub, { machine: 0x8664, magic: 0x20b, subsystem: 3 }, 'poussr.exe: PE32+, x86-64, console');
    const installer = peHeader(readFileSync(setup));
    assert.equal(installer.machine, 0x8664, 'the installer itself is a 64-bit program, as Poussr is');
  });

  test('the licence is the project licence, with Windows line ends', () => {
    const packed = readFileSync(join(dir, entry('LICENSE.txt').path), 'utf8');
    const licence = readFileSync(new URL('../../../LICENSE', import.meta.url), 'utf8');
    assert.equal(packed, licence.replaceAll('\n', '\r\n'));
  });
});
