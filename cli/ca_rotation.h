// Following a root CA rotation (`shoal swarm ca --rotate`) until every node moved to the new
// root, as docker's progress display does: how many nodes hold a certificate issued by the new
// root ("rotated TLS certificates"), and how many trust it ("rotated CA certificates").
#ifndef SHOAL_CLI_CA_ROTATION_H_
#define SHOAL_CLI_CA_ROTATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/context.h"
#include "common/clock.h"
#include "objects.pb.h"

namespace shoal::cli {

struct RootRotationProgress {
  bool in_progress = false;  // cluster.root_ca.root_rotation is set
  std::string desired_root;  // PEM the nodes move to (the new root while rotating)
  int total = 0;             // nodes
  int certs_rotated = 0;     // nodes whose certificate's issuer is the desired root
  int trust_rotated = 0;     // nodes whose trust root is the desired root

  bool Converged() const {
    return !in_progress && certs_rotated == total && trust_rotated == total;
  }
  // "rotated TLS certificates: 1/3 nodes\nrotated CA certificates: 2/3 nodes\n"
  std::string Lines() const;
};

// Counts the nodes against the cluster's desired root. INVALID_ARGUMENT when that root's PEM
// cannot be parsed.
absl::StatusOr<RootRotationProgress> ComputeRootRotationProgress(
    const api::Cluster& cluster, const std::vector<api::Node>& nodes);

// The DER subject and DER SubjectPublicKeyInfo of the first certificate in `pem`, as nodes
// report their certificate's issuer (NodeTLSInfo).
struct CertificateIssuer {
  std::string subject;
  std::string public_key;
};
absl::StatusOr<CertificateIssuer> IssuerOf(const std::string& pem);

// Polls GetCluster and ListNodes every `poll` until the rotation converged and the root differs
// from `old_root` (unless `expect_new_root` is false), printing the counts on ctx.out() each
// time they change unless `quiet`. Throws CommandError after `timeout`, saying how far it got
// and that the rotation goes on in the background. Returns the cluster as last read.
api::Cluster WaitForRootRotation(Context& ctx, Clock& clock, const std::string& old_root,
                                 bool expect_new_root, absl::Duration timeout, absl::Duration poll,
                                 bool quiet);

}  // namespace shoal::cli

#endif  // SHOAL_CLI_CA_ROTATION_H_
