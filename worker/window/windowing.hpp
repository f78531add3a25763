// windowing.hpp — event-time windowed aggregation, split the way the cluster runs it.
//
// A pipeline with `[[aggregates]]` runs in two stages:
//   * one `partition_aggregator` per source task (per Kafka partition) assigns each row to its
//     windows, detects late rows, keeps changelog state (last row per primary key) and
//     pre-aggregates partial accumulators per (window, group key);
//   * `shard_count` `shard_aggregator`s, each owning the group keys with
//     `shard_of(key) == shard`, merge the partials of every partition and emit result rows when
//     the pipeline watermark passes a window's end + allowed lateness (on_close) or at every
//     emit call for groups that changed (on_update).
// The two talk only through `partial_batch` values (in the runtime: actor messages, batched).
//
// Semantics (deterministic — independent of partition count and of message interleaving):
//   * event time = the row's `time_field` (or processing time); a row whose event time is null is
//     dead-lettered with reason "null event time". So is a row whose event time lies outside
//     [min_event_time_us, max_event_time_us] (years 0001..9999: every window bound, lateness and
//     watermark computed from such a time fits in int64 with room to spare), or, with
//     `max_event_time_skew` set, more than that far ahead of the processing time the caller
//     passes (check_event_time() gives the reasons). Such a row moves no watermark, touches no
//     window and leaves changelog state alone; a changelog before-image (used only for keys not
//     in state) is checked the same way. One hostile time cannot push the watermark to year
//     294247 and make every later row late.
//   * partition watermark = max event time seen in that partition − max_out_of_orderness
//     (starts at INT64_MIN). A row is LATE for a window when, at its arrival, its own partition's
//     watermark >= window end + allowed_lateness. A row contributes to every window it is not late
//     for; when it is late for all its windows it is counted late and handled by the late policy:
//     drop (counted), dead_letter (reason "late: window [start, end) closed at watermark W"), or
//     update (the row is added anyway and the shard emits a corrected row for that window).
//   * pipeline watermark (in a shard) = min over the partitions' watermarks carried by the
//     partial batches, ignoring partitions idle for longer than idle_timeout (processing time,
//     as reported by the caller), so a quiet partition doesn't stall every window.
//   * windows: tumbling [k*size, (k+1)*size); hopping every window [k*slide, k*slide+size) that
//     contains t; session: per group key, events closer than `gap` form one session
//     [first, last + gap) — partial sessions from different partitions merge when they overlap;
//     global: one window for all time, emitted on_update (on_close never fires).
//   * changelog mode: an update retracts the previous contribution of its primary key (from the
//     message's before-image when present, else from the last row kept in state) and adds the
//     new one; a delete retracts it. Deletes/updates of unknown keys only add/retract what is
//     known. Append mode: every row (any op) is one new contribution.
//   * result rows: [window_start, window_end] (timestamps; omitted for global windows), then the
//     group-by fields in order, then each aggregate alias; rows with an empty result (all
//     retracted) are not emitted; `having` filters result rows.
//
// Clarifications (choices made where the above leaves room):
//   * Session lateness: a partition cannot know the merged session a row will end up in, so a
//     session row is judged against its own instant: LATE when its partition's watermark
//     > event time + allowed_lateness (strictly: rows at the watermark's own instant are on
//     time). Sessions close when the pipeline watermark >= session end + allowed_lateness; this
//     pairing guarantees no on-time row can ever extend a closed session (on-time rows have
//     t >= every closed session's end). Dead-letter reason: "late: event at T is behind
//     watermark W (session window)". Session windows are rejected in changelog mode (a
//     retraction could split a session).
//   * Hopping: a row contributes to each of its windows it is not late for; it is counted late
//     (and policed) only when late for all of them. Reasons name the latest of its windows.
//   * Changelog: the retracted row is the one kept in state for the primary key when there is
//     one (exactly what was added — this also survives Postgres REPLICA IDENTITY DEFAULT
//     before-images, which carry only key columns, and updates a filter hid); the message's
//     before-image (the image of a delete, `before` of an update) is used only for keys not in
//     state. Each part (retraction, addition) goes to the windows of its own event time and is
//     judged late on its own; the record is late when every part is late for every window.
//     State always follows the latest image (deletes erase it), late records included; a
//     record dead-lettered for a null event time leaves state alone. A delete's event time is
//     the retracted row's. `c`/`r` of a known key retract the old row too.
//   * Global windows (and `[window]` absent = kind none) emit as on_update whatever `emit` says,
//     and without a time_field use processing time. finish() in on_update mode emits only the
//     groups changed since the last emit (all earlier values were already emitted).
//   * Empty groups (net rows <= 0 after retractions) are never emitted: not at close, and in
//     on_update nothing is emitted for them (consumers keep the last row they saw). Likewise
//     with `having` in on_update mode: a group that stops matching emits nothing.
//   * Idleness: a partition is idle when no record has reached it (per `last_record_us`) for
//     longer than idle_timeout, measured from the shard's first observed processing time for
//     partitions that never had one. When every partition is idle the pipeline watermark is the
//     max of their watermarks (input has stopped: let windows close).
//   * Late policy update: the shard keeps every closed window's groups (memory grows with
//     windows × keys over the whole run — use it with global windows or bounded time ranges);
//     any partial reaching a closed window is merged there and a corrected row (the full new
//     value) is emitted at the next emit(). For drop/dead_letter, closed state is freed at close,
//     and a partial that still reaches a closed window (only possible via a partition that was
//     ignored as idle) is dropped and counted in `dropped_after_close()`.
//
// Checkpoints: both stages write their state as key/value ops under a caller-chosen prefix
// (checkpoint()) and rebuild it from a prefix scan (restore()). Incremental: a checkpoint writes
// only what changed since the previous one (plus one small meta key). A consistent cut is: every
// partition_aggregator cuts its partials (take_partials) and checkpoints; every shard merges all
// partial batches cut up to that point, and none cut later, then checkpoints. Restored objects
// continue exactly as the originals would have (same outcomes, same rows), including groups
// that were still waiting for an emit() and a bounded window close under way (the shard's meta
// key records how far it got: windows fully emitted, and the last stored key emitted of the one
// being closed; the groups it emitted from memory are deleted by that checkpoint).
//
// Backing store (set_backing): with checkpoints on, the key space of the last checkpoint is
// readable (the runtime's RocksDB), so memory need not hold a copy of it. A backed object keeps
// in memory only what changed since the last checkpoint (plus groups still to emit, window
// bounds and sessions); checkpoint() drops every clean entry after emitting its ops (which the
// caller applies before touching the object again), and an entry not in memory is read from
// the store on access (changelog keys on add/forget, groups on merge, a whole window's groups
// by a prefix scan when it closes). restore() then streams the stored entries once to check
// them and keeps none of them beyond the above. Outputs are exactly those of an unbacked
// object. A failed or malformed read sets backing_error() (the entry then counts as absent):
// results are unreliable from then on and the run must fail (no further checkpoint).
//
// Thread-safety: none; each object belongs to one actor. No CAF, no librdkafka.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/filter_expr.hpp"
#include "model/pipeline_config.hpp"
#include "model/row.hpp"
#include "state/kv_op.hpp"
#include "worker/decode/debezium_decoder.hpp"
#include "worker/sink/sink.hpp"
#include "worker/window/aggregates.hpp"

