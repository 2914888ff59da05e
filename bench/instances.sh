#!/usr/bin/env bash
# Several instances on one PostgreSQL database, in one run: requests/s of scenario (a) (the
# nested lead list) through one process and through two (oha against each at once, half the
# connections each), with the rate limiter local and in Redis; and what the Redis limiter adds
# per request (p50/p99 of a `{ __typename }` request with a key, local limiter against Redis).
#
#   bash bench/instances.sh        (needs the local Redis on 127.0.0.1:6379)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-5}"
CONC="${BENCH_CONCURRENCY:-16}"
LEADS="${BENCH_LEADS:-10000}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

oha_json() { "$OHA" --no-tui --output-format json -z "${SECS}s" "$@"; }
fields() { python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["latencyPercentiles"]
print("%.0f %.2f %.2f" % (d["summary"]["requestsPerSec"], p["p50"]*1000, p["p99"]*1000))'; }

url=$(fresh_database postgres)
KEY=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null | json_get apiKey)
limits=(--tenant-rate-limits=true --enterprise-rate-limit 1000000000 --enterprise-burst 1000000000 --max-concurrent-requests 100000)
post=(-m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json')
tiny='{"query": "{ __typename }"}'

servers=()
start_n() { # N EXTRA... -> bases in $bases
  local n=$1; shift; bases=()
  for _ in $(seq 1 "$n"); do
    p=$(port); start_server "$url" "$p" "${limits[@]}" "$@"; servers+=("$server"); bases+=("http://127.0.0.1:$p")
  done
}
stop_all() { for s in "${servers[@]}"; do kill "$s" 2>/dev/null || true; done; wait 2>/dev/null || true; servers=(); server=""; }

rows=()
for mode in local redis; do
  extra=(); [ "$mode" = redis ] && extra=(--redis-url "$REDIS" --redis-prefix "leadgraph-bench:$$:")
  for n in 1 2; do
    start_n "$n" "${extra[@]}"
    # Warm up, then measure: with two processes, both at once with half the connections each.
    for b in "${bases[@]}"; do "$OHA" --no-tui -z 2s -c 4 "${post[@]}" -d "$(body "$Q_A")" "$b/graphql" >/dev/null; done
    c=$((CONC / n)); total=0
    pids=(); i=0
    for b in "${bases[@]}"; do
      oha_json -c "$c" "${post[@]}" -d "$(body "$Q_A")" "$b/graphql" > "$work/a$i.json" & pids+=($!); i=$((i + 1))
    done
    wait "${pids[@]}"
    total=$(python3 -c 'import json,sys; print("%.0f" % sum(json.load(open(f))["summary"]["requestsPerSec"] for f in sys.argv[1:]))' "$work"/a*.json)
    rm -f "$work"/a*.json
    rows+=("| $mode | $n | $total |")
    if [ "$n" = 1 ]; then
      read -r t_rps t_p50 t_p99 < <(oha_json -c "$CONC" "${post[@]}" -d "$tiny" "${bases[0]}/graphql" | fields)
      eval "tiny_$mode='$t_rps $t_p50 $t_p99'"
    fi
    stop_all
  done
done
drop_database postgres
read -r lr lp50 lp99 <<< "$tiny_local"; read -r rr rp50 rp99 <<< "$tiny_redis"
out="bench/results/$(date -u +%Y-%m-%dT%H%M)-instances.md"
{
  echo "Machine: $(nproc) cores, $(uname -sr); --profile dist; PostgreSQL, $LEADS seeded leads; oha, $CONC connections in all, ${SECS} s per run; tenant limiter on (enterprise, limits far above the load)."
  echo
  echo "| limiter | processes | (a) requests/s, all processes |"
  echo "|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| limiter | \`{ __typename }\` requests/s | p50 ms | p99 ms |"
  echo "|---|---|---|---|"
  echo "| local | $lr | $lp50 | $lp99 |"
  echo "| redis | $rr | $rp50 | $rp99 |"
} | tee "$out"
