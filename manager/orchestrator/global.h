// GlobalOrchestrator: one task of every global service on every eligible node
// (docs/orchestration.md). Leader-only loop; see reconcile_loop.h for its life.
//
// For each global service and each node (tasks are slot 0 with node_id set at creation; the
// scheduler only checks that they still fit):
//  * the node exists, is ACTIVE, not DOWN, and satisfies the service's placement constraints
//    (scheduler/constraint.h): it gets a task (status NEW, desired RUNNING) unless it has a live
//    one (desired <= RUNNING: running, waiting out a restart delay, or finished and not to be
//    restarted per the restart policy);
//  * the node is PAUSEd, or DOWN for less than options.node_down_grace: nothing changes;
//  * the node is gone, DRAINed, DOWN for the grace (0 by default, as Swarm), or no longer
//    satisfies the constraints (its labels changed, or the service's constraints did): its live
//    tasks of the service get desired SHUTDOWN. A node that becomes eligible again gets a new one.
// A service pending deletion: its tasks that may still run get desired REMOVE (the task reaper
// deletes the finished ones, then the service). A task that fails is the restart supervisor's
// (restart.h): it stays live, so no second task is created beside it.
//
// A service whose constraints do not parse is left alone (logged once): the Control API
// validates them, so this only guards against a spec written by something else.
//
// Triggers: any change to a global service (full pass over the nodes: O(nodes + tasks of the
// service)); a change to a node (any field: constraints may look at labels, role, hostname,
// platform, address), handled for every global service on that node only; task creations,
// removals and desired-state changes of the service; a DOWN node's grace running out; resync.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_GLOBAL_H_
#define SHOAL_MANAGER_ORCHESTRATOR_GLOBAL_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class GlobalOrchestrator : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the orchestrator.
  explicit GlobalOrchestrator(store::MemoryStore* store, OrchestratorOptions options = {});
  ~GlobalOrchestrator() override;

  // Reconciles one service on every node now, on this thread (nothing if it is not global).
  absl::Status Reconcile(const std::string& service_id);

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;
  absl::Time NextWakeup() override;

 private:
  struct Plan;
  // Plans one service over `node_ids` (empty: every node, and the nodes its tasks name).
  absl::Status ReconcileAttempt(const std::string& service_id,
                                const std::vector<std::string>& node_ids);

  NodeTracker nodes_;
  absl::flat_hash_set<std::string> dirty_services_;
  absl::flat_hash_set<std::string> dirty_nodes_;
  absl::flat_hash_set<std::string> bad_constraints_reported_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_GLOBAL_H_
