// pg_sink.cpp — the PostgreSQL sink over libpq (see pg_sink.hpp).
#include "worker/postgres/pg_sink.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "state/file_io.hpp"
#include "worker/checkpoint/crash_point.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/pg_format.hpp"
#include "worker/window/windowing.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

/// Rows of one COPY message sent to the server at a time.
constexpr size_t copy_chunk_bytes = 1 << 20;

struct conn_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using conn_ptr = std::unique_ptr<PGconn, conn_deleter>;
using result_ptr = std::unique_ptr<PGresult, result_deleter>;

/// libpq's message without its trailing newline(s), on one line.
std::string one_line(const char* text) {
  std::string s = text ? text : "";
  for (char& c : s)
    if (c == '\n') c = ' ';
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n')) s.pop_back();
  return s;
}

/// What an attempt came to: done, the connection was lost (retry), or an SQL error (fail).
struct outcome {
  enum kind_t { ok, lost, failed } kind = ok;
  std::string message;
  bool skipped = false;  ///< delivered already (its progress row exists)
};

/// Staged parts are what the server takes as it is, so publishing streams the file and converts
/// nothing: binary COPY (pg::append_copy_binary_row), which the server loads without parsing
/// text (about twice as fast as text COPY here, docs/benchmarks.md §8), or COPY text for a part
/// with a value of another type than its column. Both are named `.copy` (the names are the
/// progress rows' keys, the same as before binary parts): a binary part starts with the PGCOPY
/// signature, which holds a NUL byte, and COPY text never does (NULs are dropped). Parts staged
/// as JSON Lines by eddy before 2026-12-03 are converted when they are delivered.
constexpr const char* staged_extension = ".copy";

bool is_copy_binary(std::string_view data) {
  return data.starts_with(std::string_view("PGCOPY\n\377\r\n\0", 11));
}

/// The rows as one binary COPY file, or as COPY text when a value does not fit its column's
/// type. Returns whether `out` is binary.
bool encode_rows(const std::vector<row>& rows, const output_schema& schema,
                 const time_formatter& fmt, std::string& out) {
  out.clear();
  // EDDY_PG_TEXT_COPY=1 (benchmarks only): COPY text, as staged parts were before binary COPY.
  static const bool text_only = [] {
    const char* v = std::getenv("EDDY_PG_TEXT_COPY");
    return v && std::string_view(v) == "1";
  }();
  bool binary = !text_only;
  if (binary) {
    out.reserve(rows.size() * (2 + 12 * schema.names.size()) + 32);
    pg::append_copy_binary_header(out);
  }
  for (size_t i = 0; binary && i < rows.size(); ++i)
    if (!pg::append_copy_binary_row(out, rows[i], schema)) binary = false;
  if (binary) {
    pg::append_copy_binary_trailer(out);
    return true;
  }
  out.clear();
  for (const row& r : rows) pg::append_copy_row(out, r, schema.names.size(), fmt);
  return false;
}

std::string epoch_part_name(uint64_t epoch, int part, const std::string& tag) {
  std::string name = epoch_file_stem("part", epoch);
  if (part != 0) {
    std::array<char, 16> k{};
    std::snprintf(k.data(), k.size(), "-%05d", part);
    name += k.data();
  }
  return tagged_file_name(name + staged_extension, tag);
}

std::string format_seconds(clock_type::duration d) {
  std::ostringstream s;
  s.precision(1);
  s << std::fixed << std::chrono::duration<double>(d).count() << " s";
  return s.str();
}

/// Connections of one sink that are retrying (its own and its publishing helper's): a lost
/// server is logged once when the first connection notices, "back" once the last one is back.
/// The log lines are written under the mutex (the helper delivers on a thread of its own).
struct outage_state {
  std::mutex mu;
  int lost = 0;
};

