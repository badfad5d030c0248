#include "benchmarks/devices/mqtt_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace yard::devices {
namespace {

constexpr int kSubscribeChunk = 100;
constexpr int kMaxReadsPerPump = 4096;  // then write and check the clock again
constexpr Micros kMiscInterval = 1 * kSeconds;

Micros Now() { return SystemClock::Get().Now(); }

timespec ToTimespec(Micros us) {
  if (us < 0) us = 0;
  return timespec{static_cast<time_t>(us / kSeconds), static_cast<long>((us % kSeconds) * 1000)};
}

std::string ErrnoText(int err) { return std::strerror(err); }

}  // namespace

std::string BrokerAddress::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

StatusOr<BrokerAddress> ParseBrokerUrl(std::string_view url) {
  const std::string original(url);
  auto bad = [&](const std::string& why) {
    return InvalidArgument("broker '" + original + "': " + why +
                           " (expected tcp://host:port, host:port or host)");
  };
  if (const size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    const std::string_view name = url.substr(0, scheme);
    if (name != "tcp" && name != "mqtt")
      return bad("unsupported scheme '" + std::string(name) + "'");
    url.remove_prefix(scheme + 3);
  }
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  BrokerAddress out;
  std::string_view port;
  if (!url.empty() && url.front() == '[') {
    const size_t close = url.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    out.host = std::string(url.substr(1, close - 1));
    const std::string_view rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("junk after ']'");
      port = rest.substr(1);
    }
  } else if (const size_t colon = url.find(':');
             colon != std::string_view::npos &&
             url.find(':', colon + 1) == std::string_view::npos) {
    out.host = std::string(url.substr(0, colon));
    port = url.substr(colon + 1);
  } else {
    out.host = std::string(url);  // a name, an IPv4 address or a bare IPv6 address
  }
  if (out.host.empty()) return bad("no host");
  if (port.data() != nullptr) {
    int value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return bad("bad port '" + std::string(port) + "'");
    }
    out.port = value;
  }
  return out;
}

StatusOr<BrokerAddress> ProbeBroker(const BrokerAddress& broker, Micros timeout) {
  const Micros deadline = Now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(broker.port);
  if (int rc = getaddrinfo(broker.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Unavailable("cannot resolve broker host '" + broker.host + "': " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = ErrnoText(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n;
        do {
          const timespec ts = ToTimespec(deadline - Now());
          n = ppoll(&p, 1, &ts, nullptr);
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
      }
    }
    if (err == 0) {
      char host[NI_MAXHOST];
      const int rc =
          getnameinfo(a->ai_addr, a->ai_addrlen, host, sizeof(host), nullptr, 0, NI_NUMERICHOST);
      close(fd);
      freeaddrinfo(found);
      if (rc != 0) return Unavailable(std::string("getnameinfo: ") + gai_strerror(rc));
      return BrokerAddress{host, broker.port};
    }
    close(fd);
    last_error = err == ETIMEDOUT ? "no answer in time" : ErrnoText(err);
    if (Now() >= deadline) break;
  }
  freeaddrinfo(found);
  return Unavailable("cannot reach the broker at " + broker.ToString() + ": " + last_error);
}

MqttClient::MqttClient(const ClientOptions& options) : cork_reads_(options.cork_reads) {
  mosq_ = mosquitto_new(options.client_id.c_str(), options.clean_session, this);
  if (mosq_ == nullptr) return;  // Connect() reports it
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);  // latency; batches are corked instead
  if (options.max_inflight > 0) {
    mosquitto_int_option(mosq_, MOSQ_OPT_SEND_MAXIMUM, options.max_inflight);
  }
  if (!options.username.empty()) {
    mosquitto_username_pw_set(mosq_, options.username.c_str(),
                              options.password.empty() ? nullptr : options.password.c_str());
  }
  mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
    auto* c = static_cast<MqttClient*>(self);
    ++c->events_;
    c->connected_ = rc == 0;
    c->OnConnect(rc);
  });
  mosquitto_disconnect_callback_set(mosq_, [](mosquitto*, void* self, int) {
    auto* c = static_cast<MqttClient*>(self);
    ++c->events_;
    c->connected_ = false;
  });
  mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int mid) {
    auto* c = static_cast<MqttClient*>(self);
    ++c->events_;
    c->OnPublish(mid);
  });
  mosquitto_message_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m) {
    auto* c = static_cast<MqttClient*>(self);
    ++c->events_;
    c->OnMessage(*m);
  });
  mosquitto_subscribe_callback_set(
      mosq_, [](mosquitto*, void* self, int mid, int count, const int* granted) {
        auto* c = static_cast<MqttClient*>(self);
        ++c->events_;
        bool ok = true;
        for (int i = 0; i < count; ++i) ok = ok && granted[i] != 0x80;
        c->OnSubscribe(mid, ok);
      });
}

