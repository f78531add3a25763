// kafka_sink_test.cpp — the Kafka sink against an in-process development broker: configuration
// errors, lazy connection, publishing staged files exactly once (also a half-delivered one and
// through a broker outage), a delivery that finally fails, and eddy's key partitioning agreeing
// with librdkafka's murmur2_random.
#include "worker/kafka/kafka_sink.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/kafka_read.hpp"
#include "worker/kafka/dev_broker.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/kafka_records.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::read_record;
using test::read_topic;

/// A cleaned-row pipeline writing to `topic`, checkpoints in `cp` ("" = off).
std::optional<pipeline_config> config(const std::string& bootstrap, const std::string& topic,
                                      const std::string& cp, const std::string& sink_extra = "",
                                      std::string* error = nullptr) {
  std::string toml = "[pipeline]\nname = \"kst\"\n[source]\nbootstrap_servers = \"" + bootstrap +
                     "\"\ntopic = \"in\"\n"
                     "[[fields]]\nname = \"id\"\ntype = \"int\"\n"
                     "[[fields]]\nname = \"name\"\n"
                     "[[sinks]]\ntype = \"kafka\"\ntopic = \"" +
                     topic + "\"\n" + sink_extra + "\n";
  if (!cp.empty()) toml += "[checkpoint]\ndir = \"" + cp + "\"\n";
  auto r = parse_pipeline_config(toml, "kst.toml");
  if (error) *error = r.error;
  return r.config;
}

const output_schema schema{{"id", "name"}, {field_type::int64, field_type::string}};

std::vector<row> rows(int from, int count) {
  std::vector<row> out;
  for (int i = from; i < from + count; ++i)
    out.push_back(row{int64_t{i}, std::string("name ") + std::to_string(i)});
  return out;
}

/// Each row value of `records` exactly once: (value -> count) for those seen more than once, and
/// the ids in [0, n) never seen.
void expect_each_once(const std::vector<read_record>& records, int n) {
  std::map<std::string, int> seen;
  for (const auto& r : records) ++seen[r.value];
  int twice = 0;
  for (const auto& [v, c] : seen) twice += c > 1;
  EXPECT_EQ(twice, 0) << "values delivered more than once";
  int missing = 0;
  for (int i = 0; i < n; ++i)
    missing += !seen.contains("{\"id\":" + std::to_string(i) + ",\"name\":\"name " +
                              std::to_string(i) + "\"}");
  EXPECT_EQ(missing, 0) << "values never delivered";
  EXPECT_EQ(records.size(), static_cast<size_t>(n));
}

class kafka_sink_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    broker_ = dev_broker::start(1, {{"out", 4}, {"hash", 8}}, 0, &err);
    ASSERT_TRUE(broker_) << err;
    dir_ = fs::temp_directory_path() /
           ("kafka-sink-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<sink> make(const pipeline_config& p, kafka_sink_options o = {}) {
    o.log = &log_;
    std::string err;
    auto s = make_kafka_sink(p, 0, time_formatter{}, &err, o);
    EXPECT_TRUE(s) << err;
    if (s) s->set_sync(false);
    return s;
  }

  std::unique_ptr<dev_broker> broker_;
  fs::path dir_;
  std::ostringstream log_;
};

TEST(kafka_sink_config, key_defaults_and_load_errors) {
  std::string err;
  auto c = config("b:1", "t", "");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sinks[0].key, std::vector<std::string>{"id"});  // cleaned rows: "id" when present
  EXPECT_EQ(c->sinks[0].partitioning, "key");
  EXPECT_FALSE(c->sinks[0].transactional);
  c = config("b:1", "t", "",
             "key = [\"name\", \"id\"]\npartitioning = \"round_robin\"\n"
             "transactional = true\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->sinks[0].key, (std::vector<std::string>{"name", "id"}));
  EXPECT_EQ(c->sinks[0].partitioning, "round_robin");
  EXPECT_TRUE(c->sinks[0].transactional);
  c = config("b:1", "t", "", "key = []\n");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->sinks[0].key.empty());  // null keys
  EXPECT_FALSE(config("b:1", "t", "", "key = [\"nmae\"]\n", &err));
  EXPECT_NE(err.find("kst.toml:"), std::string::npos) << err;
  EXPECT_NE(err.find("sinks[0].key: 'nmae' is not an output column (they are: id, name); did you "
                     "mean 'name'?"),
            std::string::npos)
      << err;
  EXPECT_FALSE(config("b:1", "t", "", "key = [\"id\", \"id\"]\n", &err));
  EXPECT_NE(err.find("listed twice"), std::string::npos) << err;
  EXPECT_FALSE(config("b:1", "t", "", "partitioning = \"random\"\n", &err));
  EXPECT_NE(err.find("sinks[0].partitioning"), std::string::npos) << err;
  EXPECT_FALSE(config("b:1", "t", "", "transactional = \"yes\"\n", &err));
  EXPECT_NE(err.find("sinks[0].transactional"), std::string::npos) << err;
  EXPECT_FALSE(config("b:1", "t", "", "keys = [\"id\"]\n", &err));
  EXPECT_NE(err.find("unknown key 'sinks[0].keys'"), std::string::npos) << err;

  // Aggregated results: window bounds and group keys.
  auto r = parse_pipeline_config(
      "[source]\nbootstrap_servers = \"b:1\"\ntopic = \"in\"\n"
      "[[fields]]\nname = \"t\"\ntype = \"timestamp\"\n[[fields]]\nname = \"kind\"\n"
      "[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"t\"\n"
      "[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n"
      "[aggregate]\ngroup_by = [\"kind\"]\n"
      "[[sinks]]\ntype = \"kafka\"\ntopic = \"o\"\n"
      "[[sinks]]\ntype = \"kafka\"\ntopic = \"o2\"\nkey = [\"t\"]\n",
      "agg.toml");
  EXPECT_FALSE(r.config);
  EXPECT_NE(r.error.find("sinks[1].key: 't' is not an output column (they are: window_start, "
                         "window_end, kind, n)"),
            std::string::npos)
      << r.error;
}

