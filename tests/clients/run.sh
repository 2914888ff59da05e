#!/usr/bin/env bash
# leadgraph with real clients (issue: typed frontends, GraphiQL, GraphQL over HTTP, examples).
# Installs what it needs (Debian's chromium, npm packages, a Python venv with httpx), generates
# and type-checks the TypeScript client, then runs tests/clients/*.test.mjs against the
# server binary (LEADGRAPH_BIN, default target/debug/leadgraph, built if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export LEADGRAPH_BIN="${LEADGRAPH_BIN:-$PWD/target/debug/leadgraph}"
[ -x "$LEADGRAPH_BIN" ] || cargo build --bin leadgraph

echo "== npm packages"
for dir in clients/typescript tests/clients; do
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
done

echo "== TypeScript: codegen from schema.graphql, then tsc"
(cd clients/typescript && npm run --silent codegen && npm run --silent check && npm run --silent build-examples)

echo "== Python venv for the examples"
[ -x target/py/bin/python ] || python3 -m venv target/py
target/py/bin/pip install -q --disable-pip-version-check -r examples/python/requirements.txt
export PYTHON="$PWD/target/py/bin/python"

echo "== client tests (graphql-http audit, GraphiQL in Chromium, examples)"
(cd tests/clients && node --test --test-concurrency=1 ./*.test.mjs)
echo "screenshot: target/graphiql.png; audit report: target/graphql-http-audit.txt"
