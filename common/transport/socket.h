// ZeroMQ transport: context, sockets, poll loop and a cross-thread wake-up. Knows frames, not
// message types. The only place that includes cppzmq.
//
// Threading (the actor rule): a Socket belongs to the one thread that created it; other threads
// reach that thread through their own queue plus a Notifier. Context is thread-safe.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace yard::transport {

class Context {
 public:
  Context();
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  // Opaque handle for Socket.
  void* raw() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class SocketType { kRouter, kDealer };

struct SocketOptions {
  int64_t max_message_bytes = -1;  // ZMQ_MAXMSGSIZE; peers sending more are disconnected
  bool router_mandatory = false;   // ROUTER: unroutable sends fail instead of vanishing
  bool router_handover = false;    // ROUTER: a reused routing id takes over the old pipe
  int linger_ms = 0;
  int send_hwm = 100000;  // messages; flow control is by credit, this is only a backstop
  int recv_hwm = 100000;
  std::string routing_id;  // DEALER: empty lets the ROUTER pick one
  int reconnect_ivl_ms = 100;
  int reconnect_ivl_max_ms = 5000;
  bool immediate = false;  // DEALER: queue only on completed connections
};

// One multipart message as received. Frames are copied out of ZeroMQ's buffers.
struct Frames {
  std::vector<std::string> parts;
  // Number of frames the sender sent past kMaxFrames (dropped, never stored).
  size_t dropped_parts = 0;
  static constexpr size_t kMaxFrames = 8;
};

class Socket {
 public:
  static StatusOr<std::unique_ptr<Socket>> Create(Context& ctx, SocketType type,
                                                  const SocketOptions& options);
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  // Binds and returns the endpoint actually bound (a port 0 request is resolved).
  StatusOr<std::string> Bind(const std::string& endpoint);
  Status Connect(const std::string& endpoint);

  // How long closing the socket may wait to deliver messages still queued (0: drop them).
  void SetLinger(int ms);

  // Sends one multipart message without blocking. kUnavailable when the peer is unknown or
  // its queue is full (ROUTER_MANDATORY) or the socket would block; nothing is sent then.
  Status Send(std::initializer_list<std::string_view> frames);
  Status Send(const std::vector<std::string_view>& frames);

  // Receives one multipart message without blocking; returns false when none is waiting.
  StatusOr<bool> Recv(Frames* out);

  // Opaque handle for Poller.
  void* raw() const;

 private:
  Socket();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Wakes a thread blocked in Poller::Poll from any other thread (an eventfd).
class Notifier {
 public:
  Notifier();
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;
  void Notify();  // thread-safe, async-signal-safe
  void Drain();   // called by the polling thread once woken
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Readiness poll over sockets and file descriptors (zmq::poll; no draft API needed).
class Poller {
 public:
  Poller();
  ~Poller();
  // Each returns the index used with Readable().
  size_t Add(const Socket& socket);
  size_t AddFd(int fd);
  // Points item `index` (from AddFd) at another descriptor (-1: none, never ready) and says
  // what to wait for. For fds that change, such as a reconnecting MQTT client's socket.
  void SetFd(size_t index, int fd, bool want_read, bool want_write);
  // Waits until something is readable or `timeout_ms` passes (-1: forever). EINTR is not an
  // error: it returns OK with nothing readable so the caller can check its stop flag.
  Status Poll(int timeout_ms);
  bool Readable(size_t index) const;
  bool Writable(size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace yard::transport
