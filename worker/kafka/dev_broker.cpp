// dev_broker.cpp — see dev_broker.hpp.
#include "worker/kafka/dev_broker.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <thread>

#include "worker/kafka/producer.hpp"

namespace eddy {
namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/// Accepts on 127.0.0.1:port and splices each connection to 127.0.0.1:upstream_port. One
/// thread, poll(2), non-blocking sockets; an eventfd wakes it for shutdown.
class tcp_forwarder {
 public:
  static std::unique_ptr<tcp_forwarder> start(int port, int upstream_port, std::string* error) {
    auto f = std::unique_ptr<tcp_forwarder>(new tcp_forwarder());
    f->upstream_port_ = upstream_port;
    f->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    f->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (f->wake_fd_ < 0 || f->listen_fd_ < 0) {
      if (error) *error = "forwarder: " + errno_text(errno);
      return nullptr;
    }
    const int on = 1;
    ::setsockopt(f->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(f->listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::listen(f->listen_fd_, 64) != 0) {
      if (error)
        *error = "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + errno_text(errno);
      return nullptr;
    }
    f->thread_ = std::thread([p = f.get()] { p->run(); });
    return f;
  }

  ~tcp_forwarder() {
    if (thread_.joinable()) {
      const uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
      thread_.join();
    }
    for (auto& c : conns_) close_conn(c);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

 private:
  static constexpr size_t k_buf = 64 * 1024;
  struct conn {
    int fd[2] = {-1, -1};            // 0 = client, 1 = upstream
    std::unique_ptr<char[]> buf[2];  // buf[i]: read from fd[i], to be written to fd[1 - i]
    size_t off[2] = {0, 0};
    size_t len[2] = {0, 0};
    bool dead = false;
  };

  tcp_forwarder() = default;

  static void close_conn(conn& c) {
    for (int& fd : c.fd) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
    c.dead = true;
  }

  void accept_all() {
    for (;;) {
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (client < 0) return;  // EAGAIN or a transient error: poll again
      const int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      sin.sin_port = htons(static_cast<uint16_t>(upstream_port_));
      // A blocking connect on loopback completes (or is refused) at once.
      if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
        if (up >= 0) ::close(up);
        ::close(client);
        continue;
      }
      set_nonblocking(up);
      const int on = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      conn c;
      c.fd[0] = client;
      c.fd[1] = up;
      c.buf[0] = std::make_unique<char[]>(k_buf);
      c.buf[1] = std::make_unique<char[]>(k_buf);
      conns_.push_back(std::move(c));
    }
  }

  /// Writes pending bytes of buf[from] to fd[1 - from]; false when the connection broke.
  static bool flush_dir(conn& c, int from) {
    while (c.len[from] > 0) {
      const ssize_t n =
          ::send(c.fd[1 - from], c.buf[from].get() + c.off[from], c.len[from], MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
      c.off[from] += static_cast<size_t>(n);
      c.len[from] -= static_cast<size_t>(n);
    }
    c.off[from] = 0;
    return true;
  }

  /// Reads from fd[from] into the (empty) buf[from]; false on EOF or error.
  static bool read_dir(conn& c, int from) {
    const ssize_t n = ::recv(c.fd[from], c.buf[from].get(), k_buf, 0);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.off[from] = 0;
    c.len[from] = static_cast<size_t>(n);
    return flush_dir(c, from);
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (const auto& c : conns_) {
        for (int i = 0; i < 2; ++i) {
          short ev = 0;
          if (c.len[i] == 0) ev |= POLLIN;      // room to read from fd[i]
          if (c.len[1 - i] > 0) ev |= POLLOUT;  // bytes waiting for fd[i]
          fds.push_back({c.fd[i], ev, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[0].revents) return;  // shutdown
      for (size_t k = 0; k < conns_.size(); ++k) {
        conn& c = conns_[k];
        for (int i = 0; i < 2 && !c.dead; ++i) {
          const short re = fds[2 + 2 * k + static_cast<size_t>(i)].revents;
          if (re == 0) continue;
          bool ok = true;
          if (re & POLLOUT) ok = flush_dir(c, 1 - i);
          if (ok && (re & (POLLIN | POLLHUP | POLLERR)) && c.len[i] == 0) ok = read_dir(c, i);
          if (!ok) close_conn(c);
        }
      }
      std::erase_if(conns_, [](const conn& c) { return c.dead; });
      if (fds[1].revents) accept_all();
    }
  }

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int upstream_port_ = 0;
  std::vector<conn> conns_;  // touched only by thread_ while it runs
  std::thread thread_;
};

/// Port of the first "host:port" in a comma-separated list; 0 if unparsable.
int first_port(std::string_view list) {
  const std::string_view first = list.substr(0, list.find(','));
  const size_t colon = first.rfind(':');
  if (colon == std::string_view::npos) return 0;
  int port = 0;
  const char* b = first.data() + colon + 1;
  const char* e = first.data() + first.size();
  if (std::from_chars(b, e, port).ec != std::errc{}) return 0;
  return port;
}

}  // namespace

bool validate_topic_spec(const topic_spec& spec, std::string* error) {
  const auto fail = [&](const std::string& why) {
    if (error) *error = "topic '" + spec.name + "': " + why;
    return false;
  };
  if (spec.name.empty()) return fail("name is empty");
  if (spec.name.size() > 249) return fail("name is longer than 249 characters");
  if (spec.name == "." || spec.name == "..") return fail("name cannot be '.' or '..'");
  for (const char ch : spec.name) {
    const bool legal = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!legal) return fail("name may only contain letters, digits, '.', '_' and '-'");
  }
  if (spec.partitions < 1 || spec.partitions > dev_broker::max_partitions) {
    return fail("partitions must be between 1 and " + std::to_string(dev_broker::max_partitions) +
                ", got " + std::to_string(spec.partitions));
  }
  return true;
}

std::optional<topic_spec> parse_topic_spec(std::string_view text, std::string* error) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    if (error) *error = "expected NAME:PARTITIONS, got '" + std::string(text) + "'";
    return std::nullopt;
  }
  topic_spec spec;
  spec.name = std::string(text.substr(0, colon));
  const std::string_view count = text.substr(colon + 1);
  const auto res = std::from_chars(count.data(), count.data() + count.size(), spec.partitions);
  if (res.ec != std::errc{} || res.ptr != count.data() + count.size()) {
    if (error) {
      *error = "expected NAME:PARTITIONS with a whole number of partitions, got '" +
               std::string(text) + "'";
    }
    return std::nullopt;
  }
  if (!validate_topic_spec(spec, error)) return std::nullopt;
  return spec;
}

struct dev_broker::impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* mcluster = nullptr;
  std::unique_ptr<tcp_forwarder> forwarder;
  std::string bootstrap;
  std::string brokers_list;
  int broker_count = 0;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() {
    forwarder.reset();  // stop forwarding before the brokers go away
    if (mcluster) rd_kafka_mock_cluster_destroy(mcluster);
    if (rk) rd_kafka_destroy(rk);
  }
};

