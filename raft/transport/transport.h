// Transport: the sending half of Raft between managers — gRPC streams to every peer.
//
// What it guarantees:
// - Send() never blocks on the network. Each peer has a bounded queue; a full queue drops the
//   new messages for that peer and reports it unreachable (Raft retransmits what matters).
// - Each peer has ONE long-lived RaftTransport.Send client stream (gRPC's asynchronous API);
//   everything queued is packed into MessageBatch messages of at most max_batch_bytes. When the
//   stream is open and no write is in flight, Send() starts the write itself, on the caller's
//   thread (non-blocking: no hand-off to another thread on the common path); otherwise the
//   messages queue and the peer's sender thread, which reaps write completions, sends them as
//   the next batch. So messages to one peer leave in Send() order, and a peer that is down,
//   hung or slow only ever fills its own queue: it never delays another peer's messages.
// - A broken stream (or a failed connect) reports the peer unreachable and is reopened after a
//   backoff doubling from 50 ms to 1 s (measured on the injected Clock). While backing off the
//   queue keeps only the newest message: a stale backlog is useless to Raft once it resumed.
//   Reconnects are lazy: a peer nobody sends to is not dialled.
// - SNAP messages whose snapshot has data go by RaftTransport.StreamSnapshot, in chunks of
//   snapshot_chunk_bytes, on their own thread and their own connection (so a large transfer
//   never sits in front of heartbeats). The blocking gRPC Write is the backpressure: a chunk is
//   produced only when flow control lets the previous one go. One snapshot per peer is in
//   flight at a time; another one sent meanwhile is refused with ReportSnapshot(peer, true).
//   When the stream ends, ReportSnapshot(peer, failed) fires.
//
// The receiving half is TransportService (transport_service.h), served by a grpc::Server the
// caller builds; credentials are the caller's too (mTLS arrives with the PKI), the transport
// only takes ChannelCredentials.
//
// Threading: every public method may be called from any thread. Callbacks go to the Handler with
// no transport lock held (see handler.h): ReportUnreachable from a peer's sender thread or from
// the thread calling Send, ReportSnapshot from the snapshot's thread or from Send. Once Stop()
// returned no transport thread calls the Handler; the Handler must outlive the Transport.
// A callback may call Send and AddPeer, but not UpdatePeer, RemovePeer or Stop: those join the
// peer's threads, one of which would be the caller.
#ifndef SHOAL_RAFT_TRANSPORT_TRANSPORT_H_
#define SHOAL_RAFT_TRANSPORT_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "raft.pb.h"
#include "raft/transport/handler.h"

namespace shoal::raft {

class Transport {
 public:
  struct Options {
    uint64_t local_id = 0;  // This member's Raft ID; stamped nowhere, used for logs and checks.
    std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
    // With TLS: the name every peer's certificate must carry (managers: "swarm-manager"),
    // since peers are dialled by address. Empty: the address's host.
    std::string tls_server_name;
    size_t max_queued_messages_per_peer = 4096;
    // Encoded size bound of one MessageBatch. A single larger message is still sent, alone; the
    // receiving server must accept it (TransportService::ConfigureServerBuilder).
    size_t max_batch_bytes = 4 << 20;
    size_t snapshot_chunk_bytes = 1 << 20;
    Clock* clock = nullptr;  // Reconnect backoff; nullptr = RealClock().
  };

  // Counters since construction, summed over peers (including removed ones).
  struct Stats {
    uint64_t messages_sent = 0;     // Written to a stream (delivery is not confirmed).
    uint64_t batches_sent = 0;      // MessageBatch writes that succeeded.
    uint64_t bytes_sent = 0;        // Encoded MessageBatch bytes of those writes.
    uint64_t messages_dropped = 0;  // Unknown peer, full queue, backoff trimming, broken write.
    uint64_t stream_failures = 0;   // Streams that broke or failed to open.
    uint64_t snapshots_sent = 0;    // Snapshot streams the receiver accepted.
    uint64_t snapshots_failed = 0;
  };

  // A snapshot of one peer's sender, for status pages and tests.
  struct PeerStatus {
    std::string addr;
    size_t queued = 0;
    bool connected = false;    // The current stream carried at least one batch.
    bool backing_off = false;  // After a failure, waiting before the next attempt.
    uint64_t stream_failures = 0;
    bool snapshot_in_flight = false;
  };

  // REQUIRES: handler outlives the Transport; options.local_id != 0; channel_credentials set.
  Transport(Options options, Handler* handler);
  ~Transport();  // Stop().

  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Starts a sender for `id` at `addr` (host:port). ALREADY_EXISTS if `id` is known,
  // INVALID_ARGUMENT for id 0 or the local id, FAILED_PRECONDITION after Stop().
  absl::Status AddPeer(uint64_t id, const std::string& addr);
  // Points `id` at a new address: its stream and queue are dropped and a new sender starts.
  // NOT_FOUND if unknown. A no-op when the address is unchanged.
  absl::Status UpdatePeer(uint64_t id, const std::string& addr);
  // Ends the peer's streams (an in-flight snapshot is cancelled, without ReportSnapshot) and
  // forgets it. NOT_FOUND if unknown. Blocks until its threads have exited (promptly: every
  // blocking gRPC call is cancelled first).
  absl::Status RemovePeer(uint64_t id);
  // The address known for `id`; NOT_FOUND if unknown. Backs RaftTransport.ResolveAddress.
  absl::StatusOr<std::string> PeerAddress(uint64_t id) const;
  absl::StatusOr<PeerStatus> GetPeerStatus(uint64_t id) const;

  // Queues each message for its `to` peer and returns at once. Messages to an unknown peer, or
  // beyond a full queue, are dropped and their peer reported unreachable (once per call).
  void Send(std::vector<raftpb::Message> msgs);

  // Ends every stream, joins every thread. Idempotent; later calls to Send are ignored and
  // AddPeer fails.
  void Stop();

  Stats stats() const;

 private:
  struct Peer;

  std::unique_ptr<Peer> NewPeer(uint64_t id, const std::string& addr);
  // Signals the peer's threads to stop and cancels their calls; does not join.
  static void Cancel(Peer* p);
  static void Join(Peer* p);
  void RunSender(Peer* p);
  // Packs what is queued into one batch and starts its write, if the stream is open and idle.
  void StartWriteLocked(Peer* p);
  // `m` lives in the thread's own storage (std::thread moved it there).
  void RunSnapshot(Peer* p, const raftpb::Message& m);
  // Waits until `deadline` on the clock, then ends the backoff; false if the peer is stopping.
  bool Backoff(Peer* p, absl::Time deadline);
  std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr, bool own_connection) const;

  const Options options_;
  Handler* const handler_;
  Clock* const clock_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);

  std::atomic<uint64_t> messages_sent_{0};
  std::atomic<uint64_t> batches_sent_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> messages_dropped_{0};
  std::atomic<uint64_t> stream_failures_{0};
  std::atomic<uint64_t> snapshots_sent_{0};
  std::atomic<uint64_t> snapshots_failed_{0};
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_TRANSPORT_TRANSPORT_H_
