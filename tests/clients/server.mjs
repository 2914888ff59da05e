// Starts the leadgraph binary on a fresh SQLite database seeded with demo data, for tests
// that drive it with real clients. LEADGRAPH_BIN overrides the binary (default: the debug build).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository's root. */
export const root = resolve(import.meta.dirname, '../..');

const bin = process.env.LEADGRAPH_BIN ?? join(root, 'target/debug/leadgraph');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitUntilUp(url, child) {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (i > 300 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`leadgraph did not start (exit ${child.exitCode})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A running server: `url` (origin), `apiKey` (full-scope live key of the seeded tenant),
 * `email` and `password` (its owner),
 * `env` (variables it runs with), `stop()`.
 */
export async function startServer({ leads = 40, extraEnv = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'leadgraph-clients-'));
  const port = await freePort();
  const env = {
    ...process.env,
    LEADGRAPH_DATABASE_URL: `sqlite://${join(dir, 'leadgraph.db')}`,
    LEADGRAPH_BIND: `127.0.0.1:${port}`,
    LEADGRAPH_NO_BOOTSTRAP: 'true',
    LEADGRAPH_LOG: 'warn',
    // One client address sends every request here; the per-IP limit has tests of its own.
    LEADGRAPH_RATE_LIMIT_PER_IP: '0',
    ...extraEnv,
  };
  const seeded = JSON.parse(
    execFileSync(bin, ['seed-demo', '--leads', String(leads), '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
      .split('\n')
      .pop(),
  );
  let child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(url, child);
  return {
    url,
    apiKey: seeded.apiKey,
    email: seeded.email,
    password: seeded.password,
    env,
    /** Kills the process at once (no graceful shutdown), keeping its database. */
    async kill() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    /** Starts the process again on the same database and address. */
    async restart() {
      child = spawn(bin, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      await waitUntilUp(url, child);
    },
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
