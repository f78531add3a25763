// sink.hpp — where a pipeline's output rows go, one batch at a time.
//
// A sink receives batches in increasing `batch_id` order from a single thread (the sink actor);
// implementations need no locking. `write_batch` returns "" on success or an error message; a
// sink never throws for I/O trouble and never calls exit(). Rows follow `output_schema`.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/pipeline_config.hpp"
#include "model/row.hpp"
#include "model/time_format.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {

/// Names and types of the columns a sink receives (the pipeline's projection).
struct output_schema {
  std::vector<std::string> names;
  std::vector<field_type> types;
};

/// The highest part number of an epoch's output (see sink::stage_epoch): part names carry it in
/// 5 digits, so that name order stays arrival order.
constexpr int max_epoch_parts = 99'999;

class sink {
 public:
  virtual ~sink() = default;
  /// Writes one batch; an empty batch may be skipped by the implementation.
  [[nodiscard]] virtual std::string write_batch(int64_t batch_id, const output_schema& schema,
                                                const std::vector<row>& rows) = 0;
  /// Flushes and releases resources; "" on success.
  [[nodiscard]] virtual std::string close() { return {}; }

  // ---- exactly-once output with checkpoints (see epoch_files.hpp) ----
  /// True for sinks that stage an epoch's output and publish it when the epoch completes (file
  /// sink; Kafka with checkpoints). The others (console; Kafka without checkpoints) are written
  /// per trigger: at-least-once after a crash.
  [[nodiscard]] virtual bool transactional() const { return false; }
  /// Durably stages rows of `epoch` (invisible to readers until published) as its part `part`.
  /// An epoch's output may come in several parts, so that the sink need not hold all of an
  /// epoch's rows: parts 1, 2, ... in arrival order while the epoch runs (each at least
  /// `[pipeline] max_rows_per_batch` rows), then part 0, the last (or only) part, at the
  /// epoch's barrier; at most `max_epoch_parts` parts come before part 0. Readers that list
  /// published files in name order see the parts in that order. File names are deterministic
  /// per (epoch, part): staging a part again replaces it. Recovery discards an incomplete
  /// epoch's staged parts wholesale, so a re-run never mixes its parts with a crashed run's.
  [[nodiscard]] virtual std::string stage_epoch(uint64_t /*epoch*/, int /*part*/,
                                                const output_schema&, const std::vector<row>&) {
    return "this sink cannot stage output";
  }
  /// Makes `epoch`'s staged rows visible; idempotent.
  [[nodiscard]] virtual std::string publish_epoch(uint64_t /*epoch*/) { return {}; }
  /// On restart: publishes staged epochs <= `last_complete`, discards newer ones.
  [[nodiscard]] virtual std::string recover(uint64_t /*last_complete*/, epoch_recovery* /*out*/) {
    return {};
  }
  /// fsync staged files (default on; off for tests and benchmarks only).
  virtual void set_sync(bool /*sync*/) {}
  /// Staging directory of a sink that stages outside its output (PostgreSQL, Kafka); "" for
  /// the others (the file sink stages in its own `path`).
  [[nodiscard]] virtual std::string staging_dir() const { return {}; }
  /// Delivers exactly the listed staged files (paths `<staging_dir>/_staging/<epoch, 20
  /// digits>/<name>`) idempotently, in list order, removing each once delivered: what a
  /// cluster coordinator calls after an epoch's commit. "" or an error naming the file.
  [[nodiscard]] virtual std::string publish_staged(const std::vector<std::string>& staged_paths,
                                                   bool sync) {
    return publish_staged_files(staged_paths, sync);
  }
};

/// What `eddy run` prints about sink `index` (0-based) of `cfg` at start-up, after "eddy: ":
/// "sink <index + 1>: <what>: <guarantee>". <what>: "console", "file <path>/ (<format>)" or
/// "file <path>/ (<format>, by dt of <partition_by>)", "kafka topic <topic>". <guarantee> with
/// checkpoints: the file sink "exactly-once (staged per epoch, published on commit)", console
/// and Kafka "at-least-once (...)"; without: "per batch, no checkpoints: ..." saying what a run
/// after a crash writes (at-least-once from "earliest", at-most-once from "latest").
[[nodiscard]] std::string describe_sink(const pipeline_config& cfg, size_t index);

/// The start-up lines: `prefix` + describe_sink(cfg, i) + "\n" for every sink, in `[[sinks]]`
/// order (prefix "eddy: " for `eddy run`, "eddy coordinator: ", "eddy worker NAME: ").
void write_sink_lines(std::ostream& out, const pipeline_config& cfg, std::string_view prefix);

/// Spark-like table per batch ("Batch: N", +---+ framing, aligned columns) to `out`.
/// Values longer than 20 characters are cut to 17 + "..." when cfg.truncate; at most
/// cfg.num_rows rows are shown, then "only showing top N rows".
[[nodiscard]] std::unique_ptr<sink> make_console_sink(const sink_config& cfg, std::ostream& out,
                                                      time_formatter fmt);

