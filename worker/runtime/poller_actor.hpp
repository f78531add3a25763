// poller_actor.hpp — the Kafka poller: a detached actor, since polling blocks. It owns the
// run's consumer and hands each partition's records to its source task in batches.
//
// Messages:
//   (assign_atom, partitions, tasks)  from the worker: assigns the partitions (from the `resume`
//                                     offsets, else per source.starting_offsets) and starts
//   (assign_atom, partitions, tasks, offsets)  more partitions for a running poller, from
//                                     `offsets` (-1: per source.starting_offsets); the others go on
//   poll_atom                         to itself: one poll, each partition's records as one
//                                     kafka_batch to its task (their in_flight_cost added to
//                                     ctx->in_flight_bytes); waits while the in-flight bytes are
//                                     at source.max_in_flight_mb or the rate limit is reached
// Sends: kafka_batch with `end` set to a task whose partition ended (its end with --exit-at-end;
// every partition on a stop, an abort or a fatal error); (failed_atom, error) to `worker` on a
// fatal poll or assign error, or once the brokers were unreachable for --max-unreachable.
// Ends: it stops polling once every partition ended; the worker kills it when it is shut down.
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>

#include "worker/kafka/broker_watch.hpp"
#include "worker/kafka/consumer.hpp"
#include "worker/runtime/run_context.hpp"

namespace eddy {

struct poller_state {
  std::shared_ptr<run_context> ctx;
  std::chrono::steady_clock::time_point rate_start{};
  int64_t rate_records = 0;  ///< records fetched since rate_start (source.max_records_per_second)
  std::shared_ptr<kafka_consumer> consumer;
  std::map<int32_t, caf::actor> tasks;
  std::map<int32_t, int64_t> fetched_to;  ///< per partition: after the last record handed over
  caf::actor worker;
  broker_watch brokers;
  std::chrono::steady_clock::time_point last_probe{};
  bool unreachable_failed = false;
  static inline const char* name = "eddy.poller";
};

/// Polls `consumer` for the partitions the worker assigns; `resume`: next offset per partition
/// from the restored checkpoint.
caf::behavior poller_actor(caf::stateful_actor<poller_state>* self,
                           std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor worker,
                           std::map<int32_t, int64_t> resume);

}  // namespace eddy
