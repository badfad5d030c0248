// StateStore: where the master's task records live. The engine (master/core) holds the active
// queues in memory; the store is the log the server commits every change to, once per
// event-loop turn, before anything that acknowledges those changes leaves the master.
//
// Implementations: MemoryStore (this file's sibling; tests, demos, --memory) and the RocksDB
// store. Thread-compatible: the server's loop thread is the only caller.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "common/protocol/messages.h"
#include "common/status.h"

namespace yard::state {

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Writes `records` (the latest version of each task) as one atomic batch. Returns once the
  // batch is as durable as the store's mode promises. On error nothing of the batch is visible.
  virtual Status Commit(const std::vector<protocol::TaskInfo>& records) = 0;

  // The last committed record of task `id`, or nullopt if the store has none (never stored, or
  // removed by retention).
  virtual StatusOr<std::optional<protocol::TaskInfo>> Get(uint64_t id) const = 0;

  // Calls `fn` for every stored task that is not terminal, in id order (recovery).
  virtual Status ForEachActive(const std::function<void(protocol::TaskInfo&&)>& fn) const = 0;

  // The highest task id ever committed (0 if none); new ids start above it.
  virtual uint64_t MaxTaskId() const = 0;
};

}  // namespace yard::state
