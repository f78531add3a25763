// shard_actor.hpp — an aggregator shard as an actor: merges partials of every source task,
// emits windows on its trigger, and takes part in checkpoints with aligned barriers.
//
// Messages:
//   partials_msg                         from a task; held back while that task's barrier waits
//                                        for the others (aligned barriers). From a task in
//                                        another process it carries bytes, decoded at merge
//                                        with the shard's plan; undecodable bytes fail the run
//                                        (run_context::fault) and end the shard
//   (barrier_atom, epoch, partition)     from a task, after its partials of the epoch; once
//                                        every task's barrier is in, the shard writes its state
//                                        (one RocksDB WriteBatch under shard_prefix), sends
//                                        (barrier_atom, epoch, -1 - shard) to the sink and a
//                                        checkpoint_ack to `coordinator`, then merges what it
//                                        held back, in arrival order
//   tick_atom                            emits due rows to the sink (result_batch, shard >= 0)
// Without checkpoints (`ctx->checkpointing` false) barriers never come, and the shard quits
// after the last partition's end (having closed every window).
#pragma once

#include <caf/fwd.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace eddy {

struct run_context;

/// Spawns shard `shard` of `ctx->plan` (which must be set) fed by `partitions`. With
/// checkpoints, its state is restored from `ctx->db` first. `coordinator` receives acks.
[[nodiscard]] caf::actor spawn_shard(caf::actor_system& sys, std::shared_ptr<run_context> ctx,
                                     int shard, std::vector<int32_t> partitions, caf::actor sink,
                                     caf::actor coordinator);

}  // namespace eddy
