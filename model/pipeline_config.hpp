// pipeline_config.hpp — the pipeline file (TOML), parsed and validated.
//
// `load_pipeline_config` reads a pipeline file; `parse_pipeline_config` parses text already in
// memory. Both validate everything they can without a broker: unknown keys, wrong types, bad
// values, unknown field names in the filter/select lists. Errors are returned (never thrown)
// as one message naming the key and its line, e.g.
//   "pipeline.toml:12: source.starting_offsets: expected \"earliest\" or \"latest\", got
//   \"first\"".
// Pure code: no CAF, no librdkafka. The returned config is plain data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/row.hpp"

namespace eddy {

/// Longest duration a pipeline file accepts anywhere: ten years (3650d), far from int64
/// overflow, in microseconds.
inline constexpr int64_t max_duration_us = 3650LL * 86'400'000'000LL;

/// Most windows one row may fall in: a hopping window's size / slide (each window costs a
/// partial group per row; 1d / 1ms would be 86.4M). Checked at load time.
inline constexpr int64_t max_windows_per_row = 10'000;

/// Which Debezium message shape the topic carries.
enum class message_format : uint8_t {
  auto_detect,  ///< "auto": detect per message (schema wrapper, envelope, else unwrapped)
  unwrapped,    ///< "unwrapped": ExtractNewRecordState rows with __op/__deleted/__source_ts_ms
  envelope,     ///< "envelope": {before, after, source, op, ts_ms}
  schema,       ///< "schema": JsonConverter {"schema": ..., "payload": envelope-or-unwrapped}
};

/// How a timestamp field's raw value is read when the message carries no schema saying so.
enum class time_unit : uint8_t {
  auto_detect,  ///< "auto": schema's logical type if present, else micros for integers, ISO for
                ///< strings
  seconds,      ///< "seconds"
  millis,       ///< "millis"      (io.debezium.time.Timestamp)
  micros,       ///< "micros"      (io.debezium.time.MicroTimestamp)
  nanos,        ///< "nanos"       (io.debezium.time.NanoTimestamp)
  days,         ///< "days"        (io.debezium.time.Date)
  iso,          ///< "iso"         (io.debezium.time.ZonedTimestamp, ISO-8601 string)
};

/// One declared field: `[[fields]]` in the pipeline file.
struct field_config {
  std::string name;    ///< output name (`name`), an identifier [A-Za-z_][A-Za-z0-9_]*
  std::string column;  ///< source column (`column`, default = name). Pseudo-columns: "$op",
                       ///< "$source_ts", "$topic", "$partition", "$offset", "$key", "$timestamp".
  field_type type = field_type::string;     ///< `type`: string|int|double|bool|timestamp
  time_unit unit = time_unit::auto_detect;  ///< `unit`, timestamps only
  std::optional<int> scale;         ///< `scale`: decimal scale for base64 Decimal without a schema
  bool strip_bytes_wrapper = true;  ///< `strip_bytes_wrapper`: b'...' / b"..." removed
  bool trim = true;                 ///< `trim`: surrounding whitespace removed from strings
  bool required = false;            ///< `required`: a missing/null value dead-letters the record
  int line = 0;                     ///< line of the `[[fields]]` table, for messages
};

struct source_config {
  std::string bootstrap_servers;              ///< `bootstrap_servers` (required unless overridden)
  std::string topic;                          ///< `topic` (required)
  std::string starting_offsets = "earliest";  ///< "earliest" | "latest"
  int max_records_per_poll = 10000;           ///< 1..1'000'000
  int64_t max_records_per_second = 0;         ///< `max_records_per_second`: read rate cap, 0 = none
  /// `max_in_flight_mb`: fetched message bytes read from Kafka but not yet through the sink;
  /// the poller stops fetching above it (backpressure: memory and barrier delay stay bounded).
  int64_t max_in_flight_mb = 64;
  std::string group_id;                                 ///< default "eddy-" + pipeline name
  message_format format = message_format::auto_detect;  ///< `format`
  int64_t max_message_bytes = 1 << 20;  ///< `max_message_bytes`: larger values are dead-lettered
};

enum class sink_kind : uint8_t { console, file, kafka, postgres };

/// What a file sink writes (`format`).
enum class file_format : uint8_t {
  jsonl,  ///< "jsonl": JSON Lines, one object per row (the default)
  csv,    ///< "csv": a header row, then RFC 4180 records
};

/// One `[[sinks]]` entry.
struct sink_config {
  sink_kind kind = sink_kind::console;  ///< `type` = "console" | "file" | "kafka"
  // console
  bool truncate = true;  ///< `truncate`: cut values longer than 20 characters
  int num_rows = 20;     ///< `num_rows`: rows shown per batch (>= 1)
  // file
  std::string path;                         ///< `path`: output directory (file sink, required)
  file_format format = file_format::jsonl;  ///< `format`: "jsonl" | "csv" ("parquet" refused)
  /// `partition_by`: a timestamp output column; rows go to `dt=YYYY-MM-DD/` sub-folders of
  /// `path` by its date in the pipeline's zone ("" = no sub-folders).
  std::string partition_by;
  // kafka
  std::string topic;              ///< `topic` (kafka sink, required)
  std::string bootstrap_servers;  ///< `bootstrap_servers` (kafka sink, default = source's)
  // postgres (see worker/postgres/README.md). The password never comes from the pipeline file:
  // a `password` key, or a `dsn` holding one, is refused.
  std::string dsn;            ///< `dsn`: libpq connection string (keyword=value or URI)
  std::string host;           ///< `host` (instead of / on top of `dsn`)
  int port = 0;               ///< `port`, 0 = libpq's default
  std::string dbname;         ///< `dbname`
  std::string user;           ///< `user`
  std::string password_env;   ///< `password_env`: name of the environment variable holding it
  std::string password_file;  ///< `password_file`: file whose first line is the password
  std::string table;          ///< `table` (required): "name" or "schema.name", used as written
  bool upsert = false;        ///< `mode`: "append" (default) or "upsert"
  /// `key`: postgres: the output fields that identify a row (cleaned-row pipelines: what upsert
  /// merges on); kafka: the output fields whose JSON object is each record's key (empty = null
  /// key; default when not given, key_given false: the window bounds and group_by fields of
  /// aggregated results, for cleaned rows `id` when it is an output column).
  /// After loading, for an upserting postgres sink: the key columns actually used (window_start,
  /// window_end and the group_by fields for aggregating pipelines).
  std::vector<std::string> key;
  /// `reconnect_timeout`: how long a lost connection is retried before the run fails.
  int64_t reconnect_timeout_us = 300'000'000;
  bool key_given = false;
  int key_line = 0;                  ///< line of `key`, for messages
  std::string partitioning = "key";  ///< `partitioning` (kafka): "key" | "round_robin"
  bool transactional = false;        ///< `transactional` (kafka): Kafka transactions per file
  int line = 0;
  /// Not read from the pipeline file: set by `eddy worker` ("<worker>-g<generation>", see
  /// epoch_files.hpp) so that workers sharing the output directory stage distinct names. File
  /// sink only; "" (one process) keeps the names without a tag.
  std::string name_tag;
};

/// `[dead_letter]`: where records that cannot be decoded or cleaned go.
struct dead_letter_config {
  std::string path;   ///< `path`: JSON Lines directory (default "dead-letter/" + pipeline name)
  std::string topic;  ///< `topic`: optional Kafka topic, also written when set
  /// Not read from the pipeline file: the name tag of staged dead-letter files (as
  /// sink_config::name_tag), set by `eddy worker`.
  std::string name_tag;
};

enum class window_kind : uint8_t { none, tumbling, hopping, session, global };
enum class emit_mode : uint8_t { on_close, on_update };
enum class late_policy : uint8_t { drop, dead_letter, update };

/// `[window]`: how aggregated rows are grouped in time. Durations in the file are strings
/// such as "500ms", "10s", "1m", "2h", "1d" (or integers = milliseconds).
/// `[[aggregates]]` without a `[window]` table means kind global, emit on_update. A global
/// window takes only type, time_field, time and emit (emit defaults to on_update there, and
/// on_close is rejected); without a time_field it runs on processing time (processing_time is
/// set). `[window]` or `[aggregate]` without `[[aggregates]]` is an error.
struct window_config {
  window_kind kind = window_kind::none;  ///< `type`: tumbling|hopping|session|global
  int64_t size_us = 0;                   ///< `size` (tumbling, hopping)
  int64_t slide_us = 0;                  ///< `slide` (hopping; size must be a multiple)
  int64_t gap_us = 0;                    ///< `gap` (session)
  std::string time_field;                ///< `time_field`: a declared timestamp field
  int time_field_index = -1;             ///< resolved index of time_field
  bool processing_time = false;          ///< `time = "processing"` instead of a field
  int64_t max_out_of_orderness_us = 0;   ///< `max_out_of_orderness` (default "0s")
  int64_t allowed_lateness_us = 0;       ///< `allowed_lateness` (default "0s")
  int64_t idle_timeout_us = 0;           ///< `idle_timeout`, 0 = partitions never idle
  /// `max_event_time_skew`: rows whose event time is further than this ahead of the processing
  /// time are dead-lettered (they would move the watermark past every real row). 0 = off, the
  /// default here; a pipeline file's event-time tumbling/hopping/session window defaults to
  /// "365d" (`"0s"` turns it off).
  int64_t max_event_time_skew_us = 0;
  emit_mode emit = emit_mode::on_close;  ///< `emit`: on_close|on_update
  late_policy late = late_policy::drop;  ///< `late`: drop|dead_letter|update
};

/// One `[[aggregates]]` entry: `alias = function(field)`.
struct aggregate_config {
  std::string alias;     ///< `alias` (an identifier, unique among outputs)
  std::string function;  ///< `function`: see aggregates.hpp (count, sum, avg, p95, ...)
  std::string field;     ///< `field`: a declared field ("" = count(*))
  double q = 0.5;        ///< `q` for function = "percentile"
  int line = 0;
};

/// `[aggregate]`: grouping of an aggregating pipeline.
struct aggregation_config {
  std::vector<std::string> group_by;     ///< `group_by`: declared fields
  std::string mode = "append";           ///< `mode`: "append" | "changelog"
  std::vector<std::string> primary_key;  ///< `primary_key` (changelog; default ["id"] if declared)
  std::string having;                    ///< `having`: filter on result rows (group keys, aliases)
  int shards = 4;                        ///< `shards`: aggregator shards, 1..256
};

/// `[checkpoint]`: exactly-once state and offsets (absent table or no `dir` = checkpoints off).
/// Relative `dir` and `local_dir` are kept as written: relative to the working directory, like the
/// file sink's path. The other keys are validated even without a `dir`.
struct checkpoint_config {
  /// `dir`: checkpoint storage (shared with other nodes later). "" = off
  std::string dir;
  int64_t interval_ms = 1000;  ///< `interval`: duration ("1s", "200ms", integer ms), 10ms..1h
  int retain = 3;              ///< `retain`: complete checkpoints kept, 1..1000
  /// `local_dir`: node-local RocksDB for task state; default dir + "/local" (filled in when `dir`
  /// is set). Cleared at start, so it may neither contain `dir` nor lie in its sst/ or epochs/.
  std::string local_dir;
  int64_t block_cache_mb = 64;   ///< `block_cache_mb`: RocksDB block cache budget, 1..65536
  int64_t write_buffer_mb = 32;  ///< `write_buffer_mb`: RocksDB memtable budget, 1..65536
  bool sync = true;  ///< `sync`: fsync checkpoint files (false only for tests/benchmarks)
  /// `state_backend`: "memory" (default: aggregation state in memory, checkpointed incrementally
  /// into RocksDB — fastest) or "rocksdb" (state lives in the node-local RocksDB, read back on
  /// access; for state larger than memory, slower — see docs/benchmarks.md §5). Like Flink's
  /// HashMapStateBackend vs EmbeddedRocksDBStateBackend.
  bool state_in_rocksdb = false;
  int line = 0;  ///< line of the `[checkpoint]` table, for messages (0 = absent)
  [[nodiscard]] bool enabled() const { return !dir.empty(); }
};

struct pipeline_config {
  std::string name = "pipeline";       ///< `[pipeline] name`
  std::string timezone = "UTC";        ///< `[pipeline] timezone`: "UTC", "+05:30", or an IANA name
  int64_t trigger_interval_ms = 1000;  ///< `[pipeline] trigger_interval_ms`: batch cadence
  /// `[pipeline] max_rows_per_batch`: result rows per output step: a window close emits at most
  /// this many rows at a time, and a sink writes them as a batch (console, Kafka) or a part file
  /// (file sink, like Spark's maxRecordsPerFile) once this many are buffered; bounds memory when
  /// one window has very many groups.
  int64_t max_rows_per_batch = 100000;
  source_config source;              ///< `[source]`
  std::vector<field_config> fields;  ///< `[[fields]]`, at least one
  std::string filter;                ///< `[query] filter`: expression text, "" = keep all
  std::vector<std::string> select;   ///< `[query] select`: output fields, empty = all fields
  std::vector<sink_config> sinks;    ///< `[[sinks]]`, at least one
  dead_letter_config dead_letter;    ///< `[dead_letter]`
  window_config window;              ///< `[window]` (kind none = no aggregation)
  std::vector<aggregate_config> aggregates;  ///< `[[aggregates]]`; non-empty = aggregating
  aggregation_config aggregation;            ///< `[aggregate]`
  checkpoint_config checkpoint;              ///< `[checkpoint]`
  std::string file_name;                     ///< where it was loaded from, for messages

