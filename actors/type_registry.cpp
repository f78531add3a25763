#include "actors/type_registry.hpp"

#include <caf/actor_system_config.hpp>

#include "actors/messages.hpp"

namespace eddy {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<assignment>("eddy::assignment");
}

}  // namespace eddy