namespace eddy {

/// Earliest event time a window accepts: 0001-01-01T00:00:00Z, in microseconds since the epoch.
inline constexpr int64_t min_event_time_us = -62'135'596'800'000'000;
/// Latest event time a window accepts: 9999-12-31T23:59:59.999999Z.
inline constexpr int64_t max_event_time_us = 253'402'300'799'999'999;

/// Why a row with event time `t` cannot be windowed under `w`, at wall clock
/// `processing_time_us`: "" when it can; otherwise the dead-letter reason — `t` outside
/// [min_event_time_us, max_event_time_us], or, when w.max_event_time_skew_us > 0, more than that
/// ahead of `processing_time_us`. Not called for processing-time windows. Never overflows.
[[nodiscard]] std::string check_event_time(const window_config& w, int64_t t,
                                           int64_t processing_time_us);

/// A window [start, end) in microseconds; global windows are [INT64_MIN, INT64_MAX).
struct window_bounds {
  int64_t start = 0;
  int64_t end = 0;
  auto operator<=>(const window_bounds&) const = default;
};

/// Everything both stages need, resolved from the pipeline config once.
struct aggregation_plan {
  window_config window;
  std::vector<int> group_by;  ///< indices into the decoded row
  std::vector<agg_spec> aggs;
  bool changelog = false;
  std::vector<int> primary_key;  ///< indices into the decoded row (changelog)
  int shard_count = 4;
  output_schema schema;  ///< result row schema (see above)
  filter_expr having;    ///< compiled against `schema`

