// From the window to a device: the QR code the Overview shows, read from a screenshot of the real window by a
// real decoder (zbarimg, Debian's zbar-tools), is the check page's address; Debian's Chromium opens it, and an
// event published from the window's Publish form shows there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { SHOTS, configDir, fillField, freePort, health, launch, openPane, screenshot, useDriver, waitFor, waitText } from './app.mjs';

const run = promisify(execFile);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

useDriver();

test('the Overview’s QR code opens the check page, which shows an event published from the window', async (t) => {
  const port = await freePort();
  const app = await launch(configDir(port));
  t.after(() => app.deleteSession());
  await waitFor('/health', () => health(port));
  await waitText(app, '#state', `Running on port ${port}`);

  // The app listens on 127.0.0.1 here (tests never use the machine's LAN): the one address has its QR code.
  const qr = await app.$('#check-links img.qr');
  await qr.waitForDisplayed({ timeout: 15000 });
  await waitFor('the QR code to be drawn', () => app.execute(() => {
    const img = document.querySelector('#check-links img.qr');
    return img.complete && img.naturalWidth > 0;
  }));
  await qr.scrollIntoView({ block: 'center' });
  await screenshot(app, 'overview-qr.png');
  const { stdout } = await run('zbarimg', ['--quiet', '--raw', '-Sdisable', '-Sqrcode.enable', path.join(SHOTS, 'overview-qr.png')],
    { timeout: 30000 });
  const url = stdout.trim();
  assert.equal(url, `http://127.0.0.1:${port}/check`, 'the QR code is the check page’s address');
  assert.match(await (await app.$('#check-links')).getText(), new RegExp(url.replace(/[/.]/g, '\\$&')));

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.locator('#state[data-state="connected"]').waitFor();
  await page.locator('#channel-hint', { hasText: 'Listening on poussr-check.' }).waitFor();

  await openPane(app, 'publish');
  assert.equal(await fillField(app, 'pub-channel', 'poussr-check'), 'poussr-check');
  assert.equal(await fillField(app, 'pub-event', 'hello-device'), 'hello-device');
  assert.equal(await fillField(app, 'pub-data', '{"from": "the window"}'), '{"from": "the window"}');
  const submit = await app.$('#pub-submit');
  await submit.scrollIntoView({ block: 'center' });
  await submit.waitForClickable({ timeout: 5000 });
  await submit.click();
  await waitText(app, '#pub-result', 'delivered to 1 subscriber');

  const shown = page.locator('#events li', { hasText: 'hello-device' });
  await shown.waitFor();
  assert.match(await shown.innerText(), /"from": "the window"/);
  await page.screenshot({ path: path.join(SHOTS, 'check-page.png') });
  assert.deepEqual(errors, []);
});
