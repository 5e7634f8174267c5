#include "pki/grpc_tls.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/str_cat.h"
#include "pki/keys.h"
#include "pki/ossl.h"

namespace shoal::pki {
namespace {

absl::Status CheckIdentity(const TlsIdentity& identity) {
  auto cert = ParseCertificate(identity.cert_chain_pem, "TLS certificate", /*allow_more=*/true);
  if (!cert.ok()) return cert.status();
  auto key = ParsePrivateKey(identity.key_pem);
  if (!key.ok()) return key.status();
  if (!KeyMatchesCertificate(key->get(), cert->get())) {
    return absl::InvalidArgumentError("TLS key does not match the TLS certificate");
  }
  return absl::OkStatus();
}

absl::Status CheckRoots(absl::string_view roots_pem) {
  if (roots_pem.empty()) {
    return absl::InvalidArgumentError(
        "no trusted root CA given (gRPC would otherwise trust the system's public CAs)");
  }
  return ParseCertificates(roots_pem, "trusted root CA certificates").status();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsIdentity& identity, absl::string_view roots_pem, ClientCertPolicy policy) {
  if (absl::Status s = CheckIdentity(identity); !s.ok()) return s;
  if (absl::Status s = CheckRoots(roots_pem); !s.ok()) return s;
  grpc::SslServerCredentialsOptions options(
      policy == ClientCertPolicy::kRequireAndVerify
          ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
          : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = std::string(roots_pem);
  options.pem_key_cert_pairs.push_back({identity.key_pem, identity.cert_chain_pem});
  auto creds = grpc::SslServerCredentials(options);
  if (!creds) return absl::InternalError("gRPC refused the server TLS credentials");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsIdentity& identity, absl::string_view roots_pem) {
  if (absl::Status s = CheckIdentity(identity); !s.ok()) return s;
  if (absl::Status s = CheckRoots(roots_pem); !s.ok()) return s;
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = std::string(roots_pem);
  options.pem_private_key = identity.key_pem;
  options.pem_cert_chain = identity.cert_chain_pem;
  auto creds = grpc::SslCredentials(options);
  if (!creds) return absl::InternalError("gRPC refused the client TLS credentials");
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ServerAuthChannelCredentials(
    absl::string_view roots_pem) {
  if (absl::Status s = CheckRoots(roots_pem); !s.ok()) return s;
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = std::string(roots_pem);
  auto creds = grpc::SslCredentials(options);
  if (!creds) return absl::InternalError("gRPC refused the client TLS credentials");
  return creds;
}

grpc::ChannelArguments ManagerChannelArguments() {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kManagerTlsName);
  return args;
}

absl::StatusOr<NodeIdentity> PeerIdentity(const grpc::AuthContext& auth_context) {
  const auto pem = auth_context.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (!auth_context.IsPeerAuthenticated() || pem.empty()) {
    return absl::UnauthenticatedError(
        "this call needs a node certificate (the caller presented none; a joining node may "
        "only call NodeCA)");
  }
  const absl::string_view text(pem.front().data(), pem.front().size());
  auto cert = ParseCertificate(text, "peer certificate");
  if (!cert.ok()) return absl::UnauthenticatedError(cert.status().message());
  return ParseIdentity(cert->get());
}

grpc::Status AuthorizeCall(const grpc::ServerContext& context, absl::Span<const Role> allowed_roles,
                           absl::string_view cluster_id, const IsRemovedFn& is_removed,
                           NodeIdentity* caller) {
  const auto auth = context.auth_context();
  if (!auth) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no TLS on this call");
  auto id = PeerIdentity(*auth);
  if (!id.ok()) return ToGrpcStatus(id.status());
  if (absl::Status s = AuthorizeRole(*id, allowed_roles, cluster_id, is_removed); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (caller != nullptr) *caller = *std::move(id);
  return grpc::Status::OK;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace shoal::pki
