// Raft paper §5.4 (safety): the election restriction, committing entries from previous terms,
// leader completeness and state-machine safety — checked on hand-built scenarios (Figure 8)
// and on randomized runs under partitions, message loss and reordering, and crashes.
#include <cstdlib>
#include <iostream>

#include "gtest/gtest.h"
#include "raft/core/cluster_test_util.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT
using IT = std::vector<std::pair<uint64_t, uint64_t>>;

// §5.4.1: "the RequestVote RPC includes information about the candidate's log": the index and
// term of its last entry.
TEST(PaperSafetyTest, VoteRequestCarriesLastEntry) {
  struct Case {
    IT ents;
    uint64_t want_term;
  } cases[] = {{{{1, 1}}, 2}, {{{1, 1}, {2, 2}}, 3}};
  for (const auto& c : cases) {
    Peer p = NewPeer(1, {1, 2, 3});
    Raft& r = *p.raft;
    Message app = Msg(2, 1, kApp, c.want_term - 1);
    for (auto [i, t] : c.ents) *app.add_entries() = Ent(i, t);
    ASSERT_TRUE(r.Step(app).ok());
    r.TakeMessages();
    TickUntilElection(r);
    auto votes = OfType(r.TakeMessages(), kVote);
    ASSERT_EQ(votes.size(), 2u);
    for (const auto& m : votes) {
      EXPECT_EQ(m.term(), c.want_term);
      EXPECT_EQ(m.index(), c.ents.back().first);
      EXPECT_EQ(m.log_term(), c.ents.back().second);
    }
  }
}

// §5.4.1: "The voter denies its vote if its own log is more up-to-date than that of the
// candidate": a higher last term wins; with equal terms, the longer log.
TEST(PaperSafetyTest, VoterRejectsLessUpToDateCandidate) {
  struct Case {
    IT ents;
    uint64_t log_term, index;
    bool want_reject;
  } cases[] = {
      // Same last term.
      {{{1, 1}}, 1, 1, false},
      {{{1, 1}}, 1, 2, false},
      {{{1, 1}, {2, 1}}, 1, 1, true},
      // Candidate with a higher last term.
      {{{1, 1}}, 2, 1, false},
      {{{1, 1}}, 2, 2, false},
      {{{1, 1}, {2, 1}}, 2, 1, false},
      // Voter with a higher last term.
      {{{1, 2}}, 1, 1, true},
      {{{1, 2}}, 1, 2, true},
      {{{1, 2}, {2, 1}}, 1, 1, true},
  };
  for (const auto& c : cases) {
    auto s = NewStorage({1, 2});
    std::vector<Entry> ents;
    for (auto [i, t] : c.ents) ents.push_back(Ent(i, t));
    ASSERT_TRUE(s->Append(ents).ok());
    auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
    Message v = Msg(2, 1, kVote, 3);
    v.set_log_term(c.log_term);
    v.set_index(c.index);
    ASSERT_TRUE(r->Step(v).ok());
    auto msgs = r->TakeMessages();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type(), kVoteResp);
    EXPECT_EQ(msgs[0].reject(), c.want_reject) << c.log_term << "/" << c.index;
    EXPECT_EQ(r->vote(), c.want_reject ? kNone : 2u);
  }
}

// §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only log
// entries from the leader's current term are committed by counting replicas."
TEST(PaperSafetyTest, LeaderOnlyCommitsLogFromCurrentTerm) {
  struct Case {
    uint64_t index, want_commit;
  } cases[] = {{1, 0}, {2, 0}, {3, 3}};  // entries 1, 2 are of older terms; 3 is the no-op
  for (const auto& c : cases) {
    auto s = NewStorage({1, 2});
    ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 2}})).ok());
    auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
    r->LoadState(HS(2, 0, 0));
    r->BecomeCandidate();  // term 3
    r->BecomeLeader();
    r->TakeMessages();
    Message ack = Msg(2, 1, kAppResp, r->term());
    ack.set_index(c.index);
    ASSERT_TRUE(r->Step(ack).ok());
    EXPECT_EQ(r->raft_log().committed(), c.want_commit) << c.index;
  }
}

