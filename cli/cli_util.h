// Pure helpers of the `yard` command: flag parsing (times, states, policies, the scheduling
// flags of a task), output formatting (bytes, timestamps, job progress). No I/O, no clock
// calls: every time is an argument, so all of it is unit-tested. Thread-safe: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/protocol/messages.h"
#include "common/status.h"
#include "common/wall_time.h"

namespace yard::cli {

// Parsers shared with the web plugin, in common/.
using protocol::ParseJobPolicy;
using protocol::ParseTaskState;
using protocol::TaskStateNames;
using ::yard::ParseWallTime;

// The task flags that take text, as the user typed them (empty: not given).
struct TaskFlags {
  std::string timeout;                    // --timeout: the lease
  std::string delay;                      // --delay
  std::string not_before;                 // --not-before
  std::string deadline;                   // --deadline
  std::vector<std::string> requirements;  // --require, repeatable
};

// Sets spec's timeout_ms, delay_ms, not_before_us, deadline_ms and requirements from `flags`.
// kInvalidArgument whose message starts with the flag's name for a bad value.
Status ApplyTaskFlags(const TaskFlags& flags, protocol::TaskSpec* spec);

// `s` cut to at most `max_chars` characters (not bytes, for UTF-8), ending in "..." when cut;
// line breaks and tabs become spaces so that it fits one table cell.
std::string CellText(std::string_view s, size_t max_chars);

// "2026-11-25T10:00:00.000Z", or "-" for 0.
std::string FormatWall(int64_t us);
// A duration for people: "850ms", "12s", "4m05s", "2h07m", "3d04h".
std::string FormatSpan(Micros us);

// How far a job has come, for the progress display.
struct JobProgress {
  uint64_t total = 0;      // parts
  uint64_t done = 0;       // parts that ended (succeeded, failed or cancelled)
  uint64_t failed = 0;     // of those, failed (failed, dead or expired)
  uint64_t cancelled = 0;  // of those, cancelled
  bool reducing = false;   // every part ended; the reduce task runs
  // Parts ended per second while watched; nullopt while too little is known to say.
  std::optional<double> rate;
};
JobProgress ProgressOf(const protocol::JobInfo& job);
// Parts per second from `ended` parts seen ending over `elapsed`; nullopt if either is 0.
std::optional<double> PartRate(uint64_t ended, Micros elapsed);
// Time left at `rate` for the parts not done yet; nullopt without a rate.
std::optional<Micros> Eta(const JobProgress& p);
// One line: "[########------------] 412/1000  41%  failed 3  85.2/s  ETA 7s". `bar_width` 0
// leaves the bar out.
std::string FormatProgress(const JobProgress& p, size_t bar_width);
// The 10% step reached: 0 (under 10%) .. 10 (all done); 10 for a job of no parts.
int ProgressStep(const JobProgress& p);

}  // namespace yard::cli
