// identity: who a node certificate names, and whether to believe it.
//
// A node certificate's subject is its identity, as in Docker Swarm:
//   O  = cluster ID, OU = "swarm-manager" | "swarm-worker", CN = node ID.
// ParseIdentity() only reads those fields (after checking the certificate is a node certificate
// at all); VerifyNodeCertificate() additionally checks the chain up to one of the trusted roots,
// the validity period at an injected `now`, and the cluster. During a root rotation the trusted
// roots are the old and the new root, and certificates issued by the new root may arrive with the
// cross-signed intermediate (root_ca.h, CrossSign) so that nodes still trusting only the old root
// accept them.
//
// Status codes: INVALID_ARGUMENT for input that is not a certificate at all, UNAUTHENTICATED
// when the certificate cannot be believed (wrong CA, expired, not yet valid, not a node
// certificate), PERMISSION_DENIED when it is genuine but for another cluster. Messages name the
// node and what to do.
//
// Thread-safety: free functions; safe from any thread.
#ifndef SHOAL_PKI_IDENTITY_H_
#define SHOAL_PKI_IDENTITY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "pki/ossl.h"

namespace shoal::pki {

enum class Role { kWorker, kManager };

inline constexpr char kManagerRoleName[] = "swarm-manager";
inline constexpr char kWorkerRoleName[] = "swarm-worker";
// The root CA's common name, and the extra DNS name manager certificates carry (the CA service
// runs on managers).
inline constexpr char kCaCommonName[] = "swarm-ca";

// "swarm-manager" / "swarm-worker": the certificate OU and the DNS SAN.
const char* RoleName(Role role);
absl::StatusOr<Role> ParseRoleName(absl::string_view name);

struct NodeIdentity {
  std::string node_id;
  Role role = Role::kWorker;
  std::string cluster_id;
  absl::Time not_before;
  absl::Time not_after;
};

// Reads the identity of a node certificate without verifying its signature or dates. Refuses
// a certificate that is not a node certificate (a CA, no clientAuth/serverAuth usage, a missing
// O/CN, an OU that is not a role) with UNAUTHENTICATED.
absl::StatusOr<NodeIdentity> ParseIdentity(X509* cert);

// Verifies a node certificate at time `now`:
//  - cert_chain_pem: the node's certificate first, optionally followed by intermediates (the
//    cross-signed root during a rotation);
//  - trusted_roots_pem: one or more root certificates (two during a root rotation);
//  - intermediates_pem: further untrusted intermediates; may be empty;
//  - expected_cluster_id: when non-empty, the certificate's O must equal it.
absl::StatusOr<NodeIdentity> VerifyNodeCertificate(absl::string_view cert_chain_pem,
                                                   absl::string_view trusted_roots_pem,
                                                   absl::string_view intermediates_pem,
                                                   absl::Time now,
                                                   absl::string_view expected_cluster_id = "");

}  // namespace shoal::pki

#endif  // SHOAL_PKI_IDENTITY_H_
