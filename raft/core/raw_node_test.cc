// RawNode: the driver's contract — Create/restart from Storage, Step filtering, the Ready /
// Advance cycle (what is in a Ready, when must_sync is set, when HasReady is true), proposals,
// conf changes and status.
#include "raft/core/raw_node.h"

#include "gtest/gtest.h"
#include "raft/core/raft.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

std::unique_ptr<RawNode> NewRawNode(uint64_t id, MemoryStorage* s, const ConfigTweak& t = nullptr) {
  Config c = NewConfig(id, 10, 1, s);
  if (t) t(c);
  auto rn = RawNode::Create(c);
  EXPECT_TRUE(rn.ok()) << rn.status();
  return rn.ok() ? *std::move(rn) : nullptr;
}

// Persists a Ready into s like a driver would, then advances.
void Handle(RawNode& rn, MemoryStorage& s, const Ready& rd) {
  if (rd.snapshot.metadata().index() != 0) {
    ASSERT_TRUE(s.ApplySnapshot(rd.snapshot).ok());
  }
  ASSERT_TRUE(s.Append(rd.entries).ok());
  if (rd.hard_state) {
    ASSERT_TRUE(s.SetHardState(*rd.hard_state).ok());
  }
  for (const auto& e : rd.committed_entries) {
    if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) {
      raftpb::ConfChange cc;
      ASSERT_TRUE(cc.ParseFromString(e.data()));
      rn.ApplyConfChange(cc);
    }
  }
  rn.Advance(rd);
}

void Drain(RawNode& rn, MemoryStorage& s) {
  for (int i = 0; i < 100 && rn.HasReady(); ++i) Handle(rn, s, rn.GetReady());
}

TEST(RawNodeTest, CreateValidatesConfig) {
  MemoryStorage s;
  Config c;
  c.storage = &s;
  EXPECT_FALSE(RawNode::Create(c).ok()) << "id 0";
  c.id = 1;
  c.election_tick = 1;
  c.heartbeat_tick = 1;
  EXPECT_FALSE(RawNode::Create(c).ok()) << "election <= heartbeat";
  c.election_tick = 10;
  c.max_inflight_msgs = 0;
  EXPECT_FALSE(RawNode::Create(c).ok());
  c.max_inflight_msgs = 1;
  c.storage = nullptr;
  EXPECT_FALSE(RawNode::Create(c).ok());
  c.storage = &s;
  EXPECT_TRUE(RawNode::Create(c).ok());
  c.applied = 5;
  EXPECT_FALSE(RawNode::Create(c).ok()) << "applied beyond commit";
}

TEST(RawNodeTest, StepRejectsLocalMessagesAndUnknownResponders) {
  auto s = NewStorage({1});
  auto rn = NewRawNode(1, s.get());
  for (auto t : {kHup, kBeat, kUnreachable, kSnapStatus, kCheckQuorum}) {
    EXPECT_EQ(rn->Step(Msg(1, 1, t)).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(rn->Step(Msg(9, 1, kAppResp, 1)).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(rn->Step(Msg(9, 1, kApp, 1)).ok()) << "requests from unknown peers are fine";
}

// A single-member cluster: campaign, propose, and see everything flow through Ready.
TEST(RawNodeTest, ReadyCycleSingleNode) {
  auto s = NewStorage({1});
  auto rn = NewRawNode(1, s.get());
  EXPECT_FALSE(rn->HasReady());
  ASSERT_TRUE(rn->Campaign().ok());
  ASSERT_TRUE(rn->HasReady());
  Ready rd = rn->GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->raft_state, StateType::kLeader);
  EXPECT_EQ(rd.soft_state->lead, 1u);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term(), 1u);
  EXPECT_EQ(rd.hard_state->vote(), 1u);
  EXPECT_EQ(rd.hard_state->commit(), 1u);
  ASSERT_EQ(rd.entries.size(), 1u);
  ASSERT_EQ(rd.committed_entries.size(), 1u) << "committed together with being appended";
  EXPECT_TRUE(rd.must_sync);
  Handle(*rn, *s, rd);
  EXPECT_FALSE(rn->HasReady());

  ASSERT_TRUE(rn->Propose("foo").ok());
  rd = rn->GetReady();
  EXPECT_FALSE(rd.soft_state.has_value()) << "unchanged";
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].data(), "foo");
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].data(), "foo");
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit(), 2u);
  EXPECT_TRUE(rd.must_sync) << "entries";
  Handle(*rn, *s, rd);
  EXPECT_FALSE(rn->HasReady());
  EXPECT_EQ(rn->GetStatus().applied, 2u);
  EXPECT_EQ(s->LastIndex(), 2u);
}

