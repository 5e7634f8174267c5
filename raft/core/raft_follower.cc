// The follower's handling of the leader's log traffic (appends, heartbeats, snapshots),
// membership changes, and the bookkeeping after a Ready was handled.
#include <algorithm>
#include <utility>

#include "raft/core/check.h"
#include "raft/core/raft.h"

namespace shoal::raft {

using raftpb::Message;

// ---- Follower-side log handling ----

void Raft::HandleAppendEntries(const Message& m) {
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MESSAGE_TYPE_APP_RESP);
  if (m.index() < raft_log_->committed()) {
    // Everything up to our commit index matches the leader's log already.
    resp.set_index(raft_log_->committed());
    Send(std::move(resp));
    return;
  }
  std::vector<raftpb::Entry> ents(m.entries().begin(), m.entries().end());
  if (auto last = raft_log_->MaybeAppend(m.index(), m.log_term(), m.commit(), ents)) {
    resp.set_index(*last);
    Send(std::move(resp));
    return;
  }
  // Reject, with a hint: the last index at or before m.index() whose term is <= m.log_term().
  // Entries after it cannot match, so the leader can skip them all at once.
  uint64_t hint = std::min(m.index(), raft_log_->LastIndex());
  hint = raft_log_->FindConflictByTerm(hint, m.log_term());
  resp.set_index(m.index());
  resp.set_reject(true);
  resp.set_reject_hint(hint);
  resp.set_log_term(raft_log_->ZeroTermOnError(hint));
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  raft_log_->CommitTo(m.commit());
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MESSAGE_TYPE_HEARTBEAT_RESP);
  resp.set_context(m.context());
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.set_to(m.from());
  resp.set_type(raftpb::MESSAGE_TYPE_APP_RESP);
  if (Restore(m.snapshot())) {
    resp.set_index(raft_log_->LastIndex());
  } else {
    resp.set_index(raft_log_->committed());
  }
  Send(std::move(resp));
}

bool Raft::Restore(const raftpb::Snapshot& snap) {
  const auto& md = snap.metadata();
  if (md.index() <= raft_log_->committed()) return false;
  if (state_ != StateType::kFollower) {
    // Snapshots only come from a leader, and receiving one makes us its follower first.
    return false;
  }
  if (raft_log_->MatchTerm(md.index(), md.term())) {
    // We already have the snapshot's last entry: just learn that it is committed.
    raft_log_->CommitTo(md.index());
    return false;
  }
  raft_log_->Restore(snap);
  // The membership comes with the snapshot. It may predate our own addition (the change that
  // added us follows in the log), so a snapshot without us is accepted too.
  ProgressTracker t(tracker_.max_inflight());
  const uint64_t next = raft_log_->LastIndex() + 1;
  for (uint64_t v : md.conf_state().voters()) t.AddVoter(v, next);
  for (uint64_t l : md.conf_state().learners()) t.AddLearner(l, next);
  tracker_ = std::move(t);
  is_learner_ = tracker_.IsLearner(id_);
  return true;
}

// ---- Membership ----

raftpb::ConfState Raft::ApplyConfChange(const raftpb::ConfChange& cc) {
  // A new member is probed at the last entry (not after it), so the leader has something to
  // send right away instead of waiting for the next heartbeat.
  tracker_.ApplyConfChange(cc, std::max<uint64_t>(raft_log_->LastIndex(), 1));
  return AfterConfChange();
}

raftpb::ConfState Raft::AfterConfChange() {
  is_learner_ = tracker_.IsLearner(id_);
  if (state_ == StateType::kLeader) {
    if (!tracker_.IsVoter(id_)) {
      // Removed (or demoted): stop leading. If a voter is fully caught up, let it campaign at
      // once instead of waiting for an election timeout.
      uint64_t best = kNone, best_match = 0;
      for (uint64_t v : tracker_.voters()) {
        const Progress* pr = tracker_.Get(v);
        if (pr != nullptr && pr->match() >= best_match) {
          best = v;
          best_match = pr->match();
        }
      }
      if (best != kNone && best_match == raft_log_->LastIndex()) SendTimeoutNow(best);
      BecomeFollower(term_, kNone);
    } else {
      if (lead_transferee_ != kNone && !tracker_.IsVoter(lead_transferee_)) AbortLeaderTransfer();
      // The quorum may have shrunk, which can commit entries; new members should be probed
      // now rather than at the next heartbeat.
      if (MaybeCommit()) {
        ReleasePendingReadIndexMessages();
        BcastAppend();
      } else {
        for (auto& [id, pr] : tracker_.progress()) {
          if (id != id_) MaybeSendAppend(id, false);
        }
      }
    }
  }
  return tracker_.ConfState();
}

// ---- Ready bookkeeping ----

void Raft::Advance(uint64_t applied_index, const std::vector<raftpb::Entry>& committed,
                   const std::vector<raftpb::Entry>& persisted, uint64_t persisted_snapshot_index) {
  ReduceUncommittedSize(committed);
  if (applied_index > 0) raft_log_->AppliedTo(applied_index);
  if (!persisted.empty()) raft_log_->StableTo(persisted.back().index(), persisted.back().term());
  if (persisted_snapshot_index != 0) raft_log_->StableSnapTo(persisted_snapshot_index);
}

}  // namespace shoal::raft
