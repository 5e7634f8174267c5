// RaftNode with real transports on loopback and durable logs on disk (tick 20 ms to keep the
// tests quick; the protocol logic itself is covered by raft/core and raft/sim).
#include "raft/node/raft_node.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "raft/node/test_cluster.h"
#include "spdlog/spdlog.h"

namespace shoal::raft::testing {
namespace {

RaftNodeOptions FastOptions() {
  RaftNodeOptions o;
  o.tick_interval = absl::Milliseconds(20);
  o.election_tick = 5;
  return o;
}

absl::Time In(absl::Duration d) { return absl::Now() + d; }

class DebugLogging : public ::testing::Environment {
 public:
  void SetUp() override {
    if (std::getenv("SHOAL_TEST_DEBUG") != nullptr)
      spdlog::set_level(std::string(std::getenv("SHOAL_TEST_DEBUG")) == "trace"
                            ? spdlog::level::trace
                            : spdlog::level::debug);
  }
};
const auto* const kDebugLogging = ::testing::AddGlobalTestEnvironment(new DebugLogging);

TEST(RaftNodeTest, ThreeMembersElectALeaderAndReplicate) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  absl::StatusOr<std::string> r = c.node(lead).Propose("a=1", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "");  // no previous value
  r = c.node(lead).Propose("a=2", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "1");
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->Get("a"), "2") << "member " << id << "\n" << c.Describe();
  }
  EXPECT_EQ(c.node(lead).GetInfo().members.size(), 3u);
}

TEST(RaftNodeTest, ProposalOnFollowerIsForwardedToTheLeader) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t follower = lead == 1 ? 2 : 1;
  absl::StatusOr<std::string> r = c.node(follower).Propose("k=v", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(c.member(follower).kv->Get("k"), "v");
}

TEST(RaftNodeTest, ManyConcurrentProposalsAllApplyOnce) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (c.node(lead).Propose(absl::StrCat("t", t, "-", i, "=x"), In(absl::Seconds(10))).ok()) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) EXPECT_EQ(c.member(id).kv->size(), size_t{kThreads * kEach});
}

TEST(RaftNodeTest, LeaderStopElectsANewLeaderAndKeepsEveryAcknowledgedWrite) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  for (int round = 0; round < 3; ++round) {
    const uint64_t lead = c.WaitForLeader();
    ASSERT_NE(lead, 0u) << "round " << round;
    ASSERT_TRUE(c.Put(absl::StrCat("round", round), "done").ok());
    c.StopMember(lead);
    const uint64_t next = c.WaitForLeader();
    ASSERT_NE(next, 0u) << c.Describe();
    ASSERT_NE(next, lead);
    ASSERT_TRUE(c.Put(absl::StrCat("after", round), "done").ok());
    c.RestartMember(lead);
  }
  ASSERT_NE(c.WaitForLeader(), 0u);
  ASSERT_TRUE(c.Put("final", "x").ok());
  const uint64_t lead = c.WaitForLeader();
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    for (int round = 0; round < 3; ++round) {
      EXPECT_EQ(c.member(id).kv->Get(absl::StrCat("round", round)), "done") << id;
      EXPECT_EQ(c.member(id).kv->Get(absl::StrCat("after", round)), "done") << id;
    }
  }
}

TEST(RaftNodeTest, RestartRecoversStateFromDiskIncludingSnapshots) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 20;
  o.log_entries_for_slow_followers = 5;
  TestCluster c(o);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), absl::StrCat(i)).ok());
  for (uint64_t id : c.ids()) c.StopMember(id);
  for (uint64_t id : c.ids()) c.RestartMember(id);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  EXPECT_GE(c.node(lead).GetInfo().snapshot_index, 20u);
  ASSERT_TRUE(c.Put("after-restart", "1").ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->size(), 61u) << id;
    EXPECT_EQ(c.member(id).kv->Get("k42"), "42") << id;
  }
}

