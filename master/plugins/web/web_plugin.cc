#include "master/plugins/web/web_plugin.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <utility>

#include "common/protocol/json.h"
#include "common/transport/socket.h"
#include "master/api/await.h"
#include "master/plugins/web/assets.h"
#include "master/plugins/web/config.h"
#include "master/plugins/web/live.h"
#include "master/plugins/web/prometheus.h"
#include "master/plugins/web/rest.h"

namespace yard::web {
namespace {

using httplib::Request;
using httplib::Response;
using protocol::TaskInfo;
using protocol::TaskState;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxBatchTasks = 10000;
// GET /tasks with since/until filters the core's pages itself: at most this many per request.
constexpr int kMaxFilteredPages = 10;
// GET /devices/{device}/tasks walks the device's tasks oldest first: at most this many pages.
constexpr int kMaxDevicePages = 20;
constexpr uint32_t kDefaultDeviceTasks = 20;
constexpr uint32_t kMaxDeviceTasks = 200;
// The live snapshot: jobs and failures shown, and the pages of new failures read per sample.
constexpr size_t kSnapshotJobs = 20;
constexpr size_t kSnapshotFailures = 20;
constexpr int kFailurePagesPerSample = 5;
// Dead letters counted per sample; past this the snapshot says "dead_more".
constexpr uint32_t kDeadCountPage = 1000;
// Bulk requeue and purge ("all": true) ask the core page by page, at most this many pages.
constexpr int kMaxBulkPages = 10000;
constexpr Micros kReadyTimeout = 1 * kSeconds;
constexpr Micros kMaxResultWait = 60 * kSeconds;
// A connection that waited longer than this for an HTTP thread is refused with 503.
constexpr Micros kMaxQueueWait = 1 * kSeconds;
constexpr size_t kKeepAliveRequests = 100;

std::string UrlOf(const std::string& host, uint16_t port, bool tls) {
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(tls ? "https://" : "http://") + (v6 ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

bool IsLoopback(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost";
}

// Bearer tokens compared in constant time, so that timing does not reveal a prefix.
bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// ---------------------------------------------------------------------------------------
// Blocking calls on the asynchronous MasterApi: each HTTP thread borrows one MasterApi (its
// own DEALER and poller) and waits for the answer. A call that times out drops its MasterApi
// (the late answer goes nowhere) rather than return it to the pool with a stale callback.
class ApiPool {
 public:
  explicit ApiPool(std::function<StatusOr<std::unique_ptr<api::MasterApi>>()> make)
      : make_(std::move(make)) {}

  template <typename T, typename Start>
  StatusOr<T> Call(Micros timeout, Start&& start) {
    ASSIGN_OR_RETURN(auto slot, Borrow());
    auto out = api::Await<T>(*slot->api, slot->poller, timeout, std::forward<Start>(start));
    if (!out) {  // the slot's API still owes an answer: drop it
      return Unavailable("the core did not answer within " + std::to_string(timeout / kMillis) +
                         " ms");
    }
    Return(std::move(slot));
    return std::move(*out);
  }

 private:
  struct Slot {
    std::unique_ptr<api::MasterApi> api;
    transport::Poller poller;
  };
  StatusOr<std::unique_ptr<Slot>> Borrow() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        auto s = std::move(idle_.back());
        idle_.pop_back();
        return s;
      }
    }
    auto s = std::make_unique<Slot>();
    ASSIGN_OR_RETURN(s->api, make_());
    s->api->AddTo(s->poller);
    return s;
  }
  void Return(std::unique_ptr<Slot> s) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(s));
  }

  std::function<StatusOr<std::unique_ptr<api::MasterApi>>()> make_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Slot>> idle_;
};

// At most `per_second` log lines a second for rejected requests; the rest are only counted.
class LogLimiter {
 public:
  bool Allow() {
    const int64_t second =
        std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now().time_since_epoch())
            .count();
    if (second != second_.exchange(second)) count_ = 0;
    return count_.fetch_add(1) < kPerSecond;
  }

 private:
  static constexpr int kPerSecond = 10;
  std::atomic<int64_t> second_{0};
  std::atomic<int> count_{0};
};

// What the HTTP metrics and the refusal log need of a request, kept per thread: httplib
// handles one request on one thread from reading it to logging it.
struct RequestContext {
  SteadyClock::time_point start;
  std::string route;  // the matched pattern; empty: unmatched
  std::string method, path;
};
thread_local RequestContext t_request;
// How long the connection this thread serves waited for a thread; reset after its first
// request.
thread_local SteadyClock::duration t_queue_wait{};

