// Raft paper §7 (log compaction): the leader sends a snapshot when a follower needs compacted
// entries; the follower restores it; the leader resumes replication after the driver reports
// the snapshot's fate — plus slow followers catching up across compaction end to end.
#include "gtest/gtest.h"
#include "raft/core/cluster_test_util.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

const raftpb::Snapshot kTestSnap = Snap(11, 11, CS({1, 2}));

// A leader of 1,2 whose storage starts from kTestSnap.
Peer SnapLeader() {
  Peer p;
  p.storage = std::make_unique<MemoryStorage>();
  EXPECT_TRUE(p.storage->ApplySnapshot(kTestSnap).ok());
  p.raft = NewRaft(NewConfig(1, 10, 1, p.storage.get()));
  p.raft->BecomeCandidate();
  p.raft->BecomeLeader();
  p.raft->TakeMessages();
  return p;
}

TEST(SnapshotTest, SendingSnapshotSetsPendingSnapshot) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  // Force 2 to need compacted entries.
  r.tracker().Get(2)->set_next(r.raft_log().FirstIndex());
  Message rej = Msg(2, 1, kAppResp, r.term());
  rej.set_index(r.tracker().Get(2)->next() - 1);
  rej.set_reject(true);
  ASSERT_TRUE(r.Step(rej).ok());
  EXPECT_EQ(r.tracker().Get(2)->state(), ProgressState::kSnapshot);
  EXPECT_EQ(r.tracker().Get(2)->pending_snapshot(), 11u);
  auto snaps = OfType(r.TakeMessages(), kSnap);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].snapshot().metadata().index(), 11u);
}

TEST(SnapshotTest, PendingSnapshotPausesReplication) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  r.tracker().Get(2)->BecomeSnapshot(11);
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_TRUE(r.TakeMessages().empty());
}

TEST(SnapshotTest, SnapshotFailureProbesFromMatch) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  r.tracker().Get(2)->set_next(1);
  r.tracker().Get(2)->BecomeSnapshot(11);
  Message st = Msg(2, 1, kSnapStatus);
  st.set_reject(true);
  ASSERT_TRUE(r.Step(st).ok());
  const Progress& pr = *r.tracker().Get(2);
  EXPECT_EQ(pr.state(), ProgressState::kProbe);
  EXPECT_EQ(pr.pending_snapshot(), 0u);
  EXPECT_EQ(pr.next(), 1u);
  EXPECT_TRUE(pr.probe_sent()) << "wait a heartbeat before retrying";
}

TEST(SnapshotTest, SnapshotSucceedProbesAfterSnapshot) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  r.tracker().Get(2)->set_next(1);
  r.tracker().Get(2)->BecomeSnapshot(11);
  Message st = Msg(2, 1, kSnapStatus);
  ASSERT_TRUE(r.Step(st).ok());
  const Progress& pr = *r.tracker().Get(2);
  EXPECT_EQ(pr.state(), ProgressState::kProbe);
  EXPECT_EQ(pr.next(), 12u);
  EXPECT_TRUE(pr.probe_sent());
  // A status for a member not in Snapshot state is ignored.
  Message again = Msg(2, 1, kSnapStatus);
  again.set_reject(true);
  ASSERT_TRUE(r.Step(again).ok());
  EXPECT_EQ(r.tracker().Get(2)->next(), 12u);
}

// An acknowledgement at or past the snapshot ends the Snapshot state at once (the snapshot
// arrived even if the driver has not reported it yet).
TEST(SnapshotTest, AppRespPastSnapshotResumesReplication) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  r.tracker().Get(2)->set_next(1);
  r.tracker().Get(2)->BecomeSnapshot(11);
  Message ack = Msg(2, 1, kAppResp, r.term());
  ack.set_index(11);
  ASSERT_TRUE(r.Step(ack).ok());
  EXPECT_EQ(r.tracker().Get(2)->state(), ProgressState::kReplicate);
  EXPECT_EQ(r.tracker().Get(2)->match(), 11u);
  // And the leader streams what follows.
  auto apps = OfType(r.TakeMessages(), kApp);
  ASSERT_FALSE(apps.empty());
  EXPECT_EQ(apps[0].index(), 11u);
}

// The leader does not spend a snapshot on a member it has not heard from recently.
TEST(SnapshotTest, NoSnapshotToInactiveMember) {
  Peer p = SnapLeader();
  Raft& r = *p.raft;
  Progress& pr = *r.tracker().Get(2);
  pr.set_recent_active(false);
  pr.set_next(5);  // compacted
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_TRUE(OfType(r.TakeMessages(), kSnap).empty());
  EXPECT_EQ(pr.state(), ProgressState::kProbe);
}

