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

constexpr int64_t kMaxUnixSeconds = 253402300799;  // 9999-12-31T23:59:59Z

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads exactly `n` decimal digits at `*pos`.
bool Digits(std::string_view s, size_t* pos, size_t n, unsigned* out) {
  if (*pos + n > s.size()) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = s[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool Literal(std::string_view s, size_t* pos, char c) {
  if (*pos >= s.size() || s[*pos] != c) return false;
  ++*pos;
  return true;
}

// ".fraction" at `*pos`, if any, as microseconds (digits past the sixth are dropped).
bool Fraction(std::string_view s, size_t* pos, int64_t* us) {
  *us = 0;
  if (*pos >= s.size() || (s[*pos] != '.' && s[*pos] != ',')) return true;
  ++*pos;
  const size_t start = *pos;
  int64_t scale = 100000;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9') {
    *us += (s[*pos] - '0') * scale;
    scale /= 10;
    ++*pos;
  }
  return *pos > start && *pos - start <= 9;
}

std::optional<int64_t> ParseIso(std::string_view s) {
  size_t pos = 0;
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Digits(s, &pos, 4, &year) || !Literal(s, &pos, '-') || !Digits(s, &pos, 2, &month) ||
      !Literal(s, &pos, '-') || !Digits(s, &pos, 2, &day)) {
    return std::nullopt;
  }
  if (pos >= s.size() || (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')) return std::nullopt;
  ++pos;
  if (!Digits(s, &pos, 2, &hour) || !Literal(s, &pos, ':') || !Digits(s, &pos, 2, &minute)) {
    return std::nullopt;
  }
  int64_t frac_us = 0;
  if (Literal(s, &pos, ':')) {
    if (!Digits(s, &pos, 2, &second) || !Fraction(s, &pos, &frac_us)) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (Literal(s, &pos, 'Z') || Literal(s, &pos, 'z')) {
    offset_s = 0;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    const int sign = s[pos] == '+' ? 1 : -1;
    ++pos;
    unsigned oh = 0, om = 0;
    if (!Digits(s, &pos, 2, &oh)) return std::nullopt;
    if (pos < s.size()) {
      Literal(s, &pos, ':');
      if (!Digits(s, &pos, 2, &om)) return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_s = sign * static_cast<int64_t>(oh * 3600 + om * 60);
  } else {
    return std::nullopt;  // no zone: local time would be a guess
  }
  if (pos != s.size()) return std::nullopt;
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
      hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  const int64_t secs =
      DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * kSeconds + frac_us;
}

std::optional<int64_t> ParseUnixSeconds(std::string_view s, bool* too_large) {
  int64_t secs = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), secs);
  if (ec == std::errc::result_out_of_range) {
    *too_large = true;
    return std::nullopt;
  }
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  size_t pos = static_cast<size_t>(end - s.data());
  int64_t frac_us = 0;
  if (!Fraction(s, &pos, &frac_us) || pos != s.size()) return std::nullopt;
  if (secs > kMaxUnixSeconds) {
    *too_large = true;
    return std::nullopt;
  }
  return secs * kSeconds + frac_us;
}

// `text` as whole milliseconds, rounded up so that "500us" is not "no delay".
StatusOr<uint64_t> DurationMs(std::string_view flag, const std::string& text) {
  auto d = ParseDuration(text);
  if (!d.ok()) return InvalidArgument(std::string(flag) + ": " + d.status().message());
  return static_cast<uint64_t>((*d + kMillis - 1) / kMillis);
}

constexpr std::array<protocol::TaskState, 7> kAllStates = {
    protocol::TaskState::kQueued, protocol::TaskState::kDispatched, protocol::TaskState::kSucceeded,
    protocol::TaskState::kFailed, protocol::TaskState::kCancelled,  protocol::TaskState::kDead,
    protocol::TaskState::kExpired};

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

StatusOr<int64_t> ParseWallTime(std::string_view text) {
  const std::string shown(text);
  bool too_large = false;
  std::optional<int64_t> us;
  if (!text.empty() && text.find_first_not_of("0123456789.,") == std::string_view::npos) {
    us = ParseUnixSeconds(text, &too_large);
  } else {
    us = ParseIso(text);
  }
  if (too_large) {
    return InvalidArgument("'" + shown +
                           "' is past the year 9999 (give Unix seconds, not milliseconds)");
  }
  if (!us) {
    return InvalidArgument("'" + shown +
                           "' is not a time (Unix seconds such as 1764064800, or ISO-8601 "
                           "with a zone such as 2026-11-25T10:00:00Z or "
                           "2026-11-25T11:00:00+01:00)");
  }
  if (*us <= 0) return InvalidArgument("'" + shown + "' is not after 1970-01-01T00:00:00Z");
  return *us;
}

std::string TaskStateNames() {
  std::string out;
  for (auto s : kAllStates) {
    if (!out.empty()) out += ' ';
    out += protocol::TaskStateName(s);
  }
  return out;
}

StatusOr<protocol::TaskState> ParseTaskState(std::string_view text) {
  for (auto s : kAllStates) {
    if (text == protocol::TaskStateName(s)) return s;
  }
  return InvalidArgument("'" + std::string(text) +
                         "' is not a task state (one of: " + TaskStateNames() + ")");
}

StatusOr<protocol::JobPolicy> ParseJobPolicy(std::string_view text) {
  for (auto p : {protocol::JobPolicy::kFailFast, protocol::JobPolicy::kContinue}) {
    if (text == protocol::JobPolicyName(p)) return p;
  }
  return InvalidArgument("'" + std::string(text) + "' is not a job policy (fail-fast or continue)");
}

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

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t extra;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (k == 1 ? (b < lo || b > hi) : (b >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string Base64(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(in[k])); };
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], kTable[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = byte(i) << 16;
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], '='};
  }
  return out;
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
