// ReplicatedOrchestrator: keeps `replicas` slots of every replicated service filled
// (docs/orchestration.md). Leader-only loop; see reconcile_loop.h for its life.
//
// For each replicated service, its tasks are grouped by slot. A slot is *runnable* when it has a
// live task (desired_state <= RUNNING; this includes a task that finished but that its restart
// policy does not restart — it stays desired RUNNING, and the slot stays taken — and a
// replacement waiting out its restart delay with desired READY). Then:
//
//  * Lost nodes. A live task still meant to run (not finished) on a node that is gone, DRAINed,
//    or DOWN for options.node_down_grace (0 by default, as Swarm: the dispatcher already waited
//    three heartbeats) gets desired SHUTDOWN and, in the same transaction, a replacement in its
//    slot (desired RUNNING at once, no restart delay; the scheduler places it elsewhere). This
//    happens whatever the restart policy: it is the node that failed, not the task.
//  * Scale up: fewer runnable slots than replicas → new tasks (NewTask: status NEW, desired
//    RUNNING) in the lowest slot numbers that are not runnable.
//  * Scale down: more runnable slots than replicas → the extra slots' live tasks get desired
//    REMOVE (the agent stops them; the task reaper deletes them once they are finished). Which
//    slots go follows Swarm's choice, to leave the service balanced: first slots whose task is
//    not on a node yet; then, counting for each task that it is the n-th of the service on its
//    node (running tasks counted first, in slot order), the highest n first — so nodes with the
//    most copies lose theirs first; among equals, tasks not running before running ones, then the
//    highest slot first. With every task running, evenly spread, that removes the highest slots.
//  * A service pending deletion: each of its tasks that may still run on a node (assigned and not
//    finished) gets desired REMOVE; the task reaper deletes finished tasks and then the service.
//
// Each slot's change is one callback of a MemoryStore::Batch that re-reads what it changes
// (so a stale plan does nothing harmful); a pass that meets ABORTED starts over from a fresh read.
// Reconciling a service reads its tasks once (FindTasksByService) and groups them in a hash map:
// O(tasks), e.g. 100,000 replicas are created in one pass.
//
// What triggers a service's reconciliation: any change to the service; a task of it created,
// deleted, or whose desired state, node or slot changed; a node's availability or status
// changing (or the node removed), for the services with live tasks there; a DOWN node's grace
// running out; and the periodic resync.
//
// Thread-safety: as ReconcileLoop.
#ifndef SHOAL_MANAGER_ORCHESTRATOR_REPLICATED_H_
#define SHOAL_MANAGER_ORCHESTRATOR_REPLICATED_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "manager/orchestrator/common.h"
#include "manager/orchestrator/reconcile_loop.h"
#include "manager/store/memory_store.h"

namespace shoal::manager::orchestrator {

class ReplicatedOrchestrator : public ReconcileLoop {
 public:
  // `store` is not owned and must outlive the orchestrator.
  explicit ReplicatedOrchestrator(store::MemoryStore* store, OrchestratorOptions options = {});
  ~ReplicatedOrchestrator() override;

  // Reconciles one service now, on this thread (nothing if it is not a replicated service).
  absl::Status Reconcile(const std::string& service_id);

 protected:
  void MarkAll(const store::ReadTx& tx) override;
  void Observe(const store::StoreEvent& event) override;
  absl::Status Process() override;
  absl::Time NextWakeup() override;

 private:
  struct Plan;
  absl::Status ReconcileLocked(const std::string& service_id);
  absl::Status ReconcileAttempt(const std::string& service_id);
  void PlanService(const store::ReadTx& tx, const api::Service& service, Plan* plan);

  NodeTracker nodes_;
  absl::flat_hash_set<std::string> dirty_services_;
  absl::flat_hash_set<std::string> dirty_nodes_;
};

}  // namespace shoal::manager::orchestrator

#endif  // SHOAL_MANAGER_ORCHESTRATOR_REPLICATED_H_
