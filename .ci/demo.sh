# Sourced by the CI steps that need a live server filled by `demo` (schemathesis, the generated
# clients): `start_demo BACKEND PORT [DEMO ARGS…]` seeds a fresh data directory — on SQLite, or
# on a PostgreSQL database of its own — starts the debug build on 127.0.0.1:PORT and waits
# until it is ready; DEMO_URL and DEMO_SIGN_INS (what `demo` printed) name it, and
# `stop_demo` ends it and drops its database (also on exit). The server's limits on sign-in
# hashing and research privacy budget are raised: these steps sign in and query far more than
# a person would.

demo_pg="${KO_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
demo_db="ko_demo_$$"
demo_dir=$(mktemp -d)
demo_server=

stop_demo() {
  if [ -n "$demo_server" ]; then
    kill "$demo_server" 2>/dev/null || true
    wait "$demo_server" 2>/dev/null || true
    demo_server=
  fi
  psql -q "$demo_pg" -c "DROP DATABASE IF EXISTS $demo_db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap 'stop_demo; rm -rf "$demo_dir"' EXIT

start_demo() {
  local backend=$1 port=$2
  shift 2
  stop_demo
  export KO_DATA_DIR="$demo_dir/$backend"
  rm -rf "$KO_DATA_DIR"; mkdir -p "$KO_DATA_DIR"
  if [ "$backend" = postgres ]; then
    psql -q "$demo_pg" -c "CREATE DATABASE $demo_db" >/dev/null
    export DATABASE_URL="${demo_pg%/*}/$demo_db"
  else
    unset DATABASE_URL
  fi
  DEMO_SIGN_INS="$KO_DATA_DIR/sign-ins.txt"
  DEMO_LOG="$KO_DATA_DIR/server.log"
  DEMO_URL="http://127.0.0.1:$port"
  ./target/debug/ketamine-outcomes demo "$@" > "$DEMO_SIGN_INS"
  KO_BIND_ADDRESS="127.0.0.1:$port" KO_LOGIN_ADDRESS_LIMIT=10000 \
    KO_HASHES_PER_MINUTE_PER_ADDRESS=1000000 KO_HASHES_PER_MINUTE_PER_ACCOUNT=1000000 \
    KO_RESEARCH_EPSILON_BUDGET=1000 RUST_LOG=warn KO_WEBHOOK_EGRESS=loopback \
    ./target/debug/ketamine-outcomes > "$DEMO_LOG" 2>&1 &
  demo_server=$!
  for _ in $(seq 1 50); do curl -fs "$DEMO_URL/readyz" >/dev/null && return 0; sleep 0.2; done
  echo "the demo server on $backend did not become ready" >&2
  tail -n 40 "$DEMO_LOG" >&2
  return 1
}
