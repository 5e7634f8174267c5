// RaftControl: what the manager's services need from the Raft group beyond the store — who the
// managers are, who leads, consistent reads, and removing a member.
//
// The manager (manager.h) implements it over raft::RaftNode and raft::Transport; tests use
// FakeRaftControl (fake_raft_control.h). Keeping the services behind this interface lets them be
// tested on a MemoryStore with a DirectProposer, without a Raft group.
//
// Thread-safety: implementations are safe to call from any thread.
#ifndef SHOAL_MANAGER_RAFT_CONTROL_H_
#define SHOAL_MANAGER_RAFT_CONTROL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace shoal::manager {

// One manager in the Raft group, as this manager sees it.
struct ManagerMember {
  uint64_t raft_id = 0;
  std::string node_id;
  std::string addr;  // host:port of its manager API (Raft, CA, dispatcher)
  bool leader = false;
  // This manager can talk to it (itself always; others: the Raft stream to it is up).
  bool reachable = false;
  bool learner = false;  // still catching up; not counted for quorum
};

class RaftControl {
 public:
  virtual ~RaftControl() = default;

  // Every member (voters and learners), by Raft ID.
  virtual std::vector<ManagerMember> Members() const = 0;
  virtual bool IsLeader() const = 0;
  // This manager's own Raft ID and node ID.
  virtual uint64_t local_raft_id() const = 0;
  virtual std::string local_node_id() const = 0;
  // Returns once this manager's store reflects every write committed before the call
  // (linearizable reads). UNAVAILABLE without a leader.
  virtual absl::Status ReadBarrier(absl::Time deadline) = 0;
  // Removes a member from the Raft group. On the leader only (FAILED_PRECONDITION elsewhere). If
  // the member is the leader itself, leadership is handed to another voter first, and the call
  // returns once the new leader committed the removal.
  virtual absl::Status RemoveMember(uint64_t raft_id, absl::Time deadline) = 0;
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_RAFT_CONTROL_H_
