// RawNode: the public entry point of Shoal's Raft consensus core.
//
// The core is a pure state machine: the driver feeds it ticks (Tick), local requests (Propose,
// ProposeConfChange, Campaign, ReadIndex, TransferLeader, Report*) and peer messages (Step), and
// collects its effects with GetReady(). For each Ready the driver must, in this order:
//   1. persist rd.snapshot (if its index is non-zero), append rd.entries and store
//      rd.hard_state (if set) — fsync when rd.must_sync — and make them visible in Storage;
//   2. send rd.messages;
//   3. apply rd.committed_entries to the state machine (calling ApplyConfChange for
//      CONF_CHANGE entries) and act on rd.read_states;
//   4. call Advance(rd).
// Do not call GetReady() again before Advance().
//
// Restart: create a RawNode over the same Storage with Config::applied set to the last index the
// state machine applied; term, vote, commit index and membership (voters and learners) are
// restored from Storage.
//
// Bootstrap, two ways:
//   - Bootstrap() once on each fresh founding member: writes one CONF_CHANGE entry per founder,
//     so the membership is in the log itself. A member joining later then starts with an empty
//     storage and learns everything (log or snapshot) from the leader. Preferred.
//   - MemoryStorage::SetInitialConfState(founders) on every founding member: the founding
//     membership is NOT in the log, so a member joining later must be created with the same
//     founding ConfState in its storage (the log replays every change since). Starting it with
//     an empty storage would make it believe, after applying its own ADD_NODE, that it is the
//     only voter.
//
// Threading: not thread-safe; one thread (the node driver) calls everything.
#ifndef SHOAL_RAFT_CORE_RAW_NODE_H_
#define SHOAL_RAFT_CORE_RAW_NODE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "raft.pb.h"
#include "raft/core/config.h"
#include "raft/core/progress.h"
#include "raft/core/storage.h"

namespace shoal::raft {

class Raft;

struct Ready {
  std::optional<SoftState> soft_state;          // set when changed
  std::optional<raftpb::HardState> hard_state;  // set when changed: persist before sending
  std::vector<ReadState> read_states;
  std::vector<raftpb::Entry> entries;            // persist (append) before sending messages
  raftpb::Snapshot snapshot;                     // persist if metadata().index() != 0
  std::vector<raftpb::Entry> committed_entries;  // apply to the state machine (after persisting)
  std::vector<raftpb::Message> messages;         // send after persisting the above
  bool must_sync = false;                        // whether the write must be fsynced
};

struct ProgressStatus {
  uint64_t match = 0;
  uint64_t next = 0;
  ProgressState state = ProgressState::kProbe;
  bool recent_active = false;
  bool is_learner = false;
};

struct Status {
  uint64_t id = 0;
  raftpb::HardState hard_state;
  SoftState soft_state;
  uint64_t applied = 0;
  uint64_t lead_transferee = 0;
  std::map<uint64_t, ProgressStatus> progress;  // leader only
  raftpb::ConfState conf_state;
};

class RawNode {
 public:
  // Restores the member from config.storage (hard state, membership, commit index).
  static absl::StatusOr<std::unique_ptr<RawNode>> Create(const Config& config);
  ~RawNode();
  RawNode(const RawNode&) = delete;
  RawNode& operator=(const RawNode&) = delete;

  // Writes the founding membership as CONF_CHANGE entries (index 1..n, term 1, committed).
  // REQUIRES: a fresh storage (nothing persisted). The entries come out of the next Ready as
  // entries to persist and committed entries to apply.
  absl::Status Bootstrap(const std::vector<uint64_t>& voters);
  // The same, with each founder's ConfChange given (ADD_NODE; its context, e.g. the member's
  // address, is kept in the log so every restart relearns it).
  absl::Status Bootstrap(const std::vector<raftpb::ConfChange>& founders);

  void Tick();
  // Starts an election now (no-op for learners and non-members).
  absl::Status Campaign();
  // ErrProposalDropped when no leader is known, forwarding is disabled, a leader transfer is in
  // progress or the uncommitted-size limit is reached. Success means only that the proposal was
  // accepted for replication, not that it will commit.
  absl::Status Propose(std::string data);
  // Proposes several entries as one PROP message: all are accepted (appended in order, with
  // consecutive indexes, and replicated together) or none is. A driver batches the proposals
  // that arrived since its last Ready this way, so replication messages carry many entries.
  absl::Status ProposeBatch(std::vector<std::string> data);
  absl::Status ProposeConfChange(const raftpb::ConfChange& cc);
  // Call when a committed CONF_CHANGE entry is applied; returns the new membership.
  raftpb::ConfState ApplyConfChange(const raftpb::ConfChange& cc);
  // Feeds a message from the network. Local message types are rejected (InvalidArgument), and
  // so are responses from peers this node does not know.
  absl::Status Step(const raftpb::Message& m);

  bool HasReady() const;
  Ready GetReady();
  // After persisting, sending and applying rd (see the header comment).
  void Advance(const Ready& rd);

  // Requests a linearizable read; the answer arrives as a ReadState with this context.
  void ReadIndex(std::string request_ctx);
  void TransferLeader(uint64_t transferee);
  // The transport could not reach `id`: the leader goes back to probing it.
  void ReportUnreachable(uint64_t id);
  // A snapshot sent to `id` finished (failed = it did not arrive).
  void ReportSnapshot(uint64_t id, bool failed);

  Status GetStatus() const;
  uint64_t id() const;

  // For tests and diagnostics; the core itself.
  Raft& raft() { return *raft_; }
  const Raft& raft() const { return *raft_; }

 private:
  explicit RawNode(std::unique_ptr<Raft> raft);
  Ready ReadyWithoutAccept() const;

  std::unique_ptr<Raft> raft_;
  SoftState prev_soft_state_;
  raftpb::HardState prev_hard_state_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_RAW_NODE_H_