dev_broker::dev_broker(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
dev_broker::~dev_broker() = default;

std::unique_ptr<dev_broker> dev_broker::start(int brokers, const std::vector<topic_spec>& topics,
                                              int port, std::string* error) {
  if (brokers < 1 || brokers > max_brokers) {
    if (error) {
      *error = "brokers must be between 1 and " + std::to_string(max_brokers) + ", got " +
               std::to_string(brokers);
    }
    return nullptr;
  }
  if (port < 0 || port > 65535) {
    if (error) *error = "port must be between 0 and 65535, got " + std::to_string(port);
    return nullptr;
  }
  std::set<std::string> names;
  for (const auto& t : topics) {
    if (!validate_topic_spec(t, error)) return nullptr;
    if (!names.insert(t.name).second) {
      if (error) *error = "topic '" + t.name + "' is given twice";
      return nullptr;
    }
  }

  auto state = std::make_unique<impl>();
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster; it never connects anywhere itself. Keep its log to
  // errors (it would otherwise warn that it has no bootstrap.servers).
  if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    if (error) *error = std::string("dev broker: ") + errstr;
    return nullptr;
  }
  state->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!state->rk) {
    rd_kafka_conf_destroy(conf);
    if (error) *error = std::string("dev broker: ") + errstr;
    return nullptr;
  }
  state->mcluster = rd_kafka_mock_cluster_new(state->rk, brokers);
  if (!state->mcluster) {
    if (error) *error = "dev broker: librdkafka could not create the mock cluster";
    return nullptr;
  }
  // The mock offers Metadata v0..2 only, and before v4 a request cannot say "don't create", so
  // every consumer asking about an unknown topic would create it. v4 carries the client's
  // allow.auto.create.topics: producers still create topics, consumers get UNKNOWN_TOPIC.
  constexpr int16_t k_metadata_api_key = 3;
  rd_kafka_mock_set_apiversion(state->mcluster, k_metadata_api_key, 0, 4);
  state->broker_count = brokers;
  state->brokers_list = rd_kafka_mock_cluster_bootstraps(state->mcluster);
  for (const auto& t : topics) {
    const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(state->mcluster, t.name.c_str(),
                                                               t.partitions, std::min(3, brokers));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (error) *error = "topic '" + t.name + "': " + kafka_error_text(err);
      return nullptr;
    }
  }
  if (port > 0) {
    const int upstream = first_port(state->brokers_list);
    if (upstream <= 0) {
      if (error)
        *error = "dev broker: unexpected mock bootstrap list '" + state->brokers_list + "'";
      return nullptr;
    }
    state->forwarder = tcp_forwarder::start(port, upstream, error);
    if (!state->forwarder) return nullptr;
    state->bootstrap = "127.0.0.1:" + std::to_string(port);
  } else {
    state->bootstrap = state->brokers_list;
  }
  return std::unique_ptr<dev_broker>(new dev_broker(std::move(state)));
}

const std::string& dev_broker::bootstrap() const {
  return impl_->bootstrap;
}
const std::string& dev_broker::broker_addresses() const {
  return impl_->brokers_list;
}
int dev_broker::broker_count() const {
  return impl_->broker_count;
}

bool dev_broker::create_topic(const topic_spec& spec, std::string* error) {
  if (!validate_topic_spec(spec, error)) return false;
  const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
      impl_->mcluster, spec.name.c_str(), spec.partitions, std::min(3, impl_->broker_count));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = "topic '" + spec.name + "': " + kafka_error_text(err);
    return false;
  }
  return true;
}

bool dev_broker::set_broker_up(int broker_id, bool up, std::string* error) {
  if (broker_id < 1 || broker_id > impl_->broker_count) {
    if (error) {
      *error = "broker id must be between 1 and " + std::to_string(impl_->broker_count) + ", got " +
               std::to_string(broker_id);
    }
    return false;
  }
  const rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(impl_->mcluster, broker_id)
                                     : rd_kafka_mock_broker_set_down(impl_->mcluster, broker_id);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = "broker " + std::to_string(broker_id) + ": " + kafka_error_text(err);
    return false;
  }
  return true;
}

}  // namespace eddy
