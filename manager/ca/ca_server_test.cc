// NodeCA and CA over real mutual-TLS gRPC on 127.0.0.1, on a store with a DirectProposer: nodes
// joining by token, renewing, being refused, and a root CA rotation from start to finish.
//
// gRPC checks certificate dates against the real clock, so the injected ManualClock starts at
// the real time (whole seconds) and certificates are issued relative to it.
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/ca/ca_common.h"
#include "manager/ca/ca_server.h"
#include "manager/ca/rotation.h"
#include "manager/cluster_object.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "openssl/x509.h"
#include "pki/grpc_tls.h"
#include "pki/identity.h"
#include "pki/join_bootstrap.h"
#include "pki/join_token.h"
#include "pki/keys.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/ca.grpc.pb.h"

namespace shoal::manager {
namespace {

using ::testing::HasSubstr;

constexpr char kWrongTokenMessage[] =
    "invalid join token: it does not match this swarm's worker or manager token (it may have "
    "been rotated); get a current one with `shoal swarm join-token worker|manager` on a manager";

std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(10)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

pki::NodeIdentity IdentityOf(const std::string& cert_pem) {
  auto cert = pki::ParseCertificate(cert_pem, "test certificate", /*allow_more=*/true);
  EXPECT_TRUE(cert.ok()) << cert.status();
  if (!cert.ok()) return {};
  auto id = pki::ParseIdentity(cert->get());
  EXPECT_TRUE(id.ok()) << id.status();
  return id.ok() ? *id : pki::NodeIdentity{};
}

// A node as the test holds it: its ID, certificate chain and key.
struct TestNode {
  std::string id;
  std::string cert_pem;
  std::string key_pem;
};

class CaServiceTest : public ::testing::Test {
 protected:
  CaServiceTest()
      : clock_(absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))),
        store_(&proposer_, store::StoreOptions{&clock_}),
        raft_(1, "mgr1") {
    proposer_.Attach(&store_);
  }

