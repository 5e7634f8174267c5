// RaftLog and Unstable: conflict detection, matching, append/maybeAppend, commit and apply
// cursors, slicing across the stable/unstable boundary with size limits, snapshots.
#include "raft/core/log.h"

#include "gtest/gtest.h"
#include "raft/core/test_util.h"
#include "raft/core/unstable.h"

namespace shoal::raft {
namespace {

using testing::Ent;
using testing::Ents;
using IT = std::vector<std::pair<uint64_t, uint64_t>>;

IT ToIT(const std::vector<raftpb::Entry>& ents) {
  IT out;
  for (const auto& e : ents) out.emplace_back(e.index(), e.term());
  return out;
}

TEST(LogTest, FindConflict) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  struct Case {
    std::vector<raftpb::Entry> ents;
    uint64_t want;
  } cases[] = {
      {{}, 0},
      {Ents({{1, 1}, {2, 2}, {3, 3}}), 0},
      {Ents({{2, 2}, {3, 3}}), 0},
      {Ents({{3, 3}}), 0},
      {Ents({{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 4}}), 4},  // new entries
      {Ents({{4, 4}, {5, 4}}), 4},
      {Ents({{1, 4}, {2, 4}}), 1},  // conflicts
      {Ents({{2, 1}, {3, 4}, {4, 4}}), 2},
      {Ents({{3, 1}, {4, 2}, {5, 4}, {6, 4}}), 3},
  };
  for (const auto& c : cases) EXPECT_EQ(log.FindConflict(c.ents), c.want);
}

TEST(LogTest, FindConflictByTerm) {
  // Log: (1,1) (2,1) (3,2) (4,2) (5,4) after a snapshot at 0.
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents({{1, 1}, {2, 1}, {3, 2}, {4, 2}, {5, 4}})).ok());
  RaftLog log(&s, kNoLimit);
  EXPECT_EQ(log.FindConflictByTerm(5, 5), 5u);  // term 4 <= 5 already
  EXPECT_EQ(log.FindConflictByTerm(5, 3), 4u);  // skip the term-4 entry
  EXPECT_EQ(log.FindConflictByTerm(5, 1), 2u);
  EXPECT_EQ(log.FindConflictByTerm(5, 0), 0u);
  EXPECT_EQ(log.FindConflictByTerm(9, 1), 9u);  // beyond the end: unchanged
  // With a compacted prefix the search stops at the first index whose term is unknown.
  ASSERT_TRUE(s.Compact(3).ok());
  RaftLog log2(&s, kNoLimit);
  EXPECT_EQ(log2.FindConflictByTerm(5, 1), 2u);
}

TEST(LogTest, IsUpToDate) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_FALSE(log.IsUpToDate(2, 2));  // lower term
  EXPECT_FALSE(log.IsUpToDate(3, 2));
  EXPECT_FALSE(log.IsUpToDate(4, 2));
  EXPECT_TRUE(log.IsUpToDate(2, 4));  // higher term wins whatever the length
  EXPECT_TRUE(log.IsUpToDate(4, 4));
  EXPECT_FALSE(log.IsUpToDate(2, 3));  // same term: longer or equal wins
  EXPECT_TRUE(log.IsUpToDate(3, 3));
  EXPECT_TRUE(log.IsUpToDate(4, 3));
}

TEST(LogTest, AppendTruncatesConflictingSuffix) {
  struct Case {
    std::vector<raftpb::Entry> ents;
    uint64_t want_last;
    IT want;
    uint64_t want_unstable_offset;
  } cases[] = {
      {{}, 2, {{1, 1}, {2, 2}}, 3},
      {Ents({{3, 2}}), 3, {{1, 1}, {2, 2}, {3, 2}}, 3},
      {Ents({{1, 2}}), 1, {{1, 2}}, 1},                          // conflict at 1
      {Ents({{2, 3}, {3, 3}}), 3, {{1, 1}, {2, 3}, {3, 3}}, 2},  // conflict at 2
  };
  for (const auto& c : cases) {
    MemoryStorage s;
    ASSERT_TRUE(s.Append(Ents({{1, 1}, {2, 2}})).ok());
    RaftLog log(&s, kNoLimit);
    EXPECT_EQ(log.Append(c.ents), c.want_last);
    EXPECT_EQ(ToIT(log.AllEntries()), c.want);
    EXPECT_EQ(log.UnstableEntries().empty() ? 3u : log.UnstableEntries()[0].index(),
              c.want_unstable_offset);
  }
}

