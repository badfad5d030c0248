// yard: the command-line client. Human-readable output by default, --json for scripts.
// Exit codes: 0 ok; 1 the task failed or the master refused the request; 2 usage error;
// 3 master unreachable or no answer in time.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/client.h"
#include "common/duration.h"

namespace {

using yard::Micros;
using yard::Status;
using yard::StatusCode;
using yard::cli::Client;
using yard::protocol::TaskInfo;
using yard::protocol::TaskState;
using Json = nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr size_t kSubmitBatch = 1000;
constexpr size_t kSubmitBatchBytes = 4u << 20;  // well under the master's message limit
constexpr Micros kWaitSlice = 30 * yard::kSeconds;

struct Globals {
  std::string master;
  bool json = false;
  std::string connect_timeout = "5s";
};

int ExitFor(const Status& st) {
  if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kDeadlineExceeded) {
    return kExitUnreachable;
  }
  return kExitFailed;
}

int Fail(const Status& st) {
  std::cerr << "yard: " << st.message() << " (" << yard::StatusCodeName(st.code()) << ")\n";
  return ExitFor(st);
}

bool IsUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t extra = c < 0x80           ? 0
                         : (c >> 5) == 0x6  ? 1
                         : (c >> 4) == 0xE  ? 2
                         : (c >> 3) == 0x1E ? 3
                                            : 4;
    if (extra == 4 || i + extra >= s.size()) return false;  // bad lead byte or cut short
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string Base64(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], kTable[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], '='};
  }
  return out;
}

// Bytes as a JSON field: text when it is UTF-8, else "<name>_base64".
void PutBytes(Json& j, const std::string& name, const std::string& bytes) {
  if (IsUtf8(bytes)) {
    j[name] = bytes;
  } else {
    j[name + "_base64"] = Base64(bytes);
  }
}

// Bytes for a terminal: as they are when UTF-8, else their size.
std::string Printable(const std::string& bytes) {
  return IsUtf8(bytes) ? bytes : "(" + std::to_string(bytes.size()) + " bytes of binary)";
}

std::string FormatWall(int64_t us) {
  if (us == 0) return "-";
  const time_t secs = static_cast<time_t>(us / 1000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((us / 1000) % 1000));
  return buf;
}

Json TaskJson(const TaskInfo& t) {
  Json j = {{"id", t.id},
            {"type", t.type},
            {"state", yard::protocol::TaskStateName(t.state)},
            {"priority", t.priority},
            {"key", t.key},
            {"attempt", t.attempt},
            {"failures", t.failures},
            {"max_attempts", t.max_attempts},
            {"timeout_ms", t.timeout_ms},
            {"error", t.error},
            {"worker", t.worker},
            {"submitted_us", t.submitted_us},
            {"dispatched_us", t.dispatched_us},
            {"finished_us", t.finished_us}};
  if (t.run_after_us != 0) j["run_after_us"] = t.run_after_us;
  if (!t.idempotency_key.empty()) j["idempotency_key"] = t.idempotency_key;
  PutBytes(j, "result", t.result);
  if (!t.payload.empty()) PutBytes(j, "payload", t.payload);
  return j;
}

void PrintTask(const TaskInfo& t) {
  std::cout << "task " << t.id << "\n"
            << "  type        " << t.type << "\n"
            << "  state       " << yard::protocol::TaskStateName(t.state) << "\n"
            << "  priority    " << int{t.priority} << "\n";
  if (!t.key.empty()) std::cout << "  key         " << t.key << "\n";
  std::cout << "  attempts    " << t.attempt << " (failed " << t.failures << " of max "
            << t.max_attempts << ")\n";
  if (!t.worker.empty()) std::cout << "  worker      " << t.worker << "\n";
  if (!t.idempotency_key.empty()) std::cout << "  idem. key   " << t.idempotency_key << "\n";
  if (t.state == TaskState::kQueued && t.run_after_us != 0) {
    std::cout << "  retry after " << FormatWall(t.run_after_us) << "\n";
  }
  std::cout << "  submitted   " << FormatWall(t.submitted_us) << "\n"
            << "  dispatched  " << FormatWall(t.dispatched_us) << "\n"
            << "  finished    " << FormatWall(t.finished_us) << "\n";
  if (!t.error.empty()) std::cout << "  error       " << t.error << "\n";
  if (t.state == TaskState::kSucceeded) {
    std::cout << "  result      " << Printable(t.result) << "\n";
  }
}