// must_sync: entries or a term/vote change require fsync; a commit-only change does not.
TEST(RawNodeTest, MustSyncOnlyForEntriesTermOrVote) {
  auto s = NewStorage({1, 2});
  auto rn = NewRawNode(2, s.get());
  // A vote: must sync.
  Message v = Msg(1, 2, kVote, 1);
  ASSERT_TRUE(rn->Step(v).ok());
  Ready rd = rn->GetReady();
  EXPECT_TRUE(rd.must_sync);
  Handle(*rn, *s, rd);
  // Entries: must sync.
  Message app = Msg(1, 2, kApp, 1);
  *app.add_entries() = Ent(1, 1);
  ASSERT_TRUE(rn->Step(app).ok());
  rd = rn->GetReady();
  EXPECT_TRUE(rd.must_sync);
  Handle(*rn, *s, rd);
  // Only the commit index moves: no sync needed.
  Message hb = Msg(1, 2, kHeartbeat, 1);
  hb.set_commit(1);
  ASSERT_TRUE(rn->Step(hb).ok());
  rd = rn->GetReady();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit(), 1u);
  EXPECT_FALSE(rd.must_sync);
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  Handle(*rn, *s, rd);
}

// Messages appear in Ready only once; read states too.
TEST(RawNodeTest, ReadyIsConsumedOnce) {
  auto s = NewStorage({1, 2});
  auto rn = NewRawNode(1, s.get());
  ASSERT_TRUE(rn->Campaign().ok());
  Ready rd = rn->GetReady();
  EXPECT_EQ(OfType(rd.messages, kVote).size(), 1u);
  Handle(*rn, *s, rd);
  EXPECT_FALSE(rn->HasReady());
}

// Restart: term, vote, commit and membership come back from Storage, and entries up to
// Config::applied are not re-delivered.
TEST(RawNodeTest, RestartFromStorage) {
  auto s = NewStorage({1, 2, 3});
  ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 1}, {3, 2}})).ok());
  ASSERT_TRUE(s->SetHardState(HS(2, 3, 3)).ok());
  auto rn = NewRawNode(1, s.get(), [](Config& c) { c.applied = 1; });
  Status st = rn->GetStatus();
  EXPECT_EQ(st.hard_state.term(), 2u);
  EXPECT_EQ(st.hard_state.vote(), 3u);
  EXPECT_EQ(st.hard_state.commit(), 3u);
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.conf_state.voters_size(), 3);
  ASSERT_TRUE(rn->HasReady());
  Ready rd = rn->GetReady();
  EXPECT_FALSE(rd.hard_state.has_value()) << "nothing changed since the stored hard state";
  EXPECT_FALSE(rd.must_sync);
  EXPECT_TRUE(rd.entries.empty());
  ASSERT_EQ(rd.committed_entries.size(), 2u);
  EXPECT_EQ(rd.committed_entries[0].index(), 2u);
  Handle(*rn, *s, rd);
  EXPECT_FALSE(rn->HasReady());
}

// Restarted with Config::applied past CONF_CHANGE entries, the membership includes them
// (learners too).
TEST(RawNodeTest, RestartReplaysAppliedConfChanges) {
  auto s = NewStorage({1});
  std::vector<Entry> ents;
  for (auto [cc, idx] : std::vector<std::pair<raftpb::ConfChange, uint64_t>>{
           {CC(raftpb::CONF_CHANGE_TYPE_ADD_NODE, 2), 1},
           {CC(raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE, 3), 2},
           {CC(raftpb::CONF_CHANGE_TYPE_ADD_NODE, 4), 3}}) {
    Entry e = ConfEntry(cc);
    e.set_index(idx);
    e.set_term(1);
    ents.push_back(e);
  }
  ASSERT_TRUE(s->Append(ents).ok());
  ASSERT_TRUE(s->SetHardState(HS(1, 0, 3)).ok());
  auto rn = NewRawNode(3, s.get(), [](Config& c) { c.applied = 2; });
  Status st = rn->GetStatus();
  EXPECT_EQ(st.conf_state.voters_size(), 2) << "index 3 is not applied yet";
  EXPECT_EQ(st.conf_state.learners_size(), 1);
  EXPECT_TRUE(rn->raft().is_learner());
  Ready rd = rn->GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  Handle(*rn, *s, rd);
  EXPECT_EQ(rn->GetStatus().conf_state.voters_size(), 3);
}

TEST(RawNodeTest, ProposeConfChangeAndApply) {
  auto s = NewStorage({1});
  auto rn = NewRawNode(1, s.get());
  ASSERT_TRUE(rn->Campaign().ok());
  Drain(*rn, *s);
  ASSERT_TRUE(rn->ProposeConfChange(CC(raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE, 2)).ok());
  Ready rd = rn->GetReady();
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  EXPECT_EQ(rd.committed_entries[0].type(), raftpb::ENTRY_TYPE_CONF_CHANGE);
  Handle(*rn, *s, rd);
  Status st = rn->GetStatus();
  EXPECT_EQ(st.conf_state.learners_size(), 1);
  ASSERT_EQ(st.progress.count(2), 1u);
  EXPECT_TRUE(st.progress[2].is_learner);
  EXPECT_EQ(st.progress[1].state, ProgressState::kReplicate);
}

