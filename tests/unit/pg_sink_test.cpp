// pg_sink_test.cpp — the PostgreSQL sink: its pure logic (type mapping, DDL, COPY escaping,
// DSN masking, config errors) without a server, and what needs one (bad DSN and credentials,
// an existing table that does not fit, exactly-once delivery of staged files) against a
// throw-away server (tests/support/pg_server.hpp; skipped when PostgreSQL is not installed).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "model/pipeline_config.hpp"
#include "tests/support/pg_server.hpp"
#include "worker/postgres/pg_sink.hpp"
#include "worker/sink/epoch_files.hpp"
#include "worker/sink/pg_format.hpp"

#include "state/file_io.hpp"

namespace eddy {
namespace {

namespace fs = std::filesystem;

output_schema schema_of(std::vector<std::pair<std::string, field_type>> cols) {
  output_schema s;
  for (auto& [n, t] : cols) {
    s.names.push_back(n);
    s.types.push_back(t);
  }
  return s;
}

const output_schema all_types = schema_of({{"id", field_type::int64},
                                           {"name", field_type::string},
                                           {"amount", field_type::float64},
                                           {"ok", field_type::boolean},
                                           {"at", field_type::timestamp}});

TEST(pg_format, maps_every_field_type_to_a_column_type) {
  EXPECT_EQ(pg::sql_type(field_type::timestamp), "timestamptz");
  EXPECT_EQ(pg::sql_type(field_type::float64), "double precision");
  EXPECT_EQ(pg::sql_type(field_type::int64), "bigint");
  EXPECT_EQ(pg::sql_type(field_type::boolean), "boolean");
  EXPECT_EQ(pg::sql_type(field_type::string), "text");
  EXPECT_EQ(pg::catalog_type(field_type::timestamp), "timestamp with time zone");
  EXPECT_EQ(pg::catalog_type(field_type::int64), "bigint");
}

TEST(pg_format, creates_tables_with_quoted_names_and_the_upsert_key) {
  const auto t = pg::parse_table_name("analytics.Rides");
  EXPECT_EQ(t.schema, "analytics");
  EXPECT_EQ(t.quoted(), "\"analytics\".\"Rides\"");
  EXPECT_EQ(pg::create_table_sql(t, all_types, {}, false),
            "CREATE TABLE IF NOT EXISTS \"analytics\".\"Rides\" (\"id\" bigint, \"name\" text, "
            "\"amount\" double precision, \"ok\" boolean, \"at\" timestamptz)");
  EXPECT_EQ(pg::create_table_sql(pg::parse_table_name("r"), schema_of({{"id", field_type::int64}}),
                                 {"id"}, true),
            "CREATE TABLE IF NOT EXISTS \"r\" (\"id\" bigint, PRIMARY KEY (\"id\"))");
  // A key that may be NULL (a group key not declared required) cannot be a primary key.
  EXPECT_EQ(pg::create_table_sql(pg::parse_table_name("r"), schema_of({{"k", field_type::string}}),
                                 {"k"}, false),
            "CREATE TABLE IF NOT EXISTS \"r\" (\"k\" text, UNIQUE NULLS NOT DISTINCT (\"k\"))");
  EXPECT_EQ(pg::quote_ident("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(pg::quote_literal("it's"), "'it''s'");
  EXPECT_EQ(pg::progress_table_of(t).quoted(), "\"analytics\".\"eddy_sink_progress\"");
}

TEST(pg_format, merges_the_last_row_per_key) {
  const auto s = schema_of({{"window_start", field_type::timestamp},
                            {"kind", field_type::string},
                            {"n", field_type::int64}});
  EXPECT_EQ(pg::merge_sql(pg::parse_table_name("r"), "eddy_stage", s, {"window_start", "kind"}),
            "INSERT INTO \"r\" (\"window_start\", \"kind\", \"n\") SELECT DISTINCT ON "
            "(\"window_start\", \"kind\") \"window_start\", \"kind\", \"n\" FROM \"eddy_stage\" "
            "ORDER BY \"window_start\", \"kind\", eddy_ord DESC ON CONFLICT (\"window_start\", "
            "\"kind\") DO UPDATE SET \"n\" = EXCLUDED.\"n\"");
  EXPECT_TRUE(
      pg::merge_sql(pg::parse_table_name("r"), "st", schema_of({{"k", field_type::int64}}), {"k"})
          .ends_with("DO NOTHING"));
}

TEST(pg_format, escapes_copy_text) {
  std::string out;
  pg::append_copy_text(out, std::string("a\tb\nc\rd\\e\0f", 12));
  EXPECT_EQ(out, "a\\tb\\nc\\rd\\\\ef");
  out.clear();
  pg::append_copy_text(out, "\\N");  // a string that reads like NULL stays a string
  EXPECT_EQ(out, "\\\\N");

  out.clear();
  const time_formatter utc;
  pg::append_copy_row(out, row{int64_t{7}, std::string("x y"), 2.5, true, timestamp{1'500'000}}, 5,
                      utc);
  EXPECT_EQ(out, "7\tx y\t2.5\tt\t1970-01-01T00:00:01.5Z\n");
  out.clear();
  pg::append_copy_row(out, row{std::monostate{}, std::string(), std::nan(""), false}, 5, utc);
  EXPECT_EQ(out, "\\N\t\t\\N\tf\t\\N\n");
}

TEST(pg_format, encodes_binary_copy_as_the_server_reads_it) {
  std::string out;
  pg::append_copy_binary_header(out);
  EXPECT_EQ(out, std::string("PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19));
  const size_t head = out.size();
  ASSERT_TRUE(pg::append_copy_binary_row(
      out, row{int64_t{-2}, std::string("a\0b", 3), 1.0, true, timestamp{946'684'800'000'001}},
      all_types));
  EXPECT_EQ(out.substr(head),
            std::string("\0\5"                                        // 5 columns
                        "\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfe"  // bigint -2
                        "\0\0\0\x02"
                        "ab"                              // the NUL dropped
                        "\0\0\0\x08\x3f\xf0\0\0\0\0\0\0"  // 1.0
                        "\0\0\0\x01\x01"                  // true
                        "\0\0\0\x08\0\0\0\0\0\0\0\x01",   // 2000-01-01 + 1 us
                        2 + 12 + 6 + 12 + 5 + 12));
  const size_t second = out.size();
  // NULL, NaN (NULL, as in COPY text), a short row (the rest NULL).
  ASSERT_TRUE(pg::append_copy_binary_row(out, row{std::monostate{}, std::string(), std::nan("")},
                                         all_types));
  EXPECT_EQ(out.substr(second), std::string("\0\5\xff\xff\xff\xff\0\0\0\0\xff\xff\xff\xff"
                                            "\xff\xff\xff\xff\xff\xff\xff\xff",
                                            2 + 4 + 4 + 4 + 4 + 4));
  // A value of another type than its column: refused, nothing appended.
  const size_t before = out.size();
  EXPECT_FALSE(
      pg::append_copy_binary_row(out, row{int64_t{1}, std::string("x"), int64_t{3}}, all_types));
  EXPECT_EQ(out.size(), before);
  pg::append_copy_binary_trailer(out);
  size_t rows = 0;
  EXPECT_EQ(pg::check_copy_binary(out, 5, &rows), "");
  EXPECT_EQ(rows, 2u);
  // Damage is named, never read past the end.
  EXPECT_NE(pg::check_copy_binary(out, 4, &rows), "");
  for (size_t n = 0; n < out.size(); ++n)
    EXPECT_NE(pg::check_copy_binary(std::string_view(out).substr(0, n), 5, &rows), "") << n;
  EXPECT_NE(pg::check_copy_binary(out + "x", 5, &rows), "");
  EXPECT_EQ(pg::copy_sql("\"r\"", schema_of({{"a", field_type::int64}}), true),
            "COPY \"r\" (\"a\") FROM STDIN WITH (FORMAT binary)");
}

TEST(pg_format, converts_staged_json_lines_to_copy_rows) {
  const time_formatter utc;
  std::string jsonl;
  jsonl +=
      row_to_json(all_types, row{int64_t{1}, std::string("tab\there"), 1138.0, false, timestamp{0}},
                  utc) +
      "\n";
  jsonl += "{\"at\":null,\"id\":2}\n";  // other order, missing keys: NULL
  std::string out;
  size_t rows = 0;
  ASSERT_EQ(pg::jsonl_to_copy(jsonl, all_types, out, &rows), "");
  EXPECT_EQ(rows, 2u);
  EXPECT_EQ(out, "1\ttab\\there\t1138.0\tf\t1970-01-01T00:00:00Z\n2\t\\N\t\\N\t\\N\t\\N\n");
  EXPECT_EQ(pg::jsonl_to_copy("{\"id\":1}\nnot json\n", all_types, out, &rows),
            "line 2: not a JSON object of scalars");
  // Numbers go to the server as written (a parse and print could move them by an ulp), and
  // string escapes are undone (\u00e9 = é, a surrogate pair = one character).
  out.clear();
  ASSERT_EQ(
      pg::jsonl_to_copy("{\"amount\":1677.5714285714287,\"name\":\"\\u00e9\\ud83d\\ude00\\\\\","
                        "\"unknown\":[1]}\n",
                        all_types, out, &rows)
          .substr(0, 6),
      "line 1");  // an array is not a staged value
  out.clear();
  ASSERT_EQ(
      pg::jsonl_to_copy("{\"amount\":1677.5714285714287,\"name\":\"\\u00e9\\ud83d\\ude00\\\\\"}\n",
                        all_types, out, &rows),
      "");
  EXPECT_EQ(out, "\\N\t\u00e9\U0001F600\\\\\t1677.5714285714287\t\\N\t\\N\n");
}

TEST(pg_format, stages_rows_as_row_to_json_writes_them) {
  const time_formatter utc;
  const std::vector<row> rows = {
      row{int64_t{1}, std::string("q\"uote"), 1138.0, true, timestamp{5}},
      row{std::monostate{}, std::string(), std::nan(""), false},
  };
  std::string expected;
  for (const row& r : rows) expected += row_to_json(all_types, r, utc) + "\n";
  std::string out;
  append_json_lines(out, all_types, rows, utc);
  EXPECT_EQ(out, expected);
}

TEST(pg_format, masks_passwords_in_dsns) {
  EXPECT_EQ(pg::mask_dsn("host=db password=hunter2 user=u"), "host=db password=*** user=u");
  EXPECT_EQ(pg::mask_dsn("password = 'a b\\'c' dbname=x"), "password = *** dbname=x");
  EXPECT_EQ(pg::mask_dsn("postgresql://u:hunter2@db:5432/x?password=p2&sslmode=off"),
            "postgresql://u:***@db:5432/x?password=***&sslmode=off");
  EXPECT_EQ(pg::mask_dsn("postgres://u@db/x"), "postgres://u@db/x");
  EXPECT_TRUE(pg::dsn_has_password("postgresql://u:pw@h/d"));
  EXPECT_FALSE(pg::dsn_has_password("host=h dbname=d"));
  sink_config sc;
  sc.dsn = "host=h password=pw";
  EXPECT_NE(pg::check_sink_config(sc).find("never read from the pipeline file"), std::string::npos);
  EXPECT_EQ(pg::describe_target(sc), "\"host=h password=***\"");
}

TEST(pg_format, reads_the_password_from_the_environment_or_a_file) {
  sink_config sc;
  sc.password_env = "EDDY_PG_TEST_UNSET_VARIABLE";
  std::string err;
  (void)pg::read_password(sc, &err);
  EXPECT_EQ(err, "password_env: the environment variable EDDY_PG_TEST_UNSET_VARIABLE is not set");
  ::setenv("EDDY_PG_TEST_PW", "from-env", 1);
  sc.password_env = "EDDY_PG_TEST_PW";
  err.clear();
  EXPECT_EQ(pg::read_password(sc, &err), "from-env");
  EXPECT_EQ(err, "");
  const fs::path f = fs::temp_directory_path() / ("eddy-pw-" + std::to_string(::getpid()));
  std::ofstream(f) << "from-file\r\nsecond line\n";
  sink_config sf;
  sf.password_file = f.string();
  EXPECT_EQ(pg::read_password(sf, &err), "from-file");
  fs::remove(f);
  const auto params = pg::connection_params(sc, "pw");
  EXPECT_EQ(params.front().first, "connect_timeout");
  EXPECT_EQ(params.back(), (std::pair<std::string, std::string>{"client_encoding", "UTF8"}));
}

TEST(pg_format, checks_an_existing_table_naming_each_column) {
  const auto t = pg::parse_table_name("rides");
  EXPECT_EQ(pg::check_columns(t, all_types,
                              {{"id", "bigint"},
                               {"name", "text"},
                               {"amount", "double precision"},
                               {"ok", "boolean"},
                               {"at", "timestamp with time zone"},
                               {"extra", "integer"}}),
            "");
  EXPECT_EQ(pg::check_columns(t, all_types,
                              {{"id", "integer"},
                               {"name", "text"},
                               {"ok", "boolean"},
                               {"at", "timestamp without time zone"}}),
            "table rides does not fit the pipeline's output: column \"id\" is integer, expected "
            "bigint; column \"amount\" is missing (expected double precision); column \"at\" is "
            "timestamp without time zone, expected timestamp with time zone (alter or drop the "
            "table, or name another one)");
  EXPECT_EQ(pg::check_unique_key(t, {"a", "b"}, {{"b", "a"}}), "");
  EXPECT_NE(pg::check_unique_key(t, {"a", "b"}, {{"a"}}).find("no primary key or unique index"),
            std::string::npos);
}

// ---- configuration ------------------------------------------------------------------------

std::string cleaned(const std::string& sink_body, const std::string& extra = "") {
  return "[pipeline]\nname = \"p\"\n[source]\ntopic = \"t\"\n"
         "[[fields]]\nname = \"id\"\ntype = \"int\"\nrequired = true\n"
         "[[fields]]\nname = \"kind\"\n" +
         extra + "[[sinks]]\ntype = \"postgres\"\n" + sink_body;
}

std::string windowed(const std::string& sink_body, const std::string& group_by) {
  return "[source]\ntopic = \"t\"\n[[fields]]\nname = \"ts\"\ntype = \"timestamp\"\n"
         "[[fields]]\nname = \"kind\"\n[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n"
         "[window]\ntype = \"tumbling\"\nsize = \"1m\"\ntime_field = \"ts\"\n" +
         group_by + "[[sinks]]\ntype = \"postgres\"\n" + sink_body;
}

std::string error_of(const std::string& text) {
  auto r = parse_pipeline_config(text, "p.toml");
  return r.config ? "" : r.error;
}

TEST(pg_config, refuses_a_password_key_and_says_why) {
  const auto e = error_of(cleaned("table = \"r\"\npassword = \"hunter2\"\n"));
  EXPECT_NE(e.find("sinks[0].password: a password is never read from the pipeline file"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("password_env"), std::string::npos);
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << "the password must not be echoed";
}

TEST(pg_config, rejects_bad_modes_tables_and_keys) {
  EXPECT_NE(error_of(cleaned("table = \"r\"\nmode = \"merge\"\n"))
                .find("sinks[0].mode: expected \"append\" or \"upsert\", got \"merge\""),
            std::string::npos);
  EXPECT_NE(
      error_of(cleaned("mode = \"append\"\n")).find("sinks[0].table: required key is missing"),
      std::string::npos);
  EXPECT_NE(error_of(cleaned("table = \"a.b.c\"\n")).find("sinks[0].table: expected"),
            std::string::npos);
  EXPECT_NE(error_of(cleaned("table = \"r\"\npassword_env = \"A\"\npassword_file = \"f\"\n"))
                .find("not both"),
            std::string::npos);
  EXPECT_NE(error_of(cleaned("table = \"r\"\nkey = [\"id\"]\n"))
                .find("sinks[0].key: only used with mode = \"upsert\""),
            std::string::npos);
}

TEST(pg_config, upsert_of_cleaned_rows_needs_declared_key_fields) {
  const auto e = error_of(cleaned("table = \"r\"\nmode = \"upsert\"\n"));
  EXPECT_NE(e.find("sinks[0].mode: \"upsert\" needs the fields that identify a row, and this "
                   "cleaned-row pipeline declares none: list them as key = [\"id\", ...]"),
            std::string::npos)
      << e;
  auto ok = parse_pipeline_config(cleaned("table = \"r\"\nmode = \"upsert\"\nkey = [\"id\"]\n"));
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_EQ(ok.config->sinks[0].key, std::vector<std::string>{"id"});
  EXPECT_TRUE(ok.config->sinks[0].upsert);
  EXPECT_TRUE(pg::key_never_null(*ok.config, {"id"}));     // required
  EXPECT_FALSE(pg::key_never_null(*ok.config, {"kind"}));  // may be NULL
  EXPECT_NE(error_of(cleaned("table = \"r\"\nmode = \"upsert\"\nkey = [\"kind\"]\n",
                             "[query]\nselect = [\"id\"]\n"))
                .find("'kind' is not an output column"),
            std::string::npos);
}

TEST(pg_config, upsert_of_windowed_results_merges_on_window_and_group_keys) {
  auto ok = parse_pipeline_config(
      windowed("table = \"r\"\nmode = \"upsert\"\n", "[aggregate]\ngroup_by = [\"kind\"]\n"));
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_EQ(ok.config->sinks[0].key,
            (std::vector<std::string>{"window_start", "window_end", "kind"}));
  EXPECT_NE(error_of(windowed("table = \"r\"\nmode = \"upsert\"\nkey = [\"kind\"]\n", ""))
                .find("not used by an aggregating pipeline"),
            std::string::npos);
}

TEST(pg_config, stages_under_the_checkpoint_dir) {
  auto ok = parse_pipeline_config(cleaned("table = \"r\"\n", "") + "[checkpoint]\ndir = \"cp\"\n");
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_EQ(sink_staging_dir(*ok.config, 0), "cp/sinks/postgres-0");
  const auto dirs = staged_output_dirs(*ok.config);
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "cp/sinks/postgres-0"), dirs.end());
  auto off = parse_pipeline_config(cleaned("table = \"r\"\n"));
  ASSERT_TRUE(off.config);
  EXPECT_EQ(sink_staging_dir(*off.config, 0), "");
}

// ---- against a server ----------------------------------------------------------------------

class pg_sink_server : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = test::pg_server::missing(); !why.empty()) GTEST_SKIP() << why;
    auto err = server_.start();
    ASSERT_EQ(err, "") << err;
    ::setenv("EDDY_PG_TEST_PASSWORD", test::pg_server::password().c_str(), 1);
  }

  pipeline_config config(const std::string& sink_body, const std::string& checkpoint = "") {
    auto r = parse_pipeline_config(cleaned("dsn = \"" + server_.dsn() +
                                           "\"\npassword_env = \"EDDY_PG_TEST_PASSWORD\"\n" +
                                           sink_body) +
                                   checkpoint);
    EXPECT_TRUE(r.config) << r.error;
    return r.config ? *r.config : pipeline_config{};
  }

  std::unique_ptr<sink> make(const pipeline_config& cfg, std::string* err) {
    return make_postgres_sink(cfg, 0, time_formatter(), log_, pg_start::connect, err);
  }

  test::pg_server server_;
  std::ostringstream log_;
};

TEST_F(pg_sink_server, bad_credentials_and_a_missing_database_fail_at_start_in_one_line) {
  ::setenv("EDDY_PG_TEST_WRONG", "wrong", 1);
  auto cfg = config("table = \"r\"\n");
  cfg.sinks[0].password_env = "EDDY_PG_TEST_WRONG";
  std::string err;
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("password authentication failed for user \"eddy\""), std::string::npos) << err;
  EXPECT_EQ(err.find("wrong"), std::string::npos) << "the password must not be shown: " << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;

