#include "raft/sim/invariants.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shoal::raft::sim {
namespace {

raftpb::Entry E(uint64_t index, uint64_t term, std::string data = "") {
  raftpb::Entry e;
  e.set_index(index);
  e.set_term(term);
  e.set_data(data.empty() ? "x" + std::to_string(index) + "t" + std::to_string(term) : data);
  return e;
}

// A log held in a vector: entries after a snapshot at (snap_index, snap_term).
class VectorLog : public LogView {
 public:
  VectorLog(std::vector<raftpb::Entry> entries, uint64_t snap_index = 0, uint64_t snap_term = 0)
      : entries_(std::move(entries)), snap_index_(snap_index), snap_term_(snap_term) {}
  uint64_t SnapshotIndex() const override { return snap_index_; }
  uint64_t LastIndex() const override { return snap_index_ + entries_.size(); }
  std::optional<uint64_t> Term(uint64_t i) const override {
    if (i == snap_index_) return snap_term_;
    if (i < snap_index_ || i > LastIndex()) return std::nullopt;
    return entries_[i - snap_index_ - 1].term();
  }
  std::optional<uint64_t> Hash(uint64_t i) const override {
    if (i <= snap_index_ || i > LastIndex()) return std::nullopt;
    return EntryHash(entries_[i - snap_index_ - 1]);
  }

 private:
  std::vector<raftpb::Entry> entries_;
  uint64_t snap_index_, snap_term_;
};

TEST(InvariantsTest, ElectionSafety) {
  InvariantChecker c;
  VectorLog empty({});
  c.ObserveLeader(1, 5, empty);
  c.ObserveLeader(1, 5, empty);  // Seen again: fine.
  c.ObserveLeader(2, 6, empty);
  EXPECT_TRUE(c.ok());
  c.ObserveLeader(3, 5, empty);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.violation()->invariant, "election safety");
}

TEST(InvariantsTest, LeaderCompleteness) {
  InvariantChecker c;
  c.ObserveRestart(1, 0, 0, VectorLog({}));
  c.ObserveApplied(1, E(1, 1));
  c.ObserveApplied(1, E(2, 2));
  c.ObserveLeader(2, 3, VectorLog({E(1, 1), E(2, 2), E(3, 3)}));
  c.ObserveLeader(3, 4, VectorLog({E(1, 1)}, /*snap_index=*/0));  // Lacks committed entry 2.
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.violation()->invariant, "leader completeness");
}

TEST(InvariantsTest, LeaderCompletenessAcceptsCompactedEntries) {
  InvariantChecker c;
  c.ObserveRestart(1, 0, 0, VectorLog({}));
  c.ObserveApplied(1, E(1, 1));
  c.ObserveApplied(1, E(2, 2));
  c.ObserveLeader(2, 3, VectorLog({E(3, 3)}, /*snap_index=*/2, /*snap_term=*/2));
  EXPECT_TRUE(c.ok());
}

TEST(InvariantsTest, LogMatching) {
  InvariantChecker c;
  VectorLog a({E(1, 1), E(2, 1)});
  c.ObserveStored(1, {E(1, 1), E(2, 1)}, a);
  VectorLog b({E(1, 1), E(2, 1, "other")});
  c.ObserveStored(2, {E(2, 1, "other")}, b);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.violation()->invariant, "log matching");
}

TEST(InvariantsTest, LogMatchingComparesPredecessors) {
  InvariantChecker c;
  c.ObserveStored(1, {E(1, 1), E(2, 2)}, VectorLog({E(1, 1), E(2, 2)}));
  // Same (2, 2) entry, but after an entry of another term.
  c.ObserveStored(2, {E(1, 2), E(2, 2)}, VectorLog({E(1, 2), E(2, 2)}));
  EXPECT_FALSE(c.ok());
}

TEST(InvariantsTest, FullLogComparison) {
  InvariantChecker c;
  VectorLog a({E(1, 1), E(2, 1), E(3, 2)});
  VectorLog b({E(1, 1), E(2, 1), E(3, 3)});  // Diverges at 3 only: fine.
  VectorLog bad({E(1, 1), E(2, 1, "forged"), E(3, 2)});
  c.CheckLogs({{1, &a}, {2, &b}});
  EXPECT_TRUE(c.ok());
  c.CheckLogs({{1, &a}, {3, &bad}});
  EXPECT_FALSE(c.ok());
}

