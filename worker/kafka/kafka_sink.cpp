// kafka_sink.cpp — see kafka_sink.hpp.
#include "worker/kafka/kafka_sink.hpp"

#include <librdkafka/rdkafka.h>

#include <unistd.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "state/file_io.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/kafka/producer.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/kafka_records.hpp"

namespace eddy {

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

// Producer settings of every eddy output topic: compact, and a dead broker fails a batch in
// seconds rather than librdkafka's default five minutes.
const kafka_config output_producer_config = {{"compression.type", "zstd"},
                                             {"message.timeout.ms", "30000"}};

/// The lines of `text` (a JSON Lines file; a missing final newline is tolerated).
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    if (nl > pos) lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

/// "part-<epoch>[-<part>][-<tag>].jsonl", like the file sink's staged parts.
std::string epoch_part_name(uint64_t epoch, int part, const std::string& tag) {
  std::string name = epoch_file_stem("part", epoch);
  if (part != 0) {
    char k[16];
    std::snprintf(k, sizeof k, "-%05d", part);
    name += k;
  }
  return tagged_file_name(name + ".jsonl", tag);
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

class kafka_sink final : public sink {
 public:
  kafka_sink(const pipeline_config& p, size_t index, time_formatter fmt, kafka_sink_options opts)
      : fmt_(std::move(fmt)), opts_(opts) {
    const sink_config& sc = p.sinks[index];
    topic_ = sc.topic;
    bootstrap_ = sc.bootstrap_servers.empty() ? p.source.bootstrap_servers : sc.bootstrap_servers;
    pipeline_ = p.name;
    tag_ = sc.name_tag;
    staging_ = sink_staging_dir(p, index);
    key_names_ = json_names(sc.key);
    partitioning_ = sc.partitioning == "round_robin" ? kafka_partitioning::round_robin
                                                     : kafka_partitioning::key;
    use_txn_ = sc.transactional;
    txn_id_ = "eddy-" + p.name + "-sink" + std::to_string(index) + (tag_.empty() ? "" : "-" + tag_);
    what_ = "kafka sink (topic " + topic_ + ")";
  }

  ~kafka_sink() override { drop_producer(); }

  std::string write_batch(int64_t batch_id, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (rows.empty()) return {};
    std::string text;
    append_json_lines(text, schema, rows, fmt_);
    const std::string unit = "batch-" + std::to_string(::getpid()) + "-" + std::to_string(batch_id);
    auto err = deliver(text, unit, 0, /*marker=*/{});
    return err.empty() ? err : what_ + ": " + err;
  }

  std::string close() override { return {}; }

  bool transactional() const override { return !staging_.empty(); }
  std::string staging_dir() const override { return staging_; }

  std::string stage_epoch(uint64_t epoch, int part, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (staging_.empty()) return what_ + ": no staging directory (checkpoints are off)";
    if (!tag_.empty()) {
      if (auto e = check_name_tag(tag_); !e.empty()) return what_ + ": " + e;
    }
    if (rows.empty()) return {};
    std::string text;
    append_json_lines(text, schema, rows, fmt_);
    auto err = stage_epoch_file(staging_, epoch, epoch_part_name(epoch, part, tag_), text, sync_);
    return err.empty() ? err : what_ + ": " + err;
  }

  std::string publish_epoch(uint64_t epoch) override {
    std::string err;
    auto paths = staged_epoch_paths(staging_, epoch, "", &err);
    if (!err.empty()) return what_ + ": " + err;
    if (auto e = publish_staged(paths, sync_); !e.empty()) return e;
    tidy_epoch_dir(staging_path(epoch));
    return {};
  }

  std::string recover(uint64_t last_complete, epoch_recovery* out) override {
    if (staging_.empty()) return {};
    std::vector<uint64_t> epochs;
    std::error_code ec;
    const fs::path root = fs::path(staging_) / "_staging";
    if (fs::exists(root, ec)) {
      for (const auto& e : fs::directory_iterator(root, ec)) {
        uint64_t v = 0;
        const std::string n = e.path().filename().string();
        auto [p, perr] = std::from_chars(n.data(), n.data() + n.size(), v);
        if (perr == std::errc() && p == n.data() + n.size() && !n.empty()) epochs.push_back(v);
      }
      if (ec) return what_ + ": cannot list \"" + root.string() + "\": " + ec.message();
    }
    std::sort(epochs.begin(), epochs.end());
    for (uint64_t e : epochs) {
      if (e > last_complete) break;
      if (auto err = publish_epoch(e); !err.empty()) return err;
      if (out) out->published.push_back(e);
    }
    auto err = discard_staged_epochs(staging_, last_complete, out ? &out->discarded : nullptr);
    return err.empty() ? err : what_ + ": " + err;
  }

  std::string publish_staged(const std::vector<std::string>& staged_paths, bool sync) override {
    std::vector<fs::path> dirs;
    for (const std::string& p : staged_paths) {
      const fs::path staged(p);
      const std::optional<uint64_t> staged_epoch = staged_path_epoch(p);
      // No sub-folders here: <dir>/_staging/<epoch>/<name>.
      if (!staged_epoch || staged.parent_path().parent_path().filename() != "_staging")
        return what_ + ": cannot publish \"" + p +
               "\": not a staged file (<dir>/_staging/<epoch>/<name>)";
      const fs::path marker = staged.parent_path() / marker_name(staged.filename().string());
      std::error_code ec;
      if (!fs::exists(staged, ec)) {
        if (ec) return what_ + ": cannot publish \"" + p + "\": " + ec.message();
        fs::remove(marker, ec);  // delivered already (the marker goes after the staged copy)
        continue;
      }
      std::string rerr;
      const auto content = file_io::read_small_file(staged, &rerr);
      if (!content) return what_ + ": cannot read \"" + p + "\": " + rerr;
      if (auto err = deliver(*content, staged.filename().string(), *staged_epoch, marker);
          !err.empty())
        return what_ + ": cannot publish \"" + p + "\": " + err;
      fs::remove(staged, ec);
      if (ec) return what_ + ": delivered \"" + p + "\" but cannot remove it: " + ec.message();
      if (sync) {
        if (auto e = sync_directory(staged.parent_path().string()); !e.empty())
          return what_ + ": " + e;
      }
      fs::remove(marker, ec);
      if (std::find(dirs.begin(), dirs.end(), staged.parent_path()) == dirs.end())
        dirs.push_back(staged.parent_path());
    }
    for (const auto& d : dirs) tidy_epoch_dir(d);
    return {};
  }

  void set_sync(bool sync) override { sync_ = sync; }

 private:
  fs::path staging_path(uint64_t epoch) const {
    char name[24];
    std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(epoch));
    return fs::path(staging_) / "_staging" / name;
  }

  /// Removes markers without their staged file, then the epoch's directory and `_staging` when
  /// they are empty (other workers' files stay).
  static void tidy_epoch_dir(const fs::path& d) {
    std::error_code ec;
    if (!fs::exists(d, ec)) return;
    for (const auto& e : fs::directory_iterator(d, ec)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with(".") && n.ends_with(".publishing") && n.size() > 12) {
        const std::string staged = n.substr(1, n.size() - 12);
        if (!fs::exists(d / staged)) fs::remove(e.path(), ec);
      }
    }
    fs::remove(d, ec);
    fs::remove(d.parent_path(), ec);
  }

