#include "cli/info_command.h"

#include "absl/strings/ascii.h"
#include "cli/output.h"
#include "common/version.h"

namespace shoal::cli {
namespace {

std::string LocalNodeStateName(api::GetInfoResponse::LocalNodeState state) {
  return absl::AsciiStrToLower(api::GetInfoResponse::LocalNodeState_Name(state));
}

api::GetInfoResponse FetchInfo(Context& ctx) {
  api::GetInfoResponse info;
  auto call = CallContext();
  ctx.Check(ctx.control().GetInfo(call.get(), api::GetInfoRequest(), &info));
  return info;
}

void PrintInfo(std::ostream& out, const api::GetInfoResponse& info) {
  out << "Client:\n"
      << " Version:  " << kVersion << "\n"
      << "Server:\n"
      << " Name:            " << info.node_name() << "\n"
      << " Server Version:  " << info.version() << "\n"
      << " Executor:        " << info.executor()
      << (info.executor() == "sim" ? " (simulated tasks: no containers run on this node)" : "")
      << "\n"
      << " State Dir:       " << info.state_dir() << "\n"
      << " Swarm: " << LocalNodeStateName(info.local_node_state()) << "\n";
  if (info.local_node_state() == api::GetInfoResponse::INACTIVE) return;
  out << "  NodeID: " << info.node_id() << "\n";
  if (!info.error().empty()) out << "  Error: " << info.error() << "\n";
  out << "  Is Manager: " << (info.control_available() ? "true" : "false") << "\n";
  if (info.control_available()) {
    out << "  ClusterID: " << info.cluster_id() << "\n"
        << "  Managers: " << info.managers() << "\n"
        << "  Nodes: " << info.nodes() << "\n"
        << "  Autolock Managers: " << (info.autolock() ? "true" : "false") << "\n";
  }
  out << "  Node Address: " << info.node_addr() << "\n";
  if (info.remote_managers_size() > 0) {
    out << "  Manager Addresses:\n";
    for (const auto& peer : info.remote_managers()) out << "   " << peer.addr() << "\n";
  }
}

}  // namespace

nlohmann::json InfoJson(const api::GetInfoResponse& info) {
  nlohmann::json remote = nlohmann::json::array();
  for (const auto& peer : info.remote_managers()) {
    remote.push_back({{"NodeID", peer.node_id()}, {"Addr", peer.addr()}});
  }
  return {
      {"Name", info.node_name()},
      {"ServerVersion", info.version()},
      {"Executor", info.executor()},
      {"StateDir", info.state_dir()},
      {"Swarm",
       {
           {"NodeID", info.node_id()},
           {"NodeAddr", info.node_addr()},
           {"ClusterID", info.cluster_id()},
           {"LocalNodeState", LocalNodeStateName(info.local_node_state())},
           {"ControlAvailable", info.control_available()},
           {"Error", info.error()},
           {"Managers", info.managers()},
           {"Nodes", info.nodes()},
           {"RemoteManagers", remote},
           {"Autolock", info.autolock()},
       }},
  };
}

void AddInfoCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("info", "Display system-wide information");
  auto format = std::make_shared<std::string>();
  cmd->add_option("-f,--format", *format, "Output format: table (default) or json");
  cmd->callback([&ctx, format] {
    Format f;
    if (!ParseFormat(*format, &f)) {
      throw CommandError{"unknown --format \"" + *format + "\"; use json, or omit it"};
    }
    const api::GetInfoResponse info = FetchInfo(ctx);
    if (f == Format::kJson) {
      PrintJsonLine(ctx.out(), InfoJson(info));
    } else {
      PrintInfo(ctx.out(), info);
    }
  });
}

void AddVersionCommand(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("version", "Show the shoal and shoald version information");
  cmd->callback([&ctx] {
    ctx.out() << "Client:\n"
              << " Version:      " << kVersion << "\n"
              << " API version:  " << kApiVersion << "\n";
    const api::GetInfoResponse info = FetchInfo(ctx);
    ctx.out() << "\nServer:\n"
              << " Version:      " << info.version() << "\n"
              << " Executor:     " << info.executor() << "\n";
  });
}

}  // namespace shoal::cli
