// Certificate renewal against a fake NodeCA served in-process over mutual TLS on 127.0.0.1, and
// the renewal scheduling policy.
//
// gRPC checks certificate dates against the real clock, so certificates are issued relative to
// absl::Now().
#include "agent/renewer.h"

#include <map>
#include <memory>
#include <random>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/grpc_tls.h"
#include "pki/keys.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "proto/ca.grpc.pb.h"

namespace shoal::agent {
namespace {

using ::testing::HasSubstr;

constexpr char kCluster[] = "c1";

// A NodeCA that renews for callers with a node certificate only; it signs with a test root.
class FakeNodeCA final : public api::NodeCA::Service {
 public:
  FakeNodeCA(const pki::RootCA* ca, std::string roots) : ca_(ca), roots_(std::move(roots)) {}

  // How many NodeCertificateStatus calls answer PENDING before the certificate is ISSUED.
  void set_pending_polls(int n) {
    absl::MutexLock lock(&mu_);
    pending_polls_ = n;
  }
  // The role the "store" gives the node (a promotion); unset: the certificate's.
  void set_role(pki::Role role) {
    absl::MutexLock lock(&mu_);
    role_override_ = role;
    has_role_override_ = true;
  }
  void set_fail(std::string err) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(err);
  }
  void set_never_issue() {
    absl::MutexLock lock(&mu_);
    never_issue_ = true;
  }
  // Answer ISSUED with the caller's previous certificate (the CA has not taken the CSR yet).
  void set_stale_polls(int n) {
    absl::MutexLock lock(&mu_);
    stale_polls_ = n;
  }
  int status_calls() const {
    absl::MutexLock lock(&mu_);
    return status_calls_;
  }
  std::string last_token() const {
    absl::MutexLock lock(&mu_);
    return last_token_;
  }
  api::NodeRole last_requested_role() const {
    absl::MutexLock lock(&mu_);
    return last_role_;
  }

  grpc::Status GetRootCACertificate(grpc::ServerContext*, const api::GetRootCACertificateRequest*,
                                    api::GetRootCACertificateResponse* response) override {
    response->set_certificate(roots_);
    return grpc::Status::OK;
  }

  grpc::Status IssueNodeCertificate(grpc::ServerContext* context,
                                    const api::IssueNodeCertificateRequest* request,
                                    api::IssueNodeCertificateResponse* response) override {
    // Renewal only: the caller must present its node certificate.
    auto caller = pki::PeerIdentity(*context->auth_context());
    if (!caller.ok()) return pki::ToGrpcStatus(caller.status());
    absl::MutexLock lock(&mu_);
    last_token_ = request->token();
    last_role_ = request->role();
    const pki::Role role = has_role_override_ ? role_override_ : caller->role;
    auto cert = ca_->IssueNodeCertificate(request->csr(), caller->node_id, role, kCluster,
                                          absl::Hours(24), absl::Now());
    if (!cert.ok()) return pki::ToGrpcStatus(cert.status());
    const auto pem =
        context->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).front();
    previous_[caller->node_id] = std::string(pem.data(), pem.size());
    issued_[caller->node_id] = *cert;
    response->set_node_id(caller->node_id);
    return grpc::Status::OK;
  }

