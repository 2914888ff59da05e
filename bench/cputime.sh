#!/usr/bin/env bash
# Scenario (d) by the server's own CPU time per request instead of requests/s: N requests of
# `{ me { id } }` with an API key, then N of `{ __typename }` without one, per round, reading
# the server's utime+stime from /proc around each. Steadier than requests/s on a shared
# machine, and it leaves out the load generator's share of the cores (reported beside it: the
# load generator's own CPU per request is not fixed, it grows when the server answers slower).
#
# With CPUTIME_AGAINST set to another build's binary, that build runs beside this one (same
# seed, its own database) and every round measures both, in alternating order: the per-build
# ratios and this build's CPU over the other's show what a change to the hot path is worth.
#
#   bash bench/cputime.sh                               # 10 rounds of 100 000 requests each
#   CPUTIME_ROUNDS=5 CPUTIME_REQUESTS=50000 bash bench/cputime.sh
#   CPUTIME_AGAINST=/tmp/old/leadgraph CPUTIME_ROUNDS=30 CPUTIME_REQUESTS=50000 bash bench/cputime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${CPUTIME_ROUNDS:-10}"
N="${CPUTIME_REQUESTS:-100000}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

builds=("$BIN")
[ -n "${CPUTIME_AGAINST:-}" ] && builds+=("$CPUTIME_AGAINST")
pids=() ports=() keys=()
for i in "${!builds[@]}"; do
  url="sqlite://$work/cpu$i.db"
  keys+=("$("${builds[$i]}" seed-demo --database-url "$url" --seed "$SEED" --leads 1000 --json --log warn 2>/dev/null | json_get apiKey)")
  ports+=("$(port)")
  BIN="${builds[$i]}" start_server "$url" "${ports[$i]}" --tenant-rate-limits=false --max-concurrent-requests 100000
  pids+=("$server")
done
trap 'kill "${pids[@]}" 2>/dev/null; cleanup' EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
d1() { post_graphql "$N" 16 -H "X-API-Key: $1" -d "$(body '{ me { id } }')"; }
d0() { post_graphql "$N" 16 -d "$(body '{ __typename }')"; }
# The load generator's user+system seconds, by bash's `time` (no external tool needed).
TIMEFORMAT='%3U %3S'
timed() { { time "$@" >/dev/null 2>&1; } 2>&1 | awk '{print $1 + $2}'; }
# One build's d1 then d0: prints its server's CPU ticks for each, then the load generator's
# seconds for each.
measure() {
  local i=$1 t0 t1 t2 g1 g0
  base="http://127.0.0.1:${ports[$i]}"
  t0=$(ticks "${pids[$i]}"); g1=$(timed d1 "${keys[$i]}"); t1=$(ticks "${pids[$i]}")
  g0=$(timed d0); t2=$(ticks "${pids[$i]}")
  echo "$((t1 - t0)) $((t2 - t1)) $g1 $g0"
}
for i in "${!builds[@]}"; do measure "$i" >/dev/null; done # warm: caches filled
: > "$work/cpu.txt" # per round and build: round, build, d1 and d0 ticks, d1 and d0 load s
for r in $(seq 1 "$ROUNDS"); do
  order=("${!builds[@]}")
  if (( r % 2 == 0 && ${#builds[@]} == 2 )); then order=(1 0); fi
  for i in "${order[@]}"; do echo "$r $i $(measure "$i")" >> "$work/cpu.txt"; done
done
python3 - "$work/cpu.txt" "$hz" "$N" <<'PY'
import collections, statistics, sys
hz, n = int(sys.argv[2]), int(sys.argv[3])
us = lambda t: int(t) / hz / n * 1e6
rounds = collections.defaultdict(dict)  # round -> build -> (d1 µs, d0 µs)
load = collections.defaultdict(list)  # build -> the load generator's (d1 µs, d0 µs) per round
for line in open(sys.argv[1]):
    r, b, d1, d0, g1, g0 = line.split()
    rounds[int(r)][int(b)] = (us(d1), us(d0))
    load[int(b)].append((float(g1) / n * 1e6, float(g0) / n * 1e6))
names = {0: "this build", 1: "other build"}
for r in sorted(rounds):
    print("round %d: " % r + "; ".join("%s d1 %.1f µs, d0 %.1f µs" % (names[b], *v) for b, v in sorted(rounds[r].items())))
for b in sorted(rounds[1]):
    d1 = [rounds[r][b][0] for r in rounds]
    d0 = [rounds[r][b][1] for r in rounds]
    print("%s: median d1 %.1f µs, d0 %.1f µs of server CPU per request, d0/d1 %.3f" % (
        names[b], statistics.median(d1), statistics.median(d0), statistics.median(z / o for o, z in zip(d1, d0))))
    print("%s: the load generator's CPU per request, median d1 %.1f µs, d0 %.1f µs" % (
        names[b], statistics.median(g for g, _ in load[b]), statistics.median(g for _, g in load[b])))
if len(rounds[1]) == 2:
    for k, label in ((0, "d1"), (1, "d0")):
        print("%s: this build's CPU over the other's, median of rounds %.3f" % (
            label, statistics.median(rounds[r][0][k] / rounds[r][1][k] for r in rounds)))
PY
