// The eddy binary: CDC stream processing from one native executable.
#include <iostream>

#include "app/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "eddy — stream processing for Debezium change-data-capture topics in Kafka.\n"
      "Decodes, cleans, filters and aggregates CDC records; see `eddy <command> --help`.",
      "eddy"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every command");
  eddy::app::add_run_command(app);
  eddy::app::add_decode_command(app);
  eddy::app::add_demo_command(app);
  eddy::app::add_broker_command(app);
  eddy::app::add_produce_command(app);
  eddy::app::add_checkpoint_command(app);
  eddy::app::add_cluster_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    if (e.what() && *e.what()) std::cerr << "eddy: " << e.what() << "\n";
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    // --help is a ParseError with status 0; every bad option or value is a usage error: 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
