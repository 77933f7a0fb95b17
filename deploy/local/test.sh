#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL and Kafka, starting them if they are not
# running. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/env.sh
source "$here/env.sh"
cd "$SEATLINE_ROOT"

"$here/services.sh" start

# Tests read these to reach the services; each test makes its own database and topics.
export DATABASE_URL KAFKA_BOOTSTRAP_SERVERS
export SEATLINE_SERVICES_SCRIPT="$here/services.sh"

cargo test --workspace --all-targets "$@"
