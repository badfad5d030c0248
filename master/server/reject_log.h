// Counting and rate-limited logging of rejected input. Every rejection is counted under
// "rejected.<reason>"; at most kLinesPerSecond lines per reason are logged, so a peer sending
// garbage cannot flood the log.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "master/core/engine.h"

namespace yard::server {

class RejectLog {
 public:
  static constexpr int kLinesPerSecond = 10;
  // Counts the rejection in `engine`'s counters (unless the engine counted it already) and
  // logs it unless over the rate.
  void Reject(core::Engine& engine, Micros now, std::string_view port, std::string_view reason,
              std::string_view peer, std::string_view detail, bool count = true);

 private:
  struct Window {
    Micros start = 0;
    int lines = 0;
    uint64_t suppressed = 0;
  };
  std::unordered_map<std::string, Window> windows_;
};

// Printable form of a ZeroMQ routing id (hex).
std::string PeerName(std::string_view routing_id);

}  // namespace yard::server
