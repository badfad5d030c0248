// yard-bench: Yard's benchmark harness. Starts a master with N embedded workers (or targets a
// running master with --master), runs one workload, prints a summary table (or --json), and
// with --compare measures the raw ZeroMQ and RocksDB limits (mqtt: the broker alone) in the
// same run and prints Yard's ratio to each. Exit code 0 when every task (and MQTT message)
// was accounted for as succeeded, 1 when not (or on an error), 2 on a usage error. See
// docs/benchmarks.md.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "benchmarks/bench/cluster.h"
#include "benchmarks/bench/probes.h"
#include "benchmarks/bench/workloads.h"
#include "common/duration.h"

namespace {

using namespace yard;
using namespace yard::bench;
using Json = nlohmann::json;

struct Options {
  std::string master;  // empty: start our own
  int workers = 2;
  int worker_threads = 2;
  std::string durability = "none";
  bool memory = false;
  std::string workload = "throughput";
  uint64_t tasks = 100000;
  uint32_t inflight = 20000;
  uint32_t batch = 1000;
  std::vector<double> rates;
  uint32_t split = 0;
  TaskShape shape;
  bool compare = false;
  double compare_seconds = 3;
  bool json = false;
  bool progress = isatty(2);
  // mqtt
  std::string broker;  // empty: start mosquitto here
  int devices = 100;
  int qos = 1;
  uint32_t mqtt_batch = 1;  // readings per device per task
};

std::string Exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

// A one-line progress bar on stderr, redrawn at most every 100 ms.
class Bar {
 public:
  Bar(bool on, std::string label, std::string unit)
      : on_(on), label_(std::move(label)), unit_(std::move(unit)) {}
  ~Bar() {
    if (on_ && drawn_) std::fprintf(stderr, "\r\033[K");
  }
  void operator()(uint64_t done, uint64_t total) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(100) && done < total) return;
    if (!drawn_) start_ = now;
    last_ = now;
    drawn_ = true;
    const double frac = total == 0 ? 1 : std::min(1.0, double(done) / double(total));
    const double secs = std::chrono::duration<double>(now - start_).count();
    const int width = 30, fill = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r\033[K%s [%s%s] %3.0f%%  %llu/%llu  %.0f %s/s", label_.c_str(),
                 std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), frac * 100,
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                 secs > 0 ? double(done) / secs : 0.0, unit_.c_str());
  }

 private:
  bool on_;
  std::string label_, unit_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string Ms(double us) {
  char b[32];
  if (us < 1000) {
    std::snprintf(b, sizeof(b), "%.0f us", us);
  } else {
    std::snprintf(b, sizeof(b), "%.2f ms", us / 1000);
  }
  return b;
}

std::string Thousands(double v) {
  std::string s = std::to_string(static_cast<long long>(std::llround(v)));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(i, ",");
  return s;
}

// CPU seconds and memory of the master and its workers, between two readings.
struct Usage {
  double master_cpu_s = 0, workers_cpu_s = 0;
  uint64_t master_rss = 0, master_peak_rss = 0;
  uint64_t worker_max_rss = 0;
};
Usage ReadAll(pid_t master) {
  Usage u;
  if (auto m = ReadUsage(master)) {
    u.master_cpu_s = m->cpu_s;
    u.master_rss = m->rss_bytes;
    u.master_peak_rss = m->peak_rss_bytes;
  }
  for (pid_t w : ChildrenOf(master)) {
    if (auto c = ReadUsage(w)) {
      u.workers_cpu_s += c->cpu_s;
      u.worker_max_rss = std::max(u.worker_max_rss, c->rss_bytes);
    }
  }
  return u;
}

