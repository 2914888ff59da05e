#!/usr/bin/env bash
# leadgraph benchmark: release server on a fresh, seeded database, driven by oha over loopback
# for a bounded time per scenario, on SQLite and on PostgreSQL. Writes a Markdown table to
# bench/results/ and prints it.
#
#   bash bench/run.sh                 # defaults below
#   BENCH_SECONDS=20 BENCH_CONCURRENCY=32 BENCH_LEADS=100000 bash bench/run.sh
#   BENCH_DATABASES=sqlite bash bench/run.sh
#   BENCH_D_ROUNDS=20 BENCH_D_SECONDS=2 bash bench/run.sh   # scenario (d)'s rounds
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${BENCH_SECONDS:-10}"
# (d) as paired rounds of 1 s rather than fewer longer ones: on a shared machine single rounds
# move by ±10-15 %, and the median of n rounds by about 1/sqrt(n) of that: with the rounds of
# two runs of 2026-12-01 (standard deviation 0.09), the median's standard error is 0.026 for 20
# rounds and 0.018 for 40 (2 minutes per database).
D_ROUNDS="${BENCH_D_ROUNDS:-40}"
D_SECS="${BENCH_D_SECONDS:-1}"
CONC="${BENCH_CONCURRENCY:-16}"
LEADS="${BENCH_LEADS:-10000}"
DATABASES="${BENCH_DATABASES:-sqlite postgres}"
# shellcheck source=bench/lib.sh
source bench/lib.sh
BASELINE="$PWD/target/release/examples/sql_baseline"

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

