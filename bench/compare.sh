#!/usr/bin/env bash
# Two builds side by side on the user scenarios: (a) the nested GraphQL lead list, (b) the REST
# list, (c) createLead. Each build serves its own copy of the same seeded database; every round
# runs each scenario on both builds back to back, in alternating order, and the median over the
# rounds of new/old requests/s is reported, so a change's worth is measured in one run on one
# machine rather than across runs.
#
#   bash bench/compare.sh OLD_BINARY                      # against target/dist/leadgraph
#   COMPARE_ROUNDS=8 COMPARE_SECONDS=5 COMPARE_DATABASES="sqlite postgres" bash bench/compare.sh OLD
#   COMPARE_NEW=/path/to/other/leadgraph bash bench/compare.sh OLD
#
# OLD_BINARY is another build's `leadgraph` (for example, `git worktree add /tmp/old REV` and
# `cargo build --profile dist` there, or a copy of target/dist/leadgraph made before a change).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD="${1:?usage: bash bench/compare.sh OLD_BINARY}"
ROUNDS="${COMPARE_ROUNDS:-6}"
SECS="${COMPARE_SECONDS:-4}"
CONC="${BENCH_CONCURRENCY:-16}"
LEADS="${BENCH_LEADS:-10000}"
DATABASES="${COMPARE_DATABASES:-sqlite}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
NEW="${COMPARE_NEW:-$BIN}"

rps() { "$OHA" --no-tui --output-format json -z "${SECS}s" -c "$CONC" "$@" |
  python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["summary"]["requestsPerSec"])'; }

scenario() { # NAME BASE KEY -> requests/s
  local name=$1 base=$2 key=$3
  case $name in
    a) rps -m POST -H "X-API-Key: $key" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql" ;;
    b) rps -H "X-API-Key: $key" "$base/v1/leads?limit=50" ;;
    c) rps -m POST -H "X-API-Key: $key" -H 'Content-Type: application/json' -d "$(body "$Q_C")" "$base/graphql" ;;
  esac
}

rows=()
for db in $DATABASES; do
  pids=() bases=() keys=()
  for i in 0 1; do
    bin=$([ "$i" = 0 ] && echo "$OLD" || echo "$NEW")
    case $db in
      sqlite) url="sqlite://$work/compare$i.db" ;;
      postgres)
        name="leadgraph_compare_$$_$i"
        psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $name" >/dev/null
        psql "$PG_ADMIN" -qc "CREATE DATABASE $name" >/dev/null
        url="${PG_ADMIN%/*}/$name" ;;
    esac
    echo "[$db] seeding $LEADS leads for build $i" >&2
    keys+=("$("$bin" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null | json_get apiKey)")
    p=$(port)
    BIN="$bin" start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000
    pids+=("$server"); bases+=("http://127.0.0.1:$p")
  done
  : > "$work/rounds.txt"
  for r in $(seq 1 "$ROUNDS"); do
    for s in a b c; do
      order=$([ $((r % 2)) = 0 ] && echo "0 1" || echo "1 0")
      for i in $order; do
        echo "$s $r $i $(scenario "$s" "${bases[$i]}" "${keys[$i]}")" >> "$work/rounds.txt"
      done
    done
    echo "[$db] round $r of $ROUNDS done" >&2
  done
  kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; server=""
  [ "$db" = postgres ] && for i in 0 1; do psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS leadgraph_compare_$$_$i WITH (FORCE)" >/dev/null; done
  while read -r line; do rows+=("| $db | $line |"); done < <(python3 -c 'import statistics,sys
runs={}
for line in open(sys.argv[1]):
    s,r,i,v=line.split(); runs.setdefault(s,{}).setdefault(int(r),{})[int(i)]=float(v)
names={"a":"a. GraphQL leads(first: 50) nested","b":"b. GET /v1/leads?limit=50","c":"c. createLead"}
for s in "abc":
    rounds=runs[s].values()
    old=statistics.median(x[0] for x in rounds); new=statistics.median(x[1] for x in rounds)
    ratio=statistics.median(x[1]/x[0] for x in rounds)
    lo=min(x[1]/x[0] for x in rounds); hi=max(x[1]/x[0] for x in rounds)
    print("%s | %.0f | %.0f | %.3f (%.2f-%.2f)" % (names[s], old, new, ratio, lo, hi))' "$work/rounds.txt")
done

echo "| database | scenario | old requests/s | new requests/s | new/old, median of $ROUNDS rounds (range) |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
