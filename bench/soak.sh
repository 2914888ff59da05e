#!/usr/bin/env bash
# leadgraph soak: the release server under a mixed load at a fixed rate below saturation for
# SOAK_MINUTES (default 5), then at saturation for SOAK_SATURATION_SECONDS (default 60).
# Fails unless: no 5xx, no connection errors, p99 of the fixed-rate phase under
# SOAK_P99_MS (default 250), and RSS in the last third of the fixed-rate phase within 10% of
# RSS in its first third (medians of samples taken every 5 s: a single sample moves by a few
# MiB within seconds as the allocator takes and returns pages). Writes
# bench/results/soak-*.md and prints it.
#
#   bash bench/soak.sh
#   SOAK_MINUTES=30 SOAK_DATABASE=postgres SOAK_SAMPLES=/tmp/samples.txt bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${SOAK_MINUTES:-5}"
SATURATION="${SOAK_SATURATION_SECONDS:-60}"
WARMUP="${SOAK_WARMUP_SECONDS:-30}"
P99_MS="${SOAK_P99_MS:-250}"
DB="${SOAK_DATABASE:-sqlite}"
LEADS="${SOAK_LEADS:-10000}"
# requests/s per stream in the fixed-rate phase: about a third of what this machine saturates at
RATE_A="${SOAK_RATE_GRAPHQL:-60}" RATE_B="${SOAK_RATE_REST:-60}" RATE_C="${SOAK_RATE_CREATE:-30}" RATE_D="${SOAK_RATE_ME:-300}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

url=$(fresh_database "$DB")
echo "[$DB] seeding $LEADS leads" >&2
KEY=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads "$LEADS" --json --log warn 2>/dev/null | json_get apiKey)
p=$(port); base="http://127.0.0.1:$p"
# Server defaults but for the rate limits: every request comes from one address and tenant.
start_server "$url" "$p" --tenant-rate-limits=false

# Four streams at once: GraphQL list (a), REST list (b), createLead (c), { me { id } } (d).
# ARGS: PHASE SECONDS then, per stream, the oha options that set its pace.
load() {
  local phase=$1 secs=$2; shift 2
  local pace=("$@") i=0 pids=()
  for stream in a b c d; do
    # -w: requests in flight at the deadline finish and count, rather than being aborted.
    local common=(--no-tui --output-format json -w -z "${secs}s" ${pace[$i]})
    case $stream in
      a) "$OHA" "${common[@]}" -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_A")" "$base/graphql" ;;
      b) "$OHA" "${common[@]}" -H "X-API-Key: $KEY" "$base/v1/leads?limit=50" ;;
      c) "$OHA" "${common[@]}" -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body "$Q_C")" "$base/graphql" ;;
      d) "$OHA" "${common[@]}" -m POST -H "X-API-Key: $KEY" -H 'Content-Type: application/json' -d "$(body '{ me { id } }')" "$base/graphql" ;;
    esac > "$work/$phase-$stream.json" &
    pids+=($!)
    i=$((i + 1))
  done
  wait "${pids[@]}"
}

