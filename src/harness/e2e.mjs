/* global process, console, window, document, fetch, performance */
// Drives the harness page in Debian's chromium (playwright-core, no browser
// download) the way a Grafana user would: a bad filter shows its error at
// its place, a namespace is picked from completion, a traffic row opens the
// entry with its captured JSON body, and "Save & test" shows CheckHealth's
// answer. internal/browsertest runs it against the real plugin and agents.
//
// Environment: PODWIRE_HARNESS_URL (the page), PODWIRE_SCREENSHOTS (a folder
// for screenshots), PODWIRE_AGENTS (the agents, comma-separated, node-a's
// first), PODWIRE_BIG_ENTRY (an entry with a big JSON response body, may be
// empty), PODWIRE_CHROMIUM (default /usr/bin/chromium).
// The last line of output is `RESULT {json}` with the measurements.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function need(name) {
  const v = process.env[name];
  if (v === undefined) {
    throw new Error(`${name} is not set`);
  }
  return v;
}

class Failure extends Error {}

function check(ok, message) {
  if (!ok) {
    throw new Failure(message);
  }
}

const url = need('PODWIRE_HARNESS_URL');
const shots = need('PODWIRE_SCREENSHOTS');
const agents = need('PODWIRE_AGENTS').split(',').filter(Boolean);
const bigEntry = process.env.PODWIRE_BIG_ENTRY ?? '';
const executablePath = process.env.PODWIRE_CHROMIUM || '/usr/bin/chromium';
const timeout = 30000;

const result = {};
const pageErrors = [];
const userDataDir = mkdtempSync(join(tmpdir(), 'podwire-chromium-'));
let context;
let page;

function log(...args) {
  console.log(...args);
}

async function shot(name) {
  const path = join(shots, name);
  await page.screenshot({ path, fullPage: true });
  log(`screenshot ${path}`);
}

async function completionLabels() {
  const items = page.getByTestId('podwire-completion-item');
  await items.first().waitFor({ timeout });
  return items.evaluateAll((els) => els.map((el) => el.querySelector('span')?.textContent ?? ''));
}

async function pick(label) {
  const labels = await completionLabels();
  const i = labels.indexOf(label);
  check(i >= 0, `completion offers ${JSON.stringify(labels)}, not ${label}`);
  await page.getByTestId('podwire-completion-item').nth(i).click();
  return labels;
}

async function badFilter() {
  const input = page.getByTestId('podwire-filter-input');
  await input.click();
  // "staus" starts at index 8: line 1, column 9.
  const filter = 'http && staus >= 500';
  await input.pressSequentially(filter);
  const error = page.getByTestId('podwire-filter-error');
  await error.waitFor({ timeout });
  const text = await error.innerText();
  log(`filter error: ${text.replace(/\n/g, ' | ')}`);
  check(text.includes('line 1, column 9'), `the error does not say line 1, column 9: ${text}`);
  check(text.includes('staus'), `the error does not name "staus": ${text}`);
  check(text.includes(`${filter}\n${' '.repeat(8)}^`), `the caret is not under "staus": ${text}`);
  const mark = page.getByTestId('podwire-filter-error-mark');
  check((await mark.textContent()) === 's', `the marked character is ${JSON.stringify(await mark.textContent())}, want "s"`);
  check((await input.getAttribute('aria-invalid')) === 'true', 'the filter field is not marked invalid');
  // The mark sits on the "s" of the text: as far right of the field's
  // start as 8 characters of its monospace font.
  const box = await mark.boundingBox();
  const field = await input.boundingBox();
  const charWidth = await input.evaluate((el) => {
    const c = document.createElement('canvas').getContext('2d');
    c.font = window.getComputedStyle(el).font;
    return c.measureText('s').width;
  });
  const pad = await input.evaluate((el) => parseFloat(window.getComputedStyle(el).paddingLeft) + parseFloat(window.getComputedStyle(el).borderLeftWidth));
  const want = field.x + pad + 8 * charWidth;
  check(Math.abs(box.x - want) < charWidth / 2, `the mark is at x=${box.x}, the "s" at x=${want}`);
  check(box.y >= field.y && box.y + box.height <= field.y + field.height, 'the mark is not inside the filter field');
  result.filterError = text.split('\n')[0];
  await shot('filter-error.png');
}

