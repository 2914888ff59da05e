// Subscription latency: subscribes to LEAD_CREATED with graphql-ws, creates leads one after
// another over REST, and measures from each event's commit (occurredAt) to its arrival.
// Usage: node bench/subscription-latency.mjs BASE_URL API_KEY COUNT -> "p50_ms p99_ms"
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/clients/package.json', import.meta.url));
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');

const [base, key, count = '200'] = process.argv.slice(2);
const n = Number(count);
const latencies = [];
const client = createClient({
  url: `${base.replace('http', 'ws')}/graphql`,
  webSocketImpl: WebSocket,
  connectionParams: { 'X-API-Key': key },
});
let resolveAll;
const all = new Promise((r) => (resolveAll = r));
client.subscribe(
  { query: 'subscription { events(types: [LEAD_CREATED]) { occurredAt } }' },
  {
    next: (m) => {
      latencies.push(Date.now() - Date.parse(m.data.events.occurredAt));
      if (latencies.length === n) resolveAll();
    },
    error: (e) => { console.error(e); process.exit(1); },
    complete: () => {},
  },
);
await new Promise((r) => setTimeout(r, 500));
for (let i = 0; i < n; i++) {
  await fetch(`${base}/v1/leads`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ email: `latency-${i}@example.com`, firstName: 'S', lastName: 'L' }),
  });
}
await all;
latencies.sort((a, b) => a - b);
const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(`${at(0.5)} ${at(0.99)}`);
await client.dispose();
process.exit(0);
