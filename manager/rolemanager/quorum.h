// quorum: whether a manager can leave the Raft group without costing the swarm its quorum.
//
// Demoting a manager removes its Raft member. That is safe only if the voters that remain can
// still form a majority among themselves with the members this manager can reach: otherwise the
// removal (or the first write after it) could leave the swarm without a leader. Both the Control
// API (refusing `node demote` up front, with an explanation) and the RoleManager (re-checking
// before it actually removes the member, since reachability may have changed since) ask this.
//
// Learners are not voters: they count neither for the quorum nor as reachable voters, and
// removing one is always safe. Reachability is this manager's view (ManagerMember::reachable).
//
// Thread-safety: free functions on values; safe from any thread.
#ifndef SHOAL_MANAGER_ROLEMANAGER_QUORUM_H_
#define SHOAL_MANAGER_ROLEMANAGER_QUORUM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "manager/raft_control.h"

namespace shoal::manager {

struct QuorumAfterRemoval {
  size_t voters = 0;     // voters left after the removal
  size_t reachable = 0;  // of those, how many this manager can reach (itself included)
  size_t quorum = 0;     // majority of `voters`: voters / 2 + 1 (0 when no voter is left)
  bool safe() const { return voters > 0 && reachable >= quorum; }
};

// The voters that would remain if member `raft_id` left the group. A raft_id that is not a
// member, or is a learner, leaves the voters unchanged.
QuorumAfterRemoval QuorumWithout(const std::vector<ManagerMember>& members, uint64_t raft_id);

// OK when removing member `raft_id` keeps a reachable quorum (or it is not a voter). Otherwise
// FAILED_PRECONDITION naming `node_name`, either "cannot demote the last manager of the swarm"
// or "demoting X would leave N of M managers reachable, less than a quorum of Q; ...".
absl::Status CheckDemotionKeepsQuorum(const std::vector<ManagerMember>& members, uint64_t raft_id,
                                      absl::string_view node_name);

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_ROLEMANAGER_QUORUM_H_
