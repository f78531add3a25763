// publisher_actor.hpp — publishes committed epochs on a thread of its own (`eddy run`).
//
// With checkpoints, the sink actor stages each epoch's output and, once the checkpoint
// coordinator says the epoch is complete, the staged output has to be published: files renamed
// into place, a PostgreSQL transaction per staged file, records produced to Kafka. Publishing
// can take as long as processing the epoch did (a database's COPY, a broker's acks); done on the
// sink actor's thread it would stop the pipeline meanwhile. The publisher does it on a detached
// actor instead, so the next epoch is read, processed and staged while the last one is
// delivered.
//
// Contract:
//   - Epochs are published one at a time, in the order they are asked for (the commit order):
//     every transactional sink's `publish_epoch(e)`, then the dead-letter files of `e`, then the
//     `published` crash point. The sink actor stages only epochs newer than any it asks to
//     publish, so staging and publishing never touch the same epoch's files; the sinks'
//     stage_epoch and publish_epoch use no state in common but their configuration.
//   - Each request is answered with (published_atom, epoch, error): "" or the first error.
//     After an error the publisher publishes nothing more (every later request is answered with
//     the same error): an epoch is never published past one that failed.
//   - Output of a committed epoch that was not published yet when the process died is published
//     at the next start by the sinks' recover(): committed is what counts, not published.
//   - It shares ownership of the sinks, so it may outlive the sink actor that spawned it.
//
// Messages: (publish_atom, epoch) -> (published_atom, epoch, error) to the sender.
#pragma once

#include <caf/all.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "worker/runtime/run_context.hpp"
#include "worker/sink/sink.hpp"

namespace eddy {

/// What the publisher publishes: the transactional sinks and the dead-letter directory.
struct publish_targets {
  std::vector<std::shared_ptr<sink>> sinks;  ///< transactional ones only
  std::string dead_letter_dir;               ///< "" when there is none
  bool sync = true;
};

/// Spawns the publisher (detached: it blocks on the network and the disk, not on a scheduler
/// thread), linked to `owner` so that it goes when its owner goes.
caf::actor spawn_publisher(caf::local_actor* owner, std::shared_ptr<run_context> ctx,
                           publish_targets targets);

}  // namespace eddy
