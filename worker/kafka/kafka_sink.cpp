#include "worker/kafka/kafka_sink.hpp"

#include "worker/kafka/producer.hpp"

namespace eddy {

namespace {

// Producer settings of every eddy output topic: compact, and a dead broker fails a batch in
// seconds rather than librdkafka's default five minutes.
const kafka_config output_producer_config = {{"compression.type", "zstd"},
                                             {"message.timeout.ms", "30000"}};

class kafka_sink final : public sink {
 public:
  kafka_sink(std::unique_ptr<kafka_producer> p, std::string topic, time_formatter fmt)
      : producer_(std::move(p)), topic_(std::move(topic)), fmt_(std::move(fmt)) {}

  std::string write_batch(int64_t, const output_schema& schema,
                          const std::vector<row>& rows) override {
    std::string err;
    uint64_t failed_before = producer_->delivery_errors();
    for (const auto& r : rows) {
      std::string json = row_to_json(schema, r, fmt_);
      if (!producer_->produce(topic_, -1, {}, std::string_view(json), 0, &err))
        return "topic " + topic_ + ": " + err;
    }
    if (!producer_->flush(30'000, &err)) return "topic " + topic_ + ": " + err;
    if (producer_->delivery_errors() != failed_before)
      return "topic " + topic_ + ": delivery failed: " + producer_->first_delivery_error();
    return {};
  }

  std::string close() override {
    std::string err;
    if (!producer_->flush(30'000, &err)) return "topic " + topic_ + ": " + err;
    return {};
  }

 private:
  std::unique_ptr<kafka_producer> producer_;
  std::string topic_;
  time_formatter fmt_;
};

}  // namespace

std::unique_ptr<sink> make_kafka_sink(const sink_config& cfg, const std::string& default_bootstrap,
                                      time_formatter fmt, std::string* error) {
  const std::string& bootstrap =
      cfg.bootstrap_servers.empty() ? default_bootstrap : cfg.bootstrap_servers;
  auto p = kafka_producer::create(bootstrap, output_producer_config, error);
  if (!p) return nullptr;
  return std::make_unique<kafka_sink>(std::move(p), cfg.topic, std::move(fmt));
}

struct kafka_dead_letter_writer::impl {
  std::unique_ptr<kafka_producer> producer;
  std::string topic;
};

std::unique_ptr<kafka_dead_letter_writer> kafka_dead_letter_writer::create(
    const std::string& bootstrap, std::string topic, std::string* error) {
  auto p = kafka_producer::create(bootstrap, output_producer_config, error);
  if (!p) return nullptr;
  auto w = std::unique_ptr<kafka_dead_letter_writer>(new kafka_dead_letter_writer());
  w->impl_ = std::make_unique<impl>();
  w->impl_->producer = std::move(p);
  w->impl_->topic = std::move(topic);
  return w;
}

kafka_dead_letter_writer::~kafka_dead_letter_writer() = default;

std::string kafka_dead_letter_writer::write(const std::vector<dead_letter>& batch) {
  auto& p = *impl_->producer;
  std::string err;
  uint64_t failed_before = p.delivery_errors();
  for (const auto& d : batch) {
    std::string json = dead_letter_to_json(d);
    if (!p.produce(impl_->topic, -1, d.key, std::string_view(json), 0, &err))
      return "topic " + impl_->topic + ": " + err;
  }
  if (!p.flush(30'000, &err)) return "topic " + impl_->topic + ": " + err;
  if (p.delivery_errors() != failed_before)
    return "topic " + impl_->topic + ": delivery failed: " + p.first_delivery_error();
  return {};
}

}  // namespace eddy
