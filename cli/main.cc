// yard: the command-line client. Human-readable output by default, --json for scripts.
// Exit codes: 0 ok; 1 the task or job failed or the master refused the request; 2 usage
// error; 3 master unreachable or no answer in time, a wait that timed out, or a job result
// asked for before the job finished.
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include "cli/cli_util.h"
#include "cli/client.h"
#include "common/duration.h"
#include "common/protocol/json.h"

namespace {

using yard::Micros;
using yard::Status;
using yard::StatusCode;
using yard::cli::Client;
using yard::cli::FormatWall;
using yard::protocol::DumpJson;
using yard::protocol::JobFailuresJson;
using yard::protocol::JobInfo;
using yard::protocol::JobJson;
using yard::protocol::JobState;
using yard::protocol::Json;
using yard::protocol::PutBytes;
using yard::protocol::PutJobResult;
using yard::protocol::TaskInfo;
using yard::protocol::TaskJson;
using yard::protocol::TaskState;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;  // also: timed out waiting, job not finished
constexpr size_t kSubmitBatch = 1000;
constexpr size_t kSubmitBatchBytes = 4u << 20;  // well under the master's message limit
constexpr Micros kWaitSlice = 30 * yard::kSeconds;
constexpr Micros kJobPoll = 200 * yard::kMillis;
constexpr size_t kFailuresShown = 20;  // in human output; --json has them all

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

// Bytes for a terminal: as they are when UTF-8, else their size.
std::string Printable(const std::string& bytes) {
  return yard::protocol::IsUtf8(bytes) ? bytes
                                       : "(" + std::to_string(bytes.size()) + " bytes of binary)";
}

std::string Join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

// "12/3" for part 3 of job 12, "12/reduce" for its reduce task, "-" for a task of no job.
std::string JobPart(const TaskInfo& t) {
  if (t.job_id == 0) return "-";
  return std::to_string(t.job_id) + "/" +
         (t.part == yard::protocol::kReducePart ? std::string("reduce") : std::to_string(t.part));
}

void PrintTask(const TaskInfo& t) {
  std::cout << "task " << t.id << "\n"
            << "  type        " << t.type << "\n"
            << "  state       " << yard::protocol::TaskStateName(t.state) << "\n"
            << "  priority    " << int{t.priority} << "\n";
  if (!t.key.empty()) std::cout << "  key         " << t.key << "\n";
  if (t.job_id != 0) {
    std::cout << "  job         " << t.job_id;
    if (t.part == yard::protocol::kReducePart) {
      std::cout << " (reduce task)\n";
    } else {
      std::cout << " part " << t.part << "\n";
    }
  }
  if (!t.requirements.empty()) std::cout << "  requires    " << Join(t.requirements, ",") << "\n";
  std::cout << "  attempts    " << t.attempt << " (failed " << t.failures << " of max "
            << t.max_attempts << ")\n";
  if (!t.worker.empty()) std::cout << "  worker      " << t.worker << "\n";
  if (!t.idempotency_key.empty()) std::cout << "  idem. key   " << t.idempotency_key << "\n";
  if (t.state == TaskState::kQueued && t.run_after_us != 0) {
    std::cout << "  runs after  " << FormatWall(t.run_after_us) << "\n";
  }
  if (t.deadline_us != 0) std::cout << "  deadline    " << FormatWall(t.deadline_us) << "\n";
  std::cout << "  submitted   " << FormatWall(t.submitted_us) << "\n"
            << "  dispatched  " << FormatWall(t.dispatched_us) << "\n"
            << "  finished    " << FormatWall(t.finished_us) << "\n";
  if (!t.error.empty()) std::cout << "  error       " << t.error << "\n";
  if (t.state == TaskState::kSucceeded) {
    std::cout << "  result      " << Printable(t.result) << "\n";
  }
}

void PrintFailures(std::ostream& os, const JobInfo& j) {
  size_t shown = 0;
  for (const auto& f : j.failures) {
    if (shown++ == kFailuresShown) {
      os << "    ... and " << j.failures.size() - kFailuresShown << " more (--json lists all)\n";
      break;
    }
    os << "    part " << f.part << "  task " << f.task_id << "  "
       << yard::protocol::TaskStateName(f.state);
    if (!f.error.empty()) os << ": " << yard::cli::CellText(f.error, 200);
    os << "\n";
  }
}

void PrintJob(const JobInfo& j) {
  std::cout << "job " << j.id << "\n"
            << "  type        " << j.type << "\n"
            << "  state       " << yard::protocol::JobStateName(j.state) << "\n"
            << "  policy      " << yard::protocol::JobPolicyName(j.policy) << "\n"
            << "  split       " << j.split << "\n"
            << "  aggregate   " << j.aggregate << "\n"
            << "  parts       " << j.parts;
  if (j.parts > 0) {
    std::cout << " (tasks " << j.first_task_id << ".." << j.first_task_id + j.parts - 1 << ")";
  }
  std::cout << "\n"
            << "  progress    " << j.succeeded << " succeeded, " << j.failed << " failed, "
            << j.cancelled << " cancelled, " << j.running << " running, " << j.queued
            << " queued\n";
  if (j.reduce_task_id != 0) std::cout << "  reduce task " << j.reduce_task_id << "\n";
  std::cout << "  priority    " << int{j.priority} << "\n";
  if (!j.key.empty()) std::cout << "  key         " << j.key << "\n";
  if (!j.requirements.empty()) std::cout << "  requires    " << Join(j.requirements, ",") << "\n";
  std::cout << "  submitted   " << FormatWall(j.submitted_us) << "\n"
            << "  finished    " << FormatWall(j.finished_us) << "\n";
  if (j.finished_us != 0 && j.submitted_us != 0) {
    std::cout << "  took        " << yard::cli::FormatSpan(j.finished_us - j.submitted_us) << "\n";
  }
  if (!j.error.empty()) std::cout << "  error       " << j.error << "\n";
  if (!j.failures.empty()) {
    std::cout << "  failures    " << j.failures.size() << "\n";
    PrintFailures(std::cout, j);
  }
}

yard::StatusOr<std::string> ReadPayload(const std::string& inline_payload,
                                        const std::string& file) {
  if (!file.empty() && file != "-") {
    std::ifstream f(file, std::ios::binary);
    if (!f) return yard::NotFound("cannot read --payload-file " + file);
    std::string data(std::istreambuf_iterator<char>(f), {});
    if (f.bad()) return yard::NotFound("error reading --payload-file " + file);
    return data;
  }
  if (file == "-" || inline_payload == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  return inline_payload;
}

// Waits until task `id` finishes or `limit` (0: no limit) passes.
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

int ExitForJob(const JobInfo& j) {
  return j.state == JobState::kSucceeded || j.state == JobState::kPartial ? kExitOk : kExitFailed;
}

// Width of the progress bar for a terminal of `columns` (0: no bar, too narrow).
size_t BarWidth() {
  struct winsize ws {};
  const int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
  if (cols >= 110) return 30;
  if (cols >= 90) return 20;
  return 0;
}

// Polls job `id` until it finishes or `limit` (0: no limit) passes, showing its progress on
// stderr: a redrawn bar on a terminal, else (unless `quiet`) a line per 10% step.
yard::StatusOr<JobInfo> WaitForJob(Client& c, uint64_t id, Micros limit, bool quiet) {
  const yard::Clock& clock = yard::SystemClock::Get();
  const bool tty = isatty(STDERR_FILENO) != 0;
  const bool lines = !tty && !quiet;
  const size_t bar = tty ? BarWidth() : 0;
  const Micros start = clock.Now();
  std::optional<uint64_t> done_at_start;
  int step_shown = -1;
  bool drawn = false;
  auto end_bar = [&] {
    if (drawn) std::fputc('\n', stderr);
    drawn = false;
  };
  while (true) {
    auto got = c.JobGet(id, false);
    if (!got.ok()) {
      end_bar();
      return got.status();
    }
    const Micros now = clock.Now();
    auto p = yard::cli::ProgressOf(*got);
    if (!done_at_start) done_at_start = p.done;
    p.rate = yard::cli::PartRate(p.done - std::min(p.done, *done_at_start), now - start);
    const std::string label = "job " + std::to_string(id) + " ";
    if (tty) {
      std::fprintf(stderr, "\r%s%s\x1b[K", label.c_str(),
                   yard::cli::FormatProgress(p, bar).c_str());
      std::fflush(stderr);
      drawn = true;
    } else if (lines && yard::cli::ProgressStep(p) > step_shown) {
      step_shown = yard::cli::ProgressStep(p);
      std::fprintf(stderr, "%s%s\n", label.c_str(), yard::cli::FormatProgress(p, 0).c_str());
    }
    if (yard::protocol::IsTerminal(got->state)) {
      end_bar();
      return std::move(*got);
    }
    Micros sleep = kJobPoll;
    if (limit > 0) {
      const Micros left = limit - (now - start);
      if (left <= 0) {
        end_bar();
        return yard::DeadlineExceeded("job " + std::to_string(id) + " did not finish in time (" +
                                      yard::protocol::JobStateName(got->state) + ", " +
                                      std::to_string(p.done) + "/" + std::to_string(p.total) +
                                      " parts done)");
      }
      sleep = std::min(sleep, left);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(sleep));
  }
}

// "job 7 succeeded: 100/100 parts" and the like, for the end of a wait.
std::string JobSummary(const JobInfo& j) {
  std::string out = "job " + std::to_string(j.id) + " " + yard::protocol::JobStateName(j.state);
  if (j.state == JobState::kPartial) {
    out += ": " + std::to_string(j.succeeded) + " of " + std::to_string(j.parts) +
           " parts succeeded, " + std::to_string(j.failed) + " failed";
  } else {
    out += ": " + std::to_string(j.succeeded) + "/" + std::to_string(j.parts) + " parts succeeded";
  }
  if (!j.error.empty()) out += "; " + j.error;
  return out;
}

// Prints a finished (or not) job's result the way `yard job result` does, to stdout or
// `output` (with --json, an object that names the file). `end_line` ends a result printed to
// stdout with a newline if it lacks one. Returns the exit code.
int PrintJobResult(const JobInfo& j, const Globals& g, const std::string& output, bool end_line) {
  const std::string id = std::to_string(j.id);
  if (!yard::protocol::IsTerminal(j.state)) {
    if (g.json) std::cout << DumpJson(JobJson(j, false)) << "\n";
    const auto p = yard::cli::ProgressOf(j);
    std::cerr << "yard: job " << id << " is " << yard::protocol::JobStateName(j.state) << " ("
              << p.done << "/" << p.total << " parts done); no result yet\n";
    return kExitUnreachable;
  }
  if (j.state == JobState::kFailed || j.state == JobState::kCancelled) {
    if (g.json) std::cout << DumpJson(JobJson(j, false)) << "\n";
    std::cerr << "yard: job " << id << " " << yard::protocol::JobStateName(j.state)
              << (j.error.empty() ? "" : ": " + j.error) << "\n";
    if (!j.failures.empty()) PrintFailures(std::cerr, j);
    return kExitFailed;
  }
  if (!output.empty()) {
    std::ofstream f(output, std::ios::binary | std::ios::trunc);
    f << j.result;
    f.close();
    if (!f) {
      std::cerr << "yard: cannot write --output " << output << "\n";
      return kExitFailed;
    }
  }
  if (g.json) {
    Json out = {{"id", j.id},
                {"state", yard::protocol::JobStateName(j.state)},
                {"failures", JobFailuresJson(j)}};
    if (output.empty()) {
      PutJobResult(out, j.result);
    } else {
      out["output"] = output;
      out["bytes"] = j.result.size();
    }
    std::cout << DumpJson(out) << "\n";
  } else if (output.empty()) {
    std::cout << j.result;
    if (end_line && !j.result.empty() && j.result.back() != '\n') std::cout << "\n";
    std::cout.flush();
  }
  if (j.state == JobState::kPartial && !g.json) {
    std::cerr << "yard: job " << id << " partial: " << j.failed << " of " << j.parts
              << " parts failed\n";
    PrintFailures(std::cerr, j);
  }
  return kExitOk;
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
    std::cout << DumpJson(Json{{verb, total}}) << "\n";
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
    std::cout << DumpJson(all) << "\n";
  } else if (shown == 0) {
    std::cout << "(no dead letters)\n";
  }
  return kExitOk;
}

void PrintListRow(const TaskInfo& t) {
  using yard::cli::CellText;
  std::printf("%-10llu %-10s %-16s %-12s %3d %4u %-14s %-16s %-24s  %s\n",
              static_cast<unsigned long long>(t.id), yard::protocol::TaskStateName(t.state),
              CellText(t.type, 16).c_str(), CellText(t.key.empty() ? "-" : t.key, 12).c_str(),
              int{t.priority}, t.attempt, JobPart(t).c_str(),
              CellText(t.worker.empty() ? "-" : t.worker, 16).c_str(),
              FormatWall(t.submitted_us).c_str(), CellText(t.error, 60).c_str());
}

// `yard list`: one page, or with `all` every page, streamed as a table or one JSON object
// {"tasks": [...], "more": bool, "next_after_id": id}.
int ListTasks(Client& c, const Globals& g, yard::protocol::List req, bool all) {
  uint64_t shown = 0;
  bool more = false;
  bool started = false;  // the header (or the JSON object's start) is out
  uint64_t next_after = req.after_id;
  while (true) {
    auto page = c.List(req);
    if (!page.ok()) {
      if (started && g.json) std::cout << std::endl;  // incomplete JSON: at least end the line
      return Fail(page.status());
    }
    if (!started) {
      if (g.json) {
        std::cout << "{\"tasks\":[";
      } else {
        std::printf("%-10s %-10s %-16s %-12s %3s %4s %-14s %-16s %-24s  %s\n", "ID", "STATE",
                    "TYPE", "KEY", "PRI", "ATT", "JOB/PART", "WORKER", "SUBMITTED", "ERROR");
      }
      started = true;
    }
    for (const auto& t : page->tasks) {
      if (g.json) {
        std::cout << (shown == 0 ? "" : ",") << DumpJson(TaskJson(t, false));
      } else {
        PrintListRow(t);
      }
      ++shown;
    }
    more = page->more;
    next_after = page->next_after_id;
    if (!all || !more) break;
    if (next_after <= req.after_id) {
      if (g.json) std::cout << std::endl;
      return Fail(
          yard::Internal("master's LIST did not advance past id " + std::to_string(req.after_id)));
    }
    req.after_id = next_after;
  }
  if (g.json) {
    std::cout << "],\"more\":" << (more ? "true" : "false") << ",\"next_after_id\":" << next_after
              << "}\n";
  } else {
    if (shown == 0) std::cout << "(no tasks)\n";
    if (more) std::cout << "(more: --after " << next_after << ", or --all)\n";
  }
  return kExitOk;
}

// The flags `submit` and `job submit` share.
struct TaskOptions {
  int priority = yard::protocol::kDefaultPriority;
  std::string key;
  uint32_t max_attempts = 0;
  yard::cli::TaskFlags flags;
};

void AddTaskOptions(CLI::App* cmd, TaskOptions& o) {
  cmd->add_option("--key", o.key, "ordering key: tasks with one key run one at a time, in order");
  cmd->add_option("--priority", o.priority, "0 (highest) .. 9")
      ->check(CLI::Range(0, 9))
      ->capture_default_str();
  cmd->add_option("--timeout", o.flags.timeout, "lease: retry if no result by then (e.g. 30s)");
  cmd->add_option("--max-attempts", o.max_attempts, "attempts before the task is failed");
  cmd->add_option("--delay", o.flags.delay, "do not run before this long from now (e.g. 5m)");
  cmd->add_option("--not-before", o.flags.not_before,
                  "do not run before this time: Unix seconds or ISO-8601 with a zone "
                  "(2026-11-25T10:00:00Z)");
  cmd->add_option("--deadline", o.flags.deadline,
                  "expire if not started within this long from now (e.g. 1h)");
  cmd->add_option("--require", o.flags.requirements,
                  "worker tag the task needs (repeatable, or comma-separated)")
      ->delimiter(',');
}

yard::StatusOr<yard::protocol::TaskSpec> SpecFrom(const std::string& type, const TaskOptions& o) {
  yard::protocol::TaskSpec spec;
  spec.type = type;
  spec.key = o.key;
  spec.priority = static_cast<uint8_t>(o.priority);
  spec.max_attempts = o.max_attempts;
  RETURN_IF_ERROR(yard::cli::ApplyTaskFlags(o.flags, &spec));
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  const char* env = std::getenv("YARD_MASTER");
  g.master = env && *env ? env : "tcp://127.0.0.1:7070";

  CLI::App app{
      "yard: submit and inspect Yard tasks and jobs.\n"
      "Exit codes: 0 ok; 1 task or job failed, or the master refused the request; 2 usage "
      "error; 3 master unreachable or no answer in time, a wait timed out, or a job's result "
      "asked for before it finished."};
  app.require_subcommand(1);
  // Global options are accepted after the subcommand too: `yard list --json`.
  app.fallthrough();
  app.add_option("--master", g.master, "master client endpoint (env YARD_MASTER)")
      ->capture_default_str();
  app.add_flag("--json", g.json, "machine-readable output (on stdout; errors stay on stderr)");
  app.add_option("--connect-timeout", g.connect_timeout,
                 "how long to wait for the master to connect and answer")
      ->capture_default_str();

  // submit
  auto* submit = app.add_subcommand("submit", "submit a task (or one per line with --each-line)");
  std::string type, payload, payload_file, wait_timeout = "0";
  TaskOptions task_opts;
  bool wait = false, each_line = false;
  submit->add_option("type", type, "task type (handler name)")->required();
  submit->add_option("payload", payload, "payload text, or - to read stdin");
  submit->add_option("--payload-file", payload_file, "read the payload from a file");
  AddTaskOptions(submit, task_opts);
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
  auto* waitc = app.add_subcommand(
      "wait",
      "wait until a task or job finishes (a job's progress is drawn on stderr).\n"
      "Exit 0 succeeded (job: or partial), 1 failed/cancelled/dead/expired, 3 timed out.");
  waitc->add_option("id", id, "task or job id")->required();
  waitc->add_option("--timeout", limit, "give up after this long (0: never)")
      ->capture_default_str();
  auto* result = app.add_subcommand("result", "print a finished task's result");
  result->add_option("id", id, "task id")->required();
  auto* cancel = app.add_subcommand("cancel", "cancel a queued or running task");
  cancel->add_option("id", id, "task id")->required();
  auto* workers = app.add_subcommand("workers", "list connected workers");
  auto* stats = app.add_subcommand("stats", "show the master's counters");

  // list
  auto* list = app.add_subcommand(
      "list", "list tasks in id order, filtered; one page unless --all (unknown state: exit 2)");
  std::string list_state;
  yard::protocol::List list_req;
  uint32_t list_limit = 50;
  bool list_all = false;
  list->add_option("--state", list_state,
                   "only tasks in this state: " + yard::cli::TaskStateNames());
  list->add_option("--type", list_req.type, "only tasks of this type");
  list->add_option("--key", list_req.key, "only tasks with this ordering key");
  list->add_option("--job", list_req.job_id, "only the parts (and reduce task) of this job");
  list->add_option("--limit", list_limit, "tasks per page")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  list->add_option("--after", list_req.after_id, "start after this task id");
  list->add_flag("--all", list_all, "every page, not just the first");

  // job
  auto* job = app.add_subcommand("job", "jobs: one input split into part tasks, aggregated");
  job->require_subcommand(1);
  auto* job_submit = job->add_subcommand(
      "submit",
      "split the input into part tasks and aggregate their results; prints the job id.\n"
      "With --wait: exit 0 succeeded or partial, 1 failed or cancelled, 3 timed out.");
  std::string job_type, job_payload, job_payload_opt, job_payload_file, split;
  std::string aggregate = "collect", policy = "fail-fast", job_wait_timeout = "0";
  TaskOptions job_opts;
  bool job_wait = false;
  job_submit->add_option("type", job_type, "task type of the parts (handler name)")->required();
  job_submit->add_option("payload", job_payload,
                         "the input as text, or - to read stdin (none for range: splits)");
  job_submit->add_option("--payload", job_payload_opt, "the input as text, or - to read stdin");
  job_submit->add_option("--payload-file", job_payload_file,
                         "read the input from a file (- : stdin)");
  job_submit
      ->add_option("--split", split,
                   "how to cut the input: lines:N, chunk:bytes=N, chunk:parts=N, json-array:N, "
                   "range:A..B[:STEP]")
      ->required();
  job_submit
      ->add_option("--aggregate", aggregate,
                   "how to combine the parts' results: collect, concat, count, sum, min, max, "
                   "reduce:TYPE")
      ->capture_default_str();
  job_submit
      ->add_option("--policy", policy,
                   "fail-fast: the first failed part fails the job; continue: run every part")
      ->capture_default_str();
  AddTaskOptions(job_submit, job_opts);
  job_submit->add_flag("--wait", job_wait,
                       "wait with a progress display, then print the result as `job result`");
  job_submit
      ->add_option("--wait-timeout", job_wait_timeout, "give up waiting after this long (0: never)")
      ->capture_default_str();

  uint64_t job_id = 0;
  std::string output;
  auto* job_status = job->add_subcommand("status", "show a job: state, progress, failures, times");
  job_status->add_option("id", job_id, "job id")->required();
  auto* job_result = job->add_subcommand(
      "result",
      "print a job's result bytes as they are.\n"
      "Exit 0 succeeded or partial (failed parts listed on stderr), 1 failed or cancelled, "
      "3 not finished yet.");
  job_result->add_option("id", job_id, "job id")->required();
  job_result->add_option("--output,-o", output, "write the result to this file");
  auto* job_cancel = job->add_subcommand("cancel", "cancel a running job and its parts");
  job_cancel->add_option("id", job_id, "job id")->required();

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

  // Flag errors are usage errors: check them all before talking to the master.
  yard::protocol::TaskSpec spec;
  Micros wait_limit = 0;
  if (submit->parsed() || job_submit->parsed()) {
    const bool is_job = job_submit->parsed();
    auto s = SpecFrom(is_job ? job_type : type, is_job ? job_opts : task_opts);
    if (!s.ok()) return usage(s.status().message());
    spec = std::move(*s);
    auto wt = yard::ParseDuration(is_job ? job_wait_timeout : wait_timeout);
    if (!wt.ok()) return usage("--wait-timeout: " + wt.status().message());
    wait_limit = *wt;
  }
  if (list->parsed()) {
    if (!list_state.empty()) {
      auto st = yard::cli::ParseTaskState(list_state);
      if (!st.ok()) return usage("--state: " + st.status().message());
      list_req.state = *st;
    }
    list_req.limit = list_limit;
  }
  yard::protocol::JobSpec job_spec;
  if (job_submit->parsed()) {
    auto pol = yard::cli::ParseJobPolicy(policy);
    if (!pol.ok()) return usage("--policy: " + pol.status().message());
    const int sources = !job_payload.empty() + !job_payload_opt.empty() + !job_payload_file.empty();
    if (sources > 1) {
      return usage(
          "job submit: give the input once: as an argument, with --payload or with "
          "--payload-file (- reads stdin); none for range: splits");
    }
    auto body = ReadPayload(job_payload.empty() ? job_payload_opt : job_payload, job_payload_file);
    if (!body.ok()) return usage(body.status().message());
    if (split.empty()) return usage("--split: cannot be empty");
    if (aggregate.empty()) return usage("--aggregate: cannot be empty");
    spec.payload = std::move(*body);
    job_spec.task = std::move(spec);
    job_spec.split = split;
    job_spec.aggregate = aggregate;
    job_spec.policy = *pol;
  }
  Micros wait_cmd_limit = 0;
  if (waitc->parsed()) {
    auto lim = yard::ParseDuration(limit);
    if (!lim.ok()) return usage("--timeout: " + lim.status().message());
    wait_cmd_limit = *lim;
  }

  yard::transport::Context ctx;
  auto client_or = Client::Create(ctx, g.master, *ct);
  if (!client_or.ok()) return usage("--master: " + client_or.status().message());
  Client& c = **client_or;

  if (submit->parsed()) {
    if (!payload.empty() && !payload_file.empty()) {
      return usage("give the payload inline or with --payload-file, not both");
    }
    if (each_line && !idempotency_key.empty()) {
      return usage("--idempotency-key names one task; it cannot go with --each-line");
    }
    spec.idempotency_key = idempotency_key;
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
        std::cout << DumpJson(Json{{"ids", ids}}) << "\n";
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
      auto t = WaitFor(c, tid, wait_limit);
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
      std::cout << DumpJson(ids.size() == 1 ? all[0] : all) << "\n";
    } else if (ids.size() > 1) {
      std::cout << ok << " of " << ids.size() << " tasks succeeded\n";
    }
    return code;
  }

