// pg_sink.hpp — the PostgreSQL sink (`[[sinks]] type = "postgres"`), over libpq.
//
// With checkpoints the sink is transactional (exactly-once): `stage_epoch` writes each part as
// JSON Lines into `sink_staging_dir(cfg, index)` (`<checkpoint.dir>/sinks/postgres-<index>`,
// names like the file sink's parts, with the cluster's name tag); publishing delivers each
// staged file in ONE transaction together with its row in the progress table
// (`eddy_sink_progress`, keyed by pipeline, target table and staged file name), then deletes the
// staged copy. A file whose progress row exists was delivered already (a replay, or a publish
// repeated after a crash): it is skipped. Rows go by COPY: straight into the table for
// mode = "append"; into a session temporary table, then INSERT ... SELECT DISTINCT ON (key) ...
// ON CONFLICT (key) DO UPDATE for mode = "upsert" (the last row per key wins).
// Without checkpoints every batch is written in one transaction of its own (at-least-once: a
// batch whose COMMIT was cut off is written again after the reconnect).
//
// Connections: one per sink, opened lazily on first use, unless `connect_now` (the sink actor's
// start): then bad credentials, a missing database or an unreachable server fail the
// construction with one line. A connection lost later is retried with backoff (100 ms doubling
// to 5 s) for up to `reconnect_timeout`, with one log line when it is lost and one when it is
// back; SQL errors (a constraint, a type) are not retried. The table is created when absent
// (types from the output schema, pg_format.hpp) or checked, once per sink.
// Single-threaded, like every sink. The password is never logged (pg::mask_dsn).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>

#include "model/pipeline_config.hpp"
#include "model/time_format.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

/// When the sink connects.
enum class pg_start {
  lazy,      ///< on first use (a process that only publishes: the cluster coordinator)
  connect,   ///< now, once, without retrying: a failure is the factory's error
  announce,  ///< as connect, then log the start-up line (table, mode, guarantee)
};

/// The sink for `cfg.sinks[index]` (a postgres sink). Its output schema is the pipeline's (it
/// derives it from `cfg`, so a process that only publishes can build it from the pipeline file).
/// `log` gets its connection lines (and the start-up line with pg_start::announce). nullptr
/// with `*error` set when the configuration is unusable, or, unless lazy, when the server
/// cannot be reached, refuses the credentials, has no such database, or the table does not
/// fit. `cfg` must outlive the sink.
[[nodiscard]] std::unique_ptr<sink> make_postgres_sink(const pipeline_config& cfg,
                                                       std::size_t index, time_formatter fmt,
                                                       std::ostream& log, pg_start start,
                                                       std::string* error);

}  // namespace eddy
