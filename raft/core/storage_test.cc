// MemoryStorage: term lookups, entries with size limits, compaction, snapshots, append with
// conflicting suffixes — the contract the core relies on (storage.h).
#include "raft/core/storage.h"

#include "gtest/gtest.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using testing::Ent;
using testing::Ents;

std::unique_ptr<MemoryStorage> StorageWith(const std::vector<raftpb::Entry>& ents) {
  // ents[0] is the dummy (snapshot) entry.
  auto s = std::make_unique<MemoryStorage>();
  raftpb::Snapshot snap;
  if (ents[0].index() > 0) {
    snap.mutable_metadata()->set_index(ents[0].index());
    snap.mutable_metadata()->set_term(ents[0].term());
    EXPECT_TRUE(s->ApplySnapshot(snap).ok());
  }
  EXPECT_TRUE(s->Append(std::vector<raftpb::Entry>(ents.begin() + 1, ents.end())).ok());
  return s;
}

std::vector<std::pair<uint64_t, uint64_t>> IT(const std::vector<raftpb::Entry>& ents) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& e : ents) out.emplace_back(e.index(), e.term());
  return out;
}

TEST(StorageTest, TermLookups) {
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
  EXPECT_TRUE(IsCompacted(s->Term(2).status()));
  EXPECT_EQ(*s->Term(3), 3u);
  EXPECT_EQ(*s->Term(4), 4u);
  EXPECT_EQ(*s->Term(5), 5u);
  EXPECT_TRUE(shoal::raft::IsUnavailable(s->Term(6).status()));
}

TEST(StorageTest, EntriesRangesAndLimits) {
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}, {6, 6}}));
  const uint64_t one = EntrySize(Ent(4, 4));
  EXPECT_TRUE(IsCompacted(s->Entries(2, 6, kNoLimit).status()));
  EXPECT_TRUE(IsCompacted(s->Entries(3, 4, kNoLimit).status()));
  EXPECT_EQ(IT(*s->Entries(4, 5, kNoLimit)), IT(Ents({{4, 4}})));
  EXPECT_EQ(IT(*s->Entries(4, 6, kNoLimit)), IT(Ents({{4, 4}, {5, 5}})));
  EXPECT_EQ(IT(*s->Entries(4, 7, kNoLimit)), IT(Ents({{4, 4}, {5, 5}, {6, 6}})));
  // Even a zero limit yields one entry.
  EXPECT_EQ(IT(*s->Entries(4, 7, 0)), IT(Ents({{4, 4}})));
  EXPECT_EQ(IT(*s->Entries(4, 7, 2 * one)), IT(Ents({{4, 4}, {5, 5}})));
  EXPECT_EQ(IT(*s->Entries(4, 7, 3 * one - 1)), IT(Ents({{4, 4}, {5, 5}})));
  EXPECT_EQ(IT(*s->Entries(4, 7, 3 * one)), IT(Ents({{4, 4}, {5, 5}, {6, 6}})));
  EXPECT_TRUE(shoal::raft::IsUnavailable(s->Entries(4, 8, kNoLimit).status()));
}

TEST(StorageTest, FirstAndLastIndex) {
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
  EXPECT_EQ(s->FirstIndex(), 4u);
  EXPECT_EQ(s->LastIndex(), 5u);
  ASSERT_TRUE(s->Append({Ent(6, 5)}).ok());
  EXPECT_EQ(s->LastIndex(), 6u);
  ASSERT_TRUE(s->Compact(4).ok());
  EXPECT_EQ(s->FirstIndex(), 5u);
}

TEST(StorageTest, Compact) {
  struct Case {
    uint64_t i;
    bool compacted;
    uint64_t want_index, want_term;
    size_t want_len;
  } cases[] = {{2, true, 3, 3, 3}, {3, true, 3, 3, 3}, {4, false, 4, 4, 2}, {5, false, 5, 5, 1}};
  for (const auto& c : cases) {
    auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
    absl::Status st = s->Compact(c.i);
    EXPECT_EQ(IsCompacted(st), c.compacted) << c.i;
    EXPECT_EQ(s->FirstIndex() - 1, c.want_index);
    EXPECT_EQ(*s->Term(c.want_index), c.want_term);
    EXPECT_EQ(s->LastIndex() - s->FirstIndex() + 2, c.want_len);
  }
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
  EXPECT_FALSE(s->Compact(6).ok()) << "compacting beyond the last index must fail";
}

TEST(StorageTest, CreateSnapshot) {
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
  raftpb::ConfState cs = testing::CS({1, 2, 3});
  auto snap = s->CreateSnapshot(4, &cs, "data");
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->index(), 4u);
  EXPECT_EQ(snap->term(), 4u);
  EXPECT_EQ(s->GetSnapshot()->data(), "data");
  EXPECT_EQ(snap->conf_state().voters_size(), 3);
  EXPECT_EQ(s->GetSnapshot()->metadata().index(), 4u);
  // Entries are kept until Compact().
  EXPECT_EQ(s->FirstIndex(), 4u);
  // Older or equal snapshots are refused; beyond the end too.
  EXPECT_FALSE(s->CreateSnapshot(4, &cs, "").ok());
  EXPECT_FALSE(s->CreateSnapshot(3, &cs, "").ok());
  EXPECT_FALSE(s->CreateSnapshot(6, &cs, "").ok());
  // Without a conf state the previous one is kept.
  auto snap2 = s->CreateSnapshot(5, nullptr, "d2");
  ASSERT_TRUE(snap2.ok());
  EXPECT_EQ(snap2->conf_state().voters_size(), 3);
}

