#include "master/jobs/split.h"

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <utility>

namespace yard::jobs {

namespace {

constexpr uint64_t kMaxN = 10'000'000;
constexpr const char* kUsage =
    "use chunk:bytes=N, chunk:parts=N, lines:N, json-array:N or range:A..B[:STEP]";
constexpr size_t kQuotedSpec = 64;

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// nlohmann accepts a UTF-8 byte-order mark before the first token; it is not JSON text.
std::string_view StripBom(std::string_view json) {
  if (json.starts_with("\xEF\xBB\xBF")) json.remove_prefix(3);
  return json;
}

std::string_view TrimJson(std::string_view json) {
  json = StripBom(json);
  while (!json.empty() && IsJsonSpace(json.front())) json.remove_prefix(1);
  while (!json.empty() && IsJsonSpace(json.back())) json.remove_suffix(1);
  return json;
}

void AppendCompact(std::string* out, std::string_view json) {
  json = StripBom(json);
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      out->push_back(c);
      if (c == '\\' && i + 1 < json.size()) {
        out->push_back(json[++i]);
      } else if (c == '"') {
        in_string = false;
      }
    } else if (!IsJsonSpace(c)) {
      out->push_back(c);
      in_string = c == '"';
    }
  }
}

// Calls `f` with the text of each element of `array`: valid JSON, trimmed, starting with '['.
// Stops at the first error `f` returns.
template <typename F>
Status ForEachElement(std::string_view array, F&& f) {
  size_t depth = 0;
  bool in_string = false;
  bool any = false;  // the current element has a token (tells "[]" from "[x]")
  size_t start = 1;
  for (size_t i = 1; i < array.size(); ++i) {
    const char c = array[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      any = true;
    } else if (c == '[' || c == '{') {
      ++depth;
      any = true;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return any ? f(array.substr(start, i - start)) : Status::Ok();
      --depth;
    } else if (c == ',' && depth == 0) {
      RETURN_IF_ERROR(f(array.substr(start, i - start)));
      start = i + 1;
    } else if (!IsJsonSpace(c)) {
      any = true;
    }
  }
  return Status::Ok();
}

const char* Name(SplitSpec::Kind kind) {
  switch (kind) {
    case SplitSpec::Kind::kChunkBytes:
      return "chunk:bytes";
    case SplitSpec::Kind::kChunkParts:
      return "chunk:parts";
    case SplitSpec::Kind::kLines:
      return "lines";
    case SplitSpec::Kind::kJsonArray:
      return "json-array";
    case SplitSpec::Kind::kRange:
      return "range";
  }
  return "splitter";
}

