// ClusterSim: a deterministic simulation of a Raft cluster running a replicated KV store, used to
// prove the Raft core (raft/core) safe under faults.
//
// One seed determines everything: the scenario (cluster size, timing, which features and faults
// are on) and every random decision during the run, all drawn from one SimRng in event order. A
// failing seed therefore replays exactly.
//
// What is simulated:
//   members  each a raft::RawNode over a MemoryStorage that stands for its disk, plus an
//            unsynced buffer for writes the core did not ask to fsync (a commit-only hard state).
//            The driver handles each Ready as three timed steps — persist (snapshot, entries,
//            hard state; fsync if must_sync) and send, then apply committed entries to the KV
//            state machine and Advance — and a crash can strike before or after any of them,
//            losing the unsynced buffer and all volatile state (some crashes take every member
//            down at once). A restart rebuilds the node from its storage with Config::applied =
//            snapshot index and re-applies from there — or, in seeds whose state machine is
//            durable, resumes at the state machine's applied index.
//            Members snapshot their KV state every K applied entries and compact the log, so
//            lagging members must catch up from snapshots. Each member ticks at its own rate
//            (clock skew). Some seeds let messages reach the core while a Ready is being handled.
//   network  delays, drops, duplicates, reorders, partitions (symmetric and one-way), heals.
//   clients  a few concurrent clients issuing Put / Get / CAS with unique values to the member
//            they believe leads, retrying elsewhere after a timeout with the same (client, seq)
//            so the KV state machine can deduplicate; in some seeds they give up after a few
//            timeouts (the operation stays open-ended in the history). Gets go through the log,
//            or through ReadIndex (on any member) in some seeds.
//   operator membership changes one at a time (add learner, promote, remove — in seeds that
//            found the cluster through RawNode::Bootstrap) and leader transfers.
//
// After the fault phase the network heals, crashed members restart and a probe write must
// commit (liveness). Raft's safety invariants (invariants.h) are checked after every event; the
// clients' history is checked for linearizability at the end.
//
// Thread-safety: RunSimulation is self-contained; distinct runs may execute on distinct threads.
#ifndef SHOAL_RAFT_SIM_CLUSTER_SIM_H_
#define SHOAL_RAFT_SIM_CLUSTER_SIM_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "raft/sim/linearizability.h"
#include "raft/sim/network.h"

namespace shoal::raft::sim {

// Everything a seed decides before the run starts.
struct SimScenario {
  int voters = 3;                  // Founding members.
  int max_voters = 5;              // Membership changes stay within [3, max_voters].
  SimTime duration = 3 * kSecond;  // Fault phase.
  SimTime settle = 3 * kSecond;    // Healed phase at the end; the probe must commit in it.
  int clients = 3;
  int keys = 2;
  SimTime client_timeout = 500 * kMillisecond;
  // A client gives up on an operation after this many timeouts (it may still take effect) and
  // moves on; 0 = retry until the end of the run.
  int client_max_timeouts = 0;
  NetworkOptions network;
  SimTime tick_interval = 10 * kMillisecond;
  double clock_skew = 0.2;  // Each member's tick period is tick_interval * (1 +- up to this).
  int election_tick = 10;
  int heartbeat_tick = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  uint64_t max_size_per_msg = 1 << 20;
  int max_inflight_msgs = 256;
  bool step_during_ready = false;  // Deliver to the core between GetReady and Advance.
  bool bootstrap_via_log = false;  // RawNode::Bootstrap instead of SetInitialConfState.
  int snapshot_every = 0;          // Applied entries between snapshots; 0 = never.
  int snapshot_keep = 5;           // Entries kept below the snapshot index when compacting.
  bool read_index_gets = false;
  // ReadIndex by leader lease (ReadOnlyOption::kLeaseBased) instead of a heartbeat round. Only
  // drawn with zero clock skew: the lease is unsafe when clocks drift.
  bool lease_reads = false;
  // The state machine is durable (as a RocksDB-backed store would be): a restart resumes from
  // its applied index (Config::applied beyond the snapshot) instead of replaying from the
  // snapshot.
  bool durable_state_machine = false;
  uint64_t max_uncommitted_entries_size = 0;  // Config value; 0 = unlimited.
  bool follower_proposals = false;            // Followers accept client writes and forward them.
  bool cas = false;
  bool membership_changes = false;
  bool leader_transfers = false;
  SimTime crash_interval = 0;          // Mean time between crashes; 0 = none.
  double power_cut_probability = 0.1;  // Share of crashes that take every member down at once.
  SimTime partition_interval = 0;      // Mean time between partition changes; 0 = none.

