/**
 * The demo in a real browser (Debian's Chromium via playwright-core), served by `demo/server.ts`
 * as a child process on the default embedded store: SQLite in a temp ./data directory.
 * UPDATE_SCREENSHOTS=1 also writes the screenshots into docs/screenshots/.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromiumMissing, launchChromium } from './chromium.js';
import { type DemoProcess, startDemo } from './demo-process.js';

const missing = chromiumMissing();
const FIREFOX_ON_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:128.0) Gecko/20100101 Firefox/128.0';

describe('demo in Chromium', { skip: missing !== null && process.env.CI !== 'true' ? missing : false, timeout: 180_000 }, () => {
  let dir: string;
  let shots: string;
  let demo: DemoProcess;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  before(async () => {
    if (missing) throw new Error(`${missing} (CI=true: the browser tests must run)`);
    dir = mkdtempSync(join(tmpdir(), 'coatcheck-e2e-'));
    shots = process.env.UPDATE_SCREENSHOTS === '1' ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url)) : join(dir, 'screenshots');
    mkdirSync(shots, { recursive: true });
    demo = await startDemo({ cwd: dir });
    browser = await launchChromium();
  });

  after(async () => {
    await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 10_000))]).catch(() => undefined);
    await demo?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function device(userAgent?: string): Promise<Page> {
    const context = await browser.newContext({
      viewport: { width: 1100, height: 760 },
      locale: 'en-US',
      timezoneId: 'UTC',
      ...(userAgent && { userAgent }),
    });
    context.setDefaultTimeout(10_000);
    context.setDefaultNavigationTimeout(15_000);
    contexts.push(context);
    return context.newPage();
  }

  async function signIn(page: Page, name: string): Promise<void> {
    await page.goto(`${demo.url}/login`);
    await page.getByLabel('Name').fill(name);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${demo.url}/`);
    assert.equal(await page.getByTestId('user').textContent(), name);
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    assert.ok(statSync(path).size > 5_000, `${name}.png looks empty`);
  }

  it('sets the session cookie as documented: HttpOnly, SameSite=Lax, Path=/, no Max-Age', async () => {
    const page = await device();
    const response = await page.goto(`${demo.url}/login`);
    assert.equal(response?.status(), 200);
    const header = await response!.headerValue('set-cookie');
    assert.match(header ?? '', /^sid=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/);
    const [cookie] = await page.context().cookies();
    assert.equal(cookie?.name, 'sid');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Lax');
    assert.equal(cookie?.path, '/');
    assert.equal(cookie?.secure, false, 'plain HTTP: COOKIE_SECURE=auto leaves Secure off');
    assert.equal(cookie?.expires, -1, 'a browser-session cookie (no Max-Age / Expires)');
    await screenshot(page, 'sign-in');
  });

  it('signs in on two devices, lists both, and a revoked device lands on the sign-in page', async () => {
    const laptop = await device();
    const other = await device(FIREFOX_ON_MAC);
    await signIn(laptop, 'alice');
    await signIn(other, 'alice');

    await laptop.goto(`${demo.url}/sessions`);
    const rows = laptop.getByTestId('device');
    assert.equal(await rows.count(), 2);
    const current = laptop.locator('tr.current');
    assert.equal(await current.count(), 1);
    assert.match((await current.textContent()) ?? '', /Headless Chrome on Linux.*this device/s);
    const otherRow = rows.filter({ hasText: 'Firefox on macOS' });
    assert.equal(await otherRow.count(), 1);
    assert.match((await otherRow.textContent()) ?? '', /127\.0\.0\.1/);
    await screenshot(laptop, 'sessions');

    await otherRow.getByRole('button', { name: 'Sign out this device' }).click();
    await laptop.waitForURL(`${demo.url}/sessions`);
    assert.match((await laptop.locator('.flash').textContent()) ?? '', /That device is signed out/);
    assert.equal(await laptop.getByTestId('device').count(), 1);

    // Its page is stale: the next click arrives as a guest and lands on the sign-in page.
    await other.getByRole('button', { name: '+1' }).click();
    await other.waitForURL(`${demo.url}/login`);
    assert.match((await other.locator('.flash').textContent()) ?? '', /signed out elsewhere/);
    await other.reload();
    await other.waitForURL(`${demo.url}/login`);
    assert.equal(await other.getByRole('heading', { name: 'Sign in' }).count(), 1);
    assert.equal(await other.getByTestId('user').count(), 0);

    // The laptop is unaffected.
    await laptop.goto(`${demo.url}/`);
    assert.equal(await laptop.getByTestId('user').textContent(), 'alice');
  });

  it('refuses a form and an API call without the CSRF token (403), accepts them with it', async () => {
    const page = await device();
    await signIn(page, 'carol');
    const refused = page.waitForResponse((r) => r.url() === `${demo.url}/note` && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Send the same form without its token' }).click();
    assert.equal((await refused).status(), 403);
    assert.match((await page.getByTestId('error').textContent()) ?? '', /missing CSRF token/);
    await screenshot(page, 'csrf-refused');

    await page.goto(`${demo.url}/`);
    await page.getByLabel('Note').fill('hello <b>world</b>');
    await page.getByRole('button', { name: 'Save note' }).click();
    await page.waitForURL(`${demo.url}/`);
    assert.equal(await page.getByLabel('Note').inputValue(), 'hello <b>world</b>');

    // The context's API client shares the browser's cookie.
    const api = page.context().request;
    const denied = await api.post(`${demo.url}/api/counter`);
    assert.equal(denied.status(), 403);
    const { csrfToken } = (await (await api.get(`${demo.url}/api/session`)).json()) as { csrfToken: string };
    const allowed = await api.post(`${demo.url}/api/counter`, { headers: { 'x-csrf-token': csrfToken } });
    assert.equal(allowed.status(), 200);
    assert.deepEqual(await allowed.json(), { count: 1 });
  });

  it('shows a flash message once, after the redirect', async () => {
    const page = await device();
    await signIn(page, 'erin');
    await page.getByRole('button', { name: '+1' }).click();
    await page.waitForURL(`${demo.url}/`);
    assert.match((await page.locator('.flash').textContent()) ?? '', /Counter is now 1\./);
    assert.equal(await page.getByTestId('count').textContent(), '1');
    await page.getByLabel('Item').selectOption('hat');
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await page.getByLabel('Item').selectOption('umbrella');
    await page.getByRole('button', { name: 'Add to cart' }).click();
    await page.waitForURL(`${demo.url}/`);
    assert.match((await page.getByTestId('cart').textContent()) ?? '', /1 × hat.*1 × umbrella/s);
    assert.equal(await page.locator('.flash').count(), 1);
    await screenshot(page, 'home');

    await page.reload();
    assert.equal(await page.locator('.flash').count(), 0, 'the message was consumed by the first page');
    assert.equal(await page.getByTestId('count').textContent(), '1');
  });

  it('keeps the session across a restart of the server (SQLite file)', async () => {
    const page = await device();
    await signIn(page, 'dave');
    for (let i = 0; i < 3; i++) {
      await page.getByRole('button', { name: '+1' }).click();
      await page.waitForURL(`${demo.url}/`);
    }
    assert.equal(await page.getByTestId('count').textContent(), '3');

    const { port } = demo;
    assert.equal(await demo.stop(), 0, `the server shuts down cleanly on SIGTERM:\n${demo.output()}`);
    demo = await startDemo({ cwd: dir, env: { PORT: String(port) } });

    await page.reload();
    assert.equal(page.url(), `${demo.url}/`);
    assert.equal(await page.getByTestId('user').textContent(), 'dave');
    assert.equal(await page.getByTestId('count').textContent(), '3');
  });
});
