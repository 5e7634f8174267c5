// The role-independent half of the Raft state machine: construction and restart, term and vote
// handling, elections, the follower and candidate step functions, snapshots and membership.
// The leader's half (replication, commit, ReadIndex, transfer) is in raft_leader.cc.
#include "raft/core/raft.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "raft/core/check.h"

namespace shoal::raft {

using raftpb::Message;
using raftpb::MessageType;

const char* StateTypeName(StateType s) {
  switch (s) {
    case StateType::kFollower:
      return "StateFollower";
    case StateType::kCandidate:
      return "StateCandidate";
    case StateType::kLeader:
      return "StateLeader";
    case StateType::kPreCandidate:
      return "StatePreCandidate";
  }
  return "?";
}

absl::Status ErrProposalDropped() { return absl::FailedPreconditionError("raft proposal dropped"); }
bool IsProposalDropped(const absl::Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition &&
         s.message() == "raft proposal dropped";
}

absl::Status ValidateConfig(const Config& c) {
  if (c.id == kNone) return absl::InvalidArgumentError("raft config: id must not be 0");
  if (c.heartbeat_tick <= 0) {
    return absl::InvalidArgumentError("raft config: heartbeat_tick must be greater than 0");
  }
  if (c.election_tick <= c.heartbeat_tick) {
    return absl::InvalidArgumentError(
        "raft config: election_tick must be greater than heartbeat_tick");
  }
  if (c.storage == nullptr) return absl::InvalidArgumentError("raft config: storage is required");
  if (c.max_inflight_msgs <= 0) {
    return absl::InvalidArgumentError("raft config: max_inflight_msgs must be greater than 0");
  }
  if (c.read_only_option == ReadOnlyOption::kLeaseBased && !c.check_quorum) {
    return absl::InvalidArgumentError(
        "raft config: check_quorum must be enabled when read_only_option is kLeaseBased");
  }
  return absl::OkStatus();
}

bool IsLocalMessage(MessageType t) {
  return t == raftpb::MESSAGE_TYPE_HUP || t == raftpb::MESSAGE_TYPE_BEAT ||
         t == raftpb::MESSAGE_TYPE_UNREACHABLE || t == raftpb::MESSAGE_TYPE_SNAP_STATUS ||
         t == raftpb::MESSAGE_TYPE_CHECK_QUORUM;
}

bool IsResponseMessage(MessageType t) {
  return t == raftpb::MESSAGE_TYPE_APP_RESP || t == raftpb::MESSAGE_TYPE_VOTE_RESP ||
         t == raftpb::MESSAGE_TYPE_HEARTBEAT_RESP || t == raftpb::MESSAGE_TYPE_UNREACHABLE ||
         t == raftpb::MESSAGE_TYPE_PRE_VOTE_RESP;
}

const char* MessageTypeName(MessageType t) {
  return raftpb::MessageType_Name(t).c_str();  // static storage in protobuf
}

namespace {

MessageType VoteRespType(MessageType t) {
  return t == raftpb::MESSAGE_TYPE_VOTE ? raftpb::MESSAGE_TYPE_VOTE_RESP
                                        : raftpb::MESSAGE_TYPE_PRE_VOTE_RESP;
}

}  // namespace

// ---- Construction and restart ----

Raft::Raft(const Config& c)
    : id_(c.id),
      raft_log_(std::make_unique<RaftLog>(c.storage, c.max_committed_size_per_ready)),
      max_msg_size_(c.max_size_per_msg),
      max_uncommitted_size_(c.max_uncommitted_entries_size == 0 ? kNoLimit
                                                                : c.max_uncommitted_entries_size),
      tracker_(c.max_inflight_msgs),
      read_only_(c.read_only_option),
      check_quorum_(c.check_quorum),
      pre_vote_(c.pre_vote),
      disable_proposal_forwarding_(c.disable_proposal_forwarding),
      heartbeat_timeout_(c.heartbeat_tick),
      election_timeout_(c.election_tick),
      // Distinct ids give distinct default seeds, so members of one cluster do not time out in
      // lockstep.
      rng_(c.random_seed != 0 ? c.random_seed : c.id * 0x9E3779B97F4A7C15ull + 1) {}

absl::StatusOr<std::unique_ptr<Raft>> Raft::Create(const Config& c) {
  if (absl::Status s = ValidateConfig(c); !s.ok()) return s;
  auto init = c.storage->GetInitialState();
  if (!init.ok()) return init.status();
  std::unique_ptr<Raft> r(new Raft(c));
  const raftpb::ConfState& cs = init->conf_state;
  const uint64_t next = r->raft_log_->LastIndex() + 1;
  for (uint64_t v : cs.voters()) r->tracker_.AddVoter(v, next);
  for (uint64_t l : cs.learners()) {
    if (r->tracker_.IsVoter(l)) {
      return absl::DataLossError(absl::StrCat("raft: member ", l, " is both voter and learner"));
    }
    r->tracker_.AddLearner(l, next);
  }
  const raftpb::HardState& hs = init->hard_state;
  if (hs.term() != 0 || hs.vote() != 0 || hs.commit() != 0) {
    if (hs.commit() < r->raft_log_->committed() || hs.commit() > r->raft_log_->LastIndex()) {
      return absl::DataLossError(absl::StrCat("raft: stored commit index ", hs.commit(),
                                              " is out of range [", r->raft_log_->committed(), ", ",
                                              r->raft_log_->LastIndex(), "]"));
    }
    r->LoadState(hs);
  }
  if (c.applied > r->raft_log_->committed()) {
    return absl::InvalidArgumentError(absl::StrCat("raft: applied index ", c.applied,
                                                   " is beyond the commit index ",
                                                   r->raft_log_->committed()));
  }
  // The stored membership is as of the snapshot. Membership changes applied after it live in the
  // log: replay them so that a restarted member knows its peers (and whether it is a learner).
  // Every change assigns a role to one node, so replaying ones the stored state already
  // reflects is harmless.
  const uint64_t snap_index = r->raft_log_->FirstIndex() - 1;
  if (c.applied > snap_index) {
    auto ents = r->raft_log_->Slice(snap_index + 1, c.applied + 1, kNoLimit);
    if (!ents.ok()) return ents.status();
    for (const auto& e : *ents) {
      if (e.type() != raftpb::ENTRY_TYPE_CONF_CHANGE) continue;
      raftpb::ConfChange cc;
      if (!cc.ParseFromString(e.data())) {
        return absl::DataLossError(absl::StrCat("raft: bad CONF_CHANGE entry at ", e.index()));
      }
      r->tracker_.ApplyConfChange(cc, next);
    }
    r->raft_log_->AppliedTo(c.applied);
  }
  r->is_learner_ = r->tracker_.IsLearner(r->id_);
  r->BecomeFollower(r->term_, kNone);
  return r;
}

void Raft::LoadState(const raftpb::HardState& hs) {
  raft_log_->CommitTo(hs.commit());
  term_ = hs.term();
  vote_ = hs.vote();
}

raftpb::HardState Raft::GetHardState() const {
  raftpb::HardState hs;
  hs.set_term(term_);
  hs.set_vote(vote_);
  hs.set_commit(raft_log_->committed());
  return hs;
}

std::vector<Message> Raft::TakeMessages() { return std::exchange(msgs_, {}); }
std::vector<ReadState> Raft::TakeReadStates() { return std::exchange(read_states_, {}); }

bool Raft::Promotable() const { return tracker_.IsVoter(id_); }

// ---- Role transitions ----

void Raft::ResetRandomizedElectionTimeout() {
  std::uniform_int_distribution<int> d(0, election_timeout_ - 1);
  randomized_election_timeout_ = election_timeout_ + d(rng_);
}

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNone;
  }
  lead_ = kNone;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  tracker_.ResetVotes();
  const uint64_t last = raft_log_->LastIndex();
  for (auto& [id, pr] : tracker_.progress()) {
    pr = Progress(last + 1, tracker_.max_inflight(), pr.is_learner());
    if (id == id_) pr.set_match(last);
  }
  pending_conf_index_ = 0;
  uncommitted_size_ = 0;
  read_only_.Reset();
  pending_read_index_messages_.clear();
}

