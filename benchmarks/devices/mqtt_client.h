// A thin libmosquitto wrapper for the device simulator: one MQTT 3.1.1 connection driven by its
// owner's thread through libmosquitto's external-loop calls (no libmosquitto thread, no
// select() on its wake-up socket pair), so a publish goes straight to the socket and a batch of
// publishes can be corked into few TCP segments.
#pragma once

#include <mosquitto.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace yard::devices {

struct BrokerAddress {
  std::string host;
  int port = 1883;

  std::string ToString() const;
};

// "tcp://host:port", "mqtt://host:port", "host:port", "host" (port 1883), "[v6addr]:port".
StatusOr<BrokerAddress> ParseBrokerUrl(std::string_view url);

// Resolves `broker` and opens (then closes) a TCP connection to it, trying each address in turn
// until `timeout` passes. Returns the numeric address that answered, for the clients to use.
StatusOr<BrokerAddress> ProbeBroker(const BrokerAddress& broker, Micros timeout);

struct ClientOptions {
  std::string client_id;
  std::string username;  // empty: none
  std::string password;
  bool clean_session = true;
  int max_inflight =
      0;  // QoS 1 publishes awaiting PUBACK before libmosquitto queues; 0: its default
  bool cork_reads = false;  // batch the acknowledgements written while reading (QoS 1 subscriber)
};

// Not thread-safe: after construction only one thread may use an instance. Callbacks run inside
// Publish() (QoS 0: once written) and Pump().
class MqttClient {
 public:
  explicit MqttClient(const ClientOptions& options);
  virtual ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Opens the TCP connection and sends CONNECT; OnConnect() follows from a later Pump().
  Status Connect(const BrokerAddress& broker, int keepalive_s);
  // Waits up to `timeout` for the socket, then reads every packet there is (running callbacks),
  // writes what is pending, and sends keep-alives. An error means the connection is gone.
  Status Pump(Micros timeout);
  // mosquitto_publish(); MOSQ_ERR_SUCCESS when written or queued for writing.
  int Publish(const std::string& topic, std::string_view payload, int qos, int* mid = nullptr);
  // Subscribes to `filters` (in SUBSCRIBE packets of up to 100); returns how many packets were
  // sent, each answered by one OnSubscribe().
  StatusOr<int> Subscribe(const std::vector<std::string>& filters, int qos);
  // True while bytes wait for the socket to drain: a publisher should Pump() before more.
  bool WantWrite();
  // TCP_CORK: holds small writes until uncorked, so a batch leaves in few segments.
  void Cork(bool on);
  // Sends DISCONNECT (best effort) and closes the socket.
  void Disconnect();
  bool connected() const { return connected_; }

 protected:
  virtual void OnConnect(int /*rc*/) {}
  virtual void OnPublish(int /*mid*/) {}
  virtual void OnMessage(const mosquitto_message& /*msg*/) {}
  virtual void OnSubscribe(int /*mid*/, bool /*granted*/) {}

 private:
  Status Lost(int rc, int saved_errno) const;

  mosquitto* mosq_ = nullptr;
  bool cork_reads_ = false;
  bool corked_ = false;
  bool connected_ = false;
  uint64_t events_ = 0;  // bumped by every callback: tells Pump() a read made progress
  Micros next_misc_ = 0;
};

}  // namespace yard::devices
