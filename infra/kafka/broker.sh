#!/usr/bin/env bash
# infra/kafka/broker.sh — runs a single-node Apache Kafka broker (KRaft) from Maven Central's jars, for tests and CI.
#
#   infra/kafka/broker.sh start   resolve the jars (cached), format fresh storage, start, print KAFKA_BROKERS=...
#   infra/kafka/broker.sh stop    stop the broker this script started and delete its storage
#   infra/kafka/broker.sh status  print KAFKA_BROKERS=... and exit 0 when it answers, exit 1 otherwise
#
# Environment (all optional):
#   SENTINEL_KAFKA_HOME     cache for jars and run state, outside the work tree  (default ~/.cache/sentinel-kafka)
#   SENTINEL_KAFKA_VERSION  org.apache.kafka:kafka_2.13 version                   (default 4.4.0)
#   SENTINEL_KAFKA_PORT     client listener port on 127.0.0.1                    (default 9092)
#   SENTINEL_KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1           (default 9093)
#   SENTINEL_KAFKA_START_TIMEOUT    seconds to wait for the port to answer       (default 90)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="${SENTINEL_KAFKA_HOME:-$HOME/.cache/sentinel-kafka}"
version="${SENTINEL_KAFKA_VERSION:-4.4.0}"
port="${SENTINEL_KAFKA_PORT:-9092}"
controller_port="${SENTINEL_KAFKA_CONTROLLER_PORT:-9093}"
start_timeout="${SENTINEL_KAFKA_START_TIMEOUT:-90}"
jars="$home/jars/$version"
run="$home/run"
address="127.0.0.1:$port"

log() { echo "broker.sh: $*" >&2; }

# True when something accepts TCP connections on the client port.
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# The pid of the broker this script started, when that process is still alive.
running_pid() {
  [[ -f "$run/pid" ]] || return 1
  local pid
  pid="$(cat "$run/pid")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Copies kafka_2.13 and its runtime dependencies into $jars once; a marker file says the copy completed.
resolve_jars() {
  [[ -f "$jars/.complete" ]] && return 0
  log "resolving org.apache.kafka:kafka_2.13:$version into $jars (first run only)"
  local pomdir
  pomdir="$(mktemp -d)"
  sed "s/@KAFKA_VERSION@/$version/" "$here/resolve-pom.xml" >"$pomdir/pom.xml"
  rm -rf "$jars" && mkdir -p "$jars"
  if ! mvn -q -B -f "$pomdir/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$jars" >"$pomdir/mvn.log" 2>&1; then
    tail -n 40 "$pomdir/mvn.log" >&2
    log "could not resolve kafka_2.13:$version from Maven Central (set SENTINEL_KAFKA_VERSION to another 4.x)"
    rm -rf "$pomdir" "$jars"
    exit 1
  fi
  rm -rf "$pomdir"
  touch "$jars/.complete"
}

# Kafka moved StorageTool from the Scala core to Java tools during 4.x; use whichever the jars contain.
storage_tool_class() {
  local class jar
  for class in org.apache.kafka.tools.StorageTool kafka.tools.StorageTool; do
    for jar in "$jars"/*.jar; do
      if unzip -l "$jar" "${class//.//}.class" >/dev/null 2>&1; then
        echo "$class"
        return 0
      fi
    done
  done
  log "no StorageTool class in $jars"
  exit 1
}

# Writes server.properties for a fresh log dir from the template next to this script.
write_properties() {
  local logdir="$1"
  sed -e "s|@LOG_DIR@|$logdir|" -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" \
    "$here/server.properties" >"$run/server.properties"
}

# True once the broker has logged the end of its start-up and its client port accepts connections;
# the port alone opens a moment before the broker has registered with its controller.
broker_ready() { grep -q 'Kafka Server started' "$run/broker.log" && port_answers; }

# Polls until the broker is ready; on timeout or broker exit, prints the log tail and fails.
wait_until_ready() {
  local pid="$1" deadline=$((SECONDS + start_timeout))
  until broker_ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 60 "$run/broker.log" >&2
      log "broker exited during start (log: $run/broker.log)"
      exit 1
    fi
    if ((SECONDS >= deadline)); then
      tail -n 60 "$run/broker.log" >&2
      log "broker did not answer on $address within ${start_timeout}s (log: $run/broker.log)"
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.5
  done
}

start() {
  if running_pid >/dev/null && port_answers; then
    echo "KAFKA_BROKERS=$address"
    return 0
  fi
  if port_answers; then
    log "port $port is taken by a process this script did not start; stop it or set SENTINEL_KAFKA_PORT"
    exit 1
  fi
  resolve_jars
  mkdir -p "$run"
  stop_quietly
  local logdir cluster_id tool classpath
  logdir="$(mktemp -d -t sentinel-kafka-logs.XXXXXX)"
  echo "$logdir" >"$run/logdir"
  write_properties "$logdir"
  classpath="$jars/*"
  tool="$(storage_tool_class)"
  cluster_id="$(java -cp "$classpath" "$tool" random-uuid 2>/dev/null | tail -n 1)"
  java -cp "$classpath" "$tool" format -t "$cluster_id" -c "$run/server.properties" >"$run/format.log" 2>&1 || {
    cat "$run/format.log" >&2
    log "formatting KRaft storage in $logdir failed"
    exit 1
  }
  nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$classpath" kafka.Kafka "$run/server.properties" >"$run/broker.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$run/pid"
  wait_until_ready "$pid"
  echo "KAFKA_BROKERS=$address"
}

# Stops a broker this script started (TERM, then KILL after 30 s) and removes its log dir.
stop_quietly() {
  local pid
  if pid="$(running_pid)"; then
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$run/pid"
  if [[ -f "$run/logdir" ]]; then
    rm -rf "$(cat "$run/logdir")"
    rm -f "$run/logdir"
  fi
}

status() {
  if running_pid >/dev/null && port_answers; then
    echo "KAFKA_BROKERS=$address"
  else
    log "no broker started by this script answers on $address"
    exit 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop_quietly ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
