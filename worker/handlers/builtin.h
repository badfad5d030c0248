// The handlers every yard-worker ships with (see docs/handlers.md):
//   echo                 output = payload
//   sleep                payload: milliseconds (decimal); sleeps, output = payload; returns
//                        within ~10 ms of a cancel (permanent error) or a stop (retry)
//   sleep-extend         as sleep, renewing its lease every third of it (may outlive its timeout)
//   cpu                  payload: iterations (decimal, default 1000); busy work, output = checksum
//   fail                 always fails; payload "permanent" fails without retry
//   telemetry.stats      payload: JSON array of numbers (or objects with "value");
//                        output: JSON {count,min,max,mean,p50,p95}
//   telemetry.threshold  payload: JSON {"limit": x, "readings": [...]};
//                        output: JSON {"count": n, "alerts": [{"index": i, "value": v}, ...]}
#pragma once

#include "worker/handlers/registry.h"

namespace yard::worker {

void RegisterBuiltinHandlers(HandlerRegistry& registry);

}  // namespace yard::worker
