// epoch_coordinator.hpp — the checkpoint coordinator of the one-process runtime (`eddy run`
// with `[checkpoint]`): epochs, acks, the durable commit.
//
// Starts epoch e every checkpoint.interval (after the previous one completed): tells every
// source task, which forwards barrier(e) in-band to the shards and the sink. When every task,
// shard and the sink acked, it makes the node-local RocksDB durable in checkpoint storage
// (checkpoint_store::commit_epoch: the manifest rename is "e complete"), then tells the sink to
// publish e and commits the offsets to Kafka (for lag monitors, through a handle of its own).
// When every task's input ended it runs a final epoch and ends the pipeline. A detached actor:
// the commit blocks on disk I/O.
//
// Messages:
//   (assign_atom, partitions, tasks, shards, sink, poller)  from the worker: the first epoch
//                             starts after checkpoint.interval (at once when it is replayed)
//   tick_atom                 to itself: starts the next epoch
//   (ended_atom, partition)   from a task whose input ended: once every task's has, the final
//                             epoch starts
//   checkpoint_ack            from every task, shard and the sink, per epoch
//   (failed_atom, error)      from a task that cannot restore its state: fails the run
// Sends: (checkpoint_atom, e) to every task; (commit_atom, e, final) to the sink; when a
// checkpoint fails, (failed_atom, error) to `worker` and stop_atom to the sink.
// Ends: itself after the final epoch or a failure, ending every task and shard with it
// (user_shutdown); the worker kills it when it is shut down.
// This header names no worker type but run_context (declared only): its state lives in the .cpp.
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>

#include "state/checkpoint_store.hpp"

namespace eddy {

struct run_context;

/// Spawns the coordinator (detached: the commit blocks on disk I/O). It takes epochs from
/// `next_epoch` on into `store`; every epoch's metadata starts from `compat` (the pipeline's
/// fingerprint). `worker` hears of a failed checkpoint.
[[nodiscard]] caf::actor spawn_checkpoint_coordinator(caf::actor_system& sys,
                                                      std::shared_ptr<run_context> ctx,
                                                      std::shared_ptr<checkpoint_store> store,
                                                      checkpoint_metadata compat,
                                                      uint64_t next_epoch, caf::actor worker);

}  // namespace eddy