TEST(SnapshotTest, FollowerRestoresSnapshot) {
  Peer p = NewPeer(2, {1, 2});
  Raft& r = *p.raft;
  Message m = Msg(1, 2, kSnap, 2);
  *m.mutable_snapshot() = Snap(11, 11, CS({1, 2, 3}, {4}));
  ASSERT_TRUE(r.Step(m).ok());
  EXPECT_EQ(r.raft_log().LastIndex(), 11u);
  EXPECT_EQ(r.raft_log().committed(), 11u);
  EXPECT_EQ(*r.raft_log().Term(11), 11u);
  EXPECT_EQ(r.tracker().voters(), (std::set<uint64_t>{1, 2, 3}));
  EXPECT_EQ(r.tracker().learners(), (std::set<uint64_t>{4}));
  EXPECT_EQ(r.lead(), 1u);
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kAppResp);
  EXPECT_EQ(msgs[0].index(), 11u);
  // An older or equal snapshot is ignored; the answer names the commit index.
  Message old = Msg(1, 2, kSnap, 2);
  *old.mutable_snapshot() = Snap(10, 10, CS({1}));
  ASSERT_TRUE(r.Step(old).ok());
  EXPECT_EQ(r.tracker().voters().size(), 3u);
  msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].index(), 11u);
}

// A snapshot whose last entry the follower already has only moves its commit index.
TEST(SnapshotTest, RestoreFastForwardsCommitWhenLogMatches) {
  auto s = NewStorage({1, 2});
  ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 1}, {3, 1}})).ok());
  auto r = NewRaft(NewConfig(2, 10, 1, s.get()));
  r->BecomeFollower(1, 1);
  EXPECT_FALSE(r->Restore(Snap(2, 1, CS({1, 2}))));
  EXPECT_EQ(r->raft_log().committed(), 2u);
  EXPECT_EQ(r->raft_log().LastIndex(), 3u) << "entries after the snapshot are kept";
  EXPECT_FALSE(r->raft_log().UnstableSnapshot().has_value());
}

// A snapshot taken before this member was added is accepted: the entry adding it follows in
// the log.
TEST(SnapshotTest, RestoreSnapshotWithoutSelf) {
  MemoryStorage s;
  auto r = NewRaft(NewConfig(4, 10, 1, &s));
  Message m = Msg(1, 4, kSnap, 3);
  *m.mutable_snapshot() = Snap(20, 3, CS({1, 2, 3}));
  ASSERT_TRUE(r->Step(m).ok());
  EXPECT_EQ(r->raft_log().committed(), 20u);
  EXPECT_FALSE(r->Promotable());
}

// The driver's view: the snapshot comes out of a Ready, applied becomes its index.
TEST(SnapshotTest, ReadyCarriesSnapshotAndAdvanceAppliesIt) {
  MemoryStorage s;
  ASSERT_TRUE(s.SetInitialConfState(CS({1, 2})).ok());
  Config c = NewConfig(2, 10, 1, &s);
  auto rn = RawNode::Create(c);
  ASSERT_TRUE(rn.ok());
  Message m = Msg(1, 2, kSnap, 2);
  *m.mutable_snapshot() = Snap(11, 11, CS({1, 2}), "state");
  ASSERT_TRUE((*rn)->Step(m).ok());
  ASSERT_TRUE((*rn)->HasReady());
  Ready rd = (*rn)->GetReady();
  EXPECT_EQ(rd.snapshot.metadata().index(), 11u);
  EXPECT_EQ(rd.snapshot.data(), "state");
  EXPECT_TRUE(rd.committed_entries.empty());
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit(), 11u);
  ASSERT_TRUE(s.ApplySnapshot(rd.snapshot).ok());
  ASSERT_TRUE(s.SetHardState(*rd.hard_state).ok());
  (*rn)->Advance(rd);
  EXPECT_EQ((*rn)->GetStatus().applied, 11u);
  EXPECT_FALSE((*rn)->HasReady());
}

// A storage whose snapshot is being built answers SnapshotTemporarilyUnavailable; the leader
// then simply tries again later.
class UnavailableSnapshotStorage : public MemoryStorage {
 public:
  absl::StatusOr<raftpb::Snapshot> GetSnapshot() const override {
    return ErrSnapshotTemporarilyUnavailable();
  }
};

