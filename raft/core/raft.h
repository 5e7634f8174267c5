// Raft: the consensus state machine of one member (Ongaro & Ousterhout, "In Search of an
// Understandable Consensus Algorithm", and Ongaro's thesis). It is pure: Step() consumes a
// message, Tick() advances logical time, and the effects accumulate as outgoing messages, read
// states and log changes that RawNode packages into a Ready. There is no I/O, no thread and no
// clock in here; randomness (election timeouts) comes from a generator seeded by the config.
//
// Each role has its own step function (StepLeader / StepCandidate / StepFollower; a
// pre-candidate shares StepCandidate); Step() handles what is common to all roles (term
// comparison, votes) and then dispatches.
//
// Most users want RawNode (raw_node.h). Raft is exposed for the core's own tests.
//
// Not thread-safe: one thread drives a Raft.
#ifndef SHOAL_RAFT_CORE_RAFT_H_
#define SHOAL_RAFT_CORE_RAFT_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft.pb.h"
#include "raft/core/config.h"
#include "raft/core/log.h"
#include "raft/core/progress.h"
#include "raft/core/read_only.h"

namespace shoal::raft {

// Context of a VOTE sent because of a leader transfer: voters then ignore their leader lease.
inline constexpr char kCampaignTransfer[] = "CampaignTransfer";

enum class CampaignType { kPreElection, kElection, kTransfer };

bool IsLocalMessage(raftpb::MessageType t);
bool IsResponseMessage(raftpb::MessageType t);
const char* MessageTypeName(raftpb::MessageType t);

class Raft {
 public:
  // Builds a member from config.storage: hard state, membership (the storage's conf state, plus
  // CONF_CHANGE entries in the stable log up to config.applied replayed on top), commit index.
  static absl::StatusOr<std::unique_ptr<Raft>> Create(const Config& config);

  // Feeds one message (local or from a peer). Returns ErrProposalDropped for a PROP that cannot
  // be accepted; other errors are not possible for well-formed messages.
  absl::Status Step(const raftpb::Message& m);
  // Advances logical time by one tick: election timeout for followers/candidates, heartbeat and
  // check-quorum for leaders.
  void Tick();

  // Applies a committed membership change; returns the resulting membership.
  raftpb::ConfState ApplyConfChange(const raftpb::ConfChange& cc);

  // Bookkeeping after the driver handled a Ready (see RawNode::Advance).
  void Advance(uint64_t applied_index, const std::vector<raftpb::Entry>& committed,
               const std::vector<raftpb::Entry>& persisted, uint64_t persisted_snapshot_index);
  // Reduces the uncommitted tail size by these (now committed) entries.
  void ReduceUncommittedSize(const std::vector<raftpb::Entry>& ents);

  // Outgoing messages and read states accumulated since the last call.
  std::vector<raftpb::Message> TakeMessages();
  std::vector<ReadState> TakeReadStates();
  const std::vector<raftpb::Message>& messages() const { return msgs_; }
  const std::vector<ReadState>& read_states() const { return read_states_; }

  SoftState GetSoftState() const { return SoftState{lead_, state_}; }
  raftpb::HardState GetHardState() const;

  // Role transitions (public for tests; Step/Tick drive them in normal operation).
  void BecomeFollower(uint64_t term, uint64_t lead);
  void BecomeCandidate();
  void BecomePreCandidate();
  void BecomeLeader();
  // Replaces the log with a snapshot if it is newer than what this member has; true if so.
  bool Restore(const raftpb::Snapshot& snap);
  void LoadState(const raftpb::HardState& hs);
  // Whether this member can campaign: it is a voter in its own membership.
  bool Promotable() const;

  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t vote() const { return vote_; }
  uint64_t lead() const { return lead_; }
  StateType state() const { return state_; }
  bool is_learner() const { return is_learner_; }
  uint64_t lead_transferee() const { return lead_transferee_; }
  uint64_t pending_conf_index() const { return pending_conf_index_; }
  uint64_t uncommitted_size() const { return uncommitted_size_; }
  int election_elapsed() const { return election_elapsed_; }
  int heartbeat_elapsed() const { return heartbeat_elapsed_; }
  int election_timeout() const { return election_timeout_; }
  int heartbeat_timeout() const { return heartbeat_timeout_; }
  int randomized_election_timeout() const { return randomized_election_timeout_; }
  RaftLog& raft_log() { return *raft_log_; }
  const RaftLog& raft_log() const { return *raft_log_; }
  ProgressTracker& tracker() { return tracker_; }
  const ProgressTracker& tracker() const { return tracker_; }
  const ReadOnly& read_only() const { return read_only_; }

