#include "worker/runtime/publisher_actor.hpp"

#include <utility>

#include "worker/checkpoint/crash_point.hpp"
#include "worker/runtime/actor_faults.hpp"
#include "worker/sink/epoch_files.hpp"

namespace eddy {
namespace {

struct publisher_state {
  publish_targets targets;
  std::string error;  ///< the first failure: nothing is published after it
  static inline const char* name = "eddy.publisher";
};

using publisher_ptr = caf::stateful_actor<publisher_state>*;

std::string publish_one(const publish_targets& t, uint64_t epoch) {
  for (const auto& s : t.sinks)
    if (auto err = s->publish_epoch(epoch); !err.empty()) return "sink: " + err;
  if (!t.dead_letter_dir.empty())
    if (auto err = publish_epoch_files(t.dead_letter_dir, epoch, t.sync); !err.empty())
      return "dead-letter output: " + err;
  crash_point("published");  // the epoch's output is visible
  return {};
}

caf::behavior publisher(publisher_ptr self, std::shared_ptr<run_context> ctx,
                        publish_targets targets) {
  fail_run_on_exception(self, ctx, "publisher");
  self->state.targets = std::move(targets);
  return {
      [self](publish_atom, uint64_t epoch) {
        auto& st = self->state;
        fault_point("publisher");
        if (st.error.empty()) st.error = publish_one(st.targets, epoch);
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), published_atom::value,
                   epoch, st.error);
      },
  };
}

}  // namespace

caf::actor spawn_publisher(caf::local_actor* owner, std::shared_ptr<run_context> ctx,
                           publish_targets targets) {
  return owner->spawn<caf::detached + caf::linked>(publisher, std::move(ctx), std::move(targets));
}

}  // namespace eddy
