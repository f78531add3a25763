// commands.hpp — the `eddy` subcommands. Each add_*_command registers one CLI11 subcommand
// (options, --help text, callback) on the root app. A callback reports failure by throwing
// CLI::RuntimeError(message, exit_code) — only main() turns that into an exit status.
#pragma once

#include <CLI/CLI.hpp>

namespace eddy::app {

void add_broker_command(CLI::App& root);      // eddy broker   (app/cmd_broker.cpp)
void add_produce_command(CLI::App& root);     // eddy produce  (app/cmd_produce.cpp)
void add_run_command(CLI::App& root);         // eddy run      (app/cmd_run.cpp)
void add_decode_command(CLI::App& root);      // eddy decode   (app/cmd_decode.cpp)
void add_demo_command(CLI::App& root);        // eddy demo     (app/cmd_demo.cpp)
void add_checkpoint_command(CLI::App& root);  // eddy checkpoint (app/cmd_checkpoint.cpp)
void add_cluster_commands(CLI::App& root);    // eddy coordinator, eddy worker (app/cmd_cluster.cpp)

}  // namespace eddy::app