  /// Builds the plan; nullopt with `error` naming the config key on a problem (unknown field,
  /// non-timestamp time_field, non-retractable aggregate in changelog mode, ...).
  [[nodiscard]] static std::optional<aggregation_plan> from_config(const pipeline_config& cfg,
                                                                   std::string* error);
};

/// Shard owning a group key: stable hash of the key values modulo shard_count.
[[nodiscard]] int shard_of(const row& group_key, int shard_count);

/// Partial aggregates of one partition for one shard, since the previous batch.
struct partial_batch {
  struct entry {
    window_bounds window;
    row key;
    std::vector<std::unique_ptr<accumulator>> accs;  ///< one per plan.aggs, deltas
    int64_t rows = 0;          ///< net contributions (adds − retractions) in these deltas
    bool late_update = false;  ///< produced by late policy "update": emit a corrected row
  };
  int32_t partition = 0;
  int64_t watermark = INT64_MIN;       ///< the partition's watermark after these records
  int64_t processing_time_us = 0;      ///< when the batch was cut (for idleness)
  int64_t last_record_us = INT64_MIN;  ///< processing time of the partition's last record
  std::vector<entry> entries;
};

/// One write of a state checkpoint: put, delete or range delete (state/kv_op.hpp; what
/// kv_store::write_batch applies).
using state_op = kv_op;

/// Read access to the key space checkpoint() ops were applied to (in the runtime, the node-local
/// RocksDB). Errors are reported through `error` (left untouched on success).
class state_reader {
 public:
  virtual ~state_reader() = default;
  /// The value of `key`; nullopt when absent or on a read error (then `error` is set).
  [[nodiscard]] virtual std::optional<std::string> get(std::string_view key,
                                                       std::string* error) const = 0;
  /// Calls `f(key, value)` for every key starting with `prefix`, in key order, until `f`
  /// returns false. false (with `error`) on a read error.
  virtual bool scan(std::string_view prefix,
                    const std::function<bool(std::string_view key, std::string_view value)>& f,
                    std::string* error) const = 0;
  /// As scan(), from the first key >= `from` (a resumed scan). The default skips the keys
  /// before `from`; stores that can seek override it.
  virtual bool scan_from(std::string_view prefix, std::string_view from,
                         const std::function<bool(std::string_view key, std::string_view value)>& f,
                         std::string* error) const {
    return scan(
        prefix, [&](std::string_view k, std::string_view v) { return k < from || f(k, v); }, error);
  }
};

enum class aggregate_outcome : uint8_t {
  contributed,  ///< counted as out
  late,         ///< counted as late (policy drop or update)
  dead_letter,  ///< late with policy dead_letter, or null event time; see reason
};

class partition_aggregator {
 public:
  /// Keeps its own copy of `plan`.
  partition_aggregator(const aggregation_plan& plan, int32_t partition);
  ~partition_aggregator();

  /// Feeds one decoded row that passed the filter. `processing_time_us` is the wall clock used
  /// for processing-time windows. On dead_letter, `reason` says why.
  aggregate_outcome add(const decoded_record& rec, int64_t processing_time_us, std::string& reason);

  /// Changelog mode: the row with `image`'s primary key left the pipeline's view (its new image
  /// failed the filter): retract what this partition added for that key, if anything, and
  /// forget it. No-op in append mode or for unknown keys.
  void forget(const row& image);

  /// Moves the partials accumulated since the last call into `out` (resized to shard_count;
  /// one batch per shard, every one carrying the current watermark even when empty).
  void take_partials(std::vector<partial_batch>& out, int64_t processing_time_us);

  [[nodiscard]] int64_t watermark() const;

  /// Appends to `ops` the writes that turn the key space under `prefix` (as left by this
  /// object's previous checkpoint() or restore(), or empty for a fresh object) into this
  /// aggregator's current state. Incremental: only entries changed since the previous
  /// checkpoint are written (changelog state per primary key is one key each), plus one small
  /// meta key every time. Precondition: take_partials() was called after the last
  /// add()/forget() (no pending partials; they are not saved). Every key starts with `prefix`.
  /// The object assumes the ops are applied: when the write fails, restore a fresh object from
  /// the last good checkpoint instead of checkpointing this one again.
  void checkpoint(const std::string& prefix, std::vector<state_op>& ops);
  /// Replaces this (fresh) object's state by what checkpoint() wrote: `entries` = every
  /// (key, value) under `prefix`, in key order (what kv_store::scan(prefix) returns; no entries =
  /// fresh state). false with `error` on malformed data (the object is then left fresh).
  [[nodiscard]] bool restore(const std::string& prefix,
                             const std::vector<std::pair<std::string, std::string>>& entries,
                             std::string* error);

