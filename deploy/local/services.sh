#!/usr/bin/env bash
# Starts, stops and reports the real backing services of Seatline as local processes on
# loopback: PostgreSQL and a single-node Apache Kafka 4.x in KRaft mode.
#
#   deploy/local/services.sh start    # idempotent: reuses what already runs
#   deploy/local/services.sh stop
#   deploy/local/services.sh status
#
# Data lives under .local/ at the repository root (git-ignored). The Kafka jars are resolved
# from Maven Central with Maven into a cache outside the repository that survives between runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/local/env.sh
source "$here/env.sh"

log() { printf '[services] %s\n' "$*" >&2; }
fail() {
  # $1: service name, $2: message, $3: log file to show the tail of (optional).
  printf '\n[services] FAILED: %s: %s\n' "$1" "$2" >&2
  if [[ -n "${3:-}" && -f "$3" ]]; then
    printf '[services] last lines of %s:\n' "$3" >&2
    tail -n 40 "$3" >&2
  fi
  exit 1
}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $* from the OS packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- PostgreSQL

pg_bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/initdb" ]]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# initdb and postgres refuse to run as root; run them as the OS `postgres` user then.
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

database_reachable() {
  command -v psql >/dev/null 2>&1 && psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1
}

start_postgres() {
  if database_reachable; then
    log "PostgreSQL: reachable at DATABASE_URL, reusing it"
    return 0
  fi
  local bin
  if ! bin=$(pg_bin_dir); then
    apt_install postgresql postgresql-client
    bin=$(pg_bin_dir) || fail PostgreSQL "server binaries not found after installing"
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client

  mkdir -p "$SEATLINE_STATE_DIR"
  local data="$SEATLINE_STATE_DIR/postgres" logf="$SEATLINE_STATE_DIR/postgres.log"
  if [[ $(id -u) -eq 0 ]]; then
    mkdir -p "$data"
    chown postgres "$data"
    touch "$logf"
    chown postgres "$logf"
    # postgres must be able to reach its data directory.
    local p="$data"
    while [[ "$p" != "/" ]]; do
      p=$(dirname "$p")
      chmod o+x "$p" 2>/dev/null || true
    done
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    log "PostgreSQL: creating a private cluster in $data"
    pg_run "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$logf" 2>&1 \
      || fail PostgreSQL "initdb failed" "$logf"
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$data'
max_connections = 400
shared_buffers = 256MB
EOF
  fi
  if ! pg_run "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if port_open "$PG_PORT"; then
      fail PostgreSQL "port $PG_PORT is taken by a server that does not accept DATABASE_URL ($DATABASE_URL); set DATABASE_URL or PG_PORT"
    fi
    log "PostgreSQL: starting on 127.0.0.1:$PG_PORT"
    pg_run "$bin/pg_ctl" -D "$data" -l "$logf" -w -t 60 start >/dev/null 2>&1 \
      || fail PostgreSQL "did not start within 60 s" "$logf"
  fi
  local admin=(psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -Atq)
  local deadline=$((SECONDS + 60))
  until "${admin[@]}" -c 'select 1' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail PostgreSQL "not accepting connections after 60 s" "$logf"
    sleep 0.5
  done
  # The application role may create databases: sqlx tests make one per test.
  if [[ -z $("${admin[@]}" -c "select 1 from pg_roles where rolname = '$PG_APP_USER'") ]]; then
    "${admin[@]}" -c "create role \"$PG_APP_USER\" login createdb password '$PG_APP_PASSWORD'" >/dev/null
  fi
  if [[ -z $("${admin[@]}" -c "select 1 from pg_database where datname = '$PG_APP_DB'") ]]; then
    "${admin[@]}" -c "create database \"$PG_APP_DB\" owner \"$PG_APP_USER\"" >/dev/null
  fi
  database_reachable || fail PostgreSQL "started, but DATABASE_URL ($DATABASE_URL) cannot connect" "$logf"
  log "PostgreSQL: ready"
}

stop_postgres() {
  local data="$SEATLINE_STATE_DIR/postgres" bin
  if [[ -f "$data/postmaster.pid" ]] && bin=$(pg_bin_dir); then
    pg_run "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    log "PostgreSQL: stopped"
  else
    log "PostgreSQL: no private cluster running"
  fi
}

# --------------------------------------------------------------------- Kafka

