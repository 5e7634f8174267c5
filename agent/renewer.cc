#include "agent/renewer.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "pki/keys.h"
#include "pki/ossl.h"
#include "pki/renewal.h"
#include "proto/ca.grpc.pb.h"

namespace shoal::agent {
namespace {

// Pause between NodeCertificateStatus calls that return early with the certificate still
// pending (the call itself waits server-side, so this only matters for CAs that answer at once).
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

std::unique_ptr<grpc::ClientContext> Context(absl::Time deadline) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(deadline));
  return ctx;
}

// Whether `cert_pem`'s leaf is for `key_pem`'s key.
bool CertificateIsForKey(const std::string& cert_pem, const std::string& key_pem) {
  auto cert = pki::ParseCertificate(cert_pem, "node certificate", /*allow_more=*/true);
  auto key = pki::ParsePrivateKey(key_pem);
  return cert.ok() && key.ok() && pki::KeyMatchesCertificate(key->get(), cert->get());
}

}  // namespace

absl::StatusOr<pki::NodeCertificates> RenewCertificate(const std::string& manager_addr,
                                                       const pki::TlsIdentity& current,
                                                       const std::string& root_ca_pem,
                                                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;

  auto leaf = pki::ParseCertificate(current.cert_chain_pem, "node certificate",
                                    /*allow_more=*/true);
  if (!leaf.ok()) return leaf.status();
  auto me = pki::ParseIdentity(leaf->get());
  if (!me.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot renew: the current certificate is unusable: ", me.status().message()));
  }
  const std::string context =
      absl::StrCat("renewing the certificate of node ", me->node_id, " with ", manager_addr);

  auto creds = pki::ChannelCredentials(current, root_ca_pem);
  if (!creds.ok()) return creds.status();
  auto key_and_csr = pki::GenerateKeyAndCsr();
  if (!key_and_csr.ok()) return key_and_csr.status();
  std::unique_ptr<api::NodeCA::Stub> stub = api::NodeCA::NewStub(
      grpc::CreateCustomChannel(manager_addr, *creds, pki::ManagerChannelArguments()));

  // 1. Submit the CSR; the certificate authorises it, so no token.
  api::IssueNodeCertificateRequest issue;
  issue.set_role(me->role == pki::Role::kManager ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER);
  issue.set_csr(key_and_csr->csr_pem);
  api::IssueNodeCertificateResponse issued;
  grpc::Status s = stub->IssueNodeCertificate(Context(deadline).get(), issue, &issued);
  if (!s.ok()) return FromGrpc(s, absl::StrCat(context, ": IssueNodeCertificate"));
  if (!issued.node_id().empty() && issued.node_id() != me->node_id) {
    return absl::DataLossError(
        absl::StrCat(context, ": the CA answered for node ", issued.node_id(), " instead"));
  }

  // 2. Wait for the certificate for the new key.
  std::string cert_pem;
  api::IssuanceStatus::State last_state = api::IssuanceStatus::UNKNOWN;
  for (;;) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          context, ": the certificate was not issued within ", absl::FormatDuration(timeout),
          " (last status ", api::IssuanceStatus::State_Name(last_state), "); retry later"));
    }
    api::NodeCertificateStatusRequest status_request;
    status_request.set_node_id(me->node_id);
    api::NodeCertificateStatusResponse status;
    s = stub->NodeCertificateStatus(Context(deadline).get(), status_request, &status);
    if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) continue;  // Reported above.
    if (!s.ok()) return FromGrpc(s, absl::StrCat(context, ": NodeCertificateStatus"));
    last_state = status.status().state();
    if (last_state == api::IssuanceStatus::FAILED) {
      return absl::FailedPreconditionError(absl::StrCat(
          context, ": the CA could not issue the certificate: ", status.status().err()));
    }
    // ISSUED for another key is the previous certificate: the CA has not taken the CSR yet.
    if (last_state == api::IssuanceStatus::ISSUED &&
        CertificateIsForKey(status.certificate().certificate(), key_and_csr->key_pem)) {
      cert_pem = status.certificate().certificate();
      break;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left > absl::ZeroDuration()) absl::SleepFor(std::min(left, kPollInterval));
  }

  // 3. The roots to trust from now on.
  api::GetRootCACertificateResponse roots;
  s = stub->GetRootCACertificate(Context(deadline).get(), {}, &roots);
  if (!s.ok()) return FromGrpc(s, absl::StrCat(context, ": GetRootCACertificate"));
  if (roots.certificate().empty()) {
    return absl::DataLossError(absl::StrCat(context, ": the manager returned no root CA"));
  }

  // The new certificate must be for the same node in the same cluster, and verify.
  auto verified =
      pki::VerifyNodeCertificate(cert_pem, roots.certificate(), "", absl::Now(), me->cluster_id);
  if (!verified.ok()) {
    return absl::DataLossError(absl::StrCat(
        context, ": the issued certificate does not check out: ", verified.status().message()));
  }
  if (verified->node_id != me->node_id) {
    return absl::DataLossError(
        absl::StrCat(context, ": the issued certificate is for node ", verified->node_id));
  }
  return pki::NodeCertificates{roots.certificate(), cert_pem, key_and_csr->key_pem};
}

absl::Time RenewalScheduler::NextRenewal(const pki::NodeIdentity& current, absl::BitGenRef gen) {
  return pki::RenewalTime(current.not_before, current.not_after, gen);
}

bool RenewalScheduler::NeedsRenewal(const api::Node& node, const pki::NodeIdentity& current) {
  if (node.id().empty() || node.id() != current.node_id) return false;
  const api::IssuanceStatus::State state = node.certificate().status().state();
  if (state == api::IssuanceStatus::RENEW || state == api::IssuanceStatus::ROTATE) return true;
  const pki::Role role =
      node.role() == api::NODE_ROLE_MANAGER ? pki::Role::kManager : pki::Role::kWorker;
  return role != current.role;
}

}  // namespace shoal::agent