MqttClient::~MqttClient() {
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

Status MqttClient::Lost(int rc, int saved_errno) const {
  std::string why = rc == MOSQ_ERR_ERRNO ? ErrnoText(saved_errno) : mosquitto_strerror(rc);
  return Unavailable("connection to the broker lost: " + why);
}

Status MqttClient::Connect(const BrokerAddress& broker, int keepalive_s) {
  if (mosq_ == nullptr) return Internal("mosquitto_new failed");
  const int rc = mosquitto_connect(mosq_, broker.host.c_str(), broker.port, keepalive_s);
  if (rc != MOSQ_ERR_SUCCESS) {
    const int err = errno;
    std::string why = rc == MOSQ_ERR_ERRNO ? ErrnoText(err)
                      : rc == MOSQ_ERR_EAI ? std::string(gai_strerror(err))
                                           : std::string(mosquitto_strerror(rc));
    return Unavailable("cannot connect to the broker at " + broker.ToString() + ": " + why);
  }
  next_misc_ = Now() + kMiscInterval;
  return Status::Ok();
}

Status MqttClient::Pump(Micros timeout) {
  const int fd = mosquitto_socket(mosq_);
  if (fd < 0) return Unavailable("not connected to the broker");
  pollfd p{fd, POLLIN, 0};
  if (mosquitto_want_write(mosq_)) p.events |= POLLOUT;
  const timespec ts = ToTimespec(timeout);
  const int n = ppoll(&p, 1, &ts, nullptr);
  if (n < 0 && errno != EINTR) return Internal("ppoll: " + ErrnoText(errno));
  if (n > 0) {
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      if (cork_reads_) Cork(true);
      for (int i = 0; i < kMaxReadsPerPump; ++i) {
        const uint64_t before = events_;
        const int rc = mosquitto_loop_read(mosq_, 1);
        if (rc != MOSQ_ERR_SUCCESS) return Lost(rc, errno);
        if (events_ == before || mosquitto_socket(mosq_) < 0) break;  // nothing complete
      }
      if (cork_reads_) Cork(false);
    }
    if ((p.revents & POLLOUT) && mosquitto_socket(mosq_) >= 0) {
      const int rc = mosquitto_loop_write(mosq_, 1);
      if (rc != MOSQ_ERR_SUCCESS) return Lost(rc, errno);
    }
  }
  if (mosquitto_socket(mosq_) < 0) return Unavailable("connection to the broker closed");
  const Micros now = Now();
  if (now >= next_misc_) {
    next_misc_ = now + kMiscInterval;
    const int rc = mosquitto_loop_misc(mosq_);
    if (rc != MOSQ_ERR_SUCCESS) return Lost(rc, errno);
  }
  return Status::Ok();
}

int MqttClient::Publish(const std::string& topic, std::string_view payload, int qos, int* mid) {
  return mosquitto_publish(mosq_, mid, topic.c_str(), static_cast<int>(payload.size()),
                           payload.data(), qos, false);
}

StatusOr<int> MqttClient::Subscribe(const std::vector<std::string>& filters, int qos) {
  int packets = 0;
  std::vector<char*> chunk;
  for (size_t i = 0; i < filters.size(); i += kSubscribeChunk) {
    chunk.clear();
    for (size_t j = i; j < filters.size() && j < i + kSubscribeChunk; ++j) {
      chunk.push_back(const_cast<char*>(filters[j].c_str()));
    }
    const int rc = mosquitto_subscribe_multiple(mosq_, nullptr, static_cast<int>(chunk.size()),
                                                chunk.data(), qos, 0, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) {
      return Unavailable(std::string("subscribe: ") + mosquitto_strerror(rc));
    }
    ++packets;
  }
  return packets;
}

bool MqttClient::WantWrite() { return mosquitto_want_write(mosq_); }

void MqttClient::Cork(bool on) {
  if (on == corked_) return;
  const int fd = mosquitto_socket(mosq_);
  if (fd < 0) return;
  const int value = on ? 1 : 0;
  setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof(value));
  corked_ = on;
}

void MqttClient::Disconnect() {
  if (mosq_ == nullptr || mosquitto_socket(mosq_) < 0) return;
  Cork(false);
  mosquitto_disconnect(mosq_);
  // DISCONNECT may wait behind unwritten publishes; give them a moment, then close regardless.
  const Micros deadline = Now() + 1 * kSeconds;
  while (mosquitto_socket(mosq_) >= 0 && Now() < deadline) {
    if (!Pump(10 * kMillis).ok()) break;
  }
}

}  // namespace yard::devices
