// The mqtt plugin: device telemetry and requests from an MQTT broker (libmosquitto), turned
// into tasks by Ingest. See master/plugins/mqtt/README.md.
#pragma once

#include <memory>

#include "master/plugins/plugin.h"

namespace yard::mqtt {

std::unique_ptr<plugins::PluginFactory> MakeMqttPluginFactory();

}  // namespace yard::mqtt