  cfg = config("table = \"r\"\n");
  cfg.sinks[0].dsn = server_.dsn("nosuchdb");
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("database \"nosuchdb\" does not exist"), std::string::npos) << err;

  cfg = config("table = \"r\"\n");
  cfg.sinks[0].dsn = "host=127.0.0.1 port=1 dbname=x user=eddy";
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("cannot connect to \"host=127.0.0.1 port=1 dbname=x user=eddy\""),
            std::string::npos)
      << err;

  cfg = config("table = \"r\"\n");
  cfg.sinks[0].dsn = "not a dsn";
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("cannot connect to \"not a dsn\""), std::string::npos) << err;
}

TEST_F(pg_sink_server, an_existing_table_that_does_not_fit_is_named_with_its_columns) {
  server_.query("CREATE TABLE r (id integer, other text)");
  auto cfg = config("table = \"r\"\n");
  std::string err;
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("table r does not fit the pipeline's output: column \"id\" is integer, "
                     "expected bigint; column \"kind\" is missing (expected text)"),
            std::string::npos)
      << err;

  server_.query("CREATE TABLE u (id bigint, kind text)");
  cfg = config("table = \"u\"\nmode = \"upsert\"\nkey = [\"id\"]\n");
  EXPECT_EQ(make(cfg, &err), nullptr);
  EXPECT_NE(err.find("table u has no primary key or unique index on exactly (id)"),
            std::string::npos)
      << err;
}

