#include "manager/rolemanager/quorum.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::manager {
namespace {

ManagerMember M(uint64_t id, bool reachable, bool learner = false) {
  ManagerMember m;
  m.raft_id = id;
  m.node_id = "n" + std::to_string(id);
  m.reachable = reachable;
  m.learner = learner;
  return m;
}

TEST(QuorumTest, RemovingFromAHealthyThreeManagerSwarmIsSafe) {
  std::vector<ManagerMember> members = {M(1, true), M(2, true), M(3, true)};
  QuorumAfterRemoval q = QuorumWithout(members, 2);
  EXPECT_EQ(q.voters, 2u);
  EXPECT_EQ(q.reachable, 2u);
  EXPECT_EQ(q.quorum, 2u);
  EXPECT_TRUE(q.safe());
  EXPECT_TRUE(CheckDemotionKeepsQuorum(members, 2, "n2").ok());
}

TEST(QuorumTest, RemovingAReachableManagerWhileAnotherIsDownIsUnsafe) {
  std::vector<ManagerMember> members = {M(1, true), M(2, true), M(3, false)};
  absl::Status s = CheckDemotionKeepsQuorum(members, 2, "node-2");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "demoting node-2 would leave 1 of 2 managers reachable, less than a quorum of 2; "
            "bring the unreachable managers back first");
  // Removing the unreachable one is fine.
  EXPECT_TRUE(CheckDemotionKeepsQuorum(members, 3, "node-3").ok());
}

TEST(QuorumTest, LastManager) {
  std::vector<ManagerMember> members = {M(1, true)};
  absl::Status s = CheckDemotionKeepsQuorum(members, 1, "solo");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "cannot demote the last manager of the swarm (solo); promote another node first");
  // A learner does not count as a voter that could take over.
  members.push_back(M(2, true, /*learner=*/true));
  EXPECT_EQ(CheckDemotionKeepsQuorum(members, 1, "solo").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(QuorumTest, LearnersAndNonMembersAreAlwaysSafe) {
  std::vector<ManagerMember> members = {M(1, true), M(2, false), M(3, true, /*learner=*/true)};
  EXPECT_TRUE(CheckDemotionKeepsQuorum(members, 3, "learner").ok());
  EXPECT_TRUE(CheckDemotionKeepsQuorum(members, 42, "stranger").ok());
  QuorumAfterRemoval q = QuorumWithout(members, 42);
  EXPECT_EQ(q.voters, 2u);
  EXPECT_EQ(q.reachable, 1u);
  EXPECT_EQ(q.quorum, 2u);
  EXPECT_FALSE(q.safe());
}

TEST(QuorumTest, FiveManagers) {
  // 5 voters, two down: removing a reachable one leaves 2 of 4 reachable, quorum 3.
  std::vector<ManagerMember> members = {M(1, true), M(2, true), M(3, true), M(4, false),
                                        M(5, false)};
  EXPECT_FALSE(CheckDemotionKeepsQuorum(members, 3, "n3").ok());
  // Removing a down one leaves 3 of 4 reachable: fine.
  EXPECT_TRUE(CheckDemotionKeepsQuorum(members, 5, "n5").ok());
}

}  // namespace
}  // namespace shoal::manager