  grpc::Status NodeCertificateStatus(grpc::ServerContext* context,
                                     const api::NodeCertificateStatusRequest* request,
                                     api::NodeCertificateStatusResponse* response) override {
    auto caller = pki::PeerIdentity(*context->auth_context());
    if (!caller.ok()) return pki::ToGrpcStatus(caller.status());
    absl::MutexLock lock(&mu_);
    ++status_calls_;
    auto it = issued_.find(request->node_id());
    if (it == issued_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown node");
    if (!fail_.empty()) {
      response->mutable_status()->set_state(api::IssuanceStatus::FAILED);
      response->mutable_status()->set_err(fail_);
      return grpc::Status::OK;
    }
    if (never_issue_ || pending_polls_ > 0) {
      --pending_polls_;
      response->mutable_status()->set_state(api::IssuanceStatus::PENDING);
      return grpc::Status::OK;
    }
    response->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
    if (stale_polls_ > 0) {
      --stale_polls_;
      response->mutable_certificate()->set_certificate(previous_[request->node_id()]);
    } else {
      response->mutable_certificate()->set_certificate(it->second);
    }
    return grpc::Status::OK;
  }

 private:
  const pki::RootCA* ca_;
  const std::string roots_;
  mutable absl::Mutex mu_;
  int pending_polls_ ABSL_GUARDED_BY(mu_) = 0;
  int stale_polls_ ABSL_GUARDED_BY(mu_) = 0;
  bool has_role_override_ ABSL_GUARDED_BY(mu_) = false;
  pki::Role role_override_ ABSL_GUARDED_BY(mu_) = pki::Role::kWorker;
  std::string fail_ ABSL_GUARDED_BY(mu_);
  bool never_issue_ ABSL_GUARDED_BY(mu_) = false;
  int status_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_token_ ABSL_GUARDED_BY(mu_) = "unset";
  api::NodeRole last_role_ ABSL_GUARDED_BY(mu_) = api::NODE_ROLE_WORKER;
  std::map<std::string, std::string> issued_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> previous_ ABSL_GUARDED_BY(mu_);
};

class RenewCertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const absl::Time now = absl::Now();
    ca_ = std::make_unique<pki::RootCA>(pki::testing::NewRootCA(now - absl::Hours(2)));
    manager_ =
        pki::testing::IssueNode(*ca_, "m1", pki::Role::kManager, kCluster, absl::Hours(24), now);
    worker_ =
        pki::testing::IssueNode(*ca_, "w1", pki::Role::kWorker, kCluster, absl::Hours(24), now);
    node_ca_ = std::make_unique<FakeNodeCA>(ca_.get(), ca_->cert_pem());
    auto creds = pki::ServerCredentials({manager_.cert_pem, manager_.key_pem}, ca_->cert_pem(),
                                        pki::ClientCertPolicy::kVerifyIfPresent);
    ASSERT_TRUE(creds.ok()) << creds.status();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *creds, &port_);
    builder.RegisterService(node_ca_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string addr() const { return absl::StrCat("127.0.0.1:", port_); }
  pki::TlsIdentity worker_identity() const { return {worker_.cert_pem, worker_.key_pem}; }

  std::unique_ptr<pki::RootCA> ca_;
  pki::testing::IssuedNode manager_, worker_;
  std::unique_ptr<FakeNodeCA> node_ca_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

pki::NodeIdentity IdentityOf(const std::string& cert_pem) {
  auto cert = pki::ParseCertificate(cert_pem, "test certificate", /*allow_more=*/true);
  EXPECT_TRUE(cert.ok()) << cert.status();
  auto id = pki::ParseIdentity(cert->get());
  EXPECT_TRUE(id.ok()) << id.status();
  return *id;
}

TEST_F(RenewCertificateTest, RenewsWithANewKey) {
  node_ca_->set_pending_polls(2);
  auto renewed = RenewCertificate(addr(), worker_identity(), ca_->cert_pem(), absl::Seconds(10));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->root_ca_pem, ca_->cert_pem());
  EXPECT_NE(renewed->key_pem, worker_.key_pem);
  EXPECT_NE(renewed->cert_pem, worker_.cert_pem);
  auto cert = pki::ParseCertificate(renewed->cert_pem, "renewed", true);
  auto key = pki::ParsePrivateKey(renewed->key_pem);
  ASSERT_TRUE(cert.ok() && key.ok());
  EXPECT_TRUE(pki::KeyMatchesCertificate(key->get(), cert->get()));
  const pki::NodeIdentity id = IdentityOf(renewed->cert_pem);
  EXPECT_EQ(id.node_id, "w1");
  EXPECT_EQ(id.role, pki::Role::kWorker);
  EXPECT_EQ(id.cluster_id, kCluster);
  EXPECT_EQ(node_ca_->status_calls(), 3);  // Two PENDING, then ISSUED.
  EXPECT_EQ(node_ca_->last_token(), "");   // The certificate authorised it.
  EXPECT_EQ(node_ca_->last_requested_role(), api::NODE_ROLE_WORKER);

  // The renewed identity works for the next renewal.
  auto again = RenewCertificate(addr(), {renewed->cert_pem, renewed->key_pem}, renewed->root_ca_pem,
                                absl::Seconds(10));
  ASSERT_TRUE(again.ok()) << again.status();
}

TEST_F(RenewCertificateTest, PromotionGivesAManagerCertificate) {
  node_ca_->set_role(pki::Role::kManager);
  auto renewed = RenewCertificate(addr(), worker_identity(), ca_->cert_pem(), absl::Seconds(10));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(IdentityOf(renewed->cert_pem).role, pki::Role::kManager);
}