class pg_sink final : public sink {
 public:
  pg_sink(const pipeline_config& cfg, std::size_t index, output_schema schema, time_formatter fmt,
          std::ostream& log, std::shared_ptr<outage_state> outage = nullptr)
      : cfg_(cfg),
        index_(index),
        outage_(outage ? std::move(outage) : std::make_shared<outage_state>()),
        sc_(cfg.sinks[index]),
        schema_(std::move(schema)),
        fmt_(std::move(fmt)),
        log_(log),
        target_(pg::parse_table_name(sc_.table)),
        progress_(pg::progress_table_of(target_)),
        staging_(sink_staging_dir(cfg, index)),
        where_(pg::describe_target(sc_)),
        sink_name_("postgres sink (table " + target_.display() + ")"),
        tag_error_(sc_.name_tag.empty() ? std::string() : check_name_tag(sc_.name_tag)) {}

  /// Reads the password and connects (once, no retry), then prepares the table. "" or the
  /// reason.
  std::string start(bool announce) {
    std::string err;
    if (err = pg::check_sink_config(sc_); !err.empty()) return err;
    if (err = load_password(); !err.empty()) return err;
    if (err = connect(); !err.empty()) return err;
    if (err = prepare(); !err.empty()) return err;
    if (!announce) return {};
    log_ << "eddy: " << sink_name_ << ": writing to " << where_ << " ("
         << (sc_.upsert ? "upsert on " + key_list() : std::string("append")) << "), " << guarantee()
         << "\n";
    return {};
  }

  std::string write_batch(int64_t /*batch_id*/, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (rows.empty()) return {};
    std::string copy;
    const bool binary = encode_rows(rows, schema, fmt_, copy);
    auto o = with_retry([&] { return deliver(copy, binary, nullptr, 0, rows.size()); });
    return o.kind == outcome::ok ? std::string() : sink_name_ + ": " + o.message;
  }

  bool transactional() const override { return !staging_.empty(); }

  std::string stage_epoch(uint64_t epoch, int part, const output_schema& schema,
                          const std::vector<row>& rows) override {
    if (!tag_error_.empty()) return sink_name_ + ": " + tag_error_;
    if (rows.empty()) return {};
    std::string data;
    encode_rows(rows, schema, fmt_, data);  // binary or text: the content says (is_copy_binary)
    auto err =
        stage_epoch_file(staging_, epoch, epoch_part_name(epoch, part, sc_.name_tag), data, sync_);
    return err.empty() ? err : sink_name_ + ": " + err;
  }

  std::string publish_epoch(uint64_t epoch) override {
    std::string err;
    auto paths = staged_epoch_paths(staging_, epoch, "", &err);
    if (!err.empty()) return sink_name_ + ": " + err;
    return publish_staged(paths, sync_);
  }

  std::string recover(uint64_t last_complete, epoch_recovery* out) override {
    if (last_complete == 0) {
      // A new pipeline (or one whose checkpoints were reset): progress rows of an earlier life
      // would make it skip files of the same names, i.e. lose output. Refuse instead.
      auto o = with_retry([&] { return count_progress(); });
      if (o.kind != outcome::ok) return sink_name_ + ": " + o.message;
      if (progress_rows_ > 0)
        return sink_name_ + ": " + progress_.display() + " records " +
               std::to_string(progress_rows_) + " file(s) delivered by pipeline '" + cfg_.name +
               "' to " + target_.display() +
               " before, but its checkpoints are new (--reset, or a new checkpoint.dir): its "
               "output would be skipped. To start over, delete them: DELETE FROM " +
               progress_.display() + " WHERE pipeline = " + pg::quote_literal(cfg_.name) +
               " AND target = " + pg::quote_literal(target_.display()) +
               " (and the table's rows if they should go too)";
    }
    std::vector<uint64_t> epochs;
    std::error_code ec;
    const fs::path root = fs::path(staging_) / "_staging";
    if (fs::exists(root, ec)) {
      for (const auto& e : fs::directory_iterator(root, ec)) {
        const std::string n = e.path().filename().string();
        if (n.size() == 20 && n.find_first_not_of("0123456789") == std::string::npos)
          epochs.push_back(std::stoull(n));
      }
      if (ec) return sink_name_ + ": cannot list \"" + root.string() + "\": " + ec.message();
    }
    std::sort(epochs.begin(), epochs.end());
    for (uint64_t e : epochs) {
      if (e > last_complete) break;
      if (auto err = publish_epoch(e); !err.empty()) return err;
      if (out) out->published.push_back(e);
    }
    auto err = discard_staged_epochs(staging_, last_complete, out ? &out->discarded : nullptr);
    return err.empty() ? err : sink_name_ + ": " + err;
  }

