#include "actors/type_registry.hpp"

#include <caf/actor_system_config.hpp>

#include "actors/cluster_messages.hpp"
#include "actors/messages.hpp"

namespace eddy {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<assignment>("eddy::assignment");
  cfg.add_message_type<worker_hello>("eddy::worker_hello");
  cfg.add_message_type<join_reply>("eddy::join_reply");
  cfg.add_message_type<unit_assignment>("eddy::unit_assignment");
  cfg.add_message_type<unit_ack>("eddy::unit_ack");
  // (ready_atom, generation, shard ids, shard handles): a vector<int32_t> as a message element.
  cfg.add_message_type<std::vector<int32_t>>("std::vector<int32_t>");
}

}  // namespace eddy