void Raft::BecomeFollower(uint64_t term, uint64_t lead) {
  step_ = &Raft::StepFollower;
  is_leader_tick_ = false;
  Reset(term);
  lead_ = lead;
  state_ = StateType::kFollower;
}

void Raft::BecomeCandidate() {
  RAFT_CHECK(state_ != StateType::kLeader, "invalid transition leader -> candidate");
  step_ = &Raft::StepCandidate;
  is_leader_tick_ = false;
  Reset(term_ + 1);
  vote_ = id_;
  state_ = StateType::kCandidate;
}

void Raft::BecomePreCandidate() {
  RAFT_CHECK(state_ != StateType::kLeader, "invalid transition leader -> pre-candidate");
  // A pre-candidate keeps its term and vote: the whole point is not to disturb anyone unless
  // it can win (§9.6).
  step_ = &Raft::StepCandidate;
  is_leader_tick_ = false;
  tracker_.ResetVotes();
  lead_ = kNone;
  state_ = StateType::kPreCandidate;
}

void Raft::BecomeLeader() {
  RAFT_CHECK(state_ != StateType::kFollower, "invalid transition follower -> leader");
  step_ = &Raft::StepLeader;
  is_leader_tick_ = true;
  Reset(term_);
  lead_ = id_;
  state_ = StateType::kLeader;
  if (Progress* self = tracker_.Get(id_)) self->BecomeReplicate();
  // Conservatively treat everything up to the last index as a possibly pending conf change: a
  // new one waits until the log this leader inherited is applied.
  pending_conf_index_ = raft_log_->LastIndex();
  // An entry of its own term lets the leader commit everything before it (§5.4.2). Its payload
  // is empty, so it does not count against max_uncommitted_entries_size.
  RAFT_CHECK(AppendEntries({raftpb::Entry()}), "empty entry refused");
}

