// kafka_read.hpp — reads a whole topic back for tests: every record of every partition from the
// beginning to the end offset, with its partition, key, value and the Kafka sink's origin headers
// (kafka_records.hpp). Fails the test when the end is not reached within 30 s.
#pragma once

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "worker/sink/kafka_records.hpp"

namespace eddy::test {

struct read_record {
  int32_t partition = 0;
  std::string key;
  std::string value;
  std::optional<record_origin> origin;
};

/// Every record of `topic` (all partitions, from the beginning to the end).
inline std::vector<read_record> read_topic(const std::string& bootstrap, const std::string& topic) {
  std::vector<read_record> out;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] :
       {std::pair{"bootstrap.servers", bootstrap.c_str()}, std::pair{"group.id", "kafka-sink-test"},
        std::pair{"enable.partition.eof", "true"}, std::pair{"enable.auto.commit", "false"},
        std::pair{"fetch.wait.max.ms", "10"}})
    EXPECT_EQ(rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr), RD_KAFKA_CONF_OK) << errstr;
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (!rk) {
    ADD_FAILURE() << errstr;
    return out;
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  int partitions = 0;
  if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR && md) {
    partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  EXPECT_GT(partitions, 0);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::set<int32_t> eof;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (static_cast<int>(eof.size()) < partitions && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      eof.insert(m->partition);
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      read_record r;
      r.partition = m->partition;
      if (m->key) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* h = nullptr;
      if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::vector<std::pair<std::string_view, std::string_view>> hs;
        const char* name = nullptr;
        const void* val = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
          hs.emplace_back(name, std::string_view(static_cast<const char*>(val), size));
        r.origin = decode_origin(hs);
      }
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_EQ(static_cast<int>(eof.size()), partitions) << "did not read " << topic << " to its end";
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

}  // namespace eddy::test
