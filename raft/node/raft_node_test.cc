// RaftNode with real transports on loopback and durable logs on disk (tick 20 ms to keep the
// tests quick; the protocol logic itself is covered by raft/core and raft/sim).
#include "raft/node/raft_node.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "raft/node/test_cluster.h"
#include "raft/storage/test_key_ring.h"
#include "spdlog/spdlog.h"

namespace shoal::raft::testing {
namespace {

using ::shoal::raft::testing::TestKeyRing;

RaftNodeOptions FastOptions() {
  RaftNodeOptions o;
  o.tick_interval = absl::Milliseconds(20);
  o.election_tick = 5;
  return o;
}

absl::Time In(absl::Duration d) { return absl::Now() + d; }

class DebugLogging : public ::testing::Environment {
 public:
  void SetUp() override {
    if (std::getenv("SHOAL_TEST_DEBUG") != nullptr)
      spdlog::set_level(std::string(std::getenv("SHOAL_TEST_DEBUG")) == "trace"
                            ? spdlog::level::trace
                            : spdlog::level::debug);
  }
};
const auto* const kDebugLogging = ::testing::AddGlobalTestEnvironment(new DebugLogging);

TEST(RaftNodeTest, ThreeMembersElectALeaderAndReplicate) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  absl::StatusOr<std::string> r = c.node(lead).Propose("a=1", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "");  // no previous value
  r = c.node(lead).Propose("a=2", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "1");
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->Get("a"), "2") << "member " << id << "\n" << c.Describe();
  }
  EXPECT_EQ(c.node(lead).GetInfo().members.size(), 3u);
  // The lock-free accessors agree with the published Info (the proposer woke after publishing).
  EXPECT_EQ(c.node(lead).Leader(), lead);
  EXPECT_EQ(c.node(lead).Term(), c.node(lead).GetInfo().term);
}

TEST(RaftNodeTest, ProposalOnFollowerIsForwardedToTheLeader) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t follower = lead == 1 ? 2 : 1;
  absl::StatusOr<std::string> r = c.node(follower).Propose("k=v", In(absl::Seconds(5)));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(c.member(follower).kv->Get("k"), "v");
}

TEST(RaftNodeTest, ManyConcurrentProposalsAllApplyOnce) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (c.node(lead).Propose(absl::StrCat("t", t, "-", i, "=x"), In(absl::Seconds(10))).ok()) {
          ++ok;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) EXPECT_EQ(c.member(id).kv->size(), size_t{kThreads * kEach});
}

TEST(RaftNodeTest, LeaderStopElectsANewLeaderAndKeepsEveryAcknowledgedWrite) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  for (int round = 0; round < 3; ++round) {
    const uint64_t lead = c.WaitForLeader();
    ASSERT_NE(lead, 0u) << "round " << round;
    ASSERT_TRUE(c.Put(absl::StrCat("round", round), "done").ok());
    c.StopMember(lead);
    const uint64_t next = c.WaitForLeader();
    ASSERT_NE(next, 0u) << c.Describe();
    ASSERT_NE(next, lead);
    ASSERT_TRUE(c.Put(absl::StrCat("after", round), "done").ok());
    c.RestartMember(lead);
  }
  ASSERT_NE(c.WaitForLeader(), 0u);
  ASSERT_TRUE(c.Put("final", "x").ok());
  const uint64_t lead = c.WaitForLeader();
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    for (int round = 0; round < 3; ++round) {
      EXPECT_EQ(c.member(id).kv->Get(absl::StrCat("round", round)), "done") << id;
      EXPECT_EQ(c.member(id).kv->Get(absl::StrCat("after", round)), "done") << id;
    }
  }
}

TEST(RaftNodeTest, RestartRecoversStateFromDiskIncludingSnapshots) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 20;
  o.log_entries_for_slow_followers = 5;
  TestCluster c(o);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), absl::StrCat(i)).ok());
  for (uint64_t id : c.ids()) c.StopMember(id);
  for (uint64_t id : c.ids()) c.RestartMember(id);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  EXPECT_GE(c.node(lead).GetInfo().snapshot_index, 20u);
  ASSERT_TRUE(c.Put("after-restart", "1").ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->size(), 61u) << id;
    EXPECT_EQ(c.member(id).kv->Get("k42"), "42") << id;
  }
}

