// ReadIndex (Raft thesis §6.4): linearizable reads without writing to the log. Safe mode
// confirms leadership with a heartbeat round carrying the request context; lease mode trusts
// check quorum. A follower forwards the request and gets READ_INDEX_RESP; a new leader defers
// requests until it has committed an entry of its own term.
#include "gtest/gtest.h"
#include "raft/core/cluster_test_util.h"
#include "raft/core/read_only.h"
#include "raft/core/test_util.h"

namespace shoal::raft {
namespace {

using namespace shoal::raft::testing;  // NOLINT

Message ReadReq(uint64_t from, uint64_t to, const std::string& ctx) {
  Message m = Msg(from, to, kReadIndex);
  m.add_entries()->set_data(ctx);
  return m;
}

void TestReadIndexFromEveryMember(ReadOnlyOption opt) {
  Network n(3, [opt](Config& c) {
    c.read_only_option = opt;
    c.check_quorum = true;
  });
  // Let 2 and 3 out of their lease so 1 can be elected.
  for (uint64_t id : {2, 3}) ExpireLease(n.raft(id));
  n.Send(Hup(1));
  ASSERT_EQ(n.raft(1).state(), StateType::kLeader);
  int k = 0;
  for (uint64_t reader : {1, 2, 3, 1, 2}) {
    n.Send(Prop(1));  // move the commit index
    const std::string ctx = "ctx" + std::to_string(k++);
    n.Send(ReadReq(reader, reader, ctx));
    auto rs = n.raft(reader).TakeReadStates();
    ASSERT_EQ(rs.size(), 1u) << "reader " << reader;
    EXPECT_EQ(rs[0].request_ctx, ctx);
    EXPECT_EQ(rs[0].index, n.raft(1).raft_log().committed());
  }
}

TEST(ReadIndexTest, SafeFromEveryMember) { TestReadIndexFromEveryMember(ReadOnlyOption::kSafe); }
TEST(ReadIndexTest, LeaseBasedFromEveryMember) {
  TestReadIndexFromEveryMember(ReadOnlyOption::kLeaseBased);
}

// Safe mode: the answer needs a quorum of heartbeat acknowledgements carrying the context.
TEST(ReadIndexTest, SafeWaitsForHeartbeatQuorum) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "q")).ok());
  auto hbs = OfType(r.TakeMessages(), kHeartbeat);
  ASSERT_EQ(hbs.size(), 2u);
  for (const auto& hb : hbs) EXPECT_EQ(hb.context(), "q");
  EXPECT_TRUE(r.read_states().empty());
  Message ack = Msg(2, 1, kHeartbeatResp, r.term());
  ack.set_context("q");
  ASSERT_TRUE(r.Step(ack).ok());
  auto rs = r.TakeReadStates();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].index, 1u);
  EXPECT_EQ(rs[0].request_ctx, "q");
  // A late ack for a finished request does nothing.
  ack.set_from(3);
  ASSERT_TRUE(r.Step(ack).ok());
  EXPECT_TRUE(r.TakeReadStates().empty());
}

// A quorum for a later request also confirms every request queued before it.
TEST(ReadIndexTest, LaterAckConfirmsEarlierRequests) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "a")).ok());
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "b")).ok());
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "c")).ok());
  r.TakeMessages();
  Message ack = Msg(2, 1, kHeartbeatResp, r.term());
  ack.set_context("b");
  ASSERT_TRUE(r.Step(ack).ok());
  auto rs = r.TakeReadStates();
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].request_ctx, "a");
  EXPECT_EQ(rs[1].request_ctx, "b");
  EXPECT_EQ(r.read_only().PendingCount(), 1u);
  // Ordinary heartbeats carry the newest pending context, so "c" completes on the next beat.
  ASSERT_TRUE(r.Step(Beat(1)).ok());
  for (const auto& hb : OfType(r.TakeMessages(), kHeartbeat)) EXPECT_EQ(hb.context(), "c");
}

// A new leader does not answer reads before it has committed an entry of its term: its commit
// index might lag the previous leader's. Requests queue and are answered afterwards.
TEST(ReadIndexTest, DeferredUntilLeaderCommitsInItsTerm) {
  Peer p = NewPeer(1, {1, 2, 3});
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  r.TakeMessages();
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "early")).ok());
  EXPECT_TRUE(OfType(r.TakeMessages(), kHeartbeat).empty()) << "no quorum check yet";
  EXPECT_TRUE(r.read_states().empty());
  // The no-op commits: the held request goes out with a heartbeat round.
  Message ack = Msg(2, 1, kAppResp, r.term());
  ack.set_index(1);
  ASSERT_TRUE(r.Step(ack).ok());
  auto hbs = OfType(r.TakeMessages(), kHeartbeat);
  ASSERT_EQ(hbs.size(), 2u);
  EXPECT_EQ(hbs[0].context(), "early");
  Message hb_ack = Msg(2, 1, kHeartbeatResp, r.term());
  hb_ack.set_context("early");
  ASSERT_TRUE(r.Step(hb_ack).ok());
  auto rs = r.TakeReadStates();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].index, 1u);
}

