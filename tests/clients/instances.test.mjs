// Two leadgraph processes on one PostgreSQL database (skipped when LEADGRAPH_TEST_POSTGRES_URL
// is not set): a subscriber on B hears a lead created through A, and 1 000 events created
// through both are each delivered once by their two delivery workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer as httpServer } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { root } from './server.mjs';

const admin = process.env.LEADGRAPH_TEST_POSTGRES_URL;
const bin = process.env.LEADGRAPH_BIN ?? join(root, 'target/debug/leadgraph');

const freePort = () =>
  new Promise((ok) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

async function start(env) {
  const port = await freePort();
  const child = spawn(bin, ['serve'], {
    env: { ...env, LEADGRAPH_BIND: `127.0.0.1:${port}` },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not yet
    }
    if (i > 300) throw new Error('leadgraph did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGTERM'); }) };
}

const until = async (what, check, seconds = 60) => {
  for (let i = 0; i < seconds * 20; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
};

test('two processes on one PostgreSQL share subscriptions and the delivery queue', { skip: !admin }, async () => {
  const name = `leadgraph_instances_${process.pid}`;
  const psql = (sql) => execFileSync('psql', [admin, '-qc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  psql(`CREATE DATABASE ${name}`);
  const env = {
    ...process.env,
    LEADGRAPH_DATABASE_URL: admin.replace(/\/[^/]*$/, `/${name}`),
    LEADGRAPH_NO_BOOTSTRAP: 'true',
    LEADGRAPH_LOG: 'warn',
    LEADGRAPH_RATE_LIMIT_PER_IP: '0',
    LEADGRAPH_TENANT_RATE_LIMITS: 'false',
    LEADGRAPH_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    LEADGRAPH_WEBHOOK_POLL_MS: '50',
  };
  const seeded = JSON.parse(
    execFileSync(bin, ['seed-demo', '--leads', '0', '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim().split('\n').pop(),
  );
  const key = seeded.apiKey;
  const received = [];
  const receiver = httpServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received.push(req.headers['webhook-id']);
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
  const a = await start(env);
  const b = await start(env);
  const client = createClient({
    url: `${b.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { 'X-API-Key': key },
    retryAttempts: 0,
  });
  try {
    const heard = [];
    client.subscribe(
      { query: 'subscription { events(types: [LEAD_CREATED]) { resourceId } }' },
      { next: (m) => heard.push(m.data.events.resourceId), error: () => {}, complete: () => {} },
    );
    await new Promise((r) => setTimeout(r, 500));
    const post = (base, path, body) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    const first = await post(a.url, '/v1/leads', { email: 'first@example.com', firstName: 'A', lastName: 'B' });
    const t0 = Date.now();
    await until('B to hear the lead created through A', () => heard.includes(first.data.id), 5);
    assert.ok(Date.now() - t0 < 1000, `heard after ${Date.now() - t0} ms`);

    await post(a.url, '/v1/webhook-endpoints', { url: `http://127.0.0.1:${receiver.address().port}/hook` });
    // 1 000 events: 500 creates, half through each process, 10 at a time.
    for (let i = 0; i < 50; i++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          post(j % 2 ? a.url : b.url, '/v1/leads', { email: `l${i}-${j}@example.com`, firstName: 'L', lastName: 'N' }),
        ),
      );
    }
    for (let i = 0; i < 50; i++) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          post(j % 2 ? b.url : a.url, '/v1/leads', { email: `m${i}-${j}@example.com`, firstName: 'M', lastName: 'N' }),
        ),
      );
    }
    await until('1 000 deliveries', () => received.length >= 1000, 120);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(received.length, 1000, 'no delivery was sent twice');
    assert.equal(new Set(received).size, 1000);
  } finally {
    await client.dispose();
    await a.stop();
    await b.stop();
    receiver.close();
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
});

test('two processes share rate limits in Redis, evict revoked keys at once, and survive Redis going away', { skip: !admin }, async () => {
  const name = `leadgraph_limits_${process.pid}`;
  const psql = (sql) => execFileSync('psql', [admin, '-qc', sql], { stdio: ['ignore', 'ignore', 'inherit'] });
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  psql(`CREATE DATABASE ${name}`);
  // A Redis of this test's own, so stopping it touches nothing else.
  const redisPort = await freePort();
  const startRedis = () => spawn('redis-server', ['--port', String(redisPort), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let redis = startRedis();
  await until('redis', () => true, 1);
  await new Promise((r) => setTimeout(r, 300));
  const env = {
    ...process.env,
    LEADGRAPH_DATABASE_URL: admin.replace(/\/[^/]*$/, `/${name}`),
    LEADGRAPH_NO_BOOTSTRAP: 'true',
    LEADGRAPH_LOG: 'error',
    LEADGRAPH_RATE_LIMIT_PER_IP: '0',
    LEADGRAPH_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    LEADGRAPH_KEY_CACHE_TTL_SECS: '300',
  };
  const boot = JSON.parse(
    execFileSync(bin, ['bootstrap', '--tenant', 'Free Co', '--email', 'free@example.com', '--plan', 'free', '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
  );
  const [a, b] = await Promise.all([start(env), start(env)]);
  try {
    const get = (s, key) => fetch(`${s.url}/v1/leads`, { headers: { 'X-API-Key': key } }).then((r) => r.status);
    // The free plan's burst is 10: alternating between the two processes gets 10 in all.
    const statuses = [];
    for (let i = 0; i < 14; i++) statuses.push(await get(i % 2 ? b : a, boot.apiKey));
    assert.equal(statuses.filter((s) => s === 200).length, 10, statuses.join(' '));
    assert.deepEqual(statuses.slice(10), [429, 429, 429, 429]);

    // A key revoked through A is refused by B within a second (its cache holds it for 300 s).
    await new Promise((r) => setTimeout(r, 10000)); // the budget refills (60 a minute)
    const login = await fetch(`${a.url}/v1/auth/login`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'free@example.com', password: boot.password }),
    }).then((r) => r.json());
    const keys = await fetch(`${a.url}/v1/api-keys`, { headers: { Authorization: `Bearer ${login.data.token}` } }).then((r) => r.json());
    assert.equal(await get(b, boot.apiKey), 200);
    const del = await fetch(`${a.url}/v1/api-keys/${keys.data[0].id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${login.data.token}` } });
    assert.equal(del.status, 200);
    const revokedAt = Date.now();
    let status = 200;
    while (Date.now() - revokedAt < 1000 && status !== 401) {
      status = await get(b, boot.apiKey);
      if (status !== 401) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 401, 'B still accepted the revoked key a second later');

    // Redis stops: both processes keep answering (their local limiters), never 5xx.
    redis.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    const me = (s) => fetch(`${s.url}/v1/me`, { headers: { Authorization: `Bearer ${login.data.token}` } }).then((r) => r.status);
    for (let i = 0; i < 4; i++) {
      assert.equal(await me(a), 200);
      assert.equal(await me(b), 200);
    }
    const metrics = await fetch(`${a.url}/metrics`).then((r) => r.text());
    const fallbacks = Number(metrics.match(/^leadgraph_rate_limit_fallbacks_total (\d+)/m)?.[1] ?? 0);
    assert.ok(fallbacks >= 4, metrics);
    // It comes back: the processes count in it again by themselves.
    redis = startRedis();
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await me(a);
      const keysNow = execFileSync('redis-cli', ['-p', String(redisPort), '--scan', '--pattern', 'leadgraph:rl:*']).toString();
      back = keysNow.trim().length > 0;
    }
    assert.ok(back, 'no limit counted in Redis after it came back');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    redis.kill('SIGKILL');
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
});