TEST(kafka_sink_config, aggregated_results_are_keyed_by_window_and_group) {
  auto r = parse_pipeline_config(
      "[source]\nbootstrap_servers = \"b:1\"\ntopic = \"in\"\n"
      "[[fields]]\nname = \"t\"\ntype = \"timestamp\"\n[[fields]]\nname = \"kind\"\n"
      "[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"t\"\n"
      "[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n"
      "[aggregate]\ngroup_by = [\"kind\"]\n"
      "[[sinks]]\ntype = \"kafka\"\ntopic = \"o\"\n[checkpoint]\ndir = \"/cp\"\n",
      "agg.toml");
  ASSERT_TRUE(r.config) << r.error;
  EXPECT_EQ(r.config->sinks[0].key,
            (std::vector<std::string>{"window_start", "window_end", "kind"}));
  EXPECT_EQ(sink_staging_dir(*r.config, 0), "/cp/sinks/kafka-0");
  const auto dirs = staged_output_dirs(*r.config);
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/cp/sinks/kafka-0"), dirs.end());
}

TEST(kafka_sink_lazy, constructs_and_stages_without_a_broker) {
  const fs::path cp = fs::temp_directory_path() / ("kafka-sink-lazy-" + std::to_string(::getpid()));
  fs::remove_all(cp);
  auto c = config("127.0.0.1:1", "t", cp.string());
  ASSERT_TRUE(c);
  std::string err;
  const auto start = std::chrono::steady_clock::now();
  auto s = make_kafka_sink(*c, 0, time_formatter{}, &err);
  ASSERT_TRUE(s) << err;
  s->set_sync(false);
  EXPECT_TRUE(s->transactional());
  EXPECT_EQ(s->staging_dir(), (cp / "sinks/kafka-0").string());
  EXPECT_EQ(s->stage_epoch(7, 0, schema, rows(0, 3)), "");
  EXPECT_TRUE(fs::exists(cp / "sinks/kafka-0/_staging/00000000000000000007/part-0000000007.jsonl"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  s.reset();  // nothing to flush, nothing connected
  fs::remove_all(cp);
  // Without checkpoints: per batch, not transactional.
  c = config("127.0.0.1:1", "t", "");
  s = make_kafka_sink(*c, 0, time_formatter{}, &err);
  ASSERT_TRUE(s) << err;
  EXPECT_FALSE(s->transactional());
  EXPECT_EQ(s->staging_dir(), "");
}

TEST_F(kafka_sink_test, keyed_partitions_agree_with_librdkafkas_murmur2_random) {
  // librdkafka picks the partition of keyed records itself; eddy's choice must be the same.
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", broker_->bootstrap().c_str(), errstr,
                              sizeof errstr),
            RD_KAFKA_CONF_OK);
  ASSERT_EQ(rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof errstr),
            RD_KAFKA_CONF_OK);
  static std::map<std::string, int32_t> landed;
  landed.clear();
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      landed[std::string(static_cast<const char*>(m->key), m->key_len)] = m->partition;
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  ASSERT_TRUE(rk) << errstr;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "{\"id\":" + std::to_string(i * 7919) + "}";
    ASSERT_EQ(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("hash"), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                          RD_KAFKA_V_VALUE(const_cast<char*>("v"), 1), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  ASSERT_EQ(landed.size(), 200u);
  for (const auto& [key, p] : landed)
    EXPECT_EQ(record_partition(kafka_partitioning::key, key, 0, 8), p) << key;
}

