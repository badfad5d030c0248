// The [web] section: where the web role listens, its limits, TLS and bearer tokens. Parsed
// and checked whole at start; an error names the key path (see README.md).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace yard::web {

enum class Scope : uint8_t { kRead = 1, kWrite = 2, kAdmin = 4 };
const char* ScopeName(Scope s);

struct Token {
  std::string token;
  std::string name;    // for logs and counters; never the token itself
  uint8_t scopes = 0;  // Scope bits
  bool Has(Scope s) const { return (scopes & static_cast<uint8_t>(s)) != 0; }
};

struct WebConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: any free port
  uint32_t threads = 8;
  uint32_t max_sse_clients = 16;
  uint64_t max_body_bytes = 1u << 20;
  Micros request_timeout = 10 * kSeconds;
  Micros io_timeout = 5 * kSeconds;
  Micros sse_interval = 500 * kMillis;
  bool public_metrics = false;
  std::string tls_cert_file, tls_key_file;
  std::vector<Token> tokens;  // empty: auth is off

  bool tls() const { return !tls_cert_file.empty(); }
  bool auth() const { return !tokens.empty(); }
};

// "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces).
Status ParseListen(std::string_view text, std::string* host, uint16_t* port);

StatusOr<WebConfig> ParseWebConfig(const toml::table& section);

}  // namespace yard::web
