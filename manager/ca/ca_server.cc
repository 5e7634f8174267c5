#include "manager/ca/ca_server.h"

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "manager/cluster_object.h"
#include "pki/grpc_tls.h"
#include "pki/join_token.h"
#include "pki/keys.h"

namespace shoal::manager {
namespace {

constexpr char kNoClusterMessage[] =
    "this manager has not loaded the swarm's state yet (no cluster object); retry shortly";

pki::Role ToPkiRole(api::NodeRole role) {
  return role == api::NODE_ROLE_MANAGER ? pki::Role::kManager : pki::Role::kWorker;
}

grpc::Status Unavailable(const std::string& message) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message);
}

// The caller's identity when it presented a node certificate; UNAUTHENTICATED when it presented
// none (a joining node).
absl::StatusOr<pki::NodeIdentity> CallerIdentity(const grpc::ServerContext& context) {
  const auto auth = context.auth_context();
  if (!auth) return absl::UnauthenticatedError("no TLS on this call");
  return pki::PeerIdentity(*auth);
}

// When the call must have answered by, in wall-clock time (gRPC deadlines are wall-clock).
absl::Time CallDeadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

grpc::Status RootCertificates(const store::MemoryStore& store,
                              api::GetRootCACertificateResponse* response) {
  std::string roots;
  store.View([&](const store::ReadTx& tx) {
    if (const api::Cluster* cluster = FindCluster(tx)) roots = TrustedRootsPem(cluster->root_ca());
  });
  if (roots.empty()) return Unavailable(kNoClusterMessage);
  response->set_certificate(std::move(roots));
  return grpc::Status::OK;
}

}  // namespace

NodeCaService::NodeCaService(store::MemoryStore* store, RaftControl* raft, CaOptions options)
    : store_(store),
      raft_(raft),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : &RealClock()) {}

grpc::Status NodeCaService::IssueNodeCertificate(grpc::ServerContext* context,
                                                 const api::IssueNodeCertificateRequest* request,
                                                 api::IssueNodeCertificateResponse* response) {
  // Like Docker: a caller with a node certificate renews (its token, if any, is ignored); a
  // caller without one joins with a token.
  auto identity = CallerIdentity(*context);
  if (!identity.ok()) {
    if (identity.status().code() != absl::StatusCode::kUnauthenticated) {
      return pki::ToGrpcStatus(identity.status());
    }
    return IssueForJoiningNode(*request, response);
  }
  pki::NodeIdentity caller;
  grpc::Status auth =
      AuthorizeNode(*context, {pki::Role::kWorker, pki::Role::kManager}, *store_, &caller);
  if (!auth.ok()) return auth;
  return RenewForNode(caller.node_id, *request, response);
}

grpc::Status NodeCaService::IssueForJoiningNode(const api::IssueNodeCertificateRequest& request,
                                                api::IssueNodeCertificateResponse* response) {
  if (request.token().empty()) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "a join token is required to join the swarm: get one with `shoal swarm join-token "
        "worker|manager` on a manager (a node renewing its certificate must present it)");
  }
  if (auto parsed = pki::ParseJoinToken(request.token()); !parsed.ok()) {
    return pki::ToGrpcStatus(parsed.status());
  }
  if (auto csr = pki::ParseCsr(request.csr()); !csr.ok()) {
    return pki::ToGrpcStatus(csr.status());
  }
  const std::string node_id = NewId();
  api::NodeRole role = api::NODE_ROLE_WORKER;
  bool token_ok = false;
  const absl::Status status = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return absl::UnavailableError(kNoClusterMessage);
    const api::JoinTokens& tokens = cluster->root_ca().join_tokens();
    // Both comparisons always run, in constant time each.
    const bool worker = pki::TokenMatches(request.token(), tokens.worker());
    const bool manager = pki::TokenMatches(request.token(), tokens.manager());
    token_ok = worker || manager;
    if (!token_ok) return absl::OkStatus();  // nothing written; reported below
    role = manager ? api::NODE_ROLE_MANAGER : api::NODE_ROLE_WORKER;
    const absl::Time now = clock_->Now();
    auto signer = signers_.Get(cluster->root_ca(), now);
    if (!signer.ok()) return signer.status();
    auto cert = (*signer)->IssueNodeCertificate(request.csr(), node_id, ToPkiRole(role),
                                                cluster->id(), NodeCertValidity(*cluster), now);
    if (!cert.ok()) return cert.status();

    api::Node node;
    node.set_id(node_id);
    node.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
    node.mutable_spec()->set_desired_role(role);
    node.mutable_spec()->set_availability(request.availability());
    node.set_role(role);
    api::Certificate* c = node.mutable_certificate();
    c->set_role(role);
    c->set_csr(request.csr());
    c->set_cn(node_id);
    c->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
    c->set_certificate(*std::move(cert));
    node.mutable_status()->set_state(api::NodeStatus::UNKNOWN);
    return tx.Create(std::move(node));
  });
  if (!status.ok()) return pki::ToGrpcStatus(status);
  if (!token_ok) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "invalid join token: it does not match this swarm's worker or manager "
                        "token (it may have been rotated); get a current one with `shoal swarm "
                        "join-token worker|manager` on a manager");
  }
  response->set_node_id(node_id);
  response->set_node_membership(api::NodeSpec::ACCEPTED);
  return grpc::Status::OK;
}

