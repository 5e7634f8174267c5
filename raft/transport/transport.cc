#include "raft/transport/transport.h"

#include <algorithm>
#include <deque>
#include <thread>
#include <utility>

#include <google/protobuf/io/coded_stream.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_format.h"
#include "raft_transport.grpc.pb.h"

namespace shoal::raft {
namespace {

constexpr absl::Duration kMinBackoff = absl::Milliseconds(50);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);
// The Clock interface cannot wake a waiter early, so a backoff wait re-reads the clock at least
// this often (in real time) and stays interruptible by RemovePeer/Stop.
constexpr absl::Duration kClockPoll = absl::Milliseconds(50);

// Completion-queue tags of a peer's stream.
void* const kStartTag = reinterpret_cast<void*>(1);
void* const kWriteTag = reinterpret_cast<void*>(2);
void* const kFinishTag = reinterpret_cast<void*>(3);

bool IsSnapshotWithData(const raftpb::Message& m) {
  return m.type() == raftpb::MESSAGE_TYPE_SNAP && !m.snapshot().data().empty();
}

// Bytes `m` adds to an encoded MessageBatch: its tag, its length prefix and its body.
size_t EncodedInBatch(const raftpb::Message& m) {
  const size_t body = m.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(body) + body;
}

void AddUnique(std::vector<uint64_t>* ids, uint64_t id) {
  if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
}

}  // namespace

struct Transport::Peer {
  struct Queued {
    raftpb::Message message;
    size_t encoded_bytes;
  };

  Peer(uint64_t id, std::string addr) : id(id), addr(std::move(addr)) {}

  const uint64_t id;
  const std::string addr;
  std::unique_ptr<api::RaftTransport::Stub> stub;  // Set before the threads start.
  std::thread sender;                              // Started by NewPeer, joined by Join.
  // The stream's completions (start, writes, finish), drained by the sender thread only.
  grpc::CompletionQueue cq;

  absl::Mutex mu;
  std::deque<Queued> queue ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool backing_off ABSL_GUARDED_BY(mu) = false;
  bool connected ABSL_GUARDED_BY(mu) = false;
  uint64_t stream_failures ABSL_GUARDED_BY(mu) = 0;
  // The calls in progress, so that Cancel() can unblock their threads.
  grpc::ClientContext* stream_ctx ABSL_GUARDED_BY(mu) = nullptr;
  grpc::ClientContext* snapshot_ctx ABSL_GUARDED_BY(mu) = nullptr;
  // The open stream, once its start completed (nullptr otherwise, and once it broke). Writes
  // are started under `mu` by whichever thread finds the stream idle: Send()'s caller or the
  // sender thread on a write's completion. At most one write is in flight.
  grpc::ClientAsyncWriterInterface<api::MessageBatch>* writer ABSL_GUARDED_BY(mu) = nullptr;
  bool write_in_flight ABSL_GUARDED_BY(mu) = false;
  int inflight_messages ABSL_GUARDED_BY(mu) = 0;  // of the write in flight
  size_t inflight_bytes ABSL_GUARDED_BY(mu) = 0;
  bool snapshot_in_flight ABSL_GUARDED_BY(mu) = false;
  std::thread snapshot_thread ABSL_GUARDED_BY(mu);
};

Transport::Transport(Options options, Handler* handler)
    : options_(std::move(options)),
      handler_(handler),
      clock_(options_.clock != nullptr ? options_.clock : &RealClock()) {}

Transport::~Transport() { Stop(); }

std::shared_ptr<grpc::Channel> Transport::NewChannel(const std::string& addr,
                                                     bool own_connection) const {
  grpc::ChannelArguments args;
  // gRPC's own reconnect backoff defaults to 1 s growing to 120 s; a manager coming back must be
  // reachable again within our 1 s backoff, so keep gRPC's no slower than ours (gRPC floors the
  // initial value at 100 ms). GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at its default on purpose:
  // it is also the connect timeout (20 s), which a TLS handshake over a WAN must fit in.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kMinBackoff)));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(kMaxBackoff)));
  // Snapshots get a TCP connection of their own so that megabytes of chunks never queue in
  // front of heartbeats.
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (!options_.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options_.tls_server_name);
  }
  return grpc::CreateCustomChannel(addr, options_.channel_credentials, args);
}

std::unique_ptr<Transport::Peer> Transport::NewPeer(uint64_t id, const std::string& addr) {
  auto p = std::make_unique<Peer>(id, addr);
  p->stub = api::RaftTransport::NewStub(NewChannel(addr, /*own_connection=*/false));
  p->sender = std::thread(&Transport::RunSender, this, p.get());
  return p;
}

