// cluster_common.hpp — what `eddy coordinator` (app/cmd_cluster.cpp) and `eddy run --as-cluster`
// (app/local_cluster.cpp) share: the checks of a cluster's checkpoint directory and the sinks the
// coordinator publishes with.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/pipeline_config.hpp"
#include "worker/sink/sink.hpp"

namespace eddy::app {

/// This host's name ("localhost" when it has none), for logs.
[[nodiscard]] std::string this_host();

/// One entry per `[[sinks]]` entry: the sinks that stage outside their output
/// (sink::staging_dir: PostgreSQL, Kafka), built only to publish; null for the others (file
/// output is renamed, console output is written by the workers).
/// `cfg` must outlive them. Throws CLI::RuntimeError (exit 2) when such a sink's configuration
/// is unusable.
[[nodiscard]] std::vector<std::unique_ptr<sink>> publishing_sinks(const pipeline_config& cfg);

/// The checkpoint directory must hold this cluster's epochs of a compatible pipeline, or none.
/// eddy run's checkpoints (epochs/<e>/manifest.json) cannot be continued by a cluster as they
/// are: starting over would read the input again and publish its output a second time.
/// Throws CLI::RuntimeError (exit 2) for a checkpoint.dir the coordinator cannot continue
/// (naming every difference of an incompatible pipeline). true: it holds eddy run's
/// checkpoints and no cluster's, and `take_over` (--take-over-run) asks to convert them.
[[nodiscard]] bool check_checkpoint_dir(const pipeline_config& cfg,
                                        const std::map<std::string, std::string>& compat,
                                        bool take_over);

/// Takes the coordinator's lock on cfg.checkpoint.dir (an fcntl record lock on
/// <checkpoint.dir>/cluster/coordinator.lock, held until the process ends): two coordinators of
/// one checkpoint directory would both commit epochs. Throws CLI::RuntimeError (exit 1) naming
/// the pid of the process that holds it. Advisory, and only as good as the file system's locks
/// (local file systems, NFS with lockd).
void lock_cluster_checkpoints(const pipeline_config& cfg);

}  // namespace eddy::app