grpc::Status NodeCaService::RenewForNode(const std::string& node_id,
                                         const api::IssueNodeCertificateRequest& request,
                                         api::IssueNodeCertificateResponse* response) {
  if (auto csr = pki::ParseCsr(request.csr()); !csr.ok()) {
    return pki::ToGrpcStatus(csr.status());
  }
  api::NodeSpec::Membership membership = api::NodeSpec::ACCEPTED;
  const absl::Status status = UpdateWithRetry(*store_, [&](store::WriteTx& tx) -> absl::Status {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return absl::UnavailableError(kNoClusterMessage);
    const api::Node* stored = tx.Get<api::Node>(node_id);
    if (stored == nullptr) {
      return absl::PermissionDeniedError(absl::StrCat(
          "node ", node_id,
          " has been removed from the swarm; it must join again with a join token (`shoal swarm "
          "leave --force`, then `shoal swarm join`)"));
    }
    // The role the node has now: promote/demote change Node.role, and the renewal is how the
    // node's certificate catches up with it.
    const api::NodeRole role = stored->role();
    const absl::Time now = clock_->Now();
    auto signer = signers_.Get(cluster->root_ca(), now);
    if (!signer.ok()) return signer.status();
    auto cert = (*signer)->IssueNodeCertificate(request.csr(), node_id, ToPkiRole(role),
                                                cluster->id(), NodeCertValidity(*cluster), now);
    if (!cert.ok()) return cert.status();
    api::Node node = *stored;
    api::Certificate* c = node.mutable_certificate();
    c->set_role(role);
    c->set_csr(request.csr());
    c->set_cn(node_id);
    c->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
    c->mutable_status()->clear_err();
    c->set_certificate(*std::move(cert));
    membership = node.spec().membership();
    return tx.Update(std::move(node));
  });
  if (!status.ok()) return pki::ToGrpcStatus(status);
  response->set_node_id(node_id);
  response->set_node_membership(membership);
  return grpc::Status::OK;
}