// Figure 8: an entry of an old term that reached a majority... is never committed by counting,
// and a leader that crashes before committing an entry of its own term may see that entry
// overwritten. Here: X is replicated by S1 (term 1) to S2 only; S5 wins term 2 with Y at the same
// index but replicates nothing; S1 wins term 3 but crashes before replicating; S5 wins term 4
// and Y overwrites X everywhere. X was never reported committed by anyone.
TEST(PaperSafetyTest, Figure8UncommittedOldEntryOverwritten) {
  Network n(5);
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  for (uint64_t id : {3, 4, 5}) n.Cut(1, id);
  n.Send(Prop(1, "X"));  // (2,1) on S1 and S2
  ASSERT_EQ(LogData(n.raft(2)).back(), "X");
  ASSERT_EQ(n.raft(1).raft_log().committed(), 1u);

  // S5 wins term 2 with S3, S4; its Y = no-op (2,2) stays local.
  n.Recover();
  n.Isolate(1);
  n.msg_hook = [](const Message& m) { return !(m.from() == 5 && m.type() == kApp); };
  n.Send(Hup(5));
  ASSERT_EQ(n.raft(5).state(), StateType::kLeader);
  ASSERT_EQ(*n.raft(5).raft_log().Term(2), 2u);

  // S5 goes silent (it still hears S1's vote requests, so it steps down); S1 wins a later term
  // but its appends never leave it, then it crashes too.
  n.Recover();
  n.raft(1).BecomeFollower(n.raft(1).term(), kNone);  // S1 restarted (it was a stale leader)
  n.msg_hook = [](const Message& m) {
    return m.from() != 5 && !(m.from() == 1 && m.type() == kApp);
  };
  for (int i = 0; i < 3 && n.raft(1).state() != StateType::kLeader; ++i) n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  EXPECT_EQ(n.raft(1).raft_log().committed(), 1u) << "X must not commit by counting replicas";

  // S5 comes back and wins: its last entry (2,2) beats (2,1) on S2, S3, S4.
  n.Recover();
  n.Isolate(1);
  n.msg_hook = nullptr;
  for (int i = 0; i < 4 && n.raft(5).state() != StateType::kLeader; ++i) n.Send(Hup(5));
  ASSERT_EQ(n.raft(5).state(), StateType::kLeader);
  EXPECT_GE(n.raft(5).raft_log().committed(), 3u);

  n.Recover();
  n.Send(Beat(5));
  n.Send(Prop(5, "after"));
  for (uint64_t id : Ids(5)) {
    EXPECT_EQ(LogIndexTerms(n.raft(id)), LogIndexTerms(n.raft(5))) << "member " << id;
    EXPECT_NE(LogData(n.raft(id))[1], "X");
    EXPECT_EQ(n.raft(id).raft_log().committed(), n.raft(5).raft_log().committed());
  }
}

// §5.4.3 Leader completeness: a member missing a committed entry cannot be elected.
TEST(PaperSafetyTest, MemberMissingCommittedEntryCannotWin) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  n.Send(Prop(1, "committed"));
  ASSERT_EQ(n.raft(1).raft_log().committed(), 2u);
  n.Recover();
  n.Isolate(1);  // the leader disappears
  n.Send(Hup(3));
  EXPECT_NE(n.raft(3).state(), StateType::kLeader) << "3 lacks a committed entry";
  n.Send(Hup(2));
  ASSERT_EQ(n.raft(2).state(), StateType::kLeader);
  EXPECT_EQ(LogData(n.raft(2))[1], "committed");
  EXPECT_EQ(LogData(n.raft(3))[1], "committed") << "and the new leader repairs 3's log";
}

// An uncommitted entry of a deposed leader is overwritten by the new leader's log.
TEST(PaperSafetyTest, UncommittedEntriesOfDeposedLeaderAreOverwritten) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(1);
  n.Send(Prop(1, "lost"));  // only on 1: never committed
  EXPECT_EQ(n.raft(1).raft_log().LastIndex(), 2u);
  n.Send(Hup(2));
  n.Send(Prop(2, "kept"));
  n.Recover();
  n.Send(Beat(2));
  EXPECT_EQ(n.raft(1).state(), StateType::kFollower);
  EXPECT_EQ(LogData(n.raft(1)), (std::vector<std::string>{"", "", "kept"}));
  EXPECT_EQ(LogIndexTerms(n.raft(1)), LogIndexTerms(n.raft(2)));
}

// Restarted members keep their committed log: a cluster whose members all crash and restart
// (from storage, as the driver would) keeps every committed entry.
TEST(PaperSafetyTest, CommittedEntriesSurviveFullRestart) {
  Cluster c({.size = 3});
  const uint64_t leader = c.WaitForLeader();
  ASSERT_NE(leader, kNone);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(c.Propose(leader, "e" + std::to_string(i)).ok());
  c.Stabilize();
  for (uint64_t id : {1, 2, 3}) c.Crash(id);
  for (uint64_t id : {1, 2, 3}) c.Restart(id);
  const uint64_t leader2 = c.WaitForLeader();
  ASSERT_NE(leader2, kNone);
  ASSERT_TRUE(c.Propose(leader2, "after").ok());
  c.Stabilize();
  for (uint64_t id : {1, 2, 3}) {
    ASSERT_EQ(c.node(id).state.size(), 11u) << id;
    EXPECT_EQ(c.node(id).state.front(), "e0");
    EXPECT_EQ(c.node(id).state.back(), "after");
  }
  c.CheckLogMatching();
}

// The members (voters and learners) in the leader's configuration.
std::vector<uint64_t> Members(Cluster& c, uint64_t leader) {
  std::vector<uint64_t> out;
  for (uint64_t id : Ids(5)) {
    if (c.raft(leader).tracker().Get(id) != nullptr) out.push_back(id);
  }
  return out;
}

