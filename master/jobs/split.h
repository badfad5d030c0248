// Splitters: how a job's payload is cut into part payloads (docs/jobs.md).
//
// Pure functions: no I/O, no clock, no shared state, so they are safe to call from any thread.
// Memory stays proportional to the payload: the number of parts is computed before any part is
// built, and JSON is scanned as text rather than built into a tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::jobs {

struct SplitSpec {
  enum class Kind { kChunkBytes, kChunkParts, kLines, kJsonArray, kRange };
  Kind kind = Kind::kLines;
  uint64_t n = 0;                      // bytes, parts, lines or elements: 1..10,000,000
  int64_t from = 0, to = 0, step = 1;  // range: from <= to, step >= 1
};

// Parses "chunk:bytes=N", "chunk:parts=N", "lines:N", "json-array:N" or "range:A..B[:STEP]".
// kInvalidArgument naming the spec and what is wrong with it.
StatusOr<SplitSpec> ParseSplit(std::string_view spec);

// Cuts `payload` into part payloads, in order. For chunk and lines, joining the parts gives
// back the payload. kInvalidArgument naming the splitter for: an empty payload (range needs an
// empty one), a json-array payload that is not a non-empty JSON array, more than `max_parts`
// parts (found before any part is built), or a part over `max_part_bytes`.
StatusOr<std::vector<std::string>> Split(const SplitSpec& spec, std::string_view payload,
                                         size_t max_parts, size_t max_part_bytes);

// Text helpers shared by the splitters and the aggregators (aggregate.cc). The JSON ones take
// text that nlohmann::json::accept() has validated; they scan it without recursion, so deep
// nesting costs no stack.
namespace internal {

// `json` without a leading byte-order mark and without whitespace outside strings. Numbers,
// escapes and key order stay as written, so nothing is lost or reordered.
std::string CompactJson(std::string_view json);

// The number of elements of `json` when it is an array, else nullopt.
std::optional<uint64_t> JsonArrayLength(std::string_view json);

// At most `max_bytes` of `bytes` between single quotes for an error message: bytes outside
// printable ASCII as \xNN, and "..." after the quote when `bytes` was cut.
std::string Quote(std::string_view bytes, size_t max_bytes = 64);

}  // namespace internal
}  // namespace yard::jobs
