// windowed_e2e_test.cpp — aggregating pipelines end to end: `eddy broker`, `eddy produce` and
// `eddy run --exit-at-end` as processes, checked against results computed independently in the
// test from the very messages on the topic.
//
// The test reads the whole topic back with eddy::kafka_consumer, decodes and filters every
// message with eddy::record_processor (the same decoding the runtime does — the engine under
// test here is the windowing, the sharding and the sinks), and computes the expected result with
// the brute-force reference of tests/support/reference_aggregation.hpp (windowed test) or with a
// plain replay of the table (changelog test).
//
// Every test gets its own temporary directory and broker and bounds every wait with a timeout.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"
#include "tests/support/eddy_fixture.hpp"
#include "tests/support/jsonl.hpp"
#include "tests/support/process.hpp"
#include "tests/support/reference_aggregation.hpp"
#include "tests/support/ride_fields.hpp"
#include "worker/decode/debezium_decoder.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/kafka/producer.hpp"
#include "worker/window/aggregates.hpp"
#include "worker/window/windowing.hpp"

namespace eddy::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

const std::string k_eddy = EDDY_BINARY;
const fs::path k_source_dir = EDDY_SOURCE_DIR;

constexpr auto k_read_back_timeout = 60s;

/// Replaces the one occurrence of `from` in `text`; throws when there is not exactly one.
void replace_once(std::string& text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos)
    throw std::runtime_error("expected exactly one \"" + std::string(from) + "\"");
  text.replace(at, from.size(), to);
}

bool near(double got, double want) {
  if (got == want) return true;
  return std::abs(got - want) <= 1e-9 * std::max(std::abs(got), std::abs(want));
}

/// "" when the JSON value a sink wrote is `want` (doubles within relative 1e-9, timestamps as
/// the sink's UTC ISO form), else a description of the difference.
std::string compare_value(const json::value& got, const value& want) {
  const time_formatter utc;
  std::string got_text = json::serialize(got);
  if (got.is_double()) {
    std::ostringstream g;
    g.precision(17);
    g << got.as_double();
    got_text = g.str();
  }
  auto differs = [&](const std::string& w) { return "got " + got_text + ", want " + w; };
  if (is_null(want)) return got.is_null() ? "" : differs("null");
  if (const auto* s = std::get_if<std::string>(&want)) {
    return got.is_string() && got.as_string() == *s ? ""
                                                    : differs(json::serialize(json::value(*s)));
  }
  if (const auto* i = std::get_if<int64_t>(&want)) {
    return got.is_int64() && got.as_int64() == *i ? "" : differs(std::to_string(*i));
  }
  if (const auto* d = std::get_if<double>(&want)) {
    std::ostringstream w;
    w.precision(17);
    w << *d;
    return got.is_double() && near(got.as_double(), *d) ? "" : differs(w.str());
  }
  if (const auto* b = std::get_if<bool>(&want)) {
    return got.is_bool() && got.as_bool() == *b ? "" : differs(*b ? "true" : "false");
  }
  const std::string iso = utc.format_iso(std::get<timestamp>(want));
  return got.is_string() && got.as_string() == iso ? "" : differs("\"" + iso + "\"");
}

/// A text naming a value, for map keys and messages.
std::string describe(const value& v) {
  if (is_null(v)) return "null";
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* t = std::get_if<timestamp>(&v)) return time_formatter().format_iso(*t);
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return std::to_string(*d);
  return std::get<bool>(v) ? "true" : "false";
}
std::string describe(const json::value& v) {
  return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
}

// ---- the topic, read back --------------------------------------------------------------------

struct topic_message {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = -1;
  std::string key;
  std::optional<std::string> value;  ///< nullopt: a tombstone
};

