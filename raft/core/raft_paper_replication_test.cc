// Raft paper §5.3: log replication — how the leader appends, replicates, commits and repairs
// followers' logs; plus the replication machinery around it (forwarding, batching, backoff).
#include "gtest/gtest.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT
using IT = std::vector<std::pair<uint64_t, uint64_t>>;

// §5.3: "Once a leader has been elected, it begins servicing client requests ... The leader
// appends the command to its log as a new entry, then issues AppendEntries RPCs in parallel to
// each of the other servers to replicate the entry."
TEST(PaperReplicationTest, LeaderStartReplication) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  const uint64_t li = r.raft_log().LastIndex();
  ASSERT_TRUE(r.Step(Prop(1, "some data")).ok());
  EXPECT_EQ(r.raft_log().LastIndex(), li + 1);
  EXPECT_EQ(r.raft_log().committed(), li);
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 2u);
  for (const auto& m : msgs) {
    EXPECT_EQ(m.type(), kApp);
    EXPECT_EQ(m.index(), li);
    EXPECT_EQ(m.log_term(), 1u);
    EXPECT_EQ(m.commit(), li);
    ASSERT_EQ(m.entries_size(), 1);
    EXPECT_EQ(m.entries(0).index(), li + 1);
    EXPECT_EQ(m.entries(0).term(), 1u);
    EXPECT_EQ(m.entries(0).data(), "some data");
  }
  EXPECT_EQ(r.raft_log().UnstableEntries().back().data(), "some data");
}

// §5.3: "When the entry has been safely replicated, the leader applies the entry to its state
// machine" and "The leader keeps track of the highest index it knows to be committed, and it
// includes that index in future AppendEntries RPCs".
TEST(PaperReplicationTest, LeaderCommitEntry) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  const uint64_t li = r.raft_log().LastIndex();
  ASSERT_TRUE(r.Step(Prop(1, "some data")).ok());
  for (const auto& m : r.TakeMessages()) ASSERT_TRUE(r.Step(AcceptAndReply(m)).ok());
  EXPECT_EQ(r.raft_log().committed(), li + 1);
  auto committed = Stabilize(r, *p.storage);
  ASSERT_EQ(committed.size(), 1u);
  EXPECT_EQ(committed[0].data(), "some data");
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 2u);
  for (const auto& m : msgs) {
    EXPECT_EQ(m.type(), kApp);
    EXPECT_EQ(m.commit(), li + 1) << "followers learn the new commit index";
  }
}

// §5.3: "A log entry is committed once the leader that created the entry has replicated it on a
// majority of the servers."
TEST(PaperReplicationTest, LeaderAcknowledgeCommit) {
  struct Case {
    int size;
    std::set<uint64_t> acceptors;
    bool want_ack;
  } cases[] = {
      {1, {}, true},     {3, {}, false},       {3, {2}, true},
      {3, {2, 3}, true}, {5, {}, false},       {5, {2}, false},
      {5, {2, 3}, true}, {5, {2, 3, 4}, true}, {5, {2, 3, 4, 5}, true},
  };
  for (const auto& c : cases) {
    Peer p = NewPeer(1, Ids(c.size));
    Raft& r = *p.raft;
    ASSERT_TRUE(r.Step(Hup(1)).ok());
    if (c.size > 1) {
      for (uint64_t id = 2; id <= static_cast<uint64_t>(c.size); ++id) {
        Message v = Msg(id, 1, kVoteResp, 1);
        (void)r.Step(v);
      }
    }
    ASSERT_EQ(r.state(), StateType::kLeader);
    CommitNoopEntry(r, *p.storage);
    const uint64_t li = r.raft_log().LastIndex();
    ASSERT_TRUE(r.Step(Prop(1, "some data")).ok());
    for (const auto& m : r.TakeMessages()) {
      if (c.acceptors.count(m.to())) {
        ASSERT_TRUE(r.Step(AcceptAndReply(m)).ok());
      }
    }
    EXPECT_EQ(r.raft_log().committed() > li, c.want_ack)
        << c.size << " nodes, " << c.acceptors.size() << " acceptors";
  }
}

