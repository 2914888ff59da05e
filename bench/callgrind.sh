#!/usr/bin/env bash
# Instructions per request under callgrind: scenario (d), `{ me { id } }` with an API key and
# `{ __typename }` without one, and scenario (a), `leads(first: 50)` nested, on SQLite with
# seeded demo data. Counts are repeatable whatever else the machine does (to about 0.1 % for
# (a), whose dataloader batches depend on timing), so they show what a change to the hot path is
# worth where requests/s are too noisy.
#
#   bash bench/callgrind.sh            # needs valgrind (apt-get install valgrind)
#   CALLGRIND_REQUESTS=5000 bash bench/callgrind.sh
#   CALLGRIND_KEEP=/tmp/cg bash bench/callgrind.sh   # keeps d1.out, d0.out, a.out for callgrind_annotate
set -euo pipefail
cd "$(dirname "$0")/.."
N="${CALLGRIND_REQUESTS:-2000}"
NA="${CALLGRIND_REQUESTS_A:-200}"
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
# shellcheck source=bench/lib.sh
source bench/lib.sh

url="sqlite://$work/cg.db"
KEY=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads 10000 --json --log warn 2>/dev/null | json_get apiKey)
p=$(port); base="http://127.0.0.1:$p"
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p.out" \
  "$BIN" serve --database-url "$url" --bind "127.0.0.1:$p" --no-bootstrap --log warn \
  --rate-limit-per-ip 0 --tenant-rate-limits=false > "$work/valgrind.log" 2>&1 &
server=$!
for _ in $(seq 1 200); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.25; done
me() { post_graphql "$1" 4 -H "X-API-Key: $KEY" -d "$(body '{ me { id } }')"; }
tn() { post_graphql "$1" 4 -d "$(body '{ __typename }')"; }
qa() { post_graphql "$1" 4 -H "X-API-Key: $KEY" -d "$(body "$Q_A")"; }
me 300; tn 300; qa 50 # warm: caches filled, connections open
callgrind_control --zero "$server" >/dev/null; me "$N"; callgrind_control --dump=d1 "$server" >/dev/null
callgrind_control --zero "$server" >/dev/null; tn "$N"; callgrind_control --dump=d0 "$server" >/dev/null
callgrind_control --zero "$server" >/dev/null; qa "$NA"; callgrind_control --dump=a "$server" >/dev/null
d1=$(awk '/^summary/ {print $2}' "$work"/cg.*.out.1); d0=$(awk '/^summary/ {print $2}' "$work"/cg.*.out.2)
a=$(awk '/^summary/ {print $2}' "$work"/cg.*.out.3)
echo "d1 { me { id } } with a key: $((d1 / N)) instructions/request"
echo "d0 { __typename } without:   $((d0 / N)) instructions/request"
echo "authentication and the field: $(((d1 - d0) / N)) instructions/request"
echo "a leads(first: 50) nested:    $((a / NA)) instructions/request"
if [ -n "${CALLGRIND_KEEP:-}" ]; then
  mkdir -p "$CALLGRIND_KEEP"
  cp "$work"/cg.*.out.1 "$CALLGRIND_KEEP/d1.out"; cp "$work"/cg.*.out.2 "$CALLGRIND_KEEP/d0.out"
  cp "$work"/cg.*.out.3 "$CALLGRIND_KEEP/a.out"
fi
echo "top functions of d1 (exclusive):"
callgrind_annotate --threshold=100 "$work"/cg.*.out.1 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '13,32p' | cut -c1-160
