// ReadOnly: the leader's queue of pending ReadIndex requests (Raft thesis §6.4). Each request
// remembers the commit index when it arrived; it is answered once a quorum has acknowledged a
// heartbeat carrying its context (proof that this node was still leader at that moment). A
// quorum ack for one request also confirms every request queued before it.
//
// Not thread-safe: used on the thread that drives the core.
#ifndef SHOAL_RAFT_CORE_READ_ONLY_H_
#define SHOAL_RAFT_CORE_READ_ONLY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft.pb.h"
#include "raft/core/config.h"

namespace shoal::raft {

struct ReadIndexStatus {
  raftpb::Message req;  // the READ_INDEX message (entries[0].data is the request context)
  uint64_t index = 0;   // the leader's commit index when the request arrived
  std::set<uint64_t> acks;
};

class ReadOnly {
 public:
  explicit ReadOnly(ReadOnlyOption option) : option_(option) {}

  // Queues a request (ignored if one with the same context is already pending).
  void AddRequest(uint64_t index, const raftpb::Message& m);
  // Records that `from` acknowledged the heartbeat carrying `ctx`; returns the set of members
  // that acknowledged it so far (nullptr if ctx is unknown).
  const std::set<uint64_t>* RecvAck(uint64_t from, const std::string& ctx);
  // Dequeues and returns every request up to and including the one with context `ctx`.
  std::vector<ReadIndexStatus> Advance(const std::string& ctx);
  // The context of the newest pending request ("" if none).
  std::string LastPendingRequestCtx() const;
  size_t PendingCount() const { return queue_.size(); }
  ReadOnlyOption option() const { return option_; }
  void Reset() {
    pending_.clear();
    queue_.clear();
  }

 private:
  ReadOnlyOption option_;
  std::map<std::string, ReadIndexStatus> pending_;
  std::deque<std::string> queue_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_READ_ONLY_H_
