#include "cli/cli_util.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "common/duration.h"

namespace yard::cli {

namespace {

// `text` as whole milliseconds, rounded up so that "500us" is not "no delay".
StatusOr<uint64_t> DurationMs(std::string_view flag, const std::string& text) {
  auto d = ParseDuration(text);
  if (!d.ok()) return InvalidArgument(std::string(flag) + ": " + d.status().message());
  return static_cast<uint64_t>((*d + kMillis - 1) / kMillis);
}

size_t Utf8Length(unsigned char lead) {
  return lead < 0x80           ? 1
         : (lead >> 5) == 0x6  ? 2
         : (lead >> 4) == 0xE  ? 3
         : (lead >> 3) == 0x1E ? 4
                               : 1;
}

std::string FormatRate(double per_s) {
  char buf[32];
  if (per_s >= 100) {
    std::snprintf(buf, sizeof(buf), "%.0f/s", per_s);
  } else if (per_s >= 10) {
    std::snprintf(buf, sizeof(buf), "%.1f/s", per_s);
  } else if (per_s >= 0.01) {
    std::snprintf(buf, sizeof(buf), "%.2f/s", per_s);
  } else {
    return "<0.01/s";
  }
  return buf;
}

}  // namespace

Status ApplyTaskFlags(const TaskFlags& flags, protocol::TaskSpec* spec) {
  if (!flags.timeout.empty()) {
    auto t = ParseDuration(flags.timeout);
    if (!t.ok()) return InvalidArgument("--timeout: " + t.status().message());
    if (*t < kMillis) return InvalidArgument("--timeout: must be at least 1ms");
    spec->timeout_ms = static_cast<uint32_t>(std::min<Micros>(*t / kMillis, UINT32_MAX));
  }
  if (!flags.delay.empty()) {
    ASSIGN_OR_RETURN(spec->delay_ms, DurationMs("--delay", flags.delay));
  }
  if (!flags.not_before.empty()) {
    auto t = ParseWallTime(flags.not_before);
    if (!t.ok()) return InvalidArgument("--not-before: " + t.status().message());
    spec->not_before_us = *t;
  }
  if (!flags.deadline.empty()) {
    ASSIGN_OR_RETURN(spec->deadline_ms, DurationMs("--deadline", flags.deadline));
    if (spec->deadline_ms == 0) return InvalidArgument("--deadline: must be at least 1ms");
  }
  for (const auto& tag : flags.requirements) {
    if (tag.empty()) return InvalidArgument("--require: a tag cannot be empty");
    if (tag.find_first_of(" \t\r\n") != std::string::npos) {
      return InvalidArgument("--require: tag '" + tag + "' contains white space");
    }
  }
  spec->requirements = flags.requirements;
  return Status::Ok();
}

std::string CellText(std::string_view s, size_t max_chars) {
  // Byte offsets where each character starts, up to one past the limit.
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size() && starts.size() <= max_chars;
       i += Utf8Length(static_cast<unsigned char>(s[i]))) {
    starts.push_back(i);
  }
  std::string_view kept = s;
  bool cut = false;
  if (starts.size() > max_chars) {
    const size_t keep_chars = max_chars >= 3 ? max_chars - 3 : max_chars;
    kept = s.substr(0, starts[keep_chars]);
    cut = max_chars >= 3;
  }
  std::string out(kept);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  if (cut) out += "...";
  return out;
}

std::string FormatWall(int64_t us) {
  if (us == 0) return "-";
  const auto secs = static_cast<time_t>(us / kSeconds);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((us / kMillis) % 1000));
  return buf;
}

std::string FormatSpan(Micros us) {
  if (us < 0) us = 0;
  char buf[32];
  const int64_t s = us / kSeconds;
  if (us < kSeconds) {
    std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(us / kMillis));
  } else if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

JobProgress ProgressOf(const protocol::JobInfo& job) {
  JobProgress p;
  p.total = job.parts;
  p.failed = job.failed;
  p.cancelled = job.cancelled;
  p.done = std::min<uint64_t>(uint64_t{job.succeeded} + job.failed + job.cancelled, job.parts);
  p.reducing = job.state == protocol::JobState::kReducing;
  return p;
}

std::optional<double> PartRate(uint64_t ended, Micros elapsed) {
  if (ended == 0 || elapsed <= 0) return std::nullopt;
  return static_cast<double>(ended) * kSeconds / static_cast<double>(elapsed);
}

std::optional<Micros> Eta(const JobProgress& p) {
  if (p.done >= p.total) return 0;
  if (!p.rate || *p.rate <= 0) return std::nullopt;
  const double secs = static_cast<double>(p.total - p.done) / *p.rate;
  constexpr double kMaxSecs = 100.0 * 365 * 86400;  // beyond that "ETA" says nothing
  if (!std::isfinite(secs) || secs > kMaxSecs) return std::nullopt;
  return static_cast<Micros>(std::ceil(secs)) * kSeconds;
}

std::string FormatProgress(const JobProgress& p, size_t bar_width) {
  const uint64_t pct = p.total == 0 ? 100 : p.done * 100 / p.total;
  std::string out;
  if (bar_width > 0) {
    const size_t filled =
        p.total == 0 ? bar_width : static_cast<size_t>(p.done * bar_width / p.total);
    out += '[';
    out.append(filled, '#');
    out.append(bar_width - filled, '-');
    out += "] ";
  }
  out += std::to_string(p.done) + "/" + std::to_string(p.total) + "  " + std::to_string(pct) + "%";
  if (p.failed > 0) out += "  failed " + std::to_string(p.failed);
  if (p.cancelled > 0) out += "  cancelled " + std::to_string(p.cancelled);
  if (p.reducing) return out + "  reducing";
  if (p.done >= p.total) return out;
  out += "  " + (p.rate ? FormatRate(*p.rate) : std::string("--/s"));
  const auto eta = Eta(p);
  out += "  ETA " + (eta ? FormatSpan(*eta) : std::string("--"));
  return out;
}

int ProgressStep(const JobProgress& p) {
  if (p.total == 0 || p.done >= p.total) return 10;
  return static_cast<int>(p.done * 10 / p.total);
}

}  // namespace yard::cli
