// shard_actor.hpp — an aggregator shard as an actor: merges partials of every source task,
// emits windows on its trigger, and takes part in checkpoints with aligned barriers.
//
// Messages:
//   partials_msg                         from a task; held back while that task's barrier waits
//                                        for the others (aligned barriers). From a task in
//                                        another process it carries bytes, decoded at merge
//                                        with the shard's plan; undecodable bytes fail the run
//                                        (run_context::fault) and end the shard. Every
//                                        partial batch taken (merged or held) earns its task
//                                        a credit back: (credit_atom, generation, shard, n) to
//                                        the sender, in chunks (worker/runtime/credits.hpp)
//   (barrier_atom, epoch, partition)     from a task, after its partials of the epoch; once
//                                        every task's barrier is in, the shard writes its state
//                                        (one RocksDB WriteBatch under shard_prefix), sends
//                                        (barrier_atom, epoch, -1 - shard) to the sink and a
//                                        checkpoint_ack to `coordinator`, then merges what it
//                                        held back, in arrival order
//   tick_atom                            emits due rows to the sink (result_batch, shard >= 0)
// Without checkpoints (`ctx->checkpointing` false) barriers never come, and the shard quits
// after the last partition's end (having closed every window).
// Test only: EDDY_TEST_SHARD_MERGE_DELAY_US=N makes every shard of the process sleep N µs per
// merged partial batch and log "eddy: test: shard S ...: mailbox peak M messages" at each
// snapshot (a slow shard for the flow-control tests).
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
