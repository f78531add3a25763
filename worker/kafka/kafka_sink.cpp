#include "worker/kafka/kafka_sink.hpp"

#include "worker/kafka/producer.hpp"

namespace eddy {

namespace {

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
  auto p = kafka_producer::create(bootstrap, {{"compression.type", "zstd"}}, error);
  if (!p) return nullptr;
  return std::make_unique<kafka_sink>(std::move(p), cfg.topic, std::move(fmt));
}

}  // namespace eddy
