// yard-bench's own Yard: a yard-master with N embedded workers started in a temporary
// directory on free ports, and the CPU time and memory of its processes read from /proc.
#pragma once

#include <sys/types.h>

#include <memory>
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

}  // namespace yard::bench
