// TaskReaper: deletes the tasks nobody needs any more, and services whose removal is complete
// (docs/orchestration.md). Leader-only loop; see reconcile_loop.h for its life.
//
// A task is deleted when it is *finished* (terminal, or never assigned to a node: status before
// ASSIGNED, so nothing runs it) — or when its node no longer exists (nothing will ever report on
// it) — and one of:
//  * its desired state is REMOVE (scale-down, service removal);
//  * its service is pending deletion, or gone;
//  * it is history: desired SHUTDOWN (a replaced or shut-down task) in a slot (replicated:
//    service + slot; global: service + node) that holds more such tasks than the cluster's
//    spec.orchestration.task_history_retention_limit (5 when there is no cluster; negative keeps
//    everything): the oldest (by creation) go first. Tasks still desired RUNNING / COMPLETE are
//    never history: that keeps a finished task the restart policy did not restart in its slot,
//    and a job's completions of its current iteration, which count.
// A task of a service that is gone and that may still run gets desired REMOVE (so its node stops
// it); once finished it is deleted. A task desired SHUTDOWN or REMOVE still "running" on a DOWN
// node stays until the node comes back and stops it, or the node is removed (or the dispatcher
// marks it ORPHANED): deleting it earlier would let its addresses be reused while it may run.
// A service pending deletion with no task left is deleted.
//
// Triggers: a task created or changed (its slot is looked at), deleted (its service, if pending
// deletion, is looked at); a service marked pending deletion; a node removed (its tasks); the
// cluster's retention limit changing (a full pass); resync (a full pass over every task: O(tasks)).
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_TASK_REAPER_H_
#define SHOAL_MANAGER_ORCHESTRATOR_TASK_REAPER_H_

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

inline constexpr int64_t kDefaultTaskHistoryRetention = 5;

class TaskReaper : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the reaper.
  explicit TaskReaper(store::MemoryStore* store, OrchestratorOptions options = {});
  ~TaskReaper() override;

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;

 private:
  // A slot: (service, slot) for slot > 0, else (service, node).
  using SlotId = std::tuple<std::string, uint64_t, std::string>;
  static SlotId SlotOf(const api::Task& t);
  absl::Status ProcessAttempt();

  bool full_ = false;
  absl::flat_hash_set<SlotId> dirty_slots_;
  absl::flat_hash_set<std::string> dirty_tasks_;
  absl::flat_hash_set<std::string> dirty_services_;
  absl::flat_hash_set<std::string> dirty_nodes_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_TASK_REAPER_H_
