#include "master/plugins/web/config.h"

#include <charconv>
#include <cstdlib>

#include "master/plugins/table_reader.h"

namespace yard::web {

const char* ScopeName(Scope s) {
  switch (s) {
    case Scope::kRead:
      return "read";
    case Scope::kWrite:
      return "write";
    case Scope::kAdmin:
      return "admin";
  }
  return "?";
}

Status ParseListen(std::string_view text, std::string* host, uint16_t* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return InvalidArgument("'" + std::string(text) + "' is not HOST:PORT (e.g. 127.0.0.1:8080)");
  }
  std::string_view h = text.substr(0, colon);
  const std::string_view p = text.substr(colon + 1);
  const bool bracketed = h.size() >= 2 && h.front() == '[' && h.back() == ']';
  if (bracketed) h = h.substr(1, h.size() - 2);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value > 65535) {
    return InvalidArgument("'" + std::string(text) +
                           "': the port must be a number from 0 to 65535");
  }
  // An IPv6 address needs its brackets ("::1" would otherwise read as host ":" port 1), and
  // "[]" names no host.
  if (h.find_first_of(" /[]") != std::string_view::npos || (bracketed && h.empty()) ||
      (!bracketed && h.find(':') != std::string_view::npos)) {
    return InvalidArgument("'" + std::string(text) + "': bad host (write IPv6 as [V6]:PORT)");
  }
  *host = h.empty() ? "0.0.0.0" : std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

namespace {

Status ParseToken(const toml::node& node, const std::string& path, Token* out) {
  const auto* t = node.as_table();
  if (!t) return InvalidArgument(path + ": expected a table with token and scopes");
  plugins::TableReader in(*t, path);
  std::string token_env;
  std::vector<std::string> scopes;
  RETURN_IF_ERROR(in.String("token", &out->token));
  RETURN_IF_ERROR(in.String("token_env", &token_env));
  RETURN_IF_ERROR(in.String("name", &out->name));
  RETURN_IF_ERROR(in.StringList("scopes", &scopes));
  RETURN_IF_ERROR(in.CheckAllRead());
  if (!token_env.empty()) {
    if (!out->token.empty()) return in.Error("token_env", "give token or token_env, not both");
    const char* v = std::getenv(token_env.c_str());
    if (!v || !*v) return in.Error("token_env", "environment variable " + token_env + " is empty");
    out->token = v;
  }
  if (out->token.size() < 8) return in.Error("token", "must be at least 8 characters");
  if (scopes.empty()) return in.Error("scopes", "give one or more of read, write, admin");
  for (const auto& s : scopes) {
    bool known = false;
    for (Scope sc : {Scope::kRead, Scope::kWrite, Scope::kAdmin}) {
      if (s == ScopeName(sc)) {
        out->scopes |= static_cast<uint8_t>(sc);
        known = true;
      }
    }
    if (!known) return in.Error("scopes", "'" + s + "' is not read, write or admin");
  }
  if (out->name.empty()) out->name = path;
  return Status::Ok();
}

}  // namespace

StatusOr<WebConfig> ParseWebConfig(const toml::table& section) {
  WebConfig c;
  plugins::TableReader in(section, "web");
  bool enabled = true;
  RETURN_IF_ERROR(in.Bool("enabled", &enabled));
  std::string listen;
  RETURN_IF_ERROR(in.String("listen", &listen));
  if (!listen.empty()) {
    if (Status st = ParseListen(listen, &c.host, &c.port); !st.ok()) {
      return in.Error("listen", st.message());
    }
  }
  RETURN_IF_ERROR(in.Uint("threads", &c.threads, 1, 256));
  RETURN_IF_ERROR(in.Uint("max_sse_clients", &c.max_sse_clients, 0, 1024));
  RETURN_IF_ERROR(in.Uint("max_body_bytes", &c.max_body_bytes, 1024, uint64_t{1} << 30));
  RETURN_IF_ERROR(in.Duration("request_timeout", &c.request_timeout));
  RETURN_IF_ERROR(in.Duration("io_timeout", &c.io_timeout));
  RETURN_IF_ERROR(in.Duration("sse_interval", &c.sse_interval));
  RETURN_IF_ERROR(in.Bool("public_metrics", &c.public_metrics));
  RETURN_IF_ERROR(in.String("tls_cert_file", &c.tls_cert_file));
  RETURN_IF_ERROR(in.String("tls_key_file", &c.tls_key_file));
  if (const toml::node* n = section.get("tokens")) {
    in.Array("tokens");  // marks it read
    const auto* arr = n->as_array();
    if (!arr) return in.Error("tokens", "expected [[web.tokens]] tables");
    for (size_t i = 0; i < arr->size(); ++i) {
      Token t;
      RETURN_IF_ERROR(ParseToken(*arr->get(i), "web.tokens[" + std::to_string(i) + "]", &t));
      for (const auto& other : c.tokens) {
        if (other.token == t.token) {
          return InvalidArgument("web.tokens[" + std::to_string(i) + "].token: used twice");
        }
      }
      c.tokens.push_back(std::move(t));
    }
  }
  RETURN_IF_ERROR(in.CheckAllRead());
  auto positive = [&](const char* key, Micros v) -> Status {
    return v > 0 ? Status::Ok() : in.Error(key, "must be > 0");
  };
  RETURN_IF_ERROR(positive("request_timeout", c.request_timeout));
  RETURN_IF_ERROR(positive("io_timeout", c.io_timeout));
  RETURN_IF_ERROR(positive("sse_interval", c.sse_interval));
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return in.Error(c.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
                    "TLS needs both tls_cert_file and tls_key_file");
  }
  return c;
}

}  // namespace yard::web