Json PhaseJson(const PhaseResult& r, const std::optional<Usage>& used) {
  const auto& l = r.latency;
  Json j = {{"workload", r.name},
            {"tasks", r.tasks},
            {"seconds", r.seconds},
            {"tasks_per_s", r.tasks_per_s},
            {"succeeded", r.succeeded},
            {"not_succeeded", r.not_succeeded},
            {"latency_kind", r.latency_kind},
            {"latency_us",
             {{"count", l.us.size()},
              {"p50", l.Percentile(0.5)},
              {"p90", l.Percentile(0.9)},
              {"p99", l.Percentile(0.99)},
              {"p999", l.Percentile(0.999)},
              {"max", l.us.empty() ? 0.0 : l.us.back()}}}};
  if (r.offered_per_s > 0) j["offered_per_s"] = r.offered_per_s;
  if (r.messages > 0) {
    j["messages"] = r.messages;
    j["messages_per_s"] = r.messages_per_s;
    j["messages_lost"] = r.messages_lost;
  }
  if (used) {
    j["cpu_us_per_task"] = {{"master", used->master_cpu_s * 1e6 / double(r.tasks)},
                            {"workers", used->workers_cpu_s * 1e6 / double(r.tasks)}};
    j["master_rss_bytes"] = used->master_rss;
    j["master_peak_rss_bytes"] = used->master_peak_rss;
  }
  return j;
}

void PrintPhase(const Json& p) {
  std::cout << "\n" << p["workload"].get<std::string>();
  if (p.contains("offered_per_s")) {
    std::cout << " at " << Thousands(p["offered_per_s"].get<double>()) << "/s";
  }
  std::cout << ": " << Thousands(p["tasks"].get<double>()) << " tasks in " << std::fixed
            << std::setprecision(3) << p["seconds"].get<double>() << " s\n";
  if (p.contains("messages")) {
    std::cout << "  messages       " << Thousands(p["messages_per_s"].get<double>()) << " msgs/s ("
              << Thousands(p["messages"].get<double>()) << " published)\n";
  }
  std::cout << "  throughput     " << Thousands(p["tasks_per_s"].get<double>()) << " tasks/s\n";
  const auto& l = p["latency_us"];
  if (l["count"].get<size_t>() > 0) {
    std::cout << "  latency        p50 " << Ms(l["p50"]) << "  p90 " << Ms(l["p90"]) << "  p99 "
              << Ms(l["p99"]) << "  p99.9 " << Ms(l["p999"]) << "  max " << Ms(l["max"]) << "  ("
              << p["latency_kind"].get<std::string>() << ")\n";
  }
  if (p.contains("cpu_us_per_task")) {
    std::cout << "  CPU per task   master " << std::setprecision(1)
              << p["cpu_us_per_task"]["master"].get<double>() << " us, workers "
              << p["cpu_us_per_task"]["workers"].get<double>() << " us\n";
    std::cout << "  master RSS     " << p["master_rss_bytes"].get<uint64_t>() / (1 << 20)
              << " MiB (peak " << p["master_peak_rss_bytes"].get<uint64_t>() / (1 << 20)
              << " MiB)\n";
  }
  const bool fill = p["workload"] == "fill";
  std::cout << "  accounted      " << p["succeeded"].get<uint64_t>() << " of "
            << p["tasks"].get<uint64_t>() << (fill ? " queued" : " succeeded");
  if (p["not_succeeded"].get<uint64_t>() > 0) {
    std::cout << ", " << p["not_succeeded"].get<uint64_t>() << " NOT";
  }
  if (p.value("messages_lost", uint64_t{0}) > 0) {
    std::cout << ", " << p["messages_lost"].get<uint64_t>() << " messages never became tasks";
  }
  std::cout << "\n";
}

// yard-devices' load for the mqtt workload: --tasks messages from --devices devices.
std::vector<std::string> DevicesArgs(const Options& o, const std::string& broker) {
  return {"--broker",        broker,
          "--devices",       std::to_string(o.devices),
          "--count",         std::to_string(o.tasks / static_cast<uint64_t>(o.devices)),
          "--qos",           std::to_string(o.qos),
          "--payload-bytes", std::to_string(o.shape.payload_bytes)};
}

