#!/usr/bin/env bash
# Restart time against queue depth: fills a master (no workers) with N queued no-op tasks,
# SIGKILLs it, starts it again on the same data dir and times start-to-ready (the ready file
# appears once the queues are rebuilt and both ports are bound). Usage:
#   benchmarks/restart_time.sh [N=1000000] [BUILD_DIR=build]
# Prints one JSON line: the wall time and the master's own recovery.ms / recovery.tasks.
set -euo pipefail
N="${1:-1000000}"
BIN="${2:-$(cd "$(dirname "$0")/.." && pwd)/build}/bin"
DIR="$(mktemp -d /tmp/yard-restart.XXXXXX)"
trap 'kill -TERM $MASTER 2>/dev/null; wait $MASTER 2>/dev/null; rm -rf "$DIR"' EXIT

start_master() {
  rm -f "$DIR/ready.json"
  "$BIN/yard-master" --client-endpoint tcp://127.0.0.1:0 --worker-endpoint tcp://127.0.0.1:0 \
    --data-dir "$DIR/data" --max-queued $((N + 1)) --ready-file "$DIR/ready.json" \
    --log-level info 2>>"$DIR/master.log" &
  MASTER=$!
  until [ -s "$DIR/ready.json" ]; do
    kill -0 "$MASTER" 2>/dev/null || { cat "$DIR/master.log" >&2; exit 1; }
    sleep 0.01
  done
  export YARD_MASTER="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_endpoint"])' "$DIR/ready.json")"
}

start_master
seq 1 "$N" | awk '{printf "%099d\n", $1}' >"$DIR/payloads"   # 100-byte lines
"$BIN/yard" submit echo --payload-file "$DIR/payloads" --each-line >/dev/null
kill -KILL "$MASTER"
wait "$MASTER" 2>/dev/null || true

t0=$(date +%s.%N)
start_master
t1=$(date +%s.%N)
"$BIN/yard" --json stats | python3 -c "
import json, sys
s = json.load(sys.stdin)
print(json.dumps({'queued': int(sys.argv[1]), 'restart_seconds': round(float(sys.argv[3]) - float(sys.argv[2]), 3),
                  'recovery_ms': s.get('recovery.ms', 0), 'recovered': s.get('recovery.tasks', 0)}))" "$N" "$t0" "$t1"
