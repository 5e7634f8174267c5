#include "raft/core/unstable.h"

#include "raft/core/check.h"

namespace shoal::raft {

std::optional<uint64_t> Unstable::MaybeFirstIndex() const {
  if (snapshot_) return snapshot_->metadata().index() + 1;
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeLastIndex() const {
  if (!entries_.empty()) return offset_ + entries_.size() - 1;
  if (snapshot_) return snapshot_->metadata().index();
  return std::nullopt;
}

std::optional<uint64_t> Unstable::MaybeTerm(uint64_t index) const {
  if (index < offset_) {
    if (snapshot_ && snapshot_->metadata().index() == index) return snapshot_->metadata().term();
    return std::nullopt;
  }
  auto last = MaybeLastIndex();
  if (!last || index > *last) return std::nullopt;
  if (entries_.empty()) return std::nullopt;  // only the snapshot, and index != its index
  return entries_[index - offset_].term();
}

void Unstable::StableTo(uint64_t index, uint64_t term) {
  auto t = MaybeTerm(index);
  if (!t) return;
  // Only entries still here (index >= offset) with the persisted term are dropped; a matching
  // snapshot term at index < offset_ means nothing to drop.
  if (*t == term && index >= offset_) {
    entries_.erase(entries_.begin(), entries_.begin() + (index + 1 - offset_));
    offset_ = index + 1;
  }
}

void Unstable::StableSnapTo(uint64_t index) {
  if (snapshot_ && snapshot_->metadata().index() == index) snapshot_.reset();
}

void Unstable::Restore(const raftpb::Snapshot& snap) {
  offset_ = snap.metadata().index() + 1;
  entries_.clear();
  snapshot_ = snap;
}

void Unstable::TruncateAndAppend(const std::vector<raftpb::Entry>& ents) {
  if (ents.empty()) return;
  const uint64_t after = ents.front().index();
  if (after == offset_ + entries_.size()) {
    // Directly after the tail.
  } else if (after <= offset_) {
    // Replaces everything unstable; the new entries start at `after`.
    offset_ = after;
    entries_.clear();
  } else {
    // Keeps [offset_, after) and replaces the rest.
    RAFT_CHECK(after - offset_ <= entries_.size(), "gap in unstable entries");
    entries_.resize(after - offset_);
  }
  entries_.insert(entries_.end(), ents.begin(), ents.end());
}

std::vector<raftpb::Entry> Unstable::Slice(uint64_t lo, uint64_t hi) const {
  RAFT_CHECK(offset_ <= lo && lo <= hi && hi <= offset_ + entries_.size(), "unstable slice");
  return std::vector<raftpb::Entry>(entries_.begin() + (lo - offset_),
                                    entries_.begin() + (hi - offset_));
}

}  // namespace shoal::raft
