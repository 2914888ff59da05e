# Shared by bench/run.sh, bench/compare.sh and bench/soak.sh: the load generator, the server
# built as deployments build it (`--profile dist`), helpers.
# Sourced with the repository root as the working directory; sets OHA, BIN, work, server.

tools="$PWD/target/bench-tools"
if ! [ -x "$tools/bin/oha" ]; then
  echo "installing oha (HTTP load generator) into $tools" >&2
  cargo install oha --locked --quiet --root "$tools"
fi
OHA="$tools/bin/oha"
# compare.sh given both builds (COMPARE_NEW) needs none of this tree's; BENCH_NO_BUILD=1
# measures the dist build as it is, BENCH_BIN=/path/to/leadgraph another build.
if [ -z "${COMPARE_NEW:-}" ] && [ -z "${BENCH_NO_BUILD:-}" ] && [ -z "${BENCH_BIN:-}" ]; then
  echo "building the binaries (--profile dist)" >&2
  cargo build --profile dist --quiet --bin leadgraph --example sql_baseline
fi
BIN="${BENCH_BIN:-$PWD/target/dist/leadgraph}"

work=$(mktemp -d)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_get() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
body() { python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$1"; }

start_server() { # URL PORT EXTRA...
  local url=$1 p=$2; shift 2
  "$BIN" serve --database-url "$url" --bind "127.0.0.1:$p" --no-bootstrap --log warn \
    --rate-limit-per-ip 0 "$@" > "$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$p/healthz" >/dev/null && return; sleep 0.05; done
  echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop_server() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; server=""; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# A fresh database for BACKEND (sqlite or postgres) in $work; prints its URL.
# PostgreSQL databases are named after this process and dropped by drop_database.
PG_ADMIN="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
fresh_database() {
  case $1 in
    sqlite) echo "sqlite://$work/bench.db" ;;
    postgres)
      local name="leadgraph_bench_$$"
      psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $name" >/dev/null
      psql "$PG_ADMIN" -qc "CREATE DATABASE $name" >/dev/null
      echo "${PG_ADMIN%/*}/$name" ;;
    *) echo "unknown database $1" >&2; exit 1 ;;
  esac
}
drop_database() {
  if [ "$1" = postgres ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS leadgraph_bench_$$ WITH (FORCE)" >/dev/null; fi
}

# N GraphQL POSTs from C connections to the server at $base, output discarded:
#   post_graphql N C [oha arguments: headers, -d BODY]
post_graphql() {
  local n=$1 c=$2; shift 2
  "$OHA" --no-tui -n "$n" -c "$c" -m POST -H 'Content-Type: application/json' "$@" "$base/graphql" >/dev/null
}

# The demo data's seed: every run benchmarks the same leads (BENCH_SEED to vary it).
SEED="${BENCH_SEED:-1}"

Q_A='{ leads(first: 50) { edges { node { id email firstName lastName status score tags source { name } pipeline { name } stage { name } assignedTo { name email } } } } }'
Q_C='mutation { createLead(input: {email: "bench@example.com", firstName: "Bench", lastName: "Mark", source: API}) { id } }'