async function completeNamespace() {
  const input = page.getByTestId('podwire-filter-input');
  await input.fill('');
  await input.pressSequentially('dst.names');
  const fields = await pick('dst.namespace');
  log(`field completion: ${fields.join(', ')}`);
  check((await input.inputValue()) === 'dst.namespace', `after picking the field the filter is ${await input.inputValue()}`);
  await input.pressSequentially(' == "sh');
  const values = await completionLabels();
  log(`value completion: ${values.join(', ')}`);
  check(values.includes('shop') && values.includes('shipping'), `completion of dst.namespace "sh" offers ${JSON.stringify(values)}, want shop and shipping`);
  result.completionCounts = Object.fromEntries(
    await page
      .getByTestId('podwire-completion-item')
      .evaluateAll((els) => els.map((el) => [el.querySelector('span')?.textContent ?? '', Number(el.querySelectorAll('span')[1]?.textContent ?? NaN)]))
  );
  await shot('completion.png');
  await pick('shop');
  const value = await input.inputValue();
  check(value === 'dst.namespace == "shop"', `after picking shop the filter is ${value}`);
  result.completion = values;
}

async function openEntry() {
  const input = page.getByTestId('podwire-filter-input');
  await input.press('End');
  await input.pressSequentially(' && path == "/api/cart/items');
  await input.press('Escape');
  await input.press('End');
  await input.pressSequentially('"');
  await page.getByTestId('harness-run-query').click();
  const links = page.getByTestId('harness-entry-link');
  await links.first().waitFor({ timeout });
  const n = await links.count();
  check(n === 1, `the query ${await input.inputValue()} found ${n} entries, want 1`);
  // The error of a half-typed filter goes once the whole one is validated.
  await page.getByTestId('podwire-filter-error').waitFor({ state: 'detached', timeout });
  const id = (await links.first().innerText()).trim();
  check(id.startsWith('node-a'), `entry id ${id} is not from node-a`);
  await links.first().click();
  await page.getByTestId('podwire-entry-viewer').waitFor({ timeout });
  check((await page.getByTestId('podwire-entry-id').inputValue()) === id, 'the entry query does not hold the id');
  const summary = await page.getByTestId('podwire-entry-summary').innerText();
  check(summary.includes('/api/cart/items') && summary.includes('200'), `summary: ${summary}`);
  const body = page.locator('[data-testid="podwire-entry-body"][data-kind="json"]');
  await body.waitFor({ timeout });
  const tree = await body.getByTestId('podwire-json-tree').innerText();
  check(tree.includes('/api/cart/items') && tree.includes('method') && tree.includes('GET'), `the JSON body shows: ${tree}`);
  log(`entry ${id}: ${tree.replace(/\s+/g, ' ')}`);
  result.entry = id;
  await shot('entry.png');
}