TEST(RawNodeTest, ProposeWithoutLeaderIsDropped) {
  auto s = NewStorage({1, 2, 3});
  auto rn = NewRawNode(1, s.get());
  EXPECT_TRUE(IsProposalDropped(rn->Propose("x")));
  EXPECT_FALSE(IsProposalDropped(absl::FailedPreconditionError("other")));
}

TEST(RawNodeTest, StatusOnFollowerHasNoProgress) {
  auto s = NewStorage({1, 2, 3});
  auto rn = NewRawNode(2, s.get());
  ASSERT_TRUE(rn->Step(Msg(1, 2, kHeartbeat, 3)).ok());
  Status st = rn->GetStatus();
  EXPECT_EQ(st.id, 2u);
  EXPECT_EQ(st.soft_state.lead, 1u);
  EXPECT_EQ(st.soft_state.raft_state, StateType::kFollower);
  EXPECT_TRUE(st.progress.empty());
  EXPECT_EQ(rn->id(), 2u);
}

// Ready's committed entries are bounded by max_committed_size_per_ready; the rest follow in the
// next Ready.
TEST(RawNodeTest, CommittedEntriesPagedAcrossReadies) {
  auto s = NewStorage({1});
  ASSERT_TRUE(s->Append(Ents({{1, 1}, {2, 1}, {3, 1}, {4, 1}})).ok());
  ASSERT_TRUE(s->SetHardState(HS(1, 1, 4)).ok());
  auto rn = NewRawNode(1, s.get(), [](Config& c) { c.max_committed_size_per_ready = 0; });
  for (uint64_t want = 1; want <= 4; ++want) {
    ASSERT_TRUE(rn->HasReady());
    Ready rd = rn->GetReady();
    ASSERT_EQ(rd.committed_entries.size(), 1u);
    EXPECT_EQ(rd.committed_entries[0].index(), want);
    Handle(*rn, *s, rd);
  }
  EXPECT_FALSE(rn->HasReady());
}

// Soft state changes (leader known / lost) are reported once.
TEST(RawNodeTest, SoftStateReportedOnChange) {
  auto s = NewStorage({1, 2});
  auto rn = NewRawNode(2, s.get());
  ASSERT_TRUE(rn->Step(Msg(1, 2, kHeartbeat, 1)).ok());
  Ready rd = rn->GetReady();
  ASSERT_TRUE(rd.soft_state.has_value());
  EXPECT_EQ(rd.soft_state->lead, 1u);
  Handle(*rn, *s, rd);
  ASSERT_TRUE(rn->Step(Msg(1, 2, kHeartbeat, 1)).ok());
  rd = rn->GetReady();
  EXPECT_FALSE(rd.soft_state.has_value());
  Handle(*rn, *s, rd);
}

TEST(RawNodeTest, ReportUnreachableAndSnapshotAreSafeAnywhere) {
  auto s = NewStorage({1, 2});
  auto rn = NewRawNode(1, s.get());
  rn->ReportUnreachable(2);
  rn->ReportSnapshot(2, true);
  rn->ReportUnreachable(9);
  rn->TransferLeader(2);  // no leader: dropped
  rn->ReadIndex("x");     // no leader: dropped
  EXPECT_FALSE(rn->HasReady());
}

TEST(RawNodeTest, BootstrapSingleNode) {
  MemoryStorage s;
  auto rn = NewRawNode(1, &s);
  ASSERT_TRUE(rn->Bootstrap(std::vector<uint64_t>{1}).ok());
  Ready rd = rn->GetReady();
  ASSERT_EQ(rd.entries.size(), 1u);
  ASSERT_EQ(rd.committed_entries.size(), 1u);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term(), 1u);
  EXPECT_EQ(rd.hard_state->commit(), 1u);
  Handle(*rn, s, rd);
  ASSERT_TRUE(rn->Campaign().ok());
  Drain(*rn, s);
  EXPECT_EQ(rn->GetStatus().soft_state.raft_state, StateType::kLeader);
  EXPECT_EQ(rn->GetStatus().hard_state.term(), 2u);
  EXPECT_FALSE(rn->Bootstrap(std::vector<uint64_t>{1}).ok());
  EXPECT_FALSE(NewRawNode(2, &s)->Bootstrap(std::vector<uint64_t>{}).ok());
}

}  // namespace
}  // namespace shoal::raft
