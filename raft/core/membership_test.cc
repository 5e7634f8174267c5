// Membership changes, one node at a time: adding voters and learners, promoting learners,
// removing members (including the leader), refusing overlapping changes, and restoring the
// membership on restart.
#include "gtest/gtest.h"
#include "raft/core/cluster_test_util.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT
constexpr auto kAdd = raftpb::CONF_CHANGE_TYPE_ADD_NODE;
constexpr auto kAddLearner = raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE;
constexpr auto kRemove = raftpb::CONF_CHANGE_TYPE_REMOVE_NODE;

std::set<uint64_t> Voters(const Raft& r) { return r.tracker().voters(); }
std::set<uint64_t> Learners(const Raft& r) { return r.tracker().learners(); }

Message PropConf(uint64_t id, raftpb::ConfChange cc) {
  Message m = Msg(id, id, kProp);
  *m.add_entries() = ConfEntry(cc);
  return m;
}

TEST(MembershipTest, AddNode) {
  Peer p = NewPeer(1, {1});
  p.raft->ApplyConfChange(CC(kAdd, 2));
  EXPECT_EQ(Voters(*p.raft), (std::set<uint64_t>{1, 2}));
  EXPECT_NE(p.raft->tracker().Get(2), nullptr);
}

TEST(MembershipTest, AddLearnerAndPromote) {
  Peer p = NewPeer(1, {1});
  p.raft->ApplyConfChange(CC(kAddLearner, 2));
  EXPECT_EQ(Learners(*p.raft), (std::set<uint64_t>{2}));
  EXPECT_TRUE(p.raft->tracker().Get(2)->is_learner());
  p.raft->ApplyConfChange(CC(kAdd, 2));
  EXPECT_EQ(Voters(*p.raft), (std::set<uint64_t>{1, 2}));
  EXPECT_TRUE(Learners(*p.raft).empty());
  EXPECT_FALSE(p.raft->tracker().Get(2)->is_learner());
}

TEST(MembershipTest, AddLearnerDemotesVoter) {
  Peer p = NewPeer(1, {1, 2});
  raftpb::ConfState cs = p.raft->ApplyConfChange(CC(kAddLearner, 2));
  EXPECT_EQ(cs.voters_size(), 1);
  EXPECT_EQ(cs.learners_size(), 1);
}

TEST(MembershipTest, LearnerSelfKnowsItIsLearner) {
  Peer p = NewPeer(2, {1}, 10, 1, nullptr, {2});
  EXPECT_TRUE(p.raft->is_learner());
  p.raft->ApplyConfChange(CC(kAdd, 2));
  EXPECT_FALSE(p.raft->is_learner());
  EXPECT_TRUE(p.raft->Promotable());
}

// Removing a member shrinks the quorum: entries waiting for its acknowledgement commit.
TEST(MembershipTest, RemoveNodeCommitsPendingEntries) {
  Peer p = NewPeer(1, {1, 2});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  ASSERT_TRUE(r.Step(Prop(1, "pending")).ok());
  const uint64_t committed = r.raft_log().committed();
  r.TakeMessages();
  r.ApplyConfChange(CC(kRemove, 2));
  EXPECT_EQ(Voters(r), (std::set<uint64_t>{1}));
  EXPECT_EQ(r.raft_log().committed(), committed + 1);
  // Removing again, or removing an unknown node, is harmless.
  r.ApplyConfChange(CC(kRemove, 2));
  r.ApplyConfChange(CC(kRemove, 9));
  EXPECT_EQ(Voters(r), (std::set<uint64_t>{1}));
}