TEST_F(pg_sink_server, creates_the_table_and_writes_batches) {
  auto cfg = config("table = \"public.r\"\nmode = \"upsert\"\nkey = [\"id\"]\n");
  std::string err;
  auto s = make(cfg, &err);
  ASSERT_NE(s, nullptr) << err;
  EXPECT_FALSE(s->transactional());  // no checkpoints: per batch, at-least-once
  const auto schema = schema_of({{"id", field_type::int64}, {"kind", field_type::string}});
  ASSERT_EQ(s->write_batch(0, schema,
                           {{int64_t{1}, std::string("a")},
                            {int64_t{2}, std::string("b\tc")},
                            {int64_t{1}, std::string("a2")}}),
            "");
  ASSERT_EQ(s->write_batch(1, schema, {{int64_t{2}, std::monostate{}}}), "");
  EXPECT_EQ(server_.query("SELECT id, kind FROM r ORDER BY id"),
            (std::vector<std::vector<std::string>>{{"1", "a2"}, {"2", "\\N"}}));
  EXPECT_EQ(server_.query("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                          "attrelid = 'r'::regclass AND attnum > 0 ORDER BY attnum"),
            (std::vector<std::vector<std::string>>{{"bigint"}, {"text"}}));
}

/// Cluster workers start their sinks at once: their CREATE TABLE IF NOT EXISTS race inside
/// PostgreSQL, and the loser's fails on the catalog's unique index. Every sink must start.
TEST_F(pg_sink_server, sinks_starting_at_once_on_a_fresh_database_all_start) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("eddy-pg-race-" + std::to_string(::getpid()));
  const std::string ckpt = "\n[checkpoint]\ndir = \"" + dir.string() + "\"\n";
  for (int round = 0; round < 12; ++round) {
    auto cfg = config("table = \"race_" + std::to_string(round) + "\"\n", ckpt);
    cfg.name = "race_" + std::to_string(round);  // a progress table per round: both race too
    std::vector<std::string> errors(4);
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    for (size_t i = 0; i < errors.size(); ++i)
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < static_cast<int>(errors.size())) {
        }
        std::ostringstream log;
        std::string err;
        auto s = make_postgres_sink(cfg, 0, time_formatter(), log, pg_start::connect, &err);
        if (!s) errors[i] = err.empty() ? "no sink" : err;
      });
    for (auto& t : threads) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "") << "round " << round;
    server_.query("DROP TABLE eddy_sink_progress");
  }
  std::filesystem::remove_all(dir);
}