find_java17() {
  local j
  for j in "${JAVA_HOME:-}/bin/java" /usr/lib/jvm/java-17-openjdk-*/bin/java "$(command -v java 2>/dev/null || true)"; do
    if [[ -x "$j" ]] && "$j" -version 2>&1 | grep -q 'version "17'; then
      echo "$j"
      return 0
    fi
  done
  return 1
}

resolve_kafka_jars() {
  local lib="$KAFKA_CACHE_DIR/lib"
  if [[ -f "$KAFKA_CACHE_DIR/.resolved" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "Kafka: resolving broker jars from Maven Central into $KAFKA_CACHE_DIR (first run only)"
  mkdir -p "$KAFKA_CACHE_DIR"
  rm -rf "$lib"
  local logf="$KAFKA_CACHE_DIR/maven.log"
  mvn -B -q -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >"$logf" 2>&1 \
    || fail Kafka "Maven could not resolve the broker jars" "$logf"
  ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1 || fail Kafka "kafka_2.13 jar missing after resolution" "$logf"
  touch "$KAFKA_CACHE_DIR/.resolved"
}

start_kafka() {
  local dir="$SEATLINE_STATE_DIR/kafka" pidf="$SEATLINE_STATE_DIR/kafka.pid" logf="$SEATLINE_STATE_DIR/kafka.log"
  if pid_alive "$pidf" && port_open "$KAFKA_PORT"; then
    log "Kafka: already running (pid $(cat "$pidf")), reusing it"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    log "Kafka: something already listens on 127.0.0.1:$KAFKA_PORT, reusing it"
    return 0
  fi
  local java
  if ! java=$(find_java17); then
    apt_install openjdk-17-jre-headless
    java=$(find_java17) || fail Kafka "Java 17 not found after installing"
  fi
  resolve_kafka_jars
  mkdir -p "$dir/data"
  sed -e "s#@KAFKA_PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
    -e "s#@DATA_DIR@#$dir/data#g" "$here/kafka/server.properties.template" >"$dir/server.properties"
  local cp="$KAFKA_CACHE_DIR/lib/*"
  local jvm=(-Xms256m -Xmx"${KAFKA_HEAP:-768m}" -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties")
  if [[ ! -f "$dir/data/meta.properties" ]]; then
    log "Kafka: formatting KRaft storage in $dir/data"
    local cluster_id
    cluster_id=$("$java" -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool random-uuid 2>>"$logf" | tail -n 1)
    "$java" -cp "$cp" "${jvm[@]}" kafka.tools.StorageTool format --standalone \
      -t "$cluster_id" -c "$dir/server.properties" >>"$logf" 2>&1 \
      || fail Kafka "formatting storage failed" "$logf"
  fi
  log "Kafka: starting on 127.0.0.1:$KAFKA_PORT"
  : >"$logf"
  nohup "$java" "${jvm[@]}" -cp "$cp" kafka.Kafka "$dir/server.properties" >>"$logf" 2>&1 &
  echo $! >"$pidf"
  local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90}))
  until port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$logf"; do
    pid_alive "$pidf" || fail Kafka "the broker process exited" "$logf"
    ((SECONDS < deadline)) || fail Kafka "not ready after ${KAFKA_START_TIMEOUT:-90} s" "$logf"
    sleep 0.5
  done
  log "Kafka: ready"
}

stop_kafka() {
  local pidf="$SEATLINE_STATE_DIR/kafka.pid"
  if pid_alive "$pidf"; then
    local pid
    pid=$(cat "$pidf")
    kill "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    rm -f "$pidf"
    log "Kafka: stopped"
  else
    log "Kafka: not running"
  fi
}

status() {
  if database_reachable; then echo "postgres: up ($DATABASE_URL)"; else echo "postgres: down"; fi
  if port_open "$KAFKA_PORT"; then echo "kafka: up (127.0.0.1:$KAFKA_PORT)"; else echo "kafka: down"; fi
}

case "${1:-start}" in
  start)
    start_postgres
    start_kafka
    ;;
  start-postgres) start_postgres ;;
  start-kafka) start_kafka ;;
  stop)
    stop_kafka
    stop_postgres
    ;;
  stop-kafka) stop_kafka ;;
  stop-postgres) stop_postgres ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status|start-postgres|start-kafka|stop-postgres|stop-kafka" >&2
    exit 2
    ;;
esac
