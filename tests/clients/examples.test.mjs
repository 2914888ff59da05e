// Each example in examples/ runs against a live server and prints what it promises.
// The Python example runs with PYTHON (a venv with httpx; tests/clients/run.sh makes one) and
// the TypeScript one from target/ts-examples (built by `npm run build-examples`).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { root, startServer } from './server.mjs';

const run = promisify(execFile);
let server;
before(async () => {
  server = await startServer({ leads: 30 });
});
after(() => server?.stop());

function env() {
  return { ...process.env, LEADGRAPH_URL: server.url, LEADGRAPH_API_KEY: server.apiKey };
}

async function count(path) {
  const r = await fetch(`${server.url}${path}`, { headers: { 'X-API-Key': server.apiKey } });
  return (await r.json()).data;
}

test('examples/curl.sh creates, tags and reads back a lead', async () => {
  const { stdout } = await run('bash', [join(root, 'examples/curl.sh')], { env: env() });
  const id = stdout.match(/^created (\S+)$/m)?.[1];
  assert.ok(id, stdout);
  assert.match(stdout, /^read back curl\.example\.\d+@example\.com score 70 tags from-curl$/m);
  const lead = await count(`/v1/leads/${id}`);
  assert.deepEqual(lead.tags, ['from-curl']);
});

test('examples/python/list_leads.py pages through leads and shows a refusal', async () => {
  const python = process.env.PYTHON ?? 'python3';
  const before = (await count('/v1/stats')).total;
  const { stdout } = await run(python, [join(root, 'examples/python/list_leads.py')], { env: env() });
  assert.match(stdout, /^listed 30 of 3\d leads in 3 pages$/m);
  assert.match(stdout, /^refused with 422 VALIDATION_FAILED: email, firstName, lastName$/m);
  const scores = [...stdout.matchAll(/^\s*(\d+)  [A-Z]/gm)].map((m) => Number(m[1]));
  assert.equal(scores.length, 30);
  assert.deepEqual(scores, [...scores].sort((a, b) => b - a), 'ordered by score, descending');
  assert.equal((await count('/v1/stats')).total, before, 'the refused create wrote nothing');
});

test('examples/typescript/list-leads.ts runs with the generated types', async () => {
  const script = join(root, 'target/ts-examples/examples/typescript/list-leads.js');
  const { stdout } = await run('node', [script], { env: env() });
  assert.match(stdout, /^signed in to Demo \(ENTERPRISE\) as OWNER with API_KEY$/m);
  assert.match(stdout, /^hot leads: \d+, next page: (yes|no)$/m);
  const byStatus = stdout.match(/^by status: (.*)$/m)?.[1] ?? '';
  const total = byStatus.split(' ').reduce((n, kv) => n + Number(kv.split('=')[1]), 0);
  assert.equal(total, (await count('/v1/stats')).total, stdout);
});

test('examples/typescript/import-leads.ts uploads a CSV file and follows the job', async () => {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'leadgraph-import-'));
  const file = join(dir, 'fair.csv');
  await writeFile(file, 'email,firstName,lastName,tags\nts1@example.com,Ts,One,fair\nts2@example.com,Ts,Two,fair;vip\nnope,Bad,Row,\n');
  const script = join(root, 'target/ts-examples/examples/typescript/import-leads.js');
  const { stdout } = await run('node', [script, file], { env: env() });
  assert.match(stdout, /^queued import \S+ of 3 rows$/m);
  assert.match(stdout, /^completed: 2 created, 0 updated, 0 skipped, 1 failed$/m);
  assert.match(stdout, /^  row 3 email: /m);
  const lead = await fetch(`${server.url}/v1/leads?q=ts2`, { headers: { 'X-API-Key': server.apiKey } });
  assert.deepEqual((await lead.json()).data[0].tags, ['fair', 'vip']);
});
