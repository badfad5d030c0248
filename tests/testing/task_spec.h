// TaskSpec builder shared by the engine and component tests.
#pragma once

#include <string>

#include "common/protocol/messages.h"

namespace yard::testing {

inline protocol::TaskSpec Spec(std::string type = "echo", std::string payload = "p",
                               std::string key = "", uint8_t priority = protocol::kDefaultPriority,
                               uint32_t max_attempts = 0, uint32_t timeout_ms = 0) {
  protocol::TaskSpec s;
  s.type = std::move(type);
  s.payload = std::move(payload);
  s.key = std::move(key);
  s.priority = priority;
  s.max_attempts = max_attempts;
  s.timeout_ms = timeout_ms;
  return s;
}

}  // namespace yard::testing
