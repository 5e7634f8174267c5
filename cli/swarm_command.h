// `shoal swarm …`: init, join, join-token, leave, unlock, unlock-key, update, ca.
#ifndef SHOAL_CLI_SWARM_COMMAND_H_
#define SHOAL_CLI_SWARM_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/context.h"
#include "specs.pb.h"

namespace shoal::cli {

void AddSwarmCommand(CLI::App& app, Context& ctx);

// Cluster settings given on the command line of `swarm init` / `swarm update`; unset members
// leave the spec as it is.
struct ClusterSpecChanges {
  std::optional<bool> autolock;
  std::optional<absl::Duration> cert_expiry;
  std::optional<int64_t> task_history_limit;
  std::optional<absl::Duration> dispatcher_heartbeat;
  std::optional<uint64_t> snapshot_interval;
  std::optional<uint64_t> keep_old_snapshots;
};
void ApplyClusterSpecChanges(const ClusterSpecChanges& changes, api::ClusterSpec* spec);

// --cert-expiry: a duration of at least 1h (certificates are renewed well before they expire).
absl::StatusOr<absl::Duration> ParseCertExpiry(const std::string& text);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SWARM_COMMAND_H_
