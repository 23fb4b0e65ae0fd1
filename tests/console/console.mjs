// ward's web console in a real browser: Debian's Chromium driven by playwright-core.
// Run by collector/tests/console.rs, which starts a real collector over a real ingested capture,
// creates the tokens and reads back what this script saves (page HTML for the canary scanner
// and the vendor-isolation checks, screenshots, the CSV export).
//
// Environment:
//   WARD_URL      the console, e.g. http://127.0.0.1:8080
//   WARD_TOKENS   JSON {"admin": "...", "clinical": "...", "vendor": "..."}
//   WARD_OUT      directory for <role>-<page>.html / .png and <role>-devices.csv
//   WARD_HIDDEN   JSON {"device": <id of a device the vendor may not see>}
//   WARD_HOSTILE  the host name that must render as text
//
// Every failed check is collected and printed; the exit code is 1 if there was any.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const base = process.env.WARD_URL;
const tokens = JSON.parse(process.env.WARD_TOKENS);
const out = process.env.WARD_OUT;
const hidden = JSON.parse(process.env.WARD_HIDDEN || '{}');
const hostile = process.env.WARD_HOSTILE;
fs.mkdirSync(out, { recursive: true });

const failures = [];
function check(cond, what) {
  if (!cond) {
    failures.push(what);
    console.error(`FAIL: ${what}`);
  } else {
    console.log(`ok: ${what}`);
  }
}

// Chromium's own traffic (component updates, sync, field trials, QUIC probes) must not leave
// this machine; a fresh profile per role so no state is shared between sessions.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

async function save(page, role, name) {
  const html = await page.content();
  fs.writeFileSync(path.join(out, `${role}-${name}.html`), html);
  await page.screenshot({ path: path.join(out, `${role}-${name}.png`), fullPage: true });
  // What a laptop screen shows first (docs/console.md uses these).
  await page.screenshot({ path: path.join(out, `${role}-${name}.top.png`) });
  // No page of the console has a script element, inline or not: nothing could have injected one.
  check((await page.locator('script').count()) === 0, `${role} ${name}: no <script> element`);
  check(
    (await page.locator('[onerror], [onload], [onclick], iframe, object, embed').count()) === 0,
    `${role} ${name}: no event-handler attribute or embedded frame`,
  );
  return html;
}