// §5.3: "When the leader commits an entry it also commits all preceding entries in its log,
// including entries created by previous leaders."
TEST(PaperReplicationTest, LeaderCommitPrecedingEntries) {
  std::vector<IT> cases = {{}, {{1, 2}}, {{1, 1}, {2, 2}}, {{1, 1}}};
  for (const auto& prev : cases) {
    auto s = NewStorage({1, 2, 3});
    std::vector<Entry> ents;
    for (auto [i, t] : prev) ents.push_back(Ent(i, t));
    ASSERT_TRUE(s->Append(ents).ok());
    auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
    r->LoadState(HS(2, 0, 0));
    r->BecomeCandidate();
    r->BecomeLeader();
    ASSERT_TRUE(r->Step(Prop(1, "some data")).ok());
    for (const auto& m : r->TakeMessages()) ASSERT_TRUE(r->Step(AcceptAndReply(m)).ok());
    const uint64_t li = prev.size();
    EXPECT_EQ(r->raft_log().committed(), li + 2);
    auto committed = r->raft_log().NextCommittedEntries();
    ASSERT_EQ(committed.size(), li + 2);
    EXPECT_EQ(committed[li].term(), 3u);  // the no-op
    EXPECT_EQ(committed[li + 1].data(), "some data");
  }
}

// §5.3: "Once a follower learns that a log entry is committed, it applies the entry to its
// local state machine (in log order)."
TEST(PaperReplicationTest, FollowerCommitEntry) {
  struct Case {
    std::vector<Entry> ents;
    uint64_t commit;
  } cases[] = {
      {{Ent(1, 1, "some data")}, 1},
      {{Ent(1, 1, "some data"), Ent(2, 1, "some data2")}, 2},
      {{Ent(1, 1, "some data2"), Ent(2, 1, "some data")}, 2},
      {{Ent(1, 1, "some data"), Ent(2, 1, "some data2")}, 1},
  };
  for (const auto& c : cases) {
    Peer p = NewPeer(1, {1, 2, 3});
    Raft& r = *p.raft;
    r.BecomeFollower(1, 2);
    Message m = Msg(2, 1, kApp, 1);
    m.set_commit(c.commit);
    for (const auto& e : c.ents) *m.add_entries() = e;
    ASSERT_TRUE(r.Step(m).ok());
    EXPECT_EQ(r.raft_log().committed(), c.commit);
    auto committed = r.raft_log().NextCommittedEntries();
    ASSERT_EQ(committed.size(), c.commit);
    for (size_t i = 0; i < committed.size(); ++i) EXPECT_EQ(committed[i].data(), c.ents[i].data());
  }
}

// §5.3: "When sending an AppendEntries RPC, the leader includes the index and term of the entry
// in its log that immediately precedes the new entries. If the follower does not find an entry
// in its log with the same index and term, then it refuses the new entries."
TEST(PaperReplicationTest, FollowerCheckMsgApp) {
  struct Case {
    uint64_t term, index, want_index;
    bool want_reject;
    uint64_t want_hint, want_log_term;
  } cases[] = {
      {0, 0, 1, false, 0, 0},  // match with the dummy entry
      {1, 1, 1, false, 0, 0},  // match with committed entries
      {2, 2, 2, false, 0, 0},  // match with uncommitted entries
      {1, 2, 2, true, 1, 1},   // unmatched: hint at the last entry of term <= 1
      {3, 3, 3, true, 2, 2},   // unmatched beyond the end
  };
  for (const auto& c : cases) {
    auto s = NewStorage({1, 2, 3});
    ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 2}})).ok());
    auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
    r->LoadState(HS(0, 0, 1));
    r->BecomeFollower(2, 2);
    Message m = Msg(2, 1, kApp, 2);
    m.set_log_term(c.term);
    m.set_index(c.index);
    ASSERT_TRUE(r->Step(m).ok());
    auto msgs = r->TakeMessages();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type(), kAppResp);
    EXPECT_EQ(msgs[0].index(), c.want_index);
    EXPECT_EQ(msgs[0].reject(), c.want_reject);
    EXPECT_EQ(msgs[0].reject_hint(), c.want_hint);
    EXPECT_EQ(msgs[0].log_term(), c.want_log_term);
  }
}

