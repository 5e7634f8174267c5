#include "manager/rolemanager/quorum.h"

#include "absl/strings/str_cat.h"

namespace shoal::manager {

QuorumAfterRemoval QuorumWithout(const std::vector<ManagerMember>& members, uint64_t raft_id) {
  QuorumAfterRemoval q;
  for (const ManagerMember& m : members) {
    if (m.learner || m.raft_id == raft_id) continue;
    ++q.voters;
    if (m.reachable) ++q.reachable;
  }
  q.quorum = q.voters == 0 ? 0 : q.voters / 2 + 1;
  return q;
}

absl::Status CheckDemotionKeepsQuorum(const std::vector<ManagerMember>& members, uint64_t raft_id,
                                      absl::string_view node_name) {
  bool voter = false;
  for (const ManagerMember& m : members) {
    if (m.raft_id == raft_id && !m.learner) voter = true;
  }
  if (!voter) return absl::OkStatus();
  const QuorumAfterRemoval q = QuorumWithout(members, raft_id);
  if (q.voters == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot demote the last manager of the swarm (", node_name,
                     "); promote another node first"));
  }
  if (!q.safe()) {
    return absl::FailedPreconditionError(
        absl::StrCat("demoting ", node_name, " would leave ", q.reachable, " of ", q.voters,
                     " managers reachable, less than a quorum of ", q.quorum,
                     "; bring the unreachable managers back first"));
  }
  return absl::OkStatus();
}

}  // namespace shoal::manager
