// GraphiQL in a real browser: headless Chromium (Debian's) driven by playwright-core opens
// /graphql, an API key goes into the Headers pane, a query runs and the result pane shows
// leads. The browser has no network beyond loopback (every other host name fails to
// resolve), as on an air-gapped machine: the page's files come from leadgraph's binary.
// Screenshot: target/graphiql.png.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { root, startServer } from './server.mjs';

const QUERY = `query Newest {
  leads(first: 5) {
    totalCount
    edges { node { id email status } }
  }
}`;

let server;
let browser;
before(async () => {
  server = await startServer({ leads: 12 });
  // playwright-core gives Chromium a new, empty profile of its own.
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // No network: any host but the server's loopback address fails to resolve.
      `--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE ${new URL(server.url).hostname}`,
    ],
  });
});

test('the browser cannot reach the internet', async () => {
  const page = await browser.newPage();
  const outcome = await page.evaluate(() =>
    fetch('https://unpkg.com/react@18.3.1/umd/react.production.min.js', { mode: 'no-cors' })
      .then(() => 'reached', () => 'blocked'));
  await page.close();
  assert.equal(outcome, 'blocked');
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Replaces the text of the CodeMirror editor inside `container`. */
async function fill(page, container, text) {
  await page.locator(`${container} .CodeMirror`).first().click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // insertText sends one input event: no auto-closed brackets or quotes get in the way.
  await page.keyboard.insertText(text);
}

test('GraphiQL runs an authenticated query in Chromium', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const offsite = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) offsite.push(r.url());
  });
  await page.goto(`${server.url}/graphql`);
  await page.locator('.graphiql-container').waitFor();

  await fill(page, '.graphiql-query-editor', QUERY);
  await page.getByRole('button', { name: 'Headers', exact: true }).click();
  await fill(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', JSON.stringify({ 'X-API-Key': server.apiKey }));
  await page.locator('.graphiql-execute-button').click();

  const result = page.locator('.result-window');
  await result.getByText('totalCount').waitFor({ timeout: 15000 });
  const text = await result.innerText();
  mkdirSync(join(root, 'target'), { recursive: true });
  await page.screenshot({ path: join(root, 'target/graphiql.png') });

  assert.match(text, /"totalCount": 12/);
  assert.equal((text.match(/"email":/g) ?? []).length, 5, text);
  assert.doesNotMatch(text, /"errors"/);
  assert.deepEqual(offsite, [], 'the page loads nothing from other origins');
});

test('GraphiQL runs a subscription over WebSocket in Chromium', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const failures = [];
  page.on('console', (m) => m.type() === 'error' && failures.push(m.text()));
  await page.goto(`${server.url}/graphql`);
  await page.locator('.graphiql-container').waitFor();
  await fill(page, '.graphiql-query-editor', 'subscription { events(types: [LEAD_CREATED]) { type data } }');
  await page.getByRole('button', { name: 'Headers', exact: true }).click();
  await fill(page, '.graphiql-editor-tool .graphiql-editor:not(.hidden)', JSON.stringify({ 'X-API-Key': server.apiKey }));
  await page.locator('.graphiql-execute-button').click();
  // A lead created elsewhere shows up in the result pane.
  const result = page.locator('.result-window');
  for (let i = 0; i < 40; i++) {
    await fetch(`${server.url}/v1/leads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': server.apiKey },
      body: JSON.stringify({ email: `graphiql-${i}@example.com`, firstName: 'G', lastName: 'Q' }),
    });
    if ((await result.innerText()).includes('graphiql-')) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const text = await result.innerText();
  await page.screenshot({ path: join(root, 'target/graphiql-subscription.png') });
  assert.match(text, /LEAD_CREATED/, `${text}\n${failures.join('\n')}`);
  assert.match(text, /graphiql-\d+@example\.com/);
});
