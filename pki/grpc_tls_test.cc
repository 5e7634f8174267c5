// Real mutual-TLS gRPC calls on 127.0.0.1: who gets through the handshake, what each role may
// call, and a node joining through the pinned bootstrap channel.
//
// gRPC checks certificate dates against the real clock, so every certificate here is issued
// relative to absl::Now().
#include <netinet/in.h>
#include <sys/socket.h>

#include <map>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ca.grpc.pb.h"
#include "dispatcher.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pki/authorization.h"
#include "pki/grpc_tls.h"
#include "pki/join_bootstrap.h"
#include "pki/join_token.h"
#include "pki/keys.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"

namespace shoal::pki {
namespace {

using ::shoal::pki::testing::IssuedNode;
using ::shoal::pki::testing::IssueNode;
using ::testing::HasSubstr;

constexpr char kCluster[] = "c1";

// What the services saw, for assertions.
struct Observations {
  absl::Mutex mu;
  std::vector<std::string> tokens_received ABSL_GUARDED_BY(mu);
  std::string last_caller ABSL_GUARDED_BY(mu);
};

// A NodeCA as a manager serves it: root and issuance open to nodes without certificates (the
// token authorises them), renewal for certified nodes.
class FakeNodeCA final : public api::NodeCA::Service {
 public:
  FakeNodeCA(const RootCA* ca, std::string roots, std::string worker_token,
             std::string manager_token, Observations* obs)
      : ca_(ca),
        roots_(std::move(roots)),
        worker_token_(std::move(worker_token)),
        manager_token_(std::move(manager_token)),
        obs_(obs) {}

  grpc::Status GetRootCACertificate(grpc::ServerContext*, const api::GetRootCACertificateRequest*,
                                    api::GetRootCACertificateResponse* response) override {
    response->set_certificate(roots_);
    return grpc::Status::OK;
  }

  grpc::Status IssueNodeCertificate(grpc::ServerContext* context,
                                    const api::IssueNodeCertificateRequest* request,
                                    api::IssueNodeCertificateResponse* response) override {
    Role role;
    std::string node_id;
    if (!request->token().empty()) {
      {
        absl::MutexLock lock(&obs_->mu);
        obs_->tokens_received.push_back(request->token());
      }
      if (TokenMatches(request->token(), worker_token_)) {
        role = Role::kWorker;
      } else if (TokenMatches(request->token(), manager_token_)) {
        role = Role::kManager;
      } else {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "invalid join token");
      }
      absl::MutexLock lock(&mu_);
      node_id = absl::StrCat("joined", ++joined_);
    } else {
      NodeIdentity caller;
      grpc::Status s =
          AuthorizeCall(*context, AllowedRolesForMethod(api::NodeCA::service_full_name()), kCluster,
                        nullptr, &caller);
      if (!s.ok()) return s;
      role = caller.role;
      node_id = caller.node_id;
    }
    auto cert = ca_->IssueNodeCertificate(request->csr(), node_id, role, kCluster, absl::Hours(24),
                                          absl::Now());
    if (!cert.ok()) return ToGrpcStatus(cert.status());
    absl::MutexLock lock(&mu_);
    issued_[node_id] = *cert;
    response->set_node_id(node_id);
    return grpc::Status::OK;
  }

  grpc::Status NodeCertificateStatus(grpc::ServerContext*,
                                     const api::NodeCertificateStatusRequest* request,
                                     api::NodeCertificateStatusResponse* response) override {
    absl::MutexLock lock(&mu_);
    auto it = issued_.find(request->node_id());
    if (it == issued_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown node");
    response->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
    response->mutable_certificate()->set_certificate(it->second);
    return grpc::Status::OK;
  }

 private:
  const RootCA* ca_;
  const std::string roots_, worker_token_, manager_token_;
  Observations* obs_;
  absl::Mutex mu_;
  int joined_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::string> issued_ ABSL_GUARDED_BY(mu_);
};

// Manager-only service.
class FakeCA final : public api::CA::Service {
 public:
  explicit FakeCA(std::string roots) : roots_(std::move(roots)) {}
  grpc::Status GetRootCACertificate(grpc::ServerContext* context,
                                    const api::GetRootCACertificateRequest*,
                                    api::GetRootCACertificateResponse* response) override {
    grpc::Status s =
        AuthorizeCall(*context, AllowedRolesForMethod(api::CA::service_full_name()), kCluster);
    if (!s.ok()) return s;
    response->set_certificate(roots_);
    return grpc::Status::OK;
  }

