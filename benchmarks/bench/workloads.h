// yard-bench's workloads against one master's client port. Each submits tasks through
// ClientMasterApi (asynchronous, pipelined: several SUBMITs in flight), follows completion
// through the master's counters, and afterwards lists every task it submitted to account
// for it and to read its latency.
//
// Latency is the master's own submit-to-end time of each task (finished_us - submitted_us,
// both taken by the master), except in the one-at-a-time workload, which times the client's
// round trip (submit sent -> result known) with a monotonic clock.
//
// The MQTT ingest workload submits nothing itself: yard-devices publishes telemetry, the
// master's mqtt role makes tasks of it, and the same counters and listing account for them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/transport/socket.h"

namespace yard::bench {

class DevicesRun;  // cluster.h

struct TaskShape {
  std::string handler = "echo";    // echo (no-op) or cpu
  size_t payload_bytes = 100;      // echo
  uint32_t cpu_iterations = 1000;  // cpu
  uint32_t keys = 0;               // > 0: task i gets key "k<i % keys>" (per-key order)
};

// Most tasks of this shape per SUBMIT: 4 MiB of payloads, well under the master's message
// limit (a bigger SUBMIT would be dropped).
uint32_t MaxTasksPerSubmit(const TaskShape& shape);

struct Latencies {
  std::vector<double> us;  // one per task (or job), sorted ascending
  double Percentile(double q) const;
};

struct PhaseResult {
  std::string name;    // "closed loop", "open loop", "one at a time", "jobs", "mqtt ingest"
  uint64_t tasks = 0;  // tasks (parts, for jobs) that had to end
  double seconds = 0;  // first submit (mqtt: publish) to last task ended
  double tasks_per_s = 0;
  double offered_per_s = 0;  // open loop: the rate asked for
  Latencies latency;         // see the file comment
  std::string latency_kind;  // "master submit-to-end" or "client round trip"
  uint64_t succeeded = 0;    // accounted for by listing them after the run (fill: queued)
  uint64_t not_succeeded = 0;
  uint64_t messages = 0;       // mqtt: messages the broker accepted from yard-devices
  uint64_t messages_lost = 0;  // mqtt: of those, never committed as (part of) a task
  double messages_per_s = 0;   // mqtt: messages committed / seconds
};

// Progress of a phase, for the bar: (done, total).
using Progress = std::function<void(uint64_t done, uint64_t total)>;

class Driver {
 public:
  static StatusOr<std::unique_ptr<Driver>> Connect(transport::Context& ctx,
                                                   const std::string& endpoint);
  ~Driver();

  // Waits until `workers` workers are connected (30 s at most).
  Status WaitForWorkers(int workers);

  // Keeps up to `inflight` tasks submitted and not ended, in SUBMITs of `batch`, until
  // `tasks` tasks have ended.
  StatusOr<PhaseResult> ClosedLoop(uint64_t tasks, uint32_t inflight, uint32_t batch,
                                   const TaskShape& shape, const Progress& progress);
  // Submits `tasks` tasks at `rate` per second (a SUBMIT every millisecond with what is
  // due), whatever the master's pace, then waits for them to end.
  StatusOr<PhaseResult> OpenLoop(uint64_t tasks, double rate, const TaskShape& shape,
                                 const Progress& progress);
  // One task at a time: submit, wait for its result, next; `tasks` round trips after 100
  // unmeasured ones.
  StatusOr<PhaseResult> OneAtATime(uint64_t tasks, const TaskShape& shape,
                                   const Progress& progress);
  // `jobs` jobs of `parts` parts each (split range:1..parts, aggregate count), up to 8
  // jobs in flight. Latency is each job's submit-to-end at the master.
  StatusOr<PhaseResult> Jobs(uint64_t jobs, uint32_t parts, const TaskShape& shape,
                             const Progress& progress);

  // Submits `tasks` tasks to a master with no workers and checks that the queue grew by as
  // many: what the master holds (memory) with that many queued. Throughput is the submit rate.
  StatusOr<PhaseResult> Fill(uint64_t tasks, uint32_t batch, const TaskShape& shape,
                             const Progress& progress);

  // MQTT ingest of `messages` telemetry messages: waits (30 s at most) for the master's mqtt
  // role to be connected, starts `devices` and follows the role's counters until every
  // message the broker accepted is committed and every task made of them has ended, then
  // lists those tasks: the ids after the highest before the run, so the master must run
  // nothing else meanwhile. Timed from the first publish (yard-devices' t0_us) to the last
  // change seen. Messages never committed (QoS 0 may lose them) are counted after 10 s
  // without progress; tasks not ended after 10 s without progress are an error.
  StatusOr<PhaseResult> Ingest(uint64_t messages, DevicesRun& devices, const Progress& progress);

  StatusOr<std::map<std::string, uint64_t>> Stats();

 private:
  struct Impl;
  explicit Driver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace yard::bench
