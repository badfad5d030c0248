#include "master/server/options.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <variant>
#include <vector>

#include "common/duration.h"
#include "common/logging.h"
#include "master/state/rocks_store.h"

namespace yard::server {
namespace {

// A duration setting is kept as text until both sources are read, then parsed once into
// either milliseconds (1 ms .. 49 days) or microseconds (0 allowed).
struct DurationSetting {
  std::string text;
  uint32_t* millis = nullptr;
  Micros* micros = nullptr;

  static DurationSetting Millis(uint32_t* target) {
    return {std::to_string(*target) + "ms", target, nullptr};
  }
  static DurationSetting Micro(Micros* target) {
    return {std::to_string(*target / kMillis) + "ms", nullptr, target};
  }
  // Parses `text` into the target; the error names `flag`.
  Status Apply(const char* flag) const {
    auto v = ParseDuration(text);
    if (!v.ok()) return InvalidArgument(std::string(flag) + ": " + v.status().message());
    if (micros) {
      if (*v < 0) return InvalidArgument(std::string(flag) + ": must not be negative");
      *micros = *v;
      return Status::Ok();
    }
    if (*v < kMillis || *v / kMillis > std::numeric_limits<uint32_t>::max()) {
      return InvalidArgument(std::string(flag) + ": must be between 1ms and 49 days");
    }
    *millis = static_cast<uint32_t>(*v / kMillis);
    return Status::Ok();
  }
};

using Target = std::variant<std::string*, uint32_t*, uint64_t*, bool*, DurationSetting*>;

struct Setting {
  const char* flag;  // "--timeout"
  const char* key;   // "master.timeout"
  const char* help;
  Target target;
};

Status LoadToml(const std::string& path, const std::vector<Setting>& settings,
                const std::vector<std::string>& plugin_names,
                std::map<std::string, toml::table>* plugin_sections) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << "config " << path << ": " << e.description() << " (line " << e.source().begin.line
        << ")";
    return InvalidArgument(msg.str());
  }
  // Reject keys we do not know, naming the full path, so a typo never goes unnoticed.
  for (const auto& [section, node] : root) {
    const auto* table = node.as_table();
    if (!table) {
      return InvalidArgument("config " + path + ": '" + std::string(section.str()) +
                             "' must be a table such as [master]");
    }
    const std::string section_name(section.str());
    if (std::find(plugin_names.begin(), plugin_names.end(), section_name) != plugin_names.end()) {
      (*plugin_sections)[section_name] = *table;  // checked whole by the plugin's factory
      continue;
    }
    for (const auto& [name, value] : *table) {
      const std::string full = std::string(section.str()) + "." + std::string(name.str());
      const Setting* s = nullptr;
      for (const auto& c : settings) {
        if (full == c.key) s = &c;
      }
      if (!s) return InvalidArgument("config " + path + ": unknown key '" + full + "'");
      const std::string where = "config " + path + ": " + full + ": ";
      Status st = std::visit(
          [&](auto* target) -> Status {
            using T = std::remove_pointer_t<decltype(target)>;
            if constexpr (std::is_same_v<T, std::string>) {
              auto v = value.value<std::string>();
              if (!v) return InvalidArgument(where + "expected a string");
              *target = *v;
            } else if constexpr (std::is_same_v<T, bool>) {
              auto v = value.value<bool>();
              if (!v) return InvalidArgument(where + "expected true or false");
              *target = *v;
            } else if constexpr (std::is_same_v<T, DurationSetting>) {
              if (auto v = value.value<std::string>()) {
                target->text = *v;
              } else if (auto n = value.value<int64_t>(); n && *n >= 0) {
                target->text = std::to_string(*n);
              } else {
                return InvalidArgument(where + "expected a duration such as \"30s\"");
              }
            } else {
              auto v = value.value<int64_t>();
              if (!v || *v < 0 || static_cast<uint64_t>(*v) > std::numeric_limits<T>::max()) {
                return InvalidArgument(where + "expected a non-negative integer");
              }
              *target = static_cast<T>(*v);
            }
            return Status::Ok();
          },
          s->target);
      RETURN_IF_ERROR(st);
    }
  }
  return Status::Ok();
}

