#include "benchmarks/bench/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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

StatusOr<std::string> MakeTempDir(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / (name + ".XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) {
    return Unavailable(std::string("cannot create a temporary directory: ") + std::strerror(errno));
  }
  return tmpl;
}

// Starts `args` with its stdout and stderr written to the files `out` and `err`.
StatusOr<pid_t> Spawn(std::vector<std::string> args, const std::string& out,
                      const std::string& err) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Unavailable("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

// SIGTERM, then SIGKILL after `grace`: the wait status, or nullopt when it had to be killed.
std::optional<int> Terminate(pid_t pid, std::chrono::seconds grace) {
  kill(pid, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

// A loopback TCP port nobody listens on now (it may be taken before it is used).
StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const std::string why = ok ? "" : std::strerror(errno);
  if (fd >= 0) close(fd);
  if (!ok) return Unavailable("no free loopback port: " + why);
  return ntohs(a.sin_port);
}

bool Accepting(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

// mosquitto in PATH, else where Debian puts it (/usr/sbin is not in every user's PATH).
std::string FindMosquitto() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(std::string(path ? path : "") + ":/usr/sbin:/usr/local/sbin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string exe = (dir.empty() ? "." : dir) + "/mosquitto";
    if (access(exe.c_str(), X_OK) == 0) return exe;
  }
  return "";
}

// Polls `ready` every 20 ms until it holds: an error if `pid` exits first (then -1) or
// `timeout` passes. `what` names the process, whose log is at `log`.
Status AwaitReady(pid_t& pid, const std::string& what, std::chrono::seconds timeout,
                  const std::function<bool()>& ready, const std::string& log) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready()) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return Unavailable(what + " exited at start; its log: " + log);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Unavailable(what + " was not ready within " + std::to_string(timeout.count()) +
                         " s; its log: " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Ok();
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
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

MachineFacts ReadMachineFacts() {
  MachineFacts m;
  m.cpus = std::thread::hardware_concurrency();
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      m.cpu_model = line.substr(line.find(':') + 1);
      m.cpu_model.erase(0, m.cpu_model.find_first_not_of(' '));
      break;
    }
  }
  const std::string poll = ReadFile("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
  if (!poll.empty() && poll.find_first_not_of("0123456789") == std::string::npos) {
    m.guest_halt_poll_ns = std::stoull(poll);
  }
  return m;
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
  ASSIGN_OR_RETURN(c->dir_, MakeTempDir("yard-bench"));
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
  if (!o.config.empty()) {
    const std::string conf = c->dir_ + "/master.toml";
    std::ofstream(conf) << o.config;
    args.insert(args.end(), {"--config", conf});
  }
  const std::string log = c->dir_ + "/master.log";
  ASSIGN_OR_RETURN(c->pid_, Spawn(args, "/dev/null", log));
  RETURN_IF_ERROR(AwaitReady(
      c->pid_, "yard-master", std::chrono::seconds(30), [&] { return fs::exists(ready); }, log));
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
  const auto status = Terminate(pid_, std::chrono::seconds(60));
  pid_ = -1;
  if (!status) return Unavailable("yard-master did not stop within 60 s of SIGTERM");
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return Internal("yard-master ended with status " + std::to_string(*status) +
                    "; its log: " + dir_ + "/master.log");
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
  return Status::Ok();
}

LocalCluster::~LocalCluster() {
  if (pid_ >= 0) (void)Stop();
}

StatusOr<std::unique_ptr<LocalBroker>> LocalBroker::Start() {
  const std::string exe = FindMosquitto();
  if (exe.empty()) {
    return NotFound(
        "mosquitto not found (in PATH, /usr/sbin or /usr/local/sbin): install it (Debian: "
        "apt install mosquitto) or give a running broker with --broker URL");
  }
  std::unique_ptr<LocalBroker> b(new LocalBroker());
  ASSIGN_OR_RETURN(b->dir_, MakeTempDir("yard-bench-mqtt"));
  ASSIGN_OR_RETURN(const int port, FreePort());
  const std::string conf = b->dir_ + "/mosquitto.conf", log = b->dir_ + "/mosquitto.log";
  // A raw --compare subscriber at QoS 1 needs far more than mosquitto's default queue of
  // 1,000 messages per subscriber.
  std::ofstream(conf) << "listener " << port << " 127.0.0.1\n"
                      << "allow_anonymous true\nmax_queued_messages 10000000\n"
                         "max_inflight_messages 1000\nset_tcp_nodelay true\n";
  ASSIGN_OR_RETURN(b->pid_, Spawn({exe, "-c", conf}, "/dev/null", log));
  const Status started = AwaitReady(
      b->pid_, exe + " (port " + std::to_string(port) + ")", std::chrono::seconds(10),
      [&] { return Accepting(port); }, log);
  if (!started.ok()) {
    if (b->pid_ >= 0) (void)Terminate(b->pid_, std::chrono::seconds(5));
    b->pid_ = -1;  // the directory stays, with the log
    return started;
  }
  b->url_ = "tcp://127.0.0.1:" + std::to_string(port);
  return b;
}

LocalBroker::~LocalBroker() {
  if (pid_ < 0) return;
  (void)Terminate(pid_, std::chrono::seconds(10));
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

DevicesRun::DevicesRun(std::string bin_dir, std::vector<std::string> args)
    : bin_dir_(std::move(bin_dir)), args_(std::move(args)) {}

DevicesRun::~DevicesRun() {
  if (pid_ >= 0) (void)Terminate(pid_, std::chrono::seconds(5));
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

Status DevicesRun::Start() {
  ASSIGN_OR_RETURN(dir_, MakeTempDir("yard-bench-devices"));
  std::vector<std::string> args = {bin_dir_ + "/yard-devices", "--json"};
  args.insert(args.end(), args_.begin(), args_.end());
  ASSIGN_OR_RETURN(pid_, Spawn(args, dir_ + "/stdout", dir_ + "/stderr"));
  return Status::Ok();
}

std::optional<StatusOr<nlohmann::json>> DevicesRun::Poll() {
  if (pid_ < 0) return FailedPrecondition("yard-devices is not running");
  int status = 0;
  const pid_t rc = waitpid(pid_, &status, WNOHANG);
  if (rc == 0) return std::nullopt;
  pid_ = -1;
  if (rc < 0) return Internal(std::string("waiting for yard-devices: ") + std::strerror(errno));
  const std::string out = ReadFile(dir_ + "/stdout"), err = ReadFile(dir_ + "/stderr");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status)
                                ? "exited with code " + std::to_string(WEXITSTATUS(status))
                                : "was killed by signal " + std::to_string(WTERMSIG(status));
    return Unavailable("yard-devices " + how + (err.empty() ? "" : ":\n" + err));
  }
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Internal("yard-devices printed no JSON summary: " + out);
  }
  return j;
}

StatusOr<nlohmann::json> DevicesRun::Run() {
  RETURN_IF_ERROR(Start());
  while (true) {
    if (auto r = Poll()) return std::move(*r);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace yard::bench
