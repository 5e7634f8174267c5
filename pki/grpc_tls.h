// grpc_tls: gRPC credentials for node-to-node mutual TLS, and the caller's identity on the
// server side.
//
// Every node-to-node call is mutual TLS with certificates from the swarm's root CA:
//   - Servers (managers) present their node certificate and verify the client's against the
//     trusted roots. Two policies: kRequireAndVerify for ports that only serve nodes, and
//     kVerifyIfPresent for the manager port that also serves NodeCA to joining nodes, which have
//     no certificate yet (every other service on that port must then refuse calls without a
//     verified identity — AuthorizeCall does).
//   - Clients present their node certificate and verify the server's against the roots, by the
//     name "swarm-manager" (every manager certificate carries it as a DNS name; a worker's does
//     not, so a worker certificate cannot impersonate a manager). Use ManagerChannelArguments().
// The roots are always explicit: gRPC would fall back to the system's public CAs if they were
// empty, so empty roots are an error here.
//
// Credentials are snapshots of the PEM they were built from: after a renewal or a root rotation,
// build new ones (and new channels / a new server).
//
// Thread-safety: free functions; safe from any thread. AuthorizeCall runs on the RPC's thread.
#ifndef SHOAL_PKI_GRPC_TLS_H_
#define SHOAL_PKI_GRPC_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "pki/authorization.h"
#include "pki/identity.h"

namespace shoal::pki {

// The TLS name clients check on a manager's certificate.
inline constexpr char kManagerTlsName[] = "swarm-manager";

// A node's own certificate chain (leaf first) and unwrapped private key, both PEM.
struct TlsIdentity {
  std::string cert_chain_pem;
  std::string key_pem;
};

enum class ClientCertPolicy {
  kRequireAndVerify,  // No certificate, or one that does not verify: handshake fails.
  kVerifyIfPresent,   // No certificate: allowed (anonymous); a bad one: handshake fails.
};

// Server credentials presenting `identity` and verifying clients against `roots_pem`.
// INVALID_ARGUMENT if the key does not match the certificate or the roots are missing.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsIdentity& identity, absl::string_view roots_pem,
    ClientCertPolicy policy = ClientCertPolicy::kRequireAndVerify);

// Client credentials presenting `identity` and verifying the server against `roots_pem`.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsIdentity& identity, absl::string_view roots_pem);

// Client credentials without a client certificate, verifying the server against `roots_pem`:
// for a joining node once it has pinned the root (join_bootstrap.h).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServerAuthChannelCredentials(
    absl::string_view roots_pem);

// Channel arguments for dialling a manager by address while checking its certificate for
// kManagerTlsName.
grpc::ChannelArguments ManagerChannelArguments();

// The caller's node identity from its verified certificate. UNAUTHENTICATED when the caller
// presented no certificate (only possible under kVerifyIfPresent) or it is not a node
// certificate. gRPC has verified the chain and validity during the handshake.
absl::StatusOr<NodeIdentity> PeerIdentity(const grpc::AuthContext& auth_context);

// PeerIdentity + AuthorizeRole for a server handler, as a grpc::Status (UNAUTHENTICATED or
// PERMISSION_DENIED with the messages above). gRPC 1.51's ServerContext does not expose the
// method, so the handler passes its roles, usually
// AllowedRolesForMethod(api::Dispatcher::service_full_name()). `caller` receives the identity.
grpc::Status AuthorizeCall(const grpc::ServerContext& context, absl::Span<const Role> allowed_roles,
                           absl::string_view cluster_id, const IsRemovedFn& is_removed = nullptr,
                           NodeIdentity* caller = nullptr);

// absl::Status -> grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace shoal::pki

#endif  // SHOAL_PKI_GRPC_TLS_H_