// Learners receive the log but do not count for commit.
TEST(MembershipTest, LearnerDoesNotCountForCommit) {
  Peer p = NewPeer(1, {1, 2}, 10, 1, nullptr, {3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.TakeMessages();
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  auto apps = OfType(r.TakeMessages(), kApp);
  std::set<uint64_t> to;
  for (const auto& m : apps) to.insert(m.to());
  EXPECT_EQ(to, (std::set<uint64_t>{2, 3})) << "learners get appends";
  for (const auto& m : apps) {
    if (m.to() == 3) {
      ASSERT_TRUE(r.Step(AcceptAndReply(m)).ok());
    }
  }
  EXPECT_EQ(r.raft_log().committed(), 0u) << "a learner's ack does not commit";
  for (const auto& m : apps) {
    if (m.to() == 2) {
      ASSERT_TRUE(r.Step(AcceptAndReply(m)).ok());
    }
  }
  EXPECT_EQ(r.raft_log().committed(), 2u);
}

// Only one membership change may be in flight: a second proposal is dropped until the first is
// applied.
TEST(MembershipTest, PendingConfChangeRefusesAnother) {
  Peer p = NewPeer(1, {1});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  ASSERT_EQ(r.state(), StateType::kLeader);
  EXPECT_EQ(r.pending_conf_index(), 0u) << "nothing inherited";
  ASSERT_TRUE(r.Step(PropConf(1, CC(kAdd, 2))).ok());
  EXPECT_EQ(r.pending_conf_index(), 2u);
  EXPECT_TRUE(IsProposalDropped(r.Step(PropConf(1, CC(kAdd, 3)))));
  // Normal proposals still go through.
  EXPECT_TRUE(r.Step(Prop(1)).ok());
  Stabilize(r, *p.storage);  // applies index 2 (and 3)
  EXPECT_TRUE(r.Step(PropConf(1, CC(kAdd, 3))).ok());
}

// A new leader treats the log it inherited as possibly holding a change: it refuses a new one
// until everything up to its election is applied.
TEST(MembershipTest, NewLeaderWaitsForInheritedLogToApply) {
  auto s = NewStorage({1});
  ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 1}})).ok());
  ASSERT_TRUE(s->SetHardState(HS(1, 0, 2)).ok());
  auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
  ASSERT_TRUE(r->Step(Hup(1)).ok());
  ASSERT_EQ(r->state(), StateType::kLeader);
  EXPECT_EQ(r->pending_conf_index(), 2u);
  EXPECT_TRUE(IsProposalDropped(r->Step(PropConf(1, CC(kAdd, 2)))));
  Stabilize(*r, *s);
  EXPECT_TRUE(r->Step(PropConf(1, CC(kAdd, 2))).ok());
}

// Two changes in one proposal are refused as a whole.
TEST(MembershipTest, TwoChangesInOneProposalRefused) {
  Peer p = NewPeer(1, {1});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  Stabilize(r, *p.storage);
  Message m = PropConf(1, CC(kAdd, 2));
  *m.add_entries() = ConfEntry(CC(kAdd, 3));
  EXPECT_TRUE(IsProposalDropped(r.Step(m)));
  EXPECT_EQ(r.raft_log().LastIndex(), 1u);
}

TEST(MembershipTest, CannotRemoveLastVoter) {
  Peer p = NewPeer(1, {1});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  Stabilize(r, *p.storage);
  absl::Status s = r.Step(PropConf(1, CC(kRemove, 1)));
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(MembershipTest, MalformedConfChangeRejected) {
  Peer p = NewPeer(1, {1});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  Stabilize(r, *p.storage);
  Message m = Msg(1, 1, kProp);
  m.add_entries()->set_type(raftpb::ENTRY_TYPE_CONF_CHANGE);
  m.mutable_entries(0)->set_data("\xff\xff\xff");
  EXPECT_EQ(r.Step(m).code(), absl::StatusCode::kInvalidArgument);
}

// A leader that applies its own removal steps down, and hands over to a caught-up voter with
// TIMEOUT_NOW so the cluster does not wait out an election timeout.
TEST(MembershipTest, RemovedLeaderStepsDown) {
  Network n(3);
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  n.Send(Beat(1));  // everyone caught up
  n.raft(1).TakeMessages();
  n.raft(1).ApplyConfChange(CC(kRemove, 1));
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_FALSE(n.raft(1).Promotable());
  auto msgs = n.raft(1).TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kTimeoutNow);
  // The others apply the removal too; the transferee then wins.
  n.raft(2).ApplyConfChange(CC(kRemove, 1));
  n.raft(3).ApplyConfChange(CC(kRemove, 1));
  n.Send(msgs);
  const uint64_t to = msgs[0].to();
  EXPECT_EQ(n.raft(to).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(to).term(), 2u);
  // The removed node never campaigns again.
  for (int i = 0; i < 100; ++i) n.raft(1).Tick();
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
}

// A leader that was removed but has not stepped down yet (it applies the change later) drops
// proposals once it is no longer in its own tracker.
TEST(MembershipTest, RemovedLeaderDropsProposals) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.tracker().Remove(1);  // as if the change were applied without the step-down
  EXPECT_TRUE(IsProposalDropped(r.Step(Prop(1))));
}

// End to end over RawNodes: a new empty member is added, catches up, and later a member is
// removed; the rest keeps committing.
TEST(MembershipTest, ClusterAddAndRemoveMember) {
  Cluster c({.size = 3});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(c.Propose(l, "a" + std::to_string(i)).ok());
  c.Stabilize();
  c.AddEmptyMember(4);
  ASSERT_TRUE(c.rn(l).ProposeConfChange(CC(kAdd, 4)).ok());
  for (int i = 0; i < 30; ++i) {
    c.Stabilize();
    c.TickAll();
  }
  c.Stabilize();
  EXPECT_EQ(c.node(4).state, c.node(l).state);
  EXPECT_EQ(c.node(4).conf_state.voters_size(), 4);
  EXPECT_TRUE(c.raft(4).Promotable());
  // Remove a follower.
  const uint64_t victim = l == 2 ? 3 : 2;
  ASSERT_TRUE(c.rn(l).ProposeConfChange(CC(kRemove, victim)).ok());
  c.Stabilize();
  EXPECT_FALSE(c.raft(l).tracker().IsVoter(victim));
  c.Crash(victim);
  ASSERT_TRUE(c.Propose(l, "after-remove").ok());
  c.Stabilize();
  EXPECT_EQ(c.node(4).state.back(), "after-remove");
}