# Every 5 s while the load runs, to show the curve and what moves with it: time, RSS, its
# anonymous, file-backed and shared parts (kB), threads, the database pool's connections and
# the encoded-ID cache's entries.
sample_rss() {
  while kill -0 "$server" 2>/dev/null; do
    local seen
    seen=$(curl -s "$base/metrics" | awk '/^leadgraph_db_pool_connections/ {n += $2}
      /^leadgraph_cache_entries\{cache="encoded_ids"\}/ {ids = $2} END {print n + 0, ids + 0}')
    echo "$(date +%s) $(awk '/^(VmRSS|RssAnon|RssFile|RssShmem|Threads):/ {printf "%s ", $2}' "/proc/$server/status")$seen" >> "$work/rss.txt"
    sleep 5
  done
}
sample_rss & sampler=$!

fixed=("-c 4 -q $RATE_A --latency-correction" "-c 4 -q $RATE_B --latency-correction" "-c 4 -q $RATE_C --latency-correction" "-c 4 -q $RATE_D --latency-correction")
echo "[$DB] warm-up: ${WARMUP} s at the fixed rate" >&2
load warmup "$WARMUP" "${fixed[@]}"
rss_start=$(rss_kb "$server"); t_fixed=$(date +%s)
echo "[$DB] fixed rate: $MINUTES min (a $RATE_A/s, b $RATE_B/s, c $RATE_C/s, d $RATE_D/s)" >&2
load fixed $((MINUTES * 60)) "${fixed[@]}"
rss_fixed_end=$(rss_kb "$server"); t_fixed_end=$(date +%s)
echo "[$DB] saturation: ${SATURATION} s, 16 connections per stream, no pacing" >&2
load saturation "$SATURATION" "-c 16" "-c 16" "-c 16" "-c 16"
rss_end=$(rss_kb "$server"); hwm=$(hwm_kb "$server")
kill "$sampler" 2>/dev/null || true
ready=$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")
# SOAK_SAMPLES=FILE keeps every sample (columns as in sample_rss) for a closer look.
[ -n "${SOAK_SAMPLES:-}" ] && cp "$work/rss.txt" "$SOAK_SAMPLES"
stop_server
drop_database "$DB"

out="bench/results/soak-$(date -u +%Y-%m-%dT%H%M)-$(hostname).md"
python3 - "$work" "$rss_start" "$rss_fixed_end" "$rss_end" "$hwm" "$P99_MS" "$ready" "$t_fixed" "$t_fixed_end" > "$out" <<'PY'
import json, statistics, sys
work, rss_start, rss_fixed, rss_end, hwm, bound, ready, t_fixed, t_fixed_end = sys.argv[1:]
rss_start, rss_fixed, rss_end, hwm, bound = int(rss_start), int(rss_fixed), int(rss_end), int(hwm), float(bound)
t_fixed, t_fixed_end = int(t_fixed), int(t_fixed_end)
names = {"a": "GraphQL `leads(first: 50)` nested", "b": "`GET /v1/leads?limit=50`", "c": "`createLead`", "d": "`{ me { id } }`"}
print("| phase | stream | requests | requests/s | p50 ms | p99 ms | max ms | 5xx | other non-2xx | connection errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
failures = []
for phase in ("fixed", "saturation"):
    for s in "abcd":
        d = json.load(open(f"{work}/{phase}-{s}.json"))
        codes = d.get("statusCodeDistribution", {})
        errors = sum(d.get("errorDistribution", {}).values())
        n = sum(codes.values())
        five = sum(v for k, v in codes.items() if k.startswith("5"))
        other = sum(v for k, v in codes.items() if not k.startswith(("2", "5")))
        p = d["latencyPercentiles"]
        p99 = p["p99"] * 1000
        print(f"| {phase} | {s}. {names[s]} | {n} | {d['summary']['requestsPerSec']:.0f} | {p['p50']*1000:.1f} | {p99:.1f} | {d['summary']['slowest']*1000:.1f} | {five} | {other} | {errors} |")
        if five or other or errors:
            failures.append(f"{phase}/{s}: {five} 5xx, {other} other non-2xx, {errors} connection errors {d.get('errorDistribution')}")
        if phase == "fixed" and p99 > bound:
            failures.append(f"fixed/{s}: p99 {p99:.1f} ms over the {bound:.0f} ms bound")
curve = [l.split() for l in open(f"{work}/rss.txt")]
fixed = [int(row[1]) for row in curve if t_fixed <= int(row[0]) <= t_fixed_end]
third = max(1, len(fixed) // 3)
first, last = statistics.median(fixed[:third]), statistics.median(fixed[-third:])
growth = (last - first) / first
print()
print(f"RSS after warm-up {rss_start/1024:.1f} MiB → end of the fixed-rate phase {rss_fixed/1024:.1f} MiB → after saturation {rss_end/1024:.1f} MiB; peak {hwm/1024:.1f} MiB. `/readyz` after the run: {ready}.")
print()
print(f"RSS over the fixed-rate phase, medians of {third} samples each: first third {first/1024:.1f} MiB, last third {last/1024:.1f} MiB ({growth:+.1%}; bound ±10%).")
if abs(growth) > 0.10:
    failures.append(f"RSS grew {growth:+.1%} over the fixed-rate phase")
if curve:
    t0 = int(curve[0][0])
    print()
    print("Over the run, one sample a minute (MiB; the fixed-rate phase runs from "
          f"{t_fixed - t0} s to {t_fixed_end - t0} s):")
    print()
    print("| s | RSS | anonymous | file | shared | threads | pooled connections | encoded IDs cached |")
    print("|---|---|---|---|---|---|---|---|")
    for row in curve[::12] + ([curve[-1]] if (len(curve) - 1) % 12 else []):
        t, rss, anon, file, shmem, threads, pool, ids = (int(float(x)) for x in row)
        print(f"| {t - t0} | {rss/1024:.1f} | {anon/1024:.1f} | {file/1024:.1f} | {shmem/1024:.1f} | {threads} | {pool} | {ids} |")
print()
print("Result: " + ("PASS" if not failures else "FAIL — " + "; ".join(failures)))
PY
{
  echo "# leadgraph soak, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr). $DB, $LEADS seeded leads, --profile dist build, oha over loopback (latency-corrected at a fixed rate)."
  echo "Fixed rate ${MINUTES} min after ${WARMUP} s warm-up: a $RATE_A/s, b $RATE_B/s, c $RATE_C/s, d $RATE_D/s (4 connections each); then ${SATURATION} s at saturation (16 connections each). p99 bound: ${P99_MS} ms."
  echo
  cat "$out"
} > "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
echo "written to $out" >&2
grep -q '^Result: PASS' "$out"