 private:
  const std::string roots_;
};

// Open to workers and managers; node "removed1" has been removed from the swarm.
class FakeDispatcher final : public api::Dispatcher::Service {
 public:
  explicit FakeDispatcher(Observations* obs) : obs_(obs) {}
  grpc::Status Heartbeat(grpc::ServerContext* context, const api::HeartbeatRequest*,
                         api::HeartbeatResponse*) override {
    NodeIdentity caller;
    grpc::Status s = AuthorizeCall(
        *context, AllowedRolesForMethod(api::Dispatcher::service_full_name()), kCluster,
        [](absl::string_view id) { return id == "removed1"; }, &caller);
    if (!s.ok()) return s;
    absl::MutexLock lock(&obs_->mu);
    obs_->last_caller = absl::StrCat(caller.node_id, "/", RoleName(caller.role));
    return grpc::Status::OK;
  }

 private:
  Observations* obs_;
};

struct TestServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string addr() const { return absl::StrCat("127.0.0.1:", port); }
};

TestServer StartServer(std::shared_ptr<grpc::ServerCredentials> creds,
                       const std::vector<grpc::Service*>& services) {
  grpc::ServerBuilder builder;
  TestServer s;
  builder.AddListeningPort("127.0.0.1:0", std::move(creds), &s.port);
  for (grpc::Service* svc : services) builder.RegisterService(svc);
  s.server = builder.BuildAndStart();
  EXPECT_TRUE(s.server != nullptr);
  EXPECT_GT(s.port, 0);
  return s;
}

std::shared_ptr<grpc::ServerCredentials> MustServerCreds(const IssuedNode& node,
                                                         const std::string& roots,
                                                         ClientCertPolicy policy) {
  auto creds = ServerCredentials({node.cert_pem, node.key_pem}, roots, policy);
  EXPECT_TRUE(creds.ok()) << creds.status();
  return creds.ok() ? *creds : nullptr;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

class MutualTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const absl::Time now = absl::Now();
    ca_ = new RootCA(*RootCA::Create(now - absl::Hours(24 * 200)));
    other_ca_ = new RootCA(*RootCA::Create(now - absl::Hours(24 * 200)));
    manager_ = IssueNode(*ca_, "m1", Role::kManager, kCluster, absl::Hours(24), now);
    worker_ = IssueNode(*ca_, "w1", Role::kWorker, kCluster, absl::Hours(24), now);
    other_cluster_ = IssueNode(*ca_, "x1", Role::kManager, "c2", absl::Hours(24), now);
    removed_ = IssueNode(*ca_, "removed1", Role::kWorker, kCluster, absl::Hours(24), now);
    foreign_ = IssueNode(*other_ca_, "m1", Role::kManager, kCluster, absl::Hours(24), now);
    // Issued 100 days ago for 90: expired 10 days ago.
    expired_ = IssueNode(*ca_, "m1", Role::kManager, kCluster, absl::Hours(24 * 90),
                         now - absl::Hours(24 * 100));
    worker_token_ = GenerateJoinToken(ca_->Digest());
    manager_token_ = GenerateJoinToken(ca_->Digest());

    obs_ = new Observations;
    node_ca_ = new FakeNodeCA(ca_, ca_->cert_pem(), worker_token_, manager_token_, obs_);
    ca_service_ = new FakeCA(ca_->cert_pem());
    dispatcher_ = new FakeDispatcher(obs_);
    // The manager port: NodeCA must admit nodes without certificates.
    open_ = new TestServer(
        StartServer(MustServerCreds(manager_, ca_->cert_pem(), ClientCertPolicy::kVerifyIfPresent),
                    {node_ca_, ca_service_, dispatcher_}));
    strict_ = new TestServer(
        StartServer(MustServerCreds(manager_, ca_->cert_pem(), ClientCertPolicy::kRequireAndVerify),
                    {ca_service_, dispatcher_}));
  }
  static void TearDownTestSuite() {
    open_->server->Shutdown();
    strict_->server->Shutdown();
    delete open_;
    delete strict_;
    delete dispatcher_;
    delete ca_service_;
    delete node_ca_;
    delete obs_;
    delete ca_;
    delete other_ca_;
  }

  static std::shared_ptr<grpc::Channel> Dial(const TestServer& server, const IssuedNode& node,
                                             const std::string& roots) {
    auto creds = ChannelCredentials({node.cert_pem, node.key_pem}, roots);
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(server.addr(), *creds, ManagerChannelArguments());
  }
  static std::shared_ptr<grpc::Channel> DialWithoutCert(const TestServer& server) {
    auto creds = ServerAuthChannelCredentials(ca_->cert_pem());
    EXPECT_TRUE(creds.ok()) << creds.status();
    return grpc::CreateCustomChannel(server.addr(), *creds, ManagerChannelArguments());
  }
  static grpc::Status CallCA(const std::shared_ptr<grpc::Channel>& channel) {
    api::GetRootCACertificateResponse response;
    return api::CA::NewStub(channel)->GetRootCACertificate(Ctx().get(), {}, &response);
  }
  static grpc::Status Heartbeat(const std::shared_ptr<grpc::Channel>& channel) {
    api::HeartbeatResponse response;
    return api::Dispatcher::NewStub(channel)->Heartbeat(Ctx().get(), {}, &response);
  }
  static std::string LastCaller() {
    absl::MutexLock lock(&obs_->mu);
    return obs_->last_caller;
  }

