#include "worker/checkpoint/checkpoint_compat.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace eddy {
namespace {

/// An aggregating pipeline using every kind of state input; tests replace parts of it.
constexpr std::string_view base = R"([pipeline]
name = "t"
timezone = "UTC"
trigger_interval_ms = 1000
[source]
bootstrap_servers = "a:1"
topic = "orders"
starting_offsets = "earliest"
max_records_per_poll = 100
[[fields]]
name = "id"
type = "int"
[[fields]]
name = "ts"
column = "created_at"
type = "timestamp"
unit = "micros"
[[fields]]
name = "kind"
[[fields]]
name = "amount"
type = "double"
[[fields]]
name = "note"
[query]
filter = "amount > 1"
[[sinks]]
type = "console"
[dead_letter]
path = "dl"
[checkpoint]
dir = "ckpt"
interval = "1s"
retain = 3
[window]
type = "tumbling"
size = "60s"
time_field = "ts"
[aggregate]
group_by = ["kind"]
[[aggregates]]
alias = "n"
function = "count"
[[aggregates]]
alias = "total"
function = "sum"
field = "amount"
[[aggregates]]
alias = "p"
function = "percentile"
field = "amount"
q = 0.95
)";

std::string replaced(std::string_view text, std::string_view from, std::string_view to) {
  std::string out(text);
  const auto at = out.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) out.replace(at, from.size(), to);
  return out;
}

std::map<std::string, std::string> fingerprint(std::string_view text) {
  const auto r = parse_pipeline_config(text, "t.toml");
  EXPECT_TRUE(r.config.has_value()) << r.error;
  return r.config ? compat_fingerprint(*r.config) : std::map<std::string, std::string>{};
}

/// The compat_check message of resuming `base`'s checkpoint with `changed`.
std::string check(std::string_view changed) {
  return compat_check(fingerprint(base), fingerprint(changed), "ckpt");
}

TEST(checkpoint_compat, describes_an_aggregating_pipeline_in_readable_components) {
  const std::map<std::string, std::string> expected = {
      {"compat.topic", "orders"},
      {"compat.shards", "4"},
      {"compat.window",
       "tumbling size=1m time_field=ts max_out_of_orderness=0s allowed_lateness=0s emit=on_close "
       "late=drop"},
      {"compat.group_by", "kind"},
      {"compat.aggregates", "n=count(*), total=sum(amount), p=percentile(amount, q=0.95)"},
      {"compat.mode", "append"},
      {"compat.primary_key", "(none)"},
      {"compat.fields", "amount double, kind string, ts timestamp unit=micros column=created_at"},
  };
  EXPECT_EQ(fingerprint(base), expected);
}

TEST(checkpoint_compat, describes_other_window_kinds_and_changelog_mode) {
  auto f = fingerprint(replaced(base, "type = \"tumbling\"\nsize = \"60s\"",
                                "type = \"hopping\"\nsize = \"1h\"\nslide = \"90s\""));
  EXPECT_EQ(f["compat.window"],
            "hopping size=1h slide=90s time_field=ts max_out_of_orderness=0s allowed_lateness=0s "
            "emit=on_close late=drop");
  f = fingerprint(replaced(replaced(base, "size = \"60s\"\ntime_field = \"ts\"",
                                    "gap = \"5m\"\ntime = \"processing\"\nemit = \"on_update\"\n"
                                    "late = \"update\"\nallowed_lateness = \"2s\""),
                           "type = \"tumbling\"", "type = \"session\""));
  EXPECT_EQ(f["compat.window"],
            "session gap=5m time=processing max_out_of_orderness=0s allowed_lateness=2s "
            "emit=on_update late=update");
  EXPECT_EQ(f["compat.fields"], "amount double, kind string");  // no time field
  f = fingerprint(replaced(base, "type = \"tumbling\"\nsize = \"60s\"", "type = \"global\""));
  EXPECT_EQ(f["compat.window"], "global time_field=ts emit=on_update");

  // Changelog: the primary key's fields are state inputs too.
  f = fingerprint(replaced(replaced(base, "group_by = [\"kind\"]",
                                    "group_by = [\"kind\"]\nmode = \"changelog\"\n"
                                    "primary_key = [\"id\", \"note\"]"),
                           "alias = \"p\"\nfunction = \"percentile\"\nfield = \"amount\"\nq = 0.95",
                           "alias = \"m\"\nfunction = \"max\"\nfield = \"amount\""));
  EXPECT_EQ(f["compat.mode"], "changelog");
  EXPECT_EQ(f["compat.primary_key"], "id, note");
  EXPECT_EQ(f["compat.aggregates"], "n=count(*), total=sum(amount), m=max(amount)");
  EXPECT_EQ(f["compat.fields"],
            "amount double, id int, kind string, note string, ts timestamp unit=micros "
            "column=created_at");
}