// ---- Ticks ----

void Raft::Tick() {
  if (is_leader_tick_) {
    TickHeartbeat();
  } else {
    TickElection();
  }
}

void Raft::TickElection() {
  ++election_elapsed_;
  if (Promotable() && PastElectionTimeout()) {
    election_elapsed_ = 0;
    Message m;
    m.set_from(id_);
    m.set_type(raftpb::MESSAGE_TYPE_HUP);
    (void)Step(m);
  }
}

void Raft::TickHeartbeat() {
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (election_elapsed_ >= election_timeout_) {
    election_elapsed_ = 0;
    if (check_quorum_) {
      Message m;
      m.set_from(id_);
      m.set_type(raftpb::MESSAGE_TYPE_CHECK_QUORUM);
      (void)Step(m);
    }
    // A transfer that did not finish within an election timeout is abandoned, so the leader
    // accepts proposals again.
    if (state_ == StateType::kLeader && lead_transferee_ != kNone) AbortLeaderTransfer();
  }
  if (state_ != StateType::kLeader) return;
  if (heartbeat_elapsed_ >= heartbeat_timeout_) {
    heartbeat_elapsed_ = 0;
    Message m;
    m.set_from(id_);
    m.set_type(raftpb::MESSAGE_TYPE_BEAT);
    (void)Step(m);
  }
}

// ---- Elections ----

void Raft::Hup(CampaignType t) {
  if (state_ == StateType::kLeader) return;
  if (!Promotable()) return;
  // A committed but unapplied membership change might remove or demote this node; wait until
  // it is applied before campaigning.
  // Entries covered by a snapshot not yet applied are not in the log; the snapshot's membership
  // already reflects them.
  const uint64_t lo = std::max(raft_log_->applied() + 1, raft_log_->FirstIndex());
  if (raft_log_->committed() >= lo) {
    auto ents = raft_log_->Slice(lo, raft_log_->committed() + 1, kNoLimit);
    RAFT_CHECK(ents.ok(), "unapplied committed entries unavailable");
    for (const auto& e : *ents) {
      if (e.type() == raftpb::ENTRY_TYPE_CONF_CHANGE) return;
    }
  }
  Campaign(t);
}

