// Transport tests on loopback (127.0.0.1, kernel-chosen ports). Every wait is a condition wait
// that ends as soon as the condition holds; deadlines only bound failures.
#include "raft/transport/transport.h"

#include <algorithm>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "raft/transport/test_util.h"
#include "raft/transport/transport_service.h"
#include "raft_transport.grpc.pb.h"

namespace shoal::raft {
namespace {

using testing::App;
using testing::ClosedPortAddress;
using testing::HungListener;
using testing::Member;
using testing::RecordingHandler;
using Record = RecordingHandler::Record;

// Indices of the messages `r` received from `from`, in arrival order.
std::vector<uint64_t> IndicesFrom(const Record& r, uint64_t from) {
  std::vector<uint64_t> out;
  for (const raftpb::Message& m : r.received) {
    if (m.from() == from && m.type() == raftpb::MESSAGE_TYPE_APP) out.push_back(m.index());
  }
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

size_t Count(const std::vector<uint64_t>& ids, uint64_t id) {
  return std::count(ids.begin(), ids.end(), id);
}

std::unique_ptr<api::RaftTransport::Stub> StubTo(const std::string& addr) {
  return api::RaftTransport::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
}

raftpb::Message Snapshot(uint64_t from, uint64_t to, size_t bytes) {
  raftpb::Message m;
  m.set_type(raftpb::MESSAGE_TYPE_SNAP);
  m.set_from(from);
  m.set_to(to);
  m.set_term(7);
  std::string data(bytes, '\0');
  // A pattern with no period that divides the chunk size, so a misplaced chunk shows.
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>((i * 131 + i / 4093) & 0xff);
  m.mutable_snapshot()->set_data(std::move(data));
  m.mutable_snapshot()->mutable_metadata()->set_index(1000);
  m.mutable_snapshot()->mutable_metadata()->set_term(6);
  m.mutable_snapshot()->mutable_metadata()->mutable_conf_state()->add_voters(from);
  m.mutable_snapshot()->mutable_metadata()->mutable_conf_state()->add_voters(to);
  return m;
}

TEST(TransportTest, ThreeMembersExchangeMessagesInOrderPerSender) {
  Member a(1), b(2), c(3);
  std::vector<Member*> members = {&a, &b, &c};
  for (Member* from : members) {
    for (Member* to : members) {
      if (from == to) continue;
      ASSERT_TRUE(from->transport().AddPeer(to->id(), to->addr()).ok());
    }
  }
  constexpr uint64_t kRounds = 300;
  // Each call mixes both destinations, as a Raft Ready would.
  for (uint64_t i = 1; i <= kRounds; ++i) {
    for (Member* from : members) {
      std::vector<raftpb::Message> msgs;
      for (Member* to : members) {
        if (from != to) msgs.push_back(App(from->id(), to->id(), i));
      }
      from->transport().Send(std::move(msgs));
    }
  }
  for (Member* to : members) {
    ASSERT_TRUE(to->handler().WaitUntil([](const Record& r) {
      return r.received.size() == 2 * kRounds;
    })) << "member "
        << to->id();
    for (Member* from : members) {
      if (from == to) continue;
      EXPECT_EQ(to->handler().With([&](const Record& r) { return IndicesFrom(r, from->id()); }),
                Range(1, kRounds))
          << from->id() << " -> " << to->id();
    }
    EXPECT_EQ(to->service().stats().messages_dropped, 0u);
  }
  for (Member* m : members) {
    EXPECT_EQ(m->transport().stats().messages_dropped, 0u);
    EXPECT_TRUE(m->handler().With([](const Record& r) { return r.unreachable.empty(); }));
  }
}

TEST(TransportTest, ManySmallMessagesTravelInFewBatches) {
  Transport::Options options;
  options.max_queued_messages_per_peer = 20000;
  Member a(1, options), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  constexpr uint64_t kMessages = 10000;
  std::vector<raftpb::Message> msgs;
  for (uint64_t i = 1; i <= kMessages; ++i) msgs.push_back(App(1, 2, i));
  // One call queues them all before the sender wakes, and they fit in one 4 MiB batch.
  a.transport().Send(std::move(msgs));
  ASSERT_TRUE(
      b.handler().WaitUntil([](const Record& r) { return r.received.size() == kMessages; }));
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }),
            Range(1, kMessages));
  const Transport::Stats stats = a.transport().stats();
  EXPECT_EQ(stats.messages_sent, kMessages);
  EXPECT_EQ(stats.batches_sent, 1u);
  EXPECT_EQ(b.service().stats().batches_received, 1u);
  // The receiver hands the batch to its Handler in one call (one wake-up of the Raft loop).
  EXPECT_EQ(b.handler().With([](const Record& r) { return r.batch_calls; }), 1u);
}