TEST_F(pg_sink_server, delivers_each_staged_file_once_and_removes_it) {
  test::pg_server* srv = &server_;
  const fs::path cp = fs::path(srv->dir()) / "cp";
  auto cfg = config("table = \"r\"\n", "[checkpoint]\ndir = \"" + cp.string() + "\"\n");
  std::string err;
  auto s = make(cfg, &err);
  ASSERT_NE(s, nullptr) << err;
  ASSERT_TRUE(s->transactional());
  s->set_sync(false);
  ASSERT_EQ(s->recover(0, nullptr), "");  // a new pipeline, nothing delivered before
  const auto schema = schema_of({{"id", field_type::int64}, {"kind", field_type::string}});
  ASSERT_EQ(s->stage_epoch(1, 1, schema, {{int64_t{1}, std::string("x")}}), "");
  ASSERT_EQ(s->stage_epoch(1, 0, schema, {{int64_t{2}, std::string("y")}}), "");
  std::string lerr;
  const auto paths = staged_epoch_paths(s->staging_dir(), 1, "", &lerr);
  ASSERT_EQ(paths.size(), 2u);
  // A copy of the first file, as if a crash had come between its commit and its removal.
  const std::string kept = srv->dir() + "/kept.jsonl";
  fs::copy_file(paths[0], kept);
  ASSERT_EQ(s->publish_epoch(1), "");
  EXPECT_FALSE(fs::exists(paths[0]));
  EXPECT_EQ(server_.query("SELECT count(*) FROM r"),
            (std::vector<std::vector<std::string>>{{"2"}}));
  fs::create_directories(fs::path(paths[0]).parent_path());
  fs::copy_file(kept, paths[0]);
  ASSERT_EQ(s->publish_staged({paths[0]}, false), "");  // skipped: its progress row exists
  EXPECT_EQ(server_.query("SELECT count(*) FROM r"),
            (std::vector<std::vector<std::string>>{{"2"}}));
  EXPECT_FALSE(fs::exists(paths[0]));
  // Gone and delivered: fine; gone and never delivered: an error naming it.
  EXPECT_EQ(s->publish_staged({paths[0]}, false), "");
  const std::string never = s->staging_dir() + "/_staging/00000000000000000009/part-x.jsonl";
  EXPECT_NE(s->publish_staged({never}, false).find(never), std::string::npos);
  EXPECT_EQ(server_.query("SELECT unit, epoch, row_count FROM eddy_sink_progress ORDER BY unit"),
            (std::vector<std::vector<std::string>>{{"part-0000000001-00001.copy", "1", "1"},
                                                   {"part-0000000001.copy", "1", "1"}}));
  // The same pipeline with new checkpoints would skip files of the same names: refused.
  auto again = make(cfg, &err);
  ASSERT_NE(again, nullptr) << err;
  const auto refused = again->recover(0, nullptr);
  EXPECT_NE(refused.find("its checkpoints are new"), std::string::npos) << refused;
}