// A learner catches up, then is promoted and can become leader.
TEST(MembershipTest, ClusterLearnerPromotedCanLead) {
  Cluster c({.size = 3, .learners = {4}});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  ASSERT_TRUE(c.Propose(l, "x").ok());
  c.Stabilize();
  EXPECT_EQ(c.node(4).state, (std::vector<std::string>{"x"}));
  EXPECT_TRUE(c.raft(4).is_learner());
  EXPECT_TRUE(c.rn(4).Campaign().ok());  // a learner ignores it
  c.Stabilize();
  EXPECT_EQ(c.raft(4).state(), StateType::kFollower);
  EXPECT_EQ(c.Leader(), l);
  ASSERT_TRUE(c.rn(l).ProposeConfChange(CC(kAdd, 4)).ok());
  c.Stabilize();
  EXPECT_FALSE(c.raft(4).is_learner());
  c.rn(l).TransferLeader(4);
  c.Stabilize();
  EXPECT_EQ(c.Leader(), 4u);
}

// The removed leader case end to end: the leader proposes its own removal; after it applies it,
// another member leads and commits.
TEST(MembershipTest, ClusterRemoveLeader) {
  Cluster c({.size = 3});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  ASSERT_TRUE(c.rn(l).ProposeConfChange(CC(kRemove, l)).ok());
  c.Stabilize();
  EXPECT_NE(c.raft(l).state(), StateType::kLeader);
  uint64_t l2 = kNone;
  for (int i = 0; i < 100 && (l2 == kNone || l2 == l); ++i) {
    c.TickAll();
    c.Stabilize();
    l2 = c.Leader();
  }
  ASSERT_NE(l2, kNone);
  ASSERT_NE(l2, l);
  EXPECT_EQ(c.raft(l2).tracker().voters().size(), 2u);
  ASSERT_TRUE(c.Propose(l2, "after").ok());
  c.Stabilize();
  for (uint64_t id : Ids(3)) {
    if (id != l) {
      EXPECT_EQ(c.node(id).state.back(), "after");
    }
  }
}

// Restart restores the membership: the storage's conf state plus the CONF_CHANGE entries up to
// Config::applied (learners included).
TEST(MembershipTest, RestartRestoresMembershipFromLog) {
  Cluster c({.size = 3});
  uint64_t l = c.WaitForLeader();
  c.AddEmptyMember(4);
  ASSERT_TRUE(c.rn(l).ProposeConfChange(CC(kAddLearner, 4)).ok());
  c.Stabilize();
  c.Stabilize();
  const uint64_t f = l == 1 ? 2 : 1;
  ASSERT_TRUE(c.raft(f).tracker().IsLearner(4));
  c.Crash(f);
  c.Restart(f, /*keep_state_machine=*/true);  // applied > snapshot index: replays the change
  EXPECT_TRUE(c.raft(f).tracker().IsLearner(4));
  EXPECT_EQ(c.raft(f).tracker().voters().size(), 3u);
  EXPECT_GT(c.node(4).applied, 0u) << "the learner was probed at once and caught up";
  c.Crash(4);
  c.Restart(4, true);
  EXPECT_TRUE(c.raft(4).is_learner()) << "a learner restarts as a learner";
  c.Crash(f);
  c.Restart(f, /*keep_state_machine=*/false);  // re-applies from the log instead
  c.Stabilize();
  EXPECT_TRUE(c.raft(f).tracker().IsLearner(4));
}

// Bootstrapping with CONF_CHANGE entries (RawNode::Bootstrap) instead of storage.
TEST(MembershipTest, BootstrapWithEntries) {
  Cluster c({.size = 3, .bootstrap_with_entries = true});
  for (uint64_t id : Ids(3)) EXPECT_EQ(c.raft(id).tracker().voters().size(), 3u);
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  ASSERT_TRUE(c.Propose(l, "x").ok());
  c.Stabilize();
  for (uint64_t id : Ids(3)) {
    EXPECT_EQ(c.node(id).state, (std::vector<std::string>{"x"}));
    EXPECT_EQ(c.node(id).conf_state.voters_size(), 3);
    EXPECT_EQ(c.node(id).applied, 5u);  // 3 conf changes, the no-op, x
  }
  // Bootstrap twice is refused.
  EXPECT_FALSE(c.rn(1).Bootstrap({1, 2, 3}).ok());
}

}  // namespace
}  // namespace shoal::raft
