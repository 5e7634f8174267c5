// TransportService: the receiving half of the Raft transport — RaftTransport served over gRPC.
//
// Send streams carry MessageBatches from one peer; their messages go to Handler::Receive in the
// order the stream carried them. StreamSnapshot streams carry one snapshot in chunks; they are
// reassembled in memory (offsets must be contiguous from 0, the total at most
// max_snapshot_bytes, sender and term constant) and handed to Receive as one SNAP message once the
// last chunk arrived; anything else discards the partial snapshot and answers accepted=false.
// ResolveAddress answers from the local Transport's peer table.
//
// Messages (and snapshots) not addressed to the local Raft ID are dropped and logged: a member
// that was replaced at an address must not feed its successor.
//
// The caller builds and owns the grpc::Server (and so chooses the server credentials; mTLS comes
// with the PKI). Two things it must do: call ConfigureServerBuilder, so that batches up to
// Transport::Options::max_batch_bytes and single large messages are accepted; and shut the server
// down with a deadline (Server::Shutdown(deadline)), because Send streams live as long as the
// peers do and would otherwise hold shutdown forever.
//
// Threading: gRPC calls the handlers from its own threads. Receive calls for one sender are
// serialised (even across a reconnect, when an old stream may still be draining beside the new
// one); calls for different senders may run concurrently. The Handler and the Transport given
// must outlive the server.
#ifndef SHOAL_RAFT_TRANSPORT_TRANSPORT_SERVICE_H_
#define SHOAL_RAFT_TRANSPORT_TRANSPORT_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "raft/transport/handler.h"
#include "raft/transport/transport.h"
#include "raft_transport.grpc.pb.h"

namespace shoal::raft {

class TransportService final : public api::RaftTransport::Service {
 public:
  // The snapshot size cap by default: 2 GiB, protobuf's limit for a bytes field.
  static constexpr uint64_t kDefaultMaxSnapshotBytes = uint64_t{2} << 30;
  // Largest gRPC message ConfigureServerBuilder lets in: a batch, or one oversized entry.
  static constexpr int kMaxReceiveMessageBytes = 64 << 20;

  struct Stats {
    uint64_t batches_received = 0;
    uint64_t messages_received = 0;  // Handed to Receive (snapshots included).
    uint64_t messages_dropped = 0;   // Addressed to another Raft ID.
    uint64_t snapshot_chunks_received = 0;
    uint64_t snapshots_received = 0;   // Complete, handed to Receive.
    uint64_t snapshots_discarded = 0;  // Gap, bad address, too large, or the stream ended early.
  };

  // REQUIRES: local_id != 0; handler outlives the server. `peers` may be null (ResolveAddress
  // then answers NOT_FOUND), otherwise it must outlive the server.
  TransportService(uint64_t local_id, Handler* handler, const Transport* peers = nullptr,
                   uint64_t max_snapshot_bytes = kDefaultMaxSnapshotBytes);

  // Sets the receive limits this service needs on the server being built.
  static void ConfigureServerBuilder(grpc::ServerBuilder* builder);

  grpc::Status Send(grpc::ServerContext* context, grpc::ServerReader<api::MessageBatch>* reader,
                    api::SendResponse* response) override;
  grpc::Status StreamSnapshot(grpc::ServerContext* context,
                              grpc::ServerReader<api::SnapshotChunk>* reader,
                              api::SnapshotChunkAck* ack) override;
  grpc::Status ResolveAddress(grpc::ServerContext* context,
                              const api::ResolveAddressRequest* request,
                              api::ResolveAddressResponse* response) override;

  Stats stats() const;

 private:
  // The lock serialising Receive calls for messages from `from`; created on first use.
  absl::Mutex* SenderLock(uint64_t from);
  void Deliver(raftpb::Message m);
  // Delivers `run` (messages from one sender, in order) with one Handler call; clears it.
  void DeliverRun(std::vector<raftpb::Message>* run);
  // Counts and logs a discarded snapshot; returns OK with accepted=false in `ack`.
  grpc::Status DiscardSnapshot(api::SnapshotChunkAck* ack, uint64_t received,
                               const std::string& why);

  const uint64_t local_id_;
  Handler* const handler_;
  const Transport* const peers_;
  const uint64_t max_snapshot_bytes_;

  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<absl::Mutex>> sender_locks_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> batches_received_{0};
  std::atomic<uint64_t> messages_received_{0};
  std::atomic<uint64_t> messages_dropped_{0};
  std::atomic<uint64_t> snapshot_chunks_received_{0};
  std::atomic<uint64_t> snapshots_received_{0};
  std::atomic<uint64_t> snapshots_discarded_{0};
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_TRANSPORT_TRANSPORT_SERVICE_H_