/// Staged parts are binary COPY, and every type arrives as COPY text would have written it; a
/// part holding a value of another type than its column is staged as COPY text instead.
TEST_F(pg_sink_server, stages_binary_copy_and_delivers_every_type_as_text_would) {
  const fs::path cp = fs::path(server_.dir()) / "cp";
  auto r = parse_pipeline_config(
      cleaned("dsn = \"" + server_.dsn() +
                  "\"\npassword_env = \"EDDY_PG_TEST_PASSWORD\"\ntable = \"r\"\n",
              "[[fields]]\nname = \"amount\"\ntype = \"double\"\n[[fields]]\nname = \"ok\"\n"
              "type = \"bool\"\n[[fields]]\nname = \"at\"\ntype = \"timestamp\"\n") +
      "[checkpoint]\ndir = \"" + cp.string() + "\"\n");
  ASSERT_TRUE(r.config) << r.error;
  std::string err;
  auto s = make(*r.config, &err);
  ASSERT_NE(s, nullptr) << err;
  s->set_sync(false);
  ASSERT_EQ(s->recover(0, nullptr), "");
  const auto schema = schema_of({{"id", field_type::int64},
                                 {"kind", field_type::string},
                                 {"amount", field_type::float64},
                                 {"ok", field_type::boolean},
                                 {"at", field_type::timestamp}});
  ASSERT_EQ(s->stage_epoch(
                1, 0, schema,
                {{int64_t{1}, std::string("a\0b\tc\\N", 8), 2.5, true, timestamp{1'500'000}},
                 {int64_t{2}, std::monostate{}, std::nan(""), false, std::monostate{}},
                 {int64_t{3}, std::string("\xc3\xa9"), -0.1, std::monostate{}, timestamp{-1}}}),
            "");
  ASSERT_EQ(s->stage_epoch(1, 1, schema, {{int64_t{4}, std::string("int"), int64_t{7}}}), "");
  std::string lerr;
  const auto paths = staged_epoch_paths(s->staging_dir(), 1, "", &lerr);
  ASSERT_EQ(paths.size(), 2u) << lerr;
  const std::string first = file_io::read_small_file(paths[1], &lerr).value_or("");
  const std::string second = file_io::read_small_file(paths[0], &lerr).value_or("");
  EXPECT_TRUE(first.starts_with("PGCOPY\n")) << paths[1];
  EXPECT_EQ(second, "4\tint\t7\t\\N\t\\N\n") << paths[0];  // COPY text: 7 is an int
  ASSERT_EQ(s->publish_epoch(1), "");
  EXPECT_EQ(server_.query("SELECT id, kind, amount, ok, to_char(at AT TIME ZONE 'UTC', "
                          "'YYYY-MM-DD HH24:MI:SS.US') FROM r ORDER BY id"),
            (std::vector<std::vector<std::string>>{
                {"1", "ab\tc\\N", "2.5", "t", "1970-01-01 00:00:01.500000"},
                {"2", "\\N", "\\N", "f", "\\N"},
                {"3", "\xc3\xa9", "-0.1", "\\N", "1969-12-31 23:59:59.999999"},
                {"4", "int", "7", "\\N", "\\N"}}));
  EXPECT_EQ(server_.query("SELECT sum(row_count) FROM eddy_sink_progress"),
            (std::vector<std::vector<std::string>>{{"4"}}));
}

