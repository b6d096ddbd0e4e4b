// Where the binaries that cargo built for this checkout are, for the Node suites (tests/clients and
// tests/desktop). No dependencies: each suite imports it by its relative path.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Where cargo puts what it builds for this checkout, as `cargo metadata` says: it honours CARGO_TARGET_DIR and
 * `build.target-dir` in `.cargo/config.toml`. `{dir, note}`: when cargo cannot say, `<repo>/target` and why.
 */
function cargoTargetDir() {
  try {
    const json = execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
    return { dir: JSON.parse(json).target_directory, note: '' };
  } catch (err) {
    const why = (err.stderr || err.message || String(err)).toString().trim().split('\n')[0];
    const dir = join(REPO_ROOT, 'target');
    return { dir, note: ` (cargo metadata failed: ${why}; assumed ${dir})` };
  }
}

/**
 * The binary `name` of the debug build: `$envVar` when it is set, else the one in cargo's target directory.
 * `{path, note, envVar}`, the note saying how the path was found when it matters for an error.
 */
export function cargoBinary(name, envVar) {
  if (process.env[envVar]) return { path: resolve(process.env[envVar]), note: ` (from ${envVar})`, envVar };
  const { dir, note } = cargoTargetDir();
  return { path: join(dir, 'debug', process.platform === 'win32' ? `${name}.exe` : name), note, envVar };
}

/** Throws at once, naming the path and how to build it (`build`, a cargo command), when `bin` is missing. */
export function assertBuilt(bin, what, build) {
  if (existsSync(bin.path)) return;
  throw new Error(
    `the ${what} ${bin.path} does not exist${bin.note}: build it with \`${build}\` from ${REPO_ROOT}, or set ` +
      `${bin.envVar} to one`,
  );
}