TEST(RaftNodeTest, ASlowSnapshotDoesNotStallTheNode) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 20;
  o.log_entries_for_slow_followers = 5;
  TestCluster c(o);
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  for (uint64_t id : c.ids()) c.member(id).kv->HoldSnapshots(true);
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), "v").ok());
  // Every member captured a snapshot at 20 or more, and its serialisation now waits...
  const absl::Time deadline = In(absl::Seconds(10));
  for (uint64_t id : c.ids()) {
    while (c.member(id).kv->waiting() == 0 && absl::Now() < deadline)
      absl::SleepFor(absl::Milliseconds(2));
    ASSERT_EQ(c.member(id).kv->waiting(), 1) << "member " << id;
  }
  // ...while the group goes on committing, electing nobody new, and no snapshot is recorded.
  const uint64_t term = c.node(lead).GetInfo().term;
  for (int i = 25; i < 100; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), "v").ok());
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.node(id).GetInfo().snapshot_index, 0u) << id;
    EXPECT_EQ(c.member(id).kv->captures(), 1) << "one snapshot at a time; member " << id;
  }
  EXPECT_EQ(c.node(lead).GetInfo().term, term);
  for (uint64_t id : c.ids()) c.member(id).kv->HoldSnapshots(false);
  // The snapshot is recorded, and the next one follows.
  ASSERT_TRUE(c.Put("last", "v").ok());
  bool ticked = false;  // the snapshots may all be recorded before any tick is needed
  for (uint64_t id : c.ids()) {
    while (c.node(id).GetInfo().snapshot_index < 20 && absl::Now() < deadline + absl::Seconds(10)) {
      ASSERT_TRUE(c.Put("tick", "v").ok());
      ticked = true;
    }
    EXPECT_GE(c.node(id).GetInfo().snapshot_index, 20u) << id;
  }
  for (uint64_t id : c.ids()) c.StopMember(id);
  for (uint64_t id : c.ids()) c.RestartMember(id);
  ASSERT_NE(c.WaitForLeader(), 0u);
  ASSERT_TRUE(c.Put("after-restart", "1").ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(c.WaitForLeader()).GetInfo().applied));
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->size(), ticked ? 103u : 102u) << id;
    EXPECT_EQ(c.member(id).kv->Get("k99"), "v") << id;
  }
}

TEST(RaftNodeTest, LargeEntriesTriggerASnapshotBySize) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 1000000;  // never by count
  o.snapshot_bytes = 64 << 10;
  o.log_entries_for_slow_followers = 2;
  TestCluster c(o);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  const std::string big(8 << 10, 'x');
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), big).ok());  // 96 KiB
  const uint64_t lead = c.WaitForLeader();
  const absl::Time deadline = In(absl::Seconds(10));
  while (c.node(lead).GetInfo().snapshot_index == 0 && absl::Now() < deadline) {
    ASSERT_TRUE(c.Put("tick", "v").ok());
  }
  EXPECT_GT(c.node(lead).GetInfo().snapshot_index, 0u);
}

TEST(RaftNodeTest, ForceNewClusterRestartsALoneSurvivorWithAllCommittedData) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 20;
  o.log_entries_for_slow_followers = 5;
  TestCluster c(o);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), absl::StrCat(i)).ok());
  const uint64_t survivor = 2;
  ASSERT_TRUE(c.WaitForApplied(c.node(c.WaitForLeader()).GetInfo().commit));
  for (uint64_t id : c.ids()) c.StopMember(id);
  // Members 1 and 3 are lost for good: 2 alone has no quorum unless forced.
  c.RestartMemberAsNewCluster(survivor);
  ASSERT_EQ(c.WaitForLeader(), survivor) << c.Describe();
  const RaftNode::Info info = c.node(survivor).GetInfo();
  EXPECT_EQ(info.conf_state.voters_size(), 1) << c.Describe();
  EXPECT_EQ(info.members.size(), 1u);
  ASSERT_TRUE(c.Put("after-recovery", "1").ok()) << c.Describe();
  EXPECT_EQ(c.member(survivor).kv->size(), 31u);
  EXPECT_EQ(c.member(survivor).kv->Get("k29"), "29");
  // A plain restart afterwards stays a one-member cluster.
  c.StopMember(survivor);
  c.RestartMember(survivor);
  ASSERT_EQ(c.WaitForLeader(), survivor) << c.Describe();
  EXPECT_EQ(c.member(survivor).kv->Get("after-recovery"), "1");
}