void Transport::Cancel(Peer* p) {
  absl::MutexLock lock(&p->mu);
  p->stopping = true;
  if (p->stream_ctx != nullptr) p->stream_ctx->TryCancel();
  if (p->snapshot_ctx != nullptr) p->snapshot_ctx->TryCancel();
}

void Transport::Join(Peer* p) {
  if (p->sender.joinable()) p->sender.join();
  std::thread snapshot;
  {
    absl::MutexLock lock(&p->mu);
    snapshot = std::move(p->snapshot_thread);
  }
  if (snapshot.joinable()) snapshot.join();
}

absl::Status Transport::AddPeer(uint64_t id, const std::string& addr) {
  if (id == 0 || id == options_.local_id) {
    return absl::InvalidArgumentError(absl::StrFormat("cannot add Raft peer %d", id));
  }
  absl::MutexLock lock(&mu_);
  if (stopped_) return absl::FailedPreconditionError("transport is stopped");
  if (peers_.contains(id)) {
    return absl::AlreadyExistsError(absl::StrFormat("Raft peer %d is already known", id));
  }
  peers_[id] = NewPeer(id, addr);
  return absl::OkStatus();
}

absl::Status Transport::UpdatePeer(uint64_t id, const std::string& addr) {
  std::unique_ptr<Peer> old;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      return absl::NotFoundError(absl::StrFormat("unknown Raft peer %d", id));
    }
    if (it->second->addr == addr) return absl::OkStatus();
    old = std::move(it->second);
    it->second = NewPeer(id, addr);
  }
  // Outside mu_: joining waits for the old threads, which never take mu_.
  Cancel(old.get());
  Join(old.get());
  return absl::OkStatus();
}

absl::Status Transport::RemovePeer(uint64_t id) {
  std::unique_ptr<Peer> old;
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) {
      return absl::NotFoundError(absl::StrFormat("unknown Raft peer %d", id));
    }
    old = std::move(it->second);
    peers_.erase(it);
  }
  Cancel(old.get());
  Join(old.get());
  return absl::OkStatus();
}

absl::StatusOr<std::string> Transport::PeerAddress(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) return absl::NotFoundError(absl::StrFormat("unknown Raft peer %d", id));
  return it->second->addr;
}

absl::StatusOr<Transport::PeerStatus> Transport::GetPeerStatus(uint64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) return absl::NotFoundError(absl::StrFormat("unknown Raft peer %d", id));
  Peer* p = it->second.get();
  absl::MutexLock peer_lock(&p->mu);
  PeerStatus status;
  status.addr = p->addr;
  status.queued = p->queue.size();
  status.connected = p->connected;
  status.backing_off = p->backing_off;
  status.stream_failures = p->stream_failures;
  status.snapshot_in_flight = p->snapshot_in_flight;
  return status;
}

void Transport::Send(std::vector<raftpb::Message> msgs) {
  std::vector<uint64_t> unreachable;
  std::vector<uint64_t> refused_snapshots;
  std::vector<std::thread> finished_snapshots;
  uint64_t dropped = 0;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (stopped_) return;
    // Group by peer first so that each peer's lock is taken (and its sender woken) once per call.
    absl::flat_hash_map<Peer*, std::vector<Peer::Queued>> by_peer;
    for (raftpb::Message& m : msgs) {
      auto it = peers_.find(m.to());
      if (it == peers_.end()) {
        ++dropped;
        AddUnique(&unreachable, m.to());
        continue;
      }
      Peer* p = it->second.get();
      if (IsSnapshotWithData(m)) {
        absl::MutexLock peer_lock(&p->mu);
        if (p->snapshot_in_flight) {
          refused_snapshots.push_back(p->id);
          continue;
        }
        p->snapshot_in_flight = true;
        // The previous snapshot thread, if any, has cleared snapshot_in_flight as its last act.
        finished_snapshots.push_back(std::move(p->snapshot_thread));
        p->snapshot_thread = std::thread(&Transport::RunSnapshot, this, p, std::move(m));
        continue;
      }
      const size_t bytes = EncodedInBatch(m);
      by_peer[p].push_back(Peer::Queued{std::move(m), bytes});
    }
    for (auto& [p, queued] : by_peer) {
      absl::MutexLock peer_lock(&p->mu);
      if (p->backing_off) {
        // The peer is down: only the newest message is worth sending when it comes back.
        dropped += p->queue.size() + queued.size() - 1;
        p->queue.clear();
        p->queue.push_back(std::move(queued.back()));
        continue;
      }
      for (Peer::Queued& q : queued) {
        if (p->queue.size() >= options_.max_queued_messages_per_peer) {
          ++dropped;
          AddUnique(&unreachable, p->id);
          continue;
        }
        p->queue.push_back(std::move(q));
      }
      // An idle open stream takes the batch now, from this thread: no hand-off to the sender.
      StartWriteLocked(p);
    }
  }
  messages_dropped_ += dropped;
  for (std::thread& t : finished_snapshots) {
    if (t.joinable()) t.join();
  }
  for (uint64_t id : unreachable) handler_->ReportUnreachable(id);
  for (uint64_t id : refused_snapshots) {
    spdlog::warn("raft transport: snapshot to {} refused, another one is in flight", id);
    snapshots_failed_++;
    handler_->ReportSnapshot(id, /*failed=*/true);
  }
}