TEST_F(kafka_sink_test, publishes_staged_parts_once_with_keys_and_headers) {
  auto c = config(broker_->bootstrap(), "out", (dir_ / "cp").string());
  ASSERT_TRUE(c);
  auto s = make(*c);
  ASSERT_EQ(s->stage_epoch(3, 1, schema, rows(0, 50)), "");
  ASSERT_EQ(s->stage_epoch(3, 0, schema, rows(50, 30)), "");
  ASSERT_EQ(s->publish_epoch(3), "");
  EXPECT_FALSE(fs::exists(dir_ / "cp/sinks/kafka-0/_staging")) << "staging left behind";
  ASSERT_EQ(s->publish_epoch(3), "");  // idempotent: nothing left to deliver
  const auto records = read_topic(broker_->bootstrap(), "out");
  expect_each_once(records, 80);
  std::set<std::pair<std::string, uint64_t>> units;
  for (const auto& r : records) {
    ASSERT_TRUE(r.origin.has_value()) << r.value;
    EXPECT_EQ(r.origin->pipeline, "kst");
    EXPECT_EQ(r.origin->epoch, 3u);
    units.emplace(r.origin->unit, r.origin->seq);
    // The key is the id field as a JSON object, and decides the partition.
    const std::string id = r.value.substr(6, r.value.find(',') - 6);
    EXPECT_EQ(r.key, "{\"id\":" + id + "}");
    EXPECT_EQ(r.partition, record_partition(kafka_partitioning::key, r.key, 0, 4));
  }
  EXPECT_EQ(units.size(), 80u);
  EXPECT_TRUE(units.contains({"part-0000000003-00001.jsonl", 49}));
  EXPECT_TRUE(units.contains({"part-0000000003.jsonl", 29}));
}

TEST_F(kafka_sink_test, a_half_delivered_unit_is_read_back_and_completed) {
  auto c = config(broker_->bootstrap(), "out", (dir_ / "cp").string(),
                  "partitioning = \"round_robin\"\n");
  ASSERT_TRUE(c);
  auto s = make(*c);
  ASSERT_EQ(s->stage_epoch(5, 0, schema, rows(0, 100)), "");
  const fs::path staged =
      dir_ / "cp/sinks/kafka-0/_staging/00000000000000000005/part-0000000005.jsonl";
  ASSERT_TRUE(fs::exists(staged));
  // An earlier process wrote the marker (end offsets: all 0), then delivered part of each
  // partition's share before it died: rows seq % 4 == p, the first 10 of p0, 3 of p1, none of
  // p2, all 25 of p3.
  publish_marker m;
  m.partitions = 4;
  for (int p = 0; p < 4; ++p) m.start_offsets[p] = 0;
  ASSERT_EQ(write_file_atomically(staged.parent_path().string(),
                                  marker_name(staged.filename().string()), encode_marker(m)),
            "");
  {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", broker_->bootstrap().c_str(), errstr,
                                sizeof errstr),
              RD_KAFKA_CONF_OK);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    ASSERT_TRUE(rk);
    const std::map<int, int> prefix = {{0, 10}, {1, 3}, {2, 0}, {3, 25}};
    const auto all = rows(0, 100);
    for (int seq = 0; seq < 100; ++seq) {
      const int p = seq % 4;
      if (seq / 4 >= prefix.at(p)) continue;
      const std::string v = row_to_json(schema, all[static_cast<size_t>(seq)], time_formatter{});
      const auto h = encode_origin({"kst", "part-0000000005.jsonl", 5, static_cast<uint64_t>(seq)});
      ASSERT_EQ(
          rd_kafka_producev(
              rk, RD_KAFKA_V_TOPIC("out"), RD_KAFKA_V_PARTITION(p),
              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
              RD_KAFKA_V_VALUE(const_cast<char*>(v.data()), v.size()),
              RD_KAFKA_V_HEADER(h[0].first.c_str(), const_cast<char*>(h[0].second.data()), -1),
              RD_KAFKA_V_HEADER(h[1].first.c_str(), const_cast<char*>(h[1].second.data()), -1),
              RD_KAFKA_V_HEADER(h[2].first.c_str(), const_cast<char*>(h[2].second.data()), -1),
              RD_KAFKA_V_HEADER(h[3].first.c_str(), const_cast<char*>(h[3].second.data()), -1),
              RD_KAFKA_V_END),
          RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    ASSERT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
  }
  ASSERT_EQ(read_topic(broker_->bootstrap(), "out").size(), 38u);
  ASSERT_EQ(s->publish_epoch(5), "");
  EXPECT_NE(log_.str().find("part-0000000005.jsonl was partly delivered before (38 record(s)"),
            std::string::npos)
      << log_.str();
  const auto records = read_topic(broker_->bootstrap(), "out");
  expect_each_once(records, 100);
  for (const auto& r : records) {
    ASSERT_TRUE(r.origin);
    EXPECT_EQ(r.partition, static_cast<int32_t>(r.origin->seq % 4));
  }
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_FALSE(fs::exists(staged.parent_path()));
}

