// RaftNode: the driver that turns the pure Raft core into a running replicated state machine.
//
// It owns the core (RawNode), its in-memory log (MemoryStorage), the durable log on disk
// (DurableLog), and one loop thread that does everything in the order Raft requires:
//
//   tick from the Clock, step inbound messages, propose queued requests
//   → for each Ready: persist (one fsync per Ready, i.e. per batch of proposals) → send → apply
//   → wake the callers whose entries were applied → snapshot and compact when due.
//
// As a throughput optimisation from the Raft thesis (§10.2.1), a leader sends its APP and
// heartbeat messages before its own disk write finishes: an entry is only committed once a
// majority has persisted it, and the leader counts itself only when it is part of that majority
// through its own later persistence or the followers'. Every other message (votes, responses)
// leaves only after the state it depends on is durable.
//
// Entry data: a NORMAL entry the node proposes holds an 8-byte proposal ID followed by the
// application's payload; the ID wakes the proposer on this node. Empty entries (the leader's
// no-op) are not passed to the application. Snapshot data is a RaftSnapshotEnvelope: the
// membership (with addresses) plus the application's snapshot.
//
// Threading: every public method may be called from any thread. The StateMachine is called only
// from the loop thread; readers that inspect it directly must synchronise with Apply themselves
// (LinearizableRead tells them when it is safe to read a linearizable value).
#ifndef SHOAL_RAFT_NODE_RAFT_NODE_H_
#define SHOAL_RAFT_NODE_RAFT_NODE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "raft.pb.h"
#include "raft/core/raw_node.h"
#include "raft/core/storage.h"
#include "raft/storage/durable_log.h"
#include "raft/storage/encrypter.h"
#include "raft/transport/handler.h"
#include "raft/transport/transport.h"
#include "raft_transport.pb.h"

namespace shoal::raft {

// The application the log drives.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies the payload of the committed entry at `index`. Entries arrive in log order, each
  // once per process lifetime (after a restart, the entries after the last snapshot are applied
  // again on top of the restored snapshot). The result goes back to the proposer on this node.
  virtual std::string Apply(uint64_t index, const std::string& data) = 0;
  // Serialises the state as of the last applied entry.
  virtual std::string Snapshot() = 0;
  // Captures the state as of the last applied entry and returns a function that serialises it
  // (as Snapshot() would have at the capture). Called on the node's loop thread, which it
  // blocks, so it should be cheap (e.g. keep a reference to an immutable version); the returned
  // function runs on another thread, concurrently with later Apply calls. The default serialises
  // at once.
  virtual std::function<std::string()> CaptureSnapshot();
  // Replaces the whole state with a snapshot's.
  virtual absl::Status Restore(const std::string& data) = 0;
};

struct RaftNodeOptions {
  uint64_t id = 0;                 // this member's Raft ID, non-zero
  std::string addr;                // host:port peers reach this member's transport at
  std::string dir;                 // the durable log's directory
  Encrypter* encrypter = nullptr;  // seals every entry and snapshot; nullptr = no encryption
  Clock* clock = nullptr;          // nullptr = RealClock()
  absl::Duration tick_interval = absl::Milliseconds(100);
  int election_tick = 5;  // an election starts after 5–10 ticks without a leader
  int heartbeat_tick = 1;
  uint64_t snapshot_interval = 10000;  // applied entries between snapshots
  // ...or this many bytes of applied entries, if more than the last snapshot's size (so that a
  // large state is not re-serialised after every few megabytes): what bounds the in-memory log
  // when entries are large.
  uint64_t snapshot_bytes = 64 << 20;
  uint64_t log_entries_for_slow_followers = 500;  // entries kept behind a snapshot
  uint64_t max_size_per_msg = 1 << 20;
  int max_inflight_msgs = 256;
  // For a brand-new log only: the founding members (every founder lists the same set, itself
  // included). Empty: this member joins an existing group and waits for its leader.
  std::vector<api::RaftMember> bootstrap_members;
  // For a member joining an existing group: the members it was told about (e.g. by the
  // RaftMembership.Join answer), so that it can answer the leader before the log (or a
  // snapshot) teaches it the membership.
  std::vector<api::RaftMember> join_members;
  // Disaster recovery (`swarm init --force-new-cluster`): on an existing log, drop the entries
  // that were never committed and commit the removal of every other member, so that this member
  // alone forms a quorum with all the committed data. Ignored for a brand-new log.
  bool force_new_cluster = false;
};

class RaftNode : public Handler {
 public:
  // Opens the durable log, restores the state machine from the latest snapshot, and starts the
  // loop. `state_machine` and `transport` are not owned and must outlive the node; the node
  // adds and removes the transport's peers as the membership changes.
  static absl::StatusOr<std::unique_ptr<RaftNode>> Start(RaftNodeOptions options,
                                                         StateMachine* state_machine,
                                                         Transport* transport);
  ~RaftNode() override;
  RaftNode(const RaftNode&) = delete;
  RaftNode& operator=(const RaftNode&) = delete;

  // Stops the loop and closes the durable log; pending calls fail with CANCELLED. Idempotent.
  void Stop();

