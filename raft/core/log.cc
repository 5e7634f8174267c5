#include "raft/core/log.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "raft/core/check.h"

namespace shoal::raft {

RaftLog::RaftLog(Storage* storage, uint64_t max_next_committed_size)
    : storage_(storage), max_next_committed_size_(max_next_committed_size) {
  const uint64_t first = storage_->FirstIndex();
  const uint64_t last = storage_->LastIndex();
  unstable_.set_offset(last + 1);
  committed_ = first - 1;
  applied_ = first - 1;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                             const std::vector<raftpb::Entry>& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const uint64_t last_new = index + entries.size();
  const uint64_t ci = FindConflict(entries);
  if (ci != 0) {
    RAFT_CHECK(ci > committed_, "conflicting entry at or below the commit index");
    const uint64_t offset = index + 1;
    Append(std::vector<raftpb::Entry>(entries.begin() + (ci - offset), entries.end()));
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

uint64_t RaftLog::Append(const std::vector<raftpb::Entry>& entries) {
  if (entries.empty()) return LastIndex();
  RAFT_CHECK(entries.front().index() > committed_, "appending over committed entries");
  unstable_.TruncateAndAppend(entries);
  return LastIndex();
}

uint64_t RaftLog::FindConflict(const std::vector<raftpb::Entry>& entries) const {
  for (const auto& e : entries) {
    if (!MatchTerm(e.index(), e.term())) return e.index();
  }
  return 0;
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  if (index > LastIndex()) return index;
  while (true) {
    auto t = Term(index);
    if (!t.ok() || *t <= term) return index;
    --index;
  }
}

uint64_t RaftLog::FirstIndex() const {
  if (auto i = unstable_.MaybeFirstIndex()) return *i;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (auto i = unstable_.MaybeLastIndex()) return *i;
  return storage_->LastIndex();
}

uint64_t RaftLog::LastTerm() const {
  auto t = Term(LastIndex());
  RAFT_CHECK(t.ok(), "term of the last entry is unknown");
  return *t;
}

absl::StatusOr<uint64_t> RaftLog::Term(uint64_t index) const {
  // Valid range: [index of the snapshot (dummy entry), last index].
  const uint64_t dummy = FirstIndex() - 1;
  if (index < dummy) return ErrCompacted();
  if (index > LastIndex()) return uint64_t{0};
  if (auto t = unstable_.MaybeTerm(index)) return *t;
  auto t = storage_->Term(index);
  if (t.ok() || IsCompacted(t.status()) || shoal::raft::IsUnavailable(t.status())) return t;
  RAFT_CHECK(false, std::string(t.status().message()).c_str());
  return t;
}

uint64_t RaftLog::ZeroTermOnError(uint64_t index) const {
  auto t = Term(index);
  return t.ok() ? *t : 0;
}

bool RaftLog::MatchTerm(uint64_t index, uint64_t term) const {
  auto t = Term(index);
  return t.ok() && *t == term;
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t term) const {
  const uint64_t my_term = LastTerm();
  return term > my_term || (term == my_term && last_index >= LastIndex());
}

absl::StatusOr<std::vector<raftpb::Entry>> RaftLog::EntriesFrom(uint64_t index,
                                                                uint64_t max_bytes) const {
  if (index > LastIndex()) return std::vector<raftpb::Entry>{};
  return Slice(index, LastIndex() + 1, max_bytes);
}

std::vector<raftpb::Entry> RaftLog::AllEntries() const {
  auto ents = EntriesFrom(FirstIndex(), kNoLimit);
  if (ents.ok()) return *std::move(ents);
  // A concurrent compaction can race with this read; try again.
  RAFT_CHECK(IsCompacted(ents.status()), "AllEntries");
  return AllEntries();
}

absl::Status RaftLog::CheckOutOfBounds(uint64_t lo, uint64_t hi) const {
  RAFT_CHECK(lo <= hi, "invalid slice");
  if (lo < FirstIndex()) return ErrCompacted();
  RAFT_CHECK(hi <= LastIndex() + 1, "slice beyond the last index");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<raftpb::Entry>> RaftLog::Slice(uint64_t lo, uint64_t hi,
                                                          uint64_t max_bytes) const {
  if (absl::Status s = CheckOutOfBounds(lo, hi); !s.ok()) return s;
  std::vector<raftpb::Entry> out;
  if (lo == hi) return out;
  const uint64_t offset = unstable_.offset();
  if (lo < offset) {
    const uint64_t stable_hi = std::min(hi, offset);
    auto stored = storage_->Entries(lo, stable_hi, max_bytes);
    if (!stored.ok()) {
      if (IsCompacted(stored.status())) return stored.status();
      RAFT_CHECK(false, "entries missing from storage");
    }
    // Storage applied the size limit already: stop if it cut the range short.
    if (stored->size() < stable_hi - lo) return stored;
    out = *std::move(stored);
  }
  if (hi > offset) {
    auto unstable = unstable_.Slice(std::max(lo, offset), hi);
    out.insert(out.end(), std::make_move_iterator(unstable.begin()),
               std::make_move_iterator(unstable.end()));
  }
  LimitSize(out, max_bytes);
  return out;
}

std::vector<raftpb::Entry> RaftLog::NextCommittedEntries() const {
  const uint64_t off = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 <= off) return {};
  auto ents = Slice(off, committed_ + 1, max_next_committed_size_);
  RAFT_CHECK(ents.ok(), "committed entries unavailable");
  return *std::move(ents);
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ + 1 > std::max(applied_ + 1, FirstIndex());
}

absl::StatusOr<raftpb::Snapshot> RaftLog::Snapshot() const {
  if (unstable_.snapshot()) return *unstable_.snapshot();
  return storage_->GetSnapshot();
}

bool RaftLog::MaybeCommit(uint64_t to_commit, uint64_t term) {
  if (to_commit > committed_ && ZeroTermOnError(to_commit) == term) {
    CommitTo(to_commit);
    return true;
  }
  return false;
}

void RaftLog::CommitTo(uint64_t to_commit) {
  if (to_commit <= committed_) return;  // commit never decreases
  RAFT_CHECK(to_commit <= LastIndex(), "commit index beyond the last index");
  committed_ = to_commit;
}

void RaftLog::AppliedTo(uint64_t index) {
  if (index == 0) return;
  RAFT_CHECK(committed_ >= index && index >= applied_, "applied index out of range");
  applied_ = index;
}

void RaftLog::Restore(const raftpb::Snapshot& snap) {
  committed_ = snap.metadata().index();
  unstable_.Restore(snap);
}

std::string RaftLog::DebugString() const {
  return absl::StrFormat("committed=%d applied=%d unstable.offset=%d len(unstable)=%d", committed_,
                         applied_, unstable_.offset(), unstable_.entries().size());
}

}  // namespace shoal::raft
