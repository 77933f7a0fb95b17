#!/usr/bin/env bash
# The sale-day benchmark in one command:
#   deploy/local/bench.sh            # full run: release build, 10k-seat run, then a 1M-seat rush
#   deploy/local/bench.sh --smoke    # a few seconds, to keep the instrument working (CI)
# Extra arguments go to seatline-bench (see `seatline-bench --help`).
#
# It starts PostgreSQL and Kafka if needed, then its own api and workers on a fresh database
# (seatline_bench) and fresh topics, with settings that keep admission out of the way, runs
# the scenarios, prints a table, and writes a JSON result and an SVG plot under bench/results/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/env.sh
source "$here/env.sh"
# shellcheck source=deploy/local/app.sh
source "$here/app.sh"
cd "$SEATLINE_ROOT"

smoke=false
if [[ "${1:-}" == "--smoke" ]]; then
  smoke=true
  shift
fi

"$here/services.sh" start

build_binaries bench seatline-api seatline-workers seatline-bench

# A fresh database and fresh topics for every run, so runs never see each other's data.
bench_db="${BENCH_DATABASE:-seatline_bench}"
# FORCE ends the previous run's sessions, but a session of another role on that database (such
# as an autovacuum worker still busy with the previous run's tables) makes the drop fail
# ("must be a member of the role whose process is being terminated"); it is soon gone, so retry.
for attempt in $(seq 30); do
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null && break
  ((attempt < 30)) || { echo "[bench] cannot drop the previous bench database" >&2; exit 1; }
  sleep 1
done
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$bench_db\"" >/dev/null
export DATABASE_URL="${DATABASE_URL%/*}/$bench_db"
export KAFKA_TOPIC_PREFIX="bench-$(date +%s)."
export HTTP_ADDR="${BENCH_HTTP_ADDR:-127.0.0.1:18080}"
export WORKERS_METRICS_ADDR="${BENCH_METRICS_ADDR:-127.0.0.1:19100}"
export TOKEN_SECRET="${TOKEN_SECRET:-$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')}"
export ADMIN_TOKEN="${ADMIN_TOKEN:-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')}"
# Admission is not what is measured: everyone is admitted at once and stays admitted.
export QUEUE_MAX_ACTIVE="${QUEUE_MAX_ACTIVE:-100000000}"
export QUEUE_ADMIT_PER_SEC="${QUEUE_ADMIT_PER_SEC:-100000000}"
export QUEUE_ACTIVE_TTL="${QUEUE_ACTIVE_TTL:-3600s}"
export QUEUE_WAIT_IDLE_TTL="${QUEUE_WAIT_IDLE_TTL:-3600s}"
# Holds outlive the run, and one per user, so every held seat can be paid.
export RESERVATION_HOLD_TTL="${RESERVATION_HOLD_TTL:-3600s}"
export MAX_HOLDS_PER_USER="${MAX_HOLDS_PER_USER:-1}"
export DATABASE_MAX_CONNECTIONS="${DATABASE_MAX_CONNECTIONS:-32}"
export RUST_LOG="${RUST_LOG:-warn}"
# With RUST_BACKTRACE=1 in the environment, every error value would capture a backtrace: past
# the ceiling, the load generator's refused and reset connections then showed unwinding in
# perf. Panics still print theirs.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"

"$bin/seatline-workers" migrate >/dev/null

start_app
wait_until_ready bench 120

# PostgreSQL and the broker, when this machine runs them from deploy/local: each scenario's
# CPU time is then split among every process of the stack, not only the api and workers.
stack=(--api "http://$HTTP_ADDR" --api-pid "$api_pid")
pg_pid=$(head -n 1 "$SEATLINE_STATE_DIR/postgres/postmaster.pid" 2>/dev/null || true)
[[ -n "$pg_pid" ]] && stack+=(--postgres-pid "$pg_pid")
broker_pid=$(cat "$SEATLINE_STATE_DIR/kafka.pid" 2>/dev/null || true)
[[ -n "$broker_pid" ]] && stack+=(--broker-pid "$broker_pid")
common=("${stack[@]}" --workers-pid "$workers_pid")
if $smoke; then
  "$bin/seatline-bench" "${common[@]}" --label smoke --users 200 --dates 4 --rates 50,100 \
    --step-secs 2 --closed-loop-secs 2 --concurrency 16 --out "${BENCH_OUT:-target/bench-smoke}" "$@"
else
  # A rush first, not reported, to warm up the broker's JVM. A broker started just before runs
  # its first rushes through the interpreter and compiles its hot code meanwhile: its JIT
  # compiler threads took about 17 CPU-s over its first 250,000 requests, in bursts of up to
  # 60% of a core, which stall the rush they fall in. After 20 s at 1,000-4,000/s the measured
  # 10k rush still compiled for 7.3 CPU-s, after 60 s at 3,000/s for 2.0; this warm-up runs
  # 80 s. The report gives each step's compiling time ("broker JIT compiling"). Its
  # invariants are checked like any run's; BENCH_WARM_UP=0 skips it.
  if [[ "${BENCH_WARM_UP:-1}" != 0 ]]; then
    echo "[bench] warm-up: an 80 s rush at 3,000/s, not reported" >&2
    "$bin/seatline-bench" "${common[@]}" --label warm-up --users 2000 --dates 20 \
      --rates 3000,3000,3000,3000,3000,3000,3000,3000 --step-secs 10 --scenarios rush \
      --out target/bench-warm-up >/dev/null
  fi
  echo "[bench] run 1: 10,000 seats, every scenario" >&2
  "$bin/seatline-bench" "${common[@]}" --label 10k-seats "$@"
  echo "[bench] run 2: the rush with 1,000,000 seats in the database" >&2
  "$bin/seatline-bench" "${common[@]}" --label 1M-seats --dates 19600 --scenarios rush "$@"
fi

# Last, polls by users waiting in line: with the workers (and so the admitter) stopped, every
# new token stays WAITING.
echo "[bench] polls by waiting users (workers stopped, so nobody is admitted)" >&2
kill -TERM "$workers_pid"
wait "$workers_pid" || true
if $smoke; then
  "$bin/seatline-bench" "${stack[@]}" --label smoke-waiting \
    --users 200 --dates 1 --closed-loop-secs 2 --concurrency 16 --scenarios queue-waiting \
    --out "${BENCH_OUT:-target/bench-smoke}" "$@"
else
  "$bin/seatline-bench" "${stack[@]}" --label waiting \
    --dates 1 --scenarios queue-waiting "$@"
fi
