// Raft paper §5.1–§5.2: terms and leader election. Each test names the rule of the paper it
// checks; members are stepped directly (no pre-vote, no check quorum unless stated).
#include <set>

#include "gtest/gtest.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

// §5.1: "If one server's current term is smaller than the other's, then it updates its current
// term to the larger value. If a candidate or leader discovers that its term is out of date, it
// immediately reverts to follower state."
void TestUpdateTermFromMessage(StateType state) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  switch (state) {
    case StateType::kFollower:
      r.BecomeFollower(1, 2);
      break;
    case StateType::kCandidate:
      r.BecomeCandidate();
      break;
    case StateType::kLeader:
      r.BecomeCandidate();
      r.BecomeLeader();
      break;
    default:
      break;
  }
  ASSERT_TRUE(r.Step(Msg(2, 1, kApp, 2)).ok());
  EXPECT_EQ(r.term(), 2u);
  EXPECT_EQ(r.state(), StateType::kFollower);
  EXPECT_EQ(r.lead(), 2u) << "an APP in a newer term names the leader";
}

TEST(PaperElectionTest, FollowerUpdateTermFromMessage) {
  TestUpdateTermFromMessage(StateType::kFollower);
}
TEST(PaperElectionTest, CandidateUpdateTermFromMessage) {
  TestUpdateTermFromMessage(StateType::kCandidate);
}
TEST(PaperElectionTest, LeaderUpdateTermFromMessage) {
  TestUpdateTermFromMessage(StateType::kLeader);
}

// §5.1: "If a server receives a request with a stale term number, it rejects the request."
TEST(PaperElectionTest, RejectStaleTermMessage) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.LoadState(HS(2, 0, 0));
  Message m = Msg(2, 1, kApp, 1);
  m.add_entries()->CopyFrom(Ent(1, 1, "stale"));
  ASSERT_TRUE(r.Step(m).ok());
  EXPECT_EQ(r.raft_log().LastIndex(), 0u) << "a stale APP must not touch the log";
  EXPECT_EQ(r.term(), 2u);
  EXPECT_TRUE(r.TakeMessages().empty()) << "without check quorum/pre-vote, stale APPs get no reply";
}

// §5.2: a follower restarts its election timer when it grants a vote, not when it refuses one.
// A refused higher-term vote (the candidate's log is behind) adopts the term but keeps the time
// elapsed, so a stale member campaigning over and over cannot stop up-to-date members from ever
// timing out (found by raft/sim with pre-vote off and skewed clocks).
TEST(PaperElectionTest, RefusedVoteKeepsTheElectionTimerRunning) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeFollower(2, kNone);
  r.raft_log().Append({Ent(1, 2, "x")});
  r.set_election_elapsed(4);
  Message vote = Msg(3, 1, kVote, 5);
  vote.set_index(0);  // the candidate's log is empty: behind ours
  vote.set_log_term(0);
  ASSERT_TRUE(r.Step(vote).ok());
  EXPECT_EQ(r.term(), 5u) << "the newer term is adopted";
  EXPECT_EQ(r.vote(), kNone) << "the vote is refused";
  EXPECT_EQ(r.election_elapsed(), 4) << "a refused vote must not restart the timer";

  // A vote that is granted does restart it.
  r.set_election_elapsed(4);
  Message good = Msg(2, 1, kVote, 6);
  good.set_index(1);
  good.set_log_term(2);
  ASSERT_TRUE(r.Step(good).ok());
  EXPECT_EQ(r.vote(), 2u);
  EXPECT_EQ(r.election_elapsed(), 0);
}

// §5.2: "When servers start up, they begin as followers."
TEST(PaperElectionTest, StartAsFollower) {
  Peer p = NewPeer(1, {1, 2, 3});
  EXPECT_EQ(p.raft->state(), StateType::kFollower);
  EXPECT_EQ(p.raft->term(), 0u);
  EXPECT_EQ(p.raft->lead(), kNone);
}