/// Files of rows in `cfg.format`: JSON Lines (`.jsonl`, one object per row: row_to_json) or
/// CSV (`.csv`: a header row of the output column names, then one record per row: csv_header,
/// row_to_csv; lines end with "\n"). Every file is complete in itself (a CSV file has its own
/// header). Without checkpoints, one file per non-empty batch:
/// `<path>/part-<batch_id, 8 digits>-<unique>.<ext>`, written as `.<name>.tmp` then renamed,
/// so readers never see a half-written file. Creates the directory.
/// Transactional (with checkpoints): one file per non-empty staged part of an epoch, published
/// with the epoch (epoch_files.hpp): part 0 (the last) as `part-<epoch, 10 digits>.<ext>`,
/// part k >= 1 as `part-<epoch, 10 digits>-<k, 5 digits>.<ext>`, so in name order an epoch's
/// parts 1, 2, ... come before its last part ('-' < '.'), like Spark's maxRecordsPerFile.
/// With `cfg.name_tag` (a cluster worker's "<worker>-g<generation>"), staged names carry it
/// before the extension: `part-<epoch>-<tag>.<ext>`, `part-<epoch>-<k>-<tag>.<ext>`
/// (tagged_file_name); an invalid tag (check_name_tag) makes every stage_epoch fail with the
/// reason. publish_epoch and recover act on every file staged in the directory, whatever its
/// tag: in a cluster only the coordinator publishes, by list (publish_staged_files).
/// With `cfg.partition_by` (a timestamp output column), a batch's or part's rows are split by
/// date_partition_folder of that column into one file per sub-folder, each with the name above
/// (`<path>/dt=2025-11-07/part-<epoch>.csv`; staged as
/// `<path>/_staging/<epoch>/dt=2025-11-07/part-<epoch>.csv`), rows in arrival order within it:
/// names stay deterministic per (epoch, part, tag, sub-folder). A part staged again writes the
/// same files in the folders its rows fall in (recovery discards an incomplete epoch wholesale).
[[nodiscard]] std::unique_ptr<sink> make_file_sink(const sink_config& cfg, time_formatter fmt);

/// "dt=YYYY-MM-DD": the date of `t` in `fmt`'s zone (the date of the ISO text the sinks write
/// for it); null -> "dt=__HIVE_DEFAULT_PARTITION__" (Hive's and Spark's name for it).
[[nodiscard]] std::string date_partition_folder(std::optional<timestamp> t,
                                                const time_formatter& fmt);

/// Appends `s` as one CSV field (RFC 4180): quoted when it holds ',', '"', CR or LF, or is empty
/// (so that "" differs from null, which is an empty unquoted field); quotes doubled; ill-formed
/// UTF-8 bytes become U+FFFD.
void append_csv_string(std::string& out, std::string_view s);

/// The CSV header record (no line end): the column names, as append_csv_string writes them.
[[nodiscard]] std::string csv_header(const output_schema& schema);

/// One row as a CSV record (no line end), one field per column: null -> empty field, strings
/// via append_csv_string, timestamps as ISO-8601 text in `fmt`'s zone and doubles in shortest
/// round-trip form (both as row_to_json writes them, without quotes; NaN and infinities ->
/// empty), ints as digits, bools as true/false.
[[nodiscard]] std::string row_to_csv(const output_schema& schema, const row& r,
                                     const time_formatter& fmt);

/// One row as a JSON object text (no newline): {"name": value, ...}; null -> null,
/// timestamps -> ISO-8601 string via `fmt`, doubles in shortest round-trip form.
/// Appends `rows` as JSON Lines: each line what row_to_json writes, then '\n' (the keys are
/// escaped once for all rows). The form sinks stage rows in.
void append_json_lines(std::string& out, const output_schema& schema, const std::vector<row>& rows,
                       const time_formatter& fmt);

[[nodiscard]] std::string row_to_json(const output_schema& schema, const row& r,
                                      const time_formatter& fmt);

/// Appends `s` as a JSON string literal (quotes included) to `out`: '"', '\\' and control
/// characters are escaped; ill-formed UTF-8 bytes become U+FFFD so the output always parses.
void append_json_string(std::string& out, std::string_view s);

/// Appends `v` in shortest round-trip form, always with a '.' or exponent ("1138.0", "45.75",
/// "1e+20"), so readers see a double; NaN and infinities become null.
void append_json_double(std::string& out, double v);

/// "<pid>-<n>": unique among the files this process names, and distinct from other processes'.
[[nodiscard]] std::string unique_file_suffix();

/// Writes `content` to `<dir>/<name>` so that readers never see a partial file: creates `dir`
/// (and parents), writes `<dir>/.<name>.tmp`, then renames it. "" on success, else a message
/// naming the path; the temporary file is removed on failure.
/// With `sync`, the file is fsynced before the rename and the directory after it (durable).
[[nodiscard]] std::string write_file_atomically(const std::string& dir, const std::string& name,
                                                std::string_view content, bool sync = false);

}  // namespace eddy
