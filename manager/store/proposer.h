// Proposer: how the store hands a transaction to consensus. In a manager it is the Raft node
// (raft::RaftNode::Propose has exactly this shape); in tests, DirectProposer applies at once.
//
// Contract: Propose(data) returns only once the entry is committed AND applied to this
// manager's store, with what the store's StateMachine::Apply returned for it; or an error when
// the entry was not applied (UNAVAILABLE: no leader, nothing written; ABORTED: a leader change
// discarded it; CANCELLED: shutting down) or its fate is unknown (DEADLINE_EXCEEDED).
//
// Threading: called concurrently from any thread that writes the store, never from the thread
// that applies entries.
#ifndef SHOAL_MANAGER_STORE_PROPOSER_H_
#define SHOAL_MANAGER_STORE_PROPOSER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shoal::manager::store {

class Proposer {
 public:
  virtual ~Proposer() = default;
  // `deadline` is wall-clock: it bounds how long the caller blocks.
  virtual absl::StatusOr<std::string> Propose(std::string data, absl::Time deadline) = 0;
};

}  // namespace shoal::manager::store

#endif  // SHOAL_MANAGER_STORE_PROPOSER_H_
