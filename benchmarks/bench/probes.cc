#include "benchmarks/bench/probes.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>
#include <zmq.hpp>

#include "benchmarks/bench/cluster.h"

namespace yard::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

void BigEndian(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

}  // namespace

StatusOr<ProbeResult> ZmqLimit(double seconds, int batch, size_t payload_bytes) {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::sndhwm, 0);
  router.set(zmq::sockopt::rcvhwm, 0);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  // The "worker": echoes every message (a batch of tasks) back, copying it as a result.
  std::thread worker([&router] {
    try {
      while (true) {
        zmq::message_t id, body;
        if (!router.recv(id) || !router.recv(body)) return;
        if (body.size() == 0) return;  // stop
        zmq::message_t reply(body.data(), body.size());
        router.send(id, zmq::send_flags::sndmore);
        router.send(reply, zmq::send_flags::none);
      }
    } catch (const zmq::error_t&) {
    }
  });
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::sndhwm, 0);
  dealer.set(zmq::sockopt::rcvhwm, 0);
  dealer.connect(endpoint);
  // One message: `batch` tasks of [id (8)][len (4)][payload].
  std::string msg;
  const std::string payload(payload_bytes, 'x');
  for (int i = 0; i < batch; ++i) {
    char head[12] = {};
    BigEndian(static_cast<uint64_t>(i), head);
    const auto len = static_cast<uint32_t>(payload_bytes);
    std::memcpy(head + 8, &len, 4);
    msg.append(head, sizeof(head));
    msg += payload;
  }
  const int window = std::max(1, 1024 / batch);
  uint64_t replies = 0;
  int in_flight = 0;
  const auto t0 = SteadyClock::now();
  double elapsed = 0;
  while ((elapsed = Since(t0)) < seconds || in_flight > 0) {
    while (in_flight < window && elapsed < seconds) {
      dealer.send(zmq::buffer(msg), zmq::send_flags::none);
      ++in_flight;
    }
    zmq::message_t reply;
    if (!dealer.recv(reply)) break;
    if (reply.size() != msg.size()) return Internal("zmq probe: a reply of the wrong size");
    --in_flight;
    ++replies;
  }
  elapsed = Since(t0);
  dealer.send(zmq::message_t(), zmq::send_flags::none);  // stop the worker
  worker.join();
  return ProbeResult{"raw ZeroMQ, tcp, batch " + std::to_string(batch),
                     double(replies) * batch / elapsed, elapsed};
}

StatusOr<ProbeResult> RocksLimit(const std::string& dir, double seconds, int batch,
                                 size_t payload_bytes, bool sync) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove_all(dir, ec);
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = 64 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status st = rocksdb::DB::Open(options, dir, &raw);
  if (!st.ok()) return Unavailable("rocksdb probe: " + st.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  const std::string value(payload_bytes, 'x');
  uint64_t next = 0, pairs = 0;
  char key[9] = {'t'};
  const auto t0 = SteadyClock::now();
  double elapsed = 0;
  while ((elapsed = Since(t0)) < seconds) {
    // Enqueue this batch, and ack (delete) the previous one: a queue `batch` tasks deep.
    rocksdb::WriteBatch wb;
    for (int i = 0; i < batch; ++i) {
      BigEndian(next + i, key + 1);
      wb.Put(rocksdb::Slice(key, sizeof(key)), value);
      if (next >= static_cast<uint64_t>(batch)) {
        BigEndian(next + i - batch, key + 1);
        wb.Delete(rocksdb::Slice(key, sizeof(key)));
      }
    }
    st = db->Write(wo, &wb);
    if (!st.ok()) return Unavailable("rocksdb probe: " + st.ToString());
    next += batch;
    pairs += batch;
  }
  db.reset();
  fs::remove_all(dir, ec);
  return ProbeResult{std::string("RocksDB put+delete, batch ") + std::to_string(batch) +
                         (sync ? ", fsync" : ", no fsync"),
                     double(pairs) / elapsed, elapsed};
}

StatusOr<ProbeResult> BrokerLimit(const std::string& bin_dir, std::vector<std::string> args) {
  args.push_back("--raw");
  DevicesRun run(bin_dir, std::move(args));
  auto j = run.Run();
  if (!j.ok()) return j.status().WithContext("broker probe");
  const double per_s = j->value("received_per_s", 0.0);
  const double received = j->value("received", 0.0);
  return ProbeResult{"MQTT broker alone (yard-devices --raw)", per_s,
                     per_s > 0 ? received / per_s : 0.0};
}

}  // namespace yard::bench
