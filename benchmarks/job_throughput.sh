#!/usr/bin/env bash
# End-to-end time of one job against the same work as plain tasks (docs/benchmarks.md): a
# standalone master with 2 embedded workers and --memory, then for N in 10,000 and 100,000
# three runs of `yard job submit echo --split range:1..N --aggregate sum --wait`, timed
# around the CLI. Compare with `benchmarks/quick_throughput.sh N 2 BUILD_DIR memory`.
# Usage: benchmarks/job_throughput.sh [BUILD_DIR=build]. Prints one line per run.
set -euo pipefail
B="${1:-$(cd "$(dirname "$0")/.." && pwd)/build}/bin"
D="$(mktemp -d /tmp/yard-job-bench.XXXXXX)"
"$B/yard-master" --client-endpoint tcp://127.0.0.1:0 --worker-endpoint tcp://127.0.0.1:0 \
  --workers 2 --memory --ready-file "$D/ready.json" --log-level error &
M=$!
trap 'kill -TERM $M 2>/dev/null; wait $M 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 1 100); do [ -s "$D/ready.json" ] && break; sleep 0.05; done
export YARD_MASTER="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_endpoint"])' "$D/ready.json")"
until [ "$("$B/yard" --json workers | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge 2 ]; do sleep 0.05; done
for n in 10000 100000; do
  for _ in 1 2 3; do
    s=$(date +%s.%N)
    out=$("$B/yard" job submit echo --split "range:1..$n" --aggregate sum --wait 2>/dev/null)
    e=$(date +%s.%N)
    python3 -c "import sys; n,s,e=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print('job parts=%d result=%s seconds=%.3f parts_per_s=%.0f' % (n, sys.argv[4], e-s, n/(e-s)))" "$n" "$s" "$e" "$out"
  done
done
