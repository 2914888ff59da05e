// Subscriptions with the protocol's reference client (npm `graphql-ws`) against the real
// server: authenticated in connection_init, filtered by type, and closed when the key is
// revoked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startServer } from './server.mjs';

/** POSTs JSON with the seeded key, or with `headers` (an `authorization` replaces the key). */
async function post(srv, path, body, headers = {}) {
  const auth = headers.authorization ? {} : { 'x-api-key': srv.apiKey };
  const r = await fetch(`${srv.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth, ...headers },
    body: JSON.stringify(body),
  });
  return r.json();
}

function client(srv, params) {
  return createClient({
    url: `${srv.url.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: params,
    retryAttempts: 0,
    lazy: false,
  });
}

/** Subscribes; returns the received payloads, a promise of completion or error, and dispose. */
function subscribe(c, query) {
  const got = [];
  let dispose;
  const done = new Promise((resolve) => {
    dispose = c.subscribe(
      { query },
      {
        next: (v) => got.push(v),
        error: (e) => resolve({ error: e }),
        complete: () => resolve({ complete: true }),
      },
    );
  });
  return { got, done, dispose: () => dispose() };
}

async function until(what, check, seconds = 10) {
  for (let i = 0; i < seconds * 20; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('events arrive over graphql-transport-ws, filtered, and the connection closes when the key is revoked', async () => {
  const srv = await startServer({ leads: 0, extraEnv: { LEADGRAPH_KEY_CACHE_TTL_SECS: '1' } });
  try {
    // A session makes a key of its own for the subscriber, to revoke it later.
    const login = await post(srv, '/v1/auth/login', { email: srv.email, password: srv.password });
    const token = login.data.token;
    const created = await post(
      srv,
      '/graphql',
      { query: 'mutation { createApiKey(input: {label: "ws", scope: READ}) { key apiKey { id } } }' },
      { authorization: `Bearer ${token}` },
    );
    const { key, apiKey } = created.data.createApiKey;

    // No credential: connection_init is refused.
    const anonymous = client(srv, {});
    const refused = subscribe(anonymous, 'subscription { events { id } }');
    const outcome = await refused.done;
    assert.ok(outcome.error, 'an unauthenticated connection is closed');
    await anonymous.dispose();

    const c = client(srv, { 'X-API-Key': key });
    // Operations over the socket are bounded as over HTTP: 2^30 expanded fields are refused
    // before anything walks them.
    let bomb = 'subscription { events { ...F0 } }\n';
    for (let i = 0; i < 30; i++) bomb += `fragment F${i} on Event { id ...F${i + 1} ...F${i + 1} }\n`;
    bomb += 'fragment F30 on Event { id }';
    const refusedBomb = subscribe(c, bomb);
    const bombOutcome = await refusedBomb.done;
    const errors = bombOutcome.error ?? refusedBomb.got[0]?.errors;
    assert.equal(errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX', JSON.stringify(bombOutcome));
    const sub = subscribe(c, 'subscription { events(types: [LEAD_CREATED]) { id type resourceId data } }');
    await new Promise((r) => setTimeout(r, 300)); // subscribed
    const lead = await post(srv, '/v1/leads', { email: 'ws@example.com', firstName: 'W', lastName: 'S' });
    await post(srv, '/graphql', {
      query: 'mutation($id: ID!) { updateLead(id: $id, input: {score: 5}) { id } }',
      variables: { id: lead.data.id },
    });
    await post(srv, '/v1/leads', { email: 'ws2@example.com', firstName: 'W', lastName: 'T' });
    await until('two LEAD_CREATED events', () => sub.got.length === 2);
    assert.deepEqual(sub.got.map((p) => p.data.events.type), ['LEAD_CREATED', 'LEAD_CREATED']);
    assert.equal(sub.got[0].data.events.resourceId, lead.data.id);
    assert.equal(sub.got[0].data.events.data.email, 'ws@example.com');

    // Revoking the key closes the connection within the key cache's lifetime.
    await post(
      srv,
      '/graphql',
      { query: 'mutation($id: ID!) { deleteApiKey(id: $id) }', variables: { id: apiKey.id } },
      { authorization: `Bearer ${token}` },
    );
    const ended = await Promise.race([sub.done, new Promise((r) => setTimeout(() => r('timeout'), 8000))]);
    assert.notEqual(ended, 'timeout', 'the subscription ended after the key was revoked');
    await c.dispose();
  } finally {
    await srv.stop();
  }
});

test('a session subscription closes when its user is deactivated', async () => {
  const srv = await startServer({ leads: 0, extraEnv: { LEADGRAPH_KEY_CACHE_TTL_SECS: '1' } });
  try {
    const owner = (await post(srv, '/v1/auth/login', { email: srv.email, password: srv.password })).data.token;
    const email = `member-${process.pid}@example.com`;
    const password = 'a long enough passphrase 1';
    const created = await post(
      srv,
      '/graphql',
      {
        query: 'mutation($e: String!, $p: String!) { createUser(input: {email: $e, name: "M", password: $p, role: MEMBER}) { id } }',
        variables: { e: email, p: password },
      },
      { authorization: `Bearer ${owner}` },
    );
    const memberId = created.data.createUser.id;
    const member = (await post(srv, '/v1/auth/login', { email, password })).data.token;

    const c = client(srv, { Authorization: `Bearer ${member}` });
    const sub = subscribe(c, 'subscription { events { type } }');
    await new Promise((r) => setTimeout(r, 300));
    await post(srv, '/v1/leads', { email: 'seen@example.com', firstName: 'S', lastName: 'N' });
    await until('the member to see an event', () => sub.got.length === 1);

    await post(
      srv,
      '/graphql',
      { query: 'mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }', variables: { id: memberId } },
      { authorization: `Bearer ${owner}` },
    );
    const ended = await Promise.race([sub.done, new Promise((r) => setTimeout(() => r('timeout'), 8000))]);
    assert.notEqual(ended, 'timeout', 'the subscription ended after the user was deactivated');
    await c.dispose();
  } finally {
    await srv.stop();
  }
});
