// Storage: the core's read-only view of the stable (persisted) Raft log, and MemoryStorage, the
// in-memory implementation the node driver keeps beside its durable log.
//
// The core never writes to Storage. The driver persists what a Ready hands it (entries, hard
// state, snapshot) and then makes it visible here, so Storage always reflects what is durable.
//
// Index space: MemoryStorage keeps a dummy entry at position 0 whose index/term are those of the
// last snapshot (0/0 initially). FirstIndex() is the first index whose entry is still available
// (snapshot index + 1); Term() also answers for FirstIndex()-1 (the snapshot's own index).
//
// Errors (absl::Status codes, so callers can test them without string matching):
//   Compacted    — OutOfRange:  the requested index precedes the snapshot (IsCompacted).
//   Unavailable  — NotFound:    the requested index is beyond the last entry (IsUnavailable).
//   SnapshotTemporarilyUnavailable — Unavailable: the snapshot is being built; retry later.
//
// Size limits: a max_bytes argument limits the summed serialized size of entries returned, but
// the first entry is always returned (so progress is possible with oversized entries). kNoLimit
// disables the limit.
//
// Note: absl also declares absl::IsUnavailable; with an absl::Status argument, ADL makes an
// unqualified call ambiguous, so call shoal::raft::IsUnavailable qualified.
//
// Threading: Storage implementations must be safe to call from the thread driving the core while
// the driver mutates them from another; MemoryStorage guards everything with one mutex.
#ifndef SHOAL_RAFT_CORE_STORAGE_H_
#define SHOAL_RAFT_CORE_STORAGE_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "raft.pb.h"

namespace shoal::raft {

inline constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

absl::Status ErrCompacted();
absl::Status ErrUnavailable();
absl::Status ErrSnapshotTemporarilyUnavailable();
absl::Status ErrSnapOutOfDate();
bool IsCompacted(const absl::Status& s);
bool IsUnavailable(const absl::Status& s);
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s);

// Keeps the longest prefix of `entries` whose summed serialized size is <= max_bytes, but at
// least one entry.
void LimitSize(std::vector<raftpb::Entry>& entries, uint64_t max_bytes);
uint64_t EntrySize(const raftpb::Entry& e);

class Storage {
 public:
  virtual ~Storage() = default;

  struct InitialState {
    raftpb::HardState hard_state;
    raftpb::ConfState conf_state;
  };
  // The persisted hard state and the membership as of the last snapshot (RawNode::Create replays
  // later CONF_CHANGE entries up to Config::applied on top of it).
  virtual absl::StatusOr<InitialState> GetInitialState() const = 0;
  // Entries in [lo, hi), limited to max_bytes (see above). REQUIRES: lo <= hi.
  virtual absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                             uint64_t max_bytes) const = 0;
  // Term of the entry at `index`, for index in [FirstIndex()-1, LastIndex()].
  virtual absl::StatusOr<uint64_t> Term(uint64_t index) const = 0;
  virtual uint64_t FirstIndex() const = 0;
  virtual uint64_t LastIndex() const = 0;
  virtual absl::StatusOr<raftpb::Snapshot> GetSnapshot() const = 0;
};

class MemoryStorage : public Storage {
 public:
  MemoryStorage();  // A dummy entry at index 0, term 0; empty membership.

  absl::Status SetHardState(const raftpb::HardState& hs);
  // Replaces everything with the snapshot. Fails with ErrSnapOutOfDate if it is older than the
  // current snapshot.
  absl::Status ApplySnapshot(const raftpb::Snapshot& snap);
  // Records a snapshot at `index` (which must be <= LastIndex() and not older than the current
  // snapshot) holding `data`; cs, if non-null, becomes its membership, else the current one is
  // kept. Entries are not discarded: call Compact() for that. Returns the snapshot's metadata
  // (GetSnapshot() gives the whole of it; the data is not copied here).
  absl::StatusOr<raftpb::SnapshotMetadata> CreateSnapshot(uint64_t index,
                                                          const raftpb::ConfState* cs,
                                                          std::string data);
  // Discards entries before compact_index. REQUIRES: compact_index <= LastIndex().
  absl::Status Compact(uint64_t compact_index);
  // Appends entries, which must be contiguous; a conflicting suffix already stored is replaced.
  // Entries already compacted are skipped.
  absl::Status Append(const std::vector<raftpb::Entry>& entries);
  // Sets the initial membership of a fresh storage (nothing appended, no snapshot) without
  // writing log entries: how tests and simulations bootstrap a cluster. Real clusters may use
  // RawNode::Bootstrap instead, which writes CONF_CHANGE entries.
  absl::Status SetInitialConfState(const raftpb::ConfState& cs);

  absl::StatusOr<InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<raftpb::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) const override;
  absl::StatusOr<uint64_t> Term(uint64_t index) const override;
  uint64_t FirstIndex() const override;
  uint64_t LastIndex() const override;
  absl::StatusOr<raftpb::Snapshot> GetSnapshot() const override;

  raftpb::HardState hard_state() const;

 private:
  uint64_t FirstIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t LastIndexLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  raftpb::HardState hard_state_ ABSL_GUARDED_BY(mu_);
  raftpb::Snapshot snapshot_ ABSL_GUARDED_BY(mu_);
  // ents_[i] has index ents_[0].index() + i; ents_[0] is the dummy standing for the snapshot.
  std::vector<raftpb::Entry> ents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_STORAGE_H_