TEST_F(RenewCertificateTest, WaitsPastThePreviousCertificate) {
  node_ca_->set_stale_polls(2);
  auto renewed = RenewCertificate(addr(), worker_identity(), ca_->cert_pem(), absl::Seconds(10));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_NE(renewed->cert_pem, worker_.cert_pem);
  EXPECT_EQ(node_ca_->status_calls(), 3);
}

TEST_F(RenewCertificateTest, FailedIssuanceIsReported) {
  node_ca_->set_fail("the CA key is unavailable");
  auto renewed = RenewCertificate(addr(), worker_identity(), ca_->cert_pem(), absl::Seconds(10));
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(renewed.status().message()), HasSubstr("the CA key is unavailable"));
}

TEST_F(RenewCertificateTest, TimesOutWhenNeverIssued) {
  node_ca_->set_never_issue();
  const absl::Time start = absl::Now();
  auto renewed =
      RenewCertificate(addr(), worker_identity(), ca_->cert_pem(), absl::Milliseconds(500));
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kDeadlineExceeded) << renewed.status();
  EXPECT_THAT(std::string(renewed.status().message()), HasSubstr("PENDING"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(RenewCertificateTest, UnreachableManager) {
  const std::string dead = addr();
  server_->Shutdown();
  server_.reset();
  auto renewed = RenewCertificate(dead, worker_identity(), ca_->cert_pem(), absl::Seconds(5));
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kUnavailable) << renewed.status();
}

TEST_F(RenewCertificateTest, ManagerFromAnotherRootIsRefused) {
  const pki::RootCA other = pki::testing::NewRootCA(absl::Now() - absl::Hours(2));
  auto renewed = RenewCertificate(addr(), worker_identity(), other.cert_pem(), absl::Seconds(5));
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kUnavailable) << renewed.status();
}

TEST_F(RenewCertificateTest, UnusableCurrentCertificate) {
  auto renewed = RenewCertificate(addr(), {"not a certificate", worker_.key_pem}, ca_->cert_pem(),
                                  absl::Seconds(5));
  EXPECT_EQ(renewed.status().code(), absl::StatusCode::kInvalidArgument) << renewed.status();
}

pki::NodeIdentity Identity(pki::Role role) {
  pki::NodeIdentity id;
  id.node_id = "n1";
  id.role = role;
  id.cluster_id = kCluster;
  id.not_before = absl::FromUnixSeconds(1'000'000);
  id.not_after = id.not_before + absl::Hours(100);
  return id;
}

TEST(RenewalSchedulerTest, NextRenewalIsBetweenHalfAndFourFifths) {
  const pki::NodeIdentity id = Identity(pki::Role::kWorker);
  std::mt19937 gen(42);
  for (int i = 0; i < 200; ++i) {
    const absl::Time t = RenewalScheduler::NextRenewal(id, gen);
    EXPECT_GE(t, id.not_before + absl::Hours(50));
    EXPECT_LE(t, id.not_before + absl::Hours(80));
  }
}

TEST(RenewalSchedulerTest, NeedsRenewal) {
  const pki::NodeIdentity worker = Identity(pki::Role::kWorker);
  api::Node node;
  EXPECT_FALSE(RenewalScheduler::NeedsRenewal(node, worker));  // No node yet.
  node.set_id("n1");
  node.set_role(api::NODE_ROLE_WORKER);
  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
  EXPECT_FALSE(RenewalScheduler::NeedsRenewal(node, worker));

  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::RENEW);
  EXPECT_TRUE(RenewalScheduler::NeedsRenewal(node, worker));
  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ROTATE);
  EXPECT_TRUE(RenewalScheduler::NeedsRenewal(node, worker));
  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::PENDING);
  EXPECT_FALSE(RenewalScheduler::NeedsRenewal(node, worker));

  // Promoted: the node's role is manager, the certificate still says worker.
  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
  node.set_role(api::NODE_ROLE_MANAGER);
  EXPECT_TRUE(RenewalScheduler::NeedsRenewal(node, worker));
  EXPECT_FALSE(RenewalScheduler::NeedsRenewal(node, Identity(pki::Role::kManager)));
  // Demoted.
  node.set_role(api::NODE_ROLE_WORKER);
  EXPECT_TRUE(RenewalScheduler::NeedsRenewal(node, Identity(pki::Role::kManager)));

  // Another node's record never triggers a renewal.
  node.set_id("n2");
  node.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::RENEW);
  EXPECT_FALSE(RenewalScheduler::NeedsRenewal(node, worker));
}

}  // namespace
}  // namespace shoal::agent
