// Leader transfer (Raft thesis §3.10): TRANSFER_LEADER -> the leader catches the transferee up
// -> TIMEOUT_NOW -> the transferee campaigns at once, bypassing leases; proposals are dropped
// meanwhile; the transfer is abandoned after an election timeout.
#include "gtest/gtest.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

Message Transfer(uint64_t transferee, uint64_t to) { return Msg(transferee, to, kTransferLeader); }

void CheckLeaderTransferState(Raft& r, StateType state, uint64_t lead) {
  EXPECT_EQ(r.state(), state);
  EXPECT_EQ(r.lead(), lead);
  EXPECT_EQ(r.lead_transferee(), kNone);
}

TEST(LeaderTransferTest, ToUpToDateNode) {
  Network n(3);
  n.Send(Hup(1));
  n.Send(Transfer(2, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 2);
  // And back: after a proposal commits, 1 is up to date again.
  n.Send(Prop(2));
  n.Send(Transfer(1, 2));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

// A follower forwards the request to its leader.
TEST(LeaderTransferTest, ToUpToDateNodeFromFollower) {
  Network n(3);
  n.Send(Hup(1));
  n.Send(Transfer(2, 2));
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 2);
  n.Send(Prop(2));
  n.Send(Transfer(1, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

// With check quorum, the transferee's vote request bypasses the other members' leases.
TEST(LeaderTransferTest, WithCheckQuorum) {
  Network n(3, [](Config& c) { c.check_quorum = true; });
  // Let 2 time out of its lease so that 1 can be elected.
  ExpireLease(n.raft(2));
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  n.Send(Transfer(2, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 2);
}

TEST(LeaderTransferTest, ToSlowFollower) {
  std::vector<Peer> peers;
  for (uint64_t id : Ids(3)) peers.push_back(NewPeer(id, Ids(3)));
  Network n(std::move(peers));
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Prop(1));
  n.Recover();
  ASSERT_EQ(n.raft(1).tracker().Get(3)->match(), 1u);
  // 3 lags: the leader catches it up first, then it takes over.
  n.Send(Transfer(3, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 3);
}

TEST(LeaderTransferTest, AfterSnapshot) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  for (int i = 0; i < 3; ++i) n.Send(Prop(1));
  Stabilize(n.raft(1), n.storage(1));
  const uint64_t applied = n.raft(1).raft_log().applied();
  ASSERT_EQ(applied, 4u);
  ASSERT_TRUE(n.storage(1).CreateSnapshot(applied, nullptr, "").ok());
  ASSERT_TRUE(n.storage(1).Compact(applied).ok());
  n.Recover();
  ASSERT_EQ(n.raft(1).tracker().Get(3)->match(), 1u);
  // 3 needs the snapshot. Hold back its acknowledgement of the snapshot until we have checked
  // that the transfer waits for it.
  std::vector<Message> held;
  n.msg_hook = [&](const Message& m) {
    if (m.from() == 3 && m.type() == kAppResp && !m.reject()) {
      held.push_back(m);
      return false;
    }
    return true;
  };
  n.Send(Transfer(3, 1));
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).lead_transferee(), 3u);
  ASSERT_EQ(n.raft(1).tracker().Get(3)->state(), ProgressState::kSnapshot);
  ASSERT_FALSE(held.empty());
  n.msg_hook = nullptr;
  n.Send(held);
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 3);
}

TEST(LeaderTransferTest, ToSelfIsNoop) {
  Network n(3);
  n.Send(Hup(1));
  n.Send(Transfer(1, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

TEST(LeaderTransferTest, ToNonExistingNodeIgnored) {
  Network n(3);
  n.Send(Hup(1));
  n.Send(Transfer(4, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

TEST(LeaderTransferTest, ToLearnerIgnored) {
  std::vector<Peer> peers;
  for (uint64_t id : Ids(3)) peers.push_back(NewPeer(id, {1, 2}, 10, 1, nullptr, {3}));
  Network n(std::move(peers));
  n.Send(Hup(1));
  n.Send(Transfer(3, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

// A transfer that does not complete within an election timeout is abandoned.
TEST(LeaderTransferTest, TimeoutAbortsTransfer) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Prop(1));
  n.Send(Transfer(3, 1));
  EXPECT_EQ(n.raft(1).lead_transferee(), 3u);
  for (int i = 0; i < n.raft(1).heartbeat_timeout(); ++i) n.raft(1).Tick();
  EXPECT_EQ(n.raft(1).lead_transferee(), 3u) << "still waiting";
  for (int i = 0; i < n.raft(1).election_timeout() - n.raft(1).heartbeat_timeout(); ++i) {
    n.raft(1).Tick();
  }
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

// Proposals are dropped while a transfer is in progress.
TEST(LeaderTransferTest, IgnoresProposalsDuringTransfer) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  ASSERT_EQ(n.raft(1).lead_transferee(), 3u);
  EXPECT_TRUE(IsProposalDropped(n.raft(1).Step(Prop(1))));
  EXPECT_EQ(n.raft(1).tracker().Get(1)->match(), 1u);
}

// A vote request of a higher term ends the transfer (the leader steps down).
TEST(LeaderTransferTest, ReceiveHigherTermVote) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  ASSERT_EQ(n.raft(1).lead_transferee(), 3u);
  Message hup = Hup(2);
  n.Send(hup);
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 2);
}

// Removing the transferee (or the leader learning it left) aborts the transfer.
TEST(LeaderTransferTest, RemoveTransfereeAborts) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  ASSERT_EQ(n.raft(1).lead_transferee(), 3u);
  n.raft(1).ApplyConfChange(CC(raftpb::CONF_CHANGE_TYPE_REMOVE_NODE, 3));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

TEST(LeaderTransferTest, DemoteTransfereeAborts) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  n.raft(1).ApplyConfChange(CC(raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE, 3));
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

TEST(LeaderTransferTest, SecondTransferToSameNodeKeepsTimer) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  for (int i = 0; i < 5; ++i) n.raft(1).Tick();
  // Repeating the request does not restart the timeout.
  n.Send(Transfer(3, 1));
  for (int i = 0; i < n.raft(1).election_timeout() - 5; ++i) n.raft(1).Tick();
  CheckLeaderTransferState(n.raft(1), StateType::kLeader, 1);
}

TEST(LeaderTransferTest, SecondTransferToAnotherNodeWins) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Transfer(3, 1));
  ASSERT_EQ(n.raft(1).lead_transferee(), 3u);
  n.Send(Transfer(2, 1));
  CheckLeaderTransferState(n.raft(1), StateType::kFollower, 2);
}

// A follower without a leader drops the request; TIMEOUT_NOW to a non-voter is ignored.
TEST(LeaderTransferTest, EdgeCases) {
  Peer p = NewPeer(1, {1, 2, 3});
  ASSERT_TRUE(p.raft->Step(Transfer(2, 1)).ok());
  EXPECT_TRUE(p.raft->TakeMessages().empty());

  Peer learner = NewPeer(3, {1, 2}, 10, 1, nullptr, {3});
  ASSERT_TRUE(learner.raft->Step(Msg(1, 3, kTimeoutNow, 1)).ok());
  EXPECT_EQ(learner.raft->state(), StateType::kFollower);
}

// TIMEOUT_NOW makes a follower campaign immediately, without pre-vote, and with the transfer
// context so that members inside their leader lease still vote.
TEST(LeaderTransferTest, TimeoutNowSkipsPreVoteAndLease) {
  Peer p = NewPeer(2, {1, 2, 3}, 10, 1, [](Config& c) {
    c.pre_vote = true;
    c.check_quorum = true;
  });
  ASSERT_TRUE(p.raft->Step(Msg(1, 2, kHeartbeat, 1)).ok());
  p.raft->TakeMessages();
  ASSERT_TRUE(p.raft->Step(Msg(1, 2, kTimeoutNow, 1)).ok());
  EXPECT_EQ(p.raft->state(), StateType::kCandidate);
  EXPECT_EQ(p.raft->term(), 2u);
  auto votes = OfType(p.raft->TakeMessages(), kVote);
  ASSERT_EQ(votes.size(), 2u);
  for (const auto& v : votes) EXPECT_EQ(v.context(), kCampaignTransfer);

  Peer voter = NewPeer(3, {1, 2, 3}, 10, 1, [](Config& c) { c.check_quorum = true; });
  ASSERT_TRUE(voter.raft->Step(Msg(1, 3, kHeartbeat, 1)).ok());
  voter.raft->TakeMessages();
  ASSERT_TRUE(voter.raft->Step(votes[0].to() == 3 ? votes[0] : votes[1]).ok());
  auto resp = voter.raft->TakeMessages();
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_FALSE(resp[0].reject()) << "the lease is bypassed for transfers";
}

}  // namespace
}  // namespace shoal::raft
