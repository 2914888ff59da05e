#!/usr/bin/env bash
# leadgraph benchmark: release server on a fresh, seeded database, driven by oha over loopback
# for a bounded time per scenario, on SQLite and on PostgreSQL. Writes a Markdown table to
# bench/results/ and prints it.
#
#   bash bench/run.sh                 # defaults below
#   BENCH_SECONDS=20 BENCH_CONCURRENCY=32 BENCH_LEADS=100000 bash bench/run.sh
#   BENCH_DATABASES=sqlite bash bench/run.sh
#
# To weigh a change, compare two builds side by side instead: bash bench/compare.sh OLD_BINARY.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-10}"
CONC="${BENCH_CONCURRENCY:-16}"
LEADS="${BENCH_LEADS:-10000}"
DATABASES="${BENCH_DATABASES:-sqlite postgres}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
BASELINE="$PWD/target/dist/examples/sql_baseline"

# oha prints JSON with --output-format json; pull requests/s and latency percentiles (ms).
summarize() { python3 -c 'import json,sys
d=json.load(sys.stdin)
s=d["summary"]; p=d["latencyPercentiles"]
codes=d.get("statusCodeDistribution",{})
bad=sum(v for k,v in codes.items() if not k.startswith("2"))
print("%.0f %.2f %.2f %d" % (s["requestsPerSec"], p["p50"]*1000, p["p99"]*1000, bad))'; }

run() { # NAME ARGS... -> "rps p50 p99 non2xx"
  "$OHA" --no-tui --output-format json -z "${SECS}s" -c "$CONC" "$@" | summarize
}

rows=()
ratios=()
for db in $DATABASES; do
  url=$(fresh_database "$db")
  echo "[$db] seeding $LEADS leads" >&2
  seeded=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null)
  KEY=$(echo "$seeded" | json_get apiKey)
  p=$(port); base="http://127.0.0.1:$p"
  start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000
  rss_start=$(rss_kb "$server")
  # A few seconds of (a) first, so the measured runs start with warm caches (pool, parsed
  # documents, keys, IDs, the database's pages) whatever their order.
  SECS=3 run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql" >/dev/null
  echo "[$db] a: GraphQL leads(first: 50), nested" >&2
  read -r a_rps a_p50 a_p99 a_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql")
  echo "[$db] b: GET /v1/leads?limit=50" >&2
  read -r b_rps b_p50 b_p99 b_bad < <(run -H "X-API-Key: $KEY" "$base/v1/leads?limit=50")
  # The baseline replays (a)'s SQL now, before (c) adds leads that would change its shape.
  echo "[$db] baseline: the SQL of (a) replayed directly" >&2
  base_rate=$("$BASELINE" --database-url "$url" --key "$KEY" --seconds "$SECS" --concurrency "$CONC" | json_get iterationsPerSec)
  base_stmts=$("$BASELINE" --database-url "$url" --key "$KEY" --seconds 1 --concurrency 1 | json_get statements)
  rss_end=$(rss_kb "$server"); hwm=$(hwm_kb "$server")
  # (a) with the limiter on comes before (c), whose new leads would change (a)'s page.
  stop_server
  echo "[$db] a with the tenant rate limiter on" >&2
  start_server "$url" "$p" --max-concurrent-requests 100000 --tenant-rate-limits=true --enterprise-rate-limit 1000000000 --enterprise-burst 1000000000
  SECS=3 run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql" >/dev/null
  read -r l_rps l_p50 l_p99 l_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql")
  stop_server
  start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000
  # (c) last: its creates start duplicate detection in the background.
  echo "[$db] c: createLead" >&2
  read -r c_rps c_p50 c_p99 c_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "$(body "$Q_C")" "$base/graphql")
  stop_server
  ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
  rows+=("| $db | a. GraphQL \`leads(first: 50)\` nested | $a_rps | $a_p50 | $a_p99 | $a_bad |")
  rows+=("| $db | b. \`GET /v1/leads?limit=50\` | $b_rps | $b_p50 | $b_p99 | $b_bad |")
  rows+=("| $db | c. \`createLead\` (+ audit entry) | $c_rps | $c_p50 | $c_p99 | $c_bad |")
  rows+=("| $db | a with the tenant rate limiter on | $l_rps | $l_p50 | $l_p99 | $l_bad |")
  ratios+=("| $db | $(ratio "$l_rps" "$a_rps") | $(printf '%.0f' "$base_rate") ($base_stmts statements) | $(ratio "$a_rps" "$base_rate") | $((rss_start/1024)) → $((rss_end/1024)) MiB, peak $((hwm/1024)) MiB |")
  drop_database "$db"
done

out="bench/results/$(date -u +%Y-%m-%dT%H%M)-$(hostname).md"
{
  echo "# leadgraph benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr). $LEADS seeded leads; oha, $CONC connections, ${SECS} s per scenario, over loopback; --profile dist build."
  echo
  echo "| database | scenario | requests/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| database | limiter ratio (a with/without) | baseline: SQL of (a) per s | (a) as a fraction of baseline | RSS start → end, peak |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${ratios[@]}"
} > "$out"
cat "$out"
echo "written to $out" >&2
