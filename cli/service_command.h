// `shoal service …`: create, ls, ps, inspect, scale, update, rollback, rm. The flags follow
// docker's (service_spec.h translates them); create, update, scale and rollback wait for the
// service to converge unless -d (service_progress.h). `service logs` is not offered until the
// agents' executor produces logs (the containerd executor).
#ifndef SHOAL_CLI_SERVICE_COMMAND_H_
#define SHOAL_CLI_SERVICE_COMMAND_H_

#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "cli/context.h"

namespace shoal::cli {

void AddServiceCommand(CLI::App& app, Context& ctx);

// One `service scale` argument, "SERVICE=REPLICAS".
struct ScaleSpecifier {
  std::string service;
  uint64_t replicas = 0;
};
// INVALID_ARGUMENT `invalid scale specifier "web": use SERVICE=REPLICAS, e.g. web=3` otherwise.
absl::StatusOr<ScaleSpecifier> ParseScaleSpecifier(const std::string& text);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_SERVICE_COMMAND_H_