TEST(LogTest, MaybeAppend) {
  const uint64_t last_index = 3, last_term = 3, commit = 1;
  struct Case {
    uint64_t log_term, index, committed;
    std::vector<raftpb::Entry> ents;
    bool want_ok;
    uint64_t want_last, want_commit;
  } cases[] = {
      // Not matching.
      {last_term - 1, last_index, last_index, Ents({{last_index + 1, 4}}), false, 0, commit},
      {last_term, last_index + 1, last_index, Ents({{last_index + 2, 4}}), false, 0, commit},
      // Matching, no new entries.
      {last_term, last_index, last_index, {}, true, last_index, last_index},
      {last_term, last_index, last_index + 1, {}, true, last_index, last_index},  // capped
      {last_term, last_index, last_index - 1, {}, true, last_index, last_index - 1},
      {last_term, last_index, 0, {}, true, last_index, commit},  // commit never decreases
      {0, 0, last_index, {}, true, 0, commit},
      // New entries.
      {last_term, last_index, last_index, Ents({{last_index + 1, 4}}), true, last_index + 1,
       last_index},
      {last_term, last_index, last_index + 1, Ents({{last_index + 1, 4}}), true, last_index + 1,
       last_index + 1},
      {last_term, last_index, last_index + 2, Ents({{last_index + 1, 4}}), true, last_index + 1,
       last_index + 1},
      {last_term, last_index, last_index + 2, Ents({{last_index + 1, 4}, {last_index + 2, 4}}),
       true, last_index + 2, last_index + 2},
      // Matching at an earlier index, with a conflict after the commit index.
      {last_term - 1, last_index - 1, last_index, Ents({{last_index, 4}}), true, last_index,
       last_index},
      {last_term - 2, last_index - 2, last_index, Ents({{last_index - 1, 4}}), true, last_index - 1,
       last_index - 1},
  };
  int i = 0;
  for (const auto& c : cases) {
    MemoryStorage s;
    RaftLog log(&s, kNoLimit);
    log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
    log.CommitTo(commit);
    auto got = log.MaybeAppend(c.index, c.log_term, c.committed, c.ents);
    EXPECT_EQ(got.has_value(), c.want_ok) << i;
    if (got) {
      EXPECT_EQ(*got, c.want_last) << i;
    }
    EXPECT_EQ(log.committed(), c.want_commit) << i;
    if (got && !c.ents.empty()) {
      auto sl = log.Slice(log.LastIndex() - c.ents.size() + 1, log.LastIndex() + 1, kNoLimit);
      EXPECT_EQ(ToIT(*sl), ToIT(c.ents)) << i;
    }
    ++i;
  }
}

TEST(LogDeathTest, MaybeAppendConflictBelowCommitAborts) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  log.CommitTo(2);
  EXPECT_DEATH(log.MaybeAppend(0, 0, 3, Ents({{1, 4}})), "invariant");
}

TEST(LogTest, CommitToNeverDecreases) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  log.CommitTo(2);
  log.CommitTo(1);
  EXPECT_EQ(log.committed(), 2u);
  log.CommitTo(3);
  EXPECT_EQ(log.committed(), 3u);
  EXPECT_DEATH(log.CommitTo(4), "invariant");
}

TEST(LogTest, MaybeCommitOnlyWithMatchingTerm) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}, {3, 3}}));
  EXPECT_FALSE(log.MaybeCommit(3, 2));
  EXPECT_EQ(log.committed(), 0u);
  EXPECT_TRUE(log.MaybeCommit(3, 3));
  EXPECT_EQ(log.committed(), 3u);
  EXPECT_FALSE(log.MaybeCommit(2, 2)) << "never backwards";
}

TEST(LogTest, TermAcrossCompaction) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(testing::Snap(3, 3, testing::CS({1}))).ok());
  ASSERT_TRUE(s.Append(Ents({{4, 4}, {5, 5}})).ok());
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{6, 6}}));
  EXPECT_TRUE(IsCompacted(log.Term(2).status()));
  EXPECT_EQ(*log.Term(3), 3u);  // the snapshot's own index
  EXPECT_EQ(*log.Term(4), 4u);
  EXPECT_EQ(*log.Term(6), 6u);  // unstable
  EXPECT_EQ(*log.Term(7), 0u);  // beyond the end
  EXPECT_EQ(log.FirstIndex(), 4u);
  EXPECT_EQ(log.LastIndex(), 6u);
  EXPECT_EQ(log.committed(), 3u) << "starts committed at the snapshot";
  EXPECT_EQ(log.applied(), 3u);
}

