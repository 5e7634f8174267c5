#include "raft/core/read_only.h"

namespace shoal::raft {

void ReadOnly::AddRequest(uint64_t index, const raftpb::Message& m) {
  const std::string& ctx = m.entries(0).data();
  if (pending_.count(ctx) > 0) return;
  pending_.emplace(ctx, ReadIndexStatus{m, index, {}});
  queue_.push_back(ctx);
}

const std::set<uint64_t>* ReadOnly::RecvAck(uint64_t from, const std::string& ctx) {
  auto it = pending_.find(ctx);
  if (it == pending_.end()) return nullptr;
  it->second.acks.insert(from);
  return &it->second.acks;
}

std::vector<ReadIndexStatus> ReadOnly::Advance(const std::string& ctx) {
  std::vector<ReadIndexStatus> out;
  if (pending_.count(ctx) == 0) return out;
  // Requests are confirmed in arrival order: a heartbeat quorum for a later request proves
  // leadership at a time after every earlier one arrived.
  while (!queue_.empty()) {
    std::string c = std::move(queue_.front());
    queue_.pop_front();
    auto it = pending_.find(c);
    if (it != pending_.end()) {
      out.push_back(std::move(it->second));
      pending_.erase(it);
    }
    if (c == ctx) break;
  }
  return out;
}

std::string ReadOnly::LastPendingRequestCtx() const {
  return queue_.empty() ? std::string() : queue_.back();
}

}  // namespace shoal::raft
