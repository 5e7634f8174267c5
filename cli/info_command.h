// `shoal info` and `shoal version`.
#ifndef SHOAL_CLI_INFO_COMMAND_H_
#define SHOAL_CLI_INFO_COMMAND_H_

#include "CLI/CLI.hpp"
#include "cli/context.h"
#include "nlohmann/json.hpp"

namespace shoal::cli {

void AddInfoCommand(CLI::App& app, Context& ctx);
void AddVersionCommand(CLI::App& app, Context& ctx);

// `info --format json`'s document, built from the daemon's answer (Docker's shape: Name,
// ServerVersion, Swarm{NodeID, ClusterID, LocalNodeState, ControlAvailable, Managers, Nodes,
// RemoteManagers, Autolock, ..., and Cluster (ClusterJson) on a manager}).
nlohmann::json InfoJson(const api::GetInfoResponse& info);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_INFO_COMMAND_H_
