// End-to-end test of the web page: the real `chorus` binary, the system Chromium driven by
// playwright-core, three users in three browser contexts. Run with `bash e2e/run.sh`.
//
// Waits are Playwright's auto-waiting (locator.waitFor, waitForFunction) or polling with a
// deadline; no fixed sleeps.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import { makePng } from './png.mjs';

const require = createRequire(import.meta.url);
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const BIN = join(ROOT, 'target', 'debug', 'chorus');
// `make screenshots` points this at docs/screenshots; a plain test run keeps the committed
// pictures untouched.
const SHOTS = process.env.CHORUS_E2E_SCREENSHOTS || join(tmpdir(), 'chorus-e2e-screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const T = 15000; // the longest any single UI wait may take
const PASSWORD = 'correct horse battery';
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let server;
let serverAddr;
let dir;
let browser;
const problems = []; // page errors, dialogs, console errors: must stay empty

function startServer(addr = '127.0.0.1:0') {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [], {
      cwd: dir,
      env: {
        ...process.env,
        CHORUS__SERVER__ADDR: addr,
        CHORUS__DATABASE__URL: `sqlite://${join(dir, 'chorus.db')}?mode=rwc`,
        CHORUS__UPLOADS__DIR: join(dir, 'uploads'),
        RUST_LOG: process.env.RUST_LOG || 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let started = false;
    const timer = setTimeout(() => reject(new Error(`chorus did not start:\n${out}\n${err}`)), 60000);
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m && !started) {
        started = true;
        clearTimeout(timer);
        resolve({ child, addr: m[1] });
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const why = `chorus exited (${code ?? signal}):\n${out}\n${err}`;
      if (started) problems.push(why);
      else reject(new Error(why));
    });
  });
}

