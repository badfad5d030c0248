#include "master/plugins/mqtt/mqtt_plugin.h"
#include "master/plugins/plugin.h"
#include "master/plugins/web/web_plugin.h"

namespace yard::plugins {

void PluginRegistry::Register(std::unique_ptr<PluginFactory> factory) {
  factories_.push_back(std::move(factory));
}

const PluginFactory* PluginRegistry::Find(const std::string& name) const {
  for (const auto& f : factories_) {
    if (f->name() == name) return f.get();
  }
  return nullptr;
}

std::vector<const PluginFactory*> PluginRegistry::All() const {
  std::vector<const PluginFactory*> out;
  for (const auto& f : factories_) out.push_back(f.get());
  return out;
}

std::vector<std::string> PluginRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& f : factories_) out.push_back(f->name());
  return out;
}

void RegisterBuiltinPlugins(PluginRegistry& registry) {
  registry.Register(mqtt::MakeMqttPluginFactory());
  registry.Register(web::MakeWebPluginFactory());
}

}  // namespace yard::plugins
