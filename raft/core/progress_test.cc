// Progress, Inflights, ProgressTracker and the quorum helpers.
#include "raft/core/progress.h"

#include "gtest/gtest.h"
#include "raft/core/quorum.h"

namespace shoal::raft {
namespace {

TEST(InflightsTest, AddFreeAndWrap) {
  Inflights in(10);
  for (int i = 0; i < 5; ++i) in.Add(i);
  EXPECT_EQ(in.Count(), 5);
  EXPECT_FALSE(in.Full());
  for (int i = 5; i < 10; ++i) in.Add(i);
  EXPECT_TRUE(in.Full());
  in.FreeLE(4);  // frees 0..4
  EXPECT_EQ(in.Count(), 5);
  // Wraps around the ring.
  for (int i = 10; i < 15; ++i) in.Add(i);
  EXPECT_TRUE(in.Full());
  in.FreeLE(8);
  EXPECT_EQ(in.Count(), 6);
  in.FreeLE(14);
  EXPECT_EQ(in.Count(), 0);
  // Freeing below the first is a no-op; freeing an empty window is too.
  in.FreeLE(3);
  EXPECT_EQ(in.Count(), 0);
  in.Add(20);
  in.FreeLE(19);
  EXPECT_EQ(in.Count(), 1);
}

TEST(InflightsTest, FreeFirstOne) {
  Inflights in(10);
  for (int i = 0; i < 10; ++i) in.Add(i);
  in.FreeFirstOne();
  EXPECT_EQ(in.Count(), 9);
  EXPECT_FALSE(in.Full());
  in.Reset();
  EXPECT_EQ(in.Count(), 0);
  in.FreeFirstOne();  // empty: no-op
}

TEST(InflightsDeathTest, AddToFullAborts) {
  Inflights in(2);
  in.Add(1);
  in.Add(2);
  EXPECT_DEATH(in.Add(3), "invariant");
}

TEST(ProgressTest, MaybeUpdate) {
  const uint64_t prev_m = 3, prev_n = 5;
  struct Case {
    uint64_t update, want_m, want_n;
    bool want_ok;
  } cases[] = {
      {prev_m - 1, prev_m, prev_n, false},  // stale
      {prev_m, prev_m, prev_n, false},      // no change
      {prev_m + 1, prev_m + 1, prev_n, true},
      {prev_m + 2, prev_m + 2, prev_n + 1, true},
  };
  for (const auto& c : cases) {
    Progress p(prev_n, 256, false);
    p.set_match(prev_m);
    EXPECT_EQ(p.MaybeUpdate(c.update), c.want_ok);
    EXPECT_EQ(p.match(), c.want_m);
    EXPECT_EQ(p.next(), c.want_n);
  }
}

TEST(ProgressTest, MaybeDecrTo) {
  struct Case {
    ProgressState state;
    uint64_t m, n, rejected, last;
    bool want_ok;
    uint64_t want_n;
  } cases[] = {
      // Replicate: a rejection at or below match is stale.
      {ProgressState::kReplicate, 5, 10, 5, 5, false, 10},
      {ProgressState::kReplicate, 5, 10, 4, 4, false, 10},
      // Replicate: a real rejection resets next to match+1.
      {ProgressState::kReplicate, 5, 10, 9, 9, true, 6},
      // Probe: next-1 != rejected is stale.
      {ProgressState::kProbe, 0, 0, 0, 0, false, 0},
      {ProgressState::kProbe, 0, 10, 5, 5, false, 10},
      // Probe: decrease to min(rejected, last+1), at least 1.
      {ProgressState::kProbe, 0, 10, 9, 9, true, 9},
      {ProgressState::kProbe, 0, 2, 1, 1, true, 1},
      {ProgressState::kProbe, 0, 1, 0, 0, true, 1},
      {ProgressState::kProbe, 0, 10, 9, 2, true, 3},
      {ProgressState::kProbe, 0, 10, 9, 0, true, 1},
  };
  for (const auto& c : cases) {
    Progress p(c.n, 256, false);
    p.set_match(c.m);
    if (c.state == ProgressState::kReplicate) {
      p.BecomeReplicate();
      p.set_next(c.n);
    }
    EXPECT_EQ(p.MaybeDecrTo(c.rejected, c.last), c.want_ok);
    EXPECT_EQ(p.match(), c.m);
    EXPECT_EQ(p.next(), c.want_n);
  }
}

TEST(ProgressTest, IsPausedByState) {
  Progress probe(1, 256, false);
  EXPECT_FALSE(probe.IsPaused());
  probe.SentEntries(1, 1);
  EXPECT_TRUE(probe.IsPaused()) << "probe: one message per round trip";
  probe.MaybeUpdate(1);
  EXPECT_FALSE(probe.IsPaused()) << "an acknowledgement unpauses";

  Progress repl(1, 2, false);
  repl.BecomeReplicate();
  EXPECT_FALSE(repl.IsPaused());
  repl.SentEntries(1, 1);
  repl.SentEntries(2, 1);
  EXPECT_TRUE(repl.IsPaused()) << "replicate: paused when the window is full";
  EXPECT_EQ(repl.next(), 3u) << "optimistic next";

  Progress snap(1, 256, false);
  snap.BecomeSnapshot(10);
  EXPECT_TRUE(snap.IsPaused());
}

TEST(ProgressTest, StateTransitions) {
  Progress p(5, 256, false);
  p.set_match(1);
  p.SentEntries(5, 1);
  p.BecomeReplicate();
  EXPECT_EQ(p.next(), 2u);
  EXPECT_FALSE(p.probe_sent());
  p.BecomeSnapshot(10);
  EXPECT_EQ(p.pending_snapshot(), 10u);
  p.BecomeProbe();
  EXPECT_EQ(p.next(), 11u) << "after a snapshot, probe right after it";
  EXPECT_EQ(p.pending_snapshot(), 0u);
  p.BecomeSnapshot(10);
  p.AbortPendingSnapshot();
  p.BecomeProbe();
  EXPECT_EQ(p.next(), 2u) << "after a failed snapshot, probe from match";
}

TEST(ProgressTest, ReplicateFreesInflightsOnReset) {
  Progress p(1, 4, false);
  p.BecomeReplicate();
  for (uint64_t i = 1; i <= 4; ++i) p.SentEntries(i, 1);
  EXPECT_TRUE(p.inflights().Full());
  p.BecomeProbe();
  EXPECT_EQ(p.inflights().Count(), 0);
}

TEST(QuorumTest, MajorityCommittedIndex) {
  auto acked = [](std::map<uint64_t, uint64_t> m) {
    return [m](uint64_t id) -> std::optional<uint64_t> {
      auto it = m.find(id);
      if (it == m.end()) return std::nullopt;
      return it->second;
    };
  };
  EXPECT_EQ(MajorityCommittedIndex({1}, acked({{1, 5}})), 5u);
  EXPECT_EQ(MajorityCommittedIndex({1, 2}, acked({{1, 5}, {2, 3}})), 3u);
  EXPECT_EQ(MajorityCommittedIndex({1, 2, 3}, acked({{1, 5}, {2, 3}, {3, 1}})), 3u);
  EXPECT_EQ(MajorityCommittedIndex({1, 2, 3}, acked({{1, 5}})), 0u);  // unknown counts as 0
  EXPECT_EQ(MajorityCommittedIndex({1, 2, 3, 4}, acked({{1, 5}, {2, 4}, {3, 3}, {4, 2}})), 3u);
  EXPECT_EQ(MajorityCommittedIndex({1, 2, 3, 4, 5}, acked({{1, 9}, {2, 8}, {3, 7}, {4, 1}})), 7u);
  EXPECT_EQ(MajorityCommittedIndex({}, acked({})), UINT64_MAX);
}

TEST(QuorumTest, TallyVotes) {
  EXPECT_EQ(TallyVotes({}, {}), VoteResult::kWon);
  EXPECT_EQ(TallyVotes({1}, {}), VoteResult::kPending);
  EXPECT_EQ(TallyVotes({1}, {{1, true}}), VoteResult::kWon);
  EXPECT_EQ(TallyVotes({1}, {{1, false}}), VoteResult::kLost);
  EXPECT_EQ(TallyVotes({1, 2, 3}, {{1, true}}), VoteResult::kPending);
  EXPECT_EQ(TallyVotes({1, 2, 3}, {{1, true}, {2, true}}), VoteResult::kWon);
  EXPECT_EQ(TallyVotes({1, 2, 3}, {{1, true}, {2, false}}), VoteResult::kPending);
  EXPECT_EQ(TallyVotes({1, 2, 3}, {{1, false}, {2, false}}), VoteResult::kLost);
  EXPECT_EQ(TallyVotes({1, 2, 3, 4}, {{1, true}, {2, true}}), VoteResult::kPending);
  EXPECT_EQ(TallyVotes({1, 2, 3, 4}, {{1, false}, {2, false}}), VoteResult::kLost);
  // Votes from non-voters do not count.
  EXPECT_EQ(TallyVotes({1, 2, 3}, {{1, true}, {9, true}}), VoteResult::kPending);
}

TEST(ProgressTrackerTest, MembershipIsIdempotentAssignment) {
  ProgressTracker t(256);
  t.AddVoter(1, 1);
  t.AddVoter(2, 1);
  t.AddLearner(3, 1);
  t.AddVoter(2, 1);  // again: no change
  EXPECT_EQ(t.voters(), (std::set<uint64_t>{1, 2}));
  EXPECT_EQ(t.learners(), (std::set<uint64_t>{3}));
  t.Get(3)->set_match(7);
  t.AddVoter(3, 1);  // promotion keeps progress
  EXPECT_TRUE(t.IsVoter(3));
  EXPECT_FALSE(t.IsLearner(3));
  EXPECT_EQ(t.Get(3)->match(), 7u);
  EXPECT_FALSE(t.Get(3)->is_learner());
  t.Remove(2);
  t.Remove(2);
  EXPECT_EQ(t.voters(), (std::set<uint64_t>{1, 3}));
  EXPECT_EQ(t.Get(2), nullptr);
  raftpb::ConfState cs = t.ConfState();
  EXPECT_EQ(cs.voters_size(), 2);
  EXPECT_EQ(cs.learners_size(), 0);
}

TEST(ProgressTrackerTest, CommittedIgnoresLearners) {
  ProgressTracker t(256);
  t.AddVoter(1, 1);
  t.AddVoter(2, 1);
  t.AddVoter(3, 1);
  t.AddLearner(4, 1);
  t.Get(1)->set_match(10);
  t.Get(4)->set_match(10);
  EXPECT_EQ(t.Committed(), 0u);
  t.Get(2)->set_match(8);
  EXPECT_EQ(t.Committed(), 8u);
}

TEST(ProgressTrackerTest, QuorumActiveAndVotes) {
  ProgressTracker t(256);
  for (uint64_t id : {1, 2, 3}) t.AddVoter(id, 1);
  t.AddLearner(4, 1);
  for (auto& [id, pr] : t.progress()) pr.set_recent_active(false);
  t.Get(1)->set_recent_active(true);
  t.Get(4)->set_recent_active(true);
  EXPECT_FALSE(t.QuorumActive()) << "learners do not count";
  t.Get(3)->set_recent_active(true);
  EXPECT_TRUE(t.QuorumActive());

  t.RecordVote(1, true);
  t.RecordVote(1, false);  // only the first vote counts
  t.RecordVote(4, true);   // learner: ignored
  int g = 0, r = 0;
  EXPECT_EQ(t.TallyVotes(&g, &r), VoteResult::kPending);
  EXPECT_EQ(g, 1);
  EXPECT_EQ(r, 0);
  t.RecordVote(2, true);
  EXPECT_EQ(t.TallyVotes(), VoteResult::kWon);
  t.ResetVotes();
  EXPECT_EQ(t.TallyVotes(), VoteResult::kPending);
}

}  // namespace
}  // namespace shoal::raft