  void set_sync(bool sync) override { sync_ = sync; }

  std::string staging_dir() const override { return staging_; }

  std::string publish_staged(const std::vector<std::string>& staged_paths, bool sync) override {
    (void)sync;  // deleting a delivered copy needs no fsync: its progress row says "delivered"
    // Append: each file is one transaction with its own progress row, and the table's row order
    // means nothing, so two connections deliver them at once (the server's COPY is the slow
    // part). The first file goes alone: it connects and prepares the table. Upsert keeps file
    // order (a later row of a key must win). EDDY_PG_ONE_CONNECTION=1: benchmarks' reference.
    static const bool one_connection = [] {
      const char* v = std::getenv("EDDY_PG_ONE_CONNECTION");
      return v && std::string_view(v) == "1";
    }();
    if (sc_.upsert || staged_paths.size() < 3 || one_connection) {
      for (const std::string& p : staged_paths) {
        if (auto err = deliver_staged(p); !err.empty()) return sink_name_ + ": " + err;
      }
      return {};
    }
    if (auto err = deliver_staged(staged_paths[0]); !err.empty()) return sink_name_ + ": " + err;
    if (!helper_) helper_ = std::make_unique<pg_sink>(cfg_, index_, schema_, fmt_, log_, outage_);
    std::string helper_err;
    std::thread other([&] {
      for (size_t i = 2; i < staged_paths.size() && helper_err.empty(); i += 2)
        helper_err = helper_->deliver_staged(staged_paths[i]);
    });
    std::string err;
    for (size_t i = 1; i < staged_paths.size() && err.empty(); i += 2)
      err = deliver_staged(staged_paths[i]);
    other.join();
    if (err.empty()) err = helper_err;
    return err.empty() ? err : sink_name_ + ": " + err;
  }

 private:
  std::string guarantee() const {
    return transactional()
               ? "exactly-once (each staged part of an epoch in one transaction with its row in " +
                     progress_.display() + ")"
               : "at-least-once (no [checkpoint]: each batch in one transaction; a batch whose "
                 "commit was cut off by a lost connection is written again)";
  }

  std::string key_list() const {
    std::string s = "(";
    for (size_t i = 0; i < sc_.key.size(); ++i) s += (i ? ", " : "") + sc_.key[i];
    return s + ")";
  }

  std::string load_password() {
    if (password_loaded_) return {};
    std::string err;
    password_ = pg::read_password(sc_, &err);
    if (!err.empty()) return err;
    password_loaded_ = true;
    return {};
  }

  /// One connection attempt. "" or libpq's reason (with the target, no password).
  std::string connect() {
    conn_.reset();
    stage_ready_ = false;
    const auto params = pg::connection_params(sc_, password_);
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : params) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn_ptr c(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
    if (!c) return "cannot connect to " + where_ + ": out of memory";
    if (PQstatus(c.get()) != CONNECTION_OK)
      return "cannot connect to " + where_ + ": " + one_line(PQerrorMessage(c.get()));
    // NOTICEs ("relation ... already exists, skipping") are not for the user's terminal.
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    conn_ = std::move(c);
    return {};
  }