/// Every message of every partition of `topic`, per partition in offset order. Fails the test
/// (ADD_FAILURE) and returns what it has when the topic cannot be read completely in time.
std::map<int32_t, std::vector<topic_message>> read_topic(const std::string& bootstrap,
                                                         const std::string& topic) {
  std::map<int32_t, std::vector<topic_message>> by_partition;
  std::string err;
  auto consumer = kafka_consumer::create(bootstrap, "windowed-e2e-reader", {}, &err);
  if (!consumer) {
    ADD_FAILURE() << "kafka consumer: " << err;
    return by_partition;
  }
  const std::vector<int32_t> partitions = consumer->partitions(topic, 10000, &err);
  if (partitions.empty()) {
    ADD_FAILURE() << "no partitions of " << topic << ": " << err;
    return by_partition;
  }
  std::map<int32_t, int64_t> high;
  std::vector<std::pair<int32_t, int64_t>> start;
  for (int32_t p : partitions) {
    int64_t lo = 0;
    int64_t hi = 0;
    if (!consumer->watermarks(topic, p, &lo, &hi, 10000, &err)) {
      ADD_FAILURE() << "watermarks of partition " << p << ": " << err;
      return by_partition;
    }
    // The mock broker silently drops old data past ~5 MiB per partition: make sure it did not.
    EXPECT_EQ(lo, 0) << "partition " << p << " lost its first messages (broker retention)";
    high[p] = hi;
    by_partition[p];
    start.emplace_back(p, offset_beginning);
  }
  if (!consumer->assign(topic, start, &err)) {
    ADD_FAILURE() << "assign: " << err;
    return by_partition;
  }
  auto complete = [&] {
    for (const auto& [p, hi] : high) {
      if (static_cast<int64_t>(by_partition[p].size()) < hi) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + k_read_back_timeout;
  while (!complete()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "could not read " << topic << " back within "
                    << std::chrono::duration_cast<std::chrono::seconds>(k_read_back_timeout).count()
                    << " s";
      return by_partition;
    }
    bool ok = true;
    consumer->poll(
        100, 10000,
        [&](const fetched_message& m) {
          topic_message& t = by_partition[m.partition].emplace_back();
          t.partition = m.partition;
          t.offset = m.offset;
          t.timestamp_ms = m.timestamp_ms;
          t.key.assign(m.key != nullptr ? m.key : "", m.key_size);
          if (m.value != nullptr) t.value.emplace(m.value, m.value_size);
        },
        [](int32_t, int64_t) {}, &err, &ok);
    if (!ok) {
      ADD_FAILURE() << "consumer: " << err;
      return by_partition;
    }
  }
  for (const auto& [p, messages] : by_partition) {
    for (size_t i = 0; i < messages.size(); ++i) {
      EXPECT_EQ(messages[i].offset, static_cast<int64_t>(i)) << "partition " << p;
      if (messages[i].offset != static_cast<int64_t>(i)) break;
    }
  }
  return by_partition;
}

/// One message of the topic through a record_processor (decode, clean, filter; no projection).
struct processed {
  record_outcome outcome = record_outcome::filtered;
  std::string reason;      ///< the dead-letter reason
  decoded_record decoded;  ///< outcome out only
};

processed process_message(record_processor& proc, const std::string& topic, const topic_message& m,
                          record_counters& counters) {
  raw_record r;
  r.topic = topic;
  r.partition = m.partition;
  r.offset = m.offset;
  r.timestamp_ms = m.timestamp_ms;
  r.key = m.key;
  r.value_is_null = !m.value.has_value();
  if (m.value) r.value = *m.value;
  std::vector<row> rows;
  std::vector<dead_letter> dead;
  processed p;
  p.outcome = proc.process(r, rows, dead, counters);
  if (p.outcome == record_outcome::dead_lettered) p.reason = proc.last_reason();
  if (p.outcome == record_outcome::out) p.decoded = proc.last_decoded();
  return p;
}

// ---- the fixture ----------------------------------------------------------------------------

class aggregating_pipeline : public eddy_fixture {
 protected:
  aggregating_pipeline() : eddy_fixture("eddy-windowed-e2e") {}

  /// `eddy produce ARGS...` into the broker; its JSON summary line.
  std::optional<json::object> produce(const std::vector<std::string>& extra) {
    return produce_with(extra);
  }

  /// `eddy run -c CONFIG --exit-at-end`; the summary JSON, or nullopt (test failed).
  std::optional<json::object> run_pipeline_file(const std::string& config) {
    const std::string summary_path = dir_ / "summary.json";
    auto run = run_eddy({"run", "-c", config, "--bootstrap", bootstrap_, "--exit-at-end",
                         "--summary-json", summary_path});
    if (!run) return std::nullopt;
    EXPECT_TRUE(run->status.ok()) << run->status.describe() << "; stderr: " << run->err;
    if (!run->status.ok()) return std::nullopt;
    json::object summary = parse_object(read_text_file(summary_path));
    EXPECT_TRUE(summary.at("ok").as_bool());
    return summary;
  }

  /// Parses `text` as eddy run would load it.
  static std::optional<pipeline_config> parse_config(const std::string& text) {
    config_result parsed = parse_pipeline_config(text);
    EXPECT_TRUE(parsed.config.has_value()) << parsed.error;
    return parsed.config;
  }
};

// ---- 1. tumbling windows with late events and malformed records ----------------------------

/// The fields of deploy/pipelines/ncr_windowed.toml, 1-minute tumbling windows with 2 s of
/// allowed disorder (the producer makes up to 3 s: some rows are late), late rows to the dead
/// letter, one file sink.
std::string windowed_toml(const std::string& topic, const std::string& sink_dir,
                          const std::string& dead_dir) {
  std::string fields = ride_fields_toml(false);
  const struct {
    const char* alias;
    const char* function;
    const char* field;
  } aggregates[] = {
      {"bookings", "count", ""},
      {"total_booking_value", "sum", "booking_value"},
      {"avg_booking_value", "avg", "booking_value"},
      {"min_ride_distance", "min", "ride_distance"},
      {"max_ride_distance", "max", "ride_distance"},
      {"pickup_locations", "count_distinct", "pickup_location"},
      {"p95_ride_distance", "p95", "ride_distance"},
  };
  std::string aggs;
  for (const auto& a : aggregates) {
    aggs += std::string("\n[[aggregates]]\nalias = \"") + a.alias + "\"\nfunction = \"" +
            a.function + "\"\n" + (*a.field ? std::string("field = \"") + a.field + "\"\n" : "");
  }
  return "[pipeline]\nname = \"windowed_e2e\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 200\n"
         "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
         topic + "\"\nformat = \"auto\"\n" + fields +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n" + aggs +
         "\n[aggregate]\ngroup_by = [\"vehicle_type\"]\nmode = \"append\"\nshards = 3\n"
         "\n[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"created_at_ts\"\n"
         "max_out_of_orderness = \"2s\"\nallowed_lateness = \"0s\"\nemit = \"on_close\"\n"
         "late = \"dead_letter\"\n"
         "\n[[sinks]]\ntype = \"file\"\npath = \"" +
         sink_dir + "\"\n\n[dead_letter]\npath = \"" + dead_dir + "\"\n";
}

TEST_F(aggregating_pipeline, tumbling_windows_match_the_brute_force_reference_row_for_row) {
  const std::string topic = "rides_windowed";
  constexpr int k_count = 200000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":8"));
  auto produced =
      produce({"--topic", topic, "--count", std::to_string(k_count), "--format", "unwrapped",
               "--disorder-ms", "3000", "--bad-ratio", "0.01", "--seed", "11"});
  ASSERT_TRUE(produced.has_value());
  ASSERT_EQ(int_at(*produced, "produced"), k_count);

  const fs::path out_dir = dir_ / "out";
  const fs::path dead_dir = dir_ / "dead";
  const std::string toml = windowed_toml(topic, out_dir.string(), dead_dir.string());
  const std::string config_path = dir_ / "windowed.toml";
  write_text_file(config_path, toml);
  auto summary = run_pipeline_file(config_path);
  ASSERT_TRUE(summary.has_value());

  // ---- the expected result, from the topic itself --------------------------------------
  const auto messages = read_topic(bootstrap_, topic);
  ASSERT_FALSE(::testing::Test::HasFailure());
  std::optional<pipeline_config> cfg = parse_config(toml);
  ASSERT_TRUE(cfg.has_value());
  std::string err;
  const std::optional<aggregation_plan> plan = aggregation_plan::from_config(*cfg, &err);
  ASSERT_TRUE(plan.has_value()) << err;
  ASSERT_EQ(plan->window.kind, window_kind::tumbling);

  std::vector<reference::ref_event> events;                      // per partition, in offset order
  std::vector<std::pair<int32_t, int64_t>> event_origin;         // (partition, offset) of events[i]
  std::map<std::pair<int64_t, int64_t>, std::string> malformed;  // (partition, offset) -> reason
  record_counters decoded_counters;
  int64_t total_messages = 0;
  for (const auto& [partition, list] : messages) {
    auto proc = record_processor::create(*cfg, &err, /*project=*/false);
    ASSERT_NE(proc, nullptr) << err;
    for (const topic_message& m : list) {
      ++total_messages;
      processed p = process_message(*proc, topic, m, decoded_counters);
      if (p.outcome == record_outcome::dead_lettered) {
        malformed[{m.partition, m.offset}] = p.reason;
      } else if (p.outcome == record_outcome::out) {
        reference::ref_event& ev = events.emplace_back();
        ev.partition = m.partition;
        ev.op = p.decoded.op;
        ev.image = std::move(p.decoded.image);
        ev.before = std::move(p.decoded.before);
        event_origin.emplace_back(m.partition, m.offset);
      }
    }
  }
  ASSERT_EQ(total_messages, k_count);
  ASSERT_EQ(static_cast<int64_t>(malformed.size()), int_at(*produced, "bad"));
  const reference::ref_result expected = reference::reference_aggregate(*plan, events);
  // The run must exercise both dead-letter paths, or this test proves less than it claims.
  ASSERT_FALSE(expected.dead_letters.empty()) << "no late rows: raise --disorder-ms";
  ASSERT_FALSE(malformed.empty());

  // ---- counters -------------------------------------------------------------------------
  const int64_t in = int_at(*summary, "in");
  const int64_t out = int_at(*summary, "out");
  const int64_t filtered = int_at(*summary, "filtered");
  const int64_t dead_lettered = int_at(*summary, "dead_lettered");
  const int64_t late = int_at(*summary, "late");
  EXPECT_EQ(in, k_count);
  EXPECT_EQ(filtered, decoded_counters.filtered);
  EXPECT_EQ(late, expected.late);  // 0: late rows go to the dead letter with this policy
  EXPECT_EQ(dead_lettered, static_cast<int64_t>(malformed.size() + expected.dead_letters.size()));
  EXPECT_EQ(out, expected.contributed);
  EXPECT_EQ(in, out + filtered + dead_lettered + late);

  // ---- dead letters: exactly the malformed records and the late rows ---------------------
  const time_formatter utc;
  std::map<std::pair<int64_t, int64_t>, std::string> expected_late;  // -> reason prefix
  for (size_t i : expected.dead_letters) {
    const reference::ref_event& ev = events[i];
    const int64_t t =
        std::get<timestamp>(ev.image[static_cast<size_t>(plan->window.time_field_index)]).micros;
    const int64_t size = plan->window.size_us;
    const int64_t start = t - (((t % size) + size) % size);
    expected_late[{event_origin[i].first, event_origin[i].second}] =
        "late: window [" + utc.format_iso(timestamp{start}) + ", " +
        utc.format_iso(timestamp{start + size}) + ") closed at watermark ";
  }
  const std::vector<json::object> dead = read_jsonl(dead_dir, "dead-letter-");
  EXPECT_EQ(static_cast<int64_t>(dead.size()), dead_lettered);
  std::set<std::pair<int64_t, int64_t>> dead_seen;
  size_t late_seen = 0;
  size_t malformed_seen = 0;
  for (const json::object& d : dead) {
    const std::pair<int64_t, int64_t> at{int_at(d, "partition"), int_at(d, "offset")};
    EXPECT_TRUE(dead_seen.insert(at).second)
        << "dead letter " << at.first << "/" << at.second << " written twice";
    EXPECT_EQ(str_at(d, "topic"), topic);
    const std::string reason = str_at(d, "reason");
    if (auto it = malformed.find(at); it != malformed.end()) {
      ++malformed_seen;
      EXPECT_EQ(reason, it->second) << at.first << "/" << at.second;
    } else if (auto lt = expected_late.find(at); lt != expected_late.end()) {
      ++late_seen;
      EXPECT_TRUE(reason.starts_with(lt->second))
          << at.first << "/" << at.second << ": reason \"" << reason << "\", expected \""
          << lt->second << "...\"";
    } else {
      ADD_FAILURE() << "unexpected dead letter " << at.first << "/" << at.second << ": " << reason;
    }
  }
  EXPECT_EQ(malformed_seen, malformed.size());
  EXPECT_EQ(late_seen, expected_late.size());

  // ---- result rows -----------------------------------------------------------------------
  const std::vector<std::string>& names = plan->schema.names;
  ASSERT_GE(names.size(), 3u);
  ASSERT_EQ(names[0], "window_start");
  ASSERT_EQ(names[1], "window_end");
  ASSERT_EQ(names[2], "vehicle_type");
  const size_t p95_column = names.size() - 1;
  ASSERT_EQ(names[p95_column], "p95_ride_distance");
  ASSERT_EQ(plan->aggs.back().fn, agg_fn::percentile);

  // The ride distances of every (window start, vehicle type) group, for the sketch's rank check:
  // in append mode with tumbling windows, every event the reference did not dead-letter adds
  // its value to exactly its own window.
  const int ride_distance = cfg->field_index("ride_distance");
  const int vehicle_type = cfg->field_index("vehicle_type");
  std::map<std::pair<std::string, std::string>, std::vector<double>> distances;
  {
    const std::set<size_t> dead_events(expected.dead_letters.begin(), expected.dead_letters.end());
    for (size_t i = 0; i < events.size(); ++i) {
      if (dead_events.contains(i)) continue;
      const row& image = events[i].image;
      const int64_t t =
          std::get<timestamp>(image[static_cast<size_t>(plan->window.time_field_index)]).micros;
      const int64_t size = plan->window.size_us;
      const int64_t start = t - (((t % size) + size) % size);
      auto& xs = distances[{utc.format_iso(timestamp{start}),
                            describe(image[static_cast<size_t>(vehicle_type)])}];
      if (const auto* d = std::get_if<double>(&image[static_cast<size_t>(ride_distance)])) {
        xs.push_back(*d);
      }
    }
    for (auto& [key, xs] : distances) std::sort(xs.begin(), xs.end());
  }

  using group_key = std::pair<std::string, std::string>;  // (window_start, vehicle_type)
  std::map<group_key, const row*> want;
  for (const row& r : expected.rows) {
    ASSERT_EQ(r.size(), names.size());
    EXPECT_TRUE(want.emplace(group_key{describe(r[0]), describe(r[2])}, &r).second);
  }
  const std::vector<json::object> rows = read_jsonl(out_dir, "part-");
  EXPECT_EQ(rows.size(), want.size());
  std::set<group_key> got_keys;
  size_t compared = 0;
  size_t largest_group = 0;
  for (const json::object& got : rows) {
    const group_key key{describe(got.at("window_start")), describe(got.at("vehicle_type"))};
    const std::string where = "window " + key.first + ", vehicle_type " + key.second;
    EXPECT_TRUE(got_keys.insert(key).second) << where << " emitted twice";
    EXPECT_EQ(got.size(), names.size()) << where << ": " << json::serialize(got);
    const auto it = want.find(key);
    if (it == want.end()) {
      ADD_FAILURE() << "unexpected row " << json::serialize(got);
      continue;
    }
    const row& r = *it->second;
    for (size_t c = 0; c < names.size(); ++c) {
      const json::value* v = got.if_contains(names[c]);
      if (v == nullptr) {
        ADD_FAILURE() << where << ": no column " << names[c];
        continue;
      }
      if (c != p95_column) {
        const std::string diff = compare_value(*v, r[c]);
        EXPECT_TRUE(diff.empty()) << where << ", " << names[c] << ": " << diff;
        continue;
      }
      // p95: a sketch. Exact for small groups; otherwise its rank within the group's sorted
      // values must be within the documented rank error of 0.95.
      const std::vector<double>& xs = distances[key];
      largest_group = std::max(largest_group, xs.size());
      ASSERT_FALSE(xs.empty()) << where;
      ASSERT_TRUE(v->is_double()) << where << ": " << json::serialize(*v);
      EXPECT_EQ(std::get<double>(r[c]),
                xs[static_cast<size_t>(std::max<int64_t>(
                       1, static_cast<int64_t>(std::ceil(0.95 * static_cast<double>(xs.size()))))) -
                   1])
          << "the reference and the test disagree on the exact p95 of " << where;
      const double got_p95 = v->as_double();
      if (xs.size() <= 1000) {
        EXPECT_EQ(got_p95, std::get<double>(r[c])) << where << " (" << xs.size() << " values)";
        continue;
      }
      // The emitted value covers ranks (below, below_or_equal]; some rank in it must be close.
      const auto n = static_cast<double>(xs.size());
      const double below =
          static_cast<double>(std::lower_bound(xs.begin(), xs.end(), got_p95) - xs.begin());
      const double upto =
          static_cast<double>(std::upper_bound(xs.begin(), xs.end(), got_p95) - xs.begin());
      const double lo = 0.95 - percentile_rank_error;
      const double hi = 0.95 + percentile_rank_error;
      EXPECT_TRUE(upto / n >= lo && below / n <= hi)
          << where << ": p95 " << got_p95 << " has rank " << below / n << ".." << upto / n
          << " among " << xs.size() << " values; exact p95 " << std::get<double>(r[c]);
    }
    ++compared;
  }
  EXPECT_EQ(compared, want.size());
  for (const auto& [key, r] : want) {
    EXPECT_TRUE(got_keys.contains(key))
        << "missing row for window " << key.first << ", vehicle_type " << key.second;
  }
  RecordProperty("groups", static_cast<int>(want.size()));
  RecordProperty("late_rows", static_cast<int>(expected.dead_letters.size()));
  RecordProperty("largest_group", static_cast<int>(largest_group));
}