// §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries) to all
// followers in order to maintain their authority."
TEST(PaperElectionTest, LeaderBcastBeat) {
  const int hi = 1;
  Peer p = NewPeer(1, {1, 2, 3}, 10, hi);
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  for (int i = 0; i < 10; ++i) {
    Message m = Prop(1, "");
    ASSERT_TRUE(r.Step(m).ok());
  }
  r.TakeMessages();
  for (int i = 0; i < hi; ++i) r.Tick();
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 2u);
  std::set<uint64_t> to;
  for (const auto& m : msgs) {
    EXPECT_EQ(m.type(), kHeartbeat);
    EXPECT_EQ(m.term(), 1u);
    EXPECT_EQ(m.entries_size(), 0);
    EXPECT_EQ(m.commit(), 0u) << "followers are not known to have anything yet";
    to.insert(m.to());
  }
  EXPECT_EQ(to, (std::set<uint64_t>{2, 3}));
}

// §5.2: "If a follower receives no communication over a period of time called the election
// timeout, then it ... begins an election": it increments its term, votes for itself, becomes a
// candidate and issues RequestVote RPCs in parallel to each of the other servers. A candidate
// that times out starts a new election the same way.
void TestNonleaderStartElection(StateType state) {
  const int et = 10;
  Peer p = NewPeer(1, {1, 2, 3}, et);
  Raft& r = *p.raft;
  if (state == StateType::kFollower) {
    r.BecomeFollower(1, 2);
  } else {
    r.BecomeCandidate();
  }
  for (int i = 1; i < 2 * et; ++i) r.Tick();
  EXPECT_EQ(r.term(), 2u);
  EXPECT_EQ(r.state(), StateType::kCandidate);
  EXPECT_EQ(r.vote(), 1u);
  auto msgs = OfType(r.TakeMessages(), kVote);
  ASSERT_EQ(msgs.size(), 2u);
  std::set<uint64_t> to;
  for (const auto& m : msgs) {
    EXPECT_EQ(m.term(), 2u);
    to.insert(m.to());
  }
  EXPECT_EQ(to, (std::set<uint64_t>{2, 3}));
}

TEST(PaperElectionTest, FollowerStartElection) { TestNonleaderStartElection(StateType::kFollower); }
TEST(PaperElectionTest, CandidateStartNewElection) {
  TestNonleaderStartElection(StateType::kCandidate);
}

// §5.2: a candidate wins if it receives votes from a majority, loses if a majority rejects it,
// and otherwise keeps waiting.
TEST(PaperElectionTest, LeaderElectionInOneRoundRPC) {
  struct Case {
    int size;
    std::map<uint64_t, bool> votes;
    StateType want;
  } cases[] = {
      {1, {}, StateType::kLeader},
      {3, {{2, true}, {3, true}}, StateType::kLeader},
      {3, {{2, true}}, StateType::kLeader},
      {5, {{2, true}, {3, true}, {4, true}, {5, true}}, StateType::kLeader},
      {5, {{2, true}, {3, true}, {4, true}}, StateType::kLeader},
      {5, {{2, true}, {3, true}}, StateType::kLeader},
      {3, {}, StateType::kCandidate},  // no response: still waiting
      {5, {{2, true}}, StateType::kCandidate},
      {5, {{2, false}, {3, false}}, StateType::kCandidate},
      {3, {{2, false}, {3, false}}, StateType::kFollower},  // lost
      {5, {{2, false}, {3, false}, {4, false}}, StateType::kFollower},
      {5, {{2, true}, {3, false}, {4, false}, {5, false}}, StateType::kFollower},
  };
  int i = 0;
  for (const auto& c : cases) {
    Peer p = NewPeer(1, Ids(c.size));
    Raft& r = *p.raft;
    ASSERT_TRUE(r.Step(Hup(1)).ok());
    for (auto [id, granted] : c.votes) {
      Message m = Msg(id, 1, kVoteResp, r.term());
      m.set_reject(!granted);
      ASSERT_TRUE(r.Step(m).ok());
    }
    EXPECT_EQ(r.state(), c.want) << "case " << i;
    EXPECT_EQ(r.term(), 1u) << "case " << i;
    ++i;
  }
}

