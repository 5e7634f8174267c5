// FakeRaftControl: a RaftControl for tests of the manager's services, whose members,
// leadership and reachability the test sets directly. ReadBarrier succeeds unless told to fail;
// RemoveMember drops the member from the list and records the call.
#ifndef SHOAL_MANAGER_FAKE_RAFT_CONTROL_H_
#define SHOAL_MANAGER_FAKE_RAFT_CONTROL_H_

#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "manager/raft_control.h"

namespace shoal::manager {

class FakeRaftControl : public RaftControl {
 public:
  FakeRaftControl(uint64_t local_raft_id, std::string local_node_id)
      : local_raft_id_(local_raft_id), local_node_id_(std::move(local_node_id)) {}

  void SetMembers(std::vector<ManagerMember> members) {
    absl::MutexLock lock(&mu_);
    members_ = std::move(members);
  }
  void SetLeader(bool leader) {
    absl::MutexLock lock(&mu_);
    leader_ = leader;
  }
  void FailReadsWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    read_status_ = std::move(status);
  }
  std::vector<uint64_t> removed() const {
    absl::MutexLock lock(&mu_);
    return removed_;
  }

  std::vector<ManagerMember> Members() const override {
    absl::MutexLock lock(&mu_);
    return members_;
  }
  bool IsLeader() const override {
    absl::MutexLock lock(&mu_);
    return leader_;
  }
  uint64_t local_raft_id() const override { return local_raft_id_; }
  std::string local_node_id() const override { return local_node_id_; }
  absl::Status ReadBarrier(absl::Time) override {
    absl::MutexLock lock(&mu_);
    return read_status_;
  }
  absl::Status RemoveMember(uint64_t raft_id, absl::Time) override {
    absl::MutexLock lock(&mu_);
    if (!leader_) return absl::FailedPreconditionError("not the leader");
    removed_.push_back(raft_id);
    std::vector<ManagerMember> kept;
    for (ManagerMember& m : members_) {
      if (m.raft_id != raft_id) kept.push_back(std::move(m));
    }
    members_ = std::move(kept);
    return absl::OkStatus();
  }

 private:
  const uint64_t local_raft_id_;
  const std::string local_node_id_;
  mutable absl::Mutex mu_;
  std::vector<ManagerMember> members_ ABSL_GUARDED_BY(mu_);
  bool leader_ ABSL_GUARDED_BY(mu_) = true;
  absl::Status read_status_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> removed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace shoal::manager

#endif  // SHOAL_MANAGER_FAKE_RAFT_CONTROL_H_