std::optional<std::string> FindConfigFlag(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a == "--config" && i + 1 < argc) return std::string(argv[i + 1]);
    if (a.starts_with("--config=")) return std::string(a.substr(9));
  }
  return std::nullopt;
}

}  // namespace

std::optional<int> ParseMasterOptions(int argc, char** argv,
                                      const std::vector<std::string>& plugin_names,
                                      MasterOptions* o) {
  auto timeout = DurationSetting::Millis(&o->engine.default_timeout_ms);
  auto heartbeat = DurationSetting::Millis(&o->engine.heartbeat_ms);
  auto drain = DurationSetting::Millis(&o->drain_timeout_ms);
  auto result_ttl = DurationSetting::Micro(&o->result_ttl);
  auto idem_ttl = DurationSetting::Micro(&o->engine.idempotency_ttl);
  auto backoff = DurationSetting::Micro(&o->engine.retry_backoff);
  auto backoff_max = DurationSetting::Micro(&o->engine.retry_backoff_max);
  auto aging = DurationSetting::Micro(&o->engine.aging);
  std::string config_path;
  std::string mqtt_broker;
  std::string web_listen;

  const std::vector<Setting> settings = {
      {"--client-endpoint", "master.client_endpoint",
       "ZeroMQ endpoint for clients (CLI, web role); port 0 picks a free port",
       &o->client_endpoint},
      {"--worker-endpoint", "master.worker_endpoint",
       "ZeroMQ endpoint for workers; port 0 picks a free port", &o->worker_endpoint},
      {"--timeout", "master.timeout",
       "default task lease: a task with no result by then is retried (e.g. 30s, 500ms)", &timeout},
      {"--max-attempts", "master.max_attempts",
       "default attempts before a failing task is given up", &o->engine.default_max_attempts},
      {"--heartbeat", "master.heartbeat", "heartbeat interval sent to workers", &heartbeat},
      {"--liveness", "master.liveness", "heartbeats a worker may miss before it is dead",
       &o->engine.liveness},
      {"--max-batch", "master.max_batch", "most tasks in one TASKS message", &o->engine.max_batch},
      {"--max-queued", "master.max_queued",
       "most active (queued + running) tasks; submits beyond it are refused",
       &o->engine.max_active},
      {"--max-payload-bytes", "master.max_payload_bytes", "largest task payload accepted",
       &o->engine.max_payload_bytes},
      {"--max-message-bytes", "master.max_message_bytes", "largest message accepted on either port",
       &o->max_message_bytes},
      {"--retry-backoff", "master.retry_backoff",
       "wait before the first retry of a failed task; doubles per failure, with jitter", &backoff},
      {"--retry-backoff-max", "master.retry_backoff_max", "longest wait between retries",
       &backoff_max},
      {"--idempotency-ttl", "master.idempotency_ttl",
       "how long a submit's idempotency key is remembered", &idem_ttl},
      {"--priority-aging", "master.priority_aging",
       "a queued task counts one priority level higher per this much waiting (0: never)", &aging},
      {"--max-job-tasks", "master.max_job_tasks", "most parts one job may be split into",
       &o->engine.max_job_tasks},
      {"--memory", "state.memory",
       "keep task state in memory only: nothing survives a restart (tests and demos)", &o->memory},
      {"--data-dir", "state.data_dir", "RocksDB directory for task state", &o->data_dir},
      {"--durability", "state.durability",
       "fsync: sync every group commit; interval: sync the log every --sync-interval-ms "
       "(a power loss may lose that much); none: never sync (benchmarks only)",
       &o->durability},
      {"--sync-interval-ms", "state.sync_interval_ms", "log sync period for --durability interval",
       &o->sync_interval_ms},
      {"--result-ttl", "state.result_ttl",
       "how long finished tasks and their results are kept (removed by compaction)", &result_ttl},
      {"--max-finished", "state.max_finished",
       "with --memory, most finished tasks kept (oldest dropped first)", &o->max_finished},
      {"--drain-timeout", "master.drain_timeout",
       "on SIGTERM, how long running tasks may take to report before the master exits", &drain},
      {"--ready-file", "master.ready_file",
       "write the bound endpoints as JSON to this file once serving", &o->ready_file},
      {"--workers", "workers.count",
       "start N yard-worker processes connected to this master (standalone mode)", &o->workers},
      {"--worker-threads", "workers.threads", "executor threads per embedded worker",
       &o->worker_threads},
      {"--worker-binary", "workers.binary",
       "yard-worker executable for --workers (default: next to yard-master)", &o->worker_binary},
      {"--remote-core", "roles.remote_core",
       "run no core here: only the plugin roles, against the core at this client endpoint "
       "(e.g. tcp://core-host:7070)",
       &o->remote_core},
      {"--log-level", "log.level", "trace, debug, info, warn, error, critical or off",
       &o->log_level},
      {"--log-json", "log.json", "log one JSON object per line", &o->log_json},
  };

  CLI::App app{
      "yard-master: takes tasks from clients, keeps them, and hands them to ZeroMQ workers.\n"
      "Flags override the --config file; every flag has a config key (shown as [section.key])."};
  app.option_defaults()->always_capture_default();
  app.add_option("--config", config_path, "TOML config file")->check(CLI::ExistingFile);
  app.add_option("--mqtt", mqtt_broker,
                 "switch the mqtt role on with this broker (tcp://host:1883); the [mqtt] section "
                 "holds its other settings (master/plugins/mqtt/README.md)");
  app.add_option("--web", web_listen,
                 "switch the web role on, listening on HOST:PORT (port 0: any free port); the "
                 "[web] section holds its other settings (master/plugins/web/README.md)");
  app.add_flag("--list-plugins", o->list_plugins, "list the plugins built in, then exit");
  for (const auto& s : settings) {
    const std::string help = std::string(s.help) + "  [" + s.key + "]";
    std::visit(
        [&](auto* target) {
          using T = std::remove_pointer_t<decltype(target)>;
          if constexpr (std::is_same_v<T, bool>) {
            app.add_flag(s.flag, *target, help);
          } else if constexpr (std::is_same_v<T, DurationSetting>) {
            app.add_option(s.flag, target->text, help);
          } else {
            app.add_option(s.flag, *target, help);
          }
        },
        s.target);
  }

  if (auto path = FindConfigFlag(argc, argv)) {
    Status st = LoadToml(*path, settings, plugin_names, &o->plugin_sections);
    if (!st.ok()) {
      std::cerr << "yard-master: " << st.message() << "\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (!mqtt_broker.empty()) {
    o->plugin_sections["mqtt"].insert_or_assign("brokers", toml::array{mqtt_broker});
  }
  if (!web_listen.empty()) o->plugin_sections["web"].insert_or_assign("listen", web_listen);
  for (const auto& s : settings) {
    auto* const* d = std::get_if<DurationSetting*>(&s.target);
    if (!d) continue;
    if (Status st = (*d)->Apply(s.flag); !st.ok()) {
      std::cerr << "yard-master: " << st.message() << "\n";
      return 2;
    }
  }
  if (auto d = state::ParseDurability(o->durability); !d.ok()) {
    std::cerr << "yard-master: --durability: " << d.status().message() << "\n";
    return 2;
  }
  if (o->sync_interval_ms == 0) {
    std::cerr << "yard-master: --sync-interval-ms: must be > 0\n";
    return 2;
  }
  if (o->result_ttl <= 0) {
    std::cerr << "yard-master: --result-ttl: must be > 0\n";
    return 2;
  }
  if (!IsValidLogLevel(o->log_level)) {
    std::cerr << "yard-master: --log-level: unknown level '" << o->log_level << "'\n";
    return 2;
  }
  if (Status st = o->engine.Validate(); !st.ok()) {
    std::cerr << "yard-master: " << st.message() << "\n";
    return 2;
  }
  if (o->max_message_bytes < 4096) {
    std::cerr << "yard-master: --max-message-bytes: must be at least 4096\n";
    return 2;
  }
  if (o->engine.max_payload_bytes > o->max_message_bytes / 2) {
    std::cerr << "yard-master: --max-payload-bytes must be at most half of --max-message-bytes ("
              << o->max_message_bytes / 2 << ")\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace yard::server