// The mqtt role of the master started here: telemetry -> one echo task per message, or
// --mqtt-batch readings of a device -> one telemetry.stats task (as mqtt_ingest.py does).
std::string MqttConfig(const Options& o, const std::string& broker) {
  std::ostringstream c;
  c << "[mqtt]\nbrokers = [\"" << broker << "\"]\nqos = " << o.qos << "\n";
  c << "client_id = \"yard-bench-" << getpid() << "\"\n";
  c << "pause_above = " << 10 * o.tasks << "\n";  // never pause: measure ingest, not backpressure
  c << "[[mqtt.rules]]\ntopic = \"telemetry/#\"\n";
  if (o.mqtt_batch > 1) {
    c << "type = \"telemetry.stats\"\nbatch_count = " << o.mqtt_batch
      << "\nbatch_window = \"1s\"\n";
  } else {
    c << "type = \"echo\"\nformat = \"raw\"\n";
  }
  return c.str();
}

int Run(const Options& o) {
  Json out = {{"workload", o.workload},
              {"handler", o.shape.handler},
              {"payload_bytes", o.shape.payload_bytes},
              {"keys", o.shape.keys}};
  const MachineFacts machine = ReadMachineFacts();
  out["machine"] = {{"cpus", machine.cpus}, {"cpu_model", machine.cpu_model}};
  if (machine.guest_halt_poll_ns)
    out["machine"]["guest_halt_poll_ns"] = *machine.guest_halt_poll_ns;
  const bool mqtt = o.workload == "mqtt";
  std::unique_ptr<LocalBroker> broker;
  std::string broker_url = o.broker;
  std::optional<StatusOr<ProbeResult>> broker_limit;
  if (mqtt) {
    if (broker_url.empty()) {
      auto b = LocalBroker::Start();
      if (!b.ok()) {
        std::cerr << "yard-bench: " << b.status().ToString() << "\n";
        return 1;
      }
      broker = std::move(*b);
      broker_url = broker->url();
    }
    // The broker alone, before Yard's master subscribes to it.
    if (o.compare) broker_limit = BrokerLimit(Exe(), DevicesArgs(o, broker_url));
    out["handler"] = !o.master.empty()  ? "the master's rules"
                     : o.mqtt_batch > 1 ? "telemetry.stats"
                                        : "echo";
    out["mqtt"] = {{"broker", broker_url},
                   {"broker_started", broker != nullptr},
                   {"devices", o.devices},
                   {"qos", o.qos},
                   {"readings_per_task", o.mqtt_batch}};
  }
  std::unique_ptr<LocalCluster> cluster;
  std::string endpoint = o.master;
  if (endpoint.empty()) {
    ClusterOptions co;
    co.bin_dir = Exe();
    co.workers = o.workload == "fill" ? 0 : o.workers;
    co.worker_threads = o.worker_threads;
    co.memory = o.memory;
    co.durability = o.durability;
    if (mqtt) co.config = MqttConfig(o, broker_url);
    auto c = LocalCluster::Start(co);
    if (!c.ok()) {
      std::cerr << "yard-bench: " << c.status().ToString() << "\n";
      return 1;
    }
    cluster = std::move(*c);
    endpoint = cluster->client_endpoint();
    out["master"] = {{"started", true},
                     {"workers", co.workers},
                     {"worker_threads", o.worker_threads},
                     {"state", o.memory ? "memory" : o.durability}};
  } else {
    out["master"] = {{"started", false}, {"endpoint", endpoint}};
  }
  transport::Context ctx;
  auto driver = Driver::Connect(ctx, endpoint);
  if (!driver.ok()) {
    std::cerr << "yard-bench: " << driver.status().ToString() << "\n";
    return 1;
  }
  if (cluster && o.workload != "fill") {
    if (auto st = (*driver)->WaitForWorkers(o.workers); !st.ok()) {
      std::cerr << "yard-bench: " << st.ToString() << "\n";
      return 1;
    }
  }
  if (cluster) {  // idle: started, workers connected, nothing submitted yet
    const Usage idle = ReadAll(cluster->master_pid());
    out["idle_rss_bytes"] = {{"master", idle.master_rss}, {"worker_max", idle.worker_max_rss}};
  }
  Json phases = Json::array();
  bool all_ok = true;
  auto run_phase = [&](const std::string& label, auto&& fn) -> bool {
    const std::optional<Usage> before =
        cluster ? std::optional(ReadAll(cluster->master_pid())) : std::nullopt;
    Bar bar(o.progress, label, mqtt ? "msgs" : "tasks");
    StatusOr<PhaseResult> r = fn(bar);
    if (!r.ok()) {
      std::cerr << "\nyard-bench: " << label << ": " << r.status().ToString() << "\n";
      return false;
    }
    std::optional<Usage> used;
    if (before) {
      Usage after = ReadAll(cluster->master_pid());
      after.master_cpu_s -= before->master_cpu_s;
      after.workers_cpu_s -= before->workers_cpu_s;
      used = after;
    }
    phases.push_back(PhaseJson(*r, used));
    all_ok = all_ok && r->not_succeeded == 0 && r->succeeded == r->tasks && r->messages_lost == 0;
    return true;
  };
  Driver& d = **driver;
  // Big payloads: SUBMITs within the harness' limit, and at most 256 MiB in flight.
  const auto batch = std::min(o.batch, MaxTasksPerSubmit(o.shape));
  const auto inflight = static_cast<uint32_t>(std::min<size_t>(
      o.inflight,
      std::max<size_t>(batch, (256u << 20) / std::max<size_t>(1, o.shape.payload_bytes))));
  if (!mqtt) {
    out["batch"] = batch;
    out["inflight"] = inflight;
  }
  bool ran = true;
  if (o.workload == "throughput") {
    ran = run_phase("closed loop", [&](Bar& bar) {
      return d.ClosedLoop(o.tasks, inflight, batch, o.shape, std::ref(bar));
    });
  } else if (o.workload == "rate") {
    for (double rate : o.rates) {
      ran = ran && run_phase("open loop " + Thousands(rate) + "/s", [&](Bar& bar) {
              return d.OpenLoop(o.tasks, rate, o.shape, std::ref(bar));
            });
    }
  } else if (o.workload == "latency") {
    ran = run_phase("one at a time",
                    [&](Bar& bar) { return d.OneAtATime(o.tasks, o.shape, std::ref(bar)); });
  } else if (o.workload == "fill") {
    ran =
        run_phase("fill", [&](Bar& bar) { return d.Fill(o.tasks, batch, o.shape, std::ref(bar)); });
  } else if (mqtt) {
    DevicesRun devices(Exe(), DevicesArgs(o, broker_url));
    ran = run_phase("mqtt ingest",
                    [&](Bar& bar) { return d.Ingest(o.tasks, devices, std::ref(bar)); });
  } else {  // jobs
    const uint64_t jobs = std::max<uint64_t>(1, o.tasks / o.split);
    ran =
        run_phase("jobs", [&](Bar& bar) { return d.Jobs(jobs, o.split, o.shape, std::ref(bar)); });
  }
  out["phases"] = phases;

  if (cluster) {
    const auto idle = ReadUsage(cluster->master_pid());
    if (idle) out["master_rss_after_bytes"] = idle->rss_bytes;
  }
  if (o.compare && ran) {
    Json limits = Json::array();
    auto add = [&](StatusOr<ProbeResult> p) {
      if (!p.ok()) {
        std::cerr << "yard-bench: " << p.status().ToString() << "\n";
        return;
      }
      Json l = {{"name", p->name}, {"per_second", p->per_second}, {"seconds", p->seconds}};
      if (!phases.empty()) {  // mqtt: messages against messages
        const auto& last = phases.back();
        l["yard_ratio"] =
            last.value("messages_per_s", last["tasks_per_s"].get<double>()) / p->per_second;
      }
      limits.push_back(l);
    };
    if (mqtt) {
      add(std::move(*broker_limit));
    } else {
      add(ZmqLimit(o.compare_seconds, 64, o.shape.payload_bytes));
    }
    if (!mqtt && !o.memory && o.master.empty()) {
      const std::string dir = (std::filesystem::temp_directory_path() /
                               ("yard-bench-rocks." + std::to_string(getpid())))
                                  .string();
      add(RocksLimit(dir, o.compare_seconds, 64, o.shape.payload_bytes, o.durability == "fsync"));
    }
    out["limits"] = limits;
  }
  if (cluster) {
    if (auto st = cluster->Stop(); !st.ok()) {
      std::cerr << "yard-bench: " << st.ToString() << "\n";
      return 1;
    }
  }
  out["ok"] = ran && all_ok;
  if (o.json) {
    std::cout << out.dump(1) << "\n";
  } else {
    std::cout << "yard-bench: " << o.workload << ", handler " << out["handler"].get<std::string>()
              << ", " << o.shape.payload_bytes << (mqtt ? " B messages" : " B payloads");
    if (o.shape.keys) std::cout << ", " << o.shape.keys << " keys";
    if (mqtt) {
      std::cout << "; " << o.devices << " devices at QoS " << o.qos;
      if (o.master.empty() && o.mqtt_batch > 1) {
        std::cout << ", " << o.mqtt_batch << " readings per task";
      }
      std::cout << "; broker " << broker_url << (broker ? " (mosquitto started here)" : "");
    }
    if (cluster) {
      std::cout << "; master + " << out["master"]["workers"].get<int>() << " workers x "
                << o.worker_threads << " threads, state " << (o.memory ? "memory" : o.durability);
    } else {
      std::cout << "; master at " << endpoint;
    }
    std::cout << "\n";
    std::cout << "machine: " << machine.cpus << " CPUs"
              << (machine.cpu_model.empty() ? "" : ", " + machine.cpu_model);
    if (machine.guest_halt_poll_ns) {
      std::cout << "; guest halt-polling " << *machine.guest_halt_poll_ns << " ns";
    }
    std::cout << "\n";
    if (out.contains("idle_rss_bytes")) {
      std::cout << "idle RSS: master "
                << out["idle_rss_bytes"]["master"].get<uint64_t>() / (1 << 20)
                << " MiB, largest worker "
                << out["idle_rss_bytes"]["worker_max"].get<uint64_t>() / (1 << 20) << " MiB\n";
    }
    for (const auto& p : phases) PrintPhase(p);
    if (out.contains("limits")) {
      std::cout << "\nlimits measured in the same run:\n";
      for (const auto& l : out["limits"]) {
        std::cout << "  " << l["name"].get<std::string>() << ": "
                  << Thousands(l["per_second"].get<double>()) << "/s";
        if (l.contains("yard_ratio")) {
          std::cout << "  (Yard: " << std::setprecision(3) << l["yard_ratio"].get<double>()
                    << " of it)";
        }
        std::cout << "\n";
      }
    }
  }
  if (!ran) return 1;
  if (!all_ok) {
    std::cerr << "yard-bench: not every task" << (mqtt ? " (and message)" : "")
              << " was accounted for as succeeded\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"yard-bench: Yard's benchmark harness (docs/benchmarks.md)"};
  app.add_option("--master", o.master,
                 "benchmark the master at this client endpoint instead of starting one");
  app.add_option("--workers", o.workers, "embedded workers of the master started here")
      ->check(CLI::Range(1, 256));
  app.add_option("--worker-threads", o.worker_threads, "executor threads per worker")
      ->check(CLI::Range(1, 256));
  app.add_option("--durability", o.durability, "state durability of the master started here")
      ->check(CLI::IsMember({"none", "interval", "fsync"}));
  app.add_flag("--memory", o.memory, "the master started here keeps state in memory only");
  app.add_option("--workload", o.workload,
                 "throughput (closed loop), rate (open loop at --rate), latency (one at a "
                 "time), jobs (--split), fill (queue --tasks on a master without workers), "
                 "mqtt (yard-devices publishes telemetry, the master's mqtt role ingests it)")
      ->check(CLI::IsMember({"throughput", "rate", "latency", "jobs", "fill", "mqtt"}));
  app.add_option("--tasks", o.tasks, "tasks per phase (parts, for jobs; messages, for mqtt)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  app.add_option("--inflight", o.inflight,
                 "throughput: most tasks submitted and not ended (and at most 256 MiB of payloads)")
      ->check(CLI::Range(1u, 10000000u));
  app.add_option("--batch", o.batch,
                 "throughput, fill: tasks per SUBMIT (and at most 4 MiB of payloads)")
      ->check(CLI::Range(1u, 100000u));
  app.add_option("--rate", o.rates,
                 "rate: tasks per second, one phase each (e.g. --rate 10000,50000)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--split", o.split, "jobs: parts per job")->check(CLI::Range(1u, 100000u));
  app.add_option("--handler", o.shape.handler, "echo (no-op) or cpu (real work)")
      ->check(CLI::IsMember({"echo", "cpu"}));
  app.add_option("--payload-bytes", o.shape.payload_bytes, "echo payload size (mqtt: message size)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 20));
  app.add_option("--cpu-iterations", o.shape.cpu_iterations, "cpu handler: iterations per task")
      ->check(CLI::Range(1u, 100000000u));
  app.add_option("--keys", o.shape.keys, "spread tasks over this many keys (per-key order)");
  app.add_option("--broker", o.broker,
                 "mqtt: a running MQTT broker (tcp://host:port) instead of a mosquitto started "
                 "here; needed with --master: the broker its mqtt role is subscribed to");
  app.add_option("--devices", o.devices, "mqtt: simulated devices (--tasks is a multiple)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--qos", o.qos, "mqtt: QoS of the publishes and of the master's subscription")
      ->check(CLI::Range(0, 1));
  app.add_option("--mqtt-batch", o.mqtt_batch,
                 "mqtt: readings of a device per task (1: an echo task per message; more: "
                 "telemetry.stats tasks, as benchmarks/mqtt_ingest.py batches)")
      ->check(CLI::Range(1u, 100000u));
  app.add_flag("--compare", o.compare,
               "measure the raw ZeroMQ and RocksDB limits (mqtt: the broker alone) in the same "
               "run");
  app.add_option("--compare-seconds", o.compare_seconds, "seconds per limit probe")
      ->check(CLI::Range(0.1, 60.0));
  app.add_flag("--json", o.json, "print one JSON object on stdout");
  app.add_flag("--progress,!--no-progress", o.progress,
               "draw a progress bar on stderr (default: when stderr is a terminal)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (o.workload == "rate" && o.rates.empty()) {
    std::cerr << "yard-bench: --workload rate needs --rate\n";
    return 2;
  }
  if (o.workload == "jobs" && o.split == 0) {
    std::cerr << "yard-bench: --workload jobs needs --split\n";
    return 2;
  }
  if (o.workload == "mqtt" && !o.master.empty() && o.broker.empty()) {
    std::cerr << "yard-bench: --workload mqtt with --master needs --broker: the broker that "
                 "master's mqtt role is subscribed to\n";
    return 2;
  }
  if (o.workload == "mqtt" && !o.master.empty() && o.compare) {
    std::cerr << "yard-bench: --workload mqtt with --master takes no --compare: the broker "
                 "probe's messages would reach that master's mqtt role too\n";
    return 2;
  }
  if (o.workload == "mqtt" && o.tasks % static_cast<uint64_t>(o.devices) != 0) {
    std::cerr << "yard-bench: --workload mqtt: --tasks (messages) must be a multiple of "
                 "--devices\n";
    return 2;
  }
  if (o.memory && o.durability != "none") {
    std::cerr << "yard-bench: --memory and --durability exclude each other\n";
    return 2;
  }
  return Run(o);
}
