// TLS for the client tests. `scripts/test.sh` makes a CA and a certificate for `localhost` and 127.0.0.1 with
// the hub's own `poussr cert create` before Node starts, and passes the folder as POUSSR_TEST_TLS_DIR with
// NODE_EXTRA_CA_CERTS pointing at its CA: Node's TLS (https, undici's fetch, ws, faye-websocket under
// pusher-js) trusts that CA the way a user's program would, and nothing here turns verification off.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { HUB_BIN } from './hub.mjs';

/** The folder of the suite's CA (`ca.pem`, `ca-key.pem`) and certificate (`cert.pem`, `key.pem`). */
export function tlsDir() {
  const dir = process.env.POUSSR_TEST_TLS_DIR;
  assert.ok(
    dir && process.env.NODE_EXTRA_CA_CERTS,
    'the TLS tests need POUSSR_TEST_TLS_DIR and NODE_EXTRA_CA_CERTS: run them through scripts/test.sh clients FILE ' +
      '(or make a CA with `poussr cert create --dir D --name localhost --name 127.0.0.1` and set both, ' +
      'NODE_EXTRA_CA_CERTS=D/ca.pem)',
  );
  return dir;
}

/** The environment that makes a test hub serve TLS with the files of `dir` (default: the suite's). */
export function tlsEnv(dir = tlsDir(), { only = false, ca = true } = {}) {
  return {
    POUSSR_TLS_CERT: join(dir, 'cert.pem'),
    POUSSR_TLS_KEY: join(dir, 'key.pem'),
    ...(ca ? { POUSSR_TLS_CA: join(dir, 'ca.pem') } : {}),
    ...(only ? { POUSSR_TLS_ONLY: 'true' } : {}),
  };
}

/**
 * A folder with a new certificate for `names`, signed by the suite's CA (copied in, so `poussr cert create`
 * reuses it): what a renewal looks like. `create(dir)` makes another one in the same folder later.
 */
export function certFolder(names = ['localhost', '127.0.0.1']) {
  const dir = mkdtempSync(join(tmpdir(), 'poussr-tls-'));
  copyFileSync(join(tlsDir(), 'ca.pem'), join(dir, 'ca.pem'));
  copyFileSync(join(tlsDir(), 'ca-key.pem'), join(dir, 'ca-key.pem'));
  createCert(dir, names);
  return dir;
}

/** Runs `poussr cert create` in `dir` (reusing its CA); returns the new certificate's SHA-256 fingerprint. */
export function createCert(dir, names = ['localhost', '127.0.0.1'], { newCa = false } = {}) {
  const args = ['cert', 'create', '--dir', dir, ...names.flatMap((n) => ['--name', n])];
  if (newCa) args.push('--new-ca');
  execFileSync(HUB_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return fingerprintOf(join(dir, 'cert.pem'));
}

/** The SHA-256 fingerprint (AB:CD:…) of the first certificate in a PEM file. */
export function fingerprintOf(pemFile) {
  return new X509Certificate(readFileSync(pemFile)).fingerprint256;
}

/** The fingerprint of the certificate a new TLS connection to `port` is given (verified against the CA). */
export function servedFingerprint(port, host = 'localhost') {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername: host }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}
