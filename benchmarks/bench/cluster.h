// yard-bench's own Yard: a yard-master with N embedded workers started in a temporary
// directory on free ports, and the CPU time and memory of its processes read from /proc. For
// the mqtt workload also a mosquitto broker and runs of yard-devices, the device simulator.
#pragma once

#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace yard::bench {

struct ClusterOptions {
  std::string bin_dir;  // where yard-master and yard-worker are
  int workers = 2;
  int worker_threads = 2;
  bool memory = false;
  std::string durability = "none";  // with !memory: fsync, interval or none
  std::string config;               // non-empty: a TOML config for the master (--config)
};

// CPU seconds (user + system) and memory of one process.
struct ProcUsage {
  double cpu_s = 0;
  uint64_t rss_bytes = 0;
  uint64_t peak_rss_bytes = 0;
};
std::optional<ProcUsage> ReadUsage(pid_t pid);
// The processes whose parent is `pid` (the master's embedded workers).
std::vector<pid_t> ChildrenOf(pid_t pid);

// What a figure depends on besides Yard: the CPUs, and on a VM whether an idle vCPU polls
// before it halts (cpuidle-haltpoll), which sets the cost of every thread wake-up
// (docs/benchmarks.md, the one-at-a-time round trip).
struct MachineFacts {
  unsigned cpus = 0;
  std::string cpu_model;                       // empty if /proc/cpuinfo does not say
  std::optional<uint64_t> guest_halt_poll_ns;  // absent without the haltpoll driver
};
MachineFacts ReadMachineFacts();

class LocalCluster {
 public:
  static StatusOr<std::unique_ptr<LocalCluster>> Start(const ClusterOptions& options);
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // SIGTERM, then waits (up to 60 s); an error unless the master exited 0.
  Status Stop();

  const std::string& client_endpoint() const { return client_endpoint_; }
  pid_t master_pid() const { return pid_; }
  const std::string& dir() const { return dir_; }

 private:
  LocalCluster() = default;
  std::string dir_;
  std::string client_endpoint_;
  pid_t pid_ = -1;
};

// mosquitto (from PATH or /usr/sbin) on a free loopback port, configured in a temporary
// directory as benchmarks/mqtt_ingest.py does. Stopped (SIGTERM) when destroyed.
class LocalBroker {
 public:
  static StatusOr<std::unique_ptr<LocalBroker>> Start();
  ~LocalBroker();
  LocalBroker(const LocalBroker&) = delete;
  LocalBroker& operator=(const LocalBroker&) = delete;

  const std::string& url() const { return url_; }  // tcp://127.0.0.1:PORT

 private:
  LocalBroker() = default;
  std::string dir_;
  std::string url_;
  pid_t pid_ = -1;
};

// One run of yard-devices (next to yard-bench) with --json; its output goes to files in a
// temporary directory. Ended (SIGTERM) when destroyed while it runs.
class DevicesRun {
 public:
  DevicesRun(std::string bin_dir, std::vector<std::string> args);
  ~DevicesRun();
  DevicesRun(const DevicesRun&) = delete;
  DevicesRun& operator=(const DevicesRun&) = delete;

  Status Start();
  // nullopt while it runs; then its JSON summary, or an error with its exit code and stderr.
  std::optional<StatusOr<nlohmann::json>> Poll();
  // Start(), then Poll() until it ends.
  StatusOr<nlohmann::json> Run();

 private:
  std::string bin_dir_;
  std::vector<std::string> args_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace yard::bench
