// produce.cpp — see produce.hpp.
#include "app/produce.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "worker/kafka/producer.hpp"

namespace eddy::app {

produce_result run_produce(const produce_options& options, const std::atomic<bool>* stop,
                           std::string* error) {
  produce_result result;
  const auto fail = [&](const std::string& why) {
    if (error) *error = why;
    result.ok = false;
    return result;
  };
  if (options.bootstrap.empty()) return fail("no bootstrap servers given");
  if (options.topic.empty()) return fail("no topic given");
  if (!(options.rate >= 0) || std::isinf(options.rate)) return fail("rate must be >= 0");
  if (!(options.bad_ratio >= 0 && options.bad_ratio <= 1)) {
    return fail("bad ratio must be between 0 and 1");
  }
  if (options.disorder_ms < 0) return fail("disorder must be >= 0 ms");

  std::string why;
  // A generator should give up on an unreachable cluster in seconds, not librdkafka's 5 min.
  kafka_config config = {{"compression.type", options.compression},
                         {"message.timeout.ms", "30000"}};
  config.insert(config.end(), options.producer_config.begin(), options.producer_config.end());
  auto producer = kafka_producer::create(options.bootstrap, config, &why);
  if (!producer) return fail(why);

  sample_options so;
  so.seed = options.seed;
  so.format = options.format;
  so.start_time_us = options.start_time_us;
  so.event_spacing_us = options.event_spacing_us;
  so.disorder_ms = options.disorder_ms;
  so.bad_ratio = options.bad_ratio;
  sample_generator gen(so);

  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  // Capped so that a tiny rate (1e-300) cannot overflow the time arithmetic below: ~127 years.
  constexpr double max_wait_ns = 4e18;
  const double ns_per_message = options.rate > 0 ? std::min(1e9 / options.rate, max_wait_ns) : 0;
  bool ok = true;
  for (uint64_t i = 0; options.count == 0 || i < options.count; ++i) {
    if (stop && stop->load(std::memory_order_relaxed)) break;
    if (ns_per_message > 0) {
      // Message i is due at started + i / rate. Sleep only when more than 1 ms ahead, so high
      // rates are paced in small bursts instead of many tiny sleeps.
      const auto due = started + std::chrono::nanoseconds(static_cast<int64_t>(std::min(
                                     static_cast<double>(i) * ns_per_message, max_wait_ns)));
      const auto now = clock::now();
      if (due - now > std::chrono::milliseconds(1)) {
        producer->poll(0);
        std::this_thread::sleep_until(due);
      }
    }
    const sample_message m = gen.next();
    std::optional<std::string_view> value;
    if (m.value) value = *m.value;
    if (!producer->produce(options.topic, options.partition, m.key, value, m.timestamp_ms, &why)) {
      ok = false;
      break;
    }
    if (producer->delivery_errors() > 0) break;  // reported below; don't keep feeding a failure
  }
  std::string flush_error;
  const bool flushed = producer->flush(options.flush_timeout_ms, &flush_error);
  result.seconds = std::chrono::duration<double>(clock::now() - started).count();
  result.stats = gen.stats();
  result.produced = producer->delivered();
  result.delivery_errors = producer->delivery_errors();
  if (!ok) return fail(why);
  if (!flushed) return fail(flush_error);
  if (result.delivery_errors > 0) {
    return fail(std::to_string(result.delivery_errors) +
                " message(s) were not delivered; first error: " + producer->first_delivery_error());
  }
  result.ok = true;
  return result;
}

std::string summary_json(const produce_result& r) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"produced\": %llu, \"ops\": {\"c\": %llu, \"r\": %llu, \"u\": %llu, \"d\": "
                "%llu}, \"tombstones\": %llu, \"bad\": %llu, \"seconds\": %.3f, \"rate\": %.1f",
                static_cast<unsigned long long>(r.produced),
                static_cast<unsigned long long>(r.stats.creates),
                static_cast<unsigned long long>(r.stats.reads),
                static_cast<unsigned long long>(r.stats.updates),
                static_cast<unsigned long long>(r.stats.deletes),
                static_cast<unsigned long long>(r.stats.tombstones),
                static_cast<unsigned long long>(r.stats.bad), r.seconds, r.rate());
  std::string s = buf;
  if (r.delivery_errors > 0) {
    s += ", \"delivery_errors\": " + std::to_string(r.delivery_errors);
  }
  s += "}";
  return s;
}

}  // namespace eddy::app
