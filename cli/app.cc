#include "cli/app.h"

#include <unistd.h>

#include <iostream>
#include <ostream>

#include "CLI/CLI.hpp"
#include "cli/context.h"
#include "cli/info_command.h"
#include "cli/node_command.h"
#include "cli/secret_command.h"
#include "cli/service_command.h"
#include "cli/swarm_command.h"

namespace shoal::cli {
namespace {

int RunWith(int argc, const char* const* argv, Context& ctx) {
  std::ostream& out = ctx.out();
  std::ostream& err = ctx.err();
  CLI::App app("shoal: run services on a swarm of Linux hosts", "shoal");
  app.require_subcommand(1);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("-H,--host", ctx.host_flag(),
                 "Daemon socket to connect to (default $SHOAL_HOST, else "
                 "unix:///run/shoal/shoal.sock)");
  app.set_version_flag("-v,--version-client", "shoal client version");

  AddInfoCommand(app, ctx);
  AddVersionCommand(app, ctx);
  AddSwarmCommand(app, ctx);
  AddNodeCommand(app, ctx);
  AddServiceCommand(app, ctx);
  AddSecretCommand(app, ctx);
  AddConfigCommand(app, ctx);

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

}  // namespace

int Run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Context ctx(std::cin, out, err, ::isatty(STDIN_FILENO) == 1, ::isatty(STDOUT_FILENO) == 1);
  return RunWith(argc, argv, ctx);
}

int Run(int argc, const char* const* argv, std::istream& in, std::ostream& out, std::ostream& err) {
  return Run(argc, argv, in, out, err, RealClock());
}

int Run(int argc, const char* const* argv, std::istream& in, std::ostream& out, std::ostream& err,
        Clock& clock) {
  Context ctx(in, out, err, /*in_is_terminal=*/false, /*out_is_terminal=*/false);
  ctx.set_clock(&clock);
  return RunWith(argc, argv, ctx);
}

}  // namespace shoal::cli
