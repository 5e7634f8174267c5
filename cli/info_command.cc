#include "cli/info_command.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "cli/cluster_json.h"
#include "cli/duration.h"
#include "cli/output.h"
#include "common/version.h"

namespace shoal::cli {
namespace {

// What the daemon uses when the cluster spec leaves these unset (docs/cluster.md).
constexpr absl::Duration kDefaultHeartbeatPeriod = absl::Seconds(5);
constexpr absl::Duration kDefaultNodeCertExpiry = absl::Hours(24 * 90);

std::string LocalNodeStateName(api::GetInfoResponse::LocalNodeState state) {
  return absl::AsciiStrToLower(api::GetInfoResponse::LocalNodeState_Name(state));
}

api::GetInfoResponse FetchInfo(Context& ctx) {
  api::GetInfoResponse info;
  auto call = CallContext();
  ctx.Check(ctx.control().GetInfo(call.get(), api::GetInfoRequest(), &info));
  return info;
}

// The cluster settings docker's `info` shows under Swarm (managers only). Unset durations show
// their defaults, as the daemon applies them.
void PrintClusterSettings(std::ostream& out, const api::Cluster& cluster) {
  const api::ClusterSpec& spec = cluster.spec();
  if (cluster.default_address_pool_size() > 0) {
    out << "  Default Address Pool: " << absl::StrJoin(cluster.default_address_pool(), " ") << "\n"
        << "  SubnetSize: " << cluster.subnet_size() << "\n";
  }
  if (cluster.vxlan_udp_port() > 0) out << "  Data Path Port: " << cluster.vxlan_udp_port() << "\n";
  const absl::Duration heartbeat = spec.dispatcher().has_heartbeat_period()
                                       ? FromProto(spec.dispatcher().heartbeat_period())
                                       : kDefaultHeartbeatPeriod;
  const absl::Duration expiry = spec.ca_config().has_node_cert_expiry()
                                    ? FromProto(spec.ca_config().node_cert_expiry())
                                    : kDefaultNodeCertExpiry;
  out << "  Orchestration:\n"
      << "   Task History Retention Limit: " << spec.orchestration().task_history_retention_limit()
      << "\n"
      << "  Raft:\n"
      << "   Snapshot Interval: " << spec.raft().snapshot_interval() << "\n"
      << "   Number of Old Snapshots to Retain: " << spec.raft().keep_old_snapshots() << "\n"
      << "   Heartbeat Tick: " << spec.raft().heartbeat_tick() << "\n"
      << "   Election Tick: " << spec.raft().election_tick() << "\n"
      << "  Dispatcher:\n"
      << "   Heartbeat Period: " << HumanDuration(heartbeat) << "\n"
      << "  CA Configuration:\n"
      << "   Expiry Duration: " << HumanDuration(expiry) << "\n"
      << "   Force Rotate: " << spec.ca_config().force_rotate() << "\n";
  const absl::string_view signing = absl::StripAsciiWhitespace(spec.ca_config().signing_ca_cert());
  if (!signing.empty()) out << "   Signing CA Certificate: \n" << signing << "\n\n";
  out << "  Autolock Managers: "
      << (spec.encryption_config().auto_lock_managers() ? "true" : "false") << "\n"
      << "  Root Rotation In Progress: "
      << (cluster.root_ca().has_root_rotation() ? "true" : "false") << "\n";
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
        << "  Nodes: " << info.nodes() << "\n";
    if (info.has_cluster() && info.error().empty()) {
      PrintClusterSettings(out, info.cluster());
    } else {
      out << "  Autolock Managers: " << (info.autolock() ? "true" : "false") << "\n";
    }
  }
  out << "  Node Address: " << info.node_addr() << "\n";
  if (info.remote_managers_size() > 0) {
    std::vector<std::string> addrs;
    for (const auto& peer : info.remote_managers()) addrs.push_back(peer.addr());
    std::sort(addrs.begin(), addrs.end());
    out << "  Manager Addresses:\n";
    for (const std::string& addr : addrs) out << "   " << addr << "\n";
  }
}

}  // namespace

nlohmann::json InfoJson(const api::GetInfoResponse& info) {
  nlohmann::json remote = nlohmann::json::array();
  for (const auto& peer : info.remote_managers()) {
    remote.push_back({{"NodeID", peer.node_id()}, {"Addr", peer.addr()}});
  }
  nlohmann::json out = {
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
  if (info.has_cluster()) out["Swarm"]["Cluster"] = ClusterJson(info.cluster());
  return out;
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