// A single voter answers at once.
TEST(ReadIndexTest, SingleNodeAnswersImmediately) {
  Peer p = NewPeer(1, {1});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(Hup(1)).ok());
  ASSERT_TRUE(r.Step(ReadReq(1, 1, "solo")).ok());
  auto rs = r.TakeReadStates();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].index, 1u);
}

// A follower forwards to the leader; without a leader the request is dropped.
TEST(ReadIndexTest, FollowerForwardsOrDrops) {
  Peer p = NewPeer(2, {1, 2, 3});
  Raft& r = *p.raft;
  ASSERT_TRUE(r.Step(ReadReq(0, 2, "x")).ok());
  EXPECT_TRUE(r.TakeMessages().empty()) << "no leader: dropped";
  r.BecomeFollower(1, 1);
  ASSERT_TRUE(r.Step(ReadReq(0, 2, "x")).ok());
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kReadIndex);
  EXPECT_EQ(msgs[0].to(), 1u);
  EXPECT_EQ(msgs[0].from(), 2u);
  // The leader's answer becomes a read state.
  Message resp = Msg(1, 2, kReadIndexResp, 1);
  resp.set_index(7);
  resp.add_entries()->set_data("x");
  ASSERT_TRUE(r.Step(resp).ok());
  auto rs = r.TakeReadStates();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].index, 7u);
  EXPECT_EQ(rs[0].request_ctx, "x");
}

// The leader answers a follower's request with READ_INDEX_RESP (lease mode: at once).
TEST(ReadIndexTest, LeaderAnswersFollowerRequest) {
  Peer p = NewPeer(1, {1, 2, 3}, 10, 1, [](Config& c) {
    c.read_only_option = ReadOnlyOption::kLeaseBased;
    c.check_quorum = true;
  });
  Raft& r = *p.raft;
  r.BecomeCandidate();
  r.BecomeLeader();
  CommitNoopEntry(r, *p.storage);
  ASSERT_TRUE(r.Step(ReadReq(2, 1, "f")).ok());
  auto msgs = r.TakeMessages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].type(), kReadIndexResp);
  EXPECT_EQ(msgs[0].to(), 2u);
  EXPECT_EQ(msgs[0].index(), 1u);
  EXPECT_EQ(msgs[0].entries(0).data(), "f");
}

TEST(ReadIndexTest, CandidateDropsReads) {
  Peer p = NewPeer(1, {1, 2, 3});
  p.raft->BecomeCandidate();
  p.raft->TakeMessages();
  ASSERT_TRUE(p.raft->Step(ReadReq(1, 1, "c")).ok());
  EXPECT_TRUE(p.raft->TakeMessages().empty());
  EXPECT_TRUE(p.raft->read_states().empty());
}

TEST(ReadIndexTest, LeaseBasedRequiresCheckQuorum) {
  Config c = NewConfig(1, 10, 1, nullptr);
  MemoryStorage s;
  c.storage = &s;
  c.read_only_option = ReadOnlyOption::kLeaseBased;
  c.check_quorum = false;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c.check_quorum = true;
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(ReadOnlyTest, QueueSemantics) {
  ReadOnly ro(ReadOnlyOption::kSafe);
  auto req = [](const std::string& ctx) {
    Message m;
    m.add_entries()->set_data(ctx);
    return m;
  };
  ro.AddRequest(1, req("a"));
  ro.AddRequest(2, req("b"));
  ro.AddRequest(3, req("b"));  // duplicate context: ignored
  EXPECT_EQ(ro.PendingCount(), 2u);
  EXPECT_EQ(ro.LastPendingRequestCtx(), "b");
  EXPECT_EQ(ro.RecvAck(2, "zzz"), nullptr);
  EXPECT_EQ(ro.RecvAck(2, "a")->size(), 1u);
  EXPECT_EQ(ro.RecvAck(2, "a")->size(), 1u);  // idempotent
  EXPECT_TRUE(ro.Advance("zzz").empty());
  auto done = ro.Advance("b");
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].index, 1u);
  EXPECT_EQ(done[1].index, 2u);
  EXPECT_EQ(ro.LastPendingRequestCtx(), "");
}

// End to end through RawNode: read states come out of Ready.
TEST(ReadIndexTest, RawNodeReadStatesInReady) {
  Cluster c({.size = 3});
  uint64_t l = c.WaitForLeader();
  ASSERT_NE(l, kNone);
  ASSERT_TRUE(c.Propose(l, "v").ok());
  c.Stabilize();
  const uint64_t f = l == 1 ? 2 : 1;
  c.rn(f).ReadIndex("r1");
  c.rn(l).ReadIndex("r2");
  c.Stabilize();
  ASSERT_EQ(c.node(f).read_states.size(), 1u);
  EXPECT_EQ(c.node(f).read_states[0].request_ctx, "r1");
  EXPECT_EQ(c.node(f).read_states[0].index, c.raft(l).raft_log().committed());
  ASSERT_EQ(c.node(l).read_states.size(), 1u);
  EXPECT_EQ(c.node(l).read_states[0].request_ctx, "r2");
}

}  // namespace
}  // namespace shoal::raft
