// renewer: a node's certificate renewal — when to renew, and the NodeCA exchange that does it.
//
// When: RenewalScheduler. A node renews at pki::RenewalTime (a random point between 50 % and 80 %
// of its certificate's validity), and at once when the managers ask for it through the session:
// the Node's certificate status is RENEW (e.g. after a promotion or demotion) or ROTATE (a root
// rotation), or the Node's role differs from the role the certificate carries.
//
// How: RenewCertificate. A fresh key and CSR, IssueNodeCertificate over mutual TLS with the
// node's current certificate (no join token: the certificate authorises the renewal), then
// NodeCertificateStatus until the certificate is ISSUED, then GetRootCACertificate for the roots
// to trust from now on (they change during a root rotation). The result is checked before it is
// returned: the certificate must be for the new key, name the same node and cluster, and verify
// against the returned roots. Saving it (pki::CertificateStore::SaveNodeCertificate) and
// reconnecting with it (Session::Reconnect) is the caller's job.
//
// Thread-safety: free functions and a stateless class; safe from any thread.
#ifndef SHOAL_AGENT_RENEWER_H_
#define SHOAL_AGENT_RENEWER_H_

#include <string>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "pki/certificate_store.h"
#include "pki/grpc_tls.h"
#include "pki/identity.h"
#include "proto/objects.pb.h"

namespace shoal::agent {

// Renews the certificate of the node whose identity is `current` with the manager at
// `manager_addr` (host:port), trusting `root_ca_pem` for the manager's certificate. The whole
// exchange is bounded by `timeout`. Errors: the failing call's status (UNAVAILABLE when the
// manager cannot be reached, PERMISSION_DENIED for a removed node, ...), DEADLINE_EXCEEDED when
// the certificate was not issued in time, FAILED_PRECONDITION when the CA reports FAILED,
// INVALID_ARGUMENT for an unusable `current`, and DATA_LOSS when the CA's answer does not check
// out.
absl::StatusOr<pki::NodeCertificates> RenewCertificate(const std::string& manager_addr,
                                                       const pki::TlsIdentity& current,
                                                       const std::string& root_ca_pem,
                                                       absl::Duration timeout);

class RenewalScheduler {
 public:
  // When the certificate `current` should be renewed if nothing asks earlier: pki::RenewalTime.
  static absl::Time NextRenewal(const pki::NodeIdentity& current, absl::BitGenRef gen);

  // Whether the managers want a new certificate now: `node` (from the latest SessionMessage) has
  // certificate status RENEW or ROTATE, or a role other than `current`'s. False for a Node that
  // is unset or describes another node.
  static bool NeedsRenewal(const api::Node& node, const pki::NodeIdentity& current);
};

}  // namespace shoal::agent

#endif  // SHOAL_AGENT_RENEWER_H_