// Each Send() call's messages to a peer travel together, whether the caller's thread writes them
// (the stream is open and idle) or the sender thread does (a write is still completing).
TEST(TransportTest, EachSendTravelsAsOneBatchOnAnOpenStream) {
  Member a(1), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  a.transport().Send({App(1, 2, 1)});
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == 1; }));
  constexpr uint64_t kRounds = 50;
  for (uint64_t i = 2; i <= kRounds; ++i) {
    a.transport().Send({App(1, 2, i), App(1, 2, i + 1000)});
    ASSERT_TRUE(b.handler().WaitUntil([i](const Record& r) {
      return r.received.size() == 2 * i - 1;
    })) << "round "
        << i;
  }
  EXPECT_EQ(b.service().stats().batches_received, kRounds);
  // The receiver hands each two-message batch to its Handler in one call.
  EXPECT_EQ(b.handler().With([](const Record& r) { return r.batch_calls; }), kRounds - 1);
  EXPECT_EQ(a.transport().stats().messages_dropped, 0u);
}

TEST(TransportTest, BatchesStayWithinMaxBatchBytes) {
  Transport::Options options;
  options.max_batch_bytes = 64 << 10;
  Member a(1, options), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  constexpr uint64_t kMessages = 1000;
  std::vector<raftpb::Message> msgs;
  for (uint64_t i = 1; i <= kMessages; ++i) msgs.push_back(App(1, 2, i, 1024));
  a.transport().Send(std::move(msgs));
  ASSERT_TRUE(
      b.handler().WaitUntil([](const Record& r) { return r.received.size() == kMessages; }));
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }),
            Range(1, kMessages));
  const Transport::Stats stats = a.transport().stats();
  // ~1 MiB in 64 KiB batches: at least 16 of them, each within the bound.
  EXPECT_GE(stats.batches_sent, stats.bytes_sent / (64 << 10));
  EXPECT_GE(stats.batches_sent, 16u);
  EXPECT_LE(stats.bytes_sent, stats.batches_sent * (64 << 10));
}

TEST(TransportTest, DeadPeerIsReportedUnreachableAndDoesNotDelayLivePeer) {
  Member a(1), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  ASSERT_TRUE(a.transport().AddPeer(3, ClosedPortAddress()).ok());
  constexpr uint64_t kRounds = 500;
  for (uint64_t i = 1; i <= kRounds; ++i) {
    a.transport().Send({App(1, 3, i), App(1, 2, i)});
  }
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == kRounds; }));
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }), Range(1, kRounds));
  ASSERT_TRUE(a.handler().WaitUntil([](const Record& r) { return Count(r.unreachable, 3) > 0; }));
  EXPECT_EQ(a.handler().With([](const Record& r) { return Count(r.unreachable, 2); }), 0u);
}

TEST(TransportTest, HungPeerFillsOnlyItsOwnQueue) {
  HungListener hung;
  Transport::Options options;
  options.max_queued_messages_per_peer = 64;
  Member a(1, options), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  ASSERT_TRUE(a.transport().AddPeer(3, hung.addr()).ok());
  // Lock-step with the live peer: each round's message to it must arrive before the next round,
  // while the hung peer's sender stays stuck (its connect attempt only times out after 20 s)
  // and its queue overflows.
  constexpr uint64_t kRounds = 200;
  for (uint64_t i = 1; i <= kRounds; ++i) {
    a.transport().Send({App(1, 3, i, 1024), App(1, 2, i)});
    ASSERT_TRUE(b.handler().WaitUntil([i](const Record& r) { return r.received.size() == i; }))
        << "round " << i;
  }
  // Everything reached the live peer while the hung peer's first stream had not even failed.
  absl::StatusOr<Transport::PeerStatus> hung_status = a.transport().GetPeerStatus(3);
  ASSERT_TRUE(hung_status.ok());
  EXPECT_EQ(hung_status->stream_failures, 0u);
  EXPECT_FALSE(hung_status->connected);
  EXPECT_EQ(hung_status->queued, 64u);
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }), Range(1, kRounds));
  EXPECT_GT(a.handler().With([](const Record& r) { return Count(r.unreachable, 3); }), 0u);
  EXPECT_EQ(a.handler().With([](const Record& r) { return Count(r.unreachable, 2); }), 0u);
  EXPECT_EQ(a.transport().stats().messages_dropped, kRounds - 64);
}