  /// Index of the field named `name` in `fields`, or -1.
  [[nodiscard]] int field_index(std::string_view name) const;

  /// Indices into `fields` of the output columns, in output order: `select`'s fields, or every
  /// field when `select` is empty. A validated config has no -1 entries.
  [[nodiscard]] std::vector<int> output_field_indices() const;
};

/// Parse-or-error result; exactly one of the two is meaningful.
struct config_result {
  std::optional<pipeline_config> config;
  std::string error;  ///< "" on success
};

/// Parses pipeline TOML text. `file_name` is used in messages only.
[[nodiscard]] config_result parse_pipeline_config(std::string_view toml_text,
                                                  std::string_view file_name = "pipeline.toml");

/// Reads and parses a pipeline file; an unreadable file is an error naming the path.
[[nodiscard]] config_result load_pipeline_config(const std::string& path);

/// `--bootstrap B`: the source reads from B, and so do the Kafka sinks whose brokers defaulted to
/// the source's (those that name brokers of their own keep them). "" changes nothing.
void apply_bootstrap_override(pipeline_config& cfg, const std::string& bootstrap);

/// One output column: what a sink receives (see output_columns).
struct output_column {
  std::string name;
  field_type type = field_type::string;
};

/// The output columns of a validated pipeline, in order: `select`'s fields (or every field)
/// without aggregates; with them window_start and window_end (timestamps; not for a global
/// window), the group_by fields, then each aggregate alias with its result type (count,
/// count_distinct, approx_count_distinct: int; sum: its field's type (int or double); avg and
/// percentiles: double; min, max, first, last: its field's type). The same columns as the
/// windowing plan's result schema (worker/window), computed here for load-time checks.
[[nodiscard]] std::vector<output_column> output_columns(const pipeline_config& cfg);

/// The directories a pipeline stages exactly-once file output in: every file sink's path, every
/// sink's own staging directory (sink_staging_dir, with checkpoints), then the dead-letter path.
[[nodiscard]] std::vector<std::string> staged_output_dirs(const pipeline_config& cfg);

/// Where sink `index` of `cfg.sinks` stages its epochs when it stages outside its output
/// (PostgreSQL, Kafka): `<checkpoint.dir>/sinks/<kind>-<index>`; "" for the other sinks and without
/// checkpoints. Files staged there are delivered elsewhere and then deleted.
[[nodiscard]] std::string sink_staging_dir(const pipeline_config& cfg, std::size_t index);

/// Output column names of a validated pipeline: the window bounds (not for global windows),
/// group_by fields and aggregate aliases of an aggregating one; the selected (or all) fields
/// otherwise
/// (the names of output_columns).
[[nodiscard]] std::vector<std::string> output_column_names(const pipeline_config& cfg);

[[nodiscard]] std::string_view to_string(message_format f);
/// The pipeline-file spelling: "auto", "seconds", "millis", "micros", "nanos", "days", "iso".
[[nodiscard]] std::string_view to_string(time_unit u);
/// The pipeline-file spelling: "console", "file", "kafka", "postgres".
[[nodiscard]] std::string_view to_string(sink_kind k);
/// The pipeline-file spelling, which is also the file extension: "jsonl", "csv".
[[nodiscard]] std::string_view to_string(file_format f);
/// The shortest pipeline-file spelling of a duration given in microseconds: "5m", "1500ms", "0s"
/// (a remainder below a millisecond prints as "...us", which pipeline files do not accept).
[[nodiscard]] std::string format_duration(int64_t us);

}  // namespace eddy
