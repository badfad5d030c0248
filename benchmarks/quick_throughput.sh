#!/usr/bin/env bash
# End-to-end throughput of no-op (echo) tasks: a standalone master with W embedded workers,
# N tasks submitted through the CLI in batches of 1000, timed until the master counts all of
# them succeeded. Usage:
#   benchmarks/quick_throughput.sh [N=100000] [W=2] [BUILD_DIR=build] [STATE=fsync]
# STATE is a --durability mode (fsync, interval, none) or `memory` (--memory).
# Prints one JSON line. A stop-gap until the yard-bench harness (see docs/benchmarks.md).
set -euo pipefail
N="${1:-100000}"
W="${2:-2}"
BIN="${3:-$(cd "$(dirname "$0")/.." && pwd)/build}/bin"
STATE="${4:-fsync}"
DIR="$(mktemp -d /tmp/yard-bench.XXXXXX)"
if [ "$STATE" = memory ]; then
  STATE_ARGS=(--memory)
else
  STATE_ARGS=(--data-dir "$DIR/data" --durability "$STATE")
fi
trap 'kill -TERM $MASTER 2>/dev/null; wait $MASTER 2>/dev/null; rm -rf "$DIR"' EXIT

"$BIN/yard-master" --client-endpoint tcp://127.0.0.1:0 --worker-endpoint tcp://127.0.0.1:0 \
  --workers "$W" --ready-file "$DIR/ready.json" --log-level error "${STATE_ARGS[@]}" \
  2>"$DIR/master.log" &
MASTER=$!
for _ in $(seq 1 100); do [ -s "$DIR/ready.json" ] && break; sleep 0.05; done
export YARD_MASTER="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_endpoint"])' "$DIR/ready.json")"
until [ "$("$BIN/yard" --json workers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge "$W" ]; do sleep 0.05; done
seq 1 "$N" | awk '{printf "%099d\n", $1}' >"$DIR/payloads"   # 100-byte lines

start=$(date +%s.%N)
last=$("$BIN/yard" --json submit echo --payload-file "$DIR/payloads" --each-line |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["ids"][-1])')
# Block on the last task (answered by the master, no polling), then confirm the count.
"$BIN/yard" wait "$last" >/dev/null
until [ "$("$BIN/yard" --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin).get("tasks.succeeded", 0))')" -ge "$N" ]; do
  sleep 0.02
done
end=$(date +%s.%N)
python3 -c "import sys; n,w,s,e=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print('{\"tasks\": %d, \"workers\": %d, \"state\": \"%s\", \"seconds\": %.3f, \"tasks_per_s\": %.0f}' % (n, w, sys.argv[5], e-s, n/(e-s)))" "$N" "$W" "$start" "$end" "$STATE"