function stopServer(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.removeAllListeners('exit');
    child.on('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** Polls `fn` until it returns a truthy value, or fails after `timeout` ms. */
async function poll(what, fn, timeout = T) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const base = () => `http://${serverAddr}/`;

async function newPage(viewport = DESKTOP, options = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: viewport === PHONE ? 2 : 1, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  const who = () => page.url();
  page.on('dialog', (d) => { problems.push(`dialog "${d.message()}" on ${who()}`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused websocket while the server restarts is expected; anything else is a bug.
    if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION_REFUSED|net::ERR/.test(m.text())) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  await page.goto(base());
  return page;
}

async function register(page, name) {
  await page.locator('#tab-register').click();
  await page.locator('#reg-name').fill(name);
  await page.locator('#reg-password').fill(PASSWORD);
  await page.locator('#register-form button[type=submit]').click();
  await page.locator('#app-view').waitFor({ state: 'visible' });
  await page.locator('#me-name', { hasText: name }).waitFor();
}

async function login(page, name) {
  await page.locator('#login-name').fill(name);
  await page.locator('#login-password').fill(PASSWORD);
  await page.locator('#login-password').press('Enter');
  await page.locator('#me-name', { hasText: name }).waitFor();
}

/** Shows the friends or groups tab, then the list entry of that name. */
async function open(page, list, name) {
  await page.locator(list === 'group-list' ? '#tab-groups' : '#tab-friends').click();
  await item(page, list, name).click();
}

/** The list entry of a friend or group, by exact name. */
function item(page, list, name) {
  return page.locator(`#${list} .conv-item`).filter({
    has: page.locator('.conv-name', { hasText: new RegExp(`^${name}$`) }),
  });
}

/** The bubbles of the open conversation whose text is exactly `text`. */
function bubbles(page, text, side = '') {
  return page.locator(`#msg-list li.msg${side} .bubble .text`).filter({ hasText: new RegExp(`^${escape(text)}$`) });
}

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function send(page, text) {
  const box = page.locator('#composer-text');
  await box.fill(text);
  await box.press('Enter');
  // Acked: no message of ours is still pending.
  await page.locator('#msg-list li.msg.mine.pending').first().waitFor({ state: 'detached' });
}

async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  // Let images and fonts finish before the picture.
  await page.waitForFunction(() => [...document.images].every((i) => i.complete));
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

/** Every rendered message of the open conversation appears once, seqs 1..N without gaps. */
async function assertNoDuplicates(page) {
  const seqs = await page.locator('#msg-list li.msg[data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.ok(seqs.length > 0, 'some messages are shown');
  assert.equal(new Set(seqs).size, seqs.length, `no seq shown twice: ${seqs}`);
  const sorted = [...seqs].sort((a, b) => a - b);
  assert.deepEqual(seqs, sorted, 'messages in seq order');
  return seqs;
}

before(async () => {
  if (!existsSync(BIN)) {
    execFileSync('cargo', ['build', '--bin', 'chorus'], { cwd: ROOT, stdio: 'inherit' });
  }
  dir = mkdtempSync(join(tmpdir(), 'chorus-e2e-'));
  ({ child: server, addr: serverAddr } = await startServer());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('friends, private chat, images, groups, history, reconnect and screenshots', async (t) => {
  const png = makePng(96, 64);
  const alice = await newPage();
  const bob = await newPage();
  const carol = await newPage();

  await t.test('login screen', async () => {
    await alice.locator('#login-form').waitFor();
    await shot(alice, 'login-desktop');
  });

  await t.test('register, befriend, and see presence change live', async () => {
    await register(bob, 'bob');
    await bob.locator('#logout-btn').click();
    await bob.locator('#login-form').waitFor();

    await register(alice, 'alice');
    await alice.locator('#user-search').fill('bob');
    await alice.locator('#user-search').press('Enter');
    await alice.getByRole('button', { name: 'Add bob as a friend' }).click();
    await item(alice, 'friend-list', 'bob').locator('.dot.offline').waitFor();

    await login(bob, 'bob');
    // alice sees bob come online from a presence frame; bob sees alice's state from the API.
    await item(alice, 'friend-list', 'bob').locator('.dot.online').waitFor();
    await item(bob, 'friend-list', 'alice').locator('.dot.online').waitFor();
  });

  await t.test('profile: an uploaded avatar', async () => {
    await alice.locator('#profile-btn').click();
    await alice.locator('#avatar-input').setInputFiles({ name: 'me.png', mimeType: 'image/png', buffer: makePng(48, 48, 2) });
    await alice.locator('#profile-avatar img').waitFor();
    await alice.locator('#profile-email').fill('alice@example.org');
    await alice.locator('#profile-form button[type=submit]').click();
    await alice.locator('#profile-dialog').waitFor({ state: 'hidden' });
    const src = await alice.locator('#me-avatar img').getAttribute('src');
    assert.match(src, /^\/uploads\/[0-9a-f-]+\.png$/);
  });

  await t.test('private messages, unread count, read receipt, typing', async () => {
    await item(alice, 'friend-list', 'bob').click();
    await send(alice, 'Hi Bob! 👋');
    await item(bob, 'friend-list', 'alice').locator('.badge', { hasText: '1' }).waitFor();

    await item(bob, 'friend-list', 'alice').click();
    await bubbles(bob, 'Hi Bob! 👋', '.theirs').waitFor();
    await item(bob, 'friend-list', 'alice').locator('.badge').waitFor({ state: 'detached' });
    await alice.locator('#msg-list li.msg.mine .receipt', { hasText: 'Seen' }).waitFor();

    await bob.locator('#composer-text').pressSequentially('Hey Alice');
    await alice.locator('#chat-sub', { hasText: 'typing' }).waitFor();
    await bob.locator('#composer-text').press('Enter');
    await bubbles(alice, 'Hey Alice', '.theirs').waitFor();
    await alice.locator('#chat-sub', { hasText: 'Online' }).waitFor();

    // Shift+Enter is a new line, Enter sends.
    await bob.locator('#composer-text').pressSequentially('line one');
    await bob.locator('#composer-text').press('Shift+Enter');
    await bob.locator('#composer-text').pressSequentially('line two');
    await bob.locator('#composer-text').press('Enter');
    await bubbles(alice, 'line one\nline two', '.theirs').waitFor();
    await send(alice, 'Great, see you at 7 🍕');
  });

  await t.test('an image is uploaded, sent and shown', async () => {
    await alice.locator('#image-input').setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: png });
    const img = bob.locator('#msg-list li.msg.theirs .bubble.image img').last();
    await img.waitFor();
    const src = await img.getAttribute('src');
    assert.match(src, /^\/uploads\/[0-9a-f-]+\.png$/);
    await poll('the image to load', () => img.evaluate((i) => i.complete && i.naturalWidth > 0));
    assert.equal(await img.evaluate((i) => i.naturalWidth), 96);
    // It opens full size.
    await img.click();
    await bob.locator('#image-dialog[open] #lightbox-img').waitFor();
    assert.equal(await bob.locator('#lightbox-img').getAttribute('src'), src);
    await bob.keyboard.press('Escape');
    await bob.locator('#image-dialog').waitFor({ state: 'hidden' });
  });

  await t.test('markup in a message is shown as text and runs nothing', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    await send(alice, evil);
    await bubbles(bob, evil, '.theirs').waitFor();
    assert.equal(await bob.locator('img[src="x"]').count(), 0);
    assert.equal(await alice.locator('img[src="x"]').count(), 0);
    await screenshotChat(alice, 'chat-desktop');
  });

  await t.test('three people chat in a group', async () => {
    await register(carol, 'carol');
    // carol befriends alice: alice's list shows her at once (a `contact` frame, no reload).
    await carol.locator('#user-search').fill('alice');
    await carol.locator('#user-search').press('Enter');
    await carol.getByRole('button', { name: 'Add alice as a friend' }).click();
    await item(alice, 'friend-list', 'carol').waitFor();
    await alice.locator('#tab-groups').click();
    await alice.locator('#new-group-btn').click();
    await alice.locator('#group-name').fill('Weekend hikers');
    await alice.locator('#group-desc').fill('Trails, maps and snacks');
    await alice.locator('#group-icon').setInputFiles({ name: 'icon.png', mimeType: 'image/png', buffer: makePng(64, 64, 1) });
    await alice.locator('#group-form button[type=submit]').click();
    await alice.locator('#chat-title', { hasText: 'Weekend hikers' }).waitFor();

    for (const page of [carol, bob]) {
      await page.locator('#tab-groups').click();
      await page.locator('#group-search').fill('hikers');
      await page.locator('#group-search').press('Enter');
      await page.getByRole('button', { name: 'Join Weekend hikers' }).click();
      await page.locator('#chat-title', { hasText: 'Weekend hikers' }).waitFor();
    }

    await send(alice, 'Who is in for Saturday? ⛰️');
    await bubbles(bob, 'Who is in for Saturday? ⛰️', '.theirs').waitFor();
    await bubbles(carol, 'Who is in for Saturday? ⛰️', '.theirs').waitFor();
    await send(carol, 'Me! I will bring the map');
    await bubbles(alice, 'Me! I will bring the map', '.theirs').waitFor();
    await bubbles(bob, 'Me! I will bring the map', '.theirs').waitFor();
    // Group messages name their sender.
    await bob.locator('#msg-list li.msg.theirs .sender', { hasText: 'carol' }).waitFor();
    await send(bob, 'Count me in 🥾');
    await bubbles(alice, 'Count me in 🥾', '.theirs').waitFor();
    await bubbles(carol, 'Count me in 🥾', '.theirs').waitFor();
    await alice.locator('#msg-list li.msg.mine .receipt', { hasText: /Seen by (bob, carol|carol, bob)/ }).waitFor();

    // The emoji picker inserts at the cursor; an emoji alone shows large.
    await alice.locator('#emoji-btn').click();
    await alice.locator('#emoji-panel').getByRole('button', { name: '🎉' }).click();
    await alice.locator('#emoji-panel').waitFor({ state: 'hidden' });
    assert.equal(await alice.locator('#composer-text').inputValue(), '🎉');
    await alice.locator('#composer-text').press('Enter');
    await bob.locator('#msg-list li.msg.theirs .bubble.emoji-only .text', { hasText: '🎉' }).waitFor();

    await alice.locator('#members-btn').click();
    await alice.locator('#member-list li.member').nth(2).waitFor();
    assert.equal(await alice.locator('#member-list li.member').count(), 3);
    await alice.keyboard.press('Escape');
    await screenshotChat(alice, 'group-desktop');
  });

  await t.test('a reload shows the history once', async () => {
    await bob.reload();
    await bob.locator('#me-name', { hasText: 'bob' }).waitFor();
    await open(bob, 'friend-list', 'alice');
    await bubbles(bob, '<img src=x onerror=alert(1)>', '.theirs').waitFor();
    await bob.locator('#history-start').waitFor(); // the whole history is loaded
    assert.equal(await bubbles(bob, 'Hi Bob! 👋').count(), 1);
    assert.equal(await bob.locator('#msg-list li.msg .bubble.image img').count(), 1);
    const seqs = await assertNoDuplicates(bob);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6]);

    // "Seen" survives a reload too: the page asks where the others stand.
    await alice.reload();
    await alice.locator('#me-name', { hasText: 'alice' }).waitFor();
    await open(alice, 'friend-list', 'bob');
    await alice.locator('#msg-list li.msg.mine .receipt', { hasText: 'Seen' }).waitFor();

    await open(bob, 'group-list', 'Weekend hikers');
    await bubbles(bob, 'Count me in 🥾').waitFor();
    await bob.locator('#history-start').waitFor();
    for (const text of ['Who is in for Saturday? ⛰️', 'Me! I will bring the map', 'Count me in 🥾']) {
      assert.equal(await bubbles(bob, text).count(), 1, text);
    }
    await assertNoDuplicates(bob);
  });

  await t.test('a server restart shows a banner, then nothing is lost or doubled', async () => {
    await open(alice, 'friend-list', 'bob');
    await open(bob, 'friend-list', 'alice');
    await stopServer(server);
    await alice.locator('#banner', { hasText: /Reconnect|Connection lost/ }).waitFor();
    ({ child: server } = await startServer(serverAddr));
    await alice.locator('#banner').waitFor({ state: 'hidden', timeout: 30000 });
    await bob.locator('#banner').waitFor({ state: 'hidden', timeout: 30000 });
    await send(bob, 'Back online?');
    await bubbles(alice, 'Back online?', '.theirs').waitFor();
    const seqs = await assertNoDuplicates(alice);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7]);
    await item(alice, 'friend-list', 'bob').locator('.dot.online').waitFor();
  });

  await t.test('phone width: list and chat are separate views', async () => {
    const phone = await newPage(PHONE);
    await shot(phone, 'login-phone');
    await login(phone, 'alice');
    await item(phone, 'friend-list', 'bob').waitFor();
    assert.equal(await phone.locator('#chat').isVisible(), false);
    await shot(phone, 'list-phone');
    await item(phone, 'friend-list', 'bob').click();
    await bubbles(phone, 'Back online?').waitFor();
    assert.equal(await phone.locator('.sidebar').isVisible(), false);
    await shot(phone, 'chat-phone');
    await phone.locator('#back-btn').click();
    await phone.locator('.sidebar').waitFor();
    await open(phone, 'group-list', 'Weekend hikers');
    await bubbles(phone, 'Count me in 🥾').waitFor();
    await shot(phone, 'group-phone');
    await phone.context().close();
  });

  await t.test('scrolling up pages back through the history', async () => {
    // 70 more messages from alice to bob, sent over a second socket of alice's.
    const acks = await alice.evaluate(async () => {
      const token = sessionStorage.getItem('chorus.token');
      const [bobUser] = await (await fetch('/api/users?q=bob', { headers: { Authorization: `Bearer ${token}` } })).json();
      const ws = new WebSocket(`ws://${location.host}/chat?token=${token}`);
      await new Promise((resolve) => { ws.onopen = resolve; });
      let n = 0;
      const done = new Promise((resolve) => {
        ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'ack' && ++n === 70) resolve(); };
      });
      for (let i = 1; i <= 70; i += 1) {
        ws.send(JSON.stringify({ type: 'private', id: `seed-${i}`, to: bobUser.id, media: 'text', content: `Old message ${i}` }));
      }
      await done;
      ws.close();
      return n;
    });
    assert.equal(acks, 70);
    await bubbles(bob, 'Old message 70').waitFor();
    await bob.reload();
    await open(bob, 'friend-list', 'alice');
    await bubbles(bob, 'Old message 70').waitFor();
    await bob.locator('#older-btn').waitFor(); // only the latest page is loaded
    assert.equal(await bubbles(bob, 'Hi Bob! 👋').count(), 0);
    await bob.locator('#messages').evaluate((box) => { box.scrollTop = 0; });
    await bubbles(bob, 'Hi Bob! 👋').waitFor();
    await bob.locator('#history-start').waitFor();
    const seqs = await assertNoDuplicates(bob);
    assert.deepEqual(seqs, Array.from({ length: 77 }, (_, i) => i + 1));
  });

  await t.test('accessibility: no serious or critical axe violations', async () => {
    // Only this context bypasses the CSP, so axe's injected script may run.
    const page = await newPage(DESKTOP, { bypassCSP: true });
    const axe = require.resolve('axe-core/axe.min.js');
    const check = async (label) => {
      await page.addScriptTag({ path: axe });
      const result = await page.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      }));
      const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      const report = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n  ')}`).join('\n');
      assert.equal(bad.length, 0, `${label}:\n${report}`);
      return result.passes.length;
    };
    await page.locator('#login-form').waitFor();
    await check('login screen');
    await login(page, 'carol');
    await open(page, 'group-list', 'Weekend hikers');
    await bubbles(page, 'Count me in 🥾').waitFor();
    await check('group chat');
    await page.context().close();
  });

  await t.test('leave a group, delete an account', async () => {
    await carol.locator('#tab-groups').click();
    await open(carol, 'group-list', 'Weekend hikers');
    await carol.locator('#members-btn').click();
    await carol.locator('#leave-btn').click();
    await carol.locator('#confirm-ok').click();
    await carol.locator('#groups-empty').waitFor();
    await carol.locator('#profile-btn').click();
    await carol.locator('#delete-account-btn').click();
    await carol.locator('#confirm-ok').click();
    await carol.locator('#login-form').waitFor();
    const res = await fetch(`${base()}api/sessions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'carol', password: PASSWORD }),
    });
    assert.equal(res.status, 401, 'the deleted account cannot log in');
  });

  await t.test('no dialogs, page errors or console errors happened', () => {
    assert.deepEqual(problems, []);
  });
});

async function screenshotChat(page, name) {
  await page.locator('#composer-text').fill('');
  await page.mouse.move(0, 0);
  await page.evaluate(() => document.querySelectorAll('.toast').forEach((t) => t.remove()));
  await shot(page, name);
}
