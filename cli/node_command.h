// `shoal node …`: ls, inspect, update, promote, demote, rm, ps.
#ifndef SHOAL_CLI_NODE_COMMAND_H_
#define SHOAL_CLI_NODE_COMMAND_H_

#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/context.h"
#include "control.grpc.pb.h"
#include "specs.pb.h"

namespace shoal::cli {

void AddNodeCommand(CLI::App& app, Context& ctx);

// What `node update` changes. Labels are added first, then removed, as docker does.
struct NodeSpecChanges {
  std::optional<api::NodeAvailability> availability;
  std::optional<api::NodeRole> role;
  std::vector<std::string> label_add;  // "k=v", or "k" for an empty value
  std::vector<std::string> label_rm;   // keys
};
// INVALID_ARGUMENT for an empty label key, or a key to remove that the node does not have.
absl::Status ApplyNodeSpecChanges(const NodeSpecChanges& changes, api::NodeSpec* spec);

// `node ls --filter k=v`: id, name, label/node.label (k or k=v), role, membership.
// INVALID_ARGUMENT naming the accepted filters otherwise.
absl::Status AddNodeFilter(const std::string& filter, api::ListNodesRequest::Filters* filters);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_NODE_COMMAND_H_
