// worker_actor.hpp — the worker of the one-process runtime: hosts the actors of the partitions
// the coordinator gives it.
//
// Messages:
//   (assign_atom, assignment)  from the coordinator (the first one only: reassignment needs a
//                              second worker): spawns the checkpoint coordinator (with
//                              checkpoints; detached), the sink, the aggregation shards, one
//                              source task per partition and the poller (detached), monitors
//                              every one of them, and sends each its assign_atom
//   (failed_atom, error)       from the poller or the checkpoint coordinator: to `listener`
//   down_msg                   a child that died of an error (is_fault) faults the run
// Sends: (register_atom, "worker-1", itself) to `coordinator` when it starts.
// Ends: on an exit message (run_pipeline's teardown), killing every child with it.
#pragma once

#include <caf/all.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "state/checkpoint_store.hpp"
#include "worker/decode/record_processor.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

/// What a run resumes from (checkpoints on); empty for a new pipeline.
struct restored_state {
  std::shared_ptr<checkpoint_store> store;
  checkpoint_metadata compat;  ///< this pipeline's fingerprint, stored with every epoch
  uint64_t next_epoch = 1;
  std::map<int32_t, int64_t> offsets;  ///< next offset per partition
  std::map<int32_t, record_counters> counters;
};

struct worker_state {
  std::shared_ptr<run_context> ctx;
  caf::actor sink, poller, listener, checkpointer;
  std::shared_ptr<kafka_consumer> consumer;
  output_schema schema;
  restored_state restored;
  bool assigned = false;
  /// Every actor the worker started, with what to call it in a message: monitored, so that one
  /// dying of an error fails the run (is_fault), and killed when the worker is shut down.
  std::map<caf::actor_addr, std::string> children;
  std::vector<caf::actor> handles;
  static inline const char* name = "eddy.worker";
};

using worker_ptr = caf::stateful_actor<worker_state>*;

/// Registers with `coordinator`; hands `consumer` to the poller, `restored` to the actors it
/// spawns, and `listener` gets the sink's report and every failure.
caf::behavior worker_actor(worker_ptr self, std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor coordinator,
                           caf::actor listener, output_schema schema, restored_state restored);

}  // namespace eddy
