#include "worker/kafka/consumer.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <utility>

#include "worker/kafka/producer.hpp"

namespace eddy {

struct kafka_consumer::impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  std::array<rd_kafka_message_t*, 4096> buffer{};
  std::deque<rd_kafka_message_t*> held;  ///< fetched beyond a poll's byte budget, in order
  // Written by on_error, which librdkafka calls on the polling thread (inside poll()).
  broker_state brokers;
  std::vector<std::string> errors;

  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    switch (err) {
      case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        self->brokers.all_down = true;
        if (self->brokers.reason.empty()) self->brokers.reason = reason;
        break;
      case RD_KAFKA_RESP_ERR__TRANSPORT:
      case RD_KAFKA_RESP_ERR__RESOLVE:
        self->brokers.reason = reason;
        break;
      default:
        if (self->errors.size() < 16) self->errors.emplace_back(reason);
    }
  }

  ~impl() {
    for (rd_kafka_message_t* m : held) rd_kafka_message_destroy(m);
    if (queue) rd_kafka_queue_destroy(queue);
    if (rk) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }
};

std::vector<std::pair<std::string, std::string>> consumer_queue_properties(
    int64_t max_in_flight_mb) {
  const int64_t kbytes = std::clamp<int64_t>(max_in_flight_mb * 1024, 1, 2'097'151);
  const int64_t messages = std::clamp<int64_t>(kbytes * 4, 1000, 200'000);
  return {{"queued.max.messages.kbytes", std::to_string(kbytes)},
          {"queued.min.messages", std::to_string(messages)}};
}

kafka_consumer::kafka_consumer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
kafka_consumer::~kafka_consumer() = default;

std::unique_ptr<kafka_consumer> kafka_consumer::create(
    const std::string& bootstrap, const std::string& group_id,
    const std::vector<std::pair<std::string, std::string>>& extra, std::string* error) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", bootstrap},
      {"group.id", group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
      {"fetch.wait.max.ms", "10"},
      {"queued.min.messages", "200000"},
      {"log_level", "3"},
  };
  props.insert(props.end(), extra.begin(), extra.end());
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      if (error) *error = "kafka consumer property " + k + "=" + v + ": " + err;
      return nullptr;
    }
  }
  auto p = std::make_unique<impl>();
  rd_kafka_conf_set_error_cb(conf, &impl::on_error);
  rd_kafka_conf_set_opaque(conf, p.get());
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    if (error) *error = std::string("cannot create kafka consumer: ") + err;
    return nullptr;
  }
  // The main queue (errors, commit results) is NOT forwarded to the consumer queue: there an
  // error would wait behind every message prefetched before it. poll() serves it first.
  p->rk = rk;
  p->queue = rd_kafka_queue_get_consumer(rk);
  return std::unique_ptr<kafka_consumer>(new kafka_consumer(std::move(p)));
}

std::vector<int32_t> kafka_consumer::partitions(const std::string& topic, int timeout_ms,
                                                std::string* error) {
  std::vector<int32_t> out;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(impl_->rk, 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = "cannot read metadata of topic '" + topic + "': " + kafka_error_text(err);
    return out;
  }
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (error) *error = "topic '" + topic + "': " + kafka_error_text(t.err);
      break;
    }
    for (int p = 0; p < t.partition_cnt; ++p) out.push_back(t.partitions[p].id);
  }
  rd_kafka_metadata_destroy(md);
  if (out.empty() && error && error->empty()) *error = "topic '" + topic + "' has no partitions";
  return out;
}

std::optional<std::map<int32_t, std::pair<int64_t, int64_t>>> kafka_consumer::watermarks(
    const std::string& topic, const std::vector<int32_t>& partitions, int timeout_ms,
    std::string* error) {
  std::map<int32_t, std::pair<int64_t, int64_t>> out;
  for (int32_t p : partitions) {
    int64_t low = 0, high = 0;
    if (!watermarks(topic, p, &low, &high, timeout_ms, error)) return std::nullopt;
    out[p] = {low, high};
  }
  return out;
}

bool kafka_consumer::watermarks(const std::string& topic, int32_t partition, int64_t* low,
                                int64_t* high, int timeout_ms, std::string* error) {
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(impl_->rk, topic.c_str(), partition, low, high, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error)
      *error = "cannot read offsets of " + topic + "/" + std::to_string(partition) + ": " +
               kafka_error_text(err);
    return false;
  }
  return true;
}

namespace {

/// `topic`'s partitions at their start offsets, as librdkafka takes them (caller destroys).
rd_kafka_topic_partition_list_t* partition_list(
    const std::string& topic, const std::vector<std::pair<int32_t, int64_t>>& start) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(start.size()));
  for (const auto& [p, off] : start)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = off;
  return list;
}

}  // namespace

bool kafka_consumer::assign(const std::string& topic,
                            const std::vector<std::pair<int32_t, int64_t>>& start,
                            std::string* error) {
  rd_kafka_topic_partition_list_t* list = partition_list(topic, start);
  rd_kafka_resp_err_t err = rd_kafka_assign(impl_->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = std::string("cannot assign partitions: ") + kafka_error_text(err);
    return false;
  }
  return true;
}

