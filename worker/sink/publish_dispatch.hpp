// publish_dispatch.hpp — publishing a committed epoch's staged output across a pipeline's sinks.
//
// Where only one process publishes (the cluster coordinator), it receives a flat list of staged
// paths from every worker: files staged into a file sink's or the dead-letter directory, and
// files staged into a sink's own staging directory (PostgreSQL, Kafka: sink::staging_dir()).
// `publish_to_sinks` sends each path under a sink's staging directory to that sink's
// publish_staged (which delivers it: a transaction, produced records) and renames the rest
// (publish_staged_files). Idempotent like both of those; list order is kept within each sink.
// No CAF, no librdkafka.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/sink/sink.hpp"

namespace eddy {

/// Publishes `staged_paths`: those inside `sinks[i]->staging_dir()` (a non-empty one) through
/// `sinks[i]->publish_staged`, the others with publish_staged_files. Null entries of `sinks` are
/// skipped. Paths and staging directories may be relative (to the working directory) or absolute;
/// they are compared after making both absolute and lexically normal. Every group is tried; ""
/// or the errors, joined with "; ".
[[nodiscard]] std::string publish_to_sinks(const std::vector<std::unique_ptr<sink>>& sinks,
                                           const std::vector<std::string>& staged_paths, bool sync);

}  // namespace eddy
