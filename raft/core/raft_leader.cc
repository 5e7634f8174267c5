// The leader's half of the Raft state machine: sending (appends with batching, pipelining and
// flow control; snapshots; heartbeats), commit, proposals, ReadIndex, leader transfer and
// check quorum.
#include <algorithm>
#include <utility>

#include "raft/core/check.h"
#include "raft/core/raft.h"

namespace shoal::raft {

using raftpb::Message;

namespace {

uint64_t PayloadSize(const std::vector<raftpb::Entry>& ents) {
  uint64_t s = 0;
  for (const auto& e : ents) s += e.data().size();
  return s;
}

}  // namespace

// ---- Sending ----

void Raft::Send(Message m) {
  if (m.from() == kNone) m.set_from(id_);
  const auto t = m.type();
  if (t == raftpb::MESSAGE_TYPE_VOTE || t == raftpb::MESSAGE_TYPE_VOTE_RESP ||
      t == raftpb::MESSAGE_TYPE_PRE_VOTE || t == raftpb::MESSAGE_TYPE_PRE_VOTE_RESP) {
    // Elections set the term themselves: a pre-vote asks for a future term, and vote answers
    // echo the candidate's term.
    // (A rejection may carry term 0: a member that never saw a term rejecting a candidate
    // whose log is behind.)
    RAFT_CHECK(m.term() != 0 || m.reject(), "vote message without a term");
  } else if (t != raftpb::MESSAGE_TYPE_PROP && t != raftpb::MESSAGE_TYPE_READ_INDEX) {
    // Forwarded proposals and read requests travel without a term (the leader treats them like
    // local requests); everything else carries ours.
    m.set_term(term_);
  }
  msgs_.push_back(std::move(m));
}

bool Raft::MaybeSendAppend(uint64_t to, bool send_if_empty) {
  Progress* pr = tracker_.Get(to);
  if (pr == nullptr || pr->IsPaused()) return false;
  auto term = raft_log_->Term(pr->next() - 1);
  auto ents = raft_log_->EntriesFrom(pr->next(), max_msg_size_);
  if (term.ok() && ents.ok() && ents->empty() && !send_if_empty) return false;
  if (!term.ok() || !ents.ok()) {
    // The entries the follower needs are compacted: only a snapshot can catch it up.
    return SendSnapshot(to, *pr);
  }
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MESSAGE_TYPE_APP);
  m.set_index(pr->next() - 1);
  m.set_log_term(*term);
  m.set_commit(raft_log_->committed());
  const int n = static_cast<int>(ents->size());
  for (auto& e : *ents) *m.add_entries() = std::move(e);
  if (n > 0) pr->SentEntries(m.entries(n - 1).index(), n);
  Send(std::move(m));
  return true;
}

bool Raft::SendSnapshot(uint64_t to, Progress& pr) {
  // A follower that has not been heard from recently is probably down; don't spend a snapshot
  // on it.
  if (!pr.recent_active()) return false;
  auto snap = raft_log_->Snapshot();
  if (!snap.ok()) {
    if (IsSnapshotTemporarilyUnavailable(snap.status())) return false;
    RAFT_CHECK(false, std::string(snap.status().message()).c_str());
  }
  RAFT_CHECK(snap->metadata().index() != 0, "need a non-empty snapshot");
  const uint64_t index = snap->metadata().index();
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MESSAGE_TYPE_SNAP);
  *m.mutable_snapshot() = *std::move(snap);
  Send(std::move(m));
  pr.BecomeSnapshot(index);
  return true;
}

void Raft::SendHeartbeat(uint64_t to, const std::string& ctx) {
  const Progress* pr = tracker_.Get(to);
  // Never tell a follower to commit past what it is known to have: it might not have it, or
  // have a conflicting entry there.
  const uint64_t commit = std::min(pr != nullptr ? pr->match() : 0, raft_log_->committed());
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MESSAGE_TYPE_HEARTBEAT);
  m.set_commit(commit);
  m.set_context(ctx);
  Send(std::move(m));
}