bool kafka_consumer::add_partitions(const std::string& topic,
                                    const std::vector<std::pair<int32_t, int64_t>>& start,
                                    std::string* error) {
  rd_kafka_topic_partition_list_t* list = partition_list(topic, start);
  // Outside a rebalance callback too (librdkafka's contract): manual assignment, no group.
  rd_kafka_error_t* e = rd_kafka_incremental_assign(impl_->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != nullptr) {
    if (error) *error = std::string("cannot add partitions: ") + rd_kafka_error_string(e);
    rd_kafka_error_destroy(e);
    return false;
  }
  return true;
}

size_t kafka_consumer::poll(int timeout_ms, size_t max,
                            const std::function<void(const fetched_message&)>& on_message,
                            const std::function<void(int32_t, int64_t)>& on_eof, std::string* error,
                            bool* ok, size_t max_bytes, size_t bytes_per_message) {
  *ok = true;
  rd_kafka_poll(impl_->rk, 0);  // error callbacks (on_error) and commit results
  size_t delivered = 0, bytes = 0, handled = 0;
  // Messages held back by the last call's byte budget come first, then (if there is room)
  // newly fetched ones; whatever does not fit the budget is held for the next call.
  auto handle = [&](rd_kafka_message_t* m) {
    if (bytes >= max_bytes || handled >= max) {
      impl_->held.push_back(m);
      return;
    }
    ++handled;
    const std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> owned(
        m, &rd_kafka_message_destroy);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      bytes += m->key_len + m->len + bytes_per_message;
      fetched_message f;
      f.partition = m->partition;
      f.offset = m->offset;
      rd_kafka_timestamp_type_t tt;
      f.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
      f.key = static_cast<const char*>(m->key);
      f.key_size = m->key_len;
      f.value = static_cast<const char*>(m->payload);
      f.value_size = m->len;
      on_message(f);
      ++delivered;
    } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      on_eof(m->partition, m->offset);
    } else if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
               m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               m->err == RD_KAFKA_RESP_ERR__FATAL) {
      *ok = false;
      if (error) *error = std::string("kafka: ") + rd_kafka_message_errstr(m);
    }
    // Other errors (transport, leader changes) are transient: librdkafka retries them.
  };
  const size_t held = impl_->held.size();
  for (size_t i = 0; i < held; ++i) {
    rd_kafka_message_t* m = impl_->held.front();
    impl_->held.pop_front();
    handle(m);
  }
  if (!impl_->held.empty() || bytes >= max_bytes || handled >= max) return delivered;
  const size_t want = std::min(max - handled, impl_->buffer.size());
  const ssize_t n = rd_kafka_consume_batch_queue(impl_->queue, handled > 0 ? 0 : timeout_ms,
                                                 impl_->buffer.data(), want);
  if (n < 0) {
    *ok = false;
    if (error) *error = std::string("kafka poll: ") + kafka_error_text(rd_kafka_last_error());
    return delivered;
  }
  for (ssize_t i = 0; i < n; ++i) handle(impl_->buffer[static_cast<size_t>(i)]);
  return delivered;
}

kafka_consumer::broker_state kafka_consumer::brokers() const {
  return impl_->brokers;
}

bool kafka_consumer::probe_brokers(const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(impl_->rk, 0, rkt, &md, timeout_ms);
  rd_kafka_topic_destroy(rkt);
  if (md) rd_kafka_metadata_destroy(md);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  impl_->brokers.all_down = false;
  impl_->brokers.reason.clear();
  return true;
}

std::vector<std::string> kafka_consumer::take_errors() {
  return std::exchange(impl_->errors, {});
}

std::string kafka_consumer::commit(const std::string& topic,
                                   const std::vector<std::pair<int32_t, int64_t>>& offsets,
                                   bool wait) {
  if (offsets.empty()) return {};
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const auto& [p, off] : offsets)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = off;
  if (!wait) {
    const rd_kafka_resp_err_t err = rd_kafka_commit(impl_->rk, list, 1);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return "kafka: offset commit: " + kafka_error_text(err);
    return {};
  }
  // The answer comes to a queue of our own, awaited with a deadline. The callback is only called
  // while this function serves that queue, so `result` outlives every call of it.
  struct commit_result {
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  } result;
  auto on_commit = [](rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t*,
                      void* opaque) {
    auto* r = static_cast<commit_result*>(opaque);
    r->done = true;
    r->err = err;
  };
  rd_kafka_queue_t* q = rd_kafka_queue_new(impl_->rk);
  rd_kafka_resp_err_t err = rd_kafka_commit_queue(impl_->rk, list, q, on_commit, &result);
  rd_kafka_topic_partition_list_destroy(list);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (err == RD_KAFKA_RESP_ERR_NO_ERROR && !result.done) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      rd_kafka_queue_destroy(q);
      return "kafka: offset commit: no answer within 5 s";
    }
    if (rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(left))) {
      if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
        result.done = true;
        result.err = rd_kafka_event_error(ev);
      }
      rd_kafka_event_destroy(ev);
    }
  }
  rd_kafka_queue_destroy(q);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = result.err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return "kafka: offset commit: " + kafka_error_text(err);
  return {};
}

std::vector<std::pair<int32_t, int64_t>> kafka_consumer::committed(
    const std::string& topic, const std::vector<int32_t>& partitions, int timeout_ms,
    std::string* error) {
  std::vector<std::pair<int32_t, int64_t>> out;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  const rd_kafka_resp_err_t err = rd_kafka_committed(impl_->rk, list, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = "kafka: committed offsets: " + kafka_error_text(err);
  } else {
    for (int i = 0; i < list->cnt; ++i)
      out.emplace_back(list->elems[i].partition, list->elems[i].offset);
  }
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

}  // namespace eddy