TEST(checkpoint_compat, only_the_topic_matters_without_aggregates) {
  const std::string plain = R"([source]
topic = "orders"
[[fields]]
name = "id"
type = "int"
[[sinks]]
type = "console"
)";
  const std::map<std::string, std::string> expected = {{"compat.topic", "orders"}};
  EXPECT_EQ(fingerprint(plain), expected);
  const std::string changed = replaced(
      replaced(plain, "type = \"int\"", "type = \"string\"\n[query]\nfilter = \"id = \\\"1\\\"\""),
      "type = \"console\"", "type = \"file\"\npath = \"out\"");
  EXPECT_EQ(compat_check(fingerprint(plain), fingerprint(changed), "c"), "");
  EXPECT_EQ(compat_check(fingerprint(plain),
                         fingerprint(replaced(plain, "\"orders\"", "\"orders_v2\"")), "c"),
            "the pipeline changed incompatibly with its checkpoint in c: topic: checkpoint has "
            "\"orders\", pipeline file has \"orders_v2\". Use a new checkpoint.dir, or --reset to "
            "start over (drops the saved state and offsets).");
}

TEST(checkpoint_compat, allows_compatible_changes) {
  EXPECT_EQ(check(base), "");
  const std::pair<std::string_view, std::string_view> changes[] = {
      {"filter = \"amount > 1\"", "filter = \"amount > 2 and note is not null\""},
      {"type = \"console\"", "type = \"file\"\npath = \"out\""},
      {"trigger_interval_ms = 1000", "trigger_interval_ms = 200"},
      {"trigger_interval_ms = 1000", "trigger_interval_ms = 1000\nmax_rows_per_batch = 10"},
      {"timezone = \"UTC\"", "timezone = \"+05:30\""},
      {"path = \"dl\"", "path = \"dl2\"\ntopic = \"dlq\""},
      {"interval = \"1s\"", "interval = \"10s\""},
      {"retain = 3", "retain = 7"},
      {"dir = \"ckpt\"", "dir = \"elsewhere\""},
      {"starting_offsets = \"earliest\"", "starting_offsets = \"latest\""},
      {"bootstrap_servers = \"a:1\"", "bootstrap_servers = \"b:2\""},
      {"max_records_per_poll = 100", "max_records_per_poll = 5000"},
      {"name = \"t\"", "name = \"t2\""},
      {"time_field = \"ts\"", "time_field = \"ts\"\nidle_timeout = \"30s\""},
      {"group_by = [\"kind\"]", "group_by = [\"kind\"]\nhaving = \"n > 3\""},
      {"size = \"60s\"", "size = \"1m\""},                     // same duration, other spelling
      {"name = \"note\"", "name = \"note\"\ntype = \"int\""},  // a field the state does not use
      {"name = \"kind\"", "name = \"kind\"\ntrim = false\nrequired = true"},
  };
  for (const auto& [from, to] : changes) EXPECT_EQ(check(replaced(base, from, to)), "") << to;
  // Declaring the fields in another order does not matter either.
  EXPECT_EQ(check(replaced(base, "[[fields]]\nname = \"id\"\ntype = \"int\"\n", "") +
                  "[[fields]]\nname = \"id\"\ntype = \"int\"\n"),
            "");
}

