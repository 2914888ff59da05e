#!/usr/bin/env bash
# Scenario (d) by the server's own CPU time per request instead of requests/s: N requests of
# `{ me { id } }` with an API key, then N of `{ __typename }` without one, per round, reading
# the server's utime+stime from /proc around each. Steadier than requests/s on a shared
# machine, and it leaves out the load generator's share of the cores.
#
#   bash bench/cputime.sh                               # 10 rounds of 100 000 requests each
#   CPUTIME_ROUNDS=5 CPUTIME_REQUESTS=50000 bash bench/cputime.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${CPUTIME_ROUNDS:-10}"
N="${CPUTIME_REQUESTS:-100000}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

url="sqlite://$work/cpu.db"
KEY=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads 1000 --json --log warn 2>/dev/null | json_get apiKey)
p=$(port); base="http://127.0.0.1:$p"
start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
d1() { post_graphql "$N" 16 -H "X-API-Key: $KEY" -d "$(body '{ me { id } }')"; }
d0() { post_graphql "$N" 16 -d "$(body '{ __typename }')"; }
d1; d0 # warm: caches filled
: > "$work/cpu.txt" # one line per round: round, then the server's CPU ticks before d1, after d1, after d0
for r in $(seq 1 "$ROUNDS"); do
  t0=$(ticks); d1; t1=$(ticks); d0; t2=$(ticks)
  echo "$r $t0 $t1 $t2" >> "$work/cpu.txt"
done
python3 - "$work/cpu.txt" "$hz" "$N" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
hz, n = int(sys.argv[2]), int(sys.argv[3])
us = lambda a, b: (int(b) - int(a)) / hz / n * 1e6
d1 = [us(r[1], r[2]) for r in rows]
d0 = [us(r[2], r[3]) for r in rows]
for r, a, b in zip(rows, d1, d0):
    print("round %s: d1 %.1f µs, d0 %.1f µs of server CPU per request" % (r[0], a, b))
print("median: d1 %.1f µs, d0 %.1f µs, d0/d1 %.2f" % (
    statistics.median(d1), statistics.median(d0), statistics.median(b / a for a, b in zip(d1, d0))))
PY