// §5.3: "If an existing entry conflicts with a new one (same index but different terms), delete
// the existing entry and all that follow it; append any new entries not already in the log."
TEST(PaperReplicationTest, FollowerAppendEntries) {
  struct Case {
    uint64_t index, term;
    IT ents, want, want_unstable;
  } cases[] = {
      {2, 2, {{3, 3}}, {{1, 1}, {2, 2}, {3, 3}}, {{3, 3}}},
      {1, 1, {{2, 3}, {3, 4}}, {{1, 1}, {2, 3}, {3, 4}}, {{2, 3}, {3, 4}}},
      {0, 0, {{1, 1}}, {{1, 1}, {2, 2}}, {}},
      {0, 0, {{1, 3}}, {{1, 3}}, {{1, 3}}},
  };
  for (const auto& c : cases) {
    auto s = NewStorage({1, 2, 3});
    ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 2}})).ok());
    auto r = NewRaft(NewConfig(1, 10, 1, s.get()));
    r->BecomeFollower(2, 2);
    Message m = Msg(2, 1, kApp, 2);
    m.set_log_term(c.term);
    m.set_index(c.index);
    for (auto [i, t] : c.ents) *m.add_entries() = Ent(i, t);
    ASSERT_TRUE(r->Step(m).ok());
    EXPECT_EQ(LogIndexTerms(*r), c.want);
    IT unstable;
    for (const auto& e : r->raft_log().UnstableEntries())
      unstable.emplace_back(e.index(), e.term());
    EXPECT_EQ(unstable, c.want_unstable);
  }
}

// §5.3 / Figure 7: "the leader handles inconsistencies by forcing the followers' logs to
// duplicate its own." Whatever a follower's log looks like, after the leader is elected and
// commits an entry, the follower's log equals the leader's.
TEST(PaperReplicationTest, LeaderSyncFollowerLog) {
  const IT leader_log = {{1, 1}, {2, 1}, {3, 1}, {4, 4}, {5, 4},
                         {6, 5}, {7, 5}, {8, 6}, {9, 6}, {10, 6}};
  const uint64_t term = 8;
  std::vector<IT> followers = {
      {{1, 1}, {2, 1}, {3, 1}, {4, 4}, {5, 4}, {6, 5}, {7, 5}, {8, 6}, {9, 6}},
      {{1, 1}, {2, 1}, {3, 1}, {4, 4}},
      {{1, 1}, {2, 1}, {3, 1}, {4, 4}, {5, 4}, {6, 5}, {7, 5}, {8, 6}, {9, 6}, {10, 6}, {11, 6}},
      {{1, 1},
       {2, 1},
       {3, 1},
       {4, 4},
       {5, 4},
       {6, 5},
       {7, 5},
       {8, 6},
       {9, 6},
       {10, 6},
       {11, 7},
       {12, 7}},
      {{1, 1}, {2, 1}, {3, 1}, {4, 4}, {5, 4}, {6, 4}, {7, 4}},
      {{1, 1}, {2, 1}, {3, 1}, {4, 2}, {5, 2}, {6, 2}, {7, 3}, {8, 3}, {9, 3}, {10, 3}, {11, 3}},
  };
  for (size_t i = 0; i < followers.size(); ++i) {
    auto make = [](uint64_t id, const IT& log, uint64_t t, uint64_t commit) {
      Peer p;
      p.storage = NewStorage({1, 2, 3});
      std::vector<Entry> ents;
      for (auto [idx, tm] : log) ents.push_back(Ent(idx, tm));
      EXPECT_TRUE(p.storage->Append(ents).ok());
      EXPECT_TRUE(p.storage->SetHardState(HS(t, 0, commit)).ok());
      p.raft = NewRaft(NewConfig(id, 10, 1, p.storage.get()));
      return p;
    };
    std::vector<Peer> peers;
    peers.push_back(make(1, leader_log, term, leader_log.size()));
    peers.push_back(make(2, followers[i], term - 1, 0));
    peers.push_back(Peer{});  // a black hole
    Network n(std::move(peers));
    // 1 becomes leader with 3's vote (2's log may be newer), then replicates.
    n.Send(Hup(1));
    Message vote = Msg(3, 1, kVoteResp, term + 1);
    n.Send(vote);
    ASSERT_EQ(n.raft(1).state(), StateType::kLeader) << i;
    n.Send(Prop(1, ""));
    EXPECT_EQ(LogIndexTerms(n.raft(2)), LogIndexTerms(n.raft(1))) << "follower " << i;
    EXPECT_EQ(n.raft(2).raft_log().committed(), n.raft(1).raft_log().committed());
  }
}