grpc::Status NodeCaService::NodeCertificateStatus(grpc::ServerContext* context,
                                                  const api::NodeCertificateStatusRequest* request,
                                                  api::NodeCertificateStatusResponse* response) {
  const std::string& node_id = request->node_id();
  if (node_id.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "node_id is required: pass the ID IssueNodeCertificate returned");
  }
  auto identity = CallerIdentity(*context);
  if (identity.ok()) {
    // A certified node may only ask about itself.
    pki::NodeIdentity caller;
    grpc::Status auth =
        AuthorizeNode(*context, {pki::Role::kWorker, pki::Role::kManager}, *store_, &caller);
    if (!auth.ok()) return auth;
    if (caller.node_id != node_id) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          absl::StrCat("node ", caller.node_id,
                                       " may only ask for its own certificate status, not for "
                                       "node ",
                                       node_id));
    }
  } else if (identity.status().code() != absl::StatusCode::kUnauthenticated) {
    return pki::ToGrpcStatus(identity.status());
  }
  // An anonymous caller is a node that just joined and asks for the certificate of the ID it was
  // given. Node IDs carry 128 random bits, so knowing one is the capability to ask about it (this
  // is Docker Swarm's model too). What it gets is a certificate, which is public: the private key
  // never leaves the node.

  bool found = false;
  api::Node node;
  auto read = [&](const store::ReadTx& tx) {
    const api::Node* n = tx.Get<api::Node>(node_id);
    found = n != nullptr;
    if (found) node = *n;
  };
  store::WatchFilter filter = store::WatchFilter::Kind(api::OBJECT_KIND_NODE);
  filter.predicate = [node_id](const api::StoreObject& o) { return o.node().id() == node_id; };
  std::unique_ptr<store::Watcher> watcher = store_->ViewAndWatch(read, filter);

  const absl::Time call_deadline = CallDeadline(*context);
  // Answer a little before the caller gives up, so that it gets the current status rather than
  // DEADLINE_EXCEEDED.
  const absl::Time deadline =
      std::min(call_deadline - absl::Milliseconds(100), absl::Now() + options_.max_status_wait);
  while (found && node.certificate().status().state() == api::IssuanceStatus::PENDING) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the call");
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    auto change = watcher->Next(std::min(deadline, now + absl::Seconds(1)));
    if (!change.ok()) {
      if (change.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
      // The watcher fell behind or the store was restored: read again.
      watcher = store_->ViewAndWatch(read, filter);
      continue;
    }
    for (const store::StoreEvent& event : change->events) {
      if (event.action == api::StoreAction::REMOVE) {
        found = false;
      } else {
        found = true;
        node = event.object->node();
      }
    }
  }
  if (!found) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("node ", node_id,
                                     " is not a member of this swarm (it may have been removed); "
                                     "join again with a join token"));
  }
  *response->mutable_status() = node.certificate().status();
  *response->mutable_certificate() = node.certificate();
  response->mutable_certificate()->clear_csr();
  return grpc::Status::OK;
}

grpc::Status NodeCaService::GetRootCACertificate(grpc::ServerContext*,
                                                 const api::GetRootCACertificateRequest*,
                                                 api::GetRootCACertificateResponse* response) {
  // Open to anyone: root certificates are public, and a joining node checks the answer against
  // the digest in its token (pki/join_bootstrap.h).
  return RootCertificates(*store_, response);
}

ManagerCaService::ManagerCaService(store::MemoryStore* store, RaftControl* raft, CaOptions options)
    : store_(store), raft_(raft), options_(options) {}

grpc::Status ManagerCaService::GetRootCACertificate(grpc::ServerContext* context,
                                                    const api::GetRootCACertificateRequest*,
                                                    api::GetRootCACertificateResponse* response) {
  // The CA service is for managers (ca.proto); nodes use NodeCA.GetRootCACertificate.
  grpc::Status auth = AuthorizeNode(*context, {pki::Role::kManager}, *store_);
  if (!auth.ok()) return auth;
  return RootCertificates(*store_, response);
}

grpc::Status ManagerCaService::GetManagerUnlockKey(grpc::ServerContext* context,
                                                   const api::GetManagerUnlockKeyRequest*,
                                                   api::GetManagerUnlockKeyResponse* response) {
  pki::NodeIdentity caller;
  grpc::Status auth = AuthorizeNode(*context, {pki::Role::kManager}, *store_, &caller);
  if (!auth.ok()) return auth;
  bool have_cluster = false;
  bool is_manager = false;
  store_->View([&](const store::ReadTx& tx) {
    const api::Cluster* cluster = FindCluster(tx);
    if (cluster == nullptr) return;
    have_cluster = true;
    // A demoted manager keeps its certificate until it renews: the store's role decides.
    const api::Node* node = tx.Get<api::Node>(caller.node_id);
    is_manager = node != nullptr && node->role() == api::NODE_ROLE_MANAGER;
    if (!is_manager) return;
    if (const api::EncryptionKey* key = NewestUnlockKey(*cluster)) {
      response->set_unlock_key(key->key());
    }
    *response->mutable_version() = cluster->meta().version();
  });
  if (!have_cluster) return Unavailable(kNoClusterMessage);
  if (!is_manager) {
    response->Clear();
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("node ", caller.node_id,
                     " is not a manager of this swarm (it was demoted or removed)"));
  }
  return grpc::Status::OK;
}

}  // namespace shoal::manager