TEST(LogTest, SliceAcrossStableAndUnstableWithLimits) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(testing::Snap(100, 1, testing::CS({1}))).ok());
  for (uint64_t i = 101; i < 150; ++i) ASSERT_TRUE(s.Append({Ent(i, i)}).ok());
  RaftLog log(&s, kNoLimit);
  for (uint64_t i = 150; i < 200; ++i) log.Append({Ent(i, i)});
  const uint64_t half = 150, last = 199;
  const uint64_t one = EntrySize(Ent(half, half));
  EXPECT_TRUE(IsCompacted(log.Slice(99, 101, kNoLimit).status()));
  EXPECT_TRUE(IsCompacted(log.Slice(100, 101, kNoLimit).status()));
  EXPECT_EQ(log.Slice(101, 101, kNoLimit)->size(), 0u);
  EXPECT_EQ(ToIT(*log.Slice(half - 1, half + 1, kNoLimit)), (IT{{149, 149}, {150, 150}}));
  EXPECT_EQ(log.Slice(101, last + 1, kNoLimit)->size(), 99u);
  // Limits apply across the boundary; at least one entry comes back.
  EXPECT_EQ(log.Slice(half - 1, half + 1, 0)->size(), 1u);
  EXPECT_EQ(log.Slice(half - 1, half + 1, one + 1)->size(), 1u);
  EXPECT_EQ(log.Slice(half - 2, half + 1, one + 1)->size(), 1u);
  EXPECT_EQ(log.Slice(half - 1, half + 1, 2 * one)->size(), 2u);
  EXPECT_EQ(log.Slice(half - 1, half + 2, 3 * one)->size(), 3u);
  EXPECT_EQ(log.Slice(half, half + 2, one)->size(), 1u);
  EXPECT_EQ(log.Slice(half, half + 2, 2 * one)->size(), 2u);
  EXPECT_DEATH((void)log.Slice(half, last + 2, kNoLimit), "invariant");
}

TEST(LogTest, NextCommittedEntriesAndLimit) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(testing::Snap(3, 1, testing::CS({1}))).ok());
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{4, 1}, {5, 1}, {6, 1}}));
  log.CommitTo(5);
  log.AppliedTo(3);
  EXPECT_TRUE(log.HasNextCommittedEntries());
  EXPECT_EQ(ToIT(log.NextCommittedEntries()), (IT{{4, 1}, {5, 1}}));
  log.AppliedTo(4);
  EXPECT_EQ(ToIT(log.NextCommittedEntries()), (IT{{5, 1}}));
  log.AppliedTo(5);
  EXPECT_FALSE(log.HasNextCommittedEntries());
  EXPECT_TRUE(log.NextCommittedEntries().empty());

  RaftLog limited(&s, 0);  // limit 0: one entry per call
  limited.Append(Ents({{4, 1}, {5, 1}, {6, 1}}));
  limited.CommitTo(6);
  EXPECT_EQ(limited.NextCommittedEntries().size(), 1u);
}

TEST(LogTest, AppliedToOutOfRangeAborts) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 1}}));
  log.CommitTo(1);
  EXPECT_DEATH(log.AppliedTo(2), "invariant");
}

TEST(LogTest, StableToAndUnstableEntries) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 2}}));
  log.StableTo(1, 1);
  EXPECT_EQ(ToIT(log.UnstableEntries()), (IT{{2, 2}}));
  log.StableTo(2, 1);  // wrong term: ignored (the entry was overwritten since)
  EXPECT_EQ(log.UnstableEntries().size(), 1u);
  log.StableTo(2, 2);
  EXPECT_TRUE(log.UnstableEntries().empty());
  log.StableTo(5, 2);  // beyond: ignored
}

TEST(LogTest, RestoreSnapshot) {
  MemoryStorage s;
  RaftLog log(&s, kNoLimit);
  log.Append(Ents({{1, 1}, {2, 1}}));
  log.Restore(testing::Snap(100, 10, testing::CS({1, 2})));
  EXPECT_EQ(log.committed(), 100u);
  EXPECT_EQ(log.FirstIndex(), 101u);
  EXPECT_EQ(log.LastIndex(), 100u);
  EXPECT_EQ(*log.Term(100), 10u);
  EXPECT_TRUE(log.UnstableSnapshot().has_value());
  EXPECT_FALSE(log.HasNextCommittedEntries()) << "the snapshot itself is applied, not entries";
  log.Append(Ents({{101, 10}}));
  EXPECT_EQ(log.LastIndex(), 101u);
  EXPECT_EQ(log.Snapshot()->metadata().index(), 100u);
  log.StableSnapTo(100);
  EXPECT_FALSE(log.UnstableSnapshot().has_value());
}

