#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace yard {

bool IsValidLogLevel(std::string_view level) {
  static constexpr std::string_view kLevels[] = {"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
  for (auto l : kLevels) {
    if (l == level) return true;
  }
  return false;
}

Status SetupLogging(std::string_view name, std::string_view level, bool json) {
  if (!IsValidLogLevel(level)) {
    return InvalidArgument("--log-level: unknown level '" + std::string(level) +
                           "' (trace, debug, info, warn, error, critical, off)");
  }
  // Replacing an existing logger of the same name keeps a second call from throwing.
  spdlog::drop(std::string(name));
  std::shared_ptr<spdlog::logger> logger;
  try {
    logger = spdlog::stderr_logger_mt(std::string(name));
  } catch (const spdlog::spdlog_ex& e) {
    return Internal(std::string("logging set-up: ") + e.what());
  }
  if (json) {
    // Messages never contain raw quotes from untrusted input unescaped: callers log reasons
    // and ids, and payload bytes are never logged.
    logger->set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","proc":"%n","pid":%P,"msg":"%v"})",
        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ %n[%P] %v");
  }
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return Status::Ok();
}

}  // namespace yard
