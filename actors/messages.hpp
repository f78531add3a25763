// messages.hpp — the message vocabulary between eddy's actors.
//
// Atoms name requests; structs carry data. Batches are the unit of exchange: never one actor
// message per record. `kafka_batch`, `result_batch` and `worker_report` stay inside one worker
// process (poller -> source task -> sink), so they are allowed as unsafe (local-only) message
// types; the messages that may cross processes (`assignment`, `partials_msg`, `checkpoint_ack`,
// `record_counters` inside them) have inspect() overloads and are registered by
// register_message_types (type_registry.hpp).
//
// Includes only model/ (the data model), CAF and std. `partials_msg` holds the window module's
// `partial_batch` by pointer: the type is only declared here, and what the message needs of a
// batch (its partition, size, bytes; decoding) is declared below and defined with the codec in
// worker/window/partial_codec.cpp, which eddy_actors links (model/README.md says why).
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "model/dead_letter.hpp"
#include "model/record_counters.hpp"
#include "model/row.hpp"

namespace eddy {

// ---- atoms (CAF 0.17: at most 10 characters) -------------------------------------------------
using poll_atom = caf::atom_constant<caf::atom("poll")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using assign_atom = caf::atom_constant<caf::atom("assign")>;
using failed_atom = caf::atom_constant<caf::atom("failed")>;
using checkpoint_atom = caf::atom_constant<caf::atom("checkpoint")>;  ///< coordinator -> task
using barrier_atom = caf::atom_constant<caf::atom("barrier")>;  ///< in-band, after an input's data
using ack_atom = caf::atom_constant<caf::atom("ack")>;          ///< participant -> coordinator
using commit_atom = caf::atom_constant<caf::atom("commit")>;    ///< epoch complete: publish
using ended_atom = caf::atom_constant<caf::atom("ended")>;      ///< a task's input ended
using more_atom = caf::atom_constant<caf::atom("more")>;  ///< shard to itself: next output step
/// Shard -> source task: (credit_atom, generation, shard, n) returns n partial-batch credits
/// (worker/runtime/credits.hpp).
using credit_atom = caf::atom_constant<caf::atom("credit")>;

/// To a publisher (worker/runtime/publisher_actor.hpp, the cluster coordinator's): publish a
/// committed epoch's staged output; answered with published_atom.
using publish_atom = caf::atom_constant<caf::atom("publish")>;
using published_atom = caf::atom_constant<caf::atom("published")>;

/// Messages of one partition fetched in one poll: one contiguous byte buffer plus an index, so
/// a batch costs a handful of allocations however many records it holds.
struct kafka_batch {
  struct entry {
    int64_t offset = 0;
    int64_t timestamp_ms = -1;
    uint32_t key_begin = 0, key_size = 0;
    uint32_t value_begin = 0, value_size = 0;
    bool value_is_null = false;
  };
  std::string topic;
  int32_t partition = 0;
  std::string bytes;
  std::vector<entry> entries;
  bool end = false;  ///< the poller will send nothing more for this partition

  void add(int64_t offset, int64_t ts, std::string_view key, const char* value, size_t value_size) {
    entry e;
    e.offset = offset;
    e.timestamp_ms = ts;
    e.key_begin = static_cast<uint32_t>(bytes.size());
    e.key_size = static_cast<uint32_t>(key.size());
    bytes.append(key);
    e.value_begin = static_cast<uint32_t>(bytes.size());
    e.value_is_null = value == nullptr;
    if (value) {
      e.value_size = static_cast<uint32_t>(value_size);
      bytes.append(value, value_size);
    }
    entries.push_back(e);
  }
  [[nodiscard]] std::string_view key(const entry& e) const {
    return std::string_view(bytes).substr(e.key_begin, e.key_size);
  }
  [[nodiscard]] std::string_view value(const entry& e) const {
    return std::string_view(bytes).substr(e.value_begin, e.value_size);
  }
  /// What this batch counts against source.max_in_flight_mb.
  [[nodiscard]] int64_t in_flight_cost() const {
    return static_cast<int64_t>(bytes.size() + entries.size() * sizeof(entry));
  }
};

/// record_counters (model/record_counters.hpp, free of CAF) as a message field.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_counters& x) {
  return f(caf::meta::type_name("record_counters"), x.in, x.out, x.filtered, x.dead_lettered,
           x.late);
}

// ---- partials: the window module's types, declared only ---------------------------------------
struct partial_batch;     ///< worker/window/windowing.hpp
struct aggregation_plan;  ///< worker/window/windowing.hpp

// Defined in worker/window/partial_codec.cpp (declared there too, in partial_codec.hpp).
/// The bytes of `batch` (its entries' accumulators are read, not moved).
[[nodiscard]] std::string encode_partial_batch(const partial_batch& batch);
/// `batch.partition`.
[[nodiscard]] int32_t partial_batch_partition(const partial_batch& batch);
/// `batch.entries.size()`.
[[nodiscard]] uint64_t partial_batch_entries(const partial_batch& batch);
/// `bytes` (of encode_partial_batch) decoded with `plan` into a new batch; nullptr with `*error`
/// (when not null) when the bytes are malformed, do not fit `plan`, or carry another partition
/// than `partition`.
[[nodiscard]] std::shared_ptr<partial_batch> decode_partial_batch_of(std::string_view bytes,
                                                                     const aggregation_plan& plan,
                                                                     int32_t partition,
                                                                     std::string* error);

