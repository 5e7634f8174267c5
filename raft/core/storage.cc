#include "raft/core/storage.h"

#include <utility>

namespace shoal::raft {

absl::Status ErrCompacted() { return absl::OutOfRangeError("requested index is compacted"); }
absl::Status ErrUnavailable() { return absl::NotFoundError("requested entry is unavailable"); }
absl::Status ErrSnapshotTemporarilyUnavailable() {
  return absl::UnavailableError("snapshot is temporarily unavailable");
}
absl::Status ErrSnapOutOfDate() {
  return absl::FailedPreconditionError("requested index is older than the existing snapshot");
}
bool IsCompacted(const absl::Status& s) { return s.code() == absl::StatusCode::kOutOfRange; }
bool IsUnavailable(const absl::Status& s) { return s.code() == absl::StatusCode::kNotFound; }
bool IsSnapshotTemporarilyUnavailable(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable;
}

uint64_t EntrySize(const raftpb::Entry& e) { return e.ByteSizeLong(); }

void LimitSize(std::vector<raftpb::Entry>& entries, uint64_t max_bytes) {
  if (entries.empty() || max_bytes == kNoLimit) return;
  uint64_t size = EntrySize(entries[0]);
  size_t limit = 1;
  for (; limit < entries.size(); ++limit) {
    size += EntrySize(entries[limit]);
    if (size > max_bytes) break;
  }
  entries.resize(limit);
}

MemoryStorage::MemoryStorage() { ents_.emplace_back(); }

absl::Status MemoryStorage::SetHardState(const raftpb::HardState& hs) {
  absl::MutexLock l(&mu_);
  hard_state_ = hs;
  return absl::OkStatus();
}

raftpb::HardState MemoryStorage::hard_state() const {
  absl::MutexLock l(&mu_);
  return hard_state_;
}

absl::Status MemoryStorage::ApplySnapshot(const raftpb::Snapshot& snap) {
  absl::MutexLock l(&mu_);
  if (snapshot_.metadata().index() >= snap.metadata().index()) return ErrSnapOutOfDate();
  snapshot_ = snap;
  ents_.clear();
  raftpb::Entry dummy;
  dummy.set_index(snap.metadata().index());
  dummy.set_term(snap.metadata().term());
  ents_.push_back(std::move(dummy));
  return absl::OkStatus();
}

absl::Status MemoryStorage::SetInitialConfState(const raftpb::ConfState& cs) {
  absl::MutexLock l(&mu_);
  if (ents_.size() != 1 || ents_[0].index() != 0) {
    return absl::FailedPreconditionError("initial membership can only be set on a fresh storage");
  }
  *snapshot_.mutable_metadata()->mutable_conf_state() = cs;
  return absl::OkStatus();
}

absl::StatusOr<raftpb::SnapshotMetadata> MemoryStorage::CreateSnapshot(uint64_t index,
                                                                       const raftpb::ConfState* cs,
                                                                       std::string data) {
  absl::MutexLock l(&mu_);
  if (index <= snapshot_.metadata().index()) return ErrSnapOutOfDate();
  const uint64_t offset = ents_[0].index();
  if (index > LastIndexLocked()) {
    return absl::InvalidArgumentError("snapshot index is beyond the last entry");
  }
  snapshot_.mutable_metadata()->set_index(index);
  snapshot_.mutable_metadata()->set_term(ents_[index - offset].term());
  if (cs != nullptr) *snapshot_.mutable_metadata()->mutable_conf_state() = *cs;
  snapshot_.set_data(std::move(data));
  return snapshot_.metadata();
}

absl::Status MemoryStorage::Compact(uint64_t compact_index) {
  absl::MutexLock l(&mu_);
  const uint64_t offset = ents_[0].index();
  if (compact_index <= offset) return ErrCompacted();
  if (compact_index > LastIndexLocked()) {
    return absl::InvalidArgumentError("compact index is beyond the last entry");
  }
  const size_t i = compact_index - offset;
  // ents_[i] becomes the new dummy: it keeps index and term but drops the payload.
  std::vector<raftpb::Entry> ents;
  ents.reserve(ents_.size() - i);
  raftpb::Entry dummy;
  dummy.set_index(ents_[i].index());
  dummy.set_term(ents_[i].term());
  ents.push_back(std::move(dummy));
  for (size_t j = i + 1; j < ents_.size(); ++j) ents.push_back(std::move(ents_[j]));
  ents_ = std::move(ents);
  return absl::OkStatus();
}

absl::Status MemoryStorage::Append(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].index() != entries[i - 1].index() + 1) {
      return absl::InvalidArgumentError("appended entries are not contiguous");
    }
  }
  absl::MutexLock l(&mu_);
  const uint64_t first = FirstIndexLocked();
  const uint64_t last = entries.back().index();
  if (last < first) return absl::OkStatus();  // all compacted already
  size_t skip = 0;
  if (entries.front().index() < first) skip = first - entries.front().index();
  const uint64_t start = entries[skip].index();
  const uint64_t offset = ents_[0].index();
  if (start - offset > ents_.size()) {
    return absl::InvalidArgumentError("appended entries leave a gap after the last entry");
  }
  ents_.resize(start - offset);  // drop any conflicting suffix
  ents_.insert(ents_.end(), entries.begin() + skip, entries.end());
  return absl::OkStatus();
}

absl::StatusOr<Storage::InitialState> MemoryStorage::GetInitialState() const {
  absl::MutexLock l(&mu_);
  return InitialState{hard_state_, snapshot_.metadata().conf_state()};
}

absl::StatusOr<std::vector<raftpb::Entry>> MemoryStorage::Entries(uint64_t lo, uint64_t hi,
                                                                  uint64_t max_bytes) const {
  absl::MutexLock l(&mu_);
  const uint64_t offset = ents_[0].index();
  if (lo <= offset) return ErrCompacted();
  if (hi > LastIndexLocked() + 1 || ents_.size() == 1) return ErrUnavailable();
  if (lo > hi) return absl::InvalidArgumentError("Entries: lo > hi");
  std::vector<raftpb::Entry> out(ents_.begin() + (lo - offset), ents_.begin() + (hi - offset));
  LimitSize(out, max_bytes);
  return out;
}

absl::StatusOr<uint64_t> MemoryStorage::Term(uint64_t index) const {
  absl::MutexLock l(&mu_);
  const uint64_t offset = ents_[0].index();
  if (index < offset) return ErrCompacted();
  if (index - offset >= ents_.size()) return ErrUnavailable();
  return ents_[index - offset].term();
}

uint64_t MemoryStorage::FirstIndex() const {
  absl::MutexLock l(&mu_);
  return FirstIndexLocked();
}

uint64_t MemoryStorage::LastIndex() const {
  absl::MutexLock l(&mu_);
  return LastIndexLocked();
}

uint64_t MemoryStorage::FirstIndexLocked() const { return ents_[0].index() + 1; }
uint64_t MemoryStorage::LastIndexLocked() const { return ents_[0].index() + ents_.size() - 1; }

absl::StatusOr<raftpb::Snapshot> MemoryStorage::GetSnapshot() const {
  absl::MutexLock l(&mu_);
  return snapshot_;
}

}  // namespace shoal::raft