// ---- 2. changelog: a table kept up to date ---------------------------------------------------

TEST_F(aggregating_pipeline, changelog_groups_end_at_the_counts_of_the_final_table) {
  const std::string topic = "rides_changelog";
  constexpr int k_count = 20000;
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced = produce({"--topic", topic, "--count", std::to_string(k_count), "--format",
                           "unwrapped", "--seed", "5"});
  ASSERT_TRUE(produced.has_value());
  ASSERT_EQ(int_at(*produced, "produced"), k_count);
  ASSERT_GT(int_at(produced->at("ops").as_object(), "u"), 0);
  ASSERT_GT(int_at(produced->at("ops").as_object(), "d"), 0);

  // deploy/pipelines/ncr_changelog.toml, pointed at this broker and topic, writing files here.
  const fs::path out_dir = dir_ / "out";
  const fs::path dead_dir = dir_ / "dead";
  std::string toml = read_text_file(k_source_dir / "deploy/pipelines/ncr_changelog.toml");
  replace_once(toml, "bootstrap_servers = \"127.0.0.1:9092\"",
               "bootstrap_servers = \"" + bootstrap_ + "\"");
  replace_once(toml, "topic = \"business_postgres.public.business_ncr_ride_bookings\"",
               "topic = \"" + topic + "\"");
  replace_once(toml, "path = \"dead-letter/ncr_changelog\"",
               "path = \"" + dead_dir.string() + "\"");
  replace_once(toml, "trigger_interval_ms = 1000", "trigger_interval_ms = 10");
  toml += "\n[[sinks]]\ntype = \"file\"\npath = \"" + out_dir.string() + "\"\n";
  const std::string config_path = dir_ / "changelog.toml";
  write_text_file(config_path, toml);
  auto summary = run_pipeline_file(config_path);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(int_at(*summary, "in"), k_count);
  EXPECT_EQ(int_at(*summary, "dead_lettered"), 0);
  EXPECT_EQ(int_at(*summary, "late"), 0);
  EXPECT_EQ(int_at(*summary, "filtered"), int_at(*produced, "tombstones"));
  EXPECT_EQ(int_at(*summary, "in"), int_at(*summary, "out") + int_at(*summary, "filtered") +
                                        int_at(*summary, "dead_lettered") +
                                        int_at(*summary, "late"));

  // ---- the final table, replayed from the topic -----------------------------------------
  const auto messages = read_topic(bootstrap_, topic);
  ASSERT_FALSE(::testing::Test::HasFailure());
  std::optional<pipeline_config> cfg = parse_config(toml);
  ASSERT_TRUE(cfg.has_value());
  const size_t id = static_cast<size_t>(cfg->field_index("id"));
  const size_t location = static_cast<size_t>(cfg->field_index("pickup_location"));
  const size_t status = static_cast<size_t>(cfg->field_index("booking_status"));
  const size_t booking_value = static_cast<size_t>(cfg->field_index("booking_value"));
  std::string err;
  std::map<int64_t, row> table;  // id -> last image (ids never move between partitions)
  std::set<std::pair<std::string, std::string>> ever_completed;
  for (const auto& [partition, list] : messages) {
    auto proc = record_processor::create(*cfg, &err, /*project=*/false);
    ASSERT_NE(proc, nullptr) << err;
    record_counters counters;
    for (const topic_message& m : list) {
      processed p = process_message(*proc, topic, m, counters);
      ASSERT_NE(p.outcome, record_outcome::dead_lettered) << p.reason;
      if (p.outcome != record_outcome::out) continue;
      const int64_t key = std::get<int64_t>(p.decoded.image[id]);
      if (p.decoded.op == cdc_op::del) {
        table.erase(key);
        continue;
      }
      const std::string s = describe(p.decoded.image[status]);
      if (s == "Completed") ever_completed.emplace(describe(p.decoded.image[location]), s);
      table[key] = std::move(p.decoded.image);
    }
  }
  struct group {
    int64_t rows = 0;
    int64_t values = 0;
    long double sum = 0;
  };
  std::map<std::pair<std::string, std::string>, group> final_groups;  // having applied
  for (const auto& [key, image] : table) {
    if (describe(image[status]) != "Completed") continue;
    group& g = final_groups[{describe(image[location]), describe(image[status])}];
    ++g.rows;
    if (const auto* v = std::get_if<double>(&image[booking_value])) {
      ++g.values;
      g.sum += *v;
    }
  }
  ASSERT_FALSE(final_groups.empty());

  // ---- the last row per group, in output order --------------------------------------------
  const std::vector<json::object> rows = read_jsonl(out_dir, "part-");
  std::map<std::pair<std::string, std::string>, json::object> last;
  for (const json::object& r : rows) {
    EXPECT_EQ(r.size(), 4u) << json::serialize(r);
    EXPECT_EQ(str_at(r, "booking_status"), "Completed") << json::serialize(r);
    last[{describe(r.at("pickup_location")), describe(r.at("booking_status"))}] = r;
  }
  for (const auto& [key, g] : final_groups) {
    const std::string where = key.first + "/" + key.second;
    const auto it = last.find(key);
    if (it == last.end()) {
      ADD_FAILURE() << "no row for " << where << " (" << g.rows << " rows in the table)";
      continue;
    }
    EXPECT_EQ(int_at(it->second, "completed"), g.rows) << where;
    const value avg = g.values == 0 ? value{} : value{static_cast<double>(g.sum / g.values)};
    const std::string diff = compare_value(it->second.at("avg_booking_value"), avg);
    EXPECT_TRUE(diff.empty()) << where << ", avg_booking_value: " << diff;
  }
  // Groups that emptied out emit nothing (windowing.hpp: consumers keep the last row they saw):
  // a group with output but not in the final table must have had completed rows at some time.
  int stale = 0;
  for (const auto& [key, r] : last) {
    if (final_groups.contains(key)) continue;
    ++stale;
    EXPECT_TRUE(ever_completed.contains(key))
        << key.first << "/" << key.second << " never had a completed row: " << json::serialize(r);
  }
  RecordProperty("groups", static_cast<int>(final_groups.size()));
  RecordProperty("emptied_groups", stale);
  RecordProperty("rows", static_cast<int>(rows.size()));
}

