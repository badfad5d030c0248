// The web plugin: REST API, live dashboard (SSE) and Prometheus metrics over cpp-httplib.
// See master/plugins/web/README.md.
#pragma once

#include <memory>

#include "master/plugins/plugin.h"

namespace yard::web {

std::unique_ptr<plugins::PluginFactory> MakeWebPluginFactory();

}  // namespace yard::web
