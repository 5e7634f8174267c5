#include "cli/app.h"

#include <ostream>

#include "CLI/CLI.hpp"
#include "cli/context.h"
#include "cli/info_command.h"

namespace shoal::cli {

int Run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Context ctx(out, err);
  CLI::App app("shoal: run services on a swarm of Linux hosts", "shoal");
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("-H,--host", ctx.host_flag(),
                 "Daemon socket to connect to (default $SHOAL_HOST, else "
                 "unix:///run/shoal/shoal.sock)");
  app.set_version_flag("-v,--version-client", "shoal client version");

  AddInfoCommand(app, ctx);
  AddVersionCommand(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::Success& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    app.exit(e, out, err);
    return 2;  // usage error
  } catch (const CommandError& e) {
    err << "Error: " << e.message << "\n";
    return e.exit_code;
  }
  return 0;
}

}  // namespace shoal::cli