// §5.2: "Each server will vote for at most one candidate in a given term, on a first-come-first-
// served basis."
TEST(PaperElectionTest, FollowerVote) {
  struct Case {
    uint64_t vote, nvote;
    bool want_reject;
  } cases[] = {
      {kNone, 1, false}, {kNone, 2, false}, {1, 1, false},
      {2, 2, false},     {1, 2, true},      {2, 1, true},
  };
  for (const auto& c : cases) {
    Peer p = NewPeer(1, {1, 2, 3});
    Raft& r = *p.raft;
    r.LoadState(HS(1, c.vote, 0));
    ASSERT_TRUE(r.Step(Msg(c.nvote, 1, kVote, 1)).ok());
    auto msgs = r.TakeMessages();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type(), kVoteResp);
    EXPECT_EQ(msgs[0].to(), c.nvote);
    EXPECT_EQ(msgs[0].reject(), c.want_reject) << c.vote << " " << c.nvote;
  }
}

// §5.2: "While waiting for votes, a candidate may receive an AppendEntries RPC from another
// server claiming to be leader. If the leader's term is at least as large as the candidate's
// current term, then the candidate recognizes the leader as legitimate and returns to follower
// state."
TEST(PaperElectionTest, CandidateFallback) {
  for (uint64_t term : {1, 2}) {
    Peer p = NewPeer(1, {1, 2, 3});
    Raft& r = *p.raft;
    ASSERT_TRUE(r.Step(Hup(1)).ok());
    ASSERT_EQ(r.state(), StateType::kCandidate);
    ASSERT_TRUE(r.Step(Msg(2, 1, kApp, term)).ok());
    EXPECT_EQ(r.state(), StateType::kFollower);
    EXPECT_EQ(r.term(), term);
    EXPECT_EQ(r.lead(), 2u);
  }
}

// §5.2: "Raft uses randomized election timeouts to ensure that split votes are rare": the
// timeout is drawn from [et, 2*et).
void TestNonleaderElectionTimeoutRandomized(StateType state) {
  const int et = 10;
  Peer p = NewPeer(1, {1, 2, 3}, et, 1, [](Config& c) { c.random_seed = 7; });
  Raft& r = *p.raft;
  std::set<int> timeouts;
  for (uint64_t round = 0; round < 50 * et; ++round) {
    if (state == StateType::kFollower) {
      r.BecomeFollower(r.term() + 1, 2);
    } else {
      r.BecomeCandidate();
    }
    int time = 0;
    while (OfType(r.TakeMessages(), kVote).empty()) {
      r.Tick();
      ++time;
    }
    timeouts.insert(time);
  }
  for (int d = et; d < 2 * et; ++d) EXPECT_TRUE(timeouts.count(d)) << "timeout " << d << " never";
  EXPECT_EQ(*timeouts.begin(), et);
  EXPECT_EQ(*timeouts.rbegin(), 2 * et - 1);
}

TEST(PaperElectionTest, FollowerElectionTimeoutRandomized) {
  TestNonleaderElectionTimeoutRandomized(StateType::kFollower);
}
TEST(PaperElectionTest, CandidateElectionTimeoutRandomized) {
  TestNonleaderElectionTimeoutRandomized(StateType::kCandidate);
}

// §5.2: "in most cases only a single server will time out": with randomized timeouts, the
// first timeout is usually not shared by two members.
TEST(PaperElectionTest, FollowersElectionTimeoutNonconflict) {
  const int et = 10, size = 5, rounds = 1000;
  std::vector<Peer> peers;
  for (uint64_t id : Ids(size)) peers.push_back(NewPeer(id, Ids(size), et));
  int conflicts = 0;
  for (int round = 0; round < rounds; ++round) {
    for (auto& p : peers) p.raft->BecomeFollower(p.raft->term() + 1, kNone);
    int timed_out = 0;
    while (timed_out == 0) {
      for (auto& p : peers) {
        p.raft->Tick();
        if (!p.raft->TakeMessages().empty()) ++timed_out;
      }
    }
    if (timed_out > 1) ++conflicts;
  }
  // The paper's bound: with timeouts drawn from 10 slots and 5 members, a clash is unlikely.
  EXPECT_LE(static_cast<double>(conflicts) / rounds, 0.3) << conflicts;
}

