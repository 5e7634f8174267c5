// Raft's safety properties, checked continuously while a simulation runs.
//
// The cluster simulation reports what it observes — who leads which term, what each member
// stores, applies, commits, and what survives its crashes — and InvariantChecker compares every
// observation with everything seen before in the run (Raft paper, Figure 3):
//
//   election safety      at most one leader per term, ever;
//   leader append-only   a leader never overwrites the entries of its own term;
//   log matching         an (index, term) pair names one entry, and the same predecessor, in every
//                        log; pairwise comparison of whole logs from time to time;
//   leader completeness  a newly observed leader holds every entry already committed;
//   state-machine safety no two members apply different entries at one index; members apply
//                        contiguously; equal snapshot indexes carry equal state;
//   no committed entry lost
//                        a member's commit index never goes back while it runs; after a restart
//                        its durable log agrees with every committed entry it claims as
//                        committed; the newest committed entry is durable on enough voters to
//                        intersect every quorum of the current membership.
//
// "Committed" here means applied by some member: application only follows commitment, and
// (unlike a commit index that may run ahead of the leader's own disk) it also follows the
// entry's persistence, so it is what the cluster has really promised.
//
// The first violation is kept (later ones are usually its consequences); the simulation stops
// and prints it with the seed and a trace.
//
// Thread-safety: none; single-threaded simulation.
#ifndef SHOAL_RAFT_SIM_INVARIANTS_H_
#define SHOAL_RAFT_SIM_INVARIANTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "raft.pb.h"

namespace shoal::raft::sim {

// Stable hash of an entry's term, index, type and payload.
uint64_t EntryHash(const raftpb::Entry& e);

// A read-only view of one member's log, as stored or as the core sees it.
class LogView {
 public:
  virtual ~LogView() = default;
  // Entries at or below this index are covered by a snapshot (0 = none).
  virtual uint64_t SnapshotIndex() const = 0;
  virtual uint64_t LastIndex() const = 0;
  // Term at `index` for index in [SnapshotIndex(), LastIndex()], else nullopt.
  virtual std::optional<uint64_t> Term(uint64_t index) const = 0;
  // EntryHash at `index` for index in (SnapshotIndex(), LastIndex()], else nullopt.
  virtual std::optional<uint64_t> Hash(uint64_t index) const = 0;
};

struct Violation {
  std::string invariant;  // e.g. "election safety"
  std::string detail;
};

class InvariantChecker {
 public:
  bool ok() const { return !violation_.has_value(); }
  const std::optional<Violation>& violation() const { return violation_; }

  // `member` is leader of `term` (reported after every event while it is). The first report of a
  // (member, term) also checks leader completeness against `log`, the leader's own log.
  void ObserveLeader(uint64_t member, uint64_t term, const LogView& log);

  // `member` is about to store `entries` (before MemoryStorage::Append); `log` is its stored log.
  // `leader_term`: the term it leads, or 0. Checks append-only for leaders.
  void ObserveBeforeStore(uint64_t member, uint64_t leader_term,
                          const std::vector<raftpb::Entry>& entries, const LogView& log);
  // After the append: log matching for each newly stored (index, term) against every other log
  // that ever held the same pair.
  void ObserveStored(uint64_t member, const std::vector<raftpb::Entry>& entries,
                     const LogView& log);

  // `member` applied `e` to its state machine.
  void ObserveApplied(uint64_t member, const raftpb::Entry& e);
  // `member`'s state machine was replaced by a snapshot at (index, term) with state `state_hash`
  // (also used when it takes its own snapshot).
  void ObserveSnapshotState(uint64_t member, uint64_t index, uint64_t term, uint64_t state_hash,
                            bool restored);
  // `member`'s commit index as the running core reports it.
  void ObserveCommit(uint64_t member, uint64_t commit);
  // `member` crashed: its volatile state (commit index, applied index) is gone.
  void ObserveCrash(uint64_t member);
  // `member` restarted from durable state: commit index `commit`, state machine restored from
  // the snapshot at `snapshot_index`, durable log `log`.
  void ObserveRestart(uint64_t member, uint64_t commit, uint64_t snapshot_index,
                      const LogView& log);

  // The newest committed entry must be held durably (in the log, or covered by a snapshot) by at
  // least |voters| - quorum + 1 of `voters`, i.e. by some member of every quorum.
  void CheckCommittedDurable(const std::vector<uint64_t>& voters,
                             const std::function<const LogView*(uint64_t)>& durable_log);

  // Full log matching over all pairs of `logs`, and every log against the committed record.
  void CheckLogs(const std::map<uint64_t, const LogView*>& logs);

  // The highest index known committed (applied anywhere), 0 if none.
  uint64_t max_committed() const { return committed_.empty() ? 0 : committed_.rbegin()->first; }
  uint64_t leaders_seen() const { return leader_of_term_.size(); }

 private:
  struct CommittedEntry {
    uint64_t term = 0;
    uint64_t hash = 0;  // 0 = only the term is known (learned from a snapshot).
    uint64_t first_member = 0;
  };
  struct PairRecord {
    uint64_t hash;
    uint64_t prev_term;
    uint64_t member;
  };
  void Fail(std::string invariant, std::string detail);

  std::optional<Violation> violation_;
  std::map<uint64_t, uint64_t> leader_of_term_;
  std::map<std::pair<uint64_t, uint64_t>, bool> leader_checked_;  // (member, term)
  std::map<std::pair<uint64_t, uint64_t>, PairRecord> pairs_;     // (index, term)
  std::map<uint64_t, CommittedEntry> committed_;                  // index ->
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> state_at_;    // index -> (hash, member)
  std::map<uint64_t, uint64_t> applied_;                          // member -> applied index
  std::map<uint64_t, uint64_t> commit_;                           // member -> commit index
};

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_INVARIANTS_H_
