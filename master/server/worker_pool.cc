#include "master/server/worker_pool.h"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

namespace yard::server {
namespace {
constexpr Micros kFirstBackoff = 200 * kMillis;
constexpr Micros kMaxBackoff = 10 * kSeconds;
// A child that ran this long before dying is healthy again: its back-off starts over.
constexpr Micros kHealthyAfter = 30 * kSeconds;
}  // namespace

WorkerPool::WorkerPool(std::vector<std::string> argv, uint32_t count)
    : argv_(std::move(argv)), children_(count) {}

WorkerPool::~WorkerPool() { Kill(); }

std::string WorkerPool::DefaultBinary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "yard-worker";
  return (self.parent_path() / "yard-worker").string();
}

Status WorkerPool::Start(Micros now) {
  if (access(argv_[0].c_str(), X_OK) != 0) {
    return FailedPrecondition("worker binary " + argv_[0] + " is not executable (--worker-binary)");
  }
  for (auto& c : children_) RETURN_IF_ERROR(Spawn(c, now));
  return Status::Ok();
}

Status WorkerPool::Spawn(Child& c, Micros now) {
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(a.data());
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    execv(args[0], args.data());
    _exit(127);
  }
  c.pid = pid;
  c.started_at = now;
  spdlog::info("started embedded worker pid {}", pid);
  return Status::Ok();
}

void WorkerPool::Supervise(Micros now) {
  for (auto& c : children_) {
    if (c.pid > 0) {
      int status = 0;
      if (waitpid(c.pid, &status, WNOHANG) != c.pid) continue;
      if (WIFSIGNALED(status)) {
        spdlog::warn("embedded worker pid {} died of signal {}", c.pid, WTERMSIG(status));
      } else {
        spdlog::warn("embedded worker pid {} exited with code {}", c.pid, WEXITSTATUS(status));
      }
      c.pid = -1;
      if (stopping_) continue;
      c.backoff = (now - c.started_at > kHealthyAfter)
                      ? kFirstBackoff
                      : std::clamp(c.backoff * 2, kFirstBackoff, kMaxBackoff);
      c.restart_at = now + c.backoff;
    }
    if (c.pid < 0 && !stopping_ && now >= c.restart_at) {
      ++restarts_;
      if (Status st = Spawn(c, now); !st.ok()) {
        spdlog::error("restarting embedded worker: {}", st.ToString());
        c.restart_at = now + kMaxBackoff;
      }
    }
  }
}

void WorkerPool::Terminate() {
  stopping_ = true;
  for (auto& c : children_) {
    if (c.pid > 0) kill(c.pid, SIGTERM);
  }
}

bool WorkerPool::AllExited() {
  bool all = true;
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    int status = 0;
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.pid = -1;
    } else {
      all = false;
    }
  }
  return all;
}

void WorkerPool::Kill() {
  stopping_ = true;
  for (auto& c : children_) {
    if (c.pid <= 0) continue;
    kill(c.pid, SIGKILL);
    waitpid(c.pid, nullptr, 0);
    c.pid = -1;
  }
}

}  // namespace yard::server