// Randomized safety run: message reordering and loss, partitions, crashes and restarts (with and
// without a durable state machine), snapshots and compaction. The Cluster checks one leader per
// term, leader completeness and state-machine safety on every step.
void RandomizedRun(uint64_t seed, bool pre_vote, bool check_quorum, int steps,
                   bool membership_churn = false) {
  SCOPED_TRACE(::testing::Message()
               << "seed=" << seed << " pre_vote=" << pre_vote << " check_quorum=" << check_quorum);
  std::mt19937_64 rng(seed);
  Cluster c({.size = 5,
             .tweak =
                 [&](Config& cfg) {
                   cfg.pre_vote = pre_vote;
                   cfg.check_quorum = check_quorum;
                   cfg.random_seed = seed * 31 + cfg.id;
                   cfg.max_size_per_msg = 256;
                   cfg.max_inflight_msgs = 4;
                 },
             .snapshot_every = 20,
             .compaction_slack = 5});
  c.set_drop_rate(0.05);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  int proposals = 0, conf_changes = 0;
  for (int step = 0; step < steps; ++step) {
    const int action = pick(100);
    const uint64_t id = 1 + pick(5);
    if (action < 35) {
      c.DeliverOne(&rng);
    } else if (action < 60) {
      c.ProcessReady(id);
    } else if (action < 75) {
      c.Tick(id);
    } else if (action < 87) {
      if (membership_churn && pick(10) == 0) {
        // Cycle member 5 through removal, re-adding as a learner, and promotion.
        static const raftpb::ConfChangeType kCycle[] = {raftpb::CONF_CHANGE_TYPE_REMOVE_NODE,
                                                        raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE,
                                                        raftpb::CONF_CHANGE_TYPE_ADD_NODE};
        if (c.up(id)) (void)c.rn(id).ProposeConfChange(CC(kCycle[conf_changes++ % 3], 5));
      } else if (c.up(id)) {
        (void)c.Propose(id, "v" + std::to_string(proposals++));
      }
    } else if (action < 88) {
      if (c.up(id)) c.Crash(id);
    } else if (action < 92) {
      if (!c.up(id)) c.Restart(id, /*keep_state_machine=*/pick(2) == 0);
    } else if (action < 94) {
      c.Isolate(id);
    } else if (action < 98) {
      c.Heal();
    } else {
      c.Cut(id, 1 + pick(5));
    }
    if (::testing::Test::HasFailure()) return;
  }
  // Liveness at the end: heal, restart everyone, and the cluster converges.
  c.Heal();
  c.set_drop_rate(0);
  for (uint64_t id : Ids(5)) {
    if (!c.up(id)) c.Restart(id, true);
  }
  // An uncommitted proposal may legitimately be lost when leadership changes: retry until one
  // commits (bounded), as a client would.
  uint64_t leader = kNone;
  std::string final_value;
  bool converged = false;
  for (int attempt = 0; attempt < 10 && !converged; ++attempt) {
    leader = c.WaitForLeader(2000);
    ASSERT_NE(leader, kNone);
    final_value = "final" + std::to_string(attempt);
    if (!c.Propose(leader, final_value).ok()) continue;
    for (int i = 0; i < 30; ++i) {
      c.Stabilize();
      c.TickAll();
    }
    c.Stabilize();
    converged = true;
    for (uint64_t id : Members(c, leader)) {
      converged &= !c.node(id).state.empty() && c.node(id).state.back() == final_value;
    }
  }
  c.CheckLogMatching();
  std::cout << "seed " << seed << ": " << c.committed().size() << " entries committed, "
            << c.leaders_elected() << " leaders elected, " << proposals << " proposals, "
            << c.conf_changes_applied() << " membership changes\n";
  EXPECT_TRUE(converged) << "the healed cluster did not commit a proposal everywhere";
  for (uint64_t id : Members(c, leader)) {
    EXPECT_EQ(c.node(id).state, c.node(leader).state) << "member " << id << " diverged";
  }
}

uint64_t BaseSeed() {
  const char* s = std::getenv("RAFT_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 1;
}

TEST(PaperSafetyTest, RandomizedSafetyPlain) {
  for (uint64_t seed = BaseSeed(); seed < BaseSeed() + 8; ++seed) {
    RandomizedRun(seed, false, false, 20000);
    if (HasFailure()) return;
  }
}

TEST(PaperSafetyTest, RandomizedSafetyPreVoteCheckQuorum) {
  for (uint64_t seed = BaseSeed(); seed < BaseSeed() + 8; ++seed) {
    RandomizedRun(seed, true, true, 20000);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace shoal::raft

namespace shoal::raft {
namespace {

// Membership changes under faults: member 5 is removed, re-added as a learner and promoted,
// over and over, while everything else goes wrong.
TEST(PaperSafetyTest, RandomizedSafetyWithMembershipChurn) {
  for (uint64_t seed = BaseSeed(); seed < BaseSeed() + 8; ++seed) {
    RandomizedRun(seed, seed % 2 == 0, seed % 2 == 0, 20000, /*membership_churn=*/true);
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace shoal::raft