  void SetUp() override {
    root_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA(clock_.Now()));
    cluster_id_ = "cluster1";
    worker_token_ = pki::GenerateJoinToken(root_->Digest());
    manager_token_ = pki::GenerateJoinToken(root_->Digest());
    api::Cluster cluster;
    cluster.set_id(cluster_id_);
    cluster.mutable_spec()->mutable_annotations()->set_name(kDefaultClusterName);
    api::RootCA* r = cluster.mutable_root_ca();
    r->set_ca_cert(root_->cert_pem());
    r->set_ca_key(root_->key_pem());
    r->set_ca_cert_hash(CaCertHash(root_->Digest()));
    r->mutable_join_tokens()->set_worker(worker_token_);
    r->mutable_join_tokens()->set_manager(manager_token_);
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(cluster); }).ok());

    // The manager serving the port.
    manager_ = pki::testing::IssueNode(*root_, "mgr1", pki::Role::kManager, cluster_id_,
                                       absl::Hours(24), clock_.Now());
    CaOptions options{&clock_};
    node_ca_ = std::make_unique<NodeCaService>(&store_, &raft_, options);
    manager_ca_ = std::make_unique<ManagerCaService>(&store_, &raft_, options);
    auto creds = pki::ServerCredentials({manager_.cert_pem, manager_.key_pem}, root_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(node_ca_.get());
    builder.RegisterService(manager_ca_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::string addr() const { return absl::StrCat("127.0.0.1:", port_); }

  // A channel with `node`'s certificate (mutual TLS), trusting `roots` (default: the test root).
  std::shared_ptr<grpc::Channel> Dial(const TestNode& node, std::string roots = "") {
    if (roots.empty()) roots = root_->cert_pem();
    auto creds = pki::ChannelCredentials({node.cert_pem, node.key_pem}, roots);
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(addr(), *creds, pki::ManagerChannelArguments());
  }
  // A channel without a client certificate, as a joining node has.
  std::shared_ptr<grpc::Channel> DialAnonymous() {
    auto creds = pki::ServerAuthChannelCredentials(root_->cert_pem());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(addr(), *creds, pki::ManagerChannelArguments());
  }

  // Joins through the pinned bootstrap channel, as `shoal swarm join` does.
  grpc::Status Join(const std::string& token, TestNode* node,
                    api::NodeAvailability availability = api::NODE_AVAILABILITY_ACTIVE) {
    auto pinned = pki::DialManagerPinned(addr(), token, absl::Seconds(10));
    if (!pinned.ok()) return pki::ToGrpcStatus(pinned.status());
    auto kc = pki::GenerateKeyAndCsr();
    EXPECT_TRUE(kc.ok());
    auto stub = api::NodeCA::NewStub(pinned->channel);
    api::IssueNodeCertificateRequest request;
    request.set_csr(kc->csr_pem);
    request.set_token(token);
    request.set_availability(availability);
    api::IssueNodeCertificateResponse issued;
    grpc::Status s = stub->IssueNodeCertificate(Ctx().get(), request, &issued);
    if (!s.ok()) return s;
    EXPECT_EQ(issued.node_membership(), api::NodeSpec::ACCEPTED);
    api::NodeCertificateStatusRequest status_request;
    status_request.set_node_id(issued.node_id());
    api::NodeCertificateStatusResponse status;
    s = stub->NodeCertificateStatus(Ctx().get(), status_request, &status);
    if (!s.ok()) return s;
    EXPECT_EQ(status.status().state(), api::IssuanceStatus::ISSUED);
    node->id = issued.node_id();
    node->cert_pem = status.certificate().certificate();
    node->key_pem = kc->key_pem;
    return grpc::Status::OK;
  }

  TestNode MustJoin(const std::string& token) {
    TestNode node;
    grpc::Status s = Join(token, &node);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return node;
  }

  // Renews `node`'s certificate over mutual TLS with its current one; on success `node` holds
  // the new certificate and key.
  // What a node's session reports once it uses a certificate issued by `root_pem`.
  void ReportIssuer(const std::string& node_id, const std::string& root_pem) {
    auto root = pki::ParseCertificate(root_pem, "root");
    ASSERT_TRUE(root.ok());
    unsigned char* buf = nullptr;
    int len = i2d_X509_NAME(X509_get_subject_name(root->get()), &buf);
    const std::string subject(reinterpret_cast<char*>(buf), len);
    OPENSSL_free(buf);
    buf = nullptr;
    len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(root->get()), &buf);
    const std::string key(reinterpret_cast<char*>(buf), len);
    OPENSSL_free(buf);
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) -> absl::Status {
                      api::Node n = *tx.Get<api::Node>(node_id);
                      n.mutable_description()->mutable_tls_info()->set_cert_issuer_subject(subject);
                      n.mutable_description()->mutable_tls_info()->set_cert_issuer_public_key(key);
                      return tx.Update(std::move(n));
                    })
                    .ok());
  }

  grpc::Status Renew(TestNode* node, std::string roots = "",
                     api::NodeRole asked_role = api::NODE_ROLE_WORKER) {
    auto kc = pki::GenerateKeyAndCsr();
    EXPECT_TRUE(kc.ok());
    auto stub = api::NodeCA::NewStub(Dial(*node, roots));
    api::IssueNodeCertificateRequest request;
    request.set_csr(kc->csr_pem);
    request.set_role(asked_role);
    api::IssueNodeCertificateResponse issued;
    grpc::Status s = stub->IssueNodeCertificate(Ctx().get(), request, &issued);
    if (!s.ok()) return s;
    EXPECT_EQ(issued.node_id(), node->id);
    api::NodeCertificateStatusRequest status_request;
    status_request.set_node_id(node->id);
    api::NodeCertificateStatusResponse status;
    s = stub->NodeCertificateStatus(Ctx().get(), status_request, &status);
    if (!s.ok()) return s;
    EXPECT_EQ(status.status().state(), api::IssuanceStatus::ISSUED);
    node->cert_pem = status.certificate().certificate();
    node->key_pem = kc->key_pem;
    return grpc::Status::OK;
  }

  api::Node GetNode(const std::string& id) {
    api::Node node;
    store_.View([&](const store::ReadTx& tx) {
      if (const api::Node* n = tx.Get<api::Node>(id)) node = *n;
    });
    return node;
  }
  api::Cluster GetCluster() {
    api::Cluster cluster;
    store_.View([&](const store::ReadTx& tx) { cluster = *FindCluster(tx); });
    return cluster;
  }
  size_t NodeCount() {
    size_t n = 0;
    store_.View([&](const store::ReadTx& tx) { n = tx.Count<api::Node>(); });
    return n;
  }
  void UpdateCluster(const std::function<void(api::Cluster*)>& change) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      api::Cluster c = *FindCluster(tx);
      change(&c);
      return tx.Update(std::move(c));
    });
    ASSERT_TRUE(s.ok()) << s;
  }
  void UpdateNode(const std::string& id, const std::function<void(api::Node*)>& change) {
    absl::Status s = store_.Update([&](store::WriteTx& tx) {
      api::Node n = *tx.Get<api::Node>(id);
      change(&n);
      return tx.Update(std::move(n));
    });
    ASSERT_TRUE(s.ok()) << s;
  }

  // Waits (event-driven, up to `timeout`) until `cond` holds on the store.
  bool WaitForStore(const std::function<bool(const store::ReadTx&)>& cond,
                    absl::Duration timeout = absl::Seconds(20)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      bool holds = false;
      auto watcher = store_.ViewAndWatch([&](const store::ReadTx& tx) { holds = cond(tx); });
      if (holds) return true;
      auto change = watcher->Next(deadline);
      if (!change.ok() && change.status().code() == absl::StatusCode::kDeadlineExceeded) break;
    }
    bool holds = false;
    store_.View([&](const store::ReadTx& tx) { holds = cond(tx); });
    return holds;
  }

  ManualClock clock_;
  store::DirectProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<pki::RootCA> root_;
  std::string cluster_id_, worker_token_, manager_token_;
  pki::testing::IssuedNode manager_;
  std::unique_ptr<NodeCaService> node_ca_;
  std::unique_ptr<ManagerCaService> manager_ca_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(CaServiceTest, WorkerJoinsByToken) {
  TestNode node;
  grpc::Status s = Join(worker_token_, &node, api::NODE_AVAILABILITY_DRAIN);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(node.id.size(), kIdLength);

  // The certificate: O = cluster, OU = worker, CN = the new ID; 90 days (the default) from now,
  // backdated by an hour.
  const pki::NodeIdentity id = IdentityOf(node.cert_pem);
  EXPECT_EQ(id.node_id, node.id);
  EXPECT_EQ(id.role, pki::Role::kWorker);
  EXPECT_EQ(id.cluster_id, cluster_id_);
  EXPECT_EQ(id.not_before, clock_.Now() - pki::RootCA::kBackdate);
  EXPECT_EQ(id.not_after, clock_.Now() + pki::RootCA::kDefaultNodeValidity);
  auto verified =
      pki::VerifyNodeCertificate(node.cert_pem, root_->cert_pem(), "", clock_.Now(), cluster_id_);
  EXPECT_TRUE(verified.ok()) << verified.status();

  // The Node in the store.
  const api::Node stored = GetNode(node.id);
  EXPECT_EQ(stored.id(), node.id);
  EXPECT_EQ(stored.spec().membership(), api::NodeSpec::ACCEPTED);
  EXPECT_EQ(stored.spec().desired_role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(stored.spec().availability(), api::NODE_AVAILABILITY_DRAIN);
  EXPECT_EQ(stored.role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(stored.status().state(), api::NodeStatus::UNKNOWN);
  EXPECT_EQ(stored.certificate().role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(stored.certificate().cn(), node.id);
  EXPECT_EQ(stored.certificate().status().state(), api::IssuanceStatus::ISSUED);
  EXPECT_EQ(stored.certificate().certificate(), node.cert_pem);
  EXPECT_FALSE(stored.certificate().csr().empty());
}

TEST_F(CaServiceTest, ManagerJoinsByTokenWithTheClusterCertExpiry) {
  UpdateCluster([](api::Cluster* c) {
    c->mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry()->set_seconds(3 * 3600);
  });
  TestNode node = MustJoin(manager_token_);
  const pki::NodeIdentity id = IdentityOf(node.cert_pem);
  EXPECT_EQ(id.role, pki::Role::kManager);
  EXPECT_EQ(id.node_id, node.id);
  EXPECT_EQ(id.not_after, clock_.Now() + absl::Hours(3));
  const api::Node stored = GetNode(node.id);
  EXPECT_EQ(stored.role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(stored.spec().desired_role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(stored.spec().availability(), api::NODE_AVAILABILITY_ACTIVE);
}

TEST_F(CaServiceTest, WrongTokenIsRefused) {
  // Right root digest (so the pinned dial succeeds), wrong secret.
  const std::string wrong = pki::GenerateJoinToken(root_->Digest());
  TestNode node;
  grpc::Status s = Join(wrong, &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), kWrongTokenMessage);
  EXPECT_EQ(NodeCount(), 0u);

  // Malformed token and missing token, sent straight on an anonymous channel.
  auto stub = api::NodeCA::NewStub(DialAnonymous());
  auto kc = pki::GenerateKeyAndCsr();
  api::IssueNodeCertificateRequest request;
  request.set_csr(kc->csr_pem);
  request.set_token("SWMTKN-1-nonsense");
  api::IssueNodeCertificateResponse response;
  s = stub->IssueNodeCertificate(Ctx().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("invalid join token"));
  request.clear_token();
  s = stub->IssueNodeCertificate(Ctx().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("a join token is required"));
  // A good token with a bad CSR.
  request.set_token(worker_token_);
  request.set_csr("not a CSR");
  s = stub->IssueNodeCertificate(Ctx().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(NodeCount(), 0u);
}

TEST_F(CaServiceTest, RotatedOutTokenIsRefused) {
  const std::string old_token = worker_token_;
  const std::string new_token = pki::GenerateJoinToken(root_->Digest());
  UpdateCluster(
      [&](api::Cluster* c) { c->mutable_root_ca()->mutable_join_tokens()->set_worker(new_token); });
  TestNode node;
  grpc::Status s = Join(old_token, &node);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), kWrongTokenMessage);
  s = Join(new_token, &node);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(IdentityOf(node.cert_pem).role, pki::Role::kWorker);
}

TEST_F(CaServiceTest, RenewalKeepsTheNodeIdAndTakesTheStoredRole) {
  TestNode node = MustJoin(worker_token_);
  const std::string first_cert = node.cert_pem;
  // Later (less than the backdating: gRPC checks dates against the real clock), the renewal
  // gets fresh dates.
  clock_.Advance(absl::Minutes(10));
  ASSERT_TRUE(Renew(&node).ok());
  EXPECT_NE(node.cert_pem, first_cert);
  pki::NodeIdentity id = IdentityOf(node.cert_pem);
  EXPECT_EQ(id.node_id, node.id);
  EXPECT_EQ(id.role, pki::Role::kWorker);
  EXPECT_EQ(id.not_before, clock_.Now() - pki::RootCA::kBackdate);

  // Promotion changed Node.role: the next certificate is a manager's, whatever the request says.
  UpdateNode(node.id, [](api::Node* n) {
    n->set_role(api::NODE_ROLE_MANAGER);
    n->mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  });
  grpc::Status s = Renew(&node, "", api::NODE_ROLE_WORKER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  id = IdentityOf(node.cert_pem);
  EXPECT_EQ(id.node_id, node.id);
  EXPECT_EQ(id.role, pki::Role::kManager);
  api::Node stored = GetNode(node.id);
  EXPECT_EQ(stored.certificate().role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(stored.certificate().certificate(), node.cert_pem);

  // Demotion: back to a worker certificate, though the caller's certificate says manager.
  UpdateNode(node.id, [](api::Node* n) { n->set_role(api::NODE_ROLE_WORKER); });
  s = Renew(&node, "", api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(IdentityOf(node.cert_pem).role, pki::Role::kWorker);
  EXPECT_EQ(NodeCount(), 1u);  // no new node was created on the way
}

TEST_F(CaServiceTest, RemovedNodesCannotRenew) {
  TestNode deleted = MustJoin(worker_token_);
  TestNode denied = MustJoin(worker_token_);
  ASSERT_TRUE(
      store_.Update([&](store::WriteTx& tx) { return tx.Delete<api::Node>(deleted.id); }).ok());
  grpc::Status s = Renew(&deleted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(),
              HasSubstr(absl::StrCat("node ", deleted.id, " has been removed from the swarm")));

  UpdateCluster([&](api::Cluster* c) { (*c->mutable_denied_certificates())[denied.id]; });
  s = Renew(&denied);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("has been removed"));
}

TEST_F(CaServiceTest, NodeCertificateStatus) {
  TestNode node = MustJoin(worker_token_);
  TestNode other = MustJoin(worker_token_);
  auto anonymous = api::NodeCA::NewStub(DialAnonymous());
  auto certified = api::NodeCA::NewStub(Dial(node));

  api::NodeCertificateStatusRequest request;
  api::NodeCertificateStatusResponse response;
  request.set_node_id("no-such-node");
  grpc::Status s = anonymous->NodeCertificateStatus(Ctx().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("node no-such-node is not a member"));

  // A certified node may ask about itself only.
  request.set_node_id(other.id);
  s = certified->NodeCertificateStatus(Ctx().get(), request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  request.set_node_id(node.id);
  s = certified->NodeCertificateStatus(Ctx().get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.status().state(), api::IssuanceStatus::ISSUED);
  EXPECT_EQ(response.certificate().certificate(), node.cert_pem);
  EXPECT_EQ(response.certificate().cn(), node.id);

  // PENDING: the call waits, and answers once the certificate is issued.
  UpdateNode(node.id, [](api::Node* n) {
    n->mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::PENDING);
  });
  grpc::Status waited;
  api::NodeCertificateStatusResponse waited_response;
  std::thread caller([&] {
    waited =
        anonymous->NodeCertificateStatus(Ctx(absl::Seconds(20)).get(), request, &waited_response);
  });
  UpdateNode(node.id, [](api::Node* n) {
    n->mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
  });
  caller.join();
  ASSERT_TRUE(waited.ok()) << waited.error_message();
  EXPECT_EQ(waited_response.status().state(), api::IssuanceStatus::ISSUED);

  // Still PENDING when the caller's deadline comes: the current status, not an error.
  UpdateNode(node.id, [](api::Node* n) {
    n->mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::PENDING);
  });
  s = anonymous->NodeCertificateStatus(Ctx(absl::Seconds(1)).get(), request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.status().state(), api::IssuanceStatus::PENDING);
}

TEST_F(CaServiceTest, RootCertificateIsOpenToAnyone) {
  api::GetRootCACertificateResponse response;
  grpc::Status s =
      api::NodeCA::NewStub(DialAnonymous())->GetRootCACertificate(Ctx().get(), {}, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.certificate(), root_->cert_pem());
  // The CA service's copy is for managers.
  s = api::CA::NewStub(DialAnonymous())->GetRootCACertificate(Ctx().get(), {}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  TestNode manager{"mgr1", manager_.cert_pem, manager_.key_pem};
  s = api::CA::NewStub(Dial(manager))->GetRootCACertificate(Ctx().get(), {}, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.certificate(), root_->cert_pem());
}

TEST_F(CaServiceTest, ManagerUnlockKeyIsForManagersOnly) {
  UpdateCluster([](api::Cluster* c) {
    api::EncryptionKey* old_key = c->add_unlock_keys();
    old_key->set_subsystem(kUnlockKeySubsystem);
    old_key->set_key(std::string(32, 'a'));
    old_key->set_lamport_time(1);
    api::EncryptionKey* new_key = c->add_unlock_keys();
    new_key->set_subsystem(kUnlockKeySubsystem);
    new_key->set_key(std::string(32, 'b'));
    new_key->set_lamport_time(2);
  });
  TestNode worker = MustJoin(worker_token_);
  api::GetManagerUnlockKeyResponse response;
  grpc::Status s = api::CA::NewStub(Dial(worker))->GetManagerUnlockKey(Ctx().get(), {}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("needs a swarm-manager certificate"));
  s = api::CA::NewStub(DialAnonymous())->GetManagerUnlockKey(Ctx().get(), {}, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  TestNode manager = MustJoin(manager_token_);
  s = api::CA::NewStub(Dial(manager))->GetManagerUnlockKey(Ctx().get(), {}, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response.unlock_key(), std::string(32, 'b'));
  EXPECT_EQ(response.version().index(), GetCluster().meta().version().index());

  // Autolock off: no key.
  UpdateCluster([](api::Cluster* c) { c->clear_unlock_keys(); });
  s = api::CA::NewStub(Dial(manager))->GetManagerUnlockKey(Ctx().get(), {}, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(response.unlock_key().empty());
}

TEST_F(CaServiceTest, RootRotationEndToEnd) {
  TestNode worker = MustJoin(worker_token_);
  TestNode manager = MustJoin(manager_token_);
  // A node that is DOWN is not waited for.
  TestNode gone = MustJoin(worker_token_);
  UpdateNode(gone.id, [](api::Node* n) { n->mutable_status()->set_state(api::NodeStatus::DOWN); });
  const std::string old_root = root_->cert_pem();
  const std::string worker_secret = pki::ParseJoinToken(worker_token_)->secret;
  const std::string manager_secret = pki::ParseJoinToken(manager_token_)->secret;

  CaRotationReconciler reconciler(&store_, CaOptions{&clock_});
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());
  EXPECT_FALSE(GetCluster().root_ca().has_root_rotation());  // nothing asked for

  UpdateCluster(
      [](api::Cluster* c) { c->mutable_spec()->mutable_ca_config()->set_force_rotate(1); });
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());
  api::Cluster cluster = GetCluster();
  ASSERT_TRUE(cluster.root_ca().has_root_rotation());
  const api::RootRotation rotation = cluster.root_ca().root_rotation();
  const std::string new_root = rotation.ca_cert();
  EXPECT_NE(new_root, old_root);
  EXPECT_FALSE(rotation.ca_key().empty());
  EXPECT_FALSE(rotation.cross_signed_ca_cert().empty());
  EXPECT_EQ(cluster.root_ca().ca_cert(), old_root);  // still the root until the end
  EXPECT_EQ(cluster.root_ca().last_forced_rotation(), 1u);
  for (const std::string& id : {worker.id, manager.id, gone.id}) {
    EXPECT_EQ(GetNode(id).certificate().status().state(), api::IssuanceStatus::ROTATE) << id;
  }

  // Nodes are told to trust both roots.
  api::GetRootCACertificateResponse roots;
  ASSERT_TRUE(
      api::NodeCA::NewStub(DialAnonymous())->GetRootCACertificate(Ctx().get(), {}, &roots).ok());
  EXPECT_THAT(roots.certificate(), HasSubstr(old_root));
  EXPECT_THAT(roots.certificate(), HasSubstr(new_root));

  // A renewal now gets a certificate from the new root, carrying the cross-signed root, so it
  // verifies against the old root alone as well as the new one.
  ASSERT_TRUE(Renew(&worker).ok());
  EXPECT_TRUE(absl::StrContains(worker.cert_pem, rotation.cross_signed_ca_cert()));
  const absl::Time now = clock_.Now();
  auto by_old = pki::VerifyNodeCertificate(worker.cert_pem, old_root, "", now, cluster_id_);
  EXPECT_TRUE(by_old.ok()) << by_old.status();
  auto by_new = pki::VerifyNodeCertificate(worker.cert_pem, new_root, "", now, cluster_id_);
  EXPECT_TRUE(by_new.ok()) << by_new.status();
  EXPECT_EQ(GetNode(worker.id).certificate().status().state(), api::IssuanceStatus::ISSUED);
  // A node joining mid-rotation gets a new-root certificate too.
  TestNode late = MustJoin(worker_token_);
  EXPECT_TRUE(pki::VerifyNodeCertificate(late.cert_pem, new_root, "", now, cluster_id_).ok());

  // One node still has its old certificate: the rotation goes on.
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());
  EXPECT_TRUE(GetCluster().root_ca().has_root_rotation());

  // The manager renews too: every live node now holds a certificate from the new root...
  ASSERT_TRUE(Renew(&manager).ok());
  EXPECT_EQ(IdentityOf(manager.cert_pem).role, pki::Role::kManager);
  // ...but the rotation only ends once the nodes report (in their sessions) that they use it.
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());
  EXPECT_TRUE(GetCluster().root_ca().has_root_rotation());
  for (const std::string& id : {worker.id, manager.id, late.id}) ReportIssuer(id, new_root);
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());

  cluster = GetCluster();
  EXPECT_FALSE(cluster.root_ca().has_root_rotation());
  EXPECT_EQ(cluster.root_ca().ca_cert(), new_root);
  EXPECT_EQ(cluster.root_ca().ca_key(), rotation.ca_key());
  auto new_ca = pki::RootCA::Load(new_root, rotation.ca_key(), clock_.Now());
  ASSERT_TRUE(new_ca.ok()) << new_ca.status();
  EXPECT_EQ(cluster.root_ca().ca_cert_hash(), CaCertHash(new_ca->Digest()));
  EXPECT_EQ(cluster.root_ca().last_forced_rotation(), 1u);
  // The tokens keep their secrets and pin the new root.
  const std::string& new_worker_token = cluster.root_ca().join_tokens().worker();
  const std::string& new_manager_token = cluster.root_ca().join_tokens().manager();
  EXPECT_EQ(pki::ParseJoinToken(new_worker_token)->secret, worker_secret);
  EXPECT_EQ(pki::ParseJoinToken(new_manager_token)->secret, manager_secret);
  EXPECT_TRUE(pki::VerifyRootAgainstToken(new_root, new_worker_token).ok());
  EXPECT_TRUE(pki::VerifyRootAgainstToken(new_root, new_manager_token).ok());
  EXPECT_FALSE(pki::VerifyRootAgainstToken(old_root, new_worker_token).ok());

  // Settled: another pass changes nothing, and renewals no longer carry the intermediate.
  const uint64_t version = store_.version();
  ASSERT_TRUE(reconciler.ReconcileOnce().ok());
  EXPECT_EQ(store_.version(), version);
  ASSERT_TRUE(Renew(&worker).ok());
  EXPECT_FALSE(absl::StrContains(worker.cert_pem, rotation.cross_signed_ca_cert()));
  EXPECT_TRUE(pki::VerifyNodeCertificate(worker.cert_pem, new_root, "", now, cluster_id_).ok());
}

TEST_F(CaServiceTest, RotationToAGivenRootRunsInTheLoop) {
  TestNode worker = MustJoin(worker_token_);
  pki::RootCA given = pki::testing::NewRootCA(clock_.Now());
  CaRotationReconciler reconciler(&store_, CaOptions{&clock_});
  reconciler.Start();
  UpdateCluster([&](api::Cluster* c) {
    c->mutable_spec()->mutable_ca_config()->set_signing_ca_cert(given.cert_pem());
    c->mutable_spec()->mutable_ca_config()->set_signing_ca_key(given.key_pem());
  });
  ASSERT_TRUE(WaitForStore([&](const store::ReadTx& tx) {
    const api::Cluster* c = FindCluster(tx);
    const api::Node* n = tx.Get<api::Node>(worker.id);
    return c->root_ca().root_rotation().ca_cert() == given.cert_pem() &&
           n->certificate().status().state() == api::IssuanceStatus::ROTATE;
  }));
  ASSERT_TRUE(Renew(&worker).ok());
  ReportIssuer(worker.id, given.cert_pem());
  ASSERT_TRUE(WaitForStore([&](const store::ReadTx& tx) {
    const api::Cluster* c = FindCluster(tx);
    return !c->root_ca().has_root_rotation() && c->root_ca().ca_cert() == given.cert_pem();
  }));
  reconciler.Stop();
  EXPECT_EQ(GetCluster().root_ca().ca_cert_hash(), CaCertHash(given.Digest()));
  // Stop/Start again is fine (leadership comes back).
  reconciler.Start();
  reconciler.Stop();
}

TEST(CaCommonTest, Formats) {
  const std::string digest(32, '\x01');
  EXPECT_EQ(CaCertHash(digest),
            "sha256:0101010101010101010101010101010101010101010101010101010101010101");
  pki::RootCA a = pki::testing::NewRootCA();
  pki::RootCA b = pki::testing::NewRootCA(pki::testing::TestNow() + absl::Minutes(1));
  const std::string token = pki::GenerateJoinToken(a.Digest());
  auto moved = RedigestJoinToken(token, b.Digest());
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(pki::ParseJoinToken(*moved)->secret, pki::ParseJoinToken(token)->secret);
  EXPECT_EQ(pki::ParseJoinToken(*moved)->root_digest, b.Digest());
  EXPECT_FALSE(RedigestJoinToken("nonsense", b.Digest()).ok());

  api::RootCA root;
  root.set_ca_cert(a.cert_pem());
  EXPECT_EQ(TrustedRootsPem(root), a.cert_pem());
  root.mutable_root_rotation()->set_ca_cert(b.cert_pem());
  EXPECT_EQ(TrustedRootsPem(root), a.cert_pem() + b.cert_pem());

  api::Cluster cluster;
  EXPECT_EQ(NodeCertValidity(cluster), pki::RootCA::kDefaultNodeValidity);
  cluster.mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry()->set_seconds(7200);
  EXPECT_EQ(NodeCertValidity(cluster), absl::Hours(2));
}

TEST(SignerCacheTest, ExternalCaAndCaching) {
  pki::RootCA a = pki::testing::NewRootCA();
  SignerCache cache;
  api::RootCA root;
  root.set_ca_cert(a.cert_pem());
  auto no_key = cache.Get(root, pki::testing::TestNow());
  EXPECT_EQ(no_key.status().code(), absl::StatusCode::kFailedPrecondition);
  root.set_ca_key(a.key_pem());
  auto first = cache.Get(root, pki::testing::TestNow());
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = cache.Get(root, pki::testing::TestNow());
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->get(), second->get());  // loaded once
}

}  // namespace
}  // namespace shoal::manager
