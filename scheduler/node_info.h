// NodeInfo: the scheduler's view of one node — the Node object plus what the tasks placed on it
// take: reserved CPU and memory, claimed generic resources, host-mode ports, and how many active
// tasks it runs in total and per service. Kept up to date incrementally (AddTask/RemoveTask) by
// whoever owns it, so the filters read these figures in O(1).
//
// Not thread-safe: one owner (the scheduler loop) mutates and reads it.
#ifndef SHOAL_SCHEDULER_NODE_INFO_H_
#define SHOAL_SCHEDULER_NODE_INFO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "objects.pb.h"

namespace shoal::scheduler {

// A port published in HOST mode: it binds on the node that runs the task, so two tasks
// publishing the same one cannot share a node.
struct HostPort {
  api::PortConfig::Protocol protocol = api::PortConfig::TCP;
  uint32_t port = 0;

  bool operator==(const HostPort& o) const { return protocol == o.protocol && port == o.port; }
  template <typename H>
  friend H AbslHashValue(H h, const HostPort& p) {
    return H::combine(std::move(h), static_cast<int>(p.protocol), p.port);
  }
};

// What a task takes from the node it runs on. Identical tasks (same service and spec version)
// share one, built once per group.
struct TaskDemand {
  std::string service_id;
  int64_t nano_cpus = 0;
  int64_t memory_bytes = 0;
  // Discrete reservations of generic resources: kind -> amount (> 0), sorted by kind.
  std::vector<std::pair<std::string, int64_t>> generic;
  // HOST-mode ports with a fixed published port (port 0 lets the runtime pick: no conflict).
  std::vector<HostPort> host_ports;

  // From task.spec().resources().reservations() and task.endpoint().ports().
  static std::shared_ptr<const TaskDemand> FromTask(const api::Task& task);
};

// Whether a task counts towards a node's active tasks (and so towards balancing and
// max-replicas): desired to run or to complete, as opposed to being shut down or removed.
bool IsActive(const api::Task& task);

class NodeInfo {
 public:
  explicit NodeInfo(api::Node node);

  const api::Node& node() const { return node_; }
  const std::string& id() const { return node_.id(); }

  // Replaces the Node object (a new status, availability, labels or reported resources) and
  // recomputes the available resources from its tasks.
  void SetNode(api::Node node);

  // Records `task`, which runs (or will run) here. Generic resources are taken from
  // task.assigned_generic_resources() when set, else claimed now as for a placement. Adding a
  // task already present only updates whether it is active. Returns whether anything changed.
  bool AddTask(const api::Task& task);
  // Records a task placed by the scheduler with a precomputed demand, claiming its generic
  // resources; returns the units claimed (for Task.assigned_generic_resources).
  // REQUIRES: no task `task_id` is recorded here.
  std::vector<api::GenericResource> Place(const std::string& task_id,
                                          std::shared_ptr<const TaskDemand> demand, bool active);
  // Forgets a task and gives back what it took. Returns false if it was not recorded here.
  bool RemoveTask(absl::string_view task_id);

  bool HasTask(absl::string_view task_id) const { return tasks_.contains(task_id); }
  size_t task_count() const { return tasks_.size(); }
  int active_tasks() const { return active_tasks_; }
  int ActiveTasksOfService(absl::string_view service_id) const;
  // Service ID -> active tasks, for every service with at least one here.
  const absl::flat_hash_map<std::string, int>& active_tasks_by_service() const {
    return active_by_service_;
  }

  // Capacity minus reservations; negative when the node shrank under its tasks.
  int64_t available_nano_cpus() const { return available_nano_cpus_; }
  int64_t available_memory_bytes() const { return available_memory_bytes_; }
  // Units of `kind` not claimed: a discrete amount, or the count of free named units.
  int64_t AvailableGeneric(absl::string_view kind) const;
  bool HostPortInUse(const HostPort& port) const { return used_host_ports_.contains(port); }

 private:
  struct TaskEntry {
    std::shared_ptr<const TaskDemand> demand;
    bool active = false;
    std::vector<api::GenericResource> assigned;  // Generic units this task holds here.
  };

  void ResetAvailable();
  void Take(const TaskEntry& entry);
  void GiveBack(const TaskEntry& entry);
  std::vector<api::GenericResource> ClaimGeneric(const TaskDemand& demand);
  void CountActive(const std::string& service_id, int delta);

  api::Node node_;
  absl::flat_hash_map<std::string, TaskEntry> tasks_;
  int active_tasks_ = 0;
  absl::flat_hash_map<std::string, int> active_by_service_;
  int64_t available_nano_cpus_ = 0;
  int64_t available_memory_bytes_ = 0;
  absl::flat_hash_map<std::string, int64_t> available_discrete_;
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> free_named_;
  absl::flat_hash_map<HostPort, int> used_host_ports_;  // Port -> tasks using it.
};

}  // namespace shoal::scheduler

#endif  // SHOAL_SCHEDULER_NODE_INFO_H_