  std::string Describe() const;
};

// Overrides one scenario field by name (for sim_main's --set=name=value): voters, duration_ms,
// settle_ms, clients, keys, skew, crash_ms, partition_ms, drop, dup, slow, slow_max_ms,
// election_tick, heartbeat_tick, pre_vote, check_quorum, step_during_ready, snapshot_every,
// snapshot_keep, read_index, lease_reads, durable_sm, follower_proposals, cas, membership,
// transfers, client_max_timeouts, power_cut. Booleans are 0/1.
absl::Status SetScenarioField(SimScenario& s, const std::string& name, const std::string& value);

struct SimStats {
  uint64_t events = 0;
  uint64_t client_ops = 0;
  uint64_t client_ops_completed = 0;
  uint64_t client_ops_timed_out = 0;  // Never returned (still pending at the end).
  uint64_t client_retries = 0;
  uint64_t read_index_reads = 0;  // Gets answered through ReadIndex.
  uint64_t committed = 0;         // Highest committed index.
  uint64_t leaders = 0;           // Distinct terms with a leader.
  uint64_t crashes = 0;
  uint64_t crashes_mid_ready = 0;  // Crashes between GetReady and Advance.
  uint64_t partitions = 0;
  uint64_t snapshots_taken = 0;
  uint64_t snapshots_installed = 0;  // Snapshots received from a leader.
  uint64_t conf_changes = 0;         // Applied (first application cluster-wide).
  uint64_t transfers = 0;            // Leader transfers requested.
  uint64_t lin_steps = 0;
  NetworkStats network;
};

// Deliberate driver bugs, to prove that the simulation catches what it claims to catch.
enum class InjectedBug {
  kNone,
  kLocalReads,         // Any member answers Get from its own state at once (stale reads).
  kUnsyncedHardState,  // Term and vote are never fsynced: a crash forgets votes.
  kSendBeforePersist,  // Messages go out before the Ready is persisted (acks for lost entries).
  kNoDedupe,           // The KV state machine applies retried commands again.
};

struct SimOptions {
  uint64_t seed = 1;
  InjectedBug inject = InjectedBug::kNone;
  // Applied to the drawn scenario before the run (tests force features this way).
  std::function<void(SimScenario&)> adjust;
  size_t trace_events = 50;  // Events kept for a failure report.
  bool print_trace = false;  // Also print every event to stderr as it happens.
  bool check_liveness = true;
  bool check_linearizability = true;
};

struct SimResult {
  uint64_t seed = 0;
  bool ok = true;
  // "invariant: <name>", "linearizability", "liveness" or "driver" (the core misbehaved in a
  // way that is not an invariant, e.g. returned an error the driver cannot act on).
  std::string failure;
  std::string report;  // Seed, scenario, what failed and the last events; empty when ok.
  SimScenario scenario;
  SimStats stats;
};

// Draws the scenario for `seed` (the same draw RunSimulation makes).
SimScenario ScenarioForSeed(uint64_t seed);
SimResult RunSimulation(const SimOptions& options);
std::string ReplayHint(uint64_t seed);

// Installs SIGABRT/SIGSEGV handlers that print the seed, scenario and recent events of the run in
// progress before the process dies (the core stops the process on a violated internal check).
void InstallAbortReporter();

}  // namespace shoal::raft::sim

#endif  // SHOAL_RAFT_SIM_CLUSTER_SIM_H_