  if (job_submit->parsed()) {
    auto r = c.JobSubmit(job_spec);
    if (!r.ok()) return Fail(r.status());
    if (!job_wait) {
      if (g.json) {
        std::cout << DumpJson(Json{{"job_id", r->job_id},
                                   {"parts", r->parts},
                                   {"first_task_id", r->first_task_id}})
                  << "\n";
      } else {
        std::cout << r->job_id << "\n";
      }
      return kExitOk;
    }
    if (!g.json) {
      std::cerr << "job " << r->job_id << " submitted: " << r->parts << " part"
                << (r->parts == 1 ? "" : "s") << "\n";
    }
    auto j = WaitForJob(c, r->job_id, wait_limit, g.json);
    if (!j.ok()) return Fail(j.status());
    if (j->state == JobState::kSucceeded || j->state == JobState::kPartial) {
      auto full = c.JobGet(r->job_id, true);
      if (!full.ok()) return Fail(full.status());
      j = std::move(full);
    }
    if (g.json) {
      std::cout << DumpJson(JobJson(*j, true)) << "\n";
      return ExitForJob(*j);
    }
    return PrintJobResult(*j, g, "", true);
  }

  if (job_status->parsed() || job_result->parsed()) {
    auto j = c.JobGet(job_id, job_result->parsed());
    if (!j.ok()) return Fail(j.status());
    if (job_result->parsed()) return PrintJobResult(*j, g, output, false);
    if (g.json) {
      std::cout << DumpJson(JobJson(*j, false)) << "\n";
    } else {
      PrintJob(*j);
    }
    return kExitOk;
  }