TEST(LogTest, CompactionKeepsTermsAndLastIndex) {
  MemoryStorage s;
  for (uint64_t i = 1; i <= 1000; ++i) ASSERT_TRUE(s.Append({Ent(i, i)}).ok());
  RaftLog log(&s, kNoLimit);
  log.CommitTo(1000);
  log.AppliedTo(1000);
  ASSERT_TRUE(s.Compact(500).ok());
  EXPECT_EQ(log.FirstIndex(), 501u);
  EXPECT_EQ(log.LastIndex(), 1000u);
  EXPECT_EQ(*log.Term(500), 500u);
  EXPECT_TRUE(IsCompacted(log.Term(499).status()));
  EXPECT_EQ(log.AllEntries().size(), 500u);
  EXPECT_TRUE(log.MatchTerm(1000, 1000));
}

// ---- Unstable ----

TEST(UnstableTest, IndexesWithAndWithoutSnapshot) {
  Unstable u;
  u.set_offset(5);
  EXPECT_FALSE(u.MaybeFirstIndex());
  EXPECT_FALSE(u.MaybeLastIndex());
  u.TruncateAndAppend(Ents({{5, 1}}));
  EXPECT_EQ(*u.MaybeLastIndex(), 5u);
  EXPECT_FALSE(u.MaybeFirstIndex());
  u.Restore(testing::Snap(4, 1, {}));
  EXPECT_EQ(*u.MaybeFirstIndex(), 5u);
  EXPECT_EQ(*u.MaybeLastIndex(), 4u);
  EXPECT_EQ(*u.MaybeTerm(4), 1u);
  EXPECT_FALSE(u.MaybeTerm(3));
  EXPECT_FALSE(u.MaybeTerm(5));
}

TEST(UnstableTest, MaybeTerm) {
  Unstable u;
  u.set_offset(5);
  u.TruncateAndAppend(Ents({{5, 1}, {6, 2}}));
  EXPECT_EQ(*u.MaybeTerm(5), 1u);
  EXPECT_EQ(*u.MaybeTerm(6), 2u);
  EXPECT_FALSE(u.MaybeTerm(4));
  EXPECT_FALSE(u.MaybeTerm(7));
}

TEST(UnstableTest, TruncateAndAppend) {
  struct Case {
    uint64_t offset;
    IT start, append, want;
    uint64_t want_offset;
  } cases[] = {
      {5, {{5, 1}}, {{6, 1}, {7, 1}}, {{5, 1}, {6, 1}, {7, 1}}, 5},  // append
      {5, {{5, 1}}, {{5, 2}, {6, 2}}, {{5, 2}, {6, 2}}, 5},          // replace
      {5, {{5, 1}}, {{4, 2}, {5, 2}, {6, 2}}, {{4, 2}, {5, 2}, {6, 2}}, 4},
      {5, {{5, 1}, {6, 1}, {7, 1}}, {{6, 2}}, {{5, 1}, {6, 2}}, 5},  // truncate then append
      {5, {{5, 1}, {6, 1}, {7, 1}}, {{7, 2}, {8, 2}}, {{5, 1}, {6, 1}, {7, 2}, {8, 2}}, 5},
  };
  for (const auto& c : cases) {
    Unstable u;
    u.set_offset(c.offset);
    std::vector<raftpb::Entry> start, app;
    for (auto [i, t] : c.start) start.push_back(Ent(i, t));
    for (auto [i, t] : c.append) app.push_back(Ent(i, t));
    u.TruncateAndAppend(start);
    u.TruncateAndAppend(app);
    EXPECT_EQ(ToIT(u.entries()), c.want);
    EXPECT_EQ(u.offset(), c.want_offset);
  }
}

TEST(UnstableTest, StableToCases) {
  Unstable u;
  u.set_offset(5);
  u.TruncateAndAppend(Ents({{5, 1}, {6, 1}}));
  u.StableTo(5, 2);  // term mismatch
  EXPECT_EQ(u.offset(), 5u);
  u.StableTo(4, 1);  // below offset
  EXPECT_EQ(u.offset(), 5u);
  u.StableTo(5, 1);
  EXPECT_EQ(u.offset(), 6u);
  EXPECT_EQ(u.entries().size(), 1u);
  // With a snapshot pending, stabilising its index does nothing to entries.
  Unstable v;
  v.Restore(testing::Snap(4, 1, {}));
  v.TruncateAndAppend(Ents({{5, 1}}));
  v.StableTo(4, 1);
  EXPECT_EQ(v.entries().size(), 1u);
  v.StableTo(5, 1);
  EXPECT_TRUE(v.entries().empty());
  EXPECT_EQ(v.offset(), 6u);
  v.StableSnapTo(3);  // wrong index: kept
  EXPECT_TRUE(v.snapshot().has_value());
  v.StableSnapTo(4);
  EXPECT_FALSE(v.snapshot().has_value());
}

}  // namespace
}  // namespace shoal::raft
