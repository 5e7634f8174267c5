// Handler: what the Raft transport tells the node that owns it.
//
// The transport is the I/O shell between Raft cores on different managers; it never interprets a
// message beyond its destination and whether it carries snapshot data. Everything it learns goes
// to one Handler, which the node's Raft driver implements (stepping the core, feeding it
// UNREACHABLE and SNAP_STATUS).
//
// Threading: every callback may come from a transport-owned or gRPC-owned thread, and callbacks
// for different peers may run concurrently, so implementations must be thread-safe and should
// return quickly (hand the work to the Raft loop). No transport lock is held during a callback,
// so a callback may call back into Transport (e.g. Send).
#ifndef SHOAL_RAFT_TRANSPORT_HANDLER_H_
#define SHOAL_RAFT_TRANSPORT_HANDLER_H_

#include <cstdint>
#include <vector>

#include "raft.pb.h"

namespace shoal::raft {

class Handler {
 public:
  virtual ~Handler() = default;

  // An inbound message addressed to this member. Messages from one sender arrive in the order
  // that sender's stream carried them, never concurrently with each other. A SNAP message with
  // snapshot data arrives once, after all its chunks were received and reassembled.
  virtual void Receive(raftpb::Message m) = 0;

  // Several inbound messages from one sender, in its stream's order (the same guarantees as
  // Receive). The default hands them to Receive one by one; an implementation may queue them
  // at once (one wake-up of its loop per batch).
  virtual void ReceiveBatch(std::vector<raftpb::Message> msgs) {
    for (raftpb::Message& m : msgs) Receive(std::move(m));
  }

  // A message to `peer` could not be delivered (stream broken, peer unknown, queue full). Raft
  // should stop optimistic replication to it; it retransmits what matters.
  virtual void ReportUnreachable(uint64_t peer) = 0;

  // A snapshot stream to `peer` ended; `failed` = the receiver did not take the whole snapshot.
  virtual void ReportSnapshot(uint64_t peer, bool failed) = 0;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_TRANSPORT_HANDLER_H_
