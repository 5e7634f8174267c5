// ControlApi on a MemoryStore fed by a DirectProposer and a FakeRaftControl: every method, its
// errors, redaction of secrets, the ListNodes/ListTasks filters, and optimistic concurrency.
#include "manager/controlapi/control_api.h"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/cluster_object.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"
#include "pki/join_token.h"
#include "pki/ossl.h"
#include "pki/root_ca.h"
#include "pki/test_util.h"
#include "pki/unlock_key.h"

namespace shoal::manager {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// A DirectProposer that can run something just before it applies the next proposal: a write
// that slips in between a transaction and its commit, as a concurrent manager's would.
class RacingProposer : public store::Proposer {
 public:
  store::DirectProposer& inner() { return inner_; }
  void BeforeNext(std::function<void()> fn) { before_ = std::move(fn); }

  absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline) override {
    if (before_) {
      std::function<void()> fn = std::move(before_);
      before_ = nullptr;
      fn();
    }
    return inner_.Propose(std::move(data), deadline);
  }

 private:
  store::DirectProposer inner_;
  std::function<void()> before_;  // test thread only
};

store::StoreOptions StoreOpts(Clock* clock) {
  store::StoreOptions o;
  o.clock = clock;
  return o;
}

google::protobuf::Duration Dur(absl::Duration d) {
  google::protobuf::Duration out;
  out.set_seconds(absl::ToInt64Seconds(d));
  out.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(absl::ToInt64Seconds(d)))));
  return out;
}