bool Transport::Backoff(Peer* p, absl::Time deadline) {
  absl::MutexLock lock(&p->mu);
  while (!p->stopping) {
    const absl::Duration left = deadline - clock_->Now();
    if (left <= absl::ZeroDuration()) break;
    p->mu.AwaitWithTimeout(absl::Condition(&p->stopping), std::min(left, kClockPoll));
  }
  p->backing_off = false;
  return !p->stopping;
}

void Transport::StartWriteLocked(Peer* p) {
  if (p->writer == nullptr || p->write_in_flight || p->queue.empty()) return;
  api::MessageBatch batch;
  size_t batch_bytes = 0;
  while (!p->queue.empty()) {
    Peer::Queued& q = p->queue.front();
    if (batch.messages_size() > 0 && batch_bytes + q.encoded_bytes > options_.max_batch_bytes) {
      break;
    }
    batch_bytes += q.encoded_bytes;
    *batch.add_messages() = std::move(q.message);
    p->queue.pop_front();
  }
  p->write_in_flight = true;
  p->inflight_messages = batch.messages_size();
  p->inflight_bytes = batch_bytes;
  // Serialises the batch at once and never blocks: gRPC usually writes it to the socket on this
  // thread, and reports its completion on the peer's queue.
  p->writer->Write(batch, kWriteTag);
}

void Transport::RunSender(Peer* p) {
  absl::Duration backoff = kMinBackoff;
  auto has_work = [p]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu) {
    return p->stopping || !p->queue.empty();
  };

  while (true) {
    // Streams open lazily: a peer nobody sends to is not dialled.
    auto ctx = std::make_unique<grpc::ClientContext>();
    api::SendResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncWriterInterface<api::MessageBatch>> writer;
    {
      absl::MutexLock lock(&p->mu);
      p->mu.Await(absl::Condition(&has_work));
      if (p->stopping) break;
      p->stream_ctx = ctx.get();
      writer = p->stub->PrepareAsyncSend(ctx.get(), &response, &p->cq);
      writer->StartCall(kStartTag);
      // Pending for the stream's whole life: it completes when the stream ends, i.e. breaks or
      // is cancelled (the receiver never ends it on its own).
      writer->Finish(&status, kFinishTag);
    }

    // Drain the stream's completions until it has ended and no write is outstanding.
    bool started = false;
    bool finished = false;
    bool broken = false;
    bool write_outstanding = false;
    uint64_t dropped = 0;
    while (!finished || write_outstanding || !started) {
      void* tag = nullptr;
      bool ok = false;
      if (!p->cq.Next(&tag, &ok)) break;  // never: the queue is shut down only below
      absl::MutexLock lock(&p->mu);
      if (tag == kStartTag) {
        started = true;
        if (ok && !broken) {
          p->writer = writer.get();
          StartWriteLocked(p);
        } else {
          broken = true;
        }
      } else if (tag == kWriteTag) {
        p->write_in_flight = false;
        if (ok && !broken) {
          messages_sent_ += p->inflight_messages;
          batches_sent_++;
          bytes_sent_ += p->inflight_bytes;
          backoff = kMinBackoff;
          p->connected = true;
          StartWriteLocked(p);
        } else {
          // What it carried is lost; Raft resends what matters.
          dropped += p->inflight_messages;
          broken = true;
        }
      } else if (tag == kFinishTag) {
        finished = true;
        broken = true;
      }
      if (broken && p->writer != nullptr) {
        p->writer = nullptr;  // no new writes on a dying stream
        ctx->TryCancel();     // ends the stream, so that Finish completes
      }
      write_outstanding = p->write_in_flight;
    }
    messages_dropped_ += dropped;
    bool stopping;
    {
      absl::MutexLock lock(&p->mu);
      p->writer = nullptr;
      p->stream_ctx = nullptr;
      p->connected = false;
      p->stream_failures++;
      stopping = p->stopping;
      // Enter the backoff before reporting, so that whoever hears of the failure already finds
      // the queue trimmed: a stale backlog is useless to Raft once it switched to probing.
      p->backing_off = true;
      if (p->queue.size() > 1) {
        messages_dropped_ += p->queue.size() - 1;
        p->queue.erase(p->queue.begin(), p->queue.end() - 1);
      }
    }
    writer.reset();
    ctx.reset();
    if (stopping) break;
    // Measured from the failure, not from after the callback, which may take its time.
    const absl::Time retry_at = clock_->Now() + backoff;
    stream_failures_++;
    spdlog::warn("raft transport: stream from {} to {} at {} failed: {}", options_.local_id, p->id,
                 p->addr, status.error_message());
    handler_->ReportUnreachable(p->id);
    if (!Backoff(p, retry_at)) break;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }

  p->cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (p->cq.Next(&tag, &ok)) {
  }
  absl::MutexLock lock(&p->mu);
  p->stream_ctx = nullptr;
  p->writer = nullptr;
  p->connected = false;
}

