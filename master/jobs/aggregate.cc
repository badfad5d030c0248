#include "master/jobs/aggregate.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "master/jobs/split.h"

namespace yard::jobs {

namespace {

constexpr size_t kMaxReduceType = 128;
constexpr size_t kQuoted = 64;  // bytes of a refused output or spec quoted in an error

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsAsciiSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 8259's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?. `integral` tells
// whether it has neither fraction nor exponent. std::from_chars alone would also take "01",
// "inf" and "nan".
bool IsJsonNumber(std::string_view t, bool* integral) {
  size_t i = 0;
  const size_t n = t.size();
  auto digits = [&] {
    const size_t start = i;
    while (i < n && IsDigit(t[i])) ++i;
    return i > start;
  };
  if (i < n && t[i] == '-') ++i;
  if (i < n && t[i] == '0') {
    ++i;
  } else if (!digits()) {
    return false;
  }
  *integral = true;
  if (i < n && t[i] == '.') {
    ++i;
    if (!digits()) return false;
    *integral = false;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
    *integral = false;
  }
  return i == n;
}

std::string FormatDouble(double d) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// Exact three-way comparison of an int64 with a finite double.
int CompareIntDouble(int64_t i, double d) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  const double whole = std::trunc(d);  // in [-2^63, 2^63): converts exactly
  const auto w = static_cast<int64_t>(whole);
  if (i != w) return i < w ? -1 : 1;
  const double frac = d - whole;
  return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

// Items in one output: the elements of a JSON array, else its lines.
uint64_t CountItems(std::string_view out) {
  const std::string_view t = Trim(out);
  if (!t.empty() && (t.front() == '[' || t.front() == '\xEF') && nlohmann::json::accept(t)) {
    if (const auto n = internal::JsonArrayLength(t)) return *n;
  }
  if (out.empty()) return 0;
  auto lines = static_cast<uint64_t>(std::count(out.begin(), out.end(), '\n'));
  if (out.back() != '\n') ++lines;  // a last line without its newline
  return lines;
}

}  // namespace

StatusOr<AggregateSpec> ParseAggregate(std::string_view spec) {
  using K = AggregateSpec::Kind;
  AggregateSpec a;
  if (spec == "collect") {
    a.kind = K::kCollect;
  } else if (spec == "concat") {
    a.kind = K::kConcat;
  } else if (spec == "count") {
    a.kind = K::kCount;
  } else if (spec == "sum") {
    a.kind = K::kSum;
  } else if (spec == "min") {
    a.kind = K::kMin;
  } else if (spec == "max") {
    a.kind = K::kMax;
  } else if (spec.starts_with("reduce:")) {
    const std::string_view type = spec.substr(7);
    if (type.empty() || type.size() > kMaxReduceType ||
        std::any_of(type.begin(), type.end(), IsAsciiSpace)) {
      return InvalidArgument("aggregator " + internal::Quote(spec, kQuoted) + ": TYPE must be 1.." +
                             std::to_string(kMaxReduceType) + " bytes without whitespace");
    }
    a.kind = K::kReduce;
    a.reduce_type = std::string(type);
  } else {
    return InvalidArgument("unknown aggregator " + internal::Quote(spec, kQuoted) +
                           ": use collect, concat, count, sum, min, max or reduce:TYPE");
  }
  return a;
}

Aggregation::Aggregation(AggregateSpec spec, uint32_t parts)
    : spec_(std::move(spec)), parts_(parts), seen_(parts, false) {
  using K = AggregateSpec::Kind;
  if (spec_.kind == K::kCollect || spec_.kind == K::kConcat || spec_.kind == K::kReduce) {
    outputs_.resize(parts);
  }
}

Status Aggregation::Add(uint32_t part, std::string_view output) {
  if (part >= parts_) {
    return FailedPrecondition("part " + std::to_string(part) + " is out of range: the job has " +
                              std::to_string(parts_) + " parts");
  }
  if (seen_[part]) return FailedPrecondition("part " + std::to_string(part) + " was added twice");
  using K = AggregateSpec::Kind;
  switch (spec_.kind) {
    case K::kCollect:
    case K::kConcat:
    case K::kReduce:
      outputs_[part] = std::string(output);
      break;
    case K::kCount:
      count_ += CountItems(output);
      break;
    case K::kSum:
    case K::kMin:
    case K::kMax: {
      const std::string_view t = Trim(output);
      const char* const end = t.data() + t.size();
      Number n;
      if (!IsJsonNumber(t, &n.integral)) {
        return InvalidArgument("part " + std::to_string(part) +
                               " output is not a number: " + internal::Quote(output, kQuoted));
      }
      if (n.integral && std::from_chars(t.data(), end, n.i).ec == std::errc()) {
        n.d = static_cast<double>(n.i);
      } else {
        n.integral = false;  // an integer beyond int64 is read as a double
        if (std::from_chars(t.data(), end, n.d).ec != std::errc() || !std::isfinite(n.d)) {
          return InvalidArgument("part " + std::to_string(part) +
                                 " output is a number beyond the range of a double: " +
                                 internal::Quote(output, kQuoted));
        }
      }
      if (spec_.kind == K::kSum) {
        if (n.integral) {
          int_sum_ += n.i;
        } else {
          double_sum_ += n.d;
          any_double_ = true;
        }
      } else {
        // A total order, so that the result does not depend on the order of the parts: by
        // value, then -0 before +0, then (on equal values) the integer wins.
        int c = 0;
        if (best_) {
          const Number& b = *best_;
          if (n.integral && b.integral) {
            c = n.i < b.i ? -1 : (n.i > b.i ? 1 : 0);
          } else if (n.integral) {
            c = CompareIntDouble(n.i, b.d);
          } else if (b.integral) {
            c = -CompareIntDouble(b.i, n.d);
          } else {
            c = n.d < b.d ? -1 : (n.d > b.d ? 1 : 0);
            if (c == 0 && n.d == 0 && std::signbit(n.d) != std::signbit(b.d)) {
              c = std::signbit(n.d) ? -1 : 1;
            }
          }
        }
        const bool better = !best_ || (spec_.kind == K::kMin ? c < 0 : c > 0) ||
                            (c == 0 && n.integral && !best_->integral);
        if (better) best_ = n;
      }
      break;
    }
  }
  seen_[part] = true;
  ++added_;
  return Status::Ok();
}

StatusOr<std::string> Aggregation::Finish() const {
  using K = AggregateSpec::Kind;
  switch (spec_.kind) {
    case K::kCollect:
    case K::kReduce: {
      std::string arr = "[";
      for (size_t i = 0; i < outputs_.size(); ++i) {
        if (i > 0) arr.push_back(',');
        const std::optional<std::string>& out = outputs_[i];
        if (!out) {
          arr += "null";
        } else if (nlohmann::json::accept(*out)) {
          arr += internal::CompactJson(*out);
        } else {
          arr +=
              nlohmann::json(*out).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
      }
      arr.push_back(']');
      return arr;
    }
    case K::kConcat: {
      std::string all;
      for (const auto& out : outputs_) {
        if (out) all += *out;
      }
      return all;
    }
    case K::kCount:
      return std::to_string(count_);
    case K::kSum: {
      if (!any_double_ && int_sum_ >= std::numeric_limits<int64_t>::min() &&
          int_sum_ <= std::numeric_limits<int64_t>::max()) {
        return std::to_string(static_cast<int64_t>(int_sum_));
      }
      const double total = static_cast<double>(int_sum_) + double_sum_;
      if (!std::isfinite(total)) {
        return Status(StatusCode::kOutOfRange, "sum: the total is beyond the range of a double");
      }
      return FormatDouble(total);
    }
    case K::kMin:
    case K::kMax:
      if (!best_) {
        return FailedPrecondition(std::string(spec_.kind == K::kMin ? "min" : "max") +
                                  ": no part succeeded, so there is no value");
      }
      return best_->integral ? std::to_string(best_->i) : FormatDouble(best_->d);
  }
  return Internal("unknown aggregator kind");
}

}  // namespace yard::jobs
