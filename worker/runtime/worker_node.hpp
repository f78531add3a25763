// worker_node.hpp — a worker process's membership in an eddy cluster.
//
// The node actor asks the coordinator to join (worker_hello), monitors it, and takes the unit
// assignments it sends, dropping any older than the newest generation it has seen. It ends when
// its membership ends, with the reason in `outcome`:
//   refused       the coordinator refused it (another version, a name already in use): do not
//                 retry;
//   lost          the coordinator's connection dropped or its heartbeats stopped: the node's
//                 units are stopped and nothing more is published; join again;
//   left          it left on request (leave()), or because the coordinator said the input is
//                 complete ((finish_atom, generation, epoch), --exit-at-end).
// Logging: one line per join, assignment and loss.
//
// Running units: the join reply carries the pipeline; for every assignment the node kills the
// previous generation's unit host (unit_host.hpp) and spawns a new one, and it forwards the
// coordinator's start, checkpoint and commit messages to it. A host that fails ends the
// membership (`lost`, with its error): the coordinator sees the worker go and restarts the
// generation without it, and the process joins again.
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "actors/version.hpp"
#include "worker/runtime/unit_host.hpp"

namespace eddy {

struct worker_node_options {
  std::string name;
  std::string version = eddy_version;  ///< what the node reports when it joins
  uint32_t slots = 1;
  std::string host;               ///< this host, for the coordinator's logs
  std::string coordinator_label;  ///< HOST:PORT, for logs
  std::ostream* log = nullptr;    ///< nullptr = std::cerr
  /// Where the units' node-local state goes (--local-dir); empty = hold units without running
  /// them (membership tests).
  std::filesystem::path local_dir;
  /// In one process (eddy run --as-cluster): the run's options and where a host without
  /// checkpoints reports its sink's end (unit_host_options). nullptr in a worker process.
  const run_options* run = nullptr;
  std::shared_ptr<unit_host_report> report;
  /// In one process: the pipeline as the run loaded it (its overrides applied), used instead of
  /// parsing the text the coordinator sends. nullptr in a worker process.
  std::shared_ptr<const pipeline_config> pipeline;
  /// Where the membership lines go (joined, the units held, the run complete, units failed and
  /// leaving): nullptr = `log`. A one-process run without checkpoints sends them nowhere.
  std::ostream* membership_log = nullptr;
};

/// How a node's membership ended; written by the node before it quits.
struct worker_node_outcome {
  enum class kind { running, refused, lost, left };
  kind how = kind::running;
  std::string detail;                       ///< the refusal or loss reason
  std::string units_error;                  ///< lost because its units failed: their error
  uint64_t generation = 0;                  ///< newest assignment seen
  std::vector<int32_t> partitions, shards;  ///< units held at the end
};

/// Spawns the node, which joins `coordinator` at once. `outcome` is filled when it quits.
[[nodiscard]] caf::actor spawn_worker_node(caf::actor_system& sys, caf::actor coordinator,
                                           worker_node_options opts,
                                           std::shared_ptr<worker_node_outcome> outcome);

/// Asks the node to leave the cluster cleanly; it quits once the coordinator confirmed (or after
/// `timeout_ms`).
void leave_cluster(caf::actor_system& sys, const caf::actor& node, int timeout_ms);

}  // namespace eddy