TEST(TransportTest, FullQueueDropsAndReportsUnreachable) {
  HungListener hung;
  Transport::Options options;
  options.max_queued_messages_per_peer = 4;
  Member a(1, options);
  ASSERT_TRUE(a.transport().AddPeer(3, hung.addr()).ok());
  std::vector<raftpb::Message> msgs;
  for (uint64_t i = 1; i <= 100; ++i) msgs.push_back(App(1, 3, i));
  a.transport().Send(std::move(msgs));
  // Send() queued 4 and dropped the rest before returning, and reported it from its own thread.
  EXPECT_EQ(a.transport().stats().messages_dropped, 96u);
  EXPECT_EQ(a.handler().With([](const Record& r) { return Count(r.unreachable, 3); }), 1u);
}

TEST(TransportTest, UnknownPeerIsReportedUnreachable) {
  Member a(1);
  a.transport().Send({App(1, 9, 1)});
  EXPECT_EQ(a.handler().With([](const Record& r) { return r.unreachable; }),
            std::vector<uint64_t>{9});
  EXPECT_EQ(a.transport().stats().messages_dropped, 1u);
}

TEST(TransportTest, BackoffWaitsOnTheClockAndKeepsOnlyTheNewestMessage) {
  ManualClock clock;
  Transport::Options options;
  options.clock = &clock;
  Member a(1, options);
  ASSERT_TRUE(a.transport().AddPeer(3, ClosedPortAddress()).ok());
  a.transport().Send({App(1, 3, 1)});
  ASSERT_TRUE(a.handler().WaitUntil([](const Record& r) { return Count(r.unreachable, 3) == 1; }));
  // The sender entered its backoff before reporting, and the manual clock keeps it there.
  for (uint64_t i = 2; i <= 11; ++i) a.transport().Send({App(1, 3, i)});
  absl::StatusOr<Transport::PeerStatus> status = a.transport().GetPeerStatus(3);
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->queued, 1u);
  EXPECT_TRUE(status->backing_off);
  EXPECT_EQ(a.handler().With([](const Record& r) { return Count(r.unreachable, 3); }), 1u);
  // Once the backoff (50 ms) elapsed on the clock, the sender tries again and fails again.
  clock.Advance(absl::Milliseconds(50));
  ASSERT_TRUE(a.handler().WaitUntil([](const Record& r) { return Count(r.unreachable, 3) == 2; }));
  EXPECT_EQ(a.transport().stats().stream_failures, 2u);
}

TEST(TransportTest, LargeSnapshotIsStreamedInChunksAndDeliveredOnce) {
  Member a(1), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  constexpr size_t kBytes = 20 << 20;
  const raftpb::Message snapshot = Snapshot(1, 2, kBytes);
  a.transport().Send({App(1, 2, 1), snapshot, App(1, 2, 2)});
  ASSERT_TRUE(a.handler().WaitUntil([](const Record& r) { return !r.snapshots.empty(); }));
  EXPECT_EQ(a.handler().With([](const Record& r) { return r.snapshots; }),
            (std::vector<std::pair<uint64_t, bool>>{{2, false}}));
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == 3; }));
  // The snapshot's own stream does not hold back the ordinary messages, which keep their order.
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }), Range(1, 2));
  const std::vector<raftpb::Message> snaps = b.handler().With([](const Record& r) {
    std::vector<raftpb::Message> out;
    for (const raftpb::Message& m : r.received) {
      if (m.type() == raftpb::MESSAGE_TYPE_SNAP) out.push_back(m);
    }
    return out;
  });
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].from(), 1u);
  EXPECT_EQ(snaps[0].to(), 2u);
  EXPECT_EQ(snaps[0].term(), 7u);
  EXPECT_EQ(snaps[0].snapshot().metadata().SerializeAsString(),
            snapshot.snapshot().metadata().SerializeAsString());
  EXPECT_TRUE(snaps[0].snapshot().data() == snapshot.snapshot().data());
  const TransportService::Stats service = b.service().stats();
  EXPECT_EQ(service.snapshot_chunks_received, 20u);
  EXPECT_EQ(service.snapshots_received, 1u);
  EXPECT_EQ(a.transport().stats().snapshots_sent, 1u);
}

