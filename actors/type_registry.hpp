// type_registry.hpp — registers eddy's message types with a CAF actor system config.
//
// Every node (coordinator or worker process) must call this on its config before creating the
// actor system; a node without it cannot talk to one with it (CAF 0.17 refuses the handshake
// with unexpected_actor_messaging_interface).
#pragma once

#include <caf/fwd.hpp>

namespace eddy {

void register_message_types(caf::actor_system_config& cfg);

}  // namespace eddy