/// Append mode: an epoch of several staged parts is delivered over two connections at once
/// (each part its own transaction with its progress row); every row arrives once.
TEST_F(pg_sink_server, an_append_epoch_of_several_parts_is_delivered_over_two_connections) {
  const fs::path cp = fs::path(server_.dir()) / "cp";
  auto cfg = config("table = \"r\"\n", "[checkpoint]\ndir = \"" + cp.string() + "\"\n");
  std::string err;
  auto s = make(cfg, &err);
  ASSERT_NE(s, nullptr) << err;
  s->set_sync(false);
  ASSERT_EQ(s->recover(0, nullptr), "");
  const auto schema = schema_of({{"id", field_type::int64}, {"kind", field_type::string}});
  for (int part = 1; part <= 5; ++part) {
    std::vector<row> rows;
    for (int i = 0; i < 1000; ++i)
      rows.push_back({int64_t{part * 1000 + i}, std::string("k") + std::to_string(part)});
    ASSERT_EQ(s->stage_epoch(1, part == 5 ? 0 : part, schema, rows), "");
  }
  const auto connections = [&] {
    return server_.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eddy'")[0][0];
  };
  EXPECT_EQ(connections(), "1");
  ASSERT_EQ(s->publish_epoch(1), "");
  EXPECT_EQ(connections(), "2");  // the helper's, kept for the next publish
  EXPECT_EQ(server_.query("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM r"),
            (std::vector<std::vector<std::string>>{{"5000", "5000", "1000", "5999"}}));
  EXPECT_EQ(server_.query("SELECT count(*), sum(row_count) FROM eddy_sink_progress"),
            (std::vector<std::vector<std::string>>{{"5", "5000"}}));
  std::string lerr;
  EXPECT_TRUE(staged_epoch_paths(s->staging_dir(), 1, "", &lerr).empty());
}