TEST(TransportTest, SnapshotToHungPeerBlocksOnlyItselfAndStopCancelsIt) {
  HungListener hung;
  Member a(1), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  ASSERT_TRUE(a.transport().AddPeer(3, hung.addr()).ok());
  a.transport().Send({Snapshot(1, 3, 8 << 20)});
  // A second snapshot while the first is stuck is refused at once.
  a.transport().Send({Snapshot(1, 3, 1024)});
  EXPECT_EQ(a.handler().With([](const Record& r) { return r.snapshots; }),
            (std::vector<std::pair<uint64_t, bool>>{{3, true}}));
  a.transport().Send({App(1, 2, 1)});
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == 1; }));
  absl::StatusOr<Transport::PeerStatus> status = a.transport().GetPeerStatus(3);
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->snapshot_in_flight);
  // Stop cancels the blocked stream (the test would time out otherwise) and reports nothing more.
  a.transport().Stop();
  EXPECT_EQ(a.handler().With([](const Record& r) { return r.snapshots.size(); }), 1u);
}

TEST(TransportTest, RestartedReceiverGetsMessagesAgain) {
  Member a(1), b(2);
  ASSERT_TRUE(a.transport().AddPeer(2, b.addr()).ok());
  a.transport().Send({App(1, 2, 1)});
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == 1; }));

  b.StopServer();
  b.StartServer();  // Same port.
  // Raft would keep sending heartbeats; so does this loop, until one arrives on a new stream.
  const absl::Time deadline = absl::Now() + testing::kWaitDeadline;
  uint64_t index = 1;
  bool delivered = false;
  while (!delivered && absl::Now() < deadline) {
    a.transport().Send({App(1, 2, ++index)});
    delivered = b.handler().WaitUntil([](const Record& r) { return r.received.size() >= 2; },
                                      absl::Milliseconds(100));
  }
  ASSERT_TRUE(delivered);
  // The broken stream was noticed and reported before the new one carried anything.
  EXPECT_GE(a.handler().With([](const Record& r) { return Count(r.unreachable, 2); }), 1u);
  EXPECT_GE(a.transport().stats().stream_failures, 1u);
  // Order still holds on the new stream.
  a.transport().Send({App(1, 2, index + 1), App(1, 2, index + 2)});
  ASSERT_TRUE(b.handler().WaitUntil([&](const Record& r) {
    std::vector<uint64_t> got = IndicesFrom(r, 1);
    return !got.empty() && got.back() == index + 2;
  }));
  std::vector<uint64_t> got = b.handler().With([](const Record& r) { return IndicesFrom(r, 1); });
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
}