  if (job_cancel->parsed()) {
    auto j = c.JobCancel(job_id);
    if (!j.ok()) return Fail(j.status());
    if (g.json) {
      std::cout << DumpJson(JobJson(*j, false)) << "\n";
    } else {
      std::cout << "job " << job_id << " " << yard::protocol::JobStateName(j->state) << "\n";
    }
    return kExitOk;
  }

  if (list->parsed()) return ListTasks(c, g, list_req, list_all);

  if (status->parsed() || result->parsed()) {
    auto got = c.Get({id}, status->parsed());
    if (!got.ok()) return Fail(got.status());
    if (got->empty() || !(*got)[0]) {
      std::string msg = "no task " + std::to_string(id);
      if (c.JobGet(id, false).ok()) {
        msg += " (" + std::to_string(id) + " is a job: yard job " +
               (status->parsed() ? "status " : "result ") + std::to_string(id) + ")";
      }
      return Fail(yard::NotFound(msg));
    }
    const TaskInfo& t = *(*got)[0];
    if (status->parsed()) {
      if (g.json) {
        std::cout << DumpJson(TaskJson(t)) << "\n";
      } else {
        PrintTask(t);
      }
      return kExitOk;
    }
    if (t.state != TaskState::kSucceeded) {
      if (g.json) std::cout << DumpJson(TaskJson(t)) << "\n";
      std::cerr << "yard: task " << id << " is " << yard::protocol::TaskStateName(t.state)
                << (t.error.empty() ? "; no result" : ": " + t.error) << "\n";
      return kExitFailed;
    }
    if (g.json) {
      Json j = {{"id", t.id}};
      PutBytes(j, "result", t.result);
      std::cout << DumpJson(j) << "\n";
    } else {
      std::cout << t.result;
    }
    return kExitOk;
  }