void Raft::Campaign(CampaignType t) {
  if (!Promotable()) return;
  MessageType vote_msg;
  uint64_t term;
  if (t == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_msg = raftpb::MESSAGE_TYPE_PRE_VOTE;
    term = term_ + 1;  // the term it would campaign in; its own term is unchanged
  } else {
    BecomeCandidate();
    vote_msg = raftpb::MESSAGE_TYPE_VOTE;
    term = term_;
  }
  if (Poll(id_, VoteRespType(vote_msg), true) == VoteResult::kWon) {
    // A single-voter cluster wins on its own vote.
    if (t == CampaignType::kPreElection) {
      Campaign(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  const uint64_t last_index = raft_log_->LastIndex();
  const uint64_t last_term = raft_log_->LastTerm();
  for (uint64_t id : tracker_.voters()) {
    if (id == id_) continue;
    Message m;
    m.set_to(id);
    m.set_term(term);
    m.set_type(vote_msg);
    m.set_index(last_index);
    m.set_log_term(last_term);
    if (t == CampaignType::kTransfer) m.set_context(kCampaignTransfer);
    Send(std::move(m));
  }
}

VoteResult Raft::Poll(uint64_t from, MessageType /*t*/, bool granted) {
  tracker_.RecordVote(from, granted);
  return tracker_.TallyVotes();
}

// ---- Step ----

absl::Status Raft::Step(const Message& m) {
  if (m.term() == 0) {
    // Local message (or a forwarded PROP / READ_INDEX, which carry no term).
  } else if (m.term() > term_) {
    if (!HandleHigherTerm(m)) return absl::OkStatus();
  } else if (m.term() < term_) {
    HandleLowerTerm(m);
    return absl::OkStatus();
  }

  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_HUP:
      Hup(pre_vote_ ? CampaignType::kPreElection : CampaignType::kElection);
      return absl::OkStatus();
    case raftpb::MESSAGE_TYPE_VOTE:
    case raftpb::MESSAGE_TYPE_PRE_VOTE:
      HandleVoteRequest(m);
      return absl::OkStatus();
    default:
      return (this->*step_)(m);
  }
}

bool Raft::HandleHigherTerm(const Message& m) {
  const MessageType t = m.type();
  if (t == raftpb::MESSAGE_TYPE_VOTE || t == raftpb::MESSAGE_TYPE_PRE_VOTE) {
    // Leader stickiness: while this node heard from a leader within the election timeout, it
    // will not help depose it — unless the leader itself asked for the election (transfer).
    const bool force = m.context() == kCampaignTransfer;
    const bool in_lease = check_quorum_ && lead_ != kNone && election_elapsed_ < election_timeout_;
    if (!force && in_lease) return false;
  }
  if (t == raftpb::MESSAGE_TYPE_PRE_VOTE) {
    // Never change term in response to a pre-vote.
  } else if (t == raftpb::MESSAGE_TYPE_PRE_VOTE_RESP && !m.reject()) {
    // A granted pre-vote carries the term the pre-candidate would campaign in; the term changes
    // only if the pre-election is won.
  } else if (t == raftpb::MESSAGE_TYPE_APP || t == raftpb::MESSAGE_TYPE_HEARTBEAT ||
             t == raftpb::MESSAGE_TYPE_SNAP) {
    BecomeFollower(m.term(), m.from());
  } else if (t == raftpb::MESSAGE_TYPE_VOTE && state_ == StateType::kFollower &&
             !raft_log_->IsUpToDate(m.index(), m.log_term())) {
    // A vote we are about to refuse (the candidate's log is behind ours) must not restart our
    // election timer: otherwise a stale member with a fast clock, campaigning over and over,
    // keeps every up-to-date member from ever timing out, and the cluster stays leaderless
    // (found by raft/sim with pre-vote off). The Raft paper restarts the timer only when
    // granting a vote. Adopt the term, keep the elapsed time.
    const int elapsed = election_elapsed_;
    BecomeFollower(m.term(), kNone);
    election_elapsed_ = elapsed;
  } else {
    BecomeFollower(m.term(), kNone);
  }
  return true;
}

void Raft::HandleLowerTerm(const Message& m) {
  if ((check_quorum_ || pre_vote_) &&
      (m.type() == raftpb::MESSAGE_TYPE_HEARTBEAT || m.type() == raftpb::MESSAGE_TYPE_APP)) {
    // A stale leader partitioned away would never learn of the new term if we stayed silent:
    // with check quorum or pre-vote, nodes that ignore its vote requests would otherwise never
    // raise its term either. Answer so that it steps down.
    Message resp;
    resp.set_to(m.from());
    resp.set_type(raftpb::MESSAGE_TYPE_APP_RESP);
    Send(std::move(resp));
  } else if (m.type() == raftpb::MESSAGE_TYPE_PRE_VOTE) {
    // Reject explicitly, so the pre-candidate learns the newer term instead of waiting forever.
    Message resp;
    resp.set_to(m.from());
    resp.set_term(term_);
    resp.set_type(raftpb::MESSAGE_TYPE_PRE_VOTE_RESP);
    resp.set_reject(true);
    Send(std::move(resp));
  }
  // Anything else from an older term is ignored.
}

void Raft::HandleVoteRequest(const Message& m) {
  // We can vote if this is a repeat of a vote we cast, if we have not voted and know of no
  // leader in this term, or for a pre-vote for a future term.
  const bool can_vote = vote_ == m.from() || (vote_ == kNone && lead_ == kNone) ||
                        (m.type() == raftpb::MESSAGE_TYPE_PRE_VOTE && m.term() > term_);
  Message resp;
  resp.set_to(m.from());
  resp.set_type(VoteRespType(m.type()));
  if (can_vote && raft_log_->IsUpToDate(m.index(), m.log_term())) {
    // The response carries the request's term: for a pre-vote our own term may be lower, and
    // the pre-candidate must not discard our answer as stale.
    resp.set_term(m.term());
    Send(std::move(resp));
    if (m.type() == raftpb::MESSAGE_TYPE_VOTE) {
      // Only record a real vote, and give the candidate a full election timeout.
      election_elapsed_ = 0;
      vote_ = m.from();
    }
  } else {
    resp.set_term(term_);
    resp.set_reject(true);
    Send(std::move(resp));
  }
}

absl::Status Raft::StepCandidate(const Message& m) {
  // Only responses to this round count: a pre-candidate waits for PRE_VOTE_RESP, a candidate
  // for VOTE_RESP.
  const MessageType my_resp = state_ == StateType::kPreCandidate
                                  ? raftpb::MESSAGE_TYPE_PRE_VOTE_RESP
                                  : raftpb::MESSAGE_TYPE_VOTE_RESP;
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_PROP:
      return ErrProposalDropped();
    case raftpb::MESSAGE_TYPE_APP:
      BecomeFollower(m.term(), m.from());  // a leader exists in this term
      HandleAppendEntries(m);
      break;
    case raftpb::MESSAGE_TYPE_HEARTBEAT:
      BecomeFollower(m.term(), m.from());
      HandleHeartbeat(m);
      break;
    case raftpb::MESSAGE_TYPE_SNAP:
      BecomeFollower(m.term(), m.from());
      HandleSnapshot(m);
      break;
    default:
      if (m.type() != my_resp) break;
      switch (Poll(m.from(), m.type(), !m.reject())) {
        case VoteResult::kWon:
          if (state_ == StateType::kPreCandidate) {
            Campaign(CampaignType::kElection);
          } else {
            BecomeLeader();
            BcastAppend();
          }
          break;
        case VoteResult::kLost:
          // Back to follower in the same term: whoever wins will tell us.
          BecomeFollower(term_, kNone);
          break;
        case VoteResult::kPending:
          break;
      }
      break;
  }
  return absl::OkStatus();
}

absl::Status Raft::StepFollower(const Message& m) {
  switch (m.type()) {
    case raftpb::MESSAGE_TYPE_PROP: {
      if (lead_ == kNone || disable_proposal_forwarding_) return ErrProposalDropped();
      Message fwd = m;
      fwd.set_to(lead_);
      Send(std::move(fwd));
      break;
    }
    case raftpb::MESSAGE_TYPE_APP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleAppendEntries(m);
      break;
    case raftpb::MESSAGE_TYPE_HEARTBEAT:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleHeartbeat(m);
      break;
    case raftpb::MESSAGE_TYPE_SNAP:
      election_elapsed_ = 0;
      lead_ = m.from();
      HandleSnapshot(m);
      break;
    case raftpb::MESSAGE_TYPE_TRANSFER_LEADER:
    case raftpb::MESSAGE_TYPE_READ_INDEX: {
      if (lead_ == kNone) break;  // nobody to forward to: dropped
      Message fwd = m;
      fwd.set_to(lead_);
      Send(std::move(fwd));
      break;
    }
    case raftpb::MESSAGE_TYPE_TIMEOUT_NOW:
      // The leader asked us to take over: campaign at once, without a pre-vote round (we know
      // the leader is alive and wants this) and with the transfer context to bypass leases.
      Hup(CampaignType::kTransfer);
      break;
    case raftpb::MESSAGE_TYPE_READ_INDEX_RESP:
      if (m.entries_size() != 1) break;
      read_states_.push_back(ReadState{m.index(), m.entries(0).data()});
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

}  // namespace shoal::raft
