// cluster_object: the one Cluster object of a swarm (named "default"), and the checks every
// node-facing service makes against it.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_MANAGER_CLUSTER_OBJECT_H_
#define SHOAL_MANAGER_CLUSTER_OBJECT_H_

#include <string>

#include "absl/types/span.h"
#include "grpcpp/grpcpp.h"
#include "manager/store/memory_store.h"
#include "pki/identity.h"
#include "proto/objects.pb.h"

namespace shoal::manager {

inline constexpr char kDefaultClusterName[] = "default";

// The swarm's Cluster in this view, or nullptr before `swarm init` wrote it.
const api::Cluster* FindCluster(const store::ReadTx& tx);

// A copy of the cluster with every secret cleared (CA keys, unlock keys, network keys,
// the signing key in the spec): what the Control API and GetInfo return.
api::Cluster RedactCluster(const api::Cluster& cluster);

// For node-facing gRPC handlers on the manager port: the caller's verified certificate must name
// this cluster, one of `allowed_roles`, and a node that has not been removed
// (Cluster.denied_certificates). On success `caller` (if non-null) receives its identity.
grpc::Status AuthorizeNode(const grpc::ServerContext& context,
                           absl::Span<const pki::Role> allowed_roles,
                           const store::MemoryStore& store, pki::NodeIdentity* caller = nullptr);

// The same with the cluster ID given (the manager's own, from its certificate), for services
// that must work before the store holds the Cluster object: the Raft transport of a manager that
// has just joined and not yet received the log. Removed nodes are refused once the store knows.
grpc::Status AuthorizeNodeOfCluster(const grpc::ServerContext& context,
                                    absl::Span<const pki::Role> allowed_roles,
                                    const std::string& cluster_id, const store::MemoryStore& store,
                                    pki::NodeIdentity* caller = nullptr);

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_CLUSTER_OBJECT_H_
