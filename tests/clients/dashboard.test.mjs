// The operator's dashboard at /dashboard/, in real headless Chromium (Debian's, driven by playwright-core),
// against a real hub, with real pusher-js clients on the other side.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import Pusher from 'pusher-js';
import { startBackend } from './backend.mjs';
import { startHub } from './hub.mjs';
import { connectPusher, subscribe, inboxOf, eventually, publishV1, serverSdk, pusherOptions, uniqueName, withTimeout } from './wire.mjs';

const TOKEN = 'dashboard-token-0123456789';
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let hub;
let browser;

before(async () => {
  hub = await startHub({ env: { POUSSR_ADMIN_TOKEN: TOKEN } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  await hub?.close();
});

async function dashboard(t, token = TOKEN, on = hub) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  t.after(() => assert.deepEqual(errors, [], 'no script errors in the page'));
  const query = token === null ? '' : `?token=${encodeURIComponent(token)}`;
  await page.goto(`${on.httpUrl}/dashboard/${query}`);
  return page;
}

/** Opens a pane the way an operator does, through its tab, and waits for the pane (labelled by that tab). */
async function openPane(page, name) {
  await page.getByRole('tablist', { name: 'Panes' }).getByRole('tab', { name }).click();
  await page.getByRole('tabpanel', { name }).waitFor();
}

/**
 * Waits until the page's monitor feed is open. Every batch of the feed writes the tab counts, and the hub
 * listens for the events of a feed before its first batch: once a count shows, whatever is published reaches
 * this page.
 */
async function feedIsOpen(page) {
  await page.locator('#count-clients').filter({ hasText: /\d/ }).waitFor();
}

/** How many published events the live log has received (its status line: "N shown of M received"). */
async function received(page) {
  const status = await page.locator('#log-count').innerText();
  return Number(status.match(/of ([\d,]+) received/)[1].replace(/,/g, ''));
}

/** What a tab list shows: the selected tabs, the tabs in the Tab order, the focused element and the panes shown. */
function tabState(page, label) {
  return page.evaluate((label) => {
    const tabs = [...document.querySelector(`[role="tablist"][aria-label="${label}"]`).querySelectorAll('[role="tab"]')];
    return {
      selected: tabs.filter((t) => t.getAttribute('aria-selected') === 'true').map((t) => t.id),
      tabbable: tabs.filter((t) => t.tabIndex === 0).map((t) => t.id),
      focused: document.activeElement?.id,
      panes: [...document.querySelectorAll('[role="tabpanel"]')].filter((p) => p.offsetParent !== null).map((p) => p.id),
    };
  }, label);
}

describe('the dashboard', () => {
  test('publishing from the form reaches a pusher-js client and shows in the live log', async (t) => {
    const client = await connectPusher(hub);
    t.after(() => client.disconnect());
    const inbox = inboxOf(await subscribe(client, 'dash-orders'), 'order-created');
    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    await openPane(page, 'Publish');
    const form = page.locator('#pane-publish');
    await form.getByLabel('Channel', { exact: true }).fill('dash-orders');
    await form.getByLabel('Event', { exact: true }).fill('order-created');
    await form.getByLabel('Data', { exact: true }).fill('{"id": 42, "item": "widget"}');
    await page.locator('#pub-data-status').filter({ hasText: 'Valid JSON' }).waitFor();
    // The tab is "Publish", the form's button "Send event": one name each, so neither is mistaken for the other.
    assert.equal(await page.getByRole('button', { name: 'Publish' }).count(), 0);
    assert.equal(await page.getByRole('tab', { name: 'Publish', exact: true }).count(), 1);
    await form.getByRole('button', { name: 'Send event', exact: true }).click();
    await page.locator('#pub-result').filter({ hasText: 'Sent: delivered to 1 subscriber.' }).waitFor();
    assert.deepEqual(await inbox.next(), { id: 42, item: 'widget' });
    await page.screenshot({ path: join(SHOTS, 'dashboard-publish.png') });

    await openPane(page, 'Live log');
    const row = page.locator('.log-row', { hasText: 'order-created' });
    await row.waitFor();
    assert.match(await row.innerText(), /dash-orders/);
    assert.match(await row.innerText(), /dashboard/);
    await row.click();
    await page.locator('#log-detail-body').filter({ hasText: '"id": 42' }).waitFor();
    // Non-JSON data is allowed, with a visible note.
    await openPane(page, 'Publish');
    await form.getByLabel('Data', { exact: true }).fill('plain text');
    await page.locator('#pub-data-status').filter({ hasText: 'raw string' }).waitFor();
  });

  test('a pusher-js client appears in Clients with its channel, and goes when it disconnects', async (t) => {
    const page = await dashboard(t);
    await openPane(page, 'Clients');
    const client = await connectPusher(hub);
    await subscribe(client, 'dash-news');
    const id = client.connection.socket_id;
    const row = page.locator(`tr[data-socket-id="${id}"]`);
    // The list may be read between the connection and the subscription: wait for the row with its channel.
    await row.filter({ hasText: 'dash-news' }).waitFor();
    assert.match(await row.innerText(), /Pusher/);
    assert.match(await row.innerText(), /127\.0\.0\.1/);
    await page.screenshot({ path: join(SHOTS, 'dashboard-clients.png') });
    client.disconnect();
    await row.waitFor({ state: 'detached' });
  });

  test('Disconnect closes that client with 4009', async (t) => {
    const client = await connectPusher(hub);
    t.after(() => client.disconnect());
    const closed = new Promise((resolve) => client.connection.bind('error', (e) => resolve(e)));
    const page = await dashboard(t);
    await openPane(page, 'Clients');
    const id = client.connection.socket_id;
    await page.getByRole('button', { name: `Disconnect ${id}` }).click();
    const error = await closed;
    assert.equal(error.data.code, 4009, JSON.stringify(error));
    await page.locator(`tr[data-socket-id="${id}"]`).waitFor({ state: 'detached' });
  });

  test('channel counts update as clients subscribe', async (t) => {
    const a = await connectPusher(hub);
    const b = await connectPusher(hub);
    t.after(() => { a.disconnect(); b.disconnect(); });
    await subscribe(a, 'dash-count');
    const page = await dashboard(t);
    await openPane(page, 'Channels');
    const subs = page.locator('tr[data-channel="dash-count"] td.subs');
    await subs.filter({ hasText: /^1$/ }).waitFor();
    await subscribe(b, 'dash-count');
    await subs.filter({ hasText: /^2$/ }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'dashboard-channels.png') });
    // Clicking a channel opens its page, which lists its two subscribers and leads to its traffic in the live log.
    await page.getByRole('button', { name: 'dash-count' }).click();
    await page.locator('#channel-page-subs li').nth(1).waitFor();
    assert.deepEqual((await page.locator('#channel-page-subs li').allInnerTexts()).sort(),
      [a.connection.socket_id, b.connection.socket_id].sort());
    await page.getByRole('button', { name: 'Show in the live log' }).click();
    assert.equal(await page.locator('#filter-channel').inputValue(), 'dash-count');
    assert.equal(await page.locator('#pane-log').isVisible(), true);
  });

  test('filter and pause work, and the export is valid JSON Lines', async (t) => {
    // A hub of its own: the log opens with the history of the hub, and this test counts every row.
    const own = await startHub({ env: { POUSSR_ADMIN_TOKEN: TOKEN } });
    t.after(() => own.close());
    const page = await dashboard(t, TOKEN, own);
    await openPane(page, 'Live log');
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    await feedIsOpen(page);
    for (let i = 0; i < 5; i++) await publishV1(own, 'dash-alpha', `alpha-${i}`, JSON.stringify({ i }));
    for (let i = 0; i < 3; i++) await publishV1(own, 'dash-beta', `beta-${i}`, `raw ${i}`);
    await page.locator('.log-row', { hasText: 'beta-2' }).waitFor();

    await page.locator('#pane-log').getByLabel('Channel', { exact: true }).fill('dash-beta');
    await eventually(async () => (await page.locator('.log-row').count()) === 3, { what: 'three beta rows' });
    await page.locator('#pane-log').getByLabel('Channel', { exact: true }).fill('');
    await page.locator('#pane-log').getByLabel('Text', { exact: true }).fill('"i":3');
    await eventually(async () => (await page.locator('.log-row').count()) === 1, { what: 'one row with "i":3' });
    await page.locator('#pane-log').getByLabel('Text', { exact: true }).fill('');
    // The filter applies when typing pauses.
    await eventually(async () => (await page.locator('.log-row').count()) === 8, { what: 'all eight rows back' });

    // Pausing redraws the list in the next frame (a count read at once may see none of its rows): wait for the
    // eight rows to be back.
    await page.getByRole('button', { name: 'Pause' }).click();
    const rows = () => page.locator('.log-row').count();
    await eventually(async () => (await rows()) === 8, { what: 'the eight rows, paused', timeout: 10_000 });
    // An event while paused, then a sentinel on a channel of its own: once the page has received the sentinel,
    // it has received the event before it, and shows neither.
    const before = await received(page);
    await publishV1(own, 'dash-alpha', 'while-paused', '{}');
    await publishV1(own, 'sentinel-pause', 'sentinel', '{}');
    await eventually(async () => (await received(page)) === before + 2, { what: 'both events received', timeout: 10_000 });
    assert.equal(await page.locator('.log-row', { hasText: 'while-paused' }).count(), 0, 'paused: no new rows');
    assert.equal(await rows(), 8);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('.log-row', { hasText: 'while-paused' }).waitFor();

    await page.locator('#pane-log').getByLabel('Channel', { exact: true }).fill('dash-');
    await eventually(async () => (await page.locator('#log-count').innerText()).startsWith('9 shown'), { what: 'the dash- filter' });
    await eventually(async () => (await rows()) === 9, { what: 'the nine dash- rows' });
    await page.screenshot({ path: join(SHOTS, 'dashboard-log.png') });
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Record', exact: true }).click()]);
    const text = readFileSync(await download.path(), 'utf8');
    // A recording (docs/recording.md): the header with the format's version, then what the filter shows, oldest first.
    const [header, ...lines] = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.equal(header.format, 'poussr-recording');
    assert.equal(header.version, 1);
    assert.equal(header.filter.channel, 'dash-');
    assert.deepEqual(lines.map((l) => l.event), ['alpha-0', 'alpha-1', 'alpha-2', 'alpha-3', 'alpha-4', 'beta-0', 'beta-1', 'beta-2', 'while-paused']);
    assert.equal(lines[5].data, 'raw 0');
    assert.ok(lines.every((l) => l.type === 'event_published' && l.kind === 'event' && l.channel.startsWith('dash-') && l.at_ms > 0));
  });

  test('the overview shows live totals and the chart, and an event triggered by the SDK counts', async (t) => {
    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    const before = Number(await page.locator('#stat-events').innerText());
    await serverSdk(hub).trigger('dash-sdk', 'counted', { ok: true });
    await eventually(async () => Number(await page.locator('#stat-events').innerText()) > before, { what: 'the events total to grow' });
    // The chart is first drawn a second after the page loads (with the rate beside it): shown drawn.
    await page.locator('#rate-now').filter({ hasText: 'events/s' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'dashboard-overview.png') });
  });

  test('a missing or wrong token gets the sign-in screen and no data', async (t) => {
    for (const token of [null, 'wrong-token-wrong-token']) {
      const page = await dashboard(t, token);
      await page.locator('#signin').waitFor();
      assert.equal(await page.locator('.tabs').isVisible(), false);
      assert.equal(await page.locator('#running').isVisible(), false);
      assert.equal(await page.locator('#app-key').innerText(), '', 'no credentials shown');
      if (token) assert.match(await page.locator('#signin-result').innerText(), /refused/);
      // Signing in with the right token shows the hub.
      await page.locator('#signin').getByLabel('Admin token').fill(TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
      assert.equal(await page.locator('#app-key').innerText(), hub.key);
    }
  });

  test('presence members, kinds and client events are shown', async (t) => {
    const backend = await startBackend({ hub });
    t.after(() => backend.close());
    // A pusher-js client of `name`, authorized (and signed in) through the backend, in state 'connected'.
    const connectAs = async (name) => {
      const auth = (path) => ({ endpoint: backend.url + path, transport: 'ajax', headers: { 'x-user': name } });
      const client = new Pusher(hub.key, {
        ...pusherOptions(hub),
        channelAuthorization: auth('/pusher/auth'),
        userAuthentication: auth('/pusher/user-auth'),
      });
      t.after(() => client.disconnect());
      await withTimeout(
        new Promise((resolve, reject) => {
          if (client.connection.state === 'connected') resolve();
          client.connection.bind('connected', resolve);
          client.connection.bind('failed', () => reject(new Error(`pusher-js of ${name}: the connection failed`)));
        }),
        10_000,
        `pusher-js of ${name} to connect`,
      );
      return client;
    };
    const ann = await connectAs('ann');
    const bob = await connectAs('bob');
    const name = uniqueName('presence-dash');
    const annChannel = await subscribe(ann, name);
    const bobChannel = await subscribe(bob, name);
    const typing = inboxOf(bobChannel, 'client-typing');
    await eventually(() => annChannel.members.count === 2, { what: 'ann to see two members' });

    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    await feedIsOpen(page);

    // Channels: the kind, the member count and both member ids.
    await openPane(page, 'Channels');
    const row = page.locator(`tr[data-channel="${name}"]`);
    await row.locator('.kind').filter({ hasText: /^presence$/ }).waitFor({ timeout: 10_000 });
    const members = row.locator('td.members');
    await members.filter({ hasText: /^2/ }).waitFor({ timeout: 10_000 });
    const ids = (await members.locator('.member-ids').innerText()).split(',').map((id) => id.trim()).sort();
    assert.deepEqual(ids, ['ann', 'bob'], `member ids: ${await members.innerText()}`);
    assert.match(await row.locator('td.subs').innerText(), /^2$/);
    await page.screenshot({ path: join(SHOTS, 'dashboard-presence.png') });

    // A client event from ann reaches bob and shows in the live log with the source "client".
    annChannel.trigger('client-typing', { on: true });
    assert.deepEqual(await typing.next(5000), { on: true });
    await openPane(page, 'Live log');
    const logRow = page.locator('.log-row', { hasText: 'client-typing' });
    await logRow.waitFor({ timeout: 10_000 });
    const cells = await logRow.locator('[role="gridcell"]').allInnerTexts();
    assert.equal(cells[1], 'client', `log row: ${cells.join(' | ')}`);
    assert.equal(cells[2], name, `log row: ${cells.join(' | ')}`);
    assert.equal(cells[3], 'client-typing', `log row: ${cells.join(' | ')}`);
    assert.deepEqual(JSON.parse(cells[5]), { on: true });

    // Signing ann in shows her user id in Clients; bob, not signed in, shows "—".
    const signedIn = withTimeout(
      new Promise((resolve, reject) => {
        ann.bind('pusher:signin_success', resolve);
        ann.user.bind('pusher:signin_error', (err) => reject(new Error(`signin error: ${JSON.stringify(err)}`)));
      }),
      5000,
      'pusher:signin_success for ann',
    );
    ann.signin();
    await signedIn;
    await openPane(page, 'Clients');
    const annUser = page.locator(`tr[data-socket-id="${ann.connection.socket_id}"] td.user`);
    await annUser.filter({ hasText: /^ann$/ }).waitFor({ timeout: 10_000 });
    const bobUser = page.locator(`tr[data-socket-id="${bob.connection.socket_id}"] td.user`);
    await bobUser.filter({ hasText: /^—$/ }).waitFor({ timeout: 10_000 });
    assert.match(await page.locator(`tr[data-socket-id="${ann.connection.socket_id}"] td.channels`).innerText(), new RegExp(name));
    await page.screenshot({ path: join(SHOTS, 'dashboard-clients-user.png') });
  });

  test('the pane tabs follow the WAI-ARIA tabs pattern: roles, names, one tab in the Tab order, and the keys', async (t) => {
    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    const panes = page.getByRole('tablist', { name: 'Panes' });
    // Settings is the desktop's: in a browser its tab is hidden, so the keys skip it.
    const names = ['Overview', 'Channels', 'Clients', 'Live log', 'Search', 'Publish'];
    assert.deepEqual((await panes.getByRole('tab').allInnerTexts()).map((n) => n.replace(/\s*[(\d].*$/s, '')), names);
    // Each tab controls its pane, and the pane is labelled by the tab.
    const links = await page.evaluate(() => [...document.querySelectorAll('.tabs [role="tab"]')].map((tab) => {
      const pane = document.getElementById(tab.getAttribute('aria-controls'));
      return [tab.id, pane?.getAttribute('role'), pane && document.getElementById(pane.getAttribute('aria-labelledby'))?.id];
    }));
    assert.deepEqual(links, ['overview', 'channels', 'clients', 'log', 'search', 'publish', 'settings'].map((p) => [`tab-${p}`, 'tabpanel', `tab-${p}`]));

    const expect = async (pane, focused = `tab-${pane}`) => assert.deepEqual(await tabState(page, 'Panes'),
      { selected: [`tab-${pane}`], tabbable: [`tab-${pane}`], focused, panes: [`pane-${pane}`, ...(pane === 'overview' ? ['snippet-panel'] : [])] });
    // The selected tab alone is in the Tab order: Tab from the skip link reaches Overview, the next Tab leaves the list.
    await page.locator('.skip').focus();
    await page.keyboard.press('Tab');
    await expect('overview');
    // Right and Left move and select, wrapping around; Home and End go to the ends.
    for (const pane of ['channels', 'clients', 'log', 'search', 'publish', 'overview']) {
      await page.keyboard.press('ArrowRight');
      await expect(pane);
    }
    await page.keyboard.press('ArrowLeft');
    await expect('publish');
    await page.keyboard.press('ArrowLeft');
    await expect('search');
    await page.keyboard.press('Home');
    await expect('overview');
    await page.keyboard.press('End');
    await expect('publish');
    assert.equal(await panes.getByRole('tab', { selected: true }).innerText(), 'Publish');
    await page.keyboard.press('Tab');
    await expect('publish', 'pub-channel');
    await page.keyboard.press('Shift+Tab');
    await expect('publish');
    // A click selects too, and the keys go on from there.
    await panes.getByRole('tab', { name: 'Clients' }).click();
    await expect('clients');
    await page.keyboard.press('ArrowLeft');
    await expect('channels');

    // The snippet tabs on the Overview work the same way (the same code).
    await openPane(page, 'Overview');
    const snippets = page.getByRole('tablist', { name: 'Snippets' });
    await snippets.getByRole('tab', { name: 'pusher-js' }).focus();
    const snippetIs = async (id) => {
      const state = await tabState(page, 'Snippets');
      assert.deepEqual([state.selected, state.tabbable, state.focused], [[id], [id], id]);
      assert.equal(await page.locator('#snippet-panel').getAttribute('aria-labelledby'), id);
    };
    await page.keyboard.press('End');
    await snippetIs('tab-poussr_v1');
    await page.keyboard.press('ArrowRight');
    await snippetIs('tab-pusher_js');
    await page.keyboard.press('ArrowLeft');
    await snippetIs('tab-poussr_v1');
    await page.keyboard.press('Home');
    await snippetIs('tab-pusher_js');
    await page.keyboard.press('ArrowRight');
    await snippetIs('tab-laravel_echo');
    assert.match(await page.locator('#snippet').innerText(), /Echo/);
  });

  test('the tabs never move: the counts have their room whatever they say, and selecting a tab changes no width', async (t) => {
    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    // Every count from none to huge, and every pane, measured in one go (the feed cannot write in between).
    const seen = await page.evaluate(async () => {
      const { setCount, showPane } = await import(new URL('tabs.js', location.href));
      const boxes = () => JSON.stringify([...document.querySelectorAll('.tabs [role="tab"]')].map((tab) => {
        const r = tab.getBoundingClientRect();
        return [r.x, r.y, r.width, r.height];
      }));
      const out = { counts: [], panes: [] };
      for (const n of [null, 0, 7, 42, 999, 1000, 1234, 9999, 10000, 99999, 100000, 123456789]) {
        setCount('channels', n);
        setCount('clients', n);
        const el = document.getElementById('count-channels');
        out.counts.push({ n, text: el.textContent, title: el.title, clipped: el.scrollWidth > el.clientWidth, boxes: boxes() });
      }
      for (const pane of ['channels', 'clients', 'log', 'publish', 'overview']) {
        showPane(pane);
        out.panes.push(boxes());
      }
      return out;
    });
    assert.deepEqual(seen.counts.map((c) => [c.n, c.text, c.title]), [
      [null, '', ''], [0, '0', ''], [7, '7', ''], [42, '42', ''], [999, '999', ''], [1000, '1k', '1,000'], [1234, '1.2k', '1,234'],
      [9999, '9.9k', '9,999'], [10000, '10k', '10,000'], [99999, '99k', '99,999'], [100000, '99k+', '100,000'],
      [123456789, '99k+', '123,456,789'],
    ]);
    assert.deepEqual(seen.counts.filter((c) => c.clipped).map((c) => c.text), [], 'no count is cut off');
    const first = seen.counts[0].boxes;
    assert.deepEqual(seen.counts.filter((c) => c.boxes !== first).map((c) => [c.n, c.boxes]), [], `every count keeps the tabs at ${first}`);
    assert.deepEqual(seen.panes.filter((b) => b !== first), [], 'selecting a tab moves none');
  });

  test('the live log opens with what the hub kept, after a restart too, and Channels show how much each keeps', async (t) => {
    const own = await startHub({ env: { POUSSR_ADMIN_TOKEN: TOKEN } });
    t.after(() => own.close());
    const name = uniqueName('dash-kept');
    for (let i = 1; i <= 3; i++) await publishV1(own, name, `kept-${i}`, JSON.stringify({ i }));
    await own.restart();
    const client = await connectPusher(own);
    t.after(() => client.disconnect());
    await subscribe(client, name);
    const page = await dashboard(t, TOKEN, own);
    await openPane(page, 'Live log');
    const rows = page.locator('.log-row', { hasText: name });
    await eventually(async () => (await rows.count()) === 3, { what: 'the three kept events in the log' });
    // Every cell but the time: oldest first, marked as from the history (no client: the history does not keep it).
    const cells = await rows.evaluateAll((els) => els.map((el) => [...el.children].slice(1).map((c) => c.textContent)));
    assert.deepEqual(cells, [1, 2, 3].map((i) => ['history', name, `kept-${i}`, '', `{"i":${i}}`]));
    await rows.first().locator('[role="gridcell"]').nth(3).click();
    await page.locator('#log-detail-title').filter({ hasText: 'from the history (position 1)' }).waitFor();
    await page.locator('#log-detail-title').filter({ hasText: '7 B' }).waitFor();

    await openPane(page, 'Channels');
    await page.locator(`tr[data-channel="${name}"] td.kept`).filter({ hasText: /^3$/ }).waitFor();
  });

  test('the Replay card plays a recording with a channel mapped, pauses, resumes and stops, and the log marks it', async (t) => {
    const target = uniqueName('dash-replayed');
    const client = await connectPusher(hub);
    t.after(() => client.disconnect());
    const received = [];
    const channel = await subscribe(client, target);
    channel.bind_global((event, data) => received.push({ event, data }));
    // 200 events 50 ms apart on "orders" (10 s at 1×, stopped well before), and an entry of another kind, which
    // replay skips.
    const lines = [JSON.stringify({ format: 'poussr-recording', version: 1, recorded_at_ms: Date.now(), filter: null })];
    for (let i = 0; i < 200; i++) {
      lines.push(JSON.stringify({ type: 'event_published', at_ms: 1_700_000_000_000 + i * 50, app_id: hub.appId, channel: 'orders', event: 'tick', data: JSON.stringify({ i }), source: 'api' }));
      if (i === 3) lines.push(JSON.stringify({ type: 'connection_opened', at_ms: 1_700_000_000_000 + i * 50, socket_id: '1.1' }));
    }
    const status = async () => (await (await fetch(`${hub.httpUrl}/admin/api/replay`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json());
    const sdk = serverSdk(hub);
    /** Proves, with a sentinel published after, that the client got exactly `n` replayed events by then. */
    const exactly = async (n) => {
      const mark = uniqueName('sentinel');
      await sdk.trigger(target, mark, {});
      await eventually(async () => received.some((e) => e.event === mark), { what: 'the sentinel' });
      assert.equal(received.filter((e) => e.event === 'tick').length, n);
      received.length = 0;
    };

    const page = await dashboard(t);
    await page.locator('#state').filter({ hasText: 'Running' }).waitFor();
    await openPane(page, 'Publish');
    await page.locator('#replay-file').setInputFiles({ name: 'shift.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(lines.join('\n') + '\n') });
    await page.getByLabel('Speed').selectOption('1');
    await page.getByLabel(/Map channels/).fill(`orders=${target}`);
    await page.getByRole('button', { name: 'Replay', exact: true }).click();
    await page.locator('#replay-status').filter({ hasText: /^Replaying: \d+ of 200 events, 1 other entry skipped/ }).waitFor();
    await eventually(async () => received.length >= 5, { what: 'the first replayed events' });

    await page.getByRole('button', { name: 'Pause' }).click();
    await page.locator('#replay-status').filter({ hasText: /^Paused: / }).waitFor();
    const paused = await status();
    assert.equal(paused.state, 'paused');
    await exactly(paused.sent);
    assert.equal((await status()).sent, paused.sent, 'nothing is published while paused');
    assert.match(await page.locator('#replay-status').innerText(), new RegExp(`^Paused: ${paused.sent} of 200 events`));

    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('#replay-status').filter({ hasText: /^Replaying: / }).waitFor();
    await eventually(async () => received.length >= 3, { what: 'events after resuming' });
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('#replay-status').filter({ hasText: /^Stopped: \d+ of 200 events/ }).waitFor();
    const stopped = await status();
    assert.equal(stopped.state, 'stopped');
    assert.ok(stopped.sent > paused.sent && stopped.sent < 200, JSON.stringify(stopped));
    await exactly(stopped.sent - paused.sent);
    assert.equal((await status()).sent, stopped.sent, 'nothing is published once stopped');
    assert.equal(await page.locator('#replay-progress').getAttribute('value'), String(stopped.sent));

    // The replayed events are in the live log on the mapped channel, marked as replayed.
    await openPane(page, 'Live log');
    await page.locator('#filter-channel').fill(target);
    await page.locator('#filter-event').fill('tick');
    // The list draws only the rows in view: the count is read from the status line, the marks from the rows drawn.
    await page.locator('#log-count').filter({ hasText: new RegExp(`^${stopped.sent} shown of`) }).waitFor();
    const rows = page.locator('.log-row[data-kind="event"]', { hasText: 'tick' });
    assert.deepEqual([...new Set(await rows.evaluateAll((els) => els.map((el) => el.children[1].textContent)))], ['replay']);
  });

  test('a request naming a foreign Host is refused', async () => {
    const { request } = await import('node:http');
    const status = await new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: hub.port, path: '/admin/api/overview', headers: { Host: 'evil.example', Authorization: `Bearer ${TOKEN}` } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 403);
  });
});
