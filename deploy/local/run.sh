#!/usr/bin/env bash
# Runs the whole Seatline system in the foreground: PostgreSQL and Kafka (started if needed),
# migrations, demo data, then seatline-workers and seatline-api. Ctrl-C stops the two
# application processes; `deploy/local/services.sh stop` stops PostgreSQL and Kafka.
#
# Any documented variable set by the caller is passed through (see the README).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/env.sh
source "$here/env.sh"
cd "$SEATLINE_ROOT"

"$here/services.sh" start

# Local secrets: generated once and kept under .local/, unless the caller sets them.
mkdir -p "$SEATLINE_STATE_DIR"
secret() {
  local file="$SEATLINE_STATE_DIR/$1"
  [[ -s "$file" ]] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file")
  cat "$file"
}
export TOKEN_SECRET="${TOKEN_SECRET:-$(secret token_secret)}"
export ADMIN_TOKEN="${ADMIN_TOKEN:-$(secret admin_token)}"
export HTTP_ADDR="${HTTP_ADDR:-127.0.0.1:8080}"
export KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-$LOCAL_KAFKA_PARTITIONS}"

profile="${SEATLINE_PROFILE:-release}"
echo "[run] building ($profile profile)" >&2
cargo build --profile "$profile" --bin seatline-api --bin seatline-workers >&2
target_dir="target/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"

"$target_dir/seatline-workers" migrate
"$target_dir/seatline-workers" seed

pids=()
cleanup() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

"$target_dir/seatline-workers" run &
pids+=($!)
"$target_dir/seatline-api" &
pids+=($!)

deadline=$((SECONDS + 60))
until curl -fsS "http://$HTTP_ADDR/health/ready" >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    echo "[run] the API did not become ready within 60 s" >&2
    curl -sS "http://$HTTP_ADDR/health/ready" >&2 || true
    exit 1
  fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "[run] a process exited during start-up" >&2; exit 1; }
  done
  sleep 0.5
done

cat >&2 <<MSG

  Seatline API listening on http://$HTTP_ADDR
    docs:       http://$HTTP_ADDR/docs
    readiness:  http://$HTTP_ADDR/health/ready
    admin token (Authorization: Bearer ...): $ADMIN_TOKEN

  Ctrl-C stops the api and workers; deploy/local/services.sh stop stops PostgreSQL and Kafka.

MSG

# Stay in the foreground until either process exits or we are interrupted.
wait -n "${pids[@]}"
