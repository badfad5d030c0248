#!/usr/bin/env bash
# Standalone Yard on this machine: installs, builds (Release) and starts a local MQTT broker
# (mosquitto, own config in a temp dir) and a master with its mqtt and web roles and N
# embedded workers, runs a short demo (CLI tasks, simulated devices' telemetry turned into
# tasks, a device request answered, the REST API) and shows the results and the dashboard's
# URL, then keeps serving until Ctrl-C.
# Usage: deploy/up.sh [--demo] [--workers N]
#   --demo        exit after the demo (the master stops with SIGTERM and must exit 0)
#   --workers N   embedded workers (default 2)
# Ports: YARD_CLIENT_PORT (default 7070), YARD_WORKER_PORT (default 7071), YARD_WEB_PORT
# (default 8080; the dashboard, REST API and /metrics on 127.0.0.1), YARD_MQTT_PORT (default:
# a free one); 0 picks free ones.
# State: YARD_DATA_DIR (default ./yard-data in the repo; a fresh temp dir with --demo).
set -euo pipefail
source "$(dirname "$0")/common.sh"

demo_only=0
workers=2
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) demo_only=1 ;;
    --workers) workers="${2:?--workers needs a number}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

bash "$YARD_ROOT/deploy/bootstrap.sh"
echo "== building (Release)"
yard_build "$YARD_ROOT/build" Release yard_master_bin yard_worker_bin yard_cli_bin yard_devices
BIN="$YARD_ROOT/build/bin"

RUN_DIR="$(mktemp -d /tmp/yard-up.XXXXXX)"
MQTT_PORT="${YARD_MQTT_PORT:-0}"
if [ "$MQTT_PORT" = 0 ]; then
  MQTT_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
fi
printf '%s\n' "listener $MQTT_PORT 127.0.0.1" "allow_anonymous true" "persistence true" \
  "persistence_location $RUN_DIR/" "max_queued_messages 1000000" "set_tcp_nodelay true" >"$RUN_DIR/mosquitto.conf"
# As root, mosquitto would drop to its own user, which cannot write the private run dir.
[ "$(id -u)" -eq 0 ] && echo "user root" >>"$RUN_DIR/mosquitto.conf"
echo "== starting mosquitto on 127.0.0.1:$MQTT_PORT (config and log in $RUN_DIR)"
mosquitto -c "$RUN_DIR/mosquitto.conf" >"$RUN_DIR/mosquitto.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 50); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$MQTT_PORT" 2>/dev/null && break
  kill -0 "$BROKER_PID" 2>/dev/null || { cat "$RUN_DIR/mosquitto.log"; echo "mosquitto failed to start" >&2; exit 1; }
  sleep 0.1
done
if [ "$demo_only" -eq 1 ]; then
  DATA_DIR="${YARD_DATA_DIR:-$RUN_DIR/data}"
else
  DATA_DIR="${YARD_DATA_DIR:-$YARD_ROOT/yard-data}"
fi
echo "== starting yard-master with $workers workers and the mqtt and web roles (state in $DATA_DIR, logs in $RUN_DIR/master.log)"
"$BIN/yard-master" \
  --mqtt "tcp://127.0.0.1:$MQTT_PORT" \
  --web "127.0.0.1:${YARD_WEB_PORT:-8080}" \
  --client-endpoint "tcp://127.0.0.1:${YARD_CLIENT_PORT:-7070}" \
  --worker-endpoint "tcp://127.0.0.1:${YARD_WORKER_PORT:-7071}" \
  --data-dir "$DATA_DIR" \
  --workers "$workers" --ready-file "$RUN_DIR/ready.json" >"$RUN_DIR/master.log" 2>&1 &
MASTER_PID=$!

stop_master() {
  local rc=0
  if kill -0 "$MASTER_PID" 2>/dev/null; then
    kill -TERM "$MASTER_PID"
    wait "$MASTER_PID" || rc=$?
    echo "== yard-master stopped (exit $rc)"
  fi
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID"
    wait "$BROKER_PID" || true
  fi
  return "$rc"
}
trap 'stop_master; exit $?' INT TERM
trap 'stop_master >/dev/null 2>&1 || true' EXIT  # a failing step leaves nothing running

for _ in $(seq 1 100); do
  [ -s "$RUN_DIR/ready.json" ] && break
  kill -0 "$MASTER_PID" 2>/dev/null || { cat "$RUN_DIR/master.log"; echo "yard-master failed to start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$RUN_DIR/ready.json" ] || { echo "yard-master did not become ready" >&2; exit 1; }
