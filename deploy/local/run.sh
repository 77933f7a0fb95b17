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
# shellcheck source=deploy/local/app.sh
source "$here/app.sh"
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

build_binaries run seatline-api seatline-workers

"$bin/seatline-workers" migrate
"$bin/seatline-workers" seed

start_app
wait_until_ready run 60

cat >&2 <<MSG

  Seatline API listening on http://$HTTP_ADDR
    docs:       http://$HTTP_ADDR/docs
    readiness:  http://$HTTP_ADDR/health/ready
    admin token (Authorization: Bearer ...): $ADMIN_TOKEN

  Ctrl-C stops the api and workers; deploy/local/services.sh stop stops PostgreSQL and Kafka.

MSG

# Stay in the foreground until either process exits or we are interrupted.
wait -n "${app_pids[@]}"
