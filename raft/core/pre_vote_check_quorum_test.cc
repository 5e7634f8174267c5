// Pre-vote (Raft thesis §9.6) and check quorum / leader stickiness (§6.2): a partitioned member
// must not disrupt a healthy cluster when it returns, and a leader that lost its quorum steps
// down.
#include "gtest/gtest.h"
#include "raft/core/cluster_test_util.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

ConfigTweak PreVote(bool check_quorum = false) {
  return [check_quorum](Config& c) {
    c.pre_vote = true;
    c.check_quorum = check_quorum;
  };
}

ConfigTweak CheckQuorum() {
  return [](Config& c) { c.check_quorum = true; };
}

// §9.6: a pre-candidate does not increment its term, and becomes a candidate only when a
// majority would vote for it.
TEST(PreVoteTest, PreCandidateKeepsTerm) {
  Peer p = NewPeer(1, {1, 2, 3}, 10, 1, PreVote());
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  EXPECT_EQ(r.state(), StateType::kPreCandidate);
  EXPECT_EQ(r.term(), 0u);
  EXPECT_EQ(r.vote(), kNone);
  auto msgs = OfType(r.TakeMessages(), kPreVote);
  ASSERT_EQ(msgs.size(), 2u);
  for (const auto& m : msgs) EXPECT_EQ(m.term(), 1u) << "asks for the next term";
  Message grant = Msg(2, 1, kPreVoteResp, 1);
  ASSERT_TRUE(r.Step(grant).ok());
  EXPECT_EQ(r.state(), StateType::kCandidate);
  EXPECT_EQ(r.term(), 1u);
  EXPECT_EQ(OfType(r.TakeMessages(), kVote).size(), 2u);
}

// A pre-vote grant neither changes the voter's term nor records a vote.
TEST(PreVoteTest, GrantingPreVoteChangesNothing) {
  Peer p = NewPeer(2, {1, 2, 3}, 10, 1, PreVote());
  Raft& r = *p.raft;
  Message pv = Msg(1, 2, kPreVote, 1);
  ASSERT_TRUE(r.Step(pv).ok());
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kPreVoteResp);
  EXPECT_FALSE(msgs[0].reject());
  EXPECT_EQ(msgs[0].term(), 1u) << "echoes the requested term";
  EXPECT_EQ(r.term(), 0u);
  EXPECT_EQ(r.vote(), kNone);
}

// A pre-candidate rejected by a majority falls back to follower without touching its term.
TEST(PreVoteTest, PreCandidateLosesToRejections) {
  Peer p = NewPeer(1, {1, 2, 3}, 10, 1, PreVote());
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  for (uint64_t id : {2, 3}) {
    Message rej = Msg(id, 1, kPreVoteResp, 0);
    rej.set_reject(true);
    ASSERT_TRUE(r.Step(rej).ok());
  }
  EXPECT_EQ(r.state(), StateType::kFollower);
  EXPECT_EQ(r.term(), 0u);
}

// A member partitioned away keeps pre-campaigning in vain; when it returns it does not raise
// the cluster's term or depose the leader.
TEST(PreVoteTest, PartitionedMemberDoesNotDisrupt) {
  Network n(3, PreVote());
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  n.Isolate(3);
  n.Send(Prop(1, "some data"));
  for (int i = 0; i < 5; ++i) n.Send(Hup(3));
  EXPECT_EQ(n.raft(3).state(), StateType::kPreCandidate);
  EXPECT_EQ(n.raft(3).term(), 1u) << "pre-candidates do not inflate their term";
  n.Recover();
  n.Send(Hup(3));  // rejected: its log is behind
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).term(), 1u);
  n.Send(Beat(1));
  EXPECT_EQ(n.raft(3).state(), StateType::kFollower);
  EXPECT_EQ(LogIndexTerms(n.raft(3)), LogIndexTerms(n.raft(1)));
}

// A lower-term pre-vote is answered with an explicit rejection carrying the current term, so
// the pre-candidate learns it (otherwise a cluster mixing old candidates could deadlock).
TEST(PreVoteTest, LowerTermPreVoteRejectedExplicitly) {
  Peer p = NewPeer(2, {1, 2, 3}, 10, 1, PreVote());
  p.raft->LoadState(HS(5, 0, 0));
  ASSERT_TRUE(p.raft->Step(Msg(1, 2, kPreVote, 3)).ok());
  auto msgs = p.raft->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kPreVoteResp);
  EXPECT_TRUE(msgs[0].reject());
  EXPECT_EQ(msgs[0].term(), 5u);
}

// A pre-vote for a future term can be granted even after voting in the current term: it is not
// a vote.
TEST(PreVoteTest, PreVoteGrantedDespiteCurrentVote) {
  Peer p = NewPeer(2, {1, 2, 3}, 10, 1, PreVote());
  p.raft->LoadState(HS(1, 3, 0));
  ASSERT_TRUE(p.raft->Step(Msg(1, 2, kPreVote, 2)).ok());
  auto msgs = p.raft->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_FALSE(msgs[0].reject());
  EXPECT_EQ(p.raft->vote(), 3u);
}

// Pre-vote with a stale log is rejected like a vote.
TEST(PreVoteTest, PreVoteRespectsLogUpToDateness) {
  auto s = NewStorage({1, 2, 3});
  ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 2}})).ok());
  Config c = NewConfig(2, 10, 1, s.get());
  c.pre_vote = true;
  auto r = NewRaft(c);
  Message pv = Msg(1, 2, kPreVote, 3);
  pv.set_index(5);
  pv.set_log_term(1);
  ASSERT_TRUE(r->Step(pv).ok());
  auto msgs = r->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].reject());
}

