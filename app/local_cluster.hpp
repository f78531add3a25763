// local_cluster.hpp — `eddy run --as-cluster`: a pipeline run on the cluster's code path in one
// process.
//
// One actor system, no network: the cluster coordinator (coordinator/cluster_coordinator.hpp)
// and one worker node (worker/runtime/worker_node.hpp) named "local", exactly the actors of
// `eddy coordinator` and `eddy worker`. Epochs commit as a cluster's (a manifest in
// checkpoint.dir/cluster/epochs, unit snapshots and deltas in checkpoint.dir/cluster/units), so
// the checkpoint directory is a cluster's: `eddy coordinator` with workers continues it (scale
// out) and `eddy run --as-cluster` continues a cluster's (scale in). The coordinator's own state
// goes to <local dir>/coordinator, the worker's to <local dir>/worker (local dir:
// checkpoint.local_dir, by default <checkpoint.dir>/local).
//
// Ends: --exit-at-end as `eddy coordinator --exit-at-end` (every partition read to the end it
// had at start, every window closed, that output committed); a stop (*opts.stop) asks the
// coordinator to make the next committed epoch the last (records read after its barrier are
// read again by the next run), bounded by opts.stop_timeout. A worker node that fails ends the
// run with its error (no other worker takes over in one process).
// Without [checkpoint]: no epochs and no files of its own; output per trigger, a stop drains
// (the poller ends every partition, windows close) and the run ends when the sink finished, as
// plain eddy run.
#pragma once

#include <string>

#include "model/pipeline_config.hpp"
#include "worker/runtime/pipeline_runtime.hpp"

namespace eddy::app {

/// Runs `cfg` as a coordinator and one worker node in this process until it ends (above). With
/// checkpoints the counters come from the last committed epoch's manifest (per partition,
/// cumulative since the pipeline started); without, they are the sink's, as eddy run's.
/// run_result::batches and the flow-control figures are this process's either way. The worker
/// node runs `cfg` as given (overrides applied by the caller); `config_path` (may be empty) is
/// only the text the coordinator would hand a worker of another process. `take_over`: the
/// checkpoint.dir may hold `eddy run`'s checkpoints, which are converted first (as `eddy
/// coordinator
/// --take-over-run`). Throws CLI::RuntimeError (exit 2) for a checkpoint.dir that cannot be
/// continued; other errors come back in the result.
[[nodiscard]] run_result run_as_cluster(const pipeline_config& cfg, const std::string& config_path,
                                        const run_options& opts, bool take_over);

/// How `eddy run` and `eddy demo` run a pipeline in this process: on the cluster's path
/// (run_as_cluster) with `as_cluster` or without [checkpoint]; else eddy run's own epochs and
/// checkpoint layout (run_pipeline, which ignores `config_path` and `take_over`).
[[nodiscard]] run_result run_in_process(const pipeline_config& cfg, const std::string& config_path,
                                        const run_options& opts, bool as_cluster, bool take_over);

}  // namespace eddy::app
