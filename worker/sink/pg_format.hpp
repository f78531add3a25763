// pg_format.hpp — the PostgreSQL sink's pure logic: SQL text, type mapping, COPY encoding,
// connection parameters and password handling. No libpq, no CAF, no librdkafka: the sink that
// talks to the server is worker/postgres/pg_sink.cpp.
//
// Identifiers are always double-quoted (quote_ident), so names are used exactly as written in
// the pipeline file (a mixed-case name stays mixed case). COPY data is PostgreSQL's binary format
// (below), or its text format for rows whose values do not all have their columns' types:
// tab-separated columns, "\N" for NULL, backslash escapes for '\\', newline, CR and tab; NUL
// characters, which PostgreSQL text cannot hold, are dropped. Errors are returned as messages
// ("" = ok); nothing throws.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/pipeline_config.hpp"
#include "model/row.hpp"
#include "model/time_format.hpp"
#include "worker/sink/sink.hpp"

namespace eddy::pg {

/// Column type created for a field type: timestamp -> timestamptz, double -> double precision,
/// int -> bigint, bool -> boolean, string -> text.
[[nodiscard]] std::string_view sql_type(field_type t);
/// The same type as PostgreSQL's format_type() prints it (what an existing table is checked
/// against): "timestamp with time zone", "double precision", "bigint", "boolean", "text".
[[nodiscard]] std::string_view catalog_type(field_type t);

/// `"name"` with embedded '"' doubled.
[[nodiscard]] std::string quote_ident(std::string_view name);
/// `'text'` with embedded '\'' doubled (standard_conforming_strings on, the default since 9.1).
[[nodiscard]] std::string quote_literal(std::string_view text);

/// A table name from the pipeline file: "name" or "schema.name" (already validated by the
/// config loader); schema "" = the connection's search_path.
struct table_name {
  std::string schema;
  std::string name;
  /// `"schema"."name"` or `"name"`.
  [[nodiscard]] std::string quoted() const;
  /// As written: "schema.name" or "name" (for messages).
  [[nodiscard]] std::string display() const;
};
[[nodiscard]] table_name parse_table_name(std::string_view text);

/// The progress table of a target: `eddy_sink_progress` in the target's schema.
[[nodiscard]] table_name progress_table_of(const table_name& target);

/// CREATE TABLE IF NOT EXISTS for the output schema. With `key` (upsert): PRIMARY KEY (key) when
/// `key_never_null`, else UNIQUE NULLS NOT DISTINCT (key) (PostgreSQL 15+), since a group key
/// may be NULL and a primary key column may not.
[[nodiscard]] std::string create_table_sql(const table_name& t, const output_schema& schema,
                                           const std::vector<std::string>& key,
                                           bool key_never_null);

/// CREATE TABLE IF NOT EXISTS for the progress table: one row per delivered staged file,
/// (pipeline, target, unit) its primary key; unit = the staged file's name.
[[nodiscard]] std::string create_progress_sql(const table_name& progress);

/// One column of an existing table, as the catalog says (format_type()).
struct column_info {
  std::string name;
  std::string type;
};

/// "" when `existing` has every column of `schema` with its catalog_type; else one message
/// naming the table and each missing or mismatched column with the type expected (and the type
/// found). Extra columns are fine (they need a default or to be nullable; the server says so).
[[nodiscard]] std::string check_columns(const table_name& t, const output_schema& schema,
                                        const std::vector<column_info>& existing);

/// "" when one of `unique_keys` (the column sets of the table's primary key and unique
/// indexes) is exactly the set `key`; else why upsert cannot merge into the table.
[[nodiscard]] std::string check_unique_key(
    const table_name& t, const std::vector<std::string>& key,
    const std::vector<std::vector<std::string>>& unique_keys);

/// True when none of `key`'s columns can be NULL: window bounds, and fields declared
/// `required = true`.
[[nodiscard]] bool key_never_null(const pipeline_config& cfg, const std::vector<std::string>& key);

/// The session's staging table for upsert: `pg_temp.<stage>` with a serial `eddy_ord` first (the
/// rows' order, so that the last row per key wins) and the schema's columns; emptied at commit.
[[nodiscard]] std::string create_stage_sql(std::string_view stage, const output_schema& schema);

/// `COPY <table> (<columns>) FROM STDIN`, with ` WITH (FORMAT binary)` when `binary`.
[[nodiscard]] std::string copy_sql(std::string_view quoted_table, const output_schema& schema,
                                   bool binary = false);

// ---- COPY binary format (what staged parts hold since 2026-12-03: the server parses no text) --
// A file: the 19-byte header ("PGCOPY\n\377\r\n\0", flags 0, extension length 0), one tuple per
// row (int16 column count, then per column int32 length and the value, -1 for NULL), the int16
// trailer -1; integers big-endian. Values: bigint 8 bytes, double precision the IEEE 754 bits,
// boolean 1 byte, timestamptz microseconds since 2000-01-01 UTC, text its UTF-8 bytes (NUL
// characters dropped, as in text COPY). NaN and infinities are NULL, as in append_copy_row.

/// Appends the header.
void append_copy_binary_header(std::string& out);
/// Appends one row as a tuple of `schema`'s columns. False (and `out` unchanged) when a value
/// does not have its column's type (an int is taken for a double column): the caller writes
/// COPY text instead.
[[nodiscard]] bool append_copy_binary_row(std::string& out, const row& r,
                                          const output_schema& schema);
/// Appends the trailer.
void append_copy_binary_trailer(std::string& out);
/// Checks a whole binary COPY file of `columns` columns (header, every tuple's lengths, the
/// trailer last) and counts its tuples into `*rows`. "" or what is wrong.
[[nodiscard]] std::string check_copy_binary(std::string_view data, std::size_t columns,
                                            std::size_t* rows);

/// INSERT INTO target SELECT DISTINCT ON (key) ... FROM stage ORDER BY key, eddy_ord DESC
/// ON CONFLICT (key) DO UPDATE SET <other columns> = EXCLUDED.<column> (DO NOTHING when every
/// column is a key column): the last row per key wins, within the batch and over the table.
[[nodiscard]] std::string merge_sql(const table_name& target, std::string_view stage,
                                    const output_schema& schema,
                                    const std::vector<std::string>& key);

/// Appends `s` escaped for COPY's text format (no tab or newline of its own).
void append_copy_text(std::string& out, std::string_view s);

/// Appends one row as a COPY text line (newline included): NULL -> \N, bool -> t/f, doubles
/// in shortest round-trip form (NaN and infinities -> \N, as the JSON Lines file sink writes
/// them), timestamps as ISO-8601 with offset via `fmt`.
void append_copy_row(std::string& out, const row& r, std::size_t columns,
                     const time_formatter& fmt);

/// Converts staged JSON Lines (sink::row_to_json objects of scalars) to COPY text lines in
/// `schema`'s column order; a missing key is NULL, an unknown key is ignored. Numbers are passed
/// on as written (the server parses them, correctly rounded; Boost.JSON 1.81 is not), strings
/// unescaped. Adds the number of rows to `*rows`. "" or an error naming the line.
[[nodiscard]] std::string jsonl_to_copy(std::string_view jsonl, const output_schema& schema,
                                        std::string& out, std::size_t* rows);

/// The DSN with any password replaced by "***" (keyword=value `password=...`, and URI
/// `user:secret@` or `?password=...`): safe to print.
[[nodiscard]] std::string mask_dsn(std::string_view dsn);
/// True when the DSN carries a password (which the pipeline file must not).
[[nodiscard]] bool dsn_has_password(std::string_view dsn);

/// The password the sink connects with: the environment variable `cfg.password_env`, or the
/// first line of `cfg.password_file`; "" when neither is set (libpq's PGPASSWORD or ~/.pgpass
/// may still supply one). Sets `*error` when the variable is unset or the file unreadable or
/// empty (naming the variable or file, never the password).
[[nodiscard]] std::string read_password(const sink_config& cfg, std::string* error);

/// libpq connection keywords and values, in order (later ones override earlier ones; the `dsn`
/// goes as the first "dbname", to be expanded): connect_timeout=10 and application_name=eddy
/// unless the DSN says otherwise, the DSN, host, port, dbname, user, the password when not
/// empty, client_encoding=UTF8.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> connection_params(
    const sink_config& cfg, const std::string& password);

/// Where the sink connects, for messages, without any password: the masked DSN and/or
/// host/port/dbname/user as given ("PG* environment defaults" when nothing is).
[[nodiscard]] std::string describe_target(const sink_config& cfg);

/// A configuration error of the sink that the loader cannot see: "" or the message (a DSN that
/// holds a password).
[[nodiscard]] std::string check_sink_config(const sink_config& cfg);

}  // namespace eddy::pg