template <typename T>
bool ParseWhole(std::string_view s, T* out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

Status BadSpec(std::string_view spec, const std::string& why) {
  return InvalidArgument("splitter " + internal::Quote(spec, kQuotedSpec) + ": " + why);
}

StatusOr<uint64_t> ParseN(std::string_view spec, std::string_view text) {
  uint64_t n = 0;
  if (!ParseWhole(text, &n) || n == 0 || n > kMaxN) {
    return BadSpec(spec, "N must be a whole number 1.." + std::to_string(kMaxN));
  }
  return n;
}

StatusOr<SplitSpec> ParseRange(std::string_view spec, std::string_view arg) {
  auto bad = [&](const std::string& why) {
    return BadSpec(spec, why + " (use range:A..B or range:A..B:STEP)");
  };
  const size_t dots = arg.find("..");
  if (dots == std::string_view::npos) return bad("missing '..'");
  SplitSpec s;
  s.kind = SplitSpec::Kind::kRange;
  const std::string_view rest = arg.substr(dots + 2);
  std::string_view to = rest;
  if (const size_t colon = rest.find(':'); colon != std::string_view::npos) {
    to = rest.substr(0, colon);
    if (!ParseWhole(rest.substr(colon + 1), &s.step)) return bad("STEP is not a 64-bit integer");
    if (s.step < 1) return bad("STEP must be at least 1");
  }
  if (!ParseWhole(arg.substr(0, dots), &s.from)) return bad("A is not a 64-bit integer");
  if (!ParseWhole(to, &s.to)) return bad("B is not a 64-bit integer");
  if (s.from > s.to) return bad("A is greater than B");
  return s;
}

// Collects the parts of one split, refusing any over the size limit as soon as it is cut.
class Parts {
 public:
  Parts(SplitSpec::Kind kind, uint64_t count, size_t max_part_bytes)
      : kind_(kind), max_part_bytes_(max_part_bytes) {
    parts_.reserve(count);
  }

  Status Add(std::string part) {
    if (part.size() > max_part_bytes_) {
      return InvalidArgument(std::string(Name(kind_)) + ": part " + std::to_string(parts_.size()) +
                             " is " + std::to_string(part.size()) + " bytes, over the limit of " +
                             std::to_string(max_part_bytes_) +
                             " bytes per part (--max-payload-bytes)");
    }
    parts_.push_back(std::move(part));
    return Status::Ok();
  }

  std::vector<std::string> Take() && { return std::move(parts_); }

 private:
  SplitSpec::Kind kind_;
  size_t max_part_bytes_;
  std::vector<std::string> parts_;
};

Status TooMany(SplitSpec::Kind kind, const std::string& count, size_t max_parts) {
  return InvalidArgument(std::string(Name(kind)) + ": the job would have " + count +
                         " parts, over the limit of " + std::to_string(max_parts) +
                         " parts (--max-job-tasks)");
}

Status CheckCount(SplitSpec::Kind kind, uint64_t count, size_t max_parts) {
  return count <= max_parts ? Status::Ok() : TooMany(kind, std::to_string(count), max_parts);
}

StatusOr<std::vector<std::string>> SplitRange(const SplitSpec& s, size_t max_parts,
                                              size_t max_part_bytes) {
  // Unsigned arithmetic: B - A reaches 2^64 - 1 for the widest range, and the part count one
  // more than that, so it is only counted, never built.
  const uint64_t span = static_cast<uint64_t>(s.to) - static_cast<uint64_t>(s.from);
  const uint64_t steps = span / static_cast<uint64_t>(s.step);
  if (steps == UINT64_MAX) return TooMany(s.kind, "18446744073709551616", max_parts);
  const uint64_t count = steps + 1;
  RETURN_IF_ERROR(CheckCount(s.kind, count, max_parts));
  Parts parts(s.kind, count, max_part_bytes);
  for (uint64_t i = 0; i < count; ++i) {
    // Two's complement wrap-around: the true value lies in [A, B], so it is exact.
    const uint64_t v = static_cast<uint64_t>(s.from) + i * static_cast<uint64_t>(s.step);
    RETURN_IF_ERROR(parts.Add(std::to_string(static_cast<int64_t>(v))));
  }
  return std::move(parts).Take();
}

StatusOr<std::vector<std::string>> SplitChunkBytes(const SplitSpec& s, std::string_view payload,
                                                   size_t max_parts, size_t max_part_bytes) {
  const uint64_t count = (payload.size() + s.n - 1) / s.n;
  RETURN_IF_ERROR(CheckCount(s.kind, count, max_parts));
  Parts parts(s.kind, count, max_part_bytes);
  for (size_t at = 0; at < payload.size(); at += s.n) {
    RETURN_IF_ERROR(parts.Add(std::string(payload.substr(at, s.n))));
  }
  return std::move(parts).Take();
}

StatusOr<std::vector<std::string>> SplitChunkParts(const SplitSpec& s, std::string_view payload,
                                                   size_t max_parts, size_t max_part_bytes) {
  const uint64_t count = std::min<uint64_t>(s.n, payload.size());
  RETURN_IF_ERROR(CheckCount(s.kind, count, max_parts));
  const size_t base = payload.size() / count;
  const size_t extra = payload.size() % count;  // the first `extra` parts take one byte more
  Parts parts(s.kind, count, max_part_bytes);
  size_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const size_t len = base + (i < extra ? 1 : 0);
    RETURN_IF_ERROR(parts.Add(std::string(payload.substr(at, len))));
    at += len;
  }
  return std::move(parts).Take();
}

StatusOr<std::vector<std::string>> SplitLines(const SplitSpec& s, std::string_view payload,
                                              size_t max_parts, size_t max_part_bytes) {
  uint64_t lines = static_cast<uint64_t>(std::count(payload.begin(), payload.end(), '\n'));
  if (payload.back() != '\n') ++lines;  // a last line without its newline
  const uint64_t count = (lines + s.n - 1) / s.n;
  RETURN_IF_ERROR(CheckCount(s.kind, count, max_parts));
  Parts parts(s.kind, count, max_part_bytes);
  size_t start = 0;
  while (start < payload.size()) {
    size_t end = start;
    for (uint64_t l = 0; l < s.n && end < payload.size(); ++l) {
      const size_t nl = payload.find('\n', end);
      end = nl == std::string_view::npos ? payload.size() : nl + 1;
    }
    RETURN_IF_ERROR(parts.Add(std::string(payload.substr(start, end - start))));
    start = end;
  }
  return std::move(parts).Take();
}

