#include "raft/transport/transport_service.h"

#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_format.h"

namespace shoal::raft {

TransportService::TransportService(uint64_t local_id, Handler* handler, const Transport* peers,
                                   uint64_t max_snapshot_bytes)
    : local_id_(local_id),
      handler_(handler),
      peers_(peers),
      max_snapshot_bytes_(max_snapshot_bytes) {}

void TransportService::ConfigureServerBuilder(grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
}

absl::Mutex* TransportService::SenderLock(uint64_t from) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& slot = sender_locks_[from];
  if (slot == nullptr) slot = std::make_unique<absl::Mutex>();
  return slot.get();
}

void TransportService::Deliver(raftpb::Message m) {
  absl::MutexLock lock(SenderLock(m.from()));
  messages_received_++;
  handler_->Receive(std::move(m));
}

grpc::Status TransportService::Send(grpc::ServerContext*,
                                    grpc::ServerReader<api::MessageBatch>* reader,
                                    api::SendResponse*) {
  api::MessageBatch batch;
  std::vector<raftpb::Message> run;  // consecutive messages from one sender
  while (reader->Read(&batch)) {
    batches_received_++;
    for (raftpb::Message& m : *batch.mutable_messages()) {
      if (m.to() != local_id_) {
        messages_dropped_++;
        spdlog::warn("raft transport: {} dropped a message from {} addressed to {}", local_id_,
                     m.from(), m.to());
        continue;
      }
      if (!run.empty() && run.front().from() != m.from()) DeliverRun(&run);
      run.push_back(std::move(m));
    }
    DeliverRun(&run);
  }
  // The peer closed the stream or the call was cancelled; either way the peer reconnects.
  return grpc::Status::OK;
}

void TransportService::DeliverRun(std::vector<raftpb::Message>* run) {
  if (run->empty()) return;
  absl::MutexLock lock(SenderLock(run->front().from()));
  messages_received_ += run->size();
  if (run->size() == 1) {
    handler_->Receive(std::move(run->front()));
  } else {
    handler_->ReceiveBatch(std::move(*run));
  }
  run->clear();
}

grpc::Status TransportService::DiscardSnapshot(api::SnapshotChunkAck* ack, uint64_t received,
                                               const std::string& why) {
  snapshots_discarded_++;
  spdlog::warn("raft transport: {} discarded a snapshot after {} bytes: {}", local_id_, received,
               why);
  ack->set_bytes_received(received);
  ack->set_accepted(false);
  return grpc::Status::OK;
}

grpc::Status TransportService::StreamSnapshot(grpc::ServerContext*,
                                              grpc::ServerReader<api::SnapshotChunk>* reader,
                                              api::SnapshotChunkAck* ack) {
  api::SnapshotChunk chunk;
  raftpb::Message m;
  std::string* data = m.mutable_snapshot()->mutable_data();
  bool first = true;
  bool complete = false;
  while (!complete && reader->Read(&chunk)) {
    snapshot_chunks_received_++;
    if (first) {
      if (chunk.to() != local_id_) {
        return DiscardSnapshot(
            ack, 0, absl::StrFormat("addressed to %d from %d", chunk.to(), chunk.from()));
      }
      if (!chunk.has_metadata()) return DiscardSnapshot(ack, 0, "first chunk has no metadata");
      m.set_type(raftpb::MESSAGE_TYPE_SNAP);
      m.set_from(chunk.from());
      m.set_to(chunk.to());
      m.set_term(chunk.term());
      *m.mutable_snapshot()->mutable_metadata() = std::move(*chunk.mutable_metadata());
      first = false;
    } else if (chunk.from() != m.from() || chunk.to() != m.to() || chunk.term() != m.term()) {
      return DiscardSnapshot(ack, data->size(), "sender, receiver or term changed mid-stream");
    }
    if (chunk.offset() != data->size()) {
      return DiscardSnapshot(
          ack, data->size(),
          absl::StrFormat("chunk at offset %d, expected %d", chunk.offset(), data->size()));
    }
    if (chunk.data().size() > max_snapshot_bytes_ - data->size()) {
      return DiscardSnapshot(ack, data->size(),
                             absl::StrFormat("larger than the %d-byte cap", max_snapshot_bytes_));
    }
    data->append(chunk.data());
    complete = chunk.last();
  }
  if (!complete) {
    return DiscardSnapshot(ack, data->size(), "the stream ended before the last chunk");
  }
  const uint64_t size = data->size();
  snapshots_received_++;
  Deliver(std::move(m));
  ack->set_bytes_received(size);
  ack->set_accepted(true);
  return grpc::Status::OK;
}

grpc::Status TransportService::ResolveAddress(grpc::ServerContext*,
                                              const api::ResolveAddressRequest* request,
                                              api::ResolveAddressResponse* response) {
  if (peers_ == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "this member knows no peers");
  }
  absl::StatusOr<std::string> addr = peers_->PeerAddress(request->raft_id());
  if (!addr.ok()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, std::string(addr.status().message()));
  }
  response->set_addr(*addr);
  return grpc::Status::OK;
}

TransportService::Stats TransportService::stats() const {
  Stats s;
  s.batches_received = batches_received_;
  s.messages_received = messages_received_;
  s.messages_dropped = messages_dropped_;
  s.snapshot_chunks_received = snapshot_chunks_received_;
  s.snapshots_received = snapshots_received_;
  s.snapshots_discarded = snapshots_discarded_;
  return s;
}

}  // namespace shoal::raft