// Figure 7 again, counting round trips: the reject hint lets the leader skip a whole term of
// conflicting entries at once instead of one entry per round trip.
TEST(PaperReplicationTest, FastBackoffUsesRejectHint) {
  // Follower: 1..3 term 1, then 4..11 term 3 (a deposed leader's uncommitted tail).
  // Leader (term 5): 1..3 term 1, 4..11 term 4.
  auto mk = [](uint64_t id, uint64_t tail_term, uint64_t t) {
    Peer p;
    p.storage = NewStorage({1, 2});
    std::vector<Entry> ents;
    for (uint64_t i = 1; i <= 3; ++i) ents.push_back(Ent(i, 1));
    for (uint64_t i = 4; i <= 11; ++i) ents.push_back(Ent(i, tail_term));
    EXPECT_TRUE(p.storage->Append(ents).ok());
    EXPECT_TRUE(p.storage->SetHardState(HS(t, 0, 3)).ok());
    p.raft = NewRaft(NewConfig(id, 10, 1, p.storage.get()));
    return p;
  };
  Peer leader = mk(1, 4, 4), follower = mk(2, 3, 4);
  Raft& l = *leader.raft;
  Raft& f = *follower.raft;
  ASSERT_TRUE(l.Step(Hup(1)).ok());  // term 5
  l.TakeMessages();
  ASSERT_TRUE(l.Step(Msg(2, 1, kVoteResp, 5)).ok());
  ASSERT_EQ(l.state(), StateType::kLeader);
  int rejections = 0;
  std::vector<Message> inflight = l.TakeMessages();
  for (int round = 0; round < 20 && !inflight.empty(); ++round) {
    std::vector<Message> next;
    for (const auto& m : inflight) {
      Raft& to = m.to() == 1 ? l : f;
      ASSERT_TRUE(to.Step(m).ok());
      for (auto& out : to.TakeMessages()) {
        if (out.type() == kAppResp && out.reject()) ++rejections;
        next.push_back(out);
      }
    }
    inflight = std::move(next);
  }
  EXPECT_EQ(LogIndexTerms(f), LogIndexTerms(l));
  EXPECT_LE(rejections, 2) << "one rejection per conflicting term, not per entry";
}

// A follower forwards proposals to the leader it knows; the proposal commits everywhere.
TEST(PaperReplicationTest, ProposalByProxy) {
  for (bool black_hole : {false, true}) {
    std::vector<Peer> peers;
    peers.push_back(NewPeer(1, {1, 2, 3}));
    peers.push_back(NewPeer(2, {1, 2, 3}));
    peers.push_back(black_hole ? Peer{} : NewPeer(3, {1, 2, 3}));
    Network n(std::move(peers));
    n.Send(Hup(1));
    n.Send(Prop(2, "somedata"));
    for (uint64_t id : {1, 2}) {
      EXPECT_EQ(n.raft(id).raft_log().committed(), 2u);
      EXPECT_EQ(LogData(n.raft(id)), (std::vector<std::string>{"", "somedata"}));
    }
  }
}

// Proposals commit with a majority and do not without one.
TEST(PaperReplicationTest, ProposalCommitsOnlyWithMajority) {
  struct Case {
    int size;
    std::set<uint64_t> down;
    bool success;
  } cases[] = {
      {3, {}, true}, {3, {3}, true}, {3, {2, 3}, false}, {4, {3, 4}, false}, {5, {4, 5}, true},
  };
  for (const auto& c : cases) {
    std::vector<Peer> peers;
    for (uint64_t id : Ids(c.size)) {
      peers.push_back(c.down.count(id) ? Peer{} : NewPeer(id, Ids(c.size)));
    }
    Network n(std::move(peers));
    n.Send(Hup(1));
    // Without a quorum, 1 is only a candidate and drops the proposal.
    n.Send(Prop(1, "somedata"));
    const uint64_t want = c.success ? 2 : 0;
    EXPECT_EQ(n.raft(1).raft_log().committed(), want) << c.size;
    if (!c.success) {
      EXPECT_TRUE(IsProposalDropped(n.raft(1).Step(Prop(1))));
    }
  }
}