// The randomized timeout is a pure function of the seed: simulations replay exactly.
TEST(PaperElectionTest, ElectionTimeoutDeterministicFromSeed) {
  auto sequence = [](uint64_t id, uint64_t seed) {
    Peer p = NewPeer(id, {1, 2, 3}, 10, 1, [seed](Config& c) { c.random_seed = seed; });
    std::vector<int> out;
    for (int i = 0; i < 20; ++i) {
      p.raft->BecomeFollower(p.raft->term() + 1, kNone);
      out.push_back(p.raft->randomized_election_timeout());
    }
    return out;
  };
  EXPECT_EQ(sequence(1, 99), sequence(1, 99));
  EXPECT_EQ(sequence(1, 99), sequence(2, 99)) << "the seed alone decides";
  EXPECT_NE(sequence(1, 0), sequence(2, 0)) << "default seeds differ per id";
  EXPECT_EQ(sequence(3, 0), sequence(3, 0));
}

// Whole elections over a network with some members unreachable.
TEST(PaperElectionTest, LeaderElectionOverNetwork) {
  struct Case {
    int size;
    std::set<uint64_t> down;
    StateType want;
    uint64_t want_term;
  } cases[] = {
      {3, {}, StateType::kLeader, 1},        {3, {3}, StateType::kLeader, 1},
      {3, {2, 3}, StateType::kCandidate, 1}, {4, {2, 3}, StateType::kCandidate, 1},
      {5, {2, 3}, StateType::kLeader, 1},    {5, {2, 3, 4}, StateType::kCandidate, 1},
  };
  for (const auto& c : cases) {
    std::vector<Peer> peers;
    for (uint64_t id : Ids(c.size)) {
      peers.push_back(c.down.count(id) ? Peer{} : NewPeer(id, Ids(c.size)));
    }
    Network n(std::move(peers));
    n.Send(Hup(1));
    EXPECT_EQ(n.raft(1).state(), c.want) << c.size << " down=" << c.down.size();
    EXPECT_EQ(n.raft(1).term(), c.want_term);
  }
}

TEST(PaperElectionTest, SingleNodeCampaignsAndLeadsAtOnce) {
  Network n(1);
  n.Send(Hup(1));
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).raft_log().committed(), 1u) << "its no-op commits on its own vote";
}

TEST(PaperElectionTest, SingleNodePreVoteCampaign) {
  Network n(1, [](Config& c) { c.pre_vote = true; });
  n.Send(Hup(1));
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).term(), 1u);
}

// A candidate cut off from the others keeps incrementing its term; when it rejoins, its higher
// term forces the leader to step down, and the cluster re-converges with the logs intact.
TEST(PaperElectionTest, CandidateConcede) {
  Network n(3);
  n.Isolate(1);
  n.Send(Hup(1));
  n.Send(Hup(3));
  n.Recover();
  // 1 is a candidate in term 1; 3 leads term 1 and commits its no-op and a proposal.
  ASSERT_EQ(n.raft(3).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).state(), StateType::kCandidate);
  n.Send(Beat(3));
  n.Send(Prop(3, "force follower"));
  n.Send(Beat(3));
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).term(), 1u);
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(n.raft(id).raft_log().committed(), 2u);
    EXPECT_EQ(LogIndexTerms(n.raft(id)), LogIndexTerms(n.raft(3)));
  }
}

// Two candidates in the same term split the vote; the one with the shorter log cannot win the
// next election against the other's log.
TEST(PaperElectionTest, DuelingCandidates) {
  Network n(3);
  n.Cut(1, 3);
  n.Send(Hup(1));
  n.Send(Hup(3));
  // 1 won with 2's vote; 3 got no votes (2 already voted for 1 in term 1).
  EXPECT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(3).state(), StateType::kCandidate);
  n.Recover();
  // 3 campaigns in term 2 but its log is behind: it is rejected, and 1 steps down (higher term).
  n.Send(Hup(3));
  EXPECT_EQ(n.raft(3).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(n.raft(1).term(), 2u);
  EXPECT_EQ(n.raft(1).raft_log().committed(), 1u);
  EXPECT_EQ(n.raft(3).raft_log().LastIndex(), 0u);
}

// A node that voted in a term never grants a second vote in that term, even after a restart
// (term and vote are in the hard state).
TEST(PaperElectionTest, VoteSurvivesRestart) {
  auto storage = NewStorage({1, 2, 3});
  ASSERT_TRUE(storage->SetHardState(HS(5, 2, 0)).ok());
  auto r = NewRaft(NewConfig(1, 10, 1, storage.get()));
  EXPECT_EQ(r->term(), 5u);
  EXPECT_EQ(r->vote(), 2u);
  ASSERT_TRUE(r->Step(Msg(3, 1, kVote, 5)).ok());
  auto msgs = r->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].reject());
  ASSERT_TRUE(r->Step(Msg(2, 1, kVote, 5)).ok());
  msgs = r->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_FALSE(msgs[0].reject()) << "a repeated request from the same candidate is granted";
}

