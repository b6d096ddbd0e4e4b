// TLS from the desktop window: Settings → Create a certificate makes the local CA and a certificate for this
// machine, the hub serves https:// and wss:// with it, the Overview shows the CA to install, and a second
// certificate is picked up without dropping anyone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';
import { APP, configDir, freePort, health, launch, openPane, screenshot, useDriver, waitFor, waitInner, waitText } from './app.mjs';

useDriver();

/** GET over https trusting only `ca`; resolves with the parsed body. */
function httpsJson(url, ca) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
    }).on('error', reject);
  });
}

/** The SHA-256 fingerprint of the certificate a new TLS connection to `port` is given (trusting only `ca`). */
function servedFingerprint(port, ca) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

test('Create a certificate in Settings serves https and wss, shows the CA to install, and renews without dropping clients', async () => {
  const port = await freePort();
  const dir = configDir(port);
  const caFile = path.join(dir, 'tls', 'ca.pem');
  let ws;
  try {
    const browser = await launch(dir);
    try {
      await waitFor('/health', () => health(port));
      await openPane(browser, 'settings');
      const create = await browser.$('#create-certificate');
      await create.waitForClickable({ timeout: 10000 });
      await create.click();
      const said = await waitText(browser, '#certificate-result', 'Poussr now serves https://');
      const ca = readFileSync(caFile);
      const caFingerprint = new X509Certificate(ca).fingerprint256;
      assert.ok(said.includes(caFingerprint), `the result names the CA's fingerprint: ${said}`);
      const settings = JSON.parse(readFileSync(path.join(dir, 'settings.json'), 'utf8'));
      assert.equal(settings.tls.cert, path.join(dir, 'tls', 'cert.pem'), 'kept in settings.json');
      assert.equal(await browser.execute(() => document.getElementById('tls-cert').value), settings.tls.cert);

      // The hub itself, over https and wss, trusted through the CA file only.
      const secure = await waitFor('/health over https', () => httpsJson(`https://127.0.0.1:${port}/health`, ca));
      assert.equal(secure.tls.ca.sha256, caFingerprint);
      assert.ok(secure.tls.certificate.names.includes('127.0.0.1'), JSON.stringify(secure.tls.certificate.names));
      ws = new WebSocket(`wss://127.0.0.1:${port}/app/${APP.key}?protocol=7`, { ca });
      const hello = await new Promise((resolve, reject) => {
        ws.once('message', (d) => resolve(JSON.parse(d.toString())));
        ws.once('error', reject);
      });
      assert.equal(hello.event, 'pusher:connection_established');
      let closed = null;
      ws.on('close', (code) => (closed = code));

      await openPane(browser, 'overview');
      await waitText(browser, '#tls-ca-fingerprint', caFingerprint);
      await waitInner(browser, 'tls-ca-links', `:${port}/poussr-ca.crt`);
      await waitText(browser, '#tls-summary', 'https:// and wss://');
      await screenshot(browser, 'overview-tls.png');

      // A second certificate: the same CA, served by the running hub without a restart.
      const first = await servedFingerprint(port, ca);
      await openPane(browser, 'settings');
      await create.click();
      await waitFor('a new certificate to be served', async () => (await servedFingerprint(port, ca)) !== first, 20000);
      assert.equal(new X509Certificate(readFileSync(caFile)).fingerprint256, caFingerprint, 'the CA is kept');
      // Nobody was dropped: the client from before still gets answers.
      ws.send(JSON.stringify({ event: 'pusher:ping', data: {} }));
      const pong = await new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
      assert.equal(pong.event, 'pusher:pong');
      assert.equal(closed, null);
      await screenshot(browser, 'settings-tls.png');
    } finally {
      await browser.deleteSession();
    }
  } finally {
    ws?.terminate();
  }
});