// ---- 3. max_rows_per_batch: an epoch's rows staged in parts -----------------------------------

/// 2-second tumbling windows of (vehicle_type, pickup_location) groups, count and max only (so
/// that two runs agree to the last bit whatever the merge order), checkpoints every 100 ms, one
/// file sink; `extra_pipeline_keys` goes into [pipeline]. The source reads 10000 messages a
/// second, so that windows close in many epochs, not all in the final one.
std::string spill_toml(const std::string& topic, const fs::path& run_dir,
                       const std::string& extra_pipeline_keys) {
  return "[pipeline]\nname = \"spill_e2e\"\ntimezone = \"UTC\"\ntrigger_interval_ms = 100\n" +
         extra_pipeline_keys + "\n[source]\nbootstrap_servers = \"127.0.0.1:1\"\ntopic = \"" +
         topic + "\"\nmax_records_per_second = 10000\n" + ride_fields_toml(false) +
         "\n[query]\nfilter = 'op in (\"c\", \"r\")'\n"
         "\n[[aggregates]]\nalias = \"bookings\"\nfunction = \"count\"\n"
         "\n[[aggregates]]\nalias = \"max_ride_distance\"\nfunction = \"max\"\n"
         "field = \"ride_distance\"\n"
         "\n[aggregate]\ngroup_by = [\"vehicle_type\", \"pickup_location\"]\nmode = \"append\"\n"
         "shards = 3\n"
         "\n[window]\ntype = \"tumbling\"\nsize = \"2s\"\ntime_field = \"created_at_ts\"\n"
         "max_out_of_orderness = \"1s\"\nallowed_lateness = \"0s\"\nemit = \"on_close\"\n"
         "late = \"dead_letter\"\n"
         "\n[[sinks]]\ntype = \"file\"\npath = \"" +
         (run_dir / "out").string() + "\"\n\n[dead_letter]\npath = \"" +
         (run_dir / "dead").string() + "\"\n\n[checkpoint]\ndir = \"" +
         (run_dir / "checkpoints").string() + "\"\ninterval = \"100ms\"\nsync = false\n";
}

