#!/usr/bin/env bash
# leadgraph benchmark: release server on a fresh, seeded database, driven by oha over loopback
# for a bounded time per scenario, on SQLite and on PostgreSQL. Writes a Markdown table to
# bench/results/ and prints it.
#
#   bash bench/run.sh                 # defaults below
#   BENCH_SECONDS=20 BENCH_CONCURRENCY=32 BENCH_LEADS=100000 bash bench/run.sh
#   BENCH_DATABASES=sqlite bash bench/run.sh
#
# Installs what it needs: oha (bench/lib.sh) and, for the subscription scenario, tests/clients'
# npm packages (graphql-ws).
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
[ -d tests/clients/node_modules/graphql-ws ] ||
  npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error

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

ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
rows=()
ratios=()
events=()
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
  # Events and webhooks: (c) again with one endpoint subscribed to every event, on a local
  # receiver; then the deliveries it left queued, drained by a restarted server; then the
  # subscription latency from commit to client.
  rp=$(port); node bench/receiver.mjs "$rp" & receiver=$!
  hook=(--tenant-rate-limits=false --max-concurrent-requests 100000 --webhook-allow-private-targets --webhook-poll-ms 50)
  start_server "$url" "$p" "${hook[@]}"
  curl -sf -X POST "$base/v1/webhook-endpoints" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "{\"url\": \"http://127.0.0.1:$rp/hook\"}" >/dev/null
  echo "[$db] c with one webhook endpoint subscribed" >&2
  read -r h_rps h_p50 h_p99 h_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "$(body "$Q_C")" "$base/graphql")
  stop_server
  # The same with no delivery worker: the outbox's own cost (events and queued deliveries),
  # and a backlog for (e).
  start_server "$url" "$p" "${hook[@]}" --webhook-workers 0
  read -r o_rps o_p50 o_p99 o_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "$(body "$Q_C")" "$base/graphql")
  stop_server
  before=$(curl -sf "http://127.0.0.1:$rp/")
  echo "[$db] e: draining the queued deliveries" >&2
  start_server "$url" "$p" "${hook[@]}"
  t0=$(date +%s.%N); last=$before; still=0
  while [ "$still" -lt 20 ]; do # done when the count has not moved for a second
    sleep 0.05; now=$(curl -sf "http://127.0.0.1:$rp/")
    if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0; last=$now; t1=$(date +%s.%N); fi
  done
  e_rate=$(python3 -c 'import sys; n=int(sys.argv[2])-int(sys.argv[1]); t=float(sys.argv[4])-float(sys.argv[3]); print("%.0f (%d in %.1f s)" % (n/t if t > 0 else 0, n, t))' "$before" "$last" "$t0" "${t1:-$t0}")
  echo "[$db] g: subscription latency" >&2
  read -r s_p50 s_p99 < <(node bench/subscription-latency.mjs "$base" "$KEY" 200)
  stop_server
  kill "$receiver" 2>/dev/null; wait "$receiver" 2>/dev/null || true
  events+=("| $db | $o_rps ($(ratio "$o_rps" "$c_rps") of c) | $h_rps ($(ratio "$h_rps" "$c_rps") of c) | $e_rate | $s_p50 / $s_p99 |")
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
  echo
  echo "| database | c with one endpoint, deliveries queued only: requests/s | c with one endpoint, delivered meanwhile: requests/s | e. webhook deliveries/s, draining the queue | g. subscription latency, commit to client, p50 / p99 ms |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${events[@]}"
} > "$out"
cat "$out"
echo "written to $out" >&2