TEST(InvariantsTest, LeaderAppendOnly) {
  InvariantChecker c;
  VectorLog log({E(1, 1), E(2, 3)});
  c.ObserveBeforeStore(1, /*leader_term=*/3, {E(2, 3, "x2t3"), E(3, 3)}, log);  // Same entry.
  c.ObserveBeforeStore(1, 4, {E(2, 4)}, log);  // Replaces an older term: allowed.
  EXPECT_TRUE(c.ok());
  c.ObserveBeforeStore(1, 3, {E(2, 2)}, log);
  EXPECT_FALSE(c.ok());
}

TEST(InvariantsTest, StateMachineSafety) {
  InvariantChecker c;
  c.ObserveRestart(1, 0, 0, VectorLog({}));
  c.ObserveRestart(2, 0, 0, VectorLog({}));
  c.ObserveApplied(1, E(1, 1));
  c.ObserveApplied(2, E(1, 1));
  EXPECT_TRUE(c.ok());
  c.ObserveApplied(2, E(2, 1, "different"));
  c.ObserveApplied(1, E(2, 1));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.violation()->invariant, "state-machine safety");
}

TEST(InvariantsTest, ApplyingOutOfOrderIsCaught) {
  InvariantChecker c;
  c.ObserveRestart(1, 0, 0, VectorLog({}));
  c.ObserveApplied(1, E(1, 1));
  c.ObserveApplied(1, E(3, 1));
  EXPECT_FALSE(c.ok());
}

TEST(InvariantsTest, SnapshotStatesMustAgree) {
  InvariantChecker c;
  c.ObserveRestart(1, 0, 0, VectorLog({}));
  c.ObserveRestart(2, 0, 0, VectorLog({}));
  for (uint64_t i = 1; i <= 5; ++i) c.ObserveApplied(1, E(i, 1));
  c.ObserveSnapshotState(1, 5, 1, /*state_hash=*/42, /*restored=*/false);
  c.ObserveSnapshotState(2, 5, 1, 42, /*restored=*/true);
  EXPECT_TRUE(c.ok());
  c.ObserveApplied(2, E(6, 1));  // Continues after the snapshot.
  EXPECT_TRUE(c.ok());
  c.ObserveSnapshotState(3, 5, 1, 43, /*restored=*/true);
  EXPECT_FALSE(c.ok());
}

TEST(InvariantsTest, CommitIndexMayOnlyFallAcrossARestart) {
  InvariantChecker c;
  c.ObserveCommit(1, 5);
  c.ObserveCommit(1, 7);
  c.ObserveCrash(1);
  // The last commit-only hard state was never fsynced: restarting at 5 is fine.
  c.ObserveRestart(1, 5, 0, VectorLog({E(1, 1), E(2, 1), E(3, 1), E(4, 1), E(5, 1), E(6, 1)}));
  c.ObserveCommit(1, 5);
  EXPECT_TRUE(c.ok());
  c.ObserveCommit(1, 4);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.violation()->invariant, "no committed entry lost");
}

TEST(InvariantsTest, RestartWithALostCommittedEntry) {
  InvariantChecker c;
  c.ObserveRestart(2, 0, 0, VectorLog({}));
  c.ObserveApplied(2, E(1, 1));
  c.ObserveApplied(2, E(2, 1));
  // Member 1 comes back claiming commit 2 with a different entry 2 on disk.
  c.ObserveRestart(1, 2, 0, VectorLog({E(1, 1), E(2, 1, "other")}));
  EXPECT_FALSE(c.ok());
  InvariantChecker d;
  d.ObserveRestart(1, 3, 0, VectorLog({E(1, 1)}));  // Commit beyond the durable log.
  EXPECT_FALSE(d.ok());
}

TEST(InvariantsTest, CommittedEntryMustIntersectEveryQuorum) {
  auto check = [](size_t voters, size_t holders) {
    InvariantChecker c;
    c.ObserveRestart(1, 0, 0, VectorLog({}));
    c.ObserveApplied(1, E(1, 1));
    std::map<uint64_t, VectorLog> logs;
    std::vector<uint64_t> ids;
    for (uint64_t id = 1; id <= voters; ++id) {
      ids.push_back(id);
      logs.emplace(id, id <= holders ? VectorLog({E(1, 1)}) : VectorLog({}));
    }
    c.CheckCommittedDurable(ids, [&](uint64_t id) -> const LogView* { return &logs.at(id); });
    return c.ok();
  };
  EXPECT_TRUE(check(3, 2));
  EXPECT_FALSE(check(3, 1));
  EXPECT_TRUE(check(4, 2));  // Any quorum of 3 out of 4 meets one of the two holders.
  EXPECT_FALSE(check(5, 2));
  EXPECT_TRUE(check(5, 3));
  EXPECT_TRUE(check(1, 1));
}

}  // namespace
}  // namespace shoal::raft::sim