# Scenario (d)'s runs ("variant round rps p50 p99 non2xx" lines in FILE) -> for d1, d0, d2 the
# run with the median requests/s, then the medians of the per-round ratios d1/d0 and d2/d0 and
# the lowest and highest d1/d0; each round is written as a table row for DB to ROWS.
rounds() { python3 -c 'import statistics,sys
path,db,rows_path=sys.argv[1:4]
runs={}
for line in open(path):
    v,r,rps,p50,p99,bad=line.split()
    runs.setdefault(v,{})[int(r)]=(float(rps),p50,p99,bad)
out=[]
for v in ("d1","d0","d2"):
    by=sorted(runs[v].values())
    rps,p50,p99,bad=by[(len(by)-1)//2]
    out+=["%.0f"%rps,p50,p99,bad]
rounds=sorted(runs["d0"])
ratio=lambda a:[runs[a][r][0]/runs["d0"][r][0] for r in rounds]
d1,d2=ratio("d1"),ratio("d2")
# Three decimals: the bar for d1/d0 is 0.9, and a median of 0.898 printed as "0.90".
out+=["%.3f"%statistics.median(d1),"%.3f"%statistics.median(d2),"%.2f–%.2f"%(min(d1),max(d1))]
with open(rows_path,"w") as rows:
    for i,r in enumerate(rounds):
        rows.write("| %s | %d | %.0f | %.0f | %.0f | %.2f | %.2f |\n"%(db,r+1,runs["d1"][r][0],runs["d0"][r][0],runs["d2"][r][0],d1[i],d2[i]))
print(" ".join(out))' "$1" "$2" "$3"; }

rows=()
ratios=()
d_rounds=()
for db in $DATABASES; do
  url=$(fresh_database "$db")
  echo "[$db] seeding $LEADS leads" >&2
  seeded=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null)
  KEY=$(echo "$seeded" | json_get apiKey)
  p=$(port); base="http://127.0.0.1:$p"
  start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000
  rss_start=$(rss_kb "$server")
  echo "[$db] a: GraphQL leads(first: 50), nested" >&2
  read -r a_rps a_p50 a_p99 a_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql")
  echo "[$db] b: GET /v1/leads?limit=50" >&2
  read -r b_rps b_p50 b_p99 b_bad < <(run -H "X-API-Key: $KEY" "$base/v1/leads?limit=50")
  # The baseline replays (a)'s SQL now, before (c) adds leads that would change its shape.
  echo "[$db] baseline: the SQL of (a) replayed directly" >&2
  base_rate=$("$BASELINE" --database-url "$url" --key "$KEY" --seconds "$SECS" --concurrency "$CONC" | json_get iterationsPerSec)
  base_stmts=$("$BASELINE" --database-url "$url" --key "$KEY" --seconds 1 --concurrency 1 | json_get statements)
  echo "[$db] d: { me { id } } with a key vs { __typename } without (and with) one, $D_ROUNDS rounds" >&2
  # Short runs in rounds, each round in a rotated order; a ratio is taken within each round
  # (runs seconds apart) and the median over the rounds reported, so neither a slow drift nor
  # one noisy run on a shared machine decides it. d2 is d0's document with the key:
  # d2/d0 is authentication alone.
  : > "$work/d.txt"
  for r in $(seq 0 $((D_ROUNDS - 1))); do
    for i in 0 1 2; do
      case $(((r + i) % 3)) in
        0) v=d1; args=(-H "X-API-Key: $KEY" -d "$(body '{ me { id } }')") ;;
        1) v=d0; args=(-d "$(body '{ __typename }')") ;;
        2) v=d2; args=(-H "X-API-Key: $KEY" -d "$(body '{ __typename }')") ;;
      esac
      echo "$v $r $(SECS=$D_SECS run -m POST -H 'Content-Type: application/json' "${args[@]}" "$base/graphql")" >> "$work/d.txt"
    done
  done
  read -r d1_rps d1_p50 d1_p99 d1_bad d0_rps d0_p50 d0_p99 d0_bad d2_rps d2_p50 d2_p99 d2_bad d_ratio d2_ratio d_spread \
    < <(rounds "$work/d.txt" "$db" "$work/d-rows.md")
  mapfile -t -O "${#d_rounds[@]}" d_rounds < "$work/d-rows.md"
  # (c) last: its creates start duplicate detection in the background.
  echo "[$db] c: createLead" >&2
  read -r c_rps c_p50 c_p99 c_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "$(body "$Q_C")" "$base/graphql")
  rss_end=$(rss_kb "$server"); hwm=$(hwm_kb "$server")
  stop_server
  echo "[$db] rate limiter on: { me { id } }" >&2
  start_server "$url" "$p" --max-concurrent-requests 100000 --tenant-rate-limits=true --enterprise-rate-limit 1000000000 --enterprise-burst 1000000000
  read -r l_rps l_p50 l_p99 l_bad < <(run -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body '{ me { id } }')" "$base/graphql")
  stop_server
  ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1])/float(sys.argv[2])))" "$1" "$2"; }
  rows+=("| $db | a. GraphQL \`leads(first: 50)\` nested | $a_rps | $a_p50 | $a_p99 | $a_bad |")
  rows+=("| $db | b. \`GET /v1/leads?limit=50\` | $b_rps | $b_p50 | $b_p99 | $b_bad |")
  rows+=("| $db | c. \`createLead\` (+ audit entry) | $c_rps | $c_p50 | $c_p99 | $c_bad |")
  rows+=("| $db | d1. \`{ me { id } }\`, API key | $d1_rps | $d1_p50 | $d1_p99 | $d1_bad |")
  rows+=("| $db | d0. \`{ __typename }\`, no credential | $d0_rps | $d0_p50 | $d0_p99 | $d0_bad |")
  rows+=("| $db | d2. \`{ __typename }\`, API key | $d2_rps | $d2_p50 | $d2_p99 | $d2_bad |")
  rows+=("| $db | d1 with the tenant rate limiter on | $l_rps | $l_p50 | $l_p99 | $l_bad |")
  ratios+=("| $db | $d_ratio ($d_spread) | $d2_ratio | $(ratio "$l_rps" "$d1_rps") | $(printf '%.0f' "$base_rate") ($base_stmts statements) | $(ratio "$a_rps" "$base_rate") | $((rss_start/1024)) → $((rss_end/1024)) MiB, peak $((hwm/1024)) MiB |")
  drop_database "$db"
done

out="bench/results/$(date -u +%Y-%m-%dT%H%M)-$(hostname).md"
{
  echo "# leadgraph benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr). $LEADS seeded leads; oha, $CONC connections, ${SECS} s per scenario (d: $D_ROUNDS rounds of ${D_SECS} s each), over loopback; release build."
  echo
  echo "| database | scenario | requests/s | p50 ms | p99 ms | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "| database | auth ratio d1/d0, median of $D_ROUNDS rounds (range) | authentication alone d2/d0 | limiter ratio | baseline: SQL of (a) per s | (a) as a fraction of baseline | RSS start → end, peak |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ratios[@]}"
  echo
  echo "Scenario (d) round by round (requests/s; each round's runs back to back, order rotated):"
  echo
  echo "| database | round | d1 | d0 | d2 | d1/d0 | d2/d0 |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${d_rounds[@]}"
} > "$out"
cat "$out"
echo "written to $out" >&2