  bool connection_lost(const PGresult* r) const {
    if (!conn_ || PQstatus(conn_.get()) == CONNECTION_BAD) return true;
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (state == nullptr) return false;
    const std::string_view s(state);
    // connection exceptions, admin/crash shutdown, cannot connect now, serialization/deadlock
    return s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03" || s == "40001" ||
           s == "40P01";
  }

  /// Runs `sql`; outcome::ok when its status is `want`.
  outcome exec(const std::string& sql, ExecStatusType want = PGRES_COMMAND_OK,
               result_ptr* keep = nullptr) {
    result_ptr r(PQexec(conn_.get(), sql.c_str()));
    return check(std::move(r), want, keep);
  }

  outcome exec_params(const std::string& sql, const std::vector<std::string>& params,
                      ExecStatusType want, result_ptr* keep = nullptr) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    result_ptr r(PQexecParams(conn_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0));
    return check(std::move(r), want, keep);
  }

  outcome check(result_ptr r, ExecStatusType want, result_ptr* keep) {
    if (r && PQresultStatus(r.get()) == want) {
      if (keep) *keep = std::move(r);
      return {};
    }
    outcome o;
    o.kind = connection_lost(r.get()) ? outcome::lost : outcome::failed;
    o.message = one_line(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_.get()));
    if (o.message.empty()) o.message = one_line(PQerrorMessage(conn_.get()));
    return o;
  }

  /// Runs `attempt` until it succeeds or fails for good; a lost connection is reconnected with
  /// backoff for up to reconnect_timeout (one log line when lost, one when back).
  template <class Attempt>
  outcome with_retry(Attempt attempt) {
    if (auto err = load_password(); !err.empty()) return {outcome::failed, err};
    const auto started = clock_type::now();
    auto delay = std::chrono::milliseconds(100);
    bool announced = false;
    int tries = 0;
    outcome last;
    // This attempt's outage is over: "back" is logged when it was the sink's last one.
    auto end_outage = [&](bool back) {
      if (!announced) return;
      std::lock_guard<std::mutex> lock(outage_->mu);
      if (--outage_->lost == 0 && back)
        log_ << "eddy: " << sink_name_ << ": connection to " << where_ << " back after "
             << format_seconds(clock_type::now() - started) << " (" << tries
             << " reconnect(s)); continuing\n";
    };
    while (true) {
      std::string err;
      if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) err = connect();
      if (err.empty()) err = prepare_or_lost(&last);
      if (err.empty()) {
        last = attempt();
        if (last.kind == outcome::ok) {
          end_outage(true);
          return last;
        }
        if (last.kind == outcome::failed) {
          if (PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) (void)exec("ROLLBACK");
          end_outage(false);
          return last;
        }
        err = last.message;
      } else if (last.kind == outcome::failed) {
        end_outage(false);
        return last;  // preparing the table failed for good
      }
      // Lost (or never made) the connection.
      conn_.reset();
      if (!announced) {
        announced = true;
        std::lock_guard<std::mutex> lock(outage_->mu);
        if (outage_->lost++ == 0) {
          log_ << "eddy: " << sink_name_ << ": lost the connection to " << where_ << " (" << err
               << "); retrying for up to " << format_duration(sc_.reconnect_timeout_us) << "\n";
          log_.flush();
        }
      }
      if (clock_type::now() - started >= std::chrono::microseconds(sc_.reconnect_timeout_us)) {
        end_outage(false);
        return {outcome::failed, "no connection to " + where_ + " for " +
                                     format_seconds(clock_type::now() - started) +
                                     " (reconnect_timeout): " + err};
      }
      std::this_thread::sleep_for(delay);
      delay = std::min(delay * 2, std::chrono::milliseconds(5000));
      ++tries;
      last = {};
    }
  }

  /// prepare() inside the retry loop: "" when ready; a lost connection returns its message,
  /// a failure for good sets `*last` failed.
  std::string prepare_or_lost(outcome* last) {
    auto o = prepare_outcome();
    if (o.kind == outcome::ok) return {};
    if (o.kind == outcome::failed) *last = o;
    return o.message.empty() ? "connection lost" : o.message;
  }

  std::string prepare() {
    auto o = prepare_outcome();
    return o.kind == outcome::ok ? std::string() : o.message;
  }

  /// Once per sink: creates or checks the table (and the progress table); once per connection:
  /// the temporary staging table of upsert.
  outcome prepare_outcome() {
    if (!table_ready_) {
      result_ptr r;
      auto o = exec_params("SELECT to_regclass($1) IS NOT NULL", {target_.quoted()},
                           PGRES_TUPLES_OK, &r);
      if (o.kind != outcome::ok) return o;
      const bool exists = std::string(PQgetvalue(r.get(), 0, 0)) == "t";
      if (!exists) {
        const auto sql = pg::create_table_sql(target_, schema_,
                                              sc_.upsert ? sc_.key : std::vector<std::string>{},
                                              pg::key_never_null(cfg_, sc_.key));
        if (o = create_if_absent(sql, target_); o.kind != outcome::ok) return o;
        log_ << "eddy: " << sink_name_ << ": created table " << target_.display() << "\n";
      }
      if (o = check_table(); o.kind != outcome::ok) return o;
      if (transactional()) {
        if (o = create_if_absent(pg::create_progress_sql(progress_), progress_);
            o.kind != outcome::ok)
          return o;
      }
      table_ready_ = true;
    }
    if (sc_.upsert && !stage_ready_) {
      if (auto o = exec(pg::create_stage_sql(stage_name, schema_)); o.kind != outcome::ok) return o;
      stage_ready_ = true;
    }
    return {};
  }

  /// Runs `sql` (CREATE TABLE IF NOT EXISTS `t`). Two sinks starting at once (cluster workers,
  /// the coordinator's publisher) race inside PostgreSQL: the loser's IF NOT EXISTS fails with a
  /// unique violation on the catalog. The table exists then, which is all that was asked.
  outcome create_if_absent(const std::string& sql, const pg::table_name& t) {
    outcome o = exec(sql);
    if (o.kind == outcome::ok) return o;
    if (o.kind != outcome::lost) {
      result_ptr r;
      if (exec_params("SELECT to_regclass($1) IS NOT NULL", {t.quoted()}, PGRES_TUPLES_OK, &r)
                  .kind == outcome::ok &&
          std::string(PQgetvalue(r.get(), 0, 0)) == "t")
        return {};
    }
    o.message = "cannot create table " + t.display() + ": " + o.message;
    return o;
  }

  outcome check_table() {
    result_ptr r;
    auto o = exec_params(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        {target_.quoted()}, PGRES_TUPLES_OK, &r);
    if (o.kind != outcome::ok) return o;
    std::vector<pg::column_info> cols;
    for (int i = 0; i < PQntuples(r.get()); ++i)
      cols.push_back({PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1)});
    if (auto err = pg::check_columns(target_, schema_, cols); !err.empty())
      return {outcome::failed, err};
    if (!sc_.upsert) return {};
    o = exec_params(
        "SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL "
        "GROUP BY i.indexrelid",
        {target_.quoted()}, PGRES_TUPLES_OK, &r);
    if (o.kind != outcome::ok) return o;
    std::vector<std::vector<std::string>> uniques;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      std::vector<std::string> names;
      std::stringstream in(PQgetvalue(r.get(), i, 0));
      for (std::string n; std::getline(in, n, ',');) names.push_back(n);
      uniques.push_back(std::move(names));
    }
    if (auto err = pg::check_unique_key(target_, sc_.key, uniques); !err.empty())
      return {outcome::failed, err};
    return {};
  }

  outcome count_progress() {
    result_ptr r;
    auto o = exec_params(
        "SELECT count(*) FROM " + progress_.quoted() + " WHERE pipeline = $1 AND target = $2",
        {cfg_.name, target_.display()}, PGRES_TUPLES_OK, &r);
    if (o.kind == outcome::ok) progress_rows_ = std::stoll(PQgetvalue(r.get(), 0, 0));
    return o;
  }

  /// Is `unit` recorded as delivered?
  outcome delivered(const std::string& unit, bool* yes) {
    result_ptr r;
    auto o = exec_params("SELECT 1 FROM " + progress_.quoted() +
                             " WHERE pipeline = $1 AND target = $2 AND unit = $3",
                         {cfg_.name, target_.display(), unit}, PGRES_TUPLES_OK, &r);
    if (o.kind == outcome::ok) *yes = PQntuples(r.get()) > 0;
    return o;
  }

  /// One transaction: the progress row of `unit` (when given; its existence = skip), then the
  /// rows by COPY (and the merge for upsert).
  outcome deliver(const std::string& copy, bool binary, const std::string* unit, uint64_t epoch,
                  size_t rows) {
    if (auto o = exec("BEGIN"); o.kind != outcome::ok) return o;
    if (unit != nullptr) {
      result_ptr r;
      auto o = exec_params(
          "INSERT INTO " + progress_.quoted() +
              " (pipeline, target, unit, epoch, row_count) VALUES "
              "($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
          {cfg_.name, target_.display(), *unit, std::to_string(epoch), std::to_string(rows)},
          PGRES_COMMAND_OK, &r);
      if (o.kind != outcome::ok) return o;
      if (std::string(PQcmdTuples(r.get())) == "0") {
        if (o = exec("ROLLBACK"); o.kind != outcome::ok) return o;
        o.skipped = true;
        return o;
      }
    }
    const std::string into = sc_.upsert ? pg::quote_ident(stage_name) : target_.quoted();
    if (auto o = copy_in(pg::copy_sql(into, schema_, binary), copy); o.kind != outcome::ok)
      return o;
    if (sc_.upsert) {
      if (auto o = exec(pg::merge_sql(target_, stage_name, schema_, sc_.key));
          o.kind != outcome::ok)
        return o;
    }
    return exec("COMMIT");
  }

  outcome copy_in(const std::string& sql, const std::string& data) {
    if (auto o = exec(sql, PGRES_COPY_IN); o.kind != outcome::ok) return o;
    PGconn* c = conn_.get();
    for (size_t off = 0; off < data.size(); off += copy_chunk_bytes) {
      const size_t n = std::min(copy_chunk_bytes, data.size() - off);
      if (PQputCopyData(c, data.data() + off, static_cast<int>(n)) != 1) break;
    }
    PQputCopyEnd(c, nullptr);
    outcome o;
    while (PGresult* raw = PQgetResult(c)) {
      result_ptr r(raw);
      if (o.kind == outcome::ok && PQresultStatus(raw) != PGRES_COMMAND_OK)
        o = check(std::move(r), PGRES_COMMAND_OK, nullptr);
    }
    if (o.kind == outcome::ok && PQstatus(c) == CONNECTION_BAD)
      o = {outcome::lost, one_line(PQerrorMessage(c))};
    return o;
  }

  /// Delivers one staged file `<staging>/_staging/<epoch>/<name>` (skipped when its progress
  /// row exists), then deletes it.
  std::string deliver_staged(const std::string& p) {
    const fs::path staged(p);
    const std::string name = staged.filename().string();
    const std::string edir = staged.parent_path().filename().string();
    if (name.empty() || edir.size() != 20 ||
        edir.find_first_not_of("0123456789") != std::string::npos ||
        staged.parent_path().parent_path().filename() != "_staging")
      return "cannot deliver \"" + p + "\": not a staged file (<dir>/_staging/<epoch>/<name>)";
    const uint64_t epoch = std::stoull(edir);
    std::error_code ec;
    if (!fs::exists(staged, ec)) {
      bool yes = false;
      auto o = with_retry([&] { return delivered(name, &yes); });
      if (o.kind != outcome::ok) return o.message;
      if (yes) return {};
      return "cannot deliver \"" + p + "\": it is not staged, and " + progress_.display() +
             " has no row for it";
    }
    std::string rerr;
    auto content = file_io::read_small_file(staged, &rerr);
    if (!content) return "cannot read \"" + p + "\": " + rerr;
    std::string copy = std::move(*content);
    size_t rows = 0;
    const bool binary = !name.ends_with(".jsonl") && is_copy_binary(copy);
    if (binary) {
      if (auto err = pg::check_copy_binary(copy, schema_.names.size(), &rows); !err.empty())
        return "\"" + p + "\": " + err;
    } else if (name.ends_with(".jsonl")) {  // staged by an earlier version: converted here
      std::string converted;
      if (auto err = pg::jsonl_to_copy(copy, schema_, converted, &rows); !err.empty())
        return "\"" + p + "\": " + err;
      copy = std::move(converted);
    } else {
      rows = static_cast<size_t>(std::count(copy.begin(), copy.end(), '\n'));
    }
    auto o = with_retry([&] { return deliver(copy, binary, &name, epoch, rows); });
    if (o.kind != outcome::ok) return "delivering \"" + p + "\": " + o.message;
    crash_point("pg_delivered");  // committed, the staged copy not yet removed
    fs::remove(staged, ec);
    if (ec) return "cannot remove \"" + p + "\": " + ec.message();
    fs::remove(staged.parent_path(), ec);                // only when empty
    fs::remove(staged.parent_path().parent_path(), ec);  // _staging, only when empty
    return {};
  }

  static constexpr const char* stage_name = "eddy_stage";

  const pipeline_config& cfg_;
  std::size_t index_;
  std::shared_ptr<outage_state> outage_;
  /// Append mode: a second connection that delivers every other staged file of a publish
  /// (publish_staged), made on first use and kept.
  std::unique_ptr<pg_sink> helper_;
  const sink_config& sc_;
  output_schema schema_;
  time_formatter fmt_;
  std::ostream& log_;
  pg::table_name target_, progress_;
  std::string staging_;
  std::string where_;
  std::string sink_name_;
  std::string tag_error_;
  std::string password_;
  bool password_loaded_ = false;
  bool sync_ = true;
  conn_ptr conn_;
  bool table_ready_ = false;
  bool stage_ready_ = false;
  long long progress_rows_ = 0;
};

}  // namespace