TEST(TransportTest, PeerTableAddUpdateRemove) {
  Member a(1), b(2);
  EXPECT_EQ(a.transport().AddPeer(0, b.addr()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.transport().AddPeer(1, b.addr()).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(a.transport().AddPeer(2, ClosedPortAddress()).ok());
  EXPECT_EQ(a.transport().AddPeer(2, b.addr()).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(a.transport().UpdatePeer(5, b.addr()).code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(a.transport().UpdatePeer(2, b.addr()).ok());
  EXPECT_EQ(*a.transport().PeerAddress(2), b.addr());
  a.transport().Send({App(1, 2, 1)});
  ASSERT_TRUE(b.handler().WaitUntil([](const Record& r) { return r.received.size() == 1; }));

  ASSERT_TRUE(a.transport().RemovePeer(2).ok());
  EXPECT_EQ(a.transport().RemovePeer(2).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.transport().PeerAddress(2).status().code(), absl::StatusCode::kNotFound);
  a.transport().Send({App(1, 2, 2)});
  EXPECT_EQ(a.handler().With([](const Record& r) { return Count(r.unreachable, 2); }), 1u);

  a.transport().Stop();
  EXPECT_EQ(a.transport().AddPeer(2, b.addr()).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TransportServiceTest, ResolveAddressAnswersFromThePeerTable) {
  Member a(1);
  ASSERT_TRUE(a.transport().AddPeer(4, "10.0.0.4:4242").ok());
  auto stub = StubTo(a.addr());
  api::ResolveAddressRequest request;
  api::ResolveAddressResponse response;
  request.set_raft_id(4);
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->ResolveAddress(&ctx, request, &response).ok());
    EXPECT_EQ(response.addr(), "10.0.0.4:4242");
  }
  request.set_raft_id(5);
  grpc::ClientContext ctx;
  EXPECT_EQ(stub->ResolveAddress(&ctx, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST(TransportServiceTest, DropsMessagesAddressedToAnotherMember) {
  Member b(2);
  auto stub = StubTo(b.addr());
  grpc::ClientContext ctx;
  api::SendResponse response;
  auto writer = stub->Send(&ctx, &response);
  api::MessageBatch batch;
  *batch.add_messages() = App(1, 9, 1);
  *batch.add_messages() = App(1, 2, 2);
  ASSERT_TRUE(writer->Write(batch));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(b.handler().With([](const Record& r) { return IndicesFrom(r, 1); }),
            std::vector<uint64_t>{2});
  EXPECT_EQ(b.service().stats().messages_dropped, 1u);
}

// Streams `chunks` by hand and returns the ack.
api::SnapshotChunkAck StreamChunks(const std::string& addr,
                                   const std::vector<api::SnapshotChunk>& chunks) {
  auto stub = StubTo(addr);
  grpc::ClientContext ctx;
  api::SnapshotChunkAck ack;
  auto writer = stub->StreamSnapshot(&ctx, &ack);
  for (const api::SnapshotChunk& c : chunks) {
    if (!writer->Write(c)) break;
  }
  writer->WritesDone();
  EXPECT_TRUE(writer->Finish().ok());
  return ack;
}

api::SnapshotChunk Chunk(uint64_t to, uint64_t offset, const std::string& data, bool last) {
  api::SnapshotChunk c;
  c.set_from(1);
  c.set_to(to);
  c.set_term(3);
  if (offset == 0) c.mutable_metadata()->set_index(10);
  c.set_offset(offset);
  c.set_data(data);
  c.set_last(last);
  return c;
}

TEST(TransportServiceTest, DiscardsSnapshotsWithGapsWrongAddressesOrNoEnd) {
  Member b(2);
  api::SnapshotChunkAck gap =
      StreamChunks(b.addr(), {Chunk(2, 0, "abcd", false), Chunk(2, 8, "ijkl", true)});
  EXPECT_FALSE(gap.accepted());
  EXPECT_EQ(gap.bytes_received(), 4u);
  EXPECT_FALSE(StreamChunks(b.addr(), {Chunk(9, 0, "abcd", true)}).accepted());
  EXPECT_FALSE(StreamChunks(b.addr(), {Chunk(2, 0, "abcd", false)}).accepted());

  api::SnapshotChunkAck ok =
      StreamChunks(b.addr(), {Chunk(2, 0, "abcd", false), Chunk(2, 4, "efgh", true)});
  EXPECT_TRUE(ok.accepted());
  EXPECT_EQ(ok.bytes_received(), 8u);
  const std::vector<raftpb::Message> got =
      b.handler().With([](const Record& r) { return r.received; });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type(), raftpb::MESSAGE_TYPE_SNAP);
  EXPECT_EQ(got[0].snapshot().data(), "abcdefgh");
  EXPECT_EQ(got[0].snapshot().metadata().index(), 10u);
  EXPECT_EQ(b.service().stats().snapshots_discarded, 3u);
}

TEST(TransportServiceTest, EnforcesTheSnapshotSizeCap) {
  RecordingHandler handler;
  TransportService service(2, &handler, nullptr, /*max_snapshot_bytes=*/6);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);
  const std::string addr = absl::StrCat("127.0.0.1:", port);
  EXPECT_FALSE(
      StreamChunks(addr, {Chunk(2, 0, "abcd", false), Chunk(2, 4, "efgh", true)}).accepted());
  EXPECT_TRUE(StreamChunks(addr, {Chunk(2, 0, "abcd", false), Chunk(2, 4, "ef", true)}).accepted());
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace shoal::raft