absl::Time FromTs(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

class ControlApiTest : public ::testing::Test {
 protected:
  ControlApiTest()
      : clock_(pki::testing::TestNow()),
        store_(&proposer_, StoreOpts(&clock_)),
        root_(pki::testing::NewRootCA()),
        raft_(1, "mgr1") {
    proposer_.inner().Attach(&store_);
    ControlApiOptions o;
    o.clock = &clock_;
    o.manager_addr = "10.0.0.1:2377";
    o.timeout = absl::Seconds(5);
    api_ = std::make_unique<ControlApi>(&store_, &raft_, o);
  }

  void SetUp() override {
    unlock_key_ = pki::GenerateUnlockKeyBytes();
    api::Cluster c;
    c.set_id("cluster1");
    api::ClusterSpec* spec = c.mutable_spec();
    spec->mutable_annotations()->set_name(kDefaultClusterName);
    *spec->mutable_ca_config()->mutable_node_cert_expiry() = Dur(absl::Hours(24 * 90));
    *spec->mutable_dispatcher()->mutable_heartbeat_period() = Dur(absl::Seconds(5));
    spec->mutable_orchestration()->set_task_history_retention_limit(5);
    spec->mutable_encryption_config()->set_auto_lock_managers(true);
    c.mutable_root_ca()->set_ca_cert(root_.cert_pem());
    c.mutable_root_ca()->set_ca_key(root_.key_pem());
    c.mutable_root_ca()->mutable_join_tokens()->set_worker(pki::GenerateJoinToken(root_.Digest()));
    c.mutable_root_ca()->mutable_join_tokens()->set_manager(pki::GenerateJoinToken(root_.Digest()));
    api::EncryptionKey* k = c.add_unlock_keys();
    k->set_subsystem(ControlApi::kUnlockKeySubsystem);
    k->set_key(unlock_key_);
    k->set_lamport_time(0);
    api::EncryptionKey* net = c.add_network_bootstrap_keys();
    net->set_subsystem("networking:ipsec");
    net->set_key("network-secret-key-bytes-0123456");
    net->set_lamport_time(1);
    c.set_encryption_key_lamport_clock(2);

    std::vector<api::Node> nodes;
    nodes.push_back(MakeNode("mgr1", "manager-1", api::NODE_ROLE_MANAGER, api::NodeStatus::READY));
    nodes.push_back(MakeNode("mgr2", "manager-2", api::NODE_ROLE_MANAGER, api::NodeStatus::READY));
    nodes.push_back(MakeNode("mgr3", "manager-3", api::NODE_ROLE_MANAGER, api::NodeStatus::READY));
    api::Node w1 = MakeNode("wrk1", "worker-1", api::NODE_ROLE_WORKER, api::NodeStatus::READY);
    (*w1.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "a";
    w1.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
    nodes.push_back(w1);
    api::Node w2 = MakeNode("wrk2", "worker-2", api::NODE_ROLE_WORKER, api::NodeStatus::DOWN);
    (*w2.mutable_spec()->mutable_annotations()->mutable_labels())["zone"] = "b";
    w2.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
    w2.mutable_spec()->set_membership(api::NodeSpec::ACCEPTED);
    w2.mutable_spec()->mutable_annotations()->set_name("special");
    w2_cert_ = pki::testing::IssueNode(root_, "wrk2", pki::Role::kWorker, "cluster1",
                                       absl::Hours(24 * 30), clock_.Now())
                   .cert_pem;
    w2.mutable_certificate()->set_certificate(w2_cert_);
    nodes.push_back(w2);

    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      if (absl::Status s = tx.Create(c); !s.ok()) return s;
                      for (const api::Node& n : nodes) {
                        if (absl::Status s = tx.Create(n); !s.ok()) return s;
                      }
                      return absl::OkStatus();
                    })
                    .ok());
    raft_.SetMembers({Member(1, "mgr1", true, true), Member(2, "mgr2", false, true),
                      Member(3, "mgr3", false, true)});
  }

  static api::Node MakeNode(const std::string& id, const std::string& host, api::NodeRole role,
                            api::NodeStatus::State state) {
    api::Node n;
    n.set_id(id);
    n.mutable_description()->set_hostname(host);
    n.set_role(role);
    n.mutable_spec()->set_desired_role(role);
    n.mutable_status()->set_state(state);
    return n;
  }

  static ManagerMember Member(uint64_t raft_id, const std::string& node_id, bool leader,
                              bool reachable) {
    ManagerMember m;
    m.raft_id = raft_id;
    m.node_id = node_id;
    m.addr = "10.0.0." + std::to_string(raft_id) + ":2377";
    m.leader = leader;
    m.reachable = reachable;
    return m;
  }

  api::Cluster StoredCluster() {
    api::Cluster out;
    store_.View([&](const store::ReadTx& tx) { out = *FindCluster(tx); });
    return out;
  }
  api::Node StoredNode(const std::string& id) {
    api::Node out;
    store_.View([&](const store::ReadTx& tx) {
      if (const api::Node* n = tx.Get<api::Node>(id)) out = *n;
    });
    return out;
  }
  void WriteNode(const api::Node& n) {
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Update(n); }).ok());
  }
  void CreateTask(api::Task t) {
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(std::move(t)); }).ok());
  }

  api::GetClusterResponse GetCluster() {
    api::GetClusterResponse resp;
    grpc::Status s = api_->GetCluster({}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // No response may carry a private key or an unlock/network key.
  void ExpectNoSecrets(const google::protobuf::Message& m) {
    const std::string bytes = m.SerializeAsString();
    EXPECT_FALSE(absl::StrContains(bytes, root_.key_pem()));
    EXPECT_FALSE(absl::StrContains(bytes, "PRIVATE KEY"));
    EXPECT_FALSE(absl::StrContains(bytes, unlock_key_));
    EXPECT_FALSE(absl::StrContains(bytes, "network-secret-key-bytes"));
  }

  api::UpdateNodeRequest NodeUpdate(const std::string& id) {
    const api::Node n = StoredNode(id);
    api::UpdateNodeRequest req;
    req.set_node_id(id);
    *req.mutable_version() = n.meta().version();
    *req.mutable_spec() = n.spec();
    return req;
  }

  std::vector<std::string> ListNodeIds(const api::ListNodesRequest::Filters& f) {
    api::ListNodesRequest req;
    *req.mutable_filters() = f;
    api::ListNodesResponse resp;
    grpc::Status s = api_->ListNodes(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const api::Node& n : resp.nodes()) ids.push_back(n.id());
    return ids;
  }

  ManualClock clock_;
  RacingProposer proposer_;
  store::MemoryStore store_;
  pki::RootCA root_;
  FakeRaftControl raft_;
  std::unique_ptr<ControlApi> api_;
  std::string unlock_key_;
  std::string w2_cert_;
};

// ---------------------------------------------------------------------------------------------
// Reads and the read barrier

TEST_F(ControlApiTest, GetClusterIsRedacted) {
  api::Cluster stored = StoredCluster();
  ASSERT_FALSE(stored.root_ca().ca_key().empty());
  api::GetClusterResponse resp = GetCluster();
  EXPECT_EQ(resp.cluster().id(), "cluster1");
  EXPECT_EQ(resp.cluster().root_ca().ca_cert(), root_.cert_pem());
  EXPECT_TRUE(resp.cluster().root_ca().ca_key().empty());
  EXPECT_EQ(resp.cluster().unlock_keys_size(), 0);
  EXPECT_EQ(resp.cluster().network_bootstrap_keys_size(), 0);
  EXPECT_EQ(resp.cluster().meta().version().index(), stored.meta().version().index());
  ExpectNoSecrets(resp);
}

TEST_F(ControlApiTest, ReadsWaitForTheBarrierAndFailWithoutALeader) {
  raft_.FailReadsWith(absl::UnavailableError("no leader"));
  api::GetClusterResponse c;
  grpc::Status s = api_->GetCluster({}, &c);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("majority of the managers"));
  api::ListNodesResponse nodes;
  EXPECT_EQ(api_->ListNodes({}, &nodes).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(nodes.nodes_size(), 0);
  api::GetNodeRequest get;
  get.set_node_id("wrk1");
  api::GetNodeResponse node;
  EXPECT_EQ(api_->GetNode(get, &node).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::ListTasksResponse tasks;
  EXPECT_EQ(api_->ListTasks({}, &tasks).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::GetJoinTokensResponse tokens;
  EXPECT_EQ(api_->GetJoinTokens({}, &tokens).error_code(), grpc::StatusCode::UNAVAILABLE);
  api::GetUnlockKeyResponse key;
  EXPECT_EQ(api_->GetUnlockKey({}, &key).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(key.unlock_key().empty());

  raft_.FailReadsWith(absl::DeadlineExceededError("read index timed out"));
  EXPECT_EQ(api_->GetCluster({}, &c).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  raft_.FailReadsWith(absl::OkStatus());
  EXPECT_TRUE(api_->GetCluster({}, &c).ok());
}

// ---------------------------------------------------------------------------------------------
// UpdateCluster

TEST_F(ControlApiTest, UpdateClusterChangesTheSpecAndKeepsSecrets) {
  api::GetClusterResponse read = GetCluster();
  api::UpdateClusterRequest req;
  *req.mutable_version() = read.cluster().meta().version();
  *req.mutable_spec() = read.cluster().spec();
  req.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(-1);
  *req.mutable_spec()->mutable_ca_config()->mutable_node_cert_expiry() = Dur(absl::Hours(1));
  api::UpdateClusterResponse resp;
  grpc::Status s = api_->UpdateCluster(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.cluster().spec().orchestration().task_history_retention_limit(), -1);
  EXPECT_GT(resp.cluster().meta().version().index(), read.cluster().meta().version().index());
  ExpectNoSecrets(resp);

  api::Cluster stored = StoredCluster();
  EXPECT_EQ(stored.spec().orchestration().task_history_retention_limit(), -1);
  EXPECT_EQ(stored.root_ca().ca_key(), root_.key_pem());
  ASSERT_EQ(stored.unlock_keys_size(), 1);  // autolock stayed on: same key
  EXPECT_EQ(stored.unlock_keys(0).key(), unlock_key_);
  EXPECT_EQ(stored.network_bootstrap_keys_size(), 1);
}

TEST_F(ControlApiTest, UpdateClusterWithStaleVersionIsAborted) {
  api::GetClusterResponse read = GetCluster();
  api::UpdateClusterRequest req;
  *req.mutable_version() = read.cluster().meta().version();
  *req.mutable_spec() = read.cluster().spec();
  api::UpdateClusterResponse resp;
  ASSERT_TRUE(api_->UpdateCluster(req, &resp).ok());
  // The same version again: the cluster changed since it was read.
  req.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(7);
  grpc::Status s = api_->UpdateCluster(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("the cluster was changed since you read it; re-read and retry"));
  EXPECT_EQ(StoredCluster().spec().orchestration().task_history_retention_limit(), 5);
}

TEST_F(ControlApiTest, ConcurrentClusterUpdateLosesWithAborted) {
  api::GetClusterResponse read = GetCluster();
  // Another writer updates the cluster after UpdateCluster's transaction read it and before its
  // proposal applies: applying the proposal must refuse it.
  proposer_.BeforeNext([&] {
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      api::Cluster c = *FindCluster(tx);
                      c.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(
                          9);
                      return tx.Update(c);
                    })
                    .ok());
  });
  api::UpdateClusterRequest req;
  *req.mutable_version() = read.cluster().meta().version();
  *req.mutable_spec() = read.cluster().spec();
  req.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(3);
  api::UpdateClusterResponse resp;
  grpc::Status s = api_->UpdateCluster(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("the cluster was changed since you read it; re-read and retry"));
  EXPECT_EQ(StoredCluster().spec().orchestration().task_history_retention_limit(), 9);
}

TEST_F(ControlApiTest, UpdateClusterValidatesTheSpec) {
  api::GetClusterResponse read = GetCluster();
  auto update = [&](const std::function<void(api::ClusterSpec*)>& edit) {
    api::UpdateClusterRequest req;
    *req.mutable_version() = read.cluster().meta().version();
    *req.mutable_spec() = read.cluster().spec();
    edit(req.mutable_spec());
    api::UpdateClusterResponse resp;
    return api_->UpdateCluster(req, &resp);
  };
  grpc::Status s = update([](api::ClusterSpec* spec) {
    *spec->mutable_ca_config()->mutable_node_cert_expiry() = Dur(absl::Minutes(30));
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--cert-expiry"));

  s = update([](api::ClusterSpec* spec) {
    *spec->mutable_dispatcher()->mutable_heartbeat_period() = Dur(absl::Milliseconds(500));
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("heartbeat period"));

  s = update([](api::ClusterSpec* spec) {
    spec->mutable_orchestration()->set_task_history_retention_limit(-2);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--task-history-limit"));

  s = update([](api::ClusterSpec* spec) {
    spec->mutable_raft()->set_heartbeat_tick(5);
    spec->mutable_raft()->set_election_tick(5);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  s = update([](api::ClusterSpec* spec) { spec->mutable_annotations()->set_name("other"); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name"));

  pki::RootCA other = pki::testing::NewRootCA();
  s = update([&](api::ClusterSpec* spec) {
    spec->mutable_ca_config()->set_signing_ca_cert(other.cert_pem());  // no key
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("--ca-key"));

  s = update([&](api::ClusterSpec* spec) {
    spec->mutable_ca_config()->set_signing_ca_cert(other.cert_pem());
    spec->mutable_ca_config()->set_signing_ca_key(root_.key_pem());  // not its key
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot be used"));

  // Nothing was written.
  EXPECT_EQ(StoredCluster().meta().version().index(), read.cluster().meta().version().index());
}

TEST_F(ControlApiTest, UpdateClusterStoresASigningCaAndKeepsItsKeyOnRedactedEchoes) {
  pki::RootCA next = pki::testing::NewRootCA();
  api::GetClusterResponse read = GetCluster();
  api::UpdateClusterRequest req;
  *req.mutable_version() = read.cluster().meta().version();
  *req.mutable_spec() = read.cluster().spec();
  req.mutable_spec()->mutable_ca_config()->set_signing_ca_cert(next.cert_pem());
  req.mutable_spec()->mutable_ca_config()->set_signing_ca_key(next.key_pem());
  req.mutable_spec()->mutable_ca_config()->set_force_rotate(1);
  api::UpdateClusterResponse resp;
  grpc::Status s = api_->UpdateCluster(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.cluster().spec().ca_config().signing_ca_cert(), next.cert_pem());
  EXPECT_TRUE(resp.cluster().spec().ca_config().signing_ca_key().empty());
  EXPECT_FALSE(absl::StrContains(resp.SerializeAsString(), next.key_pem()));
  EXPECT_EQ(StoredCluster().spec().ca_config().signing_ca_key(), next.key_pem());

  // The redacted spec sent back (e.g. to change something else) keeps the stored key.
  api::UpdateClusterRequest echo;
  *echo.mutable_version() = resp.cluster().meta().version();
  *echo.mutable_spec() = resp.cluster().spec();
  echo.mutable_spec()->mutable_orchestration()->set_task_history_retention_limit(2);
  s = api_->UpdateCluster(echo, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  api::Cluster stored = StoredCluster();
  EXPECT_EQ(stored.spec().ca_config().signing_ca_cert(), next.cert_pem());
  EXPECT_EQ(stored.spec().ca_config().signing_ca_key(), next.key_pem());
  EXPECT_EQ(stored.spec().ca_config().force_rotate(), 1u);

  // force_rotate never goes back.
  echo.mutable_spec()->mutable_ca_config()->set_force_rotate(0);
  *echo.mutable_version() = resp.cluster().meta().version();
  s = api_->UpdateCluster(echo, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("force_rotate"));
}

TEST_F(ControlApiTest, AutolockOffAndOnAgain) {
  auto set_autolock = [&](bool on) {
    api::GetClusterResponse read = GetCluster();
    api::UpdateClusterRequest req;
    *req.mutable_version() = read.cluster().meta().version();
    *req.mutable_spec() = read.cluster().spec();
    req.mutable_spec()->mutable_encryption_config()->set_auto_lock_managers(on);
    api::UpdateClusterResponse resp;
    grpc::Status s = api_->UpdateCluster(req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ExpectNoSecrets(resp);
  };

  set_autolock(false);
  EXPECT_EQ(StoredCluster().unlock_keys_size(), 0);
  api::GetUnlockKeyResponse key;
  ASSERT_TRUE(api_->GetUnlockKey({}, &key).ok());
  EXPECT_EQ(key.unlock_key(), "");
  EXPECT_EQ(key.version().index(), StoredCluster().meta().version().index());
  api::RotateUnlockKeyResponse rotated;
  grpc::Status s = api_->RotateUnlockKey({}, &rotated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "autolock is not enabled; enable it with `shoal swarm update --autolock=true`");

  set_autolock(true);
  api::Cluster stored = StoredCluster();
  ASSERT_EQ(stored.unlock_keys_size(), 1);
  const api::EncryptionKey& k = stored.unlock_keys(0);
  EXPECT_EQ(k.subsystem(), "manager:unlock");
  EXPECT_EQ(k.key().size(), pki::kUnlockKeySize);
  EXPECT_NE(k.key(), unlock_key_);
  EXPECT_EQ(k.lamport_time(), 2u);  // the cluster's lamport clock, which moved on
  EXPECT_EQ(stored.encryption_key_lamport_clock(), 3u);

  ASSERT_TRUE(api_->GetUnlockKey({}, &key).ok());
  absl::StatusOr<std::string> parsed = pki::ParseUnlockKey(key.unlock_key());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, k.key());
}

TEST_F(ControlApiTest, GetAndRotateUnlockKey) {
  api::GetUnlockKeyResponse key;
  ASSERT_TRUE(api_->GetUnlockKey({}, &key).ok());
  EXPECT_EQ(key.unlock_key(), pki::FormatUnlockKey(unlock_key_));

  std::vector<std::string> issued;
  for (int i = 0; i < 3; ++i) {
    api::RotateUnlockKeyResponse rotated;
    grpc::Status s = api_->RotateUnlockKey({}, &rotated);
    ASSERT_TRUE(s.ok()) << s.error_message();
    issued.push_back(rotated.unlock_key());
    ASSERT_TRUE(api_->GetUnlockKey({}, &key).ok());
    EXPECT_EQ(key.unlock_key(), rotated.unlock_key());
  }
  EXPECT_NE(issued[0], pki::FormatUnlockKey(unlock_key_));
  EXPECT_NE(issued[0], issued[1]);
  EXPECT_NE(issued[1], issued[2]);

  // Only the newest two are kept: the current key and the one before it.
  api::Cluster stored = StoredCluster();
  ASSERT_EQ(stored.unlock_keys_size(), 2);
  std::vector<std::string> kept;
  uint64_t max_time = 0;
  for (const api::EncryptionKey& k : stored.unlock_keys()) {
    kept.push_back(pki::FormatUnlockKey(k.key()));
    max_time = std::max(max_time, k.lamport_time());
  }
  EXPECT_THAT(kept, UnorderedElementsAre(issued[1], issued[2]));
  EXPECT_LT(max_time, stored.encryption_key_lamport_clock());
}

// ---------------------------------------------------------------------------------------------
// Join tokens

TEST_F(ControlApiTest, GetJoinTokens) {
  api::GetJoinTokensResponse resp;
  ASSERT_TRUE(api_->GetJoinTokens({}, &resp).ok());
  api::Cluster stored = StoredCluster();
  EXPECT_EQ(resp.join_tokens().worker(), stored.root_ca().join_tokens().worker());
  EXPECT_EQ(resp.join_tokens().manager(), stored.root_ca().join_tokens().manager());
  EXPECT_EQ(resp.manager_addr(), "10.0.0.1:2377");
}

TEST_F(ControlApiTest, RotateJoinTokenReplacesOnlyThatRole) {
  const api::JoinTokens before = StoredCluster().root_ca().join_tokens();

  api::RotateJoinTokenRequest req;
  req.set_role(api::NODE_ROLE_WORKER);
  api::RotateJoinTokenResponse resp;
  ASSERT_TRUE(api_->RotateJoinToken(req, &resp).ok());
  EXPECT_NE(resp.join_tokens().worker(), before.worker());
  EXPECT_EQ(resp.join_tokens().manager(), before.manager());
  EXPECT_EQ(resp.manager_addr(), "10.0.0.1:2377");
  absl::StatusOr<pki::JoinToken> parsed = pki::ParseJoinToken(resp.join_tokens().worker());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->root_digest, root_.Digest());
  EXPECT_EQ(StoredCluster().root_ca().join_tokens().worker(), resp.join_tokens().worker());
  // The new token still pins this swarm's root.
  EXPECT_TRUE(pki::VerifyRootAgainstToken(root_.cert_pem(), resp.join_tokens().worker()).ok());

  req.set_role(api::NODE_ROLE_MANAGER);
  api::RotateJoinTokenResponse resp2;
  ASSERT_TRUE(api_->RotateJoinToken(req, &resp2).ok());
  EXPECT_NE(resp2.join_tokens().manager(), before.manager());
  EXPECT_EQ(resp2.join_tokens().worker(), resp.join_tokens().worker());
  ExpectNoSecrets(resp2);

  req.set_role(static_cast<api::NodeRole>(7));
  EXPECT_EQ(api_->RotateJoinToken(req, &resp2).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------------------------------------
// Nodes

TEST_F(ControlApiTest, GetNodeFillsManagerStatusFromRaft) {
  raft_.SetMembers({Member(1, "mgr1", true, true), Member(2, "mgr2", false, true),
                    Member(3, "mgr3", false, false)});
  api::GetNodeRequest req;
  api::GetNodeResponse resp;
  req.set_node_id("mgr1");
  ASSERT_TRUE(api_->GetNode(req, &resp).ok());
  EXPECT_EQ(resp.node().description().hostname(), "manager-1");
  EXPECT_EQ(resp.node().manager_status().raft_id(), 1u);
  EXPECT_EQ(resp.node().manager_status().addr(), "10.0.0.1:2377");
  EXPECT_TRUE(resp.node().manager_status().leader());
  EXPECT_EQ(resp.node().manager_status().reachability(), api::ManagerStatus::REACHABLE);

  req.set_node_id("mgr3");
  ASSERT_TRUE(api_->GetNode(req, &resp).ok());
  EXPECT_FALSE(resp.node().manager_status().leader());
  EXPECT_EQ(resp.node().manager_status().reachability(), api::ManagerStatus::UNREACHABLE);

  req.set_node_id("wrk1");
  ASSERT_TRUE(api_->GetNode(req, &resp).ok());
  EXPECT_FALSE(resp.node().has_manager_status());

  req.set_node_id("nope");
  grpc::Status s = api_->GetNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "node nope not found");

  req.set_node_id("");
  EXPECT_EQ(api_->GetNode(req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ControlApiTest, ListNodesFilters) {
  using F = api::ListNodesRequest::Filters;
  EXPECT_THAT(ListNodeIds(F()), ElementsAre("mgr1", "mgr2", "mgr3", "wrk1", "wrk2"));
  {
    F f;
    f.add_names("worker-1");
    f.add_names("special");  // wrk2's spec name
    f.add_names("worker");   // exact only: matches nothing
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk1", "wrk2"));
  }
  {
    F f;
    f.add_name_prefixes("manager-");
    EXPECT_THAT(ListNodeIds(f), ElementsAre("mgr1", "mgr2", "mgr3"));
  }
  {
    F f;
    f.add_id_prefixes("wrk");
    f.add_id_prefixes("mgr2");
    EXPECT_THAT(ListNodeIds(f), ElementsAre("mgr2", "wrk1", "wrk2"));
  }
  {
    F f;
    (*f.mutable_labels())["zone"] = "b";
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk2"));
    (*f.mutable_labels())["zone"] = "";  // any value
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk1", "wrk2"));
  }
  {
    F f;
    f.add_roles(api::NODE_ROLE_MANAGER);
    EXPECT_THAT(ListNodeIds(f), ElementsAre("mgr1", "mgr2", "mgr3"));
  }
  {
    F f;
    f.add_memberships(api::NodeSpec::ACCEPTED);
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk1", "wrk2"));
  }
  {
    F f;
    f.add_availabilities(api::NODE_AVAILABILITY_DRAIN);
    f.add_availabilities(api::NODE_AVAILABILITY_PAUSE);
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk2"));
  }
  {
    // AND between lists.
    F f;
    f.add_roles(api::NODE_ROLE_WORKER);
    f.add_name_prefixes("worker-1");
    f.add_availabilities(api::NODE_AVAILABILITY_ACTIVE);
    EXPECT_THAT(ListNodeIds(f), ElementsAre("wrk1"));
  }

  api::ListNodesResponse resp;
  ASSERT_TRUE(api_->ListNodes({}, &resp).ok());
  ASSERT_EQ(resp.nodes_size(), 5);
  EXPECT_TRUE(resp.nodes(0).manager_status().leader());
  EXPECT_EQ(resp.nodes(1).manager_status().raft_id(), 2u);
  EXPECT_FALSE(resp.nodes(3).has_manager_status());
}

TEST_F(ControlApiTest, UpdateNodeAvailabilityLabelsAndPromotion) {
  api::UpdateNodeRequest req = NodeUpdate("wrk1");
  req.mutable_spec()->set_availability(api::NODE_AVAILABILITY_PAUSE);
  req.mutable_spec()->mutable_annotations()->mutable_labels()->clear();
  (*req.mutable_spec()->mutable_annotations()->mutable_labels())["ssd"] = "true";
  req.mutable_spec()->set_desired_role(api::NODE_ROLE_MANAGER);
  api::UpdateNodeResponse resp;
  grpc::Status s = api_->UpdateNode(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.node().spec().availability(), api::NODE_AVAILABILITY_PAUSE);
  EXPECT_EQ(resp.node().spec().desired_role(), api::NODE_ROLE_MANAGER);

  api::Node stored = StoredNode("wrk1");
  EXPECT_EQ(stored.spec().availability(), api::NODE_AVAILABILITY_PAUSE);
  EXPECT_EQ(stored.spec().annotations().labels().size(), 1u);
  EXPECT_EQ(stored.spec().annotations().labels().at("ssd"), "true");
  EXPECT_EQ(stored.spec().desired_role(), api::NODE_ROLE_MANAGER);
  // Promotion only records the wish; the role manager carries it out.
  EXPECT_EQ(stored.role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(stored.spec().membership(), api::NodeSpec::ACCEPTED);
}

TEST_F(ControlApiTest, UpdateNodeErrors) {
  api::UpdateNodeResponse resp;
  api::UpdateNodeRequest req = NodeUpdate("wrk1");
  req.set_node_id("ghost");
  grpc::Status s = api_->UpdateNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("ghost"));

  req = NodeUpdate("wrk1");
  req.mutable_spec()->set_availability(static_cast<api::NodeAvailability>(9));
  EXPECT_EQ(api_->UpdateNode(req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Stale version.
  req = NodeUpdate("wrk1");
  ASSERT_TRUE(api_->UpdateNode(req, &resp).ok());
  req.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  s = api_->UpdateNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("worker-1"));
  EXPECT_THAT(s.error_message(), HasSubstr("re-read and retry"));
  EXPECT_EQ(StoredNode("wrk1").spec().availability(), api::NODE_AVAILABILITY_ACTIVE);
}

TEST_F(ControlApiTest, ConcurrentNodeUpdateLosesWithAborted) {
  api::UpdateNodeRequest req = NodeUpdate("wrk1");
  proposer_.BeforeNext([&] {
    api::Node n = StoredNode("wrk1");
    n.mutable_status()->set_state(api::NodeStatus::DOWN);  // e.g. the dispatcher
    WriteNode(n);
  });
  req.mutable_spec()->set_availability(api::NODE_AVAILABILITY_DRAIN);
  api::UpdateNodeResponse resp;
  grpc::Status s = api_->UpdateNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(s.error_message(), HasSubstr("was changed since you read it; re-read and retry"));
  EXPECT_EQ(StoredNode("wrk1").spec().availability(), api::NODE_AVAILABILITY_ACTIVE);
}

TEST_F(ControlApiTest, DemotionKeepingQuorumIsAccepted) {
  api::UpdateNodeRequest req = NodeUpdate("mgr3");
  req.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  api::UpdateNodeResponse resp;
  grpc::Status s = api_->UpdateNode(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(StoredNode("mgr3").spec().desired_role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(StoredNode("mgr3").role(), api::NODE_ROLE_MANAGER);  // the role manager's job
  EXPECT_EQ(resp.node().manager_status().raft_id(), 3u);
}

TEST_F(ControlApiTest, DemotionLosingQuorumIsRefused) {
  raft_.SetMembers({Member(1, "mgr1", true, true), Member(2, "mgr2", false, true),
                    Member(3, "mgr3", false, false)});
  api::UpdateNodeRequest req = NodeUpdate("mgr2");
  req.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  api::UpdateNodeResponse resp;
  grpc::Status s = api_->UpdateNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "demoting manager-2 (mgr2) would leave 1 of 2 managers reachable, less than a quorum "
            "of 2; bring the unreachable managers back first");
  EXPECT_EQ(StoredNode("mgr2").spec().desired_role(), api::NODE_ROLE_MANAGER);

  // Demoting the unreachable one leaves two reachable voters: fine.
  req = NodeUpdate("mgr3");
  req.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  s = api_->UpdateNode(req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ControlApiTest, DemotingTheLastManagerIsRefused) {
  for (const char* id : {"mgr2", "mgr3"}) {
    api::Node n = StoredNode(id);
    n.set_role(api::NODE_ROLE_WORKER);
    n.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
    WriteNode(n);
  }
  raft_.SetMembers({Member(1, "mgr1", true, true)});
  api::UpdateNodeRequest req = NodeUpdate("mgr1");
  req.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  api::UpdateNodeResponse resp;
  grpc::Status s = api_->UpdateNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot demote the last manager of the swarm"));
  EXPECT_EQ(StoredNode("mgr1").spec().desired_role(), api::NODE_ROLE_MANAGER);
}

TEST_F(ControlApiTest, RemoveNodeRefusals) {
  api::RemoveNodeRequest req;
  api::RemoveNodeResponse resp;
  req.set_node_id("ghost");
  grpc::Status s = api_->RemoveNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "node ghost not found");

  req.set_node_id("mgr2");
  req.set_force(true);
  s = api_->RemoveNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "node manager-2 (mgr2) is a cluster manager and is a member of the raft cluster. It "
            "must be demoted to worker before removal");

  // A demotion that has not happened yet still counts as a manager.
  api::Node m3 = StoredNode("mgr3");
  m3.mutable_spec()->set_desired_role(api::NODE_ROLE_WORKER);
  WriteNode(m3);
  req.set_node_id("mgr3");
  EXPECT_EQ(api_->RemoveNode(req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  req.set_node_id("wrk1");
  req.set_force(false);
  s = api_->RemoveNode(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "node worker-1 (wrk1) is not down and can't be removed; use --force to remove it "
            "anyway");

  EXPECT_EQ(StoredCluster().denied_certificates_size(), 0);
  EXPECT_FALSE(StoredNode("wrk1").id().empty());
}

TEST_F(ControlApiTest, RemoveNodeDeniesItsCertificateInTheSameTransaction) {
  const size_t entries_before = proposer_.inner().entries().size();
  api::RemoveNodeRequest req;
  api::RemoveNodeResponse resp;
  req.set_node_id("wrk2");  // DOWN: no force needed
  grpc::Status s = api_->RemoveNode(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(proposer_.inner().entries().size(), entries_before + 1);  // one atomic entry
  EXPECT_TRUE(StoredNode("wrk2").id().empty());
  api::Cluster c = StoredCluster();
  ASSERT_EQ(c.denied_certificates().count("wrk2"), 1u);
  // Its certificate's notAfter (issued for 30 days).
  absl::StatusOr<pki::X509Ptr> cert = pki::ParseCertificate(w2_cert_, "test", true);
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(FromTs(c.denied_certificates().at("wrk2").expiry()),
            pki::Asn1TimeToAbsl(X509_get0_notAfter(cert->get())));

  // A node that is up needs force; without a readable certificate it is denied for 90 days.
  req.set_node_id("wrk1");
  req.set_force(true);
  s = api_->RemoveNode(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  c = StoredCluster();
  ASSERT_EQ(c.denied_certificates().count("wrk1"), 1u);
  EXPECT_EQ(FromTs(c.denied_certificates().at("wrk1").expiry()),
            clock_.Now() + ControlApi::kDefaultDenyPeriod);
  EXPECT_TRUE(StoredNode("wrk1").id().empty());

  // Removing again: gone.
  EXPECT_EQ(api_->RemoveNode(req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControlApiTest, RemoveNodePrunesLongExpiredDenials) {
  api::Cluster c = StoredCluster();
  google::protobuf::Timestamp old;
  old.set_seconds(absl::ToUnixSeconds(clock_.Now() - absl::Hours(48)));
  *(*c.mutable_denied_certificates())["gone-long-ago"].mutable_expiry() = old;
  google::protobuf::Timestamp future;
  future.set_seconds(absl::ToUnixSeconds(clock_.Now() + absl::Hours(48)));
  *(*c.mutable_denied_certificates())["still-valid"].mutable_expiry() = future;
  ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Update(c); }).ok());

  api::RemoveNodeRequest req;
  req.set_node_id("wrk2");
  api::RemoveNodeResponse resp;
  ASSERT_TRUE(api_->RemoveNode(req, &resp).ok());
  c = StoredCluster();
  EXPECT_EQ(c.denied_certificates().count("gone-long-ago"), 0u);
  EXPECT_EQ(c.denied_certificates().count("still-valid"), 1u);
  EXPECT_EQ(c.denied_certificates().count("wrk2"), 1u);
}

// ---------------------------------------------------------------------------------------------
// Tasks

class ControlApiTaskTest : public ControlApiTest {
 protected:
  void SetUp() override {
    ControlApiTest::SetUp();
    CreateTask(Task("t1", "s1", "web", 1, "wrk1", api::TASK_STATE_RUNNING, {{"a", "1"}}));
    CreateTask(Task("t2", "s1", "web", 2, "wrk2", api::TASK_STATE_SHUTDOWN, {}));
    CreateTask(Task("t3", "s2", "api", 0, "wrk1", api::TASK_STATE_RUNNING, {{"a", "2"}}));
  }

  static api::Task Task(const std::string& id, const std::string& service,
                        const std::string& service_name, uint64_t slot, const std::string& node,
                        api::TaskState desired, const std::map<std::string, std::string>& labels) {
    api::Task t;
    t.set_id(id);
    t.set_service_id(service);
    t.mutable_service_annotations()->set_name(service_name);
    t.set_slot(slot);
    t.set_node_id(node);
    t.set_desired_state(desired);
    for (const auto& [k, v] : labels) (*t.mutable_annotations()->mutable_labels())[k] = v;
    return t;
  }

  std::vector<std::string> ListTaskIds(const api::ListTasksRequest::Filters& f) {
    api::ListTasksRequest req;
    *req.mutable_filters() = f;
    api::ListTasksResponse resp;
    grpc::Status s = api_->ListTasks(req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const api::Task& t : resp.tasks()) ids.push_back(t.id());
    return ids;
  }
};

TEST_F(ControlApiTaskTest, GetTask) {
  api::GetTaskRequest req;
  api::GetTaskResponse resp;
  req.set_task_id("t2");
  ASSERT_TRUE(api_->GetTask(req, &resp).ok());
  EXPECT_EQ(resp.task().service_id(), "s1");
  EXPECT_EQ(resp.task().slot(), 2u);
  req.set_task_id("t9");
  grpc::Status s = api_->GetTask(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "task t9 not found");
}

TEST_F(ControlApiTaskTest, ListTasksFilters) {
  using F = api::ListTasksRequest::Filters;
  EXPECT_THAT(ListTaskIds(F()), ElementsAre("t1", "t2", "t3"));
  {
    F f;
    f.add_names("web.1.t1");
    f.add_names("api.wrk1.t3");  // global task: named by node
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1", "t3"));
  }
  {
    F f;
    f.add_name_prefixes("web.");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1", "t2"));
  }
  {
    F f;
    f.add_id_prefixes("t3");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t3"));
  }
  {
    F f;
    (*f.mutable_labels())["a"] = "";
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1", "t3"));
    (*f.mutable_labels())["a"] = "2";
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t3"));
  }
  {
    F f;
    f.add_service_ids("s2");
    f.add_service_ids("s1");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1", "t2", "t3"));
    f.add_node_ids("wrk1");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1", "t3"));
  }
  {
    F f;
    f.add_node_ids("wrk2");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t2"));
  }
  {
    F f;
    f.add_desired_states(api::TASK_STATE_SHUTDOWN);
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t2"));
  }
  {
    F f;
    f.add_slots(1);
    f.add_service_ids("s1");
    EXPECT_THAT(ListTaskIds(f), ElementsAre("t1"));
  }
}

}  // namespace
}  // namespace shoal::manager
