#include "common/wall_time.h"

#include <array>
#include <charconv>
#include <optional>

#include "common/clock.h"

namespace yard {
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

}  // namespace yard