async function role(name, token, opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ward-chromium-${name}-`));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 1366, height: 900 },
    acceptDownloads: true,
  });
  const dialogs = [];
  const page = context.pages()[0] || (await context.newPage());
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  const consoleErrors = [];
  page.on('console', (m) => {
    // A refused sign-in (401) or page (403, 404) is logged by Chromium as a failed load; what
    // must never appear is anything else, a Content-Security-Policy violation above all.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  try {
    // Not signed in: every page leads to the sign-in form.
    let resp = await page.goto(`${base}/devices`);
    check(new URL(page.url()).pathname === '/signin', `${name}: unsigned request goes to sign-in`);
    check(resp.headers()['content-security-policy']?.includes("frame-ancestors 'none'"), `${name}: CSP on the sign-in page`);
    await save(page, name, 'signin');

    // A wrong token is refused with a message, and no session cookie.
    await page.getByLabel('API token').fill('ward_0000000000000000_' + '0'.repeat(64));
    await page.getByRole('button', { name: 'Sign in' }).click();
    check(await page.getByRole('alert').isVisible(), `${name}: a wrong token is refused with a message`);
    check(!(await context.cookies()).some((c) => c.name === 'ward_session'), `${name}: no session after a refused token`);

    // Sign in with the keyboard: type the token, press Enter.
    await page.getByLabel('API token').fill(token);
    await page.getByLabel('API token').press('Enter');
    await page.waitForURL(`${base}/`);
    check((await page.locator('h1').innerText()) === 'Overview', `${name}: signed in, on the overview`);
    const cookie = (await context.cookies()).find((c) => c.name === 'ward_session');
    check(cookie && cookie.httpOnly && cookie.sameSite === 'Strict' && cookie.path === '/', `${name}: session cookie HttpOnly, SameSite=Strict, Path=/`);
    check(!page.url().includes(token) && !page.url().includes(cookie?.value ?? 'x'), `${name}: neither token nor session in the URL`);
    check(!(await page.evaluate(() => document.cookie)).includes('ward_session'), `${name}: the session cookie is not readable by script`);
    await save(page, name, 'overview');

    // The skip link is the first thing the keyboard reaches, and it moves focus to the content.
    await page.keyboard.press('Tab');
    check((await page.evaluate(() => document.activeElement?.textContent)) === 'Skip to content', `${name}: first Tab reaches the skip link`);
    await page.keyboard.press('Enter');
    check((await page.evaluate(() => document.activeElement?.id)) === 'main', `${name}: the skip link moves focus to the main content`);

    // Walk every page in the navigation.
    const nav = page.getByRole('navigation', { name: 'Main' });
    const labels = await nav.getByRole('link').allInnerTexts();
    check(labels.includes('Agents') === !opts.vendor, `${name}: the Agents page is ${opts.vendor ? 'not ' : ''}offered`);
    for (const label of labels) {
      await nav.getByRole('link', { name: label, exact: true }).click();
      await page.waitForLoadState();
      check((await page.locator('h1').count()) === 1, `${name}: ${label} has one heading`);
      const slug = label.toLowerCase().replace(/[^a-z]+/g, '-');
      await save(page, name, slug);
    }

    // Devices: filter with the form, then search and open a device.
    await page.goto(`${base}/devices`);
    await page.getByLabel('Sort by').selectOption('flags');
    await page.getByLabel('Contract').selectOption('(none)');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForLoadState();
    check(page.url().includes('contract=%28none%29') && page.url().includes('sort=flags'), `${name}: the filter form filters (URL ${page.url()})`);
    await save(page, name, 'devices-filtered');

    // CSV export of the view on screen.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Export this view as CSV' }).click(),
    ]);
    const csvPath = path.join(out, `${name}-devices.csv`);
    await download.saveAs(csvPath);
    const csv = fs.readFileSync(csvPath, 'utf8');
    check(csv.startsWith('id,macs,ips,manufacturer'), `${name}: CSV export has the report's columns`);

    await page.goto(`${base}/devices`);
    const firstDevice = page.locator('tbody tr td:first-child a').first();
    if (await firstDevice.count()) {
      await firstDevice.click();
      await page.waitForLoadState();
      check((await page.locator('h1').innerText()).startsWith('Device '), `${name}: a device opens from the list`);
      await save(page, name, 'device');
    } else {
      check(false, `${name}: the device list is empty`);
    }

    if (opts.hostile) {
      // The device named <script>alert(1)</script> by its DHCP host name: search for it, open
      // it, and the name is text — no dialog, no element.
      await page.goto(`${base}/devices`);
      await page.getByLabel('Search').fill(hostile);
      await page.getByLabel('Search').press('Enter');
      await page.waitForLoadState();
      const rows = page.locator('tbody tr');
      check((await rows.count()) === 1, `${name}: the hostile host name is found by search`);
      await rows.first().locator('td:first-child a').click();
      await page.waitForLoadState();
      check((await page.getByText(hostile, { exact: true }).count()) >= 1, `${name}: the hostile host name shows as text`);
      await save(page, name, 'device-hostile');
    }

    if (opts.vendor) {
      resp = await page.goto(`${base}/agents`);
      check(resp.status() === 403, `${name}: the Agents page is refused (${resp.status()})`);
      if (hidden.device) {
        resp = await page.goto(`${base}/devices/${hidden.device}`);
        check(resp.status() === 404, `${name}: another vendor's device is not found (${resp.status()})`);
        await save(page, name, 'hidden-device');
      }
    }

    // Flags: filter by status and kind with the form.
    await page.goto(`${base}/flags`);
    await page.getByLabel('Status').selectOption('all');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForLoadState();
    check(page.url().includes('status=all'), `${name}: the flag filter applies`);
    await save(page, name, 'flags-all');

    // Sign out: back to sign-in, and the old session no longer opens a page.
    await page.goto(`${base}/`);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/signin`);
    await page.goto(`${base}/`);
    check(new URL(page.url()).pathname === '/signin', `${name}: signed out`);

    check(dialogs.length === 0, `${name}: no dialog opened (${JSON.stringify(dialogs)})`);
    check(consoleErrors.length === 0, `${name}: no console errors (${JSON.stringify(consoleErrors)})`);
  } finally {
    await context.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  await role('admin', tokens.admin, { hostile: true });
  await role('clinical', tokens.clinical, { hostile: true });
  await role('vendor', tokens.vendor, { vendor: true });
} catch (e) {
  failures.push(`exception: ${e.stack || e}`);
  console.error(e);
}
console.log(`${failures.length === 0 ? 'all checks passed' : failures.length + ' checks failed'}`);
process.exit(failures.length === 0 ? 0 : 1);
