// actor_faults.hpp — an actor of a pipeline run that dies takes the run down with it, loudly.
//
// CAF 0.17 (built with exceptions) catches an exception that escapes an actor's handler (or its
// behavior function), calls the actor's exception handler and ends the actor with the error it
// returns; by default it prints a line and nobody else notices, so a dead source task left the
// run waiting for it forever. `fail_run_on_exception` installs a handler that records the
// exception's message as the run's fault (run_context::fault) and ends the actor with
// caf::sec::runtime_error; run_pipeline's loop sees run_context::faulted and ends the run at once
// with that message. `is_fault` tells a down_msg of a monitored actor that died some other way
// (any error but an exit_reason) from one that was shut down.
#pragma once

#include <caf/all.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "worker/runtime/run_context.hpp"

namespace eddy {

/// "what()" of a std::exception, else a fixed text.
[[nodiscard]] inline std::string describe_exception(const std::exception_ptr& x) {
  try {
    std::rethrow_exception(x);
  } catch (const std::bad_alloc& e) {
    return std::string("out of memory (") + e.what() + ")";
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

/// From now on an exception escaping any handler of `self` ends the run with
/// "<who> failed: <what>" (the first fault's message wins).
template <class Actor>
void fail_run_on_exception(Actor* self, std::shared_ptr<run_context> ctx, std::string who) {
  self->set_exception_handler([ctx = std::move(ctx), who = std::move(who)](
                                  caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    ctx->fault(who + " failed: " + describe_exception(x));
    return caf::sec::runtime_error;
  });
}

/// From now on an exception escaping any handler of `self` ends it with a runtime_error carrying
/// "<who> failed: <what>" (reason_text reads it back); `on`, when set, gets that text first,
/// before anyone can see the actor gone. For the cluster's actors, which have no run_context.
template <class Actor>
void end_with_exception_message(Actor* self, std::string who,
                                std::function<void(const std::string&)> on = {}) {
  self->set_exception_handler([who = std::move(who), on = std::move(on)](
                                  caf::scheduled_actor*, std::exception_ptr& x) -> caf::error {
    std::string why = who + " failed: " + describe_exception(x);
    if (on) on(why);
    return caf::make_error(caf::sec::runtime_error, std::move(why));
  });
}

/// What an error says, for a log line: its text when it carries just one (a runtime_error made
/// with a message, as the units' failures are), else CAF's rendering.
[[nodiscard]] inline std::string reason_text(caf::actor_system& sys, const caf::error& reason) {
  const caf::message& ctx = reason.context();
  if (ctx.match_elements<std::string>()) return ctx.get_as<std::string>(0);
  return sys.render(reason);
}

/// True when a monitored actor ended with an error other than an exit reason (normal,
/// user_shutdown, kill, unreachable, ...): it died instead of being stopped.
[[nodiscard]] inline bool is_fault(const caf::error& reason) {
  return reason && reason.category() != caf::atom("exit");
}

}  // namespace eddy