// A leader batches entries into APPs no larger than max_size_per_msg (one entry at least).
TEST(PaperReplicationTest, BatchingRespectsMaxSizePerMsg) {
  const std::string payload(100, 'x');
  const uint64_t one = EntrySize(Ent(2, 1, payload));
  Peer p = NewPeer(1, {1, 2}, 10, 1, [&](Config& c) { c.max_size_per_msg = 3 * one; });
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  // Follower 2 in probe state: pause it while 10 proposals queue up.
  r.tracker().Get(2)->set_probe_sent(true);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(r.Step(Prop(1, payload)).ok());
  r.TakeMessages();
  // It acknowledges the no-op; the leader switches to Replicate and streams the rest.
  Message ack = Msg(2, 1, kAppResp, 1);
  ack.set_index(1);
  ASSERT_TRUE(r.Step(ack).ok());
  auto apps = OfType(r.TakeMessages(), kApp);
  ASSERT_GE(apps.size(), 4u);
  size_t total = 0;
  for (const auto& m : apps) {
    EXPECT_LE(m.entries_size(), 3);
    EXPECT_GE(m.entries_size(), 1);
    total += m.entries_size();
  }
  EXPECT_EQ(total, 10u);
}

// Heartbeats carry min(match, committed): a follower never commits entries it may not have.
TEST(PaperReplicationTest, HeartbeatCommitIsBoundedByMatch) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.TakeMessages();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  AckAppendsFrom(r, {2});
  ASSERT_EQ(r.raft_log().committed(), 4u);
  ASSERT_TRUE(r.Step(Beat(1)).ok());
  for (const auto& m : r.TakeMessages()) {
    ASSERT_EQ(m.type(), kHeartbeat);
    EXPECT_EQ(m.commit(), m.to() == 2 ? 4u : 0u);
  }
}

// A follower receiving a heartbeat raises its commit index but never lowers it.
TEST(PaperReplicationTest, FollowerHandleHeartbeat) {
  const uint64_t commit = 2;
  for (uint64_t hb_commit : {commit + 1, commit - 1}) {
    auto s = NewStorage({1, 2});
    ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 2}, {3, 3}})).ok());
    auto r = NewRaft(NewConfig(1, 5, 1, s.get()));
    r->BecomeFollower(2, 2);
    r->raft_log().CommitTo(commit);
    Message hb = Msg(2, 1, kHeartbeat, 2);
    hb.set_commit(hb_commit);
    hb.set_context("ctx");
    ASSERT_TRUE(r->Step(hb).ok());
    EXPECT_EQ(r->raft_log().committed(), std::max(commit, hb_commit));
    auto msgs = r->TakeMessages();
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].type(), kHeartbeatResp);
    EXPECT_EQ(msgs[0].context(), "ctx") << "the context is echoed (ReadIndex relies on it)";
  }
}

// A leader drops proposals when it left the cluster; followers drop them without a leader or
// with forwarding disabled; candidates always drop them.
TEST(PaperReplicationTest, ProposalDroppedCases) {
  Peer f = NewPeer(1, {1, 2, 3});
  EXPECT_TRUE(IsProposalDropped(f.raft->Step(Prop(1))));

  Peer nf = NewPeer(1, {1, 2, 3}, 10, 1, [](Config& c) { c.disable_proposal_forwarding = true; });
  nf.raft->BecomeFollower(1, 2);
  EXPECT_TRUE(IsProposalDropped(nf.raft->Step(Prop(1))));
  EXPECT_TRUE(nf.raft->TakeMessages().empty());

  Peer c = NewPeer(1, {1, 2, 3});
  c.raft->BecomeCandidate();
  EXPECT_TRUE(IsProposalDropped(c.raft->Step(Prop(1))));

  Peer fwd = NewPeer(1, {1, 2, 3});
  fwd.raft->BecomeFollower(1, 2);
  EXPECT_TRUE(fwd.raft->Step(Prop(1)).ok());
  auto msgs = fwd.raft->TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kProp);
  EXPECT_EQ(msgs[0].to(), 2u);
  EXPECT_EQ(msgs[0].term(), 0u) << "forwarded proposals carry no term";
}

