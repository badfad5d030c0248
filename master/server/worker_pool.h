// WorkerPool: the embedded yard-worker processes of standalone mode (--workers N). Each child
// is restarted with back-off if it dies, gets SIGTERM when the master stops, and dies with the
// master (PR_SET_PDEATHSIG) if the master is killed. Owned by the server's loop thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace yard::server {

class WorkerPool {
 public:
  // `argv` is the full command line of one worker (argv[0] is the binary path).
  WorkerPool(std::vector<std::string> argv, uint32_t count);
  ~WorkerPool();

  // The default worker binary: yard-worker in the directory of this executable.
  static std::string DefaultBinary();

  Status Start(Micros now);
  // Reaps exited children and restarts them once their back-off has passed.
  void Supervise(Micros now);
  // Sends SIGTERM to every child (they drain and exit).
  void Terminate();
  // Reaps children that exited; true once none is left running.
  bool AllExited();
  // SIGKILLs whatever is still running and reaps it.
  void Kill();
  size_t restarts() const { return restarts_; }

 private:
  struct Child {
    pid_t pid = -1;
    Micros restart_at = 0;
    Micros backoff = 0;
    Micros started_at = 0;
  };
  Status Spawn(Child& c, Micros now);

  std::vector<std::string> argv_;
  std::vector<Child> children_;
  bool stopping_ = false;
  size_t restarts_ = 0;
};

}  // namespace yard::server