  if (waitc->parsed()) {
    // A job id answers JOB_GET; anything else is waited for as a task. A master that predates
    // jobs refuses JOB_GET as unknown: that too means "not a job".
    auto probe = c.JobGet(id, false);
    if (probe.ok()) {
      auto j = WaitForJob(c, id, wait_cmd_limit, g.json);
      if (!j.ok()) return Fail(j.status());
      if (g.json) {
        std::cout << DumpJson(JobJson(*j, false)) << "\n";
      } else {
        std::cout << JobSummary(*j) << "\n";
        if (!j->failures.empty()) PrintFailures(std::cout, *j);
      }
      return ExitForJob(*j);
    }
    const StatusCode pc = probe.status().code();
    if (pc != StatusCode::kNotFound && pc != StatusCode::kInvalidArgument &&
        pc != StatusCode::kUnimplemented) {
      return Fail(probe.status());
    }
    auto t = WaitFor(c, id, wait_cmd_limit);
    if (!t.ok()) return Fail(t.status());
    if (g.json) {
      std::cout << DumpJson(TaskJson(*t)) << "\n";
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
      std::cout << DumpJson(Json{{"id", id}, {"state", yard::protocol::TaskStateName(*st)}})
                << "\n";
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
      for (const auto& w : *ws) arr.push_back(yard::protocol::WorkerJson(w));
      std::cout << DumpJson(arr) << "\n";
      return kExitOk;
    }
    std::printf("%-28s %-8s %6s %8s %7s %10s %8s %6s  %s\n", "WORKER", "PID", "SLOTS", "INFLIGHT",
                "CREDIT", "COMPLETED", "FAILED", "SEEN", "HANDLERS");
    for (const auto& w : *ws) {
      std::printf("%-28s %-8u %6u %8u %7u %10llu %8llu %5ums  %s\n", w.worker_id.c_str(), w.pid,
                  w.slots, w.inflight, w.credit, static_cast<unsigned long long>(w.completed),
                  static_cast<unsigned long long>(w.failed), w.last_seen_ms,
                  Join(w.handlers, ",").c_str());
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
      std::cout << DumpJson(TaskJson(*(*got)[0])) << "\n";
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
      std::cout << DumpJson(Json(*s)) << "\n";
    } else {
      for (const auto& [k, v] : *s)
        std::printf("%-32s %llu\n", k.c_str(), static_cast<unsigned long long>(v));
    }
    return kExitOk;
  }
  return kExitUsage;
}