TEST(SnapshotTest, SnapshotTemporarilyUnavailable) {
  UnavailableSnapshotStorage s;
  ASSERT_TRUE(s.ApplySnapshot(kTestSnap).ok());
  auto r = NewRaft(NewConfig(1, 10, 1, &s));
  r->BecomeCandidate();
  r->BecomeLeader();
  r->TakeMessages();
  r->tracker().Get(2)->set_next(5);
  r->tracker().Get(2)->set_recent_active(true);
  ASSERT_TRUE(r->Step(Prop(1)).ok());
  EXPECT_TRUE(OfType(r->TakeMessages(), kSnap).empty());
  EXPECT_EQ(r->tracker().Get(2)->state(), ProgressState::kProbe);
}

// Restarting from a storage that holds a snapshot: the log starts after it.
TEST(SnapshotTest, RestartFromSnapshotStorage) {
  MemoryStorage s;
  ASSERT_TRUE(s.ApplySnapshot(Snap(10, 3, CS({1, 2}))).ok());
  ASSERT_TRUE(s.Append(Ents({{11, 3}, {12, 4}})).ok());
  ASSERT_TRUE(s.SetHardState(HS(4, 2, 11)).ok());
  auto r = NewRaft(NewConfig(1, 10, 1, &s));
  EXPECT_EQ(r->raft_log().FirstIndex(), 11u);
  EXPECT_EQ(r->raft_log().LastIndex(), 12u);
  EXPECT_EQ(r->raft_log().committed(), 11u);
  EXPECT_EQ(r->raft_log().applied(), 10u);
  EXPECT_EQ(r->term(), 4u);
  EXPECT_EQ(r->vote(), 2u);
  EXPECT_EQ(r->tracker().voters().size(), 2u);
  auto next = r->raft_log().NextCommittedEntries();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].index(), 11u);
}

TEST(SnapshotTest, CreateRejectsCommitOutOfRange) {
  MemoryStorage s;
  ASSERT_TRUE(s.Append(Ents({{1, 1}})).ok());
  ASSERT_TRUE(s.SetHardState(HS(1, 0, 5)).ok());
  auto r = Raft::Create(NewConfig(1, 10, 1, &s));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

// End to end: a follower down while the others compact their logs catches up from a snapshot,
// then from the log.
TEST(SnapshotTest, SlowFollowerCatchesUpFromSnapshot) {
  Cluster c({.size = 3, .snapshot_every = 10, .compaction_slack = 2});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  const uint64_t slow = l == 3 ? 2 : 3;
  c.Crash(slow);
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(c.Propose(l, "e" + std::to_string(i)).ok());
    c.Stabilize();
  }
  ASSERT_GT(c.node(l).storage->FirstIndex(), 10u) << "the leader compacted its log";
  c.Restart(slow, /*keep_state_machine=*/true);
  for (int i = 0; i < 20; ++i) {
    c.TickAll();
    c.Stabilize();
  }
  EXPECT_EQ(c.node(slow).state, c.node(l).state);
  EXPECT_EQ(c.node(slow).state.size(), 50u);
  EXPECT_GT(c.node(slow).storage->FirstIndex(), 1u) << "it installed a snapshot";
  // And it follows the log afterwards.
  ASSERT_TRUE(c.Propose(l, "after").ok());
  c.Stabilize();
  EXPECT_EQ(c.node(slow).state.back(), "after");
  c.CheckLogMatching();
}

// A snapshot lost in transit (reported as failed) is retried.
TEST(SnapshotTest, LostSnapshotIsRetried) {
  Cluster c({.size = 3, .snapshot_every = 5});
  uint64_t l = c.WaitForLeader();
  const uint64_t slow = l == 3 ? 2 : 3;
  c.Isolate(slow);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.Propose(l, "e" + std::to_string(i)).ok());
    c.Stabilize();
  }
  // Snapshots to `slow` are dropped while it is isolated (and reported failed).
  for (int i = 0; i < 5; ++i) {
    c.TickAll();
    c.Stabilize();
  }
  c.Heal();
  for (int i = 0; i < 30; ++i) {
    c.TickAll();
    c.Stabilize();
  }
  EXPECT_EQ(c.node(slow).state, c.node(l).state);
}

// A compacted and restarted member rebuilds its state from its own snapshot plus its log.
TEST(SnapshotTest, RestartAfterCompactionRebuildsState) {
  Cluster c({.size = 3, .snapshot_every = 7, .compaction_slack = 1});
  uint64_t l = c.WaitForLeader();
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(c.Propose(l, "e" + std::to_string(i)).ok());
    c.Stabilize();
  }
  const auto before = c.node(l).state;
  for (uint64_t id : Ids(3)) c.Crash(id);
  for (uint64_t id : Ids(3)) c.Restart(id, /*keep_state_machine=*/false);
  l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  c.Stabilize();
  for (uint64_t id : Ids(3)) EXPECT_EQ(c.node(id).state, before) << id;
}

}  // namespace
}  // namespace shoal::raft
