// The GraphQL-over-HTTP audit shipped by the graphql-http package: every MUST passes; the
// SHOULD items that warn must be exactly those explained in docs/graphql-over-http.md.
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { serverAudits } from 'graphql-http';
import { root, startServer } from './server.mjs';

let server;
before(async () => {
  server = await startServer({ leads: 5 });
});
after(() => server?.stop());

test('graphql-http serverAudits', async () => {
  const results = [];
  for (const audit of serverAudits({ url: `${server.url}/graphql`, fetchFn: fetch })) {
    const r = await audit.fn();
    results.push({ id: audit.id, name: audit.name, status: r.status, reason: r.reason ?? '' });
  }
  const report = results.map((r) => `${r.status.padEnd(5)} ${r.id} ${r.name}${r.reason ? ` — ${r.reason}` : ''}`);
  mkdirSync(join(root, 'target'), { recursive: true });
  writeFileSync(join(root, 'target/graphql-http-audit.txt'), `${report.join('\n')}\n`);

  const failed = results.filter((r) => r.status === 'error');
  assert.deepEqual(failed, [], 'MUST items failing');

  const warned = results.filter((r) => r.status === 'warn').map((r) => r.id).sort();
  const doc = readFileSync(join(root, 'docs/graphql-over-http.md'), 'utf8');
  const documented = [...doc.matchAll(/^\| `([0-9A-F]{4})` \|/gm)].map((m) => m[1]).sort();
  assert.deepEqual(warned, documented, 'SHOULD items warning vs. those listed in docs/graphql-over-http.md');
  assert.ok(results.length > 50, `ran ${results.length} audits`);
});