  // Replicates `data` and returns the state machine's result once the entry is committed and
  // applied here. Errors:
  //   UNAVAILABLE        no leader is known or the proposal was dropped: nothing was written
  //   ABORTED            a leader change discarded the entry: it was not applied
  //   DEADLINE_EXCEEDED  the outcome is unknown (it may still commit)
  //   CANCELLED          the node is stopping
  absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline);

  // The same without blocking: `done` runs once, on the node's loop thread (keep it short), with
  // the result or one of the errors above except DEADLINE_EXCEEDED (there is no deadline: the
  // caller abandons the result if it stops caring).
  using Callback = std::function<void(absl::StatusOr<std::string>)>;
  void ProposeAsync(std::string data, Callback done);

  // Returns once this node's state machine reflects every write committed before the call
  // (Raft's ReadIndex, batched across concurrent callers). Then a read of the state machine is
  // linearizable. UNAVAILABLE without a leader; DEADLINE_EXCEEDED on timeout.
  absl::Status LinearizableRead(absl::Time deadline);
  // The same without blocking: `done` runs on the loop thread once reading is safe (OK) or not.
  void LinearizableReadAsync(Callback done);

  // Membership changes, one at a time, proposed on the leader (FAILED_PRECONDITION elsewhere,
  // naming the leader). They return once the change is applied here.
  absl::Status AddMember(const api::RaftMember& member, bool as_learner, absl::Time deadline);
  absl::Status RemoveMember(uint64_t id, absl::Time deadline);
  // Asks the leader to hand leadership to `to`, and waits until this node sees `to` lead.
  absl::Status TransferLeadership(uint64_t to, absl::Time deadline);

  // Key rotation of this member's log at rest: rewrites every record of the durable log —
  // entries, hard state, snapshot metadata, snapshot files — sealed by the Encrypter as it is
  // now, and deletes the superseded copies (DurableLog::Reseal has the details and the crash
  // guarantees). For a data-encryption-key rotation: make the new key current in the Encrypter
  // (the old one still readable), call Reseal(), and drop the old key only once it returned OK.
  //
  // OK means: no record in this member's log directory is sealed by a key other than the one
  // that was current when Reseal() was called (or a later one). The loop thread runs the rewrite
  // between two Readys, so none of its own writes interleaves with it; the member pauses for its
  // duration (about 0.2 s for 10,000 entries) and then carries on, the pause not counted as
  // election time. Concurrent callers share one pass that starts after all of them called.
  // Errors: DEADLINE_EXCEEDED at `deadline` (the reseal may still complete; call again before
  // dropping the old key), CANCELLED if the node stops first, else DurableLog::Reseal's error
  // (a failed write stops the member, as any storage failure does).
  absl::Status Reseal(absl::Time deadline);

  struct Info {
    uint64_t id = 0;
    uint64_t term = 0;
    uint64_t leader = 0;
    uint64_t commit = 0;
    uint64_t applied = 0;
    uint64_t snapshot_index = 0;
    StateType state = StateType::kFollower;
    std::vector<api::RaftMember> members;
    raftpb::ConfState conf_state;
    uint64_t last_index = 0;  // of this member's log
    // On the leader only: each other member's replication progress (match index, and whether
    // it was heard from within the last election timeout).
    struct PeerProgress {
      uint64_t match = 0;
      bool recent_active = false;
      bool learner = false;
    };
    std::map<uint64_t, PeerProgress> progress;
  };
  Info GetInfo() const;
  // The leader and term of the last published Info, without copying it (lock-free; for request
  // paths that only need to know whether this member leads).
  uint64_t Leader() const { return leader_.load(std::memory_order_acquire); }
  uint64_t Term() const { return term_.load(std::memory_order_acquire); }
  // Waits until a leader is known; returns its ID, or 0 at the deadline.
  uint64_t WaitForLeader(absl::Time deadline) const;

  // Handler (the transport's callbacks): queue for the loop.
  void Receive(raftpb::Message m) override;
  void ReceiveBatch(std::vector<raftpb::Message> msgs) override;
  void ReportUnreachable(uint64_t peer) override;
  void ReportSnapshot(uint64_t peer, bool failed) override;

 private:
  // A caller waiting for its entry (or its read) to be applied.
  struct Waiter {
    Callback callback;  // set before the waiter is shared; if set, Finish() calls it
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<std::string> result ABSL_GUARDED_BY(mu);
  };
  struct PendingProposal {
    enum class Kind { kEntry, kConfChange, kTransferLeader };
    Kind kind = Kind::kEntry;
    uint64_t id = 0;
    std::string data;          // kEntry: framed entry data
    raftpb::ConfChange cc;     // kConfChange
    uint64_t transfer_to = 0;  // kTransferLeader
    std::shared_ptr<Waiter> waiter;
  };
  // A proposal accepted by the core, waiting to be applied.
  struct InFlight {
    std::shared_ptr<Waiter> waiter;
    uint64_t index = 0;  // known when proposed on the leader; 0 when forwarded
    uint64_t term = 0;
  };

  RaftNode(RaftNodeOptions options, StateMachine* sm, Transport* transport);
  absl::Status Init();
  // force_new_cluster: rewrites the loaded log (and persists it) so only this member remains.
  absl::Status ForceNewCluster(LoadedState* loaded);
  void Loop();
  // Runs one iteration's worth of inputs through the core and handles every Ready.
  void Process(std::deque<raftpb::Message> inbound, std::deque<PendingProposal> proposals,
               std::vector<std::pair<uint64_t, bool>> snapshot_reports,
               std::vector<uint64_t> unreachable, int ticks);
  void ProposeOne(PendingProposal& p);
  void ProposeBatch(const std::vector<PendingProposal*>& batch);
  absl::Status HandleReady(Ready& rd);
  absl::Status Persist(const Ready& rd);
  void ApplyEntries(const std::vector<raftpb::Entry>& entries);
  void ApplyConfChange(const raftpb::Entry& entry);
  absl::Status RestoreSnapshot(const raftpb::Snapshot& snap);
  // Loop thread: starts a snapshot of the applied state when one is due. The state machine's
  // capture runs here; serialising, sealing and writing the file run on snapshot_thread_, which
  // hands the result back through the mailbox (snapshot_written_) to FinishSnapshot.
  void MaybeSnapshot();
  struct WrittenSnapshot {
    raftpb::Snapshot snapshot;
    absl::Status status;
  };
  void FinishSnapshot(WrittenSnapshot written);
  // Waits for an in-flight snapshot and records it (before a reseal, and when stopping).
  void DrainSnapshot();
  void UpdatePeers();
  void FailAll(const absl::Status& status);
  void ResolveReads(const std::vector<ReadState>& states);
  // Loop thread, between Readys: one DurableLog::Reseal() for all of `waiters`.
  void RunReseal(std::vector<std::shared_ptr<Waiter>> waiters);
  std::shared_ptr<Waiter> Enqueue(PendingProposal p, Callback done = nullptr);
  void EnqueueRead(std::shared_ptr<Waiter> waiter);
  static absl::StatusOr<std::string> Await(const std::shared_ptr<Waiter>& w, absl::Time deadline);
  static void Finish(const std::shared_ptr<Waiter>& w, absl::StatusOr<std::string> result);
  // Loop thread: finishes `w` at the end of this iteration, after PublishInfo().
  void Complete(const std::shared_ptr<Waiter>& w, absl::StatusOr<std::string> result);
  void PublishInfo();

  const RaftNodeOptions options_;
  StateMachine* const sm_;
  Transport* const transport_;
  Clock* const clock_;
  std::unique_ptr<NoEncryption> no_encryption_;

  // Loop-thread state.
  MemoryStorage storage_;
  std::unique_ptr<DurableLog> durable_;
  std::unique_ptr<RawNode> raw_;
  uint64_t applied_ = 0;
  uint64_t snapshot_index_ = 0;
  bool snapshot_in_flight_ = false;
  uint64_t bytes_since_snapshot_ = 0;  // entry data applied since the last snapshot's capture
  uint64_t last_snapshot_bytes_ = 0;
  std::thread snapshot_thread_;
  raftpb::ConfState conf_state_;
  std::map<uint64_t, api::RaftMember> members_;
  std::vector<uint64_t> removed_;
  absl::flat_hash_map<uint64_t, InFlight> in_flight_;  // by proposal ID
  // Proposals made as leader, by log index → proposal ID: settled when their index is applied.
  std::map<uint64_t, uint64_t> leader_proposals_;
  // Reads waiting for a ReadIndex answer (by request context) or for applied >= index.
  std::map<std::string, std::vector<std::shared_ptr<Waiter>>> reads_by_ctx_;
  std::multimap<uint64_t, std::shared_ptr<Waiter>> reads_by_index_;
  uint64_t next_read_ctx_ = 1;
  uint64_t last_lead_ = 0;
  std::vector<std::pair<std::shared_ptr<Waiter>, absl::StatusOr<std::string>>> completions_;
  absl::Time next_tick_;
  // Where the current loop iteration's time went, for the slow-iteration warning.
  struct SlowParts {
    absl::Duration persist, apply, snapshot;
    size_t applied = 0;
  };
  SlowParts slow_;

  // The mailbox: filled by any thread, drained by the loop.
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<raftpb::Message> inbound_ ABSL_GUARDED_BY(mu_);
  std::deque<PendingProposal> proposals_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Waiter>> read_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Waiter>> reseal_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, bool>> snapshot_reports_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> unreachable_ ABSL_GUARDED_BY(mu_);
  std::optional<WrittenSnapshot> snapshot_written_ ABSL_GUARDED_BY(mu_);
  uint64_t next_proposal_id_ ABSL_GUARDED_BY(mu_) = 0;
  Info info_ ABSL_GUARDED_BY(mu_);   // published by the loop after each iteration
  std::atomic<uint64_t> leader_{0};  // info_.leader and info_.term, for Leader() and Term()
  std::atomic<uint64_t> term_{0};
  std::thread loop_;
  std::once_flag stop_once_;
};

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_NODE_RAFT_NODE_H_
