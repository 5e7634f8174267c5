// Flow control: in Replicate state the leader pipelines appends up to max_inflight_msgs and
// stops when the window is full; acknowledgements and heartbeat responses reopen it. In Probe
// state, one append per round trip. Unreachable followers fall back to probing.
#include "gtest/gtest.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

// A leader of {1, 2} with 2 in Replicate state and a window of `window`.
Peer ReplicatingLeader(int window) {
  Peer p = NewPeer(1, {1, 2}, 5, 1, [window](Config& c) { c.max_inflight_msgs = window; });
  p.raft->BecomeCandidate();
  p.raft->BecomeLeader();
  p.raft->tracker().Get(2)->BecomeReplicate();
  p.raft->TakeMessages();
  return p;
}

TEST(FlowControlTest, WindowFillsThenPauses) {
  Peer p = ReplicatingLeader(3);
  Raft& r = *p.raft;
  Inflights& ins = r.tracker().Get(2)->inflights();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(r.Step(Prop(1)).ok());
    auto ms = r.TakeMessages();
    ASSERT_EQ(ms.size(), 1u) << i;
    EXPECT_EQ(ms[0].type(), kApp);
  }
  EXPECT_TRUE(ins.Full());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(r.Step(Prop(1)).ok());
    EXPECT_TRUE(r.TakeMessages().empty()) << "window full: nothing is sent";
  }
}

TEST(FlowControlTest, AckMovesWindowForward) {
  Peer p = ReplicatingLeader(3);
  Raft& r = *p.raft;
  // Fill the window: appends end at 2, 3, 4 (1 is the no-op, sent first).
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  r.TakeMessages();
  Inflights& ins = r.tracker().Get(2)->inflights();
  ASSERT_TRUE(ins.Full());
  // Queue more while paused.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_TRUE(r.TakeMessages().empty());
  // Acknowledging the first append frees a slot; the leader sends what it can.
  Message ack = Msg(2, 1, kAppResp, r.term());
  ack.set_index(2);
  ASSERT_TRUE(r.Step(ack).ok());
  auto apps = OfType(r.TakeMessages(), kApp);
  ASSERT_FALSE(apps.empty());
  EXPECT_TRUE(ins.Full()) << "refilled";
  // A stale acknowledgement frees nothing.
  ack.set_index(1);
  ASSERT_TRUE(r.Step(ack).ok());
  EXPECT_TRUE(ins.Full());
}

TEST(FlowControlTest, HeartbeatResponseFreesOneSlot) {
  Peer p = ReplicatingLeader(3);
  Raft& r = *p.raft;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  r.TakeMessages();
  Inflights& ins = r.tracker().Get(2)->inflights();
  ASSERT_TRUE(ins.Full());
  for (int tick = 0; tick < 3; ++tick) {
    ASSERT_TRUE(r.Step(Prop(1)).ok());  // queued, not sent
    ASSERT_TRUE(r.Step(Beat(1)).ok());
    EXPECT_TRUE(OfType(r.TakeMessages(), kApp).empty());
    ASSERT_TRUE(r.Step(Msg(2, 1, kHeartbeatResp, r.term())).ok());
    // The response lets exactly one more append out (acks may have been lost).
    auto apps = OfType(r.TakeMessages(), kApp);
    ASSERT_EQ(apps.size(), 1u) << tick;
    EXPECT_TRUE(ins.Full());
  }
}

TEST(FlowControlTest, ProbeSendsOneAppendPerRoundTrip) {
  Peer p = NewPeer(1, {1, 2});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.TakeMessages();
  ASSERT_EQ(r.tracker().Get(2)->state(), ProgressState::kProbe);
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_EQ(OfType(r.TakeMessages(), kApp).size(), 1u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_TRUE(OfType(r.TakeMessages(), kApp).empty()) << "paused until 2 answers";
  // A heartbeat response unpauses the probe.
  ASSERT_TRUE(r.Step(Msg(2, 1, kHeartbeatResp, r.term())).ok());
  EXPECT_EQ(OfType(r.TakeMessages(), kApp).size(), 1u);
}

TEST(FlowControlTest, UnreachableFallsBackToProbe) {
  Peer p = ReplicatingLeader(256);
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Prop(1)).ok());
  r.TakeMessages();
  ASSERT_TRUE(r.Step(Msg(2, 1, kUnreachable)).ok());
  const Progress& pr = *r.tracker().Get(2);
  EXPECT_EQ(pr.state(), ProgressState::kProbe);
  EXPECT_EQ(pr.next(), pr.match() + 1);
}

// A rejection in Replicate state (the follower lost entries) goes back to probing from match.
TEST(FlowControlTest, RejectionInReplicateFallsBackToProbe) {
  Peer p = ReplicatingLeader(256);
  Raft& r = *p.raft;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  r.TakeMessages();
  Message rej = Msg(2, 1, kAppResp, r.term());
  rej.set_index(3);
  rej.set_reject(true);
  rej.set_reject_hint(0);
  ASSERT_TRUE(r.Step(rej).ok());
  EXPECT_EQ(r.tracker().Get(2)->state(), ProgressState::kProbe);
  auto apps = OfType(r.TakeMessages(), kApp);
  ASSERT_EQ(apps.size(), 1u);
  EXPECT_EQ(apps[0].index(), 0u) << "probe from match + 1";
}

// Pipelining: in Replicate state appends stream without waiting for acknowledgements, and next
// advances optimistically.
TEST(FlowControlTest, ReplicatePipelinesOptimistically) {
  Peer p = ReplicatingLeader(256);
  Raft& r = *p.raft;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  EXPECT_EQ(OfType(r.TakeMessages(), kApp).size(), 10u);
  EXPECT_EQ(r.tracker().Get(2)->next(), 12u);
  EXPECT_EQ(r.tracker().Get(2)->match(), 0u);
}

// An unpaused follower that acknowledges gets the backlog in messages of at most
// max_size_per_msg, streamed while the window allows.
TEST(FlowControlTest, BacklogStreamsInWindowSizedBatches) {
  Peer p = NewPeer(1, {1, 2}, 10, 1, [](Config& c) {
    c.max_inflight_msgs = 2;
    c.max_size_per_msg = 0;  // one entry per message
  });
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.tracker().Get(2)->set_probe_sent(true);
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(r.Step(Prop(1)).ok());
  r.TakeMessages();
  Message ack = Msg(2, 1, kAppResp, r.term());
  ack.set_index(1);
  ASSERT_TRUE(r.Step(ack).ok());
  auto apps = OfType(r.TakeMessages(), kApp);
  ASSERT_EQ(apps.size(), 2u) << "window of 2";
  for (const auto& m : apps) EXPECT_EQ(m.entries_size(), 1);
}

}  // namespace
}  // namespace shoal::raft
