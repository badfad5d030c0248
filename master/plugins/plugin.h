// Plugins: optional roles of the master (mqtt, web) that reach the core only through
// MasterApi. Each is built by its PluginFactory from its own config section ([mqtt], [web]),
// runs its own threads between Start() and Stop(), and reports its counters through the
// shared Metrics. The compiled-in plugins are listed in one place: RegisterBuiltinPlugins().
#pragma once

#include <toml++/toml.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "master/api/master_api.h"

namespace yard::plugins {

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Starts the plugin's threads; returns once it serves (or fails to).
  virtual Status Start() = 0;
  // Stops intake, finishes what is in hand (bounded), and joins its threads. Idempotent. The
  // master's core still serves while plugins stop, so in-flight submits are answered.
  virtual void Stop() = 0;
};

// What a plugin may use of its host.
struct PluginHost {
  // A new MasterApi for one plugin thread (each thread that talks to the core makes its own).
  std::function<StatusOr<std::unique_ptr<api::MasterApi>>()> make_api;
  Metrics* metrics = nullptr;
  const Clock* clock = nullptr;
  // Publishes a fact about this instance in the ready file (e.g. "web_url"). Called from
  // Start(); may be empty (tests).
  std::function<void(const std::string& key, const std::string& value)> announce;
};

class PluginFactory {
 public:
  virtual ~PluginFactory() = default;
  virtual std::string name() const = 0;  // also its config section
  virtual std::string description() const = 0;
  // Checks the whole section and builds the plugin; does not start it. Errors are
  // kInvalidArgument and name the key path, e.g. "mqtt.rules[2].batch_count: must be > 0".
  virtual StatusOr<std::unique_ptr<Plugin>> Create(const toml::table& section,
                                                   const PluginHost& host) const = 0;
};

class PluginRegistry {
 public:
  void Register(std::unique_ptr<PluginFactory> factory);
  const PluginFactory* Find(const std::string& name) const;
  std::vector<const PluginFactory*> All() const;
  std::vector<std::string> Names() const;

 private:
  std::vector<std::unique_ptr<PluginFactory>> factories_;
};

// Every plugin compiled into yard-master. Adding a plugin means adding one line here.
void RegisterBuiltinPlugins(PluginRegistry& registry);

}  // namespace yard::plugins
