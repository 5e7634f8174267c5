#include "pki/join_bootstrap.h"

#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"
#include "ca.grpc.pb.h"
#include "pki/grpc_tls.h"
#include "pki/join_token.h"

namespace shoal::pki {

std::shared_ptr<grpc::ChannelCredentials> UnverifiedTlsCredentials() {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_verify_server_certs(false);
  // The default verifier checks the host name, which means nothing without a verified chain.
  options.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

absl::StatusOr<PinnedManager> DialManagerPinned(const std::string& manager_addr,
                                                absl::string_view token, absl::Duration timeout) {
  if (auto parsed = ParseJoinToken(token); !parsed.ok()) return parsed.status();
  const absl::Time deadline = absl::Now() + timeout;

  auto creds = UnverifiedTlsCredentials();
  if (!creds) return absl::InternalError("gRPC refused TLS credentials for the root CA fetch");
  // The name only sets SNI here (nothing is verified); it keeps the manager's TLS stack from
  // logging a mismatch for every joining node.
  auto insecure_channel = grpc::CreateCustomChannel(manager_addr, creds, ManagerChannelArguments());
  auto stub = api::NodeCA::NewStub(insecure_channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  api::GetRootCACertificateRequest request;
  api::GetRootCACertificateResponse response;
  const grpc::Status status = stub->GetRootCACertificate(&ctx, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("fetching the root CA from ", manager_addr, ": ",
                                     status.error_message(), " (is a manager listening there?)"));
  }
  auto root = VerifyRootAgainstToken(response.certificate(), token);
  if (!root.ok()) {
    return absl::Status(root.status().code(),
                        absl::StrCat(manager_addr, ": ", root.status().message()));
  }

  auto pinned = ServerAuthChannelCredentials(*root);
  if (!pinned.ok()) return pinned.status();
  PinnedManager out;
  out.root_ca_pem = *std::move(root);
  out.channel = grpc::CreateCustomChannel(manager_addr, *pinned, ManagerChannelArguments());
  return out;
}

}  // namespace shoal::pki
