// Outbound webhooks against the real server, verified with the Standard Webhooks reference
// library (npm `standardwebhooks`), not with leadgraph's own code: every delivery's signature,
// the same webhook-id on a retry, and deliveries that survive a kill -9 of the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { startServer } from './server.mjs';

/** A local receiver: `failFirst` makes each message's first attempt answer 500. */
function receiver({ failFirst = false } = {}) {
  const state = { secret: null, verified: new Map(), failures: [], attempts: new Map() };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const id = req.headers['webhook-id'];
      const n = (state.attempts.get(id) ?? 0) + 1;
      state.attempts.set(id, n);
      try {
        const payload = new Webhook(state.secret).verify(body, req.headers);
        state.verified.set(id, payload);
      } catch (e) {
        state.failures.push(`${id}: ${e.message}`);
      }
      res.statusCode = failFirst && n === 1 ? 500 : 200;
      res.end('ok');
    });
  });
  return {
    state,
    listen: (port = 0) => new Promise((ok) => server.listen(port, '127.0.0.1', () => ok(server.address().port))),
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }),
  };
}

async function gql(srv, query, variables = {}) {
  const r = await fetch(`${srv.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': srv.apiKey },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

async function createLeads(srv, n, tag) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${srv.url}/v1/leads`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': srv.apiKey },
      body: JSON.stringify({ email: `${tag}-${i}@example.com`, firstName: 'W', lastName: 'H' }),
    });
    assert.equal(r.status, 201);
  }
}

async function until(what, check, seconds = 60) {
  for (let i = 0; i < seconds * 20; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const env = {
  LEADGRAPH_WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
  LEADGRAPH_WEBHOOK_RETRY_SCALE: '0.01',
  LEADGRAPH_WEBHOOK_POLL_MS: '50',
  LEADGRAPH_WEBHOOK_TIMEOUT_MS: '2000',
};

test('every delivery verifies with the standardwebhooks library; retries keep the webhook-id', async () => {
  const srv = await startServer({ leads: 0, extraEnv: env });
  const rx = receiver({ failFirst: true });
  const port = await rx.listen();
  try {
    const data = await gql(
      srv,
      'mutation($u: String!) { createWebhookEndpoint(input: {url: $u, events: [LEAD_CREATED]}) { secret } }',
      { u: `http://127.0.0.1:${port}/hook` },
    );
    rx.state.secret = data.createWebhookEndpoint.secret;
    await createLeads(srv, 20, 'verify');
    const retried = () => [...rx.state.attempts.values()].filter((n) => n >= 2).length;
    await until('20 messages, each retried once', () => retried() === 20);
    assert.deepEqual(rx.state.failures, []);
    // Each message was sent twice (the first attempt got a 500) under one webhook-id.
    for (const [id, n] of rx.state.attempts) assert.equal(n, 2, id);
    const types = new Set([...rx.state.verified.values()].map((p) => p.type));
    assert.deepEqual([...types], ['lead.created']);
  } finally {
    await rx.close();
    await srv.stop();
  }
});

test('deliveries pending when the server is killed arrive after a restart', async () => {
  const srv = await startServer({ leads: 0, extraEnv: env });
  const rx = receiver();
  const port = await rx.listen();
  await rx.close(); // the endpoint is down while the leads are created
  try {
    const data = await gql(
      srv,
      'mutation($u: String!) { createWebhookEndpoint(input: {url: $u}) { secret } }',
      { u: `http://127.0.0.1:${port}/hook` },
    );
    rx.state.secret = data.createWebhookEndpoint.secret;
    await createLeads(srv, 10, 'restart');
    await srv.kill();
    await rx.listen(port);
    await srv.restart();
    await until('10 messages after the restart', () => rx.state.verified.size === 10, 90);
    assert.deepEqual(rx.state.failures, []);
  } finally {
    await rx.close();
    await srv.stop();
  }
});

test('examples/python/webhook_receiver.py verifies deliveries and handles each message once', async () => {
  const { spawn } = await import('node:child_process');
  const { join } = await import('node:path');
  const { root } = await import('./server.mjs');
  const srv = await startServer({ leads: 0, extraEnv: env });
  const probe = receiver();
  const port = await probe.listen();
  await probe.close(); // a free port for the example
  let child;
  try {
    const data = await gql(
      srv,
      'mutation($u: String!) { createWebhookEndpoint(input: {url: $u, events: [LEAD_CREATED]}) { secret } }',
      { u: `http://127.0.0.1:${port}/` },
    );
    child = spawn(process.env.PYTHON ?? 'python3', [join(root, 'examples/python/webhook_receiver.py'), String(port)], {
      env: { ...process.env, LEADGRAPH_WEBHOOK_SECRET: data.createWebhookEndpoint.secret },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    await new Promise((r) => setTimeout(r, 500));
    await createLeads(srv, 3, 'example');
    await until('three handled messages', () => out.trim().split('\n').filter(Boolean).length === 3);
    for (const line of out.trim().split('\n')) assert.match(line, /^lead\.created \S+$/);
  } finally {
    child?.kill();
    await srv.stop();
  }
});