// Three members with pre-vote: after a leader dies, the others still elect a new one.
TEST(PreVoteTest, ElectionAfterLeaderLoss) {
  Cluster c({.size = 3, .tweak = PreVote(true)});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  const uint64_t term = c.raft(l).term();
  c.Crash(l);
  uint64_t l2 = c.WaitForLeader();
  ASSERT_NE(l2, kNone);
  EXPECT_NE(l2, l);
  EXPECT_EQ(c.raft(l2).term(), term + 1) << "pre-vote: exactly one term increment";
}

// Check quorum: a leader that hears from no quorum within an election timeout steps down.
TEST(CheckQuorumTest, LeaderStepsDownWithoutQuorum) {
  Network n(3, CheckQuorum());
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  n.Isolate(1);
  for (int i = 0; i < 2 * n.raft(1).election_timeout(); ++i) {
    n.raft(1).Tick();
    n.Flush(1);
  }
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).term(), 1u) << "stepping down does not change the term";
}

TEST(CheckQuorumTest, LeaderWithQuorumStays) {
  Network n(3, CheckQuorum());
  n.Send(Hup(1));
  n.Isolate(3);
  for (int i = 0; i < 5 * n.raft(1).election_timeout(); ++i) {
    n.raft(1).Tick();
    n.Flush(1);
  }
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
}

// Leader stickiness: a follower that heard from the leader within the election timeout ignores
// a vote request of a higher term; the rogue candidate cannot win.
TEST(CheckQuorumTest, FollowersIgnoreVotesDuringLease) {
  Network n(3, CheckQuorum());
  for (uint64_t id : {2, 3}) ExpireLease(n.raft(id));
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  // 3 times out (its leader's messages dropped) and campaigns; 2 is within its lease.
  n.Send(Hup(3));
  EXPECT_EQ(n.raft(3).state(), StateType::kCandidate);
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader) << "the leader ignores it too (lease)";
  EXPECT_EQ(n.raft(2).term(), 1u);
  // After 2's lease expires it would vote.
  ExpireLease(n.raft(2));
  n.Send(Hup(3));
  EXPECT_EQ(n.raft(3).state(), StateType::kLeader);
}

// With check quorum but no pre-vote, a candidate stuck at a higher term (whose requests were
// ignored) is freed: the leader's APP of a lower term gets a reply that raises the leader's
// term, and a new election follows.
TEST(CheckQuorumTest, FreeStuckCandidate) {
  Network n(3, CheckQuorum());
  for (uint64_t id : {2, 3}) ExpireLease(n.raft(id));
  n.Send(Hup(1));
  n.Isolate(1);
  n.Send(Hup(3));
  n.Send(Hup(3));
  EXPECT_EQ(n.raft(3).state(), StateType::kCandidate);
  EXPECT_EQ(n.raft(3).term(), n.raft(2).term() + 2);
  n.Recover();
  n.Send(Msg(1, 3, kHeartbeat, n.raft(1).term()));
  // 3 answered the stale heartbeat; the leader learnt the higher term and stepped down.
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).term(), n.raft(3).term());
}

// A member that is not a voter never campaigns, however long it waits.
TEST(CheckQuorumTest, NonPromotableVoterNeverCampaigns) {
  std::vector<Peer> peers;
  peers.push_back(NewPeer(1, {1, 2}, 10, 1, CheckQuorum()));
  peers.push_back(NewPeer(2, {1}, 10, 1, CheckQuorum()));
  Network n(std::move(peers));
  EXPECT_FALSE(n.raft(2).Promotable());
  for (int i = 0; i < 10 * n.raft(2).election_timeout(); ++i) {
    n.raft(2).Tick();
    n.Flush(2);
  }
  EXPECT_EQ(n.raft(2).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(2).term(), 0u);
}

// A deposed leader that comes back learns the new term from the first reply to its stale
// messages (check quorum / pre-vote make followers answer them).
TEST(CheckQuorumTest, StaleLeaderLearnsNewTerm) {
  Network n(3, PreVote(true));
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  n.Isolate(1);
  // Let 2 and 3 time out of the lease, then elect 2.
  for (uint64_t id : {2, 3}) ExpireLease(n.raft(id));
  n.Send(Hup(2));
  ASSERT_EQ(n.raft(2).state(), StateType::kLeader);
  ASSERT_EQ(n.raft(2).term(), 2u);
  n.Recover();
  n.Send(Beat(1));  // stale heartbeats: 2 and 3 answer with term 2
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).term(), 2u);
}

// Over RawNodes with both features on: a member isolated for long rejoins without changing the
// leader.
TEST(PreVoteCheckQuorumTest, IsolatedFollowerRejoinsWithoutElection) {
  Cluster c({.size = 5, .tweak = PreVote(true)});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  const uint64_t term = c.raft(l).term();
  const uint64_t f = l == 5 ? 4 : 5;
  c.Isolate(f);
  for (int i = 0; i < 200; ++i) {
    c.TickAll();
    c.Stabilize();
  }
  EXPECT_EQ(c.raft(f).term(), term) << "pre-vote kept the isolated member's term";
  c.Heal();
  for (int i = 0; i < 50; ++i) {
    c.TickAll();
    c.Stabilize();
  }
  EXPECT_EQ(c.Leader(), l);
  EXPECT_EQ(c.raft(l).term(), term);
}

}  // namespace
}  // namespace shoal::raft
