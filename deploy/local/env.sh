# Shared defaults for the deploy/local scripts. Sourced, not run.
# Every value can be overridden from the caller's environment; the Rust services read the
# same variables with the same defaults (see the README's Configuration section).

SEATLINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SEATLINE_ROOT
export SEATLINE_STATE_DIR="${SEATLINE_STATE_DIR:-$SEATLINE_ROOT/.local}"

export PG_PORT="${PG_PORT:-5432}"
export PG_APP_USER="${PG_APP_USER:-seatline}"
export PG_APP_PASSWORD="${PG_APP_PASSWORD:-seatline}"
export PG_APP_DB="${PG_APP_DB:-seatline}"
export DATABASE_URL="${DATABASE_URL:-postgres://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/$PG_APP_DB}"

export KAFKA_PORT="${KAFKA_PORT:-9092}"
export KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
# Resolved broker jars outlive the work tree, so a second checkout does not download again.
export KAFKA_CACHE_DIR="${KAFKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/seatline/kafka-4.1.1}"

# Partitions of the topics the local stack creates (app.sh's start_app, which run.sh and
# bench.sh use, exports it as KAFKA_PARTITIONS; the tests choose their own). One broker and one
# workers process on a small machine need few: librdkafka sends one produce request per
# partition, so with the services' default of 12 a produce request carried about 4 messages at
# 3,000 requests/s (17 with 2), and the broker's CPU went into taking requests.
LOCAL_KAFKA_PARTITIONS="${LOCAL_KAFKA_PARTITIONS:-2}"
