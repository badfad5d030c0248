#include "master/server/reject_log.h"

#include <spdlog/spdlog.h>

namespace yard::server {

void RejectLog::Reject(core::Engine& engine, Micros now, std::string_view port,
                       std::string_view reason, std::string_view peer, std::string_view detail,
                       bool count) {
  std::string key(reason);
  if (count) engine.Count("rejected." + key);
  Window& w = windows_[key];
  if (now - w.start >= kSeconds) {
    if (w.suppressed > 0) {
      spdlog::warn("{} more '{}' rejections were not logged", w.suppressed, key);
    }
    w = Window{now, 0, 0};
  }
  if (w.lines < kLinesPerSecond) {
    ++w.lines;
    spdlog::warn("{} port: rejected input from peer {} ({}): {}", port, peer, reason, detail);
  } else {
    ++w.suppressed;
  }
}

std::string PeerName(std::string_view routing_id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(routing_id.size() * 2);
  for (unsigned char c : routing_id) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

}  // namespace yard::server
