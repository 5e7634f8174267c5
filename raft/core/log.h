// RaftLog: the replicated log as the core sees it — stable entries in Storage followed by
// unstable ones not yet persisted — plus the commit and apply cursors.
//
// Invariants: applied <= committed <= LastIndex(); FirstIndex()-1 is the index of the latest
// snapshot (its term is still known, which is what log matching needs at the boundary).
//
// Not thread-safe: used on the thread that drives the core.
#ifndef SHOAL_RAFT_CORE_LOG_H_
#define SHOAL_RAFT_CORE_LOG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "raft.pb.h"
#include "raft/core/storage.h"
#include "raft/core/unstable.h"

namespace shoal::raft {

class RaftLog {
 public:
  // Starts with everything in storage stable; committed = applied = snapshot index.
  // max_next_committed_size bounds NextCommittedEntries() (kNoLimit for none).
  RaftLog(Storage* storage, uint64_t max_next_committed_size);

  // If the entry at `index` has term `log_term`, appends `entries` after it (replacing any
  // conflicting suffix), raises committed to min(committed, last new index) and returns the last
  // new index. Returns nullopt if the log does not match at `index` (the append is refused).
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                      const std::vector<raftpb::Entry>& entries);
  // Appends to the unstable tail (truncating at entries.front().index()). Returns LastIndex().
  uint64_t Append(const std::vector<raftpb::Entry>& entries);
  // The index of the first entry in `entries` that conflicts with the log (same index, other
  // term) or is new; 0 if all are already present.
  uint64_t FindConflict(const std::vector<raftpb::Entry>& entries) const;
  // For a follower's rejection: the largest index <= `index` whose term is <= `term`. Lets the
  // leader skip a whole term of mismatched entries in one round trip.
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const;
  // Term of the entry at `index`: 0 (no error) beyond LastIndex(), ErrCompacted before
  // FirstIndex()-1.
  absl::StatusOr<uint64_t> Term(uint64_t index) const;
  // Term(), with any error mapped to 0 (used where "no such entry" means "no match").
  uint64_t ZeroTermOnError(uint64_t index) const;
  bool MatchTerm(uint64_t index, uint64_t term) const;
  // Whether a candidate with last entry (last_index, term) is at least as up to date (§5.4.1).
  bool IsUpToDate(uint64_t last_index, uint64_t term) const;

  // Entries from `index` to the end, limited to max_bytes.
  absl::StatusOr<std::vector<raftpb::Entry>> EntriesFrom(uint64_t index, uint64_t max_bytes) const;
  // Entries in [lo, hi), limited to max_bytes; ErrCompacted if lo < FirstIndex().
  absl::StatusOr<std::vector<raftpb::Entry>> Slice(uint64_t lo, uint64_t hi,
                                                   uint64_t max_bytes) const;
  std::vector<raftpb::Entry> AllEntries() const;  // for tests

  // Committed entries not yet applied (limited to max_next_committed_size).
  std::vector<raftpb::Entry> NextCommittedEntries() const;
  bool HasNextCommittedEntries() const;
  const std::vector<raftpb::Entry>& UnstableEntries() const { return unstable_.entries(); }
  // The pending (not yet persisted) snapshot, if any.
  const std::optional<raftpb::Snapshot>& UnstableSnapshot() const { return unstable_.snapshot(); }
  absl::StatusOr<raftpb::Snapshot> Snapshot() const;

  // Raises committed to `to_commit` if the entry there has term `term`; true if it moved.
  bool MaybeCommit(uint64_t to_commit, uint64_t term);
  // REQUIRES: to_commit <= LastIndex(); commit never decreases.
  void CommitTo(uint64_t to_commit);
  // REQUIRES: committed >= index >= applied (or index == 0 as a no-op).
  void AppliedTo(uint64_t index);
  void StableTo(uint64_t index, uint64_t term) { unstable_.StableTo(index, term); }
  void StableSnapTo(uint64_t index) { unstable_.StableSnapTo(index); }
  // Replaces the log with the snapshot (pending persistence); committed = snapshot index.
  void Restore(const raftpb::Snapshot& snap);

  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }
  Storage* storage() const { return storage_; }

  std::string DebugString() const;

 private:
  absl::Status CheckOutOfBounds(uint64_t lo, uint64_t hi) const;

  Storage* storage_;
  Unstable unstable_;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
  uint64_t max_next_committed_size_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_LOG_H_