TEST(checkpoint_compat, reports_each_incompatible_change_by_component) {
  const std::pair<std::string_view, std::string_view> changes[] = {
      {"topic = \"orders\"", "topic = \"orders2\""},
      {"group_by = [\"kind\"]", "group_by = [\"kind\"]\nshards = 8"},
      {"size = \"60s\"", "size = \"5m\""},
      {"time_field = \"ts\"", "time = \"processing\""},
      {"time_field = \"ts\"", "time_field = \"ts\"\nallowed_lateness = \"1s\""},
      {"time_field = \"ts\"", "time_field = \"ts\"\nmax_out_of_orderness = \"5s\""},
      {"time_field = \"ts\"", "time_field = \"ts\"\nemit = \"on_update\""},
      {"time_field = \"ts\"", "time_field = \"ts\"\nlate = \"dead_letter\""},
      {"type = \"tumbling\"\nsize = \"60s\"",
       "type = \"hopping\"\nsize = \"60s\"\nslide = \"30s\""},
      {"group_by = [\"kind\"]", "group_by = [\"kind\", \"note\"]"},
      {"group_by = [\"kind\"]", "group_by = []"},
      {"alias = \"n\"", "alias = \"count\""},
      {"function = \"sum\"", "function = \"avg\""},
      {"q = 0.95", "q = 0.9"},
      {"name = \"kind\"", "name = \"kind\"\ncolumn = \"kind_v2\""},
      {"type = \"double\"", "type = \"int\""},
      {"unit = \"micros\"", "unit = \"millis\""},
      {"name = \"amount\"\ntype = \"double\"", "name = \"amount\"\ntype = \"double\"\nscale = 2"},
  };
  const char* components[] = {"topic",    "shards",     "window",     "window",     "window",
                              "window",   "window",     "window",     "window",     "group_by",
                              "group_by", "aggregates", "aggregates", "aggregates", "fields",
                              "fields",   "fields",     "fields"};
  static_assert(std::size(changes) == std::size(components));
  for (std::size_t i = 0; i < std::size(changes); ++i) {
    const std::string message = check(replaced(base, changes[i].first, changes[i].second));
    EXPECT_EQ(message.rfind("the pipeline changed incompatibly with its checkpoint in ckpt: " +
                                std::string(components[i]) + ": checkpoint has ",
                            0),
              0u)
        << changes[i].second << "\n"
        << message;
  }
  // Changelog mode (its aggregates must be retractable, so those change too).
  const std::string changelog = replaced(
      replaced(base, "group_by = [\"kind\"]", "group_by = [\"kind\"]\nmode = \"changelog\""),
      "function = \"percentile\"\nfield = \"amount\"\nq = 0.95",
      "function = \"max\"\nfield = \"amount\"");
  const std::string message = check(changelog);
  for (const char* part :
       {"aggregates: checkpoint has",
        "mode: checkpoint has \"append\", pipeline file has \"changelog\"",
        "primary_key: checkpoint has \"(none)\", pipeline file has \"id\"",
        "fields: checkpoint has \"amount double, kind string, ts timestamp unit=micros "
        "column=created_at\", pipeline file has \"amount double, id int, kind string, ts timestamp "
        "unit=micros column=created_at\""}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << "\n" << message;
  }
  // Reordering aggregates changes the state layout.
  const std::string n = "[[aggregates]]\nalias = \"n\"\nfunction = \"count\"\n";
  EXPECT_NE(check(replaced(base, n, "") + n).find("aggregates: "), std::string::npos);
}

TEST(checkpoint_compat, lists_every_difference_with_both_texts) {
  const std::string changed = replaced(replaced(replaced(base, "size = \"60s\"", "size = \"5m\""),
                                                "function = \"sum\"", "function = \"avg\""),
                                       "topic = \"orders\"", "topic = \"orders2\"");
  EXPECT_EQ(check(changed),
            "the pipeline changed incompatibly with its checkpoint in ckpt: topic: checkpoint has "
            "\"orders\", pipeline file has \"orders2\"; window: checkpoint has \"tumbling size=1m "
            "time_field=ts max_out_of_orderness=0s allowed_lateness=0s emit=on_close late=drop\", "
            "pipeline file has \"tumbling size=5m time_field=ts max_out_of_orderness=0s "
            "allowed_lateness=0s emit=on_close late=drop\"; aggregates: checkpoint has "
            "\"n=count(*), total=sum(amount), p=percentile(amount, q=0.95)\", pipeline file has "
            "\"n=count(*), total=avg(amount), p=percentile(amount, q=0.95)\". Use a new "
            "checkpoint.dir, or --reset to start over (drops the saved state and offsets).");
}

TEST(checkpoint_compat, compares_only_compat_keys_and_reports_one_sided_ones) {
  std::map<std::string, std::string> then = {
      {"compat.topic", "t"}, {"offset.0", "12"}, {"watermark", "99"}};
  std::map<std::string, std::string> now = {{"compat.topic", "t"}, {"offset.0", "13"}};
  EXPECT_EQ(compat_check(then, now, "d"), "");

  then["compat.zeta"] = "z\"1";
  now["compat.mode"] = "append";
  EXPECT_EQ(
      compat_check(then, now, "d"),
      "the pipeline changed incompatibly with its checkpoint in d: mode: checkpoint has none, "
      "pipeline file has \"append\"; zeta: checkpoint has \"z\\\"1\", pipeline file has "
      "none. Use a new checkpoint.dir, or --reset to start over (drops the saved state and "
      "offsets).");
}

TEST(checkpoint_compat, turning_aggregation_on_is_incompatible) {
  const std::string plain = replaced(base.substr(0, base.find("[window]")),
                                     "filter = \"amount > 1\"", "filter = \"amount > 1\"");
  const std::string message = compat_check(fingerprint(plain), fingerprint(base), "ckpt");
  for (const char* c : {"shards: checkpoint has none, pipeline file has \"4\"",
                        "window: checkpoint has none", "aggregates: checkpoint has none"}) {
    EXPECT_NE(message.find(c), std::string::npos) << c << "\n" << message;
  }
  EXPECT_EQ(message.find("topic:"), std::string::npos) << message;
}

}  // namespace
}  // namespace eddy
