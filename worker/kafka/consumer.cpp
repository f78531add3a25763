#include "worker/kafka/consumer.hpp"

#include <librdkafka/rdkafka.h>

#include <array>

#include "worker/kafka/producer.hpp"

namespace eddy {

struct kafka_consumer::impl {
  rd_kafka_t* rk = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  std::array<rd_kafka_message_t*, 4096> buffer{};

  ~impl() {
    if (queue) rd_kafka_queue_destroy(queue);
    if (rk) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }
};

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
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    if (error) *error = std::string("cannot create kafka consumer: ") + err;
    return nullptr;
  }
  rd_kafka_poll_set_consumer(rk);
  auto p = std::make_unique<impl>();
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

bool kafka_consumer::assign(const std::string& topic,
                            const std::vector<std::pair<int32_t, int64_t>>& start,
                            std::string* error) {
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(start.size()));
  for (const auto& [p, off] : start)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = off;
  rd_kafka_resp_err_t err = rd_kafka_assign(impl_->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (error) *error = std::string("cannot assign partitions: ") + kafka_error_text(err);
    return false;
  }
  return true;
}

size_t kafka_consumer::poll(int timeout_ms, size_t max,
                            const std::function<void(const fetched_message&)>& on_message,
                            const std::function<void(int32_t, int64_t)>& on_eof, std::string* error,
                            bool* ok) {
  *ok = true;
  size_t want = std::min(max, impl_->buffer.size());
  ssize_t n = rd_kafka_consume_batch_queue(impl_->queue, timeout_ms, impl_->buffer.data(), want);
  if (n < 0) {
    *ok = false;
    if (error) *error = std::string("kafka poll: ") + kafka_error_text(rd_kafka_last_error());
    return 0;
  }
  size_t delivered = 0;
  for (ssize_t i = 0; i < n; ++i) {
    rd_kafka_message_t* m = impl_->buffer[static_cast<size_t>(i)];
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
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
    rd_kafka_message_destroy(m);
  }
  return delivered;
}

std::string kafka_consumer::commit(const std::string& topic,
                                   const std::vector<std::pair<int32_t, int64_t>>& offsets,
                                   bool wait) {
  if (offsets.empty()) return {};
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const auto& [p, off] : offsets)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = off;
  const rd_kafka_resp_err_t err = rd_kafka_commit(impl_->rk, list, wait ? 0 : 1);
  rd_kafka_topic_partition_list_destroy(list);
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
