// producer.cpp — see producer.hpp.
#include "worker/kafka/producer.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <unordered_map>

namespace eddy {

std::string kafka_error_text(int rd_kafka_resp_err) {
  const auto err = static_cast<rd_kafka_resp_err_t>(rd_kafka_resp_err);
  std::string text = rd_kafka_err2str(err);
  text += " (";
  text += rd_kafka_err2name(err);
  text += ")";
  return text;
}

struct kafka_producer::impl {
  rd_kafka_t* rk = nullptr;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics;
  uint64_t queued = 0;
  uint64_t delivered = 0;
  uint64_t delivery_errors = 0;
  std::string first_delivery_error;

  impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;
  ~impl() {
    for (auto& [name, rkt] : topics) rd_kafka_topic_destroy(rkt);
    if (rk) {
      rd_kafka_flush(rk, 5000);
      rd_kafka_destroy(rk);
    }
  }

  /// Delivery report callback; runs inside rd_kafka_poll/flush on the producing thread.
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++self->delivered;
      return;
    }
    if (self->delivery_errors++ == 0) self->first_delivery_error = kafka_error_text(msg->err);
  }

  rd_kafka_topic_t* topic(std::string_view name) {
    std::string key(name);
    auto it = topics.find(key);
    if (it != topics.end()) return it->second;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, key.c_str(), nullptr);
    if (rkt) topics.emplace(std::move(key), rkt);
    return rkt;
  }
};

std::unique_ptr<kafka_producer> kafka_producer::create(const std::string& bootstrap,
                                                       const kafka_config& extra,
                                                       std::string* error) {
  auto state = std::make_unique<impl>();
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  kafka_config settings = {
      {"bootstrap.servers", bootstrap}, {"partitioner", "murmur2_random"}, {"linger.ms", "5"}};
  settings.insert(settings.end(), extra.begin(), extra.end());
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      if (error) *error = "kafka producer: " + std::string(errstr);
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_conf_set_dr_msg_cb(conf, &impl::on_delivery);
  rd_kafka_conf_set_opaque(conf, state.get());
  state->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!state->rk) {  // conf is still ours on failure
    rd_kafka_conf_destroy(conf);
    if (error) *error = "kafka producer: " + std::string(errstr);
    return nullptr;
  }
  return std::unique_ptr<kafka_producer>(new kafka_producer(std::move(state)));
}

kafka_producer::kafka_producer(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
kafka_producer::~kafka_producer() = default;

bool kafka_producer::produce(std::string_view topic, int32_t partition, std::string_view key,
                             std::optional<std::string_view> value, int64_t timestamp_ms,
                             std::string* error, int queue_full_timeout_ms) {
  rd_kafka_topic_t* rkt = impl_->topic(topic);
  if (!rkt) {
    if (error) {
      *error = "topic '" + std::string(topic) + "': " + kafka_error_text(rd_kafka_last_error());
    }
    return false;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(queue_full_timeout_ms);
  void* key_ptr = key.empty() ? nullptr : const_cast<char*>(key.data());
  void* value_ptr = value ? const_cast<char*>(value->data()) : nullptr;
  const size_t value_len = value ? value->size() : 0;
  for (;;) {
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        impl_->rk, RD_KAFKA_V_RKT(rkt),
        RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key_ptr, key.size()),
        RD_KAFKA_V_VALUE(value_ptr, value_len), RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++impl_->queued;
      // Serve delivery reports now and then so callbacks don't pile up.
      if ((impl_->queued & 1023) == 0) rd_kafka_poll(impl_->rk, 0);
      return true;
    }
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || std::chrono::steady_clock::now() >= deadline) {
      if (error) {
        *error = "produce to '" + std::string(topic) + "'";
        if (partition >= 0) *error += " [" + std::to_string(partition) + "]";
        *error += ": " + kafka_error_text(err);
      }
      return false;
    }
    rd_kafka_poll(impl_->rk, 10);  // wait for deliveries to free queue space
  }
}

void kafka_producer::poll(int timeout_ms) {
  rd_kafka_poll(impl_->rk, timeout_ms);
}

bool kafka_producer::flush(int timeout_ms, std::string* error) {
  const rd_kafka_resp_err_t err = rd_kafka_flush(impl_->rk, timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
  if (error) {
    *error = "flush: " + std::to_string(rd_kafka_outq_len(impl_->rk)) +
             " message(s) still outstanding after " + std::to_string(timeout_ms) +
             " ms: " + kafka_error_text(err);
  }
  return false;
}

uint64_t kafka_producer::queued() const {
  return impl_->queued;
}
uint64_t kafka_producer::delivered() const {
  return impl_->delivered;
}
uint64_t kafka_producer::delivery_errors() const {
  return impl_->delivery_errors;
}
const std::string& kafka_producer::first_delivery_error() const {
  return impl_->first_delivery_error;
}
int kafka_producer::outstanding() const {
  return rd_kafka_outq_len(impl_->rk);
}

}  // namespace eddy