// Works on the text: a parsed tree would take several times the payload's memory, reorder
// object keys and round big numbers. Each part is the elements' text, compacted.
StatusOr<std::vector<std::string>> SplitJsonArray(const SplitSpec& s, std::string_view payload,
                                                  size_t max_parts, size_t max_part_bytes) {
  if (!nlohmann::json::accept(payload)) {
    return InvalidArgument("json-array: the payload is not valid JSON");
  }
  const std::string_view array = TrimJson(payload);
  const std::optional<uint64_t> elements = internal::JsonArrayLength(array);
  if (!elements) return InvalidArgument("json-array: the payload is not a JSON array");
  if (*elements == 0) return InvalidArgument("json-array: the array is empty: nothing to split");
  const uint64_t count = (*elements + s.n - 1) / s.n;
  RETURN_IF_ERROR(CheckCount(s.kind, count, max_parts));
  Parts parts(s.kind, count, max_part_bytes);
  std::string part;
  uint64_t in_part = 0;
  RETURN_IF_ERROR(ForEachElement(array, [&](std::string_view element) {
    part.push_back(in_part == 0 ? '[' : ',');
    AppendCompact(&part, element);
    if (++in_part < s.n) return Status::Ok();
    part.push_back(']');
    in_part = 0;
    return parts.Add(std::exchange(part, std::string()));
  }));
  if (in_part > 0) {
    part.push_back(']');
    RETURN_IF_ERROR(parts.Add(std::move(part)));
  }
  return std::move(parts).Take();
}

}  // namespace

namespace internal {

std::string CompactJson(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  AppendCompact(&out, json);
  return out;
}

std::optional<uint64_t> JsonArrayLength(std::string_view json) {
  json = TrimJson(json);
  if (json.empty() || json.front() != '[') return std::nullopt;
  uint64_t n = 0;
  const Status counted = ForEachElement(json, [&n](std::string_view) {
    ++n;
    return Status::Ok();
  });
  (void)counted;  // the callback never fails
  return n;
}

std::string Quote(std::string_view bytes, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (const char c : bytes.substr(0, max_bytes)) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  out.push_back('\'');
  if (bytes.size() > max_bytes) out += "...";
  return out;
}

}  // namespace internal

StatusOr<SplitSpec> ParseSplit(std::string_view spec) {
  const size_t colon = spec.find(':');
  const std::string_view name = spec.substr(0, colon);
  if (name != "chunk" && name != "lines" && name != "json-array" && name != "range") {
    return InvalidArgument("unknown splitter " + internal::Quote(name, kQuotedSpec) + ": " +
                           kUsage);
  }
  if (colon == std::string_view::npos) {
    return BadSpec(spec, "missing its argument: " + std::string(kUsage));
  }
  const std::string_view arg = spec.substr(colon + 1);
  SplitSpec s;
  if (name == "range") return ParseRange(spec, arg);
  if (name == "lines") {
    s.kind = SplitSpec::Kind::kLines;
    ASSIGN_OR_RETURN(s.n, ParseN(spec, arg));
  } else if (name == "json-array") {
    s.kind = SplitSpec::Kind::kJsonArray;
    ASSIGN_OR_RETURN(s.n, ParseN(spec, arg));
  } else if (arg.starts_with("bytes=")) {
    s.kind = SplitSpec::Kind::kChunkBytes;
    ASSIGN_OR_RETURN(s.n, ParseN(spec, arg.substr(6)));
  } else if (arg.starts_with("parts=")) {
    s.kind = SplitSpec::Kind::kChunkParts;
    ASSIGN_OR_RETURN(s.n, ParseN(spec, arg.substr(6)));
  } else {
    return BadSpec(spec, "use chunk:bytes=N or chunk:parts=N");
  }
  return s;
}

StatusOr<std::vector<std::string>> Split(const SplitSpec& s, std::string_view payload,
                                         size_t max_parts, size_t max_part_bytes) {
  if (s.kind == SplitSpec::Kind::kRange) {
    if (!payload.empty()) {
      return InvalidArgument("range: the payload must be empty; the parts are the integers " +
                             std::to_string(s.from) + ".." + std::to_string(s.to));
    }
    // Specs built by hand skip ParseSplit's checks; the arithmetic below relies on them.
    if (s.step < 1 || s.from > s.to) {
      return InvalidArgument("range: needs A <= B and STEP >= 1");
    }
    return SplitRange(s, max_parts, max_part_bytes);
  }
  if (payload.empty()) {
    return InvalidArgument(std::string(Name(s.kind)) + ": the payload is empty: nothing to split");
  }
  // Specs built by hand skip ParseSplit's checks; a zero N would divide by zero below.
  if (s.n == 0 || s.n > kMaxN) {
    return InvalidArgument(std::string(Name(s.kind)) + ": N must be a whole number 1.." +
                           std::to_string(kMaxN));
  }
  switch (s.kind) {
    case SplitSpec::Kind::kChunkBytes:
      return SplitChunkBytes(s, payload, max_parts, max_part_bytes);
    case SplitSpec::Kind::kChunkParts:
      return SplitChunkParts(s, payload, max_parts, max_part_bytes);
    case SplitSpec::Kind::kLines:
      return SplitLines(s, payload, max_parts, max_part_bytes);
    case SplitSpec::Kind::kJsonArray:
      return SplitJsonArray(s, payload, max_parts, max_part_bytes);
    case SplitSpec::Kind::kRange:
      break;
  }
  return InvalidArgument("unknown splitter kind");
}

}  // namespace yard::jobs
