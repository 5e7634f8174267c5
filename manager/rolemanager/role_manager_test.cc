// RoleManager on a MemoryStore fed by a DirectProposer and a FakeRaftControl: promotion,
// demotion (Raft removal first, then the role), unsafe demotions waiting for quorum, and a
// prompt Stop().
#include "manager/rolemanager/role_manager.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "manager/fake_raft_control.h"
#include "manager/store/direct_proposer.h"
#include "manager/store/memory_store.h"

namespace shoal::manager {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

store::StoreOptions StoreOpts(Clock* clock) {
  store::StoreOptions o;
  o.clock = clock;
  return o;
}

ManagerMember Member(uint64_t raft_id, const std::string& node_id, bool leader, bool reachable) {
  ManagerMember m;
  m.raft_id = raft_id;
  m.node_id = node_id;
  m.addr = "10.0.0." + std::to_string(raft_id) + ":2377";
  m.leader = leader;
  m.reachable = reachable;
  return m;
}

api::Node MakeNode(const std::string& id, api::NodeRole role, api::NodeRole desired) {
  api::Node n;
  n.set_id(id);
  n.mutable_description()->set_hostname("host-" + id);
  n.set_role(role);
  n.mutable_spec()->set_desired_role(desired);
  n.mutable_certificate()->mutable_status()->set_state(api::IssuanceStatus::ISSUED);
  n.mutable_status()->set_state(api::NodeStatus::READY);
  return n;
}

// Waits (polling, wall-clock bounded) until `cond` holds; true if it did.
bool WaitFor(const std::function<bool()>& cond) {
  const absl::Time deadline = absl::Now() + kWait;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return cond();
}

class RoleManagerTest : public ::testing::Test {
 protected:
  RoleManagerTest() : store_(&proposer_, StoreOpts(&store_clock_)), raft_(1, "m1") {
    proposer_.Attach(&store_);
  }

  void SetUp() override {
    Create(MakeNode("m1", api::NODE_ROLE_MANAGER, api::NODE_ROLE_MANAGER));
    Create(MakeNode("m2", api::NODE_ROLE_MANAGER, api::NODE_ROLE_MANAGER));
    Create(MakeNode("m3", api::NODE_ROLE_MANAGER, api::NODE_ROLE_MANAGER));
    Create(MakeNode("w1", api::NODE_ROLE_WORKER, api::NODE_ROLE_WORKER));
    raft_.SetMembers(
        {Member(1, "m1", true, true), Member(2, "m2", false, true), Member(3, "m3", false, true)});
  }

  void TearDown() override {
    if (rm_) rm_->Stop();
  }

  void StartRoleManager(absl::Duration retry = absl::Seconds(1)) {
    RoleManagerOptions o;
    o.clock = &clock_;
    o.retry = retry;
    o.removal_timeout = absl::Seconds(5);
    rm_ = std::make_unique<RoleManager>(&store_, &raft_, o);
    rm_->Start();
  }

  void Create(const api::Node& n) {
    ASSERT_TRUE(store_.Update([&](store::WriteTx& tx) { return tx.Create(n); }).ok());
  }
  api::Node Stored(const std::string& id) {
    api::Node out;
    store_.View([&](const store::ReadTx& tx) {
      if (const api::Node* n = tx.Get<api::Node>(id)) out = *n;
    });
    return out;
  }
  void SetDesiredRole(const std::string& id, api::NodeRole role) {
    ASSERT_TRUE(store_
                    .Update([&](store::WriteTx& tx) {
                      api::Node n = *tx.Get<api::Node>(id);
                      n.mutable_spec()->set_desired_role(role);
                      return tx.Update(n);
                    })
                    .ok());
  }
  bool HasMember(const std::string& node_id) {
    for (const ManagerMember& m : raft_.Members()) {
      if (m.node_id == node_id) return true;
    }
    return false;
  }
  // Waits until the loop has completed at least `n` rounds in all.
  bool WaitForPasses(uint64_t n) {
    return WaitFor([&] { return rm_->passes() >= n; });
  }

