#include "common/transport/socket.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <zmq.hpp>

namespace yard::transport {

struct Context::Impl {
  zmq::context_t ctx{1};
};

Context::Context() : impl_(std::make_unique<Impl>()) {}
Context::~Context() = default;
void* Context::raw() const { return &impl_->ctx; }

struct Socket::Impl {
  std::unique_ptr<zmq::socket_t> sock;
};

Socket::Socket() : impl_(std::make_unique<Impl>()) {}
Socket::~Socket() = default;
void* Socket::raw() const { return impl_->sock->handle(); }

StatusOr<std::unique_ptr<Socket>> Socket::Create(Context& ctx, SocketType type,
                                                 const SocketOptions& o) {
  auto* zctx = static_cast<zmq::context_t*>(ctx.raw());
  std::unique_ptr<Socket> s(new Socket());
  try {
    s->impl_->sock = std::make_unique<zmq::socket_t>(
        *zctx, type == SocketType::kRouter ? zmq::socket_type::router : zmq::socket_type::dealer);
    auto& z = *s->impl_->sock;
    z.set(zmq::sockopt::linger, o.linger_ms);
    z.set(zmq::sockopt::sndhwm, o.send_hwm);
    z.set(zmq::sockopt::rcvhwm, o.recv_hwm);
    if (o.max_message_bytes > 0) z.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
    if (type == SocketType::kRouter) {
      if (o.router_mandatory) z.set(zmq::sockopt::router_mandatory, 1);
      if (o.router_handover) z.set(zmq::sockopt::router_handover, 1);
    } else {
      if (!o.routing_id.empty()) z.set(zmq::sockopt::routing_id, o.routing_id);
      z.set(zmq::sockopt::reconnect_ivl, o.reconnect_ivl_ms);
      z.set(zmq::sockopt::reconnect_ivl_max, o.reconnect_ivl_max_ms);
      if (o.immediate) z.set(zmq::sockopt::immediate, 1);
    }
  } catch (const zmq::error_t& e) {
    return Internal(std::string("zmq socket: ") + e.what());
  }
  return s;
}

StatusOr<std::string> Socket::Bind(const std::string& endpoint) {
  try {
    impl_->sock->bind(endpoint);
    return impl_->sock->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    const StatusCode code =
        e.num() == EADDRINUSE ? StatusCode::kUnavailable : StatusCode::kInvalidArgument;
    return Status(code, "bind " + endpoint + ": " + e.what());
  }
}

void Socket::SetLinger(int ms) { impl_->sock->set(zmq::sockopt::linger, ms); }

Status Socket::Connect(const std::string& endpoint) {
  try {
    impl_->sock->connect(endpoint);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return InvalidArgument("connect " + endpoint + ": " + e.what());
  }
}

namespace {
template <typename Range>
Status SendFrames(zmq::socket_t& sock, const Range& frames) {
  const size_t n = frames.size();
  size_t i = 0;
  try {
    for (const auto& f : frames) {
      auto flags = zmq::send_flags::dontwait;
      if (++i < n) flags = flags | zmq::send_flags::sndmore;
      auto sent = sock.send(zmq::const_buffer(f.data(), f.size()), flags);
      if (!sent) {
        // EAGAIN on the first frame sends nothing; later frames of a message never block once
        // the first is accepted.
        return Unavailable("send would block");
      }
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return Unavailable("peer unknown");
    return Unavailable(std::string("send: ") + e.what());
  }
  return Status::Ok();
}
}  // namespace

Status Socket::Send(std::initializer_list<std::string_view> frames) {
  return SendFrames(*impl_->sock, frames);
}
Status Socket::Send(const std::vector<std::string_view>& frames) {
  return SendFrames(*impl_->sock, frames);
}

StatusOr<bool> Socket::Recv(Frames* out) {
  out->parts.clear();
  out->dropped_parts = 0;
  auto& sock = *impl_->sock;
  try {
    zmq::message_t msg;
    if (!sock.recv(msg, zmq::recv_flags::dontwait)) return false;
    while (true) {
      if (out->parts.size() < Frames::kMaxFrames) {
        out->parts.emplace_back(static_cast<const char*>(msg.data()), msg.size());
      } else {
        ++out->dropped_parts;
      }
      if (!msg.more()) break;
      // Remaining parts of a message are already here: ZeroMQ delivers messages atomically.
      if (!sock.recv(msg, zmq::recv_flags::none)) break;
    }
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;
    return Internal(std::string("recv: ") + e.what());
  }
  return true;
}

Notifier::Notifier() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    std::fprintf(stderr, "yard: eventfd: %s\n", std::strerror(errno));
    std::abort();
  }
}
Notifier::~Notifier() { close(fd_); }
void Notifier::Notify() {
  uint64_t one = 1;
  [[maybe_unused]] auto n = write(fd_, &one, sizeof(one));
}
void Notifier::Drain() {
  uint64_t v;
  [[maybe_unused]] auto n = read(fd_, &v, sizeof(v));
}

struct Poller::Impl {
  std::vector<zmq::pollitem_t> items;
};

Poller::Poller() : impl_(std::make_unique<Impl>()) {}
Poller::~Poller() = default;

size_t Poller::Add(const Socket& socket) {
  impl_->items.push_back({socket.raw(), 0, ZMQ_POLLIN, 0});
  return impl_->items.size() - 1;
}

size_t Poller::AddFd(int fd) {
  impl_->items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
  return impl_->items.size() - 1;
}

void Poller::SetFd(size_t index, int fd, bool want_read, bool want_write) {
  auto& it = impl_->items[index];
  it.fd = fd;
  // poll(2) skips negative descriptors, and an item with no events is never ready.
  it.events =
      fd < 0 ? 0
             : static_cast<short>((want_read ? ZMQ_POLLIN : 0) | (want_write ? ZMQ_POLLOUT : 0));
}

Status Poller::Poll(int timeout_ms) {
  for (auto& it : impl_->items) it.revents = 0;
  try {
    zmq::poll(impl_->items.data(), impl_->items.size(), std::chrono::milliseconds(timeout_ms));
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return Status::Ok();
    return Internal(std::string("poll: ") + e.what());
  }
  return Status::Ok();
}

bool Poller::Readable(size_t index) const {
  // An fd in error counts as readable so that its reader sees the error.
  return (impl_->items[index].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0;
}

bool Poller::Writable(size_t index) const {
  return (impl_->items[index].revents & ZMQ_POLLOUT) != 0;
}

}  // namespace yard::transport