  std::ostream& log() { return opts_.log ? *opts_.log : std::cerr; }

  // ---- librdkafka ----

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<kafka_sink*>(opaque);
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++self->delivered_;
      int64_t& end = self->known_end_[msg->partition];
      end = std::max(end, msg->offset + 1);
      if (self->outage_logged_) {
        self->log() << "eddy: " << self->what_ << ": broker reachable again after "
                    << static_cast<int>(seconds_since(self->outage_start_) + 0.5)
                    << " s; deliveries resumed\n";
        self->outage_logged_ = false;
      }
      self->conn_trouble_ = false;
      return;
    }
    if (self->failed_++ == 0) self->first_failure_ = kafka_error_text(msg->err);
  }

  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<kafka_sink*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      self->fatal_ = true;
      return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
        err == RD_KAFKA_RESP_ERR__RESOLVE) {
      if (!self->conn_trouble_) self->outage_start_ = clock_type::now();
      self->conn_trouble_ = true;
      self->conn_reason_ = reason ? reason : kafka_error_text(err);
    }
  }

  void drop_producer() {
    if (rkt_) rd_kafka_topic_destroy(rkt_);
    rkt_ = nullptr;
    if (rk_) {
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE);
      rd_kafka_flush(rk_, 2000);
      rd_kafka_destroy(rk_);
    }
    rk_ = nullptr;
    partitions_ = 0;
  }

  /// The producer and the topic's partition count, created on first use.
  std::string ensure_producer() {
    if (rk_) return {};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    kafka_config settings = {{"bootstrap.servers", bootstrap_},
                             {"enable.idempotence", "true"},
                             {"compression.type", "zstd"},
                             {"linger.ms", "5"},
                             {"message.timeout.ms", std::to_string(opts_.message_timeout_ms)}};
    if (use_txn_) settings.emplace_back("transactional.id", txn_id_);
    for (const auto& [k, v] : settings) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return "producer: " + std::string(errstr);
      }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, &on_delivery);
    rd_kafka_conf_set_error_cb(conf, &on_error);
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk_) {
      rd_kafka_conf_destroy(conf);
      return "producer: " + std::string(errstr);
    }
    fatal_ = false;
    rkt_ = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
    if (!rkt_) return "topic: " + kafka_error_text(rd_kafka_last_error());
    // Partition count (a producer's metadata request may also auto-create the topic).
    const auto deadline = clock_type::now() + std::chrono::milliseconds(opts_.readback_timeout_ms);
    std::string last = "no answer";
    while (partitions_ == 0) {
      const rd_kafka_metadata_t* md = nullptr;
      const rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, rkt_, &md, 5000);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md) {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
          partitions_ = md->topics[0].partition_cnt;
        else if (md->topic_cnt == 1)
          last = kafka_error_text(md->topics[0].err);
        rd_kafka_metadata_destroy(md);
      } else {
        last = kafka_error_text(err);
      }
      if (partitions_ > 0) break;
      if (clock_type::now() >= deadline) return "metadata of the topic: " + last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (use_txn_) {
      if (rd_kafka_error_t* e = rd_kafka_init_transactions(rk_, opts_.readback_timeout_ms)) {
        std::string m = "init_transactions: " + std::string(rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return m;
      }
    }
    return {};
  }

  /// The end offset of every partition now, asking the broker (within the read-back timeout).
  /// With `known_ok`, an offset this sink already knows to be at or below the end (one past
  /// its last delivered record there, or an earlier answer) is taken instead: a marker only
  /// needs a lower bound of where the unit's records can start.
  std::string end_offsets(int32_t partitions, std::map<int32_t, int64_t>* out, bool known_ok) {
    const auto deadline = clock_type::now() + std::chrono::milliseconds(opts_.readback_timeout_ms);
    for (int32_t p = 0; p < partitions; ++p) {
      if (auto k = known_end_.find(p); known_ok && k != known_end_.end()) {
        (*out)[p] = k->second;
        continue;
      }
      int64_t lo = 0, hi = 0;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now())
              .count();
      const rd_kafka_resp_err_t err =
          left <= 0 ? RD_KAFKA_RESP_ERR__TIMED_OUT
                    : rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), p, &lo, &hi,
                                                       static_cast<int>(left));
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return "end offset of partition " + std::to_string(p) + ": " + kafka_error_text(err);
      (*out)[p] = hi;
      known_end_[p] = std::max(known_end_[p], hi);
    }
    return {};
  }

  /// Reads every partition from the marker's offsets to its end and notes this unit's records.
  std::string read_back(const publish_marker& m, delivered_tail* tail) {
    std::map<int32_t, int64_t> ends;
    if (auto e = end_offsets(m.partitions, &ends, /*known_ok=*/false); !e.empty()) return e;
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    const kafka_config settings = {
        {"bootstrap.servers", bootstrap_},     {"group.id", "eddy-readback-" + pipeline_},
        {"enable.auto.commit", "false"},       {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"}, {"fetch.wait.max.ms", "10"}};
    for (const auto& [k, v] : settings) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return "read-back consumer: " + std::string(errstr);
      }
    }
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c) {
      rd_kafka_conf_destroy(conf);
      return "read-back consumer: " + std::string(errstr);
    }
    std::string error;
    {
      // Metadata first: assigning before it is known makes the offset lookup wait ~500 ms.
      rd_kafka_topic_t* t = rd_kafka_topic_new(c, topic_.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      if (t && rd_kafka_metadata(c, 0, t, &md, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR && md)
        rd_kafka_metadata_destroy(md);
      if (t) rd_kafka_topic_destroy(t);
    }
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(m.partitions);
    std::map<int32_t, int64_t> pending;  // partition -> end offset still to reach
    for (int32_t p = 0; p < m.partitions; ++p) {
      auto s = m.start_offsets.find(p);
      const int64_t start = s == m.start_offsets.end() ? 0 : s->second;
      if (start >= ends[p]) continue;
      rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = start;
      pending[p] = ends[p];
    }
    if (!pending.empty()) {
      if (rd_kafka_resp_err_t err = rd_kafka_assign(c, list); err != RD_KAFKA_RESP_ERR_NO_ERROR)
        error = "read-back assign: " + kafka_error_text(err);
    }
    rd_kafka_topic_partition_list_destroy(list);
    const auto deadline = clock_type::now() + std::chrono::milliseconds(opts_.readback_timeout_ms);
    std::vector<std::pair<std::string_view, std::string_view>> hs;
    while (error.empty() && !pending.empty()) {
      if (clock_type::now() >= deadline) {
        error = "read-back did not reach the end of " + std::to_string(pending.size()) +
                " partition(s) within " + std::to_string(opts_.readback_timeout_ms) + " ms";
        break;
      }
      rd_kafka_message_t* msg = rd_kafka_consumer_poll(c, 100);
      if (!msg) continue;
      const int32_t p = msg->partition;
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        pending.erase(p);  // the fetch reached the end (or the last stable offset)
      } else if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (msg->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
            msg->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
          // retried by librdkafka until the deadline
        } else {
          error = "read-back: " + kafka_error_text(msg->err);
        }
      } else {
        hs.clear();
        rd_kafka_headers_t* h = nullptr;
        if (rd_kafka_message_headers(msg, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
          const char* name = nullptr;
          const void* val = nullptr;
          size_t size = 0;
          for (size_t i = 0;
               rd_kafka_header_get_all(h, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
            hs.emplace_back(name, std::string_view(static_cast<const char*>(val), val ? size : 0));
          if (auto o = decode_origin(hs)) tail->observe(p, *o);
        }
        auto it = pending.find(p);
        if (it != pending.end() && msg->offset + 1 >= it->second) pending.erase(it);
      }
      rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return error;
  }

  /// Serves delivery reports until nothing is outstanding; logs a stall on an unreachable broker
  /// once. An error when a delivery failed or the producer hit a fatal error.
  std::string wait_for_deliveries() {
    const auto limit = clock_type::now() + std::chrono::milliseconds(opts_.message_timeout_ms) +
                       std::chrono::seconds(30);
    uint64_t seen = delivered_ + failed_;
    auto progress = clock_type::now();
    while (rd_kafka_outq_len(rk_) > 0) {
      rd_kafka_flush(rk_, 200);
      if (delivered_ + failed_ != seen) {
        seen = delivered_ + failed_;
        progress = clock_type::now();
      }
      // Deliveries stalled for a second on a broker librdkafka cannot reach: one line per outage.
      if (conn_trouble_ && !outage_logged_ && rd_kafka_outq_len(rk_) > 0 &&
          seconds_since(progress) >= 1.0) {
        log() << "eddy: " << what_ << ": broker unreachable (" << conn_reason_
              << "); deliveries are retried for up to " << opts_.message_timeout_ms / 1000
              << " s\n";
        outage_logged_ = true;
      }
      if (fatal_ || clock_type::now() >= limit) break;
    }
    if (fatal_) {
      char errstr[512];
      const rd_kafka_resp_err_t e = rd_kafka_fatal_error(rk_, errstr, sizeof errstr);
      return "producer fatal error: " + kafka_error_text(e) + ": " + errstr;
    }
    if (rd_kafka_outq_len(rk_) > 0)
      return std::to_string(rd_kafka_outq_len(rk_)) + " record(s) still unacknowledged";
    if (failed_ > 0) return "delivery failed: " + first_failure_;
    return {};
  }

  /// One attempt at delivering `content` (unit `unit` of `epoch`); rows already in the topic
  /// per `tail` are skipped.
  std::string attempt(std::string_view content, const std::string& unit, uint64_t epoch,
                      int32_t partitions, const delivered_tail& tail) {
    failed_ = 0;
    first_failure_.clear();
    if (use_txn_) {
      if (rd_kafka_error_t* e = rd_kafka_begin_transaction(rk_)) {
        std::string m = "begin_transaction: " + std::string(rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return m;
      }
    }
    std::string kerr;
    uint64_t seq = 0;
    char epoch_text[24], seq_text[24];
    const auto epoch_len =
        std::to_chars(epoch_text, epoch_text + sizeof epoch_text, epoch).ptr - epoch_text;
    std::string error;
    const std::vector<std::string_view> lines = split_lines(content);
    // Crash tests: EDDY_CRASH_AT=kafka_publish:N dies halfway through the N-th delivery, after the
    // first half of its records were acknowledged (a half-delivered unit, for sure).
    const detail::crash_spec* crash = detail::crash_spec_from_env();
    const bool crash_armed = crash && crash->name == "kafka_publish";
    for (std::string_view line : lines) {
      const uint64_t s = seq++;
      if (crash_armed && s == lines.size() / 2 && s > 0) {
        rd_kafka_flush(rk_, 10'000);
        crash_point("kafka_publish");
      }
      const std::string key = record_key(line, key_names_, &kerr);
      if (!kerr.empty()) {
        error = unit + " row " + std::to_string(s) + ": " + kerr;
        break;
      }
      const int32_t p = record_partition(partitioning_, key, s, partitions);
      if (tail.delivered(p, s)) continue;
      const auto seq_len = std::to_chars(seq_text, seq_text + sizeof seq_text, s).ptr - seq_text;
      for (;;) {
        const rd_kafka_resp_err_t err = rd_kafka_producev(
            rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_PARTITION(p),
            // Not copied: `content` outlives every message of the attempt (deliver() awaits
            // every acknowledgement, or destroys the producer, before it returns).
            RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(line.data()), line.size()),
            RD_KAFKA_V_HEADER(header_pipeline.data(), pipeline_.data(),
                              static_cast<ssize_t>(pipeline_.size())),
            RD_KAFKA_V_HEADER(header_unit.data(), unit.data(), static_cast<ssize_t>(unit.size())),
            RD_KAFKA_V_HEADER(header_epoch.data(), epoch_text, static_cast<ssize_t>(epoch_len)),
            RD_KAFKA_V_HEADER(header_seq.data(), seq_text, static_cast<ssize_t>(seq_len)),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || fatal_) {
          error = "produce: " + kafka_error_text(err);
          break;
        }
        rd_kafka_poll(rk_, 10);  // deliveries free queue space
      }
      if (!error.empty()) break;
      if ((s & 1023) == 0) rd_kafka_poll(rk_, 0);
    }
    if (use_txn_) {
      if (error.empty()) {
        if (rd_kafka_error_t* e = rd_kafka_commit_transaction(rk_, opts_.message_timeout_ms)) {
          error = "commit_transaction: " + std::string(rd_kafka_error_string(e));
          rd_kafka_error_destroy(e);
        }
      }
      if (!error.empty()) {
        if (rd_kafka_error_t* e = rd_kafka_abort_transaction(rk_, 10'000))
          rd_kafka_error_destroy(e);
        return error;
      }
    }
    auto werr = wait_for_deliveries();
    return error.empty() ? werr : error;
  }

  /// Delivers `content` as unit `unit`, retrying failed attempts. With a `marker` path: the first
  /// attempt writes the marker unless it exists; an existing marker (or a failed attempt) makes
  /// the next attempt read back first. Without one (no checkpoints), nothing is read back.
  std::string deliver(std::string_view content, const std::string& unit, uint64_t epoch,
                      const fs::path& marker) {
    std::string error;
    int backoff = opts_.backoff_ms;
    for (int a = 1; a <= opts_.attempts; ++a) {
      error = attempt_with_marker(content, unit, epoch, marker);
      if (error.empty()) return {};
      drop_producer();  // a fresh producer (and idempotence epoch) for the next attempt
      if (a == opts_.attempts) break;
      log() << "eddy: " << what_ << ": delivering " << unit << " failed (attempt " << a << " of "
            << opts_.attempts << "): " << error << "; retrying in " << backoff << " ms"
            << (marker.empty() ? "" : " after reading back what was delivered") << "\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(backoff));
      backoff = std::min(backoff * 2, opts_.max_backoff_ms);
    }
    return error + " (after " + std::to_string(opts_.attempts) + " attempts)";
  }

  std::string attempt_with_marker(std::string_view content, const std::string& unit, uint64_t epoch,
                                  const fs::path& marker) {
    if (auto e = ensure_producer(); !e.empty()) return e;
    delivered_tail tail(pipeline_, unit);
    int32_t partitions = partitions_;
    if (!marker.empty()) {
      std::error_code ec;
      if (fs::exists(marker, ec)) {
        std::string err;
        const auto text = file_io::read_small_file(marker, &err);
        if (!text) return "cannot read \"" + marker.string() + "\": " + err;
        auto m = decode_marker(*text, &err);
        if (!m) return marker.string() + ": " + err;
        if (m->partitions > partitions_)
          return "the topic has " + std::to_string(partitions_) + " partitions, fewer than the " +
                 std::to_string(m->partitions) + " this unit was spread over";
        partitions = m->partitions;  // rows go where the earlier attempt sent them
        if (auto e = read_back(*m, &tail); !e.empty()) return e;
        ++readbacks_;
        if (tail.seen() > 0)
          log() << "eddy: " << what_ << ": " << unit << " was partly delivered before ("
                << tail.seen() << " record(s) found reading back); delivering the rest\n";
      } else {
        publish_marker m;
        m.partitions = partitions_;
        if (auto e = end_offsets(partitions_, &m.start_offsets, /*known_ok=*/true); !e.empty())
          return e;
        if (auto e = write_file_atomically(marker.parent_path().string(),
                                           marker.filename().string(), encode_marker(m), sync_);
            !e.empty())
          return e;
      }
    }
    return attempt(content, unit, epoch, partitions, tail);
  }

  time_formatter fmt_;
  kafka_sink_options opts_;
  std::string topic_, bootstrap_, pipeline_, tag_, staging_, txn_id_, what_;
  std::vector<std::string> key_names_;
  kafka_partitioning partitioning_ = kafka_partitioning::key;
  bool use_txn_ = false;
  bool sync_ = true;

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  int32_t partitions_ = 0;
  uint64_t delivered_ = 0;
  uint64_t failed_ = 0;
  std::string first_failure_;
  bool fatal_ = false;
  bool conn_trouble_ = false;
  bool outage_logged_ = false;
  std::string conn_reason_;
  clock_type::time_point outage_start_{};
  uint64_t readbacks_ = 0;
  std::map<int32_t, int64_t> known_end_;  ///< lower bounds of the partitions' end offsets
};

}  // namespace

std::unique_ptr<sink> make_kafka_sink(const pipeline_config& p, size_t index, time_formatter fmt,
                                      std::string* error, kafka_sink_options opts) {
  if (index >= p.sinks.size() || p.sinks[index].kind != sink_kind::kafka) {
    if (error) *error = "sinks[" + std::to_string(index) + "] is not a kafka sink";
    return nullptr;
  }
  const sink_config& sc = p.sinks[index];
  if (sc.topic.empty()) {
    if (error) *error = "sinks[" + std::to_string(index) + "]: no topic";
    return nullptr;
  }
  if (sc.bootstrap_servers.empty() && p.source.bootstrap_servers.empty()) {
    if (error) *error = "sinks[" + std::to_string(index) + "]: no bootstrap_servers";
    return nullptr;
  }
  if (!sc.name_tag.empty()) {
    if (auto e = check_name_tag(sc.name_tag); !e.empty()) {
      if (error) *error = e;
      return nullptr;
    }
  }
  return std::make_unique<kafka_sink>(p, index, std::move(fmt), opts);
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