TEST_F(pg_sink_server, a_sink_built_only_to_publish_connects_on_first_use) {
  const fs::path cp = fs::path(server_.dir()) / "cp";
  auto cfg = config("table = \"r\"\n", "[checkpoint]\ndir = \"" + cp.string() + "\"\n");
  std::string err;
  auto worker = make(cfg, &err);
  ASSERT_NE(worker, nullptr) << err;
  worker->set_sync(false);
  const auto schema = schema_of({{"id", field_type::int64}, {"kind", field_type::string}});
  ASSERT_EQ(worker->stage_epoch(3, 0, schema, {{int64_t{5}, std::string("z")}}), "");
  std::string lerr;
  const auto paths = staged_epoch_paths(worker->staging_dir(), 3, "", &lerr);
  ASSERT_EQ(paths.size(), 1u);
  // Lazy: built without connecting (as the cluster coordinator builds it, only to publish).
  auto publisher = make_postgres_sink(cfg, 0, time_formatter(), log_, pg_start::lazy, &err);
  ASSERT_NE(publisher, nullptr) << err;
  EXPECT_EQ(publisher->staging_dir(), worker->staging_dir());
  ASSERT_EQ(publisher->publish_staged(paths, false), "");
  EXPECT_EQ(server_.query("SELECT id, kind FROM r"),
            (std::vector<std::vector<std::string>>{{"5", "z"}}));
}

}  // namespace
}  // namespace eddy
