#include "actors/type_registry.hpp"

#include <caf/actor_system_config.hpp>

#include <cstdint>
#include <vector>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"

namespace eddy {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<assignment>("eddy::assignment");
  cfg.add_message_type<worker_hello>("eddy::worker_hello");
  cfg.add_message_type<join_reply>("eddy::join_reply");
  cfg.add_message_type<unit_assignment>("eddy::unit_assignment");
  cfg.add_message_type<unit_ack>("eddy::unit_ack");
  cfg.add_message_type<record_counters>("eddy::record_counters");
  cfg.add_message_type<checkpoint_ack>("eddy::checkpoint_ack");
  // Data plane between workers: partials (encoded only when they leave the process).
  cfg.add_message_type<partials_msg>("eddy::partials_msg");
  // (ready_atom, generation, shard ids, shard handles): std::vector<caf::actor> is built in.
  cfg.add_message_type<std::vector<int32_t>>("std::vector<int32_t>");
}

}  // namespace eddy
