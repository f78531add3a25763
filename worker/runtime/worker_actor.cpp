#include "worker/runtime/worker_actor.hpp"

#include <utility>

#include "actors/messages.hpp"
#include "coordinator/epoch_coordinator.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/runtime/poller_actor.hpp"
#include "worker/runtime/shard_actor.hpp"
#include "worker/runtime/sink_actor.hpp"
#include "worker/runtime/source_task.hpp"

namespace eddy {
namespace {

void adopt(worker_ptr self, const caf::actor& child, std::string what) {
  self->monitor(child);
  self->state.children.emplace(child.address(), std::move(what));
  self->state.handles.push_back(child);
}

}  // namespace

caf::behavior worker_actor(worker_ptr self, std::shared_ptr<run_context> ctx,
                           std::shared_ptr<kafka_consumer> consumer, caf::actor coordinator,
                           caf::actor listener, output_schema schema, restored_state restored) {
  fail_run_on_exception(self, ctx, "worker");
  // A child that dies of an error (not one shut down) fails the run; an exception's handler
  // (fail_run_on_exception) has already recorded its message, which stays the first.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!is_fault(dm.reason)) return;
    auto it = st.children.find(dm.source);
    st.ctx->fault((it == st.children.end() ? std::string("an actor") : it->second) +
                  " ended with an error: " + self->system().render(dm.reason));
  });
  // Shut down (run_pipeline's teardown, or the end of the run): take every child with it,
  // whatever it is doing; one that is blocked ends when it returns.
  self->set_exit_handler([self](caf::exit_msg& m) {
    for (const auto& child : self->state.handles) self->send_exit(child, caf::exit_reason::kill);
    self->quit(m.reason);
  });
  auto& st = self->state;
  st.ctx = ctx;
  st.consumer = std::move(consumer);
  st.listener = listener;
  st.schema = std::move(schema);
  st.restored = std::move(restored);
  self->send(coordinator, register_atom::value, std::string("worker-1"),
             caf::actor_cast<caf::actor>(self));
  return {
      [self](assign_atom, const assignment& a) {
        auto& st = self->state;
        if (st.assigned) return;  // reassignment needs a second worker (multi-node: later)
        st.assigned = true;
        auto& r = st.restored;
        if (st.ctx->checkpointing)
          st.checkpointer =
              spawn_checkpoint_coordinator(self->system(), st.ctx, r.store, r.compat, r.next_epoch,
                                           caf::actor_cast<caf::actor>(self));
        if (st.checkpointer) adopt(self, st.checkpointer, "checkpoint coordinator");
        st.sink = self->spawn(sink_actor, st.ctx, st.schema, st.listener, r.counters);
        adopt(self, st.sink, "sink");
        int shard_count = st.ctx->plan ? st.ctx->plan->shard_count : 0;
        std::vector<int32_t> shard_ids;
        for (int i = 0; i < shard_count; ++i) shard_ids.push_back(i);
        self->send(st.sink, assign_atom::value, a.partitions, shard_ids, st.checkpointer);
        std::vector<caf::actor> shards;
        for (int i = 0; i < shard_count; ++i) {
          shards.push_back(
              spawn_shard(self->system(), st.ctx, i, a.partitions, st.sink, st.checkpointer));
          adopt(self, shards.back(), "aggregation shard " + std::to_string(i));
        }
        std::vector<caf::actor> tasks;
        for (int32_t p : a.partitions) {
          tasks.push_back(self->spawn(source_task, st.ctx, p, st.sink, shards, st.checkpointer));
          adopt(self, tasks.back(), "source task of partition " + std::to_string(p));
        }
        st.poller = self->spawn<caf::detached>(poller_actor, st.ctx, st.consumer,
                                               caf::actor_cast<caf::actor>(self), r.offsets);
        adopt(self, st.poller, "Kafka poller");
        self->send(st.poller, assign_atom::value, a.partitions, tasks);
        if (st.checkpointer)
          self->send(st.checkpointer, assign_atom::value, a.partitions, tasks, shards, st.sink,
                     st.poller);
      },
      [self](failed_atom, const std::string& err) {
        self->send(self->state.listener, failed_atom::value, err);
      },
  };
}

}  // namespace eddy