/// An epoch output file name: "part-<epoch, 10 digits>.jsonl" (part 0, the epoch's last part)
/// or "part-<epoch, 10 digits>-<part, 5 digits>.jsonl". False for any other name.
bool parse_epoch_part_name(std::string_view name, uint64_t* epoch, int* part) {
  auto digits = [&](size_t count, uint64_t* out) {
    if (name.size() < count) return false;
    *out = 0;
    for (size_t i = 0; i < count; ++i) {
      if (name[i] < '0' || name[i] > '9') return false;
      *out = *out * 10 + static_cast<uint64_t>(name[i] - '0');
    }
    name.remove_prefix(count);
    return true;
  };
  if (!name.starts_with("part-")) return false;
  name.remove_prefix(5);
  if (!digits(10, epoch)) return false;
  *part = 0;
  if (name.starts_with("-")) {
    name.remove_prefix(1);
    uint64_t k = 0;
    if (!digits(5, &k) || k == 0) return false;
    *part = static_cast<int>(k);
  }
  return name == ".jsonl";
}

/// Every line of the part-*.jsonl files of `dir`, sorted.
std::vector<std::string> sorted_output_lines(const fs::path& dir) {
  std::vector<std::string> lines;
  for (const auto& file : jsonl_files(dir, "part-")) {
    for (auto& line : split_lines(read_text_file(file))) lines.push_back(std::move(line));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

TEST_F(aggregating_pipeline, an_epoch_spilled_in_parts_writes_the_same_rows_as_one_file_per_epoch) {
  const std::string topic = "rides_spill";
  constexpr int k_count = 20000;  // 1 ms of event time apart: ~10 windows of 2 s
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":4"));
  auto produced = produce({"--topic", topic, "--count", std::to_string(k_count), "--format",
                           "unwrapped", "--seed", "17"});
  ASSERT_TRUE(produced.has_value());
  ASSERT_EQ(int_at(*produced, "produced"), k_count);

  struct run {
    fs::path dir;
    std::vector<std::string> lines;
    std::map<uint64_t, std::vector<int>> parts;  ///< epoch -> its part numbers, in name order
    std::map<std::string, size_t> rows_in;       ///< file name -> lines
  };
  auto run_with = [&](const std::string& name, const std::string& pipeline_keys) {
    run r;
    r.dir = dir_ / name;
    const std::string config_path = dir_ / (name + ".toml");
    write_text_file(config_path, spill_toml(topic, r.dir, pipeline_keys));
    auto summary = run_pipeline_file(config_path);
    EXPECT_TRUE(summary.has_value()) << name;
    if (summary) {
      EXPECT_EQ(int_at(*summary, "in"), k_count) << name;
    }
    r.lines = sorted_output_lines(r.dir / "out");
    for (const auto& file : jsonl_files(r.dir / "out", "part-")) {
      const std::string file_name = file.filename().string();
      uint64_t epoch = 0;
      int part = 0;
      EXPECT_TRUE(parse_epoch_part_name(file_name, &epoch, &part))
          << name << ": unexpected output file " << file_name;
      r.parts[epoch].push_back(part);
      r.rows_in[file_name] = split_lines(read_text_file(file)).size();
    }
    return r;
  };
  const run whole = run_with("default", "");
  ASSERT_FALSE(::testing::Test::HasFailure());
  const run spilled = run_with("spilled", "max_rows_per_batch = 2\n");
  ASSERT_FALSE(::testing::Test::HasFailure());

  // Same rows, whatever files they are in.
  ASSERT_GT(whole.lines.size(), 100u) << "too few groups to spill anything";
  EXPECT_EQ(spilled.lines.size(), whole.lines.size());
  EXPECT_TRUE(spilled.lines == whole.lines) << "the spilled run wrote other rows";

  // The default holds each epoch in one file; with 2 rows per batch, epochs came in parts:
  // 1, 2, ... in name order before the epoch's last part (if that had rows left).
  for (const auto& [epoch, parts] : whole.parts) {
    EXPECT_EQ(parts, std::vector<int>{0}) << "default run, epoch " << epoch;
  }
  size_t spilled_parts = 0;
  for (const auto& [epoch, parts] : spilled.parts) {
    std::vector<int> want;
    for (int k = 1; k <= static_cast<int>(parts.size()); ++k) want.push_back(k);
    if (parts.back() == 0) want.back() = 0;
    EXPECT_EQ(parts, want) << "spilled run, epoch " << epoch;
    spilled_parts += parts.size() - (parts.back() == 0 ? 1 : 0);
  }
  EXPECT_GE(spilled_parts, 1u) << "max_rows_per_batch = 2 staged no part before a barrier";
  for (const auto& [file_name, rows] : spilled.rows_in) {
    uint64_t epoch = 0;
    int part = 0;
    if (parse_epoch_part_name(file_name, &epoch, &part) && part != 0) {
      EXPECT_GE(rows, 2u) << file_name << ": a part is staged once 2 rows are buffered";
    }
  }
  EXPECT_GE(spilled.parts.size(), 3u) << "windows closed in too few epochs";
  RecordProperty("rows", static_cast<int>(whole.lines.size()));
  RecordProperty("epochs_with_output", static_cast<int>(spilled.parts.size()));
  RecordProperty("spilled_parts", static_cast<int>(spilled_parts));
}

