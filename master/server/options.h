// yard-master's settings: command-line flags over an optional TOML file (--config). One table
// of settings drives both, so each flag has exactly one config key and one help text.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "master/core/engine.h"

namespace yard::server {

struct MasterOptions {
  std::string client_endpoint = "tcp://127.0.0.1:7070";
  std::string worker_endpoint = "tcp://127.0.0.1:7071";
  core::EngineConfig engine;
  uint32_t max_message_bytes = 16u << 20;
  // State: RocksDB under data_dir (durable) or process memory (--memory: tests and demos).
  bool memory = false;
  std::string data_dir = "./yard-data";
  std::string durability = "fsync";  // fsync | interval | none
  uint32_t sync_interval_ms = 100;
  Micros result_ttl = 24LL * 3600 * kSeconds;
  uint64_t max_finished = 1000000;  // --memory: finished tasks kept for status/result queries
  std::string ready_file;
  uint32_t drain_timeout_ms = 10000;  // on SIGTERM: how long running tasks may take to finish
  uint32_t workers = 0;               // embedded yard-worker processes
  uint32_t worker_threads = 2;
  std::string worker_binary;  // default: yard-worker next to yard-master
  std::string log_level = "info";
  bool log_json = false;
  // Roles. Plugins are switched on by their config section ([mqtt], [web]) or flag (--mqtt);
  // `enabled = false` in a section switches one off. With remote_core set, this process runs
  // no core (no store, no worker port): its plugins talk to the core at that client endpoint.
  std::map<std::string, toml::table> plugin_sections;
  std::string remote_core;
  bool list_plugins = false;
};

// Parses flags (and the file named by --config). Sections named in `plugin_names` are kept
// whole in plugin_sections for their plugin to check. Returns nullopt to go on, or the exit
// code to leave with: 0 after --help, 2 after a usage or config error (already printed).
std::optional<int> ParseMasterOptions(int argc, char** argv,
                                      const std::vector<std::string>& plugin_names,
                                      MasterOptions* out);

}  // namespace yard::server