TEST_F(kafka_sink_test, a_broker_outage_while_publishing_loses_and_doubles_nothing) {
  auto c = config(broker_->bootstrap(), "out", (dir_ / "cp").string());
  ASSERT_TRUE(c);
  auto s = make(*c);
  ASSERT_EQ(s->stage_epoch(1, 0, schema, rows(0, 10)), "");
  ASSERT_EQ(s->publish_epoch(1), "");  // connected
  constexpr int n = 20000;
  ASSERT_EQ(s->stage_epoch(2, 0, schema, rows(10, n - 10)), "");
  // The broker goes down before the records are produced (the sink knows a lower bound of every
  // partition's end from its last delivery, so it writes the marker and produces at once).
  std::string berr;
  ASSERT_TRUE(broker_->set_broker_up(1, false, &berr)) << berr;
  std::string err = "not finished";
  std::thread publisher([&] { err = s->publish_epoch(2); });
  std::this_thread::sleep_for(3s);
  ASSERT_TRUE(broker_->set_broker_up(1, true, &berr)) << berr;
  publisher.join();
  EXPECT_EQ(err, "");
  expect_each_once(read_topic(broker_->bootstrap(), "out"), n);
  EXPECT_NE(log_.str().find("broker unreachable"), std::string::npos) << log_.str();
  EXPECT_NE(log_.str().find("reachable again"), std::string::npos) << log_.str();
}

TEST_F(kafka_sink_test, a_delivery_that_finally_fails_fails_the_publish_and_a_retry_completes_it) {
  auto c = config(broker_->bootstrap(), "out", (dir_ / "cp").string());
  ASSERT_TRUE(c);
  kafka_sink_options o;
  o.message_timeout_ms = 1000;
  o.attempts = 2;
  o.backoff_ms = 100;
  o.readback_timeout_ms = 2000;
  auto s = make(*c, o);
  ASSERT_EQ(s->stage_epoch(1, 0, schema, rows(0, 10)), "");
  ASSERT_EQ(s->publish_epoch(1), "");
  ASSERT_EQ(s->stage_epoch(2, 0, schema, rows(10, 90)), "");
  std::string berr;
  ASSERT_TRUE(broker_->set_broker_up(1, false, &berr)) << berr;
  const std::string err = s->publish_epoch(2);
  EXPECT_NE(err.find("part-0000000002.jsonl"), std::string::npos) << err;
  EXPECT_NE(err.find("after 2 attempts"), std::string::npos) << err;
  EXPECT_NE(log_.str().find("failed (attempt 1 of 2)"), std::string::npos) << log_.str();
  ASSERT_TRUE(broker_->set_broker_up(1, true, &berr)) << berr;
  ASSERT_EQ(s->publish_epoch(2), "");
  expect_each_once(read_topic(broker_->bootstrap(), "out"), 100);
}

TEST_F(kafka_sink_test, recover_publishes_complete_epochs_and_drops_newer_ones) {
  auto c = config(broker_->bootstrap(), "out", (dir_ / "cp").string());
  ASSERT_TRUE(c);
  {
    auto s = make(*c);
    ASSERT_EQ(s->stage_epoch(1, 0, schema, rows(0, 20)), "");
    ASSERT_EQ(s->stage_epoch(2, 0, schema, rows(20, 20)), "");
    ASSERT_EQ(s->stage_epoch(3, 0, schema, rows(100, 5)), "");  // never completed
  }
  auto s = make(*c);
  epoch_recovery rec;
  ASSERT_EQ(s->recover(2, &rec), "");
  EXPECT_EQ(rec.published, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(rec.discarded, (std::vector<uint64_t>{3}));
  expect_each_once(read_topic(broker_->bootstrap(), "out"), 40);
  EXPECT_FALSE(fs::exists(dir_ / "cp/sinks/kafka-0/_staging"));
}

TEST_F(kafka_sink_test, without_checkpoints_writes_each_batch) {
  auto c = config(broker_->bootstrap(), "out", "", "key = []\n");
  ASSERT_TRUE(c);
  auto s = make(*c);
  ASSERT_EQ(s->write_batch(0, schema, rows(0, 30)), "");
  ASSERT_EQ(s->write_batch(1, schema, rows(30, 30)), "");
  const auto records = read_topic(broker_->bootstrap(), "out");
  expect_each_once(records, 60);
  for (const auto& r : records) EXPECT_EQ(r.key, "");  // null keys
}

}  // namespace
}  // namespace eddy