// ---- 4. a partition waking up behind closed windows ---------------------------------------

/// Partition 1 goes quiet, so after window.idle_timeout the watermark follows partition 0 alone
/// and windows close; then partition 1 gets a record for a window that already closed. Its
/// partition counts it as out (it is not late by partition 1's own watermark), the shard has
/// nowhere to put it: the run must say so (summary dropped_after_close, a warning) instead of
/// letting the row vanish.
TEST_F(aggregating_pipeline,
       a_row_reaching_a_window_closed_while_its_partition_was_idle_is_reported) {
  const std::string topic = "idle";
  ASSERT_NO_FATAL_FAILURE(start_broker(topic + ":2"));
  std::string error;
  auto producer = kafka_producer::create(bootstrap_, {}, &error);
  ASSERT_TRUE(producer) << error;
  constexpr int64_t base_us = 1'700'000'000'000'000;  // a multiple of 10 s
  auto send = [&](int32_t partition, int64_t id, int64_t t_us) {
    const std::string v = "{\"id\": " + std::to_string(id) +
                          ", \"created_at\": " + std::to_string(t_us) + ", \"__op\": \"c\"}";
    ASSERT_TRUE(producer->produce(topic, partition, std::to_string(id), v, 0, &error)) << error;
    ASSERT_TRUE(producer->flush(10000, &error)) << error;
  };
  for (int64_t i = 0; i < 60; ++i) send(0, i, base_us + i * 1'000'000);
  send(1, 1000, base_us + 500'000);

  const fs::path out = dir_ / "out";
  const std::string config = dir_ / "idle.toml";
  write_text_file(config,
                  "[pipeline]\nname = \"idle\"\ntrigger_interval_ms = 50\n"
                  "\n[source]\nbootstrap_servers = \"" +
                      bootstrap_ + "\"\ntopic = \"" + topic +
                      "\"\nmax_records_per_second = 10\n"
                      "\n[[fields]]\nname = \"id\"\ntype = \"int\"\n"
                      "\n[[fields]]\nname = \"ts\"\ncolumn = \"created_at\"\ntype = "
                      "\"timestamp\"\nunit = \"micros\"\n"
                      "\n[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n"
                      "\n[window]\ntype = \"tumbling\"\nsize = \"10s\"\ntime_field = \"ts\"\n"
                      "idle_timeout = \"300ms\"\n"
                      "\n[[sinks]]\ntype = \"file\"\npath = \"" +
                      out.string() +
                      "\"\n"
                      "\n[dead_letter]\npath = \"" +
                      (dir_ / "dead") + "\"\n");
  const std::string summary = dir_ / "summary.json";
  const std::string err_path = dir_ / "run.stderr";
  child_process run({.argv = {k_eddy, "run", "-c", config, "--summary-json", summary},
                     .out = redirect::file(dir_ / "run.stdout"),
                     .err = redirect::file(err_path)});
  // Waits (bounded) for `done`, checking every 50 ms; false on timeout.
  auto wait_until = [&](const std::function<bool()>& done) {
    for (auto deadline = std::chrono::steady_clock::now() + 30s;
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
      if (done()) return true;
      if (!run.running()) return false;
    }
    return false;
  };
  // The first window closed with partition 1 idle.
  ASSERT_TRUE(wait_until([&] { return count_jsonl_lines(out, "part-") >= 1; }))
      << read_text_file(err_path);
  send(1, 1001, base_us + 2'000'000);  // behind the closed window [base, base + 10 s)
  // Until the counters (SIGUSR1) show partition 1's second record taken.
  ASSERT_TRUE(wait_until([&] {
    run.send_signal(SIGUSR1);
    std::this_thread::sleep_for(100ms);
    for (const auto& line : split_lines(read_text_file(err_path))) {
      std::istringstream in(line);
      std::string partition, taken;
      if (in >> partition >> taken && partition == "1" && taken == "2") return true;
    }
    return false;
  })) << read_text_file(err_path);
  const exit_status status = run.terminate(30s);
  ASSERT_TRUE(status.ok()) << status.describe() << "; " << read_text_file(err_path);

  const json::object s = parse_object(read_text_file(summary));
  EXPECT_EQ(int_at(s, "dropped_after_close"), 1);
  EXPECT_EQ(int_at(s, "out"), int_at(s, "in"));  // every row read contributed (none late)
  EXPECT_EQ(int_at(s.at("partitions").as_object().at("1").as_object(), "out"), 2);
  EXPECT_NE(read_text_file(err_path).find("1 partial aggregate(s) reached windows that had "
                                          "already closed"),
            std::string::npos)
      << read_text_file(err_path);
  // The windows hold every row read but the dropped one.
  int64_t rows = 0;
  for (const json::object& r : read_jsonl(out, "part-")) rows += r.at("n").as_int64();
  EXPECT_EQ(rows, int_at(s, "out") - 1);
}

}  // namespace
}  // namespace eddy::test