TEST(RaftNodeTest, LaggingFollowerCatchesUpFromASnapshot) {
  RaftNodeOptions o = FastOptions();
  o.snapshot_interval = 10;
  o.log_entries_for_slow_followers = 2;
  TestCluster c(o);
  c.Bootstrap(3);
  uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t lagging = lead == 3 ? 2 : 3;
  c.StopMember(lagging);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.Put(absl::StrCat("k", i), "v").ok());
  lead = c.WaitForLeader();
  ASSERT_GT(c.node(lead).GetInfo().snapshot_index, 30u);
  c.RestartMember(lagging);
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied, absl::Seconds(15))) << c.Describe();
  EXPECT_EQ(c.member(lagging).kv->size(), 50u);
  EXPECT_GE(c.node(lagging).GetInfo().snapshot_index, 30u);  // installed, not replayed
}

TEST(RaftNodeTest, NewMemberJoinsAsLearnerIsPromotedAndAnotherIsRemoved) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  ASSERT_TRUE(c.Put("before", "join").ok());
  const uint64_t joiner = c.AddEmptyMember();
  ASSERT_TRUE(
      c.node(lead).AddMember(c.Identity(joiner), /*as_learner=*/true, In(absl::Seconds(5))).ok());
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  EXPECT_EQ(c.member(joiner).kv->Get("before"), "join");
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.learners_size(), 1);
  ASSERT_TRUE(
      c.node(lead).AddMember(c.Identity(joiner), /*as_learner=*/false, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.voters_size(), 4);
  const uint64_t victim = lead == 1 ? 2 : 1;
  ASSERT_TRUE(c.node(lead).RemoveMember(victim, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.node(lead).GetInfo().conf_state.voters_size(), 3);
  c.StopMember(victim);
  ASSERT_TRUE(c.Put("after", "remove").ok());
  lead = c.WaitForLeader();
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().applied));
  EXPECT_EQ(c.member(joiner).kv->Get("after"), "remove");
}

TEST(RaftNodeTest, MembershipChangeOnAFollowerNamesTheLeader) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t follower = lead == 1 ? 2 : 1;
  absl::Status s = c.node(follower).RemoveMember(lead, In(absl::Seconds(2)));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(absl::StrCat("leader is ", lead)), std::string::npos) << s;
}

TEST(RaftNodeTest, LeadershipTransfer) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  const uint64_t target = lead % 3 + 1;
  ASSERT_TRUE(c.node(lead).TransferLeadership(target, In(absl::Seconds(5))).ok());
  EXPECT_EQ(c.WaitForLeader(), target);
  ASSERT_TRUE(c.Put("after-transfer", "1").ok());
}

TEST(RaftNodeTest, LinearizableReadSeesEveryAcknowledgedWrite) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.node(lead).Propose(absl::StrCat("x=", i), In(absl::Seconds(5))).ok());
    // A read on any member after the write was acknowledged must see it.
    const uint64_t reader = i % 3 + 1;
    ASSERT_TRUE(c.node(reader).LinearizableRead(In(absl::Seconds(5))).ok());
    EXPECT_EQ(c.member(reader).kv->Get("x"), absl::StrCat(i)) << "reader " << reader;
  }
}

TEST(RaftNodeTest, ProposalWithoutQuorumTimesOutAndStopCancels) {
  TestCluster c(FastOptions());
  c.Bootstrap(3);
  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  for (uint64_t id : c.ids()) {
    if (id != lead) c.StopMember(id);
  }
  absl::StatusOr<std::string> r = c.node(lead).Propose("lost=1", In(absl::Milliseconds(300)));
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status()) || absl::IsUnavailable(r.status()))
      << r.status();
}

// ---- Key rotation: RaftNode::Reseal ----

// Files under `dir` holding bytes sealed by `tag` (TestKeyRing leaves a marker in the clear).
std::vector<std::string> FilesSealedBy(const std::string& dir, char tag) {
  std::vector<std::string> out;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (bytes.find(TestKeyRing::Marker(tag)) != std::string::npos) out.push_back(f.path());
  }
  return out;
}

// Puts w0, w1, ... through the cluster's leader, one after another, until stopped.
class BackgroundWriter {
 public:
  explicit BackgroundWriter(TestCluster* c)
      : thread_([this, c] {
          for (int i = 0; !stop_; ++i) {
            absl::Status s = c->Put(absl::StrCat("w", i), absl::StrCat(i));
            if (!s.ok()) {
              absl::MutexLock lock(&mu_);
              error_ = s;
              return;
            }
            acked_ = i + 1;
          }
        }) {}
  ~BackgroundWriter() { Stop().IgnoreError(); }

