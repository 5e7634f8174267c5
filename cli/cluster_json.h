// The cluster object in Docker's JSON shape (as `docker info`'s Swarm.Cluster): ID, Version,
// CreatedAt, UpdatedAt, Spec{Name, Labels, Orchestration, Raft, Dispatcher, CAConfig,
// TaskDefaults, EncryptionConfig}, TLSInfo, RootRotationInProgress, DefaultAddrPool,
// SubnetSize, DataPathPort. Durations are nanoseconds, as Go marshals them.
#ifndef SHOAL_CLI_CLUSTER_JSON_H_
#define SHOAL_CLI_CLUSTER_JSON_H_

#include "nlohmann/json.hpp"
#include "objects.pb.h"

namespace shoal::cli {

nlohmann::json ClusterJson(const api::Cluster& cluster);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_CLUSTER_JSON_H_