yard::StatusOr<std::string> ReadPayload(const std::string& inline_payload,
                                        const std::string& file) {
  if (!file.empty()) {
    std::ifstream f(file, std::ios::binary);
    if (!f) return yard::NotFound("cannot read --payload-file " + file);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  if (inline_payload == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  return inline_payload;
}

// Waits until `id` finishes or `limit` (0: no limit) passes.
yard::StatusOr<TaskInfo> WaitFor(Client& c, uint64_t id, Micros limit) {
  const Micros start = yard::SystemClock::Get().Now();
  while (true) {
    Micros slice = kWaitSlice;
    if (limit > 0) {
      const Micros left = limit - (yard::SystemClock::Get().Now() - start);
      if (left <= 0) {
        return yard::DeadlineExceeded("task " + std::to_string(id) + " did not finish in time");
      }
      slice = std::min(slice, left);
    }
    ASSIGN_OR_RETURN(auto t, c.Wait(id, slice));
    if (!t) return yard::NotFound("no task " + std::to_string(id));
    if (yard::protocol::IsTerminal(t->state)) return *t;
  }
}

int ExitForTask(const TaskInfo& t) {
  return t.state == TaskState::kSucceeded ? kExitOk : kExitFailed;
}

// `yard dead requeue|purge`: the ids, or with `all` page after page until none are left.
int DeadAction(Client& c, const Globals& g, const std::vector<uint64_t>& ids, bool all,
               bool requeue) {
  const char* verb = requeue ? "requeued" : "purged";
  uint64_t total = 0;
  const bool progress = all && !g.json && isatty(STDERR_FILENO);
  while (true) {
    auto r = requeue ? c.DeadRequeue(ids, all) : c.DeadPurge(ids, all);
    if (!r.ok()) {
      if (total > 0) std::cerr << "yard: " << total << " dead letters were " << verb << " first\n";
      return Fail(r.status());
    }
    total += r->count;
    if (progress)
      std::fprintf(stderr, "\r%s %llu dead letters", verb, static_cast<unsigned long long>(total));
    if (!all || !r->more) break;
  }
  if (progress) std::fputc('\n', stderr);
  if (g.json) {
    std::cout << Json{{verb, total}}.dump() << "\n";
  } else {
    std::cout << verb << " " << total << " dead letter" << (total == 1 ? "" : "s") << "\n";
  }
  return kExitOk;
}

int DeadList(Client& c, const Globals& g, uint64_t after, uint64_t limit) {
  Json all = Json::array();
  uint64_t shown = 0;
  if (!g.json) {
    std::printf("%-10s %-20s %-9s %-20s %-24s  %s\n", "ID", "TYPE", "ATTEMPTS", "WORKER", "DIED",
                "ERROR");
  }
  while (limit == 0 || shown < limit) {
    const auto want =
        static_cast<uint32_t>(limit == 0 ? 0 : std::min<uint64_t>(limit - shown, 1000));
    auto page = c.DeadList(after, want);
    if (!page.ok()) return Fail(page.status());
    for (const auto& t : page->tasks) {
      if (g.json) {
        all.push_back(TaskJson(t));
      } else {
        std::printf("%-10llu %-20s %-9u %-20s %-24s  %s\n", static_cast<unsigned long long>(t.id),
                    t.type.c_str(), t.attempt, t.worker.c_str(), FormatWall(t.finished_us).c_str(),
                    t.error.c_str());
      }
      after = t.id;
      ++shown;
    }
    if (!page->more || page->tasks.empty()) break;
  }
  if (g.json) {
    std::cout << all.dump() << "\n";
  } else if (shown == 0) {
    std::cout << "(no dead letters)\n";
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  const char* env = std::getenv("YARD_MASTER");
  g.master = env && *env ? env : "tcp://127.0.0.1:7070";

  CLI::App app{
      "yard: submit and inspect Yard tasks.\n"
      "Exit codes: 0 ok, 1 task failed or request refused, 2 usage error, "
      "3 master unreachable or timed out."};
  app.require_subcommand(1);
  app.add_option("--master", g.master, "master client endpoint (env YARD_MASTER)")
      ->capture_default_str();
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_option("--connect-timeout", g.connect_timeout,
                 "how long to wait for the master to connect and answer")
      ->capture_default_str();

  // submit
  auto* submit = app.add_subcommand("submit", "submit a task (or one per line with --each-line)");
  std::string type, payload, payload_file, key, timeout, wait_timeout = "0";
  int priority = yard::protocol::kDefaultPriority;
  uint32_t max_attempts = 0;
  bool wait = false, each_line = false;
  submit->add_option("type", type, "task type (handler name)")->required();
  submit->add_option("payload", payload, "payload text, or - to read stdin");
  submit->add_option("--payload-file", payload_file, "read the payload from a file");
  submit->add_option("--key", key, "ordering key: tasks with one key run one at a time, in order");
  submit->add_option("--priority", priority, "0 (highest) .. 9")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  submit->add_option("--timeout", timeout, "lease: retry if no result by then (e.g. 30s)");
  submit->add_option("--max-attempts", max_attempts, "attempts before the task is failed");
  submit->add_flag("--wait", wait, "wait for the task and print its result");
  submit->add_option("--wait-timeout", wait_timeout, "give up waiting after this long (0: never)")
      ->capture_default_str();
  submit->add_flag("--each-line", each_line, "submit one task per line of the payload");
  std::string idempotency_key;
  submit->add_option("--idempotency-key", idempotency_key,
                     "submitting again with this key (within the master's TTL) returns the "
                     "first task instead of creating another");

  uint64_t id = 0;
  std::string limit = "0";
  auto* status = app.add_subcommand("status", "show a task");
  status->add_option("id", id, "task id")->required();
  auto* waitc = app.add_subcommand("wait", "wait until a task finishes");
  waitc->add_option("id", id, "task id")->required();
  waitc->add_option("--timeout", limit, "give up after this long (0: never)")
      ->capture_default_str();
  auto* result = app.add_subcommand("result", "print a finished task's result");
  result->add_option("id", id, "task id")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running task");
  cancel->add_option("id", id, "task id")->required();
  auto* workers = app.add_subcommand("workers", "list connected workers");
  auto* stats = app.add_subcommand("stats", "show the master's counters");

  auto* dead = app.add_subcommand("dead", "inspect, requeue or purge dead letters");
  dead->require_subcommand(1);
  uint64_t dead_after = 0, dead_limit = 0;
  std::vector<uint64_t> dead_ids;
  bool dead_all = false;
  auto* dead_list = dead->add_subcommand("list", "list dead letters, oldest id first");
  dead_list->add_option("--after", dead_after, "start after this task id");
  dead_list->add_option("--limit", dead_limit, "show at most this many (0: all)");
  auto* dead_show = dead->add_subcommand("show", "show one dead letter with its payload");
  dead_show->add_option("id", id, "task id")->required();
  auto* dead_requeue =
      dead->add_subcommand("requeue", "run dead letters again with a fresh set of attempts");
  dead_requeue->add_option("ids", dead_ids, "task ids");
  dead_requeue->add_flag("--all", dead_all, "every dead letter");
  auto* dead_purge = dead->add_subcommand("purge", "forget dead letters (all unless ids given)");
  dead_purge->add_option("ids", dead_ids, "task ids");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }
  auto usage = [](const std::string& msg) {
    std::cerr << "yard: " << msg << "\n";
    return kExitUsage;
  };
  auto ct = yard::ParseDuration(g.connect_timeout);
  if (!ct.ok()) return usage("--connect-timeout: " + ct.status().message());

  yard::transport::Context ctx;
  auto client_or = Client::Create(ctx, g.master, *ct);
  if (!client_or.ok()) return usage("--master: " + client_or.status().message());
  Client& c = **client_or;

  if (submit->parsed()) {
    if (!payload.empty() && !payload_file.empty()) {
      return usage("give the payload inline or with --payload-file, not both");
    }
    auto wt = yard::ParseDuration(wait_timeout);
    if (!wt.ok()) return usage("--wait-timeout: " + wt.status().message());
    if (each_line && !idempotency_key.empty()) {
      return usage("--idempotency-key names one task; it cannot go with --each-line");
    }
    yard::protocol::TaskSpec spec;
    spec.type = type;
    spec.idempotency_key = idempotency_key;
    spec.key = key;
    spec.priority = static_cast<uint8_t>(priority);
    spec.max_attempts = max_attempts;
    if (!timeout.empty()) {
      auto t = yard::ParseDuration(timeout);
      if (!t.ok()) return usage("--timeout: " + t.status().message());
      if (*t < yard::kMillis) return usage("--timeout: must be at least 1ms");
      spec.timeout_ms = static_cast<uint32_t>(std::min<Micros>(*t / yard::kMillis, UINT32_MAX));
    }
    auto body = ReadPayload(payload, payload_file);
    if (!body.ok()) return usage(body.status().message());
    std::vector<yard::protocol::TaskSpec> specs;
    if (each_line) {
      std::istringstream in(*body);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        specs.push_back(spec);
        specs.back().payload = std::move(line);
      }
    } else {
      spec.payload = std::move(*body);
      specs.push_back(std::move(spec));
    }
    std::vector<uint64_t> ids;
    std::vector<yard::protocol::TaskSpec> batch;
    size_t batch_bytes = 0;
    for (size_t i = 0; i <= specs.size(); ++i) {
      const bool last = i == specs.size();
      if (!batch.empty() && (last || batch.size() >= kSubmitBatch ||
                             batch_bytes + specs[i].payload.size() > kSubmitBatchBytes)) {
        auto got = c.Submit(batch);
        if (!got.ok()) {
          if (!ids.empty()) {
            std::cerr << "yard: " << ids.size() << " tasks were submitted before the error\n";
          }
          return Fail(got.status());
        }
        ids.insert(ids.end(), got->begin(), got->end());
        batch.clear();
        batch_bytes = 0;
      }
      if (last) break;
      batch_bytes += specs[i].payload.size();
      batch.push_back(std::move(specs[i]));
    }
    if (!wait) {
      if (g.json) {
        std::cout << Json{{"ids", ids}}.dump() << "\n";
      } else if (ids.size() == 1) {
        std::cout << ids[0] << "\n";
      } else {
        std::cout << "submitted " << ids.size() << " tasks";
        if (!ids.empty()) std::cout << " (ids " << ids.front() << ".." << ids.back() << ")";
        std::cout << "\n";
      }
      return kExitOk;
    }
    Json all = Json::array();
    int code = kExitOk;
    size_t ok = 0;
    // Progress on a terminal for many tasks: one line, redrawn at most every 100 ms.
    const bool progress = ids.size() > 1 && isatty(STDERR_FILENO);
    Micros last_draw = 0;
    size_t finished = 0;
    for (uint64_t tid : ids) {
      auto t = WaitFor(c, tid, *wt);
      if (!t.ok()) return Fail(t.status());
      if (ExitForTask(*t) != kExitOk) code = kExitFailed;
      ok += t->state == TaskState::kSucceeded;
      ++finished;
      const Micros now = yard::SystemClock::Get().Now();
      if (progress && (now - last_draw > 100 * yard::kMillis || finished == ids.size())) {
        std::fprintf(stderr, "\rwaiting: %zu/%zu finished, %zu failed", finished, ids.size(),
                     finished - ok);
        if (finished == ids.size()) std::fputc('\n', stderr);
        last_draw = now;
      }
      if (g.json) {
        all.push_back(TaskJson(*t));
      } else if (ids.size() == 1) {
        if (t->state == TaskState::kSucceeded) {
          std::cout << t->result;
          if (!t->result.empty() && t->result.back() != '\n') std::cout << "\n";
        } else {
          std::cerr << "yard: task " << tid << " " << yard::protocol::TaskStateName(t->state)
                    << ": " << t->error << "\n";
        }
      }
    }
    if (g.json) {
      std::cout << (ids.size() == 1 ? all[0] : all).dump() << "\n";
    } else if (ids.size() > 1) {
      std::cout << ok << " of " << ids.size() << " tasks succeeded\n";
    }
    return code;
  }

  if (status->parsed() || result->parsed()) {
    auto got = c.Get({id}, status->parsed());
    if (!got.ok()) return Fail(got.status());
    if (got->empty() || !(*got)[0]) return Fail(yard::NotFound("no task " + std::to_string(id)));
    const TaskInfo& t = *(*got)[0];
    if (status->parsed()) {
      if (g.json) {
        std::cout << TaskJson(t).dump() << "\n";
      } else {
        PrintTask(t);
      }
      return kExitOk;
    }
    if (t.state != TaskState::kSucceeded) {
      if (g.json) std::cout << TaskJson(t).dump() << "\n";
      std::cerr << "yard: task " << id << " is " << yard::protocol::TaskStateName(t.state)
                << (t.error.empty() ? "; no result" : ": " + t.error) << "\n";
      return kExitFailed;
    }
    if (g.json) {
      Json j = {{"id", t.id}};
      PutBytes(j, "result", t.result);
      std::cout << j.dump() << "\n";
    } else {
      std::cout << t.result;
    }
    return kExitOk;
  }

  if (waitc->parsed()) {
    auto lim = yard::ParseDuration(limit);
    if (!lim.ok()) return usage("--timeout: " + lim.status().message());
    auto t = WaitFor(c, id, *lim);
    if (!t.ok()) return Fail(t.status());
    if (g.json) {
      std::cout << TaskJson(*t).dump() << "\n";
    } else {
      std::cout << "task " << id << " " << yard::protocol::TaskStateName(t->state);
      if (!t->error.empty()) std::cout << ": " << t->error;
      std::cout << "\n";
    }
    return ExitForTask(*t);
  }

  if (cancel->parsed()) {
    auto st = c.Cancel(id);
    if (!st.ok()) return Fail(st.status());
    if (g.json) {
      std::cout << Json{{"id", id}, {"state", yard::protocol::TaskStateName(*st)}}.dump() << "\n";
    } else {
      std::cout << "task " << id << " " << yard::protocol::TaskStateName(*st) << "\n";
    }
    return kExitOk;
  }

  if (workers->parsed()) {
    auto ws = c.Workers();
    if (!ws.ok()) return Fail(ws.status());
    if (g.json) {
      Json arr = Json::array();
      for (const auto& w : *ws) {
        arr.push_back({{"id", w.worker_id},
                       {"host", w.hostname},
                       {"pid", w.pid},
                       {"handlers", w.handlers},
                       {"slots", w.slots},
                       {"credit", w.credit},
                       {"inflight", w.inflight},
                       {"completed", w.completed},
                       {"failed", w.failed},
                       {"connected_us", w.connected_us},
                       {"last_seen_ms", w.last_seen_ms}});
      }
      std::cout << arr.dump() << "\n";
      return kExitOk;
    }
    std::printf("%-28s %-8s %6s %8s %7s %10s %8s %6s  %s\n", "WORKER", "PID", "SLOTS", "INFLIGHT",
                "CREDIT", "COMPLETED", "FAILED", "SEEN", "HANDLERS");
    for (const auto& w : *ws) {
      std::string handlers;
      for (const auto& h : w.handlers) handlers += (handlers.empty() ? "" : ",") + h;
      std::printf("%-28s %-8u %6u %8u %7u %10llu %8llu %5ums  %s\n", w.worker_id.c_str(), w.pid,
                  w.slots, w.inflight, w.credit, static_cast<unsigned long long>(w.completed),
                  static_cast<unsigned long long>(w.failed), w.last_seen_ms, handlers.c_str());
    }
    if (ws->empty()) std::cout << "(no workers connected)\n";
    return kExitOk;
  }

  if (dead_list->parsed()) return DeadList(c, g, dead_after, dead_limit);
  if (dead_show->parsed()) {
    auto got = c.Get({id}, true);
    if (!got.ok()) return Fail(got.status());
    if (got->empty() || !(*got)[0] || (*got)[0]->state != TaskState::kDead) {
      return Fail(yard::NotFound("task " + std::to_string(id) + " is not a dead letter"));
    }
    if (g.json) {
      std::cout << TaskJson(*(*got)[0]).dump() << "\n";
    } else {
      PrintTask(*(*got)[0]);
      std::cout << "  payload     " << Printable((*got)[0]->payload) << "\n";
    }
    return kExitOk;
  }
  if (dead_requeue->parsed()) {
    if (dead_all == !dead_ids.empty()) return usage("dead requeue: give task ids or --all");
    return DeadAction(c, g, dead_ids, dead_all, true);
  }
  if (dead_purge->parsed()) return DeadAction(c, g, dead_ids, dead_ids.empty(), false);

  if (stats->parsed()) {
    auto s = c.Stats();
    if (!s.ok()) return Fail(s.status());
    if (g.json) {
      std::cout << Json(*s).dump() << "\n";
    } else {
      for (const auto& [k, v] : *s)
        std::printf("%-32s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    }
    return kExitOk;
  }
  return kExitUsage;
}