  // Waits until `n` puts were acknowledged; false at the deadline or if a put failed.
  bool WaitForAcked(int n, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (acked_ < n && error().ok() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return acked_ >= n;
  }
  // Stops after the put in flight; returns the first failure (OK if every put succeeded).
  absl::Status Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return error();
  }
  int acked() const { return acked_; }
  absl::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> acked_{0};
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // last: starts once the rest is built
};

TEST(RaftNodeTest, ResealWhileWritesContinueThenRestartWithOnlyTheNewKey) {
  RaftNodeOptions o = FastOptions();
  o.election_tick = 10;
  o.snapshot_interval = 400;  // snapshot files to reseal too
  o.log_entries_for_slow_followers = 100;
  TestCluster c(o);
  std::map<uint64_t, std::unique_ptr<TestKeyRing>> rings;
  for (uint64_t id = 1; id <= 3; ++id) {
    rings[id] = std::make_unique<TestKeyRing>("A");
    c.SetEncrypter(id, rings[id].get());
  }
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  BackgroundWriter writer(&c);
  ASSERT_TRUE(writer.WaitForAcked(500)) << writer.error() << "\n" << c.Describe();

  // Rotate every member, the leader first, while the writes go on.
  std::vector<uint64_t> order = {c.WaitForLeader()};
  for (uint64_t id : c.ids()) {
    if (id != order[0]) order.push_back(id);
  }
  for (uint64_t id : order) {
    SCOPED_TRACE(absl::StrCat("member ", id));
    EXPECT_GT(rings[id]->seals('A'), 0);
    EXPECT_FALSE(FilesSealedBy(c.member(id).dir, 'A').empty());
    rings[id]->AddKeyAndMakeCurrent('B');
    const int before = writer.acked();
    const absl::Time start = absl::Now();
    absl::Status s = c.node(id).Reseal(In(absl::Seconds(30)));
    ASSERT_TRUE(s.ok()) << s;
    std::cout << "member " << id << " ("
              << (c.node(id).GetInfo().state == StateType::kLeader ? "leader" : "follower")
              << ", log " << c.node(id).GetInfo().last_index - c.node(id).GetInfo().snapshot_index
              << " entries) resealed in " << absl::Now() - start << std::endl;
    EXPECT_EQ(FilesSealedBy(c.member(id).dir, 'A'), std::vector<std::string>());
    ASSERT_TRUE(writer.WaitForAcked(before + 100)) << writer.error() << "\n" << c.Describe();
  }
  ASSERT_TRUE(writer.Stop().ok()) << writer.error();
  const int acked = writer.acked();
  for (auto& [id, ring] : rings) ring->DropKey('A');

  const uint64_t lead = c.WaitForLeader();
  ASSERT_NE(lead, 0u);
  ASSERT_TRUE(c.WaitForApplied(c.node(lead).GetInfo().commit)) << c.Describe();
  const uint64_t applied = c.node(1).GetInfo().applied;
  for (uint64_t id : c.ids()) c.StopMember(id);

  // Member 1 alone, with only the new key: everything comes back from its own disk.
  ASSERT_TRUE(c.TryRestartMember(1).ok());
  const absl::Time deadline = In(absl::Seconds(10));
  while (c.node(1).GetInfo().applied < applied && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(c.node(1).GetInfo().applied, applied) << c.Describe();
  EXPECT_GT(c.node(1).GetInfo().snapshot_index, 0u);
  for (int i = 0; i < acked; ++i) {
    ASSERT_EQ(c.member(1).kv->Get(absl::StrCat("w", i)), absl::StrCat(i)) << "w" << i;
  }
  // The others too, and the cluster goes on.
  ASSERT_TRUE(c.TryRestartMember(2).ok());
  ASSERT_TRUE(c.TryRestartMember(3).ok());
  ASSERT_TRUE(c.Put("after-rotation", "1").ok()) << c.Describe();
  ASSERT_TRUE(c.WaitForApplied(c.node(c.WaitForLeader()).GetInfo().applied)) << c.Describe();
  for (uint64_t id : c.ids()) {
    EXPECT_EQ(c.member(id).kv->size(), static_cast<size_t>(acked) + 1) << id;
    EXPECT_EQ(c.member(id).kv->Get("after-rotation"), "1") << id;
  }
}

TEST(RaftNodeTest, LeaderResealsTenThousandEntriesAndKeepsServing) {
  RaftNodeOptions o = FastOptions();
  o.election_tick = 10;
  o.snapshot_interval = 1000000;  // all 10,000 entries stay in the log
  TestCluster c(o);
  TestKeyRing ring("A");
  const uint64_t lead_id = 1;
  c.SetEncrypter(lead_id, &ring);
  c.Bootstrap(3);
  ASSERT_NE(c.WaitForLeader(), 0u);
  if (c.WaitForLeader() != lead_id) {
    ASSERT_TRUE(c.node(c.WaitForLeader()).TransferLeadership(lead_id, In(absl::Seconds(10))).ok());
  }
  ASSERT_EQ(c.WaitForLeader(), lead_id);
  // 10,000 entries of ~200 bytes, proposed concurrently so that they batch.
  {
    absl::Mutex mu;
    int done = 0, failed = 0;
    for (int i = 0; i < 10000; ++i) {
      c.node(lead_id).ProposeAsync(absl::StrCat("fill", i, "=", std::string(190, 'x')),
                                   [&](absl::StatusOr<std::string> r) {
                                     absl::MutexLock lock(&mu);
                                     ++done;
                                     if (!r.ok()) ++failed;
                                   });
    }
    absl::MutexLock lock(&mu);
    auto all_done = [&]() { return done == 10000; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all_done), absl::Seconds(60)));
    ASSERT_EQ(failed, 0);
  }
  BackgroundWriter writer(&c);
  ASSERT_TRUE(writer.WaitForAcked(20)) << writer.error();
  ring.AddKeyAndMakeCurrent('B');
  const RaftNode::Info info = c.node(lead_id).GetInfo();
  ASSERT_GE(info.last_index - info.snapshot_index, 10000u);
  const absl::Time start = absl::Now();
  ASSERT_TRUE(c.node(lead_id).Reseal(In(absl::Seconds(30))).ok());
  const absl::Duration took = absl::Now() - start;
  std::cout << "leader resealed " << info.last_index - info.snapshot_index << " entries in " << took
            << std::endl;
  ::testing::Test::RecordProperty("reseal_10k_leader_ms",
                                  std::to_string(absl::ToInt64Milliseconds(took)));
  EXPECT_LT(took, absl::Seconds(10));  // generous: a shared machine; see the printed figure
  const int after = writer.acked();
  ASSERT_TRUE(writer.WaitForAcked(after + 50)) << writer.error() << "\n" << c.Describe();
  ASSERT_TRUE(writer.Stop().ok());
  EXPECT_EQ(FilesSealedBy(c.member(lead_id).dir, 'A'), std::vector<std::string>());
}