TEST(StorageTest, AppendCases) {
  struct Case {
    std::vector<raftpb::Entry> append;
    std::vector<std::pair<uint64_t, uint64_t>> want;
  };
  std::vector<Case> cases = {
      {Ents({{1, 1}, {2, 2}}), {{3, 3}, {4, 4}, {5, 5}}},          // all compacted: ignored
      {Ents({{3, 3}, {4, 4}, {5, 5}}), {{3, 3}, {4, 4}, {5, 5}}},  // same
      {Ents({{3, 3}, {4, 6}, {5, 6}}), {{3, 3}, {4, 6}, {5, 6}}},  // conflict replaces
      {Ents({{3, 3}, {4, 4}, {5, 5}, {6, 5}}), {{3, 3}, {4, 4}, {5, 5}, {6, 5}}},
      {Ents({{2, 3}, {3, 3}, {4, 5}}), {{3, 3}, {4, 5}}},  // truncate the prefix
      {Ents({{4, 5}}), {{3, 3}, {4, 5}}},                  // truncate the tail
      {Ents({{6, 5}}), {{3, 3}, {4, 4}, {5, 5}, {6, 5}}},  // direct append
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
    ASSERT_TRUE(s->Append(cases[i].append).ok()) << i;
    std::vector<std::pair<uint64_t, uint64_t>> got = {{3, *s->Term(3)}};
    if (s->LastIndex() >= 4) {
      for (auto& p : IT(*s->Entries(4, s->LastIndex() + 1, kNoLimit))) got.push_back(p);
    }
    EXPECT_EQ(got, cases[i].want) << "case " << i;
  }
  // A gap is refused; so are non-contiguous entries.
  auto s = StorageWith(Ents({{3, 3}, {4, 4}, {5, 5}}));
  EXPECT_FALSE(s->Append(Ents({{7, 5}})).ok());
  EXPECT_FALSE(s->Append(Ents({{6, 5}, {8, 5}})).ok());
}

TEST(StorageTest, ApplySnapshotReplacesEverything) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents({{1, 1}, {2, 1}})).ok());
  ASSERT_TRUE(s.ApplySnapshot(testing::Snap(4, 4, testing::CS({1, 2}))).ok());
  EXPECT_EQ(s.FirstIndex(), 5u);
  EXPECT_EQ(s.LastIndex(), 4u);
  EXPECT_EQ(*s.Term(4), 4u);
  EXPECT_EQ(s.GetInitialState()->conf_state.voters_size(), 2);
  // Older snapshots are refused.
  EXPECT_FALSE(s.ApplySnapshot(testing::Snap(3, 3, testing::CS({1}))).ok());
  EXPECT_EQ(s.FirstIndex(), 5u);
}

TEST(StorageTest, InitialStateAndConfState) {
  MemoryStorage s;
  ASSERT_TRUE(s.SetInitialConfState(testing::CS({1, 2}, {3})).ok());
  ASSERT_TRUE(s.SetHardState(testing::HS(5, 1, 0)).ok());
  auto st = s.GetInitialState();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->hard_state.term(), 5u);
  EXPECT_EQ(st->conf_state.voters_size(), 2);
  EXPECT_EQ(st->conf_state.learners_size(), 1);
  ASSERT_TRUE(s.Append(Ents({{1, 1}})).ok());
  EXPECT_FALSE(s.SetInitialConfState(testing::CS({1})).ok()) << "only on a fresh storage";
}

TEST(StorageTest, EmptyStorage) {
  MemoryStorage s;
  EXPECT_EQ(s.FirstIndex(), 1u);
  EXPECT_EQ(s.LastIndex(), 0u);
  EXPECT_EQ(*s.Term(0), 0u);
  EXPECT_TRUE(shoal::raft::IsUnavailable(s.Entries(1, 1, kNoLimit).status()));
}

TEST(StorageTest, LimitSize) {
  std::vector<raftpb::Entry> ents = {Ent(1, 1, "aaaa"), Ent(2, 1, "bbbb"), Ent(3, 1, "cccc")};
  const uint64_t one = EntrySize(ents[0]);
  auto v = ents;
  LimitSize(v, kNoLimit);
  EXPECT_EQ(v.size(), 3u);
  v = ents;
  LimitSize(v, 0);
  EXPECT_EQ(v.size(), 1u);
  v = ents;
  LimitSize(v, 2 * one);
  EXPECT_EQ(v.size(), 2u);
}

}  // namespace
}  // namespace shoal::raft
