# Building, starting and stopping Seatline's two processes, for run.sh and bench.sh. Sourced
# after env.sh, not run. Each function takes the calling script's log tag first.

# Builds the named binaries with $SEATLINE_PROFILE (default release) and sets `bin` to the
# directory they are in.
build_binaries() {
  local tag=$1
  shift
  local profile="${SEATLINE_PROFILE:-release}" args=() name
  for name in "$@"; do
    args+=(--bin "$name")
  done
  echo "[$tag] building ($profile profile)" >&2
  cargo build --profile "$profile" "${args[@]}" >&2
  bin="target/$([[ "$profile" == dev ]] && echo debug || echo "$profile")"
}

app_pids=()

# SIGTERM to both processes, then waits for their graceful shutdown.
stop_app() {
  trap - EXIT INT TERM
  if ((${#app_pids[@]})); then
    kill -TERM "${app_pids[@]}" 2>/dev/null || true
    wait "${app_pids[@]}" 2>/dev/null || true
  fi
}

# Starts `seatline-workers run` and `seatline-api` from $bin in the background, sets
# workers_pid and api_pid, and stops both when the calling script exits or is interrupted.
# Either process creates the topics it needs, with the local stack's partition count unless
# the caller chose one.
start_app() {
  trap stop_app EXIT INT TERM
  export KAFKA_PARTITIONS="${KAFKA_PARTITIONS:-$LOCAL_KAFKA_PARTITIONS}"
  "$bin/seatline-workers" run &
  workers_pid=$!
  app_pids+=("$workers_pid")
  "$bin/seatline-api" &
  api_pid=$!
  app_pids+=("$api_pid")
}

# Waits up to $2 seconds for the API at $HTTP_ADDR to answer ready. Exits the script if it
# does not, or if either process exits first.
wait_until_ready() {
  local tag=$1 timeout=$2
  local deadline=$((SECONDS + timeout)) pid
  until curl -fsS "http://$HTTP_ADDR/health/ready" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "[$tag] the API did not become ready within $timeout s" >&2
      curl -sS "http://$HTTP_ADDR/health/ready" >&2 || true
      exit 1
    fi
    for pid in "${app_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "[$tag] a process exited during start-up" >&2; exit 1; }
    done
    sleep 0.5
  done
}