  ManualClock store_clock_;
  ManualClock clock_;
  store::DirectProposer proposer_;
  store::MemoryStore store_;
  FakeRaftControl raft_;
  std::unique_ptr<RoleManager> rm_;
};

TEST_F(RoleManagerTest, PromotionFlipsTheRoleAndAsksForANewCertificate) {
  StartRoleManager();
  ASSERT_TRUE(WaitForPasses(1));
  SetDesiredRole("w1", api::NODE_ROLE_MANAGER);
  ASSERT_TRUE(WaitFor([&] { return Stored("w1").role() == api::NODE_ROLE_MANAGER; }));
  api::Node n = Stored("w1");
  EXPECT_EQ(n.certificate().status().state(), api::IssuanceStatus::RENEW);
  EXPECT_TRUE(raft_.removed().empty());
}

TEST_F(RoleManagerTest, PendingPromotionFoundAtStart) {
  // Written before the loop started (e.g. under the previous leader).
  SetDesiredRole("w1", api::NODE_ROLE_MANAGER);
  StartRoleManager();
  ASSERT_TRUE(WaitFor([&] { return Stored("w1").role() == api::NODE_ROLE_MANAGER; }));
  EXPECT_EQ(Stored("w1").certificate().status().state(), api::IssuanceStatus::RENEW);
}

TEST_F(RoleManagerTest, DemotionRemovesTheRaftMemberThenFlipsTheRole) {
  StartRoleManager();
  ASSERT_TRUE(WaitForPasses(1));
  SetDesiredRole("m3", api::NODE_ROLE_WORKER);
  ASSERT_TRUE(WaitFor([&] { return Stored("m3").role() == api::NODE_ROLE_WORKER; }));
  EXPECT_EQ(raft_.removed(), std::vector<uint64_t>{3});
  EXPECT_FALSE(HasMember("m3"));
  EXPECT_EQ(Stored("m3").certificate().status().state(), api::IssuanceStatus::RENEW);
  // The others are untouched.
  EXPECT_EQ(Stored("m2").role(), api::NODE_ROLE_MANAGER);
  EXPECT_EQ(Stored("m2").certificate().status().state(), api::IssuanceStatus::ISSUED);
}

TEST_F(RoleManagerTest, DemotionOfANodeNoLongerInRaftOnlyFlipsTheRole) {
  raft_.SetMembers({Member(1, "m1", true, true), Member(2, "m2", false, true)});
  SetDesiredRole("m3", api::NODE_ROLE_WORKER);
  StartRoleManager();
  ASSERT_TRUE(WaitFor([&] { return Stored("m3").role() == api::NODE_ROLE_WORKER; }));
  EXPECT_TRUE(raft_.removed().empty());
}

TEST_F(RoleManagerTest, UnsafeDemotionWaitsForQuorum) {
  // m3 is down: removing m2 would leave m1 alone out of two voters.
  raft_.SetMembers(
      {Member(1, "m1", true, true), Member(2, "m2", false, true), Member(3, "m3", false, false)});
  SetDesiredRole("m2", api::NODE_ROLE_WORKER);
  StartRoleManager(absl::Seconds(5));
  ASSERT_TRUE(WaitForPasses(1));
  EXPECT_TRUE(raft_.removed().empty());
  EXPECT_EQ(Stored("m2").role(), api::NODE_ROLE_MANAGER);

  // A retry while m3 is still down changes nothing.
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(WaitForPasses(2));
  EXPECT_TRUE(raft_.removed().empty());
  EXPECT_EQ(Stored("m2").role(), api::NODE_ROLE_MANAGER);

  // m3 comes back: the next retry carries the demotion out.
  raft_.SetMembers(
      {Member(1, "m1", true, true), Member(2, "m2", false, true), Member(3, "m3", false, true)});
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(WaitFor([&] { return Stored("m2").role() == api::NODE_ROLE_WORKER; }));
  EXPECT_EQ(raft_.removed(), std::vector<uint64_t>{2});
}

TEST_F(RoleManagerTest, DoesNothingWhenNotLeader) {
  raft_.SetLeader(false);
  SetDesiredRole("w1", api::NODE_ROLE_MANAGER);
  SetDesiredRole("m3", api::NODE_ROLE_WORKER);
  StartRoleManager(absl::Seconds(5));
  ASSERT_TRUE(WaitForPasses(1));
  EXPECT_EQ(Stored("w1").role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(Stored("m3").role(), api::NODE_ROLE_MANAGER);
  EXPECT_TRUE(raft_.removed().empty());

  // Leadership (back): the retry does the work.
  raft_.SetLeader(true);
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(WaitFor([&] {
    return Stored("w1").role() == api::NODE_ROLE_MANAGER &&
           Stored("m3").role() == api::NODE_ROLE_WORKER;
  }));
}

TEST_F(RoleManagerTest, CancelledPromotionIsNotCarriedOut) {
  raft_.SetLeader(false);  // hold the loop back while the wish changes twice
  StartRoleManager(absl::Seconds(5));
  ASSERT_TRUE(WaitForPasses(1));
  SetDesiredRole("w1", api::NODE_ROLE_MANAGER);
  SetDesiredRole("w1", api::NODE_ROLE_WORKER);
  raft_.SetLeader(true);
  // A later change, handled after w1's (changes arrive in order), marks that the loop got there.
  SetDesiredRole("m3", api::NODE_ROLE_WORKER);
  ASSERT_TRUE(WaitFor([&] { return Stored("m3").role() == api::NODE_ROLE_WORKER; }));
  clock_.Advance(absl::Seconds(5));  // and a retry round on top
  ASSERT_TRUE(WaitFor([&] { return rm_->passes() >= 4; }));
  EXPECT_EQ(Stored("w1").role(), api::NODE_ROLE_WORKER);
  EXPECT_EQ(Stored("w1").certificate().status().state(), api::IssuanceStatus::ISSUED);
}

TEST_F(RoleManagerTest, StopIsPrompt) {
  StartRoleManager(absl::Hours(1));
  ASSERT_TRUE(WaitForPasses(1));
  const absl::Time start = absl::Now();
  rm_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  rm_->Stop();  // idempotent

  // Nothing happens once stopped.
  SetDesiredRole("w1", api::NODE_ROLE_MANAGER);
  EXPECT_EQ(Stored("w1").role(), api::NODE_ROLE_WORKER);

  // And it can start again (leadership regained).
  rm_->Start();
  ASSERT_TRUE(WaitFor([&] { return Stored("w1").role() == api::NODE_ROLE_MANAGER; }));
}

TEST_F(RoleManagerTest, StopWithRealClockIsPrompt) {
  RoleManager rm(&store_, &raft_, RoleManagerOptions{});  // RealClock, 1 s retry
  rm.Start();
  ASSERT_TRUE(WaitFor([&] { return rm.passes() >= 1; }));
  const absl::Time start = absl::Now();
  rm.Stop();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

}  // namespace
}  // namespace shoal::manager