void Transport::RunSnapshot(Peer* p, const raftpb::Message& m) {
  const std::string& data = m.snapshot().data();
  const size_t chunk_bytes = std::max<size_t>(options_.snapshot_chunk_bytes, 1);
  auto stub = api::RaftTransport::NewStub(NewChannel(p->addr, /*own_connection=*/true));
  grpc::ClientContext ctx;
  api::SnapshotChunkAck ack;
  bool failed = true;
  bool started = false;
  {
    absl::MutexLock lock(&p->mu);
    if (!p->stopping) {
      p->snapshot_ctx = &ctx;
      started = true;
    }
  }
  if (started) {
    auto writer = stub->StreamSnapshot(&ctx, &ack);
    bool wrote_all = true;
    size_t offset = 0;
    api::SnapshotChunk chunk;
    while (offset < data.size()) {
      const size_t n = std::min(chunk_bytes, data.size() - offset);
      chunk.Clear();
      chunk.set_from(m.from());
      chunk.set_to(m.to());
      chunk.set_term(m.term());
      if (offset == 0) *chunk.mutable_metadata() = m.snapshot().metadata();
      chunk.set_data(data.data() + offset, n);
      chunk.set_offset(offset);
      chunk.set_last(offset + n == data.size());
      // Blocks until gRPC flow control takes the chunk: the receiver paces the sender.
      if (!writer->Write(chunk)) {
        wrote_all = false;
        break;
      }
      offset += n;
    }
    if (wrote_all) writer->WritesDone();
    const grpc::Status status = writer->Finish();
    failed = !wrote_all || !status.ok() || !ack.accepted() || ack.bytes_received() != data.size();
    if (failed) {
      spdlog::warn(
          "raft transport: snapshot from {} to {} at {} failed after {} of {} bytes: {} "
          "(accepted={})",
          options_.local_id, p->id, p->addr, offset, data.size(), status.error_message(),
          ack.accepted());
    }
  }
  bool stopping;
  {
    absl::MutexLock lock(&p->mu);
    p->snapshot_ctx = nullptr;
    stopping = p->stopping;
  }
  if (failed) {
    snapshots_failed_++;
  } else {
    snapshots_sent_++;
  }
  if (!stopping) handler_->ReportSnapshot(p->id, failed);
  // Last, so that a Send that sees the flag clear may join this thread without waiting long.
  absl::MutexLock lock(&p->mu);
  p->snapshot_in_flight = false;
}

void Transport::Stop() {
  absl::flat_hash_map<uint64_t, std::unique_ptr<Peer>> peers;
  {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    peers.swap(peers_);
  }
  // Cancel everything first so that the joins overlap.
  for (auto& [id, p] : peers) Cancel(p.get());
  for (auto& [id, p] : peers) Join(p.get());
}

Transport::Stats Transport::stats() const {
  Stats s;
  s.messages_sent = messages_sent_;
  s.batches_sent = batches_sent_;
  s.bytes_sent = bytes_sent_;
  s.messages_dropped = messages_dropped_;
  s.stream_failures = stream_failures_;
  s.snapshots_sent = snapshots_sent_;
  s.snapshots_failed = snapshots_failed_;
  return s;
}

}  // namespace shoal::raft