// A follower that knows a leader in the current term does not vote for another candidate of
// that term.
TEST(PaperElectionTest, FollowerWithLeaderRejectsVoteInSameTerm) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Msg(2, 1, kHeartbeat, 1)).ok());
  r.TakeMessages();
  ASSERT_EQ(r.lead(), 2u);
  ASSERT_TRUE(r.Step(Msg(3, 1, kVote, 1)).ok());
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_TRUE(msgs[0].reject());
}

// Learners (and nodes outside the membership) never campaign.
TEST(PaperElectionTest, LearnerDoesNotCampaign) {
  Peer p = NewPeer(2, {1}, 10, 1, nullptr, {2});
  Raft& r = *p.raft;
  EXPECT_TRUE(r.is_learner());
  for (int i = 0; i < 100; ++i) r.Tick();
  EXPECT_EQ(r.state(), StateType::kFollower);
  EXPECT_TRUE(r.TakeMessages().empty());
  ASSERT_TRUE(r.Step(Hup(2)).ok());
  EXPECT_EQ(r.state(), StateType::kFollower);

  Peer outsider = NewPeer(9, {1, 2, 3});
  ASSERT_TRUE(outsider.raft->Step(Hup(9)).ok());
  EXPECT_EQ(outsider.raft->state(), StateType::kFollower);
}

// Candidates do not ask learners for votes, and a learner's grant does not count.
TEST(PaperElectionTest, LearnerVotesDoNotCount) {
  Peer p = NewPeer(1, {1, 2, 3}, 10, 1, nullptr, {4});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  for (const auto& m : r.TakeMessages()) EXPECT_NE(m.to(), 4u);
  Message grant = Msg(4, 1, kVoteResp, 1);
  ASSERT_TRUE(r.Step(grant).ok());
  EXPECT_EQ(r.state(), StateType::kCandidate);
}

// Messages of older terms are ignored, and the cluster's log is unaffected by them.
TEST(PaperElectionTest, OldTermMessagesIgnored) {
  Network n(3);
  n.Send(Hup(1));
  n.Send(Hup(2));
  n.Send(Hup(1));  // 1 leads term 3
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  ASSERT_EQ(n.raft(1).term(), 3u);
  // An APP from 2 claiming to lead term 2 is ignored.
  Message stale = Msg(2, 1, kApp, 2);
  stale.add_entries()->CopyFrom(Ent(3, 2));
  n.Send(stale);
  n.Send(Prop(1, "somedata"));
  for (uint64_t id : {1, 2, 3}) {
    EXPECT_EQ(n.raft(id).raft_log().committed(), 4u);
    EXPECT_EQ(LogIndexTerms(n.raft(id)),
              (std::vector<std::pair<uint64_t, uint64_t>>{{1, 1}, {2, 2}, {3, 3}, {4, 3}}));
  }
}

// A node waits for committed-but-unapplied membership changes before campaigning: one of them
// might remove it.
TEST(PaperElectionTest, NoCampaignWithUnappliedConfChange) {
  Peer p = NewPeer(1, {1, 2});
  Raft& r = *p.raft;
  r.BecomeFollower(1, kNone);
  Message app = Msg(2, 1, kApp, 1);
  *app.add_entries() = ConfEntry(CC(raftpb::CONF_CHANGE_TYPE_REMOVE_NODE, 1));
  app.mutable_entries(0)->set_index(1);
  app.mutable_entries(0)->set_term(1);
  app.set_commit(1);
  ASSERT_TRUE(r.Step(app).ok());
  ASSERT_EQ(r.raft_log().committed(), 1u);
  r.TakeMessages();
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  EXPECT_EQ(r.state(), StateType::kFollower);
  Stabilize(r, *p.storage);  // applied now
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  EXPECT_EQ(r.state(), StateType::kCandidate);
}

}  // namespace
}  // namespace shoal::raft