// httplib's ThreadPool, plus the time each connection waited in the queue: a connection
// that waited longer than the plugin allows is answered 503 at once (overload), so a flood
// of connections gets fast refusals instead of ever slower answers.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  explicit ConnectionPool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      jobs_.emplace_back(SteadyClock::now(), std::move(fn));
    }
    cv_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void Work() {
    while (true) {
      std::pair<SteadyClock::time_point, std::function<void()>> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // shutting down, nothing left
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      t_queue_wait = SteadyClock::now() - job.first;
      job.second();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<SteadyClock::time_point, std::function<void()>>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

// A route's method and path pattern, to tell 405 from 404.
struct Route {
  std::string method;
  std::regex re;
};

// The "queue" object of GET /queue and the live snapshot.
Json QueueJson(const Counters& s) {
  auto get = [&](const char* k) { return CounterValue(s, k); };
  Json q = {{"queued", get("tasks.queued")},   {"ready", get("tasks.ready")},
            {"running", get("tasks.running")}, {"scheduled", get("tasks.scheduled")},
            {"active", get("tasks.active")},   {"by_priority", Json::object()},
            {"by_type", Json::object()}};
  const std::string_view kPriority = "tasks.queued_by_priority.";
  const std::string_view kType = "tasks.active_by_type.";
  for (const auto& [k, v] : s) {
    const std::string_view n = k;
    if (n.starts_with(kPriority) && v > 0) q["by_priority"][k.substr(kPriority.size())] = v;
    if (n.starts_with(kType) && v > 0) q["by_type"][k.substr(kType.size())] = v;
  }
  return q;
}

Json TaskList(const std::vector<TaskInfo>& tasks, std::optional<uint64_t> next_cursor) {
  Json list = Json::array();
  for (const auto& t : tasks) list.push_back(protocol::TaskJson(t, /*with_result=*/false));
  return {{"tasks", std::move(list)},
          {"next_cursor", next_cursor ? Json(std::to_string(*next_cursor)) : Json(nullptr)}};
}

class WebPlugin final : public plugins::Plugin {
 public:
  WebPlugin(WebConfig config, plugins::PluginHost host)
      : config_(std::move(config)), host_(std::move(host)), pool_(host_.make_api) {}
  ~WebPlugin() override { Stop(); }

  Status Start() override {
    if (config_.tls()) {
      auto tls = std::make_unique<httplib::SSLServer>(config_.tls_cert_file.c_str(),
                                                      config_.tls_key_file.c_str());
      if (!tls->is_valid()) {
        return InvalidArgument("web: cannot load the TLS certificate " + config_.tls_cert_file +
                               " or key " + config_.tls_key_file);
      }
      http_ = std::move(tls);
    } else {
      http_ = std::make_unique<httplib::Server>();
    }
    Configure();
    AddRoutes();
    int port = config_.port;
    if (port == 0) {
      port = http_->bind_to_any_port(config_.host);
    } else if (!http_->bind_to_port(config_.host, port)) {
      port = -1;
    }
    if (port <= 0) {
      return Unavailable("web: cannot listen on " + UrlOf(config_.host, config_.port, false));
    }
    const std::string url = UrlOf(config_.host, static_cast<uint16_t>(port), config_.tls());
    if (host_.announce) host_.announce("web_url", url);
    if (!config_.auth() && !IsLoopback(config_.host)) {
      spdlog::warn("web: no [[web.tokens]]: anyone who reaches {} may submit and cancel", url);
    }
    sampler_ = std::thread([this] { SampleLoop(); });
    listener_ = std::thread([this] { http_->listen_after_bind(); });
    // httplib's stop() does nothing until the listener runs: wait for it, so a Stop() right
    // after Start() cannot leave the listener running.
    for (int i = 0; i < 5000 && !http_->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    spdlog::info("web: serving the API, dashboard and metrics on {} ({} threads, auth {})", url,
                 config_.threads, config_.auth() ? "on" : "off");
    return Status::Ok();
  }

  void Stop() override {
    if (!http_) return;
    {
      std::lock_guard lock(live_mu_);
      stopping_ = true;
    }
    live_cv_.notify_all();
    http_->stop();
    if (listener_.joinable()) listener_.join();
    if (sampler_.joinable()) sampler_.join();
    http_.reset();
  }

 private:
  Metrics& metrics() { return *host_.metrics; }

  void Configure() {
    const size_t threads = config_.threads + config_.max_sse_clients;
    http_->new_task_queue = [threads] { return new ConnectionPool(threads); };
    http_->set_payload_max_length(config_.max_body_bytes);
    const auto io = std::chrono::microseconds(config_.io_timeout);
    http_->set_read_timeout(io);
    http_->set_write_timeout(io);
    http_->set_keep_alive_timeout(std::max<time_t>(1, config_.io_timeout / kSeconds));
    http_->set_tcp_nodelay(true);
    // httplib closes a kept-alive connection after this many requests (default 5), which
    // lets waiting connections in; 100 keeps reconnects rare under steady load.
    http_->set_keep_alive_max_count(kKeepAliveRequests);
    http_->set_pre_routing_handler([this](const Request& req, Response& res) {
      t_request = {SteadyClock::now(), "", req.method, req.path};
      const auto waited = std::exchange(t_queue_wait, {});
      if (waited > std::chrono::microseconds(kMaxQueueWait)) {
        Fail(res, {503, "unavailable", "overloaded: every HTTP thread is busy"});
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http_->set_error_handler(
        httplib::Server::HandlerWithResponse([this](const Request& req, Response& res) {
          if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
          FillError(req, res);
          return httplib::Server::HandlerResponse::Handled;
        }));
    http_->set_exception_handler([this](const Request& req, Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("web: {} {}: {}", req.method, req.path, what);
      Fail(res, {500, "internal", "internal error (logged)"});
    });
    http_->set_logger([this](const Request& req, const Response& res) {
      const double seconds =
          t_request.start == SteadyClock::time_point{}
              ? 0.0
              : std::chrono::duration<double>(SteadyClock::now() - t_request.start).count();
      http_metrics_.Record(t_request.route.empty() ? "unmatched" : t_request.route, req.method,
                           res.status, seconds);
      t_request = {};
    });
  }

  // ---- responses ----

  void Reply(Response& res, int status, const Json& body) {
    res.status = status;
    res.set_content(protocol::DumpJson(body), "application/json");
  }

  void Fail(Response& res, const HttpError& e, const Json& extra = Json::object()) {
    res.status = e.status;
    Json body = {{"error", {{"code", e.code}, {"message", e.message}}}};
    for (const auto& [k, v] : extra.items()) body["error"][k] = v;
    res.set_content(protocol::DumpJson(body), "application/json");
    if (e.status == 429) res.set_header("Retry-After", "1");
    if (e.status == 503) res.set_header("Retry-After", "5");
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer realm=\"yard\"");
    metrics().Add("web.rejected." + e.code);
    if (e.status >= 500 || log_limit_.Allow()) {
      spdlog::log(e.status >= 500 ? spdlog::level::warn : spdlog::level::info,
                  "web: {} {} -> {} {}: {}", t_request.method, t_request.path, e.status, e.code,
                  e.message);
    }
  }

  // Errors httplib produced itself (no route, body too large, unreadable request).
  void FillError(const Request& req, Response& res) {
    // A malformed request never reached the pre-routing handler.
    t_request.method = req.method;
    t_request.path = req.path;
    std::string allow;  // the methods of the routes this path has
    for (const auto& r : routes_) {
      if (std::regex_match(req.path, r.re) && allow.find(r.method) == std::string::npos) {
        allow += (allow.empty() ? "" : ", ") + r.method;
      }
    }
    const bool other_method = !allow.empty() && allow.find(req.method) == std::string::npos;
    if ((res.status == 404 || res.status == 400) && other_method) {
      res.set_header("Allow", allow);
      return Fail(res,
                  {405, "method_not_allowed",
                   req.method + " is not allowed on " + req.path + " (allowed: " + allow + ")"});
    }
    if (res.status == 404) {
      return Fail(res, {404, "not_found", "no such route: " + req.method + " " + req.path});
    }
    if (res.status == 413) {
      return Fail(res, {413, "too_large",
                        "the body is over " + std::to_string(config_.max_body_bytes) + " bytes"});
    }
    if (res.status == 400) return Fail(res, {400, "bad_request", "malformed HTTP request"});
    Fail(res, {res.status, "http_" + std::to_string(res.status), "HTTP error"});
  }

  // ---- routing and auth ----

  using Handler = std::function<void(const Request&, Response&)>;
  enum class Need { kNone, kRead, kWrite, kAdmin, kMetrics, kEvents };

  void Add(const std::string& method, const std::string& pattern, Need need, Handler h) {
    routes_.push_back({method, std::regex(pattern)});
    auto start = [this, pattern, need](const Request& req, Response& res) {
      t_request.route = pattern;
      auto refusal = Authorize(req, need);
      if (refusal) Fail(res, *refusal);
      return !refusal;
    };
    if (method == "POST") {
      // Bodies are read here, within max_body_bytes whatever their framing: httplib checks
      // its limit against Content-Length only, and would read a chunked body whole.
      http_->Post(pattern, [this, start, h](const Request& req, Response& res,
                                            const httplib::ContentReader& read) {
        if (!start(req, res)) return;
        Request with_body = req;
        bool too_large = false;
        const bool whole = read([&](const char* data, size_t n) {
          too_large = with_body.body.size() + n > config_.max_body_bytes;
          if (!too_large) with_body.body.append(data, n);
          return !too_large;
        });
        if (!whole) {
          res.set_header("Connection", "close");  // the rest of the body is not read
          too_large = too_large ||
                      req.get_header_value<uint64_t>("Content-Length") > config_.max_body_bytes;
          return Fail(res, too_large
                               ? HttpError{413, "too_large",
                                           "the body is over " +
                                               std::to_string(config_.max_body_bytes) + " bytes"}
                               : HttpError{400, "bad_request", "unreadable body"});
        }
        h(with_body, res);
      });
      return;
    }
    auto wrapped = [start, h](const Request& req, Response& res) {
      if (start(req, res)) h(req, res);
    };
    if (method == "GET") http_->Get(pattern, wrapped);
    if (method == "DELETE") http_->Delete(pattern, wrapped);
  }

  std::optional<HttpError> Authorize(const Request& req, Need need) {
    if (need == Need::kNone || !config_.auth()) return std::nullopt;
    if (need == Need::kMetrics && config_.public_metrics) return std::nullopt;
    std::string token;
    const std::string header = req.get_header_value("Authorization");
    if (header.starts_with("Bearer ")) {
      token = header.substr(7);
    } else if (need == Need::kEvents && req.has_param("access_token")) {
      token = req.get_param_value("access_token");
    }
    if (token.empty()) {
      metrics().Add("web.auth_refused.missing");
      return HttpError{401, "unauthorized", "a bearer token is required"};
    }
    const Token* found = nullptr;
    for (const auto& t : config_.tokens) {
      if (SameToken(t.token, token)) found = &t;
    }
    if (!found) {
      metrics().Add("web.auth_refused.unknown");
      return HttpError{401, "unauthorized", "unknown token"};
    }
    const Scope scope = need == Need::kWrite   ? Scope::kWrite
                        : need == Need::kAdmin ? Scope::kAdmin
                                               : Scope::kRead;
    if (!found->Has(scope)) {
      metrics().Add("web.auth_refused.scope");
      return HttpError{403, "forbidden",
                       "token '" + found->name + "' lacks the '" + ScopeName(scope) + "' scope"};
    }
    return std::nullopt;
  }

  template <typename T, typename Start>
  StatusOr<T> Core(Start&& start, Micros timeout = 0) {
    return pool_.Call<T>(timeout > 0 ? timeout : config_.request_timeout,
                         std::forward<Start>(start));
  }

  // The id in the path's first group; nullopt (and 404 sent) when it is not one.
  std::optional<uint64_t> PathId(const Request& req, Response& res, const char* what) {
    auto id = ParseId(req.matches[1]);
    if (!id) Fail(res, {404, "not_found", std::string("no ") + what + " " + req.matches[1].str()});
    return id;
  }

  void AddRoutes() {
    Add("GET", "/healthz", Need::kNone,
        [](const Request&, Response& res) { res.set_content("ok\n", "text/plain"); });
    Add("GET", "/readyz", Need::kNone, [this](const Request&, Response& res) {
      auto s = FetchStats(kReadyTimeout);
      if (!s.ok()) {
        res.status = 503;
        res.set_header("Retry-After", "5");
        res.set_content("not ready: " + s.status().message() + "\n", "text/plain");
        return;
      }
      res.set_content("ready\n", "text/plain");
    });
    Add("GET", "/metrics", Need::kMetrics,
        [this](const Request&, Response& res) { ServeMetrics(res); });
    for (const char* path : {"/", "/index.html", "/static/([A-Za-z0-9._-]+)"}) {
      Add("GET", path, Need::kNone, [this](const Request& req, Response& res) {
        const Asset* a = FindAsset(req.path == "/index.html" ? "/" : req.path);
        if (!a) return Fail(res, {404, "not_found", "no such file: " + req.path});
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_content(std::string(a->body), std::string(a->content_type));
      });
    }
    const std::string v1 = "/api/v1";
    Add("POST", v1 + "/tasks", Need::kWrite, [this](auto& q, auto& r) { SubmitTasks(q, r); });
    Add("GET", v1 + "/tasks", Need::kRead, [this](auto& q, auto& r) { ListTasks(q, r, 0); });
    Add("GET", v1 + R"(/tasks/(\d+))", Need::kRead, [this](auto& q, auto& r) { GetTask(q, r); });
    Add("DELETE", v1 + R"(/tasks/(\d+))", Need::kWrite,
        [this](auto& q, auto& r) { CancelTask(q, r); });
    Add("GET", v1 + R"(/tasks/(\d+)/result)", Need::kRead,
        [this](auto& q, auto& r) { TaskResult(q, r); });
    Add("POST", v1 + "/jobs", Need::kWrite, [this](auto& q, auto& r) { SubmitJob(q, r); });
    Add("GET", v1 + R"(/jobs/(\d+))", Need::kRead, [this](auto& q, auto& r) { GetJob(q, r); });
    Add("DELETE", v1 + R"(/jobs/(\d+))", Need::kWrite,
        [this](auto& q, auto& r) { CancelJob(q, r); });
    Add("GET", v1 + R"(/jobs/(\d+)/tasks)", Need::kRead, [this](auto& q, auto& r) {
      auto id = PathId(q, r, "job");
      if (!id) return;
      auto job = Core<protocol::JobInfo>(
          [&](api::MasterApi& a, auto cb) { a.GetJob(*id, false, std::move(cb)); });
      if (!job.ok()) return Fail(r, ErrorFor(job.status()));
      ListTasks(q, r, *id);
    });
    Add("GET", v1 + "/workers", Need::kRead, [this](auto&, auto& r) { Workers(r); });
    Add("GET", v1 + "/stats", Need::kRead, [this](auto&, auto& r) {
      auto s = FetchStats();
      if (!s.ok()) return Fail(r, ErrorFor(s.status()));
      Reply(r, 200, {{"counters", *s}});
    });
    Add("GET", v1 + "/queue", Need::kRead, [this](auto&, auto& r) {
      auto s = FetchStats();
      if (!s.ok()) return Fail(r, ErrorFor(s.status()));
      Reply(r, 200, QueueJson(*s));
    });
    Add("GET", v1 + "/dead", Need::kRead, [this](auto& q, auto& r) { ListDead(q, r); });
    Add("GET", v1 + R"(/dead/(\d+))", Need::kRead, [this](auto& q, auto& r) { GetDead(q, r); });
    Add("POST", v1 + R"(/dead/(\d+)/requeue)", Need::kAdmin,
        [this](auto& q, auto& r) { DeadOne(q, r, /*requeue=*/true); });
    Add("DELETE", v1 + R"(/dead/(\d+))", Need::kAdmin,
        [this](auto& q, auto& r) { DeadOne(q, r, /*requeue=*/false); });
    Add("POST", v1 + "/dead/requeue", Need::kAdmin,
        [this](auto& q, auto& r) { DeadBulk(q, r, /*requeue=*/true); });
    Add("POST", v1 + "/dead/purge", Need::kAdmin,
        [this](auto& q, auto& r) { DeadBulk(q, r, /*requeue=*/false); });
    Add("GET", v1 + "/devices/([^/]+)/tasks", Need::kRead,
        [this](auto& q, auto& r) { DeviceTasks(q, r); });
    Add("GET", v1 + "/events", Need::kEvents, [this](auto&, auto& r) { Events(r); });
  }

  // ---- tasks ----

  void SubmitTasks(const Request& req, Response& res) {
    auto body = ParseObject(req.body);
    if (!body.ok()) return Fail(res, {400, "bad_json", body.status().message()});
    std::vector<protocol::TaskSpec> specs;
    const bool batch = body->contains("tasks");
    if (batch) {
      const Json& list = (*body)["tasks"];
      if (body->size() != 1) {
        return Fail(res, {400, "bad_field", "a batch body holds only \"tasks\""});
      }
      if (!list.is_array() || list.empty() || list.size() > kMaxBatchTasks) {
        return Fail(res, {400, "bad_field",
                          "tasks: expected a list of 1 to " + std::to_string(kMaxBatchTasks) +
                              " task specs"});
      }
      specs.reserve(list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        if (!list[i].is_object()) {
          return Fail(res,
                      {400, "bad_field", "tasks[" + std::to_string(i) + "]: expected an object"});
        }
        auto s = TaskSpecFromJson(list[i], "tasks[" + std::to_string(i) + "].");
        if (!s.ok()) return Fail(res, ErrorFor(s.status()));
        specs.push_back(std::move(*s));
      }
    } else {
      auto s = TaskSpecFromJson(*body);
      if (!s.ok()) return Fail(res, ErrorFor(s.status()));
      specs.push_back(std::move(*s));
    }
    auto ids = Core<std::vector<uint64_t>>(
        [&](api::MasterApi& a, auto cb) { a.Submit(std::move(specs), std::move(cb)); });
    if (!ids.ok()) return Fail(res, ErrorFor(ids.status()));
    metrics().Add("web.tasks_submitted", ids->size());
    if (batch) return Reply(res, 201, {{"ids", *ids}});
    Reply(res, 201, {{"id", ids->at(0)}});
  }

  // GET /tasks, and GET /jobs/{id}/tasks with `job` set.
  void ListTasks(const Request& req, Response& res, uint64_t job) {
    auto q = ParseListQuery(req.params);
    if (!q.ok()) return Fail(res, {400, "bad_query", q.status().message()});
    if (job != 0) q->list.job_id = job;
    const uint32_t limit = q->list.limit;
    const bool filtered = q->since_us != 0 || q->until_us != 0;
    if (!filtered) {
      auto page = Core<protocol::ListReply>(
          [&](api::MasterApi& a, auto cb) { a.List(q->list, std::move(cb)); });
      if (!page.ok()) return Fail(res, ErrorFor(page.status()));
      return Reply(
          res, 200,
          TaskList(page->tasks, page->more ? std::optional(page->next_after_id) : std::nullopt));
    }
    // Submit-time filters: the core's pages, filtered here. Ids grow with submit time, so a
    // task submitted after `until` ends the listing.
    std::vector<TaskInfo> out;
    std::optional<uint64_t> cursor;
    protocol::List list = q->list;
    list.limit = kMaxPageLimit;
    for (int page_no = 0; page_no < kMaxFilteredPages; ++page_no) {
      auto page = Core<protocol::ListReply>(
          [&](api::MasterApi& a, auto cb) { a.List(list, std::move(cb)); });
      if (!page.ok()) return Fail(res, ErrorFor(page.status()));
      bool past_until = false;
      for (auto& t : page->tasks) {
        if (q->until_us != 0 && t.submitted_us > q->until_us) {
          past_until = true;
          break;
        }
        if (t.submitted_us < q->since_us) continue;
        out.push_back(std::move(t));
        if (out.size() == limit) break;
      }
      if (past_until) {
        cursor.reset();
        break;
      }
      if (out.size() == limit) {
        cursor = out.back().id;
        break;
      }
      cursor = page->more ? std::optional(page->next_after_id) : std::nullopt;
      if (!page->more) break;
      list.after_id = page->next_after_id;
    }
    Reply(res, 200, TaskList(out, cursor));
  }

  StatusOr<Counters> FetchStats(Micros timeout = 0) {
    return Core<Counters>([](api::MasterApi& a, auto cb) { a.Stats(std::move(cb)); }, timeout);
  }

  StatusOr<std::vector<protocol::WorkerInfo>> FetchWorkers() {
    return Core<std::vector<protocol::WorkerInfo>>(
        [](api::MasterApi& a, auto cb) { a.Workers(std::move(cb)); });
  }

  StatusOr<std::optional<TaskInfo>> FetchTask(uint64_t id, bool with_payload) {
    return Core<std::optional<TaskInfo>>(
        [&](api::MasterApi& a, auto cb) { a.Get(id, with_payload, std::move(cb)); });
  }

  void GetTask(const Request& req, Response& res) {
    auto id = PathId(req, res, "task");
    if (!id) return;
    bool with_payload = false;
    if (req.has_param("payload")) {
      auto b = ParseBoolParam("payload", req.get_param_value("payload"));
      if (!b.ok()) return Fail(res, {400, "bad_query", b.status().message()});
      with_payload = *b;
    }
    auto t = FetchTask(*id, with_payload);
    if (!t.ok()) return Fail(res, ErrorFor(t.status()));
    if (!*t) return Fail(res, {404, "not_found", "no task " + std::to_string(*id)});
    Json j = protocol::TaskJson(**t, /*with_result=*/true);
    j["history"] = TaskHistory(**t);
    Reply(res, 200, j);
  }

  void TaskResult(const Request& req, Response& res) {
    auto id = PathId(req, res, "task");
    if (!id) return;
    Micros wait = 0;
    if (req.has_param("wait")) {
      auto w = ParseWaitParam("wait", req.get_param_value("wait"), kMaxResultWait);
      if (!w.ok()) return Fail(res, {400, "bad_query", w.status().message()});
      wait = *w;
    }
    auto got = FetchTask(*id, false);
    if (!got.ok()) return Fail(res, ErrorFor(got.status()));
    if (!*got) return Fail(res, {404, "not_found", "no task " + std::to_string(*id)});
    TaskInfo t = std::move(**got);
    if (!protocol::IsTerminal(t.state) && wait > 0) {
      auto ended =
          Core<TaskInfo>([&](api::MasterApi& a, auto cb) { a.WatchTask(*id, wait, std::move(cb)); },
                         wait + config_.request_timeout);
      if (ended.ok()) {
        t = std::move(*ended);
      } else if (ended.status().code() != StatusCode::kDeadlineExceeded) {
        return Fail(res, ErrorFor(ended.status()));
      }
    }
    if (!protocol::IsTerminal(t.state)) {
      return Fail(res,
                  {409, "conflict",
                   "task " + std::to_string(*id) + " has not ended (" +
                       protocol::TaskStateName(t.state) + ")"},
                  {{"state", protocol::TaskStateName(t.state)}});
    }
    Json j = {{"id", t.id}, {"state", protocol::TaskStateName(t.state)}, {"error", t.error}};
    protocol::PutBytes(j, "result", t.result);
    Reply(res, 200, j);
  }

  void CancelTask(const Request& req, Response& res) {
    auto id = PathId(req, res, "task");
    if (!id) return;
    auto st = Core<TaskState>([&](api::MasterApi& a, auto cb) { a.Cancel(*id, std::move(cb)); });
    if (!st.ok()) return FailWithState(res, st.status(), *id);
    Reply(res, 200, {{"id", *id}, {"state", protocol::TaskStateName(*st)}});
  }

  // A refusal; a conflict (the task had ended) also gives the task's state.
  void FailWithState(Response& res, const Status& st, uint64_t id) {
    HttpError e = ErrorFor(st);
    Json extra = Json::object();
    if (e.status == 409) {
      auto t = FetchTask(id, false);
      if (t.ok() && *t) extra["state"] = protocol::TaskStateName((*t)->state);
    }
    Fail(res, e, extra);
  }

  // ---- jobs ----

  void SubmitJob(const Request& req, Response& res) {
    auto body = ParseObject(req.body);
    if (!body.ok()) return Fail(res, {400, "bad_json", body.status().message()});
    auto spec = JobSpecFromJson(*body);
    if (!spec.ok()) return Fail(res, ErrorFor(spec.status()));
    auto r = Core<protocol::JobSubmitReply>(
        [&](api::MasterApi& a, auto cb) { a.SubmitJob(std::move(*spec), std::move(cb)); });
    if (!r.ok()) return Fail(res, ErrorFor(r.status()));
    NoteJob(r->job_id);
    Reply(res, 201,
          {{"job_id", r->job_id}, {"parts", r->parts}, {"first_task_id", r->first_task_id}});
  }

  void GetJob(const Request& req, Response& res) {
    auto id = PathId(req, res, "job");
    if (!id) return;
    bool with_result = true;
    if (req.has_param("result")) {
      auto b = ParseBoolParam("result", req.get_param_value("result"));
      if (!b.ok()) return Fail(res, {400, "bad_query", b.status().message()});
      with_result = *b;
    }
    auto j = Core<protocol::JobInfo>(
        [&](api::MasterApi& a, auto cb) { a.GetJob(*id, with_result, std::move(cb)); });
    if (!j.ok()) return Fail(res, ErrorFor(j.status()));
    Reply(res, 200, protocol::JobJson(*j, with_result));
  }

  void CancelJob(const Request& req, Response& res) {
    auto id = PathId(req, res, "job");
    if (!id) return;
    auto j = Core<protocol::JobInfo>(
        [&](api::MasterApi& a, auto cb) { a.CancelJob(*id, std::move(cb)); });
    if (!j.ok()) {
      HttpError e = ErrorFor(j.status());
      Json extra = Json::object();
      if (e.status == 409) {
        auto now = Core<protocol::JobInfo>(
            [&](api::MasterApi& a, auto cb) { a.GetJob(*id, false, std::move(cb)); });
        if (now.ok()) extra["state"] = protocol::JobStateName(now->state);
      }
      return Fail(res, e, extra);
    }
    Reply(res, 200, protocol::JobJson(*j, false));
  }

  // ---- workers ----

  Json WorkersJson(const std::vector<protocol::WorkerInfo>& workers) {
    std::map<std::string, double> rates;
    {
      std::lock_guard lock(live_mu_);
      rates = worker_rates_;
    }
    Json list = Json::array();
    for (const auto& w : workers) {
      Json j = protocol::WorkerJson(w);
      j["health"] = WorkerHealth(w.last_seen_ms, heartbeat_ms_.load() * kMillis);
      auto it = rates.find(w.worker_id);
      j["rate_per_s"] = it == rates.end() ? Json(nullptr) : Json(it->second);
      list.push_back(std::move(j));
    }
    return list;
  }

  void Workers(Response& res) {
    auto w = FetchWorkers();
    if (!w.ok()) return Fail(res, ErrorFor(w.status()));
    Reply(res, 200, {{"workers", WorkersJson(*w)}});
  }

  // ---- dead letters ----

  void ListDead(const Request& req, Response& res) {
    auto q = ParseListQuery(req.params);
    if (!q.ok()) return Fail(res, {400, "bad_query", q.status().message()});
    const protocol::List& l = q->list;
    if (l.state || !l.type.empty() || !l.key.empty() || l.job_id || q->since_us || q->until_us) {
      return Fail(res, {400, "bad_query", "dead letters take only limit and cursor"});
    }
    auto page = Core<protocol::DeadListReply>(
        [&](api::MasterApi& a, auto cb) { a.DeadList(l.after_id, l.limit, std::move(cb)); });
    if (!page.ok()) return Fail(res, ErrorFor(page.status()));
    std::optional<uint64_t> cursor;
    if (page->more && !page->tasks.empty()) cursor = page->tasks.back().id;
    Reply(res, 200, TaskList(page->tasks, cursor));
  }

  void GetDead(const Request& req, Response& res) {
    auto id = PathId(req, res, "dead letter");
    if (!id) return;
    auto t = FetchTask(*id, false);
    if (!t.ok()) return Fail(res, ErrorFor(t.status()));
    if (!*t || (*t)->state != TaskState::kDead) {
      return Fail(res, {404, "not_found", "task " + std::to_string(*id) + " is not dead"});
    }
    Json j = protocol::TaskJson(**t, true);
    j["history"] = TaskHistory(**t);
    Reply(res, 200, j);
  }

  StatusOr<protocol::DeadReply> DeadCall(bool requeue, std::vector<uint64_t> ids, bool all) {
    return Core<protocol::DeadReply>([&](api::MasterApi& a, auto cb) {
      if (requeue) {
        a.DeadRequeue(std::move(ids), all, std::move(cb));
      } else {
        a.DeadPurge(std::move(ids), all, std::move(cb));
      }
    });
  }

  void DeadOne(const Request& req, Response& res, bool requeue) {
    auto id = PathId(req, res, "dead letter");
    if (!id) return;
    auto r = DeadCall(requeue, {*id}, false);
    if (!r.ok()) return Fail(res, ErrorFor(r.status()));
    if (r->count == 0) {
      return Fail(res, {404, "not_found", "task " + std::to_string(*id) + " is not dead"});
    }
    Reply(res, 200, {{"count", r->count}});
  }

  void DeadBulk(const Request& req, Response& res, bool requeue) {
    auto body = ParseObject(req.body);
    if (!body.ok()) return Fail(res, {400, "bad_json", body.status().message()});
    std::vector<uint64_t> ids;
    bool all = false;
    if (auto st = IdsOrAllFromJson(*body, &ids, &all); !st.ok()) return Fail(res, ErrorFor(st));
    uint64_t count = 0;
    for (int page = 0; page < kMaxBulkPages; ++page) {
      auto r = DeadCall(requeue, ids, all);
      if (!r.ok()) return Fail(res, ErrorFor(r.status()));
      count += r->count;
      if (!all || !r->more) break;
    }
    Reply(res, 200, {{"count", count}});
  }

  // ---- devices ----

  void DeviceTasks(const Request& req, Response& res) {
    uint32_t limit = kDefaultDeviceTasks;
    for (const auto& [name, value] : req.params) {
      auto n = ParseId(value);
      if (name != "limit" || !n || *n > kMaxDeviceTasks) {
        return Fail(res, {400, "bad_query",
                          name == "limit" ? "limit: expected an integer from 1 to " +
                                                std::to_string(kMaxDeviceTasks)
                                          : name + ": unknown parameter (limit)"});
      }
      limit = static_cast<uint32_t>(*n);
    }
    protocol::List list;
    list.key = req.matches[1];
    list.limit = kMaxPageLimit;
    std::deque<TaskInfo> last;  // the newest `limit` seen so far, oldest first
    bool complete = false;
    for (int page_no = 0; page_no < kMaxDevicePages; ++page_no) {
      auto page = Core<protocol::ListReply>(
          [&](api::MasterApi& a, auto cb) { a.List(list, std::move(cb)); });
      if (!page.ok()) return Fail(res, ErrorFor(page.status()));
      for (auto& t : page->tasks) {
        last.push_back(std::move(t));
        if (last.size() > limit) last.pop_front();
      }
      if (!page->more) {
        complete = true;
        break;
      }
      list.after_id = page->next_after_id;
    }
    Json tasks = Json::array();
    for (auto it = last.rbegin(); it != last.rend(); ++it) tasks.push_back(protocol::TaskJson(*it));
    Reply(res, 200, {{"device", list.key}, {"tasks", std::move(tasks)}, {"complete", complete}});
  }

  // ---- metrics ----

  void ServeMetrics(Response& res) {
    auto s = FetchStats();
    if (!s.ok()) return Fail(res, ErrorFor(s.status()));
    auto w = FetchWorkers();
    if (!w.ok()) return Fail(res, ErrorFor(w.status()));
    std::optional<uint64_t> dead;
    {
      std::lock_guard lock(live_mu_);
      dead = dead_count_;
    }
    res.set_content(RenderMetrics(*s, *w, dead, http_metrics_),
                    "text/plain; version=0.0.4; charset=utf-8");
  }

  // ---- live view (SSE) ----

  void Events(Response& res) {
    if (sse_clients_.fetch_add(1) >= config_.max_sse_clients) {
      sse_clients_.fetch_sub(1);
      return Fail(res, {503, "unavailable",
                        "too many live streams (max_sse_clients " +
                            std::to_string(config_.max_sse_clients) + ")"});
    }
    metrics().Set("web.sse_clients", sse_clients_.load());
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: pass events through at once
    auto sent = std::make_shared<uint64_t>(0);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, sent](size_t, httplib::DataSink& sink) {
          std::string event;
          {
            std::unique_lock lock(live_mu_);
            live_cv_.wait(lock, [&] { return stopping_ || snapshot_seq_ > *sent; });
            if (stopping_) return false;
            *sent = snapshot_seq_;
            event = snapshot_event_;
          }
          return sink.write(event.data(), event.size());
        },
        [this](bool) {
          sse_clients_.fetch_sub(1);
          metrics().Set("web.sse_clients", sse_clients_.load());
        });
  }

  // Jobs submitted here are shown in the live view even before a part runs.
  void NoteJob(uint64_t id) {
    std::lock_guard lock(live_mu_);
    noted_jobs_.push_back(id);
  }

  void SampleLoop() {
    Sample();
    std::unique_lock lock(live_mu_);
    while (!stopping_) {
      live_cv_.wait_for(lock, std::chrono::microseconds(config_.sse_interval),
                        [&] { return stopping_; });
      if (stopping_) break;
      lock.unlock();
      Sample();
      lock.lock();
    }
  }

  // One sample of the core: the snapshot every SSE stream sends next.
  void Sample() {
    const auto now = SteadyClock::now();
    auto stats = FetchStats();
    if (!stats.ok()) {
      if (log_limit_.Allow()) spdlog::warn("web: live view: {}", stats.status().ToString());
      return;
    }
    if (auto hb = stats->find("workers.heartbeat_ms"); hb != stats->end() && hb->second > 0) {
      heartbeat_ms_ = hb->second;
    }
    auto workers = FetchWorkers();
    const double elapsed_s =
        have_sample_ ? std::chrono::duration<double>(now - last_sample_at_).count() : 0;
    const Micros elapsed = static_cast<Micros>(elapsed_s * 1e6);

    std::map<std::string, double> rates_by_worker;
    std::map<std::string, uint64_t> completed;
    if (workers.ok()) {
      for (const auto& w : *workers) {
        completed[w.worker_id] = w.completed;
        auto it = last_completed_.find(w.worker_id);
        if (have_sample_ && it != last_completed_.end()) {
          rates_by_worker[w.worker_id] = RatePerSecond(it->second, w.completed, elapsed);
        }
      }
    }
    Json rates = Json::object();
    for (const char* name : {"submitted", "succeeded", "failed", "dead"}) {
      const std::string key = std::string("tasks.") + name;
      rates[name] = have_sample_ ? RatePerSecond(CounterValue(last_stats_, key),
                                                 CounterValue(*stats, key), elapsed)
                                 : 0.0;
    }
    auto dead = Core<protocol::DeadListReply>(
        [](api::MasterApi& a, auto cb) { a.DeadList(0, kDeadCountPage, std::move(cb)); });
    SampleFailures(dead.ok() ? dead->tasks : std::vector<TaskInfo>{});
    Json jobs = SampleJobs();

    Json snap = {{"t_us", host_.clock->WallNow()},
                 {"counters", *stats},
                 {"rates", std::move(rates)},
                 {"latency_ms", LatencyBetween(have_sample_ ? last_stats_ : *stats, *stats)},
                 {"queue", QueueJson(*stats)},
                 {"jobs", std::move(jobs)}};
    Json failures = Json::array();
    for (const auto& t : failures_) failures.push_back(protocol::TaskJson(t, false));
    snap["failures"] = std::move(failures);
    if (dead.ok()) {
      snap["dead"] = dead->tasks.size();
      snap["dead_more"] = dead->more;
    }
    {
      std::lock_guard lock(live_mu_);
      worker_rates_ = std::move(rates_by_worker);
      dead_count_ = dead.ok() && !dead->more ? std::optional(dead->tasks.size()) : std::nullopt;
    }
    snap["workers"] = workers.ok() ? WorkersJson(*workers) : Json::array();
    std::string event = "event: snapshot\ndata: " + protocol::DumpJson(snap) + "\n\n";
    {
      std::lock_guard lock(live_mu_);
      snapshot_event_ = std::move(event);
      ++snapshot_seq_;
    }
    live_cv_.notify_all();
    last_stats_ = std::move(*stats);
    last_completed_ = std::move(completed);
    last_sample_at_ = now;
    have_sample_ = true;
  }

  // New failed, dead and expired tasks since the last sample, into the newest-first list.
  // `dead` (the first dead letters, fetched anyway to count them) also brings back tasks
  // that were requeued and died again: the per-state cursors have passed their ids.
  void SampleFailures(const std::vector<TaskInfo>& dead) {
    for (TaskState state : {TaskState::kFailed, TaskState::kDead, TaskState::kExpired}) {
      uint64_t& cursor = failure_cursor_[static_cast<int>(state)];
      protocol::List list;
      list.state = state;
      list.limit = kMaxPageLimit;
      for (int page_no = 0; page_no < kFailurePagesPerSample; ++page_no) {
        list.after_id = cursor;
        auto page = Core<protocol::ListReply>(
            [&](api::MasterApi& a, auto cb) { a.List(list, std::move(cb)); });
        if (!page.ok()) return;
        failures_.insert(failures_.end(), std::make_move_iterator(page->tasks.begin()),
                         std::make_move_iterator(page->tasks.end()));
        if (!page->tasks.empty()) cursor = std::max(cursor, page->tasks.back().id);
        cursor = std::max(cursor, page->next_after_id);
        if (!page->more) break;
      }
    }
    failures_.insert(failures_.end(), dead.begin(), dead.end());
    // Newest first; one entry per task (its latest end).
    std::sort(failures_.begin(), failures_.end(), [](const TaskInfo& a, const TaskInfo& b) {
      return a.finished_us != b.finished_us ? a.finished_us > b.finished_us : a.id > b.id;
    });
    std::set<uint64_t> seen;
    std::erase_if(failures_, [&](const TaskInfo& t) { return !seen.insert(t.id).second; });
    if (failures_.size() > kSnapshotFailures) failures_.resize(kSnapshotFailures);
  }

  // The jobs with running parts and those submitted or seen lately, newest first.
  Json SampleJobs() {
    protocol::List running;
    running.state = TaskState::kDispatched;
    running.limit = kMaxPageLimit;
    auto page = Core<protocol::ListReply>(
        [&](api::MasterApi& a, auto cb) { a.List(running, std::move(cb)); });
    std::vector<uint64_t> seen;
    {
      std::lock_guard lock(live_mu_);
      seen.swap(noted_jobs_);
    }
    if (page.ok()) {
      for (const auto& t : page->tasks) {
        if (t.job_id != 0) seen.push_back(t.job_id);
      }
    }
    jobs_.insert(jobs_.end(), seen.begin(), seen.end());
    std::sort(jobs_.begin(), jobs_.end(), std::greater<>());
    jobs_.erase(std::unique(jobs_.begin(), jobs_.end()), jobs_.end());
    while (jobs_.size() > kSnapshotJobs) jobs_.pop_back();
    Json out = Json::array();
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      auto j = Core<protocol::JobInfo>(
          [&](api::MasterApi& a, auto cb) { a.GetJob(*it, false, std::move(cb)); });
      if (!j.ok()) {
        it = j.status().code() == StatusCode::kNotFound ? jobs_.erase(it) : std::next(it);
        continue;
      }
      out.push_back(protocol::JobJson(*j, false));
      ++it;
    }
    return out;
  }

  WebConfig config_;
  plugins::PluginHost host_;
  ApiPool pool_;
  HttpMetrics http_metrics_;
  LogLimiter log_limit_;
  std::unique_ptr<httplib::Server> http_;
  std::vector<Route> routes_;
  std::thread listener_, sampler_;
  std::atomic<uint32_t> sse_clients_{0};
  // The master's heartbeat to workers (from its stats), for the workers' health.
  std::atomic<uint64_t> heartbeat_ms_{1000};

  // Shared with the SSE streams and HTTP threads (live_mu_).
  std::mutex live_mu_;
  std::condition_variable live_cv_;
  bool stopping_ = false;
  uint64_t snapshot_seq_ = 0;
  std::string snapshot_event_;
  std::map<std::string, double> worker_rates_;
  std::optional<uint64_t> dead_count_;
  std::vector<uint64_t> noted_jobs_;

  // The sampler thread's own.
  bool have_sample_ = false;
  SteadyClock::time_point last_sample_at_;
  Counters last_stats_;
  std::map<std::string, uint64_t> last_completed_;
  std::vector<TaskInfo> failures_;
  std::map<int, uint64_t> failure_cursor_;
  std::deque<uint64_t> jobs_;
};

class WebPluginFactory final : public plugins::PluginFactory {
 public:
  std::string name() const override { return "web"; }
  std::string description() const override {
    return "REST API, live dashboard and Prometheus metrics over HTTP (--web HOST:PORT)";
  }
  StatusOr<std::unique_ptr<plugins::Plugin>> Create(
      const toml::table& section, const plugins::PluginHost& host) const override {
    ASSIGN_OR_RETURN(auto config, ParseWebConfig(section));
    return std::unique_ptr<plugins::Plugin>(std::make_unique<WebPlugin>(std::move(config), host));
  }
};

}  // namespace

std::unique_ptr<plugins::PluginFactory> MakeWebPluginFactory() {
  return std::make_unique<WebPluginFactory>();
}

}  // namespace yard::web