void Raft::BcastAppend() {
  for (auto& [id, pr] : tracker_.progress()) {
    if (id != id_) SendAppend(id);
  }
}

void Raft::BcastHeartbeat() { BcastHeartbeatWithCtx(read_only_.LastPendingRequestCtx()); }

void Raft::BcastHeartbeatWithCtx(const std::string& ctx) {
  for (auto& [id, pr] : tracker_.progress()) {
    if (id != id_) SendHeartbeat(id, ctx);
  }
}

void Raft::SendTimeoutNow(uint64_t to) {
  Message m;
  m.set_to(to);
  m.set_type(raftpb::MESSAGE_TYPE_TIMEOUT_NOW);
  Send(std::move(m));
}

// ---- Commit and proposals ----

bool Raft::MaybeCommit() {
  // Only entries of the current term are committed by counting replicas (§5.4.2); earlier ones
  // commit with them.
  return raft_log_->MaybeCommit(tracker_.Committed(), term_);
}

bool Raft::IncreaseUncommittedSize(const std::vector<raftpb::Entry>& ents) {
  const uint64_t s = PayloadSize(ents);
  // An empty tail always accepts one proposal, however large, so progress is possible.
  if (uncommitted_size_ > 0 && s > 0 && uncommitted_size_ + s > max_uncommitted_size_) {
    return false;
  }
  uncommitted_size_ += s;
  return true;
}

void Raft::ReduceUncommittedSize(const std::vector<raftpb::Entry>& ents) {
  if (uncommitted_size_ == 0) return;  // followers, and leaders with an empty tail
  const uint64_t s = PayloadSize(ents);
  uncommitted_size_ = s > uncommitted_size_ ? 0 : uncommitted_size_ - s;
}

bool Raft::AppendEntries(std::vector<raftpb::Entry> ents) {
  const uint64_t last = raft_log_->LastIndex();
  for (size_t i = 0; i < ents.size(); ++i) {
    ents[i].set_term(term_);
    ents[i].set_index(last + 1 + i);
  }
  if (!IncreaseUncommittedSize(ents)) return false;
  const uint64_t li = raft_log_->Append(ents);
  if (Progress* self = tracker_.Get(id_)) self->MaybeUpdate(li);
  MaybeCommit();  // a single-voter cluster commits at once
  return true;
}