  // Test hooks.
  void set_randomized_election_timeout(int t) { randomized_election_timeout_ = t; }
  void set_election_elapsed(int e) { election_elapsed_ = e; }
  void set_check_quorum(bool v) { check_quorum_ = v; }
  void set_pre_vote(bool v) { pre_vote_ = v; }

 private:
  explicit Raft(const Config& c);

  using StepFn = absl::Status (Raft::*)(const raftpb::Message&);
  absl::Status StepLeader(const raftpb::Message& m);
  absl::Status StepCandidate(const raftpb::Message& m);
  absl::Status StepFollower(const raftpb::Message& m);
  // Step() cases for messages from a higher or lower term; false = drop the message.
  bool HandleHigherTerm(const raftpb::Message& m);
  void HandleLowerTerm(const raftpb::Message& m);
  void HandleVoteRequest(const raftpb::Message& m);

  void TickElection();
  void TickHeartbeat();
  bool PastElectionTimeout() const { return election_elapsed_ >= randomized_election_timeout_; }
  void ResetRandomizedElectionTimeout();
  void Reset(uint64_t term);

  void Hup(CampaignType t);
  void Campaign(CampaignType t);
  VoteResult Poll(uint64_t from, raftpb::MessageType t, bool granted);

  // Leader-side replication (raft_leader.cc).
  void Send(raftpb::Message m);
  bool MaybeSendAppend(uint64_t to, bool send_if_empty);
  void SendAppend(uint64_t to) { MaybeSendAppend(to, true); }
  bool SendSnapshot(uint64_t to, Progress& pr);
  void SendHeartbeat(uint64_t to, const std::string& ctx);
  void BcastAppend();
  void BcastHeartbeat();
  void BcastHeartbeatWithCtx(const std::string& ctx);
  bool MaybeCommit();
  bool AppendEntries(std::vector<raftpb::Entry> ents);
  absl::Status HandlePropose(const raftpb::Message& m);
  void HandleAppendResponse(const raftpb::Message& m, Progress& pr);
  void HandleHeartbeatResponse(const raftpb::Message& m, Progress& pr);
  void HandleLeaderReadIndex(const raftpb::Message& m);
  void HandleTransferLeader(const raftpb::Message& m, Progress& pr);
  void HandleCheckQuorum();
  void SendTimeoutNow(uint64_t to);
  void AbortLeaderTransfer() { lead_transferee_ = kNone; }

  // Follower-side handling.
  void HandleAppendEntries(const raftpb::Message& m);
  void HandleHeartbeat(const raftpb::Message& m);
  void HandleSnapshot(const raftpb::Message& m);

  // ReadIndex.
  bool CommittedEntryInCurrentTerm() const;
  raftpb::Message ResponseToReadIndexReq(const raftpb::Message& req, uint64_t read_index);
  void SendReadIndexResponse(const raftpb::Message& m);
  void ReleasePendingReadIndexMessages();

  bool IncreaseUncommittedSize(const std::vector<raftpb::Entry>& ents);
  // Membership bookkeeping after the tracker changed.
  raftpb::ConfState AfterConfChange();

  uint64_t id_;
  uint64_t term_ = 0;
  uint64_t vote_ = kNone;
  uint64_t lead_ = kNone;
  StateType state_ = StateType::kFollower;
  bool is_learner_ = false;
  std::vector<ReadState> read_states_;
  std::unique_ptr<RaftLog> raft_log_;
  uint64_t max_msg_size_;
  uint64_t max_uncommitted_size_;
  uint64_t uncommitted_size_ = 0;
  ProgressTracker tracker_;
  std::vector<raftpb::Message> msgs_;
  uint64_t lead_transferee_ = kNone;
  // Index of the last CONF_CHANGE the leader appended (or its last index on election): a new one
  // is refused until this index is applied, so changes happen one at a time.
  uint64_t pending_conf_index_ = 0;
  ReadOnly read_only_;
  // READ_INDEX requests received before this leader committed an entry of its own term (until
  // then its commit index may be stale).
  std::vector<raftpb::Message> pending_read_index_messages_;

  // Followers/candidates: ticks since the last valid leader message or election start.
  // Leaders: ticks since the last check-quorum / transfer-timeout check.
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;  // leaders only
  bool check_quorum_;
  bool pre_vote_;
  bool disable_proposal_forwarding_;
  int heartbeat_timeout_;
  int election_timeout_;
  int randomized_election_timeout_ = 0;
  std::mt19937_64 rng_;

  StepFn step_ = &Raft::StepFollower;
  bool is_leader_tick_ = false;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_RAFT_H_