TEST(RaftNodeTest, ForceNewClusterRestartsALoneSurvivorWithAllCommittedData) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 20;
  o.log_entries_for_slow_followers = 5;
  TestCluster c(o);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), absl::StrCat(i)).ok());
  const uint64_t survivor = 2;
  ASSERT_TRUE(c.WaitForApplied(c.node(c.WaitForLeader()).GetInfo().commit));
  for (uint64_t id : c.ids()) c.StopMember(id);
  // Members 1 and 3 are lost for good: 2 alone has no quorum unless forced.
  c.RestartMemberAsNewCluster(survivor);
  ASSERT_EQ(c.WaitForLeader(), survivor) << c.Describe();
  const RaftNode::Info info = c.node(survivor).GetInfo();
  EXPECT_EQ(info.conf_state.voters_size(), 1) << c.Describe();
  EXPECT_EQ(info.members.size(), 1u);
  ASSERT_TRUE(c.Put("after-recovery", "1").ok()) << c.Describe();
  EXPECT_EQ(c.member(survivor).kv->size(), 31u);
  EXPECT_EQ(c.member(survivor).kv->Get("k29"), "29");
  // A plain restart afterwards stays a one-member cluster.
  c.StopMember(survivor);
  c.RestartMember(survivor);
  ASSERT_EQ(c.WaitForLeader(), survivor) << c.Describe();
  EXPECT_EQ(c.member(survivor).kv->Get("after-recovery"), "1");
}

TEST(RaftNodeTest, LaggingFollowerCatchesUpFromASnapshot) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 10;
  o.log_entries_for_slow_followers = 2;
  TestCluster c(o);
  c.Bootstrap(3);
  uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t lagging = lead == 3 ? 2 : 3;
  c.StopMember(lagging);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), "v").ok());
  lead = c.WaitForLeader();
  ASSERT_GT(c.node(lead).GetInfo().snapshot_index, 30u);
  c.RestartMember(lagging);
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied, absl::Seconds(15))) << c.Describe();
  EXPECT_EQ(c.member(lagging).kv->size(), 50u);
  EXPECT_GE(c.node(lagging).GetInfo().snapshot_index, 30u);  // installed, not replayed
}

TEST(RaftNodeTest, NewMemberJoinsAsLearnerIsPromotedAndAnotherIsRemoved) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  ASSERT_TRUE(c.Put("before", "join").ok());
  const uint64_t joiner = c.AddEmptyMember();
  ASSERT_TRUE(
      c.node(lead).AddMember(c.Identity(joiner), /*as_learner=*/true, In(absl::Seconds(5))).ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  EXPECT_EQ(c.member(joiner).kv->Get("before"), "join");
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.learners_size(), 1);
  ASSERT_TRUE(
      c.node(lead).AddMember(c.Identity(joiner), /*as_learner=*/false, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.voters_size(), 4);
  const uint64_t victim = lead == 1 ? 2 : 1;
  ASSERT_TRUE(c.node(lead).RemoveMember(victim, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.voters_size(), 3);
  c.StopMember(victim);
  ASSERT_TRUE(c.Put("after", "remove").ok());
  lead = c.WaitForLeader();
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  EXPECT_EQ(c.member(joiner).kv->Get("after"), "remove");
}

TEST(RaftNodeTest, MembershipChangeOnAFollowerNamesTheLeader) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t follower = lead == 1 ? 2 : 1;
  absl::Status s = c.node(follower).RemoveMember(lead, In(absl::Seconds(2)));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(absl::StrCat("leader is ", lead)), std::string::npos) << s;
}

TEST(RaftNodeTest, LeadershipTransfer) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t target = lead % 3 + 1;
  ASSERT_TRUE(c.node(lead).TransferLeadership(target, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.WaitForLeader(), target);
  ASSERT_TRUE(c.Put("after-transfer", "1").ok());
}

TEST(RaftNodeTest, LinearizableReadSeesEveryAcknowledgedWrite) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.node(lead).Propose(absl::StrCat("x=", i), In(absl::Seconds(5))).ok());
    // A read on any member after the write was acknowledged must see it.
    const uint64_t reader = i % 3 + 1;
    ASSERT_TRUE(c.node(reader).LinearizableRead(In(absl::Seconds(5))).ok());
    EXPECT_EQ(c.member(reader).kv->Get("x"), absl::StrCat(i)) << "reader " << reader;
  }
}

TEST(RaftNodeTest, ProposalWithoutQuorumTimesOutAndStopCancels) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  for (uint64_t id : c.ids()) {
    if (id != lead) c.StopMember(id);
  }
  absl::StatusOr<std::string> r = c.node(lead).Propose("lost=1", In(absl::Milliseconds(300)));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status()) || absl::IsUnavailable(r.status()))
      << r.status();
}

}  // namespace
}  // namespace shoal::raft::testing
