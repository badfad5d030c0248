// Await: one MasterApi call made blocking, for threads that must answer in line (the web
// plugin's HTTP threads, yard-bench). It polls the API's poller and runs Process() until the
// callback has run or `timeout` has passed.
#pragma once

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "master/api/master_api.h"

namespace yard::api {

// `start(api, callback)` makes the call. nullopt when `timeout` passed first: the call is
// still outstanding then, and its callback refers to this frame, so the caller must not use
// `api` again (destroy it).
template <typename T, typename Start>
std::optional<StatusOr<T>> Await(MasterApi& api, transport::Poller& poller, Micros timeout,
                                 Start&& start) {
  std::optional<StatusOr<T>> out;
  start(api, [&out](StatusOr<T> r) { out.emplace(std::move(r)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout);
  while (true) {
    api.Process();
    if (out) return out;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return std::nullopt;
    (void)poller.Poll(
        static_cast<int>(std::min<int64_t>(left + 1, MasterApi::kMaxProcessIntervalMs)));
  }
}

}  // namespace yard::api