absl::Status Raft::HandlePropose(const Message& m) {
  if (m.entries_size() == 0) return absl::InvalidArgumentError("raft: empty proposal");
  // A leader that removed itself keeps leading until it steps down; it takes no new work.
  if (tracker_.Get(id_) == nullptr) return ErrProposalDropped();
  // During a transfer the old leader stops accepting proposals, so the transferee can catch up.
  if (lead_transferee_ != kNone) return ErrProposalDropped();
  std::vector<raftpb::Entry> ents(m.entries().begin(), m.entries().end());
  uint64_t conf_index = 0;
  for (size_t i = 0; i < ents.size(); ++i) {
    if (ents[i].type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
    // One membership change at a time: refuse while an earlier one is not yet applied.
    if (conf_index != 0 || pending_conf_index_ > raft_log_->applied()) {
      return ErrProposalDropped();
    }
    raftpb::ConfChange cc;
    if (!cc.ParseFromString(ents[i].data())) {
      return absl::InvalidArgumentError("raft: malformed CONF_CHANGE proposal");
    }
    if (cc.type() == raftpb::CONF_CHANGE_TYPE_REMOVE_NODE && tracker_.IsVoter(cc.node_id()) &&
        tracker_.voters().size() == 1) {
      return absl::FailedPreconditionError("raft: cannot remove the last voter");
    }
    conf_index = raft_log_->LastIndex() + i + 1;
  }
  if (!AppendEntries(std::move(ents))) return ErrProposalDropped();
  if (conf_index != 0) pending_conf_index_ = conf_index;
  BcastAppend();
  return absl::OkStatus();
}

// ---- The leader's step function ----

absl::Status Raft::StepLeader(const Message& m) {
  // Messages that do not need a peer's progress.
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_BEAT:
      BcastHeartbeat();
      return absl::OkStatus();
    case raftpb::MESSAGE_TYPE_CHECK_QUORUM:
      HandleCheckQuorum();
      return absl::OkStatus();
    case raftpb::MESSAGE_TYPE_PROP:
      return HandlePropose(m);
    case raftpb::MESSAGE_TYPE_READ_INDEX:
      HandleLeaderReadIndex(m);
      return absl::OkStatus();
    default:
      break;
  }

  Progress* pr = tracker_.Get(m.from());
  if (pr == nullptr) return absl::OkStatus();  // not a member (any more)
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_APP_RESP:
      HandleAppendResponse(m, *pr);
      break;
    case raftpb::MESSAGE_TYPE_HEARTBEAT_RESP:
      HandleHeartbeatResponse(m, *pr);
      break;
    case raftpb::MESSAGE_TYPE_SNAP_STATUS:
      if (pr->state() != ProgressState::kSnapshot) break;
      // Success: the follower has the snapshot, probe right after it. Failure: probe from
      // match again. Either way wait for the follower's answer (or a heartbeat interval)
      // before sending more.
      if (m.reject()) pr->AbortPendingSnapshot();
      pr->BecomeProbe();
      pr->set_probe_sent(true);
      break;
    case raftpb::MESSAGE_TYPE_UNREACHABLE:
      // Appends were probably lost: stop pipelining and probe.
      if (pr->state() == ProgressState::kReplicate) pr->BecomeProbe();
      break;
    case raftpb::MESSAGE_TYPE_TRANSFER_LEADER:
      HandleTransferLeader(m, *pr);
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

void Raft::HandleAppendResponse(const Message& m, Progress& pr) {
  pr.set_recent_active(true);
  if (m.reject()) {
    // The follower's hint (reject_hint, log_term) names its last entry that could match;
    // skip every leader entry after the last one with a term <= log_term.
    uint64_t next_probe = m.reject_hint();
    if (m.log_term() > 0) next_probe = raft_log_->FindConflictByTerm(m.reject_hint(), m.log_term());
    if (pr.MaybeDecrTo(m.index(), next_probe)) {
      if (pr.state() == ProgressState::kReplicate) pr.BecomeProbe();
      SendAppend(m.from());
    }
    return;
  }
  const bool old_paused = pr.IsPaused();
  if (!pr.MaybeUpdate(m.index())) return;  // stale
  switch (pr.state()) {
    case ProgressState::kProbe:
      pr.BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      // The follower caught up past the snapshot (or to entries the log still has).
      if (pr.match() >= pr.pending_snapshot() || pr.match() + 1 >= raft_log_->FirstIndex()) {
        pr.BecomeProbe();
        pr.BecomeReplicate();
      }
      break;
    case ProgressState::kReplicate:
      pr.inflights().FreeLE(m.index());
      break;
  }
  if (MaybeCommit()) {
    ReleasePendingReadIndexMessages();
    BcastAppend();
  } else if (old_paused) {
    // The follower was paused (e.g. a full window): it may be able to take more now.
    SendAppend(m.from());
  }
  // Stream whatever else fits in the window.
  while (MaybeSendAppend(m.from(), false)) {
  }
  if (m.from() == lead_transferee_ && pr.match() == raft_log_->LastIndex()) {
    SendTimeoutNow(m.from());
  }
}

void Raft::HandleHeartbeatResponse(const Message& m, Progress& pr) {
  pr.set_recent_active(true);
  pr.set_probe_sent(false);
  // A full window may only mean acknowledgements were lost: free one slot so that replication
  // continues at heartbeat pace.
  if (pr.state() == ProgressState::kReplicate && pr.inflights().Full()) {
    pr.inflights().FreeFirstOne();
  }
  if (pr.match() < raft_log_->LastIndex()) SendAppend(m.from());

  if (read_only_.option() != ReadOnlyOption::kSafe || m.context().empty()) return;
  const std::set<uint64_t>* acks = read_only_.RecvAck(m.from(), m.context());
  if (acks == nullptr) return;
  std::map<uint64_t, bool> votes;
  for (uint64_t id : *acks) votes[id] = true;
  if (shoal::raft::TallyVotes(tracker_.voters(), votes) != VoteResult::kWon) return;
  for (const ReadIndexStatus& rs : read_only_.Advance(m.context())) {
    Message resp = ResponseToReadIndexReq(rs.req, rs.index);
    if (resp.to() != kNone) Send(std::move(resp));
  }
}

void Raft::HandleCheckQuorum() {
  // The leader always counts itself as active (if it is still a member).
  if (Progress* self = tracker_.Get(id_)) self->set_recent_active(true);
  if (!tracker_.QuorumActive()) {
    // Step down rather than keep a lease nobody honours: a partitioned leader must not go on
    // serving lease-based reads or accepting proposals that cannot commit.
    BecomeFollower(term_, kNone);
    return;
  }
  for (auto& [id, pr] : tracker_.progress()) {
    if (id != id_) pr.set_recent_active(false);
  }
}

void Raft::HandleTransferLeader(const Message& m, Progress& pr) {
  if (pr.is_learner()) return;  // a learner cannot lead
  const uint64_t transferee = m.from();
  if (lead_transferee_ != kNone) {
    if (lead_transferee_ == transferee) return;  // already under way
    AbortLeaderTransfer();
  }
  if (transferee == id_) return;  // already leader
  // The transfer must finish within an election timeout, counted from now.
  election_elapsed_ = 0;
  lead_transferee_ = transferee;
  if (pr.match() == raft_log_->LastIndex()) {
    SendTimeoutNow(transferee);
  } else {
    SendAppend(transferee);  // catch it up first; TIMEOUT_NOW follows its acknowledgement
  }
}

// ---- ReadIndex ----

bool Raft::CommittedEntryInCurrentTerm() const {
  return raft_log_->ZeroTermOnError(raft_log_->committed()) == term_;
}

Message Raft::ResponseToReadIndexReq(const Message& req, uint64_t read_index) {
  if (req.from() == kNone || req.from() == id_) {
    read_states_.push_back(ReadState{read_index, req.entries(0).data()});
    return Message();
  }
  Message resp;
  resp.set_type(raftpb::MESSAGE_TYPE_READ_INDEX_RESP);
  resp.set_to(req.from());
  resp.set_index(read_index);
  *resp.mutable_entries() = req.entries();
  return resp;
}

void Raft::HandleLeaderReadIndex(const Message& m) {
  if (m.entries_size() != 1) return;  // malformed
  if (tracker_.IsSingleton() && tracker_.IsVoter(id_)) {
    // Alone, the leader's commit index is the cluster's.
    Message resp = ResponseToReadIndexReq(m, raft_log_->committed());
    if (resp.to() != kNone) Send(std::move(resp));
    return;
  }
  // Until it commits an entry of its own term, a new leader's commit index may lag behind what
  // the previous leader committed (§6.4): hold the request until then.
  if (!CommittedEntryInCurrentTerm()) {
    pending_read_index_messages_.push_back(m);
    return;
  }
  SendReadIndexResponse(m);
}

void Raft::SendReadIndexResponse(const Message& m) {
  switch (read_only_.option()) {
    case ReadOnlyOption::kSafe: {
      const std::string& ctx = m.entries(0).data();
      read_only_.AddRequest(raft_log_->committed(), m);
      // The leader acknowledges its own request; a quorum of heartbeat answers completes it.
      read_only_.RecvAck(id_, ctx);
      BcastHeartbeatWithCtx(ctx);
      break;
    }
    case ReadOnlyOption::kLeaseBased: {
      Message resp = ResponseToReadIndexReq(m, raft_log_->committed());
      if (resp.to() != kNone) Send(std::move(resp));
      break;
    }
  }
}

void Raft::ReleasePendingReadIndexMessages() {
  if (pending_read_index_messages_.empty() || !CommittedEntryInCurrentTerm()) return;
  auto msgs = std::exchange(pending_read_index_messages_, {});
  for (const Message& m : msgs) SendReadIndexResponse(m);
}

}  // namespace shoal::raft
