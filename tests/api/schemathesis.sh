#!/usr/bin/env bash
# Runs schemathesis (an OpenAPI-driven tester) against a live server for a bounded time:
# no 5xx, and every status code, content type, header and body as the OpenAPI document says.
# Usage: tests/api/schemathesis.sh [SECONDS]   (needs target/debug/leadgraph; installs schemathesis)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
venv="${LEADGRAPH_SCHEMATHESIS_VENV:-target/schemathesis-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
bin=target/debug/leadgraph
[ -x "$bin" ] || cargo build --quiet
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LEADGRAPH_RATE_LIMIT_PER_IP=0 LEADGRAPH_TENANT_RATE_LIMITS=false LEADGRAPH_LOG=warn \
LEADGRAPH_ADMIN_EMAIL=schemathesis@example.com LEADGRAPH_ADMIN_PASSWORD=schemathesis-password \
  "$bin" serve --database-url "sqlite://$work/st.db" --bind "127.0.0.1:$port" > "$work/out.txt" 2> "$work/err.txt" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
token=$(curl -sS --fail-with-body "http://127.0.0.1:$port/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"schemathesis@example.com","password":"schemathesis-password"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["token"])')
# Rows that generated references can name (see tests/api/hooks.py).
base="http://127.0.0.1:$port/v1"
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
field() { python3 -c "import json,sys; d=json.load(sys.stdin)['data']; print(eval(sys.argv[1]))" "$1"; }
export LG_SOURCE_ID LG_PIPELINE_ID LG_STAGE_ID LG_USER_ID
LG_SOURCE_ID=$(curl -sS --fail-with-body "$base/sources" "${auth[@]}" -d '{"name":"Schemathesis","channel":"web"}' | field "d['id']")
pipeline=$(curl -sS --fail-with-body "$base/pipelines" "${auth[@]}" -d '{"name":"Schemathesis","stages":["New","Won"]}')
LG_PIPELINE_ID=$(echo "$pipeline" | field "d['id']")
LG_STAGE_ID=$(echo "$pipeline" | field "d['stages'][0]['id']")
LG_LEAD_IDS=$(for i in $(seq 1 100); do
  curl -sS --fail-with-body "$base/leads" "${auth[@]}" \
    -d "{\"email\":\"fixture$i@example.com\",\"firstName\":\"Fixture\",\"lastName\":\"N$i\"}" | field "d['id']"
done | paste -sd, -)
export LG_LEAD_IDS
LG_USER_ID=$(curl -sS --fail-with-body "$base/me" -H "Authorization: Bearer $token" | field "d['id']")
# /api serves the same routes as /v1: testing one prefix covers the code. Every check runs,
# the acceptance of schema-valid and the refusal of schema-invalid requests included.
SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$PWD/tests/api" "$venv/bin/schemathesis" run "http://127.0.0.1:$port/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --include-path-regex '^/v1/' \
  --checks all \
  --max-time "$seconds" \
  --seed 42
if grep -qi "panicked" "$work/err.txt"; then
  echo "the server panicked:"; cat "$work/err.txt"; exit 1
fi