  /// Backs this object with `reader` (see "Backing store" above); nullptr (the default) keeps
  /// everything in memory. Call it on a fresh object before restore(), or right after a
  /// checkpoint() whose ops were applied; `prefix` is the checkpoint prefix. `reader` must
  /// outlive the object and always hold what the ops of the last checkpoint() left.
  void set_backing(const state_reader* reader, const std::string& prefix);
  /// Whether to remember what changed since the last checkpoint (on by default). A run without
  /// checkpoints turns it off on a fresh object: that bookkeeping holds a copy of every key
  /// changed since the last checkpoint, i.e. of every key when no checkpoint ever comes.
  /// checkpoint() must not be called while it is off.
  void track_changes(bool on);
  /// As restore(prefix, entries, error), streaming the entries from `reader.scan(prefix)`.
  [[nodiscard]] bool restore(const state_reader& reader, const std::string& prefix,
                             std::string* error);
  /// "" unless a read from the backing store failed or found malformed data.
  [[nodiscard]] const std::string& backing_error() const;
  /// Entries held in memory: changelog primary keys.
  [[nodiscard]] size_t resident_entries() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

class shard_aggregator {
 public:
  /// `partitions`: every partition of the topic (all feed every shard).
  shard_aggregator(const aggregation_plan& plan, int shard, std::vector<int32_t> partitions);
  ~shard_aggregator();

  /// Merges one partition's partials. `received_us`: this shard's clock when the batch arrived
  /// (INT64_MIN: the batch's own processing_time_us, i.e. one clock for both stages). Idleness
  /// (window.idle_timeout) is then measured on this shard's clock only: the batch's
  /// last_record_us is taken as "processing_time_us − last_record_us before receipt" (a
  /// difference on the sender's clock), so two hosts' clocks need not agree.
  void merge(partial_batch&& batch, int64_t received_us = INT64_MIN);

  /// Appends result rows that are due at `processing_time_us`: closed windows (on_close), changed
  /// groups (on_update), corrected late rows (late policy update). Closed windows' state is freed.
  /// Bounded close: with emit on_close and late policy drop/dead_letter, a tumbling or hopping
  /// window emits at most `max_rows` groups per call, so a window of 1M groups never becomes 1M
  /// rows at once. The window counts as closed from the first call (partials reaching it are
  /// dropped, as after a close), its groups are emitted over the following calls, each once, and
  /// a checkpoint taken in between records how far it got (restore continues from there).
  /// Returns true while closing rows are still due: call again (merging what arrived meanwhile
  /// is fine) to continue. The rows of all calls together are those of one unbounded call.
  bool emit(std::vector<row>& out, int64_t processing_time_us, size_t max_rows = SIZE_MAX);

  /// Appends the final rows when the input ends (every open window is closed, as if the
  /// watermark jumped to +infinity), for --exit-at-end runs and tests. `max_rows` and the
  /// result: as emit()'s.
  bool finish(std::vector<row>& out, size_t max_rows = SIZE_MAX);

  [[nodiscard]] int64_t pipeline_watermark(int64_t processing_time_us) const;
  [[nodiscard]] size_t open_groups() const;
  /// Partials that reached an already closed window with late policy drop/dead_letter (only
  /// possible after an idle partition was ignored); they were discarded.
  [[nodiscard]] int64_t dropped_after_close() const;

  /// As partition_aggregator::checkpoint: the writes that turn the key space under `prefix` (as
  /// left by the previous checkpoint() or restore(), or empty) into this shard's state —
  /// partition watermarks, open (and, for late policy update, closed) groups, sessions, the
  /// groups still to emit, counters. One key per (window, group key) or (group key, session
  /// start), written only when changed since the previous checkpoint; groups freed at close
  /// are deleted. Take it when every partial batch cut before the checkpoint has been merged.
  void checkpoint(const std::string& prefix, std::vector<state_op>& ops);
  /// As partition_aggregator::restore, on a fresh object constructed with the plan, shard and
  /// partitions as usual. Partitions of the constructor missing from the checkpoint start
  /// fresh; partitions of the checkpoint missing from the constructor are dropped. Fails when
  /// the checkpoint was taken for another shard index or shard count.
  [[nodiscard]] bool restore(const std::string& prefix,
                             const std::vector<std::pair<std::string, std::string>>& entries,
                             std::string* error);

  /// set_backing, streaming restore and backing_error: as partition_aggregator's.
  void set_backing(const state_reader* reader, const std::string& prefix);
  /// As partition_aggregator::track_changes.
  void track_changes(bool on);
  [[nodiscard]] bool restore(const state_reader& reader, const std::string& prefix,
                             std::string* error);
  [[nodiscard]] const std::string& backing_error() const;
  /// Entries held in memory: (window or session) groups.
  [[nodiscard]] size_t resident_entries() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace eddy