async function bigBody() {
  if (!bigEntry) {
    return;
  }
  // As a user: the entry id typed in the entry query, until the JSON tree
  // shows (fetching through the host, the plugin and the agent included).
  const idField = page.getByTestId('podwire-entry-id');
  await idField.fill(bigEntry);
  const t0 = Date.now();
  await idField.press('Enter');
  await page.waitForFunction(
    () =>
      document.querySelector('[data-testid="podwire-entry-summary"]')?.textContent?.includes('/catalog.json') &&
      document.querySelector('[data-testid="podwire-entry-body"][data-kind="json"] [data-testid="podwire-json-tree"]'),
    null,
    { timeout: 120000, polling: 'raf' }
  );
  result.bigOpenMs = Date.now() - t0;
  const tree = page.locator('[data-testid="podwire-entry-body"][data-kind="json"] [data-testid="podwire-json-tree"]');
  check((await tree.innerText()).includes('items'), 'the big JSON body does not show its items');
  await shot('entry-5mib.png');
  // Still responsive: switching to the request tab and back.
  const t1 = Date.now();
  await page.getByRole('tab', { name: 'Request' }).click();
  await page.getByRole('tab', { name: 'Response' }).click();
  await tree.waitFor({ timeout });
  result.bigTabSwitchMs = Date.now() - t1;

  // The viewer alone, with the entry already fetched.
  const fetched = await page.evaluate(async (id) => {
    const r = await fetch(`/api/datasources/uid/podwire/resources/entries/${encodeURIComponent(id)}`);
    const text = await r.text();
    window.__bigEntry = JSON.parse(text);
    return { status: r.status, bytes: text.length, body: window.__bigEntry.response?.body?.length ?? 0 };
  }, bigEntry);
  check(fetched.status === 200, `GET entries/${bigEntry}: ${fetched.status}`);
  result.bigBodyBytes = fetched.body;
  result.bigRenderMs = [];
  for (let i = 0; i < 3; i++) {
    const ms = await page.evaluate(async () => {
      const t = performance.now();
      const ms = await window.podwireHarness.renderEntry(window.__bigEntry);
      return ms ?? performance.now() - t;
    });
    result.bigRenderMs.push(Math.round(ms));
  }
  log(`5 MiB JSON body (${fetched.body} bytes): open ${result.bigOpenMs} ms, render ${result.bigRenderMs.join(', ')} ms, tab switch ${result.bigTabSwitchMs} ms`);
}

async function saveAndTest(list, want) {
  const area = page.getByRole('textbox', { name: 'Agents', exact: true });
  await area.fill(list.join('\n'));
  await page.getByTestId('harness-save-test').click();
  const res = page.getByTestId('harness-test-result');
  await res.waitFor({ timeout });
  const text = await res.innerText();
  log(`save & test with ${list.join(', ')}: ${text.replace(/\n/g, ' | ')}`);
  check(text.startsWith(want), `Save & test says "${text}", want it to start with "${want}"`);
  check((await res.getAttribute('data-status')) === 'success', `Save & test status ${await res.getAttribute('data-status')}`);
  return text;
}

async function config() {
  check(agents.length === 2, `PODWIRE_AGENTS names ${agents.length} agents, want 2`);
  await saveAndTest([agents[0]], '1 of 1 agents answer');
  const text = await saveAndTest(agents, '2 of 2 agents answer');
  check(text.includes('node-a') && text.includes('node-b'), `the health message does not name both nodes: ${text}`);
  // The per-agent lines come from the details, which Grafana's base class
  // would drop on success.
  for (const a of agents) {
    check(text.includes(`✓ ${a}: node node-`), `the details do not list agent ${a}: ${text}`);
  }
  result.health = text.split('\n')[0];
  await page.getByTestId('harness-test-result').scrollIntoViewIfNeeded();
  await shot('config.png');
}

let failed = false;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('response', (r) => {
    if (r.status() >= 400) {
      log(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
    }
  });
  page.on('console', (m) => {
    if (m.type() === 'error') {
      log(`console error: ${m.text()}`);
    }
  });
  await page.goto(url);
  await page.getByTestId('podwire-query-editor').waitFor({ timeout });
  await page.getByTestId('podwire-config-editor').waitFor({ timeout });

  await badFilter();
  await completeNamespace();
  await openEntry();
  await bigBody();
  await config();
  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join('; ')}`);
} catch (e) {
  failed = true;
  console.error(`FAIL: ${e instanceof Failure ? e.message : (e?.stack ?? e)}`);
  if (pageErrors.length) {
    console.error(`uncaught errors in the page: ${pageErrors.join('; ')}`);
  }
  if (page) {
    await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`screenshot ${join(shots, 'failure.png')}`);
  }
} finally {
  await context?.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
log(`RESULT ${JSON.stringify(result)}`);
process.exit(failed ? 1 : 0);
