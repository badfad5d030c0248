#include "master/plugins/mqtt/mqtt_plugin.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "common/transport/socket.h"
#include "master/plugins/mqtt/config.h"
#include "master/plugins/mqtt/ingest.h"

namespace yard::mqtt {
namespace {

// On Stop: how long buffered messages may take to become durable, and replies to go out.
constexpr Micros kStopGrace = 5 * kSeconds;
// Most libmosquitto read steps per loop turn, so that the loop serves the core's answers too.
constexpr int kMaxReadsPerTurn = 512;

class MqttPlugin final : public plugins::Plugin, public Publisher {
 public:
  MqttPlugin(MqttConfig config, plugins::PluginHost host)
      : config_(std::move(config)), host_(std::move(host)) {}
  ~MqttPlugin() override { Stop(); }

  Status Start() override {
    static std::once_flag init;
    std::call_once(init, [] { mosquitto_lib_init(); });
    ASSIGN_OR_RETURN(api_, host_.make_api());
    mosq_ = mosquitto_new(config_.client_id.c_str(), /*clean_session=*/false, this);
    if (!mosq_) return Internal("mqtt: cannot create the client");
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION,
                         config_.protocol == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
    mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
    if (!config_.username.empty()) {
      mosquitto_username_pw_set(mosq_, config_.username.c_str(),
                                config_.password.empty() ? nullptr : config_.password.c_str());
    }
    if (!config_.tls_ca_file.empty()) {
      const int rc = mosquitto_tls_set(
          mosq_, config_.tls_ca_file.c_str(), nullptr,
          config_.tls_cert_file.empty() ? nullptr : config_.tls_cert_file.c_str(),
          config_.tls_key_file.empty() ? nullptr : config_.tls_key_file.c_str(), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) {
        return InvalidArgument(std::string("mqtt: TLS settings: ") + mosquitto_strerror(rc));
      }
      mosquitto_tls_insecure_set(mosq_, config_.tls_insecure);
    }
    mosquitto_connect_v5_callback_set(
        mosq_, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
          static_cast<MqttPlugin*>(self)->OnConnect(rc);
        });
    mosquitto_disconnect_v5_callback_set(
        mosq_, [](mosquitto*, void* self, int rc, const mosquitto_property*) {
          static_cast<MqttPlugin*>(self)->OnDisconnect(rc);
        });
    mosquitto_message_v5_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m,
                                                const mosquitto_property* props) {
      static_cast<MqttPlugin*>(self)->OnMessage(m, props);
    });
    ingest_ = std::make_unique<Ingest>(config_, *api_, *this, *host_.metrics, *host_.clock);
    thread_ = std::thread([this] { Run(); });
    spdlog::info("mqtt: started (brokers {}, client id {}, {} rule(s))", BrokerList(),
                 config_.client_id, config_.rules.size());
    return Status::Ok();
  }

  void Stop() override {
    stop_ = true;
    wake_.Notify();
    if (thread_.joinable()) thread_.join();
    if (mosq_) {
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
    }
  }

  bool Publish(const std::string& topic, const std::string& payload, int qos,
               const std::string& correlation) override {
    if (!connected_) return false;  // the device's request times out and it asks again
    mosquitto_property* props = nullptr;
    if (config_.protocol == 5 && !correlation.empty()) {
      mosquitto_property_add_binary(
          &props, MQTT_PROP_CORRELATION_DATA, correlation.data(),
          static_cast<uint16_t>(std::min<size_t>(correlation.size(), 65535)));
    }
    const int rc =
        mosquitto_publish_v5(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                             payload.data(), qos, false, props);
    mosquitto_property_free_all(&props);
    return rc == MOSQ_ERR_SUCCESS;
  }

 private:
  std::string BrokerList() const {
    std::string s;
    for (const auto& b : config_.brokers) s += (s.empty() ? "" : ", ") + b.ToString();
    return s;
  }
  Metrics& metrics() { return *host_.metrics; }
  Micros Now() const { return host_.clock->Now(); }

  void OnConnect(int rc) {
    const Broker& b = config_.brokers[broker_];
    if (rc != 0) {
      const char* why =
          config_.protocol == 5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
      spdlog::error("mqtt: {} refused the connection: {}", b.ToString(), why);
      metrics().Add("mqtt.connect_failures");
      return;  // the read fails next; OnLoopError then schedules the next try
    }
    connecting_ = false;
    connected_ = true;
    backoff_ = 0;
    metrics().Add("mqtt.connects");
    metrics().Set("mqtt.connected", 1);
    spdlog::info("mqtt: connected to {}", b.ToString());
    for (const char* level : {"/+/telemetry/#", "/+/requests/+"}) {
      const std::string filter = config_.prefix + level;
      const int src = mosquitto_subscribe(mosq_, nullptr, filter.c_str(), config_.qos);
      if (src != MOSQ_ERR_SUCCESS) {
        spdlog::error("mqtt: cannot subscribe to {}: {}", filter, mosquitto_strerror(src));
      }
    }
  }

  // Called by libmosquitto or by us; the first call for a connection does the work.
  void OnDisconnect(int rc) {
    if (!connected_ && !connecting_) return;
    if (connected_) {
      metrics().Add("mqtt.disconnects");
      if (!parked_ && !stop_) {
        spdlog::warn("mqtt: lost {}: {}", config_.brokers[broker_].ToString(),
                     mosquitto_strerror(rc));
      }
    }
    connected_ = false;
    connecting_ = false;
    metrics().Set("mqtt.connected", 0);
    if (!parked_) ScheduleReconnect();
  }

  void ScheduleReconnect() {
    // Exponential back-off with jitter; each failure moves on to the next broker.
    backoff_ =
        backoff_ == 0 ? config_.reconnect_min : std::min(backoff_ * 2, config_.reconnect_max);
    std::uniform_int_distribution<Micros> jitter(0, backoff_ / 4);
    next_connect_ = Now() + backoff_ + jitter(rng_);
    broker_ = (broker_ + 1) % config_.brokers.size();
  }

  void Connect() {
    const Broker& b = config_.brokers[broker_];
    connecting_ = true;
    connect_started_ = Now();
    int rc;
    if (config_.protocol == 5) {
      // MQTT 5 sessions end at disconnect unless the client asks for an expiry. This call
      // connects synchronously (libmosquitto has no asynchronous MQTT 5 connect with
      // properties): it blocks this plugin's thread only, for one TCP connect.
      mosquitto_property* props = nullptr;
      mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                   config_.session_expiry_s);
      rc = mosquitto_connect_bind_v5(mosq_, b.host.c_str(), b.port,
                                     static_cast<int>(config_.keepalive_s), nullptr, props);
      mosquitto_property_free_all(&props);
    } else {
      rc = mosquitto_connect_bind_async(mosq_, b.host.c_str(), b.port,
                                        static_cast<int>(config_.keepalive_s), nullptr);
    }
    if (rc != MOSQ_ERR_SUCCESS) {
      connecting_ = false;
      metrics().Add("mqtt.connect_failures");
      const Micros now = Now();
      if (now >= next_connect_log_) {
        spdlog::warn("mqtt: cannot connect to {}: {}", b.ToString(),
                     rc == MOSQ_ERR_ERRNO ? std::strerror(errno) : mosquitto_strerror(rc));
        next_connect_log_ = now + 5 * kSeconds;
      }
      ScheduleReconnect();
    }
  }

  void OnMessage(const mosquitto_message* m, const mosquitto_property* props) {
    Message msg;
    msg.topic = m->topic;
    msg.payload.assign(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen));
    msg.qos = m->qos;
    if (props) {
      void* data = nullptr;
      uint16_t len = 0;
      if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &data, &len, false)) {
        msg.correlation.assign(static_cast<const char*>(data), len);
        free(data);  // NOLINT: libmosquitto allocates with malloc
      }
      char* topic = nullptr;
      if (mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &topic, false)) {
        msg.response_topic = topic;
        free(topic);  // NOLINT
      }
    }
    ++received_;
    ingest_->OnMessage(msg);
  }

  // The socket failed: libmosquitto has closed it (or will on the next call).
  void OnLoopError(int rc) {
    if (rc == MOSQ_ERR_SUCCESS) return;
    if (connected_ || connecting_) {
      mosquitto_disconnect(mosq_);
      OnDisconnect(rc);
    }
  }

  void Run() {
    transport::Poller poller;
    api_->AddTo(poller);
    const size_t wake_idx = poller.AddFd(wake_.fd());
    const size_t mqtt_idx = poller.AddFd(-1);
    Micros stop_deadline = 0;
    while (true) {
      const Micros now = Now();
      if (stop_ && stop_deadline == 0) {
        stop_deadline = now + kStopGrace;
        ingest_->FlushAll();
        spdlog::info("mqtt: stopping: {} message(s) to make durable", ingest_->buffered());
      }
      if (stop_deadline != 0 && (ingest_->buffered() == 0 || now >= stop_deadline)) break;
      // Long pauses: leave the broker (it keeps our session and queues QoS 1 messages) rather
      // than stop reading past the keepalive, which would end the connection anyway.
      if (ingest_->paused() && connected_ &&
          ingest_->paused_for() > Micros{config_.keepalive_s} * kSeconds / 2) {
        spdlog::warn(
            "mqtt: paused for long: disconnecting until the queue falls (the broker "
            "holds QoS 1 messages meanwhile)");
        parked_ = true;
        metrics().Add("mqtt.pause_disconnects");
        mosquitto_disconnect(mosq_);
      }
      if (parked_ && !ingest_->paused()) {
        parked_ = false;
        next_connect_ = now;
      }
      if (!connected_ && !connecting_ && !parked_ && stop_deadline == 0 && now >= next_connect_) {
        Connect();
      }
      // A closed connection's socket may linger in libmosquitto until the next connect.
      const int fd = connected_ || connecting_ ? mosquitto_socket(mosq_) : -1;
      const bool reading = connected_ && stop_deadline == 0 && ingest_->WantRead();
      // Until the CONNACK arrives the socket is read too (the CONNACK is all that comes).
      poller.SetFd(mqtt_idx, fd, reading || connecting_, mosquitto_want_write(mosq_));
      if (Status st = poller.Poll(api::MasterApi::kMaxProcessIntervalMs); !st.ok()) {
        spdlog::error("mqtt: poll: {}", st.ToString());
      }
      if (poller.Readable(wake_idx)) wake_.Drain();
      api_->Process();  // answers, and the API's timers
      if (fd >= 0 && poller.Writable(mqtt_idx)) OnLoopError(mosquitto_loop_write(mosq_, 1));
      if (fd >= 0 && poller.Readable(mqtt_idx)) {
        for (int i = 0; i < kMaxReadsPerTurn; ++i) {
          const uint64_t before = received_;
          const int rc = mosquitto_loop_read(mosq_, 1);
          if (rc != MOSQ_ERR_SUCCESS) {
            OnLoopError(rc);
            break;
          }
          if (received_ == before || !(connected_ && ingest_->WantRead())) break;
        }
      }
      if (connecting_ && !connected_ && Now() - connect_started_ > 10 * kSeconds) {
        spdlog::warn("mqtt: no answer from {} within 10 s", config_.brokers[broker_].ToString());
        mosquitto_disconnect(mosq_);
        OnDisconnect(MOSQ_ERR_NO_CONN);
      }
      if (connected_ || connecting_) OnLoopError(mosquitto_loop_misc(mosq_));
      ingest_->Tick();
      if (mosquitto_want_write(mosq_)) OnLoopError(mosquitto_loop_write(mosq_, 1));
    }
    if (ingest_->buffered() > 0) {
      spdlog::error(
          "mqtt: stopped with {} message(s) not made durable (acknowledged to the "
          "broker: lost)",
          ingest_->buffered());
      metrics().Add("mqtt.lost_at_stop", ingest_->buffered());
    }
    if (ingest_->awaiting_reply() > 0) {
      spdlog::info("mqtt: {} request(s) still running get no reply from this process",
                   ingest_->awaiting_reply());
    }
    // Replies already queued in libmosquitto get a moment to leave.
    const Micros flush_until = Now() + 500 * kMillis;
    while (connected_ && mosquitto_want_write(mosq_) && Now() < flush_until) {
      OnLoopError(mosquitto_loop_write(mosq_, 1));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (connected_ || connecting_) {
      parked_ = true;  // no reconnect
      mosquitto_disconnect(mosq_);
      mosquitto_loop_write(mosq_, 1);
    }
    metrics().Set("mqtt.connected", 0);
    spdlog::info("mqtt: stopped");
  }

  MqttConfig config_;
  plugins::PluginHost host_;
  std::unique_ptr<api::MasterApi> api_;
  std::unique_ptr<Ingest> ingest_;
  mosquitto* mosq_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  transport::Notifier wake_;
  std::mt19937_64 rng_{std::random_device{}()};
  // Loop-thread state.
  bool connected_ = false;
  bool connecting_ = false;
  bool parked_ = false;  // disconnected on purpose (long pause, stop)
  size_t broker_ = 0;
  Micros backoff_ = 0;
  Micros next_connect_ = 0;
  Micros connect_started_ = 0;
  Micros next_connect_log_ = 0;
  uint64_t received_ = 0;
};

class MqttPluginFactory final : public plugins::PluginFactory {
 public:
  std::string name() const override { return "mqtt"; }
  std::string description() const override {
    return "device telemetry and requests from an MQTT broker (libmosquitto) into tasks; "
           "replies on yard/devices/{id}/responses/{request_id}";
  }
  StatusOr<std::unique_ptr<plugins::Plugin>> Create(
      const toml::table& section, const plugins::PluginHost& host) const override {
    ASSIGN_OR_RETURN(MqttConfig config, ParseMqttConfig(section));
    return std::unique_ptr<plugins::Plugin>(std::make_unique<MqttPlugin>(std::move(config), host));
  }
};

}  // namespace

std::unique_ptr<plugins::PluginFactory> MakeMqttPluginFactory() {
  return std::make_unique<MqttPluginFactory>();
}

}  // namespace yard::mqtt