// The leader refuses proposals once its uncommitted tail exceeds max_uncommitted_entries_size,
// and accepts them again as entries commit.
TEST(PaperReplicationTest, UncommittedEntriesSizeLimit) {
  const std::string data(100, 'd');
  const uint64_t max_entries = 16;
  Peer p = NewPeer(1, {1, 2, 3}, 10, 1,
                   [&](Config& c) { c.max_uncommitted_entries_size = max_entries * data.size(); });
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  EXPECT_EQ(r.uncommitted_size(), 0u) << "the no-op is free";
  for (uint64_t i = 0; i < max_entries; ++i) ASSERT_TRUE(r.Step(Prop(1, data)).ok()) << i;
  EXPECT_TRUE(IsProposalDropped(r.Step(Prop(1, data))));
  // Empty proposals always go through.
  EXPECT_TRUE(r.Step(Prop(1, "")).ok());
  // Commit everything: the quota frees up.
  AckAppendsFrom(r, {2});
  auto committed = r.raft_log().NextCommittedEntries();
  r.ReduceUncommittedSize(committed);
  EXPECT_EQ(r.uncommitted_size(), 0u);
  EXPECT_TRUE(r.Step(Prop(1, data)).ok());
  // A single proposal larger than the limit is accepted when the tail is empty.
  Peer big = NewPeer(1, {1, 2, 3}, 10, 1, [&](Config& c) { c.max_uncommitted_entries_size = 10; });
  big.raft->BecomeCandidate();
  big.raft->BecomeLeader();
  EXPECT_TRUE(big.raft->Step(Prop(1, data)).ok());
  EXPECT_TRUE(IsProposalDropped(big.raft->Step(Prop(1, data))));
}

// A new leader appends an empty entry of its term at once (so it can commit earlier entries).
TEST(PaperReplicationTest, LeaderAppendsEmptyEntryOnElection) {
  Network n(3);
  n.Send(Hup(1));
  for (uint64_t id : {1, 2, 3}) {
    auto ents = n.raft(id).raft_log().AllEntries();
    ASSERT_EQ(ents.size(), 1u);
    EXPECT_EQ(ents[0].term(), 1u);
    EXPECT_TRUE(ents[0].data().empty());
    EXPECT_EQ(n.raft(id).raft_log().committed(), 1u);
  }
}

// A stale APP_RESP (for an index the follower already acknowledged) changes nothing.
TEST(PaperReplicationTest, StaleAppendResponseIgnored) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.TakeMessages();
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  Message ack = Msg(2, 1, kAppResp, 1);
  ack.set_index(2);
  ASSERT_TRUE(r.Step(ack).ok());
  EXPECT_EQ(r.tracker().Get(2)->match(), 2u);
  r.TakeMessages();
  ack.set_index(1);
  ASSERT_TRUE(r.Step(ack).ok());
  EXPECT_EQ(r.tracker().Get(2)->match(), 2u);
  EXPECT_TRUE(r.TakeMessages().empty());
  // A stale rejection in Replicate state is ignored too.
  Message rej = Msg(2, 1, kAppResp, 1);
  rej.set_index(1);
  rej.set_reject(true);
  ASSERT_TRUE(r.Step(rej).ok());
  EXPECT_EQ(r.tracker().Get(2)->state(), ProgressState::kReplicate);
}

// A follower that fell behind while partitioned catches up once the partition heals.
TEST(PaperReplicationTest, PartitionedFollowerCatchesUp) {
  Network n(3);
  n.Send(Hup(1));
  n.Isolate(3);
  for (int i = 0; i < 5; ++i) n.Send(Prop(1, "p" + std::to_string(i)));
  EXPECT_EQ(n.raft(1).raft_log().committed(), 6u);
  EXPECT_EQ(n.raft(3).raft_log().LastIndex(), 1u);
  n.Recover();
  n.Send(Beat(1));
  EXPECT_EQ(LogIndexTerms(n.raft(3)), LogIndexTerms(n.raft(1)));
  EXPECT_EQ(n.raft(3).raft_log().committed(), 6u);
}

// Committed entries in a Ready are bounded by max_committed_size_per_ready.
TEST(PaperReplicationTest, MaxCommittedSizePerReady) {
  const std::string data(100, 'd');
  const uint64_t one = EntrySize(Ent(2, 1, data));
  Peer p = NewPeer(1, {1}, 10, 1, [&](Config& c) { c.max_committed_size_per_ready = 2 * one; });
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  Stabilize(r, *p.storage);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(r.Step(Prop(1, data)).ok());
  EXPECT_EQ(r.raft_log().committed(), 7u);
  size_t batches = 0, total = 0;
  while (r.raft_log().HasNextCommittedEntries()) {
    auto got = Stabilize(r, *p.storage);
    EXPECT_LE(got.size(), 2u);
    total += got.size();
    ++batches;
  }
  EXPECT_EQ(total, 6u);
  EXPECT_EQ(batches, 3u);
}

}  // namespace
}  // namespace shoal::raft
