// What a leader knows about each member's log (Progress), the flow-control window for
// pipelined appends (Inflights), and the membership with its per-member progress
// (ProgressTracker).
//
// Progress states (Raft thesis §4.2.1 / etcd's design):
//   kProbe     — the leader does not know where the follower's log ends: it sends one APP per
//                heartbeat interval and waits for the answer before sending more.
//   kReplicate — the follower is known to match up to `match`: the leader streams APPs and
//                advances `next` optimistically, bounded by the Inflights window.
//   kSnapshot  — the follower needs compacted entries: the leader sent a snapshot and sends
//                nothing else until the driver reports the snapshot's fate (ReportSnapshot) or
//                the follower acknowledges an index at or past it.
//
// Not thread-safe: used on the thread that drives the core.
#ifndef SHOAL_RAFT_CORE_PROGRESS_H_
#define SHOAL_RAFT_CORE_PROGRESS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "raft.pb.h"
#include "raft/core/quorum.h"

namespace shoal::raft {

enum class ProgressState { kProbe, kReplicate, kSnapshot };
const char* ProgressStateName(ProgressState s);

// A ring buffer of the last indexes of APP messages sent but not yet acknowledged.
class Inflights {
 public:
  explicit Inflights(int capacity);

  // Records an APP whose last entry is `index`. REQUIRES: !Full(); indexes increase.
  void Add(uint64_t index);
  // Frees every slot for messages whose last index is <= to.
  void FreeLE(uint64_t to);
  void FreeFirstOne();
  bool Full() const { return count_ == capacity_; }
  int Count() const { return count_; }
  int capacity() const { return capacity_; }
  void Reset();

 private:
  int capacity_;
  int start_ = 0;
  int count_ = 0;
  std::vector<uint64_t> buffer_;  // grows lazily up to capacity_
};

class Progress {
 public:
  Progress(uint64_t next, int max_inflight, bool is_learner);

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);

  // The follower acknowledged entries up to n: raises match (and next). Returns false if the
  // acknowledgement is stale (n <= match).
  bool MaybeUpdate(uint64_t n);
  // Optimistically moves next past an APP that ends at n (Replicate state).
  void OptimisticUpdate(uint64_t n) { next_ = n + 1; }
  // The follower rejected an APP at `rejected` and hinted its log matches at most up to
  // match_hint. Returns false if the rejection is stale.
  bool MaybeDecrTo(uint64_t rejected, uint64_t match_hint);
  // Records that an APP ending at `last_index` (with `entries` entries) was sent.
  void SentEntries(uint64_t last_index, int entries);
  // Whether the leader should hold off sending APPs to this member for now.
  bool IsPaused() const;

  uint64_t match() const { return match_; }
  uint64_t next() const { return next_; }
  ProgressState state() const { return state_; }
  uint64_t pending_snapshot() const { return pending_snapshot_; }
  bool recent_active() const { return recent_active_; }
  void set_recent_active(bool a) { recent_active_ = a; }
  bool probe_sent() const { return probe_sent_; }
  void set_probe_sent(bool s) { probe_sent_ = s; }
  bool is_learner() const { return is_learner_; }
  void set_is_learner(bool l) { is_learner_ = l; }
  Inflights& inflights() { return inflights_; }
  const Inflights& inflights() const { return inflights_; }
  // A failed snapshot send: probe from match again rather than from the snapshot index.
  void AbortPendingSnapshot() { pending_snapshot_ = 0; }
  // Test hooks.
  void set_match(uint64_t m) { match_ = m; }
  void set_next(uint64_t n) { next_ = n; }

  std::string DebugString() const;

 private:
  void ResetState(ProgressState s);

  uint64_t match_ = 0;
  uint64_t next_ = 1;
  ProgressState state_ = ProgressState::kProbe;
  uint64_t pending_snapshot_ = 0;  // index of the snapshot in flight (kSnapshot)
  // Set by any message from the member; cleared by the leader each election timeout (check
  // quorum).
  bool recent_active_ = false;
  // kProbe: an APP was sent since the last heartbeat response; pause until one arrives.
  bool probe_sent_ = false;
  Inflights inflights_;
  bool is_learner_ = false;
};

// The membership (voters, learners) and, on the leader, each member's Progress; also the votes
// of the current election.
class ProgressTracker {
 public:
  explicit ProgressTracker(int max_inflight) : max_inflight_(max_inflight) {}

  // Applies one membership change: ids become voters / learners / are removed. Idempotent: each
  // change assigns a role to a node, so replaying changes converges. New members start with
  // Progress{next = next_index}.
  void AddVoter(uint64_t id, uint64_t next_index);
  void AddLearner(uint64_t id, uint64_t next_index);
  void Remove(uint64_t id);
  // Applies one change (ADD_NODE / ADD_LEARNER_NODE / REMOVE_NODE) with the above.
  void ApplyConfChange(const raftpb::ConfChange& cc, uint64_t next_index);
  raftpb::ConfState ConfState() const;

  // The largest index replicated on a majority of voters.
  uint64_t Committed() const;
  // Whether a majority of voters was recently active (the leader counts itself via its own
  // progress being marked active).
  bool QuorumActive() const;
  bool IsVoter(uint64_t id) const { return voters_.count(id) > 0; }
  bool IsLearner(uint64_t id) const { return learners_.count(id) > 0; }
  bool IsSingleton() const { return voters_.size() == 1; }

  void RecordVote(uint64_t id, bool granted);  // first vote per id counts
  void ResetVotes() { votes_.clear(); }
  VoteResult TallyVotes(int* granted = nullptr, int* rejected = nullptr) const;

  Progress* Get(uint64_t id);
  const Progress* Get(uint64_t id) const;
  // Every member's progress (voters and learners), by id.
  std::map<uint64_t, Progress>& progress() { return progress_; }
  const std::map<uint64_t, Progress>& progress() const { return progress_; }
  const std::set<uint64_t>& voters() const { return voters_; }
  const std::set<uint64_t>& learners() const { return learners_; }
  int max_inflight() const { return max_inflight_; }

 private:
  int max_inflight_;
  std::set<uint64_t> voters_;
  std::set<uint64_t> learners_;
  std::map<uint64_t, Progress> progress_;
  std::map<uint64_t, bool> votes_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_PROGRESS_H_