/// Partial aggregates from one source task to one aggregator shard, local or remote.
///
/// Local delivery (one process) passes `batch` by shared pointer and never encodes (CAF 0.17
/// message types must be copyable, accumulators are not). When CAF serializes the message for
/// another process, inspect() writes `batch` as encode_partial_batch bytes with its partition;
/// the receiver gets `bytes` and `partition` and a null `batch`, and decodes with its own plan
/// through get(). Senders set `batch` (and `end`) only.
struct partials_msg {
  std::shared_ptr<partial_batch> batch;
  std::string bytes;       ///< received from another process: the encoded batch, until get()
  int32_t partition = -1;  ///< received from another process: the batch's partition
  bool end = false;        ///< the task is done; nothing more will come from its partition

  /// The sending task's partition, readable without decoding.
  [[nodiscard]] int32_t source_partition() const {
    return batch ? partial_batch_partition(*batch) : partition;
  }

  /// The batch: `batch` when set; otherwise `bytes` decoded with `plan` (kept in `batch`, `bytes`
  /// freed). nullptr with `*error` when the bytes are malformed, do not fit `plan`, or carry
  /// another partition than `partition`.
  [[nodiscard]] partial_batch* get(const aggregation_plan& plan, std::string* error) {
    if (batch) return batch.get();
    std::shared_ptr<partial_batch> decoded = decode_partial_batch_of(bytes, plan, partition, error);
    if (!decoded) return nullptr;
    std::string().swap(bytes);
    batch = std::move(decoded);
    return batch.get();
  }
};

/// Saving (CAF's serializer, i.e. to another process): the batch's bytes, partition and end.
/// Loading: into `bytes`, `partition`, `end` (batch null). Printing (deep_to_string, CAF's logs):
/// partition, entry count and end, no encoding.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, partials_msg& x) {
  if constexpr (std::is_base_of_v<caf::serializer, Inspector>) {
    if (x.batch) {
      std::string bytes = encode_partial_batch(*x.batch);
      int32_t partition = partial_batch_partition(*x.batch);
      return f(caf::meta::type_name("partials_msg"), bytes, partition, x.end);
    }
    return f(caf::meta::type_name("partials_msg"), x.bytes, x.partition, x.end);
  } else if constexpr (std::is_base_of_v<caf::deserializer, Inspector>) {
    x.batch.reset();
    return f(caf::meta::type_name("partials_msg"), x.bytes, x.partition, x.end);
  } else {
    int32_t partition = x.source_partition();
    uint64_t entries = x.batch ? partial_batch_entries(*x.batch) : 0;
    uint64_t bytes = x.bytes.size();
    return f(caf::meta::type_name("partials_msg"), partition, entries, bytes, x.end);
  }
}

/// What a source task made of one kafka_batch, or (shard >= 0) result rows of a shard.
struct result_batch {
  int32_t shard = -1;  ///< >= 0: rows from aggregator shard `shard`, no counters
  int32_t partition = 0;
  std::vector<row> rows;
  std::vector<dead_letter> dead_letters;
  record_counters counters;  ///< this batch only
  int64_t next_offset = -1;  ///< offset after the last record processed
  bool end = false;          ///< the task is done; nothing more will come from it
  /// In-flight bytes of the kafka_batch this came from, released when the sink takes it
  /// (run_context::in_flight_bytes).
  int64_t credit = 0;
};

/// Partitions the coordinator hands one worker; `generation` grows with every reassignment.
struct assignment {
  uint64_t generation = 0;
  std::string topic;
  std::vector<int32_t> partitions;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, assignment& x) {
  return f(caf::meta::type_name("assignment"), x.generation, x.topic, x.partitions);
}

/// A participant's answer to epoch `epoch`: its snapshot is written (one RocksDB WriteBatch) or,
/// when `error` is set, could not be. Tasks report their partition's next offset, watermark and
/// cumulative counters, which go into the epoch's manifest.
struct checkpoint_ack {
  uint64_t epoch = 0;
  int32_t partition = -1;  ///< >= 0: the source task of this partition
  int32_t shard = -1;      ///< >= 0: this aggregator shard; both -1: the sink
  int64_t next_offset = -1;
  int64_t watermark = INT64_MIN;
  record_counters counters;
  std::string error;
  /// Tasks and shards of a cluster worker (run_context::unit_deltas): the epoch's writes to the
  /// unit's keys, as delta records (state/unit_snapshot.hpp: unit_changes), and their number.
  std::string changes;
  uint64_t change_count = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, checkpoint_ack& x) {
  return f(caf::meta::type_name("checkpoint_ack"), x.epoch, x.partition, x.shard, x.next_offset,
           x.watermark, x.counters, x.error, x.changes, x.change_count);
}

/// Final or periodic counters of a worker, per partition.
struct worker_report {
  std::vector<int32_t> partitions;
  std::vector<record_counters> counters;
  std::string error;  ///< "" unless the pipeline failed
};

}  // namespace eddy

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(eddy::kafka_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(eddy::result_batch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(eddy::worker_report)
