// The physical limits yard-bench puts next to Yard's own figures, measured in the same run
// (--compare): what raw ZeroMQ moves over loopback TCP between two threads when the
// "worker" only echoes batches of tasks back, and what RocksDB writes when every task is one
// Put on enqueue and one Delete on ack, in write batches. Like ../shared/peers/zmq_limit and
// rocksdb_limit (batch 64, 100-byte payloads), built in so that the ratio needs no setup.
// For the mqtt workload: what the MQTT broker passes from publishers to a subscriber.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace yard::bench {

struct ProbeResult {
  std::string name;
  double per_second = 0;  // tasks (ZeroMQ) or Put+Delete pairs (RocksDB)
  double seconds = 0;
};

// Tasks per second through a DEALER -> ROUTER echo over tcp://127.0.0.1, `batch` tasks of
// `payload_bytes` per message, a window of 1024 tasks in flight, for `seconds`.
StatusOr<ProbeResult> ZmqLimit(double seconds, int batch, size_t payload_bytes);

// Put (enqueue) + Delete (ack) pairs per second in WriteBatches of `batch` pairs, in a
// fresh database under `dir`, for `seconds`; `sync` fsyncs every batch (Yard's fsync
// durability), else the WAL is written without fsync (durability none).
StatusOr<ProbeResult> RocksLimit(const std::string& dir, double seconds, int batch,
                                 size_t payload_bytes, bool sync);

// The MQTT broker alone: `yard-devices --raw` with `args` (in `bin_dir`), its own subscriber
// receiving every message; messages per second from the first publish to the last receipt
// (benchmarks/mqtt_ingest.py's "broker alone").
StatusOr<ProbeResult> BrokerLimit(const std::string& bin_dir, std::vector<std::string> args);

}  // namespace yard::bench