// Lets Seal() through only while open (the loop thread then blocks inside a reseal).
class GatedEncrypter : public Encrypter {
 public:
  explicit GatedEncrypter(Encrypter* inner) : inner_(inner) {}
  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view ad) override {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&open_));
    }
    return inner_->Seal(plaintext, ad);
  }
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view ad) override {
    return inner_->Open(sealed, ad);
  }
  void SetOpen(bool open) {
    absl::MutexLock lock(&mu_);
    open_ = open;
  }

 private:
  Encrypter* inner_;
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
};

TEST(RaftNodeTest, ResealReportsItsDeadlineAndCancellation) {
  TestKeyRing ring("A");
  GatedEncrypter gate(&ring);
  TestCluster c(FastOptions());
  c.SetEncrypter(1, &gate);
  c.Bootstrap(1);
  ASSERT_NE(c.WaitForLeader(), 0u);
  ASSERT_TRUE(c.Put("k", "v").ok());

  ring.AddKeyAndMakeCurrent('B');
  gate.SetOpen(false);  // the reseal cannot finish
  absl::Status s = c.node(1).Reseal(In(absl::Milliseconds(200)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  EXPECT_NE(s.message().find("may still complete"), std::string::npos) << s;
  gate.SetOpen(true);
  s = c.node(1).Reseal(In(absl::Seconds(10)));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(FilesSealedBy(c.member(1).dir, 'A'), std::vector<std::string>());
  ASSERT_TRUE(c.Put("k", "after").ok());

  c.node(1).Stop();
  s = c.node(1).Reseal(In(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
}

}  // namespace
}  // namespace shoal::raft::testing
