// join_bootstrap: how a joining node reaches a manager before it has any certificate, trusting
// nothing but the root-CA digest in its join token.
//
// Two steps (the shape Docker Swarm uses):
//   1. Over TLS *without* server verification, call NodeCA.GetRootCACertificate (it sends no
//      secret) and keep only the root whose SHA-256 equals the token's digest
//      (VerifyRootAgainstToken). An attacker in the middle can only make this fail: it cannot
//      produce a certificate with the pinned digest.
//   2. Open a channel that verifies the manager's certificate against that pinned root (by the
//      name "swarm-manager"), with no client certificate. Only on this channel does the node send
//      the token and its CSR (NodeCA.IssueNodeCertificate) and fetch its certificate.
// After that the node uses its own certificate and mutual TLS for everything (grpc_tls.h).
//
// Why not one pinned handshake: gRPC 1.51's C++ API can skip verification and run a custom
// verifier (grpc::experimental::TlsCredentials + ExternalCertificateVerifier), and the verifier
// does see the chain (peer_cert_full_chain) — but only what the server sends, which is its leaf
// (plus intermediates), not the root. Tried on this machine: with a leaf-only chain the verifier
// saw 1 certificate, with leaf+root 2. So single-handshake pinning would need every manager to
// also serve its root. The two-step form needs nothing of the server beyond NodeCA, and the call
// that carries the secret runs on gRPC's ordinary verified SslCredentials.
//
// Thread-safety: free functions; safe from any thread. DialManagerPinned blocks for up to
// `timeout` on the network.
#ifndef SHOAL_PKI_JOIN_BOOTSTRAP_H_
#define SHOAL_PKI_JOIN_BOOTSTRAP_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shoal::pki {

struct PinnedManager {
  std::string root_ca_pem;                 // The root the token pins (one certificate).
  std::shared_ptr<grpc::Channel> channel;  // Verifies the manager against it; no client cert.
};

// Step 1 and 2 above against `manager_addr` ("host:port"). Errors: INVALID_ARGUMENT for a
// malformed token; UNAVAILABLE / DEADLINE_EXCEEDED when the manager cannot be reached (message
// names the address); UNAUTHENTICATED when the manager's root does not match the token.
absl::StatusOr<PinnedManager> DialManagerPinned(const std::string& manager_addr,
                                                absl::string_view token, absl::Duration timeout);

// TLS without verifying the server at all: only for step 1, whose answer is checked against
// the token. Never use it for a call that sends anything secret.
std::shared_ptr<grpc::ChannelCredentials> UnverifiedTlsCredentials();

}  // namespace shoal::pki

#endif  // SHOAL_PKI_JOIN_BOOTSTRAP_H_
