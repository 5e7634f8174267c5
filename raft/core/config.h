// Config and the small value types shared by the Raft core (raft.h) and its public entry point
// (raw_node.h). Users include raw_node.h, which includes this.
#ifndef SHOAL_RAFT_CORE_CONFIG_H_
#define SHOAL_RAFT_CORE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "raft/core/storage.h"

namespace shoal::raft {

inline constexpr uint64_t kNone = 0;  // "no node": no leader, no vote.

enum class StateType { kFollower, kCandidate, kLeader, kPreCandidate };
const char* StateTypeName(StateType s);

enum class ReadOnlyOption {
  // ReadIndex confirms leadership with a heartbeat round to a quorum: safe under any clock skew.
  kSafe,
  // ReadIndex trusts the leader lease (requires check_quorum): one round trip cheaper, but
  // unsafe if clocks drift by more than the election timeout.
  kLeaseBased,
};

struct Config {
  uint64_t id = 0;             // this member's Raft ID, non-zero
  int election_tick = 10;      // ticks; randomized timeout in [election_tick, 2*election_tick)
  int heartbeat_tick = 1;      // ticks between leader heartbeats; < election_tick
  Storage* storage = nullptr;  // not owned; MUST outlive the node
  uint64_t applied = 0;        // last applied index on restart (entries <= it are not re-delivered)
  // Upper bound on the serialized size of entries in one APP message (one entry at least; 0 means
  // one entry per message).
  uint64_t max_size_per_msg = 1 << 20;
  // Upper bound on the size of committed_entries in one Ready (one entry at least).
  uint64_t max_committed_size_per_ready = 64 << 20;
  // 0 = no limit; proposals that would push the leader's uncommitted tail beyond it are dropped.
  uint64_t max_uncommitted_entries_size = 0;
  int max_inflight_msgs = 256;  // APP messages in flight per follower in Replicate state
  bool check_quorum = true;
  bool pre_vote = true;
  ReadOnlyOption read_only_option = ReadOnlyOption::kSafe;
  bool disable_proposal_forwarding = false;
  // Seeds the randomized election timeout (0 = derive from id). Deterministic by design.
  uint64_t random_seed = 0;
};

absl::Status ValidateConfig(const Config& c);

struct SoftState {
  uint64_t lead = kNone;
  StateType raft_state = StateType::kFollower;
  bool operator==(const SoftState& o) const { return lead == o.lead && raft_state == o.raft_state; }
  bool operator!=(const SoftState& o) const { return !(*this == o); }
};

// The answer to a ReadIndex request: once the state machine has applied `index`, a read that
// started when ReadIndex(request_ctx) was called is linearizable.
struct ReadState {
  uint64_t index = 0;
  std::string request_ctx;
};

// A proposal was not accepted: no leader known, forwarding disabled, a leader transfer in
// progress, the uncommitted-size limit reached, or this node was removed. Retry later.
absl::Status ErrProposalDropped();
bool IsProposalDropped(const absl::Status& s);

}  // namespace shoal::raft

#endif  // SHOAL_RAFT_CORE_CONFIG_H_
