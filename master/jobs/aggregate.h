// Aggregators: how the outputs of a job's parts become its result (docs/jobs.md).
//
// Pure logic, no I/O and no clock. Aggregation is thread-compatible: const methods may run
// concurrently, anything else needs external locking.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::jobs {

struct AggregateSpec {
  enum class Kind { kCollect, kConcat, kCount, kSum, kMin, kMax, kReduce };
  Kind kind = Kind::kCollect;
  std::string reduce_type;  // kReduce: the task type that combines the parts (1..128 bytes)
};

// Parses "collect", "concat", "count", "sum", "min", "max" or "reduce:TYPE" (TYPE: 1..128
// bytes, no whitespace). kInvalidArgument naming what is wrong.
StatusOr<AggregateSpec> ParseAggregate(std::string_view spec);

// Combines the outputs of a job's succeeded parts, added in any order; the result does not
// depend on that order (but for rounding, in a sum of non-integers). count, sum, min and max keep
// running values only; collect, concat and reduce keep each output until the Aggregation is
// destroyed.
class Aggregation {
 public:
  // `parts`: the job's part count; parts are numbered 0..parts-1.
  Aggregation(AggregateSpec spec, uint32_t parts);

  // Part `part` succeeded with `output`. kInvalidArgument when the output does not fit the
  // aggregator (sum, min, max: not a JSON number, or one beyond a double's range); the
  // message names the part and quotes at most 64 bytes of the output. kFailedPrecondition
  // for a part added twice or out of range. A refused output changes nothing.
  Status Add(uint32_t part, std::string_view output);

  // The job's result over the parts added so far (see docs/jobs.md). collect and reduce: a
  // JSON array in part order (for reduce it is the reduce task's payload): outputs that are
  // JSON embedded compacted, others as JSON strings (invalid UTF-8 replaced), null for parts
  // not added. concat: the outputs in part order. count: items (array elements or lines).
  // sum, min, max: an exact int64 while every output is an integer and the total fits, else
  // the shortest text that reads back as the same double. kFailedPrecondition for min or
  // max of no part; kOutOfRange for a sum beyond a double's range.
  StatusOr<std::string> Finish() const;

  // Parts accepted by Add.
  uint32_t added() const { return added_; }

 private:
  AggregateSpec spec_;
  uint32_t parts_;
  uint32_t added_ = 0;
  std::vector<bool> seen_;
  std::vector<std::optional<std::string>> outputs_;  // collect, concat, reduce only
  uint64_t count_ = 0;                               // count

  // sum: integer outputs exactly (2^32 int64 values cannot overflow 128 bits), others apart.
  __extension__ __int128 int_sum_ = 0;  // __extension__: GCC/Clang's 128-bit integer
  double double_sum_ = 0;
  bool any_double_ = false;

  // min, max: the best output so far, exact when it was an integer.
  struct Number {
    bool integral = true;
    int64_t i = 0;
    double d = 0;  // also set for integers, for comparing with doubles
  };
  std::optional<Number> best_;
};

}  // namespace yard::jobs