ready() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$RUN_DIR/ready.json" "$1"; }
CLIENT="$(ready client_endpoint)"
WEB="$(ready web_url)"
export YARD_MASTER="$CLIENT"
yard() { "$BIN/yard" "$@"; }

# Embedded workers connect within a moment; wait for them so the demo runs on all of them.
for _ in $(seq 1 50); do
  [ "$(yard --json workers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge "$workers" ] && break
  sleep 0.1
done

echo "== demo (master at $CLIENT, dashboard at $WEB/)"
echo "\$ yard submit echo 'hello from yard' --wait"
yard submit echo 'hello from yard' --wait
echo "\$ yard submit telemetry.stats '[21.5, 22.0, 22.4, 23.1, 35.9]' --wait"
yard submit telemetry.stats '[21.5, 22.0, 22.4, 23.1, 35.9]' --wait
echo "\$ yard submit telemetry.threshold '{\"limit\": 30, \"readings\": [21.5, 35.9, 22.4]}' --wait"
yard submit telemetry.threshold '{"limit": 30, "readings": [21.5, 35.9, 22.4]}' --wait
echo "\$ seq 1 1000 | yard submit echo - --each-line --wait"
seq 1 1000 | yard submit echo - --each-line --wait
echo "\$ yard submit fail oops --max-attempts 2 --wait   # fails on purpose, retried once"
yard submit fail oops --max-attempts 2 --wait || echo "(exit code $? as documented: the task failed)"
echo "\$ yard dead list   # it used up its attempts: a dead letter, kept for an operator"
yard dead list
echo "== devices over MQTT (broker 127.0.0.1:$MQTT_PORT)"
echo "\$ yard-devices --devices 20 --count 50 --requests 1   # telemetry, then one request each"
"$BIN/yard-devices" --broker "tcp://127.0.0.1:$MQTT_PORT" --devices 20 --count 50 --requests 1 --quiet
echo "# each device's readings (100 at a time, or every second) became telemetry.stats tasks:"
for _ in $(seq 1 100); do
  yard --json stats | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get("mqtt.messages_committed", 0) >= 1020 and s["tasks.active"] == 0 else 1)' && break
  sleep 0.1
done
echo "\$ yard list --type telemetry.stats --key dev-0000"
yard list --type telemetry.stats --key dev-0000
first="$(yard --json list --type telemetry.stats --key dev-0000 --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["id"])')"
echo "\$ yard result $first"
yard result "$first"
echo
echo "# a device request, answered on its response topic:"
echo "\$ mosquitto_pub -t yard/devices/dev-0042/requests/echo -m '{\"request_id\":\"demo-1\",\"payload\":\"ping\"}'"
mosquitto_sub -p "$MQTT_PORT" -q 1 -C 1 -W 10 -v -t 'yard/devices/dev-0042/responses/#' &
SUB_PID=$!
sleep 0.5
mosquitto_pub -p "$MQTT_PORT" -q 1 -t yard/devices/dev-0042/requests/echo -m '{"request_id":"demo-1","payload":"ping"}'
wait "$SUB_PID" || echo "(no reply within 10 s)"
echo "\$ yard workers"
yard workers
echo "\$ yard stats"
yard stats
echo "== the REST API and metrics ($WEB)"
echo "\$ curl -s -X POST $WEB/api/v1/tasks -d '{\"type\": \"echo\", \"payload\": \"hello over HTTP\"}'"
reply="$(curl -sf -X POST "$WEB/api/v1/tasks" -d '{"type": "echo", "payload": "hello over HTTP"}')"
echo "$reply"
id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$reply")"
echo "\$ curl -s '$WEB/api/v1/tasks/$id/result?wait=5s'"
curl -sf "$WEB/api/v1/tasks/$id/result?wait=5s"
echo
echo "\$ curl -s $WEB/metrics | grep yard_tasks_total"
curl -sf "$WEB/metrics" | grep '^yard_tasks_total'

if [ "$demo_only" -eq 1 ]; then
  stop_master
  exit $?
fi
echo "== Yard is serving at $CLIENT (workers: tcp://127.0.0.1:${YARD_WORKER_PORT:-7071}). Ctrl-C stops it."
echo "   dashboard: $WEB/   (REST API under $WEB/api/v1, metrics at $WEB/metrics)"
echo "   try: YARD_MASTER=$CLIENT $BIN/yard submit echo hi --wait"
echo "        $BIN/yard-devices --broker tcp://127.0.0.1:$MQTT_PORT --devices 100 --duration 10s --rate 5000"
wait "$MASTER_PID"
