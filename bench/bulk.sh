#!/usr/bin/env bash
# Bulk work on SQLite and PostgreSQL (the bulk issue's targets): import of BULK_ROWS generated
# leads through POST /v1/imports (rows/s from the first byte sent to the job's completion, and
# the server's peak RSS), export of the same leads (rows/s, peak RSS), and an idempotent replay
# against a plain createLead (requests/s of each, in the same run). Writes a Markdown table to
# bench/results/ and prints it.
#
#   bash bench/bulk.sh
#   BULK_ROWS=20000 BENCH_DATABASES=sqlite bash bench/bulk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${BULK_ROWS:-100000}"
SECS="${BENCH_SECONDS:-5}"
CONC="${BENCH_CONCURRENCY:-16}"
DATABASES="${BENCH_DATABASES:-sqlite postgres}"
# shellcheck source=bench/lib.sh
source bench/lib.sh

now() { python3 -c 'import time; print(time.time())'; }
rate() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1])/(float(sys.argv[3])-float(sys.argv[2]))))" "$@"; }
rps() { "$OHA" --no-tui --output-format json -z "${SECS}s" -c "$CONC" "$@" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f" % d["summary"]["requestsPerSec"])'; }

# The file: ROWS leads with tags and two custom fields, as a CRM export would have them.
file="$work/leads.csv"
python3 - "$ROWS" > "$file" <<'PY'
import random, sys
random.seed(1)
n = int(sys.argv[1])
print("email,firstName,lastName,phone,status,score,tags,customFields.company,customFields.seats")
statuses = ["new", "contacted", "qualified", "unqualified"]
for i in range(n):
    print(f"lead{i}@example.com,First{i},Last{i},+1 555 {i % 10000:04d},{statuses[i % 4]},{i % 101},"
          f"fair;batch{i % 7},Company {i % 977},{random.randint(1, 500)}")
PY
size_mib=$(python3 -c "import os,sys; print('%.1f' % (os.path.getsize(sys.argv[1])/1048576))" "$file")

rows=()
for db in $DATABASES; do
  url=$(fresh_database "$db")
  key=$("$BIN" seed-demo --database-url "$url" --seed "$SEED" --leads 0 --json --log warn 2>/dev/null | json_get apiKey)
  p=$(port); base="http://127.0.0.1:$p"
  start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000 --request-timeout-ms 600000
  echo "[$db] import of $ROWS rows ($size_mib MiB)" >&2
  t0=$(now)
  job=$(curl -sS --fail-with-body -X POST "$base/v1/imports" -H "X-API-Key: $key" -H 'Content-Type: text/csv' \
    --data-binary "@$file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
  received=$(now)
  while :; do
    status=$(curl -sS "$base/v1/imports/$job" -H "X-API-Key: $key" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["status"], d["created"], d["failed"])')
    case $status in queued*|running*) sleep 0.1 ;; *) break ;; esac
  done
  t1=$(now)
  read -r state created failed <<< "$status"
  import_rate=$(rate "$ROWS" "$t0" "$t1"); receive_rate=$(rate "$ROWS" "$t0" "$received")
  import_hwm=$(( $(hwm_kb "$server") / 1024 ))
  stop_server
  # A fresh process for the export, so its peak is its own.
  start_server "$url" "$p" --tenant-rate-limits=false --max-concurrent-requests 100000 --request-timeout-ms 600000
  echo "[$db] export of the $created leads" >&2
  t0=$(now)
  exported=$(curl -sS --fail-with-body "$base/v1/leads/export?format=csv" -H "X-API-Key: $key" | wc -l)
  t1=$(now)
  export_rate=$(rate "$((exported - 1))" "$t0" "$t1")
  export_hwm=$(( $(hwm_kb "$server") / 1024 ))
  echo "[$db] idempotent replay against a plain create" >&2
  plain=$(rps -m POST -H "X-API-Key: $key" -H 'Content-Type: application/json' -d "$(body "$Q_C")" "$base/graphql")
  curl -sS -o /dev/null -X POST "$base/graphql" -H "X-API-Key: $key" -H 'Content-Type: application/json' \
    -H 'Idempotency-Key: bench-replay' -d "$(body "$Q_C")"
  replay=$(rps -m POST -H "X-API-Key: $key" -H 'Content-Type: application/json' -H 'Idempotency-Key: bench-replay' \
    -d "$(body "$Q_C")" "$base/graphql")
  stop_server
  drop_database "$db"
  rows+=("| $db | $import_rate ($state: $created created, $failed failed; received at $receive_rate rows/s) | $import_hwm MiB | $export_rate ($((exported - 1)) rows) | $export_hwm MiB | $plain | $replay ($(python3 -c "print('%.2f' % ($replay/$plain))")) |")
done

out="bench/results/$(date -u +%Y-%m-%dT%H%M)-bulk.md"
{
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); --profile dist build; $ROWS generated leads ($size_mib MiB of CSV), over loopback."
  echo
  echo "| database | import rows/s | import peak RSS | export rows/s | export peak RSS | createLead requests/s | idempotent replay requests/s (ratio) |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
