#include "raft/core/progress.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "raft/core/check.h"

namespace shoal::raft {

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe:
      return "Probe";
    case ProgressState::kReplicate:
      return "Replicate";
    case ProgressState::kSnapshot:
      return "Snapshot";
  }
  return "?";
}

// ---- Inflights ----

Inflights::Inflights(int capacity) : capacity_(capacity) {}

void Inflights::Add(uint64_t index) {
  RAFT_CHECK(!Full(), "adding to a full inflights window");
  int next = start_ + count_;
  if (next >= capacity_) next -= capacity_;
  if (next >= static_cast<int>(buffer_.size())) {
    // Grow geometrically; slots are only ever appended while the ring has not wrapped.
    buffer_.resize(std::min<size_t>(capacity_, std::max<size_t>(buffer_.size() * 2, 1)));
  }
  buffer_[next] = index;
  ++count_;
}

void Inflights::FreeLE(uint64_t to) {
  if (count_ == 0 || to < buffer_[start_]) return;
  int i = 0, idx = start_;
  for (; i < count_; ++i) {
    if (to < buffer_[idx]) break;
    if (++idx >= capacity_) idx -= capacity_;
  }
  count_ -= i;
  start_ = idx;
  if (count_ == 0) start_ = 0;  // keeps the buffer from wrapping needlessly
}

void Inflights::FreeFirstOne() {
  if (count_ > 0) FreeLE(buffer_[start_]);
}

void Inflights::Reset() {
  count_ = 0;
  start_ = 0;
}

// ---- Progress ----

Progress::Progress(uint64_t next, int max_inflight, bool is_learner)
    : next_(next), inflights_(max_inflight), is_learner_(is_learner) {}

void Progress::ResetState(ProgressState s) {
  probe_sent_ = false;
  pending_snapshot_ = 0;
  state_ = s;
  inflights_.Reset();
}

void Progress::BecomeProbe() {
  // Coming back from a snapshot, the follower has at least the snapshot's entries: probe
  // right after it rather than from match.
  if (state_ == ProgressState::kSnapshot) {
    const uint64_t pending = pending_snapshot_;
    ResetState(ProgressState::kProbe);
    next_ = std::max(match_ + 1, pending + 1);
  } else {
    ResetState(ProgressState::kProbe);
    next_ = match_ + 1;
  }
}

void Progress::BecomeReplicate() {
  ResetState(ProgressState::kReplicate);
  next_ = match_ + 1;
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  ResetState(ProgressState::kSnapshot);
  pending_snapshot_ = snapshot_index;
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match_ < n) {
    match_ = n;
    updated = true;
    probe_sent_ = false;  // the follower answered: probing may continue
  }
  next_ = std::max(next_, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t match_hint) {
  if (state_ == ProgressState::kReplicate) {
    // In Replicate, next runs ahead of match; a rejection at or below match is stale.
    if (rejected <= match_) return false;
    next_ = match_ + 1;
    return true;
  }
  // Probe (or Snapshot): only the answer to the latest probe (index next-1) counts.
  if (next_ - 1 != rejected) return false;
  next_ = std::max<uint64_t>(std::min(rejected, match_hint + 1), 1);
  probe_sent_ = false;
  return true;
}

void Progress::SentEntries(uint64_t last_index, int entries) {
  switch (state_) {
    case ProgressState::kReplicate:
      if (entries > 0) {
        OptimisticUpdate(last_index);
        inflights_.Add(last_index);
      }
      break;
    case ProgressState::kProbe:
      if (entries > 0) probe_sent_ = true;
      break;
    case ProgressState::kSnapshot:
      break;
  }
}

bool Progress::IsPaused() const {
  switch (state_) {
    case ProgressState::kProbe:
      return probe_sent_;
    case ProgressState::kReplicate:
      return inflights_.Full();
    case ProgressState::kSnapshot:
      return true;
  }
  return false;
}

std::string Progress::DebugString() const {
  return absl::StrFormat("%s match=%d next=%d%s%s%s inflight=%d", ProgressStateName(state_), match_,
                         next_, is_learner_ ? " learner" : "", probe_sent_ ? " paused" : "",
                         state_ == ProgressState::kSnapshot
                             ? absl::StrFormat(" pending_snap=%d", pending_snapshot_)
                             : "",
                         inflights_.Count());
}

// ---- ProgressTracker ----

void ProgressTracker::AddVoter(uint64_t id, uint64_t next_index) {
  learners_.erase(id);
  voters_.insert(id);
  auto it = progress_.find(id);
  if (it == progress_.end()) {
    Progress pr(next_index, max_inflight_, false);
    // A new member counts as active so that adding it does not make the leader step down
    // (check quorum) before it had a chance to answer.
    pr.set_recent_active(true);
    progress_.emplace(id, std::move(pr));
  } else {
    it->second.set_is_learner(false);
  }
}

void ProgressTracker::AddLearner(uint64_t id, uint64_t next_index) {
  voters_.erase(id);
  learners_.insert(id);
  auto it = progress_.find(id);
  if (it == progress_.end()) {
    Progress pr(next_index, max_inflight_, true);
    pr.set_recent_active(true);
    progress_.emplace(id, std::move(pr));
  } else {
    it->second.set_is_learner(true);
  }
}

void ProgressTracker::Remove(uint64_t id) {
  voters_.erase(id);
  learners_.erase(id);
  progress_.erase(id);
  votes_.erase(id);
}

void ProgressTracker::ApplyConfChange(const raftpb::ConfChange& cc, uint64_t next_index) {
  switch (cc.type()) {
    case raftpb::CONF_CHANGE_TYPE_ADD_NODE:
      AddVoter(cc.node_id(), next_index);
      break;
    case raftpb::CONF_CHANGE_TYPE_ADD_LEARNER_NODE:
      AddLearner(cc.node_id(), next_index);
      break;
    case raftpb::CONF_CHANGE_TYPE_REMOVE_NODE:
      Remove(cc.node_id());
      break;
    default:
      break;
  }
}

raftpb::ConfState ProgressTracker::ConfState() const {
  raftpb::ConfState cs;
  for (uint64_t id : voters_) cs.add_voters(id);
  for (uint64_t id : learners_) cs.add_learners(id);
  return cs;
}

uint64_t ProgressTracker::Committed() const {
  return MajorityCommittedIndex(voters_, [this](uint64_t id) -> std::optional<uint64_t> {
    auto it = progress_.find(id);
    if (it == progress_.end()) return std::nullopt;
    return it->second.match();
  });
}

bool ProgressTracker::QuorumActive() const {
  std::map<uint64_t, bool> active;
  for (uint64_t id : voters_) {
    auto it = progress_.find(id);
    if (it != progress_.end()) active[id] = it->second.recent_active();
  }
  return shoal::raft::TallyVotes(voters_, active) == VoteResult::kWon;
}

void ProgressTracker::RecordVote(uint64_t id, bool granted) { votes_.emplace(id, granted); }

VoteResult ProgressTracker::TallyVotes(int* granted, int* rejected) const {
  int g = 0, r = 0;
  for (uint64_t id : voters_) {
    auto it = votes_.find(id);
    if (it == votes_.end()) continue;
    (it->second ? g : r)++;
  }
  if (granted) *granted = g;
  if (rejected) *rejected = r;
  return shoal::raft::TallyVotes(voters_, votes_);
}

Progress* ProgressTracker::Get(uint64_t id) {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

const Progress* ProgressTracker::Get(uint64_t id) const {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

}  // namespace shoal::raft