std::unique_ptr<sink> make_postgres_sink(const pipeline_config& cfg, std::size_t index,
                                         time_formatter fmt, std::ostream& log, pg_start start,
                                         std::string* error) {
  if (index >= cfg.sinks.size() || cfg.sinks[index].kind != sink_kind::postgres) {
    *error = "sinks[" + std::to_string(index) + "] is not a postgres sink";
    return nullptr;
  }
  auto probe = record_processor::create(cfg, error);
  if (!probe) return nullptr;
  output_schema schema = probe->schema();
  if (!cfg.aggregates.empty()) {
    auto plan = aggregation_plan::from_config(cfg, error);
    if (!plan) return nullptr;
    schema = plan->schema;
  }
  if (auto err = pg::check_sink_config(cfg.sinks[index]); !err.empty()) {
    *error = "sinks[" + std::to_string(index) + "]." + err;
    return nullptr;
  }
  auto s = std::make_unique<pg_sink>(cfg, index, std::move(schema), std::move(fmt), log);
  if (start != pg_start::lazy) {
    if (auto err = s->start(start == pg_start::announce); !err.empty()) {
      *error = "postgres sink (table " + cfg.sinks[index].table + "): " + err;
      return nullptr;
    }
  }
  return s;
}

}  // namespace eddy
