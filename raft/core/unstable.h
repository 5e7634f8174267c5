// Unstable: the tail of the Raft log (and possibly an incoming snapshot) that the core has
// accepted but the driver has not yet persisted. It sits in front of Storage: index `offset()`
// is the first unstable entry, and everything before it is in Storage (or in the snapshot).
//
// Not thread-safe: owned by RaftLog, used on the thread that drives the core.
#ifndef SHOAL_RAFT_CORE_UNSTABLE_H_
#define SHOAL_RAFT_CORE_UNSTABLE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "raft.pb.h"

namespace shoal::raft {

class Unstable {
 public:
  // The first index that may be stored here: the index after the pending snapshot, if any.
  std::optional<uint64_t> MaybeFirstIndex() const;
  // The last index known here: of the last entry, else of the pending snapshot.
  std::optional<uint64_t> MaybeLastIndex() const;
  std::optional<uint64_t> MaybeTerm(uint64_t index) const;

  // The driver persisted entries up to (index, term): drop them, unless they were overwritten
  // since (term mismatch) or are not here.
  void StableTo(uint64_t index, uint64_t term);
  // The driver persisted the pending snapshot with this index.
  void StableSnapTo(uint64_t index);
  void Restore(const raftpb::Snapshot& snap);
  // Appends entries; entries at or after entries.front().index() are replaced.
  void TruncateAndAppend(const std::vector<raftpb::Entry>& entries);
  // Entries in [lo, hi). REQUIRES: offset() <= lo <= hi <= offset() + entries().size().
  std::vector<raftpb::Entry> Slice(uint64_t lo, uint64_t hi) const;

  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t o) { offset_ = o; }
  const std::vector<raftpb::Entry>& entries() const { return entries_; }
  const std::optional<raftpb::Snapshot>& snapshot() const { return snapshot_; }

 private:
  std::optional<raftpb::Snapshot> snapshot_;
  std::vector<raftpb::Entry> entries_;
  uint64_t offset_ = 0;  // index of entries_[0]
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_UNSTABLE_H_
