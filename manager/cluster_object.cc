#include "manager/cluster_object.h"

#include <vector>

#include "pki/grpc_tls.h"

namespace shoal::manager {

const api::Cluster* FindCluster(const store::ReadTx& tx) {
  std::vector<const api::Cluster*> found = tx.FindByName<api::Cluster>(kDefaultClusterName);
  if (!found.empty()) return found.front();
  std::vector<const api::Cluster*> all = tx.List<api::Cluster>();
  return all.empty() ? nullptr : all.front();
}

api::Cluster RedactCluster(const api::Cluster& cluster) {
  api::Cluster out = cluster;
  out.mutable_root_ca()->clear_ca_key();
  out.mutable_root_ca()->mutable_root_rotation()->clear_ca_key();
  if (!cluster.root_ca().has_root_rotation()) out.mutable_root_ca()->clear_root_rotation();
  out.mutable_spec()->mutable_ca_config()->clear_signing_ca_key();
  out.clear_network_bootstrap_keys();
  out.clear_unlock_keys();
  return out;
}

namespace {

grpc::Status Authorize(const grpc::ServerContext& context,
                       absl::Span<const pki::Role> allowed_roles, std::string cluster_id,
                       const store::MemoryStore& store, pki::NodeIdentity* caller) {
  std::vector<std::string> denied;
  store.View([&](const store::ReadTx& tx) {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return;
    if (cluster_id.empty()) cluster_id = cluster->id();
    for (const auto& [node_id, unused] : cluster->denied_certificates()) denied.push_back(node_id);
  });
  if (cluster_id.empty()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this manager has not loaded the swarm's state yet; retry shortly");
  }
  pki::IsRemovedFn is_removed = [&denied](absl::string_view node_id) {
    for (const std::string& d : denied) {
      if (d == node_id) return true;
    }
    return false;
  };
  return pki::AuthorizeCall(context, allowed_roles, cluster_id, is_removed, caller);
}

}  // namespace

grpc::Status AuthorizeNode(const grpc::ServerContext& context,
                           absl::Span<const pki::Role> allowed_roles,
                           const store::MemoryStore& store, pki::NodeIdentity* caller) {
  return Authorize(context, allowed_roles, "", store, caller);
}

grpc::Status AuthorizeNodeOfCluster(const grpc::ServerContext& context,
                                    absl::Span<const pki::Role> allowed_roles,
                                    const std::string& cluster_id, const store::MemoryStore& store,
                                    pki::NodeIdentity* caller) {
  return Authorize(context, allowed_roles, cluster_id, store, caller);
}

}  // namespace shoal::manager