  static RootCA* ca_;
  static RootCA* other_ca_;
  static IssuedNode manager_, worker_, other_cluster_, removed_, foreign_, expired_;
  static std::string worker_token_, manager_token_;
  static Observations* obs_;
  static FakeNodeCA* node_ca_;
  static FakeCA* ca_service_;
  static FakeDispatcher* dispatcher_;
  static TestServer* open_;
  static TestServer* strict_;
};

RootCA* MutualTlsTest::ca_;
RootCA* MutualTlsTest::other_ca_;
IssuedNode MutualTlsTest::manager_, MutualTlsTest::worker_, MutualTlsTest::other_cluster_,
    MutualTlsTest::removed_, MutualTlsTest::foreign_, MutualTlsTest::expired_;
std::string MutualTlsTest::worker_token_, MutualTlsTest::manager_token_;
Observations* MutualTlsTest::obs_;
FakeNodeCA* MutualTlsTest::node_ca_;
FakeCA* MutualTlsTest::ca_service_;
FakeDispatcher* MutualTlsTest::dispatcher_;
TestServer* MutualTlsTest::open_;
TestServer* MutualTlsTest::strict_;

TEST_F(MutualTlsTest, ManagerCertificateIsAcceptedEverywhere) {
  auto channel = Dial(*strict_, manager_, ca_->cert_pem());
  grpc::Status s = CallCA(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = Heartbeat(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(LastCaller(), "m1/swarm-manager");  // identity read from the peer certificate
}

TEST_F(MutualTlsTest, WorkerCertificateOnlyForWorkerServices) {
  auto channel = Dial(*strict_, worker_, ca_->cert_pem());
  grpc::Status s = Heartbeat(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(LastCaller(), "w1/swarm-worker");
  s = CallCA(channel);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(),
            "permission denied: this call needs a swarm-manager certificate (caller node w1 is "
            "swarm-worker)");
}

TEST_F(MutualTlsTest, CertificateFromAnotherCAFailsTheHandshake) {
  for (const TestServer* server : {strict_, open_}) {
    auto channel = Dial(*server, foreign_, ca_->cert_pem());
    grpc::Status s = Heartbeat(channel);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
}

TEST_F(MutualTlsTest, ExpiredCertificateFailsTheHandshake) {
  auto channel = Dial(*strict_, expired_, ca_->cert_pem());
  grpc::Status s = Heartbeat(channel);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(MutualTlsTest, NoClientCertificate) {
  // Where certificates are required, the handshake fails.
  grpc::Status s = Heartbeat(DialWithoutCert(*strict_));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // On the manager port the connection is allowed, but only NodeCA answers it.
  auto anonymous = DialWithoutCert(*open_);
  s = CallCA(anonymous);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("this call needs a node certificate"));
  s = Heartbeat(anonymous);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  api::GetRootCACertificateResponse root;
  s = api::NodeCA::NewStub(anonymous)->GetRootCACertificate(Ctx().get(), {}, &root);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(root.certificate(), ca_->cert_pem());
}

TEST_F(MutualTlsTest, OtherClusterAndRemovedNodesAreRefused) {
  grpc::Status s = Heartbeat(Dial(*strict_, other_cluster_, ca_->cert_pem()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("belongs to cluster c2"));
  s = Heartbeat(Dial(*strict_, removed_, ca_->cert_pem()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("node removed1 has been removed"));
}

TEST_F(MutualTlsTest, ClientsCheckTheServer) {
  // A worker certificate lacks the "swarm-manager" name: it cannot pose as a manager.
  FakeDispatcher dispatcher(obs_);
  TestServer impostor =
      StartServer(MustServerCreds(worker_, ca_->cert_pem(), ClientCertPolicy::kRequireAndVerify),
                  {&dispatcher});
  grpc::Status s = Heartbeat(Dial(impostor, manager_, ca_->cert_pem()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  impostor.server->Shutdown();
  // A client trusting another root refuses our manager.
  s = Heartbeat(Dial(*strict_, manager_, other_ca_->cert_pem()));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(MutualTlsTest, CredentialsRefuseBadInput) {
  auto mismatched = ServerCredentials({manager_.cert_pem, worker_.key_pem}, ca_->cert_pem());
  EXPECT_THAT(std::string(mismatched.status().message()), HasSubstr("does not match"));
  auto no_roots = ChannelCredentials({manager_.cert_pem, manager_.key_pem}, "");
  EXPECT_THAT(std::string(no_roots.status().message()), HasSubstr("no trusted root CA"));
}

TEST_F(MutualTlsTest, NodeJoinsThroughThePinnedBootstrapChannel) {
  auto pinned = DialManagerPinned(open_->addr(), worker_token_, absl::Seconds(10));
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(pinned->root_ca_pem, ca_->cert_pem());

  auto kc = GenerateKeyAndCsr();
  ASSERT_TRUE(kc.ok());
  auto stub = api::NodeCA::NewStub(pinned->channel);
  api::IssueNodeCertificateRequest request;
  request.set_csr(kc->csr_pem);
  request.set_token(worker_token_);
  api::IssueNodeCertificateResponse issued;
  grpc::Status s = stub->IssueNodeCertificate(Ctx().get(), request, &issued);
  ASSERT_TRUE(s.ok()) << s.error_message();
  api::NodeCertificateStatusRequest status_request;
  status_request.set_node_id(issued.node_id());
  api::NodeCertificateStatusResponse status;
  s = stub->NodeCertificateStatus(Ctx().get(), status_request, &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(status.status().state(), api::IssuanceStatus::ISSUED);

  const std::string cert = status.certificate().certificate();
  auto id = VerifyNodeCertificate(cert, pinned->root_ca_pem, "", absl::Now(), kCluster);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->node_id, issued.node_id());
  EXPECT_EQ(id->role, Role::kWorker);

  // From now on: mutual TLS with the new certificate.
  auto channel = Dial(*strict_, {cert, kc->key_pem}, pinned->root_ca_pem);
  s = Heartbeat(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(LastCaller(), absl::StrCat(issued.node_id(), "/swarm-worker"));

  // And renewal: a certified node asks for a new certificate without a token.
  auto renew_kc = GenerateKeyAndCsr();
  api::IssueNodeCertificateRequest renew;
  renew.set_csr(renew_kc->csr_pem);
  api::IssueNodeCertificateResponse renewed;
  s = api::NodeCA::NewStub(Dial(*open_, {cert, kc->key_pem}, pinned->root_ca_pem))
          ->IssueNodeCertificate(Ctx().get(), renew, &renewed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(renewed.node_id(), issued.node_id());
}

TEST_F(MutualTlsTest, BootstrapRefusesAManagerOfAnotherSwarm) {
  const std::string token = GenerateJoinToken(other_ca_->Digest());
  auto pinned = DialManagerPinned(open_->addr(), token, absl::Seconds(10));
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(pinned.status().message()),
              HasSubstr("root CA does not match the join token"));
}

TEST_F(MutualTlsTest, BootstrapNeverSendsTheTokenToAnImpostor) {
  // The impostor hands out our (public) root certificate but cannot hold a certificate from it.
  Observations impostor_obs;
  FakeNodeCA impostor_ca(other_ca_, ca_->cert_pem(), worker_token_, manager_token_, &impostor_obs);
  TestServer impostor = StartServer(
      MustServerCreds(foreign_, other_ca_->cert_pem(), ClientCertPolicy::kVerifyIfPresent),
      {&impostor_ca});
  auto pinned = DialManagerPinned(impostor.addr(), worker_token_, absl::Seconds(10));
  ASSERT_TRUE(pinned.ok()) << pinned.status();  // step 1 only learnt a public root
  auto kc = GenerateKeyAndCsr();
  api::IssueNodeCertificateRequest request;
  request.set_csr(kc->csr_pem);
  request.set_token(worker_token_);
  api::IssueNodeCertificateResponse issued;
  grpc::Status s =
      api::NodeCA::NewStub(pinned->channel)->IssueNodeCertificate(Ctx().get(), request, &issued);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  {
    absl::MutexLock lock(&impostor_obs.mu);
    EXPECT_TRUE(impostor_obs.tokens_received.empty());
  }
  impostor.server->Shutdown();
}

TEST_F(MutualTlsTest, BootstrapErrors) {
  auto malformed = DialManagerPinned(open_->addr(), "SWMTKN-1-nope", absl::Seconds(10));
  EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
  // A port nobody listens on: bind one, learn its number, close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  const std::string addr = absl::StrCat("127.0.0.1:", ntohs(sa.sin_port));
  auto unreachable = DialManagerPinned(addr, worker_token_, absl::Seconds(10));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(unreachable.status().message()), HasSubstr(addr));
}

}  // namespace
}  // namespace shoal::pki
