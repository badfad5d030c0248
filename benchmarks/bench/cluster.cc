#include "benchmarks/bench/cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

extern char** environ;

namespace yard::bench {
namespace {

namespace fs = std::filesystem;

// Fields 14 and 15 of /proc/PID/stat (utime, stime), after the command's closing ')'.
std::optional<double> CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return std::nullopt;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return double(utime + stime) / double(sysconf(_SC_CLK_TCK));
}

int ParentOf(const fs::path& stat) {
  std::ifstream f(stat);
  std::string line;
  if (!std::getline(f, line)) return -1;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(line.substr(paren + 2));
  std::string state;
  int ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

std::optional<ProcUsage> ReadUsage(pid_t pid) {
  auto cpu = CpuSeconds(pid);
  if (!cpu) return std::nullopt;
  ProcUsage u;
  u.cpu_s = *cpu;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kb = 0;
  while (f >> key) {
    if (key == "VmRSS:" && f >> kb) u.rss_bytes = kb * 1024;
    if (key == "VmHWM:" && f >> kb) u.peak_rss_bytes = kb * 1024;
  }
  return u;
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (ParentOf(e.path() / "stat") == pid) out.push_back(std::stoi(name));
  }
  return out;
}

StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const ClusterOptions& o) {
  std::unique_ptr<LocalCluster> c(new LocalCluster());
  std::string tmpl = (fs::temp_directory_path() / "yard-bench.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return Unavailable("cannot create a temporary directory");
  c->dir_ = tmpl;
  const std::string ready = c->dir_ + "/ready.json";
  std::vector<std::string> args = {
      o.bin_dir + "/yard-master", "--client-endpoint", "tcp://127.0.0.1:0", "--worker-endpoint",
      "tcp://127.0.0.1:0", "--ready-file", ready, "--log-level", "warn", "--workers",
      std::to_string(o.workers), "--worker-threads", std::to_string(o.worker_threads),
      // The harness bounds what it keeps in flight itself.
      "--max-queued", "50000000"};
  if (o.memory) {
    // Finished tasks are listed after the run for their latencies: keep them all.
    args.insert(args.end(), {"--memory", "--max-finished", "50000000"});
  } else {
    args.insert(args.end(), {"--data-dir", c->dir_ + "/data", "--durability", o.durability});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string log = c->dir_ + "/master.log";
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&c->pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    c->pid_ = -1;
    return Unavailable("cannot start " + args[0] + ": " + std::strerror(rc));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(ready)) {
    int status = 0;
    if (waitpid(c->pid_, &status, WNOHANG) == c->pid_) {
      c->pid_ = -1;
      return Unavailable("yard-master exited at start; its log: " + log);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable("yard-master did not become ready in 30 s; its log: " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream f(ready);
  auto j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("client_endpoint")) {
    return Unavailable("unreadable ready file " + ready);
  }
  c->client_endpoint_ = j["client_endpoint"].get<std::string>();
  return c;
}

Status LocalCluster::Stop() {
  if (pid_ < 0) return Status::Ok();
  kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return Unavailable("yard-master did not stop within 60 s of SIGTERM");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Internal("yard-master ended with status " + std::to_string(status) +
                    "; its log: " + dir_ + "/master.log");
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  return Status::Ok();
}

LocalCluster::~LocalCluster() {
  if (pid_ >= 0) (void)Stop();
}

}  // namespace yard::bench
