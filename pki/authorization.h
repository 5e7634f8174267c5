// authorization: which node roles may call which service — the pure half of access control.
//
// Mutual TLS tells a manager *who* calls (PeerIdentity, grpc_tls.h); this decides whether that
// caller may make the call. The rule is Docker Swarm's:
//   - workers may call only the Dispatcher, the NodeCA (certificate renewal) and the LogBroker
//     (an agent publishes its tasks' logs through it);
//   - managers may call everything: also the Raft transport, the Control API and the CA service;
//   - a certificate of another cluster, or of a node that has been removed, is refused whatever
//     its role (an expired one never gets this far: the TLS handshake refuses it).
// Unknown services are manager-only: a new service must be opened to workers on purpose.
//
// Thread-safety: pure functions; safe from any thread. The `is_removed` callback is called on the
// caller's thread.
#ifndef SHOAL_PKI_AUTHORIZATION_H_
#define SHOAL_PKI_AUTHORIZATION_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "pki/identity.h"

namespace shoal::pki {

// Answers whether node `node_id` has been removed from the swarm (its certificate may still be
// within its validity). May be empty: nobody is removed.
using IsRemovedFn = std::function<bool(absl::string_view node_id)>;

// OK, or PERMISSION_DENIED with a message naming the role the call needs and the caller's, e.g.
// "permission denied: this call needs a swarm-manager certificate (caller node abc is
// swarm-worker)". An empty `expected_cluster_id` skips the cluster check.
absl::Status AuthorizeRole(const NodeIdentity& caller, absl::Span<const Role> allowed_roles,
                           absl::string_view expected_cluster_id,
                           const IsRemovedFn& is_removed = nullptr);

// The roles allowed to call `full_method` ("/shoal.api.Dispatcher/Heartbeat", as
// grpc::ServerContext reports it, or just the service "shoal.api.Dispatcher").
std::vector<Role> AllowedRolesForMethod(absl::string_view full_method);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_AUTHORIZATION_H_
