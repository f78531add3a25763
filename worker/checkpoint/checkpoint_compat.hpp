// checkpoint_compat.hpp — may a pipeline resume from a checkpoint written by (another version of)
// its pipeline file?
//
// A checkpoint stores, next to its offsets, a fingerprint of what its saved state depends on:
// named, human-readable text components ("compat.topic" = "orders", "compat.window" = "tumbling
// size=1m time_field=ts ..."). On resume the fingerprint of the current pipeline file is compared
// with the checkpoint's, component by component.
//
// Incompatible (the saved offsets or state would mean something else):
//   compat.topic        the source topic (every pipeline: the offsets belong to it)
// and, for aggregating pipelines (`[[aggregates]]`) only:
//   compat.shards       aggregate.shards (group keys are hashed to shards)
//   compat.window       window type, size, slide, gap, time_field or time = "processing",
//                       max_out_of_orderness, allowed_lateness, late (not for global windows),
//                       emit
//   compat.group_by     aggregate.group_by, in order
//   compat.aggregates   every aggregate's alias, function, field and q, in order
//   compat.mode         aggregate.mode
//   compat.primary_key  aggregate.primary_key ("(none)" in append mode)
//   compat.fields       type, column, unit (timestamps) and scale of each field the state uses:
//                       group_by, aggregate inputs, time_field, primary key (by name)
// Compatible (not in the fingerprint; may change between runs, like Spark allows for filters and
// sinks): the filter, select, having, sinks, pipeline name, trigger interval, time zone,
// dead-letter settings, checkpoint settings (interval, retain, ...), starting_offsets (a resumed
// pipeline starts from its checkpoint's offsets), bootstrap servers, group_id, format,
// max_records_per_poll, max_message_bytes, window.idle_timeout, window.max_event_time_skew, and
// fields the state does not use (including trim, strip_bytes_wrapper and required of every field).
//
// Pure code: no I/O.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "model/pipeline_config.hpp"

namespace eddy {

/// What eddy run's refusal tells the user to do.
inline constexpr std::string_view compat_run_remedy =
    "Use a new checkpoint.dir, or --reset to start over (drops the saved state and offsets).";

/// The prefix of every fingerprint key; other keys of a checkpoint's metadata are ignored here.
inline constexpr std::string_view compat_prefix = "compat.";

/// What of a pipeline its checkpointed state depends on, as named text components ("compat.topic",
/// "compat.shards", "compat.window", "compat.group_by", "compat.aggregates", "compat.mode",
/// "compat.primary_key", "compat.fields"), stored in every checkpoint's metadata. A
/// non-aggregating pipeline has only "compat.topic". Durations use the pipeline-file spelling
/// ("60s" prints as "1m"). `cfg` must be a validated config.
[[nodiscard]] std::map<std::string, std::string> compat_fingerprint(const pipeline_config& cfg);

/// "" when a pipeline with fingerprint `now` may resume from a checkpoint written with `then`;
/// otherwise one message listing every difference (in the order of the list above), e.g.
///   the pipeline changed incompatibly with its checkpoint in DIR: window: checkpoint has
///   "tumbling size=1m ...", pipeline file has "tumbling size=5m ..."; aggregates: ... Use a new
///   checkpoint.dir, or --reset to start over (drops the saved state and offsets).
/// Only keys starting with "compat." are compared. A component present on one side only is a
/// difference too ("checkpoint has none"), except components that newer versions add and list
/// here as ignorable when absent from an older checkpoint (none yet).
/// `remedy` ends the message (eddy run's: "Use a new checkpoint.dir, or --reset to start over
/// (drops the saved state and offsets).").
[[nodiscard]] std::string compat_check(const std::map<std::string, std::string>& then,
                                       const std::map<std::string, std::string>& now,
                                       const std::string& dir,
                                       std::string_view remedy = compat_run_remedy);

}  // namespace eddy
